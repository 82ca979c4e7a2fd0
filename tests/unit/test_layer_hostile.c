/* Unit tests: extraction of hostile layers.  Each must fail with a one-line
 * error naming the entry or the limit, and leave everything outside the
 * root untouched.  Fixtures come from tests/fixtures/make_hostile.py. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "unit.h"

static char *tmp;      /* holds fixtures/, outside/ and root/ */
static char *outside;  /* what the fixtures try to reach */
static char *fixtures; /* the hostile layers */
static char *root;     /* the extraction root, fresh for each test */

static size_t
count_dir (const char *path)
{
        cleanup_dir DIR *d = opendir (path);
        struct dirent *e;
        size_t n = 0;

        while (d && (e = readdir (d)))
                if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
                        n++;
        return n;
}

/* Nothing but the three directories in tmp, and outside holds only its
 * untouched secret. */
static void
check_outside_untouched (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *secret = kiln_strdup_printf ("%s/secret", outside);
        cleanup_free char *data = NULL;
        size_t len = 0;
        struct stat st;

        CHECK (count_dir (tmp) == 3);
        CHECK (count_dir (outside) == 1);
        CHECK_OK (kiln_read_file (&data, &len, secret, 1024, &err));
        CHECK (data && strcmp (data, "secret\n") == 0);
        CHECK (stat (secret, &st) == 0 && st.st_nlink == 1);
}

static void
fresh_root (void)
{
        cleanup_error kiln_error *err = NULL;

        CHECK_OK (kiln_rm_rf (root, &err));
        CHECK (mkdir (root, 0755) == 0);
}

/* Extracts a fixture expecting failure with `code` and a message holding
 * `needle`. */
static void
expect_refused (const char *name, const kiln_extract_opts *opts, kiln_error_code code,
                const char *needle)
{
        cleanup_free char *layer = kiln_strdup_printf ("%s/%s", fixtures, name);
        char diff_id[KILN_DIGEST_MAX];
        kiln_error *err = NULL;

        fresh_root ();
        CHECK (kiln_layer_extract (layer, root, opts, diff_id, &err) == -1);
        CHECK (err != NULL);
        if (err) {
                if (err->code != code || strstr (err->msg, needle) == NULL) {
                        fprintf (stderr, "  %s: code %d, message: %s\n", name, (int) err->code,
                                 err->msg);
                        CHECK (0);
                }
                CHECK (strchr (err->msg, '\n') == NULL);
        }
        kiln_error_free (err);
        check_outside_untouched ();
}

static void
test_path_traversal (void)
{
        expect_refused ("traversal.tar", NULL, KILN_E_INVALID, "`../../x`: path contains `..`");
        expect_refused ("traversal_inner.tar", NULL, KILN_E_INVALID, "`a/../../x`");
}

static void
test_absolute_path (void)
{
        expect_refused ("absolute.tar", NULL, KILN_E_INVALID, "absolute path");
}

static void
test_symlink_escape (void)
{
        expect_refused ("symlink_escape.tar", NULL, KILN_E_INVALID, "points outside the root");
        expect_refused ("symlink_relative_escape.tar", NULL, KILN_E_INVALID,
                        "`d/up/pwned`: a symbolic link on its path points outside the root");
}

/* An absolute symlink target is read inside the root, as under chroot:
 * the file lands below the root, never in the real directory. */
static void
test_symlink_absolute_stays_inside (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = kiln_strdup_printf ("%s/symlink_absolute.tar", fixtures);
        cleanup_free char *inside = kiln_strdup_printf ("%s%s/pwned", root, outside);
        struct stat st;

        fresh_root ();
        CHECK_OK (kiln_layer_extract (layer, root, NULL, NULL, &err));
        CHECK (stat (inside, &st) == 0 && S_ISREG (st.st_mode));
        check_outside_untouched ();
}

/* A symlink in the root is replaced by a later entry, never written
 * through. */
static void
test_symlink_replaced_not_followed (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = kiln_strdup_printf ("%s/symlink_replace.tar", fixtures);
        cleanup_free char *link = kiln_strdup_printf ("%s/link", root);
        struct stat st;

        fresh_root ();
        CHECK_OK (kiln_layer_extract (layer, root, NULL, NULL, &err));
        CHECK (lstat (link, &st) == 0 && S_ISREG (st.st_mode));
        check_outside_untouched ();
}

