/* kiln: composing a new image over a base, and writing it out.
 *
 * What `kiln append` and the export step of `kiln build` share: open a
 * base (wherever it lives), add reproducible layers, change the config
 * and the manifest annotations, and publish the result to a registry or
 * to disk.
 *
 * A base that lives in a registry is opened without downloading its
 * layers: only its manifest and config are fetched.  When the output goes
 * to the same registry its layers are skipped (HEAD) or mounted; to
 * another registry they are streamed through; to disk they are downloaded
 * (verified) into the output.  A base on disk is read in place.
 *
 *   kiln_compose *c;
 *   kiln_compose_new (&c, &opts, &err);            // opens the base
 *   kiln_compose_add_dir (c, "/tmp/app", "workspace", NULL, "app", NULL, &err);
 *   kiln_config_set_env (kiln_compose_config (c), "PORT", "8080");
 *   kiln_compose_publish (c, "localhost:5000/fn:latest", digest, &err);
 *   kiln_compose_free (c);
 *
 * The new manifest is always an OCI image manifest (Docker base layer
 * types become their OCI twins: the same bytes).  Its annotations get
 * org.opencontainers.image.base.digest for every base but scratch, and
 * .base.name for a registry base (the reference as given). */
#ifndef KILN_COMPOSE_H
#define KILN_COMPOSE_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "image.h"
#include "kv.h"
#include "layer.h"
#include "registry.h"

typedef struct kiln_compose_opts {
        /* The base: scratch, kiln:static (made here, no download),
         * kiln-stack:NAME (a stack, built on first use), oci:DIR,
         * oci-archive:FILE, docker-archive:FILE, or a registry reference. */
        const char *base;
        const kiln_platform *platform; /* from an index; NULL: the host's */
        /* Needed when the base or the output is in a registry; borrowed. */
        kiln_registry *registry;
        /* The time of the config's `created` and of each history entry;
         * < 0: SOURCE_DATE_EPOCH when set, else 0 (1970-01-01). */
        int64_t created;
        /* Record what the base is in config labels, so `kiln rebase` can
         * find the base's layers later (kiln build sets it):
         *   dev.kiln.run-image.digest     the base's manifest digest
         *   dev.kiln.run-image.name       the base as given in opts.base
         *   dev.kiln.run-image.layers     how many layers come from it
         *   dev.kiln.run-image.top-layer  the diff_id of its last layer */
        bool record_base;
        /* For a base named kiln-stack:NAME (stacks_dir/NAME.yaml, built on
         * first use, see stack.h): the stacks directory (NULL:
         * $KILN_STACKS_DIR) and the stack cache (NULL: the default). */
        const char *stacks_dir;
        const char *stack_cache_dir;
        /* The base is the image being changed, not one built on (kiln
         * serve's image processing): its created time, history and
         * manifest annotations are kept, no base.* annotation is added and
         * `created` is ignored; record_base must be false. */
        bool in_place;
} kiln_compose_opts;

#define KILN_LABEL_RUN_IMAGE_DIGEST "dev.kiln.run-image.digest"
#define KILN_LABEL_RUN_IMAGE_NAME "dev.kiln.run-image.name"
#define KILN_LABEL_RUN_IMAGE_LAYERS "dev.kiln.run-image.layers"
#define KILN_LABEL_RUN_IMAGE_TOP_LAYER "dev.kiln.run-image.top-layer"

typedef struct kiln_compose kiln_compose;

/* Opens the base.  Errors name it: "base image `REF`: ...". */
int kiln_compose_new (kiln_compose **out, const kiln_compose_opts *opts, kiln_error **err);
void kiln_compose_free (kiln_compose *c);

static inline void
cleanup_composep (void *p)
{
        kiln_compose_free (*(kiln_compose **) p);
}
#define cleanup_compose __attribute__ ((cleanup (cleanup_composep)))

/* The config being built: the base's, to be changed in place (Env,
 * Entrypoint, Labels...).  `created` and the layers' diff_ids and history
 * are kept by the composer. */
kiln_image_config *kiln_compose_config (kiln_compose *c);

/* The manifest annotations being built, to be changed in place. */
kiln_kvs *kiln_compose_annotations (kiln_compose *c);

/* What the base is: its manifest digest ("" for scratch) and the name
 * given in opts.base. */
const char *kiln_compose_base_digest (const kiln_compose *c);
const char *kiln_compose_base_name (const kiln_compose *c);
/* The RFC 3339 time used for `created` and history. */
const char *kiln_compose_created (const kiln_compose *c);

/* The manifest as last published (its config and layer descriptors give
 * the image's compressed size); NULL before kiln_compose_publish. */
const kiln_manifest *kiln_compose_manifest (const kiln_compose *c);

/* Writes the tree `dir` as a new layer at /`dest` (dest without a leading
 * slash; "" for the root), with a history entry created_by.  lopts NULL:
 * the defaults (gzip).  *info (when not NULL) gets the layer's digests. */
int kiln_compose_add_dir (kiln_compose *c, const char *dir, const char *dest,
                          const kiln_layer_opts *lopts, const char *created_by,
                          kiln_layer_info *info, kiln_error **err);

/* Adds a layer blob already written (by kiln_layer_write_dir, for
 * example from a cache): `path` holds exactly info->digest; it is linked
 * or copied, never moved. */
int kiln_compose_add_layer_file (kiln_compose *c, const char *path, const kiln_layer_info *info,
                                 const char *created_by, kiln_error **err);

/* Adds a layer that stays in the registry repository `repo` (the app
 * layers of an image being rebased): pushed to the same registry it is
 * found there or mounted, to another registry streamed through, to disk
 * downloaded and verified.  Needs opts.registry.  d is its descriptor (a
 * Docker type becomes its OCI twin), diff_id its uncompressed digest. */
int kiln_compose_add_remote_layer (kiln_compose *c, const kiln_reference *repo,
                                   const kiln_descriptor *d, const char *diff_id,
                                   const char *created_by, kiln_error **err);

/* Writes the config and manifest and publishes the image to `output`: a
 * registry reference, oci:DIR[:TAG], oci-archive:FILE[:TAG] or
 * docker-archive:FILE[:NAME:TAG].  digest gets the manifest digest.  A
 * failure leaves a registry tag where it was and an output file
 * untouched.  May be called more than once, for several outputs. */
int kiln_compose_publish (kiln_compose *c, const char *output, char digest[KILN_DIGEST_MAX],
                          kiln_error **err);

#endif
