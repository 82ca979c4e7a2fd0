/* Unit tests: the buildpack lifecycle with the spec-following test
 * buildpacks in tests/fixtures/buildpacks/. */
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/kv.h"
#include "kiln/lifecycle.h"
#include "unit.h"

#define FIXTURES "tests/fixtures/buildpacks"

static char *tmp;
static int n_dirs;

typedef struct captured {
        kiln_buf text;
} captured;

static void
capture (void *data, const char *label, int stream, const char *line, size_t len)
{
        captured *c = data;
        kiln_buf_printf (&c->text, NULL, "[%s] %d %.*s\n", label, stream, (int) len, line);
}

static char *
fresh_dir (const char *what)
{
        kiln_error *err = NULL;
        char *d = kiln_strdup_printf ("%s/%s%d", tmp, what, ++n_dirs);
        if (kiln_mkdir_p (d, 0755, &err) < 0)
                abort ();
        return d;
}

static void
put (const char *dir, const char *name, const char *content)
{
        kiln_error *err = NULL;
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, name);
        cleanup_free char *parent = kiln_strdup (path);
        *strrchr (parent, '/') = '\0';
        if (kiln_mkdir_p (parent, 0755, &err) < 0
            || kiln_write_file (path, content, strlen (content), 0644, &err) < 0) {
                fprintf (stderr, "  put %s: %s\n", path, err->msg);
                abort ();
        }
}

static char *
slurp (const char *dir, const char *name)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, name);
        kiln_error *err = NULL;
        char *data = NULL;
        if (kiln_read_file (&data, NULL, path, 1 << 20, &err) < 0) {
                kiln_error_free (err);
                return NULL;
        }
        return data;
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

/* An app dir, a layers dir and options with the given buildpacks. */
typedef struct setup {
        char *app;
        char *layers;
        const char *bps[4];
        kiln_kvs env;
        captured out;
        kiln_lifecycle_opts o;
} setup;

static void
setup_init (setup *s, int with_hello, ...)
{
        va_list ap;
        const char *bp;
        size_t n = 0;

        memset (s, 0, sizeof (*s));
        s->app = fresh_dir ("app");
        s->layers = kiln_strdup_printf ("%s/layers%d", tmp, ++n_dirs);
        if (with_hello)
                put (s->app, "hello.txt", "hi\n");
        va_start (ap, with_hello);
        while ((bp = va_arg (ap, const char *)) && n < 3)
                s->bps[n++] = bp;
        va_end (ap);
        s->o.app_dir = s->app;
        s->o.layers_dir = s->layers;
        s->o.buildpack_dirs = n ? s->bps : NULL;
        s->o.platform_env = &s->env;
        s->o.output = capture;
        s->o.output_data = &s->out;
}

static void
setup_clear (setup *s)
{
        free (s->app);
        free (s->layers);
        kiln_kvs_clear (&s->env);
        kiln_buf_free (&s->out.text);
}

static const kiln_bp_layer *
find_layer (const kiln_bp_layer *l, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp (l[i].name, name) == 0)
                        return &l[i];
        return NULL;
}

static const kiln_process *
find_process (const kiln_lifecycle_result *r, const char *type)
{
        for (size_t i = 0; i < r->n_processes; i++)
                if (strcmp (r->processes[i].type, type) == 0)
                        return &r->processes[i];
        return NULL;
}

static void
test_escape (void)
{
        cleanup_free char *a = kiln_buildpack_id_escape ("tests/hello.sh");
        cleanup_free char *b = kiln_buildpack_id_escape ("dev.kiln.go");
        CHECK_STR (a, "tests_hello.sh");
        CHECK_STR (b, "dev.kiln.go");
}

