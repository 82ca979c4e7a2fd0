/* kiln: composing a new image over a base, and writing it out (see
 * include/kiln/compose.h). */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/compose.h"
#include "kiln/layout.h"
#include "kiln/log.h"
#include "kiln/runbase.h"
#include "kiln/stack.h"

struct kiln_compose {
        char *base_name;
        kiln_local_image *local;   /* a base on disk, scratch or kiln:static */
        kiln_remote_image *remote; /* a base in a registry */
        kiln_registry *registry;   /* borrowed */
        char *work;                /* temporary layout: new layers, config, manifest */
        kiln_manifest *manifest;
        size_t n_base_layers;  /* manifest->layers[0..n) are the base's */
        kiln_reference **from; /* per layer: the repository of a remote layer, or NULL */
        kiln_image_config *config;
        char created[32];
        bool published; /* the manifest was written at least once */
};

/* The OCI type for a base layer, so the output is one OCI manifest: the
 * Docker layer types are the same bytes under another name. */
static const char *
oci_layer_type (const char *mt)
{
        if (strcmp (mt, KILN_MT_DOCKER_LAYER_GZIP) == 0)
                return KILN_MT_OCI_LAYER_GZIP;
        if (strcmp (mt, KILN_MT_DOCKER_LAYER_TAR) == 0)
                return KILN_MT_OCI_LAYER_TAR;
        return mt;
}

static int
open_base (kiln_compose *c, const kiln_compose_opts *opts, kiln_error **err)
{
        kiln_location loc = { 0 };
        int r = -1;

        if (strcmp (opts->base, KILN_STATIC_BASE) == 0)
                return kiln_static_base_create (&c->local, opts->platform, err);
        if (kiln_str_has_prefix (opts->base, KILN_STACK_PREFIX)) {
                cleanup_free char *where = NULL;
                if (kiln_stack_resolve_base (&where, opts->base, opts->stacks_dir,
                                             opts->stack_cache_dir, opts->platform, err)
                        < 0
                    || kiln_location_parse (&loc, where, err) < 0)
                        return -1;
                r = kiln_local_image_open (&c->local, &loc, opts->platform, err);
                goto out;
        }
        if (kiln_location_parse (&loc, opts->base, err) < 0)
                return -1;
        if (loc.transport == KILN_TRANSPORT_REGISTRY) {
                cleanup_reference kiln_reference *ref = NULL;

                if (opts->registry == NULL) {
                        kiln_error_makec (err, KILN_E_INVALID, 0, "a registry base needs a client");
                        goto out;
                }
                if (kiln_reference_parse (&ref, opts->base, err) < 0)
                        goto out;
                r = kiln_registry_open_image (&c->remote, opts->registry, ref, opts->platform, err);
                goto out;
        }
        r = kiln_local_image_open (&c->local, &loc, opts->platform, err);
out:
        kiln_location_clear (&loc);
        return r;
}

static int
take_base (kiln_compose *c, bool in_place, kiln_error **err)
{
        const kiln_manifest *bm = c->remote ? c->remote->manifest : c->local->manifest;
        const char *raw = c->remote ? c->remote->config_raw : c->local->config_raw;
        size_t len = c->remote ? c->remote->config_len : c->local->config_len;
        kiln_manifest *m = kiln_calloc (1, sizeof (*m));

        c->manifest = m;
        m->schema_version = 2;
        m->media_type = kiln_strdup (KILN_MT_OCI_MANIFEST);
        m->layers = kiln_calloc (bm->n_layers + 1, sizeof (kiln_descriptor));
        c->from = kiln_calloc (bm->n_layers + 1, sizeof (kiln_reference *));
        for (size_t i = 0; i < bm->n_layers; i++) {
                kiln_descriptor *d = &m->layers[m->n_layers++];
                kiln_descriptor_copy (d, &bm->layers[i]);
                free (d->media_type);
                d->media_type = kiln_strdup (oci_layer_type (bm->layers[i].media_type));
        }
        c->n_base_layers = m->n_layers;
        for (size_t i = 0; in_place && i < bm->annotations.n; i++)
                kiln_kvs_set (&m->annotations, bm->annotations.items[i].key,
                              bm->annotations.items[i].value);
        return kiln_config_parse (&c->config, raw, len, err);
}

