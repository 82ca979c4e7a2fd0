/* kiln: shipwright.io/v1alpha1 <-> v1beta1, as Shipwright's conversion
 * webhook does it.  Objects are stored as v1beta1; a request on a
 * v1alpha1 path is converted up before it is checked and stored, and
 * every object it reads is converted down.  Fields one version has and
 * the other lacks (v1alpha1 HTTP sources, a v1beta1 step's extra
 * container fields) are dropped, as the webhook drops them. */
#include <string.h>

#include "kiln/serve.h"

#define ALPHA "shipwright.io/v1alpha1"
#define BETA "shipwright.io/v1beta1"
#define DELETION_ANNOTATION "build.shipwright.io/build-run-deletion"

/* ---- small moves ---- */

static json_t *
child (json_t *o, const char *k)
{
        json_t *c = json_object_get (o, k);

        return json_is_object (c) ? c : NULL;
}

static json_t *
ensure (json_t *o, const char *k)
{
        json_t *c = child (o, k);

        if (c == NULL) {
                c = json_object ();
                json_object_set_new (o, k, c);
        }
        return c;
}

/* Moves from[fk] to to[tk] when it is there. */
static void
move (json_t *from, const char *fk, json_t *to, const char *tk)
{
        json_t *v = json_object_get (from, fk);

        if (v == NULL)
                return;
        json_object_set (to, tk, v);
        json_object_del (from, fk);
}

static void
drop_if_empty (json_t *o, const char *k)
{
        json_t *c = json_object_get (o, k);

        if ((json_is_object (c) && json_object_size (c) == 0)
            || (json_is_array (c) && json_array_size (c) == 0))
                json_object_del (o, k);
}

/* {"name": x} from a string member of o, or nothing. */
static void
name_ref (json_t *from, const char *fk, json_t *to, const char *tk)
{
        json_t *v = json_object_get (from, fk);

        if (v == NULL)
                return;
        json_object_set_new (to, tk, json_pack ("{s:O}", "name", v));
        json_object_del (from, fk);
}

/* The string x of {"name": x} in from[fk], moved to to[tk]. */
static void
name_of (json_t *from, const char *fk, json_t *to, const char *tk)
{
        json_t *ref = child (from, fk);
        json_t *name = json_object_get (ref, "name");

        if (name)
                json_object_set (to, tk, name);
        if (json_object_get (from, fk))
                json_object_del (from, fk);
}

/* ---- Build.spec ---- */

static void
source_up (json_t *spec)
{
        json_t *src = child (spec, "source");
        json_t *out = json_object ();

        if (src && json_object_get (src, "url")) {
                json_t *git = ensure (out, "git");
                json_object_set_new (out, "type", json_string ("Git"));
                move (src, "url", git, "url");
                move (src, "revision", git, "revision");
                name_of (src, "credentials", git, "cloneSecret");
        } else if (src && child (src, "bundleContainer")) {
                json_t *b = child (src, "bundleContainer");
                json_t *oci = ensure (out, "ociArtifact");
                json_object_set_new (out, "type", json_string ("OCI"));
                move (b, "image", oci, "image");
                move (b, "prune", oci, "prune");
                name_of (src, "credentials", oci, "pullSecret");
        }
        if (src)
                move (src, "contextDir", out, "contextDir");
        /* A LocalCopy source is what v1beta1 calls a Local source. */
        json_t *sources = json_object_get (spec, "sources");
        size_t i;
        json_t *s;
        json_array_foreach (sources, i, s)
        {
                const char *type = json_string_value (json_object_get (s, "type"));
                if (type && strcmp (type, "LocalCopy") == 0 && !json_object_get (out, "type")) {
                        json_t *local = ensure (out, "local");
                        json_object_set_new (out, "type", json_string ("Local"));
                        json_object_set (local, "name", json_object_get (s, "name"));
                        if (json_object_get (s, "timeout"))
                                json_object_set (local, "timeout", json_object_get (s, "timeout"));
                }
        }
        json_object_del (spec, "sources");
        if (json_object_size (out))
                json_object_set (spec, "source", out);
        else
                json_object_del (spec, "source");
        json_decref (out);
}