static void
test_hardlink_escape (void)
{
        expect_refused ("hardlink_escape.tar", NULL, KILN_E_INVALID, "layer entry `h`");
        expect_refused ("hardlink_absolute.tar", NULL, KILN_E_INVALID, "layer entry `h`");
        expect_refused ("hardlink_missing.tar", NULL, KILN_E_INVALID, "does not exist in the root");
        expect_refused ("hardlink_via_symlink.tar", NULL, KILN_E_INVALID,
                        "points outside the root");
}

static void
test_symlink_loop (void)
{
        expect_refused ("symlink_loop.tar", NULL, KILN_E_INVALID,
                        "`a/x`: too many levels of symbolic links");
}

/* The default entry limit is 1,000,000: one more is refused. */
static void
test_too_many_entries (void)
{
        kiln_extract_opts opts;

        kiln_extract_opts_init (&opts);
        expect_refused ("entries.tar.gz", &opts, KILN_E_TOO_LARGE, "more than 1000000 entries");
        opts.max_entries = 10;
        expect_refused ("entries.tar.gz", &opts, KILN_E_TOO_LARGE, "more than 10 entries");
}

static void
test_gzip_bomb (void)
{
        kiln_extract_opts opts;

        kiln_extract_opts_init (&opts);
        opts.max_bytes = (uint64_t) 256 << 20;
        expect_refused ("bomb.tar.gz", &opts, KILN_E_TOO_LARGE, "more than 268435456 bytes");
        /* The stream itself is bounded, whatever the headers say: hashing
         * the diff_id reads past the end of the tar. */
        expect_refused ("padding_bomb.tar.gz", &opts, KILN_E_TOO_LARGE,
                        "more than 268435456 bytes");
}

static void
test_default_byte_limit (void)
{
        /* A header claiming 33 GiB is refused by the default 32 GiB bound. */
        expect_refused ("huge_header.tar", NULL, KILN_E_TOO_LARGE, "more than 34359738368 bytes");
}

/* Device nodes and fifos are skipped (kiln runs unprivileged); the rest of
 * the layer is extracted. */
static void
test_devices_skipped (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = kiln_strdup_printf ("%s/devices.tar", fixtures);
        cleanup_free char *ok = kiln_strdup_printf ("%s/ok", root);
        cleanup_free char *dev = kiln_strdup_printf ("%s/dev", root);
        struct stat st;

        fresh_root ();
        CHECK_OK (kiln_layer_extract (layer, root, NULL, NULL, &err));
        CHECK (stat (ok, &st) == 0 && S_ISREG (st.st_mode));
        CHECK (count_dir (dev) == 0);
        check_outside_untouched ();
}

static int
setup (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *cmd = NULL;
        cleanup_free char *secret = NULL;

        if (kiln_mkdtemp (&tmp, "test-hostile", &err) < 0) {
                fprintf (stderr, "%s\n", err->msg);
                return -1;
        }
        outside = kiln_strdup_printf ("%s/outside", tmp);
        fixtures = kiln_strdup_printf ("%s/fixtures", tmp);
        root = kiln_strdup_printf ("%s/root", tmp);
        secret = kiln_strdup_printf ("%s/secret", outside);
        if (mkdir (outside, 0755) < 0 || mkdir (root, 0755) < 0
            || kiln_write_file (secret, "secret\n", 7, 0644, &err) < 0)
                return -1;
        cmd = kiln_strdup_printf ("python3 tests/fixtures/make_hostile.py '%s' '%s'", fixtures,
                                  outside);
        if (system (cmd) != 0) {
                fprintf (stderr, "cannot make the fixtures: %s\n", cmd);
                return -1;
        }
        return 0;
}

int
main (void)
{
        cleanup_error kiln_error *err = NULL;

        if (setup () < 0) {
                printf ("layer_hostile: 0 passed, 1 failed\n");
                return 1;
        }
        RUN (test_path_traversal);
        RUN (test_absolute_path);
        RUN (test_symlink_escape);
        RUN (test_symlink_absolute_stays_inside);
        RUN (test_symlink_replaced_not_followed);
        RUN (test_hardlink_escape);
        RUN (test_symlink_loop);
        RUN (test_too_many_entries);
        RUN (test_gzip_bomb);
        RUN (test_default_byte_limit);
        RUN (test_devices_skipped);
        kiln_rm_rf (tmp, &err);
        free (tmp);
        free (outside);
        free (fixtures);
        free (root);
        UNIT_DONE ("layer_hostile");
}
