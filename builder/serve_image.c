/* kiln: strategy steps that run an image (see include/kiln/serve.h).
 *
 * The image is pulled with kiln's registry client and unpacked, layer by
 * layer with whiteouts, into a cache keyed by digest, shared by every run
 * and never written by a step.  The step runs under bubblewrap, in new
 * user, mount, pid, ipc, uts and cgroup namespaces, sharing the network:
 *   /                    a tmpfs holding the image's top-level entries,
 *                        each bound read-only from the cache
 *   /proc, /dev, /tmp    fresh
 *   /workspace/source    the run's source dir (writable)
 *   /tekton/results      the run's results dir (writable)
 *   /tekton/home         the run's home dir, when the env names no HOME
 *   /tekton/creds/docker the push secret's config.json (read-only), when
 *                        there is a pushSecret
 *   each volumeMount     the run's dir of that emptyDir volume
 * The daemon's uid is mapped to the step's runAsUser (0 by default), so
 * the source, results and volume dirs are the step's own. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"
#include "kiln/kv.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/sandbox.h"
#include "kiln/serve.h"

#define CONFIG_MAX (4 * 1024 * 1024)
#define PASSWD_MAX (1024 * 1024)
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- the image cache ---- */

void
kiln_step_image_clear (kiln_step_image *img)
{
        free (img->rootfs);
        kiln_config_free (img->config);
        memset (img, 0, sizeof (*img));
}

static int
load_cached (kiln_step_image *out, const char *dir, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/config.json", dir);
        cleanup_free char *raw = NULL;
        size_t len;

        if (kiln_read_file (&raw, &len, path, CONFIG_MAX, err) < 0
            || kiln_config_parse (&out->config, raw, len, err) < 0)
                return kiln_error_wrap (err, "cached image %s", dir);
        out->rootfs = kiln_strdup_printf ("%s/rootfs", dir);
        out->cached = true;
        return 0;
}

/* Fetches and applies each layer in order into tmp/rootfs, checking each
 * against the config's diff_ids. */
static int
unpack (kiln_registry *reg, const kiln_remote_image *img, const char *tmp,
        volatile sig_atomic_t *stop, kiln_error **err)
{
        cleanup_free char *root = kiln_strdup_printf ("%s/rootfs", tmp);
        cleanup_free char *blob = kiln_strdup_printf ("%s/layer", tmp);
        cleanup_free char *cfg = kiln_strdup_printf ("%s/config.json", tmp);
        const kiln_manifest *m = img->manifest;
        size_t n_diff = kiln_strv_len (img->config->diff_ids);
        kiln_extract_opts xo;

        kiln_extract_opts_init (&xo);
        if (mkdir (root, 0755) < 0)
                return kiln_error_make (err, errno, "mkdir `%s`", root);
        if (n_diff != m->n_layers)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "%zu layers but %zu diff_ids in its config", m->n_layers,
                                         n_diff);
        for (size_t i = 0; i < m->n_layers; i++) {
                char diff_id[KILN_DIGEST_MAX];
                if (stop && *stop)
                        return kiln_error_makec (err, KILN_E_CANCELED, 0, "pull canceled");
                if (kiln_registry_fetch_blob (reg, img->ref, m->layers[i].digest, m->layers[i].size,
                                              blob, err)
                        < 0
                    || kiln_layer_extract (blob, root, &xo, diff_id, err) < 0)
                        return kiln_error_wrap (err, "layer %s", m->layers[i].digest);
                unlink (blob);
                if (strcmp (diff_id, img->config->diff_ids[i]) != 0)
                        return kiln_error_makec (
                            err, KILN_E_DIGEST_MISMATCH, 0, "layer %s: content %s, config says %s",
                            m->layers[i].digest, diff_id, img->config->diff_ids[i]);
        }
        return kiln_write_file (cfg, img->config_raw, img->config_len, 0600, err);
}

