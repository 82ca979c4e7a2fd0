/* kiln: reading a layer as its uncompressed tar stream.
 *
 * Decompression is done here rather than by libarchive's filters so that
 * the uncompressed bytes pass through one place where they are hashed
 * (diff_id) and counted (the unpacked-size bound holds whatever the tar
 * headers claim). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "layer_private.h"

/* Read-ahead: a thread decompresses (and bounds) into a ring of buffers
 * while the reader hashes the previous one and writes its files, as `tar
 * -xzf` overlaps gzip and tar in two processes. */
#define PREFETCH_SLOTS 4

typedef struct prefetch {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned char *slot[PREFETCH_SLOTS];
        size_t len[PREFETCH_SLOTS];
        size_t head;  /* the next slot the reader takes */
        size_t count; /* filled slots, the one the reader holds included */
        bool held;    /* the reader holds slot `head` */
        bool done;    /* the producer has ended (see err) */
        bool stop;    /* the reader is going away */
        kiln_error *err;
} prefetch;

struct layer_source {
        int fd;
        kiln_compression c;
        unsigned char *in;
        size_t in_len, in_pos;
        bool in_eof;
        unsigned char *out;
        z_stream zs;
        bool zs_ready;
        bool member_done; /* gzip: the last member ended cleanly */
        ZSTD_DCtx *zd;
        bool in_frame; /* zstd: a frame has begun and not ended */
        kiln_hasher *hash;
        uint64_t max_bytes, total;
        prefetch *pf; /* NULL: reads happen in the caller's thread */
};

static int
fill (layer_source *s, kiln_error **err)
{
        ssize_t n;

        if (s->in_pos < s->in_len || s->in_eof)
                return 0;
        do
                n = read (s->fd, s->in, LAYER_IO_BUF);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return kiln_error_make (err, errno, "read layer");
        s->in_pos = 0;
        s->in_len = (size_t) n;
        s->in_eof = n == 0;
        return 0;
}

static kiln_compression
detect (const unsigned char *p, size_t len)
{
        if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
                return KILN_COMPRESS_GZIP;
        if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
                return KILN_COMPRESS_ZSTD;
        return KILN_COMPRESS_NONE;
}

int
layer_source_new (layer_source **out, int fd, uint64_t max_bytes, kiln_error **err)
{
        layer_source *s = kiln_calloc (1, sizeof (*s));

        *out = s;
        s->fd = fd;
        s->max_bytes = max_bytes;
        s->in = kiln_calloc (1, LAYER_IO_BUF);
        s->hash = kiln_hasher_new (KILN_DIGEST_SHA256);
        /* A pipe may deliver the magic in pieces. */
        while (s->in_len < 4 && !s->in_eof) {
                ssize_t n = read (fd, s->in + s->in_len, LAYER_IO_BUF - s->in_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kiln_error_make (err, errno, "read layer");
                s->in_len += (size_t) n;
                s->in_eof = n == 0 && s->in_len == 0;
                if (n == 0)
                        break;
        }
        s->c = detect (s->in, s->in_len);
        if (s->c == KILN_COMPRESS_NONE)
                return 0;
        s->out = kiln_calloc (1, LAYER_IO_BUF);
        if (s->c == KILN_COMPRESS_GZIP) {
                if (inflateInit2 (&s->zs, 16 + 15) != Z_OK)
                        return kiln_error_make (err, 0, "gzip: cannot initialise inflate");
                s->zs_ready = true;
        } else {
                s->zd = ZSTD_createDCtx ();
                if (s->zd == NULL)
                        abort ();
        }
        return 0;
}

kiln_compression
layer_source_compression (const layer_source *s)
{
        return s->c;
}

/* After a gzip member: another member, zero padding, or garbage. */
static int
gzip_next_member (layer_source *s, kiln_error **err)
{
        for (;;) {
                if (fill (s, err) < 0)
                        return -1;
                if (s->in_pos == s->in_len)
                        return 0;
                if (s->in[s->in_pos] == 0x1f) {
                        s->member_done = false;
                        return inflateReset (&s->zs) == Z_OK ? 0 : -1;
                }
                while (s->in_pos < s->in_len && s->in[s->in_pos] == 0)
                        s->in_pos++;
                if (s->in_pos < s->in_len)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "gzip: unexpected data after the stream");
        }
}

