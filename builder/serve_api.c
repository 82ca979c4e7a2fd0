/* kiln: the Shipwright v1beta1 API (and core v1 Secrets) over REST.
 *
 * Paths, verbs and errors follow the Kubernetes API conventions so that a
 * client written for Shipwright works with only the base URL and token
 * changed: objects are JSON documents with metadata; errors are Status
 * objects whose message names the field; writes are optimistic through
 * metadata.resourceVersion. */
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/digest.h"
#include "kiln/log.h"
#include "kiln/serve.h"
#include "kiln/serve_metrics.h"

#define MAX_SEGMENTS 10
#define DEFAULT_BODY_MAX ((size_t) 8 << 20)

struct kiln_api {
        kiln_store *store;
        kiln_runner *runner;
        kiln_metrics *metrics;
        char *token;
        uint64_t max_source;
};

typedef struct resource {
        const char *plural;
        const char *singular;
        const char *kind;
        const char *list_kind;
        const char *group; /* "" for core */
        const char *version;
        bool namespaced;
        const char *short_names[3];
} resource;

static const resource resources[] = {
        { "builds",
          "build",
          "Build",
          "BuildList",
          KILN_SHP_GROUP,
          KILN_SHP_VERSION,
          true,
          { NULL } },
        { "buildruns",
          "buildrun",
          "BuildRun",
          "BuildRunList",
          KILN_SHP_GROUP,
          KILN_SHP_VERSION,
          true,
          { "br", "brs", NULL } },
        { "buildstrategies",
          "buildstrategy",
          "BuildStrategy",
          "BuildStrategyList",
          KILN_SHP_GROUP,
          KILN_SHP_VERSION,
          true,
          { "bs", "bss", NULL } },
        { "clusterbuildstrategies",
          "clusterbuildstrategy",
          "ClusterBuildStrategy",
          "ClusterBuildStrategyList",
          KILN_SHP_GROUP,
          KILN_SHP_VERSION,
          false,
          { "cbs", "cbss", NULL } },
        { "secrets", "secret", "Secret", "SecretList", "", "v1", true, { NULL } },
        { "configmaps", "configmap", "ConfigMap", "ConfigMapList", "", "v1", true, { "cm", NULL } },
};

#define SECRETS (&resources[4])
#define CONFIGMAPS (&resources[5])

typedef struct route {
        const resource *res;
        const char *ns;   /* NULL: cluster scope, or every namespace */
        const char *name; /* NULL: the collection */
        const char *sub;  /* NULL, "status", "log" or "source" */
        bool alpha;       /* a shipwright.io/v1alpha1 path */
        kiln_view view;   /* how GET answers show objects */
} route;

/* ---- responses ---- */

static void
respond_json (kiln_http_response *resp, int status, json_t *j)
{
        char *s = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);

        if (s == NULL)
                abort ();
        resp->status = status;
        resp->content_type = "application/json";
        resp->body = kiln_strdup_printf ("%s\n", s);
        resp->len = strlen (resp->body);
        free (s);
}

void
kiln_api_status (kiln_http_response *resp, int code, const char *reason, const char *fmt, ...)
{
        va_list ap;
        char *msg = NULL;
        json_t *st;

        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0)
                abort ();
        va_end (ap);
        st = json_pack ("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1",
                        "metadata", "status", "Failure", "message", msg, "reason", reason, "code",
                        code);
        respond_json (resp, code, st);
        json_decref (st);
        free (msg);
}

/* "builds.shipwright.io" or "secrets" as Kubernetes names a resource. */
static char *
qualified (const resource *res)
{
        return *res->group ? kiln_strdup_printf ("%s.%s", res->plural, res->group)
                           : kiln_strdup (res->plural);
}

static void
status_invalid (kiln_http_response *resp, const resource *res, const char *name, const char *msg)
{
        kiln_api_status (resp, 422, "Invalid", "%s.%s \"%s\" is invalid: %s", res->kind,
                         *res->group ? res->group : "core", name ? name : "", msg);
}

static void
status_from_error (kiln_http_response *resp, const resource *res, const char *name,
                   const kiln_error *e, bool creating)
{
        cleanup_free char *q = qualified (res);

        switch (e ? e->code : KILN_E_FAILED) {
        case KILN_E_NOT_FOUND:
                kiln_api_status (resp, 404, "NotFound", "%s \"%s\" not found", q, name);
                break;
        case KILN_E_CONFLICT:
                if (creating)
                        kiln_api_status (resp, 409, "AlreadyExists", "%s \"%s\" already exists", q,
                                         name ? name : "");
                else
                        kiln_api_status (resp, 409, "Conflict",
                                         "Operation cannot be fulfilled on %s \"%s\": the object "
                                         "has been modified; please apply your changes to the "
                                         "latest version and try again",
                                         q, name);
                break;
        case KILN_E_INVALID:
                status_invalid (resp, res, name, kiln_error_msg (e));
                break;
        default:
                kiln_api_status (resp, 500, "InternalError", "%s", kiln_error_msg (e));
        }
}

/* Secrets are stored whole but their values never leave the daemon;
 * a v1alpha1 path gets v1alpha1 objects back. */
static void
respond_object (kiln_http_response *resp, int status, const route *rt, const json_t *obj)
{
        json_t *shown = kiln_view_object (&rt->view, obj);

        respond_json (resp, status, shown);
        json_decref (shown);
}

/* ---- discovery ---- */

static json_t *
status_entry (const resource *r)
{
        cleanup_free char *name = kiln_strdup_printf ("%s/status", r->plural);

        return json_pack ("{s:s,s:s,s:b,s:s,s:[sss]}", "name", name, "singularName", "",
                          "namespaced", r->namespaced, "kind", r->kind, "verbs", "get", "patch",
                          "update");
}

static json_t *
resource_list (const char *group_version)
{
        json_t *list = json_array ();
        bool core = strcmp (group_version, "v1") == 0;

        for (size_t i = 0; i < KILN_N_ELEMENTS (resources); i++) {
                const resource *r = &resources[i];
                json_t *shorts = json_array ();
                if (core != (*r->group == '\0'))
                        goto next;
                for (size_t k = 0; r->short_names[k]; k++)
                        json_array_append_new (shorts, json_string (r->short_names[k]));
                json_array_append_new (
                    list, json_pack ("{s:s,s:s,s:b,s:s,s:[sssssss],s:O}", "name", r->plural,
                                     "singularName", r->singular, "namespaced", r->namespaced,
                                     "kind", r->kind, "verbs", "create", "delete", "get", "list",
                                     "patch", "update", "watch", "shortNames", shorts));
                if (!core)
                        json_array_append_new (list, status_entry (r));
        next:
                json_decref (shorts);
        }
        return json_pack ("{s:s,s:s,s:s,s:o}", "kind", "APIResourceList", "apiVersion", "v1",
                          "groupVersion", group_version, "resources", list);
}

