/* kiln build: function source to a running image.  Fetches the source,
 * runs the buildpacks (detect, build), exports the result over a run
 * image and publishes it (see docs/build.md). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/compose.h"
#include "kiln/export.h"
#include "kiln/fs.h"
#include "kiln/json.h"
#include "kiln/layout.h"
#include "kiln/lifecycle.h"
#include "kiln/log.h"
#include "kiln/runbase.h"
#include "kiln/source.h"

#define MAX_OUTPUTS 16
#define MAX_BUILDPACK_DIRS 64
/* Cached layer blobs unused for this long are removed after a build. */
#define LAYER_CACHE_MAX_AGE_S (30 * 24 * 3600)

enum {
        OPT_IMAGE = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_OUTPUT,
        OPT_GIT,
        OPT_REVISION,
        OPT_CONTEXT_DIR,
        OPT_FUNC_NAME,
        OPT_SIGNATURE,
        OPT_LANGUAGE,
        OPT_RUN_IMAGE,
        OPT_ENV,
        OPT_BUILDPACK,
        OPT_CACHE_DIR,
        OPT_NO_CACHE,
        OPT_TIMEOUT,
        OPT_USER,
        OPT_GIT_CREDENTIALS,
        OPT_GIT_SSH_KEY,
        OPT_GIT_INSECURE,
        OPT_NO_NETWORK,
};

typedef struct build_opts {
        kiln_cli_registry reg;
        const char *dir;
        const char *git;
        const char *revision;
        const char *context_dir;
        const char *image;
        const char *outputs[MAX_OUTPUTS];
        size_t n_outputs;
        const char *func_name;
        const char *signature;
        const char *language;
        const char *run_image;
        kiln_kvs env;
        const char *buildpacks[MAX_BUILDPACK_DIRS + 1];
        size_t n_buildpacks;
        const char *cache_dir;
        bool no_cache;
        int64_t timeout_ms;
        const char *timeout_text;
        const char *user;
        const char *git_credentials;
        const char *git_ssh_key;
        bool git_insecure;
        bool no_network;
} build_opts;

/* ---- cancellation and the timeout ---- */

static volatile sig_atomic_t canceled;
static volatile sig_atomic_t timed_out;

static void
on_signal (int sig)
{
        if (sig == SIGALRM)
                timed_out = 1;
        canceled = 1;
}

static void
set_handler (int sig, void (*fn) (int))
{
        struct sigaction sa;

        memset (&sa, 0, sizeof sa);
        sa.sa_handler = fn;
        sa.sa_flags = SA_RESTART;
        sigemptyset (&sa.sa_mask);
        sigaction (sig, &sa, NULL);
}

/* SIGINT and SIGTERM stop the build (its processes are killed and its
 * work dir removed); the timer raises the same flag. */
static void
arm_cancel (int64_t timeout_ms)
{
        canceled = 0;
        timed_out = 0;
        set_handler (SIGINT, on_signal);
        set_handler (SIGTERM, on_signal);
        set_handler (SIGALRM, on_signal);
        if (timeout_ms > 0) {
                struct itimerval it = { { 0, 0 }, { 0, 0 } };
                it.it_value.tv_sec = (time_t) (timeout_ms / 1000);
                it.it_value.tv_usec = (suseconds_t) (timeout_ms % 1000) * 1000;
                setitimer (ITIMER_REAL, &it, NULL);
        }
}

static void
stop_timer (void)
{
        struct itimerval it = { { 0, 0 }, { 0, 0 } };

        setitimer (ITIMER_REAL, &it, NULL);
}

static void
disarm_cancel (void)
{
        stop_timer ();
        set_handler (SIGINT, SIG_DFL);
        set_handler (SIGTERM, SIG_DFL);
        set_handler (SIGALRM, SIG_DFL);
}

/* ---- progress ---- */

typedef struct progress {
        const kiln_global *g;
        struct timespec start;
        char phase[600]; /* what is under way, for a timeout message */
} progress;

static double
elapsed (const progress *p)
{
        struct timespec now;

        clock_gettime (CLOCK_MONOTONIC, &now);
        return (double) (now.tv_sec - p->start.tv_sec)
               + (double) (now.tv_nsec - p->start.tv_nsec) / 1e9;
}

static void
json_line (const char *k1, const char *v1, const char *k2, const char *v2, const char *k3,
           const char *v3)
{
        cleanup_kiln_json kiln_json *j = kiln_json_object ();
        cleanup_free char *s = NULL;

        kiln_json_set_str (j, k1, v1);
        kiln_json_set_str (j, k2, v2);
        if (k3)
                kiln_json_set_str (j, k3, v3);
        if (kiln_json_format (&s, j, NULL) == 0)
                fprintf (stderr, "%s\n", s);
}

/* "==> PHASE  what" on stderr, unless --quiet. */
static void __attribute__ ((format (printf, 3, 4)))
phase (progress *p, const char *name, const char *fmt, ...)
{
        char what[512];
        va_list ap;

        va_start (ap, fmt);
        vsnprintf (what, sizeof what, fmt, ap);
        va_end (ap);
        snprintf (p->phase, sizeof p->phase, "%s %s", name, what);
        if (p->g->quiet)
                return;
        if (p->g->json) {
                json_line ("phase", name, "message", what, NULL, NULL);
        } else {
                fprintf (stderr, "==> %-7s %s\n", name, what);
        }
        fflush (stderr);
}

