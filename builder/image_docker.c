/* kiln: small JSON documents other than the OCI ones: a docker-archive's
 * manifest.json and JSON string arrays given on the command line.  Part of
 * the JSON-model modules (jansson). */
#include <jansson.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/image.h"
#include "kiln/kv.h"
#include "kiln/layout.h"

static void
cleanup_jsonp (void *p)
{
        json_decref (*(json_t **) p);
}
#define cleanup_json __attribute__ ((cleanup (cleanup_jsonp)))

static json_t *
load (const char *data, size_t len, const char *what, kiln_error **err)
{
        json_error_t jerr;
        json_t *j;

        if (len > KILN_MANIFEST_MAX)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "%s: larger than %zu bytes",
                                         what, KILN_MANIFEST_MAX),
                       NULL;
        j = json_loadb (data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL)
                kiln_error_makec (err, KILN_E_INVALID, 0, "%s: invalid JSON at line %d: %s", what,
                                  jerr.line, jerr.text);
        return j;
}

/* A JSON array of strings as a strv; `what` names it in errors. */
static int
strv_from_json (char ***out, json_t *arr, const char *what, kiln_error **err)
{
        cleanup_strv char **v = kiln_strv_new ();
        size_t i;
        json_t *x;

        if (!json_is_array (arr))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: expected an array of strings",
                                         what);
        json_array_foreach (arr, i, x)
        {
                if (!json_is_string (x))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "%s[%zu]: expected a string", what, i);
                v = kiln_strv_append (v, json_string_value (x));
        }
        *out = steal_pointer (&v);
        return 0;
}

int
kiln_json_strv_parse (char ***out, const char *text, kiln_error **err)
{
        cleanup_json json_t *j = load (text, strlen (text), "JSON array", err);

        if (j == NULL)
                return -1;
        return strv_from_json (out, j, "JSON array", err);
}

void
kiln_docker_entries_free (kiln_docker_entry *e, size_t n)
{
        if (e == NULL)
                return;
        for (size_t i = 0; i < n; i++) {
                free (e[i].config);
                kiln_strv_free (e[i].repo_tags);
                kiln_strv_free (e[i].layers);
        }
        free (e);
}

static int
parse_entry (kiln_docker_entry *e, json_t *o, size_t i, kiln_error **err)
{
        json_t *config = json_object_get (o, "Config");
        json_t *tags = json_object_get (o, "RepoTags");
        json_t *layers = json_object_get (o, "Layers");
        cleanup_free char *what = NULL;

        if (!json_is_object (o))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "manifest.json[%zu]: expected an object", i);
        if (!json_is_string (config))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "manifest.json[%zu].Config: expected a string", i);
        e->config = kiln_strdup (json_string_value (config));
        what = kiln_strdup_printf ("manifest.json[%zu].Layers", i);
        if (strv_from_json (&e->layers, layers, what, err) < 0)
                return -1;
        if (tags && !json_is_null (tags)) {
                free (what);
                what = kiln_strdup_printf ("manifest.json[%zu].RepoTags", i);
                if (strv_from_json (&e->repo_tags, tags, what, err) < 0)
                        return -1;
        }
        return 0;
}

int
kiln_docker_manifest_parse (kiln_docker_entry **out, size_t *n, const char *data, size_t len,
                            kiln_error **err)
{
        cleanup_json json_t *j = load (data, len, "manifest.json", err);
        kiln_docker_entry *entries;
        size_t count;

        if (j == NULL)
                return -1;
        if (!json_is_array (j))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "manifest.json: expected an array");
        count = json_array_size (j);
        entries = kiln_calloc (count ? count : 1, sizeof (*entries));
        for (size_t i = 0; i < count; i++)
                if (parse_entry (&entries[i], json_array_get (j, i), i, err) < 0) {
                        kiln_docker_entries_free (entries, count);
                        return -1;
                }
        *out = entries;
        *n = count;
        return 0;
}

static json_t *
strv_to_json (char *const *v)
{
        json_t *a = json_array ();
        for (size_t i = 0; v && v[i]; i++)
                json_array_append_new (a, json_string (v[i]));
        return a;
}

int
kiln_docker_manifest_to_json (char **out, size_t *len, const kiln_docker_entry *e, kiln_error **err)
{
        cleanup_json json_t *arr = json_array ();
        json_t *o = json_object ();
        char *s;

        json_object_set_new (o, "Config", json_string (e->config));
        json_object_set_new (o, "RepoTags", strv_to_json (e->repo_tags));
        json_object_set_new (o, "Layers", strv_to_json (e->layers));
        json_array_append_new (arr, o);
        s = json_dumps (arr, JSON_SORT_KEYS | JSON_COMPACT);
        if (s == NULL)
                return kiln_error_makec (err, KILN_E_FAILED, 0, "manifest.json: cannot serialise");
        *len = strlen (s);
        *out = s;
        return 0;
}