static int
pull_into (kiln_step_image *out, kiln_registry *reg, const kiln_reference *ref,
           const char *cache_dir, const char *dir, volatile sig_atomic_t *stop, kiln_error **err)
{
        cleanup_remote_image kiln_remote_image *img = NULL;
        cleanup_free char *tmp = kiln_strdup_printf ("%s/.tmp-XXXXXX", cache_dir);
        kiln_error *e = NULL;
        int r;

        if (kiln_registry_open_image (&img, reg, ref, NULL, err) < 0)
                return -1;
        if (mkdtemp (tmp) == NULL)
                return kiln_error_make (err, errno, "mkdtemp in `%s`", cache_dir);
        r = unpack (reg, img, tmp, stop, err);
        if (r == 0 && rename (tmp, dir) < 0) {
                /* Another run unpacked the same image meanwhile: use theirs. */
                if (errno != EEXIST && errno != ENOTEMPTY)
                        r = kiln_error_make (err, errno, "rename to `%s`", dir);
        }
        if (kiln_rm_rf (tmp, &e) < 0) {
                kiln_warn ("%s", kiln_error_msg (e));
                kiln_error_free (e);
        }
        if (r < 0 || load_cached (out, dir, err) < 0)
                return -1;
        out->cached = false;
        return 0;
}

int
kiln_step_image_get (kiln_step_image *out, const char *cache_dir, const char *image,
                     volatile sig_atomic_t *stop, kiln_error **err)
{
        cleanup_reference kiln_reference *ref = NULL;
        cleanup_reference kiln_reference *pinned = NULL;
        cleanup_registry kiln_registry *reg = NULL;
        cleanup_free char *dir = NULL;
        kiln_registry_opts ro;
        int r;

        memset (out, 0, sizeof (*out));
        if (kiln_reference_parse (&ref, image, err) < 0)
                return -1;
        kiln_registry_opts_init (&ro);
        r = kiln_registry_opts_load (&ro, NULL, err);
        if (r == 0)
                r = kiln_registry_new (&reg, &ro, err);
        kiln_registry_opts_clear (&ro);
        if (r < 0)
                return -1;
        if (ref->digest[0]) {
                snprintf (out->digest, sizeof out->digest, "%s", ref->digest);
        } else {
                r = kiln_registry_head_manifest (out->digest, NULL, NULL, reg, ref, err);
                if (r < 0)
                        return -1;
                if (r == 0)
                        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "not found");
        }
        if (strchr (out->digest, '/') || out->digest[0] == '.')
                return kiln_error_makec (err, KILN_E_INVALID, 0, "bad digest %s", out->digest);
        if (kiln_mkdir_p (cache_dir, 0700, err) < 0)
                return -1;
        dir = kiln_strdup_printf ("%s/%s", cache_dir, out->digest);
        if (kiln_is_dir (dir))
                return load_cached (out, dir, err);
        pinned = kiln_reference_with (ref, ref->tag, out->digest);
        if (pull_into (out, reg, pinned, cache_dir, dir, stop, err) < 0) {
                kiln_step_image_clear (out);
                return -1;
        }
        return 0;
}

/* ---- the step's command, environment and user ---- */

/* Sets NAME=VALUE in env, replacing an earlier NAME. */
static char **
env_set (char **env, const char *kv)
{
        const char *eq = strchr (kv, '=');
        size_t n = eq ? (size_t) (eq - kv) : strlen (kv);

        if (n == 0)
                return env;
        for (char **e = env; e && *e; e++)
                if (strncmp (*e, kv, n) == 0 && (*e)[n] == '=') {
                        free (*e);
                        *e = eq ? kiln_strdup (kv) : kiln_strdup_printf ("%s=", kv);
                        return env;
                }
        if (eq)
                return kiln_strv_append (env, kv);
        cleanup_free char *full = kiln_strdup_printf ("%s=", kv);
        return kiln_strv_append (env, full);
}

static bool
env_has (char *const *env, const char *name)
{
        size_t n = strlen (name);

        for (char *const *e = env; e && *e; e++)
                if (strncmp (*e, name, n) == 0 && (*e)[n] == '=')
                        return true;
        return false;
}

