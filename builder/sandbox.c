/* kiln: running build commands under bubblewrap or as plain children (see
 * include/kiln/sandbox.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/log.h"
#include "kiln/sandbox.h"

#define LINE_MAX_BYTES ((size_t) 64 << 10)
#define LAST_LINE_MAX 1024
#define POLL_SLICE_MS 100
/* How long output is still read after the command exited, for a process
 * that escaped its group and kept the pipe open. */
#define DRAIN_MS 2000

static const char *const ro_etc[] = {
        "/etc/ssl",   "/etc/ca-certificates", "/etc/resolv.conf",
        "/etc/hosts", "/etc/nsswitch.conf",   "/etc/passwd",
        "/etc/group", "/etc/alternatives",    "/etc/localtime",
};
static const char *const root_links[] = { "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32" };

void
kiln_sandbox_output_stderr (void *data, const char *label, int stream, const char *line, size_t len)
{
        (void) data;
        (void) stream;
        fprintf (stderr, "[%s] %.*s\n", label ? label : "build", (int) len, line);
}

void
kiln_sandbox_result_clear (kiln_sandbox_result *r)
{
        free (r->last_stderr_line);
        memset (r, 0, sizeof (*r));
}

void
kiln_sandbox_format_duration (char *buf, size_t size, int64_t ms)
{
        if (ms % 60000 == 0 && ms >= 60000)
                snprintf (buf, size, "%lldm", (long long) (ms / 60000));
        else if (ms % 1000 == 0)
                snprintf (buf, size, "%llds", (long long) (ms / 1000));
        else
                snprintf (buf, size, "%lldms", (long long) ms);
}

