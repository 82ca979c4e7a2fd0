/* kiln: image references (the distribution reference grammar). */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/reference.h"

#define TAG_MAX 128

static bool
is_alnum_lower (char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* over s[0..n). */
static bool
path_component_valid (const char *s, size_t n)
{
        size_t i = 0;

        if (n == 0 || !is_alnum_lower (s[0]))
                return false;
        while (i < n) {
                while (i < n && is_alnum_lower (s[i]))
                        i++;
                if (i == n)
                        return true;
                /* A separator: ".", "_", "__" or a run of "-". */
                if (s[i] == '.')
                        i++;
                else if (s[i] == '_')
                        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
                else if (s[i] == '-')
                        while (i < n && s[i] == '-')
                                i++;
                else
                        return false;
                if (i == n || !is_alnum_lower (s[i]))
                        return false;
        }
        return true;
}

bool
kiln_reference_repository_valid (const char *repository)
{
        const char *p = repository;

        for (;;) {
                const char *slash = strchr (p, '/');
                size_t n = slash ? (size_t) (slash - p) : strlen (p);
                if (!path_component_valid (p, n))
                        return false;
                if (slash == NULL)
                        return true;
                p = slash + 1;
        }
}

static bool
is_word (char c)
{
        return isalnum ((unsigned char) c) || c == '_';
}

bool
kiln_reference_tag_valid (const char *tag)
{
        size_t n = strlen (tag);

        if (n == 0 || n > TAG_MAX || !is_word (tag[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_word (tag[i]) && tag[i] != '.' && tag[i] != '-')
                        return false;
        return true;
}

/* ([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]) joined by '.'. */
static bool
domain_name_valid (const char *s, size_t n)
{
        size_t start = 0;

        if (n == 0)
                return false;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.') {
                        if (!isalnum ((unsigned char) s[i]) && s[i] != '-')
                                return false;
                        continue;
                }
                if (i == start || s[start] == '-' || s[i - 1] == '-')
                        return false;
                start = i + 1;
        }
        return true;
}

static bool
port_valid (const char *s, size_t n)
{
        unsigned long v = 0;

        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!isdigit ((unsigned char) s[i]))
                        return false;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        return v >= 1 && v <= 65535;
}

/* Splits host[:port] (host may be "[v6]"); *host_len excludes the port. */
static bool
split_host (const char *s, size_t n, size_t *host_len)
{
        if (n > 0 && s[0] == '[') {
                const char *close = memchr (s, ']', n);
                char addr[INET6_ADDRSTRLEN + 1];
                struct in6_addr a6;
                size_t alen;

                if (close == NULL)
                        return false;
                alen = (size_t) (close - s - 1);
                if (alen == 0 || alen >= sizeof addr)
                        return false;
                memcpy (addr, s + 1, alen);
                addr[alen] = '\0';
                if (inet_pton (AF_INET6, addr, &a6) != 1)
                        return false;
                *host_len = (size_t) (close - s) + 1;
                if (*host_len == n)
                        return true;
                return s[*host_len] == ':' && port_valid (s + *host_len + 1, n - *host_len - 1);
        }
        {
                const char *colon = memchr (s, ':', n);
                *host_len = colon ? (size_t) (colon - s) : n;
                if (!domain_name_valid (s, *host_len))
                        return false;
                return colon == NULL || port_valid (colon + 1, n - *host_len - 1);
        }
}

static bool
host_valid (const char *s)
{
        size_t hl;
        return split_host (s, strlen (s), &hl);
}

bool
kiln_registry_host_is_loopback (const char *host)
{
        char name[256];
        size_t hl;
        struct in_addr a4;

        if (host == NULL || !split_host (host, strlen (host), &hl) || hl >= sizeof name)
                return false;
        memcpy (name, host, hl);
        name[hl] = '\0';
        if (strcasecmp (name, "localhost") == 0)
                return true;
        if (strcmp (name, "[::1]") == 0)
                return true;
        if (inet_pton (AF_INET, name, &a4) == 1)
                return (ntohl (a4.s_addr) >> 24) == 127;
        return false;
}

/* Docker's rule: the first component is a registry when it has a '.' or a
 * ':', is "localhost", or has upper-case letters (which a path cannot). */
static bool
looks_like_host (const char *s, size_t n)
{
        if (n == 9 && memcmp (s, "localhost", 9) == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '.' || s[i] == ':' || s[i] == '[' || isupper ((unsigned char) s[i]))
                        return true;
        return false;
}

static int
invalid (kiln_error **err, const char *s, const char *why)
{
        return kiln_error_makec (err, KILN_E_INVALID, 0, "invalid image reference `%s`: %s", s,
                                 why);
}

