/* kiln: block-parallel gzip whose bytes do not depend on the thread count.
 *
 * As pigz does: the input is cut into fixed GZ_BLOCK blocks; each block is
 * deflated raw on its own, primed with the previous 32 KiB of input as
 * dictionary, and ended with Z_SYNC_FLUSH (the last with Z_FINISH), so the
 * blocks concatenate into one valid deflate stream.  The CRC32 of the
 * blocks is combined with crc32_combine.  Which thread deflates a block
 * changes nothing in its bytes.
 *
 * The calling thread fills blocks; `workers` threads deflate them; one
 * writer thread writes them in order, hashing the uncompressed (diff_id)
 * and the compressed (digest) bytes.  A fixed ring of slots bounds the
 * memory.  With one thread everything runs inline, through the same code.
 *
 * The header is fixed: no name, no comment, mtime 0, XFL as zlib sets it
 * for the level, OS 255 ("unknown", as Go's compress/gzip writes, so the
 * bytes do not depend on the building system). */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "layer_private.h"

#define GZ_BLOCK ((size_t) 128 << 10)
#define GZ_DICT ((size_t) 32 << 10)
#define GZ_MAX_WORKERS 64

typedef enum slot_state {
        SLOT_FREE = 0,
        SLOT_FILLING,
        SLOT_FILLED, /* waiting for a worker */
        SLOT_DONE,   /* deflated, waiting for the writer */
} slot_state;

typedef struct gz_slot {
        unsigned char *in; /* GZ_DICT bytes of dictionary room, then the block */
        size_t dict_len;   /* the dictionary ends at in + GZ_DICT */
        size_t len;
        unsigned char *out;
        size_t out_len, out_cap;
        uLong crc;
        bool last;
        slot_state state;
} gz_slot;

typedef struct gz_sink {
        layer_sink base;
        int level;
        int n_workers; /* 0: inline */
        size_t n_slots;
        gz_slot *slots;
        z_stream inline_zs;
        bool inline_zs_ready;

        bool sync_ready; /* lock and cond initialised */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t *workers;
        int n_started;
        pthread_t writer;
        bool writer_started;
        uint64_t dispatched; /* slots handed to the workers */
        uint64_t compressed; /* next slot a worker takes */
        uint64_t written;    /* next slot the writer takes */
        bool done;           /* the last slot is written */
        bool stop;
        kiln_error *error; /* the first failure of a thread */

        /* Owned by whichever thread writes, one at a time in slot order. */
        uLong crc;
        uint64_t total;
} gz_sink;

static unsigned char *
slot_data (gz_slot *s)
{
        return s->in + GZ_DICT;
}