static json_t *
api_group (void)
{
        return json_pack ("{s:s,s:s,s:s,s:[{s:s,s:s},{s:s,s:s}],s:{s:s,s:s}}", "kind", "APIGroup",
                          "apiVersion", "v1", "name", KILN_SHP_GROUP, "versions", "groupVersion",
                          KILN_SHP_API_VERSION, "version", KILN_SHP_VERSION, "groupVersion",
                          KILN_SHP_GROUP "/" KILN_SHP_ALPHA, "version", KILN_SHP_ALPHA,
                          "preferredVersion", "groupVersion", KILN_SHP_API_VERSION, "version",
                          KILN_SHP_VERSION);
}

static bool
discovery (kiln_http_response *resp, const char *path)
{
        json_t *j = NULL;

        /* An OpenAPI v2 document with no definitions (an empty protobuf
         * message): kubectl's client-side validation then knows no schema
         * for these kinds and leaves the checks to kiln. */
        if (strcmp (path, "/openapi/v2") == 0) {
                resp->status = 200;
                resp->content_type = "application/octet-stream";
                resp->body = kiln_strdup ("");
                resp->len = 0;
                return true;
        }
        if (strcmp (path, "/apis") == 0 || strcmp (path, "/apis/") == 0) {
                json_t *g = api_group ();
                json_object_del (g, "apiVersion");
                json_object_del (g, "kind");
                j = json_pack ("{s:s,s:s,s:[o]}", "kind", "APIGroupList", "apiVersion", "v1",
                               "groups", g);
        } else if (strcmp (path, "/apis/" KILN_SHP_GROUP) == 0) {
                j = api_group ();
        } else if (strcmp (path, "/apis/" KILN_SHP_API_VERSION) == 0
                   || strcmp (path, "/apis/" KILN_SHP_GROUP "/" KILN_SHP_ALPHA) == 0) {
                j = resource_list (path + strlen ("/apis/"));
        } else if (strcmp (path, "/api") == 0) {
                j = json_pack ("{s:s,s:[s],s:[{s:s,s:s}]}", "kind", "APIVersions", "versions", "v1",
                               "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0",
                               "serverAddress", "");
        } else if (strcmp (path, "/api/v1") == 0) {
                j = resource_list ("v1");
        } else if (strcmp (path, "/version") == 0) {
                j = json_pack ("{s:s,s:s,s:s,s:s,s:s,s:s}", "major", "1", "minor", "29",
                               "gitVersion", "v1.29.0-kiln." KILN_VERSION, "gitCommit", KILN_COMMIT,
                               "platform", "linux", "goVersion", "none");
        } else {
                return false;
        }
        respond_json (resp, 200, j);
        json_decref (j);
        return true;
}

/* ---- routing ---- */

static const resource *
find_resource (const char *plural, bool core)
{
        for (size_t i = 0; i < KILN_N_ELEMENTS (resources); i++)
                if (strcmp (resources[i].plural, plural) == 0
                    && core == (*resources[i].group == '\0'))
                        return &resources[i];
        return NULL;
}

/* Splits path at '/' in place; the segments borrow buf.  Returns
 * max + 1 when there are more than max. */
static size_t
split_path (char *buf, const char **seg, size_t max)
{
        size_t n = 0;
        char *p = buf;

        while (*p) {
                while (*p == '/')
                        *p++ = '\0';
                if (*p == '\0')
                        break;
                if (n == max)
                        return max + 1;
                seg[n++] = p;
                while (*p && *p != '/')
                        p++;
        }
        return n;
}

/* The tail after the group version: [namespaces NS] PLURAL [NAME [SUB]]. */
static bool
route_tail (route *r, const char **seg, size_t n, bool core)
{
        size_t i = 0;

        if (n >= 2 && strcmp (seg[0], "namespaces") == 0 && n >= 3) {
                r->ns = seg[1];
                i = 2;
        }
        if (i >= n)
                return false;
        r->res = find_resource (seg[i], core);
        if (r->res == NULL)
                return false;
        if (r->ns && !r->res->namespaced)
                return false;
        r->name = i + 1 < n ? seg[i + 1] : NULL;
        r->sub = i + 2 < n ? seg[i + 2] : NULL;
        if (i + 3 < n)
                return false;
        /* A namespaced kind is named only inside its namespace. */
        if (r->res->namespaced && r->ns == NULL && r->name)
                return false;
        /* Secrets and ConfigMaps have no subresources. */
        if (r->sub && (!*r->res->group || strcmp (r->sub, "status") != 0)
            && !((strcmp (r->sub, "log") == 0 || strcmp (r->sub, "source") == 0)
                 && strcmp (r->res->plural, "buildruns") == 0))
                return false;
        return true;
}

static bool
parse_route (route *r, const char **seg, size_t n)
{
        memset (r, 0, sizeof (*r));
        if (n >= 3 && strcmp (seg[0], "apis") == 0 && strcmp (seg[1], KILN_SHP_GROUP) == 0
            && strcmp (seg[2], KILN_SHP_VERSION) == 0)
                return route_tail (r, seg + 3, n - 3, false);
        if (n >= 3 && strcmp (seg[0], "apis") == 0 && strcmp (seg[1], KILN_SHP_GROUP) == 0
            && strcmp (seg[2], KILN_SHP_ALPHA) == 0) {
                r->alpha = true;
                return route_tail (r, seg + 3, n - 3, false);
        }
        if (n >= 2 && strcmp (seg[0], "api") == 0 && strcmp (seg[1], "v1") == 0)
                return route_tail (r, seg + 2, n - 2, true);
        return false;
}

/* ---- schema checks (what the CRDs' OpenAPI schemas refuse with 422) ---- */

enum { T_STR, T_OBJ, T_ARR, T_BOOL, T_INT, T_DURATION, T_STRMAP, T_LIMIT };

typedef struct rule {
        const char *path; /* dotted; "x[]" descends into each element */
        int type;
        bool required; /* when its parent exists */
} rule;

static const char *
type_name (int t)
{
        static const char *const names[]
            = { "string",  "object",          "array",          "boolean",
                "integer", "duration string", "map of strings", "whole number from 1 to 10000" };
        return names[t];
}

