/* kiln: one BuildRun's work: its parameters and secrets, the source, the
 * strategy's steps, and what they report.
 *
 * Everything happens in the run's work dir (removed at the end); lines go
 * to the run's log.  Secret values live in memory, or in the one file a
 * step needs (mode 0600, inside the work dir), and never in the log. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/kv.h"
#include "kiln/log.h"
#include "kiln/serve.h"

/* ---- parameters ---- */

static int
one_value (json_t **out, kiln_store *s, const char *ns, const json_t *pv, kiln_error **err)
{
        const json_t *v = json_object_get (pv, "value");
        const json_t *sv = json_object_get (pv, "secretValue");
        const json_t *cv = json_object_get (pv, "configMapValue");
        char *str = NULL;

        if (json_is_string (v)) {
                *out = json_incref ((json_t *) v);
                return 0;
        }
        if (sv == NULL && cv == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "no value");
        if (kiln_ref_param_value (&str, s, ns, sv ? sv : cv, sv != NULL, err) < 0)
                return -1;
        *out = json_string (str);
        explicit_bzero (str, strlen (str));
        free (str);
        return 0;
}

static int
param_value (json_t **out, kiln_store *s, const char *ns, const json_t *pv, kiln_error **err)
{
        const json_t *values = json_object_get (pv, "values");
        size_t i;
        json_t *item;

        if (!json_is_array (values))
                return one_value (out, s, ns, pv, err);
        *out = json_array ();
        json_array_foreach (values, i, item)
        {
                json_t *v = NULL;
                if (one_value (&v, s, ns, item, err) < 0) {
                        json_decref (*out);
                        return -1;
                }
                json_array_append_new (*out, v);
        }
        return 0;
}

/* Defaults from the strategy, then the values given. */
static int
user_params (json_t *params, kiln_store *s, const char *ns, const kiln_resolved *res,
             kiln_error **err)
{
        const json_t *defs
            = json_object_get (json_object_get (res->strategy, "spec"), "parameters");
        const json_t *values = json_object_get (res->effective, "paramValues");
        size_t i;
        json_t *p;

        json_array_foreach (defs, i, p)
        {
                const char *name = json_string_value (json_object_get (p, "name"));
                json_t *d = json_object_get (p, "default");
                if (d == NULL)
                        d = json_object_get (p, "defaults");
                if (name && d)
                        json_object_set (params, name, d);
        }
        json_array_foreach (values, i, p)
        {
                const char *name = json_string_value (json_object_get (p, "name"));
                json_t *v = NULL;
                if (name == NULL)
                        continue;
                if (param_value (&v, s, ns, p, err) < 0)
                        return kiln_error_wrap (err, "parameter %s", name);
                json_object_set_new (params, name, v);
        }
        return 0;
}

/* ---- one run ---- */

typedef struct run_ctx {
        const kiln_run_opts *o;
        const kiln_resolved *res;
        char *work;
        char *source_root;
        char *results;
        char *output_dir; /* shp-output-directory, when a step uses it */
        json_t *params;
        json_t *env; /* the Build's env, valueFrom resolved */
        char **base_env;
        int log_fd;
        kiln_run_result *f;
        /* clone credentials, only ever in memory */
        char *git_user;
        char *git_pass;
        char *ssh_key;
        char *ssh_known_hosts;
} run_ctx;

/* Appends a formatted "NAME=VALUE" to the run's environment. */
static void __attribute__ ((format (printf, 2, 3))) env_add (run_ctx *c, const char *fmt, ...)
{
        va_list ap;
        char *kv = NULL;

        va_start (ap, fmt);
        if (vasprintf (&kv, fmt, ap) < 0)
                abort ();
        va_end (ap);
        c->base_env = kiln_strv_append (c->base_env, kv);
        free (kv);
}

static void __attribute__ ((format (printf, 2, 3))) log_line (run_ctx *c, const char *fmt, ...)
{
        va_list ap;
        cleanup_free char *line = NULL;
        cleanup_free char *full = NULL;

        va_start (ap, fmt);
        if (vasprintf (&line, fmt, ap) < 0)
                abort ();
        va_end (ap);
        full = kiln_strdup_printf ("%s\n", line);
        if (c->log_fd >= 0)
                kiln_write_all (c->log_fd, full, strlen (full), NULL);
}

