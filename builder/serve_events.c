/* kiln: a CloudEvent per finished BuildRun, POSTed to --events-sink.
 *
 * Binary content mode (CloudEvents 1.0 HTTP binding): the attributes are
 * ce-* headers and the body is the BuildRun as the API returns it.  One
 * thread delivers, in order, from a bounded queue, so a slow or dead sink
 * never holds a runner or a request; the BuildRun's record is already
 * stored before its event is queued, so a lost event loses no state. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/serve_metrics.h"

#define QUEUE_MAX 1000
#define ATTEMPTS 4
#define FIRST_BACKOFF_MS 500
#define POST_TIMEOUT_MS 5000

typedef struct event {
        char *id, *source, *subject, *time;
        char *what; /* "NS/NAME" for log lines */
        char *body;
        struct event *next;
} event;

struct kiln_events_sink {
        char *url;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        event *head, *tail;
        size_t n;
        bool stopping;
        int64_t deadline_ms; /* once stopping: when to give up */
};

static void
event_free (event *e)
{
        free (e->id);
        free (e->source);
        free (e->subject);
        free (e->time);
        free (e->what);
        free (e->body);
        free (e);
}

static event *
event_new (const json_t *br)
{
        const json_t *md = json_object_get (br, "metadata");
        const char *ns = json_string_value (json_object_get (md, "namespace"));
        const char *name = json_string_value (json_object_get (md, "name"));
        const char *uid = json_string_value (json_object_get (md, "uid"));
        const char *rv = json_string_value (json_object_get (md, "resourceVersion"));
        event *e = kiln_calloc (1, sizeof (*e));
        char now[32];

        ns = ns ? ns : "";
        name = name ? name : "";
        /* uid and resourceVersion are kiln's; ns and name are DNS-1123
         * names: nothing here can break a header line. */
        e->id = kiln_strdup_printf ("%s-%s", uid ? uid : "none", rv ? rv : "0");
        e->source = kiln_strdup_printf ("/apis/" KILN_SHP_API_VERSION "/namespaces/%s/buildruns/%s",
                                        ns, name);
        e->subject = kiln_strdup (name);
        kiln_store_now (now);
        e->time = kiln_strdup (now);
        e->what = kiln_strdup_printf ("%s/%s", ns, name);
        e->body = json_dumps (br, JSON_COMPACT);
        if (e->body == NULL)
                e->body = kiln_strdup ("{}");
        return e;
}

void
kiln_events_sink_send (kiln_events_sink *s, const json_t *br)
{
        event *e = event_new (br);

        pthread_mutex_lock (&s->lock);
        if (s->n >= QUEUE_MAX || s->stopping) {
                pthread_mutex_unlock (&s->lock);
                kiln_warn ("events sink: buildrun %s: event %s dropped (%zu events waiting)",
                           e->what, e->id, (size_t) QUEUE_MAX);
                event_free (e);
                return;
        }
        if (s->tail)
                s->tail->next = e;
        else
                s->head = e;
        s->tail = e;
        s->n++;
        pthread_cond_broadcast (&s->cond);
        pthread_mutex_unlock (&s->lock);
}

/* ---- delivery ---- */

static bool
retryable (long status)
{
        return status >= 500 || status == 429 || status == 408;
}