static bool
type_ok (const json_t *v, int t)
{
        int64_t ms;
        const char *k;
        json_t *x;

        switch (t) {
        case T_STR:
                return json_is_string (v);
        case T_OBJ:
                return json_is_object (v);
        case T_ARR:
                return json_is_array (v);
        case T_BOOL:
                return json_is_boolean (v);
        case T_INT:
                return json_is_integer (v);
        case T_DURATION:
                return json_is_string (v)
                       && kiln_go_duration_parse (json_string_value (v), &ms) == 0;
        case T_LIMIT:
                return json_is_integer (v) && json_integer_value (v) >= 1
                       && json_integer_value (v) <= 10000;
        case T_STRMAP:
                if (!json_is_object (v))
                        return false;
                json_object_foreach ((json_t *) v, k, x)
                {
                        if (!json_is_string (x))
                                return false;
                }
                return true;
        }
        return false;
}

/* Checks rule at `rest` below `v` (whose path so far is `at`). */
static int
check_rule (const json_t *v, const char *at, const char *rest, const rule *ru, char **msg)
{
        const char *dot = strchr (rest, '.');
        size_t n = dot ? (size_t) (dot - rest) : strlen (rest);
        cleanup_free char *seg = strndup (rest, n);
        bool each = n > 2 && strcmp (seg + n - 2, "[]") == 0;
        const json_t *child;

        if (each)
                seg[n - 2] = '\0';
        child = json_object_get (v, seg);
        cleanup_free char *here = *at ? kiln_strdup_printf ("%s.%s", at, seg) : kiln_strdup (seg);
        if (child == NULL) {
                if (dot == NULL && ru->required) {
                        *msg = kiln_strdup_printf ("%s: Required value", here);
                        return -1;
                }
                return 0;
        }
        if (dot == NULL && !each) {
                if (type_ok (child, ru->type))
                        return 0;
                cleanup_free char *shown = json_dumps (child, JSON_ENCODE_ANY | JSON_COMPACT);
                *msg = kiln_strdup_printf ("%s: Invalid value: %.60s: must be a %s", here,
                                           shown ? shown : "?", type_name (ru->type));
                return -1;
        }
        if (each) {
                size_t i;
                json_t *el;
                json_array_foreach (child, i, el)
                {
                        cleanup_free char *idx = kiln_strdup_printf ("%s[%zu]", here, i);
                        if (dot == NULL) {
                                if (!type_ok (el, ru->type)) {
                                        *msg
                                            = kiln_strdup_printf ("%s: Invalid value: must be a %s",
                                                                  idx, type_name (ru->type));
                                        return -1;
                                }
                        } else if (json_is_object (el)
                                   && check_rule (el, idx, dot + 1, ru, msg) < 0) {
                                return -1;
                        }
                }
                return 0;
        }
        return json_is_object (child) ? check_rule (child, here, dot + 1, ru, msg) : 0;
}

#define SPEC_RULES(P)                                                                              \
        { P "strategy", T_OBJ, true }, { P "strategy.name", T_STR, true },                         \
            { P "strategy.kind", T_STR, false }, { P "output", T_OBJ, true },                      \
            { P "output.image", T_STR, true }, { P "output.pushSecret", T_STR, false },            \
            { P "output.insecure", T_BOOL, false }, { P "output.labels", T_STRMAP, false },        \
            { P "output.annotations", T_STRMAP, false }, { P "output.timestamp", T_STR, false },   \
            { P "source", T_OBJ, false }, { P "source.type", T_STR, false },                       \
            { P "source.contextDir", T_STR, false }, { P "source.git", T_OBJ, false },             \
            { P "source.git.url", T_STR, true }, { P "source.git.revision", T_STR, false },        \
            { P "source.git.cloneSecret", T_STR, false }, { P "source.local", T_OBJ, false },      \
            { P "source.local.timeout", T_DURATION, false }, { P "paramValues", T_ARR, false },    \
            { P "paramValues[]", T_OBJ, false }, { P "paramValues[].name", T_STR, true },          \
            { P "paramValues[].value", T_STR, false }, { P "paramValues[].values", T_ARR, false }, \
            { P "env", T_ARR, false }, { P "env[]", T_OBJ, false },                                \
            { P "env[].name", T_STR, false }, { P "env[].value", T_STR, false },                   \
            { P "env[].valueFrom", T_OBJ, false }, { P "retention", T_OBJ, false },                \
            { P "retention.atBuildDeletion", T_BOOL, false },                                      \
            { P "retention.failedLimit", T_LIMIT, false },                                         \
            { P "retention.succeededLimit", T_LIMIT, false },                                      \
            { P "retention.ttlAfterFailed", T_DURATION, false },                                   \
            { P "retention.ttlAfterSucceeded", T_DURATION, false },                                \
        {                                                                                          \
                P "timeout", T_DURATION, false                                                     \
        }

static const rule meta_rules[] = {
        { "metadata", T_OBJ, false },
        { "metadata.name", T_STR, false },
        { "metadata.generateName", T_STR, false },
        { "metadata.labels", T_STRMAP, false },
        { "metadata.annotations", T_STRMAP, false },
        { "metadata.resourceVersion", T_STR, false },
        { NULL, 0, false },
};

static const rule build_rules[]
    = { { "spec", T_OBJ, true }, SPEC_RULES ("spec."), { NULL, 0, false } };

static const rule buildrun_rules[] = {
        { "spec", T_OBJ, true },
        { "spec.build", T_OBJ, true },
        { "spec.build.name", T_STR, false },
        { "spec.build.spec", T_OBJ, false },
        SPEC_RULES ("spec.build.spec."),
        { "spec.state", T_STR, false },
        { "spec.timeout", T_DURATION, false },
        { "spec.serviceAccount", T_STR, false },
        { "spec.output", T_OBJ, false },
        { "spec.output.image", T_STR, false },
        { "spec.paramValues", T_ARR, false },
        { "spec.paramValues[]", T_OBJ, false },
        { "spec.paramValues[].name", T_STR, true },
        { "spec.env", T_ARR, false },
        { "spec.env[]", T_OBJ, false },
        { "spec.retention", T_OBJ, false },
        { "spec.retention.ttlAfterFailed", T_DURATION, false },
        { "spec.retention.ttlAfterSucceeded", T_DURATION, false },
        { "spec.source", T_OBJ, false },
        { "spec.source.type", T_STR, true },
        { "spec.source.local", T_OBJ, false },
        { "spec.source.local.timeout", T_DURATION, false },
        { NULL, 0, false },
};

static const rule strategy_rules[] = {
        { "spec", T_OBJ, true },
        { "spec.steps", T_ARR, true },
        { "spec.steps[]", T_OBJ, false },
        { "spec.steps[].name", T_STR, true },
        { "spec.steps[].command", T_ARR, false },
        { "spec.steps[].args", T_ARR, false },
        { "spec.steps[].env", T_ARR, false },
        { "spec.parameters", T_ARR, false },
        { "spec.parameters[]", T_OBJ, false },
        { "spec.parameters[].name", T_STR, true },
        { "spec.parameters[].type", T_STR, false },
        { NULL, 0, false },
};