static void __attribute__ ((format (printf, 3, 4)))
fail_run (kiln_run_result *f, const char *reason, const char *fmt, ...)
{
        va_list ap;

        if (f->reason)
                return;
        va_start (ap, fmt);
        if (vasprintf (&f->message, fmt, ap) < 0)
                abort ();
        va_end (ap);
        f->status = "False";
        f->reason = reason;
}

static const char *
spec_str (const json_t *spec, const char *a, const char *b, const char *c)
{
        const json_t *v = json_object_get (spec, a);
        if (b)
                v = json_object_get (v, b);
        if (c)
                v = json_object_get (v, c);
        return json_string_value (v);
}

static char *
read_result (run_ctx *c, const char *name)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", c->results, name);
        char *data = NULL;
        size_t len;

        if (kiln_read_file (&data, &len, path, 64 * 1024, NULL) < 0)
                return NULL;
        while (len && (data[len - 1] == '\n' || data[len - 1] == ' ' || data[len - 1] == '\r'))
                data[--len] = '\0';
        if (len == 0) {
                free (data);
                return NULL;
        }
        return data;
}

static int
write_secret_file (const char *path, const void *data, size_t len, kiln_error **err)
{
        return kiln_write_file (path, data, len, 0600, err);
}

static int
decode_key (char **out, const json_t *secret, const char *key)
{
        const char *b64
            = json_string_value (json_object_get (json_object_get (secret, "data"), key));
        unsigned char *raw = NULL;
        size_t len;

        *out = NULL;
        if (b64 == NULL || kiln_base64_decode (&raw, &len, b64, strlen (b64), NULL) < 0)
                return -1;
        *out = (char *) raw;
        return 0;
}

static char *
url_escape (const char *s)
{
        kiln_buf b = KILN_BUF_INIT;
        size_t len;

        kiln_buf_puts (&b, "", NULL);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
                    || *p == '-' || *p == '.' || *p == '_' || *p == '~')
                        kiln_buf_append (&b, p, 1, NULL);
                else
                        kiln_buf_printf (&b, NULL, "%%%02X", *p);
        }
        return kiln_buf_steal (&b, &len);
}

/* A git-credential-store line for a step that clones itself: the only
 * file of the secret it sees. */
static int
write_git_credentials (run_ctx *c, const char *url, kiln_error **err)
{
        const char *scheme_end = strstr (url, "://");
        const char *host, *end;
        cleanup_free char *u = url_escape (c->git_user ? c->git_user : "");
        cleanup_free char *p = url_escape (c->git_pass ? c->git_pass : "");
        cleanup_free char *path = kiln_strdup_printf ("%s/secrets/git-credentials", c->work);
        cleanup_free char *line = NULL;

        if (scheme_end == NULL)
                return 0;
        host = scheme_end + 3;
        if (strchr (host, '@') && strchr (host, '@') < strchr (host, '/'))
                host = strchr (host, '@') + 1;
        end = strchr (host, '/');
        line = kiln_strdup_printf ("%.*s://%s:%s@%.*s\n", (int) (scheme_end - url), url, u, p,
                                   (int) (end ? end - host : (ptrdiff_t) strlen (host)), host);
        if (write_secret_file (path, line, strlen (line), err) < 0)
                return -1;
        env_add (c, "KILN_GIT_CREDENTIALS=%s", path);
        return 0;
}

static char *
shell_quote (const char *s)
{
        kiln_buf b = KILN_BUF_INIT;
        size_t len;

        kiln_buf_puts (&b, "'", NULL);
        for (const char *p = s; *p; p++)
                kiln_buf_puts (&b, *p == '\'' ? "'\\''" : (char[]){ *p, 0 }, NULL);
        kiln_buf_puts (&b, "'", NULL);
        return kiln_buf_steal (&b, &len);
}

/* A step that clones itself gets the ssh-auth key as a file (0600): kiln
 * build reads KILN_GIT_SSH_KEY (and KILN_GIT_SSH_KNOWN_HOSTS), git reads
 * GIT_SSH_COMMAND.  Without known_hosts the host key is not checked, as
 * Shipwright's git step does (StrictHostKeyChecking=no). */