static void
record_base (kiln_compose *c)
{
        kiln_kvs *labels = &c->config->labels;
        cleanup_free char *n = kiln_strdup_printf ("%zu", c->n_base_layers);
        size_t n_diff = kiln_strv_len (c->config->diff_ids);

        kiln_kvs_set (labels, KILN_LABEL_RUN_IMAGE_DIGEST, kiln_compose_base_digest (c));
        kiln_kvs_set (labels, KILN_LABEL_RUN_IMAGE_NAME, c->base_name);
        kiln_kvs_set (labels, KILN_LABEL_RUN_IMAGE_LAYERS, n);
        kiln_kvs_set (labels, KILN_LABEL_RUN_IMAGE_TOP_LAYER,
                      n_diff ? c->config->diff_ids[n_diff - 1] : "");
}

int
kiln_compose_new (kiln_compose **out, const kiln_compose_opts *opts, kiln_error **err)
{
        kiln_compose *c = kiln_calloc (1, sizeof (*c));
        int64_t epoch = opts->created;

        c->base_name = kiln_strdup (opts->base);
        c->registry = opts->registry;
        if (epoch < 0 && kiln_source_date_epoch (&epoch, err) < 0)
                goto fail;
        kiln_time_rfc3339 (c->created, epoch);
        if (open_base (c, opts, err) < 0) {
                kiln_error_wrap (err, "base image `%s`", opts->base);
                goto fail;
        }
        if (take_base (c, opts->in_place, err) < 0) {
                kiln_error_wrap (err, "base image `%s`", opts->base);
                goto fail;
        }
        if (kiln_mkdtemp (&c->work, "compose", err) < 0 || kiln_layout_init (c->work, err) < 0)
                goto fail;
        assert (!(opts->in_place && opts->record_base));
        if (opts->in_place) {
                *out = c;
                return 0;
        }
        free (c->config->created);
        c->config->created = kiln_strdup (c->created);
        c->config->has_config = true;
        if (c->remote || c->local->layout_dir)
                kiln_kvs_set (&c->manifest->annotations, "org.opencontainers.image.base.digest",
                              kiln_compose_base_digest (c));
        if (c->remote)
                kiln_kvs_set (&c->manifest->annotations, "org.opencontainers.image.base.name",
                              c->base_name);
        if (opts->record_base)
                record_base (c);
        *out = c;
        return 0;
fail:
        kiln_compose_free (c);
        return -1;
}

void
kiln_compose_free (kiln_compose *c)
{
        if (c == NULL)
                return;
        if (c->work) {
                kiln_error *e = NULL;
                if (kiln_rm_rf (c->work, &e) < 0)
                        kiln_warn ("%s", kiln_error_msg (e));
                kiln_error_free (e);
                free (c->work);
        }
        for (size_t i = 0; c->from && c->manifest && i < c->manifest->n_layers; i++)
                kiln_reference_free (c->from[i]);
        free (c->from);
        kiln_manifest_free (c->manifest);
        kiln_config_free (c->config);
        kiln_local_image_free (c->local);
        kiln_remote_image_free (c->remote);
        free (c->base_name);
        free (c);
}

kiln_image_config *
kiln_compose_config (kiln_compose *c)
{
        return c->config;
}

kiln_kvs *
kiln_compose_annotations (kiln_compose *c)
{
        return &c->manifest->annotations;
}

const kiln_manifest *
kiln_compose_manifest (const kiln_compose *c)
{
        return c->published ? c->manifest : NULL;
}

const char *
kiln_compose_base_digest (const kiln_compose *c)
{
        if (c->remote)
                return c->remote->digest;
        return c->local->layout_dir ? c->local->manifest_digest : "";
}

const char *
kiln_compose_base_name (const kiln_compose *c)
{
        return c->base_name;
}

const char *
kiln_compose_created (const kiln_compose *c)
{
        return c->created;
}

static void
add_descriptor (kiln_compose *c, const kiln_layer_info *info, const char *created_by)
{
        kiln_manifest *m = c->manifest;
        kiln_descriptor *d;

        m->layers = kiln_reallocarray (m->layers, m->n_layers + 2, sizeof (kiln_descriptor));
        c->from = kiln_reallocarray (c->from, m->n_layers + 2, sizeof (kiln_reference *));
        c->from[m->n_layers] = NULL;
        d = &m->layers[m->n_layers++];
        memset (d, 0, sizeof (*d));
        d->media_type = kiln_strdup (info->media_type);
        kiln_strlcpy (d->digest, info->digest, sizeof d->digest);
        d->size = (int64_t) info->size;
        kiln_config_add_layer (c->config, info->diff_id, c->created, created_by, NULL);
}

