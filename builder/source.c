/* kiln: source fetching with libgit2 (see include/kiln/source.h). */
#include <errno.h>
#include <ctype.h>
#include <ftw.h>
#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/source.h"

static inline void
cleanup_repop (void *p)
{
        git_repository_free (*(git_repository **) p);
}
static inline void
cleanup_objectp (void *p)
{
        git_object_free (*(git_object **) p);
}
static inline void
cleanup_referencep (void *p)
{
        git_reference_free (*(git_reference **) p);
}
static inline void
cleanup_commitp (void *p)
{
        git_commit_free (*(git_commit **) p);
}
#define cleanup_repo __attribute__ ((cleanup (cleanup_repop)))
#define cleanup_object __attribute__ ((cleanup (cleanup_objectp)))
#define cleanup_reference __attribute__ ((cleanup (cleanup_referencep)))
#define cleanup_commit __attribute__ ((cleanup (cleanup_commitp)))

/* What the libgit2 callbacks need, and what they tell us afterwards. */
typedef struct fetch_ctx {
        const kiln_source_opts *opts;
        const char *user;     /* from opts or the URL */
        const char *password; /* from opts or the URL */
        int auth_attempts;
        bool auth_refused;
        bool no_credentials;
        bool canceled;
        bool host_key_rejected;
        int ssh_port; /* from the URL; 22 when it names none */
} fetch_ctx;

/* libgit2 1.5 leaks PCRE2 match data when git_regexp_match finds no match
 * (src/util/regexp.c), which git_remote_create reaches on every clone.  It
 * is theirs, not ours, and kiln does not use PCRE2 itself; every program
 * that clones (kiln, the unit tests) gets this suppression under ASan.
 * libmicrohttpd 0.9.75 leaks GnuTLS certificate objects when a certificate
 * it is given does not parse (kiln serve then exits with its error); kiln
 * calls GnuTLS nowhere else. */
#if defined(__SANITIZE_ADDRESS__)
#define KILN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_ASAN 1
#endif
#endif
#ifdef KILN_ASAN
const char *__lsan_default_suppressions (void);
const char *
__lsan_default_suppressions (void)
{
        return "leak:libpcre2-8.so\nleak:libgnutls.so\n";
}

/* Without this LSan reports the suppression it used on stderr at exit,
 * after kiln's one-line error. */
