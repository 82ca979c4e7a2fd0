/* kiln: stack files, a small YAML subset (see docs/stacks.md).
 *
 * What is read: `#` comments and blank lines, an optional leading `---`,
 * top-level `KEY: VALUE` lines whose value is a scalar, or nothing and
 * then an indented block that is either a list (`- VALUE` lines) or a map
 * (`KEY: VALUE` lines), or a flow list `[a, b]` (or `[]`, `{}`).  Scalars
 * are plain (to the end of the line or a ` #` comment), 'single-quoted'
 * ('' is a quote) or "double-quoted" (\\ \" \/ \n \t \r \uXXXX).  The
 * rest of YAML (deeper nesting, anchors, tags, block scalars, flow maps,
 * several documents) is refused with a message naming the line, rather
 * than misread. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/runbase.h"
#include "kiln/stack.h"

typedef enum { Y_NULL = 0, Y_SCALAR, Y_LIST, Y_MAP } ytype;

typedef struct yitem {
        char *key; /* NULL in a list */
        char *value;
        int line;
} yitem;

typedef struct ytop {
        char *key;
        int line;
        ytype type;
        char *scalar;
        yitem *items;
        size_t n;
} ytop;

typedef struct yline {
        const char *text; /* without the newline (and a trailing CR) */
        size_t len;
        int no;
} yline;

typedef struct parser {
        const char *path;
        yline *lines;
        size_t n_lines;
        ytop *top;
        size_t n_top;
        kiln_error **err;
} parser;

__attribute__ ((format (printf, 3, 4))) static int
fail (parser *ps, int line, const char *fmt, ...)
{
        cleanup_free char *msg = NULL;
        va_list ap;

        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0)
                abort ();
        va_end (ap);
        if (line > 0)
                return kiln_error_makec (ps->err, KILN_E_INVALID, 0, "`%s`: line %d: %s", ps->path,
                                         line, msg);
        return kiln_error_makec (ps->err, KILN_E_INVALID, 0, "`%s`: %s", ps->path, msg);
}

static void
parser_clear (parser *ps)
{
        for (size_t i = 0; i < ps->n_top; i++) {
                free (ps->top[i].key);
                free (ps->top[i].scalar);
                for (size_t j = 0; j < ps->top[i].n; j++) {
                        free (ps->top[i].items[j].key);
                        free (ps->top[i].items[j].value);
                }
                free (ps->top[i].items);
        }
        free (ps->top);
        free (ps->lines);
}

/* Accepts well-formed UTF-8 without NUL or control characters but tab. */
static int
check_text (parser *ps, const char *data, size_t len)
{
        int line = 1;

        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char) data[i];
                size_t n = c < 0x80             ? 1
                           : (c & 0xe0) == 0xc0 ? 2
                           : (c & 0xf0) == 0xe0 ? 3
                           : (c & 0xf8) == 0xf0 ? 4
                                                : 0;

                if (c == '\n')
                        line++;
                if (n == 0 || i + n > len || (c < 0x20 && c != '\n' && c != '\t' && c != '\r')
                    || c == 0x7f)
                        return fail (ps, line, "not UTF-8 text, or a control character");
                for (size_t k = 1; k < n; k++)
                        if (((unsigned char) data[i + k] & 0xc0) != 0x80)
                                return fail (ps, line, "not UTF-8 text");
                i += n;
        }
        return 0;
}

static void
split_lines (parser *ps, const char *data, size_t len)
{
        size_t cap = 64;
        const char *p = data, *end = data + len;
        int no = 1;

        ps->lines = kiln_calloc (cap, sizeof (yline));
        while (p < end) {
                const char *nl = memchr (p, '\n', (size_t) (end - p));
                const char *stop = nl ? nl : end;
                yline *l;

                if (ps->n_lines == cap) {
                        cap *= 2;
                        ps->lines = kiln_reallocarray (ps->lines, cap, sizeof (yline));
                }
                l = &ps->lines[ps->n_lines++];
                l->text = p;
                l->len = (size_t) (stop - p);
                if (l->len > 0 && l->text[l->len - 1] == '\r')
                        l->len--;
                l->no = no++;
                p = nl ? nl + 1 : end;
        }
}

/* Leading spaces; -1 when a tab is part of the indentation. */
static int
indent_of (const yline *l)
{
        size_t i = 0;

        while (i < l->len && l->text[i] == ' ')
                i++;
        if (i < l->len && l->text[i] == '\t')
                return -1;
        return (int) i;
}

