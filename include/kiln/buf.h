/* kiln: bounded buffers and string helpers.
 *
 * A kiln_buf grows on demand up to `max` bytes (0 means the default, 64 MiB)
 * and refuses to grow past it with KILN_E_TOO_LARGE, so a buffer filled from
 * the network is bounded before anything is allocated.  data is always
 * NUL-terminated (the terminator is not counted in len). */
#ifndef KILN_BUF_H
#define KILN_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define KILN_BUF_DEFAULT_MAX ((size_t) 64 << 20)

typedef struct kiln_buf {
        char *data; /* owned; NULL until the first append */
        size_t len;
        size_t cap;
        size_t max; /* 0: KILN_BUF_DEFAULT_MAX */
} kiln_buf;

#define KILN_BUF_INIT                                                                              \
        {                                                                                          \
                NULL, 0, 0, 0                                                                      \
        }

/* Sets the bound; does not shrink existing content. */
void kiln_buf_init (kiln_buf *b, size_t max);

/* Makes room for `extra` more bytes plus the terminator. */
int kiln_buf_reserve (kiln_buf *b, size_t extra, kiln_error **err);

int kiln_buf_append (kiln_buf *b, const void *data, size_t len, kiln_error **err);
int kiln_buf_puts (kiln_buf *b, const char *s, kiln_error **err);
int kiln_buf_printf (kiln_buf *b, kiln_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Empties the buffer, keeping its memory. */
void kiln_buf_reset (kiln_buf *b);

/* Hands the content to the caller (NUL-terminated, never NULL) and resets b. */
char *kiln_buf_steal (kiln_buf *b, size_t *len);

/* Frees the content; b may be reused afterwards. */
void kiln_buf_free (kiln_buf *b);

static inline void
cleanup_bufp (void *p)
{
        kiln_buf_free ((kiln_buf *) p);
}
#define cleanup_buf __attribute__ ((cleanup (cleanup_bufp)))

/* Reads a whole file, refusing more than `max` bytes with KILN_E_TOO_LARGE.
 * *out is the caller's (NUL-terminated). */
int kiln_read_file (char **out, size_t *len, const char *path, size_t max, kiln_error **err);

/* Reads an fd to its end, bounded as kiln_read_file. */
int kiln_read_fd (char **out, size_t *len, int fd, size_t max, kiln_error **err);

/* Writes a whole file atomically (temporary file, fsync, rename) with `mode`. */
int kiln_write_file (const char *path, const void *data, size_t len, int mode, kiln_error **err);

/* Writes all of `len` bytes, retrying short writes and EINTR. */
int kiln_write_all (int fd, const void *data, size_t len, kiln_error **err);

/* Copies at most size-1 bytes and always terminates.  Returns strlen(src),
 * so a result >= size means the copy was truncated. */
size_t kiln_strlcpy (char *dst, const char *src, size_t size);

/* Formats into a fixed buffer; returns -1 with KILN_E_TOO_LARGE if it does
 * not fit. */
int kiln_snprintf (char *dst, size_t size, kiln_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

/* malloc'd printf; aborts on out-of-memory. */
char *kiln_strdup_printf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* strdup that aborts on out-of-memory; NULL gives NULL. */
char *kiln_strdup (const char *s);

/* calloc/realloc that abort on out-of-memory or size overflow. */
void *kiln_calloc (size_t n, size_t size);
void *kiln_reallocarray (void *p, size_t n, size_t size);

/* Parses a whole decimal string into an int64 in [min, max]. */
int kiln_parse_int64 (const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses a size such as "64", "10k", "512M", "2G" (powers of 1024). */
int kiln_parse_size (const char *s, uint64_t *out);

/* Parses a duration such as "90", "90s", "5m", "1h", "250ms" into ms. */
int kiln_parse_duration_ms (const char *s, int64_t *out);

/* True if s starts with prefix. */
bool kiln_str_has_prefix (const char *s, const char *prefix);
bool kiln_str_has_suffix (const char *s, const char *suffix);

/* Creates a directory and its parents (mode 0755); existing is fine. */
int kiln_mkdir_p (const char *path, int mode, kiln_error **err);

/* Removes a tree; a missing path is fine.  Never follows symlinks. */
int kiln_rm_rf (const char *path, kiln_error **err);

/* Creates a fresh private directory under $TMPDIR (or /tmp) named
 * kiln-PREFIX-XXXXXX.  *out is the caller's. */
int kiln_mkdtemp (char **out, const char *prefix, kiln_error **err);

#endif