const char *__lsan_default_options (void);
const char *
__lsan_default_options (void)
{
        return "print_suppressions=0";
}
#endif

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
init_libgit2 (void)
{
        git_libgit2_init ();
        /* A user's global or system git config must not change what a
         * build fetches (url.insteadOf, credential helpers). */
        git_libgit2_opts (GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
        git_libgit2_opts (GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
        git_libgit2_opts (GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
        git_libgit2_opts (GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA, "");
}

const char *
kiln_source_libgit2_version (void)
{
        static char v[32];
        int major, minor, rev;

        git_libgit2_version (&major, &minor, &rev);
        snprintf (v, sizeof v, "%d.%d.%d", major, minor, rev);
        return v;
}

void
kiln_source_clear (kiln_source *src)
{
        free (src->root);
        free (src->app_dir);
        free (src->url);
        free (src->revision);
        free (src->commit);
        free (src->author);
        free (src->branch);
        memset (src, 0, sizeof (*src));
        src->commit_time = -1;
}

/* --- URLs ------------------------------------------------------------ */

/* The userinfo of a URL with a scheme: [start, end) of "user[:pass]", the
 * '@' at *end.  False when there is none. */
static bool
find_userinfo (const char *url, const char **start, const char **end)
{
        const char *s = strstr (url, "://");
        const char *slash, *at;

        if (s == NULL)
                return false;
        s += 3;
        slash = strchr (s, '/');
        at = memchr (s, '@', slash ? (size_t) (slash - s) : strlen (s));
        if (at == NULL)
                return false;
        /* The last '@' before the path: a password may contain '@'. */
        for (const char *p = at; p && (slash == NULL || p < slash); p = strchr (p + 1, '@'))
                at = p;
        *start = s;
        *end = at;
        return true;
}

char *
kiln_source_redact_url (const char *url)
{
        const char *s, *e;

        if (url == NULL)
                return NULL;
        if (!find_userinfo (url, &s, &e))
                return kiln_strdup (url);
        return kiln_strdup_printf ("%.*s%s", (int) (s - url), url, e + 1);
}

static int
hexval (char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decodes [s, s+n) into a new string. */
static char *
pct_decode (const char *s, size_t n)
{
        char *r = kiln_calloc (n + 1, 1);
        size_t j = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && hexval (s[i + 1]) >= 0 && hexval (s[i + 2]) >= 0) {
                        r[j++] = (char) (hexval (s[i + 1]) * 16 + hexval (s[i + 2]));
                        i += 2;
                } else {
                        r[j++] = s[i];
                }
        }
        return r;
}

/* Splits userinfo out of the URL into *user and *password (caller frees). */
static void
url_credentials (const char *url, char **user, char **password)
{
        const char *s, *e, *colon;

        *user = *password = NULL;
        if (!find_userinfo (url, &s, &e))
                return;
        colon = memchr (s, ':', (size_t) (e - s));
        if (colon) {
                *user = pct_decode (s, (size_t) (colon - s));
                *password = pct_decode (colon + 1, (size_t) (e - colon - 1));
        } else {
                *user = pct_decode (s, (size_t) (e - s));
        }
}

static bool
is_ssh_url (const char *url)
{
        const char *colon;

        if (kiln_str_has_prefix (url, "ssh://") || kiln_str_has_prefix (url, "git+ssh://")
            || kiln_str_has_prefix (url, "ssh+git://"))
                return true;
        /* scp-like: user@host:path, with no scheme. */
        colon = strchr (url, ':');
        return strstr (url, "://") == NULL && colon && strchr (url, '@')
               && strchr (url, '@') < colon;
}

/* --- libgit2 callbacks ----------------------------------------------- */

static int
credentials_cb (git_credential **out, const char *url, const char *user_from_url,
                unsigned int allowed, void *payload)
{
        fetch_ctx *ctx = payload;
        const kiln_source_opts *o = ctx->opts;

        (void) url;
        /* For ssh, libgit2 first asks for the user name alone (kiln clones
         * the URL without its userinfo), then for a key: only the key
         * counts as an attempt. */
        if (allowed == GIT_CREDENTIAL_USERNAME && (ctx->user || user_from_url))
                return git_credential_username_new (out, ctx->user ? ctx->user : user_from_url);
        /* libgit2 calls again when the server refused what we gave. */
        if (++ctx->auth_attempts > 1) {
                ctx->auth_refused = true;
                git_error_set_str (GIT_ERROR_NET, "credentials refused");
                return GIT_EAUTH;
        }
        if (o->ssh_key && (allowed & (GIT_CREDENTIAL_SSH_KEY | GIT_CREDENTIAL_SSH_MEMORY))) {
                const char *user = user_from_url ? user_from_url : ctx->user ? ctx->user : "git";
                if (!(allowed & GIT_CREDENTIAL_SSH_MEMORY)) {
                        git_error_set_str (GIT_ERROR_NET,
                                           "this libgit2 cannot use an SSH key held in memory");
                        return GIT_EUSER;
                }
                return git_credential_ssh_key_memory_new (out, user, NULL, o->ssh_key,
                                                          o->ssh_key_passphrase);
        }
        if ((allowed & GIT_CREDENTIAL_SSH_KEY) && o->ssh_key_path) {
                const char *user = user_from_url ? user_from_url : ctx->user ? ctx->user : "git";
                return git_credential_ssh_key_new (out, user, o->ssh_public_key_path,
                                                   o->ssh_key_path, o->ssh_key_passphrase);
        }
        if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && (ctx->user || ctx->password))
                return git_credential_userpass_plaintext_new (out, ctx->user ? ctx->user : "",
                                                              ctx->password ? ctx->password : "");
        if ((allowed & GIT_CREDENTIAL_USERNAME) && (ctx->user || user_from_url))
                return git_credential_username_new (out, ctx->user ? ctx->user : user_from_url);
        ctx->no_credentials = true;
        git_error_set_str (GIT_ERROR_NET, "credentials required");
        return GIT_EAUTH;
}

/* OpenSSH's host patterns: `*` and `?` only (brackets are literal), case
 * does not matter. */
static bool
glob_match (const char *pat, size_t n, const char *s)
{
        if (n == 0)
                return *s == '\0';
        if (*pat == '*')
                return glob_match (pat + 1, n - 1, s) || (*s && glob_match (pat, n, s + 1));
        if (*s && (*pat == '?' || tolower ((unsigned char) *pat) == tolower ((unsigned char) *s)))
                return glob_match (pat + 1, n - 1, s + 1);
        return false;
}

/* Whether one known_hosts host field ("a,b,[c]:2222", or hashed) names
 * the server. */
static bool
known_host_matches (const char *field, size_t len, const char *host, int port)
{
        cleanup_free char *name
            = port == 22 ? kiln_strdup (host) : kiln_strdup_printf ("[%s]:%d", host, port);
        const char *p = field, *end = field + len;
        bool hit = false;

        /* kiln has no HMAC here: a hashed name is taken to be this host. */
        if (len > 3 && memcmp (field, "|1|", 3) == 0)
                return true;
        while (p < end) {
                const char *comma = memchr (p, ',', (size_t) (end - p));
                size_t n = comma ? (size_t) (comma - p) : (size_t) (end - p);
                bool negate = n > 0 && *p == '!';
                if (glob_match (p + negate, n - negate, name)) {
                        if (negate)
                                return false;
                        hit = true;
                }
                p += n + 1;
        }
        return hit;
}

/* The next blank-separated field of a line; false at its end. */
static bool
next_field (const char **p, const char *end, const char **field, size_t *len)
{
        while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r'))
                (*p)++;
        *field = *p;
        while (*p < end && **p != ' ' && **p != '\t' && **p != '\r')
                (*p)++;
        *len = (size_t) (*p - *field);
        return *len > 0;
}

/* Whether the server's raw host key is listed for it in known_hosts. */
static bool
host_key_known (const char *known_hosts, const git_cert_hostkey *hk, const char *host, int port)
{
        cleanup_free char *b64 = kiln_base64_encode (hk->hostkey, hk->hostkey_len);
        size_t b64_len = strlen (b64);
        const char *line = known_hosts;

        while (line && *line) {
                const char *eol = strchr (line, '\n');
                const char *end = eol ? eol : line + strlen (line);
                const char *p = line, *hosts, *type, *key;
                size_t hn, tn, kn;
                line = eol ? eol + 1 : NULL;
                if (!next_field (&p, end, &hosts, &hn) || *hosts == '#' || *hosts == '@'
                    || !next_field (&p, end, &type, &tn) || !next_field (&p, end, &key, &kn))
                        continue;
                if (kn == b64_len && memcmp (key, b64, kn) == 0
                    && known_host_matches (hosts, hn, host, port))
                        return true;
        }
        return false;
}

static int
certificate_cb (git_cert *cert, int valid, const char *host, void *payload)
{
        fetch_ctx *ctx = payload;
        const char *known = ctx->opts->ssh_known_hosts;

        if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2) {
                const git_cert_hostkey *hk = (const git_cert_hostkey *) cert;
                if (known == NULL)
                        return 0;
                if ((hk->type & GIT_CERT_SSH_RAW)
                    && host_key_known (known, hk, host ? host : "", ctx->ssh_port))
                        return 0;
                ctx->host_key_rejected = true;
                git_error_set (GIT_ERROR_SSH, "the host key of %s is not in known_hosts",
                               host ? host : "the server");
                return GIT_ECERTIFICATE;
        }
        if (valid || ctx->opts->insecure_skip_tls_verify)
                return 0;
        return GIT_PASSTHROUGH;
}

