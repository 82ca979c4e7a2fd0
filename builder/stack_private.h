/* kiln: what stack.c and stack_apt.c share: driving apt and dpkg-deb. */
#ifndef KILN_STACK_PRIVATE_H
#define KILN_STACK_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/stack.h"

/* One package of the resolved set. */
typedef struct stack_pkg {
        char *name;
        char *version;
        char *arch;
        bool excluded;                /* resolved, but left out of the image */
        char *deb;                    /* the .deb in the cache (after fetch) */
        char *control;                /* its control paragraph (after extract) */
        char *source;                 /* the source package and its version */
        char *source_version;         /* (after extract) */
        char sha256[KILN_DIGEST_MAX]; /* of the .deb (after extract) */
} stack_pkg;

void stack_pkgs_free (stack_pkg *p, size_t n);

/* apt with a root of its own under CACHE/apt/, for one mirror, suite and
 * architecture; .debs go to CACHE/debs/. */
typedef struct stack_apt stack_apt;

int stack_apt_open (stack_apt **out, const kiln_stack *s, const char *arch, const char *cache_dir,
                    kiln_error **err);
void stack_apt_free (stack_apt *a);

/* apt-get update: the lists kept from last time are only fetched again
 * when the archive changed. */
int stack_apt_update (stack_apt *a, kiln_error **err);

/* The packages and their dependencies, sorted by name; excluded ones are
 * marked (naming one that is not in the set is an error). */
int stack_apt_resolve (stack_pkg **out, size_t *n, stack_apt *a, kiln_error **err);

/* Downloads the .debs of the packages not excluded (apt skips those the
 * cache holds) and sets their deb paths. */
int stack_apt_fetch (stack_apt *a, stack_pkg *pkgs, size_t n, kiln_error **err);

/* Unpacks a package into tree (no maintainer scripts) and reads its
 * control data and checksum. */
int stack_apt_extract (stack_apt *a, stack_pkg *p, const char *tree, kiln_error **err);

#endif
