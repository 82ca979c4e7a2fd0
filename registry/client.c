/* kiln: the registry client: options, the registries file, per-registry
 * state and the libcurl settings every transfer shares. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/json.h"
#include "kiln/kv.h"
#include "kiln/log.h"

#define REGISTRIES_FILE_MAX ((size_t) 1 << 20)
#define CONNECT_TIMEOUT_MAX_MS 30000

void
kiln_registry_opts_init (kiln_registry_opts *o)
{
        memset (o, 0, sizeof (*o));
}

void
kiln_registry_opts_clear (kiln_registry_opts *o)
{
        kiln_strv_free (o->insecure);
        kiln_kvs_clear (&o->ca_files);
        memset (o, 0, sizeof (*o));
}

void
kiln_registry_opts_add_insecure (kiln_registry_opts *o, const char *host)
{
        if (!kiln_strv_contains (o->insecure, host))
                o->insecure = kiln_strv_append (o->insecure, host);
}

int
kiln_registry_opts_add_ca (kiln_registry_opts *o, const char *spec, kiln_error **err)
{
        const char *eq = strchr (spec, '=');
        cleanup_free char *host = NULL;

        if (eq == NULL || eq == spec || eq[1] == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "registry CA `%s`: expected HOST=FILE", spec);
        host = strndup (spec, (size_t) (eq - spec));
        if (host == NULL)
                abort ();
        kiln_kvs_set (&o->ca_files, host, eq + 1);
        return 0;
}

static char *
default_registries_file (bool *named)
{
        const char *v = getenv ("KILN_REGISTRIES_CONFIG");

        *named = false;
        if (v && *v) {
                *named = true;
                return kiln_strdup (v);
        }
        v = getenv ("XDG_CONFIG_HOME");
        if (v && *v)
                return kiln_strdup_printf ("%s/kiln/registries.json", v);
        v = getenv ("HOME");
        return v && *v ? kiln_strdup_printf ("%s/.config/kiln/registries.json", v) : NULL;
}

int
kiln_registry_opts_load (kiln_registry_opts *o, const char *path, kiln_error **err)
{
        cleanup_free char *file = NULL;
        cleanup_free char *data = NULL;
        cleanup_kiln_json kiln_json *doc = NULL;
        cleanup_error kiln_error *rerr = NULL;
        bool named = path != NULL;
        const kiln_json *regs, *e;
        const char *host;
        void *it = NULL;
        size_t len;

        file = path ? kiln_strdup (path) : default_registries_file (&named);
        if (file == NULL)
                return 0;
        if (kiln_read_file (&data, &len, file, REGISTRIES_FILE_MAX, &rerr) < 0) {
                if (!named && rerr->sys_errno == ENOENT)
                        return 0;
                *err = kiln_error_take (&rerr);
                return kiln_error_wrap (err, "registries file");
        }
        if (kiln_json_parse (&doc, data, len, REGISTRIES_FILE_MAX, err) < 0)
                return kiln_error_wrap (err, "registries file `%s`", file);
        regs = kiln_json_get (doc, "registries");
        if (regs && !kiln_json_is_object (regs))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "registries file `%s`: registries: expected an object",
                                         file);
        while (kiln_json_object_next (regs, &it, &host, &e)) {
                const kiln_json *insecure = kiln_json_key (e, "insecure");
                const char *ca = kiln_json_get_str (e, "ca");
                if (!kiln_json_is_object (e) || (kiln_json_key (e, "ca") && ca == NULL))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "registries file `%s`: registries.%s: bad entry",
                                                 file, host);
                if (insecure) {
                        cleanup_free char *s = NULL;
                        if (kiln_json_format (&s, insecure, err) < 0)
                                return -1;
                        if (strcmp (s, "true") == 0)
                                kiln_registry_opts_add_insecure (o, host);
                        else if (strcmp (s, "false") != 0)
                                return kiln_error_makec (
                                    err, KILN_E_INVALID, 0,
                                    "registries file `%s`: registries.%s.insecure: expected "
                                    "a boolean",
                                    file, host);
                }
                if (ca && kiln_kvs_get (&o->ca_files, host) == NULL)
                        kiln_kvs_set (&o->ca_files, host, ca);
        }
        return 0;
}

/* ---- the client ---- */

static void
share_lock (CURL *c, curl_lock_data data, curl_lock_access access, void *p)
{
        kiln_registry *r = p;
        (void) c;
        (void) access;
        pthread_mutex_lock (&r->share_locks[data]);
}

static void
share_unlock (CURL *c, curl_lock_data data, void *p)
{
        kiln_registry *r = p;
        (void) c;
        pthread_mutex_unlock (&r->share_locks[data]);
}

static void
global_init (void)
{
        curl_global_init (CURL_GLOBAL_DEFAULT);
}

