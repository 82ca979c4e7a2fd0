/* kiln: /metrics and the watcher that sees BuildRuns finish.
 *
 * The watcher follows the store's BuildRun events.  It remembers, by uid,
 * which BuildRuns it has seen Running (and when, on the monotonic clock)
 * and which it has seen done, so a BuildRun is counted once however often
 * it is written afterwards. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/serve_metrics.h"

#define WATCH_BATCH 256
#define WAIT_MS 200
/* Reasons are Shipwright's and kiln's, but a status write may carry any:
 * past this many, new ones are counted as "other". */
#define MAX_RESULTS 32

static const double buckets[] = { 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };
#define N_BUCKETS KILN_N_ELEMENTS (buckets)

static const char *const methods[]
    = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other" };
#define N_METHODS KILN_N_ELEMENTS (methods)
#define N_CODES 600

typedef struct result_count {
        char *reason;
        uint64_t n;
} result_count;

struct kiln_metrics {
        kiln_store *store;
        kiln_events_sink *sink;
        _Atomic (kiln_runner *) runner;
        double start_time;
        pthread_t thread;
        atomic_bool stopping;

        pthread_mutex_t lock; /* what follows */
        result_count results[MAX_RESULTS + 1];
        size_t n_results;
        uint64_t bucket_n[N_BUCKETS];
        uint64_t duration_count;
        double duration_sum;

        atomic_ullong http[N_METHODS][N_CODES];

        /* The watcher's own (no lock): uid -> integer start ms | true (done). */
        json_t *seen;
        int64_t since;
};

/* ---- counting ---- */

static void
count_result (kiln_metrics *m, const char *reason)
{
        size_t i;

        pthread_mutex_lock (&m->lock);
        for (i = 0; i < m->n_results; i++)
                if (strcmp (m->results[i].reason, reason) == 0)
                        break;
        if (i == m->n_results) {
                if (m->n_results == MAX_RESULTS)
                        reason = "other";
                for (i = 0; i < m->n_results; i++)
                        if (strcmp (m->results[i].reason, reason) == 0)
                                break;
                if (i == m->n_results)
                        m->results[m->n_results++].reason = kiln_strdup (reason);
        }
        m->results[i].n++;
        pthread_mutex_unlock (&m->lock);
}

static void
observe_duration (kiln_metrics *m, double seconds)
{
        pthread_mutex_lock (&m->lock);
        for (size_t i = 0; i < N_BUCKETS; i++)
                if (seconds <= buckets[i])
                        m->bucket_n[i]++;
        m->duration_count++;
        m->duration_sum += seconds;
        pthread_mutex_unlock (&m->lock);
}

void
kiln_metrics_observe_http (void *data, const char *method, int status, double ms)
{
        kiln_metrics *m = data;
        size_t i;

        (void) ms;
        if (status <= 0 || status >= N_CODES)
                return; /* nothing was answered */
        for (i = 0; i < N_METHODS - 1; i++)
                if (strcmp (methods[i], method) == 0)
                        break;
        atomic_fetch_add (&m->http[i][status], 1);
}

/* ---- the watcher ---- */

static const json_t *
succeeded_condition (const json_t *br)
{
        const json_t *conds = json_object_get (json_object_get (br, "status"), "conditions");
        size_t i;
        json_t *c;

        json_array_foreach (conds, i, c)
        {
                const char *type = json_string_value (json_object_get (c, "type"));
                if (type && strcmp (type, "Succeeded") == 0)
                        return c;
        }
        return NULL;
}