static void
on_lifecycle_phase (void *data, const char *name, const char *buildpack_id)
{
        progress *p = data;

        if (buildpack_id)
                phase (p, name, "%s", buildpack_id);
        else
                phase (p, name, "running bin/detect of the buildpacks");
}

static void
on_output (void *data, const char *label, int stream, const char *line, size_t len)
{
        progress *p = data;

        if (p->g->quiet)
                return;
        if (p->g->json) {
                cleanup_free char *l = strndup (line, len);
                json_line ("buildpack", label, "stream", stream == 1 ? "stdout" : "stderr", "line",
                           l);
                return;
        }
        fprintf (stderr, "[%s] %.*s\n", label, (int) len, line);
}

static void
on_layer (void *data, const char *image_path, const kiln_layer_info *info, bool cached)
{
        progress *p = data;
        char d[20];

        if (p->g->quiet || p->g->json)
                return;
        snprintf (d, sizeof d, "%.19s", info->digest);
        fprintf (stderr, "    %s %s%s\n", d, image_path,
                 cached ? " (unchanged, from the cache)" : "");
}

/* ---- options ---- */

static void
build_opts_clear (build_opts *o)
{
        kiln_cli_registry_clear (&o->reg);
        kiln_kvs_clear (&o->env);
}

static int
parse_kv (kiln_kvs *m, const kiln_command *cmd, const char *flag, const char *arg)
{
        const char *eq = strchr (arg, '=');
        cleanup_free char *key = NULL;

        if (eq == NULL || eq == arg) {
                kiln_cli_usage_error (cmd, "%s wants KEY=VALUE, got `%s`", flag, arg);
                return -1;
        }
        key = strndup (arg, (size_t) (eq - arg));
        kiln_kvs_set (m, key, eq + 1);
        return 0;
}

static int
take_opt (build_opts *o, const kiln_command *cmd, int opt, const char *arg)
{
        switch (opt) {
        case OPT_IMAGE:
                o->image = arg;
                return 1;
        case 'o':
        case OPT_OUTPUT:
                if (o->n_outputs == MAX_OUTPUTS) {
                        kiln_cli_usage_error (cmd, "at most %d --output options", MAX_OUTPUTS);
                        return -1;
                }
                o->outputs[o->n_outputs++] = arg;
                return 1;
        case OPT_GIT:
                o->git = arg;
                return 1;
        case OPT_REVISION:
                o->revision = arg;
                return 1;
        case OPT_CONTEXT_DIR:
                o->context_dir = arg;
                return 1;
        case OPT_FUNC_NAME:
                o->func_name = arg;
                return 1;
        case OPT_SIGNATURE:
                if (strcmp (arg, "http") != 0 && strcmp (arg, "cloudevent") != 0) {
                        kiln_cli_usage_error (cmd, "--signature is http or cloudevent, not `%s`",
                                              arg);
                        return -1;
                }
                o->signature = arg;
                return 1;
        case OPT_LANGUAGE:
                o->language = arg;
                return 1;
        case OPT_RUN_IMAGE:
                o->run_image = arg;
                return 1;
        case 'e':
        case OPT_ENV:
                return parse_kv (&o->env, cmd, "--env", arg) < 0 ? -1 : 1;
        case 'b':
        case OPT_BUILDPACK:
                if (o->n_buildpacks == MAX_BUILDPACK_DIRS) {
                        kiln_cli_usage_error (cmd, "at most %d --buildpack options",
                                              MAX_BUILDPACK_DIRS);
                        return -1;
                }
                o->buildpacks[o->n_buildpacks++] = arg;
                return 1;
        case OPT_CACHE_DIR:
                o->cache_dir = arg;
                return 1;
        case OPT_NO_CACHE:
                o->no_cache = true;
                return 1;
        case OPT_TIMEOUT:
                if (kiln_parse_duration_ms (arg, &o->timeout_ms) < 0 || o->timeout_ms <= 0) {
                        kiln_cli_usage_error (
                            cmd, "--timeout wants a duration (90s, 10m), got `%s`", arg);
                        return -1;
                }
                o->timeout_text = arg;
                return 1;
        case OPT_USER:
                o->user = arg;
                return 1;
        case OPT_GIT_CREDENTIALS:
                o->git_credentials = arg;
                return 1;
        case OPT_GIT_SSH_KEY:
                o->git_ssh_key = arg;
                return 1;
        case OPT_GIT_INSECURE:
                o->git_insecure = true;
                return 1;
        case OPT_NO_NETWORK:
                o->no_network = true;
                return 1;
        default:
                return 0;
        }
}

