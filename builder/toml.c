/* kiln: a TOML subset parser and emitter (see include/kiln/toml.h). */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/toml.h"

/* How a table or array came to be, for TOML's redefinition rules. */
enum {
        F_HEADER = 1 << 0,   /* a table defined by a `[header]` */
        F_IMPLICIT = 1 << 1, /* a table created as the parent in a header */
        F_DOTTED = 1 << 2,   /* a table created by a dotted key */
        F_INLINE = 1 << 3,   /* an inline table or one inside it: frozen */
        F_AOT = 1 << 4,      /* an array of tables made by `[[header]]` */
};

struct kiln_toml {
        kiln_toml_type type;
        unsigned flags;
        char *key;
        union {
                char *s;
                int64_t i;
                double f;
                bool b;
        } v;
        kiln_toml **items;
        size_t n, cap;
};

#define MAX_KEY_PARTS 32

typedef struct keypath {
        char *parts[MAX_KEY_PARTS];
        size_t n;
} keypath;

typedef struct parser {
        const char *p, *end;
        int line;
        int depth;
        kiln_toml *root, *cur;
        kiln_error **err;
} parser;

/* --- Nodes ----------------------------------------------------------- */

static kiln_toml *
node_new (kiln_toml_type type)
{
        kiln_toml *t = kiln_calloc (1, sizeof (*t));
        t->type = type;
        return t;
}

void
kiln_toml_free (kiln_toml *t)
{
        if (t == NULL)
                return;
        for (size_t i = 0; i < t->n; i++)
                kiln_toml_free (t->items[i]);
        free (t->items);
        if (t->type == KILN_TOML_STRING)
                free (t->v.s);
        free (t->key);
        free (t);
}

static void
keypath_clear (keypath *k)
{
        for (size_t i = 0; i < k->n; i++)
                free (k->parts[i]);
        k->n = 0;
}

static void
node_add (kiln_toml *parent, kiln_toml *child)
{
        if (parent->n == parent->cap) {
                parent->cap = parent->cap ? parent->cap * 2 : 4;
                parent->items
                    = kiln_reallocarray (parent->items, parent->cap, sizeof (kiln_toml *));
        }
        parent->items[parent->n++] = child;
}

static kiln_toml *
node_find (const kiln_toml *t, const char *key)
{
        if (t == NULL || t->type != KILN_TOML_TABLE)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                if (strcmp (t->items[i]->key, key) == 0)
                        return t->items[i];
        return NULL;
}

/* --- Errors and low-level scanning ----------------------------------- */

static int __attribute__ ((format (printf, 2, 3))) perr (parser *ps, const char *fmt, ...)
{
        va_list ap;
        char *msg = NULL;

        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0)
                abort ();
        va_end (ap);
        kiln_error_makec (ps->err, KILN_E_INVALID, 0, "line %d: %s", ps->line, msg);
        free (msg);
        return -1;
}

static int
peek (const parser *ps)
{
        return ps->p < ps->end ? (unsigned char) *ps->p : -1;
}

static bool
at (const parser *ps, const char *s)
{
        size_t n = strlen (s);
        return (size_t) (ps->end - ps->p) >= n && memcmp (ps->p, s, n) == 0;
}

static void
skip_ws (parser *ps)
{
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
                ps->p++;
}

/* A comment runs to the end of the line; control characters other than
 * tab are not allowed in it. */
