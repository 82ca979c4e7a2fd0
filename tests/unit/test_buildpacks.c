/* Unit tests: kiln's own buildpacks (buildpacks/, with its order.toml) run
 * through the lifecycle: which buildpack detection picks, and what the
 * Node.js and Python buildpacks hand to export.  Parts that need node, npm
 * or python3 are skipped when the build host lacks them. */
#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/lifecycle.h"
#include "unit.h"

#define BUILDPACKS "buildpacks"

static char *tmp;
static int n_dirs;

static void
capture (void *data, const char *label, int stream, const char *line, size_t len)
{
        (void) stream;
        kiln_buf_printf (data, NULL, "[%s] %.*s\n", label, (int) len, line);
}

static bool
have (const char *tool)
{
        cleanup_free char *cmd = kiln_strdup_printf ("command -v %s >/dev/null 2>&1", tool);
        return system (cmd) == 0;
}

/* An app dir holding the files given as name, content pairs (NULL ends). */
static char *
app_with (const char *first, ...)
{
        kiln_error *err = NULL;
        char *dir = kiln_strdup_printf ("%s/app%d", tmp, ++n_dirs);
        va_list ap;

        va_start (ap, first);
        for (const char *name = first; name; name = va_arg (ap, const char *)) {
                const char *content = va_arg (ap, const char *);
                cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, name);
                cleanup_free char *parent = kiln_strdup (path);
                *strrchr (parent, '/') = '\0';
                if (kiln_mkdir_p (parent, 0755, &err) < 0
                    || kiln_write_file (path, content, strlen (content), 0644, &err) < 0)
                        abort ();
        }
        va_end (ap);
        return dir;
}

typedef struct run {
        kiln_lifecycle_result r;
        kiln_kvs env;
        kiln_buf out;
        kiln_error *err;
        int rc;
} run;

/* Runs the lifecycle over app with buildpacks/ and the platform env given
 * as NAME, VALUE pairs (NULL ends); cache may be NULL. */
static void
run_build (run *x, const char *app, const char *cache, ...)
{
        va_list ap;
        cleanup_free char *layers = kiln_strdup_printf ("%s/layers%d", tmp, ++n_dirs);

        memset (x, 0, sizeof (*x));
        va_start (ap, cache);
        for (const char *k = va_arg (ap, const char *); k; k = va_arg (ap, const char *))
                kiln_kvs_set (&x->env, k, va_arg (ap, const char *));
        va_end (ap);
        kiln_lifecycle_opts o = {
                .app_dir = app,
                .layers_dir = layers,
                .buildpacks_dir = BUILDPACKS,
                .platform_env = &x->env,
                .cache_dir = cache,
                .no_network = true,
                .output = capture,
                .output_data = &x->out,
        };
        x->rc = kiln_lifecycle_run (&x->r, &o, &x->err);
        if (x->rc < 0 && x->err == NULL)
                abort ();
}

static void
run_clear (run *x)
{
        if (x->rc == 0)
                kiln_lifecycle_result_clear (&x->r);
        kiln_kvs_clear (&x->env);
        kiln_buf_free (&x->out);
        kiln_error_free (x->err);
}

static bool
output_has (const run *x, const char *text)
{
        return x->out.data && strstr (x->out.data, text) != NULL;
}

static bool
error_has (const run *x, const char *text)
{
        return x->rc < 0 && strstr (x->err->msg, text) != NULL;
}

static const char *
chosen (const run *x)
{
        return x->rc == 0 && x->r.n_buildpacks == 1 ? x->r.buildpacks[0].id : NULL;
}

static bool
has_launch_layer (const run *x, const char *name)
{
        for (size_t i = 0; x->rc == 0 && i < x->r.n_launch_layers; i++)
                if (strcmp (x->r.launch_layers[i].name, name) == 0)
                        return true;
        return false;
}

/* The image's Env after the launch env, over a base with PATH only. */
static char **
launch_env (const run *x)
{
        char **env = kiln_strv_append (NULL, "PATH=/usr/bin:/bin");
        if (x->rc == 0)
                kiln_launch_env_apply (&env, x->r.launch_env, x->r.n_launch_env);
        return env;
}

static const char *
env_get (char **env, const char *name)
{
        size_t n = strlen (name);
        for (char **e = env; e && *e; e++)
                if (strncmp (*e, name, n) == 0 && (*e)[n] == '=')
                        return *e + n + 1;
        return NULL;
}

/* order.toml: Go first, then Node.js, then Python.  A build that fails
 * early still names the buildpack detection chose. */
static void
test_detection_order (void)
{
        run x;
        cleanup_free char *go
            = app_with ("go.mod", "module example.com/f\n", "package.json", "{}\n", NULL);
        run_build (&x, go, NULL, NULL);
        CHECK (error_has (&x,
                          "buildpack dev.kiln.go: bin/build exited with 1: FUNC_NAME is required"));
        run_clear (&x);

        cleanup_free char *py = app_with ("requirements.txt", "x\n", NULL);
        run_build (&x, py, NULL, "FUNC_NAME", "hello", NULL);
        CHECK (error_has (&x, "buildpack dev.kiln.python: bin/build exited with 1: no main.py"));
        run_clear (&x);

        cleanup_free char *none = app_with ("README", "hi\n", NULL);
        run_build (&x, none, NULL, NULL);
        CHECK (error_has (&x, "(tried: dev.kiln.go, dev.kiln.nodejs, dev.kiln.python)"));
        run_clear (&x);

        if (!have ("node")) {
                printf ("  (no node: skipping the Node.js part)\n");
                return;
        }
        cleanup_free char *both = app_with ("package.json", "{}\n", "index.js",
                                            "exports.f = (req, res) => res.send('hi');\n",
                                            "main.py", "def f(request):\n    return 'hi'\n", NULL);
        run_build (&x, both, NULL, "FUNC_NAME", "f", NULL);
        CHECK_STR (chosen (&x), "dev.kiln.nodejs");
        run_clear (&x);
}

