/* kiln: images on disk: OCI layout directories, OCI archives and
 * docker-archives, as inputs and outputs. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "kiln/layout.h"
#include "kiln/log.h"

#define OCI_LAYOUT_CONTENT "{\"imageLayoutVersion\":\"1.0.0\"}"
#define CONTAINERD_NAME_ANNOTATION "io.containerd.image.name"

/* ---- locations ---- */

void
kiln_location_clear (kiln_location *loc)
{
        free (loc->path);
        free (loc->tag);
        memset (loc, 0, sizeof (*loc));
}

/* "PATH[:TAG]": the tag is what follows the last colon, when that part has
 * no slash (so "dir:with/colon" keeps its colon). */
static void
split_tag (kiln_location *out, const char *rest)
{
        const char *colon = strrchr (rest, ':');

        if (colon && colon != rest && strchr (colon, '/') == NULL) {
                out->path = strndup (rest, (size_t) (colon - rest));
                out->tag = colon[1] ? kiln_strdup (colon + 1) : NULL;
        } else {
                out->path = kiln_strdup (rest);
        }
}

int
kiln_location_parse (kiln_location *out, const char *spec, kiln_error **err)
{
        const char *rest;

        memset (out, 0, sizeof (*out));
        if (spec == NULL || *spec == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0, "empty image location");
        if (strcmp (spec, "scratch") == 0) {
                out->transport = KILN_TRANSPORT_SCRATCH;
                return 0;
        }
        if (kiln_str_has_prefix (spec, "oci:")) {
                out->transport = KILN_TRANSPORT_OCI;
                split_tag (out, spec + 4);
        } else if (kiln_str_has_prefix (spec, "oci-archive:")) {
                out->transport = KILN_TRANSPORT_OCI_ARCHIVE;
                split_tag (out, spec + 12);
        } else if (kiln_str_has_prefix (spec, "docker-archive:")) {
                /* docker-archive:FILE[:NAME[:TAG]]: the reference may hold
                 * colons of its own, so split at the first one. */
                out->transport = KILN_TRANSPORT_DOCKER_ARCHIVE;
                rest = spec + 15;
                const char *colon = strchr (rest, ':');
                out->path = colon ? strndup (rest, (size_t) (colon - rest)) : kiln_strdup (rest);
                out->tag = colon && colon[1] ? kiln_strdup (colon + 1) : NULL;
        } else {
                out->transport = KILN_TRANSPORT_REGISTRY;
                out->path = kiln_strdup (kiln_str_has_prefix (spec, "docker://") ? spec + 9 : spec);
        }
        if (out->path == NULL || out->path[0] == '\0') {
                kiln_location_clear (out);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "image location `%s`: no path given", spec);
        }
        return 0;
}

/* ---- the layout directory ---- */

int
kiln_layout_init (const char *dir, kiln_error **err)
{
        cleanup_free char *blobs = kiln_strdup_printf ("%s/blobs/sha256", dir);
        cleanup_free char *layout = kiln_strdup_printf ("%s/oci-layout", dir);
        cleanup_free char *index = kiln_strdup_printf ("%s/index.json", dir);

        if (kiln_mkdir_p (blobs, 0755, err) < 0)
                return kiln_error_wrap (err, "OCI layout `%s`", dir);
        if (access (layout, F_OK) < 0
            && kiln_write_file (layout, OCI_LAYOUT_CONTENT, strlen (OCI_LAYOUT_CONTENT), 0644, err)
                   < 0)
                return -1;
        if (access (index, F_OK) < 0) {
                kiln_index x = { .schema_version = 2, .media_type = (char *) KILN_MT_OCI_INDEX };
                cleanup_free char *json = NULL;
                size_t len;
                if (kiln_index_to_json (&json, &len, &x, err) < 0
                    || kiln_write_file (index, json, len, 0644, err) < 0)
                        return -1;
        }
        return 0;
}

