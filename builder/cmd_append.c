/* kiln append: new layers and config changes over a base image, like
 * `crane append` and `crane mutate` in one step. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/layer.h"
#include "kiln/layout.h"
#include "kiln/log.h"

#define MAX_LAYERS 127

typedef struct append_opts {
        const char *base;
        const char *output;
        const char *digest_file;
        const char *platform;
        const char *layers[MAX_LAYERS];
        size_t n_layers;
        char **entrypoint; /* owned strv */
        char **cmd;
        char **env;
        char **ports;
        char **labels;
        char **annotations;
        const char *workdir;
        const char *user;
        kiln_compression compression;
        bool entrypoint_set, cmd_set;
} append_opts;

enum {
        OPT_BASE = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_LAYER,
        OPT_ENTRYPOINT,
        OPT_CMD,
        OPT_ENV,
        OPT_WORKDIR,
        OPT_USER,
        OPT_PORT,
        OPT_LABEL,
        OPT_ANNOTATION,
        OPT_OUTPUT,
        OPT_DIGEST_FILE,
        OPT_PLATFORM,
        OPT_COMPRESSION,
};

static void
append_opts_clear (append_opts *o)
{
        kiln_strv_free (o->entrypoint);
        kiln_strv_free (o->cmd);
        kiln_strv_free (o->env);
        kiln_strv_free (o->ports);
        kiln_strv_free (o->labels);
        kiln_strv_free (o->annotations);
}

/* A JSON array of strings, or words split at white space. */
static int
parse_argv (char ***out, const char *arg, kiln_error **err)
{
        const char *p = arg;
        char **v;

        while (isspace ((unsigned char) *p))
                p++;
        if (*p == '[')
                return kiln_json_strv_parse (out, arg, err);
        v = kiln_strv_new ();
        while (*p) {
                const char *start = p;
                while (*p && !isspace ((unsigned char) *p))
                        p++;
                cleanup_free char *word = strndup (start, (size_t) (p - start));
                v = kiln_strv_append (v, word);
                while (isspace ((unsigned char) *p))
                        p++;
        }
        *out = v;
        return 0;
}

static int
check_kv (const kiln_command *cmd, const char *flag, const char *arg)
{
        const char *eq = strchr (arg, '=');
        if (eq == NULL || eq == arg) {
                kiln_cli_usage_error (cmd, "%s wants KEY=VALUE, got `%s`", flag, arg);
                return -1;
        }
        return 0;
}

/* "8080", "8080/tcp" or "53/udp". */
static char *
normalise_port (const char *arg)
{
        int64_t n;
        const char *slash = strchr (arg, '/');
        cleanup_free char *num = slash ? strndup (arg, (size_t) (slash - arg)) : kiln_strdup (arg);

        if (kiln_parse_int64 (num, 1, 65535, &n) < 0)
                return NULL;
        if (slash && strcmp (slash, "/tcp") != 0 && strcmp (slash, "/udp") != 0
            && strcmp (slash, "/sctp") != 0)
                return NULL;
        return kiln_strdup_printf ("%lld%s", (long long) n, slash ? slash : "/tcp");
}

