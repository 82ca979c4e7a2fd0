/* Fuzz target: image configs.  Whatever parses must write back out, and
 * what is written must parse again and write the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/image.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fail (const char *what, const kiln_error *err)
{
        fprintf (stderr, "fuzz_config: %s: %s\n", what, kiln_error_msg (err));
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_config kiln_image_config *c = NULL;
        cleanup_config kiln_image_config *again = NULL;
        cleanup_free char *out = NULL;
        cleanup_free char *out2 = NULL;
        size_t len = 0, len2 = 0;

        if (kiln_config_parse (&c, (const char *) data, size, &err) < 0)
                return 0;
        if (kiln_config_to_json (&out, &len, c, &err) < 0)
                fail ("write", err);
        if (kiln_config_parse (&again, out, len, &err) < 0)
                fail ("read back", err);
        if (kiln_config_to_json (&out2, &len2, again, &err) < 0)
                fail ("write again", err);
        if (len != len2 || memcmp (out, out2, len) != 0)
                fail ("output is not a fixed point", NULL);
        return 0;
}