static int64_t
now_ms (void)
{
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- Finding and probing bubblewrap ---------------------------------- */

static char *
find_in_path (const char *name)
{
        const char *path = getenv ("PATH");
        const char *p = path && *path ? path : "/usr/bin:/bin";

        for (;;) {
                const char *colon = strchr (p, ':');
                size_t n = colon ? (size_t) (colon - p) : strlen (p);
                char *cand = kiln_strdup_printf ("%.*s/%s", (int) (n ? n : 1), n ? p : ".", name);
                if (access (cand, X_OK) == 0)
                        return cand;
                free (cand);
                if (colon == NULL)
                        return NULL;
                p = colon + 1;
        }
}

static char *bwrap_path;
static bool bwrap_works;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static pthread_once_t warn_once = PTHREAD_ONCE_INIT;

static void
probe (void)
{
        pid_t pid;
        int status;

        bwrap_path = find_in_path ("bwrap");
        if (bwrap_path == NULL)
                return;
        pid = fork ();
        if (pid == 0) {
                int null = open ("/dev/null", O_RDWR);
                if (null >= 0) {
                        dup2 (null, 0);
                        dup2 (null, 1);
                        dup2 (null, 2);
                }
                execl (bwrap_path, "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/",
                       "/", "--proc", "/proc", "--dev", "/dev", "true", (char *) NULL);
                _exit (127);
        }
        if (pid > 0 && waitpid (pid, &status, 0) == pid && WIFEXITED (status)
            && WEXITSTATUS (status) == 0)
                bwrap_works = true;
}

bool
kiln_sandbox_available (void)
{
        pthread_once (&probe_once, probe);
        return bwrap_works;
}

const char *
kiln_sandbox_bwrap_path (void)
{
        return kiln_sandbox_available () ? bwrap_path : NULL;
}

static void
warn_unsandboxed (void)
{
        kiln_warn ("bubblewrap (bwrap) is not usable here: buildpacks run as plain processes "
                   "and can see this machine's files");
}

/* --- Building the command line --------------------------------------- */

static char **
push (char **v, const char *s)
{
        return kiln_strv_append (v, s);
}

static char **
push3 (char **v, const char *a, const char *b, const char *c)
{
        v = push (v, a);
        v = push (v, b);
        return push (v, c);
}

static char **
bwrap_argv (const kiln_sandbox_opts *o)
{
        char **v = kiln_strv_new ();
        struct stat st;

        v = push (v, "bwrap");
        v = push (v, "--unshare-all");
        if (o->share_network)
                v = push (v, "--share-net");
        v = push (v, "--die-with-parent");
        v = push (v, "--new-session");
        v = push3 (v, "--ro-bind", "/usr", "/usr");
        for (size_t i = 0; i < KILN_N_ELEMENTS (root_links); i++) {
                char target[PATH_MAX];
                ssize_t n;
                if (lstat (root_links[i], &st) < 0)
                        continue;
                if (S_ISLNK (st.st_mode)
                    && (n = readlink (root_links[i], target, sizeof target - 1)) > 0) {
                        target[n] = '\0';
                        v = push3 (v, "--symlink", target, root_links[i]);
                } else if (S_ISDIR (st.st_mode)) {
                        v = push3 (v, "--ro-bind", root_links[i], root_links[i]);
                }
        }
        for (size_t i = 0; i < KILN_N_ELEMENTS (ro_etc); i++)
                v = push3 (v, "--ro-bind-try", ro_etc[i], ro_etc[i]);
        v = push3 (v, "--proc", "/proc", "--dev");
        v = push (v, "/dev");
        v = push3 (v, "--tmpfs", "/tmp", "--chdir");
        v = push (v, o->cwd ? o->cwd : "/");
        for (size_t i = 0; i < o->n_mounts; i++) {
                const kiln_sandbox_mount *m = &o->mounts[i];
                v = push3 (v, m->writable ? "--bind" : "--ro-bind", m->host,
                           m->dest ? m->dest : m->host);
        }
        v = push (v, "--");
        for (char *const *a = o->argv; *a; a++)
                v = push (v, *a);
        return v;
}

/* --- The child ------------------------------------------------------- */

/* Only async-signal-safe calls between fork and exec. */
static void __attribute__ ((noreturn))
child (const char *path, char *const *argv, char *const *env, const char *cwd, int out_fd,
       int err_fd, int report_fd)
{
        sigset_t all;
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        int null = open ("/dev/null", O_RDONLY);
        int e;

        setsid ();
        for (int s = 1; s < NSIG; s++)
                sigaction (s, &dfl, NULL);
        sigemptyset (&all);
        sigprocmask (SIG_SETMASK, &all, NULL);
        if (null < 0 || dup2 (null, 0) < 0 || dup2 (out_fd, 1) < 0 || dup2 (err_fd, 2) < 0)
                goto fail;
        if (report_fd < 3) /* keep it above the standard fds */
                goto fail;
        if (cwd && chdir (cwd) < 0)
                goto fail;
#ifdef SYS_close_range
        syscall (SYS_close_range, 3U, (unsigned) report_fd - 1, 0U);
        syscall (SYS_close_range, (unsigned) report_fd + 1, ~0U, 0U);
#endif
        execve (path, argv, env);
fail:
        e = errno;
        if (write (report_fd, &e, sizeof e) < 0) {
                /* nothing more to do */
        }
        _exit (127);
}

/* --- Reading output -------------------------------------------------- */

typedef struct stream {
        int fd;
        int num; /* 1 or 2 */
        kiln_buf line;
} stream;

typedef struct run_state {
        const kiln_sandbox_opts *o;
        stream s[2];
        char *last_err;
} run_state;

static void
emit_line (run_state *st, stream *s, const char *p, size_t n)
{
        if (n && p[n - 1] == '\r')
                n--;
        if (s->num == 2) {
                size_t a = 0, b = n;
                while (a < b && (p[a] == ' ' || p[a] == '\t'))
                        a++;
                while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
                        b--;
                if (b > a) {
                        free (st->last_err);
                        st->last_err = kiln_strdup_printf (
                            "%.*s", (int) (b - a > LAST_LINE_MAX ? LAST_LINE_MAX : b - a), p + a);
                }
        }
        (st->o->output ? st->o->output : kiln_sandbox_output_stderr) (st->o->output_data,
                                                                      st->o->label, s->num, p, n);
}

static void
split_lines (run_state *st, stream *s, bool eof)
{
        size_t start = 0;

        for (size_t i = 0; i < s->line.len; i++)
                if (s->line.data[i] == '\n') {
                        emit_line (st, s, s->line.data + start, i - start);
                        start = i + 1;
                }
        if (s->line.len - start >= LINE_MAX_BYTES || (eof && s->line.len > start)) {
                emit_line (st, s, s->line.data + start, s->line.len - start);
                start = s->line.len;
        }
        if (start == 0)
                return;
        memmove (s->line.data, s->line.data + start, s->line.len - start);
        s->line.len -= start;
}

/* Reads what is there; closes the stream at EOF. */
static void
read_stream (run_state *st, stream *s)
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
        /* Bounded: split_lines keeps at most LINE_MAX_BYTES pending. */
        kiln_buf_append (&s->line, chunk, (size_t) n, NULL);
        split_lines (st, s, false);
}

