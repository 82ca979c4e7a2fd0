/* kiln: values a BuildRun takes from Secrets and ConfigMaps at run time:
 * paramValues[].secretValue / configMapValue and env[].valueFrom
 * secretKeyRef / configMapKeyRef.
 *
 * As in Shipwright, where the pod would not start, a reference to a
 * missing object or key is found when the run starts, not when the Build
 * is written.  Secret values stay in memory; none is ever logged. */
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/serve.h"

int
kiln_ref_value (char **out, kiln_store *s, const char *ns, const char *kind, const char *name,
                const char *key, kiln_error **err)
{
        bool secret = strcmp (kind, "Secret") == 0;
        const char *what = secret ? "secret" : "configmap";
        json_t *obj = NULL;
        const char *v;
        unsigned char *raw = NULL;
        size_t len;
        int r = 0;

        *out = NULL;
        if (name == NULL || *name == '\0' || key == NULL || *key == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "a %s reference needs name and key", what);
        if (kiln_store_get (&obj, s, kind, ns, name, NULL) < 0)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "%s %s not found", what, name);
        v = json_string_value (json_object_get (json_object_get (obj, "data"), key));
        if (v == NULL)
                r = kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "%s %s has no key %s", what, name,
                                      key);
        else if (!secret)
                *out = kiln_strdup (v);
        else if (kiln_base64_decode (&raw, &len, v, strlen (v), NULL) < 0)
                r = kiln_error_makec (err, KILN_E_INVALID, 0, "secret %s: key %s is not base64",
                                      name, key);
        else
                *out = (char *) raw;
        json_decref (obj);
        return r;
}

/* format "KEY=${SECRET_VALUE}" with the value in place of the marker. */
static char *
apply_format (const char *format, const char *marker, const char *value)
{
        const char *at = format ? strstr (format, marker) : NULL;

        if (format == NULL)
                return kiln_strdup (value);
        if (at == NULL)
                return kiln_strdup (format);
        return kiln_strdup_printf ("%.*s%s%s", (int) (at - format), format, value,
                                   at + strlen (marker));
}

static void
free_secret (char *s)
{
        if (s) {
                explicit_bzero (s, strlen (s));
                free (s);
        }
}

int
kiln_ref_param_value (char **out, kiln_store *s, const char *ns, const json_t *ref, bool secret,
                      kiln_error **err)
{
        char *raw = NULL;

        if (kiln_ref_value (&raw, s, ns, secret ? "Secret" : "ConfigMap",
                            json_string_value (json_object_get (ref, "name")),
                            json_string_value (json_object_get (ref, "key")), err)
            < 0)
                return -1;
        *out = apply_format (json_string_value (json_object_get (ref, "format")),
                             secret ? "${SECRET_VALUE}" : "${CONFIGMAP_VALUE}", raw);
        free_secret (raw);
        return 0;
}

/* One valueFrom: {secretKeyRef: {name, key}} or {configMapKeyRef: ...}. */
static int
value_from (char **out, kiln_store *s, const char *ns, const json_t *vf, kiln_error **err)
{
        const json_t *sk = json_object_get (vf, "secretKeyRef");
        const json_t *ck = json_object_get (vf, "configMapKeyRef");
        const json_t *ref = sk ? sk : ck;

        if (ref == NULL || (sk && ck))
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "valueFrom takes exactly one of secretKeyRef and "
                                         "configMapKeyRef");
        return kiln_ref_value (out, s, ns, sk ? "Secret" : "ConfigMap",
                               json_string_value (json_object_get (ref, "name")),
                               json_string_value (json_object_get (ref, "key")), err);
}

int
kiln_ref_env (json_t **out, kiln_store *s, const char *ns, const json_t *env, kiln_error **err)
{
        json_t *list = json_array ();
        size_t i;
        json_t *e;

        json_array_foreach (env, i, e)
        {
                const char *name = json_string_value (json_object_get (e, "name"));
                const json_t *vf = json_object_get (e, "valueFrom");
                char *v = NULL;
                if (name == NULL)
                        continue;
                if (vf == NULL) {
                        json_array_append (list, e);
                        continue;
                }
                if (value_from (&v, s, ns, vf, err) < 0) {
                        json_decref (list);
                        return kiln_error_wrap (err, "env %s", name);
                }
                json_array_append_new (
                    list, json_pack ("{s:s,s:s,s:b}", "name", name, "value", v, "literal", true));
                free_secret (v);
        }
        *out = list;
        return 0;
}
