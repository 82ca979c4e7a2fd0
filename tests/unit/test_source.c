/* Unit tests: the source module, against real repositories made with the
 * git CLI and cloned over file:// and over smart HTTP with Basic auth. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/source.h"
#include "unit.h"

/* libgit2's PCRE2 leak is suppressed by builder/source.c itself. */

static char *tmp;      /* the test's scratch directory */
static char *repo;     /* a repository: main, feature, tag v1, sub/fn */
static char *repo_url; /* file:// URL of repo */
static char sha_main[41], sha_feature[41], sha_v1[41];
static int work_n;

static int __attribute__ ((format (printf, 1, 2))) sh (const char *fmt, ...)
{
        va_list ap;
        char *cmd = NULL;
        int rc;

        va_start (ap, fmt);
        if (vasprintf (&cmd, fmt, ap) < 0)
                abort ();
        va_end (ap);
        rc = system (cmd);
        if (rc != 0)
                fprintf (stderr, "  command failed (%d): %s\n", rc, cmd);
        free (cmd);
        return rc;
}

static void
rev_parse (char out[41], const char *rev)
{
        cleanup_free char *cmd
            = kiln_strdup_printf ("git -C '%s' rev-parse '%s^{commit}'", repo, rev);
        FILE *p = popen (cmd, "r");
        out[0] = '\0';
        if (p == NULL || fgets (out, 41, p) == NULL)
                fprintf (stderr, "  rev-parse %s failed\n", rev);
        if (p)
                pclose (p);
}

static char *
next_work_dir (void)
{
        return kiln_strdup_printf ("%s/work%d", tmp, ++work_n);
}

static char *
read_text (const char *dir, const char *name)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, name);
        kiln_error *err = NULL;
        char *data = NULL;

        if (kiln_read_file (&data, NULL, path, 4096, &err) < 0) {
                kiln_error_free (err);
                return NULL;
        }
        return data;
}

static void
make_repo (void)
{
        kiln_error *err = NULL;

        if (kiln_mkdtemp (&tmp, "source", &err) < 0)
                abort ();
        repo = kiln_strdup_printf ("%s/repo", tmp);
        repo_url = kiln_strdup_printf ("file://%s", repo);
        setenv ("GIT_AUTHOR_NAME", "Ann Author", 1);
        setenv ("GIT_AUTHOR_EMAIL", "ann@example.com", 1);
        setenv ("GIT_COMMITTER_NAME", "Carl Committer", 1);
        setenv ("GIT_COMMITTER_EMAIL", "carl@example.com", 1);
        setenv ("GIT_CONFIG_NOSYSTEM", "1", 1);
        setenv ("GIT_CONFIG_GLOBAL", "/dev/null", 1);
        sh ("set -e; cd '%s'; git init -q -b main repo; cd repo;"
            "mkdir -p sub/fn; echo v1 > hello.txt; echo 'package fn' > sub/fn/fn.go;"
            "ln -s ../.. sub/escape; ln -s fn sub/inside;"
            "git add -A; GIT_COMMITTER_DATE='@1700000000 +0000' git commit -qm one;"
            "git tag -a v1 -m 'version 1';"
            "git checkout -qb feature; echo f > feature.txt; git add -A;"
            "GIT_COMMITTER_DATE='@1700000100 +0000' git commit -qm feature;"
            "git checkout -q main; echo v3 > hello.txt; git add -A;"
            "GIT_COMMITTER_DATE='@1700000200 +0000' git commit -qm three",
            tmp);
        rev_parse (sha_main, "main");
        rev_parse (sha_feature, "feature");
        rev_parse (sha_v1, "v1");
}

static int
fetch (kiln_source *out, const char *url, const char *rev, const char *ctx, kiln_error **err)
{
        cleanup_free char *work = next_work_dir ();
        kiln_source_opts o = { .url = url, .revision = rev, .context_dir = ctx, .work_dir = work };
        return kiln_source_fetch (out, &o, err);
}

