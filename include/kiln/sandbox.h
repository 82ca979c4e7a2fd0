/* kiln: running untrusted build commands (buildpacks' bin/detect, bin/build).
 *
 * With bubblewrap (`bwrap` on PATH and able to create namespaces) the
 * command runs in new user, mount, pid, ipc, uts and cgroup namespaces, as
 * the caller's uid, and sees only:
 *   - /usr read-only, with /bin /lib /lib64 /sbin as on the host (symlinks
 *     into /usr on a merged-/usr system),
 *   - /etc/ssl, /etc/ca-certificates, /etc/resolv.conf, /etc/hosts,
 *     /etc/nsswitch.conf, /etc/passwd, /etc/group, /etc/alternatives
 *     read-only when present,
 *   - a fresh /proc, a minimal /dev and an empty tmpfs /tmp,
 *   - the mounts the caller lists,
 * and nothing else: not $HOME, not /root, not kiln's data or credentials.
 * The network namespace is shared unless share_network is false.  The
 * environment is exactly opts->env (passed through execve, so values never
 * appear on a command line).
 *
 * Without bubblewrap the command runs as a plain child in its own session
 * and process group, with the same environment and working directory but
 * the host's view of the file system; kiln warns once per process.
 *
 * Either way the whole process tree is killed (SIGKILL) on timeout, on
 * cancel, and when the command exits (so nothing it started in the
 * background survives it).  A command that escapes its process group with
 * setsid(2) is only contained under bubblewrap. */
#ifndef KILN_SANDBOX_H
#define KILN_SANDBOX_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum kiln_sandbox_mode {
        KILN_SANDBOX_AUTO = 0, /* bubblewrap when it works, else plain (one warning) */
        KILN_SANDBOX_REQUIRE,  /* bubblewrap or KILN_E_UNSUPPORTED */
        KILN_SANDBOX_NONE,     /* plain child processes, no warning */
} kiln_sandbox_mode;

/* Receives the command's output one line at a time (without the newline;
 * lines longer than 64 KiB are split).  stream is 1 (stdout) or 2
 * (stderr); label is opts->label.  The line is only valid for the call. */
typedef void (*kiln_output_fn) (void *data, const char *label, int stream, const char *line,
                                size_t len);

/* The default sink: "[LABEL] LINE" to stderr. */
void kiln_sandbox_output_stderr (void *data, const char *label, int stream, const char *line,
                                 size_t len);

typedef struct kiln_sandbox_mount {
        const char *host; /* an existing file or directory */
        const char *dest; /* the path inside; NULL: the same as host */
        bool writable;
} kiln_sandbox_mount;

typedef struct kiln_sandbox_opts {
        char *const *argv; /* argv[0]: the program, a path valid inside */
        char *const *env;  /* "NAME=VALUE" strings: the whole environment; may be NULL */
        const char *cwd;   /* working directory inside; NULL: "/" (or unchanged) */
        const kiln_sandbox_mount *mounts;
        size_t n_mounts;
        kiln_sandbox_mode mode;
        bool share_network; /* bubblewrap only */

        int64_t timeout_ms;                  /* <= 0: none */
        const volatile sig_atomic_t *cancel; /* raised: kill and fail with KILN_E_CANCELED */

        /* For output and messages: "build dev.kiln.go". */
        const char *label;
        kiln_output_fn output; /* NULL: kiln_sandbox_output_stderr */
        void *output_data;
} kiln_sandbox_opts;

typedef struct kiln_sandbox_result {
        int exit_code;          /* the exit status, or 128 + signal */
        int term_signal;        /* the signal that ended it, or 0 */
        char *last_stderr_line; /* the last non-empty stderr line (bounded), or NULL; owned */
        bool sandboxed;         /* ran under bubblewrap */
} kiln_sandbox_result;

/* Runs the command to completion.  Returns 0 when it ran and exited, with
 * any status (see out->exit_code); -1 when it could not be started, when
 * it timed out (KILN_E_TIMEOUT "LABEL timed out after 10s") or was canceled
 * (KILN_E_CANCELED).  On success free out with kiln_sandbox_result_clear;
 * on failure it holds nothing to free (exit_code and term_signal are still
 * filled when the command was started). */
int kiln_sandbox_run (kiln_sandbox_result *out, const kiln_sandbox_opts *opts, kiln_error **err);

void kiln_sandbox_result_clear (kiln_sandbox_result *r);

/* Whether bubblewrap is usable here (found on PATH and able to create its
 * namespaces); probed once per process. */
bool kiln_sandbox_available (void);

/* The bwrap program kiln_sandbox_available found usable, or NULL; static. */
const char *kiln_sandbox_bwrap_path (void);

/* Formats a duration in ms as "10s", "1500ms", "2m". */
void kiln_sandbox_format_duration (char *buf, size_t size, int64_t ms);

#endif
