/* kiln: writing to registries: blobs (HEAD, mount, monolithic or chunked
 * upload, each in a fresh session when retried), manifests, and whole
 * images, copies and pulls built on them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"

#define UPLOAD_ATTEMPTS 5
#define CHUNK_DEFAULT ((uint64_t) 4 << 20)

/* Where a blob's bytes come from for an upload. */
typedef struct source {
        int fd; /* or -1 */
        const void *data;
        uint64_t size;
} source;

typedef struct push_ctx {
        kiln_registry *r;
        reg_host *h;
        const kiln_reference *dst;
        const char *scopes;
        const kiln_push_blob **blobs; /* unique by digest */
} push_ctx;

static bool
upload_retryable (const reg_resp *resp)
{
        /* 404 covers GHCR's and Artifactory's lost upload sessions; 401
         * an expired token. */
        return resp->status == 401 || resp->status == 404 || resp->status == 408
               || resp->status == 429 || resp->status >= 500;
}

static int
start_upload (char **location, uint64_t *chunk_min, push_ctx *c, const char *mount_digest,
              const kiln_reference *from, bool *mounted, kiln_error **err)
{
        cleanup_free char *url = reg_url (c->h, c->dst, "blobs", "uploads/");
        reg_resp resp = { 0 };
        reg_req req;
        int ret = -1;

        if (mount_digest) {
                char *u = kiln_url_add_query (url, "mount", mount_digest);
                free (url);
                url = kiln_url_add_query (u, "from", from->repository);
                free (u);
        }
        reg_req_init (&req, "POST", url);
        req.scopes = c->scopes;
        if (reg_request (c->r, c->h, &req, &resp, err) < 0)
                goto out;
        if (mount_digest && resp.status == 201) {
                *mounted = true;
                ret = 0;
        } else if (resp.status == 202 && resp.location) {
                *location = kiln_url_resolve (resp.url, resp.location);
                *chunk_min = resp.chunk_min;
                ret = 0;
        } else if (mount_digest) {
                ret = 1; /* no mount: the caller uploads */
        } else {
                reg_status_error (c->h, &resp, "start a blob upload", err);
        }
out:
        reg_resp_clear (&resp);
        return ret;
}

/* One PUT (body may be empty) or PATCH on the session; updates *location. */
static int
session_request (reg_resp *resp, push_ctx *c, const char *method, char **location,
                 const char *digest, const source *src, uint64_t off, uint64_t len,
                 const char *blob_digest, kiln_error **err)
{
        cleanup_free char *url
            = digest ? kiln_url_add_query (*location, "digest", digest) : kiln_strdup (*location);
        cleanup_free char *range = NULL;
        reg_req req;

        reg_req_init (&req, method, url);
        req.scopes = c->scopes;
        req.session = true;
        req.big = true;
        req.body_len = len;
        req.body_off = off;
        req.progress_digest = blob_digest;
        req.progress_total = src->size;
        if (len > 0) {
                if (src->data)
                        req.body = (const char *) src->data + off;
                else
                        req.body_fd = src->fd;
                if (req.body)
                        req.body_off = 0;
        }
        if (strcmp (method, "PATCH") == 0 && len > 0) {
                range = kiln_strdup_printf ("%llu-%llu", (unsigned long long) off,
                                            (unsigned long long) (off + len - 1));
                req.content_range = range;
        }
        if (reg_request (c->r, c->h, &req, resp, err) < 0)
                return -1;
        if (resp->location) {
                char *next = kiln_url_resolve (resp->url, resp->location);
                free (*location);
                *location = next;
        }
        return 0;
}

static int
upload_monolithic (reg_resp *resp, push_ctx *c, char **location, const kiln_push_blob *b,
                   const source *src, kiln_error **err)
{
        return session_request (resp, c, "PUT", location, b->digest, src, 0, src->size, b->digest,
                                err);
}