/* inflate is called even without input: it may still hold output from
 * the last call; only no progress at the end of input is truncation. */
static ssize_t
read_gzip (layer_source *s, kiln_error **err)
{
        for (;;) {
                size_t produced;
                int rc;

                if (s->member_done && gzip_next_member (s, err) < 0)
                        return -1;
                if (s->member_done)
                        return 0;
                if (fill (s, err) < 0)
                        return -1;
                s->zs.next_in = s->in + s->in_pos;
                s->zs.avail_in = (uInt) (s->in_len - s->in_pos);
                s->zs.next_out = s->out;
                s->zs.avail_out = (uInt) LAYER_IO_BUF;
                rc = inflate (&s->zs, Z_NO_FLUSH);
                s->in_pos = s->in_len - s->zs.avail_in;
                produced = LAYER_IO_BUF - s->zs.avail_out;
                if (rc == Z_STREAM_END)
                        s->member_done = true;
                else if (rc != Z_OK && rc != Z_BUF_ERROR)
                        return kiln_error_makec (err, KILN_E_INVALID, 0, "gzip: %s",
                                                 s->zs.msg ? s->zs.msg : "corrupt data");
                if (produced > 0)
                        return (ssize_t) produced;
                if (!s->member_done && s->in_eof && s->in_pos == s->in_len)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "gzip: the stream is truncated");
        }
}

static ssize_t
read_zstd (layer_source *s, kiln_error **err)
{
        for (;;) {
                ZSTD_outBuffer out = { s->out, LAYER_IO_BUF, 0 };
                ZSTD_inBuffer in;
                size_t rc;

                if (fill (s, err) < 0)
                        return -1;
                in = (ZSTD_inBuffer){ s->in, s->in_len, s->in_pos };
                rc = ZSTD_decompressStream (s->zd, &out, &in);
                if (ZSTD_isError (rc))
                        return kiln_error_makec (err, KILN_E_INVALID, 0, "zstd: %s",
                                                 ZSTD_getErrorName (rc));
                /* Past the end of a frame, zstd asks for the next frame's
                 * header: only a frame begun and not ended is truncated. */
                if (rc == 0)
                        s->in_frame = false;
                else if (in.pos > s->in_pos || out.pos > 0)
                        s->in_frame = true;
                s->in_pos = in.pos;
                if (out.pos > 0)
                        return (ssize_t) out.pos;
                if (s->in_eof && s->in_pos == s->in_len) {
                        if (s->in_frame)
                                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                         "zstd: the stream is truncated");
                        return 0;
                }
        }
}

static ssize_t
read_plain (layer_source *s, const void **buf, kiln_error **err)
{
        size_t n;

        if (fill (s, err) < 0)
                return -1;
        n = s->in_len - s->in_pos;
        *buf = s->in + s->in_pos;
        s->in_pos = s->in_len;
        return (ssize_t) n;
}

static ssize_t
read_direct (layer_source *s, const void **buf, kiln_error **err)
{
        ssize_t n;

        if (s->c == KILN_COMPRESS_NONE) {
                n = read_plain (s, buf, err);
        } else {
                n = s->c == KILN_COMPRESS_GZIP ? read_gzip (s, err) : read_zstd (s, err);
                *buf = s->out;
        }
        if (n <= 0)
                return n;
        s->total += (uint64_t) n;
        if (s->total > s->max_bytes)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "layer unpacks to more than %llu bytes",
                                         (unsigned long long) s->max_bytes);
        /* With read-ahead the reader hashes what it takes: the inflating
         * thread is the busier of the two. */
        if (s->pf == NULL)
                kiln_hasher_update (s->hash, *buf, (size_t) n);
        return n;
}

