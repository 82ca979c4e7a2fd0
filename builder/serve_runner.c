/* kiln: the BuildRun queue and its workers.
 *
 * Queued BuildRuns wait in one FIFO per namespace; workers take from the
 * namespaces in turn, so one busy namespace cannot starve the others.  The
 * queue itself is not persisted: a BuildRun whose Succeeded condition is
 * Pending is queued, and a restarted daemon queues every such one again.
 *
 * Each run gets DATA/runs/UID (removed afterwards) and a log at
 * DATA/logs/UID.log (kept until the BuildRun is deleted).  A watchdog
 * thread raises a run's stop flag when its timeout passes; the step
 * runner then stops the whole process tree. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/kv.h"
#include "kiln/log.h"
#include "kiln/serve.h"
#include "kiln/source.h"

enum { STOP_NONE = 0, STOP_CANCEL, STOP_TIMEOUT, STOP_SHUTDOWN };

#define SECRET_MAX (1 << 20)

typedef struct job {
        char *ns;
        char *name;
        struct job *next;
        volatile sig_atomic_t stop;
        int64_t deadline_ms; /* monotonic; 0 until it runs */
} job;

typedef struct ns_queue {
        char *ns;
        job *head, *tail;
} ns_queue;

struct kiln_runner {
        kiln_store *store;
        char *data_dir;
        char *kiln_path;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        ns_queue *queues;
        size_t n_queues;
        size_t rr;
        job **running;
        unsigned max_running;
        pthread_t *workers;
        pthread_t watchdog;
        bool threads; /* workers and watchdog were started */
        bool stopping;
};

/* ---- the queue ---- */

static job *
pop_locked (kiln_runner *r)
{
        for (size_t k = 0; k < r->n_queues; k++) {
                size_t i = (r->rr + k) % r->n_queues;
                ns_queue *q = &r->queues[i];
                job *j = q->head;
                if (j == NULL)
                        continue;
                q->head = j->next;
                if (q->head == NULL)
                        q->tail = NULL;
                r->rr = (i + 1) % r->n_queues;
                return j;
        }
        return NULL;
}

static bool
known_locked (kiln_runner *r, const char *ns, const char *name)
{
        for (unsigned i = 0; i < r->max_running; i++)
                if (r->running[i] && strcmp (r->running[i]->ns, ns) == 0
                    && strcmp (r->running[i]->name, name) == 0)
                        return true;
        for (size_t i = 0; i < r->n_queues; i++)
                if (strcmp (r->queues[i].ns, ns) == 0)
                        for (job *j = r->queues[i].head; j; j = j->next)
                                if (strcmp (j->name, name) == 0)
                                        return true;
        return false;
}

static ns_queue *
queue_for (kiln_runner *r, const char *ns)
{
        for (size_t i = 0; i < r->n_queues; i++)
                if (strcmp (r->queues[i].ns, ns) == 0)
                        return &r->queues[i];
        r->queues = kiln_reallocarray (r->queues, r->n_queues + 1, sizeof (*r->queues));
        r->queues[r->n_queues] = (ns_queue){ .ns = kiln_strdup (ns) };
        return &r->queues[r->n_queues++];
}

void
kiln_runner_enqueue (kiln_runner *r, const char *ns, const char *name)
{
        job *j;
        ns_queue *q;

        pthread_mutex_lock (&r->lock);
        if (!known_locked (r, ns, name)) {
                j = kiln_calloc (1, sizeof (*j));
                j->ns = kiln_strdup (ns);
                j->name = kiln_strdup (name);
                q = queue_for (r, ns);
                if (q->tail)
                        q->tail->next = j;
                else
                        q->head = j;
                q->tail = j;
                pthread_cond_broadcast (&r->cond);
        }
        pthread_mutex_unlock (&r->lock);
}

bool
kiln_runner_cancel (kiln_runner *r, const char *ns, const char *name)
{
        bool found = false;

        pthread_mutex_lock (&r->lock);
        for (unsigned i = 0; i < r->max_running; i++) {
                job *j = r->running[i];
                if (j && strcmp (j->ns, ns) == 0 && strcmp (j->name, name) == 0) {
                        j->stop = STOP_CANCEL;
                        found = true;
                }
        }
        pthread_mutex_unlock (&r->lock);
        return found;
}

char *
kiln_runner_log_path (kiln_runner *r, const char *uid)
{
        return kiln_strdup_printf ("%s/logs/%s.log", r->data_dir, uid);
}

static void
job_free (job *j)
{
        free (j->ns);
        free (j->name);
        free (j);
}

/* ---- status updates ---- */

typedef void (*status_fn) (json_t *br, void *data);

/* Read, change, write with the resourceVersion read, again on conflict:
 * a user's PATCH of spec.state and a worker's status never overwrite each
 * other.  Returns false when the BuildRun is gone or already done. */
static bool
update_status (kiln_runner *r, const job *j, status_fn fn, void *data)
{
        for (int tries = 0; tries < 20; tries++) {
                json_t *br = NULL;
                kiln_error *err = NULL;
                const char *rv;
                int64_t expect = 0;
                int rc;

                if (kiln_store_get (&br, r->store, "BuildRun", j->ns, j->name, NULL) < 0)
                        return false;
                if (kiln_buildrun_is_done (br)) {
                        json_decref (br);
                        return false;
                }
                rv = json_string_value (
                    json_object_get (json_object_get (br, "metadata"), "resourceVersion"));
                if (rv)
                        kiln_parse_int64 (rv, 0, INT64_MAX, &expect);
                fn (br, data);
                rc = kiln_store_update (NULL, r->store, "BuildRun", j->ns, j->name, br, expect,
                                        &err);
                json_decref (br);
                if (rc == 0)
                        return true;
                if (err->code != KILN_E_CONFLICT) {
                        kiln_log_error ("buildrun %s/%s: %s", j->ns, j->name, err->msg);
                        kiln_error_free (err);
                        return false;
                }
                kiln_error_free (err);
        }
        return false;
}

