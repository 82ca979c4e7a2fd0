/* kiln: running buildpacks: discovery, detect, build plan, build, layers,
 * launch metadata and cache (see include/kiln/lifecycle.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/kv.h"
#include "kiln/lifecycle.h"
#include "kiln/log.h"
#include "kiln/sandbox.h"
#include "kiln/toml.h"

#define DETECT_TIMEOUT_MS 60000
#define MAX_BUILDPACKS 256
#define MAX_LAYERS 256     /* per buildpack */
#define MAX_ENV_FILES 1024 /* per env dir */
#define MAX_ENV_VALUE ((size_t) 256 << 10)
#define MAX_TRIALS 1024

#define BASE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define IN_PLATFORM "/platform"
#define IN_BUILDPACKS "/cnb/buildpacks"
#define IN_SCRATCH "/cnb/plan"

typedef struct buildpack {
        char *id;
        char *version;
        char *api;
        char *homepage;
        char *default_run_image;
        char *dir; /* absolute host path */
        char *esc; /* escaped id */
} buildpack;

typedef struct group_entry {
        buildpack *bp;
        bool optional;
} group_entry;

typedef struct group {
        group_entry *items;
        size_t n;
} group;

/* One buildpack's detect outcome, and its plan alternatives. */
typedef struct detected {
        buildpack *bp;
        bool optional;
        kiln_toml *plan; /* owned; may be an empty table */
} detected;

typedef struct ctx {
        const kiln_lifecycle_opts *o;
        bool isolated;
        char *app; /* absolute host paths */
        char *layers;
        char *platform;
        char *scratch; /* private: plan files, HOME without bubblewrap */
        bool own_platform;

        buildpack *bps; /* every buildpack known */
        size_t n_bps;
        group *groups;
        size_t n_groups;

        /* The chosen group and each member's buildpack plan. */
        buildpack **chosen;
        kiln_toml **bp_plans;
        size_t n_chosen;

        kiln_env_mod *build_env; /* from build layers so far */
        size_t n_build_env;
        kiln_bp_layer *layers_made;
        size_t n_layers_made;
} ctx;

/* --- Small helpers --------------------------------------------------- */

char *
kiln_buildpack_id_escape (const char *id)
{
        char *r = kiln_strdup (id);
        for (char *p = r; *p; p++)
                if (*p == '/')
                        *p = '_';
        return r;
}

static bool
valid_id (const char *id)
{
        static const char *const reserved[] = { "app", "config", "generated", "sbom" };

        if (id == NULL || *id == '\0' || id[0] == '.' || strlen (id) > 255)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                      || (*p >= '0' && *p <= '9') || *p == '.' || *p == '/' || *p == '-'
                      || *p == '_'))
                        return false;
        for (size_t i = 0; i < KILN_N_ELEMENTS (reserved); i++)
                if (strcmp (id, reserved[i]) == 0)
                        return false;
        return strstr (id, "..") == NULL;
}

static bool
valid_process_type (const char *t)
{
        if (t == NULL || *t == '\0')
                return false;
        for (; *t; t++)
                if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z')
                      || (*t >= '0' && *t <= '9') || *t == '.' || *t == '_' || *t == '-'))
                        return false;
        return true;
}

static bool
valid_layer_name (const char *n)
{
        return n[0] != '\0' && n[0] != '.' && strchr (n, '/') == NULL && strcmp (n, "build") != 0
               && strcmp (n, "launch") != 0 && strcmp (n, "store") != 0;
}

static bool
is_executable (const char *path)
{
        struct stat st;
        return stat (path, &st) == 0 && S_ISREG (st.st_mode) && access (path, X_OK) == 0;
}

static int
cmp_str (const void *a, const void *b)
{
        return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The sorted names in a directory (no dot entries); NULL-terminated,
 * empty for a missing directory. */
static int
list_dir (char ***out, const char *dir, size_t max, kiln_error **err)
{
        cleanup_dir DIR *d = opendir (dir);
        cleanup_strv char **v = kiln_strv_new ();
        struct dirent *e;
        size_t n = 0;

        if (d == NULL) {
                if (errno == ENOENT || errno == ENOTDIR) {
                        *out = steal_pointer (&v);
                        return 0;
                }
                return kiln_error_make (err, errno, "open directory `%s`", dir);
        }
        while ((e = readdir (d))) {
                if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
                        continue;
                if (++n > max)
                        return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                                 "`%s` has more than %zu entries", dir, max);
                v = kiln_strv_append (v, e->d_name);
        }
        qsort (v, kiln_strv_len (v), sizeof (char *), cmp_str);
        *out = steal_pointer (&v);
        return 0;
}

/* Replaces every occurrence of from with to in s; returns a new string. */
static char *
replace_all (const char *s, const char *from, const char *to)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        size_t n = strlen (from);
        const char *p;

        if (n == 0)
                return kiln_strdup (s);
        kiln_buf_puts (&b, "", NULL);
        while ((p = strstr (s, from))) {
                kiln_buf_append (&b, s, (size_t) (p - s), NULL);
                kiln_buf_puts (&b, to, NULL);
                s = p + n;
        }
        kiln_buf_puts (&b, s, NULL);
        return kiln_buf_steal (&b, NULL);
}

/* Without bubblewrap buildpacks see host paths; the image has its own. */
static char *
to_image_path (const ctx *c, const char *s)
{
        cleanup_free char *a = NULL;

        if (c->isolated || s == NULL)
                return kiln_strdup (s);
        a = replace_all (s, c->layers, KILN_IMAGE_LAYERS_DIR);
        return replace_all (a, c->app, KILN_IMAGE_APP_DIR);
}

static char *
in_layers (const ctx *c, const char *esc)
{
        return kiln_strdup_printf ("%s/%s", c->isolated ? KILN_IMAGE_LAYERS_DIR : c->layers, esc);
}

static char *
in_scratch (const ctx *c, const char *name)
{
        return kiln_strdup_printf ("%s/%s", c->isolated ? IN_SCRATCH : c->scratch, name);
}

static char *
in_buildpack (const ctx *c, const buildpack *bp)
{
        if (c->isolated)
                return kiln_strdup_printf ("%s/%s", IN_BUILDPACKS, bp->esc);
        return kiln_strdup (bp->dir);
}

/* --- Freeing --------------------------------------------------------- */

static void
buildpack_clear (buildpack *bp)
{
        free (bp->id);
        free (bp->version);
        free (bp->api);
        free (bp->homepage);
        free (bp->default_run_image);
        free (bp->dir);
        free (bp->esc);
}

static void
layer_clear (kiln_bp_layer *l)
{
        free (l->buildpack_id);
        free (l->name);
        free (l->host_path);
        free (l->image_path);
        kiln_toml_free (l->metadata);
}

void
kiln_env_mods_free (kiln_env_mod *mods, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free (mods[i].name);
                free (mods[i].value);
                free (mods[i].delim);
        }
        free (mods);
}

static void
process_clear (kiln_process *p)
{
        free (p->type);
        kiln_strv_free (p->command);
        kiln_strv_free (p->args);
        free (p->working_dir);
        free (p->buildpack_id);
}

void
kiln_lifecycle_result_clear (kiln_lifecycle_result *r)
{
        for (size_t i = 0; i < r->n_buildpacks; i++) {
                free (r->buildpacks[i].id);
                free (r->buildpacks[i].version);
                free (r->buildpacks[i].api);
                free (r->buildpacks[i].homepage);
                free (r->buildpacks[i].default_run_image);
        }
        free (r->buildpacks);
        for (size_t i = 0; i < r->n_launch_layers; i++)
                layer_clear (&r->launch_layers[i]);
        free (r->launch_layers);
        for (size_t i = 0; i < r->n_cache_layers; i++)
                layer_clear (&r->cache_layers[i]);
        free (r->cache_layers);
        kiln_env_mods_free (r->launch_env, r->n_launch_env);
        for (size_t i = 0; i < r->n_processes; i++)
                process_clear (&r->processes[i]);
        free (r->processes);
        kiln_kvs_clear (&r->labels);
        free (r->app_dir);
        free (r->layers_dir);
        memset (r, 0, sizeof (*r));
}