static int
skip_comment (parser *ps)
{
        if (peek (ps) != '#')
                return 0;
        for (; ps->p < ps->end && *ps->p != '\n'; ps->p++) {
                unsigned char c = (unsigned char) *ps->p;
                if (c == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')
                        continue;
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return perr (ps, "control character in a comment");
        }
        return 0;
}

/* Consumes one newline (LF or CRLF); returns true if there was one. */
static bool
eat_newline (parser *ps)
{
        if (at (ps, "\n")) {
                ps->p++;
                ps->line++;
                return true;
        }
        if (at (ps, "\r\n")) {
                ps->p += 2;
                ps->line++;
                return true;
        }
        return false;
}

/* Whitespace, comments and newlines, as allowed inside arrays. */
static int
skip_ws_nl (parser *ps)
{
        for (;;) {
                skip_ws (ps);
                if (skip_comment (ps) < 0)
                        return -1;
                if (!eat_newline (ps))
                        return 0;
        }
}

static int
expect_eol (parser *ps)
{
        skip_ws (ps);
        if (skip_comment (ps) < 0)
                return -1;
        if (ps->p >= ps->end || eat_newline (ps))
                return 0;
        return perr (ps, "unexpected `%c` at the end of a line", *ps->p);
}

static bool
utf8_valid (const unsigned char *s, size_t len)
{
        size_t i = 0;
        while (i < len) {
                unsigned char c = s[i];
                size_t n;
                uint32_t cp;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0) {
                        n = 1;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 2;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if (len - i <= n)
                        return false;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
                    || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n + 1;
        }
        return true;
}

/* --- Strings --------------------------------------------------------- */

static void
put_utf8 (kiln_buf *b, uint32_t cp)
{
        char u[4];
        size_t n;

        if (cp < 0x80) {
                u[0] = (char) cp;
                n = 1;
        } else if (cp < 0x800) {
                u[0] = (char) (0xc0 | (cp >> 6));
                u[1] = (char) (0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                u[0] = (char) (0xe0 | (cp >> 12));
                u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                u[2] = (char) (0x80 | (cp & 0x3f));
                n = 3;
        } else {
                u[0] = (char) (0xf0 | (cp >> 18));
                u[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
                u[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
                u[3] = (char) (0x80 | (cp & 0x3f));
                n = 4;
        }
        /* The buffer is bounded by the input, which already fit. */
        kiln_buf_append (b, u, n, NULL);
}

static int
parse_escape (parser *ps, kiln_buf *b)
{
        int c;
        int digits = 0;
        uint32_t cp = 0;

        ps->p++; /* the backslash */
        c = peek (ps);
        if (c < 0)
                return perr (ps, "unterminated string");
        ps->p++;
        switch (c) {
        case 'b':
                put_utf8 (b, '\b');
                return 0;
        case 't':
                put_utf8 (b, '\t');
                return 0;
        case 'n':
                put_utf8 (b, '\n');
                return 0;
        case 'f':
                put_utf8 (b, '\f');
                return 0;
        case 'r':
                put_utf8 (b, '\r');
                return 0;
        case '"':
                put_utf8 (b, '"');
                return 0;
        case '\\':
                put_utf8 (b, '\\');
                return 0;
        case 'u':
                digits = 4;
                break;
        case 'U':
                digits = 8;
                break;
        default:
                return perr (ps, "invalid escape `\\%c` in a string",
                             c >= 0x20 && c < 0x7f ? c : '?');
        }
        for (int i = 0; i < digits; i++) {
                int h = peek (ps);
                int v;
                if (h >= '0' && h <= '9')
                        v = h - '0';
                else if (h >= 'a' && h <= 'f')
                        v = h - 'a' + 10;
                else if (h >= 'A' && h <= 'F')
                        v = h - 'A' + 10;
                else
                        return perr (ps, "`\\%c` needs %d hex digits", c, digits);
                cp = (cp << 4) | (uint32_t) v;
                ps->p++;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return perr (ps, "`\\%c` is not a Unicode scalar value", c);
        put_utf8 (b, cp);
        return 0;
}

static int
check_string_char (parser *ps, unsigned char c, bool multiline)
{
        if (c == '\t' || c >= 0x80 || (c >= 0x20 && c != 0x7f))
                return 0;
        if (multiline && (c == '\n' || c == '\r'))
                return 0;
        if (c == '\n' || c == '\r')
                return perr (ps, "newline in a single-line string");
        return perr (ps, "control character in a string");
}

/* The closing quotes of a multi-line string: up to two extra quotes before
 * the delimiter belong to the content. */
static int
multiline_close (parser *ps, kiln_buf *b, char q, bool *done)
{
        size_t n = 0;
        while (ps->p + n < ps->end && ps->p[n] == q)
                n++;
        *done = n >= 3;
        if (n > 5)
                return perr (ps, "too many quotes closing a string");
        if (*done) {
                kiln_buf_append (b, ps->p, n - 3, NULL);
                ps->p += n;
        } else {
                kiln_buf_append (b, ps->p, n, NULL);
                ps->p += n;
        }
        return 0;
}

/* A backslash at the end of a line in a multi-line basic string trims the
 * newline and all whitespace after it. */
static bool
line_ending_backslash (parser *ps)
{
        const char *q = ps->p + 1;
        while (q < ps->end && (*q == ' ' || *q == '\t'))
                q++;
        if (q < ps->end && (*q == '\n' || (*q == '\r' && q + 1 < ps->end && q[1] == '\n'))) {
                ps->p = q;
                while (ps->p < ps->end) {
                        if (eat_newline (ps))
                                continue;
                        if (*ps->p != ' ' && *ps->p != '\t')
                                break;
                        ps->p++;
                }
                return true;
        }
        return false;
}

static int
parse_string (parser *ps, char **out)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        char q = *ps->p;
        bool literal = q == '\'';
        bool multi = at (ps, literal ? "'''" : "\"\"\"");
        bool done = false;

        ps->p += multi ? 3 : 1;
        if (multi)
                eat_newline (ps);
        kiln_buf_reserve (&b, 16, NULL);
        b.data[0] = '\0';
        while (!done) {
                if (ps->p >= ps->end)
                        return perr (ps, "unterminated string");
                unsigned char c = (unsigned char) *ps->p;
                if (c == (unsigned char) q) {
                        if (!multi) {
                                ps->p++;
                                break;
                        }
                        if (multiline_close (ps, &b, q, &done) < 0)
                                return -1;
                        continue;
                }
                if (c == '\\' && !literal) {
                        if (multi && line_ending_backslash (ps))
                                continue;
                        if (parse_escape (ps, &b) < 0)
                                return -1;
                        continue;
                }
                if (check_string_char (ps, c, multi) < 0)
                        return -1;
                if (c == '\r' && !(ps->p + 1 < ps->end && ps->p[1] == '\n'))
                        return perr (ps, "bare carriage return in a string");
                if (c == '\n')
                        ps->line++;
                kiln_buf_append (&b, ps->p, 1, NULL);
                ps->p++;
        }
        *out = kiln_buf_steal (&b, NULL);
        return 0;
}

/* --- Keys ------------------------------------------------------------ */

static bool
is_bare (int c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
               || c == '_' || c == '-';
}

static int
parse_simple_key (parser *ps, char **out)
{
        const char *s = ps->p;
        int c = peek (ps);

        if (c == '"' || c == '\'') {
                if ((c == '"' && at (ps, "\"\"\"")) || (c == '\'' && at (ps, "'''")))
                        return perr (ps, "a key cannot be a multi-line string");
                return parse_string (ps, out);
        }
        while (ps->p < ps->end && is_bare ((unsigned char) *ps->p))
                ps->p++;
        if (ps->p == s) {
                if (c < 0 || c == '\n' || c == '\r')
                        return perr (ps, "expected a key");
                return perr (ps, "expected a key, not `%c`", c >= 0x20 && c < 0x7f ? c : '?');
        }
        *out = kiln_strdup_printf ("%.*s", (int) (ps->p - s), s);
        return 0;
}

static int
parse_key (parser *ps, keypath *k)
{
        for (;;) {
                skip_ws (ps);
                if (k->n == MAX_KEY_PARTS)
                        return perr (ps, "a dotted key of more than %d parts", MAX_KEY_PARTS);
                if (parse_simple_key (ps, &k->parts[k->n]) < 0)
                        return -1;
                k->n++;
                skip_ws (ps);
                if (peek (ps) != '.')
                        return 0;
                ps->p++;
        }
}

/* Renders a key path for messages; quoted parts are not re-quoted. */
static char *
keypath_str (const keypath *k, size_t n)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        for (size_t i = 0; i < n; i++)
                kiln_buf_printf (&b, NULL, "%s%s", i ? "." : "", k->parts[i]);
        return kiln_buf_steal (&b, NULL);
}

/* --- Values ---------------------------------------------------------- */

static int parse_value (parser *ps, kiln_toml **out);
static int set_dotted (parser *ps, kiln_toml *table, keypath *k, kiln_toml *value, bool inline_);

static bool
digits_ok (const char *s, size_t n, int base)
{
        bool prev_digit = false;
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool d;
                if (c == '_') {
                        if (!prev_digit || i + 1 == n)
                                return false;
                        prev_digit = false;
                        continue;
                }
                if (base == 16)
                        d = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                            || (c >= 'A' && c <= 'F');
                else
                        d = c >= '0' && c < '0' + (base < 10 ? base : 10);
                if (!d)
                        return false;
                prev_digit = true;
        }
        return true;
}

static void
strip_underscores (char *dst, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != '_')
                        *dst++ = s[i];
        *dst = '\0';
}

static int
make_int (parser *ps, const char *tok, size_t n, kiln_toml **out)
{
        char clean[96];
        int base = 10;
        size_t off = 0;
        long long v;
        char *end;

        if (n >= 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'o' || tok[1] == 'b')) {
                base = tok[1] == 'x' ? 16 : tok[1] == 'o' ? 8 : 2;
                off = 2;
        } else if (tok[0] == '+' || tok[0] == '-') {
                off = 1;
        }
        if (!digits_ok (tok + off, n - off, base))
                return perr (ps, "invalid value `%.*s`", (int) n, tok);
        if (base == 10 && tok[off] == '0' && n - off > 1)
                return perr (ps, "leading zero in `%.*s`", (int) n, tok);
        if (base == 10)
                off = 0;
        strip_underscores (clean, tok + off, n - off);
        errno = 0;
        v = strtoll (clean, &end, base);
        if (errno == ERANGE || *end != '\0')
                return perr (ps, "integer `%.*s` out of range", (int) n, tok);
        *out = node_new (KILN_TOML_INT);
        (*out)->v.i = v;
        return 0;
}

