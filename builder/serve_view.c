/* kiln: how a response shows stored objects: Secrets without their
 * values, v1beta1 objects converted down for a v1alpha1 path, and the
 * meta.k8s.io Table that `kubectl get` asks for with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.  The columns
 * are the additionalPrinterColumns of Shipwright's CRDs. */
#include <string.h>
#include <time.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/serve.h"

typedef struct column {
        const char *name;
        const char *type;
        const char *path; /* dotted; "?Succeeded.FIELD" is that condition's FIELD */
        const char *description;
} column;

static const column build_columns[] = {
        { "Registered", "string", "status.registered", "The register status of the Build" },
        { "Reason", "string", "status.reason",
          "The reason of the registered Build, either an "
          "error or succeed message" },
        { "BuildStrategyKind", "string", "spec.strategy.kind",
          "The BuildStrategy type which "
          "is used for this Build" },
        { "BuildStrategyName", "string", "spec.strategy.name",
          "The BuildStrategy name which "
          "is used for this Build" },
        { "CreationTime", "date", "metadata.creationTimestamp", "The create time of this Build" },
        { NULL, NULL, NULL, NULL },
};

static const column buildrun_columns[] = {
        { "Succeeded", "string", "?Succeeded.status", "The Succeeded status of the BuildRun" },
        { "Reason", "string", "?Succeeded.reason", "The Succeeded reason of the BuildRun" },
        { "StartTime", "date", "status.startTime", "The start time of this BuildRun" },
        { "CompletionTime", "date", "status.completionTime",
          "The completion time of this BuildRun" },
        { NULL, NULL, NULL, NULL },
};

static const column secret_columns[] = {
        { "Type", "string", "type", "The type of the secret" },
        { "Age", "date", "metadata.creationTimestamp", "CreationTimestamp of the object" },
        { NULL, NULL, NULL, NULL },
};

static const column age_columns[] = {
        { "Age", "date", "metadata.creationTimestamp", "CreationTimestamp of the object" },
        { NULL, NULL, NULL, NULL },
};

static const column *
columns_of (const char *kind)
{
        if (strcmp (kind, "Build") == 0)
                return build_columns;
        if (strcmp (kind, "BuildRun") == 0)
                return buildrun_columns;
        if (strcmp (kind, "Secret") == 0)
                return secret_columns;
        return age_columns;
}

/* ---- what the client asked for ---- */

/* One media range of an Accept header: "application/json;as=Table;v=v1;g=meta.k8s.io". */
static bool
range_is_table (const char *r, size_t n, const char **version)
{
        cleanup_free char *s = strndup (r, n);
        bool table = false, group = false;
        char *save = NULL;

        *version = NULL;
        for (char *p = strtok_r (s, ";", &save); p; p = strtok_r (NULL, ";", &save)) {
                while (*p == ' ')
                        p++;
                if (strcmp (p, "as=Table") == 0)
                        table = true;
                else if (strcmp (p, "g=meta.k8s.io") == 0)
                        group = true;
                else if (strcmp (p, "v=v1") == 0)
                        *version = "meta.k8s.io/v1";
                else if (strcmp (p, "v=v1beta1") == 0)
                        *version = "meta.k8s.io/v1beta1";
        }
        return table && group && *version;
}

void
kiln_view_init (kiln_view *v, const char *kind, bool alpha, const char *accept,
                const char *include_object)
{
        const char *p = accept;

        memset (v, 0, sizeof (*v));
        v->kind = kind;
        v->alpha = alpha;
        v->include = KILN_VIEW_METADATA;
        if (include_object && strcmp (include_object, "None") == 0)
                v->include = KILN_VIEW_NONE;
        else if (include_object && strcmp (include_object, "Object") == 0)
                v->include = KILN_VIEW_OBJECT;
        /* The first Table range the client accepts wins; a plain JSON
         * range before any Table range means no Table. */
        while (p && *p) {
                const char *comma = strchr (p, ',');
                size_t n = comma ? (size_t) (comma - p) : strlen (p);
                const char *version;
                if (range_is_table (p, n, &version)) {
                        v->table = version;
                        break;
                }
                p = comma ? comma + 1 : NULL;
        }
}

