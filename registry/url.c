/* kiln: URL helpers for Location headers and query parameters. */
#include <ctype.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/registry.h"

/* Length of "scheme://authority" at the start of an absolute URL, or 0. */
static size_t
origin_len (const char *url)
{
        const char *p = strstr (url, "://");
        const char *s;

        if (p == NULL)
                return 0;
        for (s = url; s < p; s++)
                if (!isalnum ((unsigned char) *s) && *s != '+' && *s != '-' && *s != '.')
                        return 0;
        p += 3;
        return (size_t) (p - url) + strcspn (p, "/?#");
}

char *
kiln_url_host (const char *url)
{
        size_t n = origin_len (url);
        const char *host;
        const char *at;

        if (n == 0)
                return NULL;
        host = strstr (url, "://") + 3;
        /* Drop any userinfo. */
        at = memchr (host, '@', (size_t) (url + n - host));
        if (at)
                host = at + 1;
        return strndup (host, (size_t) (url + n - host));
}

char *
kiln_url_resolve (const char *base, const char *location)
{
        size_t o = origin_len (base);
        const char *path_end;

        if (origin_len (location) > 0)
                return kiln_strdup (location);
        if (o == 0)
                return kiln_strdup (location);
        if (location[0] == '/' && location[1] == '/') {
                const char *colon = strchr (base, ':');
                return kiln_strdup_printf ("%.*s:%s", (int) (colon - base), base, location);
        }
        if (location[0] == '/')
                return kiln_strdup_printf ("%.*s%s", (int) o, base, location);
        /* A relative path replaces the last segment of the base path. */
        path_end = base + o + strcspn (base + o, "?#");
        while (path_end > base + o && path_end[-1] != '/')
                path_end--;
        if (path_end == base + o)
                return kiln_strdup_printf ("%.*s/%s", (int) o, base, location);
        return kiln_strdup_printf ("%.*s%s", (int) (path_end - base), base, location);
}

static bool
unreserved (unsigned char c)
{
        return isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':';
}

char *
kiln_url_add_query (const char *url, const char *name, const char *value)
{
        size_t n = strcspn (url, "#");
        kiln_buf b = KILN_BUF_INIT;

        kiln_buf_append (&b, url, n, NULL);
        if (memchr (url, '?', n) == NULL)
                kiln_buf_puts (&b, "?", NULL);
        else if (n > 0 && url[n - 1] != '?' && url[n - 1] != '&')
                kiln_buf_puts (&b, "&", NULL);
        kiln_buf_printf (&b, NULL, "%s=", name);
        for (const unsigned char *p = (const unsigned char *) value; *p; p++) {
                if (unreserved (*p))
                        kiln_buf_append (&b, p, 1, NULL);
                else
                        kiln_buf_printf (&b, NULL, "%%%02X", *p);
        }
        return kiln_buf_steal (&b, NULL);
}