static int
write_ssh_files (run_ctx *c, kiln_error **err)
{
        cleanup_free char *key = kiln_strdup_printf ("%s/secrets/ssh-privatekey", c->work);
        cleanup_free char *hosts = kiln_strdup_printf ("%s/secrets/known_hosts", c->work);
        cleanup_free char *qkey = shell_quote (key);
        cleanup_free char *qhosts = shell_quote (hosts);

        if (write_secret_file (key, c->ssh_key, strlen (c->ssh_key), err) < 0)
                return -1;
        env_add (c, "KILN_GIT_SSH_KEY=%s", key);
        if (c->ssh_known_hosts) {
                if (write_secret_file (hosts, c->ssh_known_hosts, strlen (c->ssh_known_hosts), err)
                    < 0)
                        return -1;
                env_add (c, "KILN_GIT_SSH_KNOWN_HOSTS=%s", hosts);
                env_add (c,
                         "GIT_SSH_COMMAND=ssh -i %s -o IdentitiesOnly=yes -o "
                         "StrictHostKeyChecking=yes -o UserKnownHostsFile=%s",
                         qkey, qhosts);
        } else {
                env_add (c,
                         "GIT_SSH_COMMAND=ssh -i %s -o IdentitiesOnly=yes -o "
                         "StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                         qkey);
        }
        return 0;
}

static int
setup_clone_secret (run_ctx *c, kiln_error **err)
{
        const char *name = spec_str (c->res->effective, "source", "git", "cloneSecret");
        const char *type;
        json_t *secret = NULL;

        if (name == NULL || *name == '\0')
                return 0;
        if (kiln_store_get (&secret, c->o->store, "Secret", c->o->ns, name, err) < 0)
                return kiln_error_wrap (err, "cloneSecret");
        type = json_string_value (json_object_get (secret, "type"));
        if (type && strcmp (type, "kubernetes.io/basic-auth") == 0) {
                decode_key (&c->git_user, secret, "username");
                decode_key (&c->git_pass, secret, "password");
        } else if (type && strcmp (type, "kubernetes.io/ssh-auth") == 0) {
                decode_key (&c->ssh_key, secret, "ssh-privatekey");
                decode_key (&c->ssh_known_hosts, secret, "known_hosts");
        } else {
                json_decref (secret);
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "cloneSecret %s: type %s is not supported (use "
                                         "kubernetes.io/basic-auth or kubernetes.io/ssh-auth)",
                                         name, type ? type : "(none)");
        }
        json_decref (secret);
        return 0;
}

/* The step sees DOCKER_CONFIG: the push secret's config.json, or an empty
 * directory so that the daemon's own credentials are never used. */
static int
setup_push_secret (run_ctx *c, kiln_error **err)
{
        const char *name = spec_str (c->res->effective, "output", "pushSecret", NULL);
        cleanup_free char *dir = kiln_strdup_printf ("%s/secrets/docker", c->work);
        cleanup_free char *file = kiln_strdup_printf ("%s/config.json", dir);
        cleanup_free char *config = NULL;
        json_t *secret = NULL;

        if (kiln_mkdir_p (dir, 0700, err) < 0)
                return -1;
        env_add (c, "DOCKER_CONFIG=%s", dir);
        if (name == NULL || *name == '\0')
                return 0;
        if (kiln_store_get (&secret, c->o->store, "Secret", c->o->ns, name, err) < 0)
                return kiln_error_wrap (err, "pushSecret");
        if (decode_key (&config, secret, ".dockerconfigjson") < 0) {
                json_decref (secret);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "pushSecret %s has no .dockerconfigjson", name);
        }
        json_decref (secret);
        return write_secret_file (file, config, strlen (config), err);
}

static void
map_source_error (kiln_run_result *f, const kiln_error *e, bool had_credentials, bool ssh_key)
{
        const char *reason = "GitError";
        const char *msg = kiln_error_msg (e);

        if (e && e->code == KILN_E_CANCELED)
                return; /* the stop reason says why */
        if (e && e->code == KILN_E_NOT_FOUND)
                reason = strstr (msg, "revision") ? "GitRevisionNotFound"
                                                  : "GitRemoteRepositoryNotFound";
        else if (e && e->code == KILN_E_AUTH)
                reason = ssh_key           ? "GitAuthInvalidKey"
                         : had_credentials ? "GitAuthInvalidUserOrPass"
                                           : "GitRemoteRepositoryPrivate";
        fail_run (f, "Failed", "buildrun step step-source-default failed: %s", msg);
        f->fail_reason = kiln_strdup (reason);
        f->fail_message = kiln_strdup (msg);
        f->fail_container = kiln_strdup ("step-source-default");
}

