/* kiln: the HTTP server, over libmicrohttpd. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/httpd.h"
#include "kiln/log.h"

#define DEFAULT_MAX_BODY ((size_t) 8 << 20)
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_MAX_CONNECTIONS 256
/* Request line and headers must fit in this (MHD answers 431 otherwise). */
#define CONNECTION_MEMORY (64 * 1024)

#define TLS_FILE_MAX ((size_t) 1 << 20)

struct kiln_http_server {
        struct MHD_Daemon *d;      /* the TCP listener */
        struct MHD_Daemon *d_unix; /* the Unix socket listener */
        kiln_http_opts o;
        char *unix_path;
        char *cert_pem, *key_pem;
        char id_prefix[16]; /* random per start: ids stay unique across restarts */
        atomic_ullong next_id;
};

struct kiln_http_request {
        struct MHD_Connection *conn;
        const char *method;
        const char *path;
        char id[40];
        kiln_buf body;
        bool have_body;
        bool too_large;
        bool answered;
        int status;
        int spool_fd; /* -1: the body goes to memory */
        uint64_t spool_limit, spooled;
        bool spool_failed;
        struct timespec start;
};

const char *
kiln_http_method (const kiln_http_request *r)
{
        return r->method;
}

const char *
kiln_http_path (const kiln_http_request *r)
{
        return r->path;
}

const char *
kiln_http_header (const kiln_http_request *r, const char *name)
{
        return MHD_lookup_connection_value (r->conn, MHD_HEADER_KIND, name);
}

const char *
kiln_http_query (const kiln_http_request *r, const char *key)
{
        const char *v = MHD_lookup_connection_value (r->conn, MHD_GET_ARGUMENT_KIND, key);

        /* "?watch" without a value is present and empty. */
        if (v == NULL
            && MHD_lookup_connection_value_n (r->conn, MHD_GET_ARGUMENT_KIND, key, strlen (key),
                                              NULL, NULL)
                   == MHD_YES)
                return "";
        return v;
}

const char *
kiln_http_body (const kiln_http_request *r, size_t *len)
{
        if (!r->have_body) {
                *len = 0;
                return NULL;
        }
        *len = r->body.len;
        return r->body.data ? r->body.data : "";
}

int
kiln_http_spool_fd (const kiln_http_request *r)
{
        return r->spool_fd;
}

const char *
kiln_http_request_id (const kiln_http_request *r)
{
        return r->id;
}

/* ---- answering ---- */

/* A stream runs in its connection's own thread: this is its socket. */
static __thread int stream_fd = -1;