static int
parse_args (build_opts *o, kiln_global *g, int argc, char **argv)
{
        static const struct option longopts[] = {
                KILN_GLOBAL_LONGOPTS,
                KILN_REGISTRY_LONGOPTS,
                { "image", required_argument, NULL, OPT_IMAGE },
                { "output", required_argument, NULL, OPT_OUTPUT },
                { "git", required_argument, NULL, OPT_GIT },
                { "revision", required_argument, NULL, OPT_REVISION },
                { "context-dir", required_argument, NULL, OPT_CONTEXT_DIR },
                { "func-name", required_argument, NULL, OPT_FUNC_NAME },
                { "signature", required_argument, NULL, OPT_SIGNATURE },
                { "language", required_argument, NULL, OPT_LANGUAGE },
                { "run-image", required_argument, NULL, OPT_RUN_IMAGE },
                { "env", required_argument, NULL, OPT_ENV },
                { "buildpack", required_argument, NULL, OPT_BUILDPACK },
                { "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
                { "no-cache", no_argument, NULL, OPT_NO_CACHE },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "user", required_argument, NULL, OPT_USER },
                { "git-credentials", required_argument, NULL, OPT_GIT_CREDENTIALS },
                { "git-ssh-key", required_argument, NULL, OPT_GIT_SSH_KEY },
                { "git-insecure-skip-tls-verify", no_argument, NULL, OPT_GIT_INSECURE },
                { "no-network", no_argument, NULL, OPT_NO_NETWORK },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_build;
        int opt;

        optind = 1;
        while ((opt = getopt_long (argc, argv, "qho:e:b:", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, cmd, opt, optarg);
                if (r == 0)
                        r = kiln_cli_registry_opt (&o->reg, cmd, opt, optarg);
                if (r == 0)
                        r = take_opt (o, cmd, opt, optarg);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        kiln_cli_usage_error (cmd, "unknown option");
                        return -1;
                }
        }
        if (optind < argc)
                o->dir = argv[optind++];
        if (optind < argc) {
                kiln_cli_usage_error (cmd, "unexpected argument `%s`", argv[optind]);
                return -1;
        }
        if (o->dir && o->git) {
                kiln_cli_usage_error (cmd, "give a directory or --git URL, not both");
                return -1;
        }
        if (o->revision && !o->git) {
                kiln_cli_usage_error (cmd, "--revision needs --git");
                return -1;
        }
        if (!o->git && !o->dir)
                o->dir = ".";
        if (!o->image && o->n_outputs == 0) {
                kiln_cli_usage_error (cmd, "give --image REF or --output LOCATION");
                return -1;
        }
        return 0;
}

/* ---- where things are ---- */

/* $KILN_BUILDPACKS_DIR, else beside the kiln binary: an install's
 * PREFIX/share/kiln/buildpacks, or the source tree's buildpacks/ when
 * kiln runs from its build directory. */
static char *
default_buildpacks_dir (void)
{
        static const char *const rel[]
            = { "../share/kiln/buildpacks", "../buildpacks", "../../buildpacks" };
        const char *env = getenv ("KILN_BUILDPACKS_DIR");
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env)
                return kiln_strdup (env);
        n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
                return NULL;
        exe[n] = '\0';
        *strrchr (exe, '/') = '\0';
        for (size_t i = 0; i < KILN_N_ELEMENTS (rel); i++) {
                cleanup_free char *order = kiln_strdup_printf ("%s/%s/order.toml", exe, rel[i]);
                if (access (order, F_OK) == 0) {
                        cleanup_free char *dir = kiln_strdup_printf ("%s/%s", exe, rel[i]);
                        return realpath (dir, NULL);
                }
        }
        return NULL;
}

/* The stacks (kiln-stack:NAME run images) beside the buildpacks root, as
 * a source tree and an install both have them; NULL: $KILN_STACKS_DIR. */
static char *
default_stacks_dir (const char *buildpacks_dir)
{
        cleanup_free char *root = buildpacks_dir ? NULL : default_buildpacks_dir ();
        cleanup_free char *dir = NULL;
        const char *env = getenv ("KILN_STACKS_DIR");

        if ((env && *env) || (buildpacks_dir == NULL && root == NULL))
                return NULL;
        dir = kiln_strdup_printf ("%s/../stacks", buildpacks_dir ? buildpacks_dir : root);
        return kiln_is_dir (dir) ? realpath (dir, NULL) : NULL;
}

/* --cache-dir, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln. */
static char *
default_cache_dir (void)
{
        const char *xdg = getenv ("XDG_CACHE_HOME");
        const char *home = getenv ("HOME");

        if (xdg && *xdg == '/')
                return kiln_strdup_printf ("%s/kiln", xdg);
        if (home && *home == '/')
                return kiln_strdup_printf ("%s/.cache/kiln", home);
        return NULL;
}

/* Cache layers are kept per image: the repository of --image, else the
 * first output without its tag. */