static void
ctx_clear (ctx *c)
{
        kiln_error *ignored = NULL;

        for (size_t i = 0; i < c->n_bps; i++)
                buildpack_clear (&c->bps[i]);
        free (c->bps);
        for (size_t i = 0; i < c->n_groups; i++)
                free (c->groups[i].items);
        free (c->groups);
        for (size_t i = 0; i < c->n_chosen; i++)
                kiln_toml_free (c->bp_plans[i]);
        free (c->bp_plans);
        free (c->chosen);
        kiln_env_mods_free (c->build_env, c->n_build_env);
        for (size_t i = 0; i < c->n_layers_made; i++)
                layer_clear (&c->layers_made[i]);
        free (c->layers_made);
        if (c->scratch)
                kiln_rm_rf (c->scratch, &ignored);
        if (c->own_platform && c->platform)
                kiln_rm_rf (c->platform, &ignored);
        kiln_error_free (ignored);
        free (c->app);
        free (c->layers);
        free (c->platform);
        free (c->scratch);
}

/* --- Environment ----------------------------------------------------- */

static void
add_mod (kiln_env_mod **mods, size_t *n, const char *name, kiln_env_op op, const char *value,
         const char *delim)
{
        kiln_env_mod *m;

        *mods = kiln_reallocarray (*mods, *n + 1, sizeof (kiln_env_mod));
        m = &(*mods)[(*n)++];
        m->name = kiln_strdup (name);
        m->op = op;
        m->value = kiln_strdup (value);
        m->delim = kiln_strdup (delim ? delim : "");
}

static bool
parse_env_file_name (const char *file, char **name, kiln_env_op *op, bool *is_delim)
{
        static const struct {
                const char *suffix;
                kiln_env_op op;
        } suffixes[] = {
                { "override", KILN_ENV_OVERRIDE },
                { "default", KILN_ENV_DEFAULT },
                { "append", KILN_ENV_APPEND },
                { "prepend", KILN_ENV_PREPEND },
        };
        const char *dot = strchr (file, '.');

        *is_delim = false;
        *op = KILN_ENV_OVERRIDE;
        if (dot == file)
                return false;
        *name = dot ? kiln_strdup_printf ("%.*s", (int) (dot - file), file) : kiln_strdup (file);
        if (dot == NULL)
                return true;
        if (strcmp (dot + 1, "delim") == 0) {
                *is_delim = true;
                return true;
        }
        for (size_t i = 0; i < KILN_N_ELEMENTS (suffixes); i++)
                if (strcmp (dot + 1, suffixes[i].suffix) == 0) {
                        *op = suffixes[i].op;
                        return true;
                }
        free (*name);
        *name = NULL;
        return false;
}

static int
read_env_value (char **out, const char *dir, const char *file, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, file);
        struct stat st;

        if (lstat (path, &st) < 0 || !S_ISREG (st.st_mode)) {
                *out = NULL;
                return 0;
        }
        return kiln_read_file (out, NULL, path, MAX_ENV_VALUE, err);
}

/* One env dir: delimiters first, then the other files by name. */
static int
read_env_dir (kiln_env_mod **mods, size_t *n, const char *dir, kiln_error **err)
{
        cleanup_strv char **files = NULL;
        cleanup_kvs kiln_kvs delims = KILN_KVS_INIT;

        if (list_dir (&files, dir, MAX_ENV_FILES, err) < 0)
                return -1;
        for (int pass = 0; pass < 2; pass++)
                for (char **f = files; *f; f++) {
                        cleanup_free char *name = NULL;
                        cleanup_free char *value = NULL;
                        kiln_env_op op;
                        bool is_delim;

                        if (!parse_env_file_name (*f, &name, &op, &is_delim)) {
                                if (pass == 0)
                                        kiln_warn ("ignoring env file `%s/%s`: unknown suffix", dir,
                                                   *f);
                                continue;
                        }
                        if (is_delim != (pass == 0))
                                continue;
                        if (read_env_value (&value, dir, *f, err) < 0)
                                return -1;
                        if (value == NULL)
                                continue;
                        if (is_delim)
                                kiln_kvs_set (&delims, name, value);
                        else
                                add_mod (mods, n, name, op, value, kiln_kvs_get (&delims, name));
                }
        return 0;
}

int
kiln_layer_env_read (kiln_env_mod **mods, size_t *n, const char *layer_dir,
                     const char *path_in_image, bool launch, kiln_error **err)
{
        static const struct {
                const char *sub;
                const char *var;
                bool build_only;
        } paths[] = {
                { "bin", "PATH", false },
                { "lib", "LD_LIBRARY_PATH", false },
                { "lib", "LIBRARY_PATH", true },
                { "include", "CPATH", true },
                { "pkgconfig", "PKG_CONFIG_PATH", true },
        };

        for (size_t i = 0; i < KILN_N_ELEMENTS (paths); i++) {
                cleanup_free char *host = kiln_strdup_printf ("%s/%s", layer_dir, paths[i].sub);
                cleanup_free char *seen = kiln_strdup_printf ("%s/%s", path_in_image, paths[i].sub);
                if ((launch && paths[i].build_only) || !kiln_is_dir (host))
                        continue;
                add_mod (mods, n, paths[i].var, KILN_ENV_PREPEND, seen, ":");
        }
        cleanup_free char *env = kiln_strdup_printf ("%s/env", layer_dir);
        cleanup_free char *phase
            = kiln_strdup_printf ("%s/%s", layer_dir, launch ? "env.launch" : "env.build");
        if (read_env_dir (mods, n, env, err) < 0 || read_env_dir (mods, n, phase, err) < 0)
                return -1;
        return 0;
}

static ssize_t
env_find (char **env, const char *name)
{
        size_t n = strlen (name);
        for (size_t i = 0; env && env[i]; i++)
                if (strncmp (env[i], name, n) == 0 && env[i][n] == '=')
                        return (ssize_t) i;
        return -1;
}

void
kiln_launch_env_apply (char ***env, const kiln_env_mod *mods, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const kiln_env_mod *m = &mods[i];
                ssize_t at = env_find (*env, m->name);
                const char *cur = at >= 0 ? (*env)[at] + strlen (m->name) + 1 : NULL;
                char *next = NULL;

                switch (m->op) {
                case KILN_ENV_OVERRIDE:
                        next = kiln_strdup_printf ("%s=%s", m->name, m->value);
                        break;
                case KILN_ENV_DEFAULT:
                        if (cur == NULL || *cur == '\0')
                                next = kiln_strdup_printf ("%s=%s", m->name, m->value);
                        break;
                case KILN_ENV_APPEND:
                        next = cur && *cur ? kiln_strdup_printf ("%s=%s%s%s", m->name, cur,
                                                                 m->delim, m->value)
                                           : kiln_strdup_printf ("%s=%s", m->name, m->value);
                        break;
                case KILN_ENV_PREPEND:
                        next = cur && *cur ? kiln_strdup_printf ("%s=%s%s%s", m->name, m->value,
                                                                 m->delim, cur)
                                           : kiln_strdup_printf ("%s=%s", m->name, m->value);
                        break;
                }
                if (next == NULL)
                        continue;
                if (at >= 0) {
                        free ((*env)[at]);
                        (*env)[at] = next;
                } else {
                        *env = kiln_strv_append (*env, next);
                        free (next);
                }
        }
}