static bool
is_blank (const yline *l)
{
        size_t i = 0;

        while (i < l->len && (l->text[i] == ' ' || l->text[i] == '\t'))
                i++;
        return i == l->len || l->text[i] == '#';
}

/* After a quoted scalar or a flow list: spaces, then an optional comment. */
static int
expect_end (parser *ps, int line, const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        if (p < end && *p != '#')
                return fail (ps, line, "unexpected text after the value: `%.*s`", (int) (end - p),
                             p);
        return 0;
}

static void
put_utf8 (kiln_buf *b, unsigned cp)
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
        } else {
                u[0] = (char) (0xe0 | (cp >> 12));
                u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                u[2] = (char) (0x80 | (cp & 0x3f));
                n = 3;
        }
        kiln_buf_append (b, u, n, NULL);
}

static int
double_escape (parser *ps, int line, const char **pp, const char *end, kiln_buf *b)
{
        const char *p = *pp;
        unsigned cp = 0;

        if (p >= end)
                return fail (ps, line, "unterminated double-quoted string");
        switch (*p) {
        case '\\':
        case '"':
        case '/':
                kiln_buf_append (b, p, 1, NULL);
                break;
        case 'n':
                kiln_buf_puts (b, "\n", NULL);
                break;
        case 't':
                kiln_buf_puts (b, "\t", NULL);
                break;
        case 'r':
                kiln_buf_puts (b, "\r", NULL);
                break;
        case 'u':
                if (end - p < 5)
                        return fail (ps, line, "`\\u` wants four hex digits");
                for (int i = 1; i <= 4; i++) {
                        if (!isxdigit ((unsigned char) p[i]))
                                return fail (ps, line, "`\\u` wants four hex digits");
                        cp = cp * 16
                             + (unsigned) (isdigit ((unsigned char) p[i])
                                               ? p[i] - '0'
                                               : (tolower ((unsigned char) p[i]) - 'a' + 10));
                }
                if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
                        return fail (ps, line, "`\\u%04x` is not a character kiln accepts", cp);
                put_utf8 (b, cp);
                p += 4;
                break;
        default:
                return fail (ps, line, "unknown escape `\\%c`", *p);
        }
        *pp = p + 1;
        return 0;
}

/* A quoted scalar starting at *pp (on the quote); *pp is left after the
 * closing quote. */
static int
quoted (parser *ps, int line, const char **pp, const char *end, char **out)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        const char *p = *pp;
        char q = *p++;

        for (;;) {
                if (p >= end)
                        return fail (ps, line, "unterminated %s-quoted string",
                                     q == '"' ? "double" : "single");
                if (*p == q) {
                        if (q == '\'' && p + 1 < end && p[1] == '\'') {
                                kiln_buf_append (&b, p, 1, NULL);
                                p += 2;
                                continue;
                        }
                        p++;
                        break;
                }
                if (q == '"' && *p == '\\') {
                        p++;
                        if (double_escape (ps, line, &p, end, &b) < 0)
                                return -1;
                        continue;
                }
                kiln_buf_append (&b, p, 1, NULL);
                p++;
        }
        *pp = p;
        *out = kiln_buf_steal (&b, NULL);
        return 0;
}

/* A plain scalar: to the end or a " #" comment, trimmed. */
static int
plain (parser *ps, int line, const char *p, const char *end, char **out)
{
        const char *stop = p;

        switch (*p) {
        case '&':
        case '*':
                return fail (ps, line, "anchors and aliases are not supported");
        case '!':
                return fail (ps, line, "tags are not supported");
        case '|':
        case '>':
                return fail (ps, line, "block scalars (`|`, `>`) are not supported");
        case '{':
                return fail (ps, line, "flow mappings are not supported: one `KEY: VALUE` a line");
        case '[':
                return fail (ps, line, "a list cannot be nested here");
        case '%':
        case '@':
        case '`':
        case ']':
        case '}':
        case ',':
                return fail (ps, line, "a value cannot start with `%c` unless quoted", *p);
        default:
                break;
        }
        while (stop < end && !(*stop == '#' && stop > p && (stop[-1] == ' ' || stop[-1] == '\t')))
                stop++;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
        for (const char *c = p; c < stop; c++)
                if (*c == ':' && (c + 1 == stop || c[1] == ' ' || c[1] == '\t'))
                        return fail (ps, line, "`:` followed by a space in a value: quote it");
        if ((*p == '-' || *p == '?' || *p == ':') && (p + 1 == stop || p[1] == ' '))
                return fail (ps, line, "a value cannot start with `%c ` unless quoted", *p);
        *out = strndup (p, (size_t) (stop - p));
        return 0;
}