static char **
env_add_list (char **env, const json_t *list, const json_t *params)
{
        size_t i;
        json_t *e;

        json_array_foreach (list, i, e)
        {
                const char *name = json_string_value (json_object_get (e, "name"));
                const char *value = json_string_value (json_object_get (e, "value"));
                if (name == NULL || *name == '\0')
                        continue;
                cleanup_free char *v
                    = kiln_step_substitute (value ? value : "", params, KILN_STEP_RESULTS_DIR);
                cleanup_free char *kv = kiln_strdup_printf ("%s=%s", name, v);
                env = env_set (env, kv);
        }
        return env;
}

/* The parameters as the sandbox sees them: shp-source-root and
 * shp-source-context under /workspace/source. */
static json_t *
sandbox_params (const kiln_image_step *s)
{
        json_t *p = json_copy ((json_t *) s->params);
        const char *ctx = json_string_value (json_object_get (s->params, "shp-source-context"));
        size_t n = strlen (s->source_root);

        json_object_set_new (p, "shp-source-root", json_string (KILN_STEP_SOURCE_ROOT));
        if (ctx && strncmp (ctx, s->source_root, n) == 0 && (ctx[n] == '\0' || ctx[n] == '/')) {
                cleanup_free char *in = kiln_strdup_printf ("%s%s", KILN_STEP_SOURCE_ROOT, ctx + n);
                json_object_set_new (p, "shp-source-context", json_string (in));
        }
        return p;
}

static bool
get_id (const json_t *ctx, const char *key, int64_t *out)
{
        const json_t *v = json_object_get (ctx, key);

        if (!json_is_integer (v) || json_integer_value (v) < 0
            || json_integer_value (v) > INT32_MAX)
                return false;
        *out = json_integer_value (v);
        return true;
}

/* A name or number from the image's User, looked up in its /etc/passwd or
 * /etc/group (field 3) when a name. */
static int
lookup_id (int64_t *out, const char *rootfs, const char *file, const char *name, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/etc/%s", rootfs, file);
        cleanup_free char *data = NULL;
        size_t len, n = strlen (name);

        if (kiln_parse_int64 (name, 0, INT32_MAX, out) == 0)
                return 0;
        if (kiln_read_file (&data, &len, path, PASSWD_MAX, NULL) == 0)
                for (char *line = data; line && *line;) {
                        char *next = strchr (line, '\n');
                        if (next)
                                *next++ = '\0';
                        if (strncmp (line, name, n) == 0 && line[n] == ':') {
                                char *f = strchr (line + n + 1, ':');
                                char *end = f ? strchr (f + 1, ':') : NULL;
                                if (end) {
                                        *end = '\0';
                                        if (kiln_parse_int64 (f + 1, 0, INT32_MAX, out) == 0)
                                                return 0;
                                }
                        }
                        line = next;
                }
        return kiln_error_makec (err, KILN_E_INVALID, 0, "user %s is not in the image's /etc/%s",
                                 name, file);
}

/* runAsUser/runAsGroup: the step's securityContext, else the strategy's,
 * else the image's User, else 0. */
static int
step_ids (int64_t *uid, int64_t *gid, const kiln_image_step *s, const kiln_step_image *img,
          kiln_error **err)
{
        const json_t *sc = json_object_get (s->step, "securityContext");
        const json_t *ssc
            = json_object_get (json_object_get (s->strategy, "spec"), "securityContext");
        bool have_uid = get_id (sc, "runAsUser", uid) || get_id (ssc, "runAsUser", uid);
        bool have_gid = get_id (sc, "runAsGroup", gid) || get_id (ssc, "runAsGroup", gid);
        const char *user = img->config->user;

        if (user && *user && (!have_uid || !have_gid)) {
                cleanup_free char *u = kiln_strdup (user);
                char *colon = strchr (u, ':');
                if (colon)
                        *colon++ = '\0';
                if (!have_uid && *u && lookup_id (uid, img->rootfs, "passwd", u, err) < 0)
                        return -1;
                have_uid = have_uid || *u;
                if (!have_gid && colon && *colon
                    && lookup_id (gid, img->rootfs, "group", colon, err) < 0)
                        return -1;
                have_gid = have_gid || (colon && *colon);
        }
        if (!have_uid)
                *uid = 0;
        if (!have_gid)
                *gid = 0;
        return 0;
}

