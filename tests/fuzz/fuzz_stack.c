/* Fuzz target: stack files (the YAML subset and their fields).  Whatever
 * parses must hold what the checks promise; every error is one line
 * naming the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/stack.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fail (const char *what, const char *detail)
{
        fprintf (stderr, "fuzz_stack: %s: %s\n", what, detail ? detail : "");
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_stack kiln_stack *s = NULL;

        if (kiln_stack_parse (&s, (const char *) data, size, "f.yaml", &err) < 0) {
                if (err == NULL || strchr (err->msg, '\n') || strncmp (err->msg, "`f.yaml`: ", 10))
                        fail ("error", kiln_error_msg (err));
                return 0;
        }
        if (s->name == NULL || s->suite == NULL || kiln_strv_len (s->packages) == 0)
                fail ("a required field is missing", NULL);
        if (s->uid <= 0 || s->gid <= 0 || s->home == NULL || s->home[0] != '/')
                fail ("the user", s->user);
        for (char **r = s->remove; r && *r; r++)
                if ((*r)[0] != '/' || strstr (*r, "/../"))
                        fail ("remove", *r);
        return 0;
}
