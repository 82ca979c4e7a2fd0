/* kiln: the image config (OCI, and the Docker fields it reserves). */
#include <stdlib.h>
#include <string.h>

#include "image_json.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"

/* Healthcheck is reserved in OCI and defined by Docker; it is carried
 * through as JSON, but its known members must still have Docker's types. */
static int
healthcheck (char **out, json_t *cfg, kiln_error **err)
{
        static const char *const durations[]
            = { "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries" };
        const char *path = "config.Healthcheck";
        cleanup_strv char **test = NULL;
        json_t *h = NULL;
        int64_t n;
        int r = kiln_json_member (&h, cfg, "config", "Healthcheck", JSON_OBJECT, false, err);

        if (r <= 0)
                return r;
        if (kiln_json_get_strv (&test, h, path, "Test", err) < 0)
                return -1;
        for (size_t i = 0; i < KILN_N_ELEMENTS (durations); i++)
                if (kiln_json_get_int (&n, h, path, durations[i], false, err) < 0)
                        return -1;
        free (*out);
        *out = NULL;
        return kiln_json_dump (out, NULL, h, err);
}

static int
config_section (kiln_image_config *c, json_t *root, kiln_error **err)
{
        const char *p = "config";
        json_t *cfg = NULL;
        int r = kiln_json_member (&cfg, root, "", "config", JSON_OBJECT, false, err);

        if (r <= 0)
                return r;
        c->has_config = true;
        if (kiln_json_get_string (&c->user, cfg, p, "User", false, err) < 0
            || kiln_json_get_set (&c->exposed_ports, cfg, p, "ExposedPorts", err) < 0
            || kiln_json_get_strv (&c->env, cfg, p, "Env", err) < 0
            || kiln_json_get_strv (&c->entrypoint, cfg, p, "Entrypoint", err) < 0
            || kiln_json_get_strv (&c->cmd, cfg, p, "Cmd", err) < 0
            || kiln_json_get_set (&c->volumes, cfg, p, "Volumes", err) < 0
            || kiln_json_get_string (&c->working_dir, cfg, p, "WorkingDir", false, err) < 0
            || kiln_json_get_kvs (&c->labels, cfg, p, "Labels", err) < 0
            || kiln_json_get_string (&c->stop_signal, cfg, p, "StopSignal", false, err) < 0
            || kiln_json_get_bool (&c->args_escaped, cfg, p, "ArgsEscaped", err) < 0
            || kiln_json_get_int (&c->memory, cfg, p, "Memory", false, err) < 0
            || kiln_json_get_int (&c->memory_swap, cfg, p, "MemorySwap", false, err) < 0
            || kiln_json_get_int (&c->cpu_shares, cfg, p, "CpuShares", false, err) < 0
            || healthcheck (&c->healthcheck_json, cfg, err) < 0
            || kiln_json_get_strv (&c->shell, cfg, p, "Shell", err) < 0)
                return -1;
        return 0;
}

static int
check_diff_ids (char *const *v, kiln_error **err)
{
        for (size_t i = 0; v && v[i]; i++)
                if (!kiln_image_digest_ok (v[i]))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "rootfs.diff_ids[%zu]: `%s` is not a valid digest",
                                                 i, v[i]);
        return 0;
}

static int
rootfs_section (kiln_image_config *c, json_t *root, kiln_error **err)
{
        cleanup_free char *type = NULL;
        json_t *rootfs = NULL;

        if (kiln_json_member (&rootfs, root, "", "rootfs", JSON_OBJECT, true, err) < 0
            || kiln_json_get_string (&type, rootfs, "rootfs", "type", true, err) < 0
            || kiln_json_get_strv (&c->diff_ids, rootfs, "rootfs", "diff_ids", err) < 0)
                return -1;
        if (strcmp (type, "layers") != 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "rootfs.type: expected \"layers\", got \"%s\"", type);
        /* Docker leaves diff_ids out of an image without layers. */
        if (c->diff_ids == NULL)
                c->diff_ids = kiln_strv_new ();
        return check_diff_ids (c->diff_ids, err);
}

static int
history_entry (kiln_history *h, json_t *v, const char *p, kiln_error **err)
{
        if (!json_is_object (v))
                return kiln_json_type_error (p, NULL, "an object", err);
        if (kiln_json_get_string (&h->created, v, p, "created", false, err) < 0
            || kiln_json_get_string (&h->author, v, p, "author", false, err) < 0
            || kiln_json_get_string (&h->created_by, v, p, "created_by", false, err) < 0
            || kiln_json_get_string (&h->comment, v, p, "comment", false, err) < 0
            || kiln_json_get_bool (&h->empty_layer, v, p, "empty_layer", err) < 0)
                return -1;
        return 0;
}