static int
upload_chunked (reg_resp *resp, push_ctx *c, char **location, uint64_t chunk_min,
                const kiln_push_blob *b, const source *src, kiln_error **err)
{
        uint64_t chunk = c->r->opts.chunk_size ? c->r->opts.chunk_size : CHUNK_DEFAULT;

        if (chunk < chunk_min)
                chunk = chunk_min;
        for (uint64_t off = 0; off < src->size; off += chunk) {
                uint64_t len = src->size - off < chunk ? src->size - off : chunk;
                reg_resp_clear (resp);
                if (session_request (resp, c, "PATCH", location, NULL, src, off, len, b->digest,
                                     err)
                    < 0)
                        return -1;
                if (resp->status != 202 && resp->status != 201 && resp->status != 204)
                        return 0; /* judged by the caller */
        }
        reg_resp_clear (resp);
        return session_request (resp, c, "PUT", location, b->digest, src, 0, 0, b->digest, err);
}

/* Uploads a blob from src, each attempt in a new session.  `location`,
 * when not NULL, is a session already opened (by a mount answered 202). */
static int
upload (push_ctx *c, const kiln_push_blob *b, const source *src, char *location, kiln_error **err)
{
        cleanup_free char *loc = location;
        bool chunked = c->r->opts.chunk_size > 0;
        uint64_t chunk_min = 0;

        reg_progress (c->r, KILN_PROGRESS_START, b->digest, 0, src->size);
        for (int attempt = 0;; attempt++) {
                reg_resp resp = { 0 };
                bool mounted = false;
                int r;

                if (loc == NULL
                    && start_upload (&loc, &chunk_min, c, NULL, NULL, &mounted, err) < 0)
                        return kiln_error_wrap (err, "blob %s", b->digest);
                r = chunked ? upload_chunked (&resp, c, &loc, chunk_min, b, src, err)
                            : upload_monolithic (&resp, c, &loc, b, src, err);
                free (steal_pointer (&loc));
                if (r == 0 && resp.status == 201) {
                        reg_resp_clear (&resp);
                        reg_stats_add (c->r, &c->r->stats.blobs_uploaded, 1);
                        reg_progress (c->r, KILN_PROGRESS_DONE, b->digest, src->size, src->size);
                        return 0;
                }
                if (r < 0 && (*err)->code != KILN_E_NETWORK && (*err)->code != KILN_E_TIMEOUT) {
                        reg_resp_clear (&resp);
                        return kiln_error_wrap (err, "blob %s", b->digest);
                }
                if (r == 0 && !chunked && !upload_retryable (&resp) && resp.status != 202) {
                        /* A registry that refuses one-request uploads. */
                        kiln_debug ("%s refused a monolithic upload (%ld); trying chunks",
                                    c->h->name, resp.status);
                        chunked = true;
                } else if (attempt + 1 >= UPLOAD_ATTEMPTS
                           || (r == 0 && !upload_retryable (&resp))) {
                        if (r == 0) {
                                cleanup_free char *what
                                    = kiln_strdup_printf ("upload blob %s", b->digest);
                                reg_status_error (c->h, &resp, what, err);
                        } else {
                                kiln_error_wrap (err, "blob %s", b->digest);
                        }
                        reg_resp_clear (&resp);
                        return -1;
                }
                reg_resp_clear (&resp);
                if (r < 0) {
                        kiln_error_free (kiln_error_take (err));
                }
                reg_stats_add (c->r, &c->r->stats.retries, 1);
                kiln_debug ("restarting the upload of %s in a new session", b->digest);
                usleep ((useconds_t) (250000u << (attempt < 4 ? attempt : 4)));
        }
}

/* Copies a blob held in another registry (or a repository a mount could
 * not use) through an unlinked temporary file. */
