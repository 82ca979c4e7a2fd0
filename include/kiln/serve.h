/* kiln: the build service (`kiln serve`): the Shipwright v1beta1 API over
 * REST, its validation, the strategies it runs and the queue that runs
 * them.  These are JSON-model modules (jansson).
 *
 *   serve_api.c       routes, verbs, Status errors, discovery
 *   serve_watch.c     ?watch=true streams and the BuildRun log
 *   serve_view.c      what a response shows: v1alpha1, Tables, no Secret values
 *   serve_convert.c   shipwright.io/v1alpha1 <-> v1beta1
 *   serve_patch.c     JSON merge patch (RFC 7386) and JSON patch (RFC 6902)
 *   serve_validate.c  Build and BuildRun validation, durations, names
 *   serve_yaml.c      strategy YAML (libyaml) to JSON, loading strategies/
 *   serve_step.c      parameter substitution and running one step
 *   serve_run.c       one BuildRun: parameters, secrets, source, steps, results
 *   serve_output.c    output.timestamp, and the image-processing step after the steps
 *   serve_runner.c    the fair queue, workers, timeouts, cancel, recovery
 *   serve_upload.c    a BuildRun's uploaded local source
 *
 * Ownership: a json_t delivered through `json_t **out` is a new reference
 * the caller releases with json_decref; json_t arguments are borrowed. */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "httpd.h"
#include "image.h"
#include "source.h"
#include "store.h"

#define KILN_SHP_GROUP "shipwright.io"
#define KILN_SHP_VERSION "v1beta1"
#define KILN_SHP_API_VERSION "shipwright.io/v1beta1"

/* ---- patches (serve_patch.c) ---- */

/* Applies an RFC 7386 merge patch to target in place (target must be an
 * object; null members remove). */
void kiln_merge_patch (json_t *target, const json_t *patch);

/* Applies an RFC 6902 patch (add, remove, replace, move, copy, test) to
 * *doc; *doc may be replaced.  KILN_E_INVALID names the failing operation
 * and path; a failed test is KILN_E_CONFLICT.  On failure *doc is
 * unchanged. */
int kiln_json_patch (json_t **doc, const json_t *ops, kiln_error **err);

/* ---- small shared rules (serve_validate.c) ---- */

/* A Go duration ("90s", "10m", "1h30m", "1.5h", "250ms") in ms. */
int kiln_go_duration_parse (const char *s, int64_t *ms);
/* The Go form of a duration: 600000 -> "10m0s". */
void kiln_go_duration_format (char *buf, size_t size, int64_t ms);

/* A DNS-1123 subdomain (object names), at most 253 characters. */
bool kiln_name_is_valid (const char *name);

/* ---- validation (serve_validate.c) ---- */

/* The outcome of a validation: reason NULL when everything passed. */
typedef struct kiln_verdict {
        const char *reason; /* static: "BuildStrategyNotFound" */
        char *message;      /* owned */
} kiln_verdict;

void kiln_verdict_clear (kiln_verdict *v);

/* Checks a Build's spec as Shipwright's build controller does: name,
 * secrets, strategy and its parameters, env. */
void kiln_validate_build (kiln_verdict *out, kiln_store *s, const char *ns, const char *name,
                          const json_t *spec);

/* Sets status.registered/reason/message of a Build from a verdict. */
void kiln_build_set_status (json_t *build, const kiln_verdict *v);

/* What a BuildRun runs: everything resolved and checked. */
typedef struct kiln_resolved {
        json_t *build_spec; /* the Build's spec as used (status.buildSpec) */
        json_t *effective;  /* build_spec with the BuildRun's overrides */
        json_t *strategy;   /* the (Cluster)BuildStrategy object */
        char *build_name;   /* the referenced Build; NULL when embedded */
        int64_t build_generation;
        int64_t timeout_ms;
} kiln_resolved;

void kiln_resolved_clear (kiln_resolved *r);

/* Resolves and checks a BuildRun.  When br has status.buildSpec, that
 * snapshot is used instead of the Build as it is now (the runner).  On a
 * failed check out->reason is a BuildRun condition reason. */
void kiln_validate_buildrun (kiln_verdict *out, kiln_resolved *res, kiln_store *s, const char *ns,
                             const json_t *br);