static int
fetch_source (run_ctx *c)
{
        const json_t *spec = c->res->effective;
        const char *url = spec_str (spec, "source", "git", "url");
        kiln_source_opts o = {
                .url = url,
                .revision = spec_str (spec, "source", "git", "revision"),
                .context_dir = spec_str (spec, "source", "contextDir", NULL),
                .work_dir = c->source_root,
                .username = c->git_user,
                .password = c->git_pass,
                .ssh_key = c->ssh_key,
                .ssh_known_hosts = c->ssh_known_hosts,
                .cancel = c->o->stop,
        };
        kiln_error *err = NULL;

        log_line (c, "[step-source-default] fetching %s", url);
        if (kiln_source_fetch (&c->f->src, &o, &err) < 0) {
                log_line (c, "[step-source-default] %s", kiln_error_msg (err));
                map_source_error (c->f, err, c->git_pass != NULL, c->ssh_key != NULL);
                kiln_error_free (err);
                return -1;
        }
        log_line (c, "[step-source-default] commit %s%s%s",
                  c->f->src.commit ? c->f->src.commit : "", c->f->src.branch ? " on " : "",
                  c->f->src.branch ? c->f->src.branch : "");
        return 0;
}

/* A Local source: what `shp build upload` does with the step-source-local
 * waiter, kiln does with POST .../buildruns/NAME/source (serve_upload.c):
 * the run waits for the extracted tree and takes it as its source. */
static int
wait_upload (run_ctx *c)
{
        const char *t = spec_str (c->res->effective, "source", "local", "timeout");
        const char *container = "step-source-local";
        cleanup_free char *ready = NULL;
        int64_t ms = KILN_LOCAL_TIMEOUT_MS, deadline;
        char dur[32];

        if (t && (kiln_go_duration_parse (t, &ms) < 0 || ms <= 0)) {
                fail_run (c->f, "Failed", "spec.source.local.timeout `%s` is not a duration", t);
                return -1;
        }
        if (c->o->upload_dir == NULL) {
                fail_run (c->f, "Failed", "this run cannot take a local source");
                return -1;
        }
        ready = kiln_strdup_printf ("%s/source", c->o->upload_dir);
        kiln_go_duration_format (dur, sizeof dur, ms);
        log_line (c, "[%s] waiting up to %s for the source upload", container, dur);
        deadline = kiln_monotonic_ms () + ms;
        while (!*c->o->stop) {
                if (access (ready, F_OK) == 0) {
                        if (rename (ready, c->source_root) < 0) {
                                fail_run (c->f, "Failed", "cannot take the uploaded source: %s",
                                          strerror (errno));
                                return -1;
                        }
                        log_line (c, "[%s] source received", container);
                        return 0;
                }
                if (kiln_monotonic_ms () >= deadline) {
                        fail_run (c->f, "LocalSourceUploadTimeout",
                                  "no source was uploaded to buildrun %s within %s", c->o->name,
                                  dur);
                        c->f->fail_reason = kiln_strdup ("LocalSourceUploadTimeout");
                        c->f->fail_message = kiln_strdup (c->f->message);
                        c->f->fail_container = kiln_strdup (container);
                        log_line (c, "[%s] %s", container, c->f->message);
                        return -1;
                }
                usleep (100 * 1000);
        }
        return -1;
}

static void
set_param (json_t *params, const char *name, const char *value)
{
        json_object_set_new (params, name, json_string (value ? value : ""));
}

static void
system_params (run_ctx *c)
{
        const json_t *spec = c->res->effective;
        const char *ctx = spec_str (spec, "source", "contextDir", NULL);
        const json_t *insecure = json_object_get (json_object_get (spec, "output"), "insecure");
        cleanup_free char *context = NULL;

        if (c->f->src.app_dir)
                context = kiln_strdup (c->f->src.app_dir);
        else if (ctx && *ctx && strcmp (ctx, ".") != 0)
                context = kiln_strdup_printf ("%s/%s", c->source_root, ctx);
        else
                context = kiln_strdup (c->source_root);
        set_param (c->params, "shp-source-root", c->source_root);
        set_param (c->params, "shp-source-context", context);
        set_param (c->params, "shp-output-image", spec_str (spec, "output", "image", NULL));
        set_param (c->params, "shp-output-insecure", json_is_true (insecure) ? "true" : "false");
        /* kiln's own: a step that fetches the source itself (kiln build). */
        set_param (c->params, "shp-source-url", spec_str (spec, "source", "git", "url"));
        set_param (c->params, "shp-source-revision", spec_str (spec, "source", "git", "revision"));
        set_param (c->params, "shp-source-context-dir", ctx);
}