static double
timestamp (const json_t *st, const char *key)
{
        const char *v = json_string_value (json_object_get (st, key));
        struct tm tm = { 0 };
        const char *end;

        if (v == NULL || (end = strptime (v, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
                return -1;
        return (double) timegm (&tm);
}

/* Seconds from start to end: measured when this daemon saw it start,
 * else from the status's timestamps; < 0 when it never started. */
static double
duration_of (const json_t *br, const json_t *seen)
{
        const json_t *st = json_object_get (br, "status");
        double a, b;

        if (json_is_integer (seen))
                return (double) (kiln_monotonic_ms () - json_integer_value (seen)) / 1e3;
        a = timestamp (st, "startTime");
        b = timestamp (st, "completionTime");
        if (a < 0 || b < a)
                return -1;
        return b - a;
}

static void
finished (kiln_metrics *m, const json_t *br, const json_t *seen)
{
        const char *reason
            = json_string_value (json_object_get (succeeded_condition (br), "reason"));
        double d = duration_of (br, seen);

        count_result (m, reason && *reason ? reason : "Unknown");
        if (d >= 0)
                observe_duration (m, d);
        if (m->sink)
                kiln_events_sink_send (m->sink, br);
}

static void
see (kiln_metrics *m, const char *type, const json_t *br)
{
        const char *uid
            = json_string_value (json_object_get (json_object_get (br, "metadata"), "uid"));
        const json_t *seen;
        const char *reason;

        if (uid == NULL)
                return;
        seen = json_object_get (m->seen, uid);
        if (strcmp (type, "DELETED") == 0) {
                json_object_del (m->seen, uid);
                return;
        }
        if (json_is_true (seen))
                return;
        if (kiln_buildrun_is_done (br)) {
                finished (m, br, seen);
                json_object_set_new (m->seen, uid, json_true ());
                return;
        }
        reason = json_string_value (json_object_get (succeeded_condition (br), "reason"));
        if (seen == NULL && reason && strcmp (reason, "Running") == 0)
                json_object_set_new (m->seen, uid, json_integer (kiln_monotonic_ms ()));
}

/* Reads the BuildRuns as they are now: the done ones are not news. */
static int
seed (kiln_metrics *m, kiln_error **err)
{
        json_t *items = NULL;
        size_t i;
        json_t *br;

        if (kiln_store_list (&items, &m->since, m->store, "BuildRun", NULL, err) < 0)
                return -1;
        json_array_foreach (items, i, br)
        {
                const char *uid
                    = json_string_value (json_object_get (json_object_get (br, "metadata"), "uid"));
                if (uid && kiln_buildrun_is_done (br))
                        json_object_set_new (m->seen, uid, json_true ());
        }
        json_decref (items);
        return 0;
}

/* Sees every event after m->since; false when there was nothing. */
static bool
drain (kiln_metrics *m)
{
        json_t *evs = NULL;
        int64_t last = m->since;
        bool gone = false;
        kiln_error *err = NULL;
        size_t i;
        json_t *ev;

        if (kiln_store_events (&evs, &last, &gone, m->store, "BuildRun", NULL, m->since,
                               WATCH_BATCH, &err)
            < 0) {
                kiln_warn ("metrics: %s", err->msg);
                kiln_error_free (err);
                return false;
        }
        if (gone) {
                /* Fell behind the kept history: what finished meanwhile is
                 * lost to the counters; start again from now. */
                kiln_warn ("metrics: BuildRun events were dropped before they were counted");
                json_decref (evs);
                json_object_clear (m->seen);
                return seed (m, NULL) == 0;
        }
        json_array_foreach (evs, i, ev)
        {
                const char *type = json_string_value (json_object_get (ev, "type"));
                see (m, type ? type : "", json_object_get (ev, "object"));
        }
        m->since = last;
        json_decref (evs);
        return i > 0;
}

static void *
watch (void *arg)
{
        kiln_metrics *m = arg;

        while (!atomic_load (&m->stopping)) {
                if (!drain (m))
                        kiln_store_wait (m->store, m->since, WAIT_MS);
        }
        while (drain (m))
                ;
        return NULL;
}

int
kiln_metrics_start (kiln_metrics **out, kiln_store *store, kiln_events_sink *sink, kiln_error **err)
{
        kiln_metrics *m = kiln_calloc (1, sizeof (*m));
        struct timespec now;

        m->store = store;
        m->sink = sink;
        m->seen = json_object ();
        clock_gettime (CLOCK_REALTIME, &now);
        m->start_time = (double) now.tv_sec + (double) now.tv_nsec / 1e9;
        pthread_mutex_init (&m->lock, NULL);
        if (seed (m, err) < 0 || pthread_create (&m->thread, NULL, watch, m) != 0) {
                json_decref (m->seen);
                pthread_mutex_destroy (&m->lock);
                free (m);
                return kiln_error_wrap (err, "metrics");
        }
        *out = m;
        return 0;
}

void
kiln_metrics_set_runner (kiln_metrics *m, kiln_runner *r)
{
        atomic_store (&m->runner, r);
}

void
kiln_metrics_stop (kiln_metrics *m)
{
        if (m == NULL)
                return;
        atomic_store (&m->stopping, true);
        pthread_join (m->thread, NULL);
        for (size_t i = 0; i < m->n_results; i++)
                free (m->results[i].reason);
        json_decref (m->seen);
        pthread_mutex_destroy (&m->lock);
        free (m);
}

/* ---- the page ---- */

static void
put_label_value (kiln_buf *b, const char *v)
{
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        kiln_buf_printf (b, NULL, "\\%c", *v);
                else if (*v == '\n')
                        kiln_buf_puts (b, "\\n", NULL);
                else
                        kiln_buf_append (b, v, 1, NULL);
        }
}

static void
header (kiln_buf *b, const char *name, const char *type, const char *help)
{
        kiln_buf_printf (b, NULL, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
put_buildruns (kiln_metrics *m, kiln_buf *b)
{
        kiln_runner *r = atomic_load (&m->runner);
        unsigned queued = 0, running = 0;

        header (b, "kiln_buildruns_total", "counter",
                "BuildRuns that finished, by the reason of their Succeeded condition.");
        pthread_mutex_lock (&m->lock);
        for (size_t i = 0; i < m->n_results; i++) {
                kiln_buf_puts (b, "kiln_buildruns_total{result=\"", NULL);
                put_label_value (b, m->results[i].reason);
                kiln_buf_printf (b, NULL, "\"} %llu\n", (unsigned long long) m->results[i].n);
        }
        header (b, "kiln_buildrun_duration_seconds", "histogram",
                "Time from a BuildRun's start to its end, for those that started.");
        /* bucket_n is already cumulative (observe_duration). */
        for (size_t i = 0; i < N_BUCKETS; i++)
                kiln_buf_printf (b, NULL, "kiln_buildrun_duration_seconds_bucket{le=\"%g\"} %llu\n",
                                 buckets[i], (unsigned long long) m->bucket_n[i]);
        kiln_buf_printf (b, NULL, "kiln_buildrun_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                         (unsigned long long) m->duration_count);
        kiln_buf_printf (b, NULL, "kiln_buildrun_duration_seconds_sum %.6f\n", m->duration_sum);
        kiln_buf_printf (b, NULL, "kiln_buildrun_duration_seconds_count %llu\n",
                         (unsigned long long) m->duration_count);
        pthread_mutex_unlock (&m->lock);
        if (r)
                kiln_runner_counts (r, &queued, &running);
        header (b, "kiln_buildruns_queued", "gauge", "BuildRuns waiting for a worker.");
        kiln_buf_printf (b, NULL, "kiln_buildruns_queued %u\n", queued);
        header (b, "kiln_buildruns_running", "gauge", "BuildRuns running now.");
        kiln_buf_printf (b, NULL, "kiln_buildruns_running %u\n", running);
}

static void
put_http (kiln_metrics *m, kiln_buf *b)
{
        header (b, "kiln_http_requests_total", "counter",
                "HTTP requests answered, by status code and method.");
        for (size_t i = 0; i < N_METHODS; i++)
                for (int c = 100; c < N_CODES; c++) {
                        unsigned long long n = atomic_load (&m->http[i][c]);
                        if (n)
                                kiln_buf_printf (
                                    b, NULL,
                                    "kiln_http_requests_total{code=\"%d\",method=\"%s\"} "
                                    "%llu\n",
                                    c, methods[i], n);
                }
}

static long
open_fds (void)
{
        cleanup_dir DIR *d = opendir ("/proc/self/fd");
        struct dirent *e;
        long n = 0;

        if (d == NULL)
                return -1;
        while ((e = readdir (d)))
                n += e->d_name[0] != '.';
        return n - 1; /* the directory's own */
}

static void
put_process (kiln_metrics *m, kiln_buf *b)
{
        struct rusage ru;
        long pages = 0, resident = 0;
        cleanup_file FILE *f = fopen ("/proc/self/statm", "r");
        long fds = open_fds ();

        if (f && fscanf (f, "%ld %ld", &pages, &resident) == 2) {
                header (b, "process_resident_memory_bytes", "gauge",
                        "Resident memory size in bytes.");
                kiln_buf_printf (b, NULL, "process_resident_memory_bytes %lld\n",
                                 (long long) resident * sysconf (_SC_PAGESIZE));
        }
        if (getrusage (RUSAGE_SELF, &ru) == 0) {
                header (b, "process_cpu_seconds_total", "counter",
                        "User and system CPU time spent in seconds.");
                kiln_buf_printf (b, NULL, "process_cpu_seconds_total %.3f\n",
                                 (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
                                     + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
        }
        if (fds >= 0) {
                header (b, "process_open_fds", "gauge", "Number of open file descriptors.");
                kiln_buf_printf (b, NULL, "process_open_fds %ld\n", fds);
        }
        header (b, "process_start_time_seconds", "gauge",
                "Start time of the process since unix epoch in seconds.");
        kiln_buf_printf (b, NULL, "process_start_time_seconds %.3f\n", m->start_time);
}

void
kiln_metrics_respond (kiln_metrics *m, kiln_http_response *resp)
{
        kiln_buf b = KILN_BUF_INIT;

        put_buildruns (m, &b);
        put_http (m, &b);
        put_process (m, &b);
        resp->status = 200;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        resp->body = kiln_buf_steal (&b, &resp->len);
}
