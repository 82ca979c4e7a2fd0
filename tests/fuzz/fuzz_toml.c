/* Fuzz target: the TOML subset parser.  Whatever parses must be emitted,
 * parse again, and emit the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/toml.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fail (const char *what, const kiln_error *err)
{
        fprintf (stderr, "fuzz_toml: %s: %s\n", what, kiln_error_msg (err));
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_toml kiln_toml *t = NULL;
        cleanup_toml kiln_toml *again = NULL;
        cleanup_toml kiln_toml *copy = NULL;
        cleanup_buf kiln_buf out = KILN_BUF_INIT;
        cleanup_buf kiln_buf out2 = KILN_BUF_INIT;
        cleanup_buf kiln_buf out3 = KILN_BUF_INIT;

        /* Big inputs only slow the fuzzer down; the bound is tested apart. */
        if (kiln_toml_parse (&t, (const char *) data, size, 64 << 10, &err) < 0)
                return 0;
        kiln_toml_get (t, "buildpack.id");
        kiln_toml_get_string (t, "a.b.c");
        if (kiln_toml_emit (&out, t, &err) < 0)
                fail ("emit", err);
        if (kiln_toml_parse (&again, out.data ? out.data : "", out.len, 0, &err) < 0)
                fail ("parse back", err);
        if (kiln_toml_emit (&out2, again, &err) < 0)
                fail ("emit again", err);
        if (out.len != out2.len || (out.len && memcmp (out.data, out2.data, out.len) != 0))
                fail ("output is not a fixed point", NULL);
        copy = kiln_toml_dup (t);
        if (kiln_toml_emit (&out3, copy, &err) < 0)
                fail ("emit copy", err);
        if (out.len != out3.len || (out.len && memcmp (out.data, out3.data, out.len) != 0))
                fail ("a copy emits differently", NULL);
        return 0;
}