static const rule secret_rules[] = {
        { "type", T_STR, false },
        { "data", T_STRMAP, false },
        { "stringData", T_STRMAP, false },
        { NULL, 0, false },
};

static const rule configmap_rules[] = {
        { "data", T_STRMAP, false },
        { NULL, 0, false },
};

static const rule *
rules_for (const resource *res)
{
        if (res == CONFIGMAPS)
                return configmap_rules;
        if (strcmp (res->kind, "Build") == 0)
                return build_rules;
        if (strcmp (res->kind, "BuildRun") == 0)
                return buildrun_rules;
        if (res == SECRETS)
                return secret_rules;
        return strategy_rules;
}

static int
check_rules (const json_t *obj, const rule *rules, char **msg)
{
        for (const rule *r = rules; r->path; r++)
                if (check_rule (obj, "", r->path, r, msg) < 0)
                        return -1;
        return 0;
}

static int
check_schema (const resource *res, const json_t *obj, char **msg)
{
        const char *state;

        if (check_rules (obj, meta_rules, msg) < 0 || check_rules (obj, rules_for (res), msg) < 0)
                return -1;
        state = json_string_value (json_object_get (json_object_get (obj, "spec"), "state"));
        if (strcmp (res->kind, "BuildRun") == 0 && state && *state
            && strcmp (state, "BuildRunCanceled") != 0) {
                *msg = kiln_strdup_printf ("spec.state: Unsupported value: \"%s\": supported "
                                           "values: \"BuildRunCanceled\"",
                                           state);
                return -1;
        }
        state = json_string_value (
            json_object_get (json_object_get (json_object_get (obj, "spec"), "source"), "type"));
        if (strcmp (res->kind, "BuildRun") == 0 && state && strcmp (state, "Local") != 0) {
                *msg = kiln_strdup_printf ("spec.source.type: Unsupported value: \"%s\": "
                                           "supported values: \"Local\"",
                                           state);
                return -1;
        }
        return 0;
}

/* ---- secrets ---- */

static int
normalise_secret (json_t *obj, char **msg)
{
        json_t *data = json_object_get (obj, "data");
        json_t *sd = json_object_get (obj, "stringData");
        const char *type = json_string_value (json_object_get (obj, "type"));
        const char *key;
        json_t *v;

        if (!json_is_object (data)) {
                data = json_object ();
                json_object_set_new (obj, "data", data);
        }
        json_object_foreach (data, key, v)
        {
                unsigned char *raw = NULL;
                size_t len;
                const char *s = json_string_value (v);
                if (kiln_base64_decode (&raw, &len, s, strlen (s), NULL) < 0) {
                        *msg = kiln_strdup_printf ("data[%s]: Invalid value: must be base64", key);
                        return -1;
                }
                free (raw);
        }
        json_object_foreach (sd, key, v)
        {
                const char *s = json_string_value (v);
                cleanup_free char *enc = kiln_base64_encode (s, strlen (s));
                json_object_set_new (data, key, json_string (enc));
        }
        json_object_del (obj, "stringData");
        if (type == NULL)
                json_object_set_new (obj, "type", json_string (type = "Opaque"));
        if (strcmp (type, "kubernetes.io/basic-auth") == 0 && !json_object_get (data, "username")
            && !json_object_get (data, "password")) {
                *msg = kiln_strdup ("data: Required value: basic-auth needs username or password");
                return -1;
        }
        if (strcmp (type, "kubernetes.io/ssh-auth") == 0
            && !json_object_get (data, "ssh-privatekey")) {
                *msg = kiln_strdup ("data[ssh-privatekey]: Required value");
                return -1;
        }
        if (strcmp (type, "kubernetes.io/dockerconfigjson") == 0
            && !json_object_get (data, ".dockerconfigjson")) {
                *msg = kiln_strdup ("data[.dockerconfigjson]: Required value");
                return -1;
        }
        return 0;
}

/* ---- writes: what each kind adds ---- */

typedef struct after {
        bool enqueue;
        bool cancel;
        bool revalidate;
} after;

static const char *
obj_name (const json_t *obj)
{
        return json_string_value (json_object_get (json_object_get (obj, "metadata"), "name"));
}

static json_t *
labels_of (json_t *obj)
{
        json_t *m = json_object_get (obj, "metadata");
        json_t *l = json_object_get (m, "labels");

        if (!json_is_object (l)) {
                l = json_object ();
                json_object_set_new (m, "labels", l);
        }
        return l;
}

static void
prepare_build (kiln_api *api, const char *ns, json_t *obj)
{
        kiln_verdict v;

        kiln_validate_build (&v, api->store, ns, obj_name (obj), json_object_get (obj, "spec"));
        kiln_build_set_status (obj, &v);
        kiln_verdict_clear (&v);
}

static void
prepare_new_buildrun (kiln_api *api, const char *ns, json_t *obj, after *a)
{
        kiln_verdict v;
        kiln_resolved res;
        const char *state
            = json_string_value (json_object_get (json_object_get (obj, "spec"), "state"));

        json_object_set_new (obj, "status", json_object ());
        kiln_validate_buildrun (&v, &res, api->store, ns, obj);
        if (res.build_name) {
                char gen[32];
                snprintf (gen, sizeof gen, "%lld", (long long) res.build_generation);
                json_object_set_new (labels_of (obj), "build.shipwright.io/name",
                                     json_string (res.build_name));
                json_object_set_new (labels_of (obj), "build.shipwright.io/generation",
                                     json_string (gen));
        }
        if (state && strcmp (state, "BuildRunCanceled") == 0) {
                kiln_buildrun_set_condition (obj, "False", "BuildRunCanceled",
                                             "The BuildRun was canceled before it started.");
        } else if (v.reason) {
                kiln_buildrun_set_condition (obj, "False", v.reason, v.message);
        } else {
                kiln_buildrun_set_condition (obj, "Unknown", "Pending", "BuildRun is queued");
                json_object_set (json_object_get (obj, "status"), "buildSpec", res.build_spec);
                a->enqueue = true;
        }
        kiln_verdict_clear (&v);
        kiln_resolved_clear (&res);
}

static void
prepare_buildrun_update (json_t *obj, const json_t *old, after *a)
{
        const char *state
            = json_string_value (json_object_get (json_object_get (obj, "spec"), "state"));
        const json_t *st = json_object_get (old, "status");

        if (!state || strcmp (state, "BuildRunCanceled") != 0 || kiln_buildrun_is_done (old))
                return;
        if (json_object_get (st, "startTime") == NULL)
                kiln_buildrun_set_condition (obj, "False", "BuildRunCanceled",
                                             "The BuildRun was canceled before it started.");
        else
                a->cancel = true;
}