typedef struct final {
        const char *status;
        const char *reason;
        char *message;
        char *fail_reason;
        char *fail_message;
        const char *fail_container;
        char *digest;
        int64_t size;
        kiln_source src;
        json_t *build_spec; /* borrowed */
} final;

static void
final_clear (final *f)
{
        free (f->message);
        free (f->fail_reason);
        free (f->fail_message);
        free (f->digest);
        kiln_source_clear (&f->src);
}

static void
set_source_status (json_t *st, const final *f)
{
        json_t *git = json_object ();
        json_t *src = json_object ();

        if (f->src.commit)
                json_object_set_new (git, "commitSha", json_string (f->src.commit));
        if (f->src.author) {
                /* Shipwright reports the name alone, without "<email>". */
                const char *lt = strstr (f->src.author, " <");
                size_t n = lt ? (size_t) (lt - f->src.author) : strlen (f->src.author);
                json_object_set_new (git, "commitAuthor", json_stringn (f->src.author, n));
        }
        if (f->src.branch)
                json_object_set_new (git, "branchName", json_string (f->src.branch));
        json_object_set_new (src, "git", git);
        if (f->src.commit_time > 0) {
                char ts[32];
                time_t t = (time_t) f->src.commit_time;
                struct tm tm;
                gmtime_r (&t, &tm);
                strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
                json_object_set_new (src, "timestamp", json_string (ts));
        }
        json_object_set_new (st, "source", src);
}

static void
apply_final (json_t *br, void *data)
{
        const final *f = data;
        json_t *st;

        kiln_buildrun_set_condition (br, f->status, f->reason, f->message ? f->message : "");
        st = json_object_get (br, "status");
        if (f->digest) {
                json_t *out = json_pack ("{s:s}", "digest", f->digest);
                if (f->size > 0)
                        json_object_set_new (out, "size", json_integer (f->size));
                json_object_set_new (st, "output", out);
        }
        if (f->src.commit || f->src.author || f->src.branch)
                set_source_status (st, f);
        if (f->fail_reason || f->fail_message) {
                json_t *fd = json_object ();
                if (f->fail_reason)
                        json_object_set_new (fd, "reason", json_string (f->fail_reason));
                if (f->fail_message)
                        json_object_set_new (fd, "message", json_string (f->fail_message));
                if (f->fail_container) {
                        const char *name = json_string_value (
                            json_object_get (json_object_get (br, "metadata"), "name"));
                        json_object_set_new (fd, "location",
                                             json_pack ("{s:s,s:s}", "pod", name ? name : "",
                                                        "container", f->fail_container));
                }
                json_object_set_new (st, "failureDetails", fd);
        }
}

typedef struct start_info {
        json_t *build_spec;
        const char *build_name;
        int64_t build_generation;
} start_info;

static void
apply_running (json_t *br, void *data)
{
        const start_info *si = data;
        json_t *st;
        char now[32];

        kiln_buildrun_set_condition (br, "Unknown", "Running", "BuildRun is running");
        st = json_object_get (br, "status");
        kiln_store_now (now);
        json_object_set_new (st, "startTime", json_string (now));
        json_object_set (st, "buildSpec", si->build_spec);
}

/* ---- parameters ---- */

static int
secret_value (char **out, kiln_store *s, const char *ns, const json_t *ref, kiln_error **err)
{
        const char *name = json_string_value (json_object_get (ref, "name"));
        const char *key = json_string_value (json_object_get (ref, "key"));
        const char *format = json_string_value (json_object_get (ref, "format"));
        json_t *secret = NULL;
        unsigned char *raw = NULL;
        size_t len;
        const char *b64;
        int r = 0;

        if (kiln_store_get (&secret, s, "Secret", ns, name ? name : "", err) < 0)
                return -1;
        b64 = json_string_value (
            json_object_get (json_object_get (secret, "data"), key ? key : ""));
        if (b64 == NULL || kiln_base64_decode (&raw, &len, b64, strlen (b64), NULL) < 0)
                r = kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "secret %s has no key %s", name,
                                      key ? key : "");
        json_decref (secret);
        if (r < 0)
                return -1;
        if (format) {
                const char *at = strstr (format, "${SECRET_VALUE}");
                *out = at ? kiln_strdup_printf ("%.*s%s%s", (int) (at - format), format,
                                                (char *) raw, at + 15)
                          : kiln_strdup (format);
                free (raw);
        } else {
                *out = (char *) raw;
        }
        return 0;
}

static int
one_value (json_t **out, kiln_store *s, const char *ns, const json_t *pv, kiln_error **err)
{
        const json_t *v = json_object_get (pv, "value");
        const json_t *sv = json_object_get (pv, "secretValue");
        char *str = NULL;

        if (json_is_string (v)) {
                *out = json_incref ((json_t *) v);
                return 0;
        }
        if (sv) {
                if (secret_value (&str, s, ns, sv, err) < 0)
                        return -1;
                *out = json_string (str);
                free (str);
                return 0;
        }
        return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                 "parameter %s: configMapValue is not supported by kiln",
                                 json_string_value (json_object_get (pv, "name")));
}

