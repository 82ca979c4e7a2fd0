/* kiln rebase: swap the run-image layers of a built image for those of a
 * newer run image, without rebuilding.  The image says which layers are
 * the run image's in the labels compose writes with record_base; the
 * rest (the app) is kept byte for byte, and in a registry it is never
 * downloaded nor uploaded again. */
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/compose.h"
#include "kiln/layout.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/runbase.h"
#include "kiln/stack.h"

enum {
        OPT_RUN_IMAGE = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_OUTPUT,
        OPT_FORCE,
};

typedef struct rebase_opts {
        kiln_cli_registry reg;
        const char *image;
        const char *run_image;
        const char *output;
        bool force;
} rebase_opts;

/* An image read without its layers, from a registry or from disk. */
typedef struct source {
        kiln_remote_image *remote;
        kiln_local_image *local;
        const kiln_manifest *m;
        const kiln_image_config *cfg;
        const char *digest;
} source;

static void
source_clear (source *s)
{
        kiln_remote_image_free (s->remote);
        kiln_local_image_free (s->local);
        memset (s, 0, sizeof (*s));
}

static bool
in_registry (const char *spec)
{
        kiln_location loc = { 0 };
        kiln_error *e = NULL;
        bool r;

        if (strcmp (spec, KILN_STATIC_BASE) == 0 || kiln_str_has_prefix (spec, KILN_STACK_PREFIX))
                return false;
        if (kiln_location_parse (&loc, spec, &e) < 0) {
                kiln_error_free (e);
                return false;
        }
        r = loc.transport == KILN_TRANSPORT_REGISTRY;
        kiln_location_clear (&loc);
        return r;
}

static int
source_open (source *s, kiln_registry *r, const char *spec, const char *digest, kiln_error **err)
{
        kiln_location loc = { 0 };
        int ret;

        memset (s, 0, sizeof (*s));
        if (in_registry (spec)) {
                cleanup_reference kiln_reference *ref = NULL;
                cleanup_reference kiln_reference *pinned = NULL;
                if (kiln_reference_parse (&ref, spec, err) < 0)
                        return -1;
                if (digest)
                        pinned = kiln_reference_with (ref, NULL, digest);
                if (kiln_registry_open_image (&s->remote, r, pinned ? pinned : ref, NULL, err) < 0)
                        return -1;
                s->m = s->remote->manifest;
                s->cfg = s->remote->config;
                s->digest = s->remote->digest;
                return 0;
        }
        if (kiln_location_parse (&loc, spec, err) < 0)
                return -1;
        if (loc.transport == KILN_TRANSPORT_SCRATCH) {
                kiln_location_clear (&loc);
                return kiln_error_makec (err, KILN_E_INVALID, 0, "scratch has nothing to rebase");
        }
        ret = kiln_local_image_open (&s->local, &loc, NULL, err);
        kiln_location_clear (&loc);
        if (ret < 0)
                return -1;
        s->m = s->local->manifest;
        s->cfg = s->local->config;
        s->digest = s->local->manifest_digest;
        if (digest && strcmp (digest, s->digest) != 0) {
                source_clear (s);
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "`%s` is no longer %s", spec,
                                         digest);
        }
        return 0;
}

