/* kiln: what the files of the layer module share and nothing else sees.
 *
 * A sink takes the uncompressed tar stream, hashes it (diff_id), compresses
 * it, hashes the result (digest) and writes it to a file descriptor.  A
 * source reads a possibly compressed layer from a file descriptor and hands
 * out the uncompressed stream, hashing it and bounding its size. */
#ifndef KILN_LAYER_PRIVATE_H
#define KILN_LAYER_PRIVATE_H

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kiln/layer.h"

/* Large I/O buffers keep syscalls and library calls off the per-byte
 * path. */
#define LAYER_IO_BUF ((size_t) 1 << 20)

#define LAYER_MEDIA_TAR "application/vnd.oci.image.layer.v1.tar"
#define LAYER_MEDIA_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define LAYER_MEDIA_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

/* Cleans a path inside a layer into *out (caller frees): no leading,
 * trailing or double slashes, no "." components; "" is the root.  ".."
 * anywhere is refused, and so is a leading "/" unless allow_absolute.
 * KILN_E_INVALID, quoting the path. */
int layer_clean_path (char **out, const char *path, bool allow_absolute, kiln_error **err);

/* libarchive turns names into and out of the locale's charset, and in
 * the C locale (a program that never calls setlocale) it cannot carry a
 * non-ASCII name at all.  Layer names are UTF-8 bytes whatever the user's
 * locale: these switch the calling thread to C.UTF-8 and back. */
locale_t layer_locale_enter (void);
void layer_locale_leave (locale_t prev);

typedef struct layer_sink layer_sink;

/* A sink writing to fd (not owned).  level 0 is the compression's default;
 * threads >= 1. */
int layer_sink_new (layer_sink **out, int fd, kiln_compression c, int level, int threads,
                    kiln_error **err);

/* Feeds uncompressed bytes. */
int layer_sink_write (layer_sink *s, const void *data, size_t len, kiln_error **err);

/* Ends the stream and fills diff_id, digest, size and tar_size of info. */
int layer_sink_finish (layer_sink *s, kiln_layer_info *info, kiln_error **err);

/* Stops any threads and frees; accepts NULL. */
void layer_sink_free (layer_sink *s);

typedef struct layer_source layer_source;

/* A source reading fd (not owned); the compression is detected from the
 * first bytes.  More than max_bytes of uncompressed data is an error
 * (KILN_E_TOO_LARGE). */
int layer_source_new (layer_source **out, int fd, uint64_t max_bytes, kiln_error **err);

/* Moves decompression and hashing to a thread of their own that reads
 * ahead of the caller (when the machine has more than one CPU).  Errors
 * reach the caller at the read where the stream went wrong. */
int layer_source_prefetch (layer_source *s, kiln_error **err);

/* The compression detected. */
kiln_compression layer_source_compression (const layer_source *s);

/* Points *buf at the next uncompressed bytes (valid until the next call)
 * and returns their count, 0 at the end of the stream, -1 on error. */
ssize_t layer_source_read (layer_source *s, const void **buf, kiln_error **err);

/* Reads and hashes whatever is left, then writes the sha256 of the whole
 * uncompressed stream. */
int layer_source_finish (layer_source *s, char diff_id[KILN_DIGEST_MAX], kiln_error **err);

void layer_source_free (layer_source *s);

/* The parts of a sink its implementations share. */
typedef struct sink_ops {
        int (*write) (layer_sink *s, const void *data, size_t len, kiln_error **err);
        int (*finish) (layer_sink *s, kiln_layer_info *info, kiln_error **err);
        void (*free) (layer_sink *s); /* frees the implementation's parts */
} sink_ops;

struct layer_sink {
        const sink_ops *ops;
        int fd;
        kiln_hasher *tar_hash; /* the uncompressed stream */
        kiln_hasher *out_hash; /* the bytes written */
        uint64_t out_bytes;
};

void sink_init (layer_sink *s, const sink_ops *ops, int fd);

/* Hashes and writes compressed bytes. */
int sink_emit (layer_sink *s, const void *data, size_t len, kiln_error **err);

/* Fills info from the two hashers. */
int sink_finish_hashes (layer_sink *s, kiln_layer_info *info);

int gzip_sink_new (layer_sink **out, int fd, int level, int threads, kiln_error **err);

static inline void
cleanup_sinkp (void *p)
{
        layer_sink_free (*(layer_sink **) p);
}
#define cleanup_sink __attribute__ ((cleanup (cleanup_sinkp)))

static inline void
cleanup_sourcep (void *p)
{
        layer_source_free (*(layer_source **) p);
}
#define cleanup_source __attribute__ ((cleanup (cleanup_sourcep)))

#endif
