/* kiln: string vectors and sorted key/value maps (labels, annotations). */
#ifndef KILN_KV_H
#define KILN_KV_H

#include <stdbool.h>
#include <stddef.h>

/* A strv is a NULL-terminated array of owned strings; NULL is "absent",
 * and a one-element array holding NULL is "present and empty". */
size_t kiln_strv_len (char *const *v);
char **kiln_strv_new (void);                       /* present and empty */
char **kiln_strv_dup (char *const *v);             /* NULL gives NULL */
char **kiln_strv_append (char **v, const char *s); /* v may be NULL; returns the new array */
bool kiln_strv_contains (char *const *v, const char *s);
bool kiln_strv_equal (char *const *a, char *const *b);
void kiln_strv_free (char **v);

/* A map of owned strings kept sorted by key (byte order), keys unique. */
typedef struct kiln_kv {
        char *key;
        char *value;
} kiln_kv;

typedef struct kiln_kvs {
        kiln_kv *items;
        size_t n;
} kiln_kvs;

#define KILN_KVS_INIT                                                                              \
        {                                                                                          \
                NULL, 0                                                                            \
        }

/* Sets (or replaces) key.  Copies both strings. */
void kiln_kvs_set (kiln_kvs *m, const char *key, const char *value);
/* Borrowed value, or NULL. */
const char *kiln_kvs_get (const kiln_kvs *m, const char *key);
/* Returns true if the key was present. */
bool kiln_kvs_remove (kiln_kvs *m, const char *key);
void kiln_kvs_copy (kiln_kvs *dst, const kiln_kvs *src); /* dst is cleared first */
bool kiln_kvs_equal (const kiln_kvs *a, const kiln_kvs *b);
void kiln_kvs_clear (kiln_kvs *m);

static inline void
cleanup_kvsp (void *p)
{
        kiln_kvs_clear ((kiln_kvs *) p);
}
#define cleanup_kvs __attribute__ ((cleanup (cleanup_kvsp)))

#endif