/* [sign] int ( . digits )? ( [eE] [sign] digits )?, one of them present. */
static bool
float_ok (const char *s, size_t n)
{
        size_t i = 0, start;
        bool frac = false, exp = false;

        if (i < n && (s[i] == '+' || s[i] == '-'))
                i++;
        start = i;
        while (i < n && s[i] != '.' && s[i] != 'e' && s[i] != 'E')
                i++;
        if (!digits_ok (s + start, i - start, 10) || (s[start] == '0' && i - start > 1))
                return false;
        if (i < n && s[i] == '.') {
                start = ++i;
                while (i < n && s[i] != 'e' && s[i] != 'E')
                        i++;
                if (!digits_ok (s + start, i - start, 10))
                        return false;
                frac = true;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                if (!digits_ok (s + i, n - i, 10))
                        return false;
                exp = true;
                i = n;
        }
        return i == n && (frac || exp);
}

static int
make_float (parser *ps, const char *tok, size_t n, kiln_toml **out)
{
        char clean[96];
        const char *t = tok;
        double v;

        if (*t == '+' || *t == '-')
                t++;
        if (n - (size_t) (t - tok) == 3 && memcmp (t, "inf", 3) == 0)
                v = INFINITY;
        else if (n - (size_t) (t - tok) == 3 && memcmp (t, "nan", 3) == 0)
                v = NAN;
        else if (!float_ok (tok, n))
                return perr (ps, "invalid value `%.*s`", (int) n, tok);
        else {
                strip_underscores (clean, tok, n);
                v = strtod (clean, NULL);
                *out = node_new (KILN_TOML_FLOAT);
                (*out)->v.f = v;
                return 0;
        }
        *out = node_new (KILN_TOML_FLOAT);
        (*out)->v.f = tok[0] == '-' ? -v : v;
        return 0;
}

