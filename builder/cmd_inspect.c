/* kiln inspect: what an image on a registry is, as JSON. */
#include <stdio.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/json.h"
#include "kiln/registry.h"

enum { OPT_CONFIG = KILN_OPT_FIRST_COMMAND_OPT, OPT_MANIFEST };

typedef struct inspect_opts {
        bool config, manifest;
} inspect_opts;

static int
on_extra (void *data, int opt)
{
        inspect_opts *io = data;

        if (opt == OPT_CONFIG)
                io->config = true;
        else if (opt == OPT_MANIFEST)
                io->manifest = true;
        else
                return 0;
        return 1;
}

static kiln_json *
summary (const kiln_remote_image *img, const char *name)
{
        kiln_json *j = kiln_json_object ();
        kiln_json *layers = kiln_json_array ();
        const kiln_manifest *m = img->manifest;
        int64_t total = (int64_t) img->manifest_len + m->config.size;

        kiln_json_set_str (j, "reference", name);
        kiln_json_set_str (j, "digest", img->digest);
        if (img->index_digest[0])
                kiln_json_set_str (j, "index", img->index_digest);
        kiln_json_set_str (j, "mediaType", img->manifest_media_type);
        kiln_json_set_str (j, "os", img->config->os);
        kiln_json_set_str (j, "architecture", img->config->architecture);
        kiln_json_set_str (j, "variant", img->config->variant);
        kiln_json_set_str (j, "created", img->config->created);
        kiln_json_set_str (j, "config", m->config.digest);
        for (size_t i = 0; i < m->n_layers; i++) {
                kiln_json *l = kiln_json_object ();
                kiln_json_set_str (l, "digest", m->layers[i].digest);
                kiln_json_set_str (l, "mediaType", m->layers[i].media_type);
                kiln_json_set_i64 (l, "size", m->layers[i].size);
                kiln_json_append_node (layers, l);
                total += m->layers[i].size;
        }
        kiln_json_set_node (j, "layers", layers);
        kiln_json_set_i64 (j, "size", total);
        return j;
}

static int
inspect (kiln_cli_registry *o, kiln_global *g, const inspect_opts *io, const char *src,
         kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        cleanup_reference kiln_reference *ref = NULL;
        cleanup_remote_image kiln_remote_image *img = NULL;
        cleanup_kiln_json kiln_json *j = NULL;
        cleanup_free char *s = NULL;

        (void) g;
        if (kiln_reference_parse (&ref, src, err) < 0)
                return -1;
        if (kiln_cli_registry_client (&r, o, &(kiln_global){ .quiet = true }, err) < 0)
                return -1;
        if (io->manifest && o->platform == NULL) {
                /* The manifest as the registry holds it, index or not. */
                kiln_registry_manifest m = { 0 };
                if (kiln_registry_get_manifest (&m, r, ref, err) < 0)
                        return -1;
                fwrite (m.data, 1, m.len, stdout);
                fputc ('\n', stdout);
                kiln_registry_manifest_clear (&m);
                return 0;
        }
        if (kiln_registry_open_image (&img, r, ref, o->platform, err) < 0)
                return -1;
        if (io->manifest || io->config) {
                if (io->manifest)
                        fwrite (img->manifest_raw, 1, img->manifest_len, stdout);
                else
                        fwrite (img->config_raw, 1, img->config_len, stdout);
                fputc ('\n', stdout);
                return 0;
        }
        j = summary (img, src);
        if (kiln_json_format (&s, j, err) < 0)
                return -1;
        printf ("%s\n", s);
        return 0;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "config", no_argument, NULL, OPT_CONFIG },
                { "manifest", no_argument, NULL, OPT_MANIFEST },
                { NULL, 0, NULL, 0 },
        };
        inspect_opts io = { 0 };
        kiln_cli_registry o;
        kiln_error *err = NULL;
        int ret;

        kiln_cli_registry_init (&o, "read");
        if (kiln_cli_registry_args (&o, g, &kiln_cmd_inspect, argc, argv, 1, extra, on_extra, &io)
            < 0) {
                kiln_cli_registry_clear (&o);
                return KILN_EXIT_USAGE;
        }
        ret = inspect (&o, g, &io, argv[optind], &err);
        kiln_cli_registry_clear (&o);
        if (ret < 0) {
                kiln_error_wrap (&err, "inspect %s", argv[optind]);
                return kiln_cli_fail (g, err);
        }
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_inspect = {
        "inspect",
        run,
        "describe an image on a registry (JSON)",
        "Usage: kiln inspect [OPTIONS] REFERENCE\n\n"
        "Prints a JSON summary of the image: digest, platform, config and layers.\n"
        "Nothing but the manifest and the config is downloaded.\n\n"
        "Options:\n"
        "      --manifest    print the manifest as stored (with --platform: the\n"
        "                    platform's manifest, not the index)\n"
        "      --config      print the image config as stored\n\n" KILN_REGISTRY_HELP
            KILN_GLOBAL_HELP,
};
