/* kiln: strategy YAML (libyaml) to JSON, and loading strategies/. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <yaml.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/serve.h"

#define MAX_DEPTH 64
#define MAX_YAML_FILE ((size_t) 1 << 20)

typedef struct reader {
        yaml_parser_t p;
        yaml_event_t ev;
        bool have_event;
} reader;

static int
next_event (reader *r, kiln_error **err)
{
        if (r->have_event)
                yaml_event_delete (&r->ev);
        r->have_event = false;
        if (!yaml_parser_parse (&r->p, &r->ev))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "YAML: %s at line %zu column %zu",
                                         r->p.problem ? r->p.problem : "syntax error",
                                         r->p.problem_mark.line + 1, r->p.problem_mark.column + 1);
        r->have_event = true;
        return 0;
}

/* Plain scalars carry types as Kubernetes' YAML reader sees them; quoted
 * and block scalars are always strings. */
static json_t *
scalar_value (const yaml_event_t *ev)
{
        const char *v = (const char *) ev->data.scalar.value;
        size_t n = ev->data.scalar.length;
        int64_t i;

        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return json_stringn (v, n);
        if (strcmp (v, "true") == 0 || strcmp (v, "True") == 0)
                return json_true ();
        if (strcmp (v, "false") == 0 || strcmp (v, "False") == 0)
                return json_false ();
        if (n == 0 || strcmp (v, "null") == 0 || strcmp (v, "~") == 0)
                return json_null ();
        if (kiln_parse_int64 (v, INT64_MIN, INT64_MAX, &i) == 0)
                return json_integer ((json_int_t) i);
        return json_stringn (v, n);
}

static int parse_node (json_t **out, reader *r, int depth, kiln_error **err);

static int
parse_mapping (json_t **out, reader *r, int depth, kiln_error **err)
{
        json_t *obj = json_object ();

        for (;;) {
                json_t *value = NULL;
                cleanup_free char *key = NULL;
                if (next_event (r, err) < 0)
                        goto fail;
                if (r->ev.type == YAML_MAPPING_END_EVENT)
                        break;
                if (r->ev.type != YAML_SCALAR_EVENT) {
                        kiln_error_makec (err, KILN_E_INVALID, 0,
                                          "YAML: line %zu: mapping keys must be scalars",
                                          r->ev.start_mark.line + 1);
                        goto fail;
                }
                key = kiln_strdup ((const char *) r->ev.data.scalar.value);
                if (next_event (r, err) < 0 || parse_node (&value, r, depth + 1, err) < 0)
                        goto fail;
                json_object_set_new (obj, key, value);
        }
        *out = obj;
        return 0;
fail:
        json_decref (obj);
        return -1;
}

static int
parse_sequence (json_t **out, reader *r, int depth, kiln_error **err)
{
        json_t *arr = json_array ();

        for (;;) {
                json_t *value = NULL;
                if (next_event (r, err) < 0)
                        goto fail;
                if (r->ev.type == YAML_SEQUENCE_END_EVENT)
                        break;
                if (parse_node (&value, r, depth + 1, err) < 0)
                        goto fail;
                json_array_append_new (arr, value);
        }
        *out = arr;
        return 0;
fail:
        json_decref (arr);
        return -1;
}

/* Parses the node whose first event is the current one. */
static int
parse_node (json_t **out, reader *r, int depth, kiln_error **err)
{
        if (depth > MAX_DEPTH)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "YAML: nested deeper than %d",
                                         MAX_DEPTH);
        switch (r->ev.type) {
        case YAML_SCALAR_EVENT:
                *out = scalar_value (&r->ev);
                if (*out == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "YAML: line %zu: a string is not valid UTF-8",
                                                 r->ev.start_mark.line + 1);
                return 0;
        case YAML_MAPPING_START_EVENT:
                return parse_mapping (out, r, depth, err);
        case YAML_SEQUENCE_START_EVENT:
                return parse_sequence (out, r, depth, err);
        case YAML_ALIAS_EVENT:
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "YAML: line %zu: aliases are not supported",
                                         r->ev.start_mark.line + 1);
        default:
                return kiln_error_makec (err, KILN_E_INVALID, 0, "YAML: line %zu: unexpected event",
                                         r->ev.start_mark.line + 1);
        }
}