/* ---- mounts ---- */

typedef struct mount_spec {
        char *host;
        char *dest;
        bool ro;
} mount_spec;

typedef struct mounts {
        mount_spec *v;
        size_t n;
} mounts;

static void
mounts_add (mounts *m, const char *host, const char *dest, bool ro)
{
        m->v = kiln_reallocarray (m->v, m->n + 1, sizeof (*m->v));
        m->v[m->n++] = (mount_spec){ kiln_strdup (host), kiln_strdup (dest), ro };
}

static void
mounts_free (mounts *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free (m->v[i].host);
                free (m->v[i].dest);
        }
        free (m->v);
}

static bool
is_plain_name (const char *s)
{
        if (s == NULL || *s == '\0' || strcmp (s, ".") == 0 || strcmp (s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum ((unsigned char) *p) && *p != '-' && *p != '_' && *p != '.')
                        return false;
        return true;
}

static bool
is_clean_abs (const char *p)
{
        if (p == NULL || p[0] != '/')
                return false;
        for (const char *c = p; *c; c++)
                if (c[0] == '/' && c[1] == '.'
                    && (c[2] == '/' || c[2] == '\0'
                        || (c[2] == '.' && (c[3] == '/' || c[3] == '\0'))))
                        return false;
        return true;
}

/* The step's volumeMounts: each an emptyDir of the strategy, a dir per
 * volume per run under WORK/volumes, shared by the steps that mount it. */
static int
volume_mounts (mounts *m, const kiln_image_step *s, kiln_error **err)
{
        const json_t *vms = json_object_get (s->step, "volumeMounts");
        size_t i;
        json_t *vm;

        json_array_foreach (vms, i, vm)
        {
                const char *name = json_string_value (json_object_get (vm, "name"));
                const char *path = json_string_value (json_object_get (vm, "mountPath"));
                const json_t *vol;
                if (!is_plain_name (name))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "volumeMount %zu: a volume name is required", i);
                if (!is_clean_abs (path))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "volumeMount %s: mountPath must be an absolute "
                                                 "path without . or ..",
                                                 name);
                vol = kiln_strategy_entry (s->strategy, "volumes", name);
                if (vol == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "volumeMount %s: the strategy has no such volume",
                                                 name);
                if (json_object_get (vol, "emptyDir") == NULL)
                        return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                                 "volume %s: only emptyDir volumes are supported",
                                                 name);
                cleanup_free char *dir = kiln_strdup_printf ("%s/volumes/%s", s->work, name);
                if (kiln_mkdir_p (dir, 0755, err) < 0)
                        return -1;
                mounts_add (m, dir, path, json_is_true (json_object_get (vm, "readOnly")));
        }
        return 0;
}

/* ---- bwrap ---- */

static char **
push3 (char **v, const char *a, const char *b, const char *c)
{
        v = kiln_strv_append (v, a);
        v = kiln_strv_append (v, b);
        return c ? kiln_strv_append (v, c) : v;
}