static bool
looks_like_date (const char *tok, size_t n)
{
        bool digits4 = n >= 5 && tok[0] >= '0' && tok[0] <= '9' && tok[1] >= '0' && tok[1] <= '9'
                       && tok[2] >= '0' && tok[2] <= '9' && tok[3] >= '0' && tok[3] <= '9';
        bool time = n >= 3 && tok[0] >= '0' && tok[0] <= '9' && tok[1] >= '0' && tok[1] <= '9'
                    && tok[2] == ':';
        return (digits4 && tok[4] == '-') || time;
}

static int
parse_scalar (parser *ps, kiln_toml **out)
{
        const char *tok = ps->p;
        size_t n;

        while (ps->p < ps->end
               && (is_bare ((unsigned char) *ps->p) || *ps->p == '+' || *ps->p == '.'
                   || *ps->p == ':'))
                ps->p++;
        n = (size_t) (ps->p - tok);
        if (n == 0) {
                int c = peek (ps);
                if (c < 0 || c == '\n' || c == '\r')
                        return perr (ps, "expected a value");
                return perr (ps, "expected a value, not `%c`", c >= 0x20 && c < 0x7f ? c : '?');
        }
        if (n > 64)
                return perr (ps, "invalid value `%.*s...`", 32, tok);
        if (n == 4 && memcmp (tok, "true", 4) == 0) {
                *out = kiln_toml_new_bool (true);
                return 0;
        }
        if (n == 5 && memcmp (tok, "false", 5) == 0) {
                *out = kiln_toml_new_bool (false);
                return 0;
        }
        if (looks_like_date (tok, n)) {
                kiln_error_makec (ps->err, KILN_E_UNSUPPORTED, 0,
                                  "line %d: dates and times are not supported", ps->line);
                return -1;
        }
        if (memchr (tok, '.', n) || memchr (tok, 'n', n)
            || ((memchr (tok, 'e', n) || memchr (tok, 'E', n))
                && !(n > 1 && tok[0] == '0' && tok[1] == 'x')))
                return make_float (ps, tok, n, out);
        return make_int (ps, tok, n, out);
}

static int
parse_array (parser *ps, kiln_toml **out)
{
        cleanup_toml kiln_toml *arr = node_new (KILN_TOML_ARRAY);

        ps->p++; /* [ */
        for (;;) {
                kiln_toml *v = NULL;
                if (skip_ws_nl (ps) < 0)
                        return -1;
                if (peek (ps) == ']')
                        break;
                if (parse_value (ps, &v) < 0)
                        return -1;
                node_add (arr, v);
                if (skip_ws_nl (ps) < 0)
                        return -1;
                if (peek (ps) == ',') {
                        ps->p++;
                        continue;
                }
                if (peek (ps) == ']')
                        break;
                if (peek (ps) < 0)
                        return perr (ps, "unterminated array");
                return perr (ps, "expected `,` or `]` in an array");
        }
        ps->p++;
        *out = steal_pointer (&arr);
        return 0;
}

static void
freeze (kiln_toml *t)
{
        t->flags |= F_INLINE;
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i]->type == KILN_TOML_TABLE || t->items[i]->type == KILN_TOML_ARRAY)
                        freeze (t->items[i]);
}

static int
parse_inline_table (parser *ps, kiln_toml **out)
{
        cleanup_toml kiln_toml *tab = node_new (KILN_TOML_TABLE);

        ps->p++; /* { */
        skip_ws (ps);
        if (peek (ps) == '}') {
                ps->p++;
                freeze (tab);
                *out = steal_pointer (&tab);
                return 0;
        }
        for (;;) {
                keypath k = { .n = 0 };
                kiln_toml *v = NULL;
                int r;

                if (parse_key (ps, &k) < 0) {
                        keypath_clear (&k);
                        return -1;
                }
                if (peek (ps) != '=') {
                        keypath_clear (&k);
                        return perr (ps, "expected `=` after a key in an inline table");
                }
                ps->p++;
                skip_ws (ps);
                r = parse_value (ps, &v);
                if (r == 0)
                        r = set_dotted (ps, tab, &k, v, true);
                keypath_clear (&k);
                if (r < 0)
                        return -1;
                skip_ws (ps);
                if (peek (ps) == ',') {
                        ps->p++;
                        continue;
                }
                if (peek (ps) == '}')
                        break;
                return perr (ps, "expected `,` or `}` in an inline table");
        }
        ps->p++;
        freeze (tab);
        *out = steal_pointer (&tab);
        return 0;
}

static int
parse_value (parser *ps, kiln_toml **out)
{
        int c = peek (ps);
        int r;

        if (c == '"' || c == '\'') {
                char *s = NULL;
                if (parse_string (ps, &s) < 0)
                        return -1;
                *out = node_new (KILN_TOML_STRING);
                (*out)->v.s = s;
                return 0;
        }
        if (c != '[' && c != '{')
                return parse_scalar (ps, out);
        if (ps->depth >= KILN_TOML_MAX_DEPTH)
                return perr (ps, "values nested deeper than %d levels", KILN_TOML_MAX_DEPTH);
        ps->depth++;
        r = c == '[' ? parse_array (ps, out) : parse_inline_table (ps, out);
        ps->depth--;
        return r;
}

/* --- Tables and key/values ------------------------------------------- */

