/* kiln: Build and BuildRun validation, as Shipwright's controllers do it.
 *
 * Reasons and messages follow Shipwright's (reference/shipwright-api.md
 * §1-§2) so that clients written for it read kiln's the same way. */
#include <ctype.h>
#include <stdarg.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/serve.h"

#define LABEL_VALUE_MAX 63
#define DEFAULT_TIMEOUT_MS (10 * 60 * 1000)

/* ---- durations and names ---- */

static int
unit_ms (const char **p, double *scale)
{
        static const struct {
                const char *unit;
                double ms;
        } units[] = {
                { "ns", 1e-6 }, { "us", 1e-3 }, { "\xc2\xb5s", 1e-3 }, { "ms", 1 },
                { "s", 1e3 },   { "m", 6e4 },   { "h", 3.6e6 },
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (units); i++) {
                size_t n = strlen (units[i].unit);
                /* "m" must not take the "m" of "ms". */
                if (strncmp (*p, units[i].unit, n) == 0
                    && !(strcmp (units[i].unit, "m") == 0 && (*p)[1] == 's')) {
                        *p += n;
                        *scale = units[i].ms;
                        return 0;
                }
        }
        return -1;
}

int
kiln_go_duration_parse (const char *s, int64_t *ms)
{
        const char *p = s;
        double total = 0;

        if (s == NULL || *s == '\0')
                return -1;
        if (strcmp (s, "0") == 0) {
                *ms = 0;
                return 0;
        }
        while (*p) {
                double v = 0, frac = 0.1, scale;
                bool digits = false;
                while (isdigit ((unsigned char) *p)) {
                        v = v * 10 + (*p++ - '0');
                        digits = true;
                }
                if (*p == '.') {
                        p++;
                        while (isdigit ((unsigned char) *p)) {
                                v += frac * (*p++ - '0');
                                frac /= 10;
                                digits = true;
                        }
                }
                if (!digits || unit_ms (&p, &scale) < 0)
                        return -1;
                total += v * scale;
                if (total > 9.2e15)
                        return -1;
        }
        *ms = (int64_t) (total + 0.5);
        return 0;
}

void
kiln_go_duration_format (char *buf, size_t size, int64_t ms)
{
        int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
        char sec[32];

        if (ms == 0) {
                snprintf (buf, size, "0s");
                return;
        }
        if (ms < 1000) {
                snprintf (buf, size, "%lldms", (long long) ms);
                return;
        }
        if (frac) {
                snprintf (sec, sizeof sec, "%lld.%03lld", (long long) s, (long long) frac);
                while (sec[strlen (sec) - 1] == '0')
                        sec[strlen (sec) - 1] = '\0';
        } else {
                snprintf (sec, sizeof sec, "%lld", (long long) s);
        }
        if (h)
                snprintf (buf, size, "%lldh%lldm%ss", (long long) h, (long long) m, sec);
        else if (m)
                snprintf (buf, size, "%lldm%ss", (long long) m, sec);
        else
                snprintf (buf, size, "%ss", sec);
}

