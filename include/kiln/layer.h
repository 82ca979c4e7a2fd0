/* kiln: image layers (libarchive; the only module that calls libarchive).
 *
 * Writing is one pass with no temporary copy:
 *   files -> tar -> sha256 (diff_id) -> gzip|zstd -> sha256 (digest) -> file
 * and reproducible: entries sorted by path (byte order), parent directories
 * emitted, mtime = opts.mtime, uid/gid 0 unless keep_owner, empty user and
 * group names, no atime/ctime, pax headers only where ustar cannot hold a
 * value (long names, large files), gzip at a fixed level with an empty
 * header (no name, mtime 0).  The compressed bytes do not depend on the
 * number of threads used.
 *
 * Extraction applies a layer to a root as the OCI image spec says
 * (whiteouts, opaque whiteouts) and refuses anything that would write
 * outside the root. */
#ifndef KILN_LAYER_H
#define KILN_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

/* The documented fixed epoch used when SOURCE_DATE_EPOCH is unset:
 * 1970-01-01T00:00:00Z. */
#define KILN_DEFAULT_EPOCH 0

typedef enum kiln_compression {
        KILN_COMPRESS_GZIP = 0, /* the default */
        KILN_COMPRESS_NONE,
        KILN_COMPRESS_ZSTD,
} kiln_compression;

/* An entry of the layer that belongs to someone else than root, such as
 * a non-root user's home directory. */
typedef struct kiln_layer_owner {
        const char *path; /* the image path, clean: "home/nonroot" */
        unsigned uid, gid;
} kiln_layer_owner;

typedef struct kiln_layer_opts {
        kiln_compression compression;
        int level;       /* 0: the default (gzip 6, zstd 3) */
        int64_t mtime;   /* < 0: kiln_source_date_epoch () */
        bool keep_owner; /* keep uid/gid of the files instead of 0:0 */
        int threads;     /* compression threads; 0: one per online CPU */
        /* Entries whose uid/gid are set to these, whoever owns the file
         * on disk; borrowed, may be NULL.  Applies with or without
         * keep_owner. */
        const kiln_layer_owner *owners;
        size_t n_owners;
} kiln_layer_opts;

/* Initialises opts to the defaults (gzip, level 6, mtime from the
 * environment, root-owned, threads auto). */
void kiln_layer_opts_init (kiln_layer_opts *opts);

/* One input: the file, symlink or directory tree at host_path is placed at
 * image_path (relative, "" or "." for the root; no "..").  Directories are
 * added recursively. */
typedef struct kiln_layer_entry {
        const char *image_path;
        const char *host_path;
} kiln_layer_entry;

typedef struct kiln_layer_info {
        char diff_id[KILN_DIGEST_MAX]; /* sha256 of the uncompressed tar */
        char digest[KILN_DIGEST_MAX];  /* sha256 of the file written */
        uint64_t size;                 /* bytes of the file written */
        uint64_t tar_size;             /* bytes of the uncompressed tar */
        uint64_t entries;              /* tar entries written */
        const char *media_type;        /* OCI layer media type; static */
} kiln_layer_info;

/* SOURCE_DATE_EPOCH when set and valid, else KILN_DEFAULT_EPOCH.  An
 * invalid SOURCE_DATE_EPOCH is an error, so a typo does not silently change
 * every digest. */
int kiln_source_date_epoch (int64_t *out, kiln_error **err);

/* Writes a layer from entries to out_path (created or truncated).  Device
 * nodes and fifos are refused (KILN_E_UNSUPPORTED, naming the file); sockets
 * are skipped; hardlinks within the layer are written as hardlinks.  When
 * two inputs give the same image path the later input wins; a non-directory
 * that another entry lies inside is KILN_E_CONFLICT.  The root itself is
 * not written as an entry.  On failure out_path is removed. */
int kiln_layer_write (kiln_layer_info *out, const kiln_layer_entry *entries, size_t n_entries,
                      const char *out_path, const kiln_layer_opts *opts, kiln_error **err);

/* Shorthand: the tree `dir` placed at `dest` ("" for the root). */
int kiln_layer_write_dir (kiln_layer_info *out, const char *dir, const char *dest,
                          const char *out_path, const kiln_layer_opts *opts, kiln_error **err);

/* The OCI media type for a compression. */
const char *kiln_layer_media_type (kiln_compression c);

typedef struct kiln_extract_opts {
        uint64_t max_entries; /* 0: 1,000,000 */
        uint64_t max_bytes;   /* unpacked bytes; 0: 32 GiB */
        bool keep_owner;      /* chown to the tar's uid/gid (root only) */
        bool no_whiteouts;    /* extract .wh. files as plain files (archives) */
} kiln_extract_opts;

void kiln_extract_opts_init (kiln_extract_opts *opts);

/* Applies the layer in `layer_path` (tar, tar+gzip or tar+zstd, detected by
 * magic) to the directory `root`, which must exist.  Device nodes and fifos
 * in the layer are skipped.  Symlinks on the way to an entry are resolved
 * inside root, as under chroot.  Refuses, with one-line
 * KILN_E_INVALID errors naming the entry: absolute paths, "..", writes
 * through symlinks or to hardlink targets outside the root, and more
 * entries or bytes than the limits (KILN_E_TOO_LARGE).  Never writes
 * outside root.  *diff_id, when not NULL, gets the sha256 of the
 * uncompressed tar. */
int kiln_layer_extract (const char *layer_path, const char *root, const kiln_extract_opts *opts,
                        char diff_id[KILN_DIGEST_MAX], kiln_error **err);

/* As kiln_layer_extract, reading from fd. */
int kiln_layer_extract_fd (int fd, const char *root, const kiln_extract_opts *opts,
                           char diff_id[KILN_DIGEST_MAX], kiln_error **err);

/* The sha256 of the uncompressed content of a (possibly compressed) tar
 * file, without extracting it. */
int kiln_layer_diff_id (char out[KILN_DIGEST_MAX], const char *layer_path, kiln_error **err);

/* Detects compression of a file by its magic bytes. */
int kiln_layer_detect (kiln_compression *out, const char *path, kiln_error **err);

/* The libarchive, zlib and zstd versions in use; static. */
const char *kiln_layer_library_version (void);

#endif
