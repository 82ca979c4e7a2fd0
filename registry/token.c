/* kiln: the Authorization header for a registry request: Basic, a
 * registry token, or a Bearer token fetched from the challenge's realm and
 * cached per scope set until it expires. */
#include <string.h>

#include "internal.h"
#include "kiln/cleanup.h"
#include "kiln/json.h"
#include "kiln/log.h"

#define TOKEN_LIFETIME_DEFAULT_S 60
/* A token this close to its expiry is not used. */
#define TOKEN_MARGIN_MS 5000

static int
load_credential (reg_host *h, kiln_error **err)
{
        if (h->cred_loaded)
                return 0;
        if (kiln_credential_lookup (&h->cred, h->name, err) < 0)
                return kiln_error_wrap (err, "credentials for %s", h->name);
        h->cred_loaded = true;
        if (!kiln_credential_empty (&h->cred))
                kiln_debug ("using credentials for %s from %s", h->name, h->cred.source);
        return 0;
}

/* Credentials go over plain HTTP only to loopback or insecure registries. */
static bool
may_send_secrets (reg_host *h, const char *url)
{
        cleanup_free char *host = NULL;

        if (kiln_str_has_prefix (url, "https://"))
                return true;
        host = kiln_url_host (url);
        return h->insecure || kiln_registry_host_is_loopback (host);
}

static char *
basic_header (const char *user, const char *pass)
{
        cleanup_free char *plain = kiln_strdup_printf ("%s:%s", user, pass);
        char *b64 = kiln_base64_encode (plain, strlen (plain));
        char *h = kiln_strdup_printf ("Basic %s", b64);

        explicit_bzero (plain, strlen (plain));
        reg_secret_free (b64);
        return h;
}

static char *
token_url (const reg_host *h, const char *scopes)
{
        char *url = kiln_strdup (h->challenge.realm);
        cleanup_free char *copy = kiln_strdup (scopes);
        char *save = NULL;

        if (h->challenge.service) {
                char *next = kiln_url_add_query (url, "service", h->challenge.service);
                free (url);
                url = next;
        }
        for (char *s = strtok_r (copy, " ", &save); s; s = strtok_r (NULL, " ", &save)) {
                char *next = kiln_url_add_query (url, "scope", s);
                free (url);
                url = next;
        }
        return url;
}

static int
parse_token (char **token, int64_t *expires_ms, const reg_resp *resp, const kiln_buf *body,
             reg_host *h, kiln_error **err)
{
        cleanup_kiln_json kiln_json *doc = NULL;
        const char *t;
        int64_t ttl = 0;

        (void) resp;
        if (kiln_json_parse (&doc, body->data ? body->data : "", body->len, TOKEN_BODY_MAX, err)
            < 0)
                return kiln_error_wrap (err, "token response for %s", h->name);
        t = kiln_json_get_str (doc, "token");
        if (t == NULL || *t == '\0')
                t = kiln_json_get_str (doc, "access_token");
        if (t == NULL || *t == '\0')
                return kiln_error_makec (err, KILN_E_AUTH, 0,
                                         "token response for %s holds no token", h->name);
        if (!kiln_json_get_i64 (doc, "expires_in", &ttl) || ttl <= 0)
                ttl = TOKEN_LIFETIME_DEFAULT_S;
        *token = kiln_strdup (t);
        *expires_ms = reg_now_ms () + ttl * 1000;
        return 0;
}

/* The OAuth2 form for an identity token (docker's "<token>" login). */
static char *
oauth_form (const reg_host *h, const char *scopes)
{
        char *f = kiln_strdup ("x://x/?grant_type=refresh_token&client_id=kiln");
        char *next = kiln_url_add_query (f, "refresh_token", h->cred.identity_token);
        free (f);
        f = next;
        if (h->challenge.service) {
                next = kiln_url_add_query (f, "service", h->challenge.service);
                free (f);
                f = next;
        }
        if (*scopes) {
                next = kiln_url_add_query (f, "scope", scopes);
                free (f);
                f = next;
        }
        next = kiln_strdup (strchr (f, '?') + 1);
        reg_secret_free (f);
        return next;
}

static int
fetch_token (char **token, int64_t *expires_ms, kiln_registry *r, reg_host *h, const char *scopes,
             kiln_error **err)
{
        cleanup_free char *url = token_url (h, scopes);
        cleanup_buf kiln_buf body = KILN_BUF_INIT;
        bool secrets = may_send_secrets (h, url);
        reg_resp resp = { 0 };
        reg_req req;
        CURLcode rc;
        int ret;

        kiln_buf_init (&body, TOKEN_BODY_MAX);
        if (h->cred.identity_token && secrets) {
                char *form = oauth_form (h, scopes);
                reg_req_init (&req, "POST", h->challenge.realm);
                req.body = form;
                req.body_len = strlen (form);
                req.content_type = "application/x-www-form-urlencoded";
                req.out = &body;
                ret = reg_send (r, NULL, &req, &resp, NULL, &rc, err);
                reg_secret_free (form);
                if (ret < 0)
                        goto out;
                if (resp.status != 404 && resp.status != 405)
                        goto answered;
                /* No OAuth2 endpoint: fall back to the GET flow. */
        }
        {
                char *auth = NULL;
                if (secrets && h->cred.username && h->cred.password)
                        auth = basic_header (h->cred.username, h->cred.password);
                reg_req_init (&req, "GET", url);
                req.out = &body;
                ret = reg_send (r, NULL, &req, &resp, auth, &rc, err);
                reg_secret_free (auth);
                if (ret < 0)
                        goto out;
        }
answered:
        if (resp.status == 200)
                ret = parse_token (token, expires_ms, &resp, &body, h, err);
        else if (resp.status == 401 || resp.status == 403)
                ret = kiln_error_makec (err, KILN_E_AUTH, 0,
                                        "authentication refused by %s (%ld from its token service)",
                                        h->name, resp.status);
        else
                ret = kiln_error_makec (err, KILN_E_AUTH, 0, "token service of %s answered %ld",
                                        h->name, resp.status);
out:
        if (body.data)
                explicit_bzero (body.data, body.len);
        reg_resp_clear (&resp);
        return ret;
}

