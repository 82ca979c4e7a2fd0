/* kiln: stored registry credentials: docker config.json, podman auth.json
 * and docker-credential-* helpers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kiln/auth.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/json.h"
#include "kiln/reference.h"

#define CONFIG_MAX ((size_t) 4 << 20)
#define HELPER_OUTPUT_MAX ((size_t) 64 << 10)
#define HELPER_TIMEOUT_MS 30000

static void
free_secret (char *s)
{
        if (s) {
                explicit_bzero (s, strlen (s));
                free (s);
        }
}

void
kiln_credential_clear (kiln_credential *c)
{
        free (c->username);
        free_secret (c->password);
        free_secret (c->identity_token);
        free_secret (c->registry_token);
        free (c->source);
        memset (c, 0, sizeof (*c));
}

bool
kiln_credential_empty (const kiln_credential *c)
{
        return c->username == NULL && c->password == NULL && c->identity_token == NULL
               && c->registry_token == NULL;
}

static char *
dup_nonempty (const char *s)
{
        return s && *s ? kiln_strdup (s) : NULL;
}

/* "auth": base64 of "user:password"; split at the first colon, trailing
 * NULs trimmed from the password as docker does. */
static int
decode_auth (kiln_credential *out, const char *b64, const char *source, const char *key,
             kiln_error **err)
{
        unsigned char *raw = NULL;
        size_t len = 0, raw_len;
        char *colon;

        if (kiln_base64_decode (&raw, &len, b64, strlen (b64), NULL) < 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "%s: auths.%s.auth is not valid base64", source, key);
        raw_len = len;
        colon = memchr (raw, ':', len);
        if (colon == NULL || memchr (raw, '\0', (size_t) (colon - (char *) raw))) {
                explicit_bzero (raw, len);
                free (raw);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "%s: auths.%s.auth is not user:password", source, key);
        }
        while (len > (size_t) (colon - (char *) raw) + 1 && raw[len - 1] == '\0')
                len--;
        out->username = strndup ((char *) raw, (size_t) (colon - (char *) raw));
        out->password = strndup (colon + 1, len - (size_t) (colon + 1 - (char *) raw));
        explicit_bzero (raw, raw_len);
        free (raw);
        if (out->username == NULL || out->password == NULL)
                abort ();
        return 0;
}

static int
from_auth_entry (kiln_credential *out, const kiln_json *e, const char *source, const char *key,
                 kiln_error **err)
{
        const char *auth = kiln_json_get_str (e, "auth");
        const char *user = kiln_json_get_str (e, "username");
        const char *pass = kiln_json_get_str (e, "password");

        memset (out, 0, sizeof (*out));
        if (auth && *auth) {
                if (decode_auth (out, auth, source, key, err) < 0)
                        return -1;
        } else if (user && *user) {
                out->username = kiln_strdup (user);
                out->password = kiln_strdup (pass ? pass : "");
        }
        out->identity_token = dup_nonempty (kiln_json_get_str (e, "identitytoken"));
        out->registry_token = dup_nonempty (kiln_json_get_str (e, "registrytoken"));
        if (kiln_credential_empty (out)) {
                kiln_credential_clear (out);
                return 0;
        }
        out->source = kiln_strdup (source);
        return 1;
}

