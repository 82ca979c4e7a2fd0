/* kiln: the OCI distribution client (libcurl; the only module that calls
 * libcurl).  Pull, push and copy images against any OCI registry.
 *
 * A kiln_registry is one client: it keeps a connection cache shared by
 * its transfers (keep-alive), what it learnt about each registry (HTTPS
 * or plain HTTP, the auth challenge), the credentials it found and the
 * tokens it was given, per scope set, until they expire.  One client may
 * be used from one thread at a time; it runs its own worker threads for
 * parallel blob transfers.
 *
 * Transport rules:
 *   - HTTPS with the system CAs, or the CA file given for the registry;
 *   - a registry marked insecure is tried with HTTPS without certificate
 *     checks, then with plain HTTP; a loopback registry (localhost,
 *     127.0.0.0/8, [::1]) is tried with HTTPS, then with plain HTTP;
 *     no other registry is ever spoken to over plain HTTP;
 *   - credentials are sent over plain HTTP only to loopback registries
 *     and registries marked insecure;
 *   - 408, 429 (honouring Retry-After), 5xx and connection failures are
 *     retried with exponential backoff and jitter, until the timeout;
 *   - redirects are followed by hand, and Authorization is never sent to
 *     another host than the registry.
 *
 * Errors name the registry or the reference, never a secret:
 *   KILN_E_AUTH       401 after re-authenticating, 403
 *   KILN_E_NOT_FOUND  404 (manifest, blob, repository)
 *   KILN_E_DIGEST_MISMATCH  content that does not match its digest
 *   KILN_E_TOO_LARGE  a manifest or config over its bound, 413
 *   KILN_E_TIMEOUT    the timeout passed
 *   KILN_E_NETWORK    the registry could not be reached, or kept failing
 *   KILN_E_INVALID    a malformed answer (bad JSON, wrong media type) */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "image.h"
#include "kv.h"
#include "layout.h"
#include "reference.h"

#define KILN_REGISTRY_TIMEOUT_MS_DEFAULT 60000
#define KILN_REGISTRY_JOBS_DEFAULT 4
#define KILN_REGISTRY_JOBS_MAX 32

/* What a progress callback is told about one blob. */
typedef enum kiln_progress_event {
        KILN_PROGRESS_START,   /* a transfer begins (total = size) */
        KILN_PROGRESS_BYTES,   /* done of total bytes moved so far */
        KILN_PROGRESS_DONE,    /* transferred */
        KILN_PROGRESS_EXISTS,  /* already there: nothing moved */
        KILN_PROGRESS_MOUNTED, /* mounted from another repository */
} kiln_progress_event;

/* Called from transfer threads, never two at once. */
typedef void (*kiln_progress_fn) (void *data, kiln_progress_event ev, const char *digest,
                                  uint64_t done, uint64_t total);

typedef struct kiln_registry_opts {
        char **insecure;     /* strv of host[:port] marked insecure; owned */
        kiln_kvs ca_files;   /* host[:port] -> PEM CA file */
        int64_t timeout_ms;  /* per request, retries included; 0: the default */
        int jobs;            /* parallel blob transfers; 0: the default */
        uint64_t chunk_size; /* 0: monolithic uploads; else chunked PATCH parts */
        kiln_progress_fn progress;
        void *progress_data;
} kiln_registry_opts;

void kiln_registry_opts_init (kiln_registry_opts *o);
void kiln_registry_opts_clear (kiln_registry_opts *o);
void kiln_registry_opts_add_insecure (kiln_registry_opts *o, const char *host);
/* "HOST=FILE"; KILN_E_INVALID when malformed. */
int kiln_registry_opts_add_ca (kiln_registry_opts *o, const char *spec, kiln_error **err);

/* Adds the settings of the registries file: `path`, else
 * $KILN_REGISTRIES_CONFIG, else $XDG_CONFIG_HOME/kiln/registries.json
 * (~/.config/kiln/registries.json).  A missing default file is fine; a
 * missing named file or malformed content is an error naming the file.
 *   {"registries": {"HOST[:PORT]": {"insecure": true, "ca": "/path.pem"}}} */
int kiln_registry_opts_load (kiln_registry_opts *o, const char *path, kiln_error **err);

typedef struct kiln_registry kiln_registry;

/* A new client; opts are copied.  *out is the caller's. */
int kiln_registry_new (kiln_registry **out, const kiln_registry_opts *opts, kiln_error **err);
void kiln_registry_free (kiln_registry *r);

