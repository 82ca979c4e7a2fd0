/* kiln: HTTP requests to registries: one transfer, redirects followed by
 * hand, transient failures retried with backoff, and 401s answered by
 * authenticating again. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kiln/cleanup.h"
#include "kiln/json.h"
#include "kiln/log.h"

#define REDIRECTS_MAX 5
#define ATTEMPTS_MAX 8
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 10000
#define PROGRESS_EVERY_MS 200

void
reg_req_init (reg_req *req, const char *method, const char *url)
{
        memset (req, 0, sizeof (*req));
        req->method = method;
        req->url = url;
        req->body_fd = -1;
        req->out_fd = -1;
}

static void
resp_reset_headers (reg_resp *resp)
{
        free (resp->location);
        free (resp->content_type);
        free (resp->docker_digest);
        free (resp->www_authenticate);
        free (resp->retry_after);
        free (resp->range);
        resp->location = resp->content_type = resp->docker_digest = NULL;
        resp->www_authenticate = resp->retry_after = resp->range = NULL;
        resp->content_length = -1;
        resp->chunk_min = 0;
        resp->status = 0;
}

void
reg_resp_clear (reg_resp *resp)
{
        resp_reset_headers (resp);
        free (resp->url);
        kiln_buf_free (&resp->errbody);
        memset (resp, 0, sizeof (*resp));
}

/* ---- one transfer ---- */

typedef struct xfer {
        kiln_registry *r;
        reg_req *req;
        reg_resp *resp;
        CURL *c;
        uint64_t body_pos;
        uint64_t received;
        kiln_error *sink_err;
        int64_t last_progress;
} xfer;

static char *
header_value (const char *line, size_t n, const char *name)
{
        size_t nl = strlen (name);
        const char *v, *end;

        if (n <= nl || strncasecmp (line, name, nl) != 0 || line[nl] != ':')
                return NULL;
        v = line + nl + 1;
        end = line + n;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        return strndup (v, (size_t) (end - v));
}

static void
set_header (char **slot, char *value)
{
        if (value == NULL)
                return;
        free (*slot);
        *slot = value;
}

static size_t
on_header (char *line, size_t size, size_t n, void *p)
{
        xfer *x = p;
        reg_resp *resp = x->resp;
        char *v;

        n *= size;
        if (n >= 5 && strncmp (line, "HTTP/", 5) == 0) {
                /* A new response (after 100 Continue, or a redirect). */
                resp_reset_headers (resp);
                return n;
        }
        set_header (&resp->location, header_value (line, n, "Location"));
        set_header (&resp->content_type, header_value (line, n, "Content-Type"));
        set_header (&resp->docker_digest, header_value (line, n, "Docker-Content-Digest"));
        set_header (&resp->www_authenticate, header_value (line, n, "WWW-Authenticate"));
        set_header (&resp->retry_after, header_value (line, n, "Retry-After"));
        set_header (&resp->range, header_value (line, n, "Range"));
        if ((v = header_value (line, n, "Content-Length"))) {
                int64_t len;
                if (kiln_parse_int64 (v, 0, INT64_MAX, &len) == 0)
                        resp->content_length = len;
                free (v);
        }
        if ((v = header_value (line, n, "OCI-Chunk-Min-Length"))) {
                int64_t len;
                if (kiln_parse_int64 (v, 0, INT64_MAX, &len) == 0)
                        resp->chunk_min = (uint64_t) len;
                free (v);
        }
        return n;
}

static size_t
on_body (char *data, size_t size, size_t n, void *p)
{
        xfer *x = p;
        long status = 0;

        n *= size;
        curl_easy_getinfo (x->c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) {
                /* Error bodies are kept for their message, bounded. */
                kiln_buf_append (&x->resp->errbody, data, n, NULL);
                return n;
        }
        x->received += n;
        if (x->req->hasher)
                kiln_hasher_update (x->req->hasher, data, n);
        if (x->req->out && kiln_buf_append (x->req->out, data, n, &x->sink_err) < 0)
                return 0;
        if (x->req->out_fd >= 0 && kiln_write_all (x->req->out_fd, data, n, &x->sink_err) < 0)
                return 0;
        return n;
}

