/* Unit tests: Location resolution and query building for uploads. */
#include "kiln/cleanup.h"
#include "kiln/registry.h"
#include "unit.h"

static void
test_resolve (void)
{
        static const char *const cases[][3] = {
                { "http://127.0.0.1:5000/v2/a/blobs/uploads/",
                  "/v2/a/blobs/uploads/uuid?_state=xyz",
                  "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=xyz" },
                { "https://r.io/v2/a/blobs/uploads/?mount=x&from=y", "https://other.io/up/1?s=2",
                  "https://other.io/up/1?s=2" },
                { "https://r.io/v2/a/blobs/uploads/", "//cdn.r.io/up?x=1",
                  "https://cdn.r.io/up?x=1" },
                { "https://r.io/v2/a/blobs/uploads/", "uuid-1?_state=s",
                  "https://r.io/v2/a/blobs/uploads/uuid-1?_state=s" },
                { "https://r.io/v2/a/blobs/x?q=1", "y", "https://r.io/v2/a/blobs/y" },
                { "https://r.io", "v2/x", "https://r.io/v2/x" },
                { "https://r.io:8443/v2/", "/v2/z", "https://r.io:8443/v2/z" },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (cases); i++) {
                cleanup_free char *u = kiln_url_resolve (cases[i][0], cases[i][1]);
                CHECK_STR (u, cases[i][2]);
        }
}

static void
test_add_query (void)
{
        static const char *const cases[][2] = {
                { "http://r/v2/a/blobs/uploads/u",
                  "http://r/v2/a/blobs/uploads/u?digest=sha256:ab" },
                { "http://r/u?_state=x", "http://r/u?_state=x&digest=sha256:ab" },
                { "http://r/u?", "http://r/u?digest=sha256:ab" },
                { "http://r/u?a=1&", "http://r/u?a=1&digest=sha256:ab" },
                { "http://r/u#frag", "http://r/u?digest=sha256:ab" },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (cases); i++) {
                cleanup_free char *u = kiln_url_add_query (cases[i][0], "digest", "sha256:ab");
                CHECK_STR (u, cases[i][1]);
        }
        cleanup_free char *e
            = kiln_url_add_query ("https://a/t", "scope", "repository:x/y:pull,push");
        CHECK_STR (e, "https://a/t?scope=repository:x%2Fy:pull%2Cpush");
}

static void
test_host (void)
{
        cleanup_free char *a = kiln_url_host ("https://u:p@r.io:8443/v2/?x");
        cleanup_free char *b = kiln_url_host ("http://127.0.0.1:5000");
        cleanup_free char *c = kiln_url_host ("/relative");
        CHECK_STR (a, "r.io:8443");
        CHECK_STR (b, "127.0.0.1:5000");
        CHECK (c == NULL);
}

int
main (void)
{
        RUN (test_resolve);
        RUN (test_add_query);
        RUN (test_host);
        UNIT_DONE ("test_registry_url");
}
