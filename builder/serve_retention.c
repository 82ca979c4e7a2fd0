/* kiln: retention of finished BuildRuns (Shipwright's spec.retention).
 *
 * A reaper thread looks at the finished BuildRuns soon after any change in
 * the store (a run ending is one) and at least once a second.  It deletes
 * a run whose ttlAfterSucceeded / ttlAfterFailed passed since its
 * completionTime (the BuildRun's retention wins over its Build's, which is
 * read from status.buildSpec, the spec the run used), and the oldest
 * finished runs of a Build beyond the Build's succeededLimit /
 * failedLimit, counted per result.  Everything it needs is in the records,
 * so a restarted daemon carries on where the old one stopped.  Deleting a
 * run deletes its log; watchers see DELETED. */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/log.h"
#include "kiln/serve.h"

struct kiln_reaper {
        kiln_store *store;
        kiln_runner *runner;
        pthread_t thread;
        pthread_mutex_t lock;
        bool stopping;
};

static const json_t *
at (const json_t *v, const char *a, const char *b)
{
        v = json_object_get (v, a);
        return b ? json_object_get (v, b) : v;
}

static const char *
meta_str (const json_t *obj, const char *key)
{
        return json_string_value (at (obj, "metadata", key));
}

static const char *
label (const json_t *obj, const char *key)
{
        return json_string_value (json_object_get (at (obj, "metadata", "labels"), key));
}

