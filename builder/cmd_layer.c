/* kiln layer: one layer at a time, outside any image: write a reproducible
 * layer from trees, apply a layer to a directory safely, and compute a
 * layer's diff_id.  Scripts and the benchmarks use it to time the layer
 * engine alone. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/layer.h"
#include "kiln/log.h"

#define MAX_TREES 1024

enum {
        OPT_OUTPUT = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_COMPRESSION,
        OPT_LEVEL,
        OPT_THREADS,
        OPT_MAX_ENTRIES,
        OPT_MAX_BYTES,
};

typedef struct layer_opts {
        const char *sub;
        const char *output;
        const char *trees[MAX_TREES];
        size_t n_trees;
        const char *args[2]; /* extract: FILE ROOT; diff-id: FILE */
        size_t n_args;
        kiln_layer_opts write;
        kiln_extract_opts extract;
} layer_opts;

/* "DIR[:DEST]": the tree DIR goes to /DEST in the layer (default /). */
static void
split_tree_arg (const char *arg, char **dir, char **dest)
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

static int
parse_args (layer_opts *o, kiln_global *g, int argc, char **argv)
{
        static const struct option longopts[] = {
                KILN_GLOBAL_LONGOPTS,
                { "output", required_argument, NULL, OPT_OUTPUT },
                { "compression", required_argument, NULL, OPT_COMPRESSION },
                { "level", required_argument, NULL, OPT_LEVEL },
                { "threads", required_argument, NULL, OPT_THREADS },
                { "max-entries", required_argument, NULL, OPT_MAX_ENTRIES },
                { "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_layer;
        bool is_create, is_extract, is_diff_id;
        int64_t n;
        int opt;

        if (argc < 2) {
                kiln_cli_usage_error (cmd, "a subcommand is required: create, extract or diff-id");
                return -1;
        }
        o->sub = argv[1];
        if (strcmp (o->sub, "-h") == 0 || strcmp (o->sub, "--help") == 0
            || strcmp (o->sub, "help") == 0) {
                fputs (cmd->usage, stdout);
                exit (KILN_EXIT_OK);
        }
        is_create = strcmp (o->sub, "create") == 0;
        is_extract = strcmp (o->sub, "extract") == 0;
        is_diff_id = strcmp (o->sub, "diff-id") == 0;
        if (!is_create && !is_extract && !is_diff_id) {
                kiln_cli_usage_error (cmd, "unknown subcommand `%s` (create, extract or diff-id)",
                                      o->sub);
                return -1;
        }
        argc--;
        argv++;
        optind = 1;
        while ((opt = getopt_long (argc, argv, "qho:", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, cmd, opt, optarg);
                if (r < 0)
                        return -1;
                if (r > 0)
                        continue;
                switch (opt) {
                case 'o':
                case OPT_OUTPUT:
                        o->output = optarg;
                        break;
                case OPT_COMPRESSION:
                        if (strcmp (optarg, "gzip") == 0)
                                o->write.compression = KILN_COMPRESS_GZIP;
                        else if (strcmp (optarg, "zstd") == 0)
                                o->write.compression = KILN_COMPRESS_ZSTD;
                        else if (strcmp (optarg, "none") == 0)
                                o->write.compression = KILN_COMPRESS_NONE;
                        else {
                                kiln_cli_usage_error (cmd, "--compression is gzip, zstd or none");
                                return -1;
                        }
                        break;
                case OPT_LEVEL:
                        if (kiln_parse_int64 (optarg, 1, 22, &n) < 0) {
                                kiln_cli_usage_error (cmd, "--level wants 1 to 22, got `%s`",
                                                      optarg);
                                return -1;
                        }
                        o->write.level = (int) n;
                        break;
                case OPT_THREADS:
                        if (kiln_parse_int64 (optarg, 0, 256, &n) < 0) {
                                kiln_cli_usage_error (cmd, "--threads wants 0 to 256, got `%s`",
                                                      optarg);
                                return -1;
                        }
                        o->write.threads = (int) n;
                        break;
                case OPT_MAX_ENTRIES:
                        if (kiln_parse_int64 (optarg, 1, INT64_MAX, &n) < 0) {
                                kiln_cli_usage_error (
                                    cmd, "--max-entries wants a positive number, got `%s`", optarg);
                                return -1;
                        }
                        o->extract.max_entries = (uint64_t) n;
                        break;
                case OPT_MAX_BYTES:
                        if (kiln_parse_size (optarg, &o->extract.max_bytes) < 0
                            || o->extract.max_bytes == 0) {
                                kiln_cli_usage_error (
                                    cmd, "--max-bytes wants a size such as 512M, got `%s`", optarg);
                                return -1;
                        }
                        break;
                default:
                        kiln_cli_usage_error (cmd, "unknown option");
                        return -1;
                }
        }
        for (; optind < argc; optind++) {
                if (is_create) {
                        if (o->n_trees == MAX_TREES) {
                                kiln_cli_usage_error (cmd, "at most %d trees", MAX_TREES);
                                return -1;
                        }
                        o->trees[o->n_trees++] = argv[optind];
                } else if (o->n_args < (is_extract ? 2u : 1u)) {
                        o->args[o->n_args++] = argv[optind];
                } else {
                        kiln_cli_usage_error (cmd, "unexpected argument `%s`", argv[optind]);
                        return -1;
                }
        }
        if (is_create && (o->n_trees == 0 || o->output == NULL)) {
                kiln_cli_usage_error (cmd, "create wants DIR[:DEST]... and --output FILE");
                return -1;
        }
        if (is_extract && o->n_args != 2) {
                kiln_cli_usage_error (cmd, "extract wants FILE ROOT");
                return -1;
        }
        if (is_diff_id && o->n_args != 1) {
                kiln_cli_usage_error (cmd, "diff-id wants FILE");
                return -1;
        }
        return 0;
}

static int
do_create (layer_opts *o, kiln_global *g, kiln_error **err)
{
        kiln_layer_entry entries[MAX_TREES];
        char *dirs[MAX_TREES] = { 0 };
        char *dests[MAX_TREES] = { 0 };
        cleanup_free char *tmp = NULL;
        kiln_layer_info info;
        int r = -1;

        for (size_t i = 0; i < o->n_trees; i++) {
                split_tree_arg (o->trees[i], &dirs[i], &dests[i]);
                if (access (dirs[i], F_OK) < 0) {
                        kiln_error_make (err, errno, "layer input `%s`", dirs[i]);
                        goto out;
                }
                entries[i].host_path = dirs[i];
                entries[i].image_path = dests[i];
        }
        /* Written beside the output and renamed, so a failed run leaves no
         * half-written file under the output's name. */
        tmp = kiln_strdup_printf ("%s.kiln-tmp-%ld", o->output, (long) getpid ());
        if (kiln_layer_write (&info, entries, o->n_trees, tmp, &o->write, err) < 0) {
                unlink (tmp);
                goto out;
        }
        if (rename (tmp, o->output) < 0) {
                kiln_error_makec (err, KILN_E_IO, errno, "rename to `%s`", o->output);
                unlink (tmp);
                goto out;
        }
        if (g->json)
                printf ("{\"digest\":\"%s\",\"diff_id\":\"%s\",\"size\":%llu,\"tar_size\":%llu,"
                        "\"entries\":%llu,\"media_type\":\"%s\"}\n",
                        info.digest, info.diff_id, (unsigned long long) info.size,
                        (unsigned long long) info.tar_size, (unsigned long long) info.entries,
                        info.media_type);
        else
                printf ("%s %s %llu\n", info.digest, info.diff_id, (unsigned long long) info.size);
        r = 0;
out:
        for (size_t i = 0; i < o->n_trees; i++) {
                free (dirs[i]);
                free (dests[i]);
        }
        return r;
}

static int
do_extract (layer_opts *o, kiln_global *g, kiln_error **err)
{
        char diff_id[KILN_DIGEST_MAX];

        if (kiln_layer_extract (o->args[0], o->args[1], &o->extract, diff_id, err) < 0)
                return kiln_error_wrap (err, "extract `%s`", o->args[0]);
        if (g->json)
                printf ("{\"diff_id\":\"%s\"}\n", diff_id);
        else
                printf ("%s\n", diff_id);
        return 0;
}

static int
do_diff_id (layer_opts *o, kiln_global *g, kiln_error **err)
{
        char diff_id[KILN_DIGEST_MAX];

        if (kiln_layer_diff_id (diff_id, o->args[0], err) < 0)
                return kiln_error_wrap (err, "diff-id `%s`", o->args[0]);
        if (g->json)
                printf ("{\"diff_id\":\"%s\"}\n", diff_id);
        else
                printf ("%s\n", diff_id);
        return 0;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        layer_opts o = { 0 };
        kiln_error *err = NULL;
        int r;

        kiln_layer_opts_init (&o.write);
        kiln_extract_opts_init (&o.extract);
        if (parse_args (&o, g, argc, argv) < 0)
                return KILN_EXIT_USAGE;
        if (strcmp (o.sub, "create") == 0)
                r = do_create (&o, g, &err);
        else if (strcmp (o.sub, "extract") == 0)
                r = do_extract (&o, g, &err);
        else
                r = do_diff_id (&o, g, &err);
        if (r < 0)
                return kiln_cli_fail (g, err);
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_layer = {
        "layer",
        run,
        "write, extract or hash a single layer",
        "Usage: kiln layer create DIR[:DEST]... --output FILE [--compression C] [--threads N]\n"
        "       kiln layer extract FILE ROOT [--max-entries N] [--max-bytes SIZE]\n"
        "       kiln layer diff-id FILE\n"
        "\n"
        "create   writes one reproducible layer holding each tree DIR at /DEST\n"
        "         (default /) and prints `DIGEST DIFF_ID SIZE`: the sha256 of\n"
        "         the file, the sha256 of the uncompressed tar, and the file's\n"
        "         size in bytes.  The same trees give the same bytes anywhere.\n"
        "extract  applies the layer FILE (tar, tar+gzip or tar+zstd) to the\n"
        "         existing directory ROOT as an image layer (whiteouts\n"
        "         included), refusing absolute paths, `..` and links out of\n"
        "         ROOT; prints the diff_id.\n"
        "diff-id  prints the sha256 of the uncompressed tar in FILE.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE        (create) the layer file to write (required)\n"
        "      --compression C      (create) gzip (default), zstd or none\n"
        "      --level N            (create) compression level (gzip 6, zstd 3)\n"
        "      --threads N          (create) compression threads (0: one per CPU);\n"
        "                           the bytes do not depend on it\n"
        "      --max-entries N      (extract) refuse layers with more entries\n"
        "                           (default 1000000)\n"
        "      --max-bytes SIZE     (extract) refuse layers unpacking to more bytes\n"
        "                           (such as 512M; default 32G)\n"
        "\n"
        "File times are SOURCE_DATE_EPOCH when set, else 1970-01-01T00:00:00Z;\n"
        "files are owned by 0:0.  With --json, create prints\n"
        "{\"digest\",\"diff_id\",\"size\",\"tar_size\",\"entries\",\"media_type\"}.\n"
        "\n" KILN_GLOBAL_HELP,
};