static bool
is_kiln_command (const char *arg0)
{
        return strcmp (arg0, "kiln") == 0 || kiln_str_has_suffix (arg0, "/kiln");
}

/* kiln's options never take an empty value, so "--opt=" left empty by a
 * parameter with an empty default means "not given". */
static char **
drop_empty_options (char **argv)
{
        char **out = kiln_strv_new ();

        for (char **a = argv; *a; a++) {
                size_t n = strlen (*a);
                if (n > 3 && kiln_str_has_prefix (*a, "--") && (*a)[n - 1] == '='
                    && strchr (*a, '=') == *a + n - 1)
                        continue;
                out = kiln_strv_append (out, *a);
        }
        kiln_strv_free (argv);
        return out;
}

static char **
step_env (run_ctx *c, const json_t *step)
{
        char **env = kiln_strv_dup (c->base_env);
        const json_t *lists[] = { c->env, json_object_get (step, "env") };

        for (size_t k = 0; k < KILN_N_ELEMENTS (lists); k++) {
                size_t i;
                json_t *e;
                json_array_foreach (lists[k], i, e)
                {
                        const char *name = json_string_value (json_object_get (e, "name"));
                        const char *value = json_string_value (json_object_get (e, "value"));
                        bool literal = json_is_true (json_object_get (e, "literal"));
                        if (name == NULL)
                                continue;
                        cleanup_free char *v = literal
                                                   ? kiln_strdup (value)
                                                   : kiln_step_substitute (value ? value : "",
                                                                           c->params, c->results);
                        cleanup_free char *kv = kiln_strdup_printf ("%s=%s", name, v);
                        env = kiln_strv_append (env, kv);
                }
        }
        return env;
}

/* kiln build --json prints one object; its keys are read defensively. */
static void
take_build_report (run_ctx *c, const char *tail)
{
        const char *last = tail;
        json_t *j;

        for (const char *p = tail; *p; p++)
                if (*p == '\n' && p[1] == '{')
                        last = p + 1;
        j = json_loads (last, JSON_DISABLE_EOF_CHECK, NULL);
        if (!json_is_object (j)) {
                json_decref (j);
                return;
        }
        const char *keys[][3] = { { "commit", "commitSha", NULL },
                                  { "author", "commitAuthor", NULL },
                                  { "branch", "branchName", NULL } };
        char **slots[] = { &c->f->src.commit, &c->f->src.author, &c->f->src.branch };
        for (size_t i = 0; i < KILN_N_ELEMENTS (slots); i++)
                for (size_t k = 0; keys[i][k]; k++) {
                        const char *v = json_string_value (json_object_get (j, keys[i][k]));
                        if (v && *slots[i] == NULL)
                                *slots[i] = kiln_strdup (v);
                }
        json_t *t = json_object_get (j, "commitTime");
        if (json_is_integer (t) && c->f->src.commit_time <= 0)
                c->f->src.commit_time = json_integer_value (t);
        const char *digest = json_string_value (json_object_get (j, "digest"));
        if (digest && c->f->digest == NULL)
                c->f->digest = kiln_strdup (digest);
        json_decref (j);
}

static void
step_failed (run_ctx *c, const char *container, const kiln_step_run *sr)
{
        char *reason = read_result (c, "shp-error-reason");
        char *message = read_result (c, "shp-error-message");

        fail_run (c->f, "Failed", "buildrun step %s failed%s%s", container,
                  sr->last_stderr ? ": " : "", sr->last_stderr ? sr->last_stderr : "");
        c->f->fail_reason = reason;
        c->f->fail_message = message ? message : kiln_strdup (sr->last_stderr);
        c->f->fail_container = kiln_strdup (container);
}

/* What a step that ran means for the run: a stopped step (cancel,
 * timeout) leaves the reason to whoever stopped it; a kiln step's --json
 * report is read when it succeeded.  Clears sr. */
