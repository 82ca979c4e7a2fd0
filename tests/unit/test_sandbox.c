/* Unit tests: running commands under bubblewrap and as plain children. */
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/sandbox.h"
#include "unit.h"

typedef struct captured {
        kiln_buf out;
        kiln_buf err;
} captured;

static void
capture (void *data, const char *label, int stream, const char *line, size_t len)
{
        captured *c = data;
        kiln_buf *b = stream == 1 ? &c->out : &c->err;

        (void) label;
        kiln_buf_append (b, line, len, NULL);
        kiln_buf_puts (b, "|", NULL);
}

static int
run_sh (kiln_sandbox_result *r, kiln_sandbox_mode mode, const char *script, captured *c,
        int64_t timeout_ms, kiln_error **err)
{
        char *argv[] = { "/bin/sh", "-c", (char *) script, NULL };
        char *env[] = { "PATH=/usr/bin:/bin", "ONLY=this", NULL };
        kiln_sandbox_opts o = { .argv = argv,
                                .env = env,
                                .cwd = "/",
                                .mode = mode,
                                .timeout_ms = timeout_ms,
                                .label = "test",
                                .output = capture,
                                .output_data = c };
        return kiln_sandbox_run (r, &o, err);
}

static bool
process_running (const char *pattern)
{
        /* "[s]leep" matches "sleep" but not the shell running pgrep. */
        cleanup_free char *cmd
            = kiln_strdup_printf ("pgrep -f '[%c]%s' >/dev/null", pattern[0], pattern + 1);
        return system (cmd) == 0;
}

static void
check_output_and_status (kiln_sandbox_mode mode)
{
        kiln_error *err = NULL;
        kiln_sandbox_result r;
        captured c = { KILN_BUF_INIT, KILN_BUF_INIT };

        CHECK_OK (
            run_sh (&r, mode,
                    "echo one; echo two; printf 'no newline'; echo e1 >&2; echo '  last  ' >&2;"
                    " echo >&2; env | sort | tr '\\n' ' ' ; exit 3",
                    &c, 0, &err));
        CHECK (r.exit_code == 3);
        CHECK_STR (r.last_stderr_line, "last");
        CHECK (c.out.data && strstr (c.out.data, "one|two|no newline") != NULL);
        /* Exactly the environment given (sh adds PWD, SHLVL and _). */
        CHECK (c.out.data && strstr (c.out.data, "ONLY=this PATH=/usr/bin:/bin") != NULL);
        CHECK (c.out.data && strstr (c.out.data, "HOME=") == NULL);
        CHECK_STR (c.err.data, "e1|  last  ||");
        kiln_sandbox_result_clear (&r);
        kiln_buf_free (&c.out);
        kiln_buf_free (&c.err);

        CHECK_OK (run_sh (&r, mode, "kill -9 $$", &c, 0, &err));
        /* bwrap reports a killed child as exit status 128 + signal. */
        CHECK (r.exit_code == 137);
        CHECK (r.term_signal == (mode == KILN_SANDBOX_NONE ? 9 : 0));
        kiln_sandbox_result_clear (&r);
        kiln_buf_free (&c.out);
        kiln_buf_free (&c.err);
}

static void
check_timeout (kiln_sandbox_mode mode, const char *marker)
{
        kiln_error *err = NULL;
        kiln_sandbox_result r;
        captured c = { KILN_BUF_INIT, KILN_BUF_INIT };
        cleanup_free char *script
            = kiln_strdup_printf ("sleep %s & sleep %s; echo never", marker, marker);
        struct timespec a, b;

        clock_gettime (CLOCK_MONOTONIC, &a);
        CHECK (run_sh (&r, mode, script, &c, 300, &err) == -1);
        clock_gettime (CLOCK_MONOTONIC, &b);
        CHECK (err && err->code == KILN_E_TIMEOUT);
        CHECK_STR (err ? err->msg : NULL, "test timed out after 300ms");
        CHECK (b.tv_sec - a.tv_sec < 5);
        CHECK (c.out.data == NULL || strstr (c.out.data, "never") == NULL);
        kiln_error_free (err);
        usleep (100000);
        cleanup_free char *pattern = kiln_strdup_printf ("sleep %s", marker);
        CHECK (!process_running (pattern));
        kiln_buf_free (&c.out);
        kiln_buf_free (&c.err);
}

static void
test_plain (void)
{
        check_output_and_status (KILN_SANDBOX_NONE);
        check_timeout (KILN_SANDBOX_NONE, "31.337");
}

static void
test_bwrap (void)
{
        if (!kiln_sandbox_available ()) {
                fprintf (stderr, "  skipped: bubblewrap not usable\n");
                return;
        }
        check_output_and_status (KILN_SANDBOX_REQUIRE);
        check_timeout (KILN_SANDBOX_REQUIRE, "31.338");
}