static void
test_nodejs (void)
{
        if (!have ("node") || !have ("npm")) {
                printf ("  (no node or npm: skipped)\n");
                return;
        }
        cleanup_free char *cache = kiln_strdup_printf ("%s/node-cache", tmp);
        cleanup_free char *app
            = app_with ("package.json",
                        "{\"main\": \"fn.js\", \"dependencies\": {\"kiln-dep\": \"file:dep\"}}\n",
                        "fn.js", "exports.hello = (req, res) => res.send(require('kiln-dep'));\n",
                        "dep/package.json", "{\"name\": \"kiln-dep\", \"version\": \"1.0.0\"}\n",
                        "dep/index.js", "module.exports = 'from dep';\n", NULL);
        for (int round = 1; round <= 2; round++) {
                run x;
                run_build (&x, app, cache, "FUNC_NAME", "hello", "FUNC_SIGNATURE_TYPE",
                           "cloudevent", NULL);
                CHECK (x.rc == 0);
                CHECK_STR (chosen (&x), "dev.kiln.nodejs");
                CHECK (has_launch_layer (&x, "framework"));
                CHECK (has_launch_layer (&x, "node_modules"));
                CHECK (round == 1 ? output_has (&x, "npm install --no-package-lock (1 dependency)")
                                  : output_has (&x, "reusing the node_modules layer"));
                const kiln_process *p = x.rc == 0 ? x.r.default_process : NULL;
                CHECK (p && kiln_strv_len (p->command) == 2);
                if (p && kiln_strv_len (p->command) == 2) {
                        CHECK_STR (p->command[0], "node");
                        CHECK_STR (p->command[1], "/layers/dev.kiln.nodejs/framework/server.js");
                        CHECK_STR (p->working_dir, "/workspace");
                }
                cleanup_strv char **env = launch_env (&x);
                CHECK_STR (env_get (env, "FUNC_NAME"), "hello");
                CHECK_STR (env_get (env, "FUNC_SIGNATURE_TYPE"), "cloudevent");
                CHECK_STR (env_get (env, "FUNC_SOURCE"), "/workspace/fn.js");
                CHECK_STR (env_get (env, "PORT"), "8080");
                CHECK_STR (env_get (env, "PATH"), "/usr/bin:/bin");
                if (x.rc < 0 || unit_failed_checks)
                        fprintf (stderr, "%s%s\n", x.out.data ? x.out.data : "",
                                 x.err ? x.err->msg : "");
                run_clear (&x);
        }
        cleanup_free char *link = kiln_strdup_printf ("%s/node_modules", app);
        char target[256] = "";
        ssize_t n = readlink (link, target, sizeof target - 1);
        CHECK (n > 0);
        CHECK_STR (target, "/layers/dev.kiln.nodejs/node_modules/node_modules");
}

static void
test_python (void)
{
        if (!have ("python3")) {
                printf ("  (no python3: skipped)\n");
                return;
        }
        run x;
        cleanup_free char *app
            = app_with ("fn/main.py", "def hello(request):\n    return 'hi'\n", NULL);
        run_build (&x, app, NULL, "FUNC_NAME", "hello", "FUNC_SRC", "fn/main.py", NULL);
        CHECK (x.rc == 0);
        CHECK_STR (chosen (&x), "dev.kiln.python");
        CHECK (has_launch_layer (&x, "framework"));
        CHECK (!has_launch_layer (&x, "packages"));
        const kiln_process *p = x.rc == 0 ? x.r.default_process : NULL;
        CHECK (p && kiln_strv_len (p->command) == 2);
        if (p && kiln_strv_len (p->command) == 2) {
                CHECK_STR (p->command[0], "python3");
                CHECK_STR (p->command[1], "/layers/dev.kiln.python/framework/serve.py");
        }
        cleanup_strv char **env = launch_env (&x);
        CHECK_STR (env_get (env, "FUNC_NAME"), "hello");
        CHECK_STR (env_get (env, "FUNC_SIGNATURE_TYPE"), "http");
        CHECK_STR (env_get (env, "FUNC_SOURCE"), "/workspace/fn/main.py");
        CHECK_STR (env_get (env, "PYTHONUNBUFFERED"), "1");
        if (x.rc < 0)
                fprintf (stderr, "%s%s\n", x.out.data ? x.out.data : "", x.err->msg);
        run_clear (&x);
}

int
main (void)
{
        kiln_error *err = NULL;

        if (kiln_mkdtemp (&tmp, "buildpacks-test", &err) < 0)
                return 1;
        RUN (test_detection_order);
        RUN (test_nodejs);
        RUN (test_python);
        kiln_rm_rf (tmp, &err);
        kiln_error_free (err);
        free (tmp);
        UNIT_DONE ("buildpacks");
}
