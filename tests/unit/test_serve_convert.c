/* Unit tests: shipwright.io/v1alpha1 <-> v1beta1 conversion of each kind
 * (examples after the reference's), and the Table view kubectl asks for. */
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/serve.h"
#include "unit.h"

/* JSON written with ' for " so that the examples stay readable. */
static json_t *
J (const char *s)
{
        cleanup_free char *d = kiln_strdup (s);
        json_t *j;

        for (char *p = d; *p; p++)
                if (*p == '\'')
                        *p = '"';
        j = json_loads (d, 0, NULL);
        if (j == NULL)
                abort ();
        return j;
}

static bool
same (const json_t *a, const json_t *b)
{
        if (json_equal (a, b))
                return true;
        char *x = json_dumps (a, JSON_SORT_KEYS | JSON_COMPACT);
        char *y = json_dumps (b, JSON_SORT_KEYS | JSON_COMPACT);
        fprintf (stderr, "  got  %s\n  want %s\n", x, y);
        free (x);
        free (y);
        return false;
}

/* up(alpha) == beta and down(beta) == alpha. */
static void
round_trip (const char *kind, const char *alpha, const char *beta)
{
        json_t *a = J (alpha), *b = J (beta);
        json_t *up = kiln_convert_up (a, kind);
        json_t *down = kiln_convert_down (up, kind);

        CHECK (same (up, b));
        CHECK (same (down, a));
        json_decref (a);
        json_decref (b);
        json_decref (up);
        json_decref (down);
}

static void
test_build (void)
{
        round_trip (
            "Build",
            "{'apiVersion':'shipwright.io/v1alpha1','kind':'Build',"
            "'metadata':{'name':'b','annotations':{'build.shipwright.io/"
            "build-run-deletion':'true'}},"
            "'spec':{'source':{'url':'https://github.com/shipwright-io/"
            "sample-go','revision':'main',"
            "'contextDir':'docker-build','credentials':{'name':'git-creds'}},"
            "'strategy':{'kind':'ClusterBuildStrategy','name':'kaniko'},"
            "'dockerfile':'Dockerfile','builder':{'image':'golang:1.22'},"
            "'paramValues':[{'name':'go-flags','value':'-v'}],"
            "'output':{'image':'registry.example.com/team/app:latest','credentials':{'name':'push-"
            "creds'}},"
            "'timeout':'15m','retention':{'failedLimit':5}}}",
            "{'apiVersion':'shipwright.io/v1beta1','kind':'Build','metadata':{'name':'b'},"
            "'spec':{'source':{'type':'Git','git':{'url':'https://github.com/shipwright-io/"
            "sample-go','revision':'main','cloneSecret':'git-creds'},'contextDir':'docker-build'},"
            "'strategy':{'kind':'ClusterBuildStrategy','name':'kaniko'},"
            "'paramValues':[{'name':'go-flags','value':'-v'},{'name':'dockerfile','value':"
            "'Dockerfile'},{'name':'builder-image','value':'golang:1.22'}],"
            "'output':{'image':'registry.example.com/team/app:latest','pushSecret':'push-creds'},"
            "'timeout':'15m','retention':{'failedLimit':5,'atBuildDeletion':true}}}");
        /* A source bundle image, and a local source. */
        round_trip ("Build",
                    "{'apiVersion':'shipwright.io/v1alpha1','spec':{'source':{'bundleContainer':{"
                    "'image':'ghcr.io/org/src:latest','prune':'AfterPull'},'credentials':{'name':'"
                    "reg'}},'strategy':{'name':'ko'},'output':{'image':'r/x'}}}",
                    "{'apiVersion':'shipwright.io/v1beta1','spec':{'source':{'type':'OCI',"
                    "'ociArtifact':{'image':'ghcr.io/org/src:latest','prune':'AfterPull',"
                    "'pullSecret':'reg'}},'strategy':{'name':'ko'},'output':{'image':'r/x'}}}");
        round_trip ("Build",
                    "{'apiVersion':'shipwright.io/v1alpha1','spec':{'sources':[{'name':'up',"
                    "'type':'LocalCopy','timeout':'1m'}],'strategy':{'name':'ko'},'output':{"
                    "'image':'r/x'}}}",
                    "{'apiVersion':'shipwright.io/v1beta1','spec':{'source':{'type':'Local',"
                    "'local':{'name':'up','timeout':'1m'}},'strategy':{'name':'ko'},'output':{"
                    "'image':'r/x'}}}");
}

