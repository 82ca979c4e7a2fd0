/* Unit tests: the export step's config, labels and annotations, the tree
 * digest and the content-keyed layer cache. */
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/export.h"
#include "kiln/json.h"
#include "kiln/kv.h"
#include "unit.h"

static char *tmp;

static void
put (const char *dir, const char *name, const char *content, int mode)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", dir, name);
        cleanup_free char *parent = kiln_strdup (path);
        *strrchr (parent, '/') = '\0';
        kiln_mkdir_p (parent, 0755, NULL);
        kiln_write_file (path, content, strlen (content), mode, NULL);
        chmod (path, (mode_t) mode);
}

static char *
fresh_dir (const char *name)
{
        static int n;
        char *d = kiln_strdup_printf ("%s/%s%d", tmp, name, ++n);
        kiln_mkdir_p (d, 0755, NULL);
        return d;
}

/* A result with one buildpack, one launch layer's env and a web process. */
typedef struct fake {
        kiln_lifecycle_result r;
        kiln_buildpack_ref bp;
        kiln_process proc;
        kiln_env_mod env[3];
} fake;

static void
fake_init (fake *f, bool direct)
{
        memset (f, 0, sizeof (*f));
        f->bp = (kiln_buildpack_ref){ "example.bp", "1.0.0", "0.10", "https://example.com", NULL };
        f->proc.type = "web";
        f->proc.command = kiln_strv_append (NULL, "/layers/example.bp/run/bin/serve");
        f->proc.args = kiln_strv_append (NULL, "--fast");
        f->proc.direct = direct;
        f->proc.is_default = true;
        f->proc.working_dir = "/workspace";
        f->proc.buildpack_id = "example.bp";
        f->env[0] = (kiln_env_mod){ "PATH", KILN_ENV_PREPEND, "/layers/example.bp/run/bin", ":" };
        f->env[1] = (kiln_env_mod){ "GREETING", KILN_ENV_DEFAULT, "hi", "" };
        f->env[2] = (kiln_env_mod){ "MODE", KILN_ENV_OVERRIDE, "prod", "" };
        f->r.buildpacks = &f->bp;
        f->r.n_buildpacks = 1;
        f->r.processes = &f->proc;
        f->r.n_processes = 1;
        f->r.default_process = &f->proc;
        f->r.launch_env = f->env;
        f->r.n_launch_env = 3;
        kiln_kvs_set (&f->r.labels, "com.example.from-launch", "yes");
}

static void
fake_clear (fake *f)
{
        kiln_strv_free (f->proc.command);
        kiln_strv_free (f->proc.args);
        kiln_kvs_clear (&f->r.labels);
}

static void
test_config (void)
{
        kiln_error *err = NULL;
        cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");
        fake f;

        fake_init (&f, true);
        c->env = kiln_strv_append (NULL, "PATH=/usr/bin:/bin");
        c->env = kiln_strv_append (c->env, "MODE=dev");
        c->entrypoint = kiln_strv_append (NULL, "/base-entry");
        c->cmd = kiln_strv_append (NULL, "base-cmd");
        c->user = kiln_strdup ("root");
        kiln_export_opts o = {
                .result = &f.r,
                .source_url = "https://example.com/fn.git",
                .source_commit = "0123456789abcdef0123456789abcdef01234567",
                .source_revision = "v1",
                .context_dir = "fn",
        };
        CHECK_OK (kiln_export_config (c, &o, &err));
        CHECK_STR (kiln_config_get_env (c, "PATH"), "/layers/example.bp/run/bin:/usr/bin:/bin");
        CHECK_STR (kiln_config_get_env (c, "GREETING"), "hi");
        CHECK_STR (kiln_config_get_env (c, "MODE"), "prod");
        CHECK_STR (kiln_config_get_env (c, "PORT"), "8080");
        CHECK (kiln_strv_len (c->entrypoint) == 1);
        CHECK_STR (c->entrypoint[0], "/layers/example.bp/run/bin/serve");
        CHECK (kiln_strv_len (c->cmd) == 1);
        CHECK_STR (c->cmd ? c->cmd[0] : NULL, "--fast");
        CHECK_STR (c->working_dir, "/workspace");
        CHECK_STR (c->user, KILN_DEFAULT_USER); /* root is not kept */
        CHECK (kiln_strv_contains (c->exposed_ports, "8080/tcp"));
        CHECK_STR (kiln_kvs_get (&c->labels, "com.example.from-launch"), "yes");
        CHECK_STR (kiln_kvs_get (&c->labels, "org.opencontainers.image.revision"),
                   "0123456789abcdef0123456789abcdef01234567");
        const char *meta = kiln_kvs_get (&c->labels, KILN_BUILD_METADATA_LABEL);
        cleanup_kiln_json kiln_json *j = NULL;
        CHECK (meta && kiln_json_parse (&j, meta, strlen (meta), 1 << 20, &err) == 0);
        CHECK_STR (
            kiln_json_get_str (kiln_json_array_at (kiln_json_get (j, "buildpacks"), 0), "id"),
            "example.bp");
        CHECK_STR (
            kiln_json_get_str (kiln_json_array_at (kiln_json_get (j, "processes"), 0), "type"),
            "web");
        CHECK_STR (kiln_json_get_str (j, "source.contextDir"), "fn");
        CHECK_STR (kiln_json_get_str (j, "source.type"), "git");

        /* No args: the base's Cmd must not survive. */
        kiln_strv_free (f.proc.args);
        f.proc.args = kiln_strv_new ();
        CHECK_OK (kiln_export_config (c, &o, &err));
        CHECK (c->cmd == NULL);
        fake_clear (&f);
        kiln_error_free (err);
}

