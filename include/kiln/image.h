/* kiln: the OCI image model (jansson; the JSON-model module).
 *
 * Parses and generates OCI image manifests, OCI image indexes, Docker v2
 * schema 2 manifests and manifest lists, and image configs.  Parsing is
 * strict about types and required fields, rejects duplicate keys and bodies
 * over the size limits, and ignores unknown keys.  Generated JSON is
 * canonical: sorted keys, compact, no trailing newline.  Digests of content
 * are always computed over the bytes received, never over re-serialised
 * JSON: parsing does not hand back a digest. */
#ifndef KILN_IMAGE_H
#define KILN_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "kv.h"

#define KILN_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define KILN_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define KILN_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define KILN_MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define KILN_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define KILN_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define KILN_MT_OCI_EMPTY "application/vnd.oci.empty.v1+json"
#define KILN_MT_OCI_LAYOUT_HEADER "application/vnd.oci.layout.header.v1+json"
#define KILN_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define KILN_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define KILN_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define KILN_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define KILN_MT_DOCKER_LAYER_TAR "application/vnd.docker.image.rootfs.diff.tar"

/* Upper bounds on what kiln reads. */
#define KILN_MANIFEST_MAX ((size_t) 4 << 20)
#define KILN_CONFIG_MAX ((size_t) 8 << 20)

/* The Accept header value for manifest GET/HEAD: all four types. */
#define KILN_MANIFEST_ACCEPT                                                                       \
        KILN_MT_OCI_INDEX ", " KILN_MT_OCI_MANIFEST ", " KILN_MT_DOCKER_LIST                       \
                          ", " KILN_MT_DOCKER_MANIFEST

typedef struct kiln_platform {
        char *architecture; /* required */
        char *os;           /* required */
        char *os_version;
        char **os_features; /* strv */
        char *variant;
} kiln_platform;

typedef struct kiln_descriptor {
        char *media_type; /* required */
        char digest[KILN_DIGEST_MAX];
        int64_t size; /* required, >= 0 */
        char *artifact_type;
        char **urls; /* strv */
        kiln_kvs annotations;
        kiln_platform *platform; /* NULL when absent */
        char *data;              /* base64, as given */
} kiln_descriptor;

typedef enum kiln_manifest_kind {
        KILN_KIND_UNKNOWN = 0,
        KILN_KIND_MANIFEST, /* OCI manifest or Docker v2 schema 2 */
        KILN_KIND_INDEX,    /* OCI index or Docker manifest list */
} kiln_manifest_kind;

typedef struct kiln_manifest {
        int schema_version; /* 2 */
        char *media_type;   /* as given; NULL when absent (OCI allows it) */
        char *artifact_type;
        kiln_descriptor config;
        kiln_descriptor *layers;
        size_t n_layers;
        kiln_descriptor *subject; /* NULL when absent */
        kiln_kvs annotations;
} kiln_manifest;

typedef struct kiln_index {
        int schema_version;
        char *media_type;
        char *artifact_type;
        kiln_descriptor *manifests;
        size_t n_manifests;
        kiln_descriptor *subject;
        kiln_kvs annotations;
} kiln_index;

typedef struct kiln_history {
        char *created;
        char *author;
        char *created_by;
        char *comment;
        bool empty_layer;
} kiln_history;

/* Every field of the OCI image config (and the Docker one it extends). */
typedef struct kiln_image_config {
        char *created; /* RFC 3339 */
        char *author;
        char *architecture; /* required */
        char *os;           /* required */
        char *os_version;
        char **os_features;
        char *variant;

        /* "config" */
        char *user;
        char **exposed_ports; /* sorted strv, "8080/tcp" */
        char **env;           /* "K=V" */
        char **entrypoint;
        char **cmd;
        char **volumes; /* sorted strv */
        char *working_dir;
        kiln_kvs labels;
        char *stop_signal;
        bool args_escaped;
        char **shell;           /* Docker */
        char *healthcheck_json; /* reserved in OCI: kept as compact JSON */
        int64_t memory;         /* reserved in OCI; 0 = absent */
        int64_t memory_swap;
        int64_t cpu_shares;
        bool has_config; /* the "config" object was present */

        /* "rootfs" */
        char **diff_ids;
        /* "history" */
        kiln_history *history;
        size_t n_history;
} kiln_image_config;

