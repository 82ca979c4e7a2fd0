/* kiln: parameter substitution and running one strategy step.
 *
 * A step runs in its own session, so that it and everything it starts in
 * its process group can be signalled at once.  Programs that make their
 * own sessions (kiln build's sandboxed buildpacks) still carry the run's
 * marker in their environment unless something cleared it; those are
 * found through /proc.  Stop is SIGTERM (kiln build then stops its own
 * children cleanly) and SIGKILL for whatever is left after a grace
 * period. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/serve.h"

#define STOP_GRACE_MS 2000
#define DRAIN_MS 1000
#define LINE_MAX_BYTES (64 * 1024)
#define STDOUT_TAIL (64 * 1024)
#define ENVIRON_MAX (256 * 1024)

int64_t
kiln_monotonic_ms (void)
{
        struct timespec ts;

        clock_gettime (CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- substitution ---- */

static void
append_param (kiln_buf *b, const json_t *v)
{
        size_t i;
        json_t *item;

        if (json_is_string (v)) {
                kiln_buf_puts (b, json_string_value (v), NULL);
                return;
        }
        json_array_foreach (v, i, item)
        {
                if (i)
                        kiln_buf_puts (b, " ", NULL);
                kiln_buf_puts (b, json_string_value (item) ? json_string_value (item) : "", NULL);
        }
}

/* At p (just after "$("), a reference up to ")"; returns its length
 * including the ")" when it was one we substitute. */
static size_t
substitute_one (kiln_buf *b, const char *p, const json_t *params, const char *results_dir)
{
        const char *close = strchr (p, ')');
        size_t n;

        if (close == NULL)
                return 0;
        n = (size_t) (close - p);
        if (kiln_str_has_prefix (p, "params.")) {
                cleanup_free char *name = strndup (p + 7, n - 7);
                size_t len = strlen (name);
                const json_t *v;
                if (len > 3 && strcmp (name + len - 3, "[*]") == 0)
                        name[len - 3] = '\0';
                v = json_object_get (params, name);
                if (v == NULL)
                        return 0;
                append_param (b, v);
                return n + 1;
        }
        if (kiln_str_has_prefix (p, "results.") && n > 13 && strncmp (close - 5, ".path", 5) == 0) {
                kiln_buf_printf (b, NULL, "%s/%.*s", results_dir, (int) (n - 13), p + 8);
                return n + 1;
        }
        return 0;
}

char *
kiln_step_substitute (const char *s, const json_t *params, const char *results_dir)
{
        kiln_buf b = KILN_BUF_INIT;
        size_t len;

        kiln_buf_puts (&b, "", NULL);
        while (*s) {
                size_t used = 0;
                if (s[0] == '$' && s[1] == '$' && s[2] == '(') {
                        /* "$$(" is a literal "$(" */
                        kiln_buf_puts (&b, "$(", NULL);
                        s += 3;
                        continue;
                }
                if (s[0] == '$' && s[1] == '(')
                        used = substitute_one (&b, s + 2, params, results_dir);
                if (used) {
                        s += 2 + used;
                } else {
                        kiln_buf_append (&b, s, 1, NULL);
                        s++;
                }
        }
        return kiln_buf_steal (&b, &len);
}

void
kiln_step_expand_list (char ***argv, const json_t *list, const json_t *params,
                       const char *results_dir)
{
        size_t i, j;
        json_t *el, *item;

        json_array_foreach (list, i, el)
        {
                const char *s = json_string_value (el);
                size_t n = s ? strlen (s) : 0;
                if (s == NULL)
                        continue;
                if (n > 13 && kiln_str_has_prefix (s, "$(params.")
                    && strcmp (s + n - 4, "[*])") == 0) {
                        cleanup_free char *name = strndup (s + 9, n - 13);
                        const json_t *v = json_object_get (params, name);
                        if (json_is_array (v)) {
                                json_array_foreach (v, j, item)
                                {
                                        const char *is = json_string_value (item);
                                        *argv = kiln_strv_append (*argv, is ? is : "");
                                }
                                continue;
                        }
                }
                cleanup_free char *sub = kiln_step_substitute (s, params, results_dir);
                *argv = kiln_strv_append (*argv, sub);
        }
}

static bool
mentions (const json_t *v, const char *needle)
{
        const char *key;
        json_t *child;
        size_t i;

        if (json_is_string (v))
                return strstr (json_string_value (v), needle) != NULL;
        if (json_is_object (v)) {
                json_object_foreach ((json_t *) v, key, child)
                {
                        if (mentions (child, needle))
                                return true;
                }
        }
        if (json_is_array (v)) {
                json_array_foreach (v, i, child)
                {
                        if (mentions (child, needle))
                                return true;
                }
        }
        return false;
}

const json_t *
kiln_strategy_entry (const json_t *strategy, const char *list, const char *name)
{
        const json_t *entries = json_object_get (json_object_get (strategy, "spec"), list);
        size_t i;
        json_t *e;

        json_array_foreach (entries, i, e)
        {
                const char *n = json_string_value (json_object_get (e, "name"));
                if (n && strcmp (n, name) == 0)
                        return e;
        }
        return NULL;
}

