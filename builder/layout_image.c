/* kiln: opening an image from the local disk (OCI layout, OCI archive,
 * docker-archive, scratch) and exporting one to those forms. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "kiln/layout.h"
#include "kiln/log.h"

#define CONTAINERD_NAME_ANNOTATION "io.containerd.image.name"

void
kiln_local_image_free (kiln_local_image *img)
{
        if (img == NULL)
                return;
        free (img->manifest_raw);
        kiln_manifest_free (img->manifest);
        free (img->config_raw);
        kiln_config_free (img->config);
        free (img->layout_dir);
        free (img->name);
        if (img->tmp_dir) {
                kiln_error *err = NULL;
                if (kiln_rm_rf (img->tmp_dir, &err) < 0)
                        kiln_warn ("%s", kiln_error_msg (err));
                kiln_error_free (err);
                free (img->tmp_dir);
        }
        free (img);
}

char *
kiln_local_image_blob_path (const kiln_local_image *img, const char *digest)
{
        return img->layout_dir ? kiln_layout_blob_path (img->layout_dir, digest) : NULL;
}

/* Reads and parses the manifest `desc` points at, descending through an
 * index to the manifest for `platform`. */
static int
load_manifest (kiln_local_image *img, const kiln_descriptor *desc, const kiln_platform *platform,
               int depth, kiln_error **err)
{
        cleanup_free char *data = NULL;
        size_t len;

        if (kiln_layout_read_blob (&data, &len, img->layout_dir, desc->digest, KILN_MANIFEST_MAX,
                                   err)
            < 0)
                return -1;
        if (kiln_manifest_kind_of (data, len, desc->media_type) == KILN_KIND_INDEX) {
                cleanup_index kiln_index *x = NULL;
                const kiln_descriptor *chosen;
                if (depth > 2)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "index %s: indexes nested too deeply",
                                                 desc->digest);
                if (kiln_index_parse (&x, data, len, err) < 0
                    || kiln_index_select (&chosen, x, platform, err) < 0)
                        return kiln_error_wrap (err, "index %s", desc->digest);
                return load_manifest (img, chosen, platform, depth + 1, err);
        }
        if (kiln_manifest_parse (&img->manifest, data, len, err) < 0)
                return kiln_error_wrap (err, "manifest %s", desc->digest);
        kiln_strlcpy (img->manifest_digest, desc->digest, sizeof img->manifest_digest);
        img->manifest_raw = steal_pointer (&data);
        img->manifest_len = len;
        return 0;
}

static int
load_config (kiln_local_image *img, kiln_error **err)
{
        const char *digest = img->manifest->config.digest;

        if (kiln_layout_read_blob (&img->config_raw, &img->config_len, img->layout_dir, digest,
                                   KILN_CONFIG_MAX, err)
            < 0)
                return -1;
        if (kiln_config_parse (&img->config, img->config_raw, img->config_len, err) < 0)
                return kiln_error_wrap (err, "config %s", digest);
        return 0;
}

static int
open_layout (kiln_local_image *img, const char *tag, const kiln_platform *platform,
             kiln_error **err)
{
        kiln_descriptor desc = { 0 };
        int r;

        if (kiln_layout_resolve (&desc, img->layout_dir, tag, err) < 0)
                return -1;
        r = load_manifest (img, &desc, platform, 0, err);
        kiln_descriptor_clear (&desc);
        if (r < 0)
                return -1;
        return load_config (img, err);
}

/* Serialises a manifest built here and records its digest. */
static int
set_manifest_raw (kiln_local_image *img, kiln_error **err)
{
        if (kiln_manifest_to_json (&img->manifest_raw, &img->manifest_len, img->manifest, err) < 0)
                return -1;
        kiln_digest_bytes (img->manifest_digest, img->manifest_raw, img->manifest_len);
        return 0;
}

static int
open_scratch (kiln_local_image *img, const kiln_platform *platform, kiln_error **err)
{
        kiln_platform *host = platform ? NULL : kiln_platform_host ();
        const kiln_platform *p = platform ? platform : host;
        kiln_manifest *m;

        img->config = kiln_config_new (p->os, p->architecture);
        if (p->variant)
                img->config->variant = kiln_strdup (p->variant);
        kiln_platform_free (host);
        if (kiln_config_to_json (&img->config_raw, &img->config_len, img->config, err) < 0)
                return -1;
        m = kiln_calloc (1, sizeof (*m));
        m->schema_version = 2;
        m->media_type = kiln_strdup (KILN_MT_OCI_MANIFEST);
        m->config.media_type = kiln_strdup (KILN_MT_OCI_CONFIG);
        kiln_digest_bytes (m->config.digest, img->config_raw, img->config_len);
        m->config.size = (int64_t) img->config_len;
        img->manifest = m;
        return set_manifest_raw (img, err);
}