static void
test_env_files (void)
{
        kiln_error *err = NULL;
        cleanup_free char *layer = fresh_dir ("layer");
        kiln_env_mod *launch = NULL, *build = NULL;
        size_t n_launch = 0, n_build = 0;

        put (layer, "bin/x", "");
        put (layer, "lib/libx.so", "");
        put (layer, "include/x.h", "");
        put (layer, "env/PLAIN", "plain");
        put (layer, "env/OVER.override", "over");
        put (layer, "env/SET.default", "ignored");
        put (layer, "env/UNSET.default", "dflt");
        put (layer, "env/EMPTY.default", "filled");
        put (layer, "env/LIST.append", "b");
        put (layer, "env/LIST.delim", ",");
        put (layer, "env/FRONT.prepend", "a");
        put (layer, "env/NODELIM.append", "-tail");
        put (layer, "env/VERBATIM.override", " spaced \n");
        put (layer, "env.launch/ONLY_LAUNCH", "yes");
        put (layer, "env.launch/OVER.override", "launch-wins");
        put (layer, "env.build/ONLY_BUILD", "yes");
        put (layer, "env/BAD.suffix", "ignored");

        CHECK_OK (kiln_layer_env_read (&launch, &n_launch, layer, "/layers/bp/l", true, &err));
        CHECK_OK (kiln_layer_env_read (&build, &n_build, layer, "/layers/bp/l", false, &err));

        cleanup_strv char **env = kiln_strv_new ();
        env = kiln_strv_append (env, "PATH=/usr/bin:/bin");
        env = kiln_strv_append (env, "SET=kept");
        env = kiln_strv_append (env, "EMPTY=");
        env = kiln_strv_append (env, "LIST=a");
        env = kiln_strv_append (env, "FRONT=b");
        env = kiln_strv_append (env, "NODELIM=head");
        kiln_launch_env_apply (&env, launch, n_launch);
        CHECK_STR (env_get (env, "PATH"), "/layers/bp/l/bin:/usr/bin:/bin");
        CHECK_STR (env_get (env, "LD_LIBRARY_PATH"), "/layers/bp/l/lib");
        CHECK (env_get (env, "LIBRARY_PATH") == NULL); /* build only */
        CHECK (env_get (env, "CPATH") == NULL);
        CHECK_STR (env_get (env, "PLAIN"), "plain");
        CHECK_STR (env_get (env, "OVER"), "launch-wins");
        CHECK_STR (env_get (env, "SET"), "kept");
        CHECK_STR (env_get (env, "UNSET"), "dflt");
        CHECK_STR (env_get (env, "EMPTY"), "filled");
        CHECK_STR (env_get (env, "LIST"), "a,b");
        CHECK_STR (env_get (env, "FRONT"), "ab");
        CHECK_STR (env_get (env, "NODELIM"), "head-tail");
        CHECK_STR (env_get (env, "VERBATIM"), " spaced \n");
        CHECK_STR (env_get (env, "ONLY_LAUNCH"), "yes");
        CHECK (env_get (env, "ONLY_BUILD") == NULL);
        CHECK (env_get (env, "BAD") == NULL);

        cleanup_strv char **benv = NULL; /* from nothing */
        kiln_launch_env_apply (&benv, build, n_build);
        CHECK_STR (env_get (benv, "PATH"), "/layers/bp/l/bin");
        CHECK_STR (env_get (benv, "LIBRARY_PATH"), "/layers/bp/l/lib");
        CHECK_STR (env_get (benv, "CPATH"), "/layers/bp/l/include");
        CHECK_STR (env_get (benv, "OVER"), "over");
        CHECK_STR (env_get (benv, "ONLY_BUILD"), "yes");
        CHECK (env_get (benv, "ONLY_LAUNCH") == NULL);

        /* Order across layers: a later prepend goes first, a later append
         * last, the first default wins, the last override wins. */
        kiln_env_mod seq[] = {
                { "P", KILN_ENV_PREPEND, "/one", ":" }, { "P", KILN_ENV_PREPEND, "/two", ":" },
                { "A", KILN_ENV_APPEND, "x", " " },     { "A", KILN_ENV_APPEND, "y", " " },
                { "D", KILN_ENV_DEFAULT, "first", "" }, { "D", KILN_ENV_DEFAULT, "second", "" },
                { "O", KILN_ENV_OVERRIDE, "1", "" },    { "O", KILN_ENV_OVERRIDE, "2", "" },
        };
        cleanup_strv char **e2 = kiln_strv_append (NULL, "P=/base");
        kiln_launch_env_apply (&e2, seq, KILN_N_ELEMENTS (seq));
        CHECK_STR (env_get (e2, "P"), "/two:/one:/base");
        CHECK_STR (env_get (e2, "A"), "x y");
        CHECK_STR (env_get (e2, "D"), "first");
        CHECK_STR (env_get (e2, "O"), "2");

        kiln_env_mods_free (launch, n_launch);
        kiln_env_mods_free (build, n_build);
}

