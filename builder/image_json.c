/* kiln: JSON reading and writing for the image model (the jansson wrapper). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_json.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"

/* jansson recurses once per nesting level when it parses, dumps and frees;
 * refusing deep input on the raw bytes keeps all three shallow. */
static int
check_depth (const char *data, size_t len, kiln_error **err)
{
        bool in_string = false, escaped = false;
        size_t depth = 0;

        for (size_t i = 0; i < len; i++) {
                char c = data[i];
                if (in_string) {
                        if (escaped)
                                escaped = false;
                        else if (c == '\\')
                                escaped = true;
                        else if (c == '"')
                                in_string = false;
                        continue;
                }
                if (c == '"') {
                        in_string = true;
                } else if (c == '{' || c == '[') {
                        if (++depth > KILN_JSON_DEPTH_MAX)
                                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                         "JSON nested deeper than %d levels",
                                                         KILN_JSON_DEPTH_MAX);
                } else if ((c == '}' || c == ']') && depth > 0) {
                        depth--;
                }
        }
        return 0;
}

const char *
kiln_image_library_version (void)
{
        return "jansson " JANSSON_VERSION;
}

int
kiln_json_load (json_t **out, const char *data, size_t len, size_t max, kiln_error **err)
{
        json_error_t jerr;
        json_t *root;

        if (len > max)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "%zu bytes exceed the limit of %zu bytes", len, max);
        assert (data != NULL || len == 0);
        if (data == NULL)
                data = "";
        if (check_depth (data, len, err) < 0)
                return -1;
        root = json_loadb (data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "invalid JSON at line %d, column %d: %s", jerr.line,
                                         jerr.column, jerr.text);
        if (!json_is_object (root)) {
                json_decref (root);
                return kiln_error_makec (err, KILN_E_INVALID, 0, "expected a JSON object");
        }
        *out = root;
        return 0;
}

int
kiln_json_dump (char **out, size_t *len, const json_t *root, kiln_error **err)
{
        const size_t flags = JSON_COMPACT | JSON_SORT_KEYS;
        size_t n = json_dumpb (root, NULL, 0, flags);
        char *s;

        if (n == 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "cannot encode: a string is not valid UTF-8");
        s = kiln_calloc (n + 1, 1);
        if (json_dumpb (root, s, n, flags) != n) {
                free (s);
                return kiln_error_makec (err, KILN_E_FAILED, 0, "cannot encode JSON");
        }
        *out = s;
        if (len)
                *len = n;
        return 0;
}

void
kiln_json_path (char out[KILN_JSON_PATH_MAX], const char *parent, const char *key)
{
        if (key == NULL)
                snprintf (out, KILN_JSON_PATH_MAX, "%s", parent ? parent : "");
        else if (parent == NULL || *parent == '\0')
                snprintf (out, KILN_JSON_PATH_MAX, "%s", key);
        else
                snprintf (out, KILN_JSON_PATH_MAX, "%s.%s", parent, key);
}

void
kiln_json_path_index (char out[KILN_JSON_PATH_MAX], const char *parent, const char *key, size_t i)
{
        char suffix[32];
        size_t n;

        kiln_json_path (out, parent, key);
        snprintf (suffix, sizeof suffix, "[%zu]", i);
        n = strlen (out);
        kiln_strlcpy (out + n, suffix, KILN_JSON_PATH_MAX - n);
}

int
kiln_json_type_error (const char *path, const char *key, const char *what, kiln_error **err)
{
        char p[KILN_JSON_PATH_MAX];

        kiln_json_path (p, path, key);
        return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: expected %s", p, what);
}

int
kiln_json_missing (const char *path, const char *key, kiln_error **err)
{
        char p[KILN_JSON_PATH_MAX];

        kiln_json_path (p, path, key);
        return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: missing", p);
}

/* The member, or NULL when it is absent or null. */
static json_t *
get (json_t *obj, const char *key)
{
        json_t *v = json_object_get (obj, key);
        return json_is_null (v) ? NULL : v;
}

