/* kiln: the client side of `kiln serve`'s API, over libcurl. */
#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/apiclient.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"

#define ANSWER_MAX ((size_t) 256 << 20)
#define CONNECT_TIMEOUT_S 10L

struct kiln_api_client {
        char *base;
        char *auth; /* "Authorization: Bearer ..." */
        char *cacert;
};

int
kiln_api_client_new (kiln_api_client **out, const kiln_api_client_opts *o, kiln_error **err)
{
        kiln_api_client *c;
        size_t n;

        if (o->server == NULL || *o->server == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "no server: give --server URL or set KILN_SERVER");
        if (!kiln_str_has_prefix (o->server, "http://")
            && !kiln_str_has_prefix (o->server, "https://"))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "server `%s`: want an http:// or https:// URL", o->server);
        curl_global_init (CURL_GLOBAL_DEFAULT);
        c = kiln_calloc (1, sizeof (*c));
        c->base = kiln_strdup (o->server);
        n = strlen (c->base);
        while (n > 0 && c->base[n - 1] == '/')
                c->base[--n] = '\0';
        if (o->token && *o->token)
                c->auth = kiln_strdup_printf ("Authorization: Bearer %s", o->token);
        c->cacert = o->cacert ? kiln_strdup (o->cacert) : NULL;
        *out = c;
        return 0;
}

void
kiln_api_client_free (kiln_api_client *c)
{
        if (c == NULL)
                return;
        if (c->auth)
                explicit_bzero (c->auth, strlen (c->auth));
        free (c->auth);
        free (c->base);
        free (c->cacert);
        free (c);
}

void
kiln_api_call_clear (kiln_api_call *call)
{
        free (call->answer);
        call->answer = NULL;
        call->answer_len = 0;
}

typedef struct sink {
        kiln_api_call *call;
        kiln_buf buf;
        bool stopped;
} sink;

static size_t
on_body (char *data, size_t size, size_t n, void *p)
{
        sink *s = p;
        size_t len = size * n;

        if (s->call->on_chunk) {
                if (s->call->on_chunk (s->call->chunk_data, data, len) < 0) {
                        s->stopped = true;
                        return 0;
                }
                return len;
        }
        return kiln_buf_append (&s->buf, data, len, NULL) < 0 ? 0 : len;
}

static size_t
on_read (char *buf, size_t size, size_t n, void *p)
{
        int fd = *(int *) p;
        ssize_t r;

        do
                r = read (fd, buf, size * n);
        while (r < 0 && errno == EINTR);
        return r < 0 ? CURL_READFUNC_ABORT : (size_t) r;
}

int
kiln_api_client_send (kiln_api_client *c, kiln_api_call *call, kiln_error **err)
{
        CURL *h = curl_easy_init ();
        struct curl_slist *headers = NULL;
        cleanup_free char *url = kiln_strdup_printf ("%s%s", c->base, call->path);
        cleanup_free char *ct = NULL;
        char cerr[CURL_ERROR_SIZE] = "";
        sink s = { .call = call };
        int fd = call->body_fd;
        CURLcode rc;
        size_t len;

        if (h == NULL)
                abort ();
        kiln_buf_init (&s.buf, ANSWER_MAX);
        call->status = 0;
        curl_easy_setopt (h, CURLOPT_URL, url);
        curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, call->method);
        curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
        curl_easy_setopt (h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt (h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (c->cacert)
                curl_easy_setopt (h, CURLOPT_CAINFO, c->cacert);
        if (c->auth)
                headers = curl_slist_append (headers, c->auth);
        headers = curl_slist_append (headers, "Accept: application/json");
        if (call->content_type) {
                ct = kiln_strdup_printf ("Content-Type: %s", call->content_type);
                headers = curl_slist_append (headers, ct);
        }
        if (fd > 0) {
                struct stat st;
                if (fstat (fd, &st) < 0 || lseek (fd, 0, SEEK_SET) < 0) {
                        curl_slist_free_all (headers);
                        curl_easy_cleanup (h);
                        kiln_buf_free (&s.buf);
                        return kiln_error_makec (err, KILN_E_IO, errno, "read the upload");
                }
                curl_easy_setopt (h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt (h, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt (h, CURLOPT_READDATA, &fd);
                curl_easy_setopt (h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) st.st_size);
                /* CURLOPT_UPLOAD means PUT; the method is what was asked. */
                curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, call->method);
                headers = curl_slist_append (headers, "Expect:");
        } else if (call->body) {
                curl_easy_setopt (h, CURLOPT_POSTFIELDS, call->body);
                curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) call->body_len);
        }
        curl_easy_setopt (h, CURLOPT_HTTPHEADER, headers);
        rc = curl_easy_perform (h);
        curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &call->status);
        curl_slist_free_all (headers);
        curl_easy_cleanup (h);
        if (rc != CURLE_OK && !(s.stopped && rc == CURLE_WRITE_ERROR)
            && !(call->on_chunk && call->status > 0 && rc == CURLE_PARTIAL_FILE)) {
                kiln_buf_free (&s.buf);
                return kiln_error_makec (err, KILN_E_NETWORK, 0, "%s %s: %s", call->method, url,
                                         cerr[0] ? cerr : curl_easy_strerror (rc));
        }
        kiln_buf_puts (&s.buf, "", NULL);
        call->answer = kiln_buf_steal (&s.buf, &len);
        call->answer_len = len;
        return 0;
}