static void
check_hello_result (const kiln_lifecycle_result *r, bool with_second)
{
        CHECK (r->n_buildpacks == (with_second ? 2u : 1u));
        CHECK_STR (r->n_buildpacks ? r->buildpacks[0].id : NULL, "tests/hello.sh");
        CHECK_STR (r->n_buildpacks ? r->buildpacks[0].version : NULL, "1.0.0");
        CHECK_STR (r->n_buildpacks ? r->buildpacks[0].api : NULL, "0.10");
        CHECK_STR (r->n_buildpacks ? r->buildpacks[0].homepage : NULL, "https://example.com/hello");

        const kiln_bp_layer *g = find_layer (r->launch_layers, r->n_launch_layers, "greeter");
        CHECK (g != NULL);
        if (g) {
                CHECK_STR (g->image_path, "/layers/tests_hello.sh/greeter");
                CHECK_STR (g->buildpack_id, "tests/hello.sh");
                CHECK (g->launch && !g->build && !g->cache);
                CHECK_STR (kiln_toml_get_string (g->metadata, "version"), "1.0");
                cleanup_free char *script = slurp (g->host_path, "bin/hello");
                CHECK (script && strstr (script, "GREETING") != NULL);
        }
        CHECK (find_layer (r->launch_layers, r->n_launch_layers, "tools") == NULL);
        CHECK (find_layer (r->launch_layers, r->n_launch_layers, "scratch") == NULL);
        CHECK (r->n_launch_layers == (with_second ? 2u : 1u));

        const kiln_process *web = find_process (r, "web");
        CHECK (web != NULL);
        if (web) {
                CHECK_STR (web->command[0], "/layers/tests_hello.sh/greeter/bin/hello");
                CHECK (kiln_strv_len (web->args) == 1);
                CHECK_STR (web->args[0], "world");
                CHECK (web->direct);
                CHECK_STR (web->working_dir, "/workspace");
                CHECK_STR (web->buildpack_id, "tests/hello.sh");
        }

        cleanup_strv char **env = kiln_strv_append (NULL, "PATH=/usr/bin:/bin");
        kiln_launch_env_apply (&env, r->launch_env, r->n_launch_env);
        CHECK_STR (env_get (env, "PATH"), "/layers/tests_hello.sh/greeter/bin:/usr/bin:/bin");
        CHECK_STR (env_get (env, "HELLO_MODE"), "quiet");
        if (!with_second) {
                CHECK_STR (env_get (env, "GREETING"), "hello");
                CHECK (r->default_process == web);
                CHECK_STR (kiln_kvs_get (&r->labels, "org.example.greeting"), "hello");
                return;
        }
        CHECK_STR (env_get (env, "GREETING"), "second");
        CHECK_STR (env_get (env, "EXTRA_PATH"), "/extra/one");
        CHECK_STR (env_get (env, "LD_LIBRARY_PATH"), "/layers/tests.second/extra/lib");
        const kiln_process *worker = find_process (r, "worker");
        CHECK (worker && !worker->direct && worker->is_default);
        CHECK (worker && strcmp (worker->command[0], "echo working") == 0);
        CHECK (r->default_process == worker);
        CHECK_STR (kiln_kvs_get (&r->labels, "org.example.greeting"), "from second");
        /* processes are sorted by type */
        CHECK (r->n_processes == 2 && strcmp (r->processes[0].type, "web") == 0);
}

/* Records the phases as "detect,build ID,...". */
static void
record_phase (void *data, const char *phase, const char *buildpack_id)
{
        kiln_buf_printf (data, NULL, "%s%s%s%s", ((kiln_buf *) data)->len ? "," : "", phase,
                         buildpack_id ? " " : "", buildpack_id ? buildpack_id : "");
}