static const char *
docker_layer_type (const char *path, kiln_error **err)
{
        kiln_compression c;

        if (kiln_layer_detect (&c, path, err) < 0)
                return NULL;
        if (c == KILN_COMPRESS_GZIP)
                return KILN_MT_DOCKER_LAYER_GZIP;
        if (c == KILN_COMPRESS_ZSTD)
                return KILN_MT_OCI_LAYER_ZSTD;
        return KILN_MT_DOCKER_LAYER_TAR;
}

/* A path from manifest.json must stay inside the unpacked archive. */
static int
archive_member (char **out, const char *root, const char *member, kiln_error **err)
{
        if (member[0] == '/' || strstr (member, "..") != NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "manifest.json names `%s` outside the archive", member);
        *out = kiln_strdup_printf ("%s/%s", root, member);
        return 0;
}

static const kiln_docker_entry *
choose_docker_entry (const kiln_docker_entry *e, size_t n, const char *tag)
{
        if (tag == NULL)
                return n ? &e[0] : NULL;
        for (size_t i = 0; i < n; i++)
                for (char **t = e[i].repo_tags; t && *t; t++)
                        if (strcmp (*t, tag) == 0)
                                return &e[i];
        return NULL;
}

/* Legacy docker-archives (no OCI layout inside): the blobs are put into an
 * OCI layout in the same scratch directory and a Docker v2 schema 2
 * manifest is made for them. */
static int
open_docker_manifest (kiln_local_image *img, const char *tag, kiln_error **err)
{
        cleanup_free char *mpath = kiln_strdup_printf ("%s/manifest.json", img->tmp_dir);
        cleanup_free char *data = NULL;
        kiln_docker_entry *entries = NULL;
        const kiln_docker_entry *e;
        size_t len, n = 0;
        int r = -1;

        if (kiln_read_file (&data, &len, mpath, KILN_MANIFEST_MAX, err) < 0)
                return kiln_error_wrap (err, "not a docker-archive");
        if (kiln_docker_manifest_parse (&entries, &n, data, len, err) < 0)
                return -1;
        e = choose_docker_entry (entries, n, tag);
        if (e == NULL) {
                kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "docker-archive has no image %s",
                                  tag ? tag : "(manifest.json is empty)");
                goto out;
        }
        if (kiln_layout_init (img->layout_dir, err) < 0)
                goto out;
        kiln_manifest *m = kiln_calloc (1, sizeof (*m));
        img->manifest = m;
        m->schema_version = 2;
        m->media_type = kiln_strdup (KILN_MT_DOCKER_MANIFEST);
        m->n_layers = kiln_strv_len (e->layers);
        m->layers = kiln_calloc (m->n_layers, sizeof (kiln_descriptor));
        for (size_t i = 0; i <= m->n_layers; i++) {
                kiln_descriptor *d = i < m->n_layers ? &m->layers[i] : &m->config;
                cleanup_free char *path = NULL;
                uint64_t size;
                if (archive_member (&path, img->tmp_dir, i < m->n_layers ? e->layers[i] : e->config,
                                    err)
                        < 0
                    || kiln_digest_file (d->digest, KILN_DIGEST_SHA256, path, &size, err) < 0
                    || kiln_layout_put_blob_file (img->layout_dir, d->digest, path, false, err) < 0)
                        goto out;
                d->size = (int64_t) size;
                d->media_type = kiln_strdup (i < m->n_layers ? docker_layer_type (path, err)
                                                             : KILN_MT_DOCKER_CONFIG);
                if (d->media_type == NULL)
                        goto out;
        }
        if (set_manifest_raw (img, err) < 0 || load_config (img, err) < 0)
                goto out;
        if (kiln_strv_len (img->config->diff_ids) != m->n_layers) {
                kiln_error_makec (err, KILN_E_INVALID, 0,
                                  "docker-archive: %zu layers but %zu diff_ids in the config",
                                  m->n_layers, kiln_strv_len (img->config->diff_ids));
                goto out;
        }
        r = 0;
out:
        kiln_docker_entries_free (entries, n);
        return r;
}