static void
source_down (json_t *spec)
{
        json_t *src = child (spec, "source");
        json_t *out = json_object ();
        const char *type = json_string_value (json_object_get (src, "type"));
        json_t *git = child (src, "git");
        json_t *oci = child (src, "ociArtifact");
        json_t *local = child (src, "local");

        if (src == NULL) {
                json_decref (out);
                return;
        }
        if (git && (type == NULL || strcmp (type, "Git") == 0)) {
                move (git, "url", out, "url");
                move (git, "revision", out, "revision");
                name_ref (git, "cloneSecret", out, "credentials");
        } else if (oci && type && strcmp (type, "OCI") == 0) {
                json_t *b = ensure (out, "bundleContainer");
                move (oci, "image", b, "image");
                move (oci, "prune", b, "prune");
                name_ref (oci, "pullSecret", out, "credentials");
        } else if (local && type && strcmp (type, "Local") == 0) {
                json_t *s = json_pack ("{s:s}", "type", "LocalCopy");
                move (local, "name", s, "name");
                move (local, "timeout", s, "timeout");
                json_object_set_new (spec, "sources", json_pack ("[o]", s));
        }
        move (src, "contextDir", out, "contextDir");
        if (json_object_size (out))
                json_object_set (spec, "source", out);
        else
                json_object_del (spec, "source");
        json_decref (out);
}

static void
add_param (json_t *spec, const char *name, json_t *value)
{
        json_t *pv = json_object_get (spec, "paramValues");

        if (!json_is_array (pv)) {
                pv = json_array ();
                json_object_set_new (spec, "paramValues", pv);
        }
        json_array_append_new (pv, json_pack ("{s:s,s:O}", "name", name, "value", value));
}

/* Takes the param `name` out of paramValues: its value, or NULL. */
static json_t *
take_param (json_t *spec, const char *name)
{
        json_t *pv = json_object_get (spec, "paramValues");
        size_t i;
        json_t *p;

        json_array_foreach (pv, i, p)
        {
                const char *n = json_string_value (json_object_get (p, "name"));
                json_t *v = json_object_get (p, "value");
                if (n && strcmp (n, name) == 0 && json_is_string (v)) {
                        json_incref (v);
                        json_array_remove (pv, i);
                        drop_if_empty (spec, "paramValues");
                        return v;
                }
        }
        return NULL;
}

static void
output_up (json_t *out)
{
        if (out)
                name_of (out, "credentials", out, "pushSecret");
}

static void
output_down (json_t *out)
{
        if (out)
                name_ref (out, "pushSecret", out, "credentials");
}

static void
build_spec_up (json_t *spec)
{
        json_t *v;

        if (spec == NULL)
                return;
        source_up (spec);
        if ((v = json_object_get (spec, "dockerfile")) && json_is_string (v)) {
                add_param (spec, "dockerfile", v);
                json_object_del (spec, "dockerfile");
        }
        if ((v = json_object_get (child (spec, "builder"), "image")) && json_is_string (v))
                add_param (spec, "builder-image", v);
        json_object_del (spec, "builder");
        json_object_del (child (spec, "strategy"), "apiVersion");
        output_up (child (spec, "output"));
}

static void
build_spec_down (json_t *spec)
{
        json_t *v;

        if (spec == NULL)
                return;
        source_down (spec);
        if ((v = take_param (spec, "dockerfile")))
                json_object_set_new (spec, "dockerfile", v);
        if ((v = take_param (spec, "builder-image")))
                json_object_set_new (spec, "builder", json_pack ("{s:o}", "image", v));
        output_down (child (spec, "output"));
}