static char *
target_arch (void)
{
        struct utsname u;

        if (uname (&u) < 0)
                return kiln_strdup ("amd64");
        if (strcmp (u.machine, "x86_64") == 0)
                return kiln_strdup ("amd64");
        if (strcmp (u.machine, "aarch64") == 0)
                return kiln_strdup ("arm64");
        return kiln_strdup (u.machine);
}

/* The environment every buildpack starts from, before CNB variables. */
static char **
base_env (const ctx *c, const buildpack *bp)
{
        cleanup_free char *arch = target_arch ();
        cleanup_free char *bpdir = in_buildpack (c, bp);
        char **env = kiln_strv_new ();

        env = kiln_strv_append (env, "PATH=" BASE_PATH);
        env = kiln_strv_append (env, "LANG=C.UTF-8");
        if (c->isolated) {
                env = kiln_strv_append (env, "HOME=/tmp");
        } else {
                cleanup_free char *home = kiln_strdup_printf ("HOME=%s/home", c->scratch);
                env = kiln_strv_append (env, home);
        }
        cleanup_free char *p
            = kiln_strdup_printf ("CNB_PLATFORM_DIR=%s", c->isolated ? IN_PLATFORM : c->platform);
        cleanup_free char *b = kiln_strdup_printf ("CNB_BUILDPACK_DIR=%s", bpdir);
        cleanup_free char *a = kiln_strdup_printf ("CNB_TARGET_ARCH=%s", arch);
        env = kiln_strv_append (env, p);
        env = kiln_strv_append (env, b);
        env = kiln_strv_append (env, "CNB_EXEC_ENV=production");
        env = kiln_strv_append (env, "CNB_TARGET_OS=linux");
        env = kiln_strv_append (env, a);
        return env;
}

static void
env_set (char ***env, const char *name, const char *value)
{
        kiln_env_mod m = { (char *) name, KILN_ENV_OVERRIDE, (char *) value, (char *) "" };
        kiln_launch_env_apply (env, &m, 1);
}

/* --- Running a buildpack's executable -------------------------------- */

static int
run_phase (ctx *c, const buildpack *bp, bool build, char **argv, char **env, kiln_error **err)
{
        const kiln_lifecycle_opts *o = c->o;
        cleanup_free char *label = kiln_strdup_printf ("%s %s", build ? "build" : "detect", bp->id);
        cleanup_free char *bp_in = kiln_strdup_printf ("%s/%s", IN_BUILDPACKS, bp->esc);
        cleanup_error kiln_error *e = NULL;
        kiln_sandbox_result r;
        kiln_sandbox_mount m[5];
        size_t n = 0;
        const char *what = build ? "bin/build" : "bin/detect";

        /* Detect must not change the app; build may. */
        m[n++] = (kiln_sandbox_mount){ c->app, KILN_IMAGE_APP_DIR, build };
        m[n++] = (kiln_sandbox_mount){ c->platform, IN_PLATFORM, false };
        m[n++] = (kiln_sandbox_mount){ bp->dir, bp_in, false };
        m[n++] = (kiln_sandbox_mount){ c->scratch, IN_SCRATCH, true };
        if (build)
                m[n++] = (kiln_sandbox_mount){ c->layers, KILN_IMAGE_LAYERS_DIR, true };

        kiln_sandbox_opts so = {
                .argv = argv,
                .env = env,
                .cwd = c->isolated ? KILN_IMAGE_APP_DIR : c->app,
                .mounts = m,
                .n_mounts = n,
                .mode = c->isolated ? KILN_SANDBOX_REQUIRE : KILN_SANDBOX_NONE,
                .share_network = !o->no_network,
                .timeout_ms = build                      ? o->build_timeout_ms
                              : o->detect_timeout_ms > 0 ? o->detect_timeout_ms
                                                         : DETECT_TIMEOUT_MS,
                .cancel = o->cancel,
                .label = label,
                .output = o->output,
                .output_data = o->output_data,
        };
        if (kiln_sandbox_run (&r, &so, &e) < 0) {
                char d[32];
                kiln_sandbox_format_duration (d, sizeof d, so.timeout_ms);
                if (e->code == KILN_E_TIMEOUT)
                        return kiln_error_makec (err, KILN_E_TIMEOUT, 0,
                                                 "buildpack %s: %s timed out after %s", bp->id,
                                                 build ? "build" : "detect", d);
                if (e->code == KILN_E_CANCELED)
                        return kiln_error_makec (err, KILN_E_CANCELED, 0,
                                                 "buildpack %s: %s canceled", bp->id,
                                                 build ? "build" : "detect");
                return kiln_error_makec (err, e->code, e->sys_errno, "buildpack %s: %s", bp->id,
                                         e->msg);
        }
        int code = r.exit_code;
        if (code == 0 || (!build && code == 100)) {
                kiln_sandbox_result_clear (&r);
                return code;
        }
        if (r.last_stderr_line)
                kiln_error_makec (err, KILN_E_FAILED, 0, "buildpack %s: %s exited with %d: %s",
                                  bp->id, what, code, r.last_stderr_line);
        else
                kiln_error_makec (err, KILN_E_FAILED, 0, "buildpack %s: %s exited with %d", bp->id,
                                  what, code);
        kiln_sandbox_result_clear (&r);
        return -1;
}

/* --- Buildpacks and the order ---------------------------------------- */

static int
load_buildpack (buildpack *bp, const char *dir, kiln_error **err)
{
        cleanup_toml kiln_toml *t = NULL;
        cleanup_free char *path = kiln_strdup_printf ("%s/buildpack.toml", dir);
        const kiln_toml *id, *version, *api, *homepage, *run_image;

        memset (bp, 0, sizeof (*bp));
        if (kiln_toml_parse_file (&t, path, 0, err) < 0)
                return -1;
        if (kiln_toml_expect (&api, t, "api", KILN_TOML_STRING, true, err) < 0
            || kiln_toml_expect (&id, t, "buildpack.id", KILN_TOML_STRING, true, err) < 0
            || kiln_toml_expect (&version, t, "buildpack.version", KILN_TOML_STRING, true, err) < 0
            || kiln_toml_expect (&homepage, t, "buildpack.homepage", KILN_TOML_STRING, false, err)
                   < 0
            || kiln_toml_expect (&run_image, t, "metadata.default-run-image", KILN_TOML_STRING,
                                 false, err)
                   < 0)
                return kiln_error_wrap (err, "`%s`", path);
        if (!valid_id (kiln_toml_string (id)))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "`%s`: invalid buildpack id `%s`",
                                         path, kiln_toml_string (id));
        if (kiln_toml_get (t, "order"))
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "`%s`: composite buildpacks are not supported", path);
        bp->dir = realpath (dir, NULL);
        if (bp->dir == NULL)
                return kiln_error_make (err, errno, "resolve `%s`", dir);
        bp->id = kiln_strdup (kiln_toml_string (id));
        bp->version = kiln_strdup (kiln_toml_string (version));
        bp->api = kiln_strdup (kiln_toml_string (api));
        bp->homepage = kiln_strdup (kiln_toml_string (homepage));
        bp->default_run_image = kiln_strdup (kiln_toml_string (run_image));
        bp->esc = kiln_buildpack_id_escape (bp->id);
        for (int i = 0; i < 2; i++) {
                cleanup_free char *exe
                    = kiln_strdup_printf ("%s/bin/%s", dir, i ? "build" : "detect");
                if (!is_executable (exe))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "buildpack %s: `%s` is missing or not executable",
                                                 bp->id, exe);
        }
        return 0;
}

