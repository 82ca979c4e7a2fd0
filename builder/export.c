/* kiln: the export step of a build (see include/kiln/export.h). */
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/export.h"
#include "kiln/json.h"
#include "kiln/log.h"

#define OCI_SOURCE "org.opencontainers.image.source"
#define OCI_REVISION "org.opencontainers.image.revision"
#define OCI_CREATED "org.opencontainers.image.created"

static const kiln_buildpack_ref *
find_buildpack (const kiln_lifecycle_result *r, const char *id)
{
        for (size_t i = 0; i < r->n_buildpacks; i++)
                if (strcmp (r->buildpacks[i].id, id) == 0)
                        return &r->buildpacks[i];
        return NULL;
}

/* "user", "user:group", "uid" or "uid:gid" names root. */
static bool
is_root_user (const char *user)
{
        size_t n = strcspn (user, ":");

        return (n == 1 && user[0] == '0') || (n == 4 && strncmp (user, "root", 4) == 0);
}

static void
set_user (kiln_image_config *cfg, const char *user)
{
        const char *u = user;

        if (u == NULL)
                u = cfg->user && *cfg->user && !is_root_user (cfg->user) ? cfg->user
                                                                         : KILN_DEFAULT_USER;
        if (u != cfg->user) {
                char *copy = kiln_strdup (u);
                free (cfg->user);
                cfg->user = copy;
        }
}

static void
set_env_and_port (kiln_image_config *cfg, const kiln_lifecycle_result *r)
{
        const char *port;
        int64_t n;

        kiln_launch_env_apply (&cfg->env, r->launch_env, r->n_launch_env);
        port = kiln_config_get_env (cfg, "PORT");
        if (port == NULL || *port == '\0') {
                kiln_config_set_env (cfg, "PORT", KILN_DEFAULT_PORT);
                port = KILN_DEFAULT_PORT;
        }
        /* A PORT that is not a number is the function's business; the
         * image still says where the framework listens by default. */
        if (kiln_parse_int64 (port, 1, 65535, &n) < 0)
                port = KILN_DEFAULT_PORT;
        kiln_config_add_port (cfg, port);
}

static char *
process_types (const kiln_lifecycle_result *r)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;

        for (size_t i = 0; i < r->n_processes; i++)
                kiln_buf_printf (&b, NULL, "%s%s", i ? ", " : "", r->processes[i].type);
        return b.data ? kiln_buf_steal (&b, NULL) : kiln_strdup ("none");
}

/* Entrypoint is the command and Cmd the default arguments, so `docker run
 * IMAGE ARGS` replaces the arguments as CNB's `args` are meant to be. */
static int
set_process (kiln_image_config *cfg, const kiln_export_opts *o, kiln_error **err)
{
        const kiln_lifecycle_result *r = o->result;
        const kiln_process *p = r->default_process;
        char **entrypoint;

        if (p == NULL) {
                cleanup_free char *types = process_types (r);
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "no default process: the buildpacks declared none "
                                         "with default = true or of type web (processes: %s)",
                                         types);
        }
        if (p->direct) {
                entrypoint = kiln_strv_dup (p->command);
        } else {
                cleanup_free char *script = NULL;
                if (!o->base_has_shell)
                        return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                                 "process `%s` of buildpack %s runs through a "
                                                 "shell, and the run image has no /bin/sh",
                                                 p->type, p->buildpack_id);
                /* The arguments reach the command as "$@" after $0. */
                script = kiln_strdup_printf ("%s%s", p->command[0],
                                             p->args && p->args[0] ? " \"$@\"" : "");
                entrypoint = kiln_strv_append (NULL, "/bin/sh");
                entrypoint = kiln_strv_append (entrypoint, "-c");
                entrypoint = kiln_strv_append (entrypoint, script);
                entrypoint = kiln_strv_append (entrypoint, "sh");
        }
        kiln_strv_free (cfg->entrypoint);
        cfg->entrypoint = entrypoint;
        kiln_strv_free (cfg->cmd);
        cfg->cmd = p->args && p->args[0] ? kiln_strv_dup (p->args) : NULL;
        free (cfg->working_dir);
        cfg->working_dir = kiln_strdup (p->working_dir ? p->working_dir : KILN_IMAGE_APP_DIR);
        return 0;
}

static kiln_json *
json_strv (char *const *v)
{
        kiln_json *a = kiln_json_array ();

        for (char *const *p = v; p && *p; p++)
                kiln_json_append_str (a, *p);
        return a;
}