static int
spool_from (int *fd_out, push_ctx *c, const kiln_push_blob *b, kiln_error **err)
{
        const char *tmpdir = getenv ("TMPDIR");
        cleanup_free char *tmp
            = kiln_strdup_printf ("%s/kiln-blob-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
        int fd = mkstemp (tmp);

        if (fd < 0)
                return kiln_error_make (err, errno, "create `%s`", tmp);
        unlink (tmp);
        if (reg_get_blob (c->r, b->from, b->digest, b->size, fd, NULL, err) < 0) {
                close (fd);
                return -1;
        }
        *fd_out = fd;
        return 0;
}

static int
push_one (void *p, size_t i, kiln_error **err)
{
        push_ctx *c = p;
        const kiln_push_blob *b = c->blobs[i];
        cleanup_close int fd = -1;
        char *location = NULL;
        uint64_t chunk_min = 0;
        source src = { .fd = -1, .data = b->data, .size = (uint64_t) b->size };
        int64_t have = -1;
        int r;

        r = kiln_registry_blob_exists (c->r, c->dst, b->digest, &have, err);
        if (r < 0)
                return -1;
        if (r == 1) {
                reg_stats_add (c->r, &c->r->stats.blobs_existing, 1);
                reg_progress (c->r, KILN_PROGRESS_EXISTS, b->digest, src.size, src.size);
                return 0;
        }
        if (b->from && strcmp (b->from->registry, c->dst->registry) == 0
            && strcmp (b->from->repository, c->dst->repository) != 0) {
                bool mounted = false;
                r = start_upload (&location, &chunk_min, c, b->digest, b->from, &mounted, err);
                if (r < 0)
                        return kiln_error_wrap (err, "mount blob %s", b->digest);
                if (mounted) {
                        reg_stats_add (c->r, &c->r->stats.blobs_mounted, 1);
                        reg_progress (c->r, KILN_PROGRESS_MOUNTED, b->digest, src.size, src.size);
                        return 0;
                }
        }
        if (b->path) {
                fd = open (b->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        free (location);
                        return kiln_error_make (err, errno, "open blob `%s`", b->path);
                }
        } else if (b->data == NULL) {
                if (b->from == NULL || spool_from (&fd, c, b, err) < 0) {
                        free (location);
                        if (b->from == NULL)
                                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                         "blob %s has no source", b->digest);
                        return kiln_error_wrap (err, "copy blob from %s/%s", b->from->registry,
                                                b->from->repository);
                }
        }
        src.fd = fd;
        return upload (c, b, &src, location, err);
}

static char *
push_scopes (const kiln_reference *dst, const kiln_push_blob *blobs, size_t n)
{
        kiln_buf b = KILN_BUF_INIT;

        kiln_buf_printf (&b, NULL, "repository:%s:pull,push", dst->repository);
        for (size_t i = 0; i < n; i++) {
                const kiln_reference *f = blobs[i].from;
                cleanup_free char *s = NULL;
                if (f == NULL || strcmp (f->registry, dst->registry) != 0
                    || strcmp (f->repository, dst->repository) == 0)
                        continue;
                s = kiln_strdup_printf (" repository:%s:pull", f->repository);
                if (strstr (b.data, s) == NULL)
                        kiln_buf_puts (&b, s, NULL);
        }
        return kiln_buf_steal (&b, NULL);
}

int
kiln_registry_push_blobs (kiln_registry *r, const kiln_reference *dst, const kiln_push_blob *blobs,
                          size_t n, kiln_error **err)
{
        cleanup_free const kiln_push_blob **unique = kiln_calloc (n + 1, sizeof (*unique));
        cleanup_free char *scopes = push_scopes (dst, blobs, n);
        push_ctx c = { .r = r, .h = reg_host_get (r, dst->registry), .dst = dst };
        size_t nu = 0;

        for (size_t i = 0; i < n; i++) {
                bool seen = false;
                if (!kiln_digest_valid (blobs[i].digest) || blobs[i].size < 0)
                        return kiln_error_makec (err, KILN_E_INVALID, 0, "bad blob descriptor %s",
                                                 blobs[i].digest);
                for (size_t j = 0; j < nu && !seen; j++)
                        seen = strcmp (unique[j]->digest, blobs[i].digest) == 0;
                if (!seen)
                        unique[nu++] = &blobs[i];
        }
        c.scopes = scopes;
        c.blobs = unique;
        if (reg_ping (r, c.h, err) < 0)
                return -1;
        return reg_pool_run (r, nu, push_one, &c, err);
}

