/* kiln: image processing after a build's steps (see include/kiln/imgproc.h). */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/compose.h"
#include "kiln/imgproc.h"
#include "kiln/layout.h"
#include "kiln/log.h"

#define INDEX_DEPTH_MAX 4

/* What a directory holds: a single image to open as `base` (with the
 * platform that picks it out of nested indexes), or an index to push as
 * it is (raw bytes). */
typedef struct found {
        char *base;
        kiln_platform *platform;
        char *index_raw;
        size_t index_len;
        char *index_media_type;
} found;

static void
found_clear (found *f)
{
        free (f->base);
        kiln_platform_free (f->platform);
        free (f->index_raw);
        free (f->index_media_type);
        memset (f, 0, sizeof (*f));
}

static int
no_image (const char *dir, kiln_error **err)
{
        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "no image was found at \"%s\"", dir);
}

/* The platform an image's config names, so that kiln_local_image_open
 * takes the same way down nested indexes as we did. */
static int
config_platform (kiln_platform **out, const char *dir, const kiln_manifest *m, kiln_error **err)
{
        cleanup_free char *raw = NULL;
        cleanup_config kiln_image_config *cfg = NULL;
        size_t len;

        if (kiln_layout_read_blob (&raw, &len, dir, m->config.digest, KILN_CONFIG_MAX, err) < 0
            || kiln_config_parse (&cfg, raw, len, err) < 0)
                return kiln_error_wrap (err, "config %s", m->config.digest);
        *out = kiln_calloc (1, sizeof (**out));
        (*out)->os = kiln_strdup (cfg->os);
        (*out)->architecture = kiln_strdup (cfg->architecture);
        (*out)->variant = cfg->variant ? kiln_strdup (cfg->variant) : NULL;
        return 0;
}

/* An index with one entry is followed down to its image; one with several
 * is the thing to push. */
static int
find_in_layout (found *f, const char *dir, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/index.json", dir);
        cleanup_free char *raw = NULL;
        cleanup_free char *media_type = NULL;
        size_t len;

        if (kiln_read_file (&raw, &len, path, KILN_MANIFEST_MAX, err) < 0)
                return -1;
        media_type = kiln_strdup (KILN_MT_OCI_INDEX);
        for (int depth = 0; depth < INDEX_DEPTH_MAX; depth++) {
                cleanup_index kiln_index *x = NULL;
                cleanup_free char *next = NULL;
                const kiln_descriptor *d;
                size_t next_len;

                if (kiln_index_parse (&x, raw, len, err) < 0)
                        return kiln_error_wrap (err, "%s", depth ? "index" : path);
                if (x->n_manifests == 0)
                        return no_image (dir, err);
                if (x->n_manifests > 1) {
                        f->index_raw = steal_pointer (&raw);
                        f->index_len = len;
                        f->index_media_type = x->media_type ? kiln_strdup (x->media_type)
                                                            : steal_pointer (&media_type);
                        return 0;
                }
                d = &x->manifests[0];
                if (kiln_layout_read_blob (&next, &next_len, dir, d->digest, KILN_MANIFEST_MAX, err)
                    < 0)
                        return -1;
                if (kiln_manifest_kind_of (next, next_len, d->media_type) == KILN_KIND_MANIFEST) {
                        cleanup_manifest kiln_manifest *m = NULL;
                        if (kiln_manifest_parse (&m, next, next_len, err) < 0)
                                return kiln_error_wrap (err, "manifest %s", d->digest);
                        if (depth > 0 && config_platform (&f->platform, dir, m, err) < 0)
                                return -1;
                        f->base = kiln_strdup_printf ("oci:%s", dir);
                        return 0;
                }
                free (raw);
                raw = steal_pointer (&next);
                len = next_len;
                free (media_type);
                media_type = kiln_strdup (d->media_type);
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: indexes nested too deeply", path);
}

static int
find_image (found *f, const char *dir, kiln_error **err)
{
        cleanup_free char *index = kiln_strdup_printf ("%s/index.json", dir);
        cleanup_free char *only = NULL;
        struct stat st;
        struct dirent *e;
        DIR *d;
        size_t n = 0;

        if (stat (index, &st) == 0)
                return find_in_layout (f, dir, err);
        d = opendir (dir);
        if (d == NULL) {
                if (errno == ENOENT)
                        return no_image (dir, err);
                return kiln_error_make (err, errno, "open directory `%s`", dir);
        }
        while ((e = readdir (d)) != NULL) {
                if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
                        continue;
                if (n++ == 0)
                        only = kiln_strdup_printf ("%s/%s", dir, e->d_name);
        }
        closedir (d);
        if (n != 1 || stat (only, &st) < 0 || !S_ISREG (st.st_mode))
                return no_image (dir, err);
        /* The docker-archive reader takes an OCI layout in the tar first,
         * then docker's manifest.json: both tarball kinds. */
        f->base = kiln_strdup_printf ("docker-archive:%s", only);
        return 0;
}

/* ---- an index, as it is ---- */

static int push_manifest_blobs (kiln_registry *r, const kiln_reference *dst, const char *dir,
                                const char *raw, size_t len, const char *media_type,
                                const char *digest, int depth, kiln_error **err);

static int
push_index_children (kiln_registry *r, const kiln_reference *dst, const char *dir, const char *raw,
                     size_t len, int depth, kiln_error **err)
{
        cleanup_index kiln_index *x = NULL;

        if (depth >= INDEX_DEPTH_MAX)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "indexes nested too deeply");
        if (kiln_index_parse (&x, raw, len, err) < 0)
                return -1;
        for (size_t i = 0; i < x->n_manifests; i++) {
                const kiln_descriptor *d = &x->manifests[i];
                cleanup_free char *child = NULL;
                size_t child_len;

                if (kiln_layout_read_blob (&child, &child_len, dir, d->digest, KILN_MANIFEST_MAX,
                                           err)
                    < 0)
                        return -1;
                if (push_manifest_blobs (r, dst, dir, child, child_len, d->media_type, d->digest,
                                         depth + 1, err)
                    < 0)
                        return kiln_error_wrap (err, "manifest %s", d->digest);
        }
        return 0;
}