/* Sets the BuildRun's Succeeded condition (status "True", "False" or
 * "Unknown"); a final status also sets completionTime. */
void kiln_buildrun_set_condition (json_t *br, const char *status, const char *reason,
                                  const char *message);

/* True when the BuildRun's Succeeded condition is True or False. */
bool kiln_buildrun_is_done (const json_t *br);

/* ---- YAML and strategies (serve_yaml.c) ---- */

/* Parses a YAML stream into an array of documents.  Plain scalars true,
 * false, null and integers become JSON values; anchors and aliases are
 * refused.  Bounded: nesting depth 64. */
int kiln_yaml_parse (json_t **out, const char *data, size_t len, kiln_error **err);

/* Loads every *.yaml and *.yml file in dir: ClusterBuildStrategy documents
 * are created, or replaced when their spec differs. */
int kiln_strategies_load (kiln_store *s, const char *dir, kiln_error **err);

/* ---- steps (serve_step.c) ---- */

/* Substitutes $(params.NAME) (params: name -> string or array of
 * strings) and $(results.NAME.path) (under results_dir) in s.  An array
 * parameter inside a longer string is joined with spaces. */
char *kiln_step_substitute (const char *s, const json_t *params, const char *results_dir);

/* Expands a command or args list: "$(params.X[*])" as a whole element
 * splices the array's items; other elements are substituted.  Appends to
 * *argv (a strv). */
void kiln_step_expand_list (char ***argv, const json_t *list, const json_t *params,
                            const char *results_dir);

/* True when any string in the strategy's steps mentions `needle`. */
bool kiln_strategy_mentions (const json_t *strategy, const char *needle);

/* The entry named `name` of the strategy's spec.LIST (parameters, volumes,
 * steps), or NULL. */
const json_t *kiln_strategy_entry (const json_t *strategy, const char *list, const char *name);

/* One step's process: its own session and process group; the group (and
 * every process carrying marker in its environment) is sent SIGTERM and,
 * after a grace period, SIGKILL on timeout or stop. */
typedef struct kiln_step_run {
        char *const *argv;
        char *const *env;
        const char *cwd;
        const char *marker;          /* "KILN_BUILDRUN=uid" */
        int log_fd;                  /* lines go here prefixed with "[prefix] " */
        const char *prefix;          /* "step-build" */
        int64_t deadline_ms;         /* CLOCK_MONOTONIC ms; <= 0: none */
        volatile sig_atomic_t *stop; /* raised: stop the step */
        /* Results */
        int exit_code; /* exit status, or 128 + signal */
        bool timed_out;
        bool stopped;
        char *last_stderr; /* owned: the last non-empty stderr line */
        char *stdout_tail; /* owned: the last 64 KiB of stdout */
} kiln_step_run;

int kiln_step_exec (kiln_step_run *run, kiln_error **err);
void kiln_step_run_clear (kiln_step_run *run);

/* Kills every process whose environment holds marker (a run left behind
 * by a daemon that died).  Returns how many were signalled. */
int kiln_step_kill_marked (const char *marker);

/* CLOCK_MONOTONIC in ms. */
int64_t kiln_monotonic_ms (void);

/* ---- the output image (serve_output.c) ---- */

/* Checks spec.output.timestamp as Shipwright does: absent, "", Zero,
 * BuildTimestamp, SourceTimestamp (only with a source: else reason
 * OutputTimestampNotSupported) or a decimal integer (else
 * OutputTimestampNotValid).  Returns the reason (static) and sets
 * *message (owned), or returns NULL. */
const char *kiln_output_timestamp_check (const json_t *spec, char **message);

/* What the image-processing step after a run's steps needs. */
typedef struct kiln_output_plan {
        const json_t *output;   /* the effective spec.output */
        const char *kiln_path;  /* the kiln binary */
        const char *output_dir; /* shp-output-directory; NULL: the strategy pushed */
        const char *results;    /* the results dir (shp-image-digest, ...) */
        const char *digest;     /* what the steps reported, or NULL */
        bool has_size;          /* the steps reported shp-image-size */
        int64_t source_time;    /* the source commit's time; < 0: unknown */
        int64_t created;        /* the BuildRun's creationTimestamp; < 0: unknown */
} kiln_output_plan;