static void
test_buildrun (void)
{
        round_trip (
            "BuildRun",
            "{'apiVersion':'shipwright.io/v1alpha1','kind':'BuildRun','metadata':{'name':'r'},"
            "'spec':{'buildRef':{'name':'b'},'serviceAccount':{'generate':true},"
            "'output':{'image':'r/y','credentials':{'name':'p'}}},"
            "'status':{'sources':[{'name':'default','git':{'commitSha':'abc','commitAuthor':'Jane',"
            "'branchName':'main'},'timestamp':'2026-01-01T00:00:00Z'}],"
            "'output':{'digest':'sha256:1','size':10},'latestTaskRunRef':'r-abc',"
            "'failureDetails':{'reason':'Failed','location':{'pod':'p','container':'step-build'}},"
            "'failedAt':{'pod':'p','container':'step-build'},"
            "'conditions':[{'type':'Succeeded','status':'False','reason':'Failed'}]}}",
            "{'apiVersion':'shipwright.io/v1beta1','kind':'BuildRun','metadata':{'name':'r'},"
            "'spec':{'build':{'name':'b'},'serviceAccount':'.generate',"
            "'output':{'image':'r/y','pushSecret':'p'}},"
            "'status':{'source':{'git':{'commitSha':'abc','commitAuthor':'Jane','branchName':"
            "'main'},'timestamp':'2026-01-01T00:00:00Z'},"
            "'output':{'digest':'sha256:1','size':10},'executor':{'name':'r-abc','kind':"
            "'TaskRun'},"
            "'failureDetails':{'reason':'Failed','location':{'pod':'p','container':'step-build'}},"
            "'conditions':[{'type':'Succeeded','status':'False','reason':'Failed'}]}}");
        /* An embedded spec, a named service account, a bundle digest. */
        round_trip ("BuildRun",
                    "{'apiVersion':'shipwright.io/v1alpha1','spec':{'buildSpec':{'source':{'url':"
                    "'https://g/x'},'strategy':{'name':'ko'},'output':{'image':'r/x'}},"
                    "'serviceAccount':{'name':'builder'}},'status':{'sources':[{'name':'default',"
                    "'bundle':{'digest':'sha256:2'}}]}}",
                    "{'apiVersion':'shipwright.io/v1beta1','spec':{'build':{'spec':{'source':{"
                    "'type':'Git','git':{'url':'https://g/x'}},'strategy':{'name':'ko'},'output':"
                    "{'image':'r/x'}}},'serviceAccount':'builder'},'status':{'source':{"
                    "'ociArtifact':{'digest':'sha256:2'}}}}");
}

static void
test_strategies (void)
{
        const char *alpha
            = "{'apiVersion':'shipwright.io/v1alpha1','kind':'%s','metadata':{'name':'k'},"
              "'spec':{'parameters':[{'name':'dockerfile','description':'d','default':"
              "'Dockerfile'}],'buildSteps':[{'name':'build-and-push','image':'gcr.io/kaniko',"
              "'command':['/kaniko/executor'],'args':['--dockerfile','$(params.dockerfile)'],"
              "'workingDir':'$(params.shp-source-root)','env':[{'name':'HOME','value':'/h'}]}]}}";
        const char *beta
            = "{'apiVersion':'shipwright.io/v1beta1','kind':'%s','metadata':{'name':'k'},"
              "'spec':{'parameters':[{'name':'dockerfile','description':'d','default':"
              "'Dockerfile'}],'steps':[{'name':'build-and-push','image':'gcr.io/kaniko',"
              "'command':['/kaniko/executor'],'args':['--dockerfile','$(params.dockerfile)'],"
              "'workingDir':'$(params.shp-source-root)','env':[{'name':'HOME','value':'/h'}]}]}}";
        const char *kinds[] = { "BuildStrategy", "ClusterBuildStrategy" };

        for (size_t i = 0; i < 2; i++) {
                cleanup_free char *a = kiln_strdup_printf (alpha, kinds[i]);
                cleanup_free char *b = kiln_strdup_printf (beta, kinds[i]);
                round_trip (kinds[i], a, b);
        }
        /* A full container's other fields have no v1beta1 step form. */
        json_t *a = J ("{'spec':{'buildSteps':[{'name':'s','image':'i','ports':[{'containerPort':"
                       "80}],'livenessProbe':{}}]}}");
        json_t *up = kiln_convert_up (a, "ClusterBuildStrategy");
        json_t *want = J ("{'apiVersion':'shipwright.io/v1beta1','spec':{'steps':[{'name':'s',"
                          "'image':'i'}]}}");
        CHECK (same (up, want));
        json_decref (a);
        json_decref (up);
        json_decref (want);
}

