/* kiln copy: an image from anywhere to anywhere (registry, layout,
 * archive), keeping its digest. */
#include <stdio.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/layout.h"
#include "kiln/registry.h"

static int
copy (kiln_cli_registry *o, kiln_global *g, const char *src, const char *dst, kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        cleanup_reference kiln_reference *sref = NULL;
        cleanup_reference kiln_reference *dref = NULL;
        cleanup_local_image kiln_local_image *img = NULL;
        kiln_location sloc = { 0 }, dloc = { 0 };
        char digest[KILN_DIGEST_MAX];
        int ret = -1;

        if (kiln_location_parse (&sloc, src, err) < 0)
                return -1;
        if (kiln_location_parse (&dloc, dst, err) < 0)
                goto out;
        if (sloc.transport == KILN_TRANSPORT_REGISTRY
            && kiln_reference_parse (&sref, sloc.path, err) < 0)
                goto out;
        if (dloc.transport == KILN_TRANSPORT_REGISTRY
            && kiln_reference_parse (&dref, dloc.path, err) < 0)
                goto out;
        if (dloc.transport == KILN_TRANSPORT_SCRATCH) {
                kiln_error_makec (err, KILN_E_INVALID, 0, "cannot copy to scratch");
                goto out;
        }
        if (kiln_cli_registry_client (&r, o, g, err) < 0)
                goto out;
        if (sref && dref) {
                ret = kiln_registry_copy (r, sref, dref, o->platform, digest, err);
        } else if (sref) {
                ret = kiln_cli_pull_to (r, o, sref, &dloc, digest, err);
        } else {
                if (kiln_local_image_open (&img, &sloc, o->platform, err) < 0)
                        goto out;
                if (dref) {
                        ret = kiln_registry_push_local (r, img, dref, digest, err);
                } else if (img->layout_dir == NULL) {
                        ret = kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                                "cannot copy scratch to disk");
                } else {
                        kiln_strlcpy (digest, img->manifest_digest, sizeof digest);
                        ret = kiln_layout_export (img->layout_dir, digest, &dloc, err);
                }
        }
        if (ret == 0)
                ret = kiln_cli_registry_result (o, g, r, dst, digest, err);
out:
        kiln_location_clear (&sloc);
        kiln_location_clear (&dloc);
        return ret;
}

static int
run (kiln_global *g, int argc, char **argv)
{
        kiln_cli_registry o;
        kiln_error *err = NULL;
        int ret;

        kiln_cli_registry_init (&o, "copied");
        if (kiln_cli_registry_args (&o, g, &kiln_cmd_copy, argc, argv, 2, NULL, NULL, NULL) < 0) {
                kiln_cli_registry_clear (&o);
                return KILN_EXIT_USAGE;
        }
        ret = copy (&o, g, argv[optind], argv[optind + 1], &err);
        kiln_cli_registry_clear (&o);
        if (ret < 0) {
                kiln_error_wrap (&err, "copy %s to %s", argv[optind], argv[optind + 1]);
                return kiln_cli_fail (g, err);
        }
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_copy = {
        "copy",
        run,
        "copy an image between registries, layouts and archives",
        "Usage: kiln copy [OPTIONS] SOURCE DESTINATION\n\n"
        "Copies one image, byte for byte (the digest stays the same).  SOURCE and\n"
        "DESTINATION are registry references or oci:DIR[:TAG],\n"
        "oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG].  Between two\n"
        "repositories of one registry blobs are mounted, not copied; between\n"
        "registries they are streamed through.  Prints the manifest digest.\n\n" KILN_REGISTRY_HELP
            KILN_GLOBAL_HELP,
};
