/* kiln: one plain HTTP POST (webhooks, the CloudEvents sink of
 * `kiln serve`).  It lives here because libcurl is called only from the
 * registry client; it shares nothing with a registry session. */
#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/registry.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init (void)
{
        curl_global_init (CURL_GLOBAL_DEFAULT);
}

/* The answer's body is not wanted: it is read and dropped. */
static size_t
discard (char *data, size_t size, size_t n, void *p)
{
        (void) data;
        (void) p;
        return size * n;
}

int
kiln_registry_post (long *status, const char *url, const char *const *headers, const void *body,
                    size_t len, long timeout_ms, kiln_error **err)
{
        char cerr[CURL_ERROR_SIZE] = "";
        struct curl_slist *hl = NULL;
        CURL *c;
        CURLcode rc;

        pthread_once (&curl_once, curl_init);
        c = curl_easy_init ();
        if (c == NULL)
                return kiln_error_makec (err, KILN_E_IO, 0, "POST `%s`: curl_easy_init failed",
                                         url);
        for (const char *const *h = headers; h && *h; h++)
                hl = curl_slist_append (hl, *h);
        hl = curl_slist_append (hl, "Expect:");
        curl_easy_setopt (c, CURLOPT_URL, url);
        curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt (c, CURLOPT_POST, 1L);
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
        curl_easy_setopt (c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt (c, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 0L);
        rc = curl_easy_perform (c);
        if (rc == CURLE_OK)
                curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, status);
        curl_slist_free_all (hl);
        curl_easy_cleanup (c);
        if (rc != CURLE_OK)
                return kiln_error_makec (err, KILN_E_NETWORK, 0, "POST `%s`: %s", url,
                                         cerr[0] ? cerr : curl_easy_strerror (rc));
        return 0;
}