static int
step_outcome (run_ctx *c, const char *container, kiln_step_run *sr, bool kiln_step)
{
        bool stopped = sr->stopped;

        if (!stopped) {
                if (sr->exit_code != 0)
                        step_failed (c, container, sr);
                else if (kiln_step)
                        take_build_report (c, sr->stdout_tail);
        }
        kiln_step_run_clear (sr);
        return stopped || c->f->reason ? -1 : 0;
}

static bool
is_kiln_image (const char *image)
{
        return image == NULL || strcmp (image, "kiln") == 0 || kiln_str_has_prefix (image, "kiln:");
}

/* A step of another image: pulled, and run under bubblewrap. */
static int
run_image_step (run_ctx *c, const json_t *step, const char *container, const char *marker)
{
        const char *push = spec_str (c->res->effective, "output", "pushSecret", NULL);
        cleanup_free char *cache = kiln_strdup_printf ("%s/step-images", c->o->data_dir);
        cleanup_free char *docker = kiln_strdup_printf ("%s/secrets/docker", c->work);
        kiln_image_step is = { .step = step,
                               .strategy = c->res->strategy,
                               .build_env = c->env,
                               .params = c->params,
                               .work = c->work,
                               .source_root = c->source_root,
                               .results = c->results,
                               .docker_config = push && *push ? docker : NULL,
                               .cache_dir = cache,
                               .marker = marker,
                               .log_fd = c->log_fd,
                               .prefix = container,
                               .stop = c->o->stop };
        kiln_step_run sr = { 0 };
        kiln_error *err = NULL;

        if (kiln_image_step_run (&sr, &is, &err) < 0) {
                if (!*c->o->stop) {
                        log_line (c, "[%s] %s", container, kiln_error_msg (err));
                        fail_run (c->f, "Failed", "%s", kiln_error_msg (err));
                }
                kiln_error_free (err);
                return -1;
        }
        return step_outcome (c, container, &sr, false);
}

static int
run_step (run_ctx *c, const json_t *step)
{
        const char *name = json_string_value (json_object_get (step, "name"));
        const char *wd = json_string_value (json_object_get (step, "workingDir"));
        cleanup_free char *container = kiln_strdup_printf ("step-%s", name ? name : "unnamed");
        cleanup_free char *cwd = wd ? kiln_step_substitute (wd, c->params, c->results) : NULL;
        cleanup_free char *marker = kiln_strdup_printf ("KILN_BUILDRUN=%s", c->o->uid);
        cleanup_strv char **argv = kiln_strv_new ();
        cleanup_strv char **env = NULL;
        kiln_step_run sr = { 0 };
        kiln_error *err = NULL;

        kiln_step_expand_list (&argv, json_object_get (step, "command"), c->params, c->results);
        kiln_step_expand_list (&argv, json_object_get (step, "args"), c->params, c->results);
        if (argv[0] == NULL || !is_kiln_command (argv[0])) {
                if (is_kiln_image (json_string_value (json_object_get (step, "image")))) {
                        fail_run (c->f, "StepNotSupported",
                                  "step %s: the kiln image runs only kiln commands", name);
                        return -1;
                }
                return run_image_step (c, step, container, marker);
        }
        free (argv[0]);
        argv[0] = kiln_strdup (c->o->kiln_path);
        argv = drop_empty_options (argv);
        env = step_env (c, step);
        sr = (kiln_step_run){ .argv = argv,
                              .env = env,
                              .cwd = cwd && *cwd ? cwd : c->source_root,
                              .marker = marker,
                              .log_fd = c->log_fd,
                              .prefix = container,
                              .stop = c->o->stop };
        log_line (c, "[%s] running %s", container,
                  json_string_value (json_object_get (step, "image")) ?: "kiln");
        if (kiln_step_exec (&sr, &err) < 0) {
                fail_run (c->f, "Failed", "buildrun step %s failed: %s", container,
                          kiln_error_msg (err));
                kiln_error_free (err);
                return -1;
        }
        return step_outcome (c, container, &sr, true);
}

static int
run_steps (run_ctx *c)
{
        const json_t *steps = json_object_get (json_object_get (c->res->strategy, "spec"), "steps");
        size_t i;
        json_t *step;

        if (json_array_size (steps) == 0) {
                fail_run (c->f, "Failed", "the strategy has no steps");
                return -1;
        }
        json_array_foreach (steps, i, step)
        {
                if (*c->o->stop || run_step (c, step) < 0)
                        return -1;
        }
        return 0;
}