int
kiln_registry_put_manifest (kiln_registry *r, const kiln_reference *ref, const char *data,
                            size_t len, const char *media_type, char digest_out[KILN_DIGEST_MAX],
                            kiln_error **err)
{
        reg_host *h = reg_host_get (r, ref->registry);
        cleanup_free char *what = kiln_reference_format (ref);
        cleanup_free char *scope = reg_scope (ref, "pull,push");
        cleanup_free char *url = NULL;
        char digest[KILN_DIGEST_MAX];
        reg_resp resp = { 0 };
        reg_req req;
        int ret = -1;

        kiln_digest_bytes (digest, data, len);
        if (ref->digest[0] && !kiln_digest_equal (ref->digest, digest))
                return kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                         "manifest for %s has digest %s", what, digest);
        if (reg_ping (r, h, err) < 0)
                return kiln_error_wrap (err, "manifest %s", what);
        url = reg_url (h, ref, "manifests", kiln_reference_identifier (ref));
        reg_req_init (&req, "PUT", url);
        req.scopes = scope;
        req.body = data;
        req.body_len = len;
        req.content_type = media_type;
        if (reg_request (r, h, &req, &resp, err) < 0) {
                kiln_error_wrap (err, "manifest %s", what);
                goto out;
        }
        if (resp.status != 201 && resp.status != 200) {
                reg_status_error (h, &resp, what, err);
                goto out;
        }
        if (resp.docker_digest && strncmp (resp.docker_digest, "sha256:", 7) == 0
            && !kiln_digest_equal (resp.docker_digest, digest)) {
                kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                  "manifest %s: %s stored %s, kiln sent %s", what, h->name,
                                  resp.docker_digest, digest);
                goto out;
        }
        if (digest_out)
                kiln_strlcpy (digest_out, digest, KILN_DIGEST_MAX);
        ret = 0;
out:
        reg_resp_clear (&resp);
        return ret;
}

int
kiln_registry_push_image (kiln_registry *r, const kiln_reference *dst, const kiln_push_blob *blobs,
                          size_t n, const char *manifest, size_t manifest_len,
                          const char *media_type, char digest_out[KILN_DIGEST_MAX],
                          kiln_error **err)
{
        cleanup_free char *what = kiln_reference_format (dst);
        char want[KILN_DIGEST_MAX], have[KILN_DIGEST_MAX] = "";

        kiln_digest_bytes (want, manifest, manifest_len);
        /* An unchanged image costs one request. */
        if (kiln_registry_head_manifest (have, NULL, NULL, r, dst, err) < 0)
                return -1;
        if (have[0] && kiln_digest_equal (have, want)) {
                kiln_info ("%s is up to date", what);
                if (digest_out)
                        kiln_strlcpy (digest_out, want, KILN_DIGEST_MAX);
                return 0;
        }
        if (kiln_registry_push_blobs (r, dst, blobs, n, err) < 0)
                return -1;
        return kiln_registry_put_manifest (r, dst, manifest, manifest_len, media_type, digest_out,
                                           err);
}

static const char *
manifest_media_type (const char *declared, const char *raw, size_t len)
{
        if (declared)
                return declared;
        return kiln_manifest_kind_of (raw, len, NULL) == KILN_KIND_INDEX ? KILN_MT_OCI_INDEX
                                                                         : KILN_MT_OCI_MANIFEST;
}

int
kiln_registry_push_local (kiln_registry *r, const kiln_local_image *img, const kiln_reference *dst,
                          char digest_out[KILN_DIGEST_MAX], kiln_error **err)
{
        const kiln_manifest *m = img->manifest;
        cleanup_free kiln_push_blob *blobs = kiln_calloc (m->n_layers + 1, sizeof (*blobs));
        char **paths = kiln_calloc (m->n_layers + 1, sizeof (char *));
        size_t n = 0;
        int ret = -1;

        for (size_t i = 0; i < m->n_layers; i++) {
                char *path = kiln_local_image_blob_path (img, m->layers[i].digest);
                if (path == NULL || access (path, R_OK) < 0) {
                        bool foreign = m->layers[i].urls != NULL;
                        free (path);
                        if (foreign)
                                continue; /* a non-distributable layer stays where it is */
                        kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "layer %s is not in the image",
                                          m->layers[i].digest);
                        goto out;
                }
                paths[n] = path;
                kiln_strlcpy (blobs[n].digest, m->layers[i].digest, KILN_DIGEST_MAX);
                blobs[n].size = m->layers[i].size;
                blobs[n].path = path;
                n++;
        }
        kiln_strlcpy (blobs[n].digest, m->config.digest, KILN_DIGEST_MAX);
        blobs[n].size = (int64_t) img->config_len;
        blobs[n].data = img->config_raw;
        n++;
        ret = kiln_registry_push_image (
            r, dst, blobs, n, img->manifest_raw, img->manifest_len,
            manifest_media_type (m->media_type, img->manifest_raw, img->manifest_len), digest_out,
            err);
