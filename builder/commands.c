/* kiln: the command table, in the order `kiln --help` lists it. */
#include <stddef.h>

#include "kiln/cli.h"

const kiln_command *const kiln_commands[] = {
        &kiln_cmd_build,
        &kiln_cmd_append,
        &kiln_cmd_rebase,
        &kiln_cmd_layer,
        &kiln_cmd_pull,
        &kiln_cmd_push,
        &kiln_cmd_copy,
        &kiln_cmd_inspect,
        &kiln_cmd_digest,
        &kiln_cmd_tag,
        &kiln_cmd_stack,
        &kiln_cmd_serve,
        &kiln_cmd_image_processing,
        &kiln_cmd_get,
        &kiln_cmd_apply,
        &kiln_cmd_delete,
        &kiln_cmd_logs,
        &kiln_cmd_cancel,
        &kiln_cmd_upload,
        &kiln_cmd_version,
        NULL,
};
