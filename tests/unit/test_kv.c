/* Unit tests: string vectors and sorted key/value maps. */
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "unit.h"

static void
test_strv_absent_and_empty (void)
{
        char **empty = kiln_strv_new ();

        CHECK (empty != NULL && empty[0] == NULL);
        CHECK (kiln_strv_len (empty) == 0);
        CHECK (kiln_strv_len (NULL) == 0);
        /* Absent and empty are different values. */
        CHECK (!kiln_strv_equal (NULL, empty));
        CHECK (!kiln_strv_equal (empty, NULL));
        CHECK (kiln_strv_equal (NULL, NULL));
        CHECK (kiln_strv_dup (NULL) == NULL);
        char **copy = kiln_strv_dup (empty);
        CHECK (copy != NULL && copy != empty && copy[0] == NULL);
        CHECK (kiln_strv_equal (copy, empty));
        kiln_strv_free (copy);
        kiln_strv_free (empty);
        kiln_strv_free (NULL);
}

static void
test_strv_append_contains_equal (void)
{
        cleanup_strv char **v = NULL;
        cleanup_strv char **w = NULL;
        char buf[8] = "sh";

        v = kiln_strv_append (v, buf);
        buf[0] = 'X'; /* the vector owns a copy */
        v = kiln_strv_append (v, "-c");
        v = kiln_strv_append (v, "echo hi");
        CHECK (kiln_strv_len (v) == 3);
        CHECK_STR (v[0], "sh");
        CHECK_STR (v[2], "echo hi");
        CHECK (v[3] == NULL);
        CHECK (kiln_strv_contains (v, "-c"));
        CHECK (!kiln_strv_contains (v, "-C"));
        CHECK (!kiln_strv_contains (NULL, "sh"));

        w = kiln_strv_dup (v);
        CHECK (kiln_strv_equal (v, w));
        w = kiln_strv_append (w, "extra");
        CHECK (!kiln_strv_equal (v, w));
        CHECK (!kiln_strv_equal (w, v));
        free (w[1]);
        w[1] = kiln_strdup ("-x");
        CHECK (!kiln_strv_equal (v, w));
}

static void
test_kvs_sorted_and_unique (void)
{
        cleanup_kvs kiln_kvs m = KILN_KVS_INIT;

        kiln_kvs_set (&m, "org.opencontainers.image.source", "https://example.com/x");
        kiln_kvs_set (&m, "b", "2");
        kiln_kvs_set (&m, "a", "1");
        kiln_kvs_set (&m, "B", "upper");
        kiln_kvs_set (&m, "c", "");
        CHECK (m.n == 5);
        /* Byte order: upper case sorts before lower case. */
        CHECK_STR (m.items[0].key, "B");
        CHECK_STR (m.items[1].key, "a");
        CHECK_STR (m.items[2].key, "b");
        CHECK_STR (m.items[3].key, "c");
        CHECK_STR (m.items[4].key, "org.opencontainers.image.source");
        for (size_t i = 1; i < m.n; i++)
                CHECK (strcmp (m.items[i - 1].key, m.items[i].key) < 0);

        kiln_kvs_set (&m, "b", "two");
        CHECK (m.n == 5);
        CHECK_STR (kiln_kvs_get (&m, "b"), "two");
        CHECK_STR (kiln_kvs_get (&m, "c"), "");
        CHECK (kiln_kvs_get (&m, "d") == NULL);
}

static void
test_kvs_remove_copy_equal (void)
{
        cleanup_kvs kiln_kvs m = KILN_KVS_INIT;
        cleanup_kvs kiln_kvs c = KILN_KVS_INIT;

        CHECK (!kiln_kvs_remove (&m, "x"));
        for (int i = 0; i < 50; i++) {
                char k[16];
                snprintf (k, sizeof k, "k%02d", 49 - i);
                kiln_kvs_set (&m, k, k);
        }
        CHECK (m.n == 50);
        CHECK_STR (m.items[0].key, "k00");
        CHECK_STR (m.items[49].key, "k49");
        CHECK (kiln_kvs_remove (&m, "k10"));
        CHECK (!kiln_kvs_remove (&m, "k10"));
        CHECK (m.n == 49);
        CHECK (kiln_kvs_get (&m, "k10") == NULL);
        CHECK_STR (kiln_kvs_get (&m, "k11"), "k11");

        kiln_kvs_set (&c, "stale", "value");
        kiln_kvs_copy (&c, &m);
        CHECK (c.n == 49);
        CHECK (kiln_kvs_get (&c, "stale") == NULL);
        CHECK (kiln_kvs_equal (&c, &m));
        CHECK (c.items != m.items && c.items[0].key != m.items[0].key);
        kiln_kvs_set (&c, "k11", "changed");
        CHECK (!kiln_kvs_equal (&c, &m));

        kiln_kvs_clear (&c);
        CHECK (c.n == 0 && c.items == NULL);
        kiln_kvs_set (&c, "only", "1");
        CHECK (kiln_kvs_remove (&c, "only"));
        CHECK (c.n == 0);
        kiln_kvs empty = KILN_KVS_INIT;
        kiln_kvs_copy (&c, &empty);
        CHECK (kiln_kvs_equal (&c, &empty));
}

int
main (void)
{
        RUN (test_strv_absent_and_empty);
        RUN (test_strv_append_contains_equal);
        RUN (test_kvs_sorted_and_unique);
        RUN (test_kvs_remove_copy_equal);
        UNIT_DONE ("test_kv");
}
