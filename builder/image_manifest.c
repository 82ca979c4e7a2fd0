/* kiln: image manifests and indexes (OCI and Docker v2 schema 2). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "image_json.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"

static int
schema_version (int *out, json_t *root, kiln_error **err)
{
        int64_t v = 0;

        if (kiln_json_get_int (&v, root, "", "schemaVersion", true, err) < 0)
                return -1;
        if (v != 2)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "schemaVersion: expected 2, got %lld%s", (long long) v,
                                         v == 1 ? " (Docker schema 1 is not supported)" : "");
        *out = 2;
        return 0;
}

/* The document's own mediaType, which must be of its kind when present: a
 * manifest sent as an index (or the reverse) is refused, not misread. */
static int
own_media_type (char **out, json_t *root, bool (*ok) (const char *), const char *kind,
                kiln_error **err)
{
        if (kiln_json_get_string (out, root, "", "mediaType", false, err) < 0)
                return -1;
        if (*out && !ok (*out))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "mediaType: `%s` is not %s type",
                                         *out, kind);
        return 0;
}

static int
manifest_fields (kiln_manifest *m, json_t *root, kiln_error **err)
{
        json_t *config = NULL;

        if (schema_version (&m->schema_version, root, err) < 0
            || own_media_type (&m->media_type, root, kiln_media_type_is_manifest,
                               "an image manifest", err)
                   < 0
            || kiln_json_get_string (&m->artifact_type, root, "", "artifactType", false, err) < 0
            || kiln_json_member (&config, root, "", "config", JSON_OBJECT, true, err) < 0
            || kiln_json_descriptor (&m->config, config, "config", err) < 0
            || kiln_json_descriptors (&m->layers, &m->n_layers, root, "layers", err) < 0
            || kiln_json_optional_descriptor (&m->subject, root, "subject", err) < 0
            || kiln_json_get_kvs (&m->annotations, root, "", "annotations", err) < 0)
                return -1;
        return 0;
}

int
kiln_manifest_parse (kiln_manifest **out, const char *data, size_t len, kiln_error **err)
{
        cleanup_json json_t *root = NULL;
        cleanup_manifest kiln_manifest *m = NULL;

        if (kiln_json_load (&root, data, len, KILN_MANIFEST_MAX, err) < 0)
                return kiln_error_wrap (err, "manifest");
        m = kiln_calloc (1, sizeof (*m));
        if (manifest_fields (m, root, err) < 0)
                return kiln_error_wrap (err, "manifest");
        *out = steal_pointer (&m);
        return 0;
}

/* Adds the members an index and a manifest share, after their own. */
static int
set_common (json_t *o, int version, const char *media_type, const char *artifact_type,
            const kiln_descriptor *subject, const kiln_kvs *annotations, kiln_error **err)
{
        kiln_json_set_int (o, "schemaVersion", version);
        kiln_json_set_string (o, "mediaType", media_type);
        kiln_json_set_string (o, "artifactType", artifact_type);
        if (subject) {
                json_t *v = NULL;
                if (kiln_json_descriptor_value (&v, subject, "subject", err) < 0)
                        return -1;
                kiln_json_set (o, "subject", v);
        }
        /* "If there are no annotations then this property MUST either be
         * absent or be an empty map." */
        if (annotations->n)
                kiln_json_set (o, "annotations", kiln_json_kvs_value (annotations));
        return 0;
}

static int
descriptors_value (json_t **out, const kiln_descriptor *v, size_t n, const char *key,
                   kiln_error **err)
{
        cleanup_json json_t *a = json_array ();

        if (a == NULL)
                abort ();
        for (size_t i = 0; i < n; i++) {
                char p[KILN_JSON_PATH_MAX];
                json_t *d = NULL;
                kiln_json_path_index (p, "", key, i);
                if (kiln_json_descriptor_value (&d, &v[i], p, err) < 0)
                        return -1;
                if (json_array_append_new (a, d) < 0)
                        abort ();
        }
        *out = steal_pointer (&a);
        return 0;
}

int
kiln_manifest_to_json (char **out, size_t *len, const kiln_manifest *m, kiln_error **err)
{
        cleanup_json json_t *o = kiln_json_new_object ();
        json_t *v = NULL;

        if (m->media_type && !kiln_media_type_is_manifest (m->media_type))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "manifest: mediaType: `%s` is not an image manifest type",
                                         m->media_type);
        if (set_common (o, 2, m->media_type, m->artifact_type, m->subject, &m->annotations, err)
            < 0)
                return kiln_error_wrap (err, "manifest");
        if (kiln_json_descriptor_value (&v, &m->config, "config", err) < 0)
                return kiln_error_wrap (err, "manifest");
        kiln_json_set (o, "config", v);
        if (descriptors_value (&v, m->layers, m->n_layers, "layers", err) < 0)
                return kiln_error_wrap (err, "manifest");
        kiln_json_set (o, "layers", v);
        if (kiln_json_dump (out, len, o, err) < 0)
                return kiln_error_wrap (err, "manifest");
        return 0;
}

static void
descriptors_free (kiln_descriptor *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                kiln_descriptor_clear (&v[i]);
        free (v);
}

static void
subject_free (kiln_descriptor *d)
{
        kiln_descriptor_clear (d);
        free (d);
}

