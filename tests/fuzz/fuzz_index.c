/* Fuzz target: image indexes and manifest lists.  Whatever parses must write back out, and
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
        fprintf (stderr, "fuzz_index: %s: %s\n", what, kiln_error_msg (err));
        abort ();
}

/* Selection walks every entry's platform; it must not trip on any. */
static void
select_host (const kiln_index *x)
{
        kiln_platform *host = kiln_platform_host ();
        const kiln_descriptor *d = NULL;

        kiln_index_select (&d, x, host, NULL);
        kiln_platform_free (host);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_index kiln_index *x = NULL;
        cleanup_index kiln_index *again = NULL;
        cleanup_free char *out = NULL;
        cleanup_free char *out2 = NULL;
        size_t len = 0, len2 = 0;

        kiln_manifest_kind_of ((const char *) data, size, NULL);
        if (kiln_index_parse (&x, (const char *) data, size, &err) < 0)
                return 0;
        select_host (x);
        if (kiln_index_to_json (&out, &len, x, &err) < 0)
                fail ("write", err);
        if (kiln_index_parse (&again, out, len, &err) < 0)
                fail ("read back", err);
        if (kiln_index_to_json (&out2, &len2, again, &err) < 0)
                fail ("write again", err);
        if (len != len2 || memcmp (out, out2, len) != 0)
                fail ("output is not a fixed point", NULL);
        return 0;
}
