/* Unit tests: the serve modules' pure parts (patches, durations, names,
 * YAML, substitution, selectors) and the store. */
#include <sys/stat.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/serve.h"
#include "unit.h"

static json_t *
J (const char *s)
{
        json_t *j = json_loads (s, JSON_DECODE_ANY, NULL);
        if (j == NULL)
                abort ();
        return j;
}

static bool
same (json_t *a, const char *b)
{
        json_t *jb = J (b);
        bool r = json_equal (a, jb);
        json_decref (jb);
        return r;
}

static void
test_merge_patch (void)
{
        json_t *doc = J ("{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"e\":[1]}");
        json_t *patch = J ("{\"a\":null,\"b\":{\"c\":5},\"e\":[2],\"f\":{\"g\":1}}");

        kiln_merge_patch (doc, patch);
        CHECK (same (doc, "{\"b\":{\"c\":5,\"d\":3},\"e\":[2],\"f\":{\"g\":1}}"));
        json_decref (doc);
        json_decref (patch);
}

static void
test_json_patch (void)
{
        kiln_error *err = NULL;
        json_t *doc = J ("{\"spec\":{\"a\":[1,2],\"b\":\"x\"}}");
        json_t *ops
            = J ("[{\"op\":\"add\",\"path\":\"/spec/state\",\"value\":\"BuildRunCanceled\"},"
                 "{\"op\":\"add\",\"path\":\"/spec/a/-\",\"value\":3},"
                 "{\"op\":\"remove\",\"path\":\"/spec/a/0\"},"
                 "{\"op\":\"replace\",\"path\":\"/spec/b\",\"value\":\"y\"},"
                 "{\"op\":\"copy\",\"from\":\"/spec/b\",\"path\":\"/c~1d\"},"
                 "{\"op\":\"test\",\"path\":\"/c~1d\",\"value\":\"y\"}]");

        CHECK_OK (kiln_json_patch (&doc, ops, &err));
        CHECK (same (doc, "{\"spec\":{\"a\":[2,3],\"b\":\"y\",\"state\":\"BuildRunCanceled\"},"
                          "\"c/d\":\"y\"}"));
        json_decref (ops);

        /* A failing operation leaves the document as it was. */
        ops = J ("[{\"op\":\"replace\",\"path\":\"/spec/b\",\"value\":\"z\"},"
                 "{\"op\":\"remove\",\"path\":\"/nope\"}]");
        CHECK (kiln_json_patch (&doc, ops, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID && strstr (err->msg, "/nope"));
        CHECK_STR (json_string_value (json_object_get (json_object_get (doc, "spec"), "b")), "y");
        kiln_error_free (err);
        err = NULL;
        json_decref (ops);
        ops = J ("[{\"op\":\"test\",\"path\":\"/spec/b\",\"value\":\"q\"}]");
        CHECK (kiln_json_patch (&doc, ops, &err) == -1 && err->code == KILN_E_CONFLICT);
        kiln_error_free (err);
        json_decref (ops);
        json_decref (doc);
}

static void
test_durations_and_names (void)
{
        int64_t ms;
        char buf[32];

        CHECK (kiln_go_duration_parse ("10m", &ms) == 0 && ms == 600000);
        CHECK (kiln_go_duration_parse ("1h30m", &ms) == 0 && ms == 5400000);
        CHECK (kiln_go_duration_parse ("1.5s", &ms) == 0 && ms == 1500);
        CHECK (kiln_go_duration_parse ("250ms", &ms) == 0 && ms == 250);
        CHECK (kiln_go_duration_parse ("0", &ms) == 0 && ms == 0);
        CHECK (kiln_go_duration_parse ("10", &ms) == -1);
        CHECK (kiln_go_duration_parse ("m", &ms) == -1);
        CHECK (kiln_go_duration_parse ("soon", &ms) == -1);
        kiln_go_duration_format (buf, sizeof buf, 600000);
        CHECK_STR (buf, "10m0s");
        kiln_go_duration_format (buf, sizeof buf, 3723500);
        CHECK_STR (buf, "1h2m3.5s");
        kiln_go_duration_format (buf, sizeof buf, 2000);
        CHECK_STR (buf, "2s");
        CHECK (kiln_name_is_valid ("hello-1.a"));
        CHECK (!kiln_name_is_valid ("Hello"));
        CHECK (!kiln_name_is_valid ("-a"));
        CHECK (!kiln_name_is_valid (""));
        CHECK (!kiln_name_is_valid ("a_b"));
}

static void
test_yaml (void)
{
        kiln_error *err = NULL;
        json_t *docs = NULL;
        const char *y = "a: 1\nb: true\nc: \"1\"\nd: [x, 'y']\ne: |\n  line\nf:\n---\nkind: X\n";

        CHECK_OK (kiln_yaml_parse (&docs, y, strlen (y), &err));
        CHECK (json_array_size (docs) == 2);
        CHECK (same (json_array_get (docs, 0),
                     "{\"a\":1,\"b\":true,\"c\":\"1\",\"d\":[\"x\",\"y\"],\"e\":\"line\\n\","
                     "\"f\":null}"));
        json_decref (docs);
        y = "a: &x 1\nb: *x\n";
        CHECK (kiln_yaml_parse (&docs, y, strlen (y), &err) == -1);
        CHECK (err && err->code == KILN_E_UNSUPPORTED);
        kiln_error_free (err);
        err = NULL;
        y = "a: [1, 2\n";
        CHECK (kiln_yaml_parse (&docs, y, strlen (y), &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID && strstr (err->msg, "line"));
        kiln_error_free (err);
}

static void
test_substitution (void)
{
        json_t *params = J ("{\"img\":\"r/x\",\"arr\":[\"-a\",\"b c\"],\"empty\":[]}");
        json_t *list
            = J ("[\"--out\",\"$(params.img):tag\",\"$(params.arr[*])\",\"$(params.empty[*])\","
                 "\"$(results.shp-image-digest.path)\",\"$(params.unknown)\",\"$$(params.img)\"]");
        cleanup_strv char **argv = kiln_strv_new ();
        cleanup_free char *s = kiln_step_substitute ("x $(params.arr) y", params, "/r");

        kiln_step_expand_list (&argv, list, params, "/r");
        CHECK (kiln_strv_len (argv) == 7);
        CHECK_STR (argv[0], "--out");
        CHECK_STR (argv[1], "r/x:tag");
        CHECK_STR (argv[2], "-a");
        CHECK_STR (argv[3], "b c");
        CHECK_STR (argv[4], "/r/shp-image-digest");
        CHECK_STR (argv[5], "$(params.unknown)");
        CHECK_STR (argv[6], "$(params.img)");
        CHECK_STR (s, "x -a b c y");
        json_decref (params);
        json_decref (list);
}

static void
test_selectors (void)
{
        json_t *obj
            = J ("{\"metadata\":{\"name\":\"n\",\"namespace\":\"dev\",\"labels\":{\"a\":\"1\"}}}");
        kiln_error *err = NULL;
        bool m;

        CHECK (kiln_selectors_match (&m, "a=1", NULL, obj, &err) == 0 && m);
        CHECK (kiln_selectors_match (&m, "a==1,a", NULL, obj, &err) == 0 && m);
        CHECK (kiln_selectors_match (&m, "a!=1", NULL, obj, &err) == 0 && !m);
        CHECK (kiln_selectors_match (&m, "!b", "metadata.name=n", obj, &err) == 0 && m);
        CHECK (kiln_selectors_match (&m, NULL, "metadata.namespace!=dev", obj, &err) == 0 && !m);
        CHECK (kiln_selectors_match (&m, "a in (1)", NULL, obj, &err) == -1);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_selectors_match (&m, NULL, "spec.x=1", obj, &err) == -1);
        kiln_error_free (err);
        json_decref (obj);
}

static void
test_store (void)
{
        kiln_error *err = NULL;
        cleanup_free char *dir = NULL;
        kiln_store *s = NULL;
        json_t *out = NULL, *events = NULL;
        int64_t last;
        bool gone;
        struct stat st;

        CHECK_OK (kiln_mkdtemp (&dir, "unit-store", &err));
        cleanup_free char *data = kiln_strdup_printf ("%s/data", dir);
        CHECK_OK (kiln_store_open (&s, data, 3, &err));
        if (s == NULL)
                return;
        cleanup_free char *db = kiln_strdup_printf ("%s/kiln.db", data);
        CHECK (stat (db, &st) == 0 && (st.st_mode & 0777) == 0600);

        json_t *b = J ("{\"metadata\":{\"generateName\":\"b-\"},\"spec\":{\"x\":1}}");
        CHECK_OK (kiln_store_create (&out, s, "Build", "dev", b, &err));
        const char *name
            = json_string_value (json_object_get (json_object_get (out, "metadata"), "name"));
        CHECK (name && strlen (name) == 7 && strncmp (name, "b-", 2) == 0);
        cleanup_free char *n = kiln_strdup (name);
        json_decref (out);
        json_decref (b);

        /* A stale resourceVersion conflicts; a spec change bumps generation. */
        b = J ("{\"metadata\":{},\"spec\":{\"x\":2}}");
        CHECK (kiln_store_update (NULL, s, "Build", "dev", n, b, 99, &err) == -1);
        CHECK (err && err->code == KILN_E_CONFLICT);
        kiln_error_free (err);
        err = NULL;
        CHECK_OK (kiln_store_update (&out, s, "Build", "dev", n, b, 1, &err));
        CHECK (
            json_integer_value (json_object_get (json_object_get (out, "metadata"), "generation"))
            == 2);
        json_decref (out);
        json_decref (b);
        CHECK (kiln_store_current (s) == 2);

        CHECK_OK (kiln_store_events (&events, &last, &gone, s, "Build", "dev", 0, 10, &err));
        CHECK (!gone && json_array_size (events) == 2 && last == 2);
        json_decref (events);
        for (int i = 0; i < 4; i++) {
                b = J ("{\"metadata\":{},\"spec\":{}}");
                json_object_set_new (json_object_get (b, "metadata"), "name",
                                     json_string (i == 0   ? "c0"
                                                  : i == 1 ? "c1"
                                                  : i == 2 ? "c2"
                                                           : "c3"));
                CHECK_OK (kiln_store_create (NULL, s, "Build", "dev", b, &err));
                json_decref (b);
        }
        CHECK_OK (kiln_store_events (&events, &last, &gone, s, "Build", "dev", 1, 10, &err));
        CHECK (gone && events == NULL);
        CHECK_OK (kiln_store_events (&events, &last, &gone, s, "Build", "dev", 3, 10, &err));
        CHECK (!gone && json_array_size (events) == 3);
        json_decref (events);
        CHECK_OK (kiln_store_delete (NULL, s, "Build", "dev", "c0", &err));
        CHECK (kiln_store_get (&out, s, "Build", "dev", "c0", &err) == -1
               && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        err = NULL;
        kiln_store_free (s);

        /* What was acknowledged is there after reopening. */
        CHECK_OK (kiln_store_open (&s, data, 3, &err));
        int64_t rv;
        CHECK_OK (kiln_store_list (&out, &rv, s, "Build", NULL, &err));
        CHECK (json_array_size (out) == 4 && rv == 7);
        json_decref (out);
        kiln_store_free (s);
        CHECK_OK (kiln_rm_rf (dir, &err));
}

int
main (void)
{
        RUN (test_merge_patch);
        RUN (test_json_patch);
        RUN (test_durations_and_names);
        RUN (test_yaml);
        RUN (test_substitution);
        RUN (test_selectors);
        RUN (test_store);
        UNIT_DONE ("test_serve");
}