static reg_token *
find_token (reg_host *h, const char *scopes)
{
        for (size_t i = 0; i < h->n_tokens; i++)
                if (strcmp (h->tokens[i].scopes, scopes) == 0)
                        return &h->tokens[i];
        return NULL;
}

static void
drop_token (reg_host *h, const char *scopes)
{
        reg_token *t = find_token (h, scopes);

        if (t == NULL)
                return;
        free (t->scopes);
        reg_secret_free (t->value);
        *t = h->tokens[--h->n_tokens];
}

static int
bearer_header (char **out, kiln_registry *r, reg_host *h, const char *scopes, kiln_error **err)
{
        reg_token *t = find_token (h, scopes);
        char *value = NULL;
        int64_t expires = 0;

        if (t && t->expires_ms - TOKEN_MARGIN_MS > reg_now_ms ()) {
                *out = kiln_strdup_printf ("Bearer %s", t->value);
                return 0;
        }
        drop_token (h, scopes);
        if (h->challenge.realm == NULL)
                return kiln_error_makec (err, KILN_E_AUTH, 0,
                                         "%s asks for a bearer token but names no realm", h->name);
        if (fetch_token (&value, &expires, r, h, scopes, err) < 0)
                return -1;
        h->tokens = kiln_reallocarray (h->tokens, h->n_tokens + 1, sizeof (reg_token));
        h->tokens[h->n_tokens].scopes = kiln_strdup (scopes);
        h->tokens[h->n_tokens].value = value;
        h->tokens[h->n_tokens].expires_ms = expires;
        h->n_tokens++;
        *out = kiln_strdup_printf ("Bearer %s", value);
        return 0;
}

int
reg_auth_header (char **out, kiln_registry *r, reg_host *h, const char *scopes, kiln_error **err)
{
        int ret = 0;

        *out = NULL;
        pthread_mutex_lock (&h->lock);
        if (h->challenge.scheme == KILN_AUTH_NONE)
                goto out;
        if ((ret = load_credential (h, err)) < 0)
                goto out;
        if (!may_send_secrets (h, h->base)) {
                kiln_warn ("not sending credentials to %s over plain HTTP", h->name);
                goto out;
        }
        if (h->cred.registry_token) {
                *out = kiln_strdup_printf ("Bearer %s", h->cred.registry_token);
                goto out;
        }
        if (h->challenge.scheme == KILN_AUTH_BASIC) {
                if (h->cred.username && h->cred.password)
                        *out = basic_header (h->cred.username, h->cred.password);
                goto out;
        }
        ret = bearer_header (out, r, h, scopes, err);
out:
        pthread_mutex_unlock (&h->lock);
        return ret;
}

/* Puts the scopes of `extra` not yet in *scopes in front of them: some
 * registries only look at the first scope parameter. */
static bool
widen_scopes (char **scopes, const char *extra)
{
        cleanup_free char *copy = kiln_strdup (extra);
        kiln_buf b = KILN_BUF_INIT;
        char *save = NULL;
        bool added = false;

        for (char *s = strtok_r (copy, " ", &save); s; s = strtok_r (NULL, " ", &save)) {
                cleanup_free char *padded = kiln_strdup_printf (" %s ", *scopes);
                cleanup_free char *needle = kiln_strdup_printf (" %s ", s);
                if (strstr (padded, needle))
                        continue;
                kiln_buf_printf (&b, NULL, "%s%s", b.len ? " " : "", s);
                added = true;
        }
        if (!added) {
                kiln_buf_free (&b);
                return false;
        }
        if (**scopes)
                kiln_buf_printf (&b, NULL, " %s", *scopes);
        free (*scopes);
        *scopes = kiln_buf_steal (&b, NULL);
        return true;
}

bool
reg_auth_on_401 (kiln_registry *r, reg_host *h, const char *www_authenticate, char **scopes)
{
        kiln_auth_challenge c;
        bool retry = false;

        (void) r;
        pthread_mutex_lock (&h->lock);
        drop_token (h, *scopes);
        if (www_authenticate && kiln_auth_challenge_parse (&c, www_authenticate, NULL) == 0) {
                if (c.scheme == KILN_AUTH_BEARER && c.error
                    && strcmp (c.error, "insufficient_scope") == 0 && c.scope)
                        widen_scopes (scopes, c.scope);
                /* A first challenge, or one that changed scheme or realm. */
                if (c.scheme != KILN_AUTH_NONE) {
                        kiln_auth_challenge_clear (&h->challenge);
                        h->challenge = c;
                } else {
                        kiln_auth_challenge_clear (&c);
                }
                retry = h->challenge.scheme != KILN_AUTH_NONE;
        }
        pthread_mutex_unlock (&h->lock);
        return retry;
}