static void
test_default_head (void)
{
        kiln_error *err = NULL;
        kiln_source s;

        CHECK_OK (fetch (&s, repo_url, NULL, NULL, &err));
        CHECK_STR (s.commit, sha_main);
        CHECK_STR (s.branch, "main");
        CHECK_STR (s.author, "Ann Author <ann@example.com>");
        CHECK (s.commit_time == 1700000200);
        CHECK_STR (s.url, repo_url);
        CHECK (s.revision == NULL);
        CHECK_STR (s.app_dir, s.root);
        cleanup_free char *hello = read_text (s.app_dir, "hello.txt");
        CHECK_STR (hello, "v3\n");
        kiln_source_clear (&s);
        CHECK (s.commit == NULL && s.commit_time == -1);
}

static void
test_branch_tag_sha (void)
{
        kiln_error *err = NULL;
        kiln_source s;
        char short_sha[8];

        CHECK_OK (fetch (&s, repo_url, "feature", NULL, &err));
        CHECK_STR (s.commit, sha_feature);
        CHECK_STR (s.branch, "feature");
        CHECK_STR (s.revision, "feature");
        cleanup_free char *f = read_text (s.app_dir, "feature.txt");
        CHECK_STR (f, "f\n");
        kiln_source_clear (&s);

        CHECK_OK (fetch (&s, repo_url, "refs/heads/feature", NULL, &err));
        CHECK_STR (s.commit, sha_feature);
        kiln_source_clear (&s);

        CHECK_OK (fetch (&s, repo_url, "v1", NULL, &err));
        CHECK_STR (s.commit, sha_v1);
        CHECK (s.branch == NULL);
        CHECK (s.commit_time == 1700000000);
        cleanup_free char *h1 = read_text (s.app_dir, "hello.txt");
        CHECK_STR (h1, "v1\n");
        kiln_source_clear (&s);

        CHECK_OK (fetch (&s, repo_url, sha_feature, NULL, &err));
        CHECK_STR (s.commit, sha_feature);
        CHECK (s.branch == NULL);
        kiln_source_clear (&s);

        kiln_strlcpy (short_sha, sha_v1, sizeof short_sha);
        CHECK_OK (fetch (&s, repo_url, short_sha, NULL, &err));
        CHECK_STR (s.commit, sha_v1);
        cleanup_free char *h2 = read_text (s.app_dir, "hello.txt");
        CHECK_STR (h2, "v1\n");
        kiln_source_clear (&s);
}

static void
test_context_dir (void)
{
        kiln_error *err = NULL;
        kiln_source s;

        CHECK_OK (fetch (&s, repo_url, "main", "sub/fn", &err));
        CHECK (s.app_dir && kiln_str_has_suffix (s.app_dir, "/sub/fn"));
        cleanup_free char *fn = read_text (s.app_dir, "fn.go");
        CHECK_STR (fn, "package fn\n");
        kiln_source_clear (&s);

        /* A symlink that stays inside is fine. */
        CHECK_OK (fetch (&s, repo_url, NULL, "sub/inside", &err));
        CHECK (s.app_dir && kiln_str_has_suffix (s.app_dir, "/sub/fn"));
        kiln_source_clear (&s);

        static const struct {
                const char *ctx;
                kiln_error_code code;
                const char *msg;
        } bad[] = {
                { "..", KILN_E_INVALID, "context dir `..` must be a relative path without `..`" },
                { "sub/../../x", KILN_E_INVALID, "without `..`" },
                { "/etc", KILN_E_INVALID, "without `..`" },
                { "sub/escape", KILN_E_INVALID, "context dir `sub/escape` escapes its root" },
                { "nope", KILN_E_NOT_FOUND, "context dir `nope` not found in `file://" },
                { "hello.txt", KILN_E_INVALID, "is not a directory" },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (bad); i++) {
                CHECK (fetch (&s, repo_url, NULL, bad[i].ctx, &err) == -1);
                CHECK (err && err->code == bad[i].code);
                CHECK (err && strstr (err->msg, bad[i].msg) != NULL);
                if (err && strstr (err->msg, bad[i].msg) == NULL)
                        fprintf (stderr, "  got: %s\n", err->msg);
                CHECK (s.root == NULL && s.commit == NULL);
                kiln_error_free (err);
                err = NULL;
        }
}