static void
collect_results (run_ctx *c)
{
        char *digest = read_result (c, "shp-image-digest");
        cleanup_free char *size = read_result (c, "shp-image-size");

        if (digest) {
                free (c->f->digest);
                c->f->digest = digest;
        }
        if (size)
                kiln_parse_int64 (size, 0, INT64_MAX, &c->f->size);
}

/* Shipwright's step-image-processing: pushes what the steps left in the
 * output directory, or re-pushes what they pushed with labels,
 * annotations and a timestamp (serve_output.c decides which). */
static void
process_output (run_ctx *c)
{
        const char *container = "step-image-processing";
        cleanup_free char *marker = kiln_strdup_printf ("KILN_BUILDRUN=%s", c->o->uid);
        cleanup_strv char **argv = NULL;
        kiln_output_plan plan = {
                .output = json_object_get (c->res->effective, "output"),
                .kiln_path = c->o->kiln_path,
                .output_dir = c->output_dir,
                .results = c->results,
                .digest = c->f->digest,
                .has_size = c->f->size > 0,
                .source_time = c->f->src.commit_time > 0 ? c->f->src.commit_time : -1,
                .created = c->o->created,
        };
        kiln_step_run sr = { 0 };
        kiln_error *err = NULL;
        bool optional;

        if (kiln_output_step_argv (&argv, &optional, &plan, &err) < 0) {
                fail_run (c->f, "Failed", "buildrun step %s failed: %s", container,
                          kiln_error_msg (err));
                c->f->fail_message = kiln_strdup (kiln_error_msg (err));
                c->f->fail_container = kiln_strdup (container);
                kiln_error_free (err);
                return;
        }
        if (argv == NULL)
                return;
        sr = (kiln_step_run){ .argv = argv,
                              .env = c->base_env,
                              .cwd = c->work,
                              .marker = marker,
                              .log_fd = c->log_fd,
                              .prefix = container,
                              .stop = c->o->stop };
        log_line (c, "[%s] %s %s", container, optional ? "reading the size of" : "pushing",
                  argv[4]);
        if (kiln_step_exec (&sr, &err) < 0) {
                fail_run (c->f, "Failed", "buildrun step %s failed: %s", container,
                          kiln_error_msg (err));
                kiln_error_free (err);
                return;
        }
        if (sr.stopped) {
                kiln_step_run_clear (&sr);
                return;
        }
        if (sr.exit_code == 0)
                collect_results (c);
        else if (optional)
                log_line (c, "[%s] the image's size is unknown: %s", container,
                          sr.last_stderr ? sr.last_stderr : "failed");
        else
                step_failed (c, container, &sr);
        kiln_step_run_clear (&sr);
}

static int
prepare_dirs (run_ctx *c, kiln_error **err)
{
        const char *subs[] = { "results", "home", "tmp", "secrets" };

        for (size_t i = 0; i < KILN_N_ELEMENTS (subs); i++) {
                cleanup_free char *d = kiln_strdup_printf ("%s/%s", c->work, subs[i]);
                if (kiln_mkdir_p (d, 0700, err) < 0)
                        return -1;
        }
        /* The clone makes source/ itself; other runs need it to exist. */
        if (spec_str (c->res->effective, "source", "git", "url") == NULL
            || kiln_strategy_mentions (c->res->strategy, "shp-source-url"))
                return kiln_mkdir_p (c->source_root, 0700, err);
        return 0;
}

static void
base_env (run_ctx *c)
{
        const char *path = getenv ("PATH");
        const char *bp = getenv ("KILN_BUILDPACKS_DIR");

        c->base_env = kiln_strv_new ();
        env_add (c, "PATH=%s", path ? path : "/usr/bin:/bin");
        env_add (c, "HOME=%s/home", c->work);
        env_add (c, "TMPDIR=%s/tmp", c->work);
        env_add (c, "KILN_BUILDRUN=%s", c->o->uid);
        if (bp)
                env_add (c, "KILN_BUILDPACKS_DIR=%s", bp);
}

