/* Unit tests: the error object, cleanup macros, logger and bounded buffers. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "unit.h"

static int
fails_with_enoent (kiln_error **err)
{
        return kiln_error_make (err, ENOENT, "open `%s`", "/nonexistent");
}

static void
test_error_make_and_wrap (void)
{
        kiln_error *err = NULL;

        CHECK (fails_with_enoent (&err) == -1);
        CHECK (err != NULL);
        CHECK (err->code == KILN_E_NOT_FOUND);
        CHECK (err->sys_errno == ENOENT);
        CHECK_STR (err->msg, "open `/nonexistent`: No such file or directory");
        CHECK (kiln_error_wrap (&err, "base image `%s`", "oci:x") == -1);
        CHECK_STR (err->msg, "base image `oci:x`: open `/nonexistent`: No such file or directory");
        /* The first error made is the one kept. */
        kiln_error_makec (&err, KILN_E_AUTH, 0, "second");
        CHECK (err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        /* A NULL err is allowed and still returns -1. */
        CHECK (kiln_error_make (NULL, 0, "x") == -1);
        CHECK (kiln_error_wrap (NULL, "x") == -1);
        kiln_error_free (NULL);
}

static void
test_error_one_line (void)
{
        cleanup_error kiln_error *err = NULL;

        kiln_error_makec (&err, KILN_E_INVALID, 0, "bad\nvalue\r\t`%s`", "a\nb");
        CHECK (strchr (err->msg, '\n') == NULL);
        CHECK (strchr (err->msg, '\r') == NULL);
        CHECK (err->code == KILN_E_INVALID);
}

static void
test_error_table (void)
{
        CHECK (kiln_error_http_status (KILN_E_NOT_FOUND) == 404);
        CHECK (kiln_error_http_status (KILN_E_AUTH) == 401);
        CHECK (kiln_error_http_status (KILN_E_TOO_LARGE) == 413);
        CHECK (kiln_error_http_status (KILN_E_CONFLICT) == 409);
        CHECK (kiln_error_http_status ((kiln_error_code) 999) == 500);
        CHECK_STR (kiln_error_reason (KILN_E_NOT_FOUND), "NotFound");
        CHECK_STR (kiln_error_reason (KILN_E_CONFLICT), "Conflict");
        CHECK_STR (kiln_error_code_name (KILN_E_DIGEST_MISMATCH), "digest-mismatch");
        kiln_error *e = NULL;
        kiln_error_makec (&e, KILN_E_TIMEOUT, 0, "t");
        kiln_error *taken = kiln_error_take (&e);
        CHECK (e == NULL && taken != NULL);
        CHECK_STR (kiln_error_msg (taken), "t");
        CHECK_STR (kiln_error_msg (NULL), "unknown error");
        kiln_error_free (taken);
}

static int cleanup_ran;
static void
count_free (void *p)
{
        cleanup_ran++;
        free (*(void **) p);
}

static char *
make_owned (void)
{
        __attribute__ ((cleanup (count_free))) char *s = kiln_strdup ("owned");
        return steal_pointer (&s);
}

static void
test_cleanup (void)
{
        cleanup_ran = 0;
        {
                __attribute__ ((cleanup (count_free))) char *a = kiln_strdup ("x");
                (void) a;
        }
        CHECK (cleanup_ran == 1);
        char *s = make_owned ();
        CHECK (cleanup_ran == 2); /* ran, on NULL */
        CHECK_STR (s, "owned");
        free (s);
        {
                cleanup_close int fd = open ("/dev/null", O_RDONLY);
                CHECK (fd >= 0);
                int fd2 = fd;
                CHECK (kiln_steal_fd (&fd) == fd2);
                CHECK (fd == -1);
                close (fd2);
        }
        {
                cleanup_strv char **v = kiln_calloc (3, sizeof (char *));
                v[0] = kiln_strdup ("a");
                v[1] = kiln_strdup ("b");
        }
}

static void
test_buf_bounded (void)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        kiln_error *err = NULL;

        kiln_buf_init (&b, 10);
        CHECK (kiln_buf_puts (&b, "hello", &err) == 0);
        CHECK (kiln_buf_printf (&b, &err, "%d", 1234) == 0);
        CHECK_STR (b.data, "hello1234");
        CHECK (b.len == 9);
        CHECK (kiln_buf_puts (&b, "xy", &err) == -1);
        CHECK (err && err->code == KILN_E_TOO_LARGE);
        CHECK_STR (b.data, "hello1234"); /* unchanged by the refused append */
        kiln_error_free (err);
        err = NULL;
        /* A huge length is refused before anything is allocated. */
        CHECK (kiln_buf_reserve (&b, SIZE_MAX, &err) == -1);
        kiln_error_free (err);
        size_t len;
        char *s = kiln_buf_steal (&b, &len);
        CHECK (len == 9 && b.data == NULL && b.len == 0);
        free (s);
        s = kiln_buf_steal (&b, &len);
        CHECK (s && *s == '\0' && len == 0);
        free (s);
}