int
kiln_json_member (json_t **out, json_t *obj, const char *path, const char *key, json_type type,
                  bool required, kiln_error **err)
{
        json_t *v = get (obj, key);

        if (v == NULL)
                return required ? kiln_json_missing (path, key, err) : 0;
        if (json_typeof (v) != type)
                return kiln_json_type_error (path, key,
                                             type == JSON_OBJECT ? "an object" : "an array", err);
        *out = v;
        return 1;
}

int
kiln_json_get_string (char **out, json_t *obj, const char *path, const char *key, bool required,
                      kiln_error **err)
{
        json_t *v = get (obj, key);

        if (v == NULL)
                return required ? kiln_json_missing (path, key, err) : 0;
        if (!json_is_string (v))
                return kiln_json_type_error (path, key, "a string", err);
        free (*out);
        *out = kiln_strdup (json_string_value (v));
        return 1;
}

int
kiln_json_get_int (int64_t *out, json_t *obj, const char *path, const char *key, bool required,
                   kiln_error **err)
{
        json_t *v = get (obj, key);

        if (v == NULL)
                return required ? kiln_json_missing (path, key, err) : 0;
        if (!json_is_integer (v))
                return kiln_json_type_error (path, key, "an integer", err);
        *out = (int64_t) json_integer_value (v);
        return 1;
}

int
kiln_json_get_bool (bool *out, json_t *obj, const char *path, const char *key, kiln_error **err)
{
        json_t *v = get (obj, key);

        if (v == NULL)
                return 0;
        if (!json_is_boolean (v))
                return kiln_json_type_error (path, key, "a boolean", err);
        *out = json_is_true (v);
        return 1;
}

int
kiln_json_get_strv (char ***out, json_t *obj, const char *path, const char *key, kiln_error **err)
{
        cleanup_strv char **v = NULL;
        json_t *a = NULL, *item;
        size_t i;
        int r = kiln_json_member (&a, obj, path, key, JSON_ARRAY, false, err);

        if (r <= 0)
                return r;
        v = kiln_calloc (json_array_size (a) + 1, sizeof (char *));
        json_array_foreach (a, i, item)
        {
                if (!json_is_string (item)) {
                        char p[KILN_JSON_PATH_MAX];
                        kiln_json_path_index (p, path, key, i);
                        return kiln_json_type_error (p, NULL, "a string", err);
                }
                v[i] = kiln_strdup (json_string_value (item));
        }
        kiln_strv_free (*out);
        *out = steal_pointer (&v);
        return 1;
}

int
kiln_json_get_kvs (kiln_kvs *out, json_t *obj, const char *path, const char *key, kiln_error **err)
{
        cleanup_kvs kiln_kvs m = KILN_KVS_INIT;
        char p[KILN_JSON_PATH_MAX];
        json_t *o = NULL, *item;
        const char *k;
        int r = kiln_json_member (&o, obj, path, key, JSON_OBJECT, false, err);

        if (r <= 0)
                return r;
        kiln_json_path (p, path, key);
        json_object_foreach (o, k, item)
        {
                if (!json_is_string (item))
                        return kiln_json_type_error (p, k, "a string", err);
                kiln_kvs_set (&m, k, json_string_value (item));
        }
        kiln_kvs_clear (out);
        *out = m;
        m = (kiln_kvs) KILN_KVS_INIT;
        return 1;
}

static int
compare_strings (const void *a, const void *b)
{
        return strcmp (*(char *const *) a, *(char *const *) b);
}

int
kiln_json_get_set (char ***out, json_t *obj, const char *path, const char *key, kiln_error **err)
{
        cleanup_strv char **v = NULL;
        char p[KILN_JSON_PATH_MAX];
        json_t *o = NULL, *item;
        const char *k;
        size_t n = 0;
        int r = kiln_json_member (&o, obj, path, key, JSON_OBJECT, false, err);

        if (r <= 0)
                return r;
        kiln_json_path (p, path, key);
        v = kiln_calloc (json_object_size (o) + 1, sizeof (char *));
        json_object_foreach (o, k, item)
        {
                if (!json_is_object (item) && !json_is_null (item))
                        return kiln_json_type_error (p, k, "an object", err);
                v[n++] = kiln_strdup (k);
        }
        qsort (v, n, sizeof (char *), compare_strings);
        kiln_strv_free (*out);
        *out = steal_pointer (&v);
        return 1;
}

