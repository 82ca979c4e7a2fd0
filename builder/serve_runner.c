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
                        j->stop = KILN_RUN_STOP_CANCEL;
                        found = true;
                }
        }
        pthread_mutex_unlock (&r->lock);
        return found;
}

static unsigned running_count_locked (kiln_runner *r);

void
kiln_runner_counts (kiln_runner *r, unsigned *queued, unsigned *running)
{
        unsigned q = 0;

        pthread_mutex_lock (&r->lock);
        for (size_t i = 0; i < r->n_queues; i++)
                for (job *j = r->queues[i].head; j; j = j->next)
                        q++;
        *running = running_count_locked (r);
        pthread_mutex_unlock (&r->lock);
        *queued = q;
}

char *
kiln_runner_log_path (kiln_runner *r, const char *uid)
{
        return kiln_strdup_printf ("%s/logs/%s.log", r->data_dir, uid);
}

char *
kiln_runner_upload_dir (kiln_runner *r, const char *name)
{
        return kiln_strdup_printf ("%s/uploads/%s", r->data_dir, name);
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

static void
set_source_status (json_t *st, const kiln_run_result *f)
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
        const kiln_run_result *f = data;
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

static void
run_job (kiln_runner *r, job *j, const kiln_resolved *res, const char *uid, int64_t created)
{
        cleanup_free char *work = kiln_strdup_printf ("%s/runs/%s", r->data_dir, uid);
        cleanup_free char *log_path = kiln_runner_log_path (r, uid);
        cleanup_free char *upload = kiln_runner_upload_dir (r, uid);
        kiln_run_opts o = { .store = r->store,
                            .ns = j->ns,
                            .name = j->name,
                            .uid = uid,
                            .work_dir = work,
                            .log_path = log_path,
                            .kiln_path = r->kiln_path,
                            .data_dir = r->data_dir,
                            .res = res,
                            .stop = &j->stop,
                            .created = created,
                            .upload_dir = upload };
        kiln_run_result f;

        kiln_run_execute (&f, &o);
        kiln_rm_rf (upload, NULL);
        update_status (r, j, apply_final, &f);
        kiln_info ("buildrun %s/%s: %s", j->ns, j->name, f.reason);
        kiln_run_result_clear (&f);
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
                        run_job (r, j, &res, uid ? uid : "unknown",
                                 kiln_rfc3339_parse (json_string_value (json_object_get (
                                     json_object_get (br, "metadata"), "creationTimestamp"))));
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
                                j->stop = KILN_RUN_STOP_TIMEOUT;
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
                cleanup_free char *upload = kiln_runner_upload_dir (r, uid);
                int n = kiln_step_kill_marked (marker);
                kiln_rm_rf (work, NULL);
                kiln_rm_rf (upload, NULL);
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
        cleanup_free char *uploads = kiln_strdup_printf ("%s/uploads", o->data_dir);

        r->store = o->store;
        r->data_dir = kiln_strdup (o->data_dir);
        r->kiln_path = kiln_strdup (o->kiln_path);
        r->max_running = o->max_concurrent ? o->max_concurrent : 2;
        r->running = kiln_calloc (r->max_running, sizeof (*r->running));
        r->workers = kiln_calloc (r->max_running, sizeof (*r->workers));
        pthread_mutex_init (&r->lock, NULL);
        pthread_cond_init (&r->cond, NULL);
        if (kiln_mkdir_p (runs, 0700, err) < 0 || kiln_mkdir_p (logs, 0700, err) < 0
            || kiln_mkdir_p (uploads, 0700, err) < 0 || recover (r, err) < 0) {
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
                        r->running[i]->stop = KILN_RUN_STOP_SHUTDOWN;
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