static int
param_value (json_t **out, kiln_store *s, const char *ns, const json_t *pv, kiln_error **err)
{
        const json_t *values = json_object_get (pv, "values");
        size_t i;
        json_t *item;

        if (!json_is_array (values))
                return one_value (out, s, ns, pv, err);
        *out = json_array ();
        json_array_foreach (values, i, item)
        {
                json_t *v = NULL;
                if (one_value (&v, s, ns, item, err) < 0) {
                        json_decref (*out);
                        return -1;
                }
                json_array_append_new (*out, v);
        }
        return 0;
}

/* Defaults from the strategy, then the values given. */
static int
user_params (json_t *params, kiln_store *s, const char *ns, const kiln_resolved *res,
             kiln_error **err)
{
        const json_t *defs
            = json_object_get (json_object_get (res->strategy, "spec"), "parameters");
        const json_t *values = json_object_get (res->effective, "paramValues");
        size_t i;
        json_t *p;

        json_array_foreach (defs, i, p)
        {
                const char *name = json_string_value (json_object_get (p, "name"));
                json_t *d = json_object_get (p, "default");
                if (d == NULL)
                        d = json_object_get (p, "defaults");
                if (name && d)
                        json_object_set (params, name, d);
        }
        json_array_foreach (values, i, p)
        {
                const char *name = json_string_value (json_object_get (p, "name"));
                json_t *v = NULL;
                if (name == NULL)
                        continue;
                if (param_value (&v, s, ns, p, err) < 0)
                        return kiln_error_wrap (err, "parameter %s", name);
                json_object_set_new (params, name, v);
        }
        return 0;
}

/* ---- one run ---- */

typedef struct run_ctx {
        kiln_runner *r;
        job *j;
        const kiln_resolved *res;
        const char *uid;
        char *work;
        char *source_root;
        char *results;
        json_t *params;
        char **base_env;
        int log_fd;
        final *f;
        /* clone credentials, only ever in memory */
        char *git_user;
        char *git_pass;
} run_ctx;

/* Appends a formatted "NAME=VALUE" to the run's environment. */
static void __attribute__ ((format (printf, 2, 3))) env_add (run_ctx *c, const char *fmt, ...)
{
        va_list ap;
        char *kv = NULL;

        va_start (ap, fmt);
        if (vasprintf (&kv, fmt, ap) < 0)
                abort ();
        va_end (ap);
        c->base_env = kiln_strv_append (c->base_env, kv);
        free (kv);
}

static void __attribute__ ((format (printf, 2, 3))) log_line (run_ctx *c, const char *fmt, ...)
{
        va_list ap;
        cleanup_free char *line = NULL;
        cleanup_free char *full = NULL;

        va_start (ap, fmt);
        if (vasprintf (&line, fmt, ap) < 0)
                abort ();
        va_end (ap);
        full = kiln_strdup_printf ("%s\n", line);
        if (c->log_fd >= 0)
                kiln_write_all (c->log_fd, full, strlen (full), NULL);
}

static void __attribute__ ((format (printf, 3, 4)))
fail_run (final *f, const char *reason, const char *fmt, ...)
{
        va_list ap;

        if (f->reason)
                return;
        va_start (ap, fmt);
        if (vasprintf (&f->message, fmt, ap) < 0)
                abort ();
        va_end (ap);
        f->status = "False";
        f->reason = reason;
}

static const char *
spec_str (const json_t *spec, const char *a, const char *b, const char *c)
{
        const json_t *v = json_object_get (spec, a);
        if (b)
                v = json_object_get (v, b);
        if (c)
                v = json_object_get (v, c);
        return json_string_value (v);
}

static char *
read_result (run_ctx *c, const char *name)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", c->results, name);
        char *data = NULL;
        size_t len;

        if (kiln_read_file (&data, &len, path, 64 * 1024, NULL) < 0)
                return NULL;
        while (len && (data[len - 1] == '\n' || data[len - 1] == ' ' || data[len - 1] == '\r'))
                data[--len] = '\0';
        if (len == 0) {
                free (data);
                return NULL;
        }
        return data;
}

static int
write_secret_file (const char *path, const void *data, size_t len, kiln_error **err)
{
        return kiln_write_file (path, data, len, 0600, err);
}

static int
decode_key (char **out, const json_t *secret, const char *key)
{
        const char *b64
            = json_string_value (json_object_get (json_object_get (secret, "data"), key));
        unsigned char *raw = NULL;
        size_t len;

        *out = NULL;
        if (b64 == NULL || kiln_base64_decode (&raw, &len, b64, strlen (b64), NULL) < 0)
                return -1;
        *out = (char *) raw;
        return 0;
}

static char *
url_escape (const char *s)
{
        kiln_buf b = KILN_BUF_INIT;
        size_t len;

        kiln_buf_puts (&b, "", NULL);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
                    || *p == '-' || *p == '.' || *p == '_' || *p == '~')
                        kiln_buf_append (&b, p, 1, NULL);
                else
                        kiln_buf_printf (&b, NULL, "%%%02X", *p);
        }
        return kiln_buf_steal (&b, &len);
}

/* A git-credential-store line for a step that clones itself: the only
 * file of the secret it sees. */