char *
kiln_layout_blob_path (const char *dir, const char *digest)
{
        kiln_digest_alg alg;
        const char *hex;

        if (kiln_digest_parse (digest, &alg, &hex, NULL) < 0)
                return NULL;
        return kiln_strdup_printf ("%s/blobs/%s/%s", dir, kiln_digest_alg_name (alg), hex);
}

bool
kiln_layout_has_blob (const char *dir, const char *digest)
{
        cleanup_free char *p = kiln_layout_blob_path (dir, digest);
        return p && access (p, F_OK) == 0;
}

char *
kiln_layout_blob_tmp_path (const char *dir)
{
        unsigned char r[8];
        char hex[17];

        if (kiln_random_bytes (r, sizeof r, NULL) < 0)
                memset (r, 0, sizeof r);
        for (size_t i = 0; i < sizeof r; i++)
                snprintf (hex + 2 * i, 3, "%02x", r[i]);
        return kiln_strdup_printf ("%s/blobs/.tmp-%d-%s", dir, (int) getpid (), hex);
}

static int
copy_file (const char *src, const char *dst, kiln_error **err)
{
        cleanup_close int in = open (src, O_RDONLY | O_CLOEXEC);
        cleanup_close int out = -1;
        struct stat st;

        if (in < 0)
                return kiln_error_make (err, errno, "open `%s`", src);
        if (fstat (in, &st) < 0)
                return kiln_error_make (err, errno, "stat `%s`", src);
        out = open (dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
                return kiln_error_make (err, errno, "create `%s`", dst);
        for (off_t left = st.st_size; left > 0;) {
                ssize_t n = copy_file_range (in, NULL, out, NULL, (size_t) left, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        /* Not supported across these filesystems: plain copy. */
                        char buf[1 << 16];
                        ssize_t r;
                        while ((r = read (in, buf, sizeof buf)) > 0)
                                if (kiln_write_all (out, buf, (size_t) r, err) < 0)
                                        return kiln_error_wrap (err, "copy to `%s`", dst);
                        if (r < 0)
                                return kiln_error_make (err, errno, "read `%s`", src);
                        break;
                }
                left -= n;
        }
        if (fsync (out) < 0)
                return kiln_error_make (err, errno, "write `%s`", dst);
        return 0;
}

int
kiln_layout_put_blob_file (const char *dir, const char *digest, const char *src, bool move,
                           kiln_error **err)
{
        cleanup_free char *dst = kiln_layout_blob_path (dir, digest);
        cleanup_free char *tmp = NULL;

        if (dst == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "invalid digest `%s`", digest);
        if (access (dst, F_OK) == 0) {
                if (move)
                        unlink (src);
                return 0;
        }
        if (move && rename (src, dst) == 0)
                return 0;
        if (link (src, dst) == 0 || errno == EEXIST) {
                if (move)
                        unlink (src);
                return 0;
        }
        tmp = kiln_layout_blob_tmp_path (dir);
        if (copy_file (src, tmp, err) < 0 || rename (tmp, dst) < 0) {
                kiln_error_make (err, errno, "store blob `%s`", digest);
                unlink (tmp);
                return -1;
        }
        if (move)
                unlink (src);
        return 0;
}

int
kiln_layout_put_blob_bytes (const char *dir, const void *data, size_t len,
                            char digest_out[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_free char *path = NULL;

        kiln_digest_bytes (digest_out, data, len);
        path = kiln_layout_blob_path (dir, digest_out);
        if (access (path, F_OK) == 0)
                return 0;
        return kiln_write_file (path, data, len, 0644, err);
}

int
kiln_layout_read_blob (char **out, size_t *len, const char *dir, const char *digest, size_t max,
                       kiln_error **err)
{
        cleanup_free char *path = kiln_layout_blob_path (dir, digest);
        cleanup_free char *data = NULL;
        char got[KILN_DIGEST_MAX];
        kiln_digest_alg alg;
        size_t n;

        if (path == NULL || kiln_digest_parse (digest, &alg, NULL, err) < 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "invalid digest `%s`", digest);
        if (kiln_read_file (&data, &n, path, max, err) < 0)
                return kiln_error_wrap (err, "blob %s", digest);
        if (alg == KILN_DIGEST_SHA256) {
                kiln_digest_bytes (got, data, n);
        } else {
                cleanup_hasher kiln_hasher *h = kiln_hasher_new (alg);
                kiln_hasher_update (h, data, n);
                kiln_hasher_final (h, got);
        }
        if (!kiln_digest_equal (got, digest))
                return kiln_error_makec (err, KILN_E_DIGEST_MISMATCH, 0,
                                         "blob `%s` does not match its digest (content is %s)",
                                         path, got);
        *out = steal_pointer (&data);
        *len = n;
        return 0;
}

static int
read_index (kiln_index **out, const char *dir, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/index.json", dir);
        cleanup_free char *data = NULL;
        size_t len;

        if (kiln_read_file (&data, &len, path, KILN_MANIFEST_MAX, err) < 0)
                return kiln_error_wrap (err, "OCI layout `%s`", dir);
        if (kiln_index_parse (out, data, len, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        return 0;
}

static int
write_index (const char *dir, const kiln_index *x, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/index.json", dir);
        cleanup_free char *json = NULL;
        size_t len;

        if (kiln_index_to_json (&json, &len, x, err) < 0)
                return -1;
        return kiln_write_file (path, json, len, 0644, err);
}

int
kiln_layout_add_manifest (const char *dir, const kiln_descriptor *desc, const char *tag,
                          kiln_error **err)
{
        cleanup_index kiln_index *x = NULL;
        size_t kept = 0;

        if (kiln_layout_init (dir, err) < 0 || read_index (&x, dir, err) < 0)
                return -1;
        /* Drop entries that held this tag, and an untagged twin of desc. */
        for (size_t i = 0; i < x->n_manifests; i++) {
                kiln_descriptor *d = &x->manifests[i];
                const char *name = kiln_kvs_get (&d->annotations, KILN_REF_NAME_ANNOTATION);
                bool same_tag = tag && name && strcmp (name, tag) == 0;
                bool twin = !tag && !name && strcmp (d->digest, desc->digest) == 0;
                if (same_tag || twin) {
                        kiln_descriptor_clear (d);
                        continue;
                }
                if (kept != i)
                        x->manifests[kept] = *d;
                kept++;
        }
        x->n_manifests = kept;
        x->manifests = kiln_reallocarray (x->manifests, kept + 1, sizeof (kiln_descriptor));
        memset (&x->manifests[kept], 0, sizeof (kiln_descriptor));
        kiln_descriptor_copy (&x->manifests[kept], desc);
        if (tag)
                kiln_kvs_set (&x->manifests[kept].annotations, KILN_REF_NAME_ANNOTATION, tag);
        x->n_manifests++;
        if (x->media_type == NULL)
                x->media_type = kiln_strdup (KILN_MT_OCI_INDEX);
        return write_index (dir, x, err);
}

int
kiln_layout_resolve (kiln_descriptor *out, const char *dir, const char *tag, kiln_error **err)
{
        cleanup_index kiln_index *x = NULL;
        const kiln_descriptor *found = NULL;

        if (read_index (&x, dir, err) < 0)
                return -1;
        for (size_t i = 0; i < x->n_manifests; i++) {
                const char *name
                    = kiln_kvs_get (&x->manifests[i].annotations, KILN_REF_NAME_ANNOTATION);
                if (tag == NULL || (name && strcmp (name, tag) == 0)) {
                        if (found && tag == NULL)
                                return kiln_error_makec (
                                    err, KILN_E_INVALID, 0,
                                    "OCI layout `%s` holds %zu images: name one as oci:%s:TAG", dir,
                                    x->n_manifests, dir);
                        found = &x->manifests[i];
                }
        }
        if (found == NULL)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "OCI layout `%s`: no image %s%s",
                                         dir, tag ? "tagged " : "", tag ? tag : "in index.json");
        memset (out, 0, sizeof (*out));
        kiln_descriptor_copy (out, found);
        return 0;
}