bool
kiln_http_peer_closed (void)
{
        struct pollfd p = { .fd = stream_fd, .events = POLLRDHUP };

        if (stream_fd < 0)
                return false;
        return poll (&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

typedef struct stream_state {
        kiln_http_response resp;
        int fd;
} stream_state;

static ssize_t
stream_reader (void *cls, uint64_t pos, char *buf, size_t max)
{
        stream_state *st = cls;
        kiln_http_response *resp = &st->resp;
        ssize_t n;

        (void) pos;
        stream_fd = st->fd;
        n = resp->stream (resp->stream_data, buf, max);
        stream_fd = -1;
        return n > 0 ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void
stream_done (void *cls)
{
        stream_state *st = cls;

        if (st->resp.stream_free)
                st->resp.stream_free (st->resp.stream_data);
        free (st);
}

static struct MHD_Response *
make_response (kiln_http_request *req, kiln_http_response *resp)
{
        struct MHD_Response *m;

        if (resp->stream) {
                const union MHD_ConnectionInfo *ci
                    = MHD_get_connection_info (req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                stream_state *st = kiln_calloc (1, sizeof (*st));
                st->resp = *resp;
                st->fd = ci ? ci->connect_fd : -1;
                m = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader,
                                                       st, stream_done);
                if (m == NULL)
                        stream_done (st);
        } else {
                m = MHD_create_response_from_buffer (resp->len, resp->body ? resp->body : "",
                                                     resp->body ? MHD_RESPMEM_MUST_FREE
                                                                : MHD_RESPMEM_PERSISTENT);
                if (m == NULL)
                        free (resp->body);
        }
        resp->body = NULL;
        resp->stream_data = NULL;
        return m;
}

static enum MHD_Result
answer (kiln_http_request *req, kiln_http_response *resp)
{
        struct MHD_Response *m;
        enum MHD_Result r;
        int status = resp->status;

        if (resp->no_timeout)
                MHD_set_connection_option (req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0U);
        m = make_response (req, resp);
        if (m == NULL)
                return MHD_NO;
        MHD_add_response_header (m, MHD_HTTP_HEADER_CONTENT_TYPE,
                                 resp->content_type ? resp->content_type : "application/json");
        MHD_add_response_header (m, "X-Request-Id", req->id);
        MHD_add_response_header (m, "Cache-Control", "no-cache, private");
        r = MHD_queue_response (req->conn, (unsigned) status, m);
        MHD_destroy_response (m);
        req->answered = true;
        req->status = status;
        return r;
}

static enum MHD_Result
answer_error (kiln_http_server *s, kiln_http_request *req, int status, const char *msg)
{
        kiln_http_response resp = { 0 };

        if (s->o.handlers.error)
                s->o.handlers.error (s->o.handlers.data, status, msg, &resp);
        if (resp.status == 0) {
                resp.status = status;
                resp.content_type = "text/plain";
                resp.body = kiln_strdup_printf ("%s\n", msg);
                resp.len = strlen (resp.body);
        }
        return answer (req, &resp);
}

/* ---- the request cycle ---- */

static bool
declared_too_large (struct MHD_Connection *conn, uint64_t max)
{
        const char *cl
            = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t n;

        return cl && kiln_parse_int64 (cl, 0, INT64_MAX, &n) == 0 && (uint64_t) n > max;
}

/* What precheck asked for.  An answer it made wins; a spool it asked for
 * is the request's from here on (closed when the request ends). */
static enum MHD_Result
precheck_answer (kiln_http_request *req, kiln_http_response *resp)
{
        if (resp->spool_fd > 0) {
                if (resp->status) {
                        close (resp->spool_fd);
                        return answer (req, resp);
                }
                req->spool_fd = resp->spool_fd;
                req->spool_limit = resp->spool_limit;
        }
        return resp->status ? answer (req, resp) : MHD_YES;
}

static enum MHD_Result
first_call (kiln_http_server *s, kiln_http_request *req)
{
        kiln_http_response resp = { 0 };

        /* A request precheck spools is bounded by its own limit, so the
         * precheck comes first; it reads no body. */
        if (s->o.handlers.precheck)
                s->o.handlers.precheck (s->o.handlers.data, req, &resp);
        if (resp.status || resp.spool_fd > 0) {
                enum MHD_Result r = precheck_answer (req, &resp);
                if (resp.status)
                        return r;
        }
        if (declared_too_large (req->conn,
                                req->spool_fd >= 0 ? req->spool_limit : (uint64_t) s->o.max_body)) {
                req->too_large = true;
                return answer_error (s, req, 413, "request body too large");
        }
        return MHD_YES;
}

static void
take_body (kiln_http_server *s, kiln_http_request *req, const char *data, size_t *size)
{
        (void) s;
        if (req->spool_fd >= 0) {
                if (req->too_large || req->spool_failed)
                        ;
                else if (*size > req->spool_limit - req->spooled)
                        req->too_large = true;
                else if (kiln_write_all (req->spool_fd, data, *size, NULL) < 0)
                        req->spool_failed = true;
                else
                        req->spooled += *size;
                *size = 0;
                return;
        }
        if (!req->too_large && kiln_buf_append (&req->body, data, *size, NULL) < 0)
                req->too_large = true;
        *size = 0;
}

static enum MHD_Result
on_request (void *cls, struct MHD_Connection *conn, const char *url, const char *method,
            const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
        kiln_http_server *s = cls;
        kiln_http_request *req = *con_cls;
        kiln_http_response resp = { 0 };

        (void) version;
        if (req == NULL) {
                req = kiln_calloc (1, sizeof (*req));
                req->conn = conn;
                req->method = method;
                req->path = url;
                clock_gettime (CLOCK_MONOTONIC, &req->start);
                snprintf (req->id, sizeof req->id, "%s-%llu", s->id_prefix,
                          (unsigned long long) atomic_fetch_add (&s->next_id, 1) + 1);
                kiln_buf_init (&req->body, s->o.max_body);
                req->spool_fd = -1;
                *con_cls = req;
                return first_call (s, req);
        }
        if (req->answered) {
                *upload_data_size = 0; /* discarded: the answer is already out */
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                take_body (s, req, upload_data, upload_data_size);
                return MHD_YES;
        }
        if (req->too_large)
                return answer_error (s, req, 413, "request body too large");
        if (req->spool_failed)
                return answer_error (s, req, 507, "cannot store the request body");
        if (req->spool_fd >= 0 && lseek (req->spool_fd, 0, SEEK_SET) < 0)
                return answer_error (s, req, 500, "cannot read the request body back");
        req->have_body = true;
        s->o.handlers.handle (s->o.handlers.data, req, &resp);
        if (resp.status == 0)
                return answer_error (s, req, 500, "no response");
        return answer (req, &resp);
}

static void
on_completed (void *cls, struct MHD_Connection *conn, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
        kiln_http_server *s = cls;
        kiln_http_request *req = *con_cls;
        struct timespec end;
        double ms;

        (void) conn;
        if (req == NULL)
                return;
        clock_gettime (CLOCK_MONOTONIC, &end);
        ms = (double) (end.tv_sec - req->start.tv_sec) * 1e3
             + (double) (end.tv_nsec - req->start.tv_nsec) / 1e6;
        if (s->o.observe)
                s->o.observe (s->o.observe_data, req->method, req->status, ms);
        {
                char code[16], dur[32];
                snprintf (code, sizeof code, "%d", req->status);
                snprintf (dur, sizeof dur, "%.3f", ms);
                const char *fields[]
                    = { "request_id", req->id, "method",      req->method, "path", req->path,
                        "code",       code,    "duration_ms", dur,         NULL };
                /* Never the body, the headers or the query: they may carry
                 * tokens and secrets. */
                kiln_log_fields (KILN_LOG_INFO, fields, "%s %s %d%s", req->method, req->path,
                                 req->status,
                                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
        }
        kiln_buf_free (&req->body);
        if (req->spool_fd >= 0)
                close (req->spool_fd);
        free (req);
        *con_cls = NULL;
}

/* What GnuTLS said, through libmicrohttpd, in this thread: why a TLS
 * start failed ("...: The certificate and the given key do not match."). */
static __thread char mhd_tls_why[256];

static void
mhd_log (void *cls, const char *fmt, va_list ap)
{
        char line[512];

        (void) cls;
        vsnprintf (line, sizeof line, fmt, ap);
        line[strcspn (line, "\n")] = '\0';
        if (strstr (line, "GnuTLS") && mhd_tls_why[0] == '\0') {
                const char *colon = strstr (line, ": ");
                kiln_strlcpy (mhd_tls_why, colon ? colon + 2 : line, sizeof mhd_tls_why);
                mhd_tls_why[strcspn (mhd_tls_why, ".")] = '\0';
        }
        kiln_debug ("http: %s", line);
}

/* ---- starting and stopping ---- */

int
kiln_http_parse_listen (const char *listen, char *host, size_t host_size, unsigned *port,
                        kiln_error **err)
{
        const char *colon;
        const char *h = listen;
        size_t hlen;
        int64_t p;

        if (listen[0] == '[') {
                const char *close = strchr (listen, ']');
                if (close == NULL || close[1] != ':')
                        goto bad;
                h = listen + 1;
                hlen = (size_t) (close - h);
                colon = close + 1;
        } else {
                colon = strrchr (listen, ':');
                if (colon == NULL)
                        goto bad;
                hlen = (size_t) (colon - listen);
        }
        if (hlen == 0 || hlen >= host_size || kiln_parse_int64 (colon + 1, 0, 65535, &p) < 0)
                goto bad;
        memcpy (host, h, hlen);
        host[hlen] = '\0';
        *port = (unsigned) p;
        return 0;
bad:
        return kiln_error_makec (err, KILN_E_INVALID, 0, "listen address `%s`: want ADDR:PORT",
                                 listen);
}

typedef union any_addr {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
} any_addr;

static int
resolve_listen (any_addr *a, bool *v6, const char *listen, kiln_error **err)
{
        char host[64];
        unsigned port;

        if (kiln_http_parse_listen (listen, host, sizeof host, &port, err) < 0)
                return -1;
        memset (a, 0, sizeof (*a));
        if (strcmp (host, "localhost") == 0)
                kiln_strlcpy (host, "127.0.0.1", sizeof host);
        if (inet_pton (AF_INET, host, &a->in4.sin_addr) == 1) {
                a->in4.sin_family = AF_INET;
                a->in4.sin_port = htons ((uint16_t) port);
                *v6 = false;
                return 0;
        }
        if (inet_pton (AF_INET6, host, &a->in6.sin6_addr) == 1) {
                a->in6.sin6_family = AF_INET6;
                a->in6.sin6_port = htons ((uint16_t) port);
                *v6 = true;
                return 0;
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                 "listen address `%s`: `%s` is not an IP address", listen, host);
}

/* A path that exists is taken over only when it is a socket nobody
 * answers on (left by a daemon that died). */
static int
clear_stale_socket (const char *path, kiln_error **err)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        struct stat st;
        cleanup_close int fd = -1;

        if (lstat (path, &st) < 0)
                return errno == ENOENT ? 0 : kiln_error_makec (err, KILN_E_IO, errno, "`%s`", path);
        if (!S_ISSOCK (st.st_mode))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--unix `%s`: exists and is not a socket", path);
        kiln_strlcpy (a.sun_path, path, sizeof a.sun_path);
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect (fd, (struct sockaddr *) &a, sizeof a) == 0)
                return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                         "--unix `%s`: another server is listening there", path);
        if (unlink (path) < 0)
                return kiln_error_makec (err, KILN_E_IO, errno, "remove stale socket `%s`", path);
        return 0;
}

static int
unix_listen (int *out, const char *path, kiln_error **err)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        cleanup_close int fd = -1;

        if (strlen (path) >= sizeof a.sun_path)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--unix `%s`: the path is longer than %zu bytes", path,
                                         sizeof a.sun_path - 1);
        if (clear_stale_socket (path, err) < 0)
                return -1;
        kiln_strlcpy (a.sun_path, path, sizeof a.sun_path);
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind (fd, (struct sockaddr *) &a, sizeof a) < 0)
                return kiln_error_makec (err, KILN_E_IO, errno, "--unix `%s`", path);
        if (chmod (path, 0600) < 0 || listen (fd, 128) < 0) {
                int e = errno;
                unlink (path);
                return kiln_error_makec (err, KILN_E_IO, e, "--unix `%s`", path);
        }
        *out = kiln_steal_fd (&fd);
        return 0;
}

