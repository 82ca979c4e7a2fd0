/* kiln digest: the manifest digest a reference names on its registry. */
#include <stdio.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/registry.h"

static int
digest (kiln_cli_registry *o, kiln_global *g, const char *src, kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        cleanup_reference kiln_reference *ref = NULL;
        char d[KILN_DIGEST_MAX] = "";

        if (kiln_reference_parse (&ref, src, err) < 0)
                return -1;
        if (kiln_cli_registry_client (&r, o, &(kiln_global){ .quiet = true }, err) < 0)
                return -1;
        if (o->platform) {
                cleanup_remote_image kiln_remote_image *img = NULL;
                if (kiln_registry_open_image (&img, r, ref, o->platform, err) < 0)
                        return -1;
                return kiln_cli_registry_result (o, g, r, src, img->digest, err);
        }
        /* HEAD is cheap (and not counted by Docker Hub); GET when the
         * registry gives no digest header. */
        int found = kiln_registry_head_manifest (d, NULL, NULL, r, ref, err);
        if (found < 0)
                return -1;
        if (found == 0)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "no such manifest on %s",
                                         ref->registry);
        if (d[0] == '\0') {
                kiln_registry_manifest m = { 0 };
                if (kiln_registry_get_manifest (&m, r, ref, err) < 0)
                        return -1;
                kiln_strlcpy (d, m.digest, sizeof d);
                kiln_registry_manifest_clear (&m);
        }
        return kiln_cli_registry_result (o, g, r, src, d, err);
}

static int
run (kiln_global *g, int argc, char **argv)
{
        kiln_cli_registry o;
        kiln_error *err = NULL;
        int ret;

        kiln_cli_registry_init (&o, "read");
        if (kiln_cli_registry_args (&o, g, &kiln_cmd_digest, argc, argv, 1, NULL, NULL, NULL) < 0) {
                kiln_cli_registry_clear (&o);
                return KILN_EXIT_USAGE;
        }
        ret = digest (&o, g, argv[optind], &err);
        kiln_cli_registry_clear (&o);
        if (ret < 0) {
                kiln_error_wrap (&err, "digest %s", argv[optind]);
                return kiln_cli_fail (g, err);
        }
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_digest = {
        "digest",
        run,
        "print the manifest digest of a reference",
        "Usage: kiln digest [OPTIONS] REFERENCE\n\n"
        "Prints the digest of the manifest (or index) REFERENCE names, with one\n"
        "HEAD request where the registry allows.  With --platform, the digest of\n"
        "that platform's manifest.\n\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
