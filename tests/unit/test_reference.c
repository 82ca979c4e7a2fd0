/* Unit tests: image reference parsing, formatting and host rules. */
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/reference.h"
#include "unit.h"

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good {
        const char *in, *registry, *repository, *tag, *digest, *formatted;
};

static const struct good goods[] = {
        { "alpine", "docker.io", "library/alpine", NULL, "", "docker.io/library/alpine" },
        { "alpine:3.19", "docker.io", "library/alpine", "3.19", "", NULL },
        { "library/alpine", "docker.io", "library/alpine", NULL, "", NULL },
        { "docker.io/alpine", "docker.io", "library/alpine", NULL, "", NULL },
        { "index.docker.io/user/app:v1", "docker.io", "user/app", "v1", "",
          "docker.io/user/app:v1" },
        { "user/app", "docker.io", "user/app", NULL, "", NULL },
        { "localhost/app", "localhost", "app", NULL, "", NULL },
        { "localhost:5000/app:latest", "localhost:5000", "app", "latest", "", NULL },
        { "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000", "a/b/c", "t", "", NULL },
        { "[::1]:5000/app", "[::1]:5000", "app", NULL, "", NULL },
        { "[2001:db8::1]/app", "[2001:db8::1]", "app", NULL, "", NULL },
        { "ghcr.io/org/app@" D64, "ghcr.io", "org/app", NULL, D64, NULL },
        { "ghcr.io/org/app:v2@" D64, "ghcr.io", "org/app", "v2", D64, "ghcr.io/org/app:v2@" D64 },
        { "Registry.Example.COM/x", "Registry.Example.COM", "x", NULL, "", NULL },
        { "reg-1.example.com:443/a.b_c__d---e/f", "reg-1.example.com:443", "a.b_c__d---e/f", NULL,
          "", NULL },
        { "quay.io/a:_tag", "quay.io", "a", "_tag", "", NULL },
        { "quay.io/a:A.b-C_9", "quay.io", "a", "A.b-C_9", "", NULL },
        { "example.com/a0/1b", "example.com", "a0/1b", NULL, "", NULL },
        /* Upper case makes the first component a host, as in docker. */
        { "UPPER/app", "UPPER", "app", NULL, "", NULL },
        { "localhost:5000", "docker.io", "library/localhost", "5000", "", NULL },
};

static const char *const bads[] = {
        "",
        "Alpine",            /* upper-case repository */
        "docker.io/Alpine",  /* upper-case repository */
        "alpine:",           /* empty tag */
        "alpine:-x",         /* tag starts with '-' */
        "alpine:.x",         /* tag starts with '.' */
        "alpine:a+b",        /* '+' not allowed (ECR answers a bare 400) */
        "alpine@sha256:abc", /* short digest */
        "alpine@" D64 "0",   /* long digest */
        "alpine@SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "alpine@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "alpine@md5:0123456789abcdef0123456789abcdef",
        "example.com/",        /* empty path */
        "example.com//a",      /* empty component */
        "example.com/a/",      /* trailing slash */
        "example.com/-a",      /* component starts with a separator */
        "example.com/a-",      /* ends with a separator */
        "example.com/a..b",    /* two dots */
        "example.com/a___b",   /* three underscores */
        "example.com/a._b",    /* mixed separators */
        "example.com:0/a",     /* port 0 */
        "example.com:65536/a", /* port too big */
        "example.com:x/a",     /* port not a number */
        "-example.com/a",      /* host label starts with '-' */
        "example-.com/a",      /* host label ends with '-' */
        "exa_mple.com/a",      /* '_' in a host */
        "example..com/a",      /* empty host label */
        "[::1/a",              /* unterminated IPv6 */
        "[zz::1]/a",           /* bad IPv6 */
        "[]/a",                /* empty IPv6 */
        "a b",                 /* space */
        "a/b c",
        "a@b@c",
        "a:b:c",
        "example.com/a:b/c",
        "example.com/a\xc3\xa9",
};

static void
test_valid (void)
{
        for (size_t i = 0; i < KILN_N_ELEMENTS (goods); i++) {
                cleanup_error kiln_error *err = NULL;
                cleanup_reference kiln_reference *r = NULL;
                cleanup_free char *f = NULL;
                const struct good *g = &goods[i];

                if (kiln_reference_parse (&r, g->in, &err) < 0) {
                        fprintf (stderr, "  `%s`: %s\n", g->in, err->msg);
                        CHECK (!"parse failed");
                        continue;
                }
                CHECK_STR (r->registry, g->registry);
                CHECK_STR (r->repository, g->repository);
                if (g->tag)
                        CHECK_STR (r->tag, g->tag);
                else
                        CHECK (r->tag == NULL);
                CHECK_STR (r->digest, g->digest);
                f = kiln_reference_format (r);
                if (g->formatted)
                        CHECK_STR (f, g->formatted);
                /* What is formatted parses back to the same thing. */
                {
                        cleanup_reference kiln_reference *again = NULL;
                        cleanup_free char *f2 = NULL;
                        CHECK_OK (kiln_reference_parse (&again, f, &err));
                        if (again) {
                                f2 = kiln_reference_format (again);
                                CHECK_STR (f2, f);
                        }
                }
        }
}

