/* kiln: platforms, descriptors and media types of the image model. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <time.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/image.h"

void
kiln_platform_free (kiln_platform *p)
{
        if (p == NULL)
                return;
        free (p->architecture);
        free (p->os);
        free (p->os_version);
        kiln_strv_free (p->os_features);
        free (p->variant);
        free (p);
}

kiln_platform *
kiln_platform_dup (const kiln_platform *p)
{
        kiln_platform *r;

        if (p == NULL)
                return NULL;
        r = kiln_calloc (1, sizeof (*r));
        r->architecture = kiln_strdup (p->architecture);
        r->os = kiln_strdup (p->os);
        r->os_version = kiln_strdup (p->os_version);
        r->os_features = kiln_strv_dup (p->os_features);
        r->variant = kiln_strdup (p->variant);
        return r;
}

void
kiln_descriptor_clear (kiln_descriptor *d)
{
        if (d == NULL)
                return;
        free (d->media_type);
        free (d->artifact_type);
        kiln_strv_free (d->urls);
        kiln_kvs_clear (&d->annotations);
        kiln_platform_free (d->platform);
        free (d->data);
        memset (d, 0, sizeof (*d));
}

void
kiln_descriptor_copy (kiln_descriptor *dst, const kiln_descriptor *src)
{
        kiln_descriptor d = { 0 };

        d.media_type = kiln_strdup (src->media_type);
        memcpy (d.digest, src->digest, sizeof d.digest);
        d.size = src->size;
        d.artifact_type = kiln_strdup (src->artifact_type);
        d.urls = kiln_strv_dup (src->urls);
        kiln_kvs_copy (&d.annotations, &src->annotations);
        d.platform = kiln_platform_dup (src->platform);
        d.data = kiln_strdup (src->data);
        /* src may alias dst. */
        kiln_descriptor_clear (dst);
        *dst = d;
}

/* Machine and distribution names for architectures, mapped to the GOARCH
 * names (and variants) that image indexes use. */
static const struct {
        const char *alias;
        const char *arch;
        const char *variant;
} arch_aliases[] = {
        { "x86_64", "amd64", NULL },    { "x86-64", "amd64", NULL },
        { "aarch64", "arm64", "v8" },   { "armv8l", "arm", "v8" },
        { "armv7l", "arm", "v7" },      { "armv7", "arm", "v7" },
        { "armhf", "arm", "v7" },       { "armv6l", "arm", "v6" },
        { "armel", "arm", "v6" },       { "armv5tel", "arm", "v5" },
        { "i386", "386", NULL },        { "i486", "386", NULL },
        { "i586", "386", NULL },        { "i686", "386", NULL },
        { "ppc64le", "ppc64le", NULL }, { "ppc64", "ppc64", NULL },
        { "s390x", "s390x", NULL },     { "riscv64", "riscv64", NULL },
        { "mips64", "mips64", NULL },   { "loongarch64", "loong64", NULL },
};

static void
set_arch (kiln_platform *p, const char *name, const char *variant)
{
        for (size_t i = 0; i < KILN_N_ELEMENTS (arch_aliases); i++) {
                if (strcmp (name, arch_aliases[i].alias) != 0)
                        continue;
                p->architecture = kiln_strdup (arch_aliases[i].arch);
                p->variant = kiln_strdup (variant ? variant : arch_aliases[i].variant);
                return;
        }
        p->architecture = kiln_strdup (name);
        p->variant = kiln_strdup (variant);
}

static bool
platform_component_ok (const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                      || c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

int
kiln_platform_parse (kiln_platform **out, const char *s, kiln_error **err)
{
        cleanup_free char *copy = kiln_strdup (s);
        char *parts[3] = { NULL, NULL, NULL };
        size_t n = 0;
        char *p = copy;
        kiln_platform *r;

        for (;;) {
                char *slash = strchr (p, '/');
                if (n == KILN_N_ELEMENTS (parts))
                        goto bad;
                parts[n++] = p;
                if (slash == NULL)
                        break;
                *slash = '\0';
                p = slash + 1;
        }
        if (n < 2)
                goto bad;
        for (size_t i = 0; i < n; i++)
                if (!platform_component_ok (parts[i], strlen (parts[i])))
                        goto bad;
        r = kiln_calloc (1, sizeof (*r));
        r->os = kiln_strdup (parts[0]);
        set_arch (r, parts[1], n == 3 ? parts[2] : NULL);
        *out = r;
        return 0;
bad:
        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                 "platform `%s`: expected os/architecture[/variant]", s);
}

kiln_platform *
kiln_platform_host (void)
{
        kiln_platform *p = kiln_calloc (1, sizeof (*p));
        struct utsname u;

        p->os = kiln_strdup ("linux");
        if (uname (&u) < 0) {
#if defined(__x86_64__)
                set_arch (p, "x86_64", NULL);
#elif defined(__aarch64__)
                set_arch (p, "aarch64", NULL);
#else
                set_arch (p, "unknown", NULL);
#endif
                return p;
        }
        set_arch (p, u.machine, NULL);
        return p;
}

/* The variant a platform means when it names none. */
static const char *
effective_variant (const kiln_platform *p)
{
        if (p->variant)
                return p->variant;
        if (strcmp (p->architecture, "arm64") == 0)
                return "v8";
        if (strcmp (p->architecture, "amd64") == 0)
                return "v1";
        return "";
}

bool
kiln_platform_match (const kiln_platform *want, const kiln_platform *have)
{
        if (want == NULL || have == NULL || want->os == NULL || have->os == NULL
            || want->architecture == NULL || have->architecture == NULL)
                return false;
        if (strcmp (want->os, have->os) != 0
            || strcmp (want->architecture, have->architecture) != 0)
                return false;
        if (want->variant == NULL)
                return true;
        return strcmp (effective_variant (want), effective_variant (have)) == 0;
}

/* Media types compare without parameters ("; charset=utf-8") or case. */
static bool
media_type_is (const char *media_type, const char *want)
{
        size_t n;

        if (media_type == NULL)
                return false;
        n = strcspn (media_type, ";");
        while (n > 0 && (media_type[n - 1] == ' ' || media_type[n - 1] == '\t'))
                n--;
        return n == strlen (want) && strncasecmp (media_type, want, n) == 0;
}

bool
kiln_media_type_is_manifest (const char *media_type)
{
        return media_type_is (media_type, KILN_MT_OCI_MANIFEST)
               || media_type_is (media_type, KILN_MT_DOCKER_MANIFEST);
}

bool
kiln_media_type_is_index (const char *media_type)
{
        return media_type_is (media_type, KILN_MT_OCI_INDEX)
               || media_type_is (media_type, KILN_MT_DOCKER_LIST);
}

void
kiln_time_rfc3339 (char out[32], int64_t epoch)
{
        /* gmtime_r covers far more, but RFC 3339 has four-digit years. */
        const int64_t last = 253402300799; /* 9999-12-31T23:59:59Z */
        time_t t = (time_t) (epoch < 0 ? 0 : epoch > last ? last : epoch);
        struct tm tm;

        if (gmtime_r (&t, &tm) == NULL || strftime (out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                kiln_strlcpy (out, "1970-01-01T00:00:00Z", 32);
}