static void
test_hello_two_buildpacks (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        cleanup_buf kiln_buf phases = KILN_BUF_INIT;
        setup s;

        setup_init (&s, true, FIXTURES "/hello-sh", FIXTURES "/second-sh", NULL);
        kiln_kvs_set (&s.env, "GREETING_NAME", "kiln");
        s.o.phase = record_phase;
        s.o.phase_data = &phases;
        CHECK_OK (kiln_lifecycle_run (&r, &s.o, &err));
        check_hello_result (&r, true);
        CHECK_STR (phases.data, "detect,build tests/hello.sh,build tests.second");
        CHECK_STR (r.n_buildpacks ? r.buildpacks[0].default_run_image : NULL, "example.com/run:1");
        CHECK (r.n_buildpacks < 2 || r.buildpacks[1].default_run_image == NULL);
        CHECK (s.out.text.data
               && strstr (s.out.text.data, "[detect tests/hello.sh] 1 hello.txt found") != NULL);
        CHECK (s.out.text.data
               && strstr (s.out.text.data, "[build tests/hello.sh] 1 built hello") != NULL);
        CHECK (s.out.text.data
               && strstr (s.out.text.data, "[build tests/hello.sh] 2 a warning on stderr") != NULL);
        cleanup_free char *real_app = realpath (s.app, NULL);
        CHECK_STR (r.app_dir, real_app);
        if (kiln_sandbox_available ()) {
                cleanup_free char *wrote = kiln_strdup_printf ("%s/detect-wrote", s.app);
                CHECK (access (wrote, F_OK) != 0); /* the app is read-only for detect */
        }
        kiln_lifecycle_result_clear (&r);
        CHECK (r.n_processes == 0 && r.processes == NULL);
        if (err)
                kiln_error_free (err);
        setup_clear (&s);
}

static void
test_plain_mode_maps_paths (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        setup_init (&s, true, FIXTURES "/hello-sh", NULL);
        kiln_kvs_set (&s.env, "GREETING_NAME", "kiln");
        s.o.sandbox = KILN_SANDBOX_NONE;
        CHECK_OK (kiln_lifecycle_run (&r, &s.o, &err));
        check_hello_result (&r, false);
        kiln_lifecycle_result_clear (&r);
        if (err)
                kiln_error_free (err);
        setup_clear (&s);
}

static void
test_order_groups (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        setup_init (&s, true, NULL);
        kiln_kvs_set (&s.env, "GREETING_NAME", "kiln");
        s.o.buildpacks_dir = FIXTURES;
        CHECK_OK (kiln_lifecycle_run (&r, &s.o, &err));
        /* Group 1 (tests.nope) fails; in group 2 the optional tests.nope is dropped. */
        CHECK (r.n_buildpacks == 2);
        CHECK_STR (r.n_buildpacks > 1 ? r.buildpacks[1].id : NULL, "tests.second");
        CHECK (s.out.text.data
               && strstr (s.out.text.data, "[detect tests.nope] 1 not for me") != NULL);
        kiln_lifecycle_result_clear (&r);
        setup_clear (&s);

        /* No hello.txt: nothing in the order passes. */
        setup_init (&s, false, NULL);
        s.o.buildpacks_dir = FIXTURES;
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        cleanup_free char *want
            = kiln_strdup_printf ("no buildpack detected the source in `%s` (tried: tests.nope, "
                                  "tests/hello.sh, tests.second)",
                                  s.app);
        CHECK_STR (err ? err->msg : NULL, want);
        kiln_error_free (err);
        setup_clear (&s);
}

static void
test_language (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        /* `--language sh` runs tests/hello.sh even though its detect says
         * no; its build then finds an empty plan and fails, naming why. */
        setup_init (&s, false, NULL);
        kiln_kvs_set (&s.env, "GREETING_NAME", "kiln");
        s.o.buildpacks_dir = FIXTURES;
        s.o.language = "sh";
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_FAILED);
        CHECK_STR (
            err ? err->msg : NULL,
            "buildpack tests/hello.sh: bin/build exited with 1: hello missing from the plan");
        kiln_error_free (err);
        err = NULL;

        s.o.language = "cobol";
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        CHECK_STR (err ? err->msg : NULL, "no buildpack for language `cobol`");
        kiln_error_free (err);
        setup_clear (&s);
}

