/* kiln: a small bounded pool of transfer threads. */
#include <pthread.h>
#include <string.h>

#include "internal.h"

typedef struct pool {
        pthread_mutex_t lock;
        size_t next, n;
        int (*fn) (void *ctx, size_t i, kiln_error **err);
        void *ctx;
        kiln_error *err; /* the first failure */
} pool;

static void *
worker (void *p)
{
        pool *pl = p;

        for (;;) {
                kiln_error *err = NULL;
                size_t i;

                pthread_mutex_lock (&pl->lock);
                if (pl->err || pl->next == pl->n) {
                        pthread_mutex_unlock (&pl->lock);
                        return NULL;
                }
                i = pl->next++;
                pthread_mutex_unlock (&pl->lock);
                if (pl->fn (pl->ctx, i, &err) < 0) {
                        pthread_mutex_lock (&pl->lock);
                        if (pl->err == NULL)
                                pl->err = err;
                        else
                                kiln_error_free (err);
                        pthread_mutex_unlock (&pl->lock);
                }
        }
}

int
reg_pool_run (kiln_registry *r, size_t n, int (*fn) (void *ctx, size_t i, kiln_error **err),
              void *ctx, kiln_error **err)
{
        pool pl = { .n = n, .fn = fn, .ctx = ctx };
        pthread_t threads[KILN_REGISTRY_JOBS_MAX];
        size_t nt = (size_t) r->opts.jobs < n ? (size_t) r->opts.jobs : n;
        size_t started = 0;

        if (n == 0)
                return 0;
        pthread_mutex_init (&pl.lock, NULL);
        /* The caller's thread does the work when one job is asked for. */
        if (nt <= 1) {
                worker (&pl);
        } else {
                for (; started < nt; started++)
                        if (pthread_create (&threads[started], NULL, worker, &pl) != 0)
                                break;
                if (started == 0)
                        worker (&pl);
                for (size_t i = 0; i < started; i++)
                        pthread_join (threads[i], NULL);
        }
        pthread_mutex_destroy (&pl.lock);
        if (pl.err) {
                *err = pl.err;
                return -1;
        }
        return 0;
}
