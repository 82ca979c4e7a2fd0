/* kiln: reading from registries: manifests, images without their layers,
 * and blobs streamed to disk with their digest verified. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "kiln/cleanup.h"
#include "kiln/json.h"
#include "kiln/log.h"

void
kiln_registry_manifest_clear (kiln_registry_manifest *m)
{
        free (m->data);
        free (m->media_type);
        memset (m, 0, sizeof (*m));
}

/* "type/subtype" without parameters; caller frees. */
static char *
bare_media_type (const char *ct)
{
        size_t n;

        if (ct == NULL)
                return NULL;
        n = strcspn (ct, "; \t");
        return strndup (ct, n);
}

static bool
known_manifest_type (const char *mt)
{
        return mt && (kiln_media_type_is_manifest (mt) || kiln_media_type_is_index (mt));
}

static int
check_media_type (kiln_registry_manifest *m, const char *content_type, const char *what,
                  kiln_error **err)
{
        cleanup_kiln_json kiln_json *doc = NULL;
        cleanup_free char *ct = bare_media_type (content_type);
        const char *field = NULL;

        if (kiln_json_parse (&doc, m->data, m->len, KILN_MANIFEST_MAX, NULL) == 0)
                field = kiln_json_get_str (doc, "mediaType");
        if (field && known_manifest_type (ct) && strcmp (field, ct) != 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "%s: Content-Type %s does not match the manifest's "
                                         "mediaType %s",
                                         what, ct, field);
        if (known_manifest_type (ct))
                m->media_type = steal_pointer (&ct);
        else if (field)
                m->media_type = kiln_strdup (field);
        else if (kiln_manifest_kind_of (m->data, m->len, NULL) == KILN_KIND_INDEX)
                m->media_type = kiln_strdup (KILN_MT_OCI_INDEX);
        else
                m->media_type = kiln_strdup (KILN_MT_OCI_MANIFEST);
        return 0;
}

int
kiln_registry_get_manifest (kiln_registry_manifest *out, kiln_registry *r,
                            const kiln_reference *ref, kiln_error **err)
{
        reg_host *h = reg_host_get (r, ref->registry);
        cleanup_free char *what = kiln_reference_format (ref);
        cleanup_free char *scope = reg_scope (ref, "pull");
        cleanup_free char *url = NULL;
        kiln_buf body = KILN_BUF_INIT;
        reg_resp resp = { 0 };
        reg_req req;
        int ret = -1;

        memset (out, 0, sizeof (*out));
        if (reg_ping (r, h, err) < 0)
                return kiln_error_wrap (err, "manifest %s", what);
        url = reg_url (h, ref, "manifests", kiln_reference_identifier (ref));
        kiln_buf_init (&body, KILN_MANIFEST_MAX);
        reg_req_init (&req, "GET", url);
        req.accept = KILN_MANIFEST_ACCEPT;
        req.scopes = scope;
        req.out = &body;
        if (reg_request (r, h, &req, &resp, err) < 0) {
                if (*err && (*err)->code == KILN_E_TOO_LARGE)
                        kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "larger than %zu bytes",
                                          KILN_MANIFEST_MAX);
                kiln_error_wrap (err, "manifest %s", what);
                goto out;
        }
        if (resp.status != 200) {
                reg_status_error (h, &resp, what, err);
                goto out;
        }
        out->data = kiln_buf_steal (&body, &out->len);
        kiln_digest_bytes (out->digest, out->data, out->len);
        if (ref->digest[0] && !kiln_digest_equal (ref->digest, out->digest)) {
                kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                  "manifest %s: received bytes have digest %s", what, out->digest);
                goto out;
        }
        if (resp.docker_digest && kiln_digest_valid (resp.docker_digest)
            && strncmp (resp.docker_digest, "sha256:", 7) == 0
            && !kiln_digest_equal (resp.docker_digest, out->digest)) {
                kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                  "manifest %s: %s says %s, the bytes are %s", what, h->name,
                                  resp.docker_digest, out->digest);
                goto out;
        }
        ret = check_media_type (out, resp.content_type, what, err);
out:
        if (ret < 0)
                kiln_registry_manifest_clear (out);
        kiln_buf_free (&body);
        reg_resp_clear (&resp);
        return ret;
}

