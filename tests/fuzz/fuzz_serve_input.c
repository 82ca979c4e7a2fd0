/* Fuzz target: what kiln serve reads from outside besides JSON itself:
 * strategy YAML, and JSON patch documents applied to an object.  The
 * first byte picks which; neither may crash, leak or loop. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/cleanup.h"
#include "kiln/serve.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fuzz_yaml (const char *s, size_t n)
{
        kiln_error *err = NULL;
        json_t *docs = NULL;

        if (kiln_yaml_parse (&docs, s, n, &err) == 0)
                json_decref (docs);
        kiln_error_free (err);
}

static void
fuzz_patch (const char *s, size_t n)
{
        kiln_error *err = NULL;
        json_t *doc = json_loads ("{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"1\"}},"
                                  "\"spec\":{\"list\":[1,2,3],\"o\":{\"k\":\"v\"}}}",
                                  0, NULL);
        json_t *ops = json_loadb (s, n, 0, NULL);

        if (ops) {
                if (json_is_object (ops))
                        kiln_merge_patch (doc, ops);
                else
                        kiln_json_patch (&doc, ops, &err);
        }
        kiln_error_free (err);
        json_decref (ops);
        json_decref (doc);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        if (data[0] & 1)
                fuzz_yaml ((const char *) data + 1, size - 1);
        else
                fuzz_patch ((const char *) data + 1, size - 1);
        return 0;
}