/* The port of an ssh:// URL (22 when none); scp-like URLs have none. */
static int
ssh_port (const char *url)
{
        const char *p = strstr (url, "://");
        const char *slash, *colon;
        int64_t port = 22;

        if (p == NULL)
                return 22;
        p += 3;
        slash = strchr (p, '/');
        if (strchr (p, '@') && (slash == NULL || strchr (p, '@') < slash))
                p = strchr (p, '@') + 1;
        colon = strchr (p, ':');
        if (colon && (slash == NULL || colon < slash)) {
                cleanup_free char *digits = strndup (
                    colon + 1, (size_t) ((slash ? slash : colon + strlen (colon)) - colon - 1));
                if (kiln_parse_int64 (digits, 1, 65535, &port) < 0)
                        port = 22;
        }
        return (int) port;
}

static int
transfer_cb (const git_indexer_progress *stats, void *payload)
{
        fetch_ctx *ctx = payload;

        (void) stats;
        if (ctx->opts->cancel && *ctx->opts->cancel) {
                ctx->canceled = true;
                return GIT_EUSER;
        }
        return 0;
}

static int
sideband_cb (const char *str, int len, void *payload)
{
        (void) str;
        (void) len;
        return transfer_cb (NULL, payload);
}

/* --- Errors ---------------------------------------------------------- */