static char *
cache_name (const build_opts *o, kiln_error **err)
{
        kiln_location loc = { 0 };
        char *name = NULL;

        if (o->image) {
                cleanup_reference kiln_reference *ref = NULL;
                if (kiln_reference_parse (&ref, o->image, err) < 0)
                        return NULL;
                return kiln_reference_name (ref);
        }
        if (kiln_location_parse (&loc, o->outputs[0], err) < 0)
                return NULL;
        if (loc.transport == KILN_TRANSPORT_REGISTRY) {
                cleanup_reference kiln_reference *ref = NULL;
                if (kiln_reference_parse (&ref, loc.path, err) == 0)
                        name = kiln_reference_name (ref);
        } else {
                cleanup_free char *abs = NULL;
                if (loc.path[0] != '/') {
                        char cwd[PATH_MAX];
                        if (getcwd (cwd, sizeof cwd) == NULL)
                                kiln_strlcpy (cwd, ".", sizeof cwd);
                        abs = kiln_strdup_printf ("%s/%s", cwd, loc.path);
                }
                name = kiln_strdup_printf ("%s:%s",
                                           loc.transport == KILN_TRANSPORT_OCI ? "oci"
                                           : loc.transport == KILN_TRANSPORT_OCI_ARCHIVE
                                               ? "oci-archive"
                                               : "docker-archive",
                                           abs ? abs : loc.path);
        }
        kiln_location_clear (&loc);
        return name;
}

/* ---- git credentials ---- */

static int
hex_value (char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static char *
percent_decode (const char *s, size_t n)
{
        char *r = kiln_calloc (1, n + 1);
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                int hi = -1, lo = -1;
                if (s[i] == '%' && i + 2 < n) {
                        hi = hex_value (s[i + 1]);
                        lo = hex_value (s[i + 2]);
                }
                if (hi >= 0 && lo >= 0) {
                        r[k++] = (char) (hi * 16 + lo);
                        i += 2;
                } else {
                        r[k++] = s[i];
                }
        }
        return r;
}

/* "scheme://[user[:pass]@]host[:port]/..." split; false if not that shape. */
static bool
split_url (const char *url, size_t *scheme_len, const char **auth, size_t *auth_len)
{
        const char *p = strstr (url, "://");
        const char *end;

        if (p == NULL)
                return false;
        *scheme_len = (size_t) (p - url);
        *auth = p + 3;
        end = *auth + strcspn (*auth, "/?#");
        *auth_len = (size_t) (end - *auth);
        return true;
}

/* Looks url's scheme and host up in a git-credential-store file (lines of
 * https://user:token@host); 1 when found. */
static int
git_credentials_lookup (char **user, char **pass, const char *file, const char *url,
                        kiln_error **err)
{
        cleanup_free char *text = NULL;
        size_t len, sl, al;
        const char *auth;
        const char *host;
        size_t hl;

        if (!split_url (url, &sl, &auth, &al))
                return 0;
        host = memchr (auth, '@', al) ? (const char *) memchr (auth, '@', al) + 1 : auth;
        hl = al - (size_t) (host - auth);
        if (kiln_read_file (&text, &len, file, (size_t) 1 << 20, err) < 0)
                return kiln_error_wrap (err, "git credentials");
        for (char *line = text, *next; line && *line; line = next) {
                size_t lsl, lal;
                const char *la;
                next = strchr (line, '\n');
                if (next)
                        *next++ = '\0';
                if (!split_url (line, &lsl, &la, &lal) || lsl != sl || strncmp (line, url, sl) != 0)
                        continue;
                const char *at = memchr (la, '@', lal);
                if (at == NULL)
                        continue;
                const char *lh = at + 1;
                if ((size_t) (la + lal - lh) != hl || strncmp (lh, host, hl) != 0)
                        continue;
                const char *colon = memchr (la, ':', (size_t) (at - la));
                *user = percent_decode (la, (size_t) ((colon ? colon : at) - la));
                *pass = colon ? percent_decode (colon + 1, (size_t) (at - colon - 1))
                              : kiln_strdup ("");
                explicit_bzero (text, len);
                return 1;
        }
        explicit_bzero (text, len);
        return 0;
}

static void
free_secret (char *s)
{
        if (s) {
                explicit_bzero (s, strlen (s));
                free (s);
        }
}

/* ---- the build ---- */

typedef struct build {
        build_opts *o;
        kiln_global *g;
        progress prog;
        char *work;
        char *buildpacks_dir;
        char *cache_root;
        char *bp_cache; /* the lifecycle's cache dir for this image, when locked */
        char *layer_cache;
        int lock_fd;
        kiln_source src;
        kiln_lifecycle_result res;
        kiln_registry *reg;
        const char *run_image;
        char digest[KILN_DIGEST_MAX];
        bool published; /* every destination has the image */
} build;

static int
chmod_writable (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void) ftw;
        if (flag == FTW_D && (st->st_mode & 0700) != 0700)
                chmod (path, (st->st_mode & 07777) | 0700);
        return 0;
}

static void
build_clear (build *b)
{
        if (b->work) {
                kiln_error *e = NULL;
                /* A buildpack may leave read-only directories behind. */
                nftw (b->work, chmod_writable, 64, FTW_PHYS | FTW_MOUNT);
                if (kiln_rm_rf (b->work, &e) < 0)
                        kiln_warn ("%s", kiln_error_msg (e));
                kiln_error_free (e);
                free (b->work);
        }
        if (b->lock_fd >= 0)
                close (b->lock_fd);
        free (b->buildpacks_dir);
        free (b->cache_root);
        free (b->bp_cache);
        free (b->layer_cache);
        kiln_source_clear (&b->src);
        kiln_lifecycle_result_clear (&b->res);
        kiln_registry_free (b->reg);
}