static void
test_invalid (void)
{
        for (size_t i = 0; i < KILN_N_ELEMENTS (bads); i++) {
                cleanup_error kiln_error *err = NULL;
                kiln_reference *r = NULL;

                if (kiln_reference_parse (&r, bads[i], &err) == 0) {
                        fprintf (stderr, "  `%s` was accepted\n", bads[i]);
                        CHECK (!"accepted");
                        kiln_reference_free (r);
                        continue;
                }
                CHECK (err->code == KILN_E_INVALID);
                CHECK (strchr (err->msg, '\n') == NULL);
                if (bads[i][0])
                        CHECK (strstr (err->msg, "`") != NULL);
        }
}

static void
test_lengths (void)
{
        cleanup_error kiln_error *err = NULL;
        char name[400], tag[200];
        kiln_reference *r = NULL;
        size_t n;

        /* "example.com/" + path: exactly 255 is fine, 256 is not. */
        strcpy (name, "example.com/");
        n = strlen (name);
        memset (name + n, 'a', 255 - n);
        name[255] = '\0';
        CHECK_OK (kiln_reference_parse (&r, name, &err));
        kiln_reference_free (r);
        r = NULL;
        name[255] = 'a';
        name[256] = '\0';
        CHECK (kiln_reference_parse (&r, name, &err) < 0);
        CHECK (err && strstr (err->msg, "255"));
        kiln_error_free (err);
        err = NULL;

        memset (tag, 'x', 128);
        tag[128] = '\0';
        CHECK (kiln_reference_tag_valid (tag));
        tag[128] = 'x';
        tag[129] = '\0';
        CHECK (!kiln_reference_tag_valid (tag));
        CHECK (!kiln_reference_tag_valid (""));
}

static void
test_helpers (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_reference kiln_reference *r = NULL;
        cleanup_reference kiln_reference *w = NULL;
        cleanup_free char *f = NULL;
        cleanup_free char *n = NULL;

        CHECK_OK (kiln_reference_parse (&r, "alpine", &err));
        CHECK_STR (kiln_reference_identifier (r), "latest");
        CHECK_STR (kiln_reference_api_host (r), "registry-1.docker.io");
        w = kiln_reference_with (r, NULL, D64);
        CHECK_STR (kiln_reference_identifier (w), D64);
        f = kiln_reference_format (w);
        CHECK_STR (f, "docker.io/library/alpine@" D64);
        n = kiln_reference_name (w);
        CHECK_STR (n, "docker.io/library/alpine");
}

static void
test_loopback (void)
{
        CHECK (kiln_registry_host_is_loopback ("localhost"));
        CHECK (kiln_registry_host_is_loopback ("localhost:5000"));
        CHECK (kiln_registry_host_is_loopback ("127.0.0.1:5000"));
        CHECK (kiln_registry_host_is_loopback ("127.255.3.4"));
        CHECK (kiln_registry_host_is_loopback ("[::1]:5000"));
        CHECK (kiln_registry_host_is_loopback ("[::1]"));
        CHECK (!kiln_registry_host_is_loopback ("128.0.0.1:5000"));
        CHECK (!kiln_registry_host_is_loopback ("127.0.0.1.example.com"));
        CHECK (!kiln_registry_host_is_loopback ("localhost.example.com"));
        CHECK (!kiln_registry_host_is_loopback ("[::2]"));
        CHECK (!kiln_registry_host_is_loopback ("10.0.0.1"));
        CHECK (!kiln_registry_host_is_loopback (""));
        CHECK (!kiln_registry_host_is_loopback (NULL));
}

static void
test_auth_key (void)
{
        static const char *const in[][2] = {
                { "https://index.docker.io/v1/", KILN_DOCKER_HUB_AUTH_KEY },
                { "docker.io", KILN_DOCKER_HUB_AUTH_KEY },
                { "index.docker.io", KILN_DOCKER_HUB_AUTH_KEY },
                { "registry-1.docker.io", KILN_DOCKER_HUB_AUTH_KEY },
                { "https://ghcr.io", "ghcr.io" },
                { "http://127.0.0.1:5000/v2/", "127.0.0.1:5000" },
                { "quay.io/some/path", "quay.io" },
                { "reg.example.com:8443", "reg.example.com:8443" },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (in); i++) {
                cleanup_free char *k = kiln_registry_auth_key (in[i][0]);
                CHECK_STR (k, in[i][1]);
        }
}

int
main (void)
{
        RUN (test_valid);
        RUN (test_invalid);
        RUN (test_lengths);
        RUN (test_helpers);
        RUN (test_loopback);
        RUN (test_auth_key);
        UNIT_DONE ("test_reference");
}
