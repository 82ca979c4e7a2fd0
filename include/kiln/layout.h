/* kiln: images on disk.
 *
 * An OCI image layout directory (oci-layout, index.json, blobs/<alg>/<hex>),
 * an OCI archive (that layout as one tar) and a docker-archive (a tar that is
 * both an OCI layout and a `docker save` archive, with manifest.json), as
 * outputs and as inputs.  Locations are written as transport strings:
 *
 *   oci:DIR[:TAG]   oci-archive:FILE[:TAG]   docker-archive:FILE[:NAME:TAG]
 *   scratch         anything else: a registry reference
 */
#ifndef KILN_LAYOUT_H
#define KILN_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "digest.h"
#include "error.h"
#include "image.h"

#define KILN_REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"

typedef enum kiln_transport {
        KILN_TRANSPORT_REGISTRY = 0,
        KILN_TRANSPORT_OCI,
        KILN_TRANSPORT_OCI_ARCHIVE,
        KILN_TRANSPORT_DOCKER_ARCHIVE,
        KILN_TRANSPORT_SCRATCH,
} kiln_transport;

typedef struct kiln_location {
        kiln_transport transport;
        char *path; /* DIR or FILE; for the registry, the reference as given */
        char *tag;  /* oci tag / docker-archive NAME:TAG; NULL when not given */
} kiln_location;

/* Parses a transport string.  Errors (KILN_E_INVALID) quote it. */
int kiln_location_parse (kiln_location *out, const char *spec, kiln_error **err);
void kiln_location_clear (kiln_location *loc);

/* ---- the layout directory ---- */

/* Creates dir (and parents), `oci-layout`, `blobs/sha256/` and an empty
 * index.json unless they exist; an existing layout keeps its content. */
int kiln_layout_init (const char *dir, kiln_error **err);

/* "DIR/blobs/ALG/HEX" for a valid digest; caller frees. */
char *kiln_layout_blob_path (const char *dir, const char *digest);

bool kiln_layout_has_blob (const char *dir, const char *digest);

/* A fresh temporary file path inside DIR/blobs for a blob being written;
 * caller frees (and renames it with kiln_layout_put_blob_file). */
char *kiln_layout_blob_tmp_path (const char *dir);

/* Stores the file `src` as the blob `digest`: renamed when move is true,
 * else hard-linked, else copied.  The content is not re-hashed: the caller
 * vouches for the digest (it computed it while writing). */
int kiln_layout_put_blob_file (const char *dir, const char *digest, const char *src, bool move,
                               kiln_error **err);

/* Stores bytes as a blob; writes its sha256 into digest_out. */
int kiln_layout_put_blob_bytes (const char *dir, const void *data, size_t len,
                                char digest_out[KILN_DIGEST_MAX], kiln_error **err);

/* Reads a whole blob, bounded by max, and verifies its digest. */
int kiln_layout_read_blob (char **out, size_t *len, const char *dir, const char *digest, size_t max,
                           kiln_error **err);

/* Records a manifest in index.json, tagged `tag` (ref.name) when not NULL;
 * an older entry with the same tag loses the tag. */
int kiln_layout_add_manifest (const char *dir, const kiln_descriptor *desc, const char *tag,
                              kiln_error **err);

/* Finds the manifest for `tag` (or, with tag NULL, the only entry of
 * index.json) and copies its descriptor into *out. */
int kiln_layout_resolve (kiln_descriptor *out, const char *dir, const char *tag, kiln_error **err);

/* ---- images ---- */

/* An image held on the local disk: its manifest and config, and the
 * directory whose blobs/ holds its blobs. */
typedef struct kiln_local_image {
        char manifest_digest[KILN_DIGEST_MAX];
        char *manifest_raw; /* the exact bytes */
        size_t manifest_len;
        kiln_manifest *manifest;
        char *config_raw;
        size_t config_len;
        kiln_image_config *config;
        char *layout_dir; /* blobs are layout_dir/blobs/...; NULL for scratch */
        char *name;       /* what the user called it, for base.name; may be NULL */
        char *tmp_dir;    /* owned scratch space removed by free; may be NULL */
} kiln_local_image;

/* Opens an image from oci:, oci-archive:, docker-archive: or scratch.
 * Archives are unpacked (with the safe extractor) into a temporary
 * directory that lives until kiln_local_image_free.  For an index, the
 * manifest matching `platform` (NULL: the host's) is chosen.  scratch is an
 * image with no layers and a config for the host platform (or `platform`).
 * A registry location is KILN_E_UNSUPPORTED here (see registry.h). */
int kiln_local_image_open (kiln_local_image **out, const kiln_location *loc,
                           const kiln_platform *platform, kiln_error **err);

/* Path of a blob of the image, or NULL if it has no layout; caller frees. */
char *kiln_local_image_blob_path (const kiln_local_image *img, const char *digest);

void kiln_local_image_free (kiln_local_image *img);

static inline void
cleanup_local_imagep (void *p)
{
        kiln_local_image_free (*(kiln_local_image **) p);
}
#define cleanup_local_image __attribute__ ((cleanup (cleanup_local_imagep)))

/* Writes the layout directory `layout_dir` (which must hold every blob of
 * the manifest `manifest_digest`) to an output location: for oci:, its
 * blobs, config and manifest are linked or copied into DIR and index.json
 * is updated; for oci-archive:, the layout is written as one tar; for
 * docker-archive:, manifest.json (RepoTags from the tag) is added so
 * `docker load` accepts it.  The file is replaced atomically. */
int kiln_layout_export (const char *layout_dir, const char *manifest_digest,
                        const kiln_location *dst, kiln_error **err);

/* ---- docker-archive manifest.json ---- */

/* One entry of a docker-archive's manifest.json (paths inside the tar). */
typedef struct kiln_docker_entry {
        char *config;
        char **repo_tags; /* strv; may be NULL */
        char **layers;    /* strv */
} kiln_docker_entry;

/* Parses manifest.json (a JSON array, bounded by KILN_MANIFEST_MAX).
 * *out (n entries) is the caller's; free with kiln_docker_entries_free. */
int kiln_docker_manifest_parse (kiln_docker_entry **out, size_t *n, const char *data, size_t len,
                                kiln_error **err);

/* Canonical manifest.json for one image; *out is the caller's. */
int kiln_docker_manifest_to_json (char **out, size_t *len, const kiln_docker_entry *e,
                                  kiln_error **err);

void kiln_docker_entries_free (kiln_docker_entry *e, size_t n);

/* Parses a JSON array of strings ("[\"a\",\"b\"]") into a strv; for
 * --entrypoint and --cmd.  Errors are KILN_E_INVALID. */
int kiln_json_strv_parse (char ***out, const char *text, kiln_error **err);

#endif