int
kiln_compose_add_dir (kiln_compose *c, const char *dir, const char *dest,
                      const kiln_layer_opts *lopts, const char *created_by, kiln_layer_info *info,
                      kiln_error **err)
{
        cleanup_free char *tmp = kiln_layout_blob_tmp_path (c->work);
        kiln_layer_opts defaults;
        kiln_layer_info li;

        if (lopts == NULL) {
                kiln_layer_opts_init (&defaults);
                lopts = &defaults;
        }
        if (kiln_layer_write_dir (&li, dir, dest, tmp, lopts, err) < 0) {
                unlink (tmp);
                return -1;
        }
        if (kiln_layout_put_blob_file (c->work, li.digest, tmp, true, err) < 0) {
                unlink (tmp);
                return -1;
        }
        add_descriptor (c, &li, created_by);
        if (info)
                *info = li;
        return 0;
}

int
kiln_compose_add_layer_file (kiln_compose *c, const char *path, const kiln_layer_info *info,
                             const char *created_by, kiln_error **err)
{
        if (kiln_layout_put_blob_file (c->work, info->digest, path, false, err) < 0)
                return -1;
        add_descriptor (c, info, created_by);
        return 0;
}

int
kiln_compose_add_remote_layer (kiln_compose *c, const kiln_reference *repo,
                               const kiln_descriptor *d, const char *diff_id,
                               const char *created_by, kiln_error **err)
{
        kiln_layer_info info = { 0 };

        if (c->registry == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "a layer in a registry needs a client");
        if (kiln_digest_parse (d->digest, NULL, NULL, err) < 0
            || kiln_digest_parse (diff_id, NULL, NULL, err) < 0)
                return -1;
        kiln_strlcpy (info.digest, d->digest, sizeof info.digest);
        kiln_strlcpy (info.diff_id, diff_id, sizeof info.diff_id);
        info.size = (uint64_t) d->size;
        info.media_type = oci_layer_type (d->media_type);
        add_descriptor (c, &info, created_by);
        c->from[c->manifest->n_layers - 1] = kiln_reference_dup (repo);
        return 0;
}

/* Writes the config and the manifest into the work layout. */
static int
finish (kiln_compose *c, char **manifest_json, size_t *manifest_len, char digest[KILN_DIGEST_MAX],
        kiln_error **err)
{
        cleanup_free char *config_json = NULL;
        size_t config_len;
        kiln_manifest *m = c->manifest;

        if (kiln_config_to_json (&config_json, &config_len, c->config, err) < 0
            || kiln_layout_put_blob_bytes (c->work, config_json, config_len, m->config.digest, err)
                   < 0)
                return -1;
        free (m->config.media_type);
        m->config.media_type = kiln_strdup (KILN_MT_OCI_CONFIG);
        m->config.size = (int64_t) config_len;
        if (kiln_manifest_to_json (manifest_json, manifest_len, m, err) < 0)
                return -1;
        return kiln_layout_put_blob_bytes (c->work, *manifest_json, *manifest_len, digest, err);
}

/* A base layer that is not in the base's layout but has URLs stays where
 * it is (a non-distributable layer), as registries expect. */
static bool
is_foreign (const kiln_compose *c, const kiln_descriptor *d, const char *path)
{
        (void) c;
        return d->urls && (path == NULL || access (path, F_OK) < 0);
}