static int
add_buildpack (ctx *c, const char *dir, kiln_error **err)
{
        buildpack bp;

        if (c->n_bps >= MAX_BUILDPACKS)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "more than %d buildpacks",
                                         MAX_BUILDPACKS);
        if (load_buildpack (&bp, dir, err) < 0) {
                buildpack_clear (&bp);
                return -1;
        }
        c->bps = kiln_reallocarray (c->bps, c->n_bps + 1, sizeof (buildpack));
        c->bps[c->n_bps++] = bp;
        return 0;
}

/* <root>/<id>/buildpack.toml or <root>/<id>/<version>/buildpack.toml. */
static int
scan_root (ctx *c, const char *root, kiln_error **err)
{
        cleanup_strv char **names = NULL;

        if (list_dir (&names, root, MAX_BUILDPACKS, err) < 0)
                return -1;
        for (char **n = names; *n; n++) {
                cleanup_free char *dir = kiln_strdup_printf ("%s/%s", root, *n);
                cleanup_free char *toml = kiln_strdup_printf ("%s/buildpack.toml", dir);
                cleanup_strv char **versions = NULL;

                if (!kiln_is_dir (dir))
                        continue;
                if (access (toml, F_OK) == 0) {
                        if (add_buildpack (c, dir, err) < 0)
                                return -1;
                        continue;
                }
                if (list_dir (&versions, dir, MAX_BUILDPACKS, err) < 0)
                        return -1;
                for (char **v = versions; *v; v++) {
                        cleanup_free char *vdir = kiln_strdup_printf ("%s/%s", dir, *v);
                        cleanup_free char *vtoml = kiln_strdup_printf ("%s/buildpack.toml", vdir);
                        if (access (vtoml, F_OK) == 0 && add_buildpack (c, vdir, err) < 0)
                                return -1;
                }
        }
        return 0;
}

static buildpack *
find_buildpack (ctx *c, const char *id, const char *version)
{
        for (size_t i = 0; i < c->n_bps; i++)
                if (strcmp (c->bps[i].id, id) == 0
                    && (version == NULL || strcmp (c->bps[i].version, version) == 0))
                        return &c->bps[i];
        return NULL;
}

static void
group_add (group *g, buildpack *bp, bool optional)
{
        g->items = kiln_reallocarray (g->items, g->n + 1, sizeof (group_entry));
        g->items[g->n].bp = bp;
        g->items[g->n].optional = optional;
        g->n++;
}

static group *
new_group (ctx *c)
{
        c->groups = kiln_reallocarray (c->groups, c->n_groups + 1, sizeof (group));
        memset (&c->groups[c->n_groups], 0, sizeof (group));
        return &c->groups[c->n_groups++];
}

static int
parse_order (ctx *c, const char *path, kiln_error **err)
{
        cleanup_toml kiln_toml *t = NULL;
        const kiln_toml *order;

        if (kiln_toml_parse_file (&t, path, 0, err) < 0)
                return -1;
        if (kiln_toml_expect (&order, t, "order", KILN_TOML_ARRAY, true, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        for (size_t i = 0; i < kiln_toml_len (order); i++) {
                const kiln_toml *entries = kiln_toml_get_array (kiln_toml_at (order, i), "group");
                group *g = new_group (c);
                for (size_t k = 0; k < kiln_toml_len (entries); k++) {
                        const kiln_toml *e = kiln_toml_at (entries, k);
                        const char *id = kiln_toml_get_string (e, "id");
                        const char *version = kiln_toml_get_string (e, "version");
                        buildpack *bp;
                        if (id == NULL)
                                return kiln_error_makec (
                                    err, KILN_E_INVALID, 0,
                                    "`%s`: order %zu, group entry %zu has no id", path, i + 1,
                                    k + 1);
                        bp = find_buildpack (c, id, version);
                        if (bp == NULL)
                                return kiln_error_makec (
                                    err, KILN_E_NOT_FOUND, 0, "`%s`: buildpack `%s%s%s` not found",
                                    path, id, version ? "@" : "", version ? version : "");
                        group_add (g, bp, kiln_toml_get_bool (e, "optional", false));
                }
        }
        return 0;
}

static bool
matches_language (const char *id, const char *lang)
{
        size_t a = strlen (id), b = strlen (lang);
        return strcmp (id, lang) == 0
               || (a > b && strcmp (id + a - b, lang) == 0
                   && (id[a - b - 1] == '.' || id[a - b - 1] == '/'));
}

static int
load_order (ctx *c, kiln_error **err)
{
        const kiln_lifecycle_opts *o = c->o;

        if (o->buildpack_dirs && o->buildpack_dirs[0]) {
                group *g;
                for (const char *const *d = o->buildpack_dirs; *d; d++)
                        if (add_buildpack (c, *d, err) < 0)
                                return -1;
                g = new_group (c);
                for (size_t i = 0; i < c->n_bps; i++)
                        group_add (g, &c->bps[i], false);
        } else if (o->buildpacks_dir) {
                cleanup_free char *order = kiln_strdup_printf ("%s/order.toml", o->buildpacks_dir);
                if (scan_root (c, o->buildpacks_dir, err) < 0)
                        return -1;
                if (access (order, F_OK) == 0) {
                        if (parse_order (c, order, err) < 0)
                                return -1;
                } else {
                        for (size_t i = 0; i < c->n_bps; i++)
                                group_add (new_group (c), &c->bps[i], false);
                }
        } else {
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "no buildpacks: give a buildpacks dir or buildpack dirs");
        }
        if (o->language) {
                /* One group of the matching buildpacks, in order. */
                group lang = { NULL, 0 };
                for (size_t g = 0; g < c->n_groups; g++)
                        for (size_t i = 0; i < c->groups[g].n; i++) {
                                buildpack *bp = c->groups[g].items[i].bp;
                                bool dup = false;
                                for (size_t k = 0; k < lang.n; k++)
                                        dup = dup || lang.items[k].bp == bp;
                                if (!dup && matches_language (bp->id, o->language))
                                        group_add (&lang, bp, false);
                        }
                for (size_t g = 0; g < c->n_groups; g++)
                        free (c->groups[g].items);
                free (c->groups);
                c->groups = NULL;
                c->n_groups = 0;
                if (lang.n == 0)
                        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                                 "no buildpack for language `%s`", o->language);
                *new_group (c) = lang;
        }
        if (c->n_groups == 0)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "no buildpacks found in `%s`",
                                         o->buildpacks_dir ? o->buildpacks_dir : "the given dirs");
        return 0;
}

/* --- Detect and the build plan --------------------------------------- */

typedef struct option {
        const kiln_toml *provides; /* arrays of tables, or NULL */
        const kiln_toml *requires;
} option;

static size_t
n_options (const detected *d)
{
        return 1 + kiln_toml_len (kiln_toml_get_array (d->plan, "or"));
}

static option
get_option (const detected *d, size_t k)
{
        const kiln_toml *t
            = k == 0 ? d->plan : kiln_toml_at (kiln_toml_get_array (d->plan, "or"), k - 1);
        option o = { kiln_toml_get_array (t, "provides"), kiln_toml_get_array (t, "requires") };
        return o;
}

static bool
names (const kiln_toml *entries, const char *name)
{
        for (size_t i = 0; i < kiln_toml_len (entries); i++) {
                const char *n = kiln_toml_get_string (kiln_toml_at (entries, i), "name");
                if (n && strcmp (n, name) == 0)
                        return true;
        }
        return false;
}