/* The image's top-level entries, read-only, on a tmpfs root. */
static int
root_entries (char ***v, const char *rootfs, kiln_error **err)
{
        cleanup_dir DIR *d = opendir (rootfs);
        struct dirent *e;

        if (d == NULL)
                return kiln_error_make (err, errno, "open `%s`", rootfs);
        *v = push3 (*v, "--tmpfs", "/", NULL);
        while ((e = readdir (d)) != NULL) {
                const char *n = e->d_name;
                struct stat st;
                if (strcmp (n, ".") == 0 || strcmp (n, "..") == 0 || strcmp (n, "proc") == 0
                    || strcmp (n, "dev") == 0 || strcmp (n, "tmp") == 0)
                        continue;
                cleanup_free char *host = kiln_strdup_printf ("%s/%s", rootfs, n);
                cleanup_free char *dest = kiln_strdup_printf ("/%s", n);
                if (lstat (host, &st) < 0)
                        continue;
                if (S_ISLNK (st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t len = readlink (host, target, sizeof target - 1);
                        if (len <= 0)
                                continue;
                        target[len] = '\0';
                        *v = push3 (*v, "--symlink", target, dest);
                } else if (S_ISDIR (st.st_mode) || S_ISREG (st.st_mode)) {
                        *v = push3 (*v, "--ro-bind", host, dest);
                }
        }
        return 0;
}

static int
mount_depth (const void *a, const void *b)
{
        const mount_spec *x = a, *y = b;
        size_t nx = 0, ny = 0;

        for (const char *p = x->dest; *p; p++)
                nx += *p == '/';
        for (const char *p = y->dest; *p; p++)
                ny += *p == '/';
        return nx < ny ? -1 : nx > ny;
}

static char **
step_argv (const kiln_image_step *s, const kiln_step_image *img, const json_t *params)
{
        const json_t *command = json_object_get (s->step, "command");
        const json_t *args = json_object_get (s->step, "args");
        char **argv = kiln_strv_new ();

        /* Kubernetes: command replaces Entrypoint, args replace Cmd. */
        if (json_array_size (command) > 0)
                kiln_step_expand_list (&argv, command, params, KILN_STEP_RESULTS_DIR);
        else
                for (char **a = img->config->entrypoint; a && *a; a++)
                        argv = kiln_strv_append (argv, *a);
        if (json_array_size (args) > 0)
                kiln_step_expand_list (&argv, args, params, KILN_STEP_RESULTS_DIR);
        else if (json_array_size (command) == 0)
                for (char **a = img->config->cmd; a && *a; a++)
                        argv = kiln_strv_append (argv, *a);
        return argv;
}

static int
build_run (char ***bw, char ***env, const kiln_image_step *s, const kiln_step_image *img,
           kiln_error **err)
{
        cleanup_free char *home = kiln_strdup_printf ("%s/home", s->work);
        cleanup_strv char **argv = NULL;
        cleanup_free char *cwd = NULL;
        const char *wd = json_string_value (json_object_get (s->step, "workingDir"));
        json_t *params = sandbox_params (s);
        mounts m = { 0 };
        int64_t uid, gid;
        char num[32];
        int r = -1;

        argv = step_argv (s, img, params);
        if (argv[0] == NULL || *argv[0] == '\0') {
                kiln_error_makec (err, KILN_E_INVALID, 0,
                                  "no command, and the image has no Entrypoint or Cmd");
                goto out;
        }
        cwd = wd && *wd ? kiln_step_substitute (wd, params, KILN_STEP_RESULTS_DIR)
                        : kiln_strdup (img->config->working_dir && *img->config->working_dir
                                           ? img->config->working_dir
                                           : "/");
        if (cwd[0] != '/') {
                kiln_error_makec (err, KILN_E_INVALID, 0, "workingDir %s is not absolute", cwd);
                goto out;
        }
        if (step_ids (&uid, &gid, s, img, err) < 0 || volume_mounts (&m, s, err) < 0)
                goto out;

        /* Environment: the image's, the Build's, the step's. */
        *env = kiln_strv_new ();
        for (char **e = img->config->env; e && *e; e++)
                *env = env_set (*env, *e);
        if (!env_has (*env, "PATH"))
                *env = env_set (*env, "PATH=" DEFAULT_PATH);
        if (s->docker_config)
                *env = env_set (*env, "DOCKER_CONFIG=" KILN_STEP_DOCKER_CONFIG);
        *env = env_add_list (*env, s->build_env, params);
        *env = env_add_list (*env, json_object_get (s->step, "env"), params);
        if (!env_has (*env, "HOME"))
                *env = env_set (*env, "HOME=" KILN_STEP_HOME);
        /* bwrap carries the run's marker (found after a daemon crash); the
         * step does not. */
        *env = kiln_strv_append (*env, s->marker);

        *bw = kiln_strv_new ();
        *bw = push3 (*bw, kiln_sandbox_bwrap_path (), "--unshare-all", "--share-net");
        *bw = push3 (*bw, "--unshare-user", "--die-with-parent", NULL);
        snprintf (num, sizeof num, "%lld", (long long) uid);
        *bw = push3 (*bw, "--uid", num, NULL);
        snprintf (num, sizeof num, "%lld", (long long) gid);
        *bw = push3 (*bw, "--gid", num, NULL);
        if (root_entries (bw, img->rootfs, err) < 0)
                goto out;
        *bw = push3 (*bw, "--proc", "/proc", NULL);
        *bw = push3 (*bw, "--dev", "/dev", NULL);
        *bw = push3 (*bw, "--tmpfs", "/tmp", NULL);
        *bw = push3 (*bw, "--bind", s->source_root, KILN_STEP_SOURCE_ROOT);
        *bw = push3 (*bw, "--bind", s->results, KILN_STEP_RESULTS_DIR);
        *bw = push3 (*bw, "--bind", home, KILN_STEP_HOME);
        if (s->docker_config)
                *bw = push3 (*bw, "--ro-bind", s->docker_config, KILN_STEP_DOCKER_CONFIG);
        if (m.n > 1)
                qsort (m.v, m.n, sizeof (*m.v), mount_depth);
        for (size_t i = 0; i < m.n; i++)
                *bw = push3 (*bw, m.v[i].ro ? "--ro-bind" : "--bind", m.v[i].host, m.v[i].dest);
        *bw = push3 (*bw, "--chdir", cwd, NULL);
        *bw = push3 (*bw, "--unsetenv", "KILN_BUILDRUN", "--");
        for (char **a = argv; *a; a++)
                *bw = kiln_strv_append (*bw, *a);
        r = 0;
out:
        mounts_free (&m);
        json_decref (params);
        return r;
}

static void
log_to (int fd, const char *prefix, const char *fmt, const char *a, const char *b)
{
        cleanup_free char *line = NULL;
        cleanup_free char *msg = kiln_strdup_printf (fmt, a, b);

        line = kiln_strdup_printf ("[%s] %s\n", prefix, msg);
        if (fd >= 0)
                kiln_write_all (fd, line, strlen (line), NULL);
}

int
kiln_image_step_run (kiln_step_run *out, const kiln_image_step *s, kiln_error **err)
{
        const char *name = json_string_value (json_object_get (s->step, "name"));
        const char *raw = json_string_value (json_object_get (s->step, "image"));
        cleanup_free char *image = NULL;
        cleanup_strv char **bw = NULL;
        cleanup_strv char **env = NULL;
        kiln_step_image img = { 0 };
        int r;

        memset (out, 0, sizeof (*out));
        name = name ? name : "unnamed";
        if (raw == NULL || *raw == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0, "step %s: no image", name);
        {
                json_t *p = sandbox_params (s);
                image = kiln_step_substitute (raw, p, KILN_STEP_RESULTS_DIR);
                json_decref (p);
        }
        if (kiln_sandbox_bwrap_path () == NULL)
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "step %s: running image %s needs bubblewrap (bwrap), "
                                         "which is not usable here",
                                         name, image);
        log_to (s->log_fd, s->prefix, "pulling %s%s", image, "");
        if (kiln_step_image_get (&img, s->cache_dir, image, s->stop, err) < 0)
                return kiln_error_wrap (err, "step %s: pulling image %s", name, image);
        log_to (s->log_fd, s->prefix, "image %s (%s)", img.digest,
                img.cached ? "cached" : "unpacked");
        if (build_run (&bw, &env, s, &img, err) < 0) {
                kiln_step_image_clear (&img);
                return kiln_error_wrap (err, "step %s (image %s)", name, image);
        }
        kiln_step_image_clear (&img);
        *out = (kiln_step_run){ .argv = bw,
                                .env = env,
                                .cwd = "/",
                                .marker = s->marker,
                                .log_fd = s->log_fd,
                                .prefix = s->prefix,
                                .stop = s->stop };
        r = kiln_step_exec (out, err);
        out->argv = NULL;
        out->env = NULL;
        if (r < 0)
                return kiln_error_wrap (err, "step %s (image %s)", name, image);
        return 0;
}