/* Pushes one manifest of the layout by digest, with what it refers to. */
static int
push_manifest_blobs (kiln_registry *r, const kiln_reference *dst, const char *dir, const char *raw,
                     size_t len, const char *media_type, const char *digest, int depth,
                     kiln_error **err)
{
        cleanup_reference kiln_reference *at = kiln_reference_with (dst, NULL, digest);
        cleanup_manifest kiln_manifest *m = NULL;
        cleanup_free kiln_push_blob *blobs = NULL;
        char **paths = NULL;
        char got[KILN_DIGEST_MAX];
        size_t n = 0;
        int ret = -1;

        if (kiln_manifest_kind_of (raw, len, media_type) == KILN_KIND_INDEX) {
                if (push_index_children (r, dst, dir, raw, len, depth, err) < 0)
                        return -1;
                return kiln_registry_put_manifest (r, at, raw, len, media_type, got, err);
        }
        if (kiln_manifest_parse (&m, raw, len, err) < 0)
                return -1;
        blobs = kiln_calloc (m->n_layers + 1, sizeof (*blobs));
        paths = kiln_calloc (m->n_layers + 1, sizeof (char *));
        for (size_t i = 0; i <= m->n_layers; i++) {
                const kiln_descriptor *d = i < m->n_layers ? &m->layers[i] : &m->config;
                paths[i] = kiln_layout_blob_path (dir, d->digest);
                if (paths[i] == NULL) {
                        kiln_error_makec (err, KILN_E_INVALID, 0, "bad digest `%s`", d->digest);
                        goto out;
                }
                /* A non-distributable layer stays where its URLs say. */
                if (d->urls && access (paths[i], F_OK) < 0)
                        continue;
                kiln_strlcpy (blobs[n].digest, d->digest, KILN_DIGEST_MAX);
                blobs[n].size = d->size;
                blobs[n].path = paths[i];
                n++;
        }
        ret = kiln_registry_push_image (r, at, blobs, n, raw, len, media_type, got, err);
out:
        for (size_t i = 0; i <= m->n_layers; i++)
                free (paths[i]);
        free (paths);
        return ret;
}

static int
push_index (kiln_imgproc_result *out, const kiln_imgproc_opts *o, const found *f, kiln_error **err)
{
        cleanup_reference kiln_reference *dst = NULL;

        if (o->labels.n || o->annotations.n || o->timestamp >= 0)
                kiln_warn ("%s holds an image index: labels, annotations and the timestamp are "
                           "not applied to it",
                           o->push_dir);
        if (kiln_reference_parse (&dst, o->image, err) < 0
            || push_index_children (o->registry, dst, o->push_dir, f->index_raw, f->index_len, 0,
                                    err)
                   < 0
            || kiln_registry_put_manifest (o->registry, dst, f->index_raw, f->index_len,
                                           f->index_media_type, out->digest, err)
                   < 0)
                return -1;
        out->size = -1;
        out->pushed = true;
        out->index = true;
        return 0;
}

/* ---- one image ---- */

static bool
has_changes (const kiln_imgproc_opts *o)
{
        return o->labels.n || o->annotations.n || o->timestamp >= 0;
}

static int64_t
manifest_size (const kiln_manifest *m)
{
        int64_t size = m->config.size;

        for (size_t i = 0; i < m->n_layers; i++)
                size += m->layers[i].size;
        return size;
}