bool
kiln_image_digest_ok (const char *s)
{
        size_t want, n = 0;

        if (s == NULL)
                return false;
        if (strncmp (s, "sha256:", 7) == 0)
                want = 64;
        else if (strncmp (s, "sha512:", 7) == 0)
                want = 128;
        else
                return false;
        for (s += 7; *s; s++, n++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
                        return false;
        return n == want;
}

int
kiln_json_platform (kiln_platform **out, json_t *v, const char *path, kiln_error **err)
{
        kiln_platform *p = kiln_calloc (1, sizeof (*p));

        if (kiln_json_get_string (&p->architecture, v, path, "architecture", true, err) < 0
            || kiln_json_get_string (&p->os, v, path, "os", true, err) < 0
            || kiln_json_get_string (&p->os_version, v, path, "os.version", false, err) < 0
            || kiln_json_get_strv (&p->os_features, v, path, "os.features", err) < 0
            || kiln_json_get_string (&p->variant, v, path, "variant", false, err) < 0) {
                kiln_platform_free (p);
                return -1;
        }
        *out = p;
        return 0;
}

static int
descriptor_fields (kiln_descriptor *d, json_t *v, const char *path, kiln_error **err)
{
        cleanup_free char *digest = NULL;
        json_t *platform = NULL;
        char p[KILN_JSON_PATH_MAX];

        if (kiln_json_get_string (&d->media_type, v, path, "mediaType", true, err) < 0
            || kiln_json_get_string (&digest, v, path, "digest", true, err) < 0
            || kiln_json_get_int (&d->size, v, path, "size", true, err) < 0
            || kiln_json_get_string (&d->artifact_type, v, path, "artifactType", false, err) < 0
            || kiln_json_get_strv (&d->urls, v, path, "urls", err) < 0
            || kiln_json_get_kvs (&d->annotations, v, path, "annotations", err) < 0
            || kiln_json_get_string (&d->data, v, path, "data", false, err) < 0
            || kiln_json_member (&platform, v, path, "platform", JSON_OBJECT, false, err) < 0)
                return -1;
        kiln_json_path (p, path, "digest");
        if (!kiln_image_digest_ok (digest))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: `%s` is not a valid digest",
                                         p, digest);
        kiln_strlcpy (d->digest, digest, sizeof d->digest);
        kiln_json_path (p, path, "size");
        if (d->size < 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: %lld is negative", p,
                                         (long long) d->size);
        kiln_json_path (p, path, "platform");
        if (platform && kiln_json_platform (&d->platform, platform, p, err) < 0)
                return -1;
        return 0;
}

int
kiln_json_descriptor (kiln_descriptor *out, json_t *v, const char *path, kiln_error **err)
{
        kiln_descriptor d = { 0 };

        if (!json_is_object (v))
                return kiln_json_type_error (path, NULL, "an object", err);
        if (descriptor_fields (&d, v, path, err) < 0) {
                kiln_descriptor_clear (&d);
                return -1;
        }
        *out = d;
        return 0;
}

int
kiln_json_descriptors (kiln_descriptor **out, size_t *n, json_t *obj, const char *key,
                       kiln_error **err)
{
        json_t *a = NULL, *item;
        kiln_descriptor *v;
        size_t i;

        if (kiln_json_member (&a, obj, "", key, JSON_ARRAY, true, err) < 0)
                return -1;
        v = kiln_calloc (json_array_size (a), sizeof (*v));
        json_array_foreach (a, i, item)
        {
                char p[KILN_JSON_PATH_MAX];
                kiln_json_path_index (p, "", key, i);
                if (kiln_json_descriptor (&v[i], item, p, err) < 0) {
                        while (i-- > 0)
                                kiln_descriptor_clear (&v[i]);
                        free (v);
                        return -1;
                }
        }
        *out = v;
        *n = json_array_size (a);
        return 0;
}