static int
history_section (kiln_image_config *c, json_t *root, kiln_error **err)
{
        json_t *a = NULL, *item;
        size_t i;
        int r = kiln_json_member (&a, root, "", "history", JSON_ARRAY, false, err);

        if (r <= 0)
                return r;
        c->history = kiln_calloc (json_array_size (a), sizeof (kiln_history));
        json_array_foreach (a, i, item)
        {
                char p[KILN_JSON_PATH_MAX];
                kiln_json_path_index (p, "", "history", i);
                /* Counted first, so the config frees a half-read entry. */
                c->n_history = i + 1;
                if (history_entry (&c->history[i], item, p, err) < 0)
                        return -1;
        }
        return 0;
}

static int
config_fields (kiln_image_config *c, json_t *root, kiln_error **err)
{
        if (kiln_json_get_string (&c->created, root, "", "created", false, err) < 0
            || kiln_json_get_string (&c->author, root, "", "author", false, err) < 0
            || kiln_json_get_string (&c->architecture, root, "", "architecture", true, err) < 0
            || kiln_json_get_string (&c->os, root, "", "os", true, err) < 0
            || kiln_json_get_string (&c->os_version, root, "", "os.version", false, err) < 0
            || kiln_json_get_strv (&c->os_features, root, "", "os.features", err) < 0
            || kiln_json_get_string (&c->variant, root, "", "variant", false, err) < 0
            || config_section (c, root, err) < 0 || rootfs_section (c, root, err) < 0
            || history_section (c, root, err) < 0)
                return -1;
        return 0;
}

int
kiln_config_parse (kiln_image_config **out, const char *data, size_t len, kiln_error **err)
{
        cleanup_json json_t *root = NULL;
        cleanup_config kiln_image_config *c = NULL;

        if (kiln_json_load (&root, data, len, KILN_CONFIG_MAX, err) < 0)
                return kiln_error_wrap (err, "image config");
        c = kiln_calloc (1, sizeof (*c));
        if (config_fields (c, root, err) < 0)
                return kiln_error_wrap (err, "image config");
        *out = steal_pointer (&c);
        return 0;
}

static void
set_strv (json_t *o, const char *key, char *const *v)
{
        if (v)
                kiln_json_set (o, key, kiln_json_strv_value (v));
}

static void
set_nonzero (json_t *o, const char *key, int64_t v)
{
        if (v)
                kiln_json_set_int (o, key, v);
}

static bool
config_section_present (const kiln_image_config *c)
{
        return c->has_config || c->user || c->exposed_ports || c->env || c->entrypoint || c->cmd
               || c->volumes || c->working_dir || c->labels.n || c->stop_signal || c->args_escaped
               || c->shell || c->healthcheck_json || c->memory || c->memory_swap || c->cpu_shares;
}

static int
config_section_value (json_t **out, const kiln_image_config *c, kiln_error **err)
{
        cleanup_json json_t *o = kiln_json_new_object ();

        kiln_json_set_string (o, "User", c->user);
        if (c->exposed_ports)
                kiln_json_set (o, "ExposedPorts", kiln_json_set_value (c->exposed_ports));
        set_strv (o, "Env", c->env);
        set_strv (o, "Entrypoint", c->entrypoint);
        set_strv (o, "Cmd", c->cmd);
        if (c->volumes)
                kiln_json_set (o, "Volumes", kiln_json_set_value (c->volumes));
        kiln_json_set_string (o, "WorkingDir", c->working_dir);
        if (c->labels.n)
                kiln_json_set (o, "Labels", kiln_json_kvs_value (&c->labels));
        kiln_json_set_string (o, "StopSignal", c->stop_signal);
        if (c->args_escaped)
                kiln_json_set (o, "ArgsEscaped", json_true ());
        set_nonzero (o, "Memory", c->memory);
        set_nonzero (o, "MemorySwap", c->memory_swap);
        set_nonzero (o, "CpuShares", c->cpu_shares);
        set_strv (o, "Shell", c->shell);
        if (c->healthcheck_json) {
                json_t *h = json_loads (c->healthcheck_json, JSON_REJECT_DUPLICATES, NULL);
                if (!json_is_object (h)) {
                        json_decref (h);
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "config.Healthcheck: not a JSON object");
                }
                kiln_json_set (o, "Healthcheck", h);
        }
        *out = steal_pointer (&o);
        return 0;
}

static json_t *
history_value (const kiln_history *h, size_t n)
{
        json_t *a = json_array ();

        if (a == NULL)
                abort ();
        for (size_t i = 0; i < n; i++) {
                json_t *o = kiln_json_new_object ();
                kiln_json_set_string (o, "created", h[i].created);
                kiln_json_set_string (o, "author", h[i].author);
                kiln_json_set_string (o, "created_by", h[i].created_by);
                kiln_json_set_string (o, "comment", h[i].comment);
                if (h[i].empty_layer)
                        kiln_json_set (o, "empty_layer", json_true ());
                if (json_array_append_new (a, o) < 0)
                        abort ();
        }
        return a;
}

