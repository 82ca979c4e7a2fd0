/* kiln pull: an image from a registry to disk (layout, archive). */
#include <stdio.h>

#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/layout.h"
#include "kiln/registry.h"

static int
pull (kiln_cli_registry *o, kiln_global *g, const char *src, const char *dst, kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        cleanup_reference kiln_reference *ref = NULL;
        kiln_location loc = { 0 };
        char digest[KILN_DIGEST_MAX];
        int ret = -1;

        if (kiln_reference_parse (&ref, src, err) < 0)
                return -1;
        if (kiln_location_parse (&loc, dst, err) < 0)
                return -1;
        if (loc.transport != KILN_TRANSPORT_OCI && loc.transport != KILN_TRANSPORT_OCI_ARCHIVE
            && loc.transport != KILN_TRANSPORT_DOCKER_ARCHIVE) {
                kiln_error_makec (err, KILN_E_INVALID, 0,
                                  "`%s` is not oci:DIR, oci-archive:FILE or docker-archive:FILE",
                                  dst);
                goto out;
        }
        if (kiln_cli_registry_client (&r, o, g, err) < 0)
                goto out;
        if (kiln_cli_pull_to (r, o, ref, &loc, digest, err) < 0)
                goto out;
        ret = kiln_cli_registry_result (o, g, r, src, digest, err);
out:
        kiln_location_clear (&loc);
        return ret;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        kiln_cli_registry o;
        kiln_error *err = NULL;
        int ret;

        kiln_cli_registry_init (&o, "pulled");
        if (kiln_cli_registry_args (&o, g, &kiln_cmd_pull, argc, argv, 2, NULL, NULL, NULL) < 0) {
                kiln_cli_registry_clear (&o);
                return KILN_EXIT_USAGE;
        }
        ret = pull (&o, g, argv[optind], argv[optind + 1], &err);
        kiln_cli_registry_clear (&o);
        if (ret < 0) {
                kiln_error_wrap (&err, "pull %s", argv[optind]);
                return kiln_cli_fail (g, err);
        }
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_pull = {
        "pull",
        run,
        "pull an image from a registry to disk",
        "Usage: kiln pull [OPTIONS] REFERENCE DESTINATION\n\n"
        "Pulls REFERENCE ([HOST[:PORT]/]PATH[:TAG][@DIGEST]) to DESTINATION:\n"
        "oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG].\n"
        "From an index, the image for --platform (default: this host) is taken.\n"
        "Every blob is verified against its digest while it is written.  Prints\n"
        "the manifest digest.\n\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
