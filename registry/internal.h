/* kiln: what the registry client's files share; not public. */
#ifndef KILN_REGISTRY_INTERNAL_H
#define KILN_REGISTRY_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kiln/auth.h"
#include "kiln/buf.h"
#include "kiln/digest.h"
#include "kiln/registry.h"

#define ERROR_BODY_MAX ((size_t) 64 << 10)
#define TOKEN_BODY_MAX ((size_t) 1 << 20)

typedef struct reg_token {
        char *scopes; /* the space-separated scope set it was asked for */
        char *value;  /* secret */
        int64_t expires_ms;
} reg_token;

/* What the client knows about one registry. */
typedef struct reg_host {
        char *name; /* as in references: "docker.io", "127.0.0.1:5000" */
        char *api;  /* where to connect: "registry-1.docker.io" */
        char *base; /* "https://api" or "http://api" once pinged */
        bool insecure, loopback;
        const char *ca_file;  /* borrowed from the client's opts */
        pthread_mutex_t lock; /* ping, credentials, tokens */
        bool pinged;
        kiln_auth_challenge challenge;
        bool cred_loaded;
        kiln_credential cred;
        reg_token *tokens;
        size_t n_tokens;
        struct reg_host *next;
} reg_host;

struct kiln_registry {
        kiln_registry_opts opts;
        CURLSH *share;
        pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
        pthread_mutex_t lock; /* hosts, stats, progress */
        reg_host *hosts;
        kiln_registry_stats stats;
};

/* One HTTP request.  The body comes from `body` (memory) or `body_fd`
 * (from body_off, body_len bytes); the response body of a 2xx goes to
 * `out` (bounded) or to `out_fd` while `hasher` (made per attempt) hashes
 * it; other bodies are kept (bounded) in resp->errbody. */
typedef struct reg_req {
        const char *method;
        const char *url; /* absolute */
        const char *accept;
        const char *content_type;
        const void *body;
        int body_fd;
        uint64_t body_off;
        uint64_t body_len;
        const char *content_range;
        kiln_buf *out;
        int out_fd;
        kiln_hasher *hasher;
        const char *scopes;          /* the auth scopes the request needs */
        bool session;                /* bound to an upload session: never repeated */
        bool big;                    /* a blob transfer: no total time limit */
        const char *progress_digest; /* report bytes for this blob */
        uint64_t progress_total;
} reg_req;

typedef struct reg_resp {
        long status;
        char *location;
        char *content_type;
        char *docker_digest;
        char *www_authenticate;
        char *retry_after;
        char *range;
        int64_t content_length;
        uint64_t chunk_min;
        char *url; /* the URL that answered (after redirects) */
        kiln_buf errbody;
} reg_resp;

void reg_resp_clear (reg_resp *resp);
void reg_req_init (reg_req *req, const char *method, const char *url);

int64_t reg_now_ms (void);

/* The host record for a registry name, made on first use. */
reg_host *reg_host_get (kiln_registry *r, const char *registry);

/* "repository:NAME:ACTIONS"; caller frees. */
char *reg_scope (const kiln_reference *ref, const char *actions);

/* Makes sure the host was pinged (scheme chosen, challenge known). */
int reg_ping (kiln_registry *r, reg_host *h, kiln_error **err);

/* "BASE/v2/REPO/KIND/REST"; caller frees. */
char *reg_url (reg_host *h, const kiln_reference *ref, const char *kind, const char *rest);

/* Sends req with authentication, following redirects and retrying
 * transient failures.  Returns 0 with resp filled whatever the status
 * (the caller judges it), -1 when no answer could be had. */
int reg_request (kiln_registry *r, reg_host *h, reg_req *req, reg_resp *resp, kiln_error **err);

/* Sends req without authentication logic: redirects (GET, HEAD) are
 * followed with `auth` sent only to req->url's host, and transient
 * failures retried unless req->session.  h (may be NULL) names the
 * registry in errors.  *rc gets the last libcurl code. */
int reg_send (kiln_registry *r, reg_host *h, reg_req *req, reg_resp *resp, const char *auth,
              CURLcode *rc, kiln_error **err);

/* Turns a non-success answer into an error naming the registry:
 * "WHAT: HOST answered 404 MANIFEST_UNKNOWN: ...". */
int reg_status_error (reg_host *h, const reg_resp *resp, const char *what, kiln_error **err);

/* The Authorization header value for scopes (fetching a token if
 * needed), or NULL for none.  Caller frees (it is a secret). */
int reg_auth_header (char **out, kiln_registry *r, reg_host *h, const char *scopes,
                     kiln_error **err);

/* Learns from a 401: records the challenge, drops the token used for
 * scopes, and widens *scopes with what an insufficient_scope error asks
 * for (new scopes first).  Returns true when retrying may help. */
bool reg_auth_on_401 (kiln_registry *r, reg_host *h, const char *www_authenticate, char **scopes);

/* Applies TLS and timeout settings for url to a handle. */
void reg_curl_setup (kiln_registry *r, CURL *c, const char *url, bool big);

/* GETs a blob into fd (or buf), hashing it as it comes; verifies the
 * digest, and the size when >= 0. */
int reg_get_blob (kiln_registry *r, const kiln_reference *repo, const char *digest, int64_t size,
                  int fd, kiln_buf *buf, kiln_error **err);

/* Runs fn for items 0..n-1 on up to opts.jobs threads.  After the first
 * failure no new item starts; that failure is returned. */
int reg_pool_run (kiln_registry *r, size_t n, int (*fn) (void *ctx, size_t i, kiln_error **err),
                  void *ctx, kiln_error **err);

void reg_stats_add (kiln_registry *r, uint64_t *field, uint64_t n);
void reg_progress (kiln_registry *r, kiln_progress_event ev, const char *digest, uint64_t done,
                   uint64_t total);

void reg_secret_free (char *s);

#endif