static int
config_value (json_t *o, const kiln_image_config *c, kiln_error **err)
{
        json_t *rootfs, *v = NULL;

        if (c->architecture == NULL)
                return kiln_json_missing ("", "architecture", err);
        if (c->os == NULL)
                return kiln_json_missing ("", "os", err);
        if (check_diff_ids (c->diff_ids, err) < 0)
                return -1;
        kiln_json_set_string (o, "created", c->created);
        kiln_json_set_string (o, "author", c->author);
        kiln_json_set_string (o, "architecture", c->architecture);
        kiln_json_set_string (o, "os", c->os);
        kiln_json_set_string (o, "os.version", c->os_version);
        set_strv (o, "os.features", c->os_features);
        kiln_json_set_string (o, "variant", c->variant);
        if (config_section_present (c)) {
                if (config_section_value (&v, c, err) < 0)
                        return -1;
                kiln_json_set (o, "config", v);
        }
        rootfs = kiln_json_new_object ();
        kiln_json_set_string (rootfs, "type", "layers");
        kiln_json_set (rootfs, "diff_ids", kiln_json_strv_value (c->diff_ids));
        kiln_json_set (o, "rootfs", rootfs);
        if (c->n_history)
                kiln_json_set (o, "history", history_value (c->history, c->n_history));
        return 0;
}

int
kiln_config_to_json (char **out, size_t *len, const kiln_image_config *c, kiln_error **err)
{
        cleanup_json json_t *o = kiln_json_new_object ();

        if (config_value (o, c, err) < 0 || kiln_json_dump (out, len, o, err) < 0)
                return kiln_error_wrap (err, "image config");
        return 0;
}

kiln_image_config *
kiln_config_new (const char *os, const char *architecture)
{
        kiln_image_config *c = kiln_calloc (1, sizeof (*c));

        c->os = kiln_strdup (os);
        c->architecture = kiln_strdup (architecture);
        c->diff_ids = kiln_strv_new ();
        return c;
}

static void
history_clear (kiln_history *h)
{
        free (h->created);
        free (h->author);
        free (h->created_by);
        free (h->comment);
}

void
kiln_config_free (kiln_image_config *c)
{
        if (c == NULL)
                return;
        free (c->created);
        free (c->author);
        free (c->architecture);
        free (c->os);
        free (c->os_version);
        kiln_strv_free (c->os_features);
        free (c->variant);
        free (c->user);
        kiln_strv_free (c->exposed_ports);
        kiln_strv_free (c->env);
        kiln_strv_free (c->entrypoint);
        kiln_strv_free (c->cmd);
        kiln_strv_free (c->volumes);
        free (c->working_dir);
        kiln_kvs_clear (&c->labels);
        free (c->stop_signal);
        kiln_strv_free (c->shell);
        free (c->healthcheck_json);
        kiln_strv_free (c->diff_ids);
        for (size_t i = 0; i < c->n_history; i++)
                history_clear (&c->history[i]);
        free (c->history);
        free (c);
}

/* The index of K in Env, or -1. */
static ssize_t
env_find (char *const *env, const char *key)
{
        size_t n = strlen (key);

        for (size_t i = 0; env && env[i]; i++)
                if (strncmp (env[i], key, n) == 0 && env[i][n] == '=')
                        return (ssize_t) i;
        return -1;
}

void
kiln_config_set_env (kiln_image_config *c, const char *key, const char *value)
{
        char *kv = kiln_strdup_printf ("%s=%s", key, value);
        ssize_t i = env_find (c->env, key);

        c->has_config = true;
        if (i < 0) {
                c->env = kiln_strv_append (c->env, kv);
                free (kv);
                return;
        }
        free (c->env[i]);
        c->env[i] = kv;
}

const char *
kiln_config_get_env (const kiln_image_config *c, const char *key)
{
        ssize_t i = env_find (c->env, key);

        return i < 0 ? NULL : c->env[i] + strlen (key) + 1;
}

void
kiln_config_add_layer (kiln_image_config *c, const char *diff_id, const char *created,
                       const char *created_by, const char *comment)
{
        kiln_history *h;

        c->diff_ids = kiln_strv_append (c->diff_ids, diff_id);
        c->history = kiln_reallocarray (c->history, c->n_history + 1, sizeof (kiln_history));
        h = &c->history[c->n_history++];
        memset (h, 0, sizeof (*h));
        h->created = kiln_strdup (created);
        h->created_by = kiln_strdup (created_by);
        h->comment = kiln_strdup (comment);
}

void
kiln_config_add_port (kiln_image_config *c, const char *port)
{
        /* Docker reads a bare "8080" as "8080/tcp"; store the full form. */
        cleanup_free char *full
            = strchr (port, '/') ? kiln_strdup (port) : kiln_strdup_printf ("%s/tcp", port);
        size_t n = kiln_strv_len (c->exposed_ports), at = 0;

        c->has_config = true;
        while (at < n && strcmp (c->exposed_ports[at], full) < 0)
                at++;
        if (at < n && strcmp (c->exposed_ports[at], full) == 0)
                return;
        c->exposed_ports = kiln_reallocarray (c->exposed_ports, n + 2, sizeof (char *));
        memmove (&c->exposed_ports[at + 1], &c->exposed_ports[at], (n - at) * sizeof (char *));
        c->exposed_ports[at] = steal_pointer (&full);
        c->exposed_ports[n + 1] = NULL;
}