static int
check_plan (const detected *d, kiln_error **err)
{
        for (size_t k = 0; k < n_options (d); k++) {
                option o = get_option (d, k);
                for (int side = 0; side < 2; side++) {
                        const kiln_toml *list = side ? o.requires : o.provides;
                        for (size_t i = 0; i < kiln_toml_len (list); i++) {
                                const kiln_toml *e = kiln_toml_at (list, i);
                                if (kiln_toml_get_string (e, "name") == NULL)
                                        return kiln_error_makec (
                                            err, KILN_E_INVALID, 0,
                                            "buildpack %s: build plan: a %s entry has no name",
                                            d->bp->id, side ? "requires" : "provides");
                                const kiln_toml *md = kiln_toml_get (e, "metadata");
                                if (md && kiln_toml_type_of (md) != KILN_TOML_TABLE)
                                        return kiln_error_makec (
                                            err, KILN_E_INVALID, 0,
                                            "buildpack %s: build plan: `metadata` must be a table",
                                            d->bp->id);
                        }
                }
        }
        return 0;
}

/* Whether buildpack i of a trial has what it requires (from itself or an
 * earlier one) and is required for what it provides (by itself or a later
 * one). */
static bool
trial_member_ok (const option *opt, const bool *in, size_t n, size_t i)
{
        for (size_t r = 0; r < kiln_toml_len (opt[i].requires); r++) {
                const char *name = kiln_toml_get_string (kiln_toml_at (opt[i].requires, r), "name");
                bool ok = false;
                for (size_t j = 0; j <= i && !ok; j++)
                        ok = in[j] && names (opt[j].provides, name);
                if (!ok)
                        return false;
        }
        for (size_t p = 0; p < kiln_toml_len (opt[i].provides); p++) {
                const char *name = kiln_toml_get_string (kiln_toml_at (opt[i].provides, p), "name");
                bool ok = false;
                for (size_t j = i; j < n && !ok; j++)
                        ok = in[j] && names (opt[j].requires, name);
                if (!ok)
                        return false;
        }
        return true;
}

/* Runs one trial; optional members that do not fit are dropped. */
static bool
run_trial (const detected *d, const option *opt, bool *in, size_t n)
{
        bool changed = true;
        size_t left = 0;

        for (size_t i = 0; i < n; i++)
                in[i] = true;
        while (changed) {
                changed = false;
                for (size_t i = 0; i < n; i++) {
                        if (!in[i] || trial_member_ok (opt, in, n, i))
                                continue;
                        if (!d[i].optional)
                                return false;
                        in[i] = false;
                        changed = true;
                }
        }
        for (size_t i = 0; i < n; i++)
                left += in[i];
        return left > 0;
}

/* The buildpack plan of member i: every require, from any member, of a
 * name that i provides. */
static kiln_toml *
bp_plan_for (const option *opt, const bool *in, size_t n, size_t i)
{
        kiln_toml *plan = kiln_toml_new (KILN_TOML_TABLE);

        for (size_t j = 0; j < n; j++) {
                if (!in[j])
                        continue;
                for (size_t r = 0; r < kiln_toml_len (opt[j].requires); r++) {
                        const kiln_toml *req = kiln_toml_at (opt[j].requires, r);
                        const char *name = kiln_toml_get_string (req, "name");
                        const kiln_toml *md = kiln_toml_get_table (req, "metadata");
                        kiln_toml *e;
                        if (!names (opt[i].provides, name))
                                continue;
                        e = kiln_toml_push_table (plan, "entries");
                        kiln_toml_set_string (e, "name", name);
                        kiln_toml_set (e, "metadata",
                                       md ? kiln_toml_dup (md) : kiln_toml_new (KILN_TOML_TABLE));
                }
        }
        return plan;
}

static void
choose (ctx *c, const detected *d, const option *opt, const bool *in, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (!in[i])
                        continue;
                c->chosen = kiln_reallocarray (c->chosen, c->n_chosen + 1, sizeof (buildpack *));
                c->bp_plans
                    = kiln_reallocarray (c->bp_plans, c->n_chosen + 1, sizeof (kiln_toml *));
                c->chosen[c->n_chosen] = d[i].bp;
                c->bp_plans[c->n_chosen] = bp_plan_for (opt, in, n, i);
                c->n_chosen++;
        }
}

/* Tries the combinations of plan alternatives left to right, depth first;
 * the first that works chooses the group. */
static bool
resolve_plan (ctx *c, const detected *d, size_t n, bool lenient)
{
        cleanup_free size_t *k = kiln_calloc (n, sizeof (size_t));
        cleanup_free option *opt = kiln_calloc (n, sizeof (option));
        cleanup_free bool *in = kiln_calloc (n, sizeof (bool));

        for (int trials = 0; trials < MAX_TRIALS; trials++) {
                size_t pos;
                for (size_t i = 0; i < n; i++)
                        opt[i] = get_option (&d[i], k[i]);
                if (run_trial (d, opt, in, n)) {
                        choose (c, d, opt, in, n);
                        return true;
                }
                /* The last buildpack's alternatives vary fastest. */
                for (pos = n; pos > 0; pos--) {
                        if (++k[pos - 1] < n_options (&d[pos - 1]))
                                break;
                        k[pos - 1] = 0;
                }
                if (pos == 0)
                        break;
        }
        if (!lenient)
                return false;
        for (size_t i = 0; i < n; i++) {
                opt[i] = get_option (&d[i], 0);
                in[i] = true;
        }
        choose (c, d, opt, in, n);
        return true;
}

/* Runs bin/detect: 0 pass, 100 fail, -1 error. */
static int
detect_one (ctx *c, buildpack *bp, kiln_toml **plan, kiln_error **err)
{
        cleanup_free char *name = kiln_strdup_printf ("detect-%s.toml", bp->esc);
        cleanup_free char *host_plan = kiln_strdup_printf ("%s/%s", c->scratch, name);
        cleanup_free char *plan_in = in_scratch (c, name);
        cleanup_free char *bp_in = in_buildpack (c, bp);
        cleanup_free char *exe = kiln_strdup_printf ("%s/bin/detect", bp_in);
        cleanup_strv char **env = base_env (c, bp);
        const char *platform = c->isolated ? IN_PLATFORM : c->platform;
        char *argv[] = { exe, (char *) platform, plan_in, NULL };
        int r;

        *plan = NULL;
        if (kiln_write_file (host_plan, "", 0, 0666, err) < 0)
                return -1;
        env_set (&env, "CNB_BUILD_PLAN_PATH", plan_in);
        r = run_phase (c, bp, false, argv, env, err);
        if (r != 0)
                return r;
        if (kiln_toml_parse_file (plan, host_plan, 0, err) < 0)
                return kiln_error_wrap (err, "buildpack %s: build plan", bp->id);
        return 0;
}

static void
detected_free (detected *d, size_t n)
{
        for (size_t i = 0; i < n; i++)
                kiln_toml_free (d[i].plan);
        free (d);
}

/* Runs a group's detects.  Returns 1 if it passed (and was chosen), 0 if
 * not, -1 on an error that stops everything (timeout, cancel, I/O);
 * *errored takes a buildpack's own failure. */