static int
attach (parser *ps, kiln_toml *table, const char *key, kiln_toml *child)
{
        if (table->n >= KILN_TOML_MAX_KEYS)
                return perr (ps, "more than %d keys in one table", KILN_TOML_MAX_KEYS);
        child->key = kiln_strdup (key);
        node_add (table, child);
        return 0;
}

/* Assigns value (owned) at the dotted key k below table; intermediate
 * tables are created, but not inside inline tables or header tables that
 * were already closed by TOML's rules. */
static int
set_dotted (parser *ps, kiln_toml *table, keypath *k, kiln_toml *value, bool inline_)
{
        kiln_toml *t = table;

        for (size_t i = 0; i + 1 < k->n; i++) {
                kiln_toml *next = node_find (t, k->parts[i]);
                if (next == NULL) {
                        next = node_new (KILN_TOML_TABLE);
                        next->flags = F_DOTTED;
                        if (attach (ps, t, k->parts[i], next) < 0) {
                                kiln_toml_free (next);
                                kiln_toml_free (value);
                                return -1;
                        }
                } else if (next->type != KILN_TOML_TABLE || (next->flags & (F_INLINE | F_HEADER))
                           || ((next->flags & F_IMPLICIT) && !inline_)) {
                        cleanup_free char *name = keypath_str (k, i + 1);
                        kiln_toml_free (value);
                        return perr (ps, "cannot add keys to `%s` with a dotted key", name);
                }
                t = next;
        }
        if (node_find (t, k->parts[k->n - 1])) {
                cleanup_free char *name = keypath_str (k, k->n);
                kiln_toml_free (value);
                return perr (ps, "duplicate key `%s`", name);
        }
        if (attach (ps, t, k->parts[k->n - 1], value) < 0) {
                kiln_toml_free (value);
                return -1;
        }
        return 0;
}

/* Walks the parents of a header: missing ones become implicit tables; an
 * array of tables leads into its last table. */
static int
header_parent (parser *ps, keypath *k, kiln_toml **out)
{
        kiln_toml *t = ps->root;

        for (size_t i = 0; i + 1 < k->n; i++) {
                kiln_toml *next = node_find (t, k->parts[i]);
                if (next == NULL) {
                        next = node_new (KILN_TOML_TABLE);
                        next->flags = F_IMPLICIT;
                        if (attach (ps, t, k->parts[i], next) < 0) {
                                kiln_toml_free (next);
                                return -1;
                        }
                } else if (next->type == KILN_TOML_ARRAY && (next->flags & F_AOT) && next->n > 0) {
                        next = next->items[next->n - 1];
                } else if (next->type != KILN_TOML_TABLE || (next->flags & F_INLINE)) {
                        cleanup_free char *name = keypath_str (k, i + 1);
                        return perr (ps, "`%s` is not a table", name);
                }
                t = next;
        }
        *out = t;
        return 0;
}

static int
open_table (parser *ps, keypath *k)
{
        kiln_toml *parent, *t;
        const char *last = k->parts[k->n - 1];

        if (header_parent (ps, k, &parent) < 0)
                return -1;
        t = node_find (parent, last);
        if (t == NULL) {
                t = node_new (KILN_TOML_TABLE);
                if (attach (ps, parent, last, t) < 0) {
                        kiln_toml_free (t);
                        return -1;
                }
        } else if (t->type != KILN_TOML_TABLE || (t->flags & (F_HEADER | F_DOTTED | F_INLINE))) {
                cleanup_free char *name = keypath_str (k, k->n);
                return perr (ps, "table `%s` defined twice", name);
        }
        t->flags = (t->flags & ~(unsigned) F_IMPLICIT) | F_HEADER;
        ps->cur = t;
        return 0;
}

static int
open_array_table (parser *ps, keypath *k)
{
        kiln_toml *parent, *arr, *t;
        const char *last = k->parts[k->n - 1];

        if (header_parent (ps, k, &parent) < 0)
                return -1;
        arr = node_find (parent, last);
        if (arr == NULL) {
                arr = node_new (KILN_TOML_ARRAY);
                arr->flags = F_AOT;
                if (attach (ps, parent, last, arr) < 0) {
                        kiln_toml_free (arr);
                        return -1;
                }
        } else if (arr->type != KILN_TOML_ARRAY || !(arr->flags & F_AOT)) {
                cleanup_free char *name = keypath_str (k, k->n);
                return perr (ps, "`%s` is not an array of tables", name);
        }
        t = node_new (KILN_TOML_TABLE);
        t->flags = F_HEADER;
        node_add (arr, t);
        ps->cur = t;
        return 0;
}

static int
parse_header (parser *ps)
{
        keypath k = { .n = 0 };
        bool array = at (ps, "[[");
        int r;

        ps->p += array ? 2 : 1;
        r = parse_key (ps, &k);
        if (r == 0 && !at (ps, array ? "]]" : "]"))
                r = perr (ps, "expected `%s` to close a table header", array ? "]]" : "]");
        if (r == 0) {
                ps->p += array ? 2 : 1;
                r = array ? open_array_table (ps, &k) : open_table (ps, &k);
        }
        keypath_clear (&k);
        return r;
}