/* How many of the image's layers are its run image's, from its labels. */
static int
run_image_layers (size_t *n, const source *img, const rebase_opts *o, kiln_error **err)
{
        const kiln_kvs *labels = &img->cfg->labels;
        const char *count = kiln_kvs_get (labels, KILN_LABEL_RUN_IMAGE_LAYERS);
        const char *top = kiln_kvs_get (labels, KILN_LABEL_RUN_IMAGE_TOP_LAYER);
        size_t n_diff = kiln_strv_len (img->cfg->diff_ids);
        int64_t v;

        if (count == NULL || top == NULL
            || kiln_kvs_get (labels, KILN_LABEL_RUN_IMAGE_DIGEST) == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "no " KILN_LABEL_RUN_IMAGE_LAYERS
                                         " and " KILN_LABEL_RUN_IMAGE_TOP_LAYER
                                         " labels: kiln cannot tell "
                                         "the run image's layers from the app's (build it with "
                                         "kiln build, or kiln append --run-image-labels)");
        if (n_diff != img->m->n_layers)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%zu layers but %zu diff_ids",
                                         img->m->n_layers, n_diff);
        if (kiln_parse_int64 (count, 0, (int64_t) n_diff, &v) < 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "label " KILN_LABEL_RUN_IMAGE_LAYERS " is `%s`, the image "
                                         "has %zu layers",
                                         count, n_diff);
        *n = (size_t) v;
        if (v == 0 ? top[0] == '\0' : strcmp (img->cfg->diff_ids[v - 1], top) == 0)
                return 0;
        if (!o->force)
                return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                         "layer %lld is not the run image's top layer %s: the "
                                         "image changed after it was built (--force cuts at "
                                         "layer %lld anyway)",
                                         (long long) v, top[0] ? top : "(none)", (long long) v);
        kiln_warn ("layer %lld is not the run image's top layer %s; cutting there as forced",
                   (long long) v, top[0] ? top : "(none)");
        return 0;
}

static kiln_platform *
platform_of (const kiln_image_config *c)
{
        kiln_platform *p = kiln_calloc (1, sizeof (*p));

        p->os = kiln_strdup (c->os);
        p->architecture = kiln_strdup (c->architecture);
        p->variant = kiln_strdup (c->variant);
        return p;
}

static int
add_app_layers (kiln_compose *c, const source *img, size_t from, kiln_error **err)
{
        for (size_t i = from; i < img->m->n_layers; i++) {
                const kiln_descriptor *d = &img->m->layers[i];
                const char *diff_id = img->cfg->diff_ids[i];
                int r;

                if (img->remote) {
                        r = kiln_compose_add_remote_layer (c, img->remote->ref, d, diff_id, "",
                                                           err);
                } else {
                        cleanup_free char *path
                            = kiln_local_image_blob_path (img->local, d->digest);
                        kiln_layer_info info = { 0 };
                        kiln_strlcpy (info.digest, d->digest, sizeof info.digest);
                        kiln_strlcpy (info.diff_id, diff_id, sizeof info.diff_id);
                        info.size = (uint64_t) d->size;
                        info.media_type = d->media_type;
                        r = path ? kiln_compose_add_layer_file (c, path, &info, "", err)
                                 : kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "no blob %s",
                                                     d->digest);
                }
                if (r < 0)
                        return kiln_error_wrap (err, "app layer %s", d->digest);
        }
        return 0;
}

/* ---- the config ---- */

static void
history_free (kiln_history *h)
{
        free (h->created);
        free (h->author);
        free (h->created_by);
        free (h->comment);
        memset (h, 0, sizeof (*h));
}

static void
history_copy (kiln_history *dst, const kiln_history *src)
{
        dst->created = kiln_strdup (src->created);
        dst->author = kiln_strdup (src->author);
        dst->created_by = kiln_strdup (src->created_by);
        dst->comment = kiln_strdup (src->comment);
        dst->empty_layer = src->empty_layer;
}

/* The app's history entries: those after the entry of the run image's
 * last layer.  NULL (keep what compose wrote) when the history does not
 * match the layers. */
static const kiln_history *
app_history (size_t *n_out, const kiln_image_config *a, size_t run_layers)
{
        size_t layers = 0, cut = 0;

        for (size_t i = 0; i < a->n_history; i++) {
                if (a->history[i].empty_layer)
                        continue;
                if (++layers == run_layers)
                        cut = i + 1;
        }
        if (layers != kiln_strv_len (a->diff_ids))
                return NULL;
        *n_out = a->n_history - cut;
        return a->history + cut;
}