static int
write_git_credentials (run_ctx *c, const char *url, kiln_error **err)
{
        const char *scheme_end = strstr (url, "://");
        const char *host, *end;
        cleanup_free char *u = url_escape (c->git_user ? c->git_user : "");
        cleanup_free char *p = url_escape (c->git_pass ? c->git_pass : "");
        cleanup_free char *path = kiln_strdup_printf ("%s/secrets/git-credentials", c->work);
        cleanup_free char *line = NULL;

        if (scheme_end == NULL)
                return 0;
        host = scheme_end + 3;
        if (strchr (host, '@') && strchr (host, '@') < strchr (host, '/'))
                host = strchr (host, '@') + 1;
        end = strchr (host, '/');
        line = kiln_strdup_printf ("%.*s://%s:%s@%.*s\n", (int) (scheme_end - url), url, u, p,
                                   (int) (end ? end - host : (ptrdiff_t) strlen (host)), host);
        if (write_secret_file (path, line, strlen (line), err) < 0)
                return -1;
        env_add (c, "KILN_GIT_CREDENTIALS=%s", path);
        return 0;
}

static int
setup_clone_secret (run_ctx *c, kiln_error **err)
{
        const char *name = spec_str (c->res->effective, "source", "git", "cloneSecret");
        const char *type;
        json_t *secret = NULL;

        if (name == NULL || *name == '\0')
                return 0;
        if (kiln_store_get (&secret, c->r->store, "Secret", c->j->ns, name, err) < 0)
                return kiln_error_wrap (err, "cloneSecret");
        type = json_string_value (json_object_get (secret, "type"));
        if (type && strcmp (type, "kubernetes.io/basic-auth") == 0) {
                decode_key (&c->git_user, secret, "username");
                decode_key (&c->git_pass, secret, "password");
        } else {
                json_decref (secret);
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "cloneSecret %s: type %s is not supported yet (use "
                                         "kubernetes.io/basic-auth)",
                                         name, type ? type : "(none)");
        }
        json_decref (secret);
        return 0;
}

/* The step sees DOCKER_CONFIG: the push secret's config.json, or an empty
 * directory so that the daemon's own credentials are never used. */
static int
setup_push_secret (run_ctx *c, kiln_error **err)
{
        const char *name = spec_str (c->res->effective, "output", "pushSecret", NULL);
        cleanup_free char *dir = kiln_strdup_printf ("%s/secrets/docker", c->work);
        cleanup_free char *file = kiln_strdup_printf ("%s/config.json", dir);
        cleanup_free char *config = NULL;
        json_t *secret = NULL;

        if (kiln_mkdir_p (dir, 0700, err) < 0)
                return -1;
        env_add (c, "DOCKER_CONFIG=%s", dir);
        if (name == NULL || *name == '\0')
                return 0;
        if (kiln_store_get (&secret, c->r->store, "Secret", c->j->ns, name, err) < 0)
                return kiln_error_wrap (err, "pushSecret");
        if (decode_key (&config, secret, ".dockerconfigjson") < 0) {
                json_decref (secret);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "pushSecret %s has no .dockerconfigjson", name);
        }
        json_decref (secret);
        return write_secret_file (file, config, strlen (config), err);
}

static void
map_source_error (final *f, const kiln_error *e, bool had_credentials)
{
        const char *reason = "GitError";
        const char *msg = kiln_error_msg (e);

        if (e && e->code == KILN_E_CANCELED)
                return; /* the stop reason says why */
        if (e && e->code == KILN_E_NOT_FOUND)
                reason = strstr (msg, "revision") ? "GitRevisionNotFound"
                                                  : "GitRemoteRepositoryNotFound";
        else if (e && e->code == KILN_E_AUTH)
                reason
                    = had_credentials ? "GitAuthInvalidUserOrPass" : "GitRemoteRepositoryPrivate";
        fail_run (f, "Failed", "buildrun step step-source-default failed: %s", msg);
        f->fail_reason = kiln_strdup (reason);
        f->fail_message = kiln_strdup (msg);
        f->fail_container = "step-source-default";
}

static int
fetch_source (run_ctx *c)
{
        const json_t *spec = c->res->effective;
        const char *url = spec_str (spec, "source", "git", "url");
        kiln_source_opts o = {
                .url = url,
                .revision = spec_str (spec, "source", "git", "revision"),
                .context_dir = spec_str (spec, "source", "contextDir", NULL),
                .work_dir = c->source_root,
                .username = c->git_user,
                .password = c->git_pass,
                .cancel = (const volatile sig_atomic_t *) &c->j->stop,
        };
        kiln_error *err = NULL;

        log_line (c, "[step-source-default] fetching %s", url);
        if (kiln_source_fetch (&c->f->src, &o, &err) < 0) {
                log_line (c, "[step-source-default] %s", kiln_error_msg (err));
                map_source_error (c->f, err, c->git_pass != NULL);
                kiln_error_free (err);
                return -1;
        }
        log_line (c, "[step-source-default] commit %s%s%s",
                  c->f->src.commit ? c->f->src.commit : "", c->f->src.branch ? " on " : "",
                  c->f->src.branch ? c->f->src.branch : "");
        return 0;
}

static void
set_param (json_t *params, const char *name, const char *value)
{
        json_object_set_new (params, name, json_string (value ? value : ""));
}