static int
parse_keyval (parser *ps)
{
        keypath k = { .n = 0 };
        kiln_toml *v = NULL;
        int r;

        r = parse_key (ps, &k);
        if (r == 0 && peek (ps) != '=') {
                cleanup_free char *name = keypath_str (&k, k.n);
                r = perr (ps, "expected `=` after the key `%s`", name);
        }
        if (r == 0) {
                ps->p++;
                skip_ws (ps);
                r = parse_value (ps, &v);
        }
        if (r == 0) {
                if (v->type == KILN_TOML_TABLE || v->type == KILN_TOML_ARRAY)
                        freeze (v);
                r = set_dotted (ps, ps->cur, &k, v, false);
        }
        keypath_clear (&k);
        return r;
}

int
kiln_toml_parse (kiln_toml **out, const char *data, size_t len, size_t max, kiln_error **err)
{
        cleanup_toml kiln_toml *root = node_new (KILN_TOML_TABLE);
        parser ps
            = { .p = data, .end = data + len, .line = 1, .root = root, .cur = root, .err = err };

        if (max == 0)
                max = KILN_TOML_MAX_SIZE;
        if (len > max)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "TOML document of %zu bytes exceeds the limit of %zu", len,
                                         max);
        if (!utf8_valid ((const unsigned char *) data, len))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "TOML document is not valid UTF-8");
        if (len >= 3 && memcmp (data, "\xef\xbb\xbf", 3) == 0)
                ps.p += 3;
        while (ps.p < ps.end) {
                skip_ws (&ps);
                if (skip_comment (&ps) < 0)
                        return -1;
                if (eat_newline (&ps) || ps.p >= ps.end)
                        continue;
                if (peek (&ps) == '[') {
                        if (parse_header (&ps) < 0)
                                return -1;
                } else if (parse_keyval (&ps) < 0) {
                        return -1;
                }
                if (expect_eol (&ps) < 0)
                        return -1;
        }
        *out = steal_pointer (&root);
        return 0;
}

