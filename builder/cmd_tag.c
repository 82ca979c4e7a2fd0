/* kiln tag: another tag for a manifest already on a registry. */
#include <stdio.h>

#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/registry.h"

static int
tag (kiln_cli_registry *o, kiln_global *g, const char *src, const char *newtag, kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        cleanup_reference kiln_reference *ref = NULL;
        cleanup_reference kiln_reference *dst = NULL;
        cleanup_free char *name = NULL;
        kiln_registry_manifest m = { 0 };
        char d[KILN_DIGEST_MAX];
        int ret;

        if (kiln_reference_parse (&ref, src, err) < 0)
                return -1;
        if (!kiln_reference_tag_valid (newtag))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "invalid tag `%s`", newtag);
        if (kiln_cli_registry_client (&r, o, &(kiln_global){ .quiet = true }, err) < 0)
                return -1;
        if (kiln_registry_get_manifest (&m, r, ref, err) < 0)
                return -1;
        dst = kiln_reference_with (ref, newtag, NULL);
        ret = kiln_registry_put_manifest (r, dst, m.data, m.len, m.media_type, d, err);
        kiln_registry_manifest_clear (&m);
        if (ret < 0)
                return -1;
        name = kiln_reference_format (dst);
        return kiln_cli_registry_result (o, g, r, name, d, err);
}

static int
run (kiln_global *g, int argc, char **argv)
{
        kiln_cli_registry o;
        kiln_error *err = NULL;
        int ret;

        kiln_cli_registry_init (&o, "read");
        if (kiln_cli_registry_args (&o, g, &kiln_cmd_tag, argc, argv, 2, NULL, NULL, NULL) < 0) {
                kiln_cli_registry_clear (&o);
                return KILN_EXIT_USAGE;
        }
        ret = tag (&o, g, argv[optind], argv[optind + 1], &err);
        kiln_cli_registry_clear (&o);
        if (ret < 0) {
                kiln_error_wrap (&err, "tag %s", argv[optind]);
                return kiln_cli_fail (g, err);
        }
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_tag = {
        "tag",
        run,
        "add a tag to an image on a registry",
        "Usage: kiln tag [OPTIONS] REFERENCE NEWTAG\n\n"
        "Points NEWTAG, in REFERENCE's repository, at the manifest REFERENCE\n"
        "names; no blob moves.  Prints the manifest digest.\n\n" KILN_REGISTRY_HELP
            KILN_GLOBAL_HELP,
};