static void
execute (run_ctx *c)
{
        kiln_error *err = NULL;

        base_env (c);
        if (prepare_dirs (c, &err) < 0 || setup_clone_secret (c, &err) < 0
            || setup_push_secret (c, &err) < 0
            || user_params (c->params, c->o->store, c->o->ns, c->res, &err) < 0
            || kiln_ref_env (&c->env, c->o->store, c->o->ns,
                             json_object_get (c->res->effective, "env"), &err)
                   < 0) {
                fail_run (c->f, "Failed", "%s", kiln_error_msg (err));
                kiln_error_free (err);
                return;
        }
        const char *url = spec_str (c->res->effective, "source", "git", "url");
        if (url && kiln_strategy_mentions (c->res->strategy, "shp-source-url")) {
                if ((c->git_pass && write_git_credentials (c, url, &err) < 0)
                    || (c->ssh_key && write_ssh_files (c, &err) < 0)) {
                        fail_run (c->f, "Failed", "%s", kiln_error_msg (err));
                        kiln_error_free (err);
                        return;
                }
        } else if (url && fetch_source (c) < 0) {
                return;
        } else if (kiln_source_is_local (c->res->effective) && wait_upload (c) < 0) {
                return;
        }
        system_params (c);
        if (kiln_strategy_mentions (c->res->strategy, "shp-output-directory")) {
                c->output_dir = kiln_strdup_printf ("%s/output-image", c->work);
                if (kiln_mkdir_p (c->output_dir, 0700, &err) < 0) {
                        fail_run (c->f, "Failed", "%s", kiln_error_msg (err));
                        kiln_error_free (err);
                        return;
                }
                set_param (c->params, "shp-output-directory", c->output_dir);
        }
        if (run_steps (c) == 0) {
                collect_results (c);
                if (!*c->o->stop)
                        process_output (c);
        }
}

static void
stop_outcome (kiln_run_result *f, const kiln_run_opts *o)
{
        char dur[32];

        free (f->message);
        f->message = NULL;
        f->reason = NULL;
        switch (*o->stop) {
        case KILN_RUN_STOP_CANCEL:
                fail_run (f, "BuildRunCanceled",
                          "The BuildRun and underlying TaskRun were canceled successfully.");
                break;
        case KILN_RUN_STOP_TIMEOUT:
                kiln_go_duration_format (dur, sizeof dur, o->res->timeout_ms);
                fail_run (f, "BuildRunTimeout", "BuildRun %s failed to finish within %s", o->name,
                          dur);
                break;
        default:
                fail_run (f, "DaemonShutdown",
                          "kiln serve shut down before the BuildRun finished; its processes were "
                          "stopped");
        }
}

void
kiln_run_result_clear (kiln_run_result *f)
{
        free (f->message);
        free (f->fail_reason);
        free (f->fail_message);
        free (f->fail_container);
        free (f->digest);
        kiln_source_clear (&f->src);
        memset (f, 0, sizeof (*f));
}

void
kiln_run_execute (kiln_run_result *out, const kiln_run_opts *o)
{
        run_ctx c = { .o = o, .res = o->res, .f = out, .log_fd = -1 };
        kiln_error *err = NULL;

        memset (out, 0, sizeof (*out));
        c.work = kiln_strdup (o->work_dir);
        c.source_root = kiln_strdup_printf ("%s/source", c.work);
        c.results = kiln_strdup_printf ("%s/results", c.work);
        c.params = json_object ();
        c.log_fd = open (o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        execute (&c);
        if (*o->stop)
                stop_outcome (out, o);
        if (out->reason == NULL) {
                out->status = "True";
                out->reason = "Succeeded";
                out->message = kiln_strdup ("All Steps have completed executing");
        }
        log_line (&c, "[kiln] %s: %s", out->reason, out->message);
        if (kiln_rm_rf (c.work, &err) < 0) {
                kiln_warn ("buildrun %s/%s: %s", o->ns, o->name, err->msg);
                kiln_error_free (err);
        }
        if (c.log_fd >= 0)
                close (c.log_fd);
        json_decref (c.params);
        json_decref (c.env);
        kiln_strv_free (c.base_env);
        free (c.git_user);
        free (c.git_pass);
        if (c.ssh_key)
                explicit_bzero (c.ssh_key, strlen (c.ssh_key));
        free (c.ssh_key);
        free (c.ssh_known_hosts);
        free (c.work);
        free (c.source_root);
        free (c.results);
        free (c.output_dir);
}