bool
kiln_strategy_mentions (const json_t *strategy, const char *needle)
{
        return mentions (json_object_get (json_object_get (strategy, "spec"), "steps"), needle);
}

/* ---- finding a run's processes ---- */

static bool
environ_has (pid_t pid, const char *marker)
{
        char path[64];
        cleanup_free char *data = NULL;
        size_t len, mlen = strlen (marker);

        snprintf (path, sizeof path, "/proc/%d/environ", (int) pid);
        if (kiln_read_file (&data, &len, path, ENVIRON_MAX, NULL) < 0)
                return false;
        for (size_t i = 0; i < len;) {
                size_t n = strnlen (data + i, len - i);
                if (n == mlen && memcmp (data + i, marker, mlen) == 0)
                        return true;
                i += n + 1;
        }
        return false;
}

static int
signal_marked (const char *marker, int sig)
{
        cleanup_dir DIR *d = opendir ("/proc");
        struct dirent *e;
        pid_t self = getpid ();
        int n = 0;

        if (d == NULL)
                return 0;
        while ((e = readdir (d)) != NULL) {
                int64_t pid;
                if (!isdigit ((unsigned char) e->d_name[0])
                    || kiln_parse_int64 (e->d_name, 1, INT32_MAX, &pid) < 0 || pid == self)
                        continue;
                if (environ_has ((pid_t) pid, marker) && kill ((pid_t) pid, sig) == 0)
                        n++;
        }
        return n;
}

int
kiln_step_kill_marked (const char *marker)
{
        return signal_marked (marker, SIGKILL);
}

/* ---- running ---- */

static void __attribute__ ((noreturn))
child (const kiln_step_run *run, int out_fd, int err_fd, int report_fd)
{
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int null = open ("/dev/null", O_RDONLY);
        int e;

        setsid ();
        for (int s = 1; s < NSIG; s++)
                sigaction (s, &dfl, NULL);
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        if (null < 0 || dup2 (null, 0) < 0 || dup2 (out_fd, 1) < 0 || dup2 (err_fd, 2) < 0
            || report_fd < 3)
                goto fail;
        if (run->cwd && chdir (run->cwd) < 0)
                goto fail;
        /* The daemon's own files are private (umask 077); a step makes files
         * as a container would. */
        umask (022);
#ifdef SYS_close_range
        syscall (SYS_close_range, 3U, (unsigned) report_fd - 1, 0U);
        syscall (SYS_close_range, (unsigned) report_fd + 1, ~0U, 0U);
#endif
        execve (run->argv[0], run->argv, run->env);
fail:
        e = errno;
        if (write (report_fd, &e, sizeof e) < 0) {
                /* nothing more to do */
        }
        _exit (127);
}

typedef struct stream {
        int fd;
        int num;
        kiln_buf line;
} stream;

typedef struct exec_state {
        kiln_step_run *run;
        stream s[2];
        kiln_buf tail;
} exec_state;

static void
emit (exec_state *st, stream *s, const char *p, size_t n)
{
        kiln_buf out = KILN_BUF_INIT;

        if (n && p[n - 1] == '\r')
                n--;
        if (s->num == 1) {
                if (st->tail.len + n + 1 > STDOUT_TAIL)
                        kiln_buf_reset (&st->tail);
                kiln_buf_append (&st->tail, p, n, NULL);
                kiln_buf_puts (&st->tail, "\n", NULL);
        } else if (n > 0) {
                free (st->run->last_stderr);
                st->run->last_stderr = strndup (p, n > 512 ? 512 : n);
        }
        kiln_buf_printf (&out, NULL, "[%s] %.*s\n", st->run->prefix, (int) n, p);
        if (st->run->log_fd >= 0)
                kiln_write_all (st->run->log_fd, out.data, out.len, NULL);
        kiln_buf_free (&out);
}

static void
split_lines (exec_state *st, stream *s, bool eof)
{
        size_t start = 0;

        for (size_t i = 0; i < s->line.len; i++)
                if (s->line.data[i] == '\n') {
                        emit (st, s, s->line.data + start, i - start);
                        start = i + 1;
                }
        if (s->line.len - start >= LINE_MAX_BYTES || (eof && s->line.len > start)) {
                emit (st, s, s->line.data + start, s->line.len - start);
                start = s->line.len;
        }
        if (start) {
                memmove (s->line.data, s->line.data + start, s->line.len - start);
                s->line.len -= start;
        }
}

static void
read_stream (exec_state *st, stream *s)
{
        char chunk[16384];
        ssize_t n = read (s->fd, chunk, sizeof chunk);

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                split_lines (st, s, true);
                close (s->fd);
                s->fd = -1;
                return;
        }
        kiln_buf_append (&s->line, chunk, (size_t) n, NULL);
        split_lines (st, s, false);
}

