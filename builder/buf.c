/* kiln: bounded buffers, string and file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"

void *
kiln_calloc (size_t n, size_t size)
{
        void *p = calloc (n ? n : 1, size ? size : 1);
        if (p == NULL)
                abort ();
        return p;
}

void *
kiln_reallocarray (void *p, size_t n, size_t size)
{
        void *r;
        if (size && n > SIZE_MAX / size)
                abort ();
        r = realloc (p, (n * size) != 0 ? n * size : 1);
        if (r == NULL)
                abort ();
        return r;
}

char *
kiln_strdup (const char *s)
{
        char *r;
        if (s == NULL)
                return NULL;
        r = strdup (s);
        if (r == NULL)
                abort ();
        return r;
}

char *
kiln_strdup_printf (const char *fmt, ...)
{
        va_list ap;
        char *r = NULL;

        va_start (ap, fmt);
        if (vasprintf (&r, fmt, ap) < 0)
                abort ();
        va_end (ap);
        return r;
}

size_t
kiln_strlcpy (char *dst, const char *src, size_t size)
{
        size_t n = strlen (src);
        if (size) {
                size_t c = n < size - 1 ? n : size - 1;
                memcpy (dst, src, c);
                dst[c] = '\0';
        }
        return n;
}

int
kiln_snprintf (char *dst, size_t size, kiln_error **err, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start (ap, fmt);
        n = vsnprintf (dst, size, fmt, ap);
        va_end (ap);
        if (n < 0 || (size_t) n >= size)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "text longer than %zu bytes",
                                         size - 1);
        return 0;
}

void
kiln_buf_init (kiln_buf *b, size_t max)
{
        b->max = max;
}

static size_t
buf_max (const kiln_buf *b)
{
        return b->max ? b->max : KILN_BUF_DEFAULT_MAX;
}

int
kiln_buf_reserve (kiln_buf *b, size_t extra, kiln_error **err)
{
        size_t need, cap;

        if (extra > buf_max (b) || b->len > buf_max (b) - extra)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "data exceeds the limit of %zu bytes", buf_max (b));
        need = b->len + extra + 1;
        if (need <= b->cap)
                return 0;
        cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        b->data = kiln_reallocarray (b->data, cap, 1);
        b->cap = cap;
        return 0;
}

int
kiln_buf_append (kiln_buf *b, const void *data, size_t len, kiln_error **err)
{
        if (kiln_buf_reserve (b, len, err) < 0)
                return -1;
        if (len)
                memcpy (b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

int
kiln_buf_puts (kiln_buf *b, const char *s, kiln_error **err)
{
        return kiln_buf_append (b, s, strlen (s), err);
}

int
kiln_buf_printf (kiln_buf *b, kiln_error **err, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start (ap, fmt);
        n = vsnprintf (NULL, 0, fmt, ap);
        va_end (ap);
        if (n < 0)
                return kiln_error_make (err, errno, "format");
        if (kiln_buf_reserve (b, (size_t) n, err) < 0)
                return -1;
        va_start (ap, fmt);
        vsnprintf (b->data + b->len, (size_t) n + 1, fmt, ap);
        va_end (ap);
        b->len += (size_t) n;
        return 0;
}

void
kiln_buf_reset (kiln_buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

char *
kiln_buf_steal (kiln_buf *b, size_t *len)
{
        char *r = b->data ? b->data : kiln_strdup ("");
        if (len)
                *len = b->len;
        b->data = NULL;
        b->len = b->cap = 0;
        return r;
}

void
kiln_buf_free (kiln_buf *b)
{
        free (b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

int
kiln_read_fd (char **out, size_t *len, int fd, size_t max, kiln_error **err)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        char chunk[65536];

        kiln_buf_init (&b, max);
        for (;;) {
                ssize_t n = read (fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kiln_error_make (err, errno, "read");
                if (n == 0)
                        break;
                if (kiln_buf_append (&b, chunk, (size_t) n, err) < 0)
                        return -1;
        }
        *out = kiln_buf_steal (&b, len);
        return 0;
}

int
kiln_read_file (char **out, size_t *len, const char *path, size_t max, kiln_error **err)
{
        cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return kiln_error_make (err, errno, "open `%s`", path);
        if (kiln_read_fd (out, len, fd, max, err) < 0)
                return kiln_error_wrap (err, "read `%s`", path);
        return 0;
}

int
kiln_write_all (int fd, const void *data, size_t len, kiln_error **err)
{
        const char *p = data;
        while (len) {
                ssize_t n = write (fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kiln_error_make (err, errno, "write");
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int
kiln_write_file (const char *path, const void *data, size_t len, int mode, kiln_error **err)
{
        cleanup_free char *tmp = kiln_strdup_printf ("%s.tmp-XXXXXX", path);
        cleanup_close int fd = mkostemp (tmp, O_CLOEXEC);

        if (fd < 0)
                return kiln_error_make (err, errno, "create `%s`", path);
        if (kiln_write_all (fd, data, len, err) < 0 || fchmod (fd, (mode_t) mode) < 0
            || fsync (fd) < 0) {
                kiln_error_make (err, errno, "write `%s`", path);
                unlink (tmp);
                return kiln_error_wrap (err, "`%s`", path);
        }
        if (rename (tmp, path) < 0) {
                int e = errno;
                unlink (tmp);
                return kiln_error_make (err, e, "rename to `%s`", path);
        }
        return 0;
}

int
kiln_parse_int64 (const char *s, int64_t min, int64_t max, int64_t *out)
{
        char *end;
        long long v;

        if (s == NULL || *s == '\0')
                return -1;
        errno = 0;
        v = strtoll (s, &end, 10);
        if (errno || *end != '\0' || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

/* Splits "123xyz" into 123 and "xyz"; the number must fit in a uint64. */
static int
parse_number_suffix (const char *s, uint64_t *num, const char **suffix)
{
        char *end;
        unsigned long long v;

        if (s == NULL || *s < '0' || *s > '9')
                return -1;
        errno = 0;
        v = strtoull (s, &end, 10);
        if (errno)
                return -1;
        *num = v;
        *suffix = end;
        return 0;
}