static int
unpack_archive (kiln_local_image *img, const char *file, kiln_error **err)
{
        kiln_extract_opts opts;

        kiln_extract_opts_init (&opts);
        opts.no_whiteouts = true;
        if (kiln_mkdtemp (&img->tmp_dir, "image", err) < 0)
                return -1;
        if (kiln_layer_extract (file, img->tmp_dir, &opts, NULL, err) < 0)
                return kiln_error_wrap (err, "unpack `%s`", file);
        return 0;
}

static int
open_docker_archive (kiln_local_image *img, const kiln_location *loc, const kiln_platform *platform,
                     kiln_error **err)
{
        cleanup_free char *index = NULL;

        if (unpack_archive (img, loc->path, err) < 0)
                return -1;
        index = kiln_strdup_printf ("%s/index.json", img->tmp_dir);
        if (access (index, F_OK) == 0) {
                /* Current `docker save` and kiln write an OCI layout too;
                 * manifest.json still decides which image a NAME:TAG is. */
                kiln_error *ignored = NULL;
                img->layout_dir = kiln_strdup (img->tmp_dir);
                if (open_layout (img, loc->tag, platform, &ignored) == 0)
                        return 0;
                kiln_error_free (ignored);
                kiln_manifest_free (img->manifest);
                kiln_config_free (img->config);
                free (img->manifest_raw);
                free (img->config_raw);
                img->manifest = NULL;
                img->config = NULL;
                img->manifest_raw = img->config_raw = NULL;
        } else {
                img->layout_dir = kiln_strdup (img->tmp_dir);
        }
        return open_docker_manifest (img, loc->tag, err);
}

int
kiln_local_image_open (kiln_local_image **out, const kiln_location *loc,
                       const kiln_platform *platform, kiln_error **err)
{
        kiln_local_image *img = kiln_calloc (1, sizeof (*img));
        int r = -1;

        img->name = kiln_strdup (loc->path);
        switch (loc->transport) {
        case KILN_TRANSPORT_SCRATCH:
                free (img->name);
                img->name = NULL;
                r = open_scratch (img, platform, err);
                break;
        case KILN_TRANSPORT_OCI:
                img->layout_dir = kiln_strdup (loc->path);
                r = open_layout (img, loc->tag, platform, err);
                break;
        case KILN_TRANSPORT_OCI_ARCHIVE:
                r = unpack_archive (img, loc->path, err);
                if (r == 0) {
                        img->layout_dir = kiln_strdup (img->tmp_dir);
                        r = open_layout (img, loc->tag, platform, err);
                }
                break;
        case KILN_TRANSPORT_DOCKER_ARCHIVE:
                r = open_docker_archive (img, loc, platform, err);
                break;
        case KILN_TRANSPORT_REGISTRY:
                r = kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                      "`%s` is a registry reference, not a local image", loc->path);
                break;
        }
        if (r < 0) {
                kiln_local_image_free (img);
                return -1;
        }
        *out = img;
        return 0;
}

/* ---- export ---- */

/* Every blob of the image: config, layers, then the manifest itself. */
static int
link_image_blobs (const char *src, const char *dst, const kiln_manifest *m, const char *mdigest,
                  kiln_error **err)
{
        for (size_t i = 0; i <= m->n_layers + 1; i++) {
                const char *digest = i < m->n_layers    ? m->layers[i].digest
                                     : i == m->n_layers ? m->config.digest
                                                        : mdigest;
                cleanup_free char *from = NULL;
                if (i < m->n_layers && m->layers[i].urls && !kiln_layout_has_blob (src, digest))
                        continue; /* a foreign layer: not distributed */
                from = kiln_layout_blob_path (src, digest);
                if (from == NULL || kiln_layout_put_blob_file (dst, digest, from, false, err) < 0)
                        return kiln_error_wrap (err, "copy blob %s", digest);
        }
        return 0;
}

/* Reads the manifest being exported and builds its index descriptor. */
static int
manifest_descriptor (kiln_descriptor *desc, kiln_manifest **m, const char *layout_dir,
                     const char *digest, kiln_error **err)
{
        cleanup_free char *data = NULL;
        size_t len;

        if (kiln_layout_read_blob (&data, &len, layout_dir, digest, KILN_MANIFEST_MAX, err) < 0
            || kiln_manifest_parse (m, data, len, err) < 0)
                return -1;
        desc->media_type = kiln_strdup ((*m)->media_type ? (*m)->media_type : KILN_MT_OCI_MANIFEST);
        kiln_strlcpy (desc->digest, digest, sizeof desc->digest);
        desc->size = (int64_t) len;
        return 0;
}

