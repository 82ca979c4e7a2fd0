/* Fuzz target: image reference parsing, and format/parse round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/reference.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_free char *s = NULL;
        cleanup_error kiln_error *err = NULL;
        kiln_reference *r = NULL;

        if (size > 4096)
                return 0;
        s = strndup ((const char *) data, size);
        if (s == NULL)
                return 0;
        kiln_registry_host_is_loopback (s);
        free (kiln_registry_auth_key (s));
        if (kiln_reference_parse (&r, s, &err) == 0) {
                cleanup_free char *f = kiln_reference_format (r);
                kiln_reference *again = NULL;
                kiln_error *err2 = NULL;
                /* What kiln writes, kiln reads back identically. */
                if (kiln_reference_parse (&again, f, &err2) < 0)
                        abort ();
                cleanup_free char *f2 = kiln_reference_format (again);
                if (strcmp (f, f2) != 0)
                        abort ();
                kiln_reference_free (again);
                kiln_reference_free (r);
        }
        return 0;
}