bool
kiln_name_is_valid (const char *name)
{
        size_t n = name ? strlen (name) : 0;

        if (n == 0 || n > 253 || !isalnum ((unsigned char) name[0])
            || !isalnum ((unsigned char) name[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) name[i];
                if (!(islower (c) || isdigit (c) || c == '-' || c == '.'))
                        return false;
        }
        return true;
}

/* ---- verdicts ---- */

void
kiln_verdict_clear (kiln_verdict *v)
{
        free (v->message);
        v->message = NULL;
        v->reason = NULL;
}

static void __attribute__ ((format (printf, 3, 4)))
fail (kiln_verdict *v, const char *reason, const char *fmt, ...)
{
        va_list ap;

        if (v->reason)
                return; /* the first failure is the one reported */
        va_start (ap, fmt);
        if (vasprintf (&v->message, fmt, ap) < 0)
                abort ();
        va_end (ap);
        v->reason = reason;
}

static const char *
str_at (const json_t *obj, const char *key)
{
        return json_string_value (json_object_get (obj, key));
}

static bool
has_secret (kiln_store *s, const char *ns, const char *name)
{
        json_t *obj = NULL;

        if (kiln_store_get (&obj, s, "Secret", ns, name, NULL) < 0)
                return false;
        json_decref (obj);
        return true;
}

/* ---- parameters ---- */

static bool
param_is_array (const json_t *p)
{
        const char *t = str_at (p, "type");
        return t && strcmp (t, "array") == 0;
}

static bool
is_reserved_param (const char *name)
{
        return kiln_str_has_prefix (name, "shp-") || strcmp (name, "BUILDER_IMAGE") == 0
               || strcmp (name, "DOCKERFILE") == 0 || strcmp (name, "CONTEXT_DIR") == 0;
}

/* Names joined with ", " for one message. */
typedef struct name_list {
        kiln_buf b;
} name_list;

static void
add_name (name_list *l, const char *name)
{
        if (l->b.len)
                kiln_buf_puts (&l->b, ", ", NULL);
        kiln_buf_puts (&l->b, name, NULL);
}

static int
count_sources (const json_t *pv)
{
        return (json_object_get (pv, "value") != NULL)
               + (json_object_get (pv, "configMapValue") != NULL)
               + (json_object_get (pv, "secretValue") != NULL);
}

static bool
incomplete_ref (const json_t *ref)
{
        return ref
               && (!json_is_string (json_object_get (ref, "name"))
                   || !json_is_string (json_object_get (ref, "key")));
}

typedef struct param_lists {
        name_list restricted, undefined, inconsistent, wrong_type, empty_item, incomplete_cm,
            incomplete_secret;
} param_lists;

static void
param_lists_free (param_lists *l)
{
        name_list *all[]
            = { &l->restricted, &l->undefined,     &l->inconsistent,     &l->wrong_type,
                &l->empty_item, &l->incomplete_cm, &l->incomplete_secret };
        for (size_t i = 0; i < KILN_N_ELEMENTS (all); i++)
                kiln_buf_free (&all[i]->b);
}

static void
classify_value (param_lists *l, const json_t *pv, const json_t *def, const char *name)
{
        const json_t *values = json_object_get (pv, "values");
        size_t i;
        json_t *item;

        if (count_sources (pv) + (values != NULL) > 1)
                add_name (&l->inconsistent, name);
        else if (param_is_array (def) != (values != NULL))
                add_name (&l->wrong_type, name);
        if (incomplete_ref (json_object_get (pv, "configMapValue")))
                add_name (&l->incomplete_cm, name);
        if (incomplete_ref (json_object_get (pv, "secretValue")))
                add_name (&l->incomplete_secret, name);
        json_array_foreach (values, i, item)
        {
                if (count_sources (item) == 0)
                        add_name (&l->empty_item, name);
                if (incomplete_ref (json_object_get (item, "secretValue")))
                        add_name (&l->incomplete_secret, name);
                if (incomplete_ref (json_object_get (item, "configMapValue")))
                        add_name (&l->incomplete_cm, name);
        }
}

static void
report_lists (kiln_verdict *v, param_lists *l)
{
        if (l->restricted.b.len)
                fail (v, "RestrictedParametersInUse",
                      "The following parameters are restricted and cannot be set: %s",
                      l->restricted.b.data);
        if (l->undefined.b.len)
                fail (v, "UndefinedParameter",
                      "The following parameters are not defined in the build strategy: %s",
                      l->undefined.b.data);
        if (l->inconsistent.b.len)
                fail (v, "InconsistentParameterValues",
                      "The following parameters have more than one of 'configMapValue', "
                      "'secretValue', 'value' and 'values' set: %s",
                      l->inconsistent.b.data);
        if (l->wrong_type.b.len)
                fail (v, "WrongParameterValueType",
                      "The values for the following parameters are using the wrong type: %s",
                      l->wrong_type.b.data);
        if (l->empty_item.b.len)
                fail (v, "EmptyArrayItemParameterValues",
                      "The following parameters have an item with no value: %s",
                      l->empty_item.b.data);
        if (l->incomplete_cm.b.len)
                fail (v, "IncompleteConfigMapValueParameterValues",
                      "The following parameters have a configMapValue without name or key: %s",
                      l->incomplete_cm.b.data);
        if (l->incomplete_secret.b.len)
                fail (v, "IncompleteSecretValueParameterValues",
                      "The following parameters have a secretValue without name or key: %s",
                      l->incomplete_secret.b.data);
}

static void
check_params (kiln_verdict *v, const json_t *strategy, const json_t *values)
{
        param_lists l = { 0 };
        size_t i;
        json_t *pv;

        json_array_foreach (values, i, pv)
        {
                const char *name = str_at (pv, "name");
                const json_t *def;
                if (name == NULL)
                        continue; /* refused by the schema check */
                if (is_reserved_param (name)) {
                        add_name (&l.restricted, name);
                        continue;
                }
                def = kiln_strategy_entry (strategy, "parameters", name);
                if (def == NULL) {
                        add_name (&l.undefined, name);
                        continue;
                }
                classify_value (&l, pv, def, name);
        }
        report_lists (v, &l);
        param_lists_free (&l);
}

static bool
has_value_for (const json_t *values, const char *name)
{
        size_t i;
        json_t *pv;

        json_array_foreach (values, i, pv)
        {
                const char *n = str_at (pv, "name");
                if (n && strcmp (n, name) == 0)
                        return true;
        }
        return false;
}

static void
check_missing (kiln_verdict *v, const json_t *strategy, const json_t *values)
{
        const json_t *params = json_object_get (json_object_get (strategy, "spec"), "parameters");
        name_list missing = { KILN_BUF_INIT };
        size_t i;
        json_t *p;

        json_array_foreach (params, i, p)
        {
                const char *name = str_at (p, "name");
                bool has_default = param_is_array (p) ? json_object_get (p, "defaults") != NULL
                                                      : json_object_get (p, "default") != NULL;
                if (name && !has_default && !has_value_for (values, name))
                        add_name (&missing, name);
        }
        if (missing.b.len)
                fail (v, "MissingParameterValues",
                      "The following parameters are required but no value has been provided: %s",
                      missing.b.data);
        kiln_buf_free (&missing.b);
}

/* ---- strategies, secrets, env ---- */

static json_t *
lookup_strategy (kiln_verdict *v, kiln_store *s, const char *ns, const json_t *spec)
{
        const json_t *st = json_object_get (spec, "strategy");
        const char *name = str_at (st, "name");
        const char *kind = str_at (st, "kind");
        json_t *obj = NULL;

        if (kind == NULL)
                kind = "BuildStrategy"; /* as Shipwright's controller reads a missing kind */
        if (strcmp (kind, "ClusterBuildStrategy") == 0) {
                if (kiln_store_get (&obj, s, kind, "", name ? name : "", NULL) < 0)
                        fail (v, "ClusterBuildStrategyNotFound",
                              "clusterBuildStrategy %s does not exist", name ? name : "");
        } else if (strcmp (kind, "BuildStrategy") == 0) {
                if (kiln_store_get (&obj, s, kind, ns, name ? name : "", NULL) < 0)
                        fail (v, "BuildStrategyNotFound",
                              "buildStrategy %s does not exist in namespace %s", name ? name : "",
                              ns);
        } else {
                fail (v, "UnknownBuildStrategyKind", "unknown strategy kind %s used in build",
                      kind);
        }
        return obj;
}

static void
check_secrets (kiln_verdict *v, kiln_store *s, const char *ns, const json_t *spec)
{
        const char *clone
            = str_at (json_object_get (json_object_get (spec, "source"), "git"), "cloneSecret");
        const char *push = str_at (json_object_get (spec, "output"), "pushSecret");
        bool clone_missing = clone && *clone && !has_secret (s, ns, clone);
        bool push_missing = push && *push && !has_secret (s, ns, push);

        if (clone_missing && push_missing)
                fail (v, "MultipleSecretRefNotFound", "missing secrets are %s,%s", clone, push);
        else if (clone_missing)
                fail (v, "SpecSourceSecretRefNotFound", "referenced secret %s not found", clone);
        else if (push_missing)
                fail (v, "SpecOutputSecretRefNotFound", "referenced secret %s not found", push);
}

/* Variables that would change how a step's programs load or where kiln
 * finds credentials. */
static bool
env_name_forbidden (const char *name)
{
        static const char *const exact[]
            = { "BASH_ENV", "ENV", "NODE_OPTIONS", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "PATH" };
        static const char *const prefixes[] = { "LD_", "BASH_FUNC_", "KILN_" };

        for (size_t i = 0; i < KILN_N_ELEMENTS (exact); i++)
                if (strcmp (name, exact[i]) == 0)
                        return true;
        for (size_t i = 0; i < KILN_N_ELEMENTS (prefixes); i++)
                if (kiln_str_has_prefix (name, prefixes[i]))
                        return true;
        return false;
}

static void
check_env (kiln_verdict *v, const json_t *env)
{
        size_t i;
        json_t *e;

        json_array_foreach (env, i, e)
        {
                const char *name = str_at (e, "name");
                if (name == NULL || *name == '\0') {
                        fail (v, "SpecEnvNameCanNotBeBlank",
                              "name for environment variable must not be blank");
                } else if (json_object_get (e, "value") && json_object_get (e, "valueFrom")) {
                        fail (v, "SpecEnvOnlyOneOfValueOrValueFromMustBeSpecified",
                              "only one of value or valueFrom must be specified for %s", name);
                } else if (env_name_forbidden (name)) {
                        fail (v, "SpecEnvNameForbidden",
                              "environment variable %s is forbidden: it could change how the "
                              "build's programs run",
                              name);
                }
        }
}

static void
check_output (kiln_verdict *v, const json_t *spec)
{
        cleanup_free char *message = NULL;
        const char *reason = kiln_output_timestamp_check (spec, &message);

        if (reason)
                fail (v, reason, "%s", message);
}

void
kiln_validate_build (kiln_verdict *out, kiln_store *s, const char *ns, const char *name,
                     const json_t *spec)
{
        json_t *strategy;

        memset (out, 0, sizeof (*out));
        if (name && strlen (name) > LABEL_VALUE_MAX)
                fail (out, "BuildNameInvalid",
                      "build name is invalid: must be no more than %d characters", LABEL_VALUE_MAX);
        check_secrets (out, s, ns, spec);
        if (out->reason)
                return;
        strategy = lookup_strategy (out, s, ns, spec);
        if (strategy)
                check_params (out, strategy, json_object_get (spec, "paramValues"));
        json_decref (strategy);
        check_env (out, json_object_get (spec, "env"));
        check_output (out, spec);
}

void
kiln_build_set_status (json_t *build, const kiln_verdict *v)
{
        json_t *status = json_object ();

        json_object_set_new (status, "registered", json_string (v->reason ? "False" : "True"));
        json_object_set_new (status, "reason", json_string (v->reason ? v->reason : "Succeeded"));
        json_object_set_new (status, "message",
                             json_string (v->reason ? v->message : "all validations succeeded"));
        json_object_set_new (build, "status", status);
}

/* ---- BuildRuns ---- */

void
kiln_resolved_clear (kiln_resolved *r)
{
        json_decref (r->build_spec);
        json_decref (r->effective);
        json_decref (r->strategy);
        free (r->build_name);
        memset (r, 0, sizeof (*r));
}

/* BuildRun values win over the Build's, by name. */
static void
merge_named (json_t *spec, const char *key, const json_t *overrides)
{
        json_t *list = json_object_get (spec, key);
        size_t i, j;
        json_t *o, *cur;

        if (!json_is_array (overrides))
                return;
        if (!json_is_array (list)) {
                list = json_array ();
                json_object_set_new (spec, key, list);
        }
        json_array_foreach (overrides, i, o)
        {
                const char *name = str_at (o, "name");
                bool replaced = false;
                json_array_foreach (list, j, cur)
                {
                        const char *n = str_at (cur, "name");
                        if (name && n && strcmp (n, name) == 0) {
                                json_array_set (list, j, o);
                                replaced = true;
                                break;
                        }
                }
                if (!replaced)
                        json_array_append (list, o);
        }
}

static json_t *
apply_overrides (const json_t *build_spec, const json_t *br_spec)
{
        json_t *eff = json_deep_copy (build_spec);
        const json_t *out = json_object_get (br_spec, "output");
        const json_t *timeout = json_object_get (br_spec, "timeout");

        merge_named (eff, "paramValues", json_object_get (br_spec, "paramValues"));
        merge_named (eff, "env", json_object_get (br_spec, "env"));
        if (json_is_object (out)) {
                json_t *o = json_object_get (eff, "output");
                if (!json_is_object (o)) {
                        o = json_object ();
                        json_object_set_new (eff, "output", o);
                }
                json_object_update (o, (json_t *) out);
        }
        if (timeout)
                json_object_set (eff, "timeout", (json_t *) timeout);
        /* A BuildRun's source (only type Local exists: `shp build upload`)
         * replaces the Build's; the Build's contextDir still applies. */
        if (json_is_object (json_object_get (br_spec, "source"))) {
                json_t *src = json_deep_copy (json_object_get (br_spec, "source"));
                const json_t *ctx = json_object_get (json_object_get (eff, "source"), "contextDir");
                if (ctx && !json_object_get (src, "contextDir"))
                        json_object_set (src, "contextDir", (json_t *) ctx);
                json_object_set_new (eff, "source", src);
        }
        return eff;
}

static bool
has_overrides (const json_t *spec)
{
        static const char *const keys[] = { "paramValues", "output",        "timeout",
                                            "env",         "stepResources", "nodeSelector",
                                            "tolerations", "schedulerName", "runtimeClassName" };
        for (size_t i = 0; i < KILN_N_ELEMENTS (keys); i++)
                if (json_object_get (spec, keys[i]))
                        return true;
        return false;
}

static void
resolve_referenced (kiln_verdict *v, kiln_resolved *res, kiln_store *s, const char *ns,
                    const char *build_name)
{
        json_t *build = NULL;
        const json_t *status;
        const char *registered;

        if (kiln_store_get (&build, s, "Build", ns, build_name, NULL) < 0) {
                fail (v, "BuildNotFound", "build.shipwright.io \"%s\" not found", build_name);
                return;
        }
        status = json_object_get (build, "status");
        registered = str_at (status, "registered");
        if (registered == NULL || strcmp (registered, "True") != 0)
                fail (v, "BuildRegistrationFailed",
                      "the Build is not registered correctly, build: %s, registered status: %s, "
                      "reason: %s",
                      build_name, registered ? registered : "Unknown",
                      str_at (status, "reason") ? str_at (status, "reason") : "");
        res->build_spec = json_deep_copy (json_object_get (build, "spec"));
        res->build_generation = json_integer_value (
            json_object_get (json_object_get (build, "metadata"), "generation"));
        json_decref (build);
}

static void
resolve_build (kiln_verdict *v, kiln_resolved *res, kiln_store *s, const char *ns, const json_t *br)
{
        const json_t *spec = json_object_get (br, "spec");
        const json_t *b = json_object_get (spec, "build");
        const char *build_name = str_at (b, "name");
        const json_t *embedded = json_object_get (b, "spec");
        const json_t *snapshot = json_object_get (json_object_get (br, "status"), "buildSpec");
        bool named = build_name && *build_name;

        if (named && embedded)
                fail (v, "BuildRunAmbiguousBuild",
                      "fields spec.build.name and spec.build.spec are mutually exclusive");
        else if (!named && !json_is_object (embedded))
                fail (v, "BuildRunNoRefOrSpec",
                      "no build referenced or specified, either 'spec.build.name' or "
                      "'spec.build.spec' has to be set");
        else if (embedded && has_overrides (spec))
                fail (v, "BuildRunBuildFieldOverrideForbidden",
                      "cannot use overrides together with an embedded spec.build.spec");
        if (v->reason)
                return;
        res->build_name = named ? kiln_strdup (build_name) : NULL;
        if (json_is_object (snapshot)) {
                res->build_spec = json_deep_copy (snapshot);
        } else if (named) {
                resolve_referenced (v, res, s, ns, build_name);
        } else {
                kiln_validate_build (v, s, ns, NULL, embedded);
                res->build_spec = json_deep_copy (embedded);
        }
}

void
kiln_validate_buildrun (kiln_verdict *out, kiln_resolved *res, kiln_store *s, const char *ns,
                        const json_t *br)
{
        const char *name = str_at (json_object_get (br, "metadata"), "name");
        const json_t *spec = json_object_get (br, "spec");
        const char *timeout;

        memset (out, 0, sizeof (*out));
        memset (res, 0, sizeof (*res));
        if (name && strlen (name) > LABEL_VALUE_MAX)
                fail (out, "BuildRunNameInvalid",
                      "buildrun name is invalid: must be no more than %d characters",
                      LABEL_VALUE_MAX);
        if (out->reason == NULL)
                resolve_build (out, res, s, ns, br);
        if (out->reason)
                return;
        res->effective = apply_overrides (res->build_spec, spec);
        res->strategy = lookup_strategy (out, s, ns, res->effective);
        if (res->strategy) {
                const json_t *values = json_object_get (res->effective, "paramValues");
                check_params (out, res->strategy, values);
                check_missing (out, res->strategy, values);
        }
        check_env (out, json_object_get (spec, "env"));
        check_output (out, res->effective);
        timeout = str_at (res->effective, "timeout");
        res->timeout_ms = DEFAULT_TIMEOUT_MS;
        if (timeout
            && (kiln_go_duration_parse (timeout, &res->timeout_ms) < 0 || res->timeout_ms <= 0))
                fail (out, "InvalidTimeout", "timeout `%s` is not a positive duration", timeout);
}

/* ---- conditions ---- */

void
kiln_buildrun_set_condition (json_t *br, const char *status, const char *reason,
                             const char *message)
{
        json_t *st = json_object_get (br, "status");
        json_t *conds;
        char now[32];

        if (!json_is_object (st)) {
                st = json_object ();
                json_object_set_new (br, "status", st);
        }
        kiln_store_now (now);
        conds = json_array ();
        json_array_append_new (conds, json_pack ("{s:s,s:s,s:s,s:s,s:s}", "type", "Succeeded",
                                                 "status", status, "reason", reason, "message",
                                                 message, "lastTransitionTime", now));
        json_object_set_new (st, "conditions", conds);
        if (strcmp (status, "Unknown") != 0 && !json_object_get (st, "completionTime"))
                json_object_set_new (st, "completionTime", json_string (now));
}

bool
kiln_buildrun_is_done (const json_t *br)
{
        const json_t *conds = json_object_get (json_object_get (br, "status"), "conditions");
        size_t i;
        json_t *c;

        json_array_foreach (conds, i, c)
        {
                const char *type = str_at (c, "type");
                const char *status = str_at (c, "status");
                if (type && strcmp (type, "Succeeded") == 0 && status
                    && strcmp (status, "Unknown") != 0)
                        return true;
        }
        return false;
}
