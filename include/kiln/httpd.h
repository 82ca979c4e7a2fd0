/* kiln: the HTTP server of `kiln serve` (libmicrohttpd; the only module
 * that calls it).
 *
 * One thread per connection, so a slow client holds only its own thread;
 * idle connections are closed after a timeout, the number of connections
 * is bounded, request headers are bounded by a per-connection memory
 * limit and bodies by max_body (413 before the body is read when
 * Content-Length says so, else as soon as it grows past the bound).
 *
 * The server knows nothing of the API: it hands each request to the
 * handlers, twice.  precheck sees the method, path, query and headers
 * before any of the body is read and may answer at once (a missing token
 * is refused without reading a 10 MB body); handle sees the whole request.
 * A response either carries a body or streams: the stream function is
 * called from the connection's thread until it returns 0 and may block
 * (a watch waits for events). */
#ifndef KILN_HTTPD_H
#define KILN_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

typedef struct kiln_http_request kiln_http_request;
typedef struct kiln_http_server kiln_http_server;

/* Borrowed strings that live as long as the request. */
const char *kiln_http_method (const kiln_http_request *r);
const char *kiln_http_path (const kiln_http_request *r);
/* A request header (case-insensitive name), or NULL. */
const char *kiln_http_header (const kiln_http_request *r, const char *name);
/* A query argument, URL-decoded; "" for `?watch`; NULL when absent. */
const char *kiln_http_query (const kiln_http_request *r, const char *key);
/* The body (NUL-terminated; "" and 0 when there is none; NULL in precheck). */
const char *kiln_http_body (const kiln_http_request *r, size_t *len);
/* The file a body was spooled to (see kiln_http_response.spool_fd),
 * rewound to its start, or -1.  The server closes it. */
int kiln_http_spool_fd (const kiln_http_request *r);
/* An id for log lines and the X-Request-Id header. */
const char *kiln_http_request_id (const kiln_http_request *r);

/* Fills buf with up to max bytes and returns how many; 0 ends the stream.
 * May block; must return within a few seconds once the server stops, and
 * should return 0 soon after kiln_http_peer_closed says so. */
typedef ssize_t (*kiln_http_stream_fn) (void *data, char *buf, size_t max);

/* Inside a stream function: whether the client has gone away (so that a
 * watch with nothing to send does not hold its thread forever). */
bool kiln_http_peer_closed (void);

typedef struct kiln_http_response {
        int status;               /* 0: not answered (precheck) */
        const char *content_type; /* static */
        char *body;               /* owned, freed by the server */
        size_t len;
        kiln_http_stream_fn stream; /* instead of body */
        void (*stream_free) (void *data);
        void *stream_data;
        bool no_timeout; /* a long-lived stream: no idle timeout */
        /* precheck only, instead of answering: write the body to this file
         * (> 0; the server owns and closes it) rather than keep it in
         * memory, bounded by spool_limit instead of max_body (413 beyond). */
        int spool_fd;
        uint64_t spool_limit;
} kiln_http_response;

typedef struct kiln_http_handlers {
        void (*precheck) (void *data, const kiln_http_request *req, kiln_http_response *resp);
        void (*handle) (void *data, const kiln_http_request *req, kiln_http_response *resp);
        /* The body of an answer the server makes itself (413). */
        void (*error) (void *data, int status, const char *msg, kiln_http_response *resp);
        void *data;
} kiln_http_handlers;

/* Called once per finished request (from its connection's thread) with
 * the method, the status sent (0 when none was) and the time taken. */
typedef void (*kiln_http_observe_fn) (void *data, const char *method, int status, double ms);

typedef struct kiln_http_opts {
        const char *listen;       /* "ADDR:PORT" or "[V6ADDR]:PORT"; NULL: none */
        const char *unix_path;    /* a Unix socket to listen on too; NULL: none */
        const char *tls_cert;     /* PEM files: the TCP listener speaks HTTPS */
        const char *tls_key;      /* (both or neither) */
        size_t max_body;          /* 0: 8 MiB */
        unsigned timeout_s;       /* idle connection timeout; 0: 30 */
        unsigned max_connections; /* 0: 256 */
        kiln_http_handlers handlers;
        kiln_http_observe_fn observe; /* may be NULL */
        void *observe_data;
} kiln_http_opts;

/* Binds and starts serving on listen and/or unix_path.  KILN_E_INVALID
 * for a bad address, a bad certificate or key, or a unix_path that exists
 * and is not a stale socket; KILN_E_IO when the address cannot be bound.
 * The Unix socket is made mode 0600 and removed by kiln_http_stop. */
int kiln_http_start (kiln_http_server **out, const kiln_http_opts *opts, kiln_error **err);

/* Stops accepting new connections; requests in flight go on. */
void kiln_http_quiesce (kiln_http_server *s);

/* Closes every connection (waiting for their threads) and frees s;
 * accepts NULL.  Streams must have been told to end first. */
void kiln_http_stop (kiln_http_server *s);

/* Parses "ADDR:PORT" for callers that check an address early. */
int kiln_http_parse_listen (const char *listen, char *host, size_t host_size, unsigned *port,
                            kiln_error **err);

#endif