/* Fills obj's status for a main-resource write; old is NULL on create. */
static int
prepare_write (kiln_api *api, const route *rt, json_t *obj, const json_t *old, after *a, char **msg)
{
        const char *kind = rt->res->kind;

        if (rt->res == SECRETS) {
                a->revalidate = true;
                return normalise_secret (obj, msg);
        }
        if (rt->res == CONFIGMAPS) {
                json_object_del (obj, "status");
                return 0;
        }
        if (old)
                json_object_set (obj, "status", json_object_get (old, "status") ?: json_object ());
        else
                json_object_del (obj, "status");
        if (strcmp (kind, "Build") == 0) {
                prepare_build (api, rt->ns, obj);
        } else if (strcmp (kind, "BuildRun") == 0) {
                if (old)
                        prepare_buildrun_update (obj, old, a);
                else
                        prepare_new_buildrun (api, rt->ns, obj, a);
        } else {
                if (!json_object_get (obj, "status"))
                        json_object_set_new (obj, "status", json_object ());
                a->revalidate = true;
        }
        return 0;
}

static void
run_after (kiln_api *api, const route *rt, const json_t *obj, const after *a)
{
        const char *name = obj_name (obj);

        if (a->enqueue && api->runner)
                kiln_runner_enqueue (api->runner, rt->ns, name);
        if (a->cancel && api->runner)
                kiln_runner_cancel (api->runner, rt->ns, name);
        if (a->revalidate)
                kiln_api_revalidate_builds (api->store, rt->res->namespaced ? rt->ns : NULL);
}

void
kiln_api_revalidate_builds (kiln_store *s, const char *ns)
{
        json_t *items = NULL;
        int64_t rv;
        size_t i;
        json_t *b;

        if (kiln_store_list (&items, &rv, s, "Build", ns, NULL) < 0)
                return;
        json_array_foreach (items, i, b)
        {
                const json_t *m = json_object_get (b, "metadata");
                const char *bns = json_string_value (json_object_get (m, "namespace"));
                const char *name = json_string_value (json_object_get (m, "name"));
                json_t *old = json_deep_copy (json_object_get (b, "status"));
                int64_t expect = 0;
                kiln_verdict v;

                kiln_validate_build (&v, s, bns ? bns : "", name, json_object_get (b, "spec"));
                kiln_build_set_status (b, &v);
                kiln_verdict_clear (&v);
                kiln_parse_int64 (json_string_value (json_object_get (m, "resourceVersion")) ?: "0",
                                  0, INT64_MAX, &expect);
                if (!json_equal (old, json_object_get (b, "status")))
                        kiln_store_update (NULL, s, "Build", bns, name, b, expect, NULL);
                json_decref (old);
        }
        json_decref (items);
}

/* ---- request bodies ---- */

static json_t *
parse_json_body (const kiln_http_request *req, kiln_http_response *resp)
{
        size_t len;
        const char *body = kiln_http_body (req, &len);
        json_error_t e;
        json_t *j;

        if (len == 0) {
                kiln_api_status (resp, 400, "BadRequest", "the request body is empty");
                return NULL;
        }
        j = json_loadb (body, len, JSON_REJECT_DUPLICATES, &e);
        if (j == NULL) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "the request body is not valid JSON: %s at line %d column %d",
                                 e.text, e.line, e.column);
                return NULL;
        }
        return j;
}

/* A v1alpha1 body is converted up before anything reads it. */
static json_t *
alpha_in (const route *rt, json_t *obj, kiln_http_response *resp)
{
        const char *av = json_string_value (json_object_get (obj, "apiVersion"));
        json_t *up;

        if (!rt->alpha || !json_is_object (obj))
                return obj;
        if (av && strcmp (av, KILN_SHP_GROUP "/" KILN_SHP_ALPHA) != 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "apiVersion: the API version in the data (%s) does not match the "
                                 "expected API version (%s)",
                                 av, KILN_SHP_GROUP "/" KILN_SHP_ALPHA);
                json_decref (obj);
                return NULL;
        }
        up = kiln_convert_up (obj, rt->res->kind);
        json_decref (obj);
        return up;
}

static json_t *
parse_body (const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        json_t *obj = parse_json_body (req, resp);

        return obj ? alpha_in (rt, obj, resp) : NULL;
}

static int
check_identity (const route *rt, json_t *obj, kiln_http_response *resp)
{
        const char *av = json_string_value (json_object_get (obj, "apiVersion"));
        const char *kind = json_string_value (json_object_get (obj, "kind"));
        const char *ns
            = json_string_value (json_object_get (json_object_get (obj, "metadata"), "namespace"));
        cleanup_free char *want
            = *rt->res->group ? kiln_strdup_printf ("%s/%s", rt->res->group, rt->res->version)
                              : kiln_strdup (rt->res->version);

        if (!json_is_object (obj)) {
                kiln_api_status (resp, 400, "BadRequest", "the request body must be a JSON object");
                return -1;
        }
        if (av && strcmp (av, want) != 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "apiVersion: the API version in the data (%s) does not match the "
                                 "expected API version (%s)",
                                 av, want);
                return -1;
        }
        if (kind && strcmp (kind, rt->res->kind) != 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "kind: the kind in the data (%s) does not match the expected "
                                 "kind (%s)",
                                 kind, rt->res->kind);
                return -1;
        }
        if (ns && rt->ns && strcmp (ns, rt->ns) != 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "metadata.namespace: the namespace of the provided object (%s) "
                                 "does not match the namespace sent on the request (%s)",
                                 ns, rt->ns);
                return -1;
        }
        json_object_set_new (obj, "apiVersion", json_string (want));
        json_object_set_new (obj, "kind", json_string (rt->res->kind));
        return 0;
}

static int
check_object (const route *rt, json_t *obj, kiln_http_response *resp)
{
        cleanup_free char *msg = NULL;
        const char *name = obj_name (obj);

        if (check_schema (rt->res, obj, &msg) < 0) {
                status_invalid (resp, rt->res, name, msg);
                return -1;
        }
        if (name && !kiln_name_is_valid (name)) {
                status_invalid (resp, rt->res, name,
                                "metadata.name: Invalid value: a lowercase RFC 1123 subdomain "
                                "must consist of lower case alphanumeric characters, '-' or '.', "
                                "and must start and end with an alphanumeric character");
                return -1;
        }
        return 0;
}

/* ---- verbs ---- */