static int
detect_group (ctx *c, const group *g, kiln_error **errored, kiln_error **err)
{
        detected *d = kiln_calloc (g->n ? g->n : 1, sizeof (detected));
        size_t n = 0;
        bool lenient = c->o->language != NULL;
        int result = 0;

        for (size_t i = 0; i < g->n; i++) {
                kiln_error *e = NULL;
                kiln_toml *plan = NULL;
                int r = detect_one (c, g->items[i].bp, &plan, &e);

                if (r == 0 && check_plan (&(detected){ g->items[i].bp, false, plan }, &e) < 0)
                        r = -1;
                if (r < 0) {
                        kiln_toml_free (plan);
                        if (e->code == KILN_E_TIMEOUT || e->code == KILN_E_CANCELED
                            || e->code == KILN_E_IO || e->code == KILN_E_UNSUPPORTED) {
                                *err = e;
                                detected_free (d, n);
                                return -1;
                        }
                        if (*errored == NULL)
                                *errored = e;
                        else
                                kiln_error_free (e);
                        goto out;
                }
                if (r == 100 && lenient) {
                        kiln_info ("buildpack %s did not detect, but runs for the language",
                                   g->items[i].bp->id);
                        plan = kiln_toml_new (KILN_TOML_TABLE);
                        r = 0;
                }
                if (r == 100) {
                        if (!g->items[i].optional)
                                goto out;
                        continue;
                }
                d[n].bp = g->items[i].bp;
                d[n].optional = g->items[i].optional;
                d[n].plan = plan;
                n++;
        }
        if (n > 0 && resolve_plan (c, d, n, lenient))
                result = 1;
out:
        detected_free (d, n);
        return result;
}

static int
detect (ctx *c, kiln_error **err)
{
        cleanup_error kiln_error *errored = NULL;
        cleanup_buf kiln_buf tried = KILN_BUF_INIT;

        for (size_t g = 0; g < c->n_groups; g++) {
                int r = detect_group (c, &c->groups[g], &errored, err);
                if (r < 0)
                        return -1;
                if (r > 0)
                        return 0;
        }
        if (errored) {
                *err = steal_pointer (&errored);
                return -1;
        }
        for (size_t g = 0; g < c->n_groups; g++)
                for (size_t i = 0; i < c->groups[g].n; i++) {
                        const char *id = c->groups[g].items[i].bp->id;
                        bool seen = false;
                        for (size_t h = 0; h <= g && !seen; h++)
                                for (size_t k = 0; k < (h == g ? i : c->groups[h].n) && !seen; k++)
                                        seen = strcmp (c->groups[h].items[k].bp->id, id) == 0;
                        if (!seen)
                                kiln_buf_printf (&tried, NULL, "%s%s", tried.len ? ", " : "", id);
                }
        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                 "no buildpack detected the source in `%s` (tried: %s)",
                                 c->o->app_dir, tried.data ? tried.data : "");
}

/* --- Layers ---------------------------------------------------------- */

/* Copies a cached layer's metadata (never its [types]: a buildpack must
 * say again what the layer is for) and its contents into the layers dir. */
static int
restore_cache (ctx *c, const buildpack *bp, kiln_error **err)
{
        cleanup_free char *src = kiln_strdup_printf ("%s/%s", c->o->cache_dir, bp->esc);
        cleanup_free char *dst = kiln_strdup_printf ("%s/%s", c->layers, bp->esc);
        cleanup_strv char **names = NULL;

        if (list_dir (&names, src, MAX_LAYERS * 2, err) < 0)
                return -1;
        for (char **n = names; *n; n++) {
                cleanup_free char *layer = NULL;
                cleanup_free char *from_toml = kiln_strdup_printf ("%s/%s", src, *n);
                cleanup_toml kiln_toml *t = NULL;
                cleanup_toml kiln_toml *kept = kiln_toml_new (KILN_TOML_TABLE);

                if (!kiln_str_has_suffix (*n, ".toml"))
                        continue;
                layer = kiln_strdup_printf ("%.*s", (int) (strlen (*n) - 5), *n);
                if (!valid_layer_name (layer))
                        continue;
                cleanup_free char *from_dir = kiln_strdup_printf ("%s/%s", src, layer);
                cleanup_free char *to_dir = kiln_strdup_printf ("%s/%s", dst, layer);
                cleanup_free char *to_toml = kiln_strdup_printf ("%s/%s.toml", dst, layer);
                if (kiln_toml_parse_file (&t, from_toml, 0, err) < 0)
                        return kiln_error_wrap (err, "restore cache");
                if (kiln_toml_get_table (t, "metadata"))
                        kiln_toml_set (kept, "metadata",
                                       kiln_toml_dup (kiln_toml_get (t, "metadata")));
                if (kiln_toml_write_file (to_toml, kept, err) < 0)
                        return -1;
                if (kiln_is_dir (from_dir) && kiln_copy_tree (from_dir, to_dir, NULL, err) < 0)
                        return kiln_error_wrap (err, "restore cache of %s", bp->id);
                kiln_debug ("restored cached layer %s:%s", bp->id, layer);
        }
        return 0;
}

static int
read_layer (kiln_bp_layer *l, const ctx *c, const buildpack *bp, const char *name, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s/%s.toml", c->layers, bp->esc, name);
        cleanup_toml kiln_toml *t = NULL;
        const kiln_toml *types;

        memset (l, 0, sizeof (*l));
        if (kiln_toml_parse_file (&t, path, 0, err) < 0)
                return kiln_error_wrap (err, "buildpack %s", bp->id);
        if (kiln_toml_expect (&types, t, "types", KILN_TOML_TABLE, false, err) < 0)
                return kiln_error_wrap (err, "buildpack %s: `%s`", bp->id, path);
        l->buildpack_id = kiln_strdup (bp->id);
        l->name = kiln_strdup (name);
        l->host_path = kiln_strdup_printf ("%s/%s/%s", c->layers, bp->esc, name);
        l->image_path = kiln_strdup_printf (KILN_IMAGE_LAYERS_DIR "/%s/%s", bp->esc, name);
        l->launch = kiln_toml_get_bool (types, "launch", false);
        l->build = kiln_toml_get_bool (types, "build", false);
        l->cache = kiln_toml_get_bool (types, "cache", false);
        l->metadata = kiln_toml_dup (kiln_toml_get_table (t, "metadata"));
        return 0;
}

/* Reads a buildpack's <layer>.toml files after its build. */
static int
collect_layers (ctx *c, const buildpack *bp, kiln_error **err)
{
        cleanup_free char *dir = kiln_strdup_printf ("%s/%s", c->layers, bp->esc);
        cleanup_strv char **names = NULL;
        size_t count = 0;

        if (list_dir (&names, dir, MAX_LAYERS * 4, err) < 0)
                return -1;
        for (char **n = names; *n; n++) {
                cleanup_free char *layer = NULL;
                kiln_bp_layer l;

                if (!kiln_str_has_suffix (*n, ".toml") || strcmp (*n, "launch.toml") == 0
                    || strcmp (*n, "build.toml") == 0 || strcmp (*n, "store.toml") == 0)
                        continue;
                layer = kiln_strdup_printf ("%.*s", (int) (strlen (*n) - 5), *n);
                if (!valid_layer_name (layer))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "buildpack %s: invalid layer name `%s`", bp->id,
                                                 layer);
                if (++count > MAX_LAYERS)
                        return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                                 "buildpack %s: more than %d layers", bp->id,
                                                 MAX_LAYERS);
                if (read_layer (&l, c, bp, layer, err) < 0) {
                        layer_clear (&l);
                        return -1;
                }
                c->layers_made = kiln_reallocarray (c->layers_made, c->n_layers_made + 1,
                                                    sizeof (kiln_bp_layer));
                c->layers_made[c->n_layers_made++] = l;
                if (l.build && kiln_is_dir (l.host_path)) {
                        cleanup_free char *bp_layers = in_layers (c, bp->esc);
                        cleanup_free char *seen = kiln_strdup_printf ("%s/%s", bp_layers, layer);
                        if (kiln_layer_env_read (&c->build_env, &c->n_build_env, l.host_path, seen,
                                                 false, err)
                            < 0)
                                return kiln_error_wrap (err, "buildpack %s: layer %s", bp->id,
                                                        layer);
                }
        }
        return 0;
}