/* The argv of `kiln image-processing` for a run, or *argv NULL when there
 * is nothing to do.  *optional is set when the step only asks the
 * registry for the size of what the strategy pushed (its failure does
 * not fail the run).  An output.timestamp that cannot be honoured
 * (SourceTimestamp without a source time) is KILN_E_INVALID. */
int kiln_output_step_argv (char ***argv, bool *optional, const kiln_output_plan *plan,
                           kiln_error **err);

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SSZ" (Kubernetes
 * timestamps); -1 when s is not one. */
int64_t kiln_rfc3339_parse (const char *s);

/* ---- steps that run an image (serve_image.c) ---- */

/* Where an image step's files are inside its sandbox. */
#define KILN_STEP_SOURCE_ROOT "/workspace/source"
#define KILN_STEP_RESULTS_DIR "/tekton/results"
#define KILN_STEP_HOME "/tekton/home"
#define KILN_STEP_DOCKER_CONFIG "/tekton/creds/docker"

/* A step's image, unpacked: DIR/<digest>/rootfs and DIR/<digest>/config.json,
 * keyed by the digest its reference resolves to (the manifest, or the
 * index it names), made once (extracted beside, then renamed) and reused. */
typedef struct kiln_step_image {
        char digest[KILN_DIGEST_MAX];
        char *rootfs;              /* owned */
        kiln_image_config *config; /* owned */
        bool cached;               /* found unpacked already */
} kiln_step_image;

/* Resolves `image` with kiln's registry client and unpacks it into
 * cache_dir (made 0700) unless it is there.  stop, when raised between
 * layers, ends it with KILN_E_CANCELED. */
int kiln_step_image_get (kiln_step_image *out, const char *cache_dir, const char *image,
                         volatile sig_atomic_t *stop, kiln_error **err);
void kiln_step_image_clear (kiln_step_image *img);

/* What an image step runs with. */
typedef struct kiln_image_step {
        const json_t *step;        /* the strategy's step */
        const json_t *strategy;    /* its volumes and securityContext */
        const json_t *build_env;   /* the Build's env list, or NULL */
        const json_t *params;      /* with host paths; mapped to the sandbox's here */
        const char *work;          /* the run's work dir: volumes/ and home/ go here */
        const char *source_root;   /* host path of /workspace/source */
        const char *results;       /* host path of /tekton/results */
        const char *docker_config; /* host dir of the push secret, or NULL */
        const char *cache_dir;     /* DATA/step-images */
        const char *marker;        /* "KILN_BUILDRUN=uid": on bwrap, not in the step */
        int log_fd;
        const char *prefix; /* "step-NAME" */
        volatile sig_atomic_t *stop;
} kiln_image_step;

/* Pulls the step's image (cached) and runs the step under bubblewrap with
 * Kubernetes' rules for command, args, env, workingDir, volumeMounts and
 * runAsUser/runAsGroup.  -1 when it could not start (one line naming the
 * step and the image); otherwise 0 with *out filled as kiln_step_exec does
 * (release with kiln_step_run_clear). */
int kiln_image_step_run (kiln_step_run *out, const kiln_image_step *s, kiln_error **err);

/* ---- Secret and ConfigMap references (serve_refs.c) ---- */

/* The value of key in a Secret (decoded) or ConfigMap (kind "Secret" or
 * "ConfigMap"), a new string in *out.  KILN_E_NOT_FOUND names the missing
 * object or key; the message never holds a value. */
int kiln_ref_value (char **out, kiln_store *s, const char *ns, const char *kind, const char *name,
                    const char *key, kiln_error **err);

/* A paramValues secretValue (secret) or configMapValue: {name, key,
 * format}, with ${SECRET_VALUE} / ${CONFIGMAP_VALUE} in format replaced. */
int kiln_ref_param_value (char **out, kiln_store *s, const char *ns, const json_t *ref, bool secret,
                          kiln_error **err);

/* A copy of an env list with every valueFrom (secretKeyRef or
 * configMapKeyRef) replaced by {name, value, literal: true}: a literal
 * value is not substituted.  Errors name the variable. */
int kiln_ref_env (json_t **out, kiln_store *s, const char *ns, const json_t *env, kiln_error **err);

/* ---- one run (serve_run.c) ---- */

