/* kiln: fuzz target for layer extraction.  Any input must either extract
 * inside a fresh root or fail cleanly, within small limits. */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Extracted directories may be read-only: open them up (pre-order, so
 * before nftw reads them) for the removal. */
static int
make_writable (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void) ftw;
        if (flag == FTW_D)
                chmod (path, (st->st_mode & 07777) | S_IRWXU);
        return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *dir = NULL;
        cleanup_free char *layer = NULL;
        cleanup_free char *root = NULL;
        char diff_id[KILN_DIGEST_MAX];
        kiln_extract_opts opts;

        if (kiln_mkdtemp (&dir, "fuzz-extract", &err) < 0)
                abort ();
        layer = kiln_strdup_printf ("%s/layer", dir);
        root = kiln_strdup_printf ("%s/root", dir);
        if (kiln_write_file (layer, data, size, 0600, &err) < 0 || mkdir (root, 0755) < 0)
                abort ();
        kiln_extract_opts_init (&opts);
        opts.max_entries = 1000;
        opts.max_bytes = (uint64_t) 16 << 20;
        kiln_layer_extract (layer, root, &opts, diff_id, &err);
        kiln_error_free (kiln_error_take (&err));
        nftw (root, make_writable, 16, FTW_PHYS | FTW_MOUNT);
        if (kiln_rm_rf (dir, &err) < 0)
                abort ();
        return 0;
}