int
kiln_credential_from_config (kiln_credential *out, char **helper, const char *json, size_t len,
                             const char *registry, const char *source, kiln_error **err)
{
        cleanup_kiln_json kiln_json *doc = NULL;
        cleanup_free char *want = kiln_registry_auth_key (registry);
        const kiln_json *auths, *helpers, *e;
        const char *store, *key;
        void *it = NULL;

        memset (out, 0, sizeof (*out));
        *helper = NULL;
        if (kiln_json_parse (&doc, json, len, CONFIG_MAX, err) < 0)
                return kiln_error_wrap (err, "%s", source);
        if (!kiln_json_is_object (doc))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s: not a JSON object", source);
        helpers = kiln_json_get (doc, "credHelpers");
        while (kiln_json_object_next (helpers, &it, &key, &e)) {
                cleanup_free char *k = kiln_registry_auth_key (key);
                if (strcmp (k, want) == 0 && kiln_json_str (e) && *kiln_json_str (e)) {
                        *helper = kiln_strdup (kiln_json_str (e));
                        return 2;
                }
        }
        store = kiln_json_get_str (doc, "credsStore");
        if (store && *store) {
                *helper = kiln_strdup (store);
                return 2;
        }
        auths = kiln_json_get (doc, "auths");
        it = NULL;
        while (kiln_json_object_next (auths, &it, &key, &e)) {
                cleanup_free char *k = kiln_registry_auth_key (key);
                if (strcmp (k, want) == 0 && kiln_json_is_object (e))
                        return from_auth_entry (out, e, source, key, err);
        }
        return 0;
}

/* ---- credential helpers ---- */

static int
read_bounded (kiln_buf *b, int fd, pid_t pid, const char *name, kiln_error **err)
{
        struct timespec start, now;

        clock_gettime (CLOCK_MONOTONIC, &start);
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                char chunk[4096];
                ssize_t r;
                long elapsed;
                int pr;

                clock_gettime (CLOCK_MONOTONIC, &now);
                elapsed
                    = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                if (elapsed >= HELPER_TIMEOUT_MS) {
                        kill (pid, SIGKILL);
                        return kiln_error_makec (err, KILN_E_TIMEOUT, 0,
                                                 "%s did not answer within %d s", name,
                                                 HELPER_TIMEOUT_MS / 1000);
                }
                pr = poll (&pfd, 1, (int) (HELPER_TIMEOUT_MS - elapsed));
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr < 0)
                        return kiln_error_make (err, errno, "poll %s", name);
                if (pr == 0)
                        continue;
                r = read (fd, chunk, sizeof chunk);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return kiln_error_make (err, errno, "read from %s", name);
                if (r == 0)
                        return 0;
                if (kiln_buf_append (b, chunk, (size_t) r, err) < 0) {
                        kill (pid, SIGKILL);
                        return kiln_error_wrap (err, "output of %s", name);
                }
        }
}

static pid_t
spawn_helper (const char *prog, int *in_fd, int *out_fd, kiln_error **err)
{
        int in[2], out[2];
        pid_t pid;

        if (pipe2 (in, O_CLOEXEC) < 0)
                return kiln_error_make (err, errno, "pipe");
        if (pipe2 (out, O_CLOEXEC) < 0) {
                close (in[0]);
                close (in[1]);
                return kiln_error_make (err, errno, "pipe");
        }
        pid = fork ();
        if (pid < 0) {
                kiln_error_make (err, errno, "fork %s", prog);
                close (in[0]);
                close (in[1]);
                close (out[0]);
                close (out[1]);
                return -1;
        }
        if (pid == 0) {
                int devnull = open ("/dev/null", O_WRONLY);
                dup2 (in[0], 0);
                dup2 (out[1], 1);
                if (devnull >= 0)
                        dup2 (devnull, 2);
                execlp (prog, prog, "get", (char *) NULL);
                _exit (127);
        }
        close (in[0]);
        close (out[1]);
        *in_fd = in[1];
        *out_fd = out[0];
        return pid;
}

static int
parse_helper_output (kiln_credential *out, const char *data, size_t len, const char *prog,
                     kiln_error **err)
{
        cleanup_kiln_json kiln_json *doc = NULL;
        const char *user, *secret;

        if (kiln_json_parse (&doc, data, len, HELPER_OUTPUT_MAX, err) < 0)
                return kiln_error_wrap (err, "output of %s", prog);
        user = kiln_json_get_str (doc, "Username");
        secret = kiln_json_get_str (doc, "Secret");
        if (secret == NULL || *secret == '\0')
                return 0;
        memset (out, 0, sizeof (*out));
        if (user && strcmp (user, "<token>") == 0) {
                out->identity_token = kiln_strdup (secret);
        } else {
                out->username = kiln_strdup (user ? user : "");
                out->password = kiln_strdup (secret);
        }
        out->source = kiln_strdup (prog);
        return 1;
}