/* v1alpha1 marks "delete my BuildRuns with me" with an annotation. */
static void
retention_up (json_t *obj)
{
        json_t *ann = child (child (obj, "metadata"), "annotations");
        const char *v = json_string_value (json_object_get (ann, DELETION_ANNOTATION));

        if (v == NULL)
                return;
        json_object_set_new (ensure (child (obj, "spec"), "retention"), "atBuildDeletion",
                             json_boolean (strcmp (v, "true") == 0));
        json_object_del (ann, DELETION_ANNOTATION);
        drop_if_empty (child (obj, "metadata"), "annotations");
}

static void
retention_down (json_t *obj)
{
        json_t *ret = child (child (obj, "spec"), "retention");
        json_t *v = json_object_get (ret, "atBuildDeletion");

        if (!json_is_boolean (v))
                return;
        json_object_set_new (ensure (ensure (obj, "metadata"), "annotations"), DELETION_ANNOTATION,
                             json_string (json_is_true (v) ? "true" : "false"));
        json_object_del (ret, "atBuildDeletion");
        drop_if_empty (child (obj, "spec"), "retention");
}

/* ---- BuildRun ---- */

static void
buildrun_spec_up (json_t *spec)
{
        json_t *sa = json_object_get (spec, "serviceAccount");
        json_t *build = NULL;

        if (spec == NULL)
                return;
        if (child (spec, "buildRef")) {
                build = ensure (spec, "build");
                move (child (spec, "buildRef"), "name", build, "name");
                json_object_del (spec, "buildRef");
        }
        if (child (spec, "buildSpec")) {
                build = ensure (spec, "build");
                move (spec, "buildSpec", build, "spec");
                build_spec_up (child (build, "spec"));
        }
        if (json_is_object (sa)) {
                json_t *name = json_object_get (sa, "name");
                if (json_is_true (json_object_get (sa, "generate")))
                        json_object_set_new (spec, "serviceAccount", json_string (".generate"));
                else if (name)
                        json_object_set (spec, "serviceAccount", name);
                else
                        json_object_del (spec, "serviceAccount");
        }
        /* Only a LocalCopy entry has a v1beta1 form. */
        if (json_object_get (spec, "sources"))
                source_up (spec);
        output_up (child (spec, "output"));
}

static void
buildrun_spec_down (json_t *spec)
{
        json_t *build = child (spec, "build");
        json_t *sa = json_object_get (spec, "serviceAccount");

        if (spec == NULL)
                return;
        if (build && json_object_get (build, "name"))
                json_object_set_new (spec, "buildRef",
                                     json_pack ("{s:O}", "name", json_object_get (build, "name")));
        if (build && child (build, "spec")) {
                json_object_set (spec, "buildSpec", child (build, "spec"));
                build_spec_down (child (spec, "buildSpec"));
        }
        json_object_del (spec, "build");
        if (json_is_string (sa)) {
                if (strcmp (json_string_value (sa), ".generate") == 0)
                        json_object_set_new (spec, "serviceAccount",
                                             json_pack ("{s:b}", "generate", true));
                else
                        json_object_set_new (spec, "serviceAccount",
                                             json_pack ("{s:O}", "name", sa));
        }
        if (child (spec, "source")) {
                source_down (spec);
                json_object_del (spec, "source");
        }
        output_down (child (spec, "output"));
}

static void
buildrun_status_up (json_t *st)
{
        json_t *sources = json_object_get (st, "sources");
        json_t *first = json_array_get (sources, 0);
        json_t *fd = child (st, "failureDetails");

        if (st == NULL)
                return;
        if (json_is_object (first)) {
                json_t *src = json_object ();
                move (first, "git", src, "git");
                if (child (first, "bundle"))
                        json_object_set_new (
                            src, "ociArtifact",
                            json_pack ("{s:O*}", "digest",
                                       json_object_get (child (first, "bundle"), "digest")));
                move (first, "timestamp", src, "timestamp");
                json_object_set_new (st, "source", src);
        }
        json_object_del (st, "sources");
        if (child (st, "failedAt") && fd && !json_object_get (fd, "location"))
                move (st, "failedAt", fd, "location");
        json_object_del (st, "failedAt");
        if (json_object_get (st, "latestTaskRunRef"))
                json_object_set_new (st, "executor",
                                     json_pack ("{s:O,s:s}", "name",
                                                json_object_get (st, "latestTaskRunRef"), "kind",
                                                "TaskRun"));
        json_object_del (st, "latestTaskRunRef");
        build_spec_up (child (st, "buildSpec"));
}