int
kiln_json_optional_descriptor (kiln_descriptor **out, json_t *obj, const char *key,
                               kiln_error **err)
{
        kiln_descriptor *d;
        json_t *v = NULL;
        int r = kiln_json_member (&v, obj, "", key, JSON_OBJECT, false, err);

        if (r <= 0)
                return r;
        d = kiln_calloc (1, sizeof (*d));
        if (kiln_json_descriptor (d, v, key, err) < 0) {
                free (d);
                return -1;
        }
        *out = d;
        return 1;
}

json_t *
kiln_json_new_object (void)
{
        json_t *o = json_object ();
        if (o == NULL)
                abort ();
        return o;
}

json_t *
kiln_json_new_string (const char *s)
{
        json_t *v = json_stringn_nocheck (s, strlen (s));
        if (v == NULL)
                abort ();
        return v;
}

void
kiln_json_set (json_t *obj, const char *key, json_t *value)
{
        if (value == NULL || json_object_set_new_nocheck (obj, key, value) < 0)
                abort ();
}

void
kiln_json_set_string (json_t *obj, const char *key, const char *s)
{
        if (s)
                kiln_json_set (obj, key, kiln_json_new_string (s));
}

void
kiln_json_set_int (json_t *obj, const char *key, int64_t v)
{
        kiln_json_set (obj, key, json_integer ((json_int_t) v));
}

json_t *
kiln_json_strv_value (char *const *v)
{
        json_t *a = json_array ();

        if (a == NULL)
                abort ();
        for (; v && *v; v++)
                if (json_array_append_new (a, kiln_json_new_string (*v)) < 0)
                        abort ();
        return a;
}

json_t *
kiln_json_kvs_value (const kiln_kvs *m)
{
        json_t *o = kiln_json_new_object ();

        for (size_t i = 0; i < m->n; i++)
                kiln_json_set_string (o, m->items[i].key, m->items[i].value);
        return o;
}

json_t *
kiln_json_set_value (char *const *keys)
{
        json_t *o = kiln_json_new_object ();

        for (; keys && *keys; keys++)
                kiln_json_set (o, *keys, kiln_json_new_object ());
        return o;
}

int
kiln_json_platform_value (json_t **out, const kiln_platform *p, const char *path, kiln_error **err)
{
        json_t *o;

        if (p->architecture == NULL)
                return kiln_json_missing (path, "architecture", err);
        if (p->os == NULL)
                return kiln_json_missing (path, "os", err);
        o = kiln_json_new_object ();
        kiln_json_set_string (o, "architecture", p->architecture);
        kiln_json_set_string (o, "os", p->os);
        kiln_json_set_string (o, "os.version", p->os_version);
        if (p->os_features)
                kiln_json_set (o, "os.features", kiln_json_strv_value (p->os_features));
        kiln_json_set_string (o, "variant", p->variant);
        *out = o;
        return 0;
}

int
kiln_json_descriptor_value (json_t **out, const kiln_descriptor *d, const char *path,
                            kiln_error **err)
{
        cleanup_json json_t *o = NULL;
        char p[KILN_JSON_PATH_MAX];

        if (d->media_type == NULL)
                return kiln_json_missing (path, "mediaType", err);
        kiln_json_path (p, path, "digest");
        if (!kiln_image_digest_ok (d->digest))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: `%s` is not a valid digest",
                                         p, d->digest);
        kiln_json_path (p, path, "size");
        if (d->size < 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: %lld is negative", p,
                                         (long long) d->size);
        o = kiln_json_new_object ();
        kiln_json_set_string (o, "mediaType", d->media_type);
        kiln_json_set_string (o, "digest", d->digest);
        kiln_json_set_int (o, "size", d->size);
        kiln_json_set_string (o, "artifactType", d->artifact_type);
        if (d->urls)
                kiln_json_set (o, "urls", kiln_json_strv_value (d->urls));
        if (d->annotations.n)
                kiln_json_set (o, "annotations", kiln_json_kvs_value (&d->annotations));
        kiln_json_set_string (o, "data", d->data);
        if (d->platform) {
                json_t *pv = NULL;
                kiln_json_path (p, path, "platform");
                if (kiln_json_platform_value (&pv, d->platform, p, err) < 0)
                        return -1;
                kiln_json_set (o, "platform", pv);
        }
        *out = steal_pointer (&o);
        return 0;
}