static void
do_create (kiln_api *api, const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        json_t *obj = parse_body (rt, req, resp);
        json_t *stored = NULL;
        kiln_error *err = NULL;
        cleanup_free char *msg = NULL;
        after a = { 0 };

        if (obj == NULL)
                return;
        if (check_identity (rt, obj, resp) < 0 || check_object (rt, obj, resp) < 0)
                goto out;
        json_object_del (json_object_get (obj, "metadata"), "resourceVersion");
        if (prepare_write (api, rt, obj, NULL, &a, &msg) < 0) {
                status_invalid (resp, rt->res, obj_name (obj), msg);
                goto out;
        }
        if (kiln_store_create (&stored, api->store, rt->res->kind, rt->ns, obj, &err) < 0) {
                status_from_error (resp, rt->res, obj_name (obj), err, true);
                kiln_error_free (err);
                goto out;
        }
        run_after (api, rt, stored, &a);
        respond_object (resp, 201, rt, stored);
        json_decref (stored);
out:
        json_decref (obj);
}

static int64_t
rv_in (const json_t *obj)
{
        const char *v = json_string_value (
            json_object_get (json_object_get (obj, "metadata"), "resourceVersion"));
        int64_t rv = 0;

        if (v && kiln_parse_int64 (v, 1, INT64_MAX, &rv) < 0)
                return -1;
        return rv;
}

/* Writes `body` over `old` (the main resource, or only its status). */
static void
write_update (kiln_api *api, const route *rt, json_t *body, const json_t *old, int64_t expect,
              kiln_http_response *resp)
{
        json_t *obj;
        json_t *stored = NULL;
        kiln_error *err = NULL;
        cleanup_free char *msg = NULL;
        after a = { 0 };

        if (rt->sub) {
                obj = json_deep_copy (old);
                json_object_set (obj, "status", json_object_get (body, "status") ?: json_object ());
        } else {
                obj = json_incref (body);
                if (prepare_write (api, rt, obj, old, &a, &msg) < 0) {
                        status_invalid (resp, rt->res, rt->name, msg);
                        json_decref (obj);
                        return;
                }
        }
        if (kiln_store_update (&stored, api->store, rt->res->kind, rt->ns, rt->name, obj, expect,
                               &err)
            < 0) {
                status_from_error (resp, rt->res, rt->name, err, false);
                kiln_error_free (err);
        } else {
                run_after (api, rt, stored, &a);
                respond_object (resp, 200, rt, stored);
                json_decref (stored);
        }
        json_decref (obj);
}

static int
check_update_body (const route *rt, json_t *body, kiln_http_response *resp)
{
        const char *name = obj_name (body);

        if (check_identity (rt, body, resp) < 0)
                return -1;
        if (name && strcmp (name, rt->name) != 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "metadata.name: the name of the object (%s) does not match the "
                                 "name on the URL (%s)",
                                 name, rt->name);
                return -1;
        }
        if (rv_in (body) < 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "metadata.resourceVersion: Invalid value: not a resourceVersion");
                return -1;
        }
        /* Only the stored object's status changes: the rest is not read. */
        if (rt->sub)
                return 0;
        return check_object (rt, body, resp);
}

static void
do_replace (kiln_api *api, const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        json_t *body = parse_body (rt, req, resp);
        json_t *old = NULL;
        kiln_error *err = NULL;

        if (body == NULL)
                return;
        if (check_update_body (rt, body, resp) == 0) {
                if (kiln_store_get (&old, api->store, rt->res->kind, rt->ns, rt->name, &err) < 0) {
                        status_from_error (resp, rt->res, rt->name, err, false);
                        kiln_error_free (err);
                } else {
                        write_update (api, rt, body, old, rv_in (body), resp);
                }
        }
        json_decref (old);
        json_decref (body);
}

static int
apply_patch (json_t **doc, const json_t *patch, const char *type, kiln_http_response *resp)
{
        kiln_error *err = NULL;

        if (type && kiln_str_has_prefix (type, "application/json-patch+json")) {
                if (kiln_json_patch (doc, patch, &err) < 0) {
                        kiln_api_status (resp, err->code == KILN_E_CONFLICT ? 409 : 422,
                                         err->code == KILN_E_CONFLICT ? "Conflict" : "Invalid",
                                         "%s", err->msg);
                        kiln_error_free (err);
                        return -1;
                }
                return 0;
        }
        if (type && kiln_str_has_prefix (type, "application/merge-patch+json")) {
                if (!json_is_object (patch)) {
                        kiln_api_status (resp, 400, "BadRequest",
                                         "a merge patch must be a JSON object");
                        return -1;
                }
                kiln_merge_patch (*doc, patch);
                return 0;
        }
        kiln_api_status (resp, 415, "UnsupportedMediaType",
                         "the body of the request was in an unknown format - accepted media types "
                         "include: application/json-patch+json, application/merge-patch+json");
        return -1;
}

static void
do_patch (kiln_api *api, const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        const char *type = kiln_http_header (req, "Content-Type");
        json_t *patch = parse_json_body (req, resp);

        if (patch == NULL)
                return;
        /* Without a resourceVersion of its own a patch applies to whatever
         * is current: a conflict with another writer is retried. */
        for (int tries = 0; tries < 5; tries++) {
                json_t *old = NULL, *doc;
                kiln_error *err = NULL;
                int64_t user_rv, old_rv;

                if (kiln_store_get (&old, api->store, rt->res->kind, rt->ns, rt->name, &err) < 0) {
                        status_from_error (resp, rt->res, rt->name, err, false);
                        kiln_error_free (err);
                        break;
                }
                /* A v1alpha1 patch applies to the v1alpha1 form. */
                doc = rt->alpha ? kiln_convert_down (old, rt->res->kind) : json_deep_copy (old);
                old_rv = rv_in (old);
                if (apply_patch (&doc, patch, type, resp) < 0
                    || (doc = alpha_in (rt, doc, resp)) == NULL
                    || check_update_body (rt, doc, resp) < 0) {
                        json_decref (doc);
                        json_decref (old);
                        break;
                }
                user_rv = rv_in (doc);
                memset (resp, 0, sizeof (*resp));
                write_update (api, rt, doc, old, user_rv > 0 ? user_rv : old_rv, resp);
                json_decref (doc);
                json_decref (old);
                if (resp->status != 409 || user_rv != old_rv || tries == 4)
                        break;
                free (resp->body);
                memset (resp, 0, sizeof (*resp));
        }
        json_decref (patch);
}