static inline void
cleanup_registryp (void *p)
{
        kiln_registry_free (*(kiln_registry **) p);
}
#define cleanup_registry __attribute__ ((cleanup (cleanup_registryp)))

/* Counters of what a client did, for tests and reports. */
typedef struct kiln_registry_stats {
        uint64_t requests;       /* HTTP requests sent, redirects and retries included */
        uint64_t retries;        /* requests repeated after a transient failure */
        uint64_t blobs_uploaded; /* blobs whose bytes were sent */
        uint64_t blobs_mounted;
        uint64_t blobs_existing; /* found by HEAD, not sent */
        uint64_t bytes_up;
        uint64_t bytes_down;
} kiln_registry_stats;

void kiln_registry_get_stats (const kiln_registry *r, kiln_registry_stats *out);

/* ---- manifests ---- */

typedef struct kiln_registry_manifest {
        char *data; /* the exact bytes received; owned */
        size_t len;
        char *media_type;             /* the Content-Type (else the mediaType field); owned */
        char digest[KILN_DIGEST_MAX]; /* sha256 of data */
} kiln_registry_manifest;

void kiln_registry_manifest_clear (kiln_registry_manifest *m);

/* GETs the manifest `ref` names (tag or digest) with the full Accept list.
 * Bounded by KILN_MANIFEST_MAX; when ref has a digest the bytes must match
 * it; a Docker-Content-Digest header must match the bytes; a mediaType
 * field must agree with the Content-Type. */
int kiln_registry_get_manifest (kiln_registry_manifest *out, kiln_registry *r,
                                const kiln_reference *ref, kiln_error **err);

/* HEADs the manifest.  Returns 1 with *digest (and *media_type, *size
 * when not NULL; *media_type is the caller's) when it exists, 0 when the
 * registry says 404 (or 403, as Artifactory does), -1 on error. */
int kiln_registry_head_manifest (char digest[KILN_DIGEST_MAX], char **media_type, int64_t *size,
                                 kiln_registry *r, const kiln_reference *ref, kiln_error **err);

/* PUTs manifest bytes to ref's digest, else its tag, else "latest", with
 * Content-Type media_type.  *digest_out (when not NULL) gets their sha256,
 * checked against the registry's Docker-Content-Digest. */
int kiln_registry_put_manifest (kiln_registry *r, const kiln_reference *ref, const char *data,
                                size_t len, const char *media_type,
                                char digest_out[KILN_DIGEST_MAX], kiln_error **err);

/* ---- images on a registry, without their layers ---- */

typedef struct kiln_remote_image {
        kiln_reference *ref;                /* the repository and tag as asked */
        char digest[KILN_DIGEST_MAX];       /* of the image manifest */
        char index_digest[KILN_DIGEST_MAX]; /* of the index it came from, or "" */
        char *manifest_raw;
        size_t manifest_len;
        char *manifest_media_type;
        kiln_manifest *manifest;
        char *config_raw; /* verified against manifest->config.digest */
        size_t config_len;
        kiln_image_config *config;
} kiln_remote_image;

/* Fetches the manifest of `ref` (choosing from an index the first entry
 * that matches `platform`, NULL: the host's) and its config; no layer is
 * downloaded.  A single image whose config names another platform than a
 * platform asked for explicitly is KILN_E_NOT_FOUND.  *out is the
 * caller's. */
int kiln_registry_open_image (kiln_remote_image **out, kiln_registry *r, const kiln_reference *ref,
                              const kiln_platform *platform, kiln_error **err);
void kiln_remote_image_free (kiln_remote_image *img);

static inline void
cleanup_remote_imagep (void *p)
{
        kiln_remote_image_free (*(kiln_remote_image **) p);
}
#define cleanup_remote_image __attribute__ ((cleanup (cleanup_remote_imagep)))

/* ---- blobs ---- */

/* 1 when the blob is in repo's repository (*size set when not NULL), 0
 * when not, -1 on error. */
int kiln_registry_blob_exists (kiln_registry *r, const kiln_reference *repo, const char *digest,
                               int64_t *size, kiln_error **err);

/* Downloads a blob to dest_path: streamed into a temporary file beside it
 * while its digest is computed, renamed into place only when digest (and
 * size, when >= 0) match; on any failure nothing is left behind. */
int kiln_registry_fetch_blob (kiln_registry *r, const kiln_reference *repo, const char *digest,
                              int64_t size, const char *dest_path, kiln_error **err);