static int
scalar (parser *ps, int line, const char *p, const char *end, char **out)
{
        if (*p == '"' || *p == '\'') {
                if (quoted (ps, line, &p, end, out) < 0)
                        return -1;
                if (expect_end (ps, line, p, end) < 0) {
                        free (steal_pointer (out));
                        return -1;
                }
                return 0;
        }
        return plain (ps, line, p, end, out);
}

static void
add_item (ytop *t, char *key, char *value, int line)
{
        t->items = kiln_reallocarray (t->items, t->n + 1, sizeof (yitem));
        t->items[t->n].key = key;
        t->items[t->n].value = value;
        t->items[t->n].line = line;
        t->n++;
}

/* The first of `set` in [p, end), or end. */
static const char *
strcspn_n (const char *p, const char *end, const char *set)
{
        while (p < end && strchr (set, *p) == NULL)
                p++;
        return p;
}

/* "[a, 'b', "c"]" */
static int
flow_list (parser *ps, ytop *t, int line, const char *p, const char *end)
{
        p++;
        t->type = Y_LIST;
        for (;;) {
                char *v = NULL;
                const char *stop;

                while (p < end && (*p == ' ' || *p == '\t'))
                        p++;
                if (p < end && *p == ']' && t->n == 0)
                        return expect_end (ps, line, p + 1, end);
                if (p >= end)
                        return fail (ps, line, "unterminated `[`");
                if (*p == '"' || *p == '\'') {
                        if (quoted (ps, line, &p, end, &v) < 0)
                                return -1;
                } else {
                        stop = p;
                        while (stop < end && *stop != ',' && *stop != ']')
                                stop++;
                        if (strcspn_n (p, stop, "#[{") < stop)
                                return fail (ps, line, "only scalars can be in a flow list");
                        if (plain (ps, line, p, stop, &v) < 0)
                                return -1;
                        p = stop;
                }
                add_item (t, NULL, v, line);
                while (p < end && (*p == ' ' || *p == '\t'))
                        p++;
                if (p < end && *p == ',') {
                        p++;
                        continue;
                }
                if (p < end && *p == ']')
                        return expect_end (ps, line, p + 1, end);
                return fail (ps, line, "expected `,` or `]` in a flow list");
        }
}

/* "KEY:" and the position after the colon.  Keys are plain words. */
static int
key_of (parser *ps, const yline *l, size_t from, char **key, const char **rest)
{
        const char *p = l->text + from, *end = l->text + l->len;
        const char *k = p;

        while (p < end && (isalnum ((unsigned char) *p) || *p == '_' || *p == '-' || *p == '.'))
                p++;
        if (p == k || p >= end || *p != ':' || (p + 1 < end && p[1] != ' ' && p[1] != '\t'))
                return fail (ps, l->no, "expected `KEY: VALUE`, got `%.*s`", (int) (end - k), k);
        *key = strndup (k, (size_t) (p - k));
        *rest = p + 1;
        return 0;
}

static const char *
skip_spaces (const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        return p;
}

