/* Fuzz target: WWW-Authenticate challenge parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/auth.h"
#include "kiln/cleanup.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_free char *s = NULL;
        cleanup_error kiln_error *err = NULL;
        kiln_auth_challenge c;

        if (size > 16384)
                return 0;
        s = strndup ((const char *) data, size);
        if (s == NULL)
                return 0;
        if (kiln_auth_challenge_parse (&c, s, &err) == 0) {
                /* Parameters are copies: none may point back into s. */
                if (c.realm && strlen (c.realm) > size)
                        abort ();
                kiln_auth_challenge_clear (&c);
        }
        return 0;
}