static int
deflate_init (z_stream *zs, int level)
{
        memset (zs, 0, sizeof (*zs));
        return deflateInit2 (zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

/* Deflates one block; the bytes depend only on the block, its dictionary,
 * whether it is the last, and the level. */
static int
deflate_block (z_stream *zs, gz_slot *s)
{
        int flush = s->last ? Z_FINISH : Z_SYNC_FLUSH;

        if (deflateReset (zs) != Z_OK)
                return -1;
        if (s->dict_len > 0
            && deflateSetDictionary (zs, s->in + GZ_DICT - s->dict_len, (uInt) s->dict_len) != Z_OK)
                return -1;
        zs->next_in = slot_data (s);
        zs->avail_in = (uInt) s->len;
        s->out_len = 0;
        for (;;) {
                int rc;

                if (s->out_cap - s->out_len < 64) {
                        s->out_cap *= 2;
                        s->out = kiln_reallocarray (s->out, s->out_cap, 1);
                }
                zs->next_out = s->out + s->out_len;
                zs->avail_out = (uInt) (s->out_cap - s->out_len);
                rc = deflate (zs, flush);
                s->out_len = s->out_cap - zs->avail_out;
                if (rc == Z_STREAM_ERROR)
                        return -1;
                if (s->last ? rc == Z_STREAM_END : zs->avail_in == 0 && zs->avail_out > 0)
                        break;
        }
        s->crc = crc32 (0, slot_data (s), (uInt) s->len);
        return 0;
}

static void
put_le32 (unsigned char *p, uint32_t v)
{
        p[0] = (unsigned char) v;
        p[1] = (unsigned char) (v >> 8);
        p[2] = (unsigned char) (v >> 16);
        p[3] = (unsigned char) (v >> 24);
}

static int
write_header (gz_sink *g, kiln_error **err)
{
        unsigned char h[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255 };

        if (g->level == 9)
                h[8] = 2;
        else if (g->level == 1)
                h[8] = 4;
        return sink_emit (&g->base, h, sizeof (h), err);
}

/* Runs on the writer (or the calling thread when inline), in slot order. */
static int
write_block (gz_sink *g, gz_slot *s, kiln_error **err)
{
        if (g->total == 0 && g->base.out_bytes == 0 && write_header (g, err) < 0)
                return -1;
        kiln_hasher_update (g->base.tar_hash, slot_data (s), s->len);
        g->crc = crc32_combine (g->crc, s->crc, (z_off_t) s->len);
        g->total += s->len;
        if (sink_emit (&g->base, s->out, s->out_len, err) < 0)
                return -1;
        if (s->last) {
                unsigned char t[8];
                put_le32 (t, (uint32_t) g->crc);
                put_le32 (t + 4, (uint32_t) g->total);
                return sink_emit (&g->base, t, sizeof (t), err);
        }
        return 0;
}

static void
fail_locked (gz_sink *g, kiln_error **err)
{
        if (g->error == NULL)
                g->error = kiln_error_take (err);
        kiln_error_free (*err);
        *err = NULL;
        g->stop = true;
        pthread_cond_broadcast (&g->cond);
}

static void *
worker_main (void *arg)
{
        gz_sink *g = arg;
        kiln_error *err = NULL;
        z_stream zs;
        bool ready = deflate_init (&zs, g->level) == 0;

        pthread_mutex_lock (&g->lock);
        if (!ready) {
                kiln_error_make (&err, 0, "gzip: cannot initialise deflate");
                fail_locked (g, &err);
        }
        while (!g->stop) {
                gz_slot *s;
                int rc;

                if (g->compressed == g->dispatched) {
                        pthread_cond_wait (&g->cond, &g->lock);
                        continue;
                }
                s = &g->slots[g->compressed++ % g->n_slots];
                pthread_mutex_unlock (&g->lock);
                rc = deflate_block (&zs, s);
                pthread_mutex_lock (&g->lock);
                if (rc < 0) {
                        kiln_error_make (&err, 0, "gzip: deflate failed");
                        fail_locked (g, &err);
                        break;
                }
                s->state = SLOT_DONE;
                pthread_cond_broadcast (&g->cond);
        }
        pthread_mutex_unlock (&g->lock);
        if (ready)
                deflateEnd (&zs);
        return NULL;
}

static void *
writer_main (void *arg)
{
        gz_sink *g = arg;
        kiln_error *err = NULL;

        pthread_mutex_lock (&g->lock);
        while (!g->stop && !g->done) {
                gz_slot *s = &g->slots[g->written % g->n_slots];
                int rc;

                if (g->written == g->dispatched || s->state != SLOT_DONE) {
                        pthread_cond_wait (&g->cond, &g->lock);
                        continue;
                }
                pthread_mutex_unlock (&g->lock);
                rc = write_block (g, s, &err);
                pthread_mutex_lock (&g->lock);
                if (rc < 0) {
                        fail_locked (g, &err);
                        break;
                }
                g->done = s->last;
                s->state = SLOT_FREE;
                g->written++;
                pthread_cond_broadcast (&g->cond);
        }
        pthread_mutex_unlock (&g->lock);
        return NULL;
}

/* Takes a thread's error as the caller's. */
static int
thread_error (gz_sink *g, kiln_error **err)
{
        kiln_error *e = g->error;

        if (e == NULL)
                return kiln_error_make (err, 0, "gzip: stopped");
        g->error = NULL;
        if (err && *err == NULL)
                *err = e;
        else
                kiln_error_free (e);
        return -1;
}

static gz_slot *
current (gz_sink *g)
{
        return &g->slots[g->dispatched % g->n_slots];
}

/* Hands the current slot on and claims the next, which gets the last
 * GZ_DICT bytes of the current one as its dictionary. */
static int
dispatch (gz_sink *g, bool last, kiln_error **err)
{
        gz_slot *cur = current (g);
        gz_slot *next = &g->slots[(g->dispatched + 1) % g->n_slots];

        cur->last = last;
        if (g->n_workers == 0) {
                if (deflate_block (&g->inline_zs, cur) < 0)
                        return kiln_error_make (err, 0, "gzip: deflate failed");
                if (write_block (g, cur, err) < 0)
                        return -1;
                cur->state = SLOT_FREE;
                g->dispatched++;
                g->done = last;
        } else {
                pthread_mutex_lock (&g->lock);
                while (!g->stop && !last && next->state != SLOT_FREE)
                        pthread_cond_wait (&g->cond, &g->lock);
                if (g->stop) {
                        pthread_mutex_unlock (&g->lock);
                        return thread_error (g, err);
                }
                cur->state = SLOT_FILLED;
                g->dispatched++;
                pthread_cond_broadcast (&g->cond);
                pthread_mutex_unlock (&g->lock);
        }
        if (last)
                return 0;
        /* The previous block is complete and no longer changes: copying its
         * tail here is safe even while a worker reads it. */
        next->state = SLOT_FILLING;
        next->dict_len = cur->len < GZ_DICT ? cur->len : GZ_DICT;
        memcpy (next->in + GZ_DICT - next->dict_len, slot_data (cur) + cur->len - next->dict_len,
                next->dict_len);
        next->len = 0;
        return 0;
}

static int
gz_write (layer_sink *s, const void *data, size_t len, kiln_error **err)
{
        gz_sink *g = (gz_sink *) s;
        const unsigned char *p = data;

        while (len > 0) {
                gz_slot *cur = current (g);
                size_t n = GZ_BLOCK - cur->len;

                if (n > len)
                        n = len;
                memcpy (slot_data (cur) + cur->len, p, n);
                cur->len += n;
                p += n;
                len -= n;
                if (cur->len == GZ_BLOCK && dispatch (g, false, err) < 0)
                        return -1;
        }
        return 0;
}

static int
gz_finish (layer_sink *s, kiln_layer_info *info, kiln_error **err)
{
        gz_sink *g = (gz_sink *) s;

        if (dispatch (g, true, err) < 0)
                return -1;
        if (g->n_workers > 0) {
                pthread_mutex_lock (&g->lock);
                while (!g->stop && !g->done)
                        pthread_cond_wait (&g->cond, &g->lock);
                pthread_mutex_unlock (&g->lock);
                if (!g->done)
                        return thread_error (g, err);
        }
        return sink_finish_hashes (s, info);
}

static void
gz_free (layer_sink *s)
{
        gz_sink *g = (gz_sink *) s;

        if (g->sync_ready) {
                pthread_mutex_lock (&g->lock);
                g->stop = true;
                pthread_cond_broadcast (&g->cond);
                pthread_mutex_unlock (&g->lock);
                for (int i = 0; i < g->n_started; i++)
                        pthread_join (g->workers[i], NULL);
                if (g->writer_started)
                        pthread_join (g->writer, NULL);
                pthread_mutex_destroy (&g->lock);
                pthread_cond_destroy (&g->cond);
        }
        if (g->inline_zs_ready)
                deflateEnd (&g->inline_zs);
        for (size_t i = 0; g->slots && i < g->n_slots; i++) {
                free (g->slots[i].in);
                free (g->slots[i].out);
        }
        free (g->slots);
        free (g->workers);
        kiln_error_free (g->error);
}

static const sink_ops gz_ops = { gz_write, gz_finish, gz_free };

static int
start_threads (gz_sink *g, kiln_error **err)
{
        int rc;

        pthread_mutex_init (&g->lock, NULL);
        pthread_cond_init (&g->cond, NULL);
        g->sync_ready = true;
        g->workers = kiln_calloc ((size_t) g->n_workers, sizeof (pthread_t));
        for (int i = 0; i < g->n_workers; i++) {
                rc = pthread_create (&g->workers[i], NULL, worker_main, g);
                if (rc != 0)
                        return kiln_error_make (err, rc, "gzip: start a thread");
                g->n_started++;
        }
        rc = pthread_create (&g->writer, NULL, writer_main, g);
        if (rc != 0)
                return kiln_error_make (err, rc, "gzip: start a thread");
        g->writer_started = true;
        return 0;
}

int
gzip_sink_new (layer_sink **out, int fd, int level, int threads, kiln_error **err)
{
        gz_sink *g = kiln_calloc (1, sizeof (*g));
        z_stream probe;

        sink_init (&g->base, &gz_ops, fd);
        *out = &g->base;
        g->level = level ? level : 6;
        if (g->level < 1 || g->level > 9)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "gzip level %d is not between 1 and 9", level);
        g->n_workers = threads <= 1 ? 0 : threads > GZ_MAX_WORKERS ? GZ_MAX_WORKERS : threads;
        /* Enough slots for every worker to hold one, one more being
         * written and one being filled, and slack so nobody waits on a
         * single slow block. */
        g->n_slots = g->n_workers == 0 ? 2 : (size_t) g->n_workers * 2 + 2;
        g->slots = kiln_calloc (g->n_slots, sizeof (gz_slot));
        if (deflate_init (&probe, g->level) < 0)
                return kiln_error_make (err, 0, "gzip: cannot initialise deflate");
        for (size_t i = 0; i < g->n_slots; i++) {
                g->slots[i].in = kiln_calloc (1, GZ_DICT + GZ_BLOCK);
                g->slots[i].out_cap = deflateBound (&probe, GZ_BLOCK) + 64;
                g->slots[i].out = kiln_calloc (1, g->slots[i].out_cap);
        }
        deflateEnd (&probe);
        /* zlib's state points back at its z_stream: initialise in place. */
        if (g->n_workers == 0) {
                if (deflate_init (&g->inline_zs, g->level) < 0)
                        return kiln_error_make (err, 0, "gzip: cannot initialise deflate");
                g->inline_zs_ready = true;
        }
        g->slots[0].state = SLOT_FILLING;
        g->crc = crc32 (0, NULL, 0);
        if (g->n_workers > 0 && start_threads (g, err) < 0)
                return -1;
        return 0;
}
