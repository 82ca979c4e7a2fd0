/* kiln: WWW-Authenticate challenge parsing (RFC 7235 auth-params). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "kiln/auth.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"

#define HEADER_MAX 8192

static bool
is_tchar (char c)
{
        return isalnum ((unsigned char) c) || (c && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *
skip_ws (const char *p)
{
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

static const char *
skip_token (const char *p)
{
        while (is_tchar (*p))
                p++;
        return p;
}

/* Reads a token or a quoted-string at *pp into a new string. */
static int
read_value (char **out, const char **pp, kiln_error **err)
{
        const char *p = *pp;
        cleanup_buf kiln_buf b = KILN_BUF_INIT;

        kiln_buf_init (&b, HEADER_MAX);
        if (*p != '"') {
                const char *end = p;
                /* token68 values (base64 with '/' and '=') are tokens too. */
                while (is_tchar (*end) || *end == '/' || *end == '=')
                        end++;
                if (end == p)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "WWW-Authenticate: missing parameter value");
                if (kiln_buf_append (&b, p, (size_t) (end - p), err) < 0)
                        return -1;
                *pp = end;
                *out = kiln_buf_steal (&b, NULL);
                return 0;
        }
        for (p++; *p && *p != '"'; p++) {
                if (*p == '\\') {
                        p++;
                        if (*p == '\0')
                                break;
                }
                if (kiln_buf_append (&b, p, 1, err) < 0)
                        return -1;
        }
        if (*p != '"')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "WWW-Authenticate: unterminated quoted string");
        *pp = p + 1;
        *out = kiln_buf_steal (&b, NULL);
        return 0;
}

static void
take_param (kiln_auth_challenge *c, const char *name, size_t n, char **value)
{
        char **slot = NULL;

        if (n == 5 && strncasecmp (name, "realm", n) == 0)
                slot = &c->realm;
        else if (n == 7 && strncasecmp (name, "service", n) == 0)
                slot = &c->service;
        else if (n == 5 && strncasecmp (name, "scope", n) == 0)
                slot = &c->scope;
        else if (n == 5 && strncasecmp (name, "error", n) == 0)
                slot = &c->error;
        if (slot && *slot == NULL)
                *slot = steal_pointer (value);
}

/* Parses the parameters of one challenge, stopping before the next scheme
 * (a token not followed by '=') or at the end. */
static int
parse_params (kiln_auth_challenge *c, const char **pp, kiln_error **err)
{
        const char *p = *pp;

        for (;;) {
                const char *name, *name_end, *q;
                cleanup_free char *value = NULL;

                p = skip_ws (p);
                while (*p == ',' || *p == ' ' || *p == '\t')
                        p++;
                if (*p == '\0')
                        break;
                name = p;
                name_end = skip_token (p);
                if (name_end == name)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "WWW-Authenticate: unexpected character");
                q = skip_ws (name_end);
                if (*q != '=')
                        break; /* the next challenge's scheme */
                q = skip_ws (q + 1);
                if (read_value (&value, &q, err) < 0)
                        return -1;
                take_param (c, name, (size_t) (name_end - name), &value);
                p = skip_ws (q);
                if (*p && *p != ',')
                        return kiln_error_makec (
                            err, KILN_E_INVALID, 0,
                            "WWW-Authenticate: expected ',' between parameters");
        }
        *pp = p;
        return 0;
}

void
kiln_auth_challenge_clear (kiln_auth_challenge *c)
{
        free (c->realm);
        free (c->service);
        free (c->scope);
        free (c->error);
        memset (c, 0, sizeof (*c));
}

int
kiln_auth_challenge_parse (kiln_auth_challenge *out, const char *header, kiln_error **err)
{
        const char *p = header;

        memset (out, 0, sizeof (*out));
        if (strlen (header) > HEADER_MAX)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "WWW-Authenticate header longer than %d bytes",
                                         HEADER_MAX);
        for (;;) {
                kiln_auth_challenge c = { 0 };
                const char *scheme;
                size_t n;

                p = skip_ws (p);
                while (*p == ',' || *p == ' ' || *p == '\t')
                        p++;
                if (*p == '\0')
                        return 0;
                scheme = p;
                p = skip_token (p);
                n = (size_t) (p - scheme);
                if (n == 0) {
                        kiln_auth_challenge_clear (out);
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "WWW-Authenticate: expected a scheme");
                }
                if (n == 6 && strncasecmp (scheme, "bearer", n) == 0)
                        c.scheme = KILN_AUTH_BEARER;
                else if (n == 5 && strncasecmp (scheme, "basic", n) == 0)
                        c.scheme = KILN_AUTH_BASIC;
                if (parse_params (&c, &p, err) < 0) {
                        kiln_auth_challenge_clear (&c);
                        kiln_auth_challenge_clear (out);
                        return -1;
                }
                /* Bearer wins over Basic; the first of a kind wins. */
                if (c.scheme > out->scheme) {
                        kiln_auth_challenge_clear (out);
                        *out = c;
                } else {
                        kiln_auth_challenge_clear (&c);
                }
        }
}