int
kiln_credential_helper_get (kiln_credential *out, const char *helper, const char *server,
                            kiln_error **err)
{
        cleanup_free char *prog = kiln_strdup_printf ("docker-credential-%s", helper);
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        cleanup_close int in_fd = -1;
        cleanup_close int out_fd = -1;
        struct sigaction ign = { .sa_handler = SIG_IGN }, old;
        int status = 0, r;
        pid_t pid;

        memset (out, 0, sizeof (*out));
        if (strchr (helper, '/') != NULL || *helper == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0, "bad credential helper name `%s`",
                                         helper);
        kiln_buf_init (&b, HELPER_OUTPUT_MAX);
        pid = spawn_helper (prog, &in_fd, &out_fd, err);
        if (pid < 0)
                return -1;
        /* A helper that exits without reading stdin must not kill us. */
        sigaction (SIGPIPE, &ign, &old);
        kiln_write_all (in_fd, server, strlen (server), NULL);
        sigaction (SIGPIPE, &old, NULL);
        close (kiln_steal_fd (&in_fd));
        r = read_bounded (&b, out_fd, pid, prog, err);
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0)
                return -1;
        if (WIFEXITED (status) && WEXITSTATUS (status) == 127)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                                         "credential helper %s not found on PATH", prog);
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
                if (b.data && strstr (b.data, "credentials not found"))
                        return 0;
                return kiln_error_makec (err, KILN_E_AUTH, 0, "credential helper %s failed for %s",
                                         prog, server);
        }
        r = parse_helper_output (out, b.data ? b.data : "", b.len, prog, err);
        if (b.data)
                explicit_bzero (b.data, b.len);
        return r;
}

/* ---- the lookup ---- */

static char *
config_path (int which)
{
        const char *v;

        switch (which) {
        case 0:
                v = getenv ("REGISTRY_AUTH_FILE");
                return v && *v ? kiln_strdup (v) : NULL;
        case 1:
                v = getenv ("DOCKER_CONFIG");
                if (v && *v)
                        return kiln_strdup_printf ("%s/config.json", v);
                v = getenv ("HOME");
                return v && *v ? kiln_strdup_printf ("%s/.docker/config.json", v) : NULL;
        case 2:
                v = getenv ("XDG_RUNTIME_DIR");
                return v && *v ? kiln_strdup_printf ("%s/containers/auth.json", v) : NULL;
        case 3:
                v = getenv ("XDG_CONFIG_HOME");
                if (v && *v)
                        return kiln_strdup_printf ("%s/containers/auth.json", v);
                v = getenv ("HOME");
                return v && *v ? kiln_strdup_printf ("%s/.config/containers/auth.json", v) : NULL;
        default:
                return NULL;
        }
}

int
kiln_credential_lookup (kiln_credential *out, const char *registry, kiln_error **err)
{
        memset (out, 0, sizeof (*out));
        for (int i = 0; i < 4; i++) {
                cleanup_free char *path = config_path (i);
                cleanup_free char *data = NULL;
                cleanup_free char *helper = NULL;
                cleanup_free char *server = NULL;
                cleanup_error kiln_error *rerr = NULL;
                size_t len = 0;
                int r;

                if (path == NULL)
                        continue;
                if (kiln_read_file (&data, &len, path, CONFIG_MAX, &rerr) < 0) {
                        if (rerr->sys_errno == ENOENT || rerr->sys_errno == ENOTDIR)
                                continue;
                        *err = kiln_error_take (&rerr);
                        return -1;
                }
                r = kiln_credential_from_config (out, &helper, data, len, registry, path, err);
                explicit_bzero (data, len);
                if (r < 0)
                        return -1;
                if (r == 1)
                        return 1;
                if (r == 0)
                        continue;
                server = kiln_registry_auth_key (registry);
                return kiln_credential_helper_get (out, helper, server, err);
        }
        return 0;
}
