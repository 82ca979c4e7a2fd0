/* kiln stack build: a run image from a stack file (Debian packages). */
#include <stdio.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/layout.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/stack.h"

enum {
        OPT_IMAGE = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_OUTPUT,
        OPT_CACHE_DIR,
};

typedef struct stack_opts {
        kiln_cli_registry reg;
        const char *image;
        const char *output;
        const char *cache_dir;
} stack_opts;

static int
on_extra (void *data, int opt)
{
        stack_opts *o = data;

        switch (opt) {
        case OPT_IMAGE:
                o->image = optarg;
                return 1;
        case OPT_OUTPUT:
                o->output = optarg;
                return 1;
        case OPT_CACHE_DIR:
                o->cache_dir = optarg;
                return 1;
        default:
                return 0;
        }
}

/* The architecture of --platform, checked against the file's. */
static int
apply_platform (kiln_stack *s, const kiln_platform *p, kiln_error **err)
{
        const char *want;

        if (p == NULL)
                return 0;
        want = kiln_stack_debian_arch (p);
        if (want == NULL)
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "--platform: Debian has no architecture for %s",
                                         p->architecture);
        if (s->architecture && strcmp (s->architecture, want) != 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "--platform: `%s` is for %s, not %s", s->path,
                                         s->architecture, want);
        free (s->architecture);
        s->architecture = kiln_strdup (want);
        return 0;
}

/* Copies the image from the cache to where it was asked for. */
static int
publish (stack_opts *o, kiln_global *g, kiln_registry **reg, const kiln_stack_result *res,
         const char *dst, char digest[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_local_image kiln_local_image *img = NULL;
        cleanup_reference kiln_reference *ref = NULL;
        kiln_location src = { 0 }, loc = { 0 };
        int r = -1;

        if (kiln_location_parse (&loc, dst, err) < 0)
                return -1;
        if (loc.transport == KILN_TRANSPORT_SCRATCH) {
                kiln_error_makec (err, KILN_E_INVALID, 0, "scratch is not an output");
                goto out;
        }
        if (loc.transport != KILN_TRANSPORT_REGISTRY) {
                r = kiln_layout_export (res->layout, res->digest, &loc, err);
                kiln_strlcpy (digest, res->digest, KILN_DIGEST_MAX);
                goto out;
        }
        if (kiln_reference_parse (&ref, dst, err) < 0
            || kiln_location_parse (&src, res->location, err) < 0
            || kiln_local_image_open (&img, &src, NULL, err) < 0
            || kiln_cli_registry_client (reg, &o->reg, g, err) < 0)
                goto out;
        r = kiln_registry_push_local (*reg, img, ref, digest, err);
out:
        if (r < 0)
                kiln_error_wrap (err, "output `%s`", dst);
        kiln_location_clear (&loc);
        kiln_location_clear (&src);
        return r;
}

static int
build (stack_opts *o, kiln_global *g, const char *file, kiln_error **err)
{
        cleanup_registry kiln_registry *reg = NULL;
        cleanup_stack kiln_stack *s = NULL;
        const char *dst = o->image ? o->image : o->output;
        kiln_stack_build_opts bo = { .cache_dir = o->cache_dir, .created = -1 };
        kiln_stack_result res;
        char digest[KILN_DIGEST_MAX];
        int r;

        if (kiln_stack_load (&s, file, err) < 0 || apply_platform (s, o->reg.platform, err) < 0)
                return -1;
        if (kiln_stack_build (&res, s, &bo, err) < 0)
                return -1;
        kiln_info ("stack %s: %s%s, %zu packages, in %s", s->name, res.digest,
                   res.cached ? " (cached)" : "", kiln_strv_len (res.packages), res.location);
        kiln_strlcpy (digest, res.digest, sizeof digest);
        r = dst ? publish (o, g, &reg, &res, dst, digest, err) : 0;
        if (r == 0)
                r = kiln_cli_registry_result (&o->reg, g, reg, dst ? dst : res.location, digest,
                                              err);
        kiln_stack_result_clear (&res);
        return r;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "image", required_argument, NULL, OPT_IMAGE },
                { "output", required_argument, NULL, OPT_OUTPUT },
                { "cache-dir", required_argument, NULL, OPT_CACHE_DIR },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_stack;
        stack_opts o = { 0 };
        kiln_error *err = NULL;
        int r;

        if (argc >= 2
            && (strcmp (argv[1], "help") == 0 || strcmp (argv[1], "--help") == 0
                || strcmp (argv[1], "-h") == 0)) {
                fputs (cmd->usage, stdout);
                return KILN_EXIT_OK;
        }
        if (argc < 2 || strcmp (argv[1], "build") != 0)
                return kiln_cli_usage_error (cmd, "the subcommand is `build`");
        kiln_cli_registry_init (&o.reg, "pushed");
        if (kiln_cli_registry_args (&o.reg, g, cmd, argc - 1, argv + 1, 1, extra, on_extra, &o)
            < 0) {
                kiln_cli_registry_clear (&o.reg);
                return KILN_EXIT_USAGE;
        }
        if (o.image && o.output) {
                kiln_cli_registry_clear (&o.reg);
                return kiln_cli_usage_error (cmd, "give --image or --output, not both");
        }
        r = build (&o, g, argv[optind + 1], &err);
        kiln_cli_registry_clear (&o.reg);
        return r < 0 ? kiln_cli_fail (g, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_stack = {
        "stack",
        run,
        "build a run image from a stack file (Debian packages)",
        "Usage: kiln stack build FILE [--image REF | --output OUTPUT] [--cache-dir DIR]\n"
        "                        [registry options]\n"
        "\n"
        "Builds the run image a stack file describes (see docs/stacks.md): apt,\n"
        "with a root of its own in the cache, resolves the packages and their\n"
        "dependencies against the Debian archive; dpkg-deb and kiln's extractor\n"
        "unpack them (no maintainer script runs); kiln removes documentation and\n"
        "package-manager state, adds /etc/passwd, /etc/group, /tmp, the user's\n"
        "home and an SPDX SBOM (/" KILN_STACK_SBOM_PATH "),\n"
        "and writes one reproducible layer.\n"
        "The same package versions give the same digest.  Prints the digest.\n"
        "\n"
        "The result is kept in the cache under a key made of the file's content\n"
        "and the resolved versions: a build that resolves to the same versions\n"
        "downloads and unpacks nothing.  Downloaded packages are kept there too.\n"
        "\n"
        "Options:\n"
        "      --image REF          push the image to a registry\n"
        "      --output OUTPUT      or write it: oci:DIR[:TAG], oci-archive:FILE[:TAG],\n"
        "                           docker-archive:FILE[:NAME:TAG] or a registry\n"
        "                           reference (without either: the cache only)\n"
        "      --cache-dir DIR      the stack cache (default $KILN_CACHE_DIR/stacks,\n"
        "                           else $XDG_CACHE_HOME/kiln/stacks, else\n"
        "                           ~/.cache/kiln/stacks)\n"
        "      --platform OS/ARCH   the architecture, when the file names none\n"
        "                           (default: the host's)\n"
        "\n"
        "Labels: " KILN_LABEL_STACK_NAME ", " KILN_LABEL_STACK_ID " (the cache key),\n"
        "" KILN_LABEL_STACK_SUITE ", " KILN_LABEL_STACK_PACKAGES " (name=version,...).\n"
        "Times are SOURCE_DATE_EPOCH when set, else 1970-01-01T00:00:00Z.\n"
        "\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
