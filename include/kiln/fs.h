/* kiln: file-tree helpers shared by the source and lifecycle modules. */
#ifndef KILN_FS_H
#define KILN_FS_H

#include <stdbool.h>

#include "error.h"

/* Copies the tree at src into dst (created if missing; existing files are
 * replaced).  Regular files keep their permission bits, symlinks are copied
 * as symlinks (never followed), directories are recursed; fifos, sockets
 * and devices are skipped.  Entries named in `skip` (a NULL-terminated list
 * of names, matched at any depth; may be NULL) are left out.  Ownership and
 * times are not kept. */
int kiln_copy_tree (const char *src, const char *dst, const char *const *skip, kiln_error **err);

/* Moves src to dst: rename(2) when both are on one file system, else a
 * copy followed by removal of src.  dst must not exist. */
int kiln_move_tree (const char *src, const char *dst, kiln_error **err);

/* True when rel is a safe relative path: not absolute, no `..` component,
 * no NUL.  "" and "." are safe (the root itself). */
bool kiln_path_is_relative_safe (const char *rel);

/* Resolves root/rel, following symlinks, and checks that the result stays
 * inside root (KILN_E_INVALID "`REL` escapes ..." otherwise).  The result
 * must exist (KILN_E_NOT_FOUND).  *out is the caller's: an absolute path
 * with no symlinks. */
int kiln_path_resolve_within (char **out, const char *root, const char *rel, kiln_error **err);

/* True if path is an existing directory (following symlinks). */
bool kiln_is_dir (const char *path);

#endif