int
kiln_toml_parse_file (kiln_toml **out, const char *path, size_t max, kiln_error **err)
{
        cleanup_free char *data = NULL;
        size_t len = 0;

        if (max == 0)
                max = KILN_TOML_MAX_SIZE;
        if (kiln_read_file (&data, &len, path, max, err) < 0)
                return -1;
        if (kiln_toml_parse (out, data, len, max, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        return 0;
}

/* --- Reading --------------------------------------------------------- */

kiln_toml_type
kiln_toml_type_of (const kiln_toml *v)
{
        return v ? v->type : 0;
}

const char *
kiln_toml_type_name (kiln_toml_type type)
{
        switch (type) {
        case KILN_TOML_TABLE:
                return "table";
        case KILN_TOML_ARRAY:
                return "array";
        case KILN_TOML_STRING:
                return "string";
        case KILN_TOML_INT:
                return "integer";
        case KILN_TOML_FLOAT:
                return "float";
        case KILN_TOML_BOOL:
                return "boolean";
        }
        return "nothing";
}

const kiln_toml *
kiln_toml_member (const kiln_toml *t, const char *key)
{
        return node_find (t, key);
}

const kiln_toml *
kiln_toml_get (const kiln_toml *t, const char *path)
{
        const char *s = path;

        while (t && *s) {
                const char *dot = strchr (s, '.');
                size_t n = dot ? (size_t) (dot - s) : strlen (s);
                const kiln_toml *next = NULL;

                if (t->type != KILN_TOML_TABLE)
                        return NULL;
                for (size_t i = 0; i < t->n; i++)
                        if (strncmp (t->items[i]->key, s, n) == 0 && t->items[i]->key[n] == '\0') {
                                next = t->items[i];
                                break;
                        }
                t = next;
                s += n;
                if (*s == '.')
                        s++;
        }
        return t;
}

static const kiln_toml *
get_typed (const kiln_toml *t, const char *path, kiln_toml_type type)
{
        const kiln_toml *v = kiln_toml_get (t, path);
        return v && v->type == type ? v : NULL;
}

const char *
kiln_toml_get_string (const kiln_toml *t, const char *path)
{
        return kiln_toml_string (get_typed (t, path, KILN_TOML_STRING));
}

const kiln_toml *
kiln_toml_get_table (const kiln_toml *t, const char *path)
{
        return get_typed (t, path, KILN_TOML_TABLE);
}

const kiln_toml *
kiln_toml_get_array (const kiln_toml *t, const char *path)
{
        return get_typed (t, path, KILN_TOML_ARRAY);
}

bool
kiln_toml_get_bool (const kiln_toml *t, const char *path, bool dflt)
{
        const kiln_toml *v = get_typed (t, path, KILN_TOML_BOOL);
        return v ? v->v.b : dflt;
}

int64_t
kiln_toml_get_int (const kiln_toml *t, const char *path, int64_t dflt)
{
        const kiln_toml *v = get_typed (t, path, KILN_TOML_INT);
        return v ? v->v.i : dflt;
}

int
kiln_toml_expect (const kiln_toml **out, const kiln_toml *t, const char *path, kiln_toml_type type,
                  bool required, kiln_error **err)
{
        const kiln_toml *v = kiln_toml_get (t, path);

        *out = NULL;
        if (v == NULL && required)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "`%s` is required", path);
        if (v && v->type != type)
                return kiln_error_makec (
                    err, KILN_E_INVALID, 0, "`%s` must be a %s, not a%s %s", path,
                    kiln_toml_type_name (type),
                    v->type == KILN_TOML_ARRAY || v->type == KILN_TOML_INT ? "n" : "",
                    kiln_toml_type_name (v->type));
        *out = v;
        return 0;
}

size_t
kiln_toml_len (const kiln_toml *v)
{
        return v && (v->type == KILN_TOML_TABLE || v->type == KILN_TOML_ARRAY) ? v->n : 0;
}

const kiln_toml *
kiln_toml_at (const kiln_toml *v, size_t i)
{
        return i < kiln_toml_len (v) ? v->items[i] : NULL;
}

const char *
kiln_toml_key (const kiln_toml *v)
{
        return v ? v->key : NULL;
}

const char *
kiln_toml_string (const kiln_toml *v)
{
        return v && v->type == KILN_TOML_STRING ? v->v.s : NULL;
}

int64_t
kiln_toml_int (const kiln_toml *v)
{
        return v && v->type == KILN_TOML_INT ? v->v.i : 0;
}

double
kiln_toml_float (const kiln_toml *v)
{
        return v && v->type == KILN_TOML_FLOAT ? v->v.f : 0.0;
}

bool
kiln_toml_bool (const kiln_toml *v)
{
        return v && v->type == KILN_TOML_BOOL ? v->v.b : false;
}

char **
kiln_toml_strv (const kiln_toml *v)
{
        char **r;

        if (v == NULL || v->type != KILN_TOML_ARRAY)
                return NULL;
        for (size_t i = 0; i < v->n; i++)
                if (v->items[i]->type != KILN_TOML_STRING)
                        return NULL;
        r = kiln_calloc (v->n + 1, sizeof (char *));
        for (size_t i = 0; i < v->n; i++)
                r[i] = kiln_strdup (v->items[i]->v.s);
        return r;
}

/* --- Building -------------------------------------------------------- */

kiln_toml *
kiln_toml_new (kiln_toml_type type)
{
        kiln_toml *t = node_new (type);
        if (type == KILN_TOML_STRING)
                t->v.s = kiln_strdup ("");
        return t;
}

kiln_toml *
kiln_toml_new_string (const char *s)
{
        kiln_toml *t = node_new (KILN_TOML_STRING);
        t->v.s = kiln_strdup (s);
        return t;
}

kiln_toml *
kiln_toml_new_int (int64_t i)
{
        kiln_toml *t = node_new (KILN_TOML_INT);
        t->v.i = i;
        return t;
}

kiln_toml *
kiln_toml_new_bool (bool b)
{
        kiln_toml *t = node_new (KILN_TOML_BOOL);
        t->v.b = b;
        return t;
}

kiln_toml *
kiln_toml_dup (const kiln_toml *v)
{
        kiln_toml *c;

        if (v == NULL)
                return NULL;
        c = node_new (v->type);
        c->v = v->v;
        if (v->type == KILN_TOML_STRING)
                c->v.s = kiln_strdup (v->v.s);
        for (size_t i = 0; i < v->n; i++) {
                kiln_toml *item = kiln_toml_dup (v->items[i]);
                item->key = kiln_strdup (v->items[i]->key);
                node_add (c, item);
        }
        return c;
}

kiln_toml *
kiln_toml_set (kiln_toml *table, const char *key, kiln_toml *value)
{
        assert (table && table->type == KILN_TOML_TABLE);
        free (value->key);
        value->key = kiln_strdup (key);
        for (size_t i = 0; i < table->n; i++)
                if (strcmp (table->items[i]->key, key) == 0) {
                        kiln_toml_free (table->items[i]);
                        table->items[i] = value;
                        return value;
                }
        node_add (table, value);
        return value;
}

kiln_toml *
kiln_toml_push (kiln_toml *array, kiln_toml *value)
{
        assert (array && array->type == KILN_TOML_ARRAY);
        free (value->key);
        value->key = NULL;
        node_add (array, value);
        return value;
}

void
kiln_toml_set_string (kiln_toml *table, const char *key, const char *s)
{
        kiln_toml_set (table, key, kiln_toml_new_string (s));
}

void
kiln_toml_set_int (kiln_toml *table, const char *key, int64_t i)
{
        kiln_toml_set (table, key, kiln_toml_new_int (i));
}

void
kiln_toml_set_bool (kiln_toml *table, const char *key, bool b)
{
        kiln_toml_set (table, key, kiln_toml_new_bool (b));
}

kiln_toml *
kiln_toml_push_table (kiln_toml *table, const char *key)
{
        kiln_toml *arr = node_find (table, key);

        if (arr == NULL || arr->type != KILN_TOML_ARRAY)
                arr = kiln_toml_set (table, key, node_new (KILN_TOML_ARRAY));
        return kiln_toml_push (arr, node_new (KILN_TOML_TABLE));
}

/* --- Emitting -------------------------------------------------------- */

static bool
bare_key (const char *k)
{
        if (*k == '\0')
                return false;
        for (; *k; k++)
                if (!is_bare ((unsigned char) *k))
                        return false;
        return true;
}

static int
emit_string (kiln_buf *b, const char *s, kiln_error **err)
{
        if (kiln_buf_puts (b, "\"", err) < 0)
                return -1;
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                int r;
                if (c == '"' || c == '\\')
                        r = kiln_buf_printf (b, err, "\\%c", c);
                else if (c == '\n')
                        r = kiln_buf_puts (b, "\\n", err);
                else if (c == '\t')
                        r = kiln_buf_puts (b, "\\t", err);
                else if (c < 0x20 || c == 0x7f)
                        r = kiln_buf_printf (b, err, "\\u%04x", c);
                else
                        r = kiln_buf_append (b, s, 1, err);
                if (r < 0)
                        return -1;
        }
        return kiln_buf_puts (b, "\"", err);
}