/* One line of an indented block under t. */
static int
block_line (parser *ps, ytop *t, const yline *l, int indent)
{
        const char *p = l->text + indent, *end = l->text + l->len;
        char *v = NULL;

        if (*p == '-' && (p + 1 == end || p[1] == ' ' || p[1] == '\t')) {
                if (t->type == Y_MAP)
                        return fail (ps, l->no, "a list item in the map `%s`", t->key);
                t->type = Y_LIST;
                p = skip_spaces (p + 1, end);
                if (p == end || *p == '#')
                        return fail (ps, l->no, "an empty list item");
                if (*p == '-' && (p + 1 == end || p[1] == ' '))
                        return fail (ps, l->no, "nested lists are not supported");
                if (scalar (ps, l->no, p, end, &v) < 0)
                        return -1;
                add_item (t, NULL, v, l->no);
                return 0;
        }
        if (t->type == Y_LIST)
                return fail (ps, l->no, "expected a `- ` list item in `%s`", t->key);
        t->type = Y_MAP;
        {
                cleanup_free char *key = NULL;
                const char *rest;

                if (key_of (ps, l, (size_t) indent, &key, &rest) < 0)
                        return -1;
                rest = skip_spaces (rest, end);
                if (rest == end || *rest == '#')
                        return fail (ps, l->no,
                                     "`%s.%s` has no value (deeper nesting is not "
                                     "supported)",
                                     t->key, key);
                for (size_t i = 0; i < t->n; i++)
                        if (strcmp (t->items[i].key, key) == 0)
                                return fail (ps, l->no, "`%s.%s` is given twice (first on line %d)",
                                             t->key, key, t->items[i].line);
                if (scalar (ps, l->no, rest, end, &v) < 0)
                        return -1;
                add_item (t, steal_pointer (&key), v, l->no);
        }
        return 0;
}

/* The indented lines after lines[*i]; *i is left on the last one read. */
static int
block (parser *ps, ytop *t, size_t *i)
{
        int want = -1;

        while (*i + 1 < ps->n_lines) {
                const yline *l = &ps->lines[*i + 1];
                int indent;

                if (is_blank (l)) {
                        (*i)++;
                        continue;
                }
                indent = indent_of (l);
                if (indent < 0)
                        return fail (ps, l->no,
                                     "a tab in the indentation (YAML indents with "
                                     "spaces)");
                if (indent == 0)
                        break;
                if (want < 0)
                        want = indent;
                else if (indent != want)
                        return fail (ps, l->no,
                                     indent > want ? "deeper nesting is not supported"
                                                   : "the indentation does not match the lines "
                                                     "above");
                if (block_line (ps, t, l, indent) < 0)
                        return -1;
                (*i)++;
        }
        return 0;
}

static int
top_line (parser *ps, size_t *i)
{
        const yline *l = &ps->lines[*i];
        const char *end = l->text + l->len, *rest;
        cleanup_free char *key = NULL;
        ytop *t;

        if (key_of (ps, l, 0, &key, &rest) < 0)
                return -1;
        for (size_t k = 0; k < ps->n_top; k++)
                if (strcmp (ps->top[k].key, key) == 0)
                        return fail (ps, l->no, "`%s` is given twice (first on line %d)", key,
                                     ps->top[k].line);
        ps->top = kiln_reallocarray (ps->top, ps->n_top + 1, sizeof (ytop));
        t = &ps->top[ps->n_top++];
        memset (t, 0, sizeof (*t));
        t->key = steal_pointer (&key);
        t->line = l->no;
        rest = skip_spaces (rest, end);
        if (rest < end && *rest != '#') {
                if (*rest == '[')
                        return flow_list (ps, t, l->no, rest, end);
                if (*rest == '{') {
                        const char *q = skip_spaces (rest + 1, end);
                        if (q == end || *q != '}')
                                return fail (ps, l->no,
                                             "flow mappings are not supported: one "
                                             "`KEY: VALUE` a line");
                        t->type = Y_MAP;
                        return expect_end (ps, l->no, q + 1, end);
                }
                t->type = Y_SCALAR;
                return scalar (ps, l->no, rest, end, &t->scalar);
        }
        return block (ps, t, i);
}

static int
parse_yaml (parser *ps, const char *data, size_t len)
{
        bool started = false;

        if (check_text (ps, data, len) < 0)
                return -1;
        split_lines (ps, data, len);
        for (size_t i = 0; i < ps->n_lines; i++) {
                const yline *l = &ps->lines[i];
                int indent;

                if (is_blank (l))
                        continue;
                if (l->len >= 3 && memcmp (l->text, "---", 3) == 0
                    && (l->len == 3 || l->text[3] == ' ')) {
                        if (started)
                                return fail (ps, l->no, "only one YAML document is read");
                        started = true;
                        continue;
                }
                started = true;
                indent = indent_of (l);
                if (indent < 0)
                        return fail (ps, l->no,
                                     "a tab in the indentation (YAML indents with "
                                     "spaces)");
                if (indent > 0)
                        return fail (ps, l->no, "unexpected indentation");
                if (top_line (ps, &i) < 0)
                        return -1;
        }
        return 0;
}

/* ---- from the parsed document to a kiln_stack ---- */