static void *
prefetch_main (void *data)
{
        layer_source *s = data;
        prefetch *pf = s->pf;

        for (;;) {
                kiln_error *err = NULL;
                const void *buf;
                size_t tail;
                ssize_t n;

                pthread_mutex_lock (&pf->lock);
                while (pf->count == PREFETCH_SLOTS && !pf->stop)
                        pthread_cond_wait (&pf->cond, &pf->lock);
                tail = (pf->head + pf->count) % PREFETCH_SLOTS;
                if (pf->stop) {
                        pthread_mutex_unlock (&pf->lock);
                        break;
                }
                pthread_mutex_unlock (&pf->lock);

                n = read_direct (s, &buf, &err);
                if (n > 0)
                        memcpy (pf->slot[tail], buf, (size_t) n);

                pthread_mutex_lock (&pf->lock);
                if (n > 0) {
                        pf->len[tail] = (size_t) n;
                        pf->count++;
                } else {
                        pf->err = err;
                        pf->done = true;
                }
                pthread_cond_broadcast (&pf->cond);
                pthread_mutex_unlock (&pf->lock);
                if (n <= 0)
                        break;
        }
        return NULL;
}

int
layer_source_prefetch (layer_source *s, kiln_error **err)
{
        prefetch *pf;

        if (s->pf || sysconf (_SC_NPROCESSORS_ONLN) < 2)
                return 0;
        pf = kiln_calloc (1, sizeof (*pf));
        for (size_t i = 0; i < PREFETCH_SLOTS; i++)
                pf->slot[i] = kiln_calloc (1, LAYER_IO_BUF);
        pthread_mutex_init (&pf->lock, NULL);
        pthread_cond_init (&pf->cond, NULL);
        s->pf = pf;
        if (pthread_create (&pf->thread, NULL, prefetch_main, s) != 0) {
                int e = errno;
                s->pf = NULL;
                for (size_t i = 0; i < PREFETCH_SLOTS; i++)
                        free (pf->slot[i]);
                free (pf);
                return kiln_error_make (err, e, "start the layer reader thread");
        }
        return 0;
}

static ssize_t
read_prefetched (layer_source *s, const void **buf, kiln_error **err)
{
        prefetch *pf = s->pf;
        ssize_t n;

        pthread_mutex_lock (&pf->lock);
        if (pf->held) {
                pf->held = false;
                pf->head = (pf->head + 1) % PREFETCH_SLOTS;
                pf->count--;
                pthread_cond_broadcast (&pf->cond);
        }
        while (pf->count == 0 && !pf->done)
                pthread_cond_wait (&pf->cond, &pf->lock);
        if (pf->count > 0) {
                *buf = pf->slot[pf->head];
                n = (ssize_t) pf->len[pf->head];
                pf->held = true;
        } else if (pf->err) {
                *err = kiln_error_take (&pf->err);
                n = -1;
        } else {
                n = 0;
        }
        pthread_mutex_unlock (&pf->lock);
        if (n > 0)
                kiln_hasher_update (s->hash, *buf, (size_t) n);
        return n;
}

ssize_t
layer_source_read (layer_source *s, const void **buf, kiln_error **err)
{
        return s->pf ? read_prefetched (s, buf, err) : read_direct (s, buf, err);
}

static void
prefetch_end (layer_source *s)
{
        prefetch *pf = s->pf;

        if (pf == NULL)
                return;
        pthread_mutex_lock (&pf->lock);
        pf->stop = true;
        pthread_cond_broadcast (&pf->cond);
        pthread_mutex_unlock (&pf->lock);
        pthread_join (pf->thread, NULL);
        pthread_mutex_destroy (&pf->lock);
        pthread_cond_destroy (&pf->cond);
        kiln_error_free (pf->err);
        for (size_t i = 0; i < PREFETCH_SLOTS; i++)
                free (pf->slot[i]);
        free (pf);
        s->pf = NULL;
}

int
layer_source_finish (layer_source *s, char diff_id[KILN_DIGEST_MAX], kiln_error **err)
{
        const void *buf;
        ssize_t n;

        while ((n = layer_source_read (s, &buf, err)) > 0)
                ;
        if (n < 0)
                return -1;
        prefetch_end (s);
        kiln_hasher_final (s->hash, diff_id);
        return 0;
}

void
layer_source_free (layer_source *s)
{
        if (s == NULL)
                return;
        prefetch_end (s);
        if (s->zs_ready)
                inflateEnd (&s->zs);
        ZSTD_freeDCtx (s->zd);
        kiln_hasher_free (s->hash);
        free (s->in);
        free (s->out);
        free (s);
}