int
kiln_export_metadata_json (char **out, const kiln_export_opts *o, kiln_error **err)
{
        const kiln_lifecycle_result *r = o->result;
        cleanup_kiln_json kiln_json *root = kiln_json_object ();
        kiln_json *bps = kiln_json_array ();
        kiln_json *procs = kiln_json_array ();
        kiln_json *src = kiln_json_object ();

        for (size_t i = 0; i < r->n_buildpacks; i++) {
                kiln_json *b = kiln_json_object ();
                kiln_json_set_str (b, "id", r->buildpacks[i].id);
                kiln_json_set_str (b, "version", r->buildpacks[i].version);
                kiln_json_set_str (b, "api", r->buildpacks[i].api);
                kiln_json_set_str (b, "homepage", r->buildpacks[i].homepage);
                kiln_json_append_node (bps, b);
        }
        for (size_t i = 0; i < r->n_processes; i++) {
                const kiln_process *p = &r->processes[i];
                kiln_json *j = kiln_json_object ();
                kiln_json_set_str (j, "type", p->type);
                kiln_json_set_node (j, "command", json_strv (p->command));
                kiln_json_set_node (j, "args", json_strv (p->args));
                kiln_json_set_bool (j, "direct", p->direct);
                kiln_json_set_bool (j, "default", p == r->default_process);
                kiln_json_set_str (j, "workingDir", p->working_dir);
                kiln_json_set_str (j, "buildpackID", p->buildpack_id);
                kiln_json_append_node (procs, j);
        }
        kiln_json_set_str (src, "type", o->source_commit ? "git" : "dir");
        kiln_json_set_str (src, "url", o->source_url);
        kiln_json_set_str (src, "revision", o->source_revision);
        kiln_json_set_str (src, "commit", o->source_commit);
        kiln_json_set_str (src, "branch", o->source_branch);
        kiln_json_set_str (src, "contextDir",
                           o->context_dir && *o->context_dir ? o->context_dir : NULL);
        kiln_json_set_node (root, "buildpacks", bps);
        kiln_json_set_node (root, "processes", procs);
        kiln_json_set_node (root, "source", src);
        return kiln_json_format (out, root, err);
}

int
kiln_export_config (kiln_image_config *cfg, const kiln_export_opts *o, kiln_error **err)
{
        const kiln_lifecycle_result *r = o->result;
        cleanup_free char *meta = NULL;

        if (set_process (cfg, o, err) < 0)
                return -1;
        cfg->has_config = true;
        set_env_and_port (cfg, r);
        set_user (cfg, o->user);
        for (size_t i = 0; i < r->labels.n; i++)
                kiln_kvs_set (&cfg->labels, r->labels.items[i].key, r->labels.items[i].value);
        if (kiln_export_metadata_json (&meta, o, err) < 0)
                return kiln_error_wrap (err, "label %s", KILN_BUILD_METADATA_LABEL);
        kiln_kvs_set (&cfg->labels, KILN_BUILD_METADATA_LABEL, meta);
        if (o->source_url)
                kiln_kvs_set (&cfg->labels, OCI_SOURCE, o->source_url);
        if (o->source_commit)
                kiln_kvs_set (&cfg->labels, OCI_REVISION, o->source_commit);
        return 0;
}

void
kiln_export_annotations (kiln_kvs *annotations, const kiln_export_opts *o, const char *created)
{
        if (o->source_url)
                kiln_kvs_set (annotations, OCI_SOURCE, o->source_url);
        if (o->source_commit)
                kiln_kvs_set (annotations, OCI_REVISION, o->source_commit);
        if (created)
                kiln_kvs_set (annotations, OCI_CREATED, created);
}

static int
add_layer (kiln_compose *c, const kiln_export_opts *o, const kiln_layer_opts *lopts,
           const char *dir, const char *image_path, const char *created_by, kiln_error **err)
{
        kiln_layer_info info;
        bool hit = false;

        if (kiln_export_add_tree (c, o->layer_cache_dir, dir, image_path + 1, lopts, created_by,
                                  &info, &hit, err)
            < 0)
                return kiln_error_wrap (err, "layer %s", image_path);
        kiln_debug ("layer %s: %s%s", image_path, info.digest, hit ? " (cached)" : "");
        if (o->on_layer)
                o->on_layer (o->on_layer_data, image_path, &info, hit);
        return 0;
}

int
kiln_export (kiln_compose *c, const kiln_export_opts *o, kiln_error **err)
{
        const kiln_lifecycle_result *r = o->result;
        kiln_layer_opts lopts;

        if (o->layer_opts)
                lopts = *o->layer_opts;
        else
                kiln_layer_opts_init (&lopts);
        if (lopts.mtime < 0 && kiln_source_date_epoch (&lopts.mtime, err) < 0)
                return -1;
        for (size_t i = 0; i < r->n_launch_layers; i++) {
                const kiln_bp_layer *l = &r->launch_layers[i];
                const kiln_buildpack_ref *bp = find_buildpack (r, l->buildpack_id);
                cleanup_free char *by
                    = kiln_strdup_printf ("kiln build: buildpack %s@%s, layer %s", l->buildpack_id,
                                          bp ? bp->version : "", l->name);
                if (add_layer (c, o, &lopts, l->host_path, l->image_path, by, err) < 0)
                        return -1;
        }
        if (add_layer (c, o, &lopts, r->app_dir, KILN_IMAGE_APP_DIR, "kiln build: app", err) < 0)
                return -1;
        if (kiln_export_config (kiln_compose_config (c), o, err) < 0)
                return -1;
        kiln_export_annotations (kiln_compose_annotations (c), o, kiln_compose_created (c));
        return 0;
}
