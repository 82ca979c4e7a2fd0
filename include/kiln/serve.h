/* kiln: the build service (`kiln serve`): the Shipwright v1beta1 API over
 * REST, its validation, the strategies it runs and the queue that runs
 * them.  These are JSON-model modules (jansson).
 *
 *   serve_api.c       routes, verbs, Status errors, discovery
 *   serve_watch.c     ?watch=true streams and the BuildRun log
 *   serve_patch.c     JSON merge patch (RFC 7386) and JSON patch (RFC 6902)
 *   serve_validate.c  Build and BuildRun validation, durations, names
 *   serve_yaml.c      strategy YAML (libyaml) to JSON, loading strategies/
 *   serve_step.c      parameter substitution and running one step
 *   serve_run.c       one BuildRun: parameters, secrets, source, steps, results
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
        const kiln_resolved *res;
        volatile sig_atomic_t *stop; /* a KILN_RUN_STOP_* value stops the run */
        const char *upload_dir;      /* a Local source arrives as upload_dir/source */
} kiln_run_opts;

/* What a run produced, for the BuildRun's status; strings owned. */
typedef struct kiln_run_result {
        const char *status; /* "True" or "False" */
        const char *reason; /* static */
        char *message;
        char *fail_reason; /* failureDetails, or NULL */
        char *fail_message;
        char *fail_container; /* owned: the step's container (it may be freed with the step) */
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

/* The log file of a BuildRun (by uid); the caller frees it. */
char *kiln_runner_log_path (kiln_runner *r, const char *uid);

/* DATA/uploads/NAME: where a BuildRun's (by uid) uploaded source is kept
 * until its run takes it; the caller frees it. */
char *kiln_runner_upload_dir (kiln_runner *r, const char *name);

/* Stops taking work, lets running builds go on for grace_ms, then stops
 * them (reason DaemonShutdown), joins the workers and frees r. */
void kiln_runner_stop (kiln_runner *r, int64_t grace_ms);

/* ---- the API (serve_api.c) ---- */

typedef struct kiln_api kiln_api;

typedef struct kiln_api_opts {
        kiln_store *store;
        kiln_runner *runner;
        const char *token;   /* required bearer token; NULL: none (tests) */
        uint64_t max_source; /* the largest source upload; 0: 1 GiB */
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
void kiln_watch_respond (kiln_http_response *resp, kiln_store *s, const char *kind, const char *ns,
                         const kiln_http_request *req);
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
