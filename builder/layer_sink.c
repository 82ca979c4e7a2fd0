/* kiln: layer sinks: the uncompressed tar stream in, a hashed (and maybe
 * compressed) file out.  gzip lives in layer_gzip.c. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "layer_private.h"

int
sink_emit (layer_sink *s, const void *data, size_t len, kiln_error **err)
{
        if (len == 0)
                return 0;
        kiln_hasher_update (s->out_hash, data, len);
        s->out_bytes += len;
        if (kiln_write_all (s->fd, data, len, err) < 0)
                return kiln_error_wrap (err, "write layer");
        return 0;
}

/* Uncompressed: the digest is the diff_id, so one hash serves both. */
typedef struct plain_sink {
        layer_sink base;
        unsigned char *buf;
        size_t len;
} plain_sink;

static int
plain_flush (plain_sink *p, kiln_error **err)
{
        if (kiln_write_all (p->base.fd, p->buf, p->len, err) < 0)
                return kiln_error_wrap (err, "write layer");
        p->len = 0;
        return 0;
}

static int
plain_write (layer_sink *s, const void *data, size_t len, kiln_error **err)
{
        plain_sink *p = (plain_sink *) s;

        kiln_hasher_update (s->out_hash, data, len);
        s->out_bytes += len;
        if (p->len + len <= LAYER_IO_BUF) {
                memcpy (p->buf + p->len, data, len);
                p->len += len;
                return 0;
        }
        if (plain_flush (p, err) < 0)
                return -1;
        if (len >= LAYER_IO_BUF / 2) {
                if (kiln_write_all (s->fd, data, len, err) < 0)
                        return kiln_error_wrap (err, "write layer");
                return 0;
        }
        memcpy (p->buf, data, len);
        p->len = len;
        return 0;
}

static int
plain_finish (layer_sink *s, kiln_layer_info *info, kiln_error **err)
{
        if (plain_flush ((plain_sink *) s, err) < 0)
                return -1;
        kiln_hasher_final (s->out_hash, info->digest);
        memcpy (info->diff_id, info->digest, KILN_DIGEST_MAX);
        info->size = info->tar_size = s->out_bytes;
        return 0;
}

static void
plain_free (layer_sink *s)
{
        free (((plain_sink *) s)->buf);
}

static const sink_ops plain_ops = { plain_write, plain_finish, plain_free };

static layer_sink *
plain_new (int fd)
{
        plain_sink *p = kiln_calloc (1, sizeof (*p));

        sink_init (&p->base, &plain_ops, fd);
        p->buf = kiln_calloc (1, LAYER_IO_BUF);
        return &p->base;
}

/* zstd: with ZSTD_c_nbWorkers >= 1 the library splits the input into jobs
 * whose size depends only on the parameters, so the frame is the same for
 * any number of workers.  It is never 0 here (single-threaded mode makes a
 * different frame), unless the library was built without threads, where
 * every run makes the same single-threaded frame. */
typedef struct zstd_sink {
        layer_sink base;
        ZSTD_CCtx *cctx;
        unsigned char *out;
        size_t out_cap;
} zstd_sink;

static int
zstd_error (kiln_error **err, size_t rc)
{
        return kiln_error_make (err, 0, "zstd: %s", ZSTD_getErrorName (rc));
}

static int
zstd_pump (zstd_sink *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode, kiln_error **err)
{
        for (;;) {
                ZSTD_outBuffer out = { z->out, z->out_cap, 0 };
                size_t rc = ZSTD_compressStream2 (z->cctx, &out, in, mode);

                if (ZSTD_isError (rc))
                        return zstd_error (err, rc);
                if (sink_emit (&z->base, z->out, out.pos, err) < 0)
                        return -1;
                if (mode == ZSTD_e_end ? rc == 0 : in->pos == in->size)
                        return 0;
        }
}

static int
zstd_write (layer_sink *s, const void *data, size_t len, kiln_error **err)
{
        ZSTD_inBuffer in = { data, len, 0 };

        kiln_hasher_update (s->tar_hash, data, len);
        return zstd_pump ((zstd_sink *) s, &in, ZSTD_e_continue, err);
}

static int
zstd_finish (layer_sink *s, kiln_layer_info *info, kiln_error **err)
{
        ZSTD_inBuffer in = { NULL, 0, 0 };

        if (zstd_pump ((zstd_sink *) s, &in, ZSTD_e_end, err) < 0)
                return -1;
        return sink_finish_hashes (s, info);
}

static void
zstd_free (layer_sink *s)
{
        zstd_sink *z = (zstd_sink *) s;

        ZSTD_freeCCtx (z->cctx);
        free (z->out);
}

static const sink_ops zstd_ops = { zstd_write, zstd_finish, zstd_free };

static int
zstd_new (layer_sink **out, int fd, int level, int threads, kiln_error **err)
{
        zstd_sink *z = kiln_calloc (1, sizeof (*z));
        size_t rc;

        sink_init (&z->base, &zstd_ops, fd);
        *out = &z->base;
        z->cctx = ZSTD_createCCtx ();
        if (z->cctx == NULL)
                abort ();
        z->out_cap = ZSTD_CStreamOutSize ();
        z->out = kiln_calloc (1, z->out_cap);
        rc = ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_compressionLevel, level ? level : 3);
        if (!ZSTD_isError (rc))
                rc = ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_checksumFlag, 0);
        if (ZSTD_isError (rc))
                return zstd_error (err, rc);
        /* Fails only when libzstd has no thread support; see above. */
        ZSTD_CCtx_setParameter (z->cctx, ZSTD_c_nbWorkers, threads < 1 ? 1 : threads);
        return 0;
}

void
sink_init (layer_sink *s, const sink_ops *ops, int fd)
{
        s->ops = ops;
        s->fd = fd;
        s->tar_hash = kiln_hasher_new (KILN_DIGEST_SHA256);
        s->out_hash = kiln_hasher_new (KILN_DIGEST_SHA256);
}

int
sink_finish_hashes (layer_sink *s, kiln_layer_info *info)
{
        info->tar_size = kiln_hasher_count (s->tar_hash);
        kiln_hasher_final (s->tar_hash, info->diff_id);
        info->size = s->out_bytes;
        kiln_hasher_final (s->out_hash, info->digest);
        return 0;
}

int
layer_sink_new (layer_sink **out, int fd, kiln_compression c, int level, int threads,
                kiln_error **err)
{
        layer_sink *s = NULL;
        int rc = 0;

        switch (c) {
        case KILN_COMPRESS_NONE:
                s = plain_new (fd);
                break;
        case KILN_COMPRESS_GZIP:
                rc = gzip_sink_new (&s, fd, level, threads, err);
                break;
        case KILN_COMPRESS_ZSTD:
                rc = zstd_new (&s, fd, level, threads, err);
                break;
        default:
                return kiln_error_makec (err, KILN_E_INVALID, 0, "unknown compression %d", (int) c);
        }
        if (rc < 0) {
                layer_sink_free (s);
                return -1;
        }
        *out = s;
        return 0;
}

int
layer_sink_write (layer_sink *s, const void *data, size_t len, kiln_error **err)
{
        if (len == 0)
                return 0;
        return s->ops->write (s, data, len, err);
}

int
layer_sink_finish (layer_sink *s, kiln_layer_info *info, kiln_error **err)
{
        return s->ops->finish (s, info, err);
}

void
layer_sink_free (layer_sink *s)
{
        if (s == NULL)
                return;
        s->ops->free (s);
        kiln_hasher_free (s->tar_hash);
        kiln_hasher_free (s->out_hash);
        free (s);
}