static void
system_params (run_ctx *c)
{
        const json_t *spec = c->res->effective;
        const char *ctx = spec_str (spec, "source", "contextDir", NULL);
        const json_t *insecure = json_object_get (json_object_get (spec, "output"), "insecure");
        cleanup_free char *context = NULL;

        if (c->f->src.app_dir)
                context = kiln_strdup (c->f->src.app_dir);
        else if (ctx && *ctx && strcmp (ctx, ".") != 0)
                context = kiln_strdup_printf ("%s/%s", c->source_root, ctx);
        else
                context = kiln_strdup (c->source_root);
        set_param (c->params, "shp-source-root", c->source_root);
        set_param (c->params, "shp-source-context", context);
        set_param (c->params, "shp-output-image", spec_str (spec, "output", "image", NULL));
        set_param (c->params, "shp-output-insecure", json_is_true (insecure) ? "true" : "false");
        /* kiln's own: a step that fetches the source itself (kiln build). */
        set_param (c->params, "shp-source-url", spec_str (spec, "source", "git", "url"));
        set_param (c->params, "shp-source-revision", spec_str (spec, "source", "git", "revision"));
        set_param (c->params, "shp-source-context-dir", ctx);
}

static bool
is_kiln_command (const char *arg0)
{
        return strcmp (arg0, "kiln") == 0 || kiln_str_has_suffix (arg0, "/kiln");
}

/* kiln's options never take an empty value, so "--opt=" left empty by a
 * parameter with an empty default means "not given". */
static char **
drop_empty_options (char **argv)
{
        char **out = kiln_strv_new ();

        for (char **a = argv; *a; a++) {
                size_t n = strlen (*a);
                if (n > 3 && kiln_str_has_prefix (*a, "--") && (*a)[n - 1] == '='
                    && strchr (*a, '=') == *a + n - 1)
                        continue;
                out = kiln_strv_append (out, *a);
        }
        kiln_strv_free (argv);
        return out;
}

static char **
step_env (run_ctx *c, const json_t *step)
{
        char **env = kiln_strv_dup (c->base_env);
        const json_t *lists[]
            = { json_object_get (c->res->effective, "env"), json_object_get (step, "env") };

        for (size_t k = 0; k < KILN_N_ELEMENTS (lists); k++) {
                size_t i;
                json_t *e;
                json_array_foreach (lists[k], i, e)
                {
                        const char *name = json_string_value (json_object_get (e, "name"));
                        const char *value = json_string_value (json_object_get (e, "value"));
                        if (name == NULL)
                                continue;
                        cleanup_free char *v
                            = kiln_step_substitute (value ? value : "", c->params, c->results);
                        cleanup_free char *kv = kiln_strdup_printf ("%s=%s", name, v);
                        env = kiln_strv_append (env, kv);
                }
        }
        return env;
}

/* kiln build --json prints one object; its keys are read defensively. */
static void
take_build_report (run_ctx *c, const char *tail)
{
        const char *last = tail;
        json_t *j;

        for (const char *p = tail; *p; p++)
                if (*p == '\n' && p[1] == '{')
                        last = p + 1;
        j = json_loads (last, JSON_DISABLE_EOF_CHECK, NULL);
        if (!json_is_object (j)) {
                json_decref (j);
                return;
        }
        const char *keys[][3] = { { "commit", "commitSha", NULL },
                                  { "author", "commitAuthor", NULL },
                                  { "branch", "branchName", NULL } };
        char **slots[] = { &c->f->src.commit, &c->f->src.author, &c->f->src.branch };
        for (size_t i = 0; i < KILN_N_ELEMENTS (slots); i++)
                for (size_t k = 0; keys[i][k]; k++) {
                        const char *v = json_string_value (json_object_get (j, keys[i][k]));
                        if (v && *slots[i] == NULL)
                                *slots[i] = kiln_strdup (v);
                }
        const char *digest = json_string_value (json_object_get (j, "digest"));
        if (digest && c->f->digest == NULL)
                c->f->digest = kiln_strdup (digest);
        json_decref (j);
}

static void
step_failed (run_ctx *c, const char *container, const kiln_step_run *sr)
{
        char *reason = read_result (c, "shp-error-reason");
        char *message = read_result (c, "shp-error-message");

        fail_run (c->f, "Failed", "buildrun step %s failed%s%s", container,
                  sr->last_stderr ? ": " : "", sr->last_stderr ? sr->last_stderr : "");
        c->f->fail_reason = reason;
        c->f->fail_message = message ? message : kiln_strdup (sr->last_stderr);
        c->f->fail_container = container;
}