/* The per-image cache of buildpack cache layers, locked so two builds of
 * one image do not both restore and save it at once. */
static int
setup_cache (build *b, kiln_error **err)
{
        cleanup_free char *name = NULL;
        cleanup_free char *dir = NULL;
        cleanup_free char *lock = NULL;
        cleanup_free char *ref = NULL;
        char key[KILN_DIGEST_MAX];

        if (b->o->no_cache)
                return 0;
        b->cache_root = b->o->cache_dir ? kiln_strdup (b->o->cache_dir) : default_cache_dir ();
        if (b->cache_root == NULL) {
                kiln_warn ("no cache dir (HOME and XDG_CACHE_HOME are unset): building without "
                           "a cache");
                return 0;
        }
        if ((name = cache_name (b->o, err)) == NULL)
                return -1;
        kiln_digest_bytes (key, name, strlen (name));
        dir = kiln_strdup_printf ("%s/build", b->cache_root);
        b->layer_cache = kiln_strdup_printf ("%s/layers", b->cache_root);
        if (kiln_mkdir_p (dir, 0700, err) < 0 || kiln_mkdir_p (b->layer_cache, 0700, err) < 0)
                return kiln_error_wrap (err, "cache dir");
        lock = kiln_strdup_printf ("%s/%.32s.lock", dir, kiln_digest_hex (key));
        b->lock_fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (b->lock_fd < 0)
                return kiln_error_make (err, errno, "open `%s`", lock);
        if (flock (b->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                kiln_warn ("another build of %s is using its cache: building without it", name);
                return 0;
        }
        ref = kiln_strdup_printf ("%s/%.32s.name", dir, kiln_digest_hex (key));
        if (kiln_write_file (ref, name, strlen (name), 0600, err) < 0)
                return -1;
        b->bp_cache = kiln_strdup_printf ("%s/%.32s", dir, kiln_digest_hex (key));
        return 0;
}

static int
fetch (build *b, kiln_error **err)
{
        const build_opts *o = b->o;
        cleanup_free char *dest = kiln_strdup_printf ("%s/source", b->work);
        char *user = NULL, *pass = NULL;
        kiln_source_opts so = {
                .url = o->git,
                .local_dir = o->git ? NULL : o->dir,
                .revision = o->revision,
                .context_dir = o->context_dir,
                .work_dir = dest,
                .ssh_key_path = o->git_ssh_key ? o->git_ssh_key : getenv ("KILN_GIT_SSH_KEY"),
                .ssh_key_passphrase = getenv ("KILN_GIT_SSH_PASSPHRASE"),
                .insecure_skip_tls_verify = o->git_insecure,
                .cancel = &canceled,
        };
        const char *creds
            = o->git_credentials ? o->git_credentials : getenv ("KILN_GIT_CREDENTIALS");
        const char *known_hosts = getenv ("KILN_GIT_SSH_KNOWN_HOSTS");
        cleanup_free char *known = NULL;
        size_t known_len;
        int r = -1;

        if (o->git && known_hosts && *known_hosts) {
                if (kiln_read_file (&known, &known_len, known_hosts, 1 << 20, err) < 0)
                        return kiln_error_wrap (err, "KILN_GIT_SSH_KNOWN_HOSTS");
                so.ssh_known_hosts = known;
        }

        if (o->git) {
                cleanup_free char *clean = kiln_source_redact_url (o->git);
                phase (&b->prog, "fetch", "%s%s%s", clean, o->revision ? " at " : "",
                       o->revision ? o->revision : "");
        } else {
                phase (&b->prog, "fetch", "%s", o->dir);
        }
        so.username = getenv ("KILN_GIT_USERNAME");
        so.password = getenv ("KILN_GIT_PASSWORD");
        if (o->git && creds && !so.password) {
                if (git_credentials_lookup (&user, &pass, creds, o->git, err) < 0)
                        return -1;
                so.username = user;
                so.password = pass;
        }
        r = kiln_source_fetch (&b->src, &so, err);
        free_secret (user);
        free_secret (pass);
        if (r < 0)
                return -1;
        if (o->git) {
                /* The history is not part of the function, and git's own
                 * files would make the app layer differ between clones. */
                cleanup_free char *git_dir = kiln_strdup_printf ("%s/.git", b->src.root);
                if (kiln_rm_rf (git_dir, err) < 0)
                        return -1;
        }
        if (b->src.commit)
                phase (&b->prog, "fetch", "commit %s%s%s", b->src.commit,
                       b->src.branch ? " on " : "", b->src.branch ? b->src.branch : "");
        return 0;
}

static int
run_lifecycle (build *b, kiln_error **err)
{
        const build_opts *o = b->o;
        cleanup_free char *layers = kiln_strdup_printf ("%s/layers", b->work);
        cleanup_kvs kiln_kvs env = KILN_KVS_INIT;
        kiln_lifecycle_opts lo = {
                .app_dir = b->src.app_dir,
                .layers_dir = layers,
                .buildpacks_dir = b->buildpacks_dir,
                .buildpack_dirs = o->n_buildpacks ? o->buildpacks : NULL,
                .language = o->language,
                .platform_env = &env,
                .cache_dir = b->bp_cache,
                .no_network = o->no_network,
                .cancel = &canceled,
                .output = on_output,
                .output_data = &b->prog,
                .phase = on_lifecycle_phase,
                .phase_data = &b->prog,
        };

        kiln_kvs_copy (&env, &o->env);
        if (o->func_name)
                kiln_kvs_set (&env, "FUNC_NAME", o->func_name);
        if (o->signature)
                kiln_kvs_set (&env, "FUNC_SIGNATURE_TYPE", o->signature);
        if (o->n_buildpacks == 0 && b->buildpacks_dir == NULL)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                         "no buildpacks found beside kiln: set "
                                         "KILN_BUILDPACKS_DIR or give --buildpack DIR");
        return kiln_lifecycle_run (&b->res, &lo, err);
}