static void
test_background_children_die (void)
{
        kiln_error *err = NULL;
        kiln_sandbox_result r;
        captured c = { KILN_BUF_INIT, KILN_BUF_INIT };

        /* The command exits at once; what it left behind must not survive. */
        CHECK_OK (
            run_sh (&r, KILN_SANDBOX_NONE, "sleep 31.339 >/dev/null 2>&1 & exit 0", &c, 0, &err));
        CHECK (r.exit_code == 0);
        usleep (100000);
        CHECK (!process_running ("sleep 31.339"));
        kiln_sandbox_result_clear (&r);
}

static void
test_bwrap_view (void)
{
        kiln_error *err = NULL;
        kiln_sandbox_result r;
        captured c = { KILN_BUF_INIT, KILN_BUF_INIT };
        cleanup_free char *dir = NULL;

        if (!kiln_sandbox_available ())
                return;
        CHECK_OK (kiln_mkdtemp (&dir, "sbx", &err));
        cleanup_free char *secret = kiln_strdup_printf ("%s/secret", dir);
        cleanup_free char *shared = kiln_strdup_printf ("%s/shared", dir);
        CHECK_OK (kiln_write_file (secret, "s3cret", 6, 0600, &err));
        CHECK_OK (kiln_mkdir_p (shared, 0755, &err));

        kiln_sandbox_mount m[] = { { .host = shared, .dest = "/workspace", .writable = true } };
        cleanup_free char *script = kiln_strdup_printf (
            "cat %s; ls /root /work 2>&1; echo hi > /workspace/out; echo x > /usr/x;"
            "pwd; id -u",
            secret);
        char *argv[] = { "/bin/sh", "-c", script, NULL };
        char *env[] = { "PATH=/usr/bin:/bin", NULL };
        kiln_sandbox_opts o = { .argv = argv,
                                .env = env,
                                .cwd = "/workspace",
                                .mounts = m,
                                .n_mounts = 1,
                                .mode = KILN_SANDBOX_REQUIRE,
                                .label = "view",
                                .output = capture,
                                .output_data = &c };
        CHECK_OK (kiln_sandbox_run (&r, &o, &err));
        CHECK (c.out.data && strstr (c.out.data, "s3cret") == NULL);
        CHECK (c.err.data && strstr (c.err.data, "No such file") != NULL);
        CHECK (c.out.data && strstr (c.out.data, "/workspace|") != NULL);
        cleanup_free char *uid = kiln_strdup_printf ("|%u|", (unsigned) getuid ());
        CHECK (c.out.data && strstr (c.out.data, uid) != NULL);
        cleanup_free char *out = kiln_strdup_printf ("%s/out", shared);
        CHECK (access (out, F_OK) == 0);
        CHECK (access ("/usr/x", F_OK) != 0);
        kiln_sandbox_result_clear (&r);
        kiln_buf_free (&c.out);
        kiln_buf_free (&c.err);
        CHECK_OK (kiln_rm_rf (dir, &err));
}

static volatile sig_atomic_t cancel_flag;

static void
cancel_on_first_line (void *data, const char *label, int stream, const char *line, size_t len)
{
        (void) data;
        (void) label;
        (void) stream;
        (void) line;
        (void) len;
        cancel_flag = 1;
}

static void
test_cancel (void)
{
        kiln_error *err = NULL;
        kiln_sandbox_result r;
        char *argv[] = { "/bin/sh", "-c", "echo started; sleep 30", NULL };
        kiln_sandbox_opts o = { .argv = argv,
                                .mode = KILN_SANDBOX_NONE,
                                .label = "job",
                                .cancel = &cancel_flag,
                                .output = cancel_on_first_line };

        CHECK (kiln_sandbox_run (&r, &o, &err) == -1);
        CHECK (err && err->code == KILN_E_CANCELED);
        CHECK_STR (err ? err->msg : NULL, "job canceled");
        kiln_error_free (err);
        err = NULL;

        char *missing[] = { "/nonexistent/bin/build", NULL };
        kiln_sandbox_opts m = { .argv = missing, .mode = KILN_SANDBOX_NONE };
        CHECK (kiln_sandbox_run (&r, &m, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
}

static void
test_duration (void)
{
        char b[32];
        kiln_sandbox_format_duration (b, sizeof b, 10000);
        CHECK_STR (b, "10s");
        kiln_sandbox_format_duration (b, sizeof b, 1500);
        CHECK_STR (b, "1500ms");
        kiln_sandbox_format_duration (b, sizeof b, 120000);
        CHECK_STR (b, "2m");
}

int
main (void)
{
        RUN (test_plain);
        RUN (test_bwrap);
        RUN (test_background_children_die);
        RUN (test_bwrap_view);
        RUN (test_cancel);
        RUN (test_duration);
        UNIT_DONE ("sandbox");
}