static int
load_tls (kiln_http_server *s, const kiln_http_opts *o, kiln_error **err)
{
        size_t len;

        if (o->tls_cert == NULL)
                return 0;
        if (!MHD_is_feature_supported (MHD_FEATURE_TLS))
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "--tls-cert: this libmicrohttpd has no TLS support");
        if (kiln_read_file (&s->cert_pem, &len, o->tls_cert, TLS_FILE_MAX, err) < 0)
                return kiln_error_wrap (err, "--tls-cert");
        if (kiln_read_file (&s->key_pem, &len, o->tls_key, TLS_FILE_MAX, err) < 0)
                return kiln_error_wrap (err, "--tls-key");
        if (strstr (s->cert_pem, "-----BEGIN CERTIFICATE-----") == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--tls-cert `%s`: not a PEM certificate", o->tls_cert);
        if (strstr (s->key_pem, "PRIVATE KEY-----") == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--tls-key `%s`: not a PEM private key", o->tls_key);
        return 0;
}

/* The logger first, so that MHD says nothing on stderr itself. */
#define COMMON_OPTIONS(s)                                                                          \
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, (s), \
            MHD_OPTION_CONNECTION_TIMEOUT, (s)->o.timeout_s, MHD_OPTION_CONNECTION_LIMIT,          \
            (s)->o.max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY

static const unsigned BASE_FLAGS = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION
                                   | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;

static int
start_tcp (kiln_http_server *s, kiln_error **err)
{
        any_addr addr;
        bool v6 = false;
        unsigned flags = BASE_FLAGS;

        if (resolve_listen (&addr, &v6, s->o.listen, err) < 0)
                return -1;
        if (v6)
                flags |= MHD_USE_IPv6;
        mhd_tls_why[0] = '\0';
        if (s->cert_pem)
                s->d = MHD_start_daemon (flags | MHD_USE_TLS, 0, NULL, NULL, on_request, s,
                                         MHD_OPTION_SOCK_ADDR, &addr.sa, COMMON_OPTIONS (s),
                                         MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U,
                                         MHD_OPTION_HTTPS_MEM_CERT, s->cert_pem,
                                         MHD_OPTION_HTTPS_MEM_KEY, s->key_pem, MHD_OPTION_END);
        else
                s->d = MHD_start_daemon (flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                         &addr.sa, COMMON_OPTIONS (s),
                                         MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U, MHD_OPTION_END);
        if (s->d != NULL)
                return 0;
        if (s->cert_pem && mhd_tls_why[0])
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--tls-cert `%s`, --tls-key `%s`: %s", s->o.tls_cert,
                                         s->o.tls_key, mhd_tls_why);
        return kiln_error_makec (err, KILN_E_IO, errno, "listen on `%s`", s->o.listen);
}