static void
test_detect_failures (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        setup_init (&s, true, FIXTURES "/fails-detect", NULL);
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        cleanup_free char *want = kiln_strdup_printf (
            "no buildpack detected the source in `%s` (tried: tests.nope)", s.app);
        CHECK_STR (err ? err->msg : NULL, want);
        kiln_error_free (err);
        err = NULL;
        setup_clear (&s);

        setup_init (&s, true, FIXTURES "/errors-detect", NULL);
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_FAILED);
        CHECK_STR (err ? err->msg : NULL,
                   "buildpack tests.broken: bin/detect exited with 3: detect exploded");
        kiln_error_free (err);
        setup_clear (&s);
}

static void
test_build_failure (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        setup_init (&s, true, FIXTURES "/fails-build", NULL);
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_FAILED);
        CHECK_STR (
            err ? err->msg : NULL,
            "buildpack tests.failbuild: bin/build exited with 1: compile error: missing semicolon");
        CHECK (r.n_buildpacks == 0 && r.processes == NULL);
        kiln_error_free (err);
        setup_clear (&s);
}

static bool
process_running (const char *pattern)
{
        cleanup_free char *cmd
            = kiln_strdup_printf ("pgrep -f '[%c]%s' >/dev/null", pattern[0], pattern + 1);
        return system (cmd) == 0;
}

static void
check_timeout (kiln_sandbox_mode mode)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        setup_init (&s, true, FIXTURES "/slow-build", NULL);
        s.o.sandbox = mode;
        s.o.build_timeout_ms = 500;
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_TIMEOUT);
        CHECK_STR (err ? err->msg : NULL, "buildpack tests.slow: build timed out after 500ms");
        kiln_error_free (err);
        usleep (100000);
        CHECK (!process_running ("sleep 31.401"));
        setup_clear (&s);
}

static void
test_build_timeout (void)
{
        check_timeout (KILN_SANDBOX_NONE);
        if (kiln_sandbox_available ())
                check_timeout (KILN_SANDBOX_REQUIRE);
}

static void
test_sandbox_hides_secrets (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        if (!kiln_sandbox_available ()) {
                fprintf (stderr, "  skipped: bubblewrap not usable\n");
                return;
        }
        cleanup_free char *home = fresh_dir ("home");
        cleanup_free char *outside = fresh_dir ("outside");
        put (home, ".docker/config.json", "{\"auths\":{\"r\":{\"auth\":\"c2VjcmV0\"}}}");
        cleanup_free char *secret = kiln_strdup_printf ("%s/.docker/config.json", home);
        cleanup_free char *old_home = kiln_strdup (getenv ("HOME"));
        setenv ("HOME", home, 1);

        setup_init (&s, true, FIXTURES "/snoop", NULL);
        s.o.sandbox = KILN_SANDBOX_REQUIRE;
        kiln_kvs_set (&s.env, "SECRET_PATH", secret);
        kiln_kvs_set (&s.env, "OUTSIDE_DIR", outside);
        CHECK_OK (kiln_lifecycle_run (&r, &s.o, &err));
        const kiln_bp_layer *rep = find_layer (r.launch_layers, r.n_launch_layers, "report");
        CHECK (rep != NULL);
        if (rep) {
                cleanup_free char *read = slurp (rep->host_path, "read");
                cleanup_free char *write = slurp (rep->host_path, "write");
                cleanup_free char *copied = slurp (rep->host_path, "secret");
                CHECK_STR (read, "denied\n");
                CHECK_STR (write, "denied\n");
                CHECK (copied == NULL || strstr (copied, "c2VjcmV0") == NULL);
        }
        cleanup_free char *pwned = kiln_strdup_printf ("%s/pwned", outside);
        CHECK (access (pwned, F_OK) != 0);
        CHECK (access ("/usr/kiln-pwned", F_OK) != 0);
        kiln_lifecycle_result_clear (&r);
        if (old_home)
                setenv ("HOME", old_home, 1);
        setup_clear (&s);
}