void
kiln_manifest_free (kiln_manifest *m)
{
        if (m == NULL)
                return;
        free (m->media_type);
        free (m->artifact_type);
        kiln_descriptor_clear (&m->config);
        descriptors_free (m->layers, m->n_layers);
        subject_free (m->subject);
        kiln_kvs_clear (&m->annotations);
        free (m);
}

static int
index_fields (kiln_index *x, json_t *root, kiln_error **err)
{
        if (schema_version (&x->schema_version, root, err) < 0
            || own_media_type (&x->media_type, root, kiln_media_type_is_index, "an image index",
                               err)
                   < 0
            || kiln_json_get_string (&x->artifact_type, root, "", "artifactType", false, err) < 0
            || kiln_json_descriptors (&x->manifests, &x->n_manifests, root, "manifests", err) < 0
            || kiln_json_optional_descriptor (&x->subject, root, "subject", err) < 0
            || kiln_json_get_kvs (&x->annotations, root, "", "annotations", err) < 0)
                return -1;
        return 0;
}

int
kiln_index_parse (kiln_index **out, const char *data, size_t len, kiln_error **err)
{
        cleanup_json json_t *root = NULL;
        cleanup_index kiln_index *x = NULL;

        if (kiln_json_load (&root, data, len, KILN_MANIFEST_MAX, err) < 0)
                return kiln_error_wrap (err, "index");
        x = kiln_calloc (1, sizeof (*x));
        if (index_fields (x, root, err) < 0)
                return kiln_error_wrap (err, "index");
        *out = steal_pointer (&x);
        return 0;
}

int
kiln_index_to_json (char **out, size_t *len, const kiln_index *x, kiln_error **err)
{
        cleanup_json json_t *o = kiln_json_new_object ();
        json_t *v = NULL;

        if (x->media_type && !kiln_media_type_is_index (x->media_type))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "index: mediaType: `%s` is not an image index type",
                                         x->media_type);
        if (set_common (o, 2, x->media_type, x->artifact_type, x->subject, &x->annotations, err)
            < 0)
                return kiln_error_wrap (err, "index");
        if (descriptors_value (&v, x->manifests, x->n_manifests, "manifests", err) < 0)
                return kiln_error_wrap (err, "index");
        kiln_json_set (o, "manifests", v);
        if (kiln_json_dump (out, len, o, err) < 0)
                return kiln_error_wrap (err, "index");
        return 0;
}

void
kiln_index_free (kiln_index *x)
{
        if (x == NULL)
                return;
        free (x->media_type);
        free (x->artifact_type);
        descriptors_free (x->manifests, x->n_manifests);
        subject_free (x->subject);
        kiln_kvs_clear (&x->annotations);
        free (x);
}

static kiln_manifest_kind
kind_of_media_type (const char *media_type)
{
        if (kiln_media_type_is_manifest (media_type))
                return KILN_KIND_MANIFEST;
        if (kiln_media_type_is_index (media_type))
                return KILN_KIND_INDEX;
        return KILN_KIND_UNKNOWN;
}

kiln_manifest_kind
kiln_manifest_kind_of (const char *data, size_t len, const char *content_type)
{
        cleanup_json json_t *root = NULL;
        cleanup_error kiln_error *err = NULL;
        kiln_manifest_kind k;
        json_t *mt;

        /* A body that is not JSON still goes to the parser its Content-Type
         * names, which then reports what is wrong with it. */
        if (kiln_json_load (&root, data, len, KILN_MANIFEST_MAX, &err) < 0)
                return kind_of_media_type (content_type);
        mt = json_object_get (root, "mediaType");
        k = kind_of_media_type (json_is_string (mt) ? json_string_value (mt) : NULL);
        if (k == KILN_KIND_UNKNOWN)
                k = kind_of_media_type (content_type);
        if (k != KILN_KIND_UNKNOWN)
                return k;
        if (json_is_array (json_object_get (root, "manifests")))
                return KILN_KIND_INDEX;
        if (json_is_array (json_object_get (root, "layers"))
            || json_is_object (json_object_get (root, "config")))
                return KILN_KIND_MANIFEST;
        return KILN_KIND_UNKNOWN;
}

/* Lists at most this many platforms in a not-found message. */
#define SELECT_LIST_MAX 16

static void
append_platform (kiln_buf *b, const kiln_platform *p)
{
        kiln_buf_printf (b, NULL, "%s%s/%s%s%s", b->len ? ", " : "", p->os, p->architecture,
                         p->variant ? "/" : "", p->variant ? p->variant : "");
}

int
kiln_index_select (const kiln_descriptor **out, const kiln_index *x, const kiln_platform *want,
                   kiln_error **err)
{
        cleanup_buf kiln_buf list = KILN_BUF_INIT;
        size_t listed = 0;

        assert (x != NULL && want != NULL);
        for (size_t i = 0; i < x->n_manifests; i++) {
                if (kiln_platform_match (want, x->manifests[i].platform)) {
                        *out = &x->manifests[i];
                        return 0;
                }
        }
        for (size_t i = 0; i < x->n_manifests; i++) {
                const kiln_platform *p = x->manifests[i].platform;
                if (p == NULL)
                        continue;
                if (listed++ == SELECT_LIST_MAX) {
                        kiln_buf_puts (&list, ", ...", NULL);
                        break;
                }
                append_platform (&list, p);
        }
        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                 "no manifest for %s/%s%s%s in the index (available: %s)", want->os,
                                 want->architecture, want->variant ? "/" : "",
                                 want->variant ? want->variant : "", list.len ? list.data : "none");
}