static const char *
git_msg (void)
{
        const git_error *e = git_error_last ();
        return e && e->message ? e->message : "unknown libgit2 error";
}

static bool
is_network_error (const git_error *e)
{
        if (e == NULL)
                return false;
        if (e->klass == GIT_ERROR_NET || e->klass == GIT_ERROR_HTTP || e->klass == GIT_ERROR_SSH
            || e->klass == GIT_ERROR_SSL)
                return true;
        /* Sockets report through the OS class. */
        return e->klass == GIT_ERROR_OS && e->message
               && (strstr (e->message, "connect") || strstr (e->message, "resolve address"));
}

/* Translates a failed clone into kiln's error codes. */
static int
clone_error (int rc, const fetch_ctx *ctx, const char *url, kiln_error **err)
{
        const char *msg = git_msg ();

        if (ctx->canceled)
                return kiln_error_makec (err, KILN_E_CANCELED, 0, "clone of `%s` canceled", url);
        if (ctx->host_key_rejected)
                return kiln_error_makec (err, KILN_E_NETWORK, 0, "repository `%s`: %s", url, msg);
        if (ctx->auth_refused || ctx->no_credentials || rc == GIT_EAUTH || strstr (msg, "401")
            || strstr (msg, "403") || strstr (msg, "authentication"))
                return kiln_error_makec (err, KILN_E_AUTH, 0, "repository `%s`: %s", url,
                                         ctx->auth_refused     ? "credentials refused"
                                         : ctx->no_credentials ? "credentials required"
                                                               : "authentication failed");
        if (rc == GIT_ENOTFOUND || strstr (msg, "404") || strstr (msg, "not found")
            || strstr (msg, "does not exist") || strstr (msg, "could not find repository")
            || strstr (msg, "failed to resolve path"))
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "repository `%s` not found",
                                         url);
        if (rc == GIT_ECERTIFICATE)
                return kiln_error_makec (err, KILN_E_NETWORK, 0, "repository `%s`: %s", url, msg);
        if (is_network_error (git_error_last ()))
                return kiln_error_makec (err, KILN_E_NETWORK, 0, "repository `%s`: %s", url, msg);
        return kiln_error_makec (err, KILN_E_FAILED, 0, "clone `%s`: %s", url, msg);
}

/* --- Commit information ---------------------------------------------- */