out:
        for (size_t i = 0; i < m->n_layers; i++)
                free (paths[i]);
        free (paths);
        return ret;
}

int
kiln_registry_copy (kiln_registry *r, const kiln_reference *src, const kiln_reference *dst,
                    const kiln_platform *platform, char digest_out[KILN_DIGEST_MAX],
                    kiln_error **err)
{
        cleanup_remote_image kiln_remote_image *img = NULL;
        cleanup_free kiln_push_blob *blobs = NULL;
        const kiln_manifest *m;
        size_t n = 0;

        if (kiln_registry_open_image (&img, r, src, platform, err) < 0)
                return -1;
        m = img->manifest;
        blobs = kiln_calloc (m->n_layers + 1, sizeof (*blobs));
        for (size_t i = 0; i < m->n_layers; i++) {
                if (m->layers[i].urls)
                        continue;
                kiln_strlcpy (blobs[n].digest, m->layers[i].digest, KILN_DIGEST_MAX);
                blobs[n].size = m->layers[i].size;
                blobs[n].from = img->ref;
                n++;
        }
        kiln_strlcpy (blobs[n].digest, m->config.digest, KILN_DIGEST_MAX);
        blobs[n].size = (int64_t) img->config_len;
        blobs[n].data = img->config_raw;
        n++;
        return kiln_registry_push_image (r, dst, blobs, n, img->manifest_raw, img->manifest_len,
                                         img->manifest_media_type, digest_out, err);
}

typedef struct pull_ctx {
        kiln_registry *r;
        const kiln_reference *src;
        const char *dir;
        const kiln_descriptor *layers;
} pull_ctx;

static int
pull_one (void *p, size_t i, kiln_error **err)
{
        pull_ctx *c = p;
        const kiln_descriptor *d = &c->layers[i];
        cleanup_free char *path = kiln_layout_blob_path (c->dir, d->digest);

        if (kiln_layout_has_blob (c->dir, d->digest)) {
                reg_progress (c->r, KILN_PROGRESS_EXISTS, d->digest, (uint64_t) d->size,
                              (uint64_t) d->size);
                return 0;
        }
        if (d->urls)
                return 0; /* non-distributable: not on the registry */
        return kiln_registry_fetch_blob (c->r, c->src, d->digest, d->size, path, err);
}

int
kiln_registry_pull (kiln_registry *r, const kiln_reference *src, const kiln_platform *platform,
                    const char *dir, char digest_out[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_remote_image kiln_remote_image *img = NULL;
        char d[KILN_DIGEST_MAX];
        pull_ctx c = { .r = r, .src = src, .dir = dir };

        if (kiln_registry_open_image (&img, r, src, platform, err) < 0)
                return -1;
        if (kiln_layout_init (dir, err) < 0)
                return -1;
        c.layers = img->manifest->layers;
        if (reg_pool_run (r, img->manifest->n_layers, pull_one, &c, err) < 0)
                return -1;
        if (kiln_layout_put_blob_bytes (dir, img->config_raw, img->config_len, d, err) < 0)
                return -1;
        if (kiln_layout_put_blob_bytes (dir, img->manifest_raw, img->manifest_len, d, err) < 0)
                return -1;
        kiln_strlcpy (digest_out, img->digest, KILN_DIGEST_MAX);
        return 0;
}
