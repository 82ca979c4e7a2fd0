/* Unit tests: the TOML subset parser and emitter. */
#include <math.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/toml.h"
#include "unit.h"

static kiln_toml *
parse_ok (const char *text)
{
        kiln_error *err = NULL;
        kiln_toml *t = NULL;

        if (kiln_toml_parse (&t, text, strlen (text), 0, &err) < 0) {
                fprintf (stderr, "  parse failed: %s\n  input: %s\n", err->msg, text);
                unit_failed_checks++;
                kiln_error_free (err);
                return NULL;
        }
        return t;
}

/* Returns the error message for an input that must fail (caller frees). */
static char *
parse_err (const char *text, kiln_error_code *code)
{
        kiln_error *err = NULL;
        kiln_toml *t = NULL;
        char *msg;

        if (kiln_toml_parse (&t, text, strlen (text), 0, &err) == 0) {
                fprintf (stderr, "  expected a parse error for: %s\n", text);
                unit_failed_checks++;
                kiln_toml_free (t);
                return kiln_strdup ("");
        }
        if (code)
                *code = err->code;
        msg = kiln_strdup (err->msg);
        kiln_error_free (err);
        return msg;
}

static void
test_buildpack_toml (void)
{
        cleanup_toml kiln_toml *t
            = parse_ok ("# a buildpack\n"
                        "api = \"0.10\"\n"
                        "\n"
                        "[buildpack]\n"
                        "  id = \"dev.kiln.go\"   # trailing comment\n"
                        "  version = '1.2.3'\n"
                        "  clear-env = false\n"
                        "  keywords = [ \"go\", \"golang\", ]\n"
                        "\n"
                        "[[buildpack.licenses]]\n"
                        "type = \"Apache-2.0\"\n"
                        "\n"
                        "[[targets]]\n"
                        "os = \"linux\"\n"
                        "arch = \"amd64\"\n"
                        "[[targets.distros]]\n"
                        "name = \"debian\"\n"
                        "[[targets]]\n"
                        "os = \"linux\"\n"
                        "arch = \"arm64\"\n"
                        "\n"
                        "[metadata]\n"
                        "go.version = \"1.22\"\n"
                        "deps = [{ name = \"x\", n = 1 }, { name = \"y\" }]\n");
        CHECK (t != NULL);
        CHECK_STR (kiln_toml_get_string (t, "api"), "0.10");
        CHECK_STR (kiln_toml_get_string (t, "buildpack.id"), "dev.kiln.go");
        CHECK_STR (kiln_toml_get_string (t, "buildpack.version"), "1.2.3");
        CHECK (kiln_toml_get_bool (t, "buildpack.clear-env", true) == false);
        CHECK (kiln_toml_get_bool (t, "buildpack.missing", true) == true);
        cleanup_strv char **kw = kiln_toml_strv (kiln_toml_get (t, "buildpack.keywords"));
        CHECK (kw && kiln_strv_len (kw) == 2);
        CHECK_STR (kw ? kw[1] : NULL, "golang");
        const kiln_toml *targets = kiln_toml_get_array (t, "targets");
        CHECK (kiln_toml_len (targets) == 2);
        CHECK_STR (kiln_toml_get_string (kiln_toml_at (targets, 1), "arch"), "arm64");
        const kiln_toml *distros = kiln_toml_get_array (kiln_toml_at (targets, 0), "distros");
        CHECK_STR (kiln_toml_get_string (kiln_toml_at (distros, 0), "name"), "debian");
        CHECK_STR (kiln_toml_get_string (t, "metadata.go.version"), "1.22");
        const kiln_toml *deps = kiln_toml_get_array (t, "metadata.deps");
        CHECK (kiln_toml_len (deps) == 2);
        CHECK (kiln_toml_get_int (kiln_toml_at (deps, 0), "n", 0) == 1);
        CHECK_STR (kiln_toml_key (kiln_toml_at (kiln_toml_get (t, "buildpack"), 0)), "id");
        CHECK (kiln_toml_get (t, "buildpack.id.x") == NULL);
        CHECK (kiln_toml_get (NULL, "a") == NULL);
}

