/* kiln: streams: ?watch=true on a collection, and a BuildRun's log. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/serve.h"

#define DEFAULT_WATCH_S 1800
#define MAX_WATCH_S 3600
#define BATCH 256

/* ---- selectors ---- */

static const char *
label (const json_t *obj, const char *key)
{
        return json_string_value (
            json_object_get (json_object_get (json_object_get (obj, "metadata"), "labels"), key));
}

static int
label_term (bool *match, const char *t, const json_t *obj, kiln_error **err)
{
        const char *ne = strstr (t, "!=");
        const char *eq = strchr (t, '=');
        const char *v;

        if (strchr (t, '(') || strstr (t, " in ") || strstr (t, " notin "))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "labelSelector: set-based requirement `%s` is not "
                                         "supported",
                                         t);
        if (t[0] == '!') {
                *match = label (obj, t + 1) == NULL;
                return 0;
        }
        if (eq == NULL) {
                *match = label (obj, t) != NULL;
                return 0;
        }
        cleanup_free char *key = strndup (t, (size_t) ((ne ? ne : eq) - t));
        const char *want = ne ? ne + 2 : (eq[1] == '=' ? eq + 2 : eq + 1);
        v = label (obj, key);
        *match = ne ? (v == NULL || strcmp (v, want) != 0) : (v && strcmp (v, want) == 0);
        return 0;
}

static int
field_term (bool *match, const char *t, const json_t *obj, kiln_error **err)
{
        const char *ne = strstr (t, "!=");
        const char *eq = strchr (t, '=');
        const json_t *m = json_object_get (obj, "metadata");
        const char *v = NULL;

        if (eq == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "fieldSelector: `%s` is not FIELD=VALUE", t);
        cleanup_free char *key = strndup (t, (size_t) ((ne ? ne : eq) - t));
        const char *want = ne ? ne + 2 : (eq[1] == '=' ? eq + 2 : eq + 1);
        if (strcmp (key, "metadata.name") == 0)
                v = json_string_value (json_object_get (m, "name"));
        else if (strcmp (key, "metadata.namespace") == 0)
                v = json_string_value (json_object_get (m, "namespace"));
        else
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "fieldSelector: field label not supported: %s", key);
        *match = ne ? (v == NULL || strcmp (v, want) != 0) : (v && strcmp (v, want) == 0);
        return 0;
}

static int
match_all (bool *match, const char *sel, const json_t *obj,
           int (*term) (bool *, const char *, const json_t *, kiln_error **), kiln_error **err)
{
        const char *p = sel;

        *match = true;
        while (p && *p && *match) {
                const char *comma = strchr (p, ',');
                cleanup_free char *t = comma ? strndup (p, (size_t) (comma - p)) : kiln_strdup (p);
                if (*t && term (match, t, obj, err) < 0)
                        return -1;
                p = comma ? comma + 1 : NULL;
        }
        return 0;
}

int
kiln_selectors_match (bool *match, const char *labels, const char *fields, const json_t *obj,
                      kiln_error **err)
{
        if (match_all (match, labels, obj, label_term, err) < 0)
                return -1;
        if (*match && match_all (match, fields, obj, field_term, err) < 0)
                return -1;
        return 0;
}

/* ---- watch ---- */

typedef struct watch {
        kiln_store *store;
        kiln_view view;
        char *kind;
        char *ns;
        char *labels;
        char *fields;
        int64_t since;
        int64_t deadline_ms;
        kiln_buf pending;
        size_t off;
        bool ended;
} watch;

static void
watch_free (void *data)
{
        watch *w = data;

        free (w->kind);
        free (w->ns);
        free (w->labels);
        free (w->fields);
        kiln_buf_free (&w->pending);
        free (w);
}