static void
buildrun_status_down (json_t *st)
{
        json_t *src = child (st, "source");
        json_t *loc = child (child (st, "failureDetails"), "location");

        if (st == NULL)
                return;
        if (src) {
                json_t *s = json_pack ("{s:s}", "name", "default");
                move (src, "git", s, "git");
                if (child (src, "ociArtifact"))
                        json_object_set_new (
                            s, "bundle",
                            json_pack ("{s:O*}", "digest",
                                       json_object_get (child (src, "ociArtifact"), "digest")));
                move (src, "timestamp", s, "timestamp");
                json_object_set_new (st, "sources", json_pack ("[o]", s));
                json_object_del (st, "source");
        }
        if (loc)
                json_object_set (st, "failedAt", loc);
        if (child (st, "executor")) {
                json_t *name = json_object_get (child (st, "executor"), "name");
                if (name)
                        json_object_set (st, "latestTaskRunRef", name);
                json_object_del (st, "executor");
        }
        build_spec_down (child (st, "buildSpec"));
}

/* ---- strategies ---- */

static json_t *
step_up (json_t *s)
{
        static const char *const keep[] = { "name",           "image",        "command",
                                            "args",           "workingDir",   "env",
                                            "resources",      "volumeMounts", "imagePullPolicy",
                                            "securityContext" };
        json_t *step;

        if (!json_is_object (s))
                return json_incref (s);
        step = json_object ();
        for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
                if (json_object_get (s, keep[k]))
                        json_object_set (step, keep[k], json_object_get (s, keep[k]));
        return step;
}

static void
steps_up (json_t *spec)
{
        json_t *steps = json_object_get (spec, "buildSteps");
        size_t i;
        json_t *s;

        if (!json_is_array (steps)) {
                move (spec, "buildSteps", spec, "steps");
                return;
        }
        json_t *out = json_array ();
        json_array_foreach (steps, i, s)
        {
                json_array_append_new (out, step_up (s));
        }
        json_object_set_new (spec, "steps", out);
        json_object_del (spec, "buildSteps");
}

/* ---- the entry points ---- */

static bool
is (const char *kind, const char *want)
{
        return strcmp (kind, want) == 0;
}

json_t *
kiln_convert_up (const json_t *obj, const char *kind)
{
        json_t *o = json_deep_copy (obj);
        json_t *spec = child (o, "spec");

        if (!json_is_object (o))
                return o;
        json_object_set_new (o, "apiVersion", json_string (BETA));
        if (is (kind, "Build")) {
                build_spec_up (spec);
                retention_up (o);
        } else if (is (kind, "BuildRun")) {
                buildrun_spec_up (spec);
                buildrun_status_up (child (o, "status"));
        } else if (spec) {
                steps_up (spec);
        }
        return o;
}

json_t *
kiln_convert_down (const json_t *obj, const char *kind)
{
        json_t *o = json_deep_copy (obj);
        json_t *spec = child (o, "spec");

        if (!json_is_object (o))
                return o;
        json_object_set_new (o, "apiVersion", json_string (ALPHA));
        if (is (kind, "Build")) {
                build_spec_down (spec);
                retention_down (o);
        } else if (is (kind, "BuildRun")) {
                buildrun_spec_down (spec);
                buildrun_status_down (child (o, "status"));
        } else if (spec) {
                move (spec, "steps", spec, "buildSteps");
        }
        return o;
}
