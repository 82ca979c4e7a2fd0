/* kiln: what `kiln serve` tells its operators.
 *
 *   serve_metrics.c  /metrics in the Prometheus text format 0.0.4, and the
 *                    watcher that sees BuildRuns finish
 *   serve_events.c   a CloudEvent per finished BuildRun, POSTed to
 *                    --events-sink from a thread of its own
 *
 * A BuildRun "finishes" when its Succeeded condition first becomes True
 * or False, whoever set it (the runner, a cancel, a failed validation, a
 * restart).  The watcher follows the store's event log, so it needs no
 * hook in the code that writes statuses. */
#ifndef KILN_SERVE_METRICS_H
#define KILN_SERVE_METRICS_H

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "httpd.h"
#include "serve.h"
#include "store.h"

/* ---- the CloudEvents sink (serve_events.c) ---- */

typedef struct kiln_events_sink kiln_events_sink;

/* Starts the delivery thread for url (http:// or https://; else
 * KILN_E_INVALID). */
int kiln_events_sink_start (kiln_events_sink **out, const char *url, kiln_error **err);

/* Queues a CloudEvent for the finished BuildRun br (borrowed; a copy is
 * kept).  Never blocks: when the queue is full the event is dropped and
 * that is logged. */
void kiln_events_sink_send (kiln_events_sink *s, const json_t *br);

/* Delivers what is queued for at most drain_ms, drops the rest (logged),
 * stops the thread and frees s; accepts NULL. */
void kiln_events_sink_stop (kiln_events_sink *s, int64_t drain_ms);

/* ---- metrics (serve_metrics.c) ---- */

typedef struct kiln_metrics kiln_metrics;

/* Starts the watcher over store's BuildRuns; sink (may be NULL) gets an
 * event for each BuildRun that finishes from now on.  Both are borrowed
 * and must outlive kiln_metrics_stop. */
int kiln_metrics_start (kiln_metrics **out, kiln_store *store, kiln_events_sink *sink,
                        kiln_error **err);

/* The runner the queued and running gauges are read from (borrowed;
 * NULL: both read 0). */
void kiln_metrics_set_runner (kiln_metrics *m, kiln_runner *r);

/* A kiln_http_observe_fn: counts one request (data is the kiln_metrics). */
void kiln_metrics_observe_http (void *data, const char *method, int status, double ms);

/* Sets resp to the metrics page (200, text/plain; version=0.0.4). */
void kiln_metrics_respond (kiln_metrics *m, kiln_http_response *resp);

/* Sees the events written so far, stops the watcher and frees m; accepts
 * NULL. */
void kiln_metrics_stop (kiln_metrics *m);

#endif
