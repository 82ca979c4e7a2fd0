/* kiln: layer options, media types, detection, versions and paths. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <zlib.h>
#include <zstd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "layer_private.h"

/* 9999-12-31T23:59:59Z: later dates are more likely typos than intent. */
#define MAX_EPOCH INT64_C (253402300799)

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void
make_utf8_locale (void)
{
        utf8_locale = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
}

locale_t
layer_locale_enter (void)
{
        pthread_once (&utf8_once, make_utf8_locale);
        return utf8_locale ? uselocale (utf8_locale) : (locale_t) 0;
}

void
layer_locale_leave (locale_t prev)
{
        if (prev)
                uselocale (prev);
}

void
kiln_layer_opts_init (kiln_layer_opts *opts)
{
        memset (opts, 0, sizeof (*opts));
        opts->compression = KILN_COMPRESS_GZIP;
        opts->mtime = -1;
}

void
kiln_extract_opts_init (kiln_extract_opts *opts)
{
        memset (opts, 0, sizeof (*opts));
}

int
kiln_source_date_epoch (int64_t *out, kiln_error **err)
{
        const char *s = getenv ("SOURCE_DATE_EPOCH");

        if (s == NULL || *s == '\0') {
                *out = KILN_DEFAULT_EPOCH;
                return 0;
        }
        if (kiln_parse_int64 (s, 0, MAX_EPOCH, out) < 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "SOURCE_DATE_EPOCH `%s` is not a number of seconds "
                                         "since 1970 (0 to %lld)",
                                         s, (long long) MAX_EPOCH);
        return 0;
}

const char *
kiln_layer_media_type (kiln_compression c)
{
        switch (c) {
        case KILN_COMPRESS_NONE:
                return LAYER_MEDIA_TAR;
        case KILN_COMPRESS_ZSTD:
                return LAYER_MEDIA_ZSTD;
        case KILN_COMPRESS_GZIP:
        default:
                return LAYER_MEDIA_GZIP;
        }
}

int
kiln_layer_detect (kiln_compression *out, const char *path, kiln_error **err)
{
        cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
        cleanup_source layer_source *s = NULL;

        if (fd < 0)
                return kiln_error_make (err, errno, "open `%s`", path);
        if (layer_source_new (&s, fd, UINT64_MAX, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        *out = layer_source_compression (s);
        return 0;
}

int
kiln_layer_diff_id (char out[KILN_DIGEST_MAX], const char *layer_path, kiln_error **err)
{
        cleanup_close int fd = open (layer_path, O_RDONLY | O_CLOEXEC);
        cleanup_source layer_source *s = NULL;

        if (fd < 0)
                return kiln_error_make (err, errno, "open `%s`", layer_path);
        posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (layer_source_new (&s, fd, UINT64_MAX, err) < 0 || layer_source_finish (s, out, err) < 0)
                return kiln_error_wrap (err, "`%s`", layer_path);
        return 0;
}

static char library_version[128];

static void
make_library_version (void)
{
        unsigned z = ZSTD_versionNumber ();

        /* archive_version_string () is "libarchive 3.x.y". */
        snprintf (library_version, sizeof (library_version), "%s zlib %s zstd %u.%u.%u",
                  archive_version_string (), zlibVersion (), z / 10000, z / 100 % 100, z % 100);
}

const char *
kiln_layer_library_version (void)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once (&once, make_library_version);
        return library_version;
}

int
layer_clean_path (char **out, const char *path, bool allow_absolute, kiln_error **err)
{
        size_t len = strlen (path);
        cleanup_free char *clean = kiln_calloc (len + 1, 1);
        size_t o = 0;
        const char *p = path;

        if (*p == '/' && !allow_absolute)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "`%s`: absolute path", path);
        while (*p) {
                const char *end = strchrnul (p, '/');
                size_t n = (size_t) (end - p);

                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return kiln_error_makec (err, KILN_E_INVALID, 0, "`%s`: path contains `..`",
                                                 path);
                if (n > 0 && !(n == 1 && p[0] == '.')) {
                        if (o > 0)
                                clean[o++] = '/';
                        memcpy (clean + o, p, n);
                        o += n;
                }
                p = *end ? end + 1 : end;
        }
        clean[o] = '\0';
        *out = steal_pointer (&clean);
        return 0;
}
