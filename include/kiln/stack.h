/* kiln: runtime stacks, run images built from Debian packages.
 *
 * A stack file (stacks/NAME.yaml, see docs/stacks.md) names a Debian
 * suite, an architecture, packages, a user and an Env.  Building it:
 *
 *   1. apt, with a root of its own in the cache directory (never the
 *      host's state), updates its lists and resolves the packages and
 *      their dependencies (`apt-get install --simulate`): the exact
 *      name=version list.
 *   2. The content key is the sha256 of the stack file, that list, the
 *      architecture and SOURCE_DATE_EPOCH.  An image the cache already
 *      holds under that key is the result: nothing is downloaded or
 *      extracted.
 *   3. Otherwise `apt-get download` fetches the .debs into the cache (it
 *      skips those already there and checks each against the archive's
 *      SHA256), and `dpkg-deb --fsys-tarfile` feeds each to
 *      kiln's own extractor (exact modes, nothing outside the tree): no
 *      maintainer script runs.  Documentation, man pages and logs are
 *      removed; /etc/passwd, /etc/group, /tmp, the home directory, an SPDX
 *      SBOM and the packages' control data (for scanners) are added.
 *   4. The tree becomes one reproducible layer over scratch (kiln's layer
 *      writer: mtimes SOURCE_DATE_EPOCH or 0, owners 0:0 but the home
 *      directory's), with a config that runs as uid:gid of the user.
 *
 * The cache directory holds: apt/ (apt's roots and lists, one per
 * mirror, suite and architecture), debs/ (downloaded packages, shared by
 * all stacks), images/ (an OCI layout whose tags are content keys) and
 * files/ (which key the last build of a given stack file gave). */
#ifndef KILN_STACK_H
#define KILN_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "image.h"
#include "kv.h"

/* A base named "kiln-stack:NAME" is stacks/NAME.yaml, built on first use. */
#define KILN_STACK_PREFIX "kiln-stack:"

/* Labels of a stack image. */
#define KILN_LABEL_STACK_NAME "dev.kiln.stack.name"
#define KILN_LABEL_STACK_ID "dev.kiln.stack.id"
#define KILN_LABEL_STACK_SUITE "dev.kiln.stack.suite"
#define KILN_LABEL_STACK_PACKAGES "dev.kiln.stack.packages"

/* Where the SBOM lives inside a stack image. */
#define KILN_STACK_SBOM_PATH "usr/share/kiln/sbom.spdx.json"

#define KILN_STACK_MAX_SIZE ((size_t) 256 << 10)
#define KILN_STACK_MAX_PACKAGES 1024

typedef struct kiln_stack {
        char *name;         /* [a-z0-9][a-z0-9._-]* */
        char *suite;        /* "bookworm" */
        char *architecture; /* Debian's name ("amd64"); NULL: the host's */
        char *mirror;       /* NULL: the host's apt source for suite, else deb.debian.org */
        char *keyring;      /* NULL: the host's Signed-By, else Debian's archive keyring */
        char **sources;     /* strv of "URI SUITE [COMPONENT...]": more apt sources; may be NULL */
        char **packages;    /* strv, as given */
        char **exclude;     /* strv: resolved but left out of the image; may be NULL */
        char **remove;      /* strv: absolute glob(3) patterns deleted from the tree */
        char *user;         /* default "nonroot" */
        int64_t uid, gid;   /* default 65532 */
        char *home;         /* default /home/USER */
        kiln_kvs env;
        char *path;      /* the file it came from, for messages; may be NULL */
        char *file_hash; /* sha256 of the file's bytes */
} kiln_stack;

/* Parses a stack file's text (the YAML subset of docs/stacks.md) and
 * checks its fields.  Errors are KILN_E_INVALID, one line,
 * "`PATH`: line N: WHAT" (PATH "stack" when path is NULL).  *out is the
 * caller's. */
int kiln_stack_parse (kiln_stack **out, const char *data, size_t len, const char *path,
                      kiln_error **err);

/* Reads and parses a file (bounded by KILN_STACK_MAX_SIZE). */
int kiln_stack_load (kiln_stack **out, const char *path, kiln_error **err);

void kiln_stack_free (kiln_stack *s);

static inline void
cleanup_stackp (void *p)
{
        kiln_stack_free (*(kiln_stack **) p);
}
#define cleanup_stack __attribute__ ((cleanup (cleanup_stackp)))

/* Debian's architecture name for a platform ("amd64", "arm64", "armhf",
 * ...), or NULL for one Debian does not build; static.  And back: the
 * platform for a Debian architecture (the caller's), or NULL. */
const char *kiln_stack_debian_arch (const kiln_platform *p);
kiln_platform *kiln_stack_platform (const char *debian_arch);

/* The first URI (and its Signed-By keyring, NULL when it has none) of
 * the apt sources under etc_apt (normally "/etc/apt": sources.list and
 * sources.list.d/, one-line and deb822) that offers `suite` with the main
 * component.  Returns 1 when found, 0 when not; both outputs are the
 * caller's. */
int kiln_stack_host_mirror (char **uri, char **keyring, const char *etc_apt, const char *suite);

typedef struct kiln_stack_build_opts {
        const char *cache_dir; /* NULL: kiln_stack_default_cache_dir () */
        int64_t created;       /* < 0: SOURCE_DATE_EPOCH when set, else 0 */
        /* Reuse what the last build of this exact file gave, without asking
         * the archive for newer versions (kiln-stack: bases do). */
        bool reuse;
} kiln_stack_build_opts;

typedef struct kiln_stack_result {
        char *location; /* "oci:CACHE/images:KEY", usable as a base; owned */
        char *layout;   /* CACHE/images; owned */
        char digest[KILN_DIGEST_MAX];
        char key[KILN_DIGEST_MAX]; /* the content key, also label dev.kiln.stack.id */
        char **packages;           /* "name=version", sorted, as in the image; owned */
        bool cached;               /* found in the cache, not built */
} kiln_stack_result;

void kiln_stack_result_clear (kiln_stack_result *r);

/* Builds the stack (or finds it in the cache) as described above.  Errors
 * name the stack file; a package apt cannot find is named
 * ("`stacks/x.yaml`: package `nosuch` is not in bookworm (amd64)"). */
int kiln_stack_build (kiln_stack_result *out, const kiln_stack *s, const kiln_stack_build_opts *o,
                      kiln_error **err);

/* $KILN_CACHE_DIR/stacks, else $XDG_CACHE_HOME/kiln/stacks, else
 * $HOME/.cache/kiln/stacks, else /var/cache/kiln/stacks; the caller's. */
char *kiln_stack_default_cache_dir (void);

/* The stacks directory for kiln-stack: names: stacks_dir when not NULL,
 * else $KILN_STACKS_DIR, else NULL. */
const char *kiln_stack_dir (const char *stacks_dir);

/* For a base named "kiln-stack:NAME": builds stacks_dir/NAME.yaml on
 * first use (or reuses the image the last build of a file with the same
 * content gave) and sets *location to "oci:DIR:TAG" (the caller's).  The
 * architecture is the stack file's, else platform's (NULL: the host's);
 * a stack file that names another one than platform is KILN_E_INVALID. */
int kiln_stack_resolve_base (char **location, const char *name, const char *stacks_dir,
                             const char *cache_dir, const kiln_platform *platform,
                             kiln_error **err);

#endif