static void
do_delete (kiln_api *api, const route *rt, kiln_http_response *resp)
{
        json_t *old = NULL;
        kiln_error *err = NULL;
        after a = { .revalidate = rt->res == SECRETS || strstr (rt->res->kind, "Strategy") };

        if (kiln_store_delete (&old, api->store, rt->res->kind, rt->ns, rt->name, &err) < 0) {
                status_from_error (resp, rt->res, rt->name, err, false);
                kiln_error_free (err);
                return;
        }
        if (strcmp (rt->res->kind, "BuildRun") == 0 && api->runner) {
                const char *uid = json_string_value (
                    json_object_get (json_object_get (old, "metadata"), "uid"));
                kiln_runner_cancel (api->runner, rt->ns, rt->name);
                if (uid) {
                        cleanup_free char *log = kiln_runner_log_path (api->runner, uid);
                        cleanup_free char *upload = kiln_runner_upload_dir (api->runner, uid);
                        unlink (log);
                        kiln_rm_rf (upload, NULL);
                }
        }
        if (strcmp (rt->res->kind, "Build") == 0)
                kiln_retention_build_deleted (api->store, api->runner, old);
        run_after (api, rt, old, &a);
        respond_object (resp, 200, rt, old);
        json_decref (old);
}

static void
do_get (kiln_api *api, const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        json_t *obj = NULL;
        kiln_error *err = NULL;

        if (kiln_store_get (&obj, api->store, rt->res->kind, rt->ns, rt->name, &err) < 0) {
                status_from_error (resp, rt->res, rt->name, err, false);
                kiln_error_free (err);
                return;
        }
        if (rt->sub && strcmp (rt->sub, "log") == 0) {
                const char *uid = json_string_value (
                    json_object_get (json_object_get (obj, "metadata"), "uid"));
                const char *follow = kiln_http_query (req, "follow");
                cleanup_free char *path
                    = api->runner && uid ? kiln_runner_log_path (api->runner, uid) : NULL;
                kiln_log_respond (
                    resp, api->store, path, rt->ns, rt->name,
                    follow && (strcmp (follow, "true") == 0 || strcmp (follow, "1") == 0));
        } else {
                respond_object (resp, 200, rt, obj);
        }
        json_decref (obj);
}

/* ---- lists ---- */

static char *
continue_token (const json_t *obj)
{
        const json_t *m = json_object_get (obj, "metadata");
        const char *ns = json_string_value (json_object_get (m, "namespace"));
        const char *name = json_string_value (json_object_get (m, "name"));
        cleanup_free char *key = kiln_strdup_printf ("%s/%s", ns ? ns : "", name ? name : "");

        return kiln_base64_encode (key, strlen (key));
}

/* Lists are ordered by namespace, then name, as the store reads them. */
static bool
after_token (const json_t *obj, const char *key)
{
        const json_t *m = json_object_get (obj, "metadata");
        const char *ns = json_string_value (json_object_get (m, "namespace"));
        const char *name = json_string_value (json_object_get (m, "name"));
        const char *slash = strchr (key, '/');
        cleanup_free char *key_ns
            = slash ? strndup (key, (size_t) (slash - key)) : kiln_strdup (key);
        int c = strcmp (ns ? ns : "", key_ns);

        if (c != 0)
                return c > 0;
        return strcmp (name ? name : "", slash ? slash + 1 : "") > 0;
}

static int
list_params (const kiln_http_request *req, int64_t *limit, char **after_key,
             kiln_http_response *resp)
{
        const char *l = kiln_http_query (req, "limit");
        const char *c = kiln_http_query (req, "continue");
        unsigned char *raw = NULL;
        size_t len;

        *limit = 0;
        *after_key = NULL;
        if (l && *l && kiln_parse_int64 (l, 0, INT32_MAX, limit) < 0) {
                kiln_api_status (resp, 400, "BadRequest", "limit: Invalid value: \"%s\"", l);
                return -1;
        }
        if (c && *c) {
                if (kiln_base64_decode (&raw, &len, c, strlen (c), NULL) < 0) {
                        kiln_api_status (resp, 400, "BadRequest",
                                         "continue: Invalid value: not a continue token");
                        return -1;
                }
                *after_key = (char *) raw;
        }
        return 0;
}

static void
do_list (kiln_api *api, const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        const char *labels = kiln_http_query (req, "labelSelector");
        const char *fields = kiln_http_query (req, "fieldSelector");
        cleanup_free char *after_key = NULL;
        json_t *items = NULL, *out;
        kiln_error *err = NULL;
        int64_t rv, limit;
        size_t i;
        json_t *obj;
        char rvs[32];

        if (list_params (req, &limit, &after_key, resp) < 0)
                return;
        if (kiln_store_list (&items, &rv, api->store, rt->res->kind, rt->ns, &err) < 0) {
                status_from_error (resp, rt->res, "", err, false);
                kiln_error_free (err);
                return;
        }
        out = json_array ();
        json_t *meta = json_object ();
        json_array_foreach (items, i, obj)
        {
                bool match = true;
                if (after_key && !after_token (obj, after_key))
                        continue;
                if (kiln_selectors_match (&match, labels, fields, obj, &err) < 0) {
                        kiln_api_status (resp, 400, "BadRequest", "%s", err->msg);
                        kiln_error_free (err);
                        json_decref (out);
                        json_decref (meta);
                        json_decref (items);
                        return;
                }
                if (!match)
                        continue;
                if (limit > 0 && json_array_size (out) == (size_t) limit) {
                        cleanup_free char *tok
                            = continue_token (json_array_get (out, json_array_size (out) - 1));
                        json_object_set_new (meta, "continue", json_string (tok));
                        break;
                }
                json_array_append (out, obj);
        }
        snprintf (rvs, sizeof rvs, "%lld", (long long) rv);
        json_object_set_new (meta, "resourceVersion", json_string (rvs));
        cleanup_free char *av
            = *rt->res->group ? kiln_strdup_printf ("%s/%s", rt->res->group,
                                                    rt->alpha ? KILN_SHP_ALPHA : rt->res->version)
                              : kiln_strdup (rt->res->version);
        json_t *list = kiln_view_list (&rt->view, out, rt->res->list_kind, av, meta);
        respond_json (resp, 200, list);
        json_decref (list);
        json_decref (out);
        json_decref (meta);
        json_decref (items);
}

/* ---- dispatch ---- */

static bool
is_true (const char *v)
{
        return v && (*v == '\0' || strcmp (v, "true") == 0 || strcmp (v, "1") == 0);
}