static int
parse_stream (json_t *docs, reader *r, kiln_error **err)
{
        for (;;) {
                json_t *doc = NULL;
                if (next_event (r, err) < 0)
                        return -1;
                switch (r->ev.type) {
                case YAML_STREAM_END_EVENT:
                        return 0;
                case YAML_DOCUMENT_START_EVENT:
                        if (next_event (r, err) < 0)
                                return -1;
                        if (r->ev.type == YAML_DOCUMENT_END_EVENT)
                                continue; /* an empty document */
                        if (parse_node (&doc, r, 0, err) < 0)
                                return -1;
                        json_array_append_new (docs, doc);
                        break;
                default:
                        break;
                }
        }
}

int
kiln_yaml_parse (json_t **out, const char *data, size_t len, kiln_error **err)
{
        reader r = { 0 };
        json_t *docs = json_array ();
        int rc;

        if (!yaml_parser_initialize (&r.p))
                abort ();
        yaml_parser_set_input_string (&r.p, (const unsigned char *) data, len);
        rc = parse_stream (docs, &r, err);
        if (r.have_event)
                yaml_event_delete (&r.ev);
        yaml_parser_delete (&r.p);
        if (rc < 0) {
                json_decref (docs);
                return -1;
        }
        *out = docs;
        return 0;
}

/* ---- strategies/ ---- */

static int
store_strategy (kiln_store *s, json_t *doc, const char *file, kiln_error **err)
{
        cleanup_free char *name = kiln_strdup (
            json_string_value (json_object_get (json_object_get (doc, "metadata"), "name")));
        json_t *old = NULL;
        int r;

        if (name == NULL || !kiln_name_is_valid (name))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s`: metadata.name is missing or invalid", file);
        json_object_del (doc, "status");
        json_object_set_new (doc, "status", json_object ());
        if (kiln_store_get (&old, s, "ClusterBuildStrategy", "", name, NULL) == 0) {
                bool same
                    = json_equal (json_object_get (old, "spec"), json_object_get (doc, "spec"));
                json_decref (old);
                if (same)
                        return 0;
                r = kiln_store_update (NULL, s, "ClusterBuildStrategy", "", name, doc, 0, err);
        } else {
                r = kiln_store_create (NULL, s, "ClusterBuildStrategy", "", doc, err);
        }
        if (r == 0)
                kiln_info ("loaded ClusterBuildStrategy %s from %s", name, file);
        return r;
}

static int
load_file (kiln_store *s, const char *path, kiln_error **err)
{
        cleanup_free char *data = NULL;
        json_t *docs = NULL;
        size_t len, i;
        json_t *doc;
        int r = 0;

        if (kiln_read_file (&data, &len, path, MAX_YAML_FILE, err) < 0
            || kiln_yaml_parse (&docs, data, len, err) < 0)
                return kiln_error_wrap (err, "strategy file `%s`", path);
        json_array_foreach (docs, i, doc)
        {
                const char *kind = json_string_value (json_object_get (doc, "kind"));
                if (kind == NULL || strcmp (kind, "ClusterBuildStrategy") != 0)
                        continue;
                if ((r = store_strategy (s, doc, path, err)) < 0)
                        break;
        }
        json_decref (docs);
        return r;
}

static int
compare_names (const struct dirent **a, const struct dirent **b)
{
        return strcmp ((*a)->d_name, (*b)->d_name);
}

int
kiln_strategies_load (kiln_store *s, const char *dir, kiln_error **err)
{
        struct dirent **list = NULL;
        int n = scandir (dir, &list, NULL, compare_names);
        int r = 0;

        if (n < 0)
                return kiln_error_make (err, errno, "strategies directory `%s`", dir);
        for (int i = 0; i < n; i++) {
                const char *name = list[i]->d_name;
                if (r == 0 && name[0] != '.'
                    && (kiln_str_has_suffix (name, ".yaml")
                        || kiln_str_has_suffix (name, ".yml"))) {
                        cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, name);
                        r = load_file (s, path, err);
                }
                free (list[i]);
        }
        free (list);
        return r;
}