/* Why a run's stop flag was raised. */
enum { KILN_RUN_STOP_CANCEL = 1, KILN_RUN_STOP_TIMEOUT, KILN_RUN_STOP_SHUTDOWN };

typedef struct kiln_run_opts {
        kiln_store *store;
        const char *ns;
        const char *name;
        const char *uid;
        const char *work_dir;  /* made here, removed at the end */
        const char *log_path;  /* appended to */
        const char *kiln_path; /* what a step's `kiln` runs */
        const char *data_dir;  /* step-images/ (the image cache) goes here */
        const kiln_resolved *res;
        volatile sig_atomic_t *stop; /* a KILN_RUN_STOP_* value stops the run */
        int64_t created;             /* metadata.creationTimestamp (BuildTimestamp); < 0: unknown */
        const char *upload_dir;      /* a Local source arrives as upload_dir/source */
} kiln_run_opts;

/* What a run produced, for the BuildRun's status; strings owned. */
typedef struct kiln_run_result {
        const char *status; /* "True" or "False" */
        const char *reason; /* static */
        char *message;
        char *fail_reason; /* failureDetails, or NULL */
        char *fail_message;
        char *fail_container; /* "step-NAME" */
        char *digest;         /* status.output, or NULL */
        int64_t size;
        kiln_source src; /* the commit, when known */
} kiln_run_result;

/* Fetches the source, runs the strategy's steps and reads their results;
 * *out is always filled (release with kiln_run_result_clear). */
void kiln_run_execute (kiln_run_result *out, const kiln_run_opts *opts);
void kiln_run_result_clear (kiln_run_result *r);

/* ---- the queue (serve_runner.c) ---- */

typedef struct kiln_runner kiln_runner;

typedef struct kiln_runner_opts {
        kiln_store *store;
        const char *data_dir;  /* runs/ and logs/ go here */
        const char *kiln_path; /* the kiln binary steps run */
        unsigned max_concurrent;
} kiln_runner_opts;

/* Starts the workers and recovers what a previous daemon left: running
 * BuildRuns are marked Failed (reason DaemonRestarted) and their leftover
 * processes killed, queued ones are queued again. */
int kiln_runner_start (kiln_runner **out, const kiln_runner_opts *opts, kiln_error **err);

/* Queues a BuildRun (fair across namespaces). */
void kiln_runner_enqueue (kiln_runner *r, const char *ns, const char *name);

/* Stops a running BuildRun (the worker records why from spec.state).
 * Returns false when it is not running. */
bool kiln_runner_cancel (kiln_runner *r, const char *ns, const char *name);

/* How many BuildRuns wait in the queue and how many run now. */
void kiln_runner_counts (kiln_runner *r, unsigned *queued, unsigned *running);

/* The log file of a BuildRun (by uid); the caller frees it. */
char *kiln_runner_log_path (kiln_runner *r, const char *uid);

/* DATA/uploads/NAME: where a BuildRun's (by uid) uploaded source is kept
 * until its run takes it; the caller frees it. */
char *kiln_runner_upload_dir (kiln_runner *r, const char *name);

/* Stops taking work, lets running builds go on for grace_ms, then stops
 * them (reason DaemonShutdown), joins the workers and frees r. */
void kiln_runner_stop (kiln_runner *r, int64_t grace_ms);

/* ---- versions (serve_convert.c) ---- */

#define KILN_SHP_ALPHA "v1alpha1"

/* A shipwright.io/v1alpha1 object of kind (Build, BuildRun, BuildStrategy
 * or ClusterBuildStrategy) as v1beta1, and back; new references.  Members
 * of the wrong type are carried over for the schema checks to refuse. */
json_t *kiln_convert_up (const json_t *obj, const char *kind);
json_t *kiln_convert_down (const json_t *obj, const char *kind);

/* ---- what a response shows (serve_view.c) ---- */

enum { KILN_VIEW_METADATA, KILN_VIEW_NONE, KILN_VIEW_OBJECT };

/* How stored objects are shown to one request; plain values, copied into
 * a watch.  Strings are static or live as long as the request. */
typedef struct kiln_view {
        const char *kind;  /* static */
        bool alpha;        /* convert down to shipwright.io/v1alpha1 */
        const char *table; /* "meta.k8s.io/v1" (or v1beta1): a Table; NULL: objects */
        int include;       /* a Table row's object: KILN_VIEW_* */
} kiln_view;