static void
test_strings (void)
{
        cleanup_toml kiln_toml *t
            = parse_ok ("a = \"tab\\there \\\"q\\\" \\\\ \\u00e9 \\U0001F600\"\n"
                        "b = 'C:\\path\\no escapes'\n"
                        "c = \"\"\"\n"
                        "line one\n"
                        "line two\"\"\"\n"
                        "d = '''\n"
                        "raw \\n '' here'''\n"
                        "e = \"\"\"fold \\\n"
                        "     ed\"\"\"\n"
                        "f = \"\"\"quote\"\"\"\"\"\n"
                        "\"quoted key\" = 1\n"
                        "'lit.key' = 2\n"
                        "g = \"\"\n");
        CHECK (t != NULL);
        CHECK_STR (kiln_toml_get_string (t, "a"), "tab\there \"q\" \\ \xc3\xa9 \xf0\x9f\x98\x80");
        CHECK_STR (kiln_toml_get_string (t, "b"), "C:\\path\\no escapes");
        CHECK_STR (kiln_toml_get_string (t, "c"), "line one\nline two");
        CHECK_STR (kiln_toml_get_string (t, "d"), "raw \\n '' here");
        CHECK_STR (kiln_toml_get_string (t, "e"), "fold ed");
        CHECK_STR (kiln_toml_get_string (t, "f"), "quote\"\"");
        CHECK (kiln_toml_int (kiln_toml_member (t, "quoted key")) == 1);
        CHECK (kiln_toml_int (kiln_toml_member (t, "lit.key")) == 2);
        CHECK (kiln_toml_get (t, "lit.key") == NULL);
        CHECK_STR (kiln_toml_get_string (t, "g"), "");
}

static void
test_numbers (void)
{
        cleanup_toml kiln_toml *t = parse_ok ("a = 42\nb = -17\nc = 1_000\nd = 0xff\ne = 0o17\n"
                                              "f = 0b101\ng = +3\nh = 3.5\ni = -1e3\nj = inf\n"
                                              "k = -nan\nl = 9223372036854775807\nm = 0\n"
                                              "n = true\no = false\n");
        CHECK (t != NULL);
        CHECK (kiln_toml_get_int (t, "a", 0) == 42);
        CHECK (kiln_toml_get_int (t, "b", 0) == -17);
        CHECK (kiln_toml_get_int (t, "c", 0) == 1000);
        CHECK (kiln_toml_get_int (t, "d", 0) == 255);
        CHECK (kiln_toml_get_int (t, "e", 0) == 15);
        CHECK (kiln_toml_get_int (t, "f", 0) == 5);
        CHECK (kiln_toml_get_int (t, "g", 0) == 3);
        CHECK (kiln_toml_float (kiln_toml_get (t, "h")) == 3.5);
        CHECK (kiln_toml_float (kiln_toml_get (t, "i")) == -1000.0);
        CHECK (isinf (kiln_toml_float (kiln_toml_get (t, "j"))));
        CHECK (isnan (kiln_toml_float (kiln_toml_get (t, "k"))));
        CHECK (kiln_toml_get_int (t, "l", 0) == INT64_MAX);
        CHECK (kiln_toml_type_of (kiln_toml_get (t, "m")) == KILN_TOML_INT);
        CHECK (kiln_toml_get_bool (t, "n", false) == true);
        CHECK (kiln_toml_get_bool (t, "o", true) == false);
        CHECK (kiln_toml_get_int (t, "n", 7) == 7); /* wrong type gives the default */
}

static void
test_tables (void)
{
        cleanup_toml kiln_toml *t = parse_ok ("[a.b]\nx = 1\n[a]\ny = 2\n"
                                              "[fruit]\napple.color = \"red\"\n"
                                              "[fruit.apple.texture]\nsmooth = true\n"
                                              "[[order]]\n[[order.group]]\nid = \"one\"\n"
                                              "[[order.group]]\nid = \"two\"\noptional = true\n"
                                              "[[order]]\n[[order.group]]\nid = \"three\"\n"
                                              "[order.meta]\nk = 'v'\n"
                                              "[ spaced . 'key' ]\nz = 0\n");
        CHECK (t != NULL);
        CHECK (kiln_toml_get_int (t, "a.b.x", 0) == 1);
        CHECK (kiln_toml_get_int (t, "a.y", 0) == 2);
        CHECK_STR (kiln_toml_get_string (t, "fruit.apple.color"), "red");
        CHECK (kiln_toml_get_bool (t, "fruit.apple.texture.smooth", false));
        const kiln_toml *order = kiln_toml_get_array (t, "order");
        CHECK (kiln_toml_len (order) == 2);
        const kiln_toml *g0 = kiln_toml_get_array (kiln_toml_at (order, 0), "group");
        CHECK (kiln_toml_len (g0) == 2);
        CHECK_STR (kiln_toml_get_string (kiln_toml_at (g0, 1), "id"), "two");
        CHECK (kiln_toml_get_bool (kiln_toml_at (g0, 1), "optional", false));
        CHECK_STR (kiln_toml_get_string (kiln_toml_at (order, 1), "meta.k"), "v");
        CHECK (kiln_toml_get_int (t, "spaced.key.z", 1) == 0);
}