static int
emit_key (kiln_buf *b, const char *k, kiln_error **err)
{
        return bare_key (k) ? kiln_buf_puts (b, k, err) : emit_string (b, k, err);
}

static int
emit_float (kiln_buf *b, double f, kiln_error **err)
{
        char tmp[64];

        if (isnan (f))
                return kiln_buf_puts (b, "nan", err);
        if (isinf (f))
                return kiln_buf_puts (b, f < 0 ? "-inf" : "inf", err);
        /* The shortest form that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
                snprintf (tmp, sizeof tmp, "%.*g", prec, f);
                if (strtod (tmp, NULL) == f)
                        break;
        }
        if (strpbrk (tmp, ".eEn") == NULL)
                return kiln_buf_printf (b, err, "%s.0", tmp);
        return kiln_buf_puts (b, tmp, err);
}

static int
emit_inline (kiln_buf *b, const kiln_toml *v, kiln_error **err)
{
        switch (v->type) {
        case KILN_TOML_STRING:
                return emit_string (b, v->v.s, err);
        case KILN_TOML_INT:
                return kiln_buf_printf (b, err, "%lld", (long long) v->v.i);
        case KILN_TOML_FLOAT:
                return emit_float (b, v->v.f, err);
        case KILN_TOML_BOOL:
                return kiln_buf_puts (b, v->v.b ? "true" : "false", err);
        case KILN_TOML_ARRAY:
        case KILN_TOML_TABLE:
                break;
        }
        bool table = v->type == KILN_TOML_TABLE;
        if (kiln_buf_puts (b, table ? "{" : "[", err) < 0)
                return -1;
        for (size_t i = 0; i < v->n; i++) {
                if (kiln_buf_puts (b, i ? ", " : (table ? " " : ""), err) < 0)
                        return -1;
                if (table
                    && (emit_key (b, v->items[i]->key, err) < 0
                        || kiln_buf_puts (b, " = ", err) < 0))
                        return -1;
                if (emit_inline (b, v->items[i], err) < 0)
                        return -1;
        }
        return kiln_buf_puts (b, table ? (v->n ? " }" : "}") : "]", err);
}

static bool
is_table_array (const kiln_toml *v)
{
        if (v->type != KILN_TOML_ARRAY || v->n == 0)
                return false;
        for (size_t i = 0; i < v->n; i++)
                if (v->items[i]->type != KILN_TOML_TABLE)
                        return false;
        return true;
}

static int emit_table (kiln_buf *b, const kiln_toml *t, kiln_buf *path, kiln_error **err);

static int
emit_section (kiln_buf *b, const kiln_toml *member, kiln_buf *path, bool array, kiln_error **err)
{
        size_t saved = path->len;
        int r = 0;

        if (path->len)
                r = kiln_buf_puts (path, ".", err);
        if (r == 0)
                r = emit_key (path, member->key, err);
        for (size_t i = 0; r == 0 && i < (array ? member->n : 1); i++) {
                const kiln_toml *sub = array ? member->items[i] : member;
                r = kiln_buf_printf (b, err, "%s%s%s%s\n", b->len ? "\n" : "", array ? "[[" : "[",
                                     path->data, array ? "]]" : "]");
                if (r == 0)
                        r = emit_table (b, sub, path, err);
        }
        path->len = saved;
        path->data[saved] = '\0';
        return r;
}

static int
emit_table (kiln_buf *b, const kiln_toml *t, kiln_buf *path, kiln_error **err)
{
        for (size_t i = 0; i < t->n; i++) {
                const kiln_toml *m = t->items[i];
                if (m->type == KILN_TOML_TABLE || is_table_array (m))
                        continue;
                if (emit_key (b, m->key, err) < 0 || kiln_buf_puts (b, " = ", err) < 0
                    || emit_inline (b, m, err) < 0 || kiln_buf_puts (b, "\n", err) < 0)
                        return -1;
        }
        for (size_t i = 0; i < t->n; i++)
                if (t->items[i]->type == KILN_TOML_TABLE
                    && emit_section (b, t->items[i], path, false, err) < 0)
                        return -1;
        for (size_t i = 0; i < t->n; i++)
                if (is_table_array (t->items[i])
                    && emit_section (b, t->items[i], path, true, err) < 0)
                        return -1;
        return 0;
}

int
kiln_toml_emit (kiln_buf *out, const kiln_toml *t, kiln_error **err)
{
        cleanup_buf kiln_buf path = KILN_BUF_INIT;

        if (t == NULL || t->type != KILN_TOML_TABLE)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "a TOML document must be a table");
        if (kiln_buf_reserve (&path, 64, err) < 0)
                return -1;
        path.data[0] = '\0';
        return emit_table (out, t, &path, err);
}

int
kiln_toml_write_file (const char *path, const kiln_toml *t, kiln_error **err)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;

        if (kiln_toml_emit (&b, t, err) < 0)
                return kiln_error_wrap (err, "write `%s`", path);
        return kiln_write_file (path, b.data ? b.data : "", b.len, 0644, err);
}