static int
build_one (ctx *c, size_t idx, kiln_error **err)
{
        buildpack *bp = c->chosen[idx];
        cleanup_free char *name = kiln_strdup_printf ("plan-%s.toml", bp->esc);
        cleanup_free char *host_plan = kiln_strdup_printf ("%s/%s", c->scratch, name);
        cleanup_free char *plan_in = in_scratch (c, name);
        cleanup_free char *layers_host = kiln_strdup_printf ("%s/%s", c->layers, bp->esc);
        cleanup_free char *layers_in = in_layers (c, bp->esc);
        cleanup_free char *bp_in = in_buildpack (c, bp);
        cleanup_free char *exe = kiln_strdup_printf ("%s/bin/build", bp_in);
        cleanup_strv char **env = base_env (c, bp);
        const char *platform = c->isolated ? IN_PLATFORM : c->platform;
        char *argv[] = { exe, layers_in, (char *) platform, plan_in, NULL };

        if (kiln_mkdir_p (layers_host, 0755, err) < 0)
                return -1;
        if (c->o->cache_dir && restore_cache (c, bp, err) < 0)
                return -1;
        if (kiln_toml_write_file (host_plan, c->bp_plans[idx], err) < 0)
                return -1;
        if (c->o->phase)
                c->o->phase (c->o->phase_data, "build", bp->id);
        kiln_launch_env_apply (&env, c->build_env, c->n_build_env);
        env_set (&env, "CNB_LAYERS_DIR", layers_in);
        env_set (&env, "CNB_BP_PLAN_PATH", plan_in);
        env_set (&env, "CNB_APP_DIR", c->isolated ? KILN_IMAGE_APP_DIR : c->app);
        if (run_phase (c, bp, true, argv, env, err) < 0)
                return -1;
        return collect_layers (c, bp, err);
}

/* --- Launch metadata -------------------------------------------------- */

static char **
strv_to_image (const ctx *c, char **v)
{
        for (char **p = v; p && *p; p++) {
                char *m = to_image_path (c, *p);
                free (*p);
                *p = m;
        }
        return v;
}

static int
parse_process (kiln_process *p, const ctx *c, const buildpack *bp, const kiln_toml *t,
               const char *path, kiln_error **err)
{
        const kiln_toml *cmd = kiln_toml_get (t, "command");
        const kiln_toml *args = kiln_toml_get (t, "args");
        const char *type = kiln_toml_get_string (t, "type");
        const char *wd = kiln_toml_get_string (t, "working-dir");

        memset (p, 0, sizeof (*p));
        if (!valid_process_type (type))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "`%s`: invalid process type `%s`",
                                         path, type ? type : "");
        if (kiln_toml_type_of (cmd) == KILN_TOML_STRING) {
                /* Before buildpack API 0.9: one string, run by a shell unless direct. */
                p->command = kiln_strv_append (NULL, kiln_toml_string (cmd));
                p->direct = kiln_toml_get_bool (t, "direct", false);
        } else {
                p->command = kiln_toml_strv (cmd);
                p->direct = true;
        }
        if (p->command == NULL || p->command[0] == NULL || p->command[0][0] == '\0') {
                process_clear (p);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s`: process `%s` needs a command (a string or strings)",
                                         path, type);
        }
        p->args = args ? kiln_toml_strv (args) : kiln_strv_new ();
        if (p->args == NULL) {
                process_clear (p);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s`: process `%s`: `args` must be strings", path, type);
        }
        p->type = kiln_strdup (type);
        p->is_default = kiln_toml_get_bool (t, "default", false);
        p->working_dir = wd ? to_image_path (c, wd) : kiln_strdup (KILN_IMAGE_APP_DIR);
        p->buildpack_id = kiln_strdup (bp->id);
        strv_to_image (c, p->command);
        strv_to_image (c, p->args);
        return 0;
}

static void
add_process (kiln_lifecycle_result *r, kiln_process *p)
{
        if (p->is_default)
                for (size_t i = 0; i < r->n_processes; i++)
                        r->processes[i].is_default = false;
        for (size_t i = 0; i < r->n_processes; i++)
                if (strcmp (r->processes[i].type, p->type) == 0) {
                        process_clear (&r->processes[i]);
                        r->processes[i] = *p;
                        return;
                }
        r->processes = kiln_reallocarray (r->processes, r->n_processes + 1, sizeof (kiln_process));
        r->processes[r->n_processes++] = *p;
}