static int
run_step (run_ctx *c, const json_t *step)
{
        const char *name = json_string_value (json_object_get (step, "name"));
        const char *wd = json_string_value (json_object_get (step, "workingDir"));
        cleanup_free char *container = kiln_strdup_printf ("step-%s", name ? name : "unnamed");
        cleanup_free char *cwd = wd ? kiln_step_substitute (wd, c->params, c->results) : NULL;
        cleanup_free char *marker = kiln_strdup_printf ("KILN_BUILDRUN=%s", c->uid);
        cleanup_strv char **argv = kiln_strv_new ();
        cleanup_strv char **env = NULL;
        kiln_step_run sr = { 0 };
        kiln_error *err = NULL;

        kiln_step_expand_list (&argv, json_object_get (step, "command"), c->params, c->results);
        kiln_step_expand_list (&argv, json_object_get (step, "args"), c->params, c->results);
        if (argv[0] == NULL || !is_kiln_command (argv[0])) {
                fail_run (c->f, "StepNotSupported",
                          "step %s: only steps whose command is kiln can run yet (image %s)", name,
                          json_string_value (json_object_get (step, "image")) ?: "(none)");
                return -1;
        }
        free (argv[0]);
        argv[0] = kiln_strdup (c->r->kiln_path);
        argv = drop_empty_options (argv);
        env = step_env (c, step);
        sr = (kiln_step_run){ .argv = argv,
                              .env = env,
                              .cwd = cwd && *cwd ? cwd : c->source_root,
                              .marker = marker,
                              .log_fd = c->log_fd,
                              .prefix = container,
                              .stop = &c->j->stop };
        log_line (c, "[%s] running %s", container,
                  json_string_value (json_object_get (step, "image")) ?: "kiln");
        if (kiln_step_exec (&sr, &err) < 0) {
                fail_run (c->f, "Failed", "buildrun step %s failed: %s", container,
                          kiln_error_msg (err));
                kiln_error_free (err);
                return -1;
        }
        if (sr.stopped) {
                kiln_step_run_clear (&sr);
                return -1;
        }
        if (sr.exit_code != 0)
                step_failed (c, container, &sr);
        else
                take_build_report (c, sr.stdout_tail);
        kiln_step_run_clear (&sr);
        return c->f->reason ? -1 : 0;
}

static int
run_steps (run_ctx *c)
{
        const json_t *steps = json_object_get (json_object_get (c->res->strategy, "spec"), "steps");
        size_t i;
        json_t *step;

        if (json_array_size (steps) == 0) {
                fail_run (c->f, "Failed", "the strategy has no steps");
                return -1;
        }
        json_array_foreach (steps, i, step)
        {
                if (c->j->stop || run_step (c, step) < 0)
                        return -1;
        }
        return 0;
}

static void
collect_results (run_ctx *c)
{
        char *digest = read_result (c, "shp-image-digest");
        cleanup_free char *size = read_result (c, "shp-image-size");

        if (digest) {
                free (c->f->digest);
                c->f->digest = digest;
        }
        if (size)
                kiln_parse_int64 (size, 0, INT64_MAX, &c->f->size);
}

static int
prepare_dirs (run_ctx *c, kiln_error **err)
{
        const char *subs[] = { "results", "home", "tmp", "secrets" };

        for (size_t i = 0; i < KILN_N_ELEMENTS (subs); i++) {
                cleanup_free char *d = kiln_strdup_printf ("%s/%s", c->work, subs[i]);
                if (kiln_mkdir_p (d, 0700, err) < 0)
                        return -1;
        }
        /* The clone makes source/ itself; other runs need it to exist. */
        if (spec_str (c->res->effective, "source", "git", "url") == NULL
            || kiln_strategy_mentions (c->res->strategy, "shp-source-url"))
                return kiln_mkdir_p (c->source_root, 0700, err);
        return 0;
}

static void
base_env (run_ctx *c)
{
        const char *path = getenv ("PATH");
        const char *bp = getenv ("KILN_BUILDPACKS_DIR");

        c->base_env = kiln_strv_new ();
        env_add (c, "PATH=%s", path ? path : "/usr/bin:/bin");
        env_add (c, "HOME=%s/home", c->work);
        env_add (c, "TMPDIR=%s/tmp", c->work);
        env_add (c, "KILN_BUILDRUN=%s", c->uid);
        if (bp)
                env_add (c, "KILN_BUILDPACKS_DIR=%s", bp);
}

static void
execute (run_ctx *c)
{
        kiln_error *err = NULL;

        base_env (c);
        if (prepare_dirs (c, &err) < 0 || setup_clone_secret (c, &err) < 0
            || setup_push_secret (c, &err) < 0
            || user_params (c->params, c->r->store, c->j->ns, c->res, &err) < 0) {
                fail_run (c->f, "Failed", "%s", kiln_error_msg (err));
                kiln_error_free (err);
                return;
        }
        if (kiln_strategy_mentions (c->res->strategy, "shp-output-directory")) {
                fail_run (c->f, "OutputDirectoryNotSupported",
                          "strategies that write to shp-output-directory are not supported yet");
                return;
        }
        const char *url = spec_str (c->res->effective, "source", "git", "url");
        if (url && kiln_strategy_mentions (c->res->strategy, "shp-source-url")) {
                if (c->git_pass && write_git_credentials (c, url, &err) < 0) {
                        fail_run (c->f, "Failed", "%s", kiln_error_msg (err));
                        kiln_error_free (err);
                        return;
                }
        } else if (url && fetch_source (c) < 0) {
                return;
        }
        system_params (c);
        if (run_steps (c) == 0)
                collect_results (c);
}

static void
stop_outcome (final *f, const job *j, const kiln_resolved *res)
{
        char dur[32];

        free (f->message);
        f->message = NULL;
        f->reason = NULL;
        switch (j->stop) {
        case STOP_CANCEL:
                fail_run (f, "BuildRunCanceled",
                          "The BuildRun and underlying TaskRun were canceled successfully.");
                break;
        case STOP_TIMEOUT:
                kiln_go_duration_format (dur, sizeof dur, res->timeout_ms);
                fail_run (f, "BuildRunTimeout", "BuildRun %s failed to finish within %s", j->name,
                          dur);
                break;
        default:
                fail_run (f, "DaemonShutdown",
                          "kiln serve shut down before the BuildRun finished; its processes were "
                          "stopped");
        }
}

