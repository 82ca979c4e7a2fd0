/* kiln: the export step of a build: what the buildpacks made, laid over a
 * run image as one reproducible layer per launch layer plus the app layer,
 * with the image config a function needs to run without a launcher.
 *
 * The composer (compose.h) holds the run image; export adds the layers,
 * changes the config and sets the manifest annotations, and the caller
 * publishes.  Nothing here depends on where the build ran: host paths,
 * work directories and the wall clock never reach the image. */
#ifndef KILN_EXPORT_H
#define KILN_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "compose.h"
#include "error.h"
#include "image.h"
#include "kv.h"
#include "layer.h"
#include "lifecycle.h"

/* The config label summarising the build (JSON, sorted keys): buildpacks,
 * processes, source. */
#define KILN_BUILD_METADATA_LABEL "dev.kiln.build.metadata"

/* Where the function listens unless a buildpack says otherwise. */
#define KILN_DEFAULT_PORT "8080"

/* The user an image runs as when the run image has none or root. */
#define KILN_DEFAULT_USER "65532:65532"

typedef struct kiln_export_opts {
        const kiln_lifecycle_result *result;

        /* Where the source came from, for labels and annotations: the git
         * URL without credentials, or the directory as the user gave it. */
        const char *source_url;
        const char *source_commit;   /* 40 hex, or NULL */
        const char *source_revision; /* as asked, or NULL */
        const char *source_branch;   /* or NULL */
        const char *context_dir;     /* or NULL */

        /* The user to run as; NULL: the run image's unless it has none or
         * root, then KILN_DEFAULT_USER. */
        const char *user;

        /* Whether the run image has /bin/sh, for processes that need a
         * shell (buildpack API < 0.9, direct = false). */
        bool base_has_shell;

        /* Layer settings (NULL: gzip defaults); mtime < 0 is resolved from
         * SOURCE_DATE_EPOCH. */
        const kiln_layer_opts *layer_opts;

        /* A directory of layer blobs kept by content (see
         * kiln_export_add_tree); NULL: every layer is written afresh. */
        const char *layer_cache_dir;

        /* Told about each layer as it is added: its image path and whether
         * the cache had it.  May be NULL. */
        void (*on_layer) (void *data, const char *image_path, const kiln_layer_info *info,
                          bool cached);
        void *on_layer_data;
} kiln_export_opts;

/* Adds the launch layers (at their image paths) and the app (at
 * /workspace) to c, each with a history entry naming the buildpack and
 * layer, then applies kiln_export_config and kiln_export_annotations.
 * Errors name the layer. */
int kiln_export (kiln_compose *c, const kiln_export_opts *opts, kiln_error **err);

/* Changes a run image's config into the function's:
 *   Env         the base's, with the launch environment applied (PATH is
 *               extended, not replaced), and PORT=8080 unless set;
 *   Entrypoint  the default process's command (through /bin/sh -c for a
 *               process that is not direct), Cmd its arguments (cleared
 *               when it has none, so the base's Cmd never leaks in);
 *   WorkingDir  the process's working directory (/workspace by default);
 *   User        opts->user, else the base's unless none or root, else
 *               KILN_DEFAULT_USER;
 *   ExposedPorts  $PORT/tcp;
 *   Labels      launch.toml labels, KILN_BUILD_METADATA_LABEL, and
 *               org.opencontainers.image.source / .revision.
 * Fails (KILN_E_INVALID) when no process is the default, and
 * (KILN_E_UNSUPPORTED) when the process needs a shell the base lacks. */
int kiln_export_config (kiln_image_config *cfg, const kiln_export_opts *opts, kiln_error **err);

/* Sets org.opencontainers.image.source, .revision (when a commit is
 * known) and .created (the RFC 3339 time `created`). */
void kiln_export_annotations (kiln_kvs *annotations, const kiln_export_opts *opts,
                              const char *created);

/* The JSON of KILN_BUILD_METADATA_LABEL; *out is the caller's. */
int kiln_export_metadata_json (char **out, const kiln_export_opts *opts, kiln_error **err);

/* ---- the content-keyed layer cache ---- */

/* sha256 of a stable listing of the tree at dir: for each entry (depth
 * first, names in byte order) its relative path, type, permission bits,
 * size, and the sha256 of a file's content, a symlink's target or the
 * earlier path a hard link shares its inode with.  Times and owners are left out, as
 * layers leave them out.  Device nodes and fifos are listed by type (the
 * layer writer refuses them); sockets are skipped, as it skips them. */
int kiln_tree_digest (char out[KILN_DIGEST_MAX], const char *dir, kiln_error **err);

/* Adds the tree dir as a layer at dest (relative, "" for the root) to c.
 * With a cache_dir, the layer blob is looked up by a key made of the
 * tree's kiln_tree_digest, dest and the layer options; a hit (verified
 * against its recorded digest) is added without writing the layer again,
 * a miss is written into the cache and added from there.  *hit (when not
 * NULL) says which.  Without a cache_dir it is kiln_compose_add_dir. */
int kiln_export_add_tree (kiln_compose *c, const char *cache_dir, const char *dir, const char *dest,
                          const kiln_layer_opts *lopts, const char *created_by,
                          kiln_layer_info *info, bool *hit, kiln_error **err);

/* Removes cached layer blobs not used for max_age_s seconds. */
int kiln_export_cache_prune (const char *cache_dir, int64_t max_age_s, kiln_error **err);

#endif