/* completionTime in seconds since the epoch; -1 when missing. */
static int64_t
completion (const json_t *br)
{
        const char *s = json_string_value (at (br, "status", "completionTime"));
        struct tm tm = { 0 };
        const char *end;

        if (s == NULL || (end = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
                return -1;
        return (int64_t) timegm (&tm);
}

static bool
succeeded (const json_t *br)
{
        const json_t *conds = at (br, "status", "conditions");
        size_t i;
        json_t *c;

        json_array_foreach (conds, i, c)
        {
                const char *type = json_string_value (json_object_get (c, "type"));
                const char *st = json_string_value (json_object_get (c, "status"));
                if (type && strcmp (type, "Succeeded") == 0)
                        return st && strcmp (st, "True") == 0;
        }
        return false;
}

void
kiln_buildrun_delete (kiln_store *s, kiln_runner *runner, const char *ns, const char *name)
{
        json_t *old = NULL;
        const char *uid;

        if (kiln_store_delete (&old, s, "BuildRun", ns, name, NULL) < 0)
                return;
        uid = meta_str (old, "uid");
        if (runner) {
                kiln_runner_cancel (runner, ns, name);
                if (uid) {
                        cleanup_free char *log = kiln_runner_log_path (runner, uid);
                        unlink (log);
                }
        }
        json_decref (old);
}

/* The TTL in ms for this run's result, or -1 for none. */
static int64_t
ttl_of (const json_t *br, const json_t *builds_by_key)
{
        const char *field = succeeded (br) ? "ttlAfterSucceeded" : "ttlAfterFailed";
        const char *v = json_string_value (json_object_get (at (br, "spec", "retention"), field));
        int64_t ms;

        if (v == NULL)
                v = json_string_value (json_object_get (
                    at (at (br, "status", "buildSpec"), "retention", NULL), field));
        if (v == NULL && at (br, "status", "buildSpec") == NULL && label (br, KILN_BUILD_LABEL)) {
                cleanup_free char *key = kiln_strdup_printf ("%s/%s", meta_str (br, "namespace"),
                                                             label (br, KILN_BUILD_LABEL));
                const json_t *b = json_object_get (builds_by_key, key);
                v = json_string_value (json_object_get (at (b, "spec", "retention"), field));
        }
        if (v == NULL || kiln_go_duration_parse (v, &ms) < 0)
                return -1;
        return ms;
}

static int
by_completion (const void *a, const void *b)
{
        json_t *const *x = a, *const *y = b;
        int64_t cx = completion (*x), cy = completion (*y);
        const char *nx = meta_str (*x, "creationTimestamp"),
                   *ny = meta_str (*y, "creationTimestamp");

        if (cx != cy)
                return cx < cy ? -1 : 1;
        return strcmp (nx ? nx : "", ny ? ny : "");
}

/* Deletes the oldest of runs beyond limit (the runs of one Build with one
 * result). */
static void
trim (kiln_reaper *r, json_t *runs, int64_t limit)
{
        size_t n = json_array_size (runs);
        json_t **v;

        if (limit <= 0 || n <= (size_t) limit)
                return;
        v = kiln_calloc (n, sizeof (*v));
        for (size_t i = 0; i < n; i++)
                v[i] = json_array_get (runs, i);
        qsort (v, n, sizeof (*v), by_completion);
        for (size_t i = 0; i < n - (size_t) limit; i++) {
                const char *ns = meta_str (v[i], "namespace");
                kiln_info ("buildrun %s/%s: deleted, beyond its Build's retention limit", ns,
                           meta_str (v[i], "name"));
                kiln_buildrun_delete (r->store, r->runner, ns, meta_str (v[i], "name"));
        }
        free (v);
}

static void
apply_limits (kiln_reaper *r, const json_t *builds, const json_t *runs)
{
        size_t i;
        json_t *b;

        json_array_foreach (builds, i, b)
        {
                const json_t *ret = at (b, "spec", "retention");
                const char *ns = meta_str (b, "namespace");
                const char *name = meta_str (b, "name");
                json_int_t ok = json_integer_value (json_object_get (ret, "succeededLimit"));
                json_int_t bad = json_integer_value (json_object_get (ret, "failedLimit"));
                json_t *good_runs, *bad_runs;
                size_t k;
                json_t *br;

                if ((ok <= 0 && bad <= 0) || ns == NULL || name == NULL)
                        continue;
                good_runs = json_array ();
                bad_runs = json_array ();
                json_array_foreach (runs, k, br)
                {
                        const char *bn = label (br, KILN_BUILD_LABEL);
                        const char *rns = meta_str (br, "namespace");
                        if (bn && rns && strcmp (bn, name) == 0 && strcmp (rns, ns) == 0
                            && kiln_buildrun_is_done (br))
                                json_array_append (succeeded (br) ? good_runs : bad_runs, br);
                }
                trim (r, good_runs, ok);
                trim (r, bad_runs, bad);
                json_decref (good_runs);
                json_decref (bad_runs);
        }
}

static void
apply_ttls (kiln_reaper *r, const json_t *builds_by_key, const json_t *runs, int64_t now_ms)
{
        size_t i;
        json_t *br;

        json_array_foreach (runs, i, br)
        {
                int64_t done = completion (br), ttl;
                if (!kiln_buildrun_is_done (br) || done < 0)
                        continue;
                ttl = ttl_of (br, builds_by_key);
                /* completionTime has whole seconds: count from the end of
                 * that second, so that a run never goes before its TTL. */
                if (ttl < 0 || (done + 1) * 1000 + ttl > now_ms)
                        continue;
                kiln_info ("buildrun %s/%s: deleted, its retention TTL passed",
                           meta_str (br, "namespace"), meta_str (br, "name"));
                kiln_buildrun_delete (r->store, r->runner, meta_str (br, "namespace"),
                                      meta_str (br, "name"));
        }
}

static void
sweep (kiln_reaper *r)
{
        json_t *builds = NULL, *runs = NULL, *by_key = json_object ();
        int64_t rv;
        struct timespec ts;
        size_t i;
        json_t *b;

        if (kiln_store_list (&builds, &rv, r->store, "Build", NULL, NULL) < 0)
                goto out;
        json_array_foreach (builds, i, b)
        {
                cleanup_free char *key
                    = kiln_strdup_printf ("%s/%s", meta_str (b, "namespace"), meta_str (b, "name"));
                json_object_set (by_key, key, b);
        }
        if (kiln_store_list (&runs, &rv, r->store, "BuildRun", NULL, NULL) < 0)
                goto out;
        clock_gettime (CLOCK_REALTIME, &ts);
        apply_ttls (r, by_key, runs, (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        json_decref (runs);
        /* Read again: the TTLs may have deleted some. */
        if (kiln_store_list (&runs, &rv, r->store, "BuildRun", NULL, NULL) < 0)
                goto out;
        apply_limits (r, builds, runs);
out:
        json_decref (by_key);
        json_decref (builds);
        json_decref (runs);
}

static bool
stopping (kiln_reaper *r)
{
        bool s;

        pthread_mutex_lock (&r->lock);
        s = r->stopping;
        pthread_mutex_unlock (&r->lock);
        return s;
}

static void *
reaper_main (void *arg)
{
        kiln_reaper *r = arg;
        int64_t last_sweep = 0;

        while (!stopping (r)) {
                int64_t rv = kiln_store_current (r->store);
                bool moved = kiln_store_wait (r->store, rv, 200);
                int64_t now = kiln_monotonic_ms ();
                if (stopping (r) || kiln_store_is_shut_down (r->store))
                        break;
                if (moved || now - last_sweep >= 1000) {
                        sweep (r);
                        last_sweep = now;
                }
        }
        return NULL;
}

int
kiln_reaper_start (kiln_reaper **out, kiln_store *s, kiln_runner *runner, kiln_error **err)
{
        kiln_reaper *r = kiln_calloc (1, sizeof (*r));

        r->store = s;
        r->runner = runner;
        pthread_mutex_init (&r->lock, NULL);
        sweep (r);
        if (pthread_create (&r->thread, NULL, reaper_main, r) != 0) {
                pthread_mutex_destroy (&r->lock);
                free (r);
                return kiln_error_make (err, 0, "cannot start the retention thread");
        }
        *out = r;
        return 0;
}

void
kiln_reaper_stop (kiln_reaper *r)
{
        if (r == NULL)
                return;
        pthread_mutex_lock (&r->lock);
        r->stopping = true;
        pthread_mutex_unlock (&r->lock);
        pthread_join (r->thread, NULL);
        pthread_mutex_destroy (&r->lock);
        free (r);
}

void
kiln_retention_build_deleted (kiln_store *s, kiln_runner *runner, const json_t *build)
{
        const char *ns = meta_str (build, "namespace");
        const char *name = meta_str (build, "name");
        json_t *runs = NULL;
        int64_t rv;
        size_t i;
        json_t *br;

        if (!json_is_true (json_object_get (at (build, "spec", "retention"), "atBuildDeletion"))
            || ns == NULL || name == NULL
            || kiln_store_list (&runs, &rv, s, "BuildRun", ns, NULL) < 0)
                return;
        json_array_foreach (runs, i, br)
        {
                const char *bn = label (br, KILN_BUILD_LABEL);
                if (bn && strcmp (bn, name) == 0)
                        kiln_buildrun_delete (s, runner, ns, meta_str (br, "name"));
        }
        json_decref (runs);
}