static void
test_not_found (void)
{
        kiln_error *err = NULL;
        kiln_source s;

        cleanup_free char *missing = kiln_strdup_printf ("file://%s/no-such-repo", tmp);
        CHECK (fetch (&s, missing, NULL, NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        cleanup_free char *want = kiln_strdup_printf ("repository `%s` not found", missing);
        CHECK_STR (err ? err->msg : NULL, want);
        kiln_error_free (err);
        err = NULL;

        CHECK (fetch (&s, repo_url, "v9", NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        cleanup_free char *want2 = kiln_strdup_printf ("revision `v9` not found in `%s`", repo_url);
        CHECK_STR (err ? err->msg : NULL, want2);
        kiln_error_free (err);
        err = NULL;

        CHECK (fetch (&s, repo_url, "refs/tags/feature", NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        err = NULL;

        CHECK (fetch (&s, repo_url, "deadbeef", NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
}

static void
test_work_dir_and_opts (void)
{
        kiln_error *err = NULL;
        kiln_source s;
        cleanup_free char *work = next_work_dir ();
        cleanup_free char *junk = kiln_strdup_printf ("%s/junk", work);
        kiln_source_opts o = { .url = repo_url, .work_dir = work };

        CHECK_OK (kiln_mkdir_p (junk, 0755, &err));
        CHECK (kiln_source_fetch (&s, &o, &err) == -1);
        CHECK (err && err->code == KILN_E_CONFLICT);
        kiln_error_free (err);
        err = NULL;

        kiln_source_opts none = { .work_dir = work };
        CHECK (kiln_source_fetch (&s, &none, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        kiln_error_free (err);
        err = NULL;

        kiln_source_opts nowork = { .url = repo_url };
        CHECK (kiln_source_fetch (&s, &nowork, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        kiln_error_free (err);
}

static void
test_local_dir (void)
{
        kiln_error *err = NULL;
        kiln_source s;

        kiln_source_opts in_place = { .local_dir = repo, .context_dir = "sub" };
        CHECK_OK (kiln_source_fetch (&s, &in_place, &err));
        CHECK (s.url == NULL);
        CHECK_STR (s.commit, sha_main); /* a git work tree still names its commit */
        CHECK_STR (s.branch, "main");
        CHECK (s.app_dir && kiln_str_has_suffix (s.app_dir, "/repo/sub"));
        kiln_source_clear (&s);

        cleanup_free char *work = next_work_dir ();
        kiln_source_opts copy = { .local_dir = repo, .work_dir = work };
        CHECK_OK (kiln_source_fetch (&s, &copy, &err));
        cleanup_free char *hello = read_text (s.app_dir, "hello.txt");
        CHECK_STR (hello, "v3\n");
        cleanup_free char *dotgit = kiln_strdup_printf ("%s/.git", s.app_dir);
        CHECK (access (dotgit, F_OK) != 0);
        cleanup_free char *link = kiln_strdup_printf ("%s/sub/escape", s.app_dir);
        struct stat st;
        CHECK (lstat (link, &st) == 0 && S_ISLNK (st.st_mode));
        kiln_source_clear (&s);

        cleanup_free char *missing = kiln_strdup_printf ("%s/none", tmp);
        kiln_source_opts bad = { .local_dir = missing };
        CHECK (kiln_source_fetch (&s, &bad, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
}

static void
test_redact (void)
{
        static const char *cases[][2] = {
                { "https://user:s3cret@example.com/r.git", "https://example.com/r.git" },
                { "https://tok@en:p@ss@example.com/a@b", "https://example.com/a@b" },
                { "http://example.com/r.git", "http://example.com/r.git" },
                { "git@github.com:o/r.git", "git@github.com:o/r.git" },
                { "ssh://git@host/r", "ssh://host/r" },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (cases); i++) {
                cleanup_free char *r = kiln_source_redact_url (cases[i][0]);
                CHECK_STR (r, cases[i][1]);
        }
        CHECK (kiln_source_redact_url (NULL) == NULL);
}

static void
test_network_error_hides_password (void)
{
        kiln_error *err = NULL;
        kiln_source s;

        /* Port 1 on loopback: nothing listens. */
        CHECK (fetch (&s, "http://alice:hunter2@127.0.0.1:1/r.git", NULL, NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_NETWORK);
        CHECK (err && strstr (err->msg, "hunter2") == NULL);
        CHECK (err && strstr (err->msg, "alice") == NULL);
        CHECK (err && strstr (err->msg, "`http://127.0.0.1:1/r.git`") != NULL);
        kiln_error_free (err);
}

static int
free_port (void)
{
        struct sockaddr_in a
            = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        int port = -1;

        if (fd >= 0 && bind (fd, (struct sockaddr *) &a, sizeof a) == 0
            && getsockname (fd, (struct sockaddr *) &a, &len) == 0)
                port = ntohs (a.sin_port);
        if (fd >= 0)
                close (fd);
        return port;
}

static bool
wait_port (int port)
{
        for (int i = 0; i < 100; i++) {
                struct sockaddr_in a = { .sin_family = AF_INET,
                                         .sin_port = htons ((uint16_t) port),
                                         .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
                int fd = socket (AF_INET, SOCK_STREAM, 0);
                int ok = connect (fd, (struct sockaddr *) &a, sizeof a) == 0;
                close (fd);
                if (ok)
                        return true;
                usleep (50000);
        }
        return false;
}

static void
test_http_basic_auth (void)
{
        kiln_error *err = NULL;
        kiln_source s;
        int port = free_port ();
        cleanup_free char *portstr = kiln_strdup_printf ("%d", port);
        pid_t pid;

        if (system ("command -v python3 >/dev/null") != 0) {
                fprintf (stderr, "  skipped: no python3\n");
                return;
        }
        sh ("git clone -q --bare '%s' '%s/served.git'", repo, tmp);
        pid = fork ();
        if (pid == 0) {
                execlp ("python3", "python3", "tests/fixtures/git-http-server.py", portstr, tmp,
                        "alice", "hunter2", (char *) NULL);
                _exit (127);
        }
        CHECK (wait_port (port));
        cleanup_free char *url = kiln_strdup_printf ("http://127.0.0.1:%d/served.git", port);
        cleanup_free char *work = next_work_dir ();

        kiln_source_opts o = { .url = url,
                               .revision = "feature",
                               .work_dir = work,
                               .username = "alice",
                               .password = "hunter2" };
        CHECK_OK (kiln_source_fetch (&s, &o, &err));
        CHECK_STR (s.commit, sha_feature);
        /* The password never reaches the clone's config. */
        cleanup_free char *config = read_text (s.root, ".git/config");
        CHECK (config && strstr (config, "hunter2") == NULL);
        kiln_source_clear (&s);

        /* Credentials in the URL are used, and kept out of the result. */
        cleanup_free char *in_url
            = kiln_strdup_printf ("http://alice:hunter2@127.0.0.1:%d/served.git", port);
        CHECK_OK (fetch (&s, in_url, NULL, NULL, &err));
        CHECK_STR (s.url, url);
        CHECK_STR (s.commit, sha_main);
        cleanup_free char *config2 = read_text (s.root, ".git/config");
        CHECK (config2 && strstr (config2, "hunter2") == NULL);
        kiln_source_clear (&s);

        cleanup_free char *work2 = next_work_dir ();
        kiln_source_opts wrong
            = { .url = url, .work_dir = work2, .username = "alice", .password = "wrong-password" };
        CHECK (kiln_source_fetch (&s, &wrong, &err) == -1);
        CHECK (err && err->code == KILN_E_AUTH);
        CHECK (err && strstr (err->msg, "wrong-password") == NULL);
        CHECK (err && strstr (err->msg, url) != NULL);
        kiln_error_free (err);
        err = NULL;

        CHECK (fetch (&s, url, NULL, NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_AUTH);
        kiln_error_free (err);

        kill (pid, SIGTERM);
        waitpid (pid, NULL, 0);
}

int
main (void)
{
        kiln_error *err = NULL;

        make_repo ();
        RUN (test_default_head);
        RUN (test_branch_tag_sha);
        RUN (test_context_dir);
        RUN (test_not_found);
        RUN (test_work_dir_and_opts);
        RUN (test_local_dir);
        RUN (test_redact);
        RUN (test_network_error_hides_password);
        RUN (test_http_basic_auth);
        kiln_rm_rf (tmp, &err);
        kiln_error_free (err);
        free (tmp);
        free (repo);
        free (repo_url);
        UNIT_DONE ("source");
}