/* What the user calls the source, for messages that would otherwise name
 * the temporary checkout. */
static char *
source_display (const build *b)
{
        const build_opts *o = b->o;
        const char *ctx = o->context_dir && *o->context_dir ? o->context_dir : NULL;

        if (!o->git)
                return kiln_strdup_printf ("%s%s%s", o->dir, ctx ? "/" : "", ctx ? ctx : "");
        return kiln_strdup_printf ("%s%s%s%s%s", b->src.url ? b->src.url : o->git,
                                   o->revision ? " at " : "", o->revision ? o->revision : "",
                                   ctx ? ", dir " : "", ctx ? ctx : "");
}

static void
error_replace (kiln_error *e, const char *from, const char *to)
{
        cleanup_buf kiln_buf out = KILN_BUF_INIT;
        const char *p, *hit;
        size_t n = strlen (from);

        if (e == NULL || n == 0 || strstr (e->msg, from) == NULL)
                return;
        for (p = e->msg; (hit = strstr (p, from)) != NULL; p = hit + n) {
                kiln_buf_append (&out, p, (size_t) (hit - p), NULL);
                kiln_buf_puts (&out, to, NULL);
        }
        kiln_buf_puts (&out, p, NULL);
        free (e->msg);
        e->msg = kiln_buf_steal (&out, NULL);
}

/* --run-image, else the first buildpack that names a default. */
static int
choose_run_image (build *b, kiln_error **err)
{
        cleanup_buf kiln_buf ids = KILN_BUF_INIT;

        if (b->o->run_image) {
                b->run_image = b->o->run_image;
                return 0;
        }
        for (size_t i = 0; i < b->res.n_buildpacks; i++) {
                if (b->res.buildpacks[i].default_run_image) {
                        b->run_image = b->res.buildpacks[i].default_run_image;
                        return 0;
                }
                kiln_buf_printf (&ids, NULL, "%s%s", i ? ", " : "", b->res.buildpacks[i].id);
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                 "no run image: give --run-image (buildpacks %s name no "
                                 "default-run-image)",
                                 ids.data ? ids.data : "");
}

static bool
is_registry (const char *spec)
{
        kiln_location loc = { 0 };
        kiln_error *err = NULL;
        bool r;

        if (strcmp (spec, KILN_STATIC_BASE) == 0)
                return false;
        if (kiln_location_parse (&loc, spec, &err) < 0) {
                kiln_error_free (err);
                return false; /* reported where it is used */
        }
        r = loc.transport == KILN_TRANSPORT_REGISTRY;
        kiln_location_clear (&loc);
        return r;
}

/* SOURCE_DATE_EPOCH when set, else the commit's time, else the epoch:
 * never the clock, so a rebuild of one commit gives one digest. */
static int
created_time (int64_t *out, const build *b, kiln_error **err)
{
        const char *sde = getenv ("SOURCE_DATE_EPOCH");

        if ((sde && *sde) || b->src.commit_time < 0)
                return kiln_source_date_epoch (out, err);
        *out = b->src.commit_time;
        return 0;
}