static void
run_job (kiln_runner *r, job *j, const kiln_resolved *res, const char *uid)
{
        run_ctx c = { .r = r, .j = j, .res = res, .uid = uid, .log_fd = -1 };
        final f = { 0 };
        cleanup_free char *log_path = kiln_runner_log_path (r, uid);
        kiln_error *err = NULL;

        c.f = &f;
        c.work = kiln_strdup_printf ("%s/runs/%s", r->data_dir, uid);
        c.source_root = kiln_strdup_printf ("%s/source", c.work);
        c.results = kiln_strdup_printf ("%s/results", c.work);
        c.params = json_object ();
        c.log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        execute (&c);
        if (j->stop)
                stop_outcome (&f, j, res);
        if (f.reason == NULL) {
                f.status = "True";
                f.reason = "Succeeded";
                f.message = kiln_strdup ("All Steps have completed executing");
        }
        log_line (&c, "[kiln] %s: %s", f.reason, f.message);
        update_status (r, j, apply_final, &f);
        kiln_info ("buildrun %s/%s: %s", j->ns, j->name, f.reason);
        if (kiln_rm_rf (c.work, &err) < 0) {
                kiln_warn ("buildrun %s/%s: %s", j->ns, j->name, err->msg);
                kiln_error_free (err);
        }
        if (c.log_fd >= 0)
                close (c.log_fd);
        final_clear (&f);
        json_decref (c.params);
        kiln_strv_free (c.base_env);
        free (c.git_user);
        free (c.git_pass);
        free (c.work);
        free (c.source_root);
        free (c.results);
}

static void
set_state_canceled (json_t *br, void *data)
{
        (void) data;
        kiln_buildrun_set_condition (br, "False", "BuildRunCanceled",
                                     "The BuildRun and underlying TaskRun were canceled "
                                     "successfully.");
}

static void
set_invalid (json_t *br, void *data)
{
        const kiln_verdict *v = data;
        kiln_buildrun_set_condition (br, "False", v->reason, v->message);
}

static bool
is_canceled (const json_t *br)
{
        const char *state
            = json_string_value (json_object_get (json_object_get (br, "spec"), "state"));
        return state && strcmp (state, "BuildRunCanceled") == 0;
}

static void
work_on (kiln_runner *r, job *j)
{
        json_t *br = NULL;
        kiln_verdict v;
        kiln_resolved res;
        start_info si;

        if (kiln_store_get (&br, r->store, "BuildRun", j->ns, j->name, NULL) < 0)
                return;
        if (kiln_buildrun_is_done (br)) {
                json_decref (br);
                return;
        }
        if (is_canceled (br)) {
                update_status (r, j, set_state_canceled, NULL);
                json_decref (br);
                return;
        }
        kiln_validate_buildrun (&v, &res, r->store, j->ns, br);
        if (v.reason) {
                update_status (r, j, set_invalid, &v);
        } else {
                si = (start_info){ .build_spec = res.build_spec };
                j->deadline_ms = kiln_monotonic_ms () + res.timeout_ms;
                if (update_status (r, j, apply_running, &si)) {
                        cleanup_free char *uid = kiln_strdup (json_string_value (
                            json_object_get (json_object_get (br, "metadata"), "uid")));
                        run_job (r, j, &res, uid ? uid : "unknown");
                }
        }
        kiln_verdict_clear (&v);
        kiln_resolved_clear (&res);
        json_decref (br);
}

/* ---- threads ---- */

static void *
worker (void *arg)
{
        kiln_runner *r = arg;

        for (;;) {
                job *j = NULL;
                unsigned slot = 0;
                pthread_mutex_lock (&r->lock);
                while (!r->stopping && (j = pop_locked (r)) == NULL)
                        pthread_cond_wait (&r->cond, &r->lock);
                if (j == NULL) {
                        pthread_mutex_unlock (&r->lock);
                        return NULL;
                }
                while (r->running[slot])
                        slot++;
                r->running[slot] = j;
                pthread_mutex_unlock (&r->lock);
                work_on (r, j);
                pthread_mutex_lock (&r->lock);
                r->running[slot] = NULL;
                pthread_cond_broadcast (&r->cond);
                pthread_mutex_unlock (&r->lock);
                job_free (j);
        }
}

static void *
watchdog (void *arg)
{
        kiln_runner *r = arg;

        pthread_mutex_lock (&r->lock);
        while (!r->stopping) {
                struct timespec until;
                int64_t now = kiln_monotonic_ms ();
                for (unsigned i = 0; i < r->max_running; i++) {
                        job *j = r->running[i];
                        if (j && j->deadline_ms > 0 && now >= j->deadline_ms && !j->stop)
                                j->stop = STOP_TIMEOUT;
                }
                clock_gettime (CLOCK_REALTIME, &until);
                until.tv_nsec += 100 * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait (&r->cond, &r->lock, &until);
        }
        pthread_mutex_unlock (&r->lock);
        return NULL;
}

/* ---- recovery ---- */

static void
set_restarted (json_t *br, void *data)
{
        (void) data;
        kiln_buildrun_set_condition (br, "False", "DaemonRestarted",
                                     "kiln serve restarted while the BuildRun was running; its "
                                     "processes were stopped");
}

