/* kiln: running Cloud Native Buildpacks (buildpack API 0.7 to 0.12) over an
 * application directory: detect, build, and what export needs.
 *
 *   buildpacks root           order.toml, and <id>/ or <id>/<version>/ per
 *                             buildpack, each with buildpack.toml,
 *                             bin/detect and bin/build
 *   app dir                   the source; read-only for detect, writable
 *                             for build
 *   layers dir                <layers>/<escaped id>/<layer>/ and
 *                             <layer>.toml, launch.toml per buildpack
 *   cache dir (optional)      <cache>/<escaped id>/<layer>/ and <layer>.toml
 *
 * Under bubblewrap (see sandbox.h) a buildpack sees the app at /workspace,
 * the layers at /layers, the platform dir at /platform (read-only), itself
 * at /cnb/buildpacks/<escaped id> (read-only) and its plan files under
 * /cnb/plan; these are also the paths of the exported image.  Without
 * bubblewrap it sees host paths, and kiln maps host layer and app paths in
 * launch.toml processes and launch env values back to /layers and
 * /workspace.
 *
 * User environment (platform env) reaches buildpacks only as files
 * <platform>/env/NAME, never as process environment. */
#ifndef KILN_LIFECYCLE_H
#define KILN_LIFECYCLE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "kv.h"
#include "sandbox.h"
#include "toml.h"

/* Where an exported image has them. */
#define KILN_IMAGE_LAYERS_DIR "/layers"
#define KILN_IMAGE_APP_DIR "/workspace"

typedef struct kiln_lifecycle_opts {
        const char *app_dir;    /* required: an existing directory */
        const char *layers_dir; /* required: created if missing; should be empty */

        /* Where buildpacks come from: a root with order.toml (without one,
         * every buildpack under the root is its own group, by id), or the
         * user's list of buildpack directories, which replaces the order
         * with one group of exactly those, in that order. */
        const char *buildpacks_dir;
        const char *const *buildpack_dirs; /* NULL-terminated, or NULL */

        /* `kiln build --language go`: skip the choice between groups and run
         * the buildpacks whose id is `go` or ends in `.go` or `/go`.  Their
         * bin/detect still runs, to collect the build plan, but a "fail"
         * (exit 100) does not stop them. */
        const char *language;

        /* User env: each becomes <platform>/env/NAME holding VALUE. */
        const kiln_kvs *platform_env;
        /* The platform dir; NULL: a private one is made and removed. */
        const char *platform_dir;

        /* Cache layers are restored from here before each buildpack's build
         * and saved back after the build; NULL: no cache. */
        const char *cache_dir;

        kiln_sandbox_mode sandbox;
        bool no_network;           /* bubblewrap: a private network namespace */
        int64_t detect_timeout_ms; /* per bin/detect; <= 0: 60 s */
        int64_t build_timeout_ms;  /* per bin/build; <= 0: none */
        const volatile sig_atomic_t *cancel;

        /* Buildpack output, labelled "detect ID" / "build ID"; NULL: stderr. */
        kiln_output_fn output;
        void *output_data;

        /* Told when a phase starts: ("detect", NULL) before detection and
         * ("build", ID) before each buildpack's bin/build.  May be NULL. */
        void (*phase) (void *data, const char *phase, const char *buildpack_id);
        void *phase_data;
} kiln_lifecycle_opts;

/* A buildpack that took part in the build (for the build-metadata label). */
typedef struct kiln_buildpack_ref {
        char *id;
        char *version;
        char *api;
        char *homepage; /* or NULL */
        /* buildpack.toml `[metadata] default-run-image`, or NULL: the run
         * image this buildpack's output needs when the build names none. */
        char *default_run_image;
} kiln_buildpack_ref;

/* A layer a buildpack made, with its <layer>.toml types. */
typedef struct kiln_bp_layer {
        char *buildpack_id;
        char *name;
        char *host_path;  /* <layers_dir>/<escaped id>/<name>, absolute */
        char *image_path; /* /layers/<escaped id>/<name> */
        bool launch, build, cache;
        kiln_toml *metadata; /* the [metadata] table, or NULL; owned */
} kiln_bp_layer;

typedef enum kiln_env_op {
        KILN_ENV_OVERRIDE = 0,
        KILN_ENV_DEFAULT,
        KILN_ENV_APPEND,
        KILN_ENV_PREPEND,
} kiln_env_op;