static const char *
type_name (ytype t)
{
        switch (t) {
        case Y_SCALAR:
                return "a value";
        case Y_LIST:
                return "a list";
        case Y_MAP:
                return "a map";
        default:
                return "empty";
        }
}

static int
want_type (parser *ps, const ytop *t, ytype want)
{
        if (t->type == want)
                return 0;
        return fail (ps, t->line, "`%s` must be %s, not %s", t->key, type_name (want),
                     type_name (t->type));
}

static bool
word_ok (const char *s, const char *first, const char *rest)
{
        if (*s == '\0' || strchr (first, *s) == NULL)
                return false;
        for (s++; *s; s++)
                if (strchr (rest, *s) == NULL)
                        return false;
        return true;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define DIGITS "0123456789"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

/* "name" or "name=version", as apt takes them. */
static bool
package_ok (const char *s)
{
        const char *eq = strchr (s, '=');
        cleanup_free char *name = eq ? strndup (s, (size_t) (eq - s)) : kiln_strdup (s);

        if (strlen (name) < 2 || !word_ok (name, LOWER DIGITS, LOWER DIGITS "+.-"))
                return false;
        return eq == NULL || word_ok (eq + 1, DIGITS, LOWER UPPER DIGITS ".+~:-");
}

static int
strv_field (parser *ps, const ytop *t, char ***out, bool packages)
{
        if (want_type (ps, t, Y_LIST) < 0)
                return -1;
        if (t->n > KILN_STACK_MAX_PACKAGES)
                return fail (ps, t->line, "more than %d entries in `%s`", KILN_STACK_MAX_PACKAGES,
                             t->key);
        *out = kiln_strv_new ();
        for (size_t i = 0; i < t->n; i++) {
                const char *v = t->items[i].value;
                if (packages ? !package_ok (v) : !package_ok (v) || strchr (v, '='))
                        return fail (ps, t->items[i].line, "`%s` is not a Debian package name%s", v,
                                     packages ? " (or NAME=VERSION)" : "");
                if (kiln_strv_contains (*out, v))
                        return fail (ps, t->items[i].line, "`%s` is listed twice in `%s`", v,
                                     t->key);
                *out = kiln_strv_append (*out, v);
        }
        return 0;
}

static int
id_field (parser *ps, int line, const char *v, int64_t *out, const char *what)
{
        if (kiln_parse_int64 (v, 1, 2147483646, out) < 0)
                return fail (ps, line,
                             "`%s` must be a number from 1 to 2147483646 (a stack runs "
                             "as a non-root user), not `%s`",
                             what, v);
        return 0;
}

static bool
path_ok (const char *p)
{
        return p[0] == '/' && strstr (p, "/../") == NULL && !kiln_str_has_suffix (p, "/..")
               && strchr (p, '\n') == NULL && strcmp (p, "/") != 0;
}

static bool mirror_ok (const char *m);

/* "URI SUITE [COMPONENT...]" */
static bool
source_ok (const char *v)
{
        cleanup_free char *copy = kiln_strdup (v);
        char *words[16];
        size_t n = 0;

        for (char *p = copy; *p && n < KILN_N_ELEMENTS (words);) {
                p += strspn (p, " ");
                if (*p == '\0')
                        break;
                words[n++] = p;
                p += strcspn (p, " ");
                if (*p)
                        *p++ = '\0';
        }
        if (n < 2 || n == KILN_N_ELEMENTS (words) || !mirror_ok (words[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!word_ok (words[i], LOWER DIGITS, LOWER DIGITS "._/-"))
                        return false;
        return true;
}

static int
sources_field (parser *ps, const ytop *t, kiln_stack *s)
{
        if (want_type (ps, t, Y_LIST) < 0)
                return -1;
        s->sources = kiln_strv_new ();
        for (size_t i = 0; i < t->n; i++) {
                if (!source_ok (t->items[i].value))
                        return fail (ps, t->items[i].line,
                                     "`%s`: a source is `URI SUITE [COMPONENT...]`",
                                     t->items[i].value);
                s->sources = kiln_strv_append (s->sources, t->items[i].value);
        }
        return 0;
}

static int
remove_field (parser *ps, const ytop *t, kiln_stack *s)
{
        if (want_type (ps, t, Y_LIST) < 0)
                return -1;
        s->remove = kiln_strv_new ();
        for (size_t i = 0; i < t->n; i++) {
                const char *v = t->items[i].value;
                if (!path_ok (v) || strstr (v, "/./") || strstr (v, "//"))
                        return fail (ps, t->items[i].line,
                                     "`%s`: `remove` takes absolute paths (or glob patterns) "
                                     "without `.` or `..`",
                                     v);
                s->remove = kiln_strv_append (s->remove, v);
        }
        return 0;
}

static int
user_field (parser *ps, const ytop *t, kiln_stack *s)
{
        bool gid_set = false;

        if (t->type == Y_SCALAR) {
                free (s->user);
                s->user = kiln_strdup (t->scalar);
        } else if (want_type (ps, t, Y_MAP) < 0) {
                return -1;
        }
        for (size_t i = 0; i < t->n; i++) {
                const yitem *it = &t->items[i];
                if (strcmp (it->key, "name") == 0) {
                        free (s->user);
                        s->user = kiln_strdup (it->value);
                } else if (strcmp (it->key, "uid") == 0) {
                        if (id_field (ps, it->line, it->value, &s->uid, "user.uid") < 0)
                                return -1;
                } else if (strcmp (it->key, "gid") == 0) {
                        if (id_field (ps, it->line, it->value, &s->gid, "user.gid") < 0)
                                return -1;
                        gid_set = true;
                } else if (strcmp (it->key, "home") == 0) {
                        if (!path_ok (it->value))
                                return fail (ps, it->line, "`user.home` must be an absolute path");
                        free (s->home);
                        s->home = kiln_strdup (it->value);
                } else {
                        return fail (ps, it->line,
                                     "unknown key `user.%s` (known: name, uid, gid, home)",
                                     it->key);
                }
        }
        if (!gid_set)
                s->gid = s->uid;
        if (!word_ok (s->user, LOWER "_", LOWER DIGITS "_-") || strlen (s->user) > 32
            || strcmp (s->user, "root") == 0)
                return fail (ps, t->line,
                             "`user.name` must be a user name ([a-z_][a-z0-9_-]*) "
                             "other than root");
        return 0;
}

static int
env_field (parser *ps, const ytop *t, kiln_stack *s)
{
        if (want_type (ps, t, Y_MAP) < 0)
                return -1;
        for (size_t i = 0; i < t->n; i++) {
                if (!word_ok (t->items[i].key, UPPER LOWER "_", UPPER LOWER DIGITS "_"))
                        return fail (ps, t->items[i].line,
                                     "`env.%s`: not an environment variable name", t->items[i].key);
                kiln_kvs_set (&s->env, t->items[i].key, t->items[i].value);
        }
        return 0;
}

static int
scalar_field (parser *ps, const ytop *t, char **out)
{
        if (want_type (ps, t, Y_SCALAR) < 0)
                return -1;
        free (*out);
        *out = kiln_strdup (t->scalar);
        return 0;
}

static int
field (parser *ps, const ytop *t, kiln_stack *s)
{
        if (strcmp (t->key, "name") == 0)
                return scalar_field (ps, t, &s->name);
        if (strcmp (t->key, "suite") == 0)
                return scalar_field (ps, t, &s->suite);
        if (strcmp (t->key, "architecture") == 0)
                return scalar_field (ps, t, &s->architecture);
        if (strcmp (t->key, "mirror") == 0)
                return scalar_field (ps, t, &s->mirror);
        if (strcmp (t->key, "keyring") == 0)
                return scalar_field (ps, t, &s->keyring);
        if (strcmp (t->key, "sources") == 0)
                return sources_field (ps, t, s);
        if (strcmp (t->key, "packages") == 0)
                return strv_field (ps, t, &s->packages, true);
        if (strcmp (t->key, "exclude") == 0)
                return strv_field (ps, t, &s->exclude, false);
        if (strcmp (t->key, "remove") == 0)
                return remove_field (ps, t, s);
        if (strcmp (t->key, "user") == 0)
                return user_field (ps, t, s);
        if (strcmp (t->key, "env") == 0)
                return env_field (ps, t, s);
        return fail (ps, t->line,
                     "unknown key `%s` (known: name, suite, architecture, mirror, keyring, "
                     "sources, packages, exclude, remove, user, env)",
                     t->key);
}

static const ytop *
find_top (const parser *ps, const char *key)
{
        for (size_t i = 0; i < ps->n_top; i++)
                if (strcmp (ps->top[i].key, key) == 0)
                        return &ps->top[i];
        return NULL;
}

static int
line_of (const parser *ps, const char *key)
{
        const ytop *t = find_top (ps, key);
        return t ? t->line : 0;
}

static bool
mirror_ok (const char *m)
{
        if (!kiln_str_has_prefix (m, "http://") && !kiln_str_has_prefix (m, "https://")
            && !kiln_str_has_prefix (m, "file:/"))
                return false;
        for (const char *c = m; *c; c++)
                if (*c <= ' ' || *c == '[' || *c == ']' || *c == '"' || *c == '\'')
                        return false;
        return true;
}

static int
check_stack (parser *ps, kiln_stack *s)
{
        static const char *const required[] = { "name", "suite", "packages" };

        for (size_t i = 0; i < KILN_N_ELEMENTS (required); i++)
                if (find_top (ps, required[i]) == NULL)
                        return fail (ps, 0, "`%s` is required", required[i]);
        if (!word_ok (s->name, LOWER DIGITS, LOWER DIGITS "._-"))
                return fail (ps, line_of (ps, "name"), "`name` must match [a-z0-9][a-z0-9._-]*");
        if (!word_ok (s->suite, LOWER DIGITS, LOWER DIGITS "._-"))
                return fail (ps, line_of (ps, "suite"), "`suite` must match [a-z0-9][a-z0-9._-]*");
        if (s->architecture && !word_ok (s->architecture, LOWER DIGITS, LOWER DIGITS "-"))
                return fail (ps, line_of (ps, "architecture"),
                             "`architecture` must be a Debian architecture name (amd64, arm64...)");
        if (s->mirror && !mirror_ok (s->mirror))
                return fail (ps, line_of (ps, "mirror"),
                             "`mirror` must be an http://, https:// or file:/ URI");
        if (s->keyring && !path_ok (s->keyring))
                return fail (ps, line_of (ps, "keyring"), "`keyring` must be an absolute path");
        if (kiln_strv_len (s->packages) == 0)
                return fail (ps, line_of (ps, "packages"), "`packages` is empty");
        return 0;
}

int
kiln_stack_parse (kiln_stack **out, const char *data, size_t len, const char *path,
                  kiln_error **err)
{
        parser ps = { .path = path ? path : "stack", .err = err };
        kiln_stack *s = kiln_calloc (1, sizeof (*s));
        char hash[KILN_DIGEST_MAX];
        int r = -1;

        s->user = kiln_strdup ("nonroot");
        s->uid = s->gid = KILN_NONROOT_UID;
        if (len > KILN_STACK_MAX_SIZE) {
                kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "`%s`: larger than %zu bytes", ps.path,
                                  KILN_STACK_MAX_SIZE);
                goto out;
        }
        if (parse_yaml (&ps, data, len) < 0)
                goto out;
        for (size_t i = 0; i < ps.n_top; i++)
                if (field (&ps, &ps.top[i], s) < 0)
                        goto out;
        if (check_stack (&ps, s) < 0)
                goto out;
        if (s->home == NULL)
                s->home = kiln_strdup_printf ("/home/%s", s->user);
        s->path = kiln_strdup (path);
        kiln_digest_bytes (hash, data, len);
        s->file_hash = kiln_strdup (hash);
        *out = steal_pointer (&s);
        r = 0;
out:
        parser_clear (&ps);
        kiln_stack_free (s);
        return r;
}

int
kiln_stack_load (kiln_stack **out, const char *path, kiln_error **err)
{
        cleanup_free char *data = NULL;
        size_t len;

        if (kiln_read_file (&data, &len, path, KILN_STACK_MAX_SIZE, err) < 0)
                return kiln_error_wrap (err, "stack file");
        return kiln_stack_parse (out, data, len, path, err);
}

void
kiln_stack_free (kiln_stack *s)
{
        if (s == NULL)
                return;
        free (s->name);
        free (s->suite);
        free (s->architecture);
        free (s->mirror);
        free (s->keyring);
        kiln_strv_free (s->sources);
        kiln_strv_free (s->packages);
        kiln_strv_free (s->exclude);
        kiln_strv_free (s->remove);
        free (s->user);
        free (s->home);
        kiln_kvs_clear (&s->env);
        free (s->path);
        free (s->file_hash);
        free (s);
}