static int
start_unix (kiln_http_server *s, kiln_error **err)
{
        int fd = -1;

        if (unix_listen (&fd, s->o.unix_path, err) < 0)
                return -1;
        s->unix_path = kiln_strdup (s->o.unix_path);
        s->d_unix
            = MHD_start_daemon (BASE_FLAGS, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET,
                                fd, COMMON_OPTIONS (s), MHD_OPTION_END);
        if (s->d_unix == NULL) {
                close (fd);
                return kiln_error_makec (err, KILN_E_IO, errno, "listen on `%s`", s->unix_path);
        }
        return 0;
}

int
kiln_http_start (kiln_http_server **out, const kiln_http_opts *opts, kiln_error **err)
{
        kiln_http_server *s = kiln_calloc (1, sizeof (*s));
        unsigned char raw[4];

        s->o = *opts;
        s->o.max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
        s->o.timeout_s = opts->timeout_s ? opts->timeout_s : DEFAULT_TIMEOUT_S;
        s->o.max_connections
            = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNECTIONS;
        if (kiln_random_bytes (raw, sizeof raw, NULL) < 0)
                memset (raw, 0, sizeof raw);
        snprintf (s->id_prefix, sizeof s->id_prefix, "%02x%02x%02x%02x", raw[0], raw[1], raw[2],
                  raw[3]);
        if (load_tls (s, opts, err) < 0 || (opts->listen && start_tcp (s, err) < 0)
            || (opts->unix_path && start_unix (s, err) < 0)) {
                kiln_http_stop (s);
                return -1;
        }
        *out = s;
        return 0;
}

static void
quiesce_one (struct MHD_Daemon *d)
{
        MHD_socket fd;

        if (d == NULL)
                return;
        /* The listening socket is handed back to be closed here. */
        fd = MHD_quiesce_daemon (d);
        if (fd != MHD_INVALID_SOCKET)
                close (fd);
}

void
kiln_http_quiesce (kiln_http_server *s)
{
        if (s == NULL)
                return;
        quiesce_one (s->d);
        quiesce_one (s->d_unix);
}

static void
free_secret (char *p)
{
        if (p)
                explicit_bzero (p, strlen (p));
        free (p);
}

void
kiln_http_stop (kiln_http_server *s)
{
        if (s == NULL)
                return;
        if (s->d)
                MHD_stop_daemon (s->d);
        if (s->d_unix)
                MHD_stop_daemon (s->d_unix);
        if (s->unix_path)
                unlink (s->unix_path);
        free (s->unix_path);
        free (s->cert_pem);
        free_secret (s->key_pem);
        free (s);
}