/* Sleeps ms, or less when the sink must stop; false when time is up. */
static bool
backoff (kiln_events_sink *s, int64_t ms)
{
        int64_t until = kiln_monotonic_ms () + ms;
        bool ok;

        pthread_mutex_lock (&s->lock);
        for (;;) {
                int64_t now = kiln_monotonic_ms ();
                if (s->stopping && now >= s->deadline_ms) {
                        ok = false;
                        break;
                }
                if (now >= until) {
                        ok = true;
                        break;
                }
                struct timespec ts;
                clock_gettime (CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait (&s->cond, &s->lock, &ts);
        }
        pthread_mutex_unlock (&s->lock);
        return ok;
}

static void
deliver (kiln_events_sink *s, const event *e)
{
        cleanup_free char *h_id = kiln_strdup_printf ("ce-id: %s", e->id);
        cleanup_free char *h_source = kiln_strdup_printf ("ce-source: %s", e->source);
        cleanup_free char *h_subject = kiln_strdup_printf ("ce-subject: %s", e->subject);
        cleanup_free char *h_time = kiln_strdup_printf ("ce-time: %s", e->time);
        const char *headers[] = { "ce-specversion: 1.0",
                                  "ce-type: dev.kiln.buildrun.finished",
                                  h_source,
                                  h_id,
                                  h_time,
                                  h_subject,
                                  "Content-Type: application/json",
                                  NULL };
        int64_t wait = FIRST_BACKOFF_MS;
        cleanup_free char *why = NULL;

        for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
                kiln_error *err = NULL;
                long status = 0;

                if (kiln_registry_post (&status, s->url, headers, e->body, strlen (e->body),
                                        POST_TIMEOUT_MS, &err)
                    == 0) {
                        if (status >= 200 && status < 300) {
                                kiln_debug ("events sink: buildrun %s: event %s delivered", e->what,
                                            e->id);
                                return;
                        }
                        free (why);
                        why = kiln_strdup_printf ("HTTP %ld", status);
                        if (!retryable (status))
                                break;
                } else {
                        free (why);
                        why = kiln_strdup (err->msg);
                        kiln_error_free (err);
                }
                if (attempt == ATTEMPTS || !backoff (s, wait))
                        break;
                wait *= 2;
        }
        kiln_warn ("events sink: buildrun %s: event %s not delivered: %s", e->what, e->id, why);
}

static void *
run (void *arg)
{
        kiln_events_sink *s = arg;

        for (;;) {
                event *e;
                pthread_mutex_lock (&s->lock);
                while (s->head == NULL && !s->stopping)
                        pthread_cond_wait (&s->cond, &s->lock);
                e = s->head;
                if (e == NULL || (s->stopping && kiln_monotonic_ms () >= s->deadline_ms)) {
                        pthread_mutex_unlock (&s->lock);
                        return NULL;
                }
                s->head = e->next;
                if (s->head == NULL)
                        s->tail = NULL;
                s->n--;
                pthread_mutex_unlock (&s->lock);
                deliver (s, e);
                event_free (e);
        }
}

int
kiln_events_sink_start (kiln_events_sink **out, const char *url, kiln_error **err)
{
        kiln_events_sink *s;

        if (!kiln_str_has_prefix (url, "http://") && !kiln_str_has_prefix (url, "https://"))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--events-sink `%s`: want an http:// or https:// URL",
                                         url);
        s = kiln_calloc (1, sizeof (*s));
        s->url = kiln_strdup (url);
        pthread_mutex_init (&s->lock, NULL);
        pthread_cond_init (&s->cond, NULL);
        if (pthread_create (&s->thread, NULL, run, s) != 0)
                abort ();
        *out = s;
        return 0;
}

void
kiln_events_sink_stop (kiln_events_sink *s, int64_t drain_ms)
{
        size_t dropped = 0;

        if (s == NULL)
                return;
        pthread_mutex_lock (&s->lock);
        s->stopping = true;
        s->deadline_ms = kiln_monotonic_ms () + drain_ms;
        pthread_cond_broadcast (&s->cond);
        pthread_mutex_unlock (&s->lock);
        pthread_join (s->thread, NULL);
        while (s->head) {
                event *e = s->head;
                s->head = e->next;
                event_free (e);
                dropped++;
        }
        if (dropped)
                kiln_warn ("events sink: %zu events not delivered before kiln serve stopped",
                           dropped);
        pthread_cond_destroy (&s->cond);
        pthread_mutex_destroy (&s->lock);
        free (s->url);
        free (s);
}