static void
take_history (kiln_image_config *c, const kiln_image_config *a, size_t run_layers, size_t n_app)
{
        size_t n;
        const kiln_history *h = app_history (&n, a, run_layers);

        if (h == NULL || c->n_history < n_app)
                return;
        for (size_t i = c->n_history - n_app; i < c->n_history; i++)
                history_free (&c->history[i]);
        c->n_history -= n_app;
        c->history = kiln_reallocarray (c->history, c->n_history + n + 1, sizeof (kiln_history));
        for (size_t i = 0; i < n; i++)
                history_copy (&c->history[c->n_history++], &h[i]);
}

static bool
same_str (const char *a, const char *b)
{
        return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

/* A value the app's image has only because the old run image had it. */
static bool
env_from_old (const kiln_image_config *old, const char *kv)
{
        const char *eq = strchr (kv, '=');
        cleanup_free char *key = eq ? strndup (kv, (size_t) (eq - kv)) : kiln_strdup (kv);

        return same_str (kiln_config_get_env (old, key), eq ? eq + 1 : "");
}

/* Env: the new run image's, then the app's own variables.  With the old
 * run image's config at hand, the app's own are those the old run image
 * did not have with that value, and they win; without it, the new run
 * image wins for every variable it sets. */
static void
merge_env (kiln_image_config *c, const kiln_image_config *a, const kiln_image_config *old)
{
        for (char **e = a->env; e && *e; e++) {
                const char *eq = strchr (*e, '=');
                cleanup_free char *key = eq ? strndup (*e, (size_t) (eq - *e)) : kiln_strdup (*e);

                if (old ? env_from_old (old, *e) : kiln_config_get_env (c, key) != NULL)
                        continue;
                kiln_config_set_env (c, key, eq ? eq + 1 : "");
        }
}

static bool
run_image_label (const char *key)
{
        return kiln_str_has_prefix (key, "dev.kiln.run-image")
               || kiln_str_has_prefix (key, "dev.kiln.stack.");
}

static void
merge_labels (kiln_image_config *c, const kiln_image_config *a, const kiln_image_config *old)
{
        for (size_t i = 0; i < a->labels.n; i++) {
                const kiln_kv *kv = &a->labels.items[i];
                if (run_image_label (kv->key))
                        continue;
                if (old ? same_str (kiln_kvs_get (&old->labels, kv->key), kv->value)
                        : kiln_kvs_get (&c->labels, kv->key) != NULL)
                        continue;
                kiln_kvs_set (&c->labels, kv->key, kv->value);
        }
}

static void
replace_str (char **dst, const char *src)
{
        free (*dst);
        *dst = kiln_strdup (src);
}

static void
replace_strv (char ***dst, char *const *src)
{
        kiln_strv_free (*dst);
        *dst = kiln_strv_dup (src);
}

/* c starts as the new run image's config (with the run-image labels
 * compose wrote); a is the app's image, old the old run image's config
 * when it could be read. */
static void
merge_config (kiln_image_config *c, const kiln_image_config *a, const kiln_image_config *old)
{
        /* The user is the new run image's only when the app ran as the old
         * run image's (or the old one cannot be read and the app set
         * none). */
        if (old ? !same_str (a->user, old->user) : a->user && a->user[0])
                replace_str (&c->user, a->user);
        merge_env (c, a, old);
        merge_labels (c, a, old);
        replace_strv (&c->entrypoint, a->entrypoint);
        replace_strv (&c->cmd, a->cmd);
        replace_str (&c->working_dir, a->working_dir);
        replace_str (&c->stop_signal, a->stop_signal);
        for (char **p = a->exposed_ports; p && *p; p++)
                kiln_config_add_port (c, *p);
        for (char **v = a->volumes; v && *v; v++)
                if (!kiln_strv_contains (c->volumes, *v))
                        c->volumes = kiln_strv_append (c->volumes, *v);
        replace_str (&c->created, a->created);
        replace_str (&c->author, a->author);
}

static void
merge_annotations (kiln_kvs *dst, const kiln_manifest *m)
{
        for (size_t i = 0; i < m->annotations.n; i++) {
                const kiln_kv *kv = &m->annotations.items[i];
                if (kiln_str_has_prefix (kv->key, "org.opencontainers.image.base."))
                        continue;
                kiln_kvs_set (dst, kv->key, kv->value);
        }
}

/* The old run image's config, to tell the app's settings from the run
 * image's; NULL when it cannot be read (then the rules above apply). */
static int
open_old (source *old, kiln_registry *r, const source *img)
{
        const char *name = kiln_kvs_get (&img->cfg->labels, KILN_LABEL_RUN_IMAGE_NAME);
        const char *digest = kiln_kvs_get (&img->cfg->labels, KILN_LABEL_RUN_IMAGE_DIGEST);
        kiln_error *e = NULL;

        memset (old, 0, sizeof (*old));
        if (name == NULL || digest == NULL || !kiln_digest_valid (digest)
            || strcmp (name, KILN_STATIC_BASE) == 0
            || kiln_str_has_prefix (name, KILN_STACK_PREFIX))
                return 0;
        if (source_open (old, r, name, digest, &e) < 0) {
                kiln_info ("old run image %s@%s: %s; the new run image's settings win", name,
                           digest, kiln_error_msg (e));
                kiln_error_free (e);
                return 0;
        }
        return 1;
}

static int
rebase (rebase_opts *o, kiln_registry *r, char digest[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_compose kiln_compose *c = NULL;
        source img = { 0 }, old = { 0 };
        kiln_platform *platform = NULL;
        size_t n_run = 0, n_app;
        kiln_compose_opts copts = {
                .base = o->run_image,
                .registry = r,
                .created = -1,
                .record_base = true,
        };
        int ret = -1;

        if (source_open (&img, r, o->image, NULL, err) < 0)
                return kiln_error_wrap (err, "image `%s`", o->image);
        if (run_image_layers (&n_run, &img, o, err) < 0) {
                kiln_error_wrap (err, "image `%s`", o->image);
                goto out;
        }
        platform = platform_of (img.cfg);
        copts.platform = platform;
        n_app = img.m->n_layers - n_run;
        if (kiln_compose_new (&c, &copts, err) < 0 || add_app_layers (c, &img, n_run, err) < 0)
                goto out;
        open_old (&old, r, &img);
        merge_config (kiln_compose_config (c), img.cfg, old.cfg);
        take_history (kiln_compose_config (c), img.cfg, n_run, n_app);
        merge_annotations (kiln_compose_annotations (c), img.m);
        kiln_info ("rebase %s: %zu run-image layers (%s) -> %zu (%s), %zu app layers kept",
                   o->image, n_run, kiln_kvs_get (&img.cfg->labels, KILN_LABEL_RUN_IMAGE_DIGEST),
                   kiln_strv_len (kiln_compose_config (c)->diff_ids) - n_app,
                   kiln_compose_base_digest (c), n_app);
        ret = kiln_compose_publish (c, o->output, digest, err);
out:
        kiln_platform_free (platform);
        source_clear (&img);
        source_clear (&old);
        return ret;
}

static int
on_extra (void *data, int opt)
{
        rebase_opts *o = data;

        switch (opt) {
        case OPT_RUN_IMAGE:
                o->run_image = optarg;
                return 1;
        case OPT_OUTPUT:
                o->output = optarg;
                return 1;
        case OPT_FORCE:
                o->force = true;
                return 1;
        default:
                return 0;
        }
}

/* Without --output the image is replaced where it is: its tag, or its
 * layout's tag. */
static int
default_output (rebase_opts *o, const kiln_command *cmd)
{
        cleanup_reference kiln_reference *ref = NULL;
        kiln_error *e = NULL;

        if (o->output)
                return 0;
        if (!in_registry (o->image)) {
                o->output = o->image;
                return 0;
        }
        if (kiln_reference_parse (&ref, o->image, &e) < 0) {
                kiln_error_free (e);
                return 0; /* reported when it is opened */
        }
        if (ref->tag == NULL && ref->digest[0]) {
                kiln_cli_usage_error (cmd, "`%s` names a digest: give --output", o->image);
                return -1;
        }
        o->output = o->image;
        return 0;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "run-image", required_argument, NULL, OPT_RUN_IMAGE },
                { "output", required_argument, NULL, OPT_OUTPUT },
                { "force", no_argument, NULL, OPT_FORCE },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_rebase;
        cleanup_registry kiln_registry *r = NULL;
        rebase_opts o = { 0 };
        kiln_error *err = NULL;
        char digest[KILN_DIGEST_MAX];
        int ret;

        kiln_cli_registry_init (&o.reg, "pushed");
        if (kiln_cli_registry_args (&o.reg, g, cmd, argc, argv, 1, extra, on_extra, &o) < 0) {
                kiln_cli_registry_clear (&o.reg);
                return KILN_EXIT_USAGE;
        }
        o.image = argv[optind];
        if (o.run_image == NULL) {
                kiln_cli_registry_clear (&o.reg);
                return kiln_cli_usage_error (cmd, "--run-image is required");
        }
        if (default_output (&o, cmd) < 0) {
                kiln_cli_registry_clear (&o.reg);
                return KILN_EXIT_USAGE;
        }
        ret = kiln_cli_registry_client (&r, &o.reg, g, &err);
        if (ret == 0)
                ret = rebase (&o, r, digest, &err);
        if (ret == 0)
                ret = kiln_cli_registry_result (&o.reg, g, r, o.output, digest, &err);
        if (ret < 0)
                kiln_error_wrap (&err, "rebase");
        kiln_cli_registry_clear (&o.reg);
        return ret < 0 ? kiln_cli_fail (g, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_rebase = {
        "rebase",
        run,
        "put a built image on a newer run image, without rebuilding",
        "Usage: kiln rebase IMAGE --run-image NEW [--output OUTPUT] [--force]\n"
        "                   [registry options]\n"
        "\n"
        "Replaces the run-image layers of IMAGE with the layers of NEW and keeps\n"
        "the app's layers byte for byte.  Prints the new manifest digest.\n"
        "\n"
        "IMAGE must say which of its layers are its run image's: the labels\n"
        "dev.kiln.run-image.{digest,name,layers,top-layer} that kiln build (and\n"
        "kiln append --run-image-labels) write.  Its layer LAYERS must be the\n"
        "recorded top layer; otherwise the image changed after it was built and\n"
        "kiln refuses, unless --force (which cuts at LAYERS anyway).  Without the\n"
        "labels kiln refuses even with --force: there is nothing to cut on.\n"
        "\n"
        "IMAGE and OUTPUT are registry references or images on disk (oci:DIR:TAG,\n"
        "oci-archive:, docker-archive:); NEW is anything kiln append takes as a\n"
        "base (a registry reference, oci:..., kiln:static, kiln-stack:NAME).  In a\n"
        "registry nothing is downloaded: the app's layers stay where they are and\n"
        "the new run image's are mounted; only the config and the manifest go up.\n"
        "\n"
        "The config is NEW's, with the app's settings on top: Entrypoint, Cmd,\n"
        "WorkingDir, ports, volumes, created and the app's history are IMAGE's.\n"
        "Env is NEW's, then the app's own variables: when the old run image can\n"
        "be read (its recorded name is a registry reference, or an image on disk\n"
        "still holding the recorded digest) those IMAGE has with another value\n"
        "than the old run image win over NEW's; otherwise NEW's value wins for\n"
        "every variable NEW sets.  User is NEW's when IMAGE ran as the old run\n"
        "image's user (when that cannot be read: when IMAGE sets none), else\n"
        "IMAGE's.  Labels likewise; the run-image labels and the base annotations\n"
        "name NEW.\n"
        "\n"
        "Options:\n"
        "      --run-image NEW      the run image to move to (required)\n"
        "      --output OUTPUT      where to write the result (default: IMAGE itself,\n"
        "                           which must then have a tag)\n"
        "      --force              cut at the recorded layer count even when the\n"
        "                           top layer does not match\n"
        "\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