/* One environment change from a layer's env files or bin/ and lib/ dirs. */
typedef struct kiln_env_mod {
        char *name;
        kiln_env_op op;
        char *value;
        char *delim; /* for append/prepend: "" when none was given */
} kiln_env_mod;

typedef struct kiln_process {
        char *type;     /* [A-Za-z0-9._-]+ */
        char **command; /* strv: executable and always-given arguments */
        char **args;    /* strv: default arguments (may be empty) */
        bool direct;    /* false: run `command args` through a shell (old APIs) */
        bool is_default;
        char *working_dir; /* in the image; KILN_IMAGE_APP_DIR by default */
        char *buildpack_id;
} kiln_process;

/* What a successful run produced: everything export needs.  Strings and
 * arrays are owned by the result; free with kiln_lifecycle_result_clear.
 * Layer directories stay on disk in layers_dir until the caller removes
 * them. */
typedef struct kiln_lifecycle_result {
        kiln_buildpack_ref *buildpacks; /* the group that built, in order */
        size_t n_buildpacks;

        /* launch = true layers with contents, in buildpack order then by
         * layer name: one image layer each. */
        kiln_bp_layer *launch_layers;
        size_t n_launch_layers;

        /* cache = true layers (already saved to opts.cache_dir if given;
         * then the directories of those that are not launch layers have
         * been moved there and are gone from layers_dir). */
        kiln_bp_layer *cache_layers;
        size_t n_cache_layers;

        /* The launch environment in the order it applies: bin/ -> PATH and
         * lib/ -> LD_LIBRARY_PATH prepends, then env/ and env.launch/ files,
         * buildpack by buildpack, layers by name.  Give it to
         * kiln_launch_env_apply over the base image's Env. */
        kiln_env_mod *launch_env;
        size_t n_launch_env;

        /* Processes by type (a later buildpack replaces an earlier one's
         * process of the same type), sorted by type. */
        kiln_process *processes;
        size_t n_processes;
        /* The process marked default = true (the last one wins), else the
         * one of type "web", else NULL.  Points into processes. */
        const kiln_process *default_process;

        kiln_kvs labels; /* launch.toml [[labels]], later buildpacks win */

        char *app_dir;    /* absolute host path of the app dir */
        char *layers_dir; /* absolute host path of the layers dir */
} kiln_lifecycle_result;

/* Detects, builds and collects.  On failure nothing is left in *out, and
 * the error is one line:
 *   KILN_E_NOT_FOUND "no buildpack detected the source in `DIR` (tried: a, b)"
 *   KILN_E_FAILED    "buildpack ID: bin/build exited with 1: LAST STDERR LINE"
 *   KILN_E_TIMEOUT   "buildpack ID: build timed out after 10s"
 *   KILN_E_INVALID   a malformed buildpack.toml, order.toml, plan, <layer>.toml
 *                    or launch.toml (naming the file)
 *   KILN_E_CANCELED, KILN_E_UNSUPPORTED (sandbox required but unusable),
 *   KILN_E_IO. */
int kiln_lifecycle_run (kiln_lifecycle_result *out, const kiln_lifecycle_opts *opts,
                        kiln_error **err);

void kiln_lifecycle_result_clear (kiln_lifecycle_result *r);

/* The directory name of a buildpack id in a layers or cache dir: '/'
 * becomes '_'.  The caller frees the result. */
char *kiln_buildpack_id_escape (const char *id);

/* Reads one layer's environment for a phase: bin/ and lib/ (as PATH and
 * LD_LIBRARY_PATH prepends; for build also LIBRARY_PATH, CPATH,
 * PKG_CONFIG_PATH from lib/, include/, pkgconfig/), then env/, then
 * env.build/ or env.launch/.  Paths in the mods are under path_in_image
 * (the layer's path as the consumer sees it).  Appends to *mods / *n. */
int kiln_layer_env_read (kiln_env_mod **mods, size_t *n, const char *layer_dir,
                         const char *path_in_image, bool launch, kiln_error **err);

/* Applies mods, in order, to *env: a strv of "NAME=VALUE" (may be NULL;
 * replaced by the new array).  override sets; default sets when unset or
 * empty; append/prepend join with the mod's delimiter when the variable is
 * set and non-empty, else set it.  So PATH from a base image is kept and
 * extended, never replaced, by bin/ dirs. */
void kiln_launch_env_apply (char ***env, const kiln_env_mod *mods, size_t n);

void kiln_env_mods_free (kiln_env_mod *mods, size_t n);

#endif