static int
export_and_publish (build *b, kiln_error **err)
{
        const build_opts *o = b->o;
        cleanup_compose kiln_compose *c = NULL;
        cleanup_free char *stacks = default_stacks_dir (b->buildpacks_dir);
        /* A kiln-stack: run image is built into (and reused from) the
         * build's own cache dir, so --cache-dir keeps everything. */
        cleanup_free char *stack_cache
            = b->cache_root ? kiln_strdup_printf ("%s/stacks", b->cache_root) : NULL;
        /* record_base: `kiln rebase` finds the run image's layers by it. */
        kiln_compose_opts copts = {
                .base = b->run_image,
                .platform = o->reg.platform,
                .record_base = true,
                .stacks_dir = stacks,
                .stack_cache_dir = stack_cache,
        };
        kiln_export_opts eo = {
                .result = &b->res,
                .source_url = b->src.url ? b->src.url : o->dir,
                .source_commit = b->src.commit,
                .source_revision = b->src.revision,
                .source_branch = b->src.branch,
                .context_dir = o->context_dir,
                .user = o->user,
                .base_has_shell = strcmp (b->run_image, KILN_STATIC_BASE) != 0
                                  && strcmp (b->run_image, "scratch") != 0,
                .layer_cache_dir = b->layer_cache,
                .on_layer = on_layer,
                .on_layer_data = &b->prog,
        };
        bool need_registry = is_registry (b->run_image) || o->image;

        for (size_t i = 0; i < o->n_outputs; i++)
                need_registry = need_registry || is_registry (o->outputs[i]);
        if (created_time (&copts.created, b, err) < 0)
                return -1;
        if (need_registry) {
                if (kiln_cli_registry_client (&b->reg, &b->o->reg, b->g, err) < 0)
                        return -1;
                copts.registry = b->reg;
        }
        phase (&b->prog, "export", "%zu launch layer%s and the app over %s", b->res.n_launch_layers,
               b->res.n_launch_layers == 1 ? "" : "s", b->run_image);
        if (kiln_compose_new (&c, &copts, err) < 0 || kiln_export (c, &eo, err) < 0)
                return -1;
        if (strcmp (b->run_image, KILN_STATIC_BASE) == 0)
                kiln_kvs_set (kiln_compose_annotations (c), "org.opencontainers.image.base.name",
                              KILN_STATIC_BASE);
        /* A push is not cut off half-way (the registry's own timeouts bound
         * it); a signal stops the build before the next destination. */
        stop_timer ();
        if (o->image && !canceled) {
                phase (&b->prog, "push", "%s", o->image);
                if (kiln_compose_publish (c, o->image, b->digest, err) < 0)
                        return -1;
        }
        for (size_t i = 0; i < o->n_outputs && !canceled; i++) {
                phase (&b->prog, "write", "%s", o->outputs[i]);
                if (kiln_compose_publish (c, o->outputs[i], b->digest, err) < 0)
                        return -1;
        }
        b->published = !canceled;
        return 0;
}

/* A canceled step reports why it was canceled. */
static int
stopped (build *b, kiln_error **err)
{
        char d[32];

        /* The error the canceled step gave (a killed process) says less
         * than why it was stopped: it is replaced. */
        if (err && *err) {
                kiln_error_free (*err);
                *err = NULL;
        }
        if (!timed_out)
                return kiln_error_makec (err, KILN_E_CANCELED, 0, "build canceled during %s",
                                         b->prog.phase);
        kiln_sandbox_format_duration (d, sizeof d, b->o->timeout_ms);
        return kiln_error_makec (err, KILN_E_TIMEOUT, 0,
                                 "build timed out after %s (--timeout) during %s; its processes "
                                 "were killed",
                                 d, b->prog.phase);
}

/* Buildpacks build for the machine they run on, so --platform may only
 * pick that platform from a multi-platform run image. */
static int
check_platform (const build_opts *o, kiln_error **err)
{
        kiln_platform *host;
        bool ok;

        if (o->reg.platform == NULL)
                return 0;
        host = kiln_platform_host ();
        ok = kiln_platform_match (o->reg.platform, host);
        if (!ok)
                kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                  "--platform %s/%s: kiln builds for the platform it runs on "
                                  "(%s/%s)",
                                  o->reg.platform->os, o->reg.platform->architecture, host->os,
                                  host->architecture);
        kiln_platform_free (host);
        return ok ? 0 : -1;
}

static int
do_build (build *b, kiln_error **err)
{
        int r;

        clock_gettime (CLOCK_MONOTONIC, &b->prog.start);
        if (check_platform (b->o, err) < 0 || kiln_mkdtemp (&b->work, "build", err) < 0)
                return -1;
        if (b->o->n_buildpacks == 0)
                b->buildpacks_dir = default_buildpacks_dir ();
        if (setup_cache (b, err) < 0)
                return -1;
        arm_cancel (b->o->timeout_ms);
        r = fetch (b, err);
        if (r == 0 && !canceled) {
                r = run_lifecycle (b, err);
                if (r < 0 && err && b->src.app_dir) {
                        cleanup_free char *display = source_display (b);
                        error_replace (*err, b->src.app_dir, display);
                }
        }
        if (r == 0 && !canceled)
                r = choose_run_image (b, err);
        if (r == 0 && !canceled)
                r = export_and_publish (b, err);
        if (canceled && !b->published)
                r = stopped (b, err);
        disarm_cancel ();
        if (r == 0 && b->layer_cache)
                kiln_export_cache_prune (b->layer_cache, LAYER_CACHE_MAX_AGE_S, NULL);
        return r;
}