int
kiln_registry_head_manifest (char digest[KILN_DIGEST_MAX], char **media_type, int64_t *size,
                             kiln_registry *r, const kiln_reference *ref, kiln_error **err)
{
        reg_host *h = reg_host_get (r, ref->registry);
        cleanup_free char *what = kiln_reference_format (ref);
        cleanup_free char *scope = reg_scope (ref, "pull");
        cleanup_free char *url = NULL;
        reg_resp resp = { 0 };
        reg_req req;
        int ret;

        if (reg_ping (r, h, err) < 0)
                return kiln_error_wrap (err, "manifest %s", what);
        url = reg_url (h, ref, "manifests", kiln_reference_identifier (ref));
        reg_req_init (&req, "HEAD", url);
        req.accept = KILN_MANIFEST_ACCEPT;
        req.scopes = scope;
        if (reg_request (r, h, &req, &resp, err) < 0) {
                reg_resp_clear (&resp);
                return kiln_error_wrap (err, "manifest %s", what);
        }
        if (resp.status == 200) {
                digest[0] = '\0';
                if (resp.docker_digest && kiln_digest_valid (resp.docker_digest))
                        kiln_strlcpy (digest, resp.docker_digest, KILN_DIGEST_MAX);
                if (media_type)
                        *media_type = bare_media_type (resp.content_type);
                if (size)
                        *size = resp.content_length;
                ret = 1;
        } else if (resp.status == 404 || resp.status == 403) {
                ret = 0; /* Artifactory answers 403 for a missing manifest */
        } else {
                ret = reg_status_error (h, &resp, what, err);
        }
        reg_resp_clear (&resp);
        return ret;
}

void
kiln_remote_image_free (kiln_remote_image *img)
{
        if (img == NULL)
                return;
        kiln_reference_free (img->ref);
        free (img->manifest_raw);
        free (img->manifest_media_type);
        kiln_manifest_free (img->manifest);
        free (img->config_raw);
        kiln_config_free (img->config);
        free (img);
}

/* Follows an index to the manifest for platform. */
static int
select_platform (kiln_registry_manifest *m, kiln_remote_image *img, kiln_registry *r,
                 const kiln_platform *want, kiln_error **err)
{
        cleanup_index kiln_index *x = NULL;
        cleanup_free char *what = kiln_reference_format (img->ref);
        cleanup_reference kiln_reference *child = NULL;
        const kiln_descriptor *d;

        if (kiln_index_parse (&x, m->data, m->len, err) < 0)
                return kiln_error_wrap (err, "index %s", what);
        if (kiln_index_select (&d, x, want, err) < 0)
                return kiln_error_wrap (err, "%s", what);
        kiln_strlcpy (img->index_digest, m->digest, sizeof img->index_digest);
        child = kiln_reference_with (img->ref, NULL, d->digest);
        kiln_registry_manifest_clear (m);
        if (kiln_registry_get_manifest (m, r, child, err) < 0)
                return -1;
        if (!kiln_media_type_is_manifest (m->media_type))
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "%s: the index entry for the platform is a %s", what,
                                         m->media_type);
        return 0;
}

int
kiln_registry_open_image (kiln_remote_image **out, kiln_registry *r, const kiln_reference *ref,
                          const kiln_platform *platform, kiln_error **err)
{
        kiln_remote_image *img = kiln_calloc (1, sizeof (*img));
        cleanup_free char *what = kiln_reference_format (ref);
        kiln_platform *host = platform ? NULL : kiln_platform_host ();
        const kiln_platform *want = platform ? platform : host;
        kiln_registry_manifest m = { 0 };
        int ret = -1;

        img->ref = kiln_reference_dup (ref);
        if (kiln_registry_get_manifest (&m, r, ref, err) < 0)
                goto out;
        if (kiln_media_type_is_index (m.media_type) && select_platform (&m, img, r, want, err) < 0)
                goto out;
        if (!kiln_media_type_is_manifest (m.media_type)) {
                kiln_error_makec (err, KILN_E_UNSUPPORTED, 0, "%s: unsupported manifest type %s",
                                  what, m.media_type);
                goto out;
        }
        if (kiln_manifest_parse (&img->manifest, m.data, m.len, err) < 0) {
                kiln_error_wrap (err, "manifest %s", what);
                goto out;
        }
        kiln_strlcpy (img->digest, m.digest, sizeof img->digest);
        img->manifest_raw = steal_pointer (&m.data);
        img->manifest_len = m.len;
        img->manifest_media_type = steal_pointer (&m.media_type);
        if (kiln_registry_fetch_blob_bytes (&img->config_raw, &img->config_len, r, ref,
                                            img->manifest->config.digest, KILN_CONFIG_MAX, err)
            < 0) {
                kiln_error_wrap (err, "config of %s", what);
                goto out;
        }
        if (kiln_config_parse (&img->config, img->config_raw, img->config_len, err) < 0) {
                kiln_error_wrap (err, "config of %s", what);
                goto out;
        }
        if (platform && img->index_digest[0] == '\0' && img->config->os
            && img->config->architecture) {
                kiln_platform have = { .os = img->config->os,
                                       .architecture = img->config->architecture,
                                       .variant = img->config->variant };
                if (!kiln_platform_match (platform, &have)) {
                        kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                          "%s is for %s/%s, not the platform asked for", what,
                                          have.os, have.architecture);
                        goto out;
                }
        }
        *out = steal_pointer (&img);
        ret = 0;
out:
        kiln_registry_manifest_clear (&m);
        kiln_platform_free (host);
        kiln_remote_image_free (img);
        return ret;
}