static bool
exited_unreaped (pid_t pid)
{
        siginfo_t si = { 0 };
        return waitid (P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0
               && si.si_pid == pid;
}

/* Polls output until the command exits (and its pipes drain), the
 * deadline passes or cancel is raised.  Returns 0, or the error code. */
static kiln_error_code
supervise (run_state *st, pid_t pid)
{
        const kiln_sandbox_opts *o = st->o;
        int64_t deadline = o->timeout_ms > 0 ? now_ms () + o->timeout_ms : -1;
        int64_t drain_until = -1;
        bool exited = false;

        for (;;) {
                struct pollfd p[2];
                nfds_t n = 0;
                int wait = POLL_SLICE_MS;

                if (o->cancel && *o->cancel)
                        return KILN_E_CANCELED;
                if (!exited && deadline >= 0 && now_ms () >= deadline)
                        return KILN_E_TIMEOUT;
                if (!exited && exited_unreaped (pid)) {
                        exited = true;
                        /* Whatever it left running in its group goes with it. */
                        kill (-pid, SIGKILL);
                        drain_until = now_ms () + DRAIN_MS;
                }
                if (exited && (now_ms () >= drain_until || (st->s[0].fd < 0 && st->s[1].fd < 0)))
                        return 0;
                for (int i = 0; i < 2; i++)
                        if (st->s[i].fd >= 0) {
                                p[n].fd = st->s[i].fd;
                                p[n].events = POLLIN;
                                p[n].revents = 0;
                                n++;
                        }
                if (n == 0) {
                        /* Both pipes closed but the command still runs. */
                        struct timespec ts = { 0, POLL_SLICE_MS * 1000000L };
                        nanosleep (&ts, NULL);
                        continue;
                }
                if (poll (p, n, wait) < 0 && errno != EINTR)
                        return KILN_E_IO;
                for (nfds_t i = 0; i < n; i++) {
                        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        for (int k = 0; k < 2; k++)
                                if (st->s[k].fd == p[i].fd)
                                        read_stream (st, &st->s[k]);
                }
        }
}

/* --- Running --------------------------------------------------------- */

static int
make_pipe (int fds[2], kiln_error **err)
{
        if (pipe2 (fds, O_CLOEXEC) < 0)
                return kiln_error_make (err, errno, "pipe");
        return 0;
}

static void
close_fd (int *fd)
{
        if (*fd >= 0)
                close (*fd);
        *fd = -1;
}

static int
spawn (pid_t *out, const char *path, char *const *argv, char *const *env, const char *cwd,
       int out_fd, int err_fd, kiln_error **err)
{
        int report[2];
        int e = 0;
        ssize_t n;
        pid_t pid;

        if (make_pipe (report, err) < 0)
                return -1;
        pid = fork ();
        if (pid < 0) {
                e = errno;
                close (report[0]);
                close (report[1]);
                return kiln_error_make (err, e, "fork");
        }
        if (pid == 0)
                child (path, argv, env, cwd, out_fd, err_fd, report[1]);
        close (report[1]);
        do
                n = read (report[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        close (report[0]);
        if (n == sizeof e) {
                waitpid (pid, NULL, 0);
                return kiln_error_make (err, e, "run `%s`", argv[0]);
        }
        *out = pid;
        return 0;
}

static int
resolve_mode (bool *isolated, kiln_sandbox_mode mode, kiln_error **err)
{
        *isolated = false;
        if (mode == KILN_SANDBOX_NONE)
                return 0;
        if (kiln_sandbox_available ()) {
                *isolated = true;
                return 0;
        }
        if (mode == KILN_SANDBOX_REQUIRE)
                return kiln_error_makec (
                    err, KILN_E_UNSUPPORTED, 0,
                    "a sandbox was required but bubblewrap (bwrap) is not usable");
        pthread_once (&warn_once, warn_unsandboxed);
        return 0;
}

static char *const empty_env[] = { NULL };

int
kiln_sandbox_run (kiln_sandbox_result *out, const kiln_sandbox_opts *o, kiln_error **err)
{
        cleanup_strv char **args = NULL;
        run_state st = { .o = o, .s = { { .fd = -1, .num = 1 }, { .fd = -1, .num = 2 } } };
        int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
        const char *path;
        bool isolated;
        kiln_error_code failed = 0;
        pid_t pid = -1;
        int status = 0;

        memset (out, 0, sizeof (*out));
        if (o->argv == NULL || o->argv[0] == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "sandbox: no command");
        if (resolve_mode (&isolated, o->mode, err) < 0)
                return -1;
        if (isolated) {
                args = bwrap_argv (o);
                path = bwrap_path;
        } else {
                path = o->argv[0];
        }
        if (make_pipe (out_pipe, err) < 0)
                return -1;
        if (make_pipe (err_pipe, err) < 0) {
                close_fd (&out_pipe[0]);
                close_fd (&out_pipe[1]);
                return -1;
        }
        int r = spawn (&pid, path, isolated ? args : o->argv, o->env ? o->env : empty_env,
                       isolated ? NULL : o->cwd, out_pipe[1], err_pipe[1], err);
        close_fd (&out_pipe[1]);
        close_fd (&err_pipe[1]);
        st.s[0].fd = out_pipe[0];
        st.s[1].fd = err_pipe[0];
        kiln_buf_init (&st.s[0].line, LINE_MAX_BYTES * 2);
        kiln_buf_init (&st.s[1].line, LINE_MAX_BYTES * 2);
        if (r == 0) {
                failed = supervise (&st, pid);
                kill (-pid, SIGKILL);
                if (failed)
                        kill (pid, SIGKILL);
                while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        for (int i = 0; i < 2; i++) {
                close_fd (&st.s[i].fd);
                kiln_buf_free (&st.s[i].line);
        }
        if (r < 0) {
                free (st.last_err);
                return -1;
        }
        out->sandboxed = isolated;
        if (WIFSIGNALED (status)) {
                out->term_signal = WTERMSIG (status);
                out->exit_code = 128 + out->term_signal;
        } else {
                out->exit_code = WEXITSTATUS (status);
        }
        if (failed == 0) {
                out->last_stderr_line = st.last_err;
                return 0;
        }
        free (st.last_err);
        if (failed == KILN_E_TIMEOUT) {
                char d[32];
                kiln_sandbox_format_duration (d, sizeof d, o->timeout_ms);
                return kiln_error_makec (err, KILN_E_TIMEOUT, 0, "%s timed out after %s",
                                         o->label ? o->label : o->argv[0], d);
        }
        if (failed == KILN_E_CANCELED)
                return kiln_error_makec (err, KILN_E_CANCELED, 0, "%s canceled",
                                         o->label ? o->label : o->argv[0]);
        return kiln_error_makec (err, KILN_E_IO, 0, "%s: poll failed",
                                 o->label ? o->label : o->argv[0]);
}