static int
parse_args (append_opts *o, kiln_global *g, int argc, char **argv)
{
        static const struct option longopts[] = {
                KILN_GLOBAL_LONGOPTS,
                { "base", required_argument, NULL, OPT_BASE },
                { "layer", required_argument, NULL, OPT_LAYER },
                { "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
                { "cmd", required_argument, NULL, OPT_CMD },
                { "env", required_argument, NULL, OPT_ENV },
                { "workdir", required_argument, NULL, OPT_WORKDIR },
                { "user", required_argument, NULL, OPT_USER },
                { "port", required_argument, NULL, OPT_PORT },
                { "label", required_argument, NULL, OPT_LABEL },
                { "annotation", required_argument, NULL, OPT_ANNOTATION },
                { "output", required_argument, NULL, OPT_OUTPUT },
                { "digest-file", required_argument, NULL, OPT_DIGEST_FILE },
                { "platform", required_argument, NULL, OPT_PLATFORM },
                { "compression", required_argument, NULL, OPT_COMPRESSION },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_append;
        cleanup_error kiln_error *err = NULL;
        int opt;

        optind = 1;
        while ((opt = getopt_long (argc, argv, "qho:", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, cmd, opt, optarg);
                char *port;
                if (r < 0)
                        return -1;
                if (r > 0)
                        continue;
                switch (opt) {
                case OPT_BASE:
                        o->base = optarg;
                        break;
                case OPT_LAYER:
                        if (o->n_layers == MAX_LAYERS) {
                                kiln_cli_usage_error (cmd, "at most %d --layer options",
                                                      MAX_LAYERS);
                                return -1;
                        }
                        o->layers[o->n_layers++] = optarg;
                        break;
                case OPT_ENTRYPOINT:
                case OPT_CMD:
                        if (parse_argv (opt == OPT_CMD ? &o->cmd : &o->entrypoint, optarg, &err)
                            < 0) {
                                kiln_cli_usage_error (cmd, "--%s: %s",
                                                      opt == OPT_CMD ? "cmd" : "entrypoint",
                                                      err->msg);
                                return -1;
                        }
                        *(opt == OPT_CMD ? &o->cmd_set : &o->entrypoint_set) = true;
                        break;
                case OPT_ENV:
                        if (check_kv (cmd, "--env", optarg) < 0)
                                return -1;
                        o->env = kiln_strv_append (o->env, optarg);
                        break;
                case OPT_LABEL:
                case OPT_ANNOTATION:
                        if (check_kv (cmd, opt == OPT_LABEL ? "--label" : "--annotation", optarg)
                            < 0)
                                return -1;
                        if (opt == OPT_LABEL)
                                o->labels = kiln_strv_append (o->labels, optarg);
                        else
                                o->annotations = kiln_strv_append (o->annotations, optarg);
                        break;
                case OPT_WORKDIR:
                        o->workdir = optarg;
                        break;
                case OPT_USER:
                        o->user = optarg;
                        break;
                case OPT_PORT:
                        port = normalise_port (optarg);
                        if (port == NULL) {
                                kiln_cli_usage_error (cmd, "--port wants N or N/tcp|udp, got `%s`",
                                                      optarg);
                                return -1;
                        }
                        o->ports = kiln_strv_append (o->ports, port);
                        free (port);
                        break;
                case 'o':
                case OPT_OUTPUT:
                        o->output = optarg;
                        break;
                case OPT_DIGEST_FILE:
                        o->digest_file = optarg;
                        break;
                case OPT_PLATFORM:
                        o->platform = optarg;
                        break;
                case OPT_COMPRESSION:
                        if (strcmp (optarg, "gzip") == 0)
                                o->compression = KILN_COMPRESS_GZIP;
                        else if (strcmp (optarg, "zstd") == 0)
                                o->compression = KILN_COMPRESS_ZSTD;
                        else if (strcmp (optarg, "none") == 0)
                                o->compression = KILN_COMPRESS_NONE;
                        else {
                                kiln_cli_usage_error (cmd, "--compression is gzip, zstd or none");
                                return -1;
                        }
                        break;
                default:
                        kiln_cli_usage_error (cmd, "unknown option");
                        return -1;
                }
        }
        if (optind < argc) {
                kiln_cli_usage_error (cmd, "unexpected argument `%s`", argv[optind]);
                return -1;
        }
        if (o->base == NULL || o->output == NULL) {
                kiln_cli_usage_error (cmd, "--base and --output are required");
                return -1;
        }
        return 0;
}

/* "DIR[:DEST]": the tree DIR goes to /DEST in the image (default /). */
static void
split_layer_arg (const char *arg, char **dir, char **dest)
{
        const char *colon = strrchr (arg, ':');

        if (colon && colon != arg) {
                *dir = strndup (arg, (size_t) (colon - arg));
                *dest = kiln_strdup (colon + 1);
        } else {
                *dir = kiln_strdup (arg);
                *dest = kiln_strdup ("");
        }
        while (**dest == '/')
                memmove (*dest, *dest + 1, strlen (*dest));
}

/* The OCI type for a base layer, so the output is one OCI manifest: the
 * Docker layer types are the same bytes under another name. */
static const char *
oci_layer_type (const char *mt)
{
        if (strcmp (mt, KILN_MT_DOCKER_LAYER_GZIP) == 0)
                return KILN_MT_OCI_LAYER_GZIP;
        if (strcmp (mt, KILN_MT_DOCKER_LAYER_TAR) == 0)
                return KILN_MT_OCI_LAYER_TAR;
        return mt;
}

typedef struct append_job {
        append_opts *o;
        kiln_local_image *base;
        char *work;     /* the layout being written */
        char *work_tmp; /* owned temporary work layout, or NULL */
        kiln_manifest *manifest;
        kiln_image_config *config;
        char created[32];
} append_job;

static int
add_layers (append_job *j, kiln_error **err)
{
        kiln_layer_opts lopts;
        kiln_manifest *m = j->manifest;

        kiln_layer_opts_init (&lopts);
        lopts.compression = j->o->compression;
        m->layers = kiln_reallocarray (m->layers, m->n_layers + j->o->n_layers + 1,
                                       sizeof (kiln_descriptor));
        for (size_t i = 0; i < j->o->n_layers; i++) {
                cleanup_free char *dir = NULL;
                cleanup_free char *dest = NULL;
                cleanup_free char *tmp = kiln_layout_blob_tmp_path (j->work);
                cleanup_free char *by = NULL;
                kiln_layer_info info;
                kiln_descriptor *d;

                split_layer_arg (j->o->layers[i], &dir, &dest);
                kiln_info ("writing layer from %s", dir);
                if (kiln_layer_write_dir (&info, dir, dest, tmp, &lopts, err) < 0) {
                        unlink (tmp);
                        return kiln_error_wrap (err, "layer `%s`", j->o->layers[i]);
                }
                if (kiln_layout_put_blob_file (j->work, info.digest, tmp, true, err) < 0)
                        return -1;
                d = &m->layers[m->n_layers++];
                memset (d, 0, sizeof (*d));
                d->media_type = kiln_strdup (info.media_type);
                kiln_strlcpy (d->digest, info.digest, sizeof d->digest);
                d->size = (int64_t) info.size;
                /* The host path stays out of the history: the same tree
                 * copied elsewhere must give the same image. */
                by = kiln_strdup_printf ("kiln append --layer DIR:/%s", dest);
                kiln_config_add_layer (j->config, info.diff_id, j->created, by, NULL);
        }
        return 0;
}

static void
set_kv_list (kiln_kvs *m, char **list)
{
        for (char **kv = list; kv && *kv; kv++) {
                cleanup_free char *key = strndup (*kv, (size_t) (strchr (*kv, '=') - *kv));
                kiln_kvs_set (m, key, strchr (*kv, '=') + 1);
        }
}

static void
mutate_config (append_job *j)
{
        kiln_image_config *c = j->config;
        append_opts *o = j->o;

        free (c->created);
        c->created = kiln_strdup (j->created);
        c->has_config = true;
        if (o->entrypoint_set) {
                kiln_strv_free (c->entrypoint);
                c->entrypoint = steal_pointer (&o->entrypoint);
                /* As in a Dockerfile, a new ENTRYPOINT drops the base's CMD. */
                if (!o->cmd_set) {
                        kiln_strv_free (c->cmd);
                        c->cmd = NULL;
                }
        }
        if (o->cmd_set) {
                kiln_strv_free (c->cmd);
                c->cmd = steal_pointer (&o->cmd);
        }
        for (char **e = o->env; e && *e; e++) {
                cleanup_free char *key = strndup (*e, (size_t) (strchr (*e, '=') - *e));
                kiln_config_set_env (c, key, strchr (*e, '=') + 1);
        }
        for (char **p = o->ports; p && *p; p++)
                kiln_config_add_port (c, *p);
        set_kv_list (&c->labels, o->labels);
        if (o->workdir) {
                free (c->working_dir);
                c->working_dir = kiln_strdup (o->workdir);
        }
        if (o->user) {
                free (c->user);
                c->user = kiln_strdup (o->user);
        }
}

/* Copies the base's layers into the new manifest and its blobs into the
 * work layout. */
static int
take_base (append_job *j, kiln_error **err)
{
        const kiln_manifest *bm = j->base->manifest;
        kiln_manifest *m = kiln_calloc (1, sizeof (*m));

        j->manifest = m;
        m->schema_version = 2;
        m->media_type = kiln_strdup (KILN_MT_OCI_MANIFEST);
        m->layers = kiln_calloc (bm->n_layers + 1, sizeof (kiln_descriptor));
        for (size_t i = 0; i < bm->n_layers; i++) {
                kiln_descriptor *d = &m->layers[m->n_layers++];
                kiln_descriptor_copy (d, &bm->layers[i]);
                free (d->media_type);
                d->media_type = kiln_strdup (oci_layer_type (bm->layers[i].media_type));
                if (j->base->layout_dir && strcmp (j->base->layout_dir, j->work) != 0) {
                        cleanup_free char *src = kiln_local_image_blob_path (j->base, d->digest);
                        if (bm->layers[i].urls && access (src, F_OK) < 0)
                                continue; /* a foreign layer stays where it is */
                        if (kiln_layout_put_blob_file (j->work, d->digest, src, false, err) < 0)
                                return kiln_error_wrap (err, "base layer %s", d->digest);
                }
        }
        if (kiln_config_parse (&j->config, j->base->config_raw, j->base->config_len, err) < 0)
                return -1;
        return 0;
}

static int
finish_image (append_job *j, char digest[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_free char *config_json = NULL;
        cleanup_free char *manifest_json = NULL;
        size_t config_len, manifest_len;
        kiln_manifest *m = j->manifest;

        if (kiln_config_to_json (&config_json, &config_len, j->config, err) < 0
            || kiln_layout_put_blob_bytes (j->work, config_json, config_len, m->config.digest, err)
                   < 0)
                return -1;
        m->config.media_type = kiln_strdup (KILN_MT_OCI_CONFIG);
        m->config.size = (int64_t) config_len;
        set_kv_list (&m->annotations, j->o->annotations);
        if (kiln_manifest_to_json (&manifest_json, &manifest_len, m, err) < 0
            || kiln_layout_put_blob_bytes (j->work, manifest_json, manifest_len, digest, err) < 0)
                return -1;
        return 0;
}

static int
do_append (append_opts *o, char digest[KILN_DIGEST_MAX], kiln_error **err)
{
        kiln_location base_loc = { 0 }, out_loc = { 0 };
        kiln_platform *platform = NULL;
        append_job j = { .o = o };
        int64_t epoch;
        int r = -1;

        if (kiln_location_parse (&base_loc, o->base, err) < 0
            || kiln_location_parse (&out_loc, o->output, err) < 0)
                goto out;
        if (out_loc.transport == KILN_TRANSPORT_REGISTRY
            || out_loc.transport == KILN_TRANSPORT_SCRATCH) {
                kiln_error_makec (
                    err, KILN_E_UNSUPPORTED, 0,
                    "--output `%s`: give oci:DIR, oci-archive:FILE or docker-archive:FILE",
                    o->output);
                goto out;
        }
        if (o->platform && kiln_platform_parse (&platform, o->platform, err) < 0)
                goto out;
        if (kiln_source_date_epoch (&epoch, err) < 0)
                goto out;
        kiln_time_rfc3339 (j.created, epoch);
        if (kiln_local_image_open (&j.base, &base_loc, platform, err) < 0) {
                kiln_error_wrap (err, "base image `%s`", o->base);
                goto out;
        }
        if (out_loc.transport == KILN_TRANSPORT_OCI) {
                j.work = out_loc.path;
        } else {
                if (kiln_mkdtemp (&j.work_tmp, "append", err) < 0)
                        goto out;
                j.work = j.work_tmp;
        }
        if (kiln_layout_init (j.work, err) < 0 || take_base (&j, err) < 0
            || add_layers (&j, err) < 0)
                goto out;
        /* base.name is a registry reference; a local base is named by
         * content alone, so moving its file changes nothing. */
        if (base_loc.transport != KILN_TRANSPORT_SCRATCH)
                kiln_kvs_set (&j.manifest->annotations, "org.opencontainers.image.base.digest",
                              j.base->manifest_digest);
        if (base_loc.transport == KILN_TRANSPORT_REGISTRY)
                kiln_kvs_set (&j.manifest->annotations, "org.opencontainers.image.base.name",
                              base_loc.path);
        mutate_config (&j);
        if (finish_image (&j, digest, err) < 0)
                goto out;
        if (kiln_layout_export (j.work, digest, &out_loc, err) < 0) {
                kiln_error_wrap (err, "output `%s`", o->output);
                goto out;
        }
        r = 0;
out:
        if (j.work_tmp) {
                kiln_error *e2 = NULL;
                kiln_rm_rf (j.work_tmp, &e2);
                kiln_error_free (e2);
                free (j.work_tmp);
        }
        kiln_manifest_free (j.manifest);
        kiln_config_free (j.config);
        kiln_local_image_free (j.base);
        kiln_platform_free (platform);
        kiln_location_clear (&base_loc);
        kiln_location_clear (&out_loc);
        return r;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        append_opts o = { 0 };
        kiln_error *err = NULL;
        char digest[KILN_DIGEST_MAX];
        int r;

        if (parse_args (&o, g, argc, argv) < 0) {
                append_opts_clear (&o);
                return KILN_EXIT_USAGE;
        }
        r = do_append (&o, digest, &err);
        append_opts_clear (&o);
        if (r < 0)
                return kiln_cli_fail (g, err);
        if (o.digest_file) {
                cleanup_free char *line = kiln_strdup_printf ("%s\n", digest);
                if (kiln_write_file (o.digest_file, line, strlen (line), 0644, &err) < 0)
                        return kiln_cli_fail (g, err);
        }
        if (g->json)
                printf ("{\"digest\":\"%s\",\"output\":\"%s\"}\n", digest, o.output);
        else
                printf ("%s\n", digest);
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_append = {
        "append",
        run,
        "add layers and config to a base image and write it out",
        "Usage: kiln append --base BASE --layer DIR[:DEST]... --output OUTPUT [options]\n"
        "\n"
        "Writes a new image: the base's layers, one new reproducible layer per\n"
        "--layer, and the base's config with the changes below.  Prints the\n"
        "manifest digest.\n"
        "\n"
        "Images (BASE and OUTPUT):\n"
        "  oci:DIR[:TAG]            an OCI image layout directory\n"
        "  oci-archive:FILE[:TAG]   an OCI layout as one tar\n"
        "  docker-archive:FILE[:NAME:TAG]  a `docker load`-able tar (also an OCI layout)\n"
        "  scratch                  (BASE only) an empty image for the host platform\n"
        "\n"
        "Options:\n"
        "      --base BASE          the image to start from (required)\n"
        "      --layer DIR[:DEST]   add the tree DIR at /DEST (default /); repeatable\n"
        "  -o, --output OUTPUT      where to write the image (required)\n"
        "      --entrypoint ARGS    a JSON array or words; also clears the base's Cmd\n"
        "      --cmd ARGS           a JSON array or words\n"
        "      --env K=V            set an environment variable; repeatable\n"
        "      --workdir DIR        the working directory\n"
        "      --user U             user[:group] or uid[:gid]\n"
        "      --port N[/PROTO]     expose a port (tcp unless given); repeatable\n"
        "      --label K=V          set a config label; repeatable\n"
        "      --annotation K=V     set a manifest annotation; repeatable\n"
        "      --platform OS/ARCH[/VARIANT]  pick from a multi-platform base\n"
        "      --compression C      gzip (default), zstd or none\n"
        "      --digest-file FILE   also write the manifest digest to FILE\n"
        "\n"
        "Layers are reproducible: the same inputs give the same digest.  File\n"
        "times are SOURCE_DATE_EPOCH when set, else 1970-01-01T00:00:00Z, and\n"
        "files are owned by 0:0.\n"
        "\n" KILN_GLOBAL_HELP,
};