int
kiln_parse_size (const char *s, uint64_t *out)
{
        uint64_t v, mul = 1;
        const char *suf;

        if (parse_number_suffix (s, &v, &suf) < 0)
                return -1;
        if (*suf == 'k' || *suf == 'K')
                mul = 1ULL << 10;
        else if (*suf == 'm' || *suf == 'M')
                mul = 1ULL << 20;
        else if (*suf == 'g' || *suf == 'G')
                mul = 1ULL << 30;
        else if (*suf != '\0')
                return -1;
        if (*suf && suf[1] != '\0' && strcmp (suf + 1, "i") != 0 && strcmp (suf + 1, "B") != 0
            && strcmp (suf + 1, "iB") != 0)
                return -1;
        if (v > UINT64_MAX / mul)
                return -1;
        *out = v * mul;
        return 0;
}

int
kiln_parse_duration_ms (const char *s, int64_t *out)
{
        uint64_t v, mul;
        const char *suf;

        if (parse_number_suffix (s, &v, &suf) < 0)
                return -1;
        if (strcmp (suf, "ms") == 0)
                mul = 1;
        else if (*suf == '\0' || strcmp (suf, "s") == 0)
                mul = 1000;
        else if (strcmp (suf, "m") == 0)
                mul = 60000;
        else if (strcmp (suf, "h") == 0)
                mul = 3600000;
        else
                return -1;
        if (v > (uint64_t) INT64_MAX / mul)
                return -1;
        *out = (int64_t) (v * mul);
        return 0;
}

bool
kiln_str_has_prefix (const char *s, const char *prefix)
{
        return strncmp (s, prefix, strlen (prefix)) == 0;
}

bool
kiln_str_has_suffix (const char *s, const char *suffix)
{
        size_t a = strlen (s), b = strlen (suffix);
        return a >= b && memcmp (s + a - b, suffix, b) == 0;
}

int
kiln_mkdir_p (const char *path, int mode, kiln_error **err)
{
        cleanup_free char *p = kiln_strdup (path);

        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir (p, (mode_t) mode) < 0 && errno != EEXIST)
                        return kiln_error_make (err, errno, "mkdir `%s`", p);
                *s = '/';
        }
        if (mkdir (p, (mode_t) mode) < 0 && errno != EEXIST)
                return kiln_error_make (err, errno, "mkdir `%s`", p);
        return 0;
}

static int
rm_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void) st;
        (void) ftw;
        if (flag == FTW_DP)
                return rmdir (path) < 0 && errno != ENOENT ? -1 : 0;
        return unlink (path) < 0 && errno != ENOENT ? -1 : 0;
}

int
kiln_rm_rf (const char *path, kiln_error **err)
{
        struct stat st;

        if (lstat (path, &st) < 0)
                return errno == ENOENT ? 0 : kiln_error_make (err, errno, "stat `%s`", path);
        if (!S_ISDIR (st.st_mode)) {
                if (unlink (path) < 0)
                        return kiln_error_make (err, errno, "remove `%s`", path);
                return 0;
        }
        if (nftw (path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
                return kiln_error_make (err, errno, "remove `%s`", path);
        return 0;
}

int
kiln_mkdtemp (char **out, const char *prefix, kiln_error **err)
{
        const char *tmp = getenv ("TMPDIR");
        char *p;

        if (tmp == NULL || *tmp == '\0')
                tmp = "/tmp";
        p = kiln_strdup_printf ("%s/kiln-%s-XXXXXX", tmp, prefix);
        if (mkdtemp (p) == NULL) {
                int e = errno;
                free (p);
                return kiln_error_make (err, e, "create a temporary directory in `%s`", tmp);
        }
        *out = p;
        return 0;
}
