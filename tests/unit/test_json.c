/* Unit tests: the generic JSON accessor. */
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/json.h"
#include "unit.h"

static void
test_parse_and_get (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_kiln_json kiln_json *j = NULL;
        const char *doc = "{\"token\":\"t1\",\"expires_in\":300,\"a\":{\"b\":{\"c\":\"deep\"}},"
                          "\"list\":[\"x\",2],\"auths\":{\"reg.example.com\":{\"auth\":\"YQ==\"}}}";
        int64_t n = 0;

        CHECK_OK (kiln_json_parse (&j, doc, strlen (doc), 4096, &err));
        CHECK_STR (kiln_json_get_str (j, "token"), "t1");
        CHECK (kiln_json_get_i64 (j, "expires_in", &n) && n == 300);
        CHECK (!kiln_json_get_i64 (j, "token", &n));
        CHECK_STR (kiln_json_get_str (j, "a.b.c"), "deep");
        CHECK (kiln_json_get_str (j, "a.b") == NULL);
        CHECK (kiln_json_get (j, "a.x.c") == NULL);
        CHECK (kiln_json_get (j, "") == j);
        CHECK (kiln_json_array_len (kiln_json_get (j, "list")) == 2);
        CHECK_STR (kiln_json_str (kiln_json_array_at (kiln_json_get (j, "list"), 0)), "x");
        CHECK (kiln_json_array_at (kiln_json_get (j, "list"), 5) == NULL);
        /* A key holding dots is reached with kiln_json_key. */
        CHECK_STR (kiln_json_get_str (kiln_json_key (kiln_json_get (j, "auths"), "reg.example.com"),
                                      "auth"),
                   "YQ==");
}

static void
test_iterate (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_kiln_json kiln_json *j = NULL;
        const char *doc = "{\"b\":1,\"a\":\"x\",\"c\":{}}";
        void *it = NULL;
        const char *key;
        const kiln_json *val;
        char seen[8] = "";
        size_t n = 0;

        CHECK_OK (kiln_json_parse (&j, doc, strlen (doc), 4096, &err));
        while (kiln_json_object_next (j, &it, &key, &val) && n < 7)
                seen[n++] = key[0];
        CHECK_STR (seen, "bac");
        it = NULL;
        CHECK (!kiln_json_object_next (kiln_json_get (j, "a"), &it, &key, &val));
}

static void
test_parse_errors (void)
{
        kiln_error *err = NULL;
        kiln_json *j = NULL;

        CHECK (kiln_json_parse (&j, "{\"a\":1,\"a\":2}", 13, 100, &err) < 0);
        CHECK (err && err->code == KILN_E_INVALID);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_json_parse (&j, "{\"secret\":", 10, 100, &err) < 0);
        CHECK (err && strstr (err->msg, "secret") == NULL);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_json_parse (&j, "{} x", 4, 100, &err) < 0);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_json_parse (&j, "{\"a\":\"0123456789\"}", 18, 10, &err) < 0);
        CHECK (err && err->code == KILN_E_TOO_LARGE);
        kiln_error_free (err);
}

static void
test_build (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *s = NULL;
        kiln_json *o = kiln_json_object ();
        kiln_json *a = kiln_json_array ();

        kiln_json_set_str (o, "z", "last");
        kiln_json_set_str (o, "skip", NULL);
        kiln_json_set_i64 (o, "n", 42);
        kiln_json_set_bool (o, "ok", true);
        kiln_json_append_str (a, "q\"uote");
        kiln_json_append_node (a, kiln_json_object ());
        kiln_json_set_node (o, "a", a);
        CHECK_OK (kiln_json_format (&s, o, &err));
        CHECK_STR (s, "{\"a\":[\"q\\\"uote\",{}],\"n\":42,\"ok\":true,\"z\":\"last\"}");
        kiln_json_set_str (o, "bad", "\xff\xfe");
        free (s);
        s = NULL;
        CHECK (kiln_json_format (&s, o, &err) < 0);
        kiln_json_free (o);
        kiln_json_free (NULL);
}

int
main (void)
{
        RUN (test_parse_and_get);
        RUN (test_iterate);
        RUN (test_parse_errors);
        RUN (test_build);
        UNIT_DONE ("test_json");
}