static int
record_commit (kiln_source *out, git_repository *repo, const git_oid *oid, kiln_error **err)
{
        cleanup_commit git_commit *c = NULL;
        char hex[GIT_OID_HEXSZ + 1];
        const git_signature *a;

        if (git_commit_lookup (&c, repo, oid) < 0)
                return kiln_error_makec (err, KILN_E_FAILED, 0, "read commit: %s", git_msg ());
        git_oid_tostr (hex, sizeof hex, oid);
        out->commit = kiln_strdup (hex);
        a = git_commit_author (c);
        if (a)
                out->author = kiln_strdup_printf ("%s <%s>", a->name ? a->name : "",
                                                  a->email ? a->email : "");
        out->commit_time = (int64_t) git_commit_time (c);
        return 0;
}

static bool
is_hex_prefix (const char *s)
{
        size_t n = strlen (s);
        if (n < 4 || n > GIT_OID_HEXSZ)
                return false;
        for (size_t i = 0; i < n; i++)
                if (hexval (s[i]) < 0)
                        return false;
        return true;
}

/* Looks a revision up as a remote branch, then a tag, then a (short)
 * sha.  *obj is NULL when nothing matched; *branch is set for a branch. */
static int
lookup_revision (git_object **obj, char **branch, git_repository *repo, const char *rev,
                 const char *url, kiln_error **err)
{
        const char *name = rev;
        bool tag_only = false;
        git_oid prefix;
        int rc;

        if (kiln_str_has_prefix (rev, "refs/heads/")) {
                name = rev + strlen ("refs/heads/");
        } else if (kiln_str_has_prefix (rev, "refs/tags/")) {
                name = rev + strlen ("refs/tags/");
                tag_only = true;
        }
        if (!tag_only) {
                cleanup_free char *ref = kiln_strdup_printf ("refs/remotes/origin/%s", name);
                if (git_revparse_single (obj, repo, ref) == 0) {
                        *branch = kiln_strdup (name);
                        return 0;
                }
        }
        cleanup_free char *tag = kiln_strdup_printf ("refs/tags/%s", name);
        if (git_revparse_single (obj, repo, tag) == 0)
                return 0;
        *obj = NULL;
        if (tag_only || !is_hex_prefix (name))
                return 0;
        rc = git_oid_fromstrn (&prefix, name, strlen (name));
        if (rc == 0)
                rc = git_object_lookup_prefix (obj, repo, &prefix, strlen (name), GIT_OBJECT_ANY);
        if (rc == GIT_EAMBIGUOUS)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "revision `%s` is ambiguous in `%s`", rev, url);
        if (rc < 0)
                *obj = NULL;
        return 0;
}

/* Finds the commit a revision names. */
static int
resolve_revision (git_oid *oid, char **branch, git_repository *repo, const char *rev,
                  const char *url, kiln_error **err)
{
        cleanup_object git_object *obj = NULL;
        cleanup_object git_object *commit = NULL;

        *branch = NULL;
        if (lookup_revision (&obj, branch, repo, rev, url, err) < 0)
                return -1;
        if (obj == NULL)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                         "revision `%s` not found in `%s`", rev, url);
        if (git_object_peel (&commit, obj, GIT_OBJECT_COMMIT) < 0) {
                free (steal_pointer (branch));
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "revision `%s` in `%s` is not a commit", rev, url);
        }
        git_oid_cpy (oid, git_object_id (commit));
        return 0;
}

static int
checkout_commit (git_repository *repo, const git_oid *oid, const char *branch, const char *rev,
                 kiln_error **err)
{
        cleanup_commit git_commit *c = NULL;
        git_checkout_options co;
        cleanup_reference git_reference *local = NULL;

        git_checkout_options_init (&co, GIT_CHECKOUT_OPTIONS_VERSION);
        co.checkout_strategy = GIT_CHECKOUT_FORCE;
        if (git_commit_lookup (&c, repo, oid) < 0
            || git_checkout_tree (repo, (const git_object *) c, &co) < 0)
                return kiln_error_makec (err, KILN_E_FAILED, 0, "check out `%s`: %s", rev,
                                         git_msg ());
        /* A local branch keeps HEAD's name meaningful for tools that look;
         * a tag or sha leaves HEAD detached. */
        if (branch && git_branch_create (&local, repo, branch, c, 1) == 0
            && git_repository_set_head (repo, git_reference_name (local)) == 0)
                return 0;
        if (git_repository_set_head_detached (repo, oid) < 0)
                return kiln_error_makec (err, KILN_E_FAILED, 0, "check out `%s`: %s", rev,
                                         git_msg ());
        return 0;
}