static void
test_table_view (void)
{
        kiln_view v;
        json_t *br = J ("{'apiVersion':'shipwright.io/v1beta1','kind':'BuildRun','metadata':{"
                        "'name':'r','namespace':'dev','resourceVersion':'7','creationTimestamp':"
                        "'2020-01-01T00:00:00Z'},'spec':{'build':{'name':'b'}},'status':{"
                        "'conditions':[{'type':'Succeeded','status':'True','reason':'Succeeded'}],"
                        "'startTime':'2020-01-01T00:00:00Z'}}");

        kiln_view_init (&v, "BuildRun", false,
                        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json", NULL);
        CHECK_STR (v.table, "meta.k8s.io/v1");
        CHECK (v.include == KILN_VIEW_METADATA);
        json_t *t = kiln_view_object (&v, br);
        CHECK_STR (json_string_value (json_object_get (t, "kind")), "Table");
        json_t *cols = json_object_get (t, "columnDefinitions");
        CHECK (json_array_size (cols) == 5);
        CHECK_STR (json_string_value (json_object_get (json_array_get (cols, 1), "name")),
                   "Succeeded");
        CHECK_STR (json_string_value (json_object_get (json_array_get (cols, 3), "type")), "date");
        json_t *row = json_array_get (json_object_get (t, "rows"), 0);
        json_t *cells = json_object_get (row, "cells");
        CHECK_STR (json_string_value (json_array_get (cells, 0)), "r");
        CHECK_STR (json_string_value (json_array_get (cells, 1)), "True");
        CHECK_STR (json_string_value (json_array_get (cells, 2)), "Succeeded");
        /* Years ago, shown as Kubernetes shows an age. */
        CHECK (strchr (json_string_value (json_array_get (cells, 3)), 'y') != NULL);
        CHECK (json_is_null (json_array_get (cells, 4)));
        json_t *obj = json_object_get (row, "object");
        CHECK_STR (json_string_value (json_object_get (obj, "kind")), "PartialObjectMetadata");
        CHECK_STR (json_string_value (
                       json_object_get (json_object_get (obj, "metadata"), "resourceVersion")),
                   "7");
        CHECK (json_object_get (obj, "spec") == NULL);
        json_decref (t);

        /* Plain JSON first: no Table.  includeObject=Object: the whole object,
         * converted for a v1alpha1 path. */
        kiln_view_init (&v, "BuildRun", false, "application/json", NULL);
        CHECK (v.table == NULL);
        kiln_view_init (&v, "BuildRun", true, "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
                        "Object");
        CHECK_STR (v.table, "meta.k8s.io/v1beta1");
        t = kiln_view_object (&v, br);
        obj = json_object_get (json_array_get (json_object_get (t, "rows"), 0), "object");
        CHECK_STR (json_string_value (json_object_get (obj, "apiVersion")),
                   "shipwright.io/v1alpha1");
        CHECK_STR (json_string_value (json_object_get (
                       json_object_get (json_object_get (obj, "spec"), "buildRef"), "name")),
                   "b");
        json_decref (t);
        json_decref (br);

        /* A Secret keeps its keys' names and loses their values. */
        json_t *sec = J ("{'kind':'Secret','metadata':{'name':'s'},'data':{'password':'eA=='}}");
        kiln_view_init (&v, "Secret", false, NULL, NULL);
        t = kiln_view_object (&v, sec);
        CHECK (json_object_get (t, "data") == NULL);
        CHECK_STR (json_string_value (json_object_get (
                       json_object_get (json_object_get (t, "metadata"), "annotations"),
                       "kiln.dev/data-keys")),
                   "[\"password\"]");
        json_decref (t);
        json_decref (sec);
}

int
main (void)
{
        RUN (test_build);
        RUN (test_buildrun);
        RUN (test_strategies);
        RUN (test_table_view);
        UNIT_DONE ("test_serve_convert");
}