static void
test_cache_across_builds (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        cleanup_free char *cache = kiln_strdup_printf ("%s/cache", tmp);

        for (int round = 1; round <= 3; round++) {
                setup s;
                setup_init (&s, true, FIXTURES "/cacher", NULL);
                s.o.cache_dir = cache;
                CHECK_OK (kiln_lifecycle_run (&r, &s.o, &err));
                const kiln_bp_layer *out = find_layer (r.launch_layers, r.n_launch_layers, "out");
                cleanup_free char *count = out ? slurp (out->host_path, "count") : NULL;
                cleanup_free char *want = kiln_strdup_printf ("%d\n", round);
                CHECK_STR (count, want);
                CHECK (r.n_cache_layers == 1);
                if (r.n_cache_layers == 1) {
                        CHECK_STR (r.cache_layers[0].name, "deps");
                        CHECK (r.cache_layers[0].cache && !r.cache_layers[0].launch);
                        CHECK (kiln_toml_get_int (r.cache_layers[0].metadata, "n", 0) == round);
                }
                kiln_lifecycle_result_clear (&r);
                setup_clear (&s);
        }
        cleanup_free char *marker = slurp (cache, "tests.cacher/deps/marker");
        CHECK_STR (marker, "3\n");
}

static void
test_plan_alternatives (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;

        /* Nobody provides go, but the buildpack's [[or]] alternative
         * provides it itself: that trial passes, with its metadata. */
        setup_init (&s, true, FIXTURES "/needs-go", NULL);
        CHECK_OK (kiln_lifecycle_run (&r, &s.o, &err));
        const kiln_bp_layer *p = find_layer (r.launch_layers, r.n_launch_layers, "plan");
        cleanup_free char *plan = p ? slurp (p->host_path, "plan.toml") : NULL;
        CHECK_STR (plan, "[[entries]]\nname = \"go\"\n\n[entries.metadata]\nversion = \"1.22\"\n");
        kiln_lifecycle_result_clear (&r);

        kiln_kvs_set (&s.env, "NO_ALTERNATIVE", "1");
        free (s.layers);
        s.layers = kiln_strdup_printf ("%s/layers%d", tmp, ++n_dirs);
        s.o.layers_dir = s.layers;
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        setup_clear (&s);
}

static void
test_bad_buildpack (void)
{
        kiln_error *err = NULL;
        kiln_lifecycle_result r;
        setup s;
        cleanup_free char *bp = fresh_dir ("badbp");

        put (bp, "buildpack.toml", "api = 10\n[buildpack]\nid = \"x\"\nversion = \"1\"\n");
        setup_init (&s, true, bp, NULL);
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        cleanup_free char *want = kiln_strdup_printf (
            "`%s/buildpack.toml`: `api` must be a string, not an integer", bp);
        CHECK_STR (err ? err->msg : NULL, want);
        kiln_error_free (err);
        err = NULL;

        put (bp, "buildpack.toml", "api = \"0.10\"\n[buildpack]\nid = \"x\"\nversion = \"1\"\n");
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        CHECK (err && strstr (err->msg, "bin/detect` is missing or not executable") != NULL);
        kiln_error_free (err);
        err = NULL;

        put (bp, "buildpack.toml", "api = \"0.10\"\n[buildpack]\nid = \"app\"\nversion = \"1\"\n");
        CHECK (kiln_lifecycle_run (&r, &s.o, &err) == -1);
        CHECK (err && strstr (err->msg, "invalid buildpack id `app`") != NULL);
        kiln_error_free (err);
        setup_clear (&s);
}

int
main (void)
{
        kiln_error *err = NULL;

        if (kiln_mkdtemp (&tmp, "lifecycle-test", &err) < 0)
                return 1;
        RUN (test_escape);
        RUN (test_env_files);
        RUN (test_hello_two_buildpacks);
        RUN (test_plain_mode_maps_paths);
        RUN (test_order_groups);
        RUN (test_language);
        RUN (test_detect_failures);
        RUN (test_build_failure);
        RUN (test_build_timeout);
        RUN (test_sandbox_hides_secrets);
        RUN (test_cache_across_builds);
        RUN (test_plan_alternatives);
        RUN (test_bad_buildpack);
        kiln_rm_rf (tmp, &err);
        kiln_error_free (err);
        free (tmp);
        UNIT_DONE ("lifecycle");
}