static void
test_errors (void)
{
        static const struct {
                const char *input;
                const char *want;
        } cases[] = {
                { "a = 1\na = 2\n", "line 2: duplicate key `a`" },
                { "[a]\n[a]\n", "line 2: table `a` defined twice" },
                { "a = \"open\n", "line 1: newline in a single-line string" },
                { "a = \"x\" b = 1\n", "line 1: unexpected `b` at the end of a line" },
                { "\n\na =\n", "line 3: expected a value" },
                { "a = [1, 2\n", "line 2: unterminated array" },
                { "a = [1 2]\n", "line 1: expected `,` or `]` in an array" },
                { "a = { b = 1, }\n", "line 1: expected a key, not `}`" },
                { "a = {b = 1}\n[a]\n", "line 2: table `a` defined twice" },
                { "a = {b = 1}\na.c = 2\n", "line 2: cannot add keys to `a` with a dotted key" },
                { "a = [1]\n[[a]]\n", "line 2: `a` is not an array of tables" },
                { "[[a]]\n[a]\n", "line 2: table `a` defined twice" },
                { "[x]\na.b = 1\n[x.a]\n", "line 3: table `x.a` defined twice" },
                { "a = 1\n[a.b]\n", "line 2: `a` is not a table" },
                { "a = \"\\q\"\n", "line 1: invalid escape `\\q` in a string" },
                { "a = \"\\uD800\"\n", "line 1: `\\u` is not a Unicode scalar value" },
                { "a = 012\n", "line 1: leading zero in `012`" },
                { "a = 1__0\n", "line 1: invalid value `1__0`" },
                { "a = 99999999999999999999\n",
                  "line 1: integer `99999999999999999999` out of range" },
                { "a = yes\n", "line 1: invalid value `yes`" },
                { "[a\n", "line 1: expected `]` to close a table header" },
                { "= 1\n", "line 1: expected a key, not `=`" },
                { "a b = 1\n", "line 1: expected `=` after the key `a`" },
                { "a = 1 # \x01\n", "line 1: control character in a comment" },
                { "a = '''x\n", "line 2: unterminated string" },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (cases); i++) {
                cleanup_free char *msg = parse_err (cases[i].input, NULL);
                CHECK_STR (msg, cases[i].want);
        }

        kiln_error_code code = 0;
        cleanup_free char *date = parse_err ("d = 1979-05-27T07:32:00Z\n", &code);
        CHECK (code == KILN_E_UNSUPPORTED);
        CHECK_STR (date, "line 1: dates and times are not supported");
        cleanup_free char *utf = parse_err ("a = \"\xff\"\n", &code);
        CHECK (code == KILN_E_INVALID);
        CHECK_STR (utf, "TOML document is not valid UTF-8");
}

static void
test_bounds (void)
{
        kiln_error *err = NULL;
        kiln_toml *t = NULL;
        cleanup_buf kiln_buf deep = KILN_BUF_INIT;

        CHECK (kiln_toml_parse (&t, "a = 1\n", 6, 3, &err) == -1);
        CHECK (err && err->code == KILN_E_TOO_LARGE);
        kiln_error_free (err);
        err = NULL;

        kiln_buf_puts (&deep, "a = ", NULL);
        for (int i = 0; i < KILN_TOML_MAX_DEPTH + 1; i++)
                kiln_buf_puts (&deep, "[", NULL);
        CHECK (kiln_toml_parse (&t, deep.data, deep.len, 0, &err) == -1);
        CHECK (err && strstr (err->msg, "nested deeper") != NULL);
        kiln_error_free (err);
        err = NULL;

        cleanup_buf kiln_buf many = KILN_BUF_INIT;
        for (int i = 0; i <= KILN_TOML_MAX_KEYS; i++)
                kiln_buf_printf (&many, NULL, "k%d = %d\n", i, i);
        CHECK (kiln_toml_parse (&t, many.data, many.len, 0, &err) == -1);
        CHECK (err && strstr (err->msg, "more than 4096 keys") != NULL);
        kiln_error_free (err);
}