/* Descriptor helpers. */
void kiln_descriptor_clear (kiln_descriptor *d);
void kiln_descriptor_copy (kiln_descriptor *dst, const kiln_descriptor *src);
void kiln_platform_free (kiln_platform *p);
kiln_platform *kiln_platform_dup (const kiln_platform *p);

/* Parses "os/arch[/variant]" (e.g. "linux/arm64/v8").  Machine names are
 * mapped to GOARCH ones ("linux/aarch64" is linux/arm64/v8, "linux/x86_64"
 * linux/amd64).  *out is the caller's.  Errors (KILN_E_INVALID) quote s. */
int kiln_platform_parse (kiln_platform **out, const char *s, kiln_error **err);
/* The running host's platform ("linux", GOARCH name, variant if any). */
kiln_platform *kiln_platform_host (void);
/* True when `have` satisfies `want` (os, architecture, and variant when want
 * names one; arm64 without a variant matches v8, amd64 without one v1). */
bool kiln_platform_match (const kiln_platform *want, const kiln_platform *have);

/* Tells a manifest from an index by its mediaType field, else the
 * content_type (may be NULL), else its shape ("manifests" vs "layers").
 * A body that is not a JSON object is judged by content_type alone. */
kiln_manifest_kind kiln_manifest_kind_of (const char *data, size_t len, const char *content_type);

/* True when media_type is one of the two image-manifest types. */
bool kiln_media_type_is_manifest (const char *media_type);
bool kiln_media_type_is_index (const char *media_type);

int kiln_manifest_parse (kiln_manifest **out, const char *data, size_t len, kiln_error **err);
/* Canonical JSON; *out is the caller's. */
int kiln_manifest_to_json (char **out, size_t *len, const kiln_manifest *m, kiln_error **err);
void kiln_manifest_free (kiln_manifest *m);

int kiln_index_parse (kiln_index **out, const char *data, size_t len, kiln_error **err);
int kiln_index_to_json (char **out, size_t *len, const kiln_index *x, kiln_error **err);
void kiln_index_free (kiln_index *x);

/* Picks the first entry of x whose platform satisfies `want` (as
 * kiln_platform_match), as the image spec asks.  *out is borrowed from x.
 * Fails with KILN_E_NOT_FOUND, listing the platforms the index has. */
int kiln_index_select (const kiln_descriptor **out, const kiln_index *x, const kiln_platform *want,
                       kiln_error **err);

int kiln_config_parse (kiln_image_config **out, const char *data, size_t len, kiln_error **err);
int kiln_config_to_json (char **out, size_t *len, const kiln_image_config *c, kiln_error **err);
kiln_image_config *kiln_config_new (const char *os, const char *architecture);
void kiln_config_free (kiln_image_config *c);

/* Sets "K=V" in Env, replacing an existing K. */
void kiln_config_set_env (kiln_image_config *c, const char *key, const char *value);
/* Borrowed value of K in Env, or NULL. */
const char *kiln_config_get_env (const kiln_image_config *c, const char *key);
/* Appends a diff_id and a history entry for it (empty_layer false). */
void kiln_config_add_layer (kiln_image_config *c, const char *diff_id, const char *created,
                            const char *created_by, const char *comment);
/* Adds "8080/tcp" style port (kept sorted, unique); a bare "8080" is
 * stored as "8080/tcp", as Docker reads it. */
void kiln_config_add_port (kiln_image_config *c, const char *port);

static inline void
cleanup_manifestp (void *p)
{
        kiln_manifest_free (*(kiln_manifest **) p);
}
static inline void
cleanup_indexp (void *p)
{
        kiln_index_free (*(kiln_index **) p);
}
static inline void
cleanup_configp (void *p)
{
        kiln_config_free (*(kiln_image_config **) p);
}
#define cleanup_manifest __attribute__ ((cleanup (cleanup_manifestp)))
#define cleanup_index __attribute__ ((cleanup (cleanup_indexp)))
#define cleanup_config __attribute__ ((cleanup (cleanup_configp)))

/* Formats seconds since the epoch as RFC 3339 UTC ("1970-01-01T00:00:00Z"). */
void kiln_time_rfc3339 (char out[32], int64_t epoch);

/* The jansson version in use; static. */
const char *kiln_image_library_version (void);

#endif
