/* kiln push: an image on disk (layout, archive) to a registry. */
#include <stdio.h>

#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/layout.h"
#include "kiln/registry.h"

static int
push (kiln_cli_registry *o, kiln_global *g, const char *src, const char *dst, kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        cleanup_reference kiln_reference *ref = NULL;
        cleanup_local_image kiln_local_image *img = NULL;
        kiln_location loc = { 0 };
        char digest[KILN_DIGEST_MAX];
        int ret = -1;

        if (kiln_reference_parse (&ref, dst, err) < 0)
                return -1;
        if (kiln_location_parse (&loc, src, err) < 0)
                return -1;
        if (loc.transport == KILN_TRANSPORT_REGISTRY) {
                kiln_error_makec (err, KILN_E_INVALID, 0,
                                  "`%s` is not an image on disk (oci:DIR, oci-archive:FILE, "
                                  "docker-archive:FILE); use kiln copy",
                                  src);
                goto out;
        }
        if (kiln_local_image_open (&img, &loc, o->platform, err) < 0)
                goto out;
        if (kiln_cli_registry_client (&r, o, g, err) < 0)
                goto out;
        if (kiln_registry_push_local (r, img, ref, digest, err) < 0)
                goto out;
        ret = kiln_cli_registry_result (o, g, r, dst, digest, err);
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

        kiln_cli_registry_init (&o, "pushed");
        if (kiln_cli_registry_args (&o, g, &kiln_cmd_push, argc, argv, 2, NULL, NULL, NULL) < 0) {
                kiln_cli_registry_clear (&o);
                return KILN_EXIT_USAGE;
        }
        ret = push (&o, g, argv[optind], argv[optind + 1], &err);
        if (ret < 0) {
                kiln_error_wrap (&err, "push %s", argv[optind + 1]);
                kiln_cli_registry_clear (&o);
                return kiln_cli_fail (g, err);
        }
        kiln_cli_registry_clear (&o);
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_push = {
        "push",
        run,
        "push an image on disk to a registry",
        "Usage: kiln push [OPTIONS] SOURCE REFERENCE\n\n"
        "Pushes the image SOURCE (oci:DIR[:TAG], oci-archive:FILE[:TAG] or\n"
        "docker-archive:FILE) to the registry REFERENCE ([HOST[:PORT]/]PATH[:TAG]).\n"
        "Blobs the registry has are not sent again; an unchanged image costs one\n"
        "request.  Prints the manifest digest.\n\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