static int
read_launch_toml (kiln_lifecycle_result *r, const ctx *c, const buildpack *bp, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s/launch.toml", c->layers, bp->esc);
        cleanup_toml kiln_toml *t = NULL;
        const kiln_toml *labels, *procs;

        if (access (path, F_OK) != 0)
                return 0;
        if (kiln_toml_parse_file (&t, path, 0, err) < 0)
                return kiln_error_wrap (err, "buildpack %s", bp->id);
        if (kiln_toml_expect (&labels, t, "labels", KILN_TOML_ARRAY, false, err) < 0
            || kiln_toml_expect (&procs, t, "processes", KILN_TOML_ARRAY, false, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        for (size_t i = 0; i < kiln_toml_len (labels); i++) {
                const char *k = kiln_toml_get_string (kiln_toml_at (labels, i), "key");
                const char *v = kiln_toml_get_string (kiln_toml_at (labels, i), "value");
                if (k == NULL || *k == '\0' || v == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "`%s`: a label needs a key and a value", path);
                kiln_kvs_set (&r->labels, k, v);
        }
        for (size_t i = 0; i < kiln_toml_len (procs); i++) {
                kiln_process p;
                if (parse_process (&p, c, bp, kiln_toml_at (procs, i), path, err) < 0)
                        return -1;
                add_process (r, &p);
        }
        return 0;
}

static int
cmp_process (const void *a, const void *b)
{
        return strcmp (((const kiln_process *) a)->type, ((const kiln_process *) b)->type);
}

static void
layer_copy (kiln_bp_layer *dst, const kiln_bp_layer *src)
{
        *dst = *src;
        dst->buildpack_id = kiln_strdup (src->buildpack_id);
        dst->name = kiln_strdup (src->name);
        dst->host_path = kiln_strdup (src->host_path);
        dst->image_path = kiln_strdup (src->image_path);
        dst->metadata = kiln_toml_dup (src->metadata);
}

static int
collect_launch (kiln_lifecycle_result *r, const ctx *c, kiln_error **err)
{
        for (size_t b = 0; b < c->n_chosen; b++)
                if (read_launch_toml (r, c, c->chosen[b], err) < 0)
                        return -1;
        if (r->n_processes)
                qsort (r->processes, r->n_processes, sizeof (kiln_process), cmp_process);
        for (size_t i = 0; i < r->n_processes; i++)
                if (r->processes[i].is_default)
                        r->default_process = &r->processes[i];
        for (size_t i = 0; i < r->n_processes && !r->default_process; i++)
                if (strcmp (r->processes[i].type, "web") == 0)
                        r->default_process = &r->processes[i];

        /* layers_made is in buildpack order, and by name within one. */
        for (size_t i = 0; i < c->n_layers_made; i++) {
                const kiln_bp_layer *l = &c->layers_made[i];
                if (l->cache) {
                        r->cache_layers = kiln_reallocarray (r->cache_layers, r->n_cache_layers + 1,
                                                             sizeof (kiln_bp_layer));
                        layer_copy (&r->cache_layers[r->n_cache_layers++], l);
                }
                if (!l->launch)
                        continue;
                if (!kiln_is_dir (l->host_path)) {
                        kiln_warn ("buildpack %s: launch layer `%s` has no contents; skipped",
                                   l->buildpack_id, l->name);
                        continue;
                }
                r->launch_layers = kiln_reallocarray (r->launch_layers, r->n_launch_layers + 1,
                                                      sizeof (kiln_bp_layer));
                layer_copy (&r->launch_layers[r->n_launch_layers++], l);
                size_t first = r->n_launch_env;
                if (kiln_layer_env_read (&r->launch_env, &r->n_launch_env, l->host_path,
                                         l->image_path, true, err)
                    < 0)
                        return kiln_error_wrap (err, "buildpack %s: layer %s", l->buildpack_id,
                                                l->name);
                for (size_t k = first; k < r->n_launch_env; k++) {
                        char *m = to_image_path (c, r->launch_env[k].value);
                        free (r->launch_env[k].value);
                        r->launch_env[k].value = m;
                }
        }
        return 0;
}

/* Replaces <cache>/<id> with this build's cache = true layers. */
static int
save_cache (const ctx *c, const buildpack *bp, kiln_error **err)
{
        cleanup_free char *dst = kiln_strdup_printf ("%s/%s", c->o->cache_dir, bp->esc);
        cleanup_free char *staging
            = kiln_strdup_printf ("%s/.staging-%s", c->o->cache_dir, bp->esc);

        if (kiln_rm_rf (staging, err) < 0 || kiln_mkdir_p (staging, 0700, err) < 0)
                return -1;
        for (size_t i = 0; i < c->n_layers_made; i++) {
                const kiln_bp_layer *l = &c->layers_made[i];
                if (!l->cache || strcmp (l->buildpack_id, bp->id) != 0
                    || !kiln_is_dir (l->host_path))
                        continue;
                cleanup_free char *toml_src = kiln_strdup_printf ("%s.toml", l->host_path);
                cleanup_free char *toml_dst = kiln_strdup_printf ("%s/%s.toml", staging, l->name);
                cleanup_free char *dir_dst = kiln_strdup_printf ("%s/%s", staging, l->name);
                /* A layer only the cache wants is moved, not copied: a
                 * rename when the cache and the layers share a file system,
                 * which spares copying a Go build cache twice a build. */
                if (kiln_copy_tree (toml_src, toml_dst, NULL, err) < 0
                    || (l->launch ? kiln_copy_tree (l->host_path, dir_dst, NULL, err)
                                  : kiln_move_tree (l->host_path, dir_dst, err))
                           < 0)
                        return kiln_error_wrap (err, "save cache of %s", bp->id);
        }
        if (kiln_rm_rf (dst, err) < 0)
                return -1;
        if (rename (staging, dst) < 0)
                return kiln_error_make (err, errno, "save cache `%s`", dst);
        return 0;
}

/* --- Setup and the whole run ----------------------------------------- */

static int
write_platform_env (ctx *c, kiln_error **err)
{
        const kiln_kvs *env = c->o->platform_env;
        cleanup_free char *dir = kiln_strdup_printf ("%s/env", c->platform);

        if (kiln_mkdir_p (dir, 0755, err) < 0)
                return -1;
        for (size_t i = 0; env && i < env->n; i++) {
                const char *name = env->items[i].key;
                cleanup_free char *path = NULL;
                if (*name == '\0' || strchr (name, '/') || strchr (name, '=') || name[0] == '.')
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "invalid environment variable name `%s`", name);
                path = kiln_strdup_printf ("%s/%s", dir, name);
                if (kiln_write_file (path, env->items[i].value, strlen (env->items[i].value), 0644,
                                     err)
                    < 0)
                        return -1;
        }
        return 0;
}

static bool warned;

static int
setup (ctx *c, kiln_error **err)
{
        const kiln_lifecycle_opts *o = c->o;

        if (o->app_dir == NULL || o->layers_dir == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "lifecycle: app and layers dirs are required");
        c->app = realpath (o->app_dir, NULL);
        if (c->app == NULL || !kiln_is_dir (c->app))
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "app dir `%s` not found",
                                         o->app_dir);
        if (kiln_mkdir_p (o->layers_dir, 0755, err) < 0)
                return -1;
        c->layers = realpath (o->layers_dir, NULL);
        if (c->layers == NULL)
                return kiln_error_make (err, errno, "resolve `%s`", o->layers_dir);
        if (kiln_mkdtemp (&c->scratch, "lifecycle", err) < 0)
                return -1;
        cleanup_free char *home = kiln_strdup_printf ("%s/home", c->scratch);
        if (kiln_mkdir_p (home, 0700, err) < 0)
                return -1;
        if (o->platform_dir) {
                if (kiln_mkdir_p (o->platform_dir, 0755, err) < 0)
                        return -1;
                c->platform = realpath (o->platform_dir, NULL);
        } else if (kiln_mkdtemp (&c->platform, "platform", err) == 0) {
                c->own_platform = true;
        } else {
                return -1;
        }
        if (c->platform == NULL)
                return kiln_error_make (err, errno, "resolve `%s`", o->platform_dir);
        if (o->cache_dir && kiln_mkdir_p (o->cache_dir, 0700, err) < 0)
                return -1;
        if (o->sandbox != KILN_SANDBOX_NONE && kiln_sandbox_available ())
                c->isolated = true;
        else if (o->sandbox == KILN_SANDBOX_REQUIRE)
                return kiln_error_makec (
                    err, KILN_E_UNSUPPORTED, 0,
                    "a sandbox was required but bubblewrap (bwrap) is not usable");
        else if (o->sandbox == KILN_SANDBOX_AUTO
                 && !__atomic_exchange_n (&warned, true, __ATOMIC_SEQ_CST))
                kiln_warn ("bubblewrap (bwrap) is not usable: buildpacks run without a sandbox "
                           "and can see this machine's files");
        return write_platform_env (c, err);
}

static void
record_buildpacks (kiln_lifecycle_result *r, const ctx *c)
{
        r->buildpacks = kiln_calloc (c->n_chosen, sizeof (kiln_buildpack_ref));
        for (size_t i = 0; i < c->n_chosen; i++) {
                r->buildpacks[i].id = kiln_strdup (c->chosen[i]->id);
                r->buildpacks[i].version = kiln_strdup (c->chosen[i]->version);
                r->buildpacks[i].api = kiln_strdup (c->chosen[i]->api);
                r->buildpacks[i].homepage = kiln_strdup (c->chosen[i]->homepage);
                r->buildpacks[i].default_run_image = kiln_strdup (c->chosen[i]->default_run_image);
        }
        r->n_buildpacks = c->n_chosen;
        r->app_dir = kiln_strdup (c->app);
        r->layers_dir = kiln_strdup (c->layers);
}

int
kiln_lifecycle_run (kiln_lifecycle_result *out, const kiln_lifecycle_opts *opts, kiln_error **err)
{
        ctx c = { .o = opts };
        kiln_lifecycle_result r = { 0 };
        int rc = -1;

        memset (out, 0, sizeof (*out));
        if (setup (&c, err) < 0 || load_order (&c, err) < 0)
                goto out;
        if (opts->phase)
                opts->phase (opts->phase_data, "detect", NULL);
        if (detect (&c, err) < 0)
                goto out;
        for (size_t i = 0; i < c.n_chosen; i++)
                kiln_info ("buildpack %s@%s", c.chosen[i]->id, c.chosen[i]->version);
        for (size_t i = 0; i < c.n_chosen; i++)
                if (build_one (&c, i, err) < 0)
                        goto out;
        if (collect_launch (&r, &c, err) < 0)
                goto out;
        for (size_t i = 0; opts->cache_dir && i < c.n_chosen; i++)
                if (save_cache (&c, c.chosen[i], err) < 0)
                        goto out;
        record_buildpacks (&r, &c);
        *out = r;
        memset (&r, 0, sizeof (r));
        rc = 0;
out:
        kiln_lifecycle_result_clear (&r);
        ctx_clear (&c);
        return rc;
}
