/* kiln append: new layers and config changes over a base image, like
 * `crane append` and `crane mutate` in one step. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/compose.h"
#include "kiln/layer.h"
#include "kiln/layout.h"
#include "kiln/log.h"
#include "kiln/runbase.h"
#include "kiln/stack.h"

#define MAX_LAYERS 127

typedef struct append_opts {
        const char *base;
        const char *output;
        kiln_cli_registry reg; /* --platform, --digest-file, registry access */
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
        bool run_image_labels;
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
        OPT_COMPRESSION,
        OPT_RUN_IMAGE_LABELS,
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
        kiln_cli_registry_clear (&o->reg);
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
                KILN_REGISTRY_LONGOPTS,
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
                { "compression", required_argument, NULL, OPT_COMPRESSION },
                { "run-image-labels", no_argument, NULL, OPT_RUN_IMAGE_LABELS },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_append;
        cleanup_error kiln_error *err = NULL;
        int opt;

        optind = 1;
        while ((opt = getopt_long (argc, argv, "qho:", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, cmd, opt, optarg);
                char *port;
                if (r == 0)
                        r = kiln_cli_registry_opt (&o->reg, cmd, opt, optarg);
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
                case OPT_RUN_IMAGE_LABELS:
                        o->run_image_labels = true;
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

static void
set_kv_list (kiln_kvs *m, char **list)
{
        for (char **kv = list; kv && *kv; kv++) {
                cleanup_free char *key = strndup (*kv, (size_t) (strchr (*kv, '=') - *kv));
                kiln_kvs_set (m, key, strchr (*kv, '=') + 1);
        }
}

static void
mutate_config (kiln_image_config *c, append_opts *o)
{
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

static int
add_layers (kiln_compose *c, append_opts *o, kiln_error **err)
{
        kiln_layer_opts lopts;

        kiln_layer_opts_init (&lopts);
        lopts.compression = o->compression;
        for (size_t i = 0; i < o->n_layers; i++) {
                cleanup_free char *dir = NULL;
                cleanup_free char *dest = NULL;
                cleanup_free char *by = NULL;

                split_layer_arg (o->layers[i], &dir, &dest);
                kiln_info ("writing layer from %s", dir);
                /* The host path stays out of the history: the same tree
                 * copied elsewhere must give the same image. */
                by = kiln_strdup_printf ("kiln append --layer DIR:/%s", dest);
                if (kiln_compose_add_dir (c, dir, dest, &lopts, by, NULL, err) < 0)
                        return kiln_error_wrap (err, "layer `%s`", o->layers[i]);
        }
        return 0;
}

static bool
is_registry (const char *spec)
{
        kiln_location loc = { 0 };
        kiln_error *err = NULL;
        bool r;

        if (strcmp (spec, KILN_STATIC_BASE) == 0 || kiln_str_has_prefix (spec, KILN_STACK_PREFIX))
                return false;
        if (kiln_location_parse (&loc, spec, &err) < 0) {
                kiln_error_free (err);
                return false; /* reported where it is used */
        }
        r = loc.transport == KILN_TRANSPORT_REGISTRY;
        kiln_location_clear (&loc);
        return r;
}

static int
do_append (append_opts *o, kiln_global *g, kiln_registry **reg, char digest[KILN_DIGEST_MAX],
           kiln_error **err)
{
        cleanup_compose kiln_compose *c = NULL;
        kiln_compose_opts copts = {
                .base = o->base,
                .platform = o->reg.platform,
                .created = -1,
                .record_base = o->run_image_labels,
        };

        if (is_registry (o->base) || is_registry (o->output)) {
                if (kiln_cli_registry_client (reg, &o->reg, g, err) < 0)
                        return -1;
                copts.registry = *reg;
        }
        if (kiln_compose_new (&c, &copts, err) < 0 || add_layers (c, o, err) < 0)
                return -1;
        mutate_config (kiln_compose_config (c), o);
        set_kv_list (kiln_compose_annotations (c), o->annotations);
        return kiln_compose_publish (c, o->output, digest, err);
}

static int
run (kiln_global *g, int argc, char **argv)
{
        append_opts o = { 0 };
        cleanup_registry kiln_registry *reg = NULL;
        kiln_error *err = NULL;
        char digest[KILN_DIGEST_MAX];
        int r;

        kiln_cli_registry_init (&o.reg, "pushed");
        if (parse_args (&o, g, argc, argv) < 0) {
                append_opts_clear (&o);
                return KILN_EXIT_USAGE;
        }
        r = do_append (&o, g, &reg, digest, &err);
        if (r == 0)
                r = kiln_cli_registry_result (&o.reg, g, reg, o.output, digest, &err);
        append_opts_clear (&o);
        return r < 0 ? kiln_cli_fail (g, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_append = {
        "append",
        run,
        "add layers and config to a base image and write it out",
        "Usage: kiln append --base BASE --layer DIR[:DEST]... --output OUTPUT [options]\n"
        "\n"
        "Writes a new image: the base's layers, one new reproducible layer per\n"
        "--layer, and the base's config with the changes below.  Prints the\n"
        "manifest digest.  A base in a registry is used without downloading its\n"
        "layers: pushed to the same registry they are skipped or mounted, so only\n"
        "the new layers and the config are uploaded.\n"
        "\n"
        "Images (BASE and OUTPUT):\n"
        "  oci:DIR[:TAG]            an OCI image layout directory\n"
        "  oci-archive:FILE[:TAG]   an OCI layout as one tar\n"
        "  docker-archive:FILE[:NAME:TAG]  a `docker load`-able tar (also an OCI layout)\n"
        "  [HOST[:PORT]/]PATH[:TAG][@DIGEST]  an image in a registry\n"
        "  scratch                  (BASE only) an empty image for the host platform\n"
        "  kiln:static              (BASE only) kiln's static base: nonroot user 65532,\n"
        "                           /tmp, the host's CA certificates; no download\n"
        "  kiln-stack:NAME          (BASE only) the stack $KILN_STACKS_DIR/NAME.yaml,\n"
        "                           built on first use (see kiln help stack)\n"
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
        "      --compression C      gzip (default), zstd or none\n"
        "      --run-image-labels   record the base as the run image (labels\n"
        "                           dev.kiln.run-image.*), so kiln rebase can swap it\n"
        "\n"
        "Layers are reproducible: the same inputs give the same digest.  File\n"
        "times are SOURCE_DATE_EPOCH when set, else 1970-01-01T00:00:00Z, and\n"
        "files are owned by 0:0.\n"
        "\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