static void
dispatch (kiln_api *api, const route *rt, const kiln_http_request *req, kiln_http_response *resp)
{
        const char *m = kiln_http_method (req);

        if (rt->name == NULL) {
                if (strcmp (m, "GET") == 0 && is_true (kiln_http_query (req, "watch")))
                        kiln_watch_respond (resp, api->store, &rt->view, rt->ns, req);
                else if (strcmp (m, "GET") == 0)
                        do_list (api, rt, req, resp);
                else if (strcmp (m, "POST") == 0 && (rt->ns || !rt->res->namespaced))
                        do_create (api, rt, req, resp);
                else
                        kiln_api_status (resp, 405, "MethodNotAllowed", "%s is not supported on %s",
                                         m, kiln_http_path (req));
                return;
        }
        if (rt->sub && strcmp (rt->sub, "source") == 0) {
                if (strcmp (m, "POST") == 0)
                        kiln_upload_handle (api->store, api->runner, rt->ns, rt->name, req, resp);
                else
                        kiln_api_status (resp, 405, "MethodNotAllowed",
                                         "the source takes POST with a tar body");
        } else if (strcmp (m, "GET") == 0)
                do_get (api, rt, req, resp);
        else if (rt->sub && strcmp (rt->sub, "log") == 0)
                kiln_api_status (resp, 405, "MethodNotAllowed", "the log is read-only");
        else if (strcmp (m, "PUT") == 0)
                do_replace (api, rt, req, resp);
        else if (strcmp (m, "PATCH") == 0)
                do_patch (api, rt, req, resp);
        else if (strcmp (m, "DELETE") == 0 && rt->sub == NULL)
                do_delete (api, rt, resp);
        else
                kiln_api_status (resp, 405, "MethodNotAllowed", "%s is not supported on %s", m,
                                 kiln_http_path (req));
}

/* Parses path (copied into buf) into rt; false when it names nothing. */
static bool
route_of (route *rt, char *buf, size_t size, const char *path)
{
        const char *seg[MAX_SEGMENTS];
        size_t n;

        if (kiln_strlcpy (buf, path, size) >= size)
                return false;
        n = split_path (buf, seg, MAX_SEGMENTS);
        return n <= MAX_SEGMENTS && parse_route (rt, seg, n);
}

static void
handle (void *data, const kiln_http_request *req, kiln_http_response *resp)
{
        kiln_api *api = data;
        const char *path = kiln_http_path (req);
        char buf[1024];
        const char *seg[MAX_SEGMENTS];
        size_t n;
        route rt;

        if (strcmp (path, "/healthz") == 0 || strcmp (path, "/readyz") == 0) {
                resp->status = 200;
                resp->content_type = "text/plain";
                resp->body = kiln_strdup ("ok");
                resp->len = 2;
                return;
        }
        if (strcmp (kiln_http_method (req), "GET") == 0 && discovery (resp, path))
                return;
        if (api->metrics && strcmp (path, "/metrics") == 0) {
                if (strcmp (kiln_http_method (req), "GET") == 0)
                        kiln_metrics_respond (api->metrics, resp);
                else
                        kiln_api_status (resp, 405, "MethodNotAllowed",
                                         "the server does not allow this method on /metrics");
                return;
        }
        if (kiln_strlcpy (buf, path, sizeof buf) >= sizeof buf) {
                kiln_api_status (resp, 414, "RequestURITooLong", "the path is too long");
                return;
        }
        n = split_path (buf, seg, MAX_SEGMENTS);
        if (n > MAX_SEGMENTS || !parse_route (&rt, seg, n)) {
                kiln_api_status (resp, 404, "NotFound",
                                 "the server could not find the requested "
                                 "resource (%s)",
                                 path);
                return;
        }
        if (rt.alpha && rt.res == SECRETS) {
                kiln_api_status (resp, 404, "NotFound",
                                 "the server could not find the requested resource (%s)", path);
                return;
        }
        /* Only reads answer with a Table; a write answers with the object. */
        kiln_view_init (
            &rt.view, rt.res->kind, rt.alpha,
            strcmp (kiln_http_method (req), "GET") == 0 ? kiln_http_header (req, "Accept") : NULL,
            kiln_http_query (req, "includeObject"));
        if (rt.ns && !kiln_name_is_valid (rt.ns)) {
                kiln_api_status (resp, 400, "BadRequest", "namespace: Invalid value: \"%s\"",
                                 rt.ns);
                return;
        }
        dispatch (api, &rt, req, resp);
}

static bool
token_matches (const char *have, const char *want)
{
        size_t n = strlen (want), m = strlen (have);
        unsigned char diff = (unsigned char) (n != m);

        /* Constant time in the token's length. */
        for (size_t i = 0; i < n; i++)
                diff |= (unsigned char) (want[i] ^ (i < m ? have[i] : 0));
        return diff == 0;
}

static void
precheck (void *data, const kiln_http_request *req, kiln_http_response *resp)
{
        kiln_api *api = data;
        const char *path = kiln_http_path (req);
        const char *auth = kiln_http_header (req, "Authorization");

        char buf[1024];
        route rt;

        if (strcmp (path, "/healthz") == 0 || strcmp (path, "/readyz") == 0)
                return;
        if (api->token
            && !(auth && kiln_str_has_prefix (auth, "Bearer ")
                 && token_matches (auth + 7, api->token))) {
                kiln_api_status (resp, 401, "Unauthorized",
                                 "Unauthorized: a valid bearer token is required");
                return;
        }
        /* An upload is spooled to disk, bounded by its own limit. */
        if (strcmp (kiln_http_method (req), "POST") == 0 && route_of (&rt, buf, sizeof buf, path)
            && rt.sub && strcmp (rt.sub, "source") == 0 && rt.ns && kiln_name_is_valid (rt.ns))
                kiln_upload_precheck (api->store, api->runner, api->max_source, rt.ns, rt.name,
                                      resp);
}

static void
server_error (void *data, int status, const char *msg, kiln_http_response *resp)
{
        (void) data;
        kiln_api_status (resp, status, status == 413 ? "RequestEntityTooLarge" : "InternalError",
                         "%s", msg);
}

void
kiln_api_new (kiln_api **out, const kiln_api_opts *opts)
{
        kiln_api *api = kiln_calloc (1, sizeof (*api));

        api->store = opts->store;
        api->runner = opts->runner;
        api->metrics = opts->metrics;
        api->token = kiln_strdup (opts->token);
        api->max_source = opts->max_source ? opts->max_source : (uint64_t) 1 << 30;
        *out = api;
}

void
kiln_api_free (kiln_api *api)
{
        if (api == NULL)
                return;
        if (api->token)
                explicit_bzero (api->token, strlen (api->token));
        free (api->token);
        free (api);
}

void
kiln_api_handlers (kiln_api *api, kiln_http_handlers *out)
{
        out->precheck = precheck;
        out->handle = handle;
        out->error = server_error;
        out->data = api;
}