int
kiln_registry_new (kiln_registry **out, const kiln_registry_opts *opts, kiln_error **err)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        kiln_registry *r;

        pthread_once (&once, global_init);
        r = kiln_calloc (1, sizeof (*r));
        r->opts.insecure = kiln_strv_dup (opts->insecure);
        kiln_kvs_copy (&r->opts.ca_files, &opts->ca_files);
        r->opts.timeout_ms
            = opts->timeout_ms > 0 ? opts->timeout_ms : KILN_REGISTRY_TIMEOUT_MS_DEFAULT;
        r->opts.jobs = opts->jobs > 0 ? opts->jobs : KILN_REGISTRY_JOBS_DEFAULT;
        if (r->opts.jobs > KILN_REGISTRY_JOBS_MAX)
                r->opts.jobs = KILN_REGISTRY_JOBS_MAX;
        r->opts.chunk_size = opts->chunk_size;
        r->opts.progress = opts->progress;
        r->opts.progress_data = opts->progress_data;
        pthread_mutex_init (&r->lock, NULL);
        for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init (&r->share_locks[i], NULL);
        r->share = curl_share_init ();
        if (r->share == NULL) {
                kiln_registry_free (r);
                return kiln_error_makec (err, KILN_E_FAILED, 0, "cannot set up libcurl");
        }
        curl_share_setopt (r->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt (r->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt (r->share, CURLSHOPT_USERDATA, r);
        curl_share_setopt (r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt (r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt (r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        *out = r;
        return 0;
}

void
reg_secret_free (char *s)
{
        if (s) {
                explicit_bzero (s, strlen (s));
                free (s);
        }
}

static void
host_free (reg_host *h)
{
        free (h->name);
        free (h->api);
        free (h->base);
        kiln_auth_challenge_clear (&h->challenge);
        kiln_credential_clear (&h->cred);
        for (size_t i = 0; i < h->n_tokens; i++) {
                free (h->tokens[i].scopes);
                reg_secret_free (h->tokens[i].value);
        }
        free (h->tokens);
        pthread_mutex_destroy (&h->lock);
        free (h);
}

void
kiln_registry_free (kiln_registry *r)
{
        if (r == NULL)
                return;
        while (r->hosts) {
                reg_host *next = r->hosts->next;
                host_free (r->hosts);
                r->hosts = next;
        }
        if (r->share)
                curl_share_cleanup (r->share);
        for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_destroy (&r->share_locks[i]);
        pthread_mutex_destroy (&r->lock);
        kiln_registry_opts_clear (&r->opts);
        free (r);
}

void
kiln_registry_get_stats (const kiln_registry *r, kiln_registry_stats *out)
{
        pthread_mutex_lock ((pthread_mutex_t *) &r->lock);
        *out = r->stats;
        pthread_mutex_unlock ((pthread_mutex_t *) &r->lock);
}

void
reg_stats_add (kiln_registry *r, uint64_t *field, uint64_t n)
{
        pthread_mutex_lock (&r->lock);
        *field += n;
        pthread_mutex_unlock (&r->lock);
}

void
reg_progress (kiln_registry *r, kiln_progress_event ev, const char *digest, uint64_t done,
              uint64_t total)
{
        if (r->opts.progress == NULL)
                return;
        pthread_mutex_lock (&r->lock);
        r->opts.progress (r->opts.progress_data, ev, digest, done, total);
        pthread_mutex_unlock (&r->lock);
}

int64_t
reg_now_ms (void)
{
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

reg_host *
reg_host_get (kiln_registry *r, const char *registry)
{
        reg_host *h;

        pthread_mutex_lock (&r->lock);
        for (h = r->hosts; h; h = h->next)
                if (strcmp (h->name, registry) == 0)
                        break;
        if (h == NULL) {
                h = kiln_calloc (1, sizeof (*h));
                h->name = kiln_strdup (registry);
                h->api = kiln_strdup (strcmp (registry, KILN_DOCKER_HUB) == 0 ? KILN_DOCKER_HUB_API
                                                                              : registry);
                h->insecure = kiln_strv_contains (r->opts.insecure, registry)
                              || kiln_strv_contains (r->opts.insecure, h->api);
                h->loopback = kiln_registry_host_is_loopback (h->api);
                h->ca_file = kiln_kvs_get (&r->opts.ca_files, registry);
                pthread_mutex_init (&h->lock, NULL);
                h->next = r->hosts;
                r->hosts = h;
        }
        pthread_mutex_unlock (&r->lock);
        return h;
}

char *
reg_scope (const kiln_reference *ref, const char *actions)
{
        return kiln_strdup_printf ("repository:%s:%s", ref->repository, actions);
}

char *
reg_url (reg_host *h, const kiln_reference *ref, const char *kind, const char *rest)
{
        return kiln_strdup_printf ("%s/v2/%s/%s/%s", h->base, ref->repository, kind, rest);
}

/* TLS and timeouts for a URL: the settings of the registry it points at
 * (token realms get those of their own host). */
void
reg_curl_setup (kiln_registry *r, CURL *c, const char *url, bool big)
{
        cleanup_free char *host = kiln_url_host (url);
        const char *ca = host ? kiln_kvs_get (&r->opts.ca_files, host) : NULL;
        bool insecure = host && kiln_strv_contains (r->opts.insecure, host);
        long connect_ms = r->opts.timeout_ms < CONNECT_TIMEOUT_MAX_MS ? (long) r->opts.timeout_ms
                                                                      : CONNECT_TIMEOUT_MAX_MS;
        long stall_s = (long) (r->opts.timeout_ms / 1000);

        curl_easy_setopt (c, CURLOPT_SHARE, r->share);
        curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt (c, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
        curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        curl_easy_setopt (c, CURLOPT_TCP_KEEPALIVE, 1L);
        /* A transfer that moves nothing for the timeout is dead. */
        curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 1L);
        if (!big)
                curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, (long) r->opts.timeout_ms);
        if (ca)
                curl_easy_setopt (c, CURLOPT_CAINFO, ca);
        if (insecure) {
                curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
}
