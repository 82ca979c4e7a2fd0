/* kiln: a client of `kiln serve` (libcurl; it lives in registry/ because
 * that module is the only one that calls libcurl).
 *
 * One request at a time: a method, a path under the server's base URL, an
 * optional body from memory or from a file, the bearer token, and the
 * answer collected in memory (bounded) or handed chunk by chunk to a
 * callback (watch streams, followed logs). */
#ifndef KILN_APICLIENT_H
#define KILN_APICLIENT_H

#include <stddef.h>

#include "error.h"

typedef struct kiln_api_client kiln_api_client;

typedef struct kiln_api_client_opts {
        const char *server; /* "http://127.0.0.1:8080" (a trailing / is fine) */
        const char *token;  /* bearer token, or NULL */
        const char *cacert; /* a CA file for https, or NULL */
} kiln_api_client_opts;

/* Copies what it needs of opts.  KILN_E_INVALID for a server that is not
 * an http:// or https:// URL. */
int kiln_api_client_new (kiln_api_client **out, const kiln_api_client_opts *opts, kiln_error **err);
void kiln_api_client_free (kiln_api_client *c);

/* Called with each piece of a streamed answer; a negative return stops
 * the transfer (the call then returns 0 with the status seen). */
typedef int (*kiln_api_chunk_fn) (void *data, const char *buf, size_t len);

typedef struct kiln_api_call {
        const char *method;
        const char *path; /* "/apis/shipwright.io/v1beta1/..." with its query */
        const char *content_type;
        const void *body; /* or NULL */
        size_t body_len;
        int body_fd;                /* > 0: the body is this file, from its start (body ignored) */
        kiln_api_chunk_fn on_chunk; /* NULL: collect the answer */
        void *chunk_data;
        /* Results */
        long status;  /* the HTTP status */
        char *answer; /* owned, NUL-terminated: the answer when collected */
        size_t answer_len;
} kiln_api_call;

/* Sends the request.  Fails (KILN_E_NETWORK, naming the server) only when
 * no HTTP answer came; any HTTP status is a success of the call. */
int kiln_api_client_send (kiln_api_client *c, kiln_api_call *call, kiln_error **err);

/* Frees call->answer. */
void kiln_api_call_clear (kiln_api_call *call);

#endif
