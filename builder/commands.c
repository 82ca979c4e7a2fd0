/* kiln: the command table, in the order `kiln --help` lists it. */
#include <stddef.h>

#include "kiln/cli.h"

const kiln_command *const kiln_commands[] = {
        &kiln_cmd_append,
        &kiln_cmd_layer,
        &kiln_cmd_version,
        NULL,
};