static void
test_expect (void)
{
        cleanup_toml kiln_toml *t = parse_ok ("[buildpack]\nid = 3\nname = \"n\"\n");
        kiln_error *err = NULL;
        const kiln_toml *v = NULL;

        CHECK_OK (kiln_toml_expect (&v, t, "buildpack.name", KILN_TOML_STRING, true, &err));
        CHECK_STR (kiln_toml_string (v), "n");
        CHECK_OK (kiln_toml_expect (&v, t, "buildpack.version", KILN_TOML_STRING, false, &err));
        CHECK (v == NULL);
        CHECK (kiln_toml_expect (&v, t, "buildpack.id", KILN_TOML_STRING, true, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        CHECK_STR (err ? err->msg : NULL, "`buildpack.id` must be a string, not an integer");
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_toml_expect (&v, t, "api", KILN_TOML_STRING, true, &err) == -1);
        CHECK_STR (err ? err->msg : NULL, "`api` is required");
        kiln_error_free (err);
}

static void
test_emit_roundtrip (void)
{
        kiln_error *err = NULL;
        cleanup_toml kiln_toml *plan = kiln_toml_new (KILN_TOML_TABLE);
        cleanup_buf kiln_buf out = KILN_BUF_INIT;

        kiln_toml *e = kiln_toml_push_table (plan, "entries");
        kiln_toml_set_string (e, "name", "go");
        kiln_toml *md = kiln_toml_set (e, "metadata", kiln_toml_new (KILN_TOML_TABLE));
        kiln_toml_set_string (md, "version", "1.22");
        kiln_toml_set_bool (md, "build", true);
        kiln_toml_set_int (md, "n", -5);
        kiln_toml *arr = kiln_toml_set (md, "list", kiln_toml_new (KILN_TOML_ARRAY));
        kiln_toml_push (arr, kiln_toml_new_string ("a\"b\n"));
        e = kiln_toml_push_table (plan, "entries");
        kiln_toml_set_string (e, "name", "node");
        kiln_toml_set_string (plan, "odd key", "\x01");

        CHECK_OK (kiln_toml_emit (&out, plan, &err));
        CHECK_STR (out.data, "\"odd key\" = \"\\u0001\"\n"
                             "\n[[entries]]\n"
                             "name = \"go\"\n"
                             "\n[entries.metadata]\n"
                             "version = \"1.22\"\n"
                             "build = true\n"
                             "n = -5\n"
                             "list = [\"a\\\"b\\n\"]\n"
                             "\n[[entries]]\n"
                             "name = \"node\"\n");

        cleanup_toml kiln_toml *back = parse_ok (out.data);
        CHECK (kiln_toml_get_string (back, "entries.metadata.version") == NULL);
        const kiln_toml *entries = kiln_toml_get_array (back, "entries");
        CHECK (kiln_toml_len (entries) == 2);
        CHECK_STR (kiln_toml_get_string (kiln_toml_at (entries, 0), "metadata.version"), "1.22");
        CHECK (kiln_toml_get_int (kiln_toml_at (entries, 0), "metadata.n", 0) == -5);
        CHECK_STR (kiln_toml_get_string (kiln_toml_at (entries, 1), "name"), "node");
        CHECK_STR (kiln_toml_string (kiln_toml_member (back, "odd key")), "\x01");

        /* A parsed document survives dup and emit unchanged. */
        cleanup_toml kiln_toml *orig = parse_ok ("x = { a = [1, 2.5, true], 'b c' = {} }\n"
                                                 "[t]\ne = []\n[[t.u]]\nv = 1\n");
        cleanup_toml kiln_toml *copy = kiln_toml_dup (orig);
        cleanup_buf kiln_buf o1 = KILN_BUF_INIT;
        cleanup_buf kiln_buf o2 = KILN_BUF_INIT;
        CHECK_OK (kiln_toml_emit (&o1, orig, &err));
        CHECK_OK (kiln_toml_emit (&o2, copy, &err));
        CHECK_STR (o1.data, o2.data);
        CHECK_STR (o1.data,
                   "[x]\na = [1, 2.5, true]\n\n[x.\"b c\"]\n\n[t]\ne = []\n\n[[t.u]]\nv = 1\n");
        cleanup_toml kiln_toml *again = parse_ok (o1.data);
        CHECK (kiln_toml_get_int (again, "t.u", 0) == 0);
        CHECK (kiln_toml_len (kiln_toml_get_array (again, "t.u")) == 1);
}

static void
test_parse_file (void)
{
        kiln_error *err = NULL;
        kiln_toml *t = NULL;
        cleanup_free char *dir = NULL;

        CHECK_OK (kiln_mkdtemp (&dir, "toml", &err));
        cleanup_free char *path = kiln_strdup_printf ("%s/bad.toml", dir);
        CHECK_OK (kiln_write_file (path, "ok = 1\nbad\n", 11, 0644, &err));
        CHECK (kiln_toml_parse_file (&t, path, 0, &err) == -1);
        cleanup_free char *want
            = kiln_strdup_printf ("`%s`: line 2: expected `=` after the key `bad`", path);
        CHECK_STR (err ? err->msg : NULL, want);
        kiln_error_free (err);
        err = NULL;
        cleanup_free char *missing = kiln_strdup_printf ("%s/none.toml", dir);
        CHECK (kiln_toml_parse_file (&t, missing, 0, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        err = NULL;
        CHECK_OK (kiln_rm_rf (dir, &err));
}

int
main (void)
{
        RUN (test_buildpack_toml);
        RUN (test_strings);
        RUN (test_numbers);
        RUN (test_tables);
        RUN (test_errors);
        RUN (test_bounds);
        RUN (test_expect);
        RUN (test_emit_roundtrip);
        RUN (test_parse_file);
        UNIT_DONE ("toml");
}