/* ---- objects ---- */

static void
redact_secret (json_t *obj)
{
        json_t *data = json_object_get (obj, "data");
        json_t *meta = json_object_get (obj, "metadata");
        json_t *keys = json_array ();
        const char *key;
        json_t *x;

        json_object_foreach (data, key, x)
        {
                json_array_append_new (keys, json_string (key));
        }
        json_object_del (obj, "data");
        json_object_del (obj, "stringData");
        /* Which keys it holds, so a client can check a secret. */
        json_t *ann = json_object_get (meta, "annotations");
        if (!json_is_object (ann)) {
                ann = json_object ();
                json_object_set_new (meta, "annotations", ann);
        }
        char *joined = json_dumps (keys, JSON_COMPACT);
        json_object_set_new (ann, "kiln.dev/data-keys", json_string (joined));
        free (joined);
        json_decref (keys);
}

/* The object as its version shows it, without a Secret's values. */
static json_t *
shown (const kiln_view *v, const json_t *obj)
{
        json_t *o;

        if (v->alpha)
                return kiln_convert_down (obj, v->kind);
        o = json_deep_copy (obj);
        if (strcmp (v->kind, "Secret") == 0 && json_is_object (o))
                redact_secret (o);
        return o;
}

/* ---- tables ---- */

static json_t *
cell (const json_t *obj, const char *path)
{
        const json_t *cur = obj;

        if (path[0] == '?') {
                const char *dot = strchr (path, '.');
                cleanup_free char *type = strndup (path + 1, (size_t) (dot - path - 1));
                const json_t *conds
                    = json_object_get (json_object_get (obj, "status"), "conditions");
                size_t i;
                json_t *c;
                json_array_foreach (conds, i, c)
                {
                        const char *t = json_string_value (json_object_get (c, "type"));
                        if (t && strcmp (t, type) == 0)
                                return json_incref (json_object_get (c, dot + 1));
                }
                return NULL;
        }
        cleanup_free char *p = kiln_strdup (path);
        char *save = NULL;
        for (char *k = strtok_r (p, ".", &save); k && cur; k = strtok_r (NULL, ".", &save))
                cur = json_object_get (cur, k);
        return cur ? json_incref ((json_t *) cur) : NULL;
}