static void
apply_changes (kiln_compose *c, const kiln_imgproc_opts *o)
{
        kiln_image_config *cfg = kiln_compose_config (c);
        kiln_kvs *ann = kiln_compose_annotations (c);

        for (size_t i = 0; i < o->labels.n; i++)
                kiln_kvs_set (&cfg->labels, o->labels.items[i].key, o->labels.items[i].value);
        for (size_t i = 0; i < o->annotations.n; i++)
                kiln_kvs_set (ann, o->annotations.items[i].key, o->annotations.items[i].value);
        if (o->labels.n)
                cfg->has_config = true;
        if (o->timestamp >= 0) {
                char ts[32];
                kiln_time_rfc3339 (ts, o->timestamp);
                free (cfg->created);
                cfg->created = kiln_strdup (ts);
                for (size_t i = 0; i < cfg->n_history; i++) {
                        free (cfg->history[i].created);
                        cfg->history[i].created = kiln_strdup (ts);
                }
        }
}

static int
push_changed (kiln_imgproc_result *out, const kiln_imgproc_opts *o, const char *base,
              const kiln_platform *platform, kiln_error **err)
{
        cleanup_compose kiln_compose *c = NULL;
        kiln_compose_opts co = {
                .base = base,
                .platform = platform,
                .registry = o->registry,
                .created = 0,
                .in_place = true,
        };

        if (kiln_compose_new (&c, &co, err) < 0)
                return -1;
        apply_changes (c, o);
        if (kiln_compose_publish (c, o->image, out->digest, err) < 0)
                return -1;
        out->size = manifest_size (kiln_compose_manifest (c));
        out->pushed = true;
        return 0;
}

static int
push_as_is (kiln_imgproc_result *out, const kiln_imgproc_opts *o, const found *f, kiln_error **err)
{
        cleanup_local_image kiln_local_image *img = NULL;
        cleanup_reference kiln_reference *dst = NULL;
        kiln_location loc = { 0 };
        int r = -1;

        if (kiln_reference_parse (&dst, o->image, err) < 0
            || kiln_location_parse (&loc, f->base, err) < 0)
                return -1;
        if (kiln_local_image_open (&img, &loc, f->platform, err) < 0
            || kiln_registry_push_local (o->registry, img, dst, out->digest, err) < 0)
                goto out;
        out->size = manifest_size (img->manifest);
        out->pushed = true;
        r = 0;
out:
        kiln_location_clear (&loc);
        return r;
}

static int
from_directory (kiln_imgproc_result *out, const kiln_imgproc_opts *o, kiln_error **err)
{
        found f = { 0 };
        int r;

        if (find_image (&f, o->push_dir, err) < 0)
                return -1;
        if (f.index_raw)
                r = push_index (out, o, &f, err);
        else if (has_changes (o))
                r = push_changed (out, o, f.base, f.platform, err);
        else
                r = push_as_is (out, o, &f, err);
        found_clear (&f);
        return r;
}

static int
from_registry (kiln_imgproc_result *out, const kiln_imgproc_opts *o, kiln_error **err)
{
        cleanup_reference kiln_reference *ref = NULL;
        cleanup_remote_image kiln_remote_image *img = NULL;

        if (kiln_reference_parse (&ref, o->image, err) < 0
            || kiln_registry_open_image (&img, o->registry, ref, NULL, err) < 0)
                return -1;
        if (img->index_digest[0]) {
                if (has_changes (o))
                        kiln_warn ("%s is an image index: labels, annotations and the timestamp "
                                   "are not applied to it",
                                   o->image);
                kiln_strlcpy (out->digest, img->index_digest, KILN_DIGEST_MAX);
                out->size = -1;
                out->index = true;
                return 0;
        }
        if (!has_changes (o)) {
                kiln_strlcpy (out->digest, img->digest, KILN_DIGEST_MAX);
                out->size = manifest_size (img->manifest);
                return 0;
        }
        /* Pushed back to the tag: a digest in the reference only chose
         * what to read. */
        if (ref->digest[0]) {
                cleanup_reference kiln_reference *tagged
                    = kiln_reference_with (ref, ref->tag, NULL);
                cleanup_free char *s = kiln_reference_format (tagged);
                kiln_imgproc_opts to_tag = *o;
                to_tag.image = s;
                return push_changed (out, &to_tag, o->image, NULL, err);
        }
        return push_changed (out, o, o->image, NULL, err);
}

int
kiln_imgproc_run (kiln_imgproc_result *out, const kiln_imgproc_opts *o, kiln_error **err)
{
        memset (out, 0, sizeof (*out));
        out->size = -1;
        if (o->timestamp > KILN_IMGPROC_TIMESTAMP_MAX)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "image timestamp %lld is after the year 9999",
                                         (long long) o->timestamp);
        if (o->push_dir)
                return from_directory (out, o, err);
        return from_registry (out, o, err);
}