static void
test_user_and_port (void)
{
        kiln_error *err = NULL;
        fake f;

        fake_init (&f, true);
        kiln_export_opts o = { .result = &f.r };
        {
                cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");
                c->user = kiln_strdup ("app:app");
                c->env = kiln_strv_append (NULL, "PORT=9090");
                CHECK_OK (kiln_export_config (c, &o, &err));
                CHECK_STR (c->user, "app:app");
                CHECK_STR (kiln_config_get_env (c, "PORT"), "9090");
                CHECK (kiln_strv_contains (c->exposed_ports, "9090/tcp"));
        }
        {
                cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");
                c->user = kiln_strdup ("0:0");
                o.user = "0";
                CHECK_OK (kiln_export_config (c, &o, &err));
                CHECK_STR (c->user, "0"); /* asked for */
                CHECK (kiln_kvs_get (&c->labels, "org.opencontainers.image.revision") == NULL);
        }
        fake_clear (&f);
        kiln_error_free (err);
}

static void
test_shell_process (void)
{
        kiln_error *err = NULL;
        cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");
        fake f;

        fake_init (&f, false);
        kiln_export_opts o = { .result = &f.r, .base_has_shell = false };
        CHECK (kiln_export_config (c, &o, &err) == -1);
        CHECK (err && err->code == KILN_E_UNSUPPORTED && strstr (err->msg, "/bin/sh"));
        kiln_error_free (err);
        err = NULL;
        o.base_has_shell = true;
        CHECK_OK (kiln_export_config (c, &o, &err));
        CHECK (kiln_strv_len (c->entrypoint) == 4);
        CHECK_STR (c->entrypoint[0], "/bin/sh");
        CHECK_STR (c->entrypoint[2], "/layers/example.bp/run/bin/serve \"$@\"");
        CHECK_STR (c->cmd ? c->cmd[0] : NULL, "--fast");

        f.r.default_process = NULL;
        CHECK (kiln_export_config (c, &o, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID && strstr (err->msg, "processes: web"));
        fake_clear (&f);
        kiln_error_free (err);
}

static void
test_annotations (void)
{
        cleanup_kvs kiln_kvs a = KILN_KVS_INIT;
        kiln_export_opts o = { .source_url = "./fn" };

        kiln_export_annotations (&a, &o, "1970-01-01T00:00:00Z");
        CHECK_STR (kiln_kvs_get (&a, "org.opencontainers.image.source"), "./fn");
        CHECK_STR (kiln_kvs_get (&a, "org.opencontainers.image.created"), "1970-01-01T00:00:00Z");
        CHECK (kiln_kvs_get (&a, "org.opencontainers.image.revision") == NULL);
}

static void
test_tree_digest (void)
{
        kiln_error *err = NULL;
        cleanup_free char *a = fresh_dir ("tree");
        cleanup_free char *b = fresh_dir ("tree");
        char da[KILN_DIGEST_MAX], db[KILN_DIGEST_MAX];

        put (a, "x/file", "content", 0644);
        put (a, "run", "#!/bin/sh\n", 0755);
        put (b, "x/file", "content", 0644);
        put (b, "run", "#!/bin/sh\n", 0755);
        cleanup_free char *la = kiln_strdup_printf ("%s/link", a);
        cleanup_free char *lb = kiln_strdup_printf ("%s/link", b);
        CHECK (symlink ("x/file", la) == 0 && symlink ("x/file", lb) == 0);
        CHECK_OK (kiln_tree_digest (da, a, &err));
        CHECK_OK (kiln_tree_digest (db, b, &err));
        CHECK_STR (da, db); /* the same tree elsewhere, at another time */

        put (b, "run", "#!/bin/sh\n", 0700);
        CHECK_OK (kiln_tree_digest (db, b, &err));
        CHECK (strcmp (da, db) != 0); /* modes count */
        put (b, "run", "#!/bin/sh\n", 0755);
        put (b, "x/file", "contenT", 0644);
        CHECK_OK (kiln_tree_digest (db, b, &err));
        CHECK (strcmp (da, db) != 0); /* contents count */
        put (b, "x/file", "content", 0644);
        unlink (lb);
        CHECK (symlink ("run", lb) == 0);
        CHECK_OK (kiln_tree_digest (db, b, &err));
        CHECK (strcmp (da, db) != 0); /* link targets count */
        CHECK (kiln_tree_digest (db, "/nonexistent/kiln", &err) == -1);
        kiln_error_free (err);
}

static void
test_layer_cache (void)
{
        kiln_error *err = NULL;
        cleanup_free char *app = fresh_dir ("app");
        cleanup_free char *cache = kiln_strdup_printf ("%s/layer-cache", tmp);
        kiln_compose_opts co = { .base = "scratch", .created = 0 };
        kiln_layer_info first, again, plain;
        bool hit = true;

        put (app, "main.sh", "echo hi\n", 0644);
        {
                cleanup_compose kiln_compose *c = NULL;
                CHECK_OK (kiln_compose_new (&c, &co, &err));
                CHECK_OK (kiln_export_add_tree (c, cache, app, "workspace", NULL, "app", &first,
                                                &hit, &err));
                CHECK (!hit);
                CHECK_OK (kiln_export_add_tree (c, cache, app, "workspace", NULL, "app", &again,
                                                &hit, &err));
                CHECK (hit);
                CHECK_STR (again.digest, first.digest);
                CHECK_STR (again.diff_id, first.diff_id);
                CHECK (again.size == first.size && again.entries == first.entries);
                CHECK_OK (kiln_export_add_tree (c, NULL, app, "workspace", NULL, "app", &plain,
                                                &hit, &err));
                CHECK (!hit);
                CHECK_STR (plain.digest, first.digest); /* the cache changes nothing */
                CHECK (c && kiln_compose_config (c)->n_history == 3);
        }
        /* A blob changed on disk is not used: it is written again. */
        cleanup_free char *blob = NULL;
        {
                cleanup_dir DIR *d = opendir (cache);
                struct dirent *de;
                while (d && (de = readdir (d)))
                        if (kiln_str_has_suffix (de->d_name, ".layer"))
                                blob = kiln_strdup_printf ("%s/%s", cache, de->d_name);
        }
        CHECK (blob != NULL);
        if (blob)
                kiln_write_file (blob, "garbage", 7, 0644, NULL);
        {
                cleanup_compose kiln_compose *c = NULL;
                CHECK_OK (kiln_compose_new (&c, &co, &err));
                CHECK_OK (kiln_export_add_tree (c, cache, app, "workspace", NULL, "app", &again,
                                                &hit, &err));
                CHECK (!hit);
                CHECK_STR (again.digest, first.digest);
        }
        /* Another destination is another layer. */
        {
                cleanup_compose kiln_compose *c = NULL;
                CHECK_OK (kiln_compose_new (&c, &co, &err));
                CHECK_OK (
                    kiln_export_add_tree (c, cache, app, "srv", NULL, "app", &again, &hit, &err));
                CHECK (!hit);
                CHECK (strcmp (again.diff_id, first.diff_id) != 0);
        }
        CHECK_OK (kiln_export_cache_prune (cache, 0, &err));
        CHECK (blob && access (blob, F_OK) != 0);
        kiln_error_free (err);
}

int
main (void)
{
        kiln_error *err = NULL;

        unsetenv ("SOURCE_DATE_EPOCH");
        if (kiln_mkdtemp (&tmp, "unit-export", &err) < 0) {
                fprintf (stderr, "%s\n", err->msg);
                return 1;
        }
        RUN (test_config);
        RUN (test_user_and_port);
        RUN (test_shell_process);
        RUN (test_annotations);
        RUN (test_tree_digest);
        RUN (test_layer_cache);
        kiln_rm_rf (tmp, NULL);
        free (tmp);
        UNIT_DONE ("export");
}
