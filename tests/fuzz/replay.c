/* kiln: replays a fuzz target's corpus without libFuzzer, so every kept
 * input runs in ordinary CI (after libgit2's standalone_driver.c). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *data = NULL;
        size_t len = 0;

        if (kiln_read_file (&data, &len, path, (size_t) 256 << 20, &err) < 0) {
                fprintf (stderr, "replay: %s\n", err->msg);
                return -1;
        }
        LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
        return 0;
}

int
main (int argc, char **argv)
{
        int n = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                cleanup_dir DIR *d = NULL;
                struct dirent *e;

                if (stat (argv[i], &st) < 0) {
                        fprintf (stderr, "replay: no corpus at %s\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR (st.st_mode)) {
                        if (run_file (argv[i]) < 0)
                                return 1;
                        n++;
                        continue;
                }
                d = opendir (argv[i]);
                while (d && (e = readdir (d))) {
                        cleanup_free char *p = NULL;
                        if (e->d_name[0] == '.')
                                continue;
                        p = kiln_strdup_printf ("%s/%s", argv[i], e->d_name);
                        if (run_file (p) < 0)
                                return 1;
                        n++;
                }
        }
        printf ("%d inputs replayed\n", n);
        return 0;
}