/* git records a file as executable or not, nothing more: the checkout's
 * modes are made 0755/0644 (directories 0755) whatever the umask of the
 * process that cloned (kiln serve runs with 077), so the same commit gives
 * the same layers wherever it is built, and an image's files are readable
 * by the non-root user it runs as. */
static int
normalise_mode (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        if (type == FTW_D && ftw->level == 1 && strcmp (path + ftw->base, ".git") == 0)
                return FTW_SKIP_SUBTREE;
        if (type == FTW_D || type == FTW_DP)
                chmod (path, 0755);
        else if (type == FTW_F)
                chmod (path, (st->st_mode & S_IXUSR) ? 0755 : 0644);
        return FTW_CONTINUE;
}

static int
normalise_modes (const char *dir, kiln_error **err)
{
        if (nftw (dir, normalise_mode, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0)
                return kiln_error_make (err, errno, "set the modes of `%s`", dir);
        return 0;
}

static int
prepare_work_dir (const char *dir, kiln_error **err)
{
        cleanup_dir DIR *d = NULL;
        struct dirent *e;

        if (kiln_mkdir_p (dir, 0755, err) < 0)
                return -1;
        d = opendir (dir);
        if (d == NULL)
                return kiln_error_make (err, errno, "open `%s`", dir);
        while ((e = readdir (d)))
                if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
                        return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                                 "work dir `%s` is not empty", dir);
        return 0;
}

static int
clone_repo (kiln_source *out, const kiln_source_opts *o, const char *url, kiln_error **err)
{
        cleanup_repo git_repository *repo = NULL;
        git_clone_options co;
        cleanup_free char *clean = kiln_source_redact_url (url);
        cleanup_free char *url_user = NULL;
        cleanup_free char *url_pass = NULL;
        fetch_ctx ctx = { .opts = o };
        const char *rev = o->revision && *o->revision ? o->revision : NULL;
        git_oid oid;
        int rc;

        if (is_ssh_url (url) && !(git_libgit2_features () & GIT_FEATURE_SSH))
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "repository `%s`: this libgit2 was built without SSH",
                                         clean);
        url_credentials (url, &url_user, &url_pass);
        ctx.ssh_port = ssh_port (url);
        ctx.user = o->username ? o->username : url_user;
        ctx.password = o->password ? o->password : url_pass;
        if (prepare_work_dir (o->work_dir, err) < 0)
                return -1;

        git_clone_options_init (&co, GIT_CLONE_OPTIONS_VERSION);
        co.fetch_opts.callbacks.credentials = credentials_cb;
        co.fetch_opts.callbacks.certificate_check = certificate_cb;
        co.fetch_opts.callbacks.transfer_progress = transfer_cb;
        co.fetch_opts.callbacks.sideband_progress = sideband_cb;
        co.fetch_opts.callbacks.payload = &ctx;
        co.fetch_opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
        co.checkout_opts.checkout_strategy = rev ? GIT_CHECKOUT_NONE : GIT_CHECKOUT_SAFE;

        kiln_debug ("cloning %s%s%s", clean, rev ? " at " : "", rev ? rev : "");
        rc = git_clone (&repo, clean, o->work_dir, &co);
        if (rc < 0)
                return clone_error (rc, &ctx, clean, err);

        if (rev) {
                if (resolve_revision (&oid, &out->branch, repo, rev, clean, err) < 0)
                        return -1;
                if (checkout_commit (repo, &oid, out->branch, rev, err) < 0)
                        return kiln_error_wrap (err, "`%s`", clean);
        } else {
                cleanup_reference git_reference *head = NULL;
                if (git_repository_head (&head, repo) < 0)
                        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                                 "repository `%s` has no HEAD commit", clean);
                git_oid_cpy (&oid, git_reference_target (head));
                if (git_reference_is_branch (head))
                        out->branch = kiln_strdup (git_reference_shorthand (head));
        }
        if (normalise_modes (o->work_dir, err) < 0)
                return -1;
        return record_commit (out, repo, &oid, err);
}