static size_t
on_read (char *buf, size_t size, size_t n, void *p)
{
        xfer *x = p;
        uint64_t left = x->req->body_len - x->body_pos;
        size_t want = size * n < left ? size * n : (size_t) left;
        ssize_t got;

        if (want == 0)
                return 0;
        if (x->req->body) {
                memcpy (buf, (const char *) x->req->body + x->body_pos, want);
                got = (ssize_t) want;
        } else {
                got = pread (x->req->body_fd, buf, want, (off_t) (x->req->body_off + x->body_pos));
                if (got <= 0) {
                        kiln_error_make (&x->sink_err, got < 0 ? errno : 0,
                                         "read the blob being uploaded");
                        return CURL_READFUNC_ABORT;
                }
        }
        x->body_pos += (uint64_t) got;
        return (size_t) got;
}

/* libcurl rewinds the body to send it again on a fresh connection when a
 * reused one turns out dead; without this it gives up with
 * CURLE_SEND_FAIL_REWIND, which is not worth a retry. */
static int
on_seek (void *p, curl_off_t offset, int origin)
{
        xfer *x = p;

        if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > x->req->body_len)
                return CURL_SEEKFUNC_CANTSEEK;
        x->body_pos = (uint64_t) offset;
        return CURL_SEEKFUNC_OK;
}

static int
on_progress (void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
        xfer *x = p;
        int64_t now;

        (void) dltotal;
        (void) ultotal;
        if (x->req->progress_digest == NULL)
                return 0;
        now = reg_now_ms ();
        if (now - x->last_progress < PROGRESS_EVERY_MS)
                return 0;
        x->last_progress = now;
        reg_progress (x->r, KILN_PROGRESS_BYTES, x->req->progress_digest,
                      x->req->body_len ? (uint64_t) ulnow : (uint64_t) dlnow,
                      x->req->progress_total);
        return 0;
}

/* Rewinds the request's sink for a new attempt. */
static int
sink_reset (reg_req *req, kiln_error **err)
{
        if (req->out)
                kiln_buf_reset (req->out);
        if (req->out_fd >= 0) {
                if (ftruncate (req->out_fd, 0) < 0 || lseek (req->out_fd, 0, SEEK_SET) < 0)
                        return kiln_error_make (err, errno, "truncate a download");
        }
        if (req->hasher) {
                kiln_hasher_free (req->hasher);
                req->hasher = kiln_hasher_new (KILN_DIGEST_SHA256);
        }
        return 0;
}

static struct curl_slist *
add_header (struct curl_slist *l, const char *fmt, const char *v)
{
        cleanup_free char *line = NULL;
        struct curl_slist *n;

        if (v == NULL)
                return l;
        line = kiln_strdup_printf (fmt, v);
        n = curl_slist_append (l, line);
        explicit_bzero (line, strlen (line));
        if (n == NULL)
                abort ();
        return n;
}

/* One request to one URL, no redirects followed.  Returns the curl code;
 * *cerr gets libcurl's message. */
