/* kiln version: the version, the commit it was built from, and the
 * libraries it runs with. */
#include <stdio.h>

#include "kiln/cli.h"
#include "kiln/digest.h"
#include "kiln/image.h"
#include "kiln/layer.h"

static int
run (kiln_global *g, int argc, char **argv)
{
        static const struct option longopts[] = { KILN_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 } };
        int opt;

        optind = 1;
        while ((opt = getopt_long (argc, argv, "qh", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, &kiln_cmd_version, opt, optarg);
                if (r < 0)
                        return KILN_EXIT_USAGE;
                if (r == 0)
                        return kiln_cli_usage_error (&kiln_cmd_version, "unknown option");
        }
        if (optind < argc)
                return kiln_cli_usage_error (&kiln_cmd_version, "unexpected argument `%s`",
                                             argv[optind]);
        if (g->json) {
                printf ("{\"version\":\"%s\",\"commit\":\"%s\",\"libraries\":{\"digest\":\"%s\","
                        "\"layer\":\"%s\",\"image\":\"%s\"}}\n",
                        KILN_VERSION, KILN_COMMIT, kiln_digest_library_version (),
                        kiln_layer_library_version (), kiln_image_library_version ());
                return KILN_EXIT_OK;
        }
        printf ("kiln %s (commit %s)\n", KILN_VERSION, KILN_COMMIT);
        if (!g->quiet)
                printf ("  %s\n  %s\n  %s\n", kiln_digest_library_version (),
                        kiln_layer_library_version (), kiln_image_library_version ());
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_version = {
        "version",
        run,
        "print the version, commit and library versions",
        "Usage: kiln version [--json]\n\n"
        "Prints kiln's version, the commit it was built from, and the versions of\n"
        "the libraries it runs with.\n\n" KILN_GLOBAL_HELP,
};