/* A local directory that is a git repository still gets its commit
 * recorded; anything else about it is best effort. */
static void
local_commit_info (kiln_source *out, const char *dir)
{
        cleanup_repo git_repository *repo = NULL;
        cleanup_reference git_reference *head = NULL;
        kiln_error *ignored = NULL;

        if (git_repository_open_ext (&repo, dir, 0, NULL) < 0
            || git_repository_head (&head, repo) < 0)
                return;
        if (git_reference_is_branch (head))
                out->branch = kiln_strdup (git_reference_shorthand (head));
        record_commit (out, repo, git_reference_target (head), &ignored);
        kiln_error_free (ignored);
}

static int
use_local (kiln_source *out, const kiln_source_opts *o, kiln_error **err)
{
        static const char *const skip[] = { ".git", NULL };

        if (!kiln_is_dir (o->local_dir))
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                         "source directory `%s` not found", o->local_dir);
        local_commit_info (out, o->local_dir);
        if (o->work_dir == NULL)
                return 0;
        if (prepare_work_dir (o->work_dir, err) < 0)
                return -1;
        if (kiln_copy_tree (o->local_dir, o->work_dir, skip, err) < 0)
                return kiln_error_wrap (err, "copy source `%s`", o->local_dir);
        return 0;
}

static int
select_context (kiln_source *out, const kiln_source_opts *o, kiln_error **err)
{
        const char *ctx = o->context_dir && *o->context_dir ? o->context_dir : ".";
        const char *where = out->url ? out->url : o->local_dir;
        cleanup_error kiln_error *e = NULL;

        if (!kiln_path_is_relative_safe (ctx))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "context dir `%s` must be a relative path without `..`",
                                         ctx);
        if (kiln_path_resolve_within (&out->app_dir, out->root, ctx, &e) < 0) {
                if (e->code == KILN_E_NOT_FOUND && out->revision)
                        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                                 "context dir `%s` not found in `%s` at `%s`", ctx,
                                                 where, out->revision);
                if (e->code == KILN_E_NOT_FOUND)
                        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                                 "context dir `%s` not found in `%s`", ctx, where);
                return kiln_error_makec (err, e->code, 0, "context dir %s", e->msg);
        }
        if (!kiln_is_dir (out->app_dir))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "context dir `%s` in `%s` is not a directory", ctx, where);
        return 0;
}

int
kiln_source_fetch (kiln_source *out, const kiln_source_opts *o, kiln_error **err)
{
        kiln_source r = { .commit_time = -1 };

        memset (out, 0, sizeof (*out));
        out->commit_time = -1;
        if ((o->url == NULL) == (o->local_dir == NULL))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "source: give exactly one of a URL and a local directory");
        if (o->url && o->work_dir == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "source: cloning needs a work dir");
        pthread_once (&init_once, init_libgit2);

        if (o->url) {
                r.url = kiln_source_redact_url (o->url);
                r.revision = o->revision && *o->revision ? kiln_strdup (o->revision) : NULL;
                if (clone_repo (&r, o, o->url, err) < 0)
                        goto fail;
                r.root = realpath (o->work_dir, NULL);
        } else {
                if (use_local (&r, o, err) < 0)
                        goto fail;
                r.root = realpath (o->work_dir ? o->work_dir : o->local_dir, NULL);
        }
        if (r.root == NULL) {
                kiln_error_make (err, errno, "resolve the source directory");
                goto fail;
        }
        if (select_context (&r, o, err) < 0)
                goto fail;
        *out = r;
        return 0;
fail:
        kiln_source_clear (&r);
        return -1;
}
