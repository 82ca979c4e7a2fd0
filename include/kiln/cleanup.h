/* kiln: cleanup you cannot forget (the compiler's cleanup attribute). */
#ifndef KILN_CLEANUP_H
#define KILN_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

static inline void
cleanup_freep (void *p)
{
        free (*(void **) p);
}

static inline void
cleanup_closep (void *p)
{
        int *fd = (int *) p;
        if (*fd >= 0) {
                int saved = errno;
                close (*fd);
                errno = saved;
        }
}

static inline void
cleanup_filep (void *p)
{
        FILE **f = (FILE **) p;
        if (*f)
                fclose (*f);
}

static inline void
cleanup_dirp (void *p)
{
        DIR **d = (DIR **) p;
        if (*d)
                closedir (*d);
}

static inline void
cleanup_errorp (void *p)
{
        kiln_error_free (*(kiln_error **) p);
}

static inline void
cleanup_strvp (void *p)
{
        char **v = *(char ***) p;
        if (v == NULL)
                return;
        for (char **i = v; *i; i++)
                free (*i);
        free (v);
}

#define cleanup_free __attribute__ ((cleanup (cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (cleanup_closep)))
#define cleanup_file __attribute__ ((cleanup (cleanup_filep)))
#define cleanup_dir __attribute__ ((cleanup (cleanup_dirp)))
#define cleanup_error __attribute__ ((cleanup (cleanup_errorp)))
#define cleanup_strv __attribute__ ((cleanup (cleanup_strvp)))

/* Hands an owned pointer on: returns *pp and clears it, so the cleanup
 * handler of the local does nothing. */
static inline void *
kiln_steal_pointer (void *pp)
{
        void **p = (void **) pp;
        void *r = *p;
        *p = NULL;
        return r;
}
#define steal_pointer(pp) kiln_steal_pointer (pp)

/* As steal_pointer, for a file descriptor. */
static inline int
kiln_steal_fd (int *fd)
{
        int r = *fd;
        *fd = -1;
        return r;
}

#define KILN_N_ELEMENTS(a) (sizeof (a) / sizeof ((a)[0]))

#endif