/* Downloads a small blob into memory (at most max bytes), verified. */
int kiln_registry_fetch_blob_bytes (char **out, size_t *len, kiln_registry *r,
                                    const kiln_reference *repo, const char *digest, size_t max,
                                    kiln_error **err);

/* ---- push ----
 *
 * A blob to push is found in exactly one of three places:
 *   path  a local file holding exactly the blob;
 *   data  bytes in memory (a config), of `size` bytes;
 *   from  a repository (on any registry) that has it: the blob is never
 *         downloaded when the destination has it already or is on the same
 *         registry (then it is mounted from `from`); otherwise it is copied
 *         through a temporary file, verified.
 * This is what `kiln append --base REF --output REF` needs: open the base
 * with kiln_registry_open_image, write the new layers to files, then push
 * the base layers as `from` blobs, the new layers as `path` blobs and the
 * config as `data`, with the new manifest. */
typedef struct kiln_push_blob {
        char digest[KILN_DIGEST_MAX];
        int64_t size;
        const char *path;
        const void *data;
        const kiln_reference *from;
} kiln_push_blob;

/* Makes sure every blob is in dst's repository: HEAD first, then mount or
 * upload, `jobs` at a time, each digest once.  Returns 0 when all are
 * there; else the first error, after the transfers under way ended. */
int kiln_registry_push_blobs (kiln_registry *r, const kiln_reference *dst,
                              const kiln_push_blob *blobs, size_t n, kiln_error **err);

/* Pushes one image: HEADs dst's manifest and stops there when it already
 * has these exact bytes; otherwise pushes the blobs (layers and config),
 * then PUTs the manifest to dst's tag (or digest).  A failure before the
 * manifest PUT leaves the tag where it was.  digest_out gets the manifest
 * digest. */
int kiln_registry_push_image (kiln_registry *r, const kiln_reference *dst,
                              const kiln_push_blob *blobs, size_t n, const char *manifest,
                              size_t manifest_len, const char *media_type,
                              char digest_out[KILN_DIGEST_MAX], kiln_error **err);

/* Pushes an image held on disk (layout, archive). */
int kiln_registry_push_local (kiln_registry *r, const kiln_local_image *img,
                              const kiln_reference *dst, char digest_out[KILN_DIGEST_MAX],
                              kiln_error **err);

/* Pulls one image (platform-selected) into the OCI layout directory `dir`
 * (initialised if needed): its layers, config and manifest become blobs
 * there; index.json is not touched (kiln_layout_add_manifest or
 * kiln_layout_export does that).  Blobs already in the layout are not
 * downloaded again.  digest_out gets the image manifest digest. */
int kiln_registry_pull (kiln_registry *r, const kiln_reference *src, const kiln_platform *platform,
                        const char *dir, char digest_out[KILN_DIGEST_MAX], kiln_error **err);

/* Copies one image (platform-selected) from a registry to another
 * reference, byte for byte (same digest): blobs are mounted within a
 * registry and streamed otherwise. */
int kiln_registry_copy (kiln_registry *r, const kiln_reference *src, const kiln_reference *dst,
                        const kiln_platform *platform, char digest_out[KILN_DIGEST_MAX],
                        kiln_error **err);

/* ---- URL helpers (exposed for tests) ---- */

/* Resolves a Location header against the URL of the request that got it
 * (RFC 3986: absolute, scheme-relative "//host/p", absolute path "/p",
 * relative "p"), keeping the Location's query.  Caller frees. */
char *kiln_url_resolve (const char *base, const char *location);

/* Appends "name=value" (value percent-encoded) with '?' or '&' as the URL
 * needs.  Caller frees. */
char *kiln_url_add_query (const char *url, const char *name, const char *value);

/* The "host[:port]" of an absolute URL, or NULL; caller frees. */
char *kiln_url_host (const char *url);

/* ---- a plain POST (registry/post.c) ---- */

/* One HTTP(S) POST of len bytes of body to url with extra headers
 * ("Name: value", NULL-terminated; may be NULL), no auth, no redirects,
 * no retries; the answer's body is dropped.  *status gets the HTTP status
 * of any answer; KILN_E_NETWORK when none came (connection, TLS, timeout
 * after timeout_ms). */
int kiln_registry_post (long *status, const char *url, const char *const *headers, const void *body,
                        size_t len, long timeout_ms, kiln_error **err);

#endif