static int
publish_registry (kiln_compose *c, const char *output, const char *manifest_json,
                  size_t manifest_len, char digest[KILN_DIGEST_MAX], kiln_error **err)
{
        const kiln_manifest *m = c->manifest;
        cleanup_reference kiln_reference *dst = NULL;
        cleanup_free kiln_push_blob *blobs = kiln_calloc (m->n_layers + 1, sizeof (*blobs));
        char **paths = kiln_calloc (m->n_layers + 1, sizeof (char *));
        cleanup_free char *config = NULL;
        size_t config_len, n = 0;
        int r = -1;

        if (c->registry == NULL) {
                kiln_error_makec (err, KILN_E_INVALID, 0, "a registry output needs a client");
                goto out;
        }
        if (kiln_reference_parse (&dst, output, err) < 0)
                goto out;
        for (size_t i = 0; i < m->n_layers; i++) {
                const kiln_descriptor *d = &m->layers[i];
                kiln_push_blob *b = &blobs[n];

                kiln_strlcpy (b->digest, d->digest, KILN_DIGEST_MAX);
                b->size = d->size;
                if (i < c->n_base_layers && c->remote) {
                        if (d->urls)
                                continue;
                        b->from = c->remote->ref;
                } else if (c->from[i]) {
                        b->from = c->from[i];
                } else {
                        const char *dir = i < c->n_base_layers ? NULL : c->work;
                        paths[i] = dir ? kiln_layout_blob_path (dir, d->digest)
                                       : kiln_local_image_blob_path (c->local, d->digest);
                        if (i < c->n_base_layers && is_foreign (c, d, paths[i]))
                                continue;
                        b->path = paths[i];
                }
                n++;
        }
        if (kiln_layout_read_blob (&config, &config_len, c->work, m->config.digest,
                                   (size_t) m->config.size, err)
            < 0)
                goto out;
        kiln_strlcpy (blobs[n].digest, m->config.digest, KILN_DIGEST_MAX);
        blobs[n].size = (int64_t) config_len;
        blobs[n].data = config;
        n++;
        r = kiln_registry_push_image (c->registry, dst, blobs, n, manifest_json, manifest_len,
                                      KILN_MT_OCI_MANIFEST, digest, err);
out:
        for (size_t i = 0; i < m->n_layers; i++)
                free (paths[i]);
        free (paths);
        return r;
}

/* Puts the base's layers and the remote ones into the work layout, so it
 * holds every blob of the image: linked from a base on disk, downloaded
 * (verified) from a registry. */
static int
gather_base (kiln_compose *c, kiln_error **err)
{
        for (size_t i = 0; i < c->manifest->n_layers; i++) {
                const kiln_descriptor *d = &c->manifest->layers[i];
                cleanup_free char *dst = kiln_layout_blob_path (c->work, d->digest);
                cleanup_free char *src = NULL;

                if (access (dst, F_OK) == 0)
                        continue;
                if (c->from[i]) {
                        if (kiln_registry_fetch_blob (c->registry, c->from[i], d->digest, d->size,
                                                      dst, err)
                            < 0)
                                return kiln_error_wrap (err, "layer %s", d->digest);
                        continue;
                }
                if (i >= c->n_base_layers)
                        continue;
                if (c->remote) {
                        if (d->urls)
                                continue;
                        if (kiln_registry_fetch_blob (c->registry, c->remote->ref, d->digest,
                                                      d->size, dst, err)
                            < 0)
                                return kiln_error_wrap (err, "base layer %s", d->digest);
                        continue;
                }
                src = kiln_local_image_blob_path (c->local, d->digest);
                if (is_foreign (c, d, src))
                        continue;
                if (kiln_layout_put_blob_file (c->work, d->digest, src, false, err) < 0)
                        return kiln_error_wrap (err, "base layer %s", d->digest);
        }
        return 0;
}

int
kiln_compose_publish (kiln_compose *c, const char *output, char digest[KILN_DIGEST_MAX],
                      kiln_error **err)
{
        cleanup_free char *manifest_json = NULL;
        kiln_location loc = { 0 };
        size_t manifest_len;
        int r = -1;

        if (kiln_location_parse (&loc, output, err) < 0)
                return -1;
        if (loc.transport == KILN_TRANSPORT_SCRATCH) {
                kiln_error_makec (err, KILN_E_INVALID, 0,
                                  "output `%s`: scratch is a base, not an output", output);
                goto out;
        }
        if (finish (c, &manifest_json, &manifest_len, digest, err) < 0)
                goto out;
        c->published = true;
        if (loc.transport == KILN_TRANSPORT_REGISTRY) {
                r = publish_registry (c, output, manifest_json, manifest_len, digest, err);
                goto out;
        }
        if (gather_base (c, err) < 0 || kiln_layout_export (c->work, digest, &loc, err) < 0)
                goto out;
        r = 0;
out:
        if (r < 0)
                kiln_error_wrap (err, "output `%s`", output);
        kiln_location_clear (&loc);
        return r;
}
