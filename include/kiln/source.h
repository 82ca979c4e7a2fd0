/* kiln: fetching function source (libgit2; the only module that calls it).
 *
 * A build's source is either a local directory or a git repository cloned
 * at a revision into a per-build work directory.  The result names the
 * directory the build sees (after `context_dir`) and records the commit for
 * the image's labels and SOURCE_DATE_EPOCH.
 *
 * Credentials (a password, a token, an SSH key passphrase) are only handed
 * to libgit2's credential callback: they never appear in an error, a log
 * line, the result, or the cloned repository's .git/config (userinfo in the
 * URL is removed before cloning and used as credentials instead).
 *
 * Shallow clones: libgit2 1.5 cannot fetch with a depth, so every clone
 * fetches the full history of all branches and tags; a revision that is a
 * commit sha must be reachable from one of them. */
#ifndef KILN_SOURCE_H
#define KILN_SOURCE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct kiln_source_opts {
        /* Exactly one of url and local_dir. */
        const char *url;       /* file://, http(s)://, ssh://, or scp-like user@host:path */
        const char *local_dir; /* a directory on this machine */

        /* A branch, a tag, or a full or abbreviated (>= 4 hex) commit sha;
         * "refs/heads/X" and "refs/tags/X" are accepted.  NULL or "": the
         * remote's HEAD.  Ignored for a local_dir. */
        const char *revision;

        /* A sub-folder of the source holding the function: relative, no
         * `..`, and not escaping the source through a symlink.  NULL or "":
         * the root. */
        const char *context_dir;

        /* Where a clone goes (must be missing or empty), or where a
         * local_dir is copied to (without its .git) so that a build cannot
         * change the user's files.  Required for a url; for a local_dir,
         * NULL uses the directory in place. */
        const char *work_dir;

        /* HTTP(S) basic auth, for a token give it as the password. */
        const char *username;
        const char *password;

        /* SSH: a private key file, its passphrase (may be NULL) and an
         * optional public key file.  The user name comes from the URL, else
         * `username`, else "git". */
        const char *ssh_key_path;
        const char *ssh_key_passphrase;
        const char *ssh_public_key_path;
        /* Or the private key itself (PEM or OpenSSH format), kept in
         * memory; it wins over ssh_key_path. */
        const char *ssh_key;
        /* known_hosts lines (the content, not a path): when set, the
         * server's host key must be listed for its host ("host",
         * "[host]:port", "*" patterns; a hashed "|1|..." entry matches any
         * host), else the clone fails with KILN_E_NETWORK.  NULL: any host
         * key is accepted. */
        const char *ssh_known_hosts;

        /* Accept any TLS certificate (tests, private CAs).  Default false. */
        bool insecure_skip_tls_verify;

        /* When it becomes non-zero the transfer stops with KILN_E_CANCELED.
         * May be NULL. */
        const volatile sig_atomic_t *cancel;
} kiln_source_opts;

typedef struct kiln_source {
        char *root;          /* the checked-out tree or local directory, absolute */
        char *app_dir;       /* root + context_dir, resolved: what the build uses */
        char *url;           /* the URL without credentials; NULL for a local_dir */
        char *revision;      /* the revision asked for; NULL for the default */
        char *commit;        /* 40 hex digits; NULL for a local_dir that is not a git repo */
        char *author;        /* "Name <email>" of the commit's author, or NULL */
        char *branch;        /* branch name when the revision was one or HEAD's; else NULL */
        int64_t commit_time; /* committer time, seconds since the epoch; -1 when unknown */
} kiln_source;

/* Fetches the source.  On success *out is filled (its strings are owned by
 * it: release with kiln_source_clear).  On failure *out is left cleared and
 * the error is one line naming the URL (without credentials) and the
 * revision:
 *   KILN_E_NOT_FOUND  "repository `URL` not found",
 *                     "revision `v9` not found in `URL`",
 *                     "context dir `x` not found in `URL` at `REV`"
 *   KILN_E_AUTH       credentials missing or refused
 *   KILN_E_INVALID    a bad context dir, an ambiguous short sha, bad opts
 *   KILN_E_NETWORK    the server could not be reached
 *   KILN_E_UNSUPPORTED an ssh URL when libgit2 was built without SSH
 *   KILN_E_CANCELED   opts->cancel was raised */
int kiln_source_fetch (kiln_source *out, const kiln_source_opts *opts, kiln_error **err);

/* Frees what a kiln_source holds (not the work directory) and zeroes it. */
void kiln_source_clear (kiln_source *src);

/* A copy of url without userinfo ("https://u:p@h/x" -> "https://h/x",
 * "user@host:path" is kept: the user name there is not a secret).  The
 * caller frees the result. */
char *kiln_source_redact_url (const char *url);

/* The version string of the libgit2 in use ("1.5.1"); static. */
const char *kiln_source_libgit2_version (void);

#endif