/* ---- blobs ---- */

int
kiln_registry_blob_exists (kiln_registry *r, const kiln_reference *repo, const char *digest,
                           int64_t *size, kiln_error **err)
{
        reg_host *h = reg_host_get (r, repo->registry);
        cleanup_free char *scope = reg_scope (repo, "pull");
        cleanup_free char *url = NULL;
        reg_resp resp = { 0 };
        reg_req req;
        int ret;

        if (reg_ping (r, h, err) < 0)
                return -1;
        url = reg_url (h, repo, "blobs", digest);
        reg_req_init (&req, "HEAD", url);
        req.scopes = scope;
        if (reg_request (r, h, &req, &resp, err) < 0) {
                reg_resp_clear (&resp);
                return kiln_error_wrap (err, "blob %s", digest);
        }
        if (resp.status == 200) {
                if (size)
                        *size = resp.content_length;
                ret = 1;
        } else if (resp.status == 404) {
                ret = 0;
        } else {
                cleanup_free char *what = kiln_strdup_printf ("blob %s", digest);
                ret = reg_status_error (h, &resp, what, err);
        }
        reg_resp_clear (&resp);
        return ret;
}

int
reg_get_blob (kiln_registry *r, const kiln_reference *repo, const char *digest, int64_t size,
              int fd, kiln_buf *buf, kiln_error **err)
{
        reg_host *h = reg_host_get (r, repo->registry);
        cleanup_free char *scope = reg_scope (repo, "pull");
        cleanup_free char *url = NULL;
        char got[KILN_DIGEST_MAX];
        reg_resp resp = { 0 };
        reg_req req;
        int ret = -1;

        if (strncmp (digest, "sha256:", 7) != 0)
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0, "blob %s: only sha256 blobs",
                                         digest);
        if (reg_ping (r, h, err) < 0)
                return -1;
        url = reg_url (h, repo, "blobs", digest);
        reg_req_init (&req, "GET", url);
        req.scopes = scope;
        req.out_fd = fd;
        req.out = buf;
        req.big = buf == NULL;
        req.hasher = kiln_hasher_new (KILN_DIGEST_SHA256);
        req.progress_digest = digest;
        req.progress_total = size > 0 ? (uint64_t) size : 0;
        if (reg_request (r, h, &req, &resp, err) < 0) {
                kiln_error_wrap (err, "blob %s", digest);
                goto out;
        }
        if (resp.status != 200) {
                cleanup_free char *what = kiln_strdup_printf ("blob %s", digest);
                reg_status_error (h, &resp, what, err);
                goto out;
        }
        if (size >= 0 && kiln_hasher_count (req.hasher) != (uint64_t) size) {
                kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                  "blob %s from %s: got %llu bytes, expected %lld", digest, h->name,
                                  (unsigned long long) kiln_hasher_count (req.hasher),
                                  (long long) size);
                goto out;
        }
        kiln_hasher_final (req.hasher, got);
        if (!kiln_digest_equal (got, digest)) {
                kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                  "blob %s from %s: content has digest %s", digest, h->name, got);
                goto out;
        }
        ret = 0;
out:
        kiln_hasher_free (req.hasher);
        reg_resp_clear (&resp);
        return ret;
}

int
kiln_registry_fetch_blob_bytes (char **out, size_t *len, kiln_registry *r,
                                const kiln_reference *repo, const char *digest, size_t max,
                                kiln_error **err)
{
        kiln_buf b = KILN_BUF_INIT;

        kiln_buf_init (&b, max);
        if (reg_get_blob (r, repo, digest, -1, -1, &b, err) < 0) {
                kiln_buf_free (&b);
                return -1;
        }
        *out = kiln_buf_steal (&b, len);
        return 0;
}

int
kiln_registry_fetch_blob (kiln_registry *r, const kiln_reference *repo, const char *digest,
                          int64_t size, const char *dest_path, kiln_error **err)
{
        cleanup_free char *tmp = kiln_strdup_printf ("%s.kiln-tmp-XXXXXX", dest_path);
        cleanup_close int fd = mkstemp (tmp);

        if (fd < 0)
                return kiln_error_make (err, errno, "create `%s`", tmp);
        reg_progress (r, KILN_PROGRESS_START, digest, 0, size > 0 ? (uint64_t) size : 0);
        if (reg_get_blob (r, repo, digest, size, fd, NULL, err) < 0 || fsync (fd) < 0
            || fchmod (fd, 0644) < 0 || rename (tmp, dest_path) < 0) {
                if (err && *err == NULL)
                        kiln_error_make (err, errno, "store blob `%s`", dest_path);
                unlink (tmp);
                return -1;
        }
        reg_progress (r, KILN_PROGRESS_DONE, digest, (uint64_t) (size > 0 ? size : 0),
                      (uint64_t) (size > 0 ? size : 0));
        return 0;
}