/* From the request's Accept header and includeObject query argument
 * (both may be NULL). */
void kiln_view_init (kiln_view *v, const char *kind, bool alpha, const char *accept,
                     const char *include_object);

/* A stored object as the client sees it (a one-row Table when asked);
 * a Secret loses its values.  New reference. */
json_t *kiln_view_object (const kiln_view *v, const json_t *obj);

/* A list of stored objects: a list_kind list (meta borrowed as its
 * metadata) or a Table.  New reference. */
json_t *kiln_view_list (const kiln_view *v, const json_t *items, const char *list_kind,
                        const char *api_version, json_t *meta);

/* ---- retention (serve_retention.c) ---- */

/* The label naming a BuildRun's Build. */
#define KILN_BUILD_LABEL "build.shipwright.io/name"

typedef struct kiln_reaper kiln_reaper;

/* Starts the thread that deletes finished BuildRuns whose retention TTL
 * passed or that are beyond their Build's limits (runner may be NULL). */
int kiln_reaper_start (kiln_reaper **out, kiln_store *s, kiln_runner *runner, kiln_error **err);

/* Stops the thread (within a fraction of a second) and frees r; accepts
 * NULL. */
void kiln_reaper_stop (kiln_reaper *r);

/* Deletes a BuildRun, stops it when it runs, and removes its log. */
void kiln_buildrun_delete (kiln_store *s, kiln_runner *runner, const char *ns, const char *name);

/* After a Build was deleted: with spec.retention.atBuildDeletion, deletes
 * the BuildRuns labelled with its name. */
void kiln_retention_build_deleted (kiln_store *s, kiln_runner *runner, const json_t *build);

/* ---- the API (serve_api.c) ---- */

typedef struct kiln_api kiln_api;

typedef struct kiln_api_opts {
        kiln_store *store;
        kiln_runner *runner;
        struct kiln_metrics *metrics; /* serves /metrics; NULL: 404 */
        const char *token;            /* required bearer token; NULL: none (tests) */
        uint64_t max_source;          /* the largest source upload; 0: 1 GiB */
} kiln_api_opts;

void kiln_api_new (kiln_api **out, const kiln_api_opts *opts);
void kiln_api_free (kiln_api *api);

/* The handlers the HTTP server calls. */
void kiln_api_handlers (kiln_api *api, kiln_http_handlers *out);

/* Sets resp to a Kubernetes Status object (kind Status, status Failure). */
void kiln_api_status (kiln_http_response *resp, int code, const char *reason, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* Re-checks the Builds of a namespace (all when ns is NULL) after a
 * strategy or a secret changed, updating status.registered. */
void kiln_api_revalidate_builds (kiln_store *s, const char *ns);

/* ---- local source uploads (serve_upload.c) ---- */

#define KILN_LOCAL_TIMEOUT_MS (10 * 60 * 1000)

/* True when spec.source.type is Local. */
bool kiln_source_is_local (const json_t *spec);

/* POST .../buildruns/NAME/source before its body: answers resp when the
 * run takes no upload (404, 400, 409), else has the body spooled (up to
 * limit bytes). */
void kiln_upload_precheck (kiln_store *s, kiln_runner *r, uint64_t limit, const char *ns,
                           const char *name, kiln_http_response *resp);
/* The same with the spooled body: extracts it for the run. */
void kiln_upload_handle (kiln_store *s, kiln_runner *r, const char *ns, const char *name,
                         const kiln_http_request *req, kiln_http_response *resp);

/* Streams (serve_watch.c). */
void kiln_watch_respond (kiln_http_response *resp, kiln_store *s, const kiln_view *view,
                         const char *ns, const kiln_http_request *req);
void kiln_log_respond (kiln_http_response *resp, kiln_store *s, const char *path, const char *ns,
                       const char *name, bool follow);

/* A label selector "a=b,c==d,e!=f,g,!h" (equality and existence) against
 * metadata.labels, and a field selector "metadata.name=x" (also
 * metadata.namespace, and != ) against the object; either may be NULL.
 * KILN_E_INVALID for what kiln cannot read (set-based selectors, other
 * fields), naming the selector. */
int kiln_selectors_match (bool *match, const char *labels, const char *fields, const json_t *obj,
                          kiln_error **err);

#endif