static CURLcode
transfer (kiln_registry *r, reg_req *req, reg_resp *resp, const char *url, const char *auth,
          xfer *x, char cerr[CURL_ERROR_SIZE])
{
        CURL *c = curl_easy_init ();
        struct curl_slist *hdrs = NULL;
        CURLcode rc;

        if (c == NULL)
                abort ();
        memset (x, 0, sizeof (*x));
        x->r = r;
        x->req = req;
        x->resp = resp;
        x->c = c;
        cerr[0] = '\0';
        resp_reset_headers (resp);
        kiln_buf_reset (&resp->errbody);
        reg_curl_setup (r, c, url, req->big);
        curl_easy_setopt (c, CURLOPT_URL, url);
        curl_easy_setopt (c, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt (c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt (c, CURLOPT_WRITEDATA, x);
        curl_easy_setopt (c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt (c, CURLOPT_SEEKDATA, x);
        curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt (c, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
        hdrs = add_header (hdrs, "Authorization: %s", auth);
        hdrs = add_header (hdrs, "Accept: %s", req->accept);
        hdrs = add_header (hdrs, "Content-Range: %s", req->content_range);
        hdrs = curl_slist_append (hdrs, "Expect:");
        if (strcmp (req->method, "HEAD") == 0) {
                curl_easy_setopt (c, CURLOPT_NOBODY, 1L);
        } else if (strcmp (req->method, "GET") != 0) {
                bool has_body = req->body || req->body_fd >= 0;
                hdrs = add_header (hdrs, "Content-Type: %s",
                                   req->content_type
                                       ? req->content_type
                                       : (has_body ? "application/octet-stream" : NULL));
                if (strcmp (req->method, "POST") == 0 && !has_body) {
                        curl_easy_setopt (c, CURLOPT_POST, 1L);
                        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, 0L);
                        curl_easy_setopt (c, CURLOPT_POSTFIELDS, "");
                } else if (strcmp (req->method, "POST") == 0) {
                        curl_easy_setopt (c, CURLOPT_POST, 1L);
                        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE,
                                          (curl_off_t) req->body_len);
                        curl_easy_setopt (c, CURLOPT_READFUNCTION, on_read);
                        curl_easy_setopt (c, CURLOPT_READDATA, x);
                } else if (has_body || strcmp (req->method, "PUT") == 0
                           || strcmp (req->method, "PATCH") == 0) {
                        curl_easy_setopt (c, CURLOPT_UPLOAD, 1L);
                        curl_easy_setopt (c, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->body_len);
                        curl_easy_setopt (c, CURLOPT_READFUNCTION, on_read);
                        curl_easy_setopt (c, CURLOPT_READDATA, x);
                        curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, req->method);
                } else {
                        curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, req->method);
                }
        }
        curl_easy_setopt (c, CURLOPT_HTTPHEADER, hdrs);
        rc = curl_easy_perform (c);
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &resp->status);
        reg_stats_add (r, &r->stats.requests, 1);
        if (req->body || req->body_fd >= 0)
                reg_stats_add (r, &r->stats.bytes_up, x->body_pos);
        reg_stats_add (r, &r->stats.bytes_down, x->received);
        curl_slist_free_all (hdrs); /* holds the Authorization line */
        curl_easy_cleanup (c);
        return rc;
}