static int
by_creation (const void *a, const void *b)
{
        json_t *const *x = a, *const *y = b;
        const json_t *mx = json_object_get (*x, "metadata"), *my = json_object_get (*y, "metadata");
        const char *cx = json_string_value (json_object_get (mx, "creationTimestamp"));
        const char *cy = json_string_value (json_object_get (my, "creationTimestamp"));
        int c = strcmp (cx ? cx : "", cy ? cy : "");
        int64_t rx = 0, ry = 0;

        if (c)
                return c;
        kiln_parse_int64 (json_string_value (json_object_get (mx, "resourceVersion")) ?: "0", 0,
                          INT64_MAX, &rx);
        kiln_parse_int64 (json_string_value (json_object_get (my, "resourceVersion")) ?: "0", 0,
                          INT64_MAX, &ry);
        return rx < ry ? -1 : rx > ry;
}

static void
recover_one (kiln_runner *r, json_t *br)
{
        const json_t *m = json_object_get (br, "metadata");
        const char *ns = json_string_value (json_object_get (m, "namespace"));
        const char *name = json_string_value (json_object_get (m, "name"));
        const char *uid = json_string_value (json_object_get (m, "uid"));
        job j = { .ns = (char *) (ns ? ns : ""), .name = (char *) (name ? name : "") };

        if (kiln_buildrun_is_done (br))
                return;
        if (json_object_get (json_object_get (br, "status"), "startTime") && uid) {
                cleanup_free char *marker = kiln_strdup_printf ("KILN_BUILDRUN=%s", uid);
                cleanup_free char *work = kiln_strdup_printf ("%s/runs/%s", r->data_dir, uid);
                int n = kiln_step_kill_marked (marker);
                kiln_rm_rf (work, NULL);
                update_status (r, &j, set_restarted, NULL);
                kiln_warn ("buildrun %s/%s was running when kiln serve stopped: marked failed "
                           "(%d leftover processes killed)",
                           j.ns, j.name, n);
                return;
        }
        kiln_runner_enqueue (r, j.ns, j.name);
}

static int
recover (kiln_runner *r, kiln_error **err)
{
        json_t *items = NULL;
        int64_t rv;
        size_t n;

        if (kiln_store_list (&items, &rv, r->store, "BuildRun", NULL, err) < 0)
                return -1;
        n = json_array_size (items);
        json_t **v = kiln_calloc (n ? n : 1, sizeof (*v));
        for (size_t i = 0; i < n; i++)
                v[i] = json_array_get (items, i);
        qsort (v, n, sizeof (*v), by_creation);
        for (size_t i = 0; i < n; i++)
                recover_one (r, v[i]);
        free (v);
        json_decref (items);
        return 0;
}

int
kiln_runner_start (kiln_runner **out, const kiln_runner_opts *o, kiln_error **err)
{
        kiln_runner *r = kiln_calloc (1, sizeof (*r));
        cleanup_free char *runs = kiln_strdup_printf ("%s/runs", o->data_dir);
        cleanup_free char *logs = kiln_strdup_printf ("%s/logs", o->data_dir);

        r->store = o->store;
        r->data_dir = kiln_strdup (o->data_dir);
        r->kiln_path = kiln_strdup (o->kiln_path);
        r->max_running = o->max_concurrent ? o->max_concurrent : 2;
        r->running = kiln_calloc (r->max_running, sizeof (*r->running));
        r->workers = kiln_calloc (r->max_running, sizeof (*r->workers));
        pthread_mutex_init (&r->lock, NULL);
        pthread_cond_init (&r->cond, NULL);
        if (kiln_mkdir_p (runs, 0700, err) < 0 || kiln_mkdir_p (logs, 0700, err) < 0
            || recover (r, err) < 0) {
                kiln_runner_stop (r, 0);
                return -1;
        }
        for (unsigned i = 0; i < r->max_running; i++)
                if (pthread_create (&r->workers[i], NULL, worker, r) != 0)
                        abort ();
        if (pthread_create (&r->watchdog, NULL, watchdog, r) != 0)
                abort ();
        r->threads = true;
        *out = r;
        return 0;
}

static unsigned
running_count_locked (kiln_runner *r)
{
        unsigned n = 0;

        for (unsigned i = 0; i < r->max_running; i++)
                n += r->running[i] != NULL;
        return n;
}

void
kiln_runner_stop (kiln_runner *r, int64_t grace_ms)
{
        int64_t until = kiln_monotonic_ms () + grace_ms;

        if (r == NULL)
                return;
        pthread_mutex_lock (&r->lock);
        r->stopping = true;
        pthread_cond_broadcast (&r->cond);
        while (running_count_locked (r) > 0 && kiln_monotonic_ms () < until) {
                pthread_mutex_unlock (&r->lock);
                struct timespec ts = { 0, 50 * 1000000L };
                nanosleep (&ts, NULL);
                pthread_mutex_lock (&r->lock);
        }
        for (unsigned i = 0; i < r->max_running; i++)
                if (r->running[i] && !r->running[i]->stop)
                        r->running[i]->stop = STOP_SHUTDOWN;
        pthread_mutex_unlock (&r->lock);
        if (r->threads) {
                for (unsigned i = 0; i < r->max_running; i++)
                        pthread_join (r->workers[i], NULL);
                pthread_join (r->watchdog, NULL);
        }
        for (size_t i = 0; i < r->n_queues; i++) {
                job *j = r->queues[i].head;
                while (j) {
                        job *next = j->next;
                        job_free (j);
                        j = next;
                }
                free (r->queues[i].ns);
        }
        free (r->queues);
        free (r->running);
        free (r->workers);
        pthread_cond_destroy (&r->cond);
        pthread_mutex_destroy (&r->lock);
        free (r->data_dir);
        free (r->kiln_path);
        free (r);
}
