/* Fuzz target: v1alpha1 <-> v1beta1 conversion and the Table view of any
 * JSON a client sends.  The first byte picks the kind; nothing may crash
 * or leak, whatever the shape. */
#include <stdint.h>
#include <stdlib.h>

#include "kiln/serve.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        static const char *const kinds[]
            = { "Build", "BuildRun", "BuildStrategy", "ClusterBuildStrategy", "Secret" };
        const char *kind;
        json_t *in, *up, *down, *again;
        kiln_view v;

        if (size == 0)
                return 0;
        kind = kinds[data[0] % 5];
        in = json_loadb ((const char *) data + 1, size - 1, 0, NULL);
        if (in == NULL)
                return 0;
        up = kiln_convert_up (in, kind);
        down = kiln_convert_down (up, kind);
        again = kiln_convert_up (down, kind);
        kiln_view_init (&v, kind, data[0] & 8, "application/json;as=Table;v=v1;g=meta.k8s.io",
                        data[0] & 16 ? "Object" : NULL);
        json_t *items = json_pack ("[O,O]", up, down);
        json_t *meta = json_object ();
        json_t *t = kiln_view_list (&v, items, "List", "v1", meta);
        json_decref (t);
        json_decref (items);
        json_decref (meta);
        json_decref (again);
        json_decref (down);
        json_decref (up);
        json_decref (in);
        return 0;
}