static int
parse_name (kiln_reference *r, const char *s, const char *name, kiln_error **err)
{
        const char *slash = strchr (name, '/');
        const char *path = name;

        if (slash && looks_like_host (name, (size_t) (slash - name))) {
                r->registry = strndup (name, (size_t) (slash - name));
                if (r->registry == NULL)
                        abort ();
                if (!host_valid (r->registry))
                        return invalid (err, s, "bad registry host");
                path = slash + 1;
        } else {
                r->registry = kiln_strdup (KILN_DOCKER_HUB);
        }
        if (strcmp (r->registry, "index.docker.io") == 0) {
                free (r->registry);
                r->registry = kiln_strdup (KILN_DOCKER_HUB);
        }
        if (strcmp (r->registry, KILN_DOCKER_HUB) == 0 && strchr (path, '/') == NULL)
                r->repository = kiln_strdup_printf ("library/%s", path);
        else
                r->repository = kiln_strdup (path);
        if (*path == '\0')
                return invalid (err, s, "missing repository");
        if (!kiln_reference_repository_valid (r->repository)) {
                for (const char *p = path; *p; p++)
                        if (isupper ((unsigned char) *p))
                                return invalid (err, s, "repository must be lower-case");
                return invalid (err, s, "bad repository name");
        }
        if (strlen (r->registry) + 1 + strlen (r->repository) > KILN_REFERENCE_NAME_MAX)
                return invalid (err, s, "name longer than 255 characters");
        return 0;
}

int
kiln_reference_parse (kiln_reference **out, const char *s, kiln_error **err)
{
        cleanup_free char *name = NULL;
        kiln_reference *r;
        const char *at, *last_slash, *colon;

        if (*s == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0, "empty image reference");
        if (strlen (s) > KILN_REFERENCE_NAME_MAX + 1 + TAG_MAX + 1 + KILN_DIGEST_MAX)
                return invalid (err, s, "too long");
        r = kiln_calloc (1, sizeof (*r));
        at = strchr (s, '@');
        if (at) {
                if (!kiln_digest_valid (at + 1)) {
                        kiln_reference_free (r);
                        return invalid (err, s, "bad digest");
                }
                kiln_strlcpy (r->digest, at + 1, sizeof r->digest);
                name = strndup (s, (size_t) (at - s));
        } else {
                name = kiln_strdup (s);
        }
        if (name == NULL)
                abort ();
        last_slash = strrchr (name, '/');
        colon = strrchr (last_slash ? last_slash : name, ':');
        if (colon) {
                if (!kiln_reference_tag_valid (colon + 1)) {
                        kiln_reference_free (r);
                        return invalid (err, s, "bad tag");
                }
                r->tag = kiln_strdup (colon + 1);
                name[colon - name] = '\0';
        }
        if (parse_name (r, s, name, err) < 0) {
                kiln_reference_free (r);
                return -1;
        }
        *out = r;
        return 0;
}

kiln_reference *
kiln_reference_with (const kiln_reference *ref, const char *tag, const char *digest)
{
        kiln_reference *r = kiln_calloc (1, sizeof (*r));

        r->registry = kiln_strdup (ref->registry);
        r->repository = kiln_strdup (ref->repository);
        r->tag = kiln_strdup (tag);
        if (digest)
                kiln_strlcpy (r->digest, digest, sizeof r->digest);
        return r;
}

kiln_reference *
kiln_reference_dup (const kiln_reference *ref)
{
        return kiln_reference_with (ref, ref->tag, ref->digest);
}

void
kiln_reference_free (kiln_reference *ref)
{
        if (ref == NULL)
                return;
        free (ref->registry);
        free (ref->repository);
        free (ref->tag);
        free (ref);
}

char *
kiln_reference_name (const kiln_reference *ref)
{
        return kiln_strdup_printf ("%s/%s", ref->registry, ref->repository);
}

char *
kiln_reference_format (const kiln_reference *ref)
{
        return kiln_strdup_printf ("%s/%s%s%s%s%s", ref->registry, ref->repository,
                                   ref->tag ? ":" : "", ref->tag ? ref->tag : "",
                                   ref->digest[0] ? "@" : "", ref->digest);
}

const char *
kiln_reference_identifier (const kiln_reference *ref)
{
        if (ref->digest[0])
                return ref->digest;
        return ref->tag ? ref->tag : "latest";
}

const char *
kiln_reference_api_host (const kiln_reference *ref)
{
        if (strcmp (ref->registry, KILN_DOCKER_HUB) == 0)
                return KILN_DOCKER_HUB_API;
        return ref->registry;
}

char *
kiln_registry_auth_key (const char *key)
{
        const char *p = key;
        size_t n;
        char *host;

        if (kiln_str_has_prefix (p, "https://"))
                p += 8;
        else if (kiln_str_has_prefix (p, "http://"))
                p += 7;
        n = strcspn (p, "/");
        host = strndup (p, n);
        if (host == NULL)
                abort ();
        if (strcmp (host, "docker.io") == 0 || strcmp (host, "index.docker.io") == 0
            || strcmp (host, "registry-1.docker.io") == 0
            || strcmp (host, "registry.hub.docker.com") == 0) {
                free (host);
                return kiln_strdup (KILN_DOCKER_HUB_AUTH_KEY);
        }
        return host;
}