/* Reads output for up to wait_ms. */
static void
pump (exec_state *st, int wait_ms)
{
        struct pollfd p[2];
        nfds_t n = 0;

        for (int i = 0; i < 2; i++)
                if (st->s[i].fd >= 0) {
                        p[n].fd = st->s[i].fd;
                        p[n].events = POLLIN;
                        p[n].revents = 0;
                        n++;
                }
        if (n == 0) {
                struct timespec ts = { 0, (long) wait_ms * 1000000L };
                nanosleep (&ts, NULL);
                return;
        }
        if (poll (p, n, wait_ms) <= 0)
                return;
        for (nfds_t i = 0; i < n; i++)
                if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                        for (int k = 0; k < 2; k++)
                                if (st->s[k].fd == p[i].fd)
                                        read_stream (st, &st->s[k]);
}

static bool
reap (pid_t pid, int *status)
{
        pid_t r;

        do
                r = waitpid (pid, status, WNOHANG);
        while (r < 0 && errno == EINTR);
        return r == pid;
}

static void
signal_run (kiln_step_run *run, pid_t pgid, int sig)
{
        kill (-pgid, sig);
        if (run->marker)
                signal_marked (run->marker, sig);
}

/* SIGTERM, a grace period to finish cleanly, then SIGKILL. */
static int
terminate (exec_state *st, pid_t pid)
{
        int64_t until = kiln_monotonic_ms () + STOP_GRACE_MS;
        int status = 0;

        signal_run (st->run, pid, SIGTERM);
        while (kiln_monotonic_ms () < until) {
                if (reap (pid, &status)) {
                        signal_run (st->run, pid, SIGKILL);
                        return status;
                }
                pump (st, 50);
        }
        signal_run (st->run, pid, SIGKILL);
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
                ;
        return status;
}

static int
supervise (exec_state *st, pid_t pid)
{
        kiln_step_run *run = st->run;
        int status = 0;

        for (;;) {
                if (run->stop && *run->stop) {
                        run->stopped = true;
                        return terminate (st, pid);
                }
                if (run->deadline_ms > 0 && kiln_monotonic_ms () >= run->deadline_ms) {
                        run->timed_out = true;
                        return terminate (st, pid);
                }
                if (reap (pid, &status)) {
                        /* What it left running goes with it. */
                        signal_run (run, pid, SIGKILL);
                        int64_t until = kiln_monotonic_ms () + DRAIN_MS;
                        while ((st->s[0].fd >= 0 || st->s[1].fd >= 0)
                               && kiln_monotonic_ms () < until)
                                pump (st, 50);
                        return status;
                }
                pump (st, 100);
        }
}

static int
spawn (pid_t *out, kiln_step_run *run, int out_fd, int err_fd, kiln_error **err)
{
        int report[2];
        int e = 0;
        ssize_t n;
        pid_t pid;

        if (pipe2 (report, O_CLOEXEC) < 0)
                return kiln_error_make (err, errno, "pipe");
        pid = fork ();
        if (pid < 0) {
                e = errno;
                close (report[0]);
                close (report[1]);
                return kiln_error_make (err, e, "fork");
        }
        if (pid == 0)
                child (run, out_fd, err_fd, report[1]);
        close (report[1]);
        do
                n = read (report[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        close (report[0]);
        if (n == sizeof e) {
                waitpid (pid, NULL, 0);
                return kiln_error_make (err, e, "run `%s`", run->argv[0]);
        }
        *out = pid;
        return 0;
}

int
kiln_step_exec (kiln_step_run *run, kiln_error **err)
{
        exec_state st = { .run = run, .s = { { .fd = -1, .num = 1 }, { .fd = -1, .num = 2 } } };
        int outp[2], errp[2];
        pid_t pid = -1;
        int status, r;
        size_t len;

        if (pipe2 (outp, O_CLOEXEC) < 0)
                return kiln_error_make (err, errno, "pipe");
        if (pipe2 (errp, O_CLOEXEC) < 0) {
                close (outp[0]);
                close (outp[1]);
                return kiln_error_make (err, errno, "pipe");
        }
        r = spawn (&pid, run, outp[1], errp[1], err);
        close (outp[1]);
        close (errp[1]);
        st.s[0].fd = outp[0];
        st.s[1].fd = errp[0];
        kiln_buf_init (&st.s[0].line, LINE_MAX_BYTES * 2);
        kiln_buf_init (&st.s[1].line, LINE_MAX_BYTES * 2);
        kiln_buf_init (&st.tail, STDOUT_TAIL * 2);
        if (r == 0) {
                status = supervise (&st, pid);
                run->exit_code
                    = WIFSIGNALED (status) ? 128 + WTERMSIG (status) : WEXITSTATUS (status);
        }
        for (int i = 0; i < 2; i++) {
                if (st.s[i].fd >= 0)
                        close (st.s[i].fd);
                kiln_buf_free (&st.s[i].line);
        }
        run->stdout_tail = kiln_buf_steal (&st.tail, &len);
        return r;
}

void
kiln_step_run_clear (kiln_step_run *run)
{
        free (run->last_stderr);
        free (run->stdout_tail);
        run->last_stderr = NULL;
        run->stdout_tail = NULL;
}