static int
report (build *b, kiln_error **err)
{
        const build_opts *o = b->o;

        if (!b->g->quiet && !b->g->json)
                fprintf (stderr, "==> done    %s in %.1fs\n", b->digest, elapsed (&b->prog));
        if (o->reg.digest_file) {
                cleanup_free char *line = kiln_strdup_printf ("%s\n", b->digest);
                if (kiln_write_file (o->reg.digest_file, line, strlen (line), 0644, err) < 0)
                        return kiln_error_wrap (err, "digest file");
        }
        if (b->g->json) {
                cleanup_kiln_json kiln_json *j = kiln_json_object ();
                kiln_json *outs = kiln_json_array ();
                kiln_json *bps = kiln_json_array ();
                cleanup_free char *s = NULL;

                for (size_t i = 0; i < o->n_outputs; i++)
                        kiln_json_append_str (outs, o->outputs[i]);
                for (size_t i = 0; i < b->res.n_buildpacks; i++) {
                        cleanup_free char *id = kiln_strdup_printf (
                            "%s@%s", b->res.buildpacks[i].id, b->res.buildpacks[i].version);
                        kiln_json_append_str (bps, id);
                }
                kiln_json_set_str (j, "image", o->image);
                kiln_json_set_str (j, "digest", b->digest);
                kiln_json_set_node (j, "outputs", outs);
                kiln_json_set_node (j, "buildpacks", bps);
                kiln_json_set_str (j, "runImage", b->run_image);
                kiln_json_set_str (j, "source", b->src.url ? b->src.url : o->dir);
                kiln_json_set_str (j, "commit", b->src.commit);
                kiln_json_set_str (j, "author", b->src.author);
                kiln_json_set_str (j, "branch", b->src.branch);
                if (b->src.commit_time >= 0 && b->src.commit)
                        kiln_json_set_i64 (j, "commitTime", b->src.commit_time);
                if (kiln_json_format (&s, j, err) < 0)
                        return -1;
                printf ("%s\n", s);
        } else {
                printf ("%s\n", b->digest);
        }
        fflush (stdout);
        return 0;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        build_opts o = { 0 };
        build b = { .o = &o, .g = g, .prog = { .g = g }, .lock_fd = -1 };
        kiln_error *err = NULL;
        int r;

        kiln_cli_registry_init (&o.reg, "pushed");
        if (parse_args (&o, g, argc, argv) < 0) {
                build_opts_clear (&o);
                return KILN_EXIT_USAGE;
        }
        /* Files the build makes get the same modes whoever runs it. */
        umask (022);
        r = do_build (&b, &err);
        if (r == 0)
                r = report (&b, &err);
        build_clear (&b);
        build_opts_clear (&o);
        return r < 0 ? kiln_cli_fail (g, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_build = {
        "build",
        run,
        "build a function from source into an image",
        "Usage: kiln build [DIR] --image REF [options]\n"
        "       kiln build --git URL [--revision REV] [--context-dir PATH] --image REF [options]\n"
        "\n"
        "Builds the function in DIR (default: the current directory) or in a git\n"
        "repository with Cloud Native Buildpacks, lays the result over a run image\n"
        "and pushes it to --image and/or writes it to each --output.  Prints the\n"
        "manifest digest.  See docs/build.md.\n"
        "\n"
        "Source:\n"
        "      --git URL             clone URL (file://, https://, ssh://, user@host:path)\n"
        "      --revision REV        a branch, tag or commit (default: the remote's HEAD)\n"
        "      --context-dir PATH    the sub-folder holding the function\n"
        "      --git-credentials FILE  https credentials, git-credential-store lines\n"
        "                            (https://USER:TOKEN@HOST); also KILN_GIT_CREDENTIALS,\n"
        "                            or KILN_GIT_USERNAME and KILN_GIT_PASSWORD\n"
        "      --git-ssh-key FILE    private key for ssh URLs (also KILN_GIT_SSH_KEY;\n"
        "                            passphrase in KILN_GIT_SSH_PASSPHRASE); the host\n"
        "                            key is checked only against the known_hosts file\n"
        "                            named by KILN_GIT_SSH_KNOWN_HOSTS\n"
        "      --git-insecure-skip-tls-verify  accept any TLS certificate from the git server\n"
        "\n"
        "Function:\n"
        "      --func-name NAME      the function to serve (FUNC_NAME)\n"
        "      --signature S         http (default) or cloudevent (FUNC_SIGNATURE_TYPE)\n"
        "      --language L          run the buildpacks for L (go, nodejs, python...)\n"
        "                            without choosing by detection\n"
        "  -e, --env K=V             a build setting for the buildpacks; repeatable\n"
        "  -b, --buildpack DIR       use exactly these buildpacks, in order; repeatable\n"
        "                            (default: the groups of KILN_BUILDPACKS_DIR, else\n"
        "                            the buildpacks installed beside kiln)\n"
        "      --no-network          buildpacks run without network access\n"
        "\n"
        "Image:\n"
        "      --image REF           push to this registry reference\n"
        "  -o, --output LOCATION     also (or instead) write oci:DIR[:TAG],\n"
        "                            oci-archive:FILE[:TAG] or\n"
        "                            docker-archive:FILE[:NAME:TAG]; repeatable\n"
        "      --run-image BASE      the image to build on: a registry reference,\n"
        "                            oci:DIR, oci-archive:FILE, docker-archive:FILE,\n"
        "                            scratch or kiln:static (default: what the\n"
        "                            buildpack names; kiln:static for Go)\n"
        "      --user U              user[:group] to run as (default: the run image's\n"
        "                            unless none or root, then 65532:65532)\n"
        "\n"
        "Build:\n"
        "      --cache-dir DIR       cache layers and layer blobs (default:\n"
        "                            $XDG_CACHE_HOME/kiln or ~/.cache/kiln)\n"
        "      --no-cache            neither read nor write the cache\n"
        "      --timeout DUR         stop and kill the build after DUR (90s, 10m)\n"
        "\n"
        "The image is reproducible: times are SOURCE_DATE_EPOCH when set, else\n"
        "the commit's time for `created` and 1970-01-01 for files.\n"
        "\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