static void
add_event (watch *w, const char *type, const json_t *obj)
{
        bool match = true;
        char *s;

        if (kiln_selectors_match (&match, w->labels, w->fields, obj, NULL) < 0 || !match)
                return;
        /* Each event's object is shown as a GET would show it: in the
         * path's version, or as a one-row Table. */
        json_t *ev
            = json_pack ("{s:s,s:o}", "type", type, "object", kiln_view_object (&w->view, obj));
        s = json_dumps (ev, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref (ev);
        if (s == NULL)
                return;
        kiln_buf_puts (&w->pending, s, NULL);
        kiln_buf_puts (&w->pending, "\n", NULL);
        free (s);
}

static void
add_gone (watch *w)
{
        json_t *ev
            = json_pack ("{s:s,s:{s:s,s:s,s:s,s:s,s:s,s:i}}", "type", "ERROR", "object", "kind",
                         "Status", "apiVersion", "v1", "status", "Failure", "message",
                         "too old resource version", "reason", "Expired", "code", 410);
        char *s = json_dumps (ev, JSON_COMPACT);

        kiln_buf_printf (&w->pending, NULL, "%s\n", s);
        free (s);
        json_decref (ev);
        w->ended = true;
}

/* Moves the events after w->since into pending. */
static void
fill (watch *w)
{
        json_t *events = NULL;
        bool gone = false;
        int64_t last = w->since;
        size_t i;
        json_t *ev;

        if (kiln_store_events (&events, &last, &gone, w->store, w->kind, w->ns, w->since, BATCH,
                               NULL)
            < 0) {
                w->ended = true;
                return;
        }
        if (gone) {
                add_gone (w);
                return;
        }
        json_array_foreach (events, i, ev)
        {
                add_event (w, json_string_value (json_object_get (ev, "type")),
                           json_object_get (ev, "object"));
        }
        w->since = last;
        json_decref (events);
}

static ssize_t
watch_read (void *data, char *buf, size_t max)
{
        watch *w = data;

        for (;;) {
                if (w->off < w->pending.len) {
                        size_t n = w->pending.len - w->off;
                        if (n > max)
                                n = max;
                        memcpy (buf, w->pending.data + w->off, n);
                        w->off += n;
                        return (ssize_t) n;
                }
                kiln_buf_reset (&w->pending);
                w->off = 0;
                if (w->ended || kiln_store_is_shut_down (w->store)
                    || kiln_monotonic_ms () >= w->deadline_ms || kiln_http_peer_closed ())
                        return 0;
                fill (w);
                if (w->pending.len == 0)
                        kiln_store_wait (w->store, w->since, 1000);
        }
}

static void
initial_list (watch *w)
{
        json_t *items = NULL;
        size_t i;
        json_t *obj;

        if (kiln_store_list (&items, &w->since, w->store, w->kind, w->ns, NULL) < 0)
                return;
        json_array_foreach (items, i, obj)
        {
                add_event (w, "ADDED", obj);
        }
        json_decref (items);
}

void
kiln_watch_respond (kiln_http_response *resp, kiln_store *s, const kiln_view *view, const char *ns,
                    const kiln_http_request *req)
{
        const char *kind = view->kind;
        const char *rv = kiln_http_query (req, "resourceVersion");
        const char *ts = kiln_http_query (req, "timeoutSeconds");
        int64_t since = 0, timeout_s = DEFAULT_WATCH_S;
        watch *w;

        if (rv && *rv && kiln_parse_int64 (rv, 0, INT64_MAX, &since) < 0) {
                kiln_api_status (resp, 400, "BadRequest", "resourceVersion: Invalid value: \"%s\"",
                                 rv);
                return;
        }
        if (ts && *ts && kiln_parse_int64 (ts, 0, MAX_WATCH_S, &timeout_s) < 0) {
                kiln_api_status (resp, 400, "BadRequest", "timeoutSeconds: Invalid value: \"%s\"",
                                 ts);
                return;
        }
        if (since > 0) {
                json_t *probe = NULL;
                int64_t last;
                bool gone = false;
                kiln_store_events (&probe, &last, &gone, s, kind, ns, since, 0, NULL);
                json_decref (probe);
                if (gone) {
                        kiln_api_status (resp, 410, "Expired",
                                         "too old resource version: %lld (%lld)", (long long) since,
                                         (long long) kiln_store_current (s));
                        return;
                }
        }
        w = kiln_calloc (1, sizeof (*w));
        w->store = s;
        w->view = *view;
        /* The Table version is one of two static strings; nothing else
         * in the view borrows from the request. */
        w->kind = kiln_strdup (kind);
        w->ns = kiln_strdup (ns);
        w->labels = kiln_strdup (kiln_http_query (req, "labelSelector"));
        w->fields = kiln_strdup (kiln_http_query (req, "fieldSelector"));
        w->since = since;
        w->deadline_ms = kiln_monotonic_ms () + (timeout_s ? timeout_s : DEFAULT_WATCH_S) * 1000;
        kiln_buf_init (&w->pending, 0);
        if (since == 0)
                initial_list (w);
        resp->status = 200;
        resp->content_type = "application/json";
        resp->stream = watch_read;
        resp->stream_free = watch_free;
        resp->stream_data = w;
        resp->no_timeout = true;
}

/* ---- logs ---- */

typedef struct log_stream {
        kiln_store *store;
        char *path;
        char *ns;
        char *name;
        int fd;
        bool follow;
} log_stream;

static void
log_free (void *data)
{
        log_stream *l = data;

        if (l->fd >= 0)
                close (l->fd);
        free (l->path);
        free (l->ns);
        free (l->name);
        free (l);
}

static bool
run_finished (log_stream *l)
{
        json_t *br = NULL;
        bool done;

        if (kiln_store_get (&br, l->store, "BuildRun", l->ns, l->name, NULL) < 0)
                return true;
        done = kiln_buildrun_is_done (br);
        json_decref (br);
        return done;
}

static ssize_t
log_read (void *data, char *buf, size_t max)
{
        log_stream *l = data;

        for (;;) {
                bool finished;
                if (l->fd < 0 && l->path)
                        l->fd = open (l->path, O_RDONLY | O_CLOEXEC);
                if (l->fd >= 0) {
                        ssize_t n = read (l->fd, buf, max);
                        if (n > 0)
                                return n;
                }
                if (!l->follow || kiln_store_is_shut_down (l->store) || kiln_http_peer_closed ())
                        return 0;
                /* Checked before the last read, so nothing written just
                 * before the end is missed. */
                finished = run_finished (l);
                if (l->fd >= 0) {
                        ssize_t n = read (l->fd, buf, max);
                        if (n > 0)
                                return n;
                }
                if (finished)
                        return 0;
                kiln_store_wait (l->store, kiln_store_current (l->store), 300);
        }
}

void
kiln_log_respond (kiln_http_response *resp, kiln_store *s, const char *path, const char *ns,
                  const char *name, bool follow)
{
        log_stream *l = kiln_calloc (1, sizeof (*l));

        l->store = s;
        l->path = kiln_strdup (path);
        l->ns = kiln_strdup (ns);
        l->name = kiln_strdup (name);
        l->follow = follow;
        l->fd = -1;
        resp->status = 200;
        resp->content_type = "text/plain; charset=utf-8";
        resp->stream = log_read;
        resp->stream_free = log_free;
        resp->stream_data = l;
        resp->no_timeout = follow;
}