static bool
curl_transient (CURLcode rc)
{
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

static bool
status_transient (long status)
{
        return status == 408 || status == 429 || status == 500 || status == 502 || status == 503
               || status == 504;
}

/* Retry-After as seconds (an HTTP date is treated as "soon"). */
static int64_t
retry_after_ms (const char *v)
{
        int64_t s;

        if (v == NULL)
                return -1;
        if (kiln_parse_int64 (v, 0, 86400, &s) == 0)
                return s * 1000;
        return BACKOFF_BASE_MS;
}

static int64_t
backoff_ms (int attempt)
{
        int64_t d = BACKOFF_BASE_MS;
        unsigned int j = 0;

        for (int i = 0; i < attempt && d < BACKOFF_MAX_MS; i++)
                d *= 2;
        if (d > BACKOFF_MAX_MS)
                d = BACKOFF_MAX_MS;
        /* Jitter of +-25% so parallel workers do not retry in step. */
        kiln_random_bytes (&j, sizeof j, NULL);
        return d * 3 / 4 + (int64_t) (j % (unsigned int) (d / 2 + 1));
}

static void
sleep_ms (int64_t ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
        while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int
curl_error (reg_host *h, const char *url, CURLcode rc, const char *cerr, int attempts,
            kiln_error **err)
{
        cleanup_free char *host = kiln_url_host (url);
        const char *name = h ? h->name : host ? host : url;
        const char *msg = cerr && *cerr ? cerr : curl_easy_strerror (rc);

        if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
                return kiln_error_makec (err, KILN_E_NETWORK, 0,
                                         "TLS certificate of %s not trusted (%s); give its CA "
                                         "with --registry-ca %s=FILE",
                                         name, msg, name);
        if (rc == CURLE_OPERATION_TIMEDOUT)
                return kiln_error_makec (err, KILN_E_TIMEOUT, 0, "%s timed out (%s)%s", name, msg,
                                         attempts > 1 ? ", after retries" : "");
        return kiln_error_makec (err, KILN_E_NETWORK, 0, "cannot reach %s: %s%s", name, msg,
                                 attempts > 1 ? " (after retries)" : "");
}

/* Sends req, following redirects (GET and HEAD only) and retrying
 * transient failures until the timeout.  `auth` goes only to the host of
 * req->url.  *rc_out gets the last curl code. */
int
reg_send (kiln_registry *r, reg_host *h, reg_req *req, reg_resp *resp, const char *auth,
          CURLcode *rc_out, kiln_error **err)
{
        cleanup_free char *auth_host = kiln_url_host (req->url);
        int64_t deadline = reg_now_ms () + r->opts.timeout_ms;
        bool follows = strcmp (req->method, "GET") == 0 || strcmp (req->method, "HEAD") == 0;
        char cerr[CURL_ERROR_SIZE];
        CURLcode rc = CURLE_OK;
        int attempt;

        if (resp->errbody.max == 0)
                kiln_buf_init (&resp->errbody, ERROR_BODY_MAX);
        for (attempt = 0; attempt < ATTEMPTS_MAX; attempt++) {
                cleanup_free char *url = kiln_strdup (req->url);
                int64_t wait = -1;
                xfer x;

                if (sink_reset (req, err) < 0)
                        return -1;
                for (int hops = 0;; hops++) {
                        cleanup_free char *host = kiln_url_host (url);
                        bool same = host && auth_host && strcasecmp (host, auth_host) == 0;
                        rc = transfer (r, req, resp, url, same ? auth : NULL, &x, cerr);
                        if (rc != CURLE_OK || !follows || resp->location == NULL
                            || (resp->status != 301 && resp->status != 302 && resp->status != 303
                                && resp->status != 307 && resp->status != 308))
                                break;
                        if (hops == REDIRECTS_MAX)
                                return kiln_error_makec (err, KILN_E_NETWORK, 0,
                                                         "%s: too many redirects",
                                                         h ? h->name : auth_host);
                        char *next = kiln_url_resolve (url, resp->location);
                        free (url);
                        url = next;
                        if (sink_reset (req, err) < 0)
                                return -1;
                }
                *rc_out = rc;
                if (x.sink_err) {
                        *err = x.sink_err;
                        return -1;
                }
                free (resp->url);
                resp->url = steal_pointer (&url);
                if (rc == CURLE_OK && !status_transient (resp->status))
                        return 0;
                if (req->session || (rc != CURLE_OK && !curl_transient (rc)))
                        break;
                if (rc == CURLE_OK)
                        wait = resp->status == 429 || resp->status == 503
                                   ? retry_after_ms (resp->retry_after)
                                   : -1;
                if (wait < 0)
                        wait = backoff_ms (attempt);
                /* A transfer that made progress earns a fresh deadline. */
                if (x.received > 0 || x.body_pos > 0)
                        deadline = reg_now_ms () + r->opts.timeout_ms;
                if (reg_now_ms () + wait > deadline || attempt + 1 == ATTEMPTS_MAX)
                        break;
                kiln_debug ("retrying %s %s in %lld ms (%s)", req->method, h ? h->name : auth_host,
                            (long long) wait,
                            rc != CURLE_OK ? curl_easy_strerror (rc) : "server busy");
                reg_stats_add (r, &r->stats.retries, 1);
                sleep_ms (wait);
        }
        if (rc != CURLE_OK)
                return curl_error (h, req->url, rc, cerr, attempt + 1, err);
        return 0; /* a transient status the caller reports */
}

/* ---- errors ---- */

static char *
registry_message (const reg_resp *resp)
{
        cleanup_kiln_json kiln_json *doc = NULL;
        const kiln_json *e;
        const char *code, *msg;

        if (resp->errbody.len == 0
            || kiln_json_parse (&doc, resp->errbody.data, resp->errbody.len, ERROR_BODY_MAX, NULL)
                   < 0)
                return NULL;
        e = kiln_json_array_at (kiln_json_get (doc, "errors"), 0);
        code = kiln_json_get_str (e, "code");
        msg = kiln_json_get_str (e, "message");
        if (code == NULL)
                return NULL;
        return kiln_strdup_printf ("%s%s%s", code, msg && *msg ? ": " : "", msg ? msg : "");
}

static bool
printable (const char *s)
{
        for (; *s; s++)
                if (!isprint ((unsigned char) *s))
                        return false;
        return true;
}

int
reg_status_error (reg_host *h, const reg_resp *resp, const char *what, kiln_error **err)
{
        cleanup_free char *m = registry_message (resp);
        cleanup_free char *detail = NULL;
        kiln_error_code code;

        if (m && (!printable (m) || strlen (m) > 300))
                m[0] = '\0';
        detail = kiln_strdup_printf ("%ld%s%s", resp->status, m && *m ? " " : "", m ? m : "");
        switch (resp->status) {
        case 401:
                return kiln_error_makec (err, KILN_E_AUTH, 0,
                                         "%s: authentication refused by %s (%s)", what, h->name,
                                         detail);
        case 403:
                return kiln_error_makec (err, KILN_E_AUTH, 0, "%s: access denied by %s (%s)", what,
                                         h->name, detail);
        case 404:
                code = KILN_E_NOT_FOUND;
                break;
        case 413:
                code = KILN_E_TOO_LARGE;
                break;
        case 400:
                code = KILN_E_INVALID;
                break;
        case 429:
                return kiln_error_makec (err, KILN_E_NETWORK, 0,
                                         "%s: rate limited by %s (%s), still after retries", what,
                                         h->name, detail);
        default:
                code = resp->status >= 500 ? KILN_E_NETWORK : KILN_E_FAILED;
        }
        return kiln_error_makec (err, code, 0, "%s: %s answered %s", what, h->name, detail);
}

/* ---- ping ---- */

static bool
tls_mismatch (CURLcode rc)
{
        /* What a TLS handshake with a plain HTTP server gives. */
        return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING
               || rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT;
}

static int
ping_base (kiln_registry *r, reg_host *h, const char *base, bool retry, CURLcode *rc,
           kiln_error **err)
{
        cleanup_free char *url = kiln_strdup_printf ("%s/v2/", base);
        reg_resp resp = { 0 };
        reg_req req;
        int ret;

        reg_req_init (&req, "GET", url);
        req.session = !retry;
        ret = reg_send (r, h, &req, &resp, NULL, rc, err);
        if (ret == 0 && !retry && status_transient (resp.status)) {
                /* It speaks this scheme; a busy answer earns the retries. */
                req.session = false;
                ret = reg_send (r, h, &req, &resp, NULL, rc, err);
        }
        /* Still busy after the whole retry budget: the registry is down,
         * and every request after this one would spend the budget again. */
        if (ret == 0 && status_transient (resp.status))
                ret = reg_status_error (h, &resp, "GET /v2/", err);
        if (ret == 0 && resp.status == 401 && resp.www_authenticate) {
                kiln_auth_challenge_clear (&h->challenge);
                if (kiln_auth_challenge_parse (&h->challenge, resp.www_authenticate, err) < 0) {
                        reg_resp_clear (&resp);
                        return kiln_error_wrap (err, "%s", h->name);
                }
        }
        reg_resp_clear (&resp);
        return ret;
}

/* Whether the registry answers a TLS handshake, found without loading a CA
 * bundle (the system one costs ~40 ms to parse) and without sending
 * anything: a loopback registry that speaks plain HTTP is then pinged over
 * HTTP straight away.  The handshake is not verified, so when it succeeds
 * the caller pings over verified HTTPS as usual; nothing learnt here is
 * trusted.  Returns false only when the answer was not TLS. */
static bool
answers_tls (kiln_registry *r, reg_host *h)
{
        cleanup_free char *url = kiln_strdup_printf ("https://%s/v2/", h->api);
        CURL *c = curl_easy_init ();
        CURLcode rc;

        if (c == NULL)
                return true;
        reg_curl_setup (r, c, url, false);
        curl_easy_setopt (c, CURLOPT_SHARE, NULL);
        curl_easy_setopt (c, CURLOPT_URL, url);
        curl_easy_setopt (c, CURLOPT_CONNECT_ONLY, 1L);
        curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt (c, CURLOPT_CAINFO, NULL);
        curl_easy_setopt (c, CURLOPT_CAPATH, NULL);
        rc = curl_easy_perform (c);
        curl_easy_cleanup (c);
        return !(rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR
                 || rc == CURLE_GOT_NOTHING);
}

int
reg_ping (kiln_registry *r, reg_host *h, kiln_error **err)
{
        cleanup_free char *https = NULL;
        cleanup_free char *http = NULL;
        cleanup_error kiln_error *first = NULL;
        bool may_http;
        CURLcode rc = CURLE_OK;
        int ret = 0;

        pthread_mutex_lock (&h->lock);
        if (h->pinged)
                goto out;
        https = kiln_strdup_printf ("https://%s", h->api);
        http = kiln_strdup_printf ("http://%s", h->api);
        may_http = h->insecure || h->loopback;
        if (!may_http) {
                ret = ping_base (r, h, https, true, &rc, err);
                if (ret == 0)
                        h->base = steal_pointer (&https);
                goto done;
        }
        if (answers_tls (r, h) && ping_base (r, h, https, false, &rc, &first) == 0) {
                h->base = steal_pointer (&https);
                goto done;
        }
        if (first && !tls_mismatch (rc)) {
                *err = kiln_error_take (&first);
                ret = -1;
                goto done;
        }
        ret = ping_base (r, h, http, true, &rc, err);
        if (ret == 0) {
                kiln_debug ("%s speaks plain HTTP", h->name);
                h->base = steal_pointer (&http);
        }
done:
        h->pinged = ret == 0;
out:
        pthread_mutex_unlock (&h->lock);
        return ret;
}

/* ---- authenticated requests ---- */

int
reg_request (kiln_registry *r, reg_host *h, reg_req *req, reg_resp *resp, kiln_error **err)
{
        cleanup_free char *scopes = kiln_strdup (req->scopes ? req->scopes : "");
        CURLcode rc;

        if (reg_ping (r, h, err) < 0)
                return -1;
        for (int tries = 0;; tries++) {
                char *auth = NULL;
                int ret;

                if (reg_auth_header (&auth, r, h, scopes, err) < 0)
                        return -1;
                ret = reg_send (r, h, req, resp, auth, &rc, err);
                reg_secret_free (auth);
                if (ret < 0)
                        return -1;
                if (resp->status != 401 || tries > 0)
                        return 0;
                if (!reg_auth_on_401 (r, h, resp->www_authenticate, &scopes) || req->session)
                        return 0;
        }
}