/* An RFC 3339 UTC time ("2026-01-02T03:04:05Z") as seconds; -1 if not. */
static int64_t
rfc3339_seconds (const char *s)
{
        struct tm tm = { 0 };
        const char *end = s ? strptime (s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

        if (end == NULL || (*end != 'Z' && *end != '.'))
                return -1;
        return (int64_t) timegm (&tm);
}

/* Kubernetes' duration.HumanDuration, which a CRD's date columns show. */
static char *
human_duration (int64_t sec)
{
        int64_t m = sec / 60, h = sec / 3600, d = h / 24;

        if (sec < -1)
                return kiln_strdup ("<invalid>");
        if (sec < 0)
                return kiln_strdup ("0s");
        if (sec < 120)
                return kiln_strdup_printf ("%llds", (long long) sec);
        if (m < 10)
                return sec % 60 ? kiln_strdup_printf ("%lldm%llds", (long long) m,
                                                      (long long) (sec % 60))
                                : kiln_strdup_printf ("%lldm", (long long) m);
        if (m < 180)
                return kiln_strdup_printf ("%lldm", (long long) m);
        if (h < 8)
                return m % 60
                           ? kiln_strdup_printf ("%lldh%lldm", (long long) h, (long long) (m % 60))
                           : kiln_strdup_printf ("%lldh", (long long) h);
        if (h < 48)
                return kiln_strdup_printf ("%lldh", (long long) h);
        if (h < 24 * 8)
                return h % 24
                           ? kiln_strdup_printf ("%lldd%lldh", (long long) d, (long long) (h % 24))
                           : kiln_strdup_printf ("%lldd", (long long) d);
        if (h < 24 * 365 * 2)
                return kiln_strdup_printf ("%lldd", (long long) d);
        if (h < 24 * 365 * 8 && d % 365)
                return kiln_strdup_printf ("%lldy%lldd", (long long) (d / 365),
                                           (long long) (d % 365));
        return kiln_strdup_printf ("%lldy", (long long) (d / 365));
}

static json_t *
date_cell (json_t *x)
{
        int64_t t = rfc3339_seconds (json_string_value (x));
        char *s;

        if (t < 0)
                return x;
        json_decref (x);
        s = human_duration ((int64_t) time (NULL) - t);
        x = json_string (s);
        free (s);
        return x;
}

static json_t *
column_definitions (const char *kind)
{
        json_t *cols = json_pack (
            "[{s:s,s:s,s:s,s:s,s:i}]", "name", "Name", "type", "string", "format", "name",
            "description",
            "Name must be unique within a namespace. Is required when creating resources, although "
            "some resources may allow a client to request the generation of an appropriate name "
            "automatically. Name is primarily intended for creation idempotence and configuration "
            "definition. Cannot be updated.",
            "priority", 0);

        for (const column *c = columns_of (kind); c->name; c++)
                json_array_append_new (
                    cols, json_pack ("{s:s,s:s,s:s,s:s,s:i}", "name", c->name, "type", c->type,
                                     "format", "", "description", c->description, "priority", 0));
        return cols;
}

static json_t *
row (const kiln_view *v, const json_t *obj)
{
        json_t *cells = json_array ();
        json_t *o = shown (v, obj);
        json_t *r;

        json_array_append (cells, json_object_get (json_object_get (obj, "metadata"), "name")
                                      ?: json_null ());
        for (const column *c = columns_of (v->kind); c->name; c++) {
                json_t *x = cell (obj, c->path);
                if (x && strcmp (c->type, "date") == 0)
                        x = date_cell (x);
                json_array_append_new (cells, x ? x : json_null ());
        }
        r = json_pack ("{s:o}", "cells", cells);
        if (v->include == KILN_VIEW_OBJECT) {
                json_object_set (r, "object", o);
        } else if (v->include == KILN_VIEW_METADATA) {
                json_object_set_new (r, "object",
                                     json_pack ("{s:s,s:s,s:O}", "kind", "PartialObjectMetadata",
                                                "apiVersion", v->table, "metadata",
                                                json_object_get (o, "metadata")));
        }
        json_decref (o);
        return r;
}

static json_t *
table (const kiln_view *v, const json_t *items, json_t *meta)
{
        json_t *rows = json_array ();
        size_t i;
        json_t *obj;

        json_array_foreach (items, i, obj)
        {
                json_array_append_new (rows, row (v, obj));
        }
        return json_pack ("{s:s,s:s,s:o,s:o,s:o}", "kind", "Table", "apiVersion", v->table,
                          "metadata", meta ? json_incref (meta) : json_object (),
                          "columnDefinitions", column_definitions (v->kind), "rows", rows);
}

json_t *
kiln_view_object (const kiln_view *v, const json_t *obj)
{
        if (v->table) {
                json_t *one = json_pack ("[O]", obj);
                json_t *meta = json_pack (
                    "{s:O*}", "resourceVersion",
                    json_object_get (json_object_get (obj, "metadata"), "resourceVersion"));
                json_t *t = table (v, one, meta);
                json_decref (one);
                json_decref (meta);
                return t;
        }
        return shown (v, obj);
}

json_t *
kiln_view_list (const kiln_view *v, const json_t *items, const char *list_kind,
                const char *api_version, json_t *meta)
{
        json_t *out;
        size_t i;
        json_t *obj;

        if (v->table)
                return table (v, items, meta);
        out = json_array ();
        json_array_foreach (items, i, obj)
        {
                json_array_append_new (out, shown (v, obj));
        }
        return json_pack ("{s:s,s:s,s:O,s:o}", "kind", list_kind, "apiVersion", api_version,
                          "metadata", meta, "items", out);
}