static void
test_strings (void)
{
        char small[4];
        kiln_error *err = NULL;

        CHECK (kiln_strlcpy (small, "abcdef", sizeof small) == 6);
        CHECK_STR (small, "abc");
        CHECK (kiln_snprintf (small, sizeof small, &err, "%s", "ab") == 0);
        CHECK (kiln_snprintf (small, sizeof small, &err, "%s", "abcd") == -1);
        CHECK (err && err->code == KILN_E_TOO_LARGE);
        kiln_error_free (err);

        int64_t v;
        CHECK (kiln_parse_int64 ("42", 0, 100, &v) == 0 && v == 42);
        CHECK (kiln_parse_int64 ("101", 0, 100, &v) == -1);
        CHECK (kiln_parse_int64 ("4x", 0, 100, &v) == -1);
        CHECK (kiln_parse_int64 ("", 0, 100, &v) == -1);
        CHECK (kiln_parse_int64 ("99999999999999999999", INT64_MIN, INT64_MAX, &v) == -1);

        uint64_t sz;
        CHECK (kiln_parse_size ("10k", &sz) == 0 && sz == 10240);
        CHECK (kiln_parse_size ("2G", &sz) == 0 && sz == 2ULL << 30);
        CHECK (kiln_parse_size ("5MiB", &sz) == 0 && sz == 5ULL << 20);
        CHECK (kiln_parse_size ("5x", &sz) == -1);
        CHECK (kiln_parse_size ("-1", &sz) == -1);
        CHECK (kiln_parse_size ("99999999999999999999G", &sz) == -1);

        int64_t ms;
        CHECK (kiln_parse_duration_ms ("90", &ms) == 0 && ms == 90000);
        CHECK (kiln_parse_duration_ms ("250ms", &ms) == 0 && ms == 250);
        CHECK (kiln_parse_duration_ms ("5m", &ms) == 0 && ms == 300000);
        CHECK (kiln_parse_duration_ms ("1h", &ms) == 0 && ms == 3600000);
        CHECK (kiln_parse_duration_ms ("1d", &ms) == -1);

        CHECK (kiln_str_has_prefix ("oci:dir", "oci:"));
        CHECK (!kiln_str_has_prefix ("oc", "oci:"));
        CHECK (kiln_str_has_suffix ("a.tar.gz", ".gz"));
        CHECK (!kiln_str_has_suffix ("gz", ".tar.gz"));
}

static void
test_files (void)
{
        kiln_error *err = NULL;
        cleanup_free char *dir = NULL;

        CHECK_OK (kiln_mkdtemp (&dir, "unit", &err));
        cleanup_free char *deep = kiln_strdup_printf ("%s/a/b/c", dir);
        CHECK_OK (kiln_mkdir_p (deep, 0755, &err));
        CHECK_OK (kiln_mkdir_p (deep, 0755, &err)); /* existing is fine */
        cleanup_free char *f = kiln_strdup_printf ("%s/file", deep);
        CHECK_OK (kiln_write_file (f, "content", 7, 0600, &err));
        struct stat st;
        CHECK (stat (f, &st) == 0 && (st.st_mode & 0777) == 0600);
        char *data = NULL;
        size_t len = 0;
        CHECK_OK (kiln_read_file (&data, &len, f, 100, &err));
        CHECK (len == 7 && data && strcmp (data, "content") == 0);
        free (data);
        data = NULL;
        CHECK (kiln_read_file (&data, &len, f, 3, &err) == -1);
        CHECK (err && err->code == KILN_E_TOO_LARGE);
        CHECK (err && strstr (err->msg, f) != NULL);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_read_file (&data, &len, "/nonexistent/x", 3, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        err = NULL;
        /* rm -rf does not follow symlinks out of the tree. */
        cleanup_free char *outside = kiln_strdup_printf ("%s-outside", dir);
        CHECK_OK (kiln_mkdir_p (outside, 0755, &err));
        cleanup_free char *keep = kiln_strdup_printf ("%s/keep", outside);
        CHECK_OK (kiln_write_file (keep, "k", 1, 0644, &err));
        cleanup_free char *link = kiln_strdup_printf ("%s/a/link", dir);
        CHECK (symlink (outside, link) == 0);
        CHECK_OK (kiln_rm_rf (dir, &err));
        CHECK (access (dir, F_OK) != 0);
        CHECK (access (keep, F_OK) == 0);
        CHECK_OK (kiln_rm_rf (outside, &err));
        CHECK_OK (kiln_rm_rf (outside, &err)); /* missing is fine */
}

static void
test_log (void)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream (&text, &len);

        kiln_log_set_stream (f);
        kiln_log_setup (KILN_LOG_INFO, false);
        kiln_debug ("hidden");
        kiln_info ("pushed %s\nsecond", "img");
        const char *fields[] = { "ref", "r\"1", NULL };
        kiln_log_setup (KILN_LOG_DEBUG, true);
        kiln_log_fields (KILN_LOG_WARN, fields, "with \"quotes\"");
        kiln_log_setup (KILN_LOG_OFF, false);
        kiln_log_error ("off");
        fflush (f);
        kiln_log_set_stream (NULL);
        CHECK (strstr (text, "hidden") == NULL);
        CHECK (strstr (text, "kiln: info: pushed img\\nsecond\n") != NULL);
        CHECK (
            strstr (text, "\"level\":\"warn\",\"msg\":\"with \\\"quotes\\\"\",\"ref\":\"r\\\"1\"}")
            != NULL);
        CHECK (strstr (text, "off") == NULL);
        /* Every event is exactly one line. */
        int lines = 0;
        for (char *p = text; *p; p++)
                lines += *p == '\n';
        CHECK (lines == 2);
        fclose (f);
        free (text);

        kiln_log_level l;
        CHECK (kiln_log_level_parse ("warn", &l) == 0 && l == KILN_LOG_WARN);
        CHECK (kiln_log_level_parse ("loud", &l) == -1);
}

int
main (void)
{
        RUN (test_error_make_and_wrap);
        RUN (test_error_one_line);
        RUN (test_error_table);
        RUN (test_cleanup);
        RUN (test_buf_bounded);
        RUN (test_strings);
        RUN (test_files);
        RUN (test_log);
        UNIT_DONE ("conventions");
}