/* docker load wants NAME:TAG; a bare tag gets a name, as docker save does
 * for what it cannot name. */
static char *
repo_tag (const char *tag)
{
        if (tag == NULL)
                return NULL;
        if (strchr (tag, ':') || strchr (tag, '/'))
                return kiln_strdup (tag);
        return kiln_strdup_printf ("kiln.local/image:%s", tag);
}

static int
write_docker_manifest (const char *dir, const kiln_manifest *m, const char *tag, kiln_error **err)
{
        kiln_docker_entry e = { 0 };
        cleanup_free char *json = NULL;
        cleanup_free char *path = kiln_strdup_printf ("%s/manifest.json", dir);
        cleanup_free char *name = repo_tag (tag);
        size_t len;
        int r;

        e.config = kiln_strdup_printf ("blobs/sha256/%s", kiln_digest_hex (m->config.digest));
        e.layers = kiln_strv_new ();
        for (size_t i = 0; i < m->n_layers; i++) {
                cleanup_free char *p
                    = kiln_strdup_printf ("blobs/sha256/%s", kiln_digest_hex (m->layers[i].digest));
                e.layers = kiln_strv_append (e.layers, p);
        }
        e.repo_tags = kiln_strv_new ();
        if (name)
                e.repo_tags = kiln_strv_append (e.repo_tags, name);
        r = kiln_docker_manifest_to_json (&json, &len, &e, err);
        free (e.config);
        kiln_strv_free (e.layers);
        kiln_strv_free (e.repo_tags);
        if (r < 0)
                return -1;
        return kiln_write_file (path, json, len, 0644, err);
}

/* Writes the staged layout `dir` as one uncompressed tar at `file`,
 * replacing it atomically. */
static int
write_archive (const char *dir, const char *file, kiln_error **err)
{
        cleanup_free char *tmp = kiln_strdup_printf ("%s.tmp-%d", file, (int) getpid ());
        kiln_layer_opts opts;
        kiln_layer_info info;

        kiln_layer_opts_init (&opts);
        opts.compression = KILN_COMPRESS_NONE;
        if (kiln_layer_write_dir (&info, dir, "", tmp, &opts, err) < 0) {
                unlink (tmp);
                return kiln_error_wrap (err, "write `%s`", file);
        }
        if (rename (tmp, file) < 0) {
                int e = errno;
                unlink (tmp);
                return kiln_error_make (err, e, "write `%s`", file);
        }
        return 0;
}

int
kiln_layout_export (const char *layout_dir, const char *manifest_digest, const kiln_location *dst,
                    kiln_error **err)
{
        cleanup_manifest kiln_manifest *m = NULL;
        cleanup_free char *stage = NULL;
        kiln_descriptor desc = { 0 };
        const char *target;
        int r = -1;

        if (manifest_descriptor (&desc, &m, layout_dir, manifest_digest, err) < 0)
                goto out;
        if (dst->transport == KILN_TRANSPORT_OCI) {
                target = dst->path;
        } else if (dst->transport == KILN_TRANSPORT_OCI_ARCHIVE
                   || dst->transport == KILN_TRANSPORT_DOCKER_ARCHIVE) {
                if (kiln_mkdtemp (&stage, "export", err) < 0)
                        goto out;
                target = stage;
        } else {
                kiln_error_makec (err, KILN_E_UNSUPPORTED, 0, "cannot write an image to `%s` here",
                                  dst->path ? dst->path : "scratch");
                goto out;
        }
        if (kiln_layout_init (target, err) < 0)
                goto out;
        if (strcmp (target, layout_dir) != 0
            && link_image_blobs (layout_dir, target, m, manifest_digest, err) < 0)
                goto out;
        if (dst->transport == KILN_TRANSPORT_DOCKER_ARCHIVE) {
                cleanup_free char *name = repo_tag (dst->tag);
                if (name)
                        kiln_kvs_set (&desc.annotations, CONTAINERD_NAME_ANNOTATION, name);
                if (write_docker_manifest (target, m, dst->tag, err) < 0)
                        goto out;
        }
        if (kiln_layout_add_manifest (target, &desc, dst->tag, err) < 0)
                goto out;
        if (stage && write_archive (stage, dst->path, err) < 0)
                goto out;
        r = 0;
out:
        kiln_descriptor_clear (&desc);
        if (stage) {
                kiln_error *e2 = NULL;
                kiln_rm_rf (stage, &e2);
                kiln_error_free (e2);
        }
        return r;
}
