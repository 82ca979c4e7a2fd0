/* kiln: string vectors and sorted key/value maps. */
#include <stdlib.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/kv.h"

size_t
kiln_strv_len (char *const *v)
{
        size_t n = 0;

        if (v == NULL)
                return 0;
        while (v[n])
                n++;
        return n;
}

char **
kiln_strv_new (void)
{
        return kiln_calloc (1, sizeof (char *));
}

char **
kiln_strv_dup (char *const *v)
{
        size_t n = kiln_strv_len (v);
        char **r;

        if (v == NULL)
                return NULL;
        r = kiln_calloc (n + 1, sizeof (char *));
        for (size_t i = 0; i < n; i++)
                r[i] = kiln_strdup (v[i]);
        return r;
}

char **
kiln_strv_append (char **v, const char *s)
{
        size_t n = kiln_strv_len (v);

        v = kiln_reallocarray (v, n + 2, sizeof (char *));
        v[n] = kiln_strdup (s);
        v[n + 1] = NULL;
        return v;
}

bool
kiln_strv_contains (char *const *v, const char *s)
{
        if (v == NULL)
                return false;
        for (; *v; v++)
                if (strcmp (*v, s) == 0)
                        return true;
        return false;
}

/* Absent and present-but-empty are different values (a Cmd of [] clears
 * the base image's Cmd; a missing Cmd inherits it). */
bool
kiln_strv_equal (char *const *a, char *const *b)
{
        if (a == NULL || b == NULL)
                return a == b;
        for (; *a && *b; a++, b++)
                if (strcmp (*a, *b) != 0)
                        return false;
        return *a == NULL && *b == NULL;
}

void
kiln_strv_free (char **v)
{
        if (v == NULL)
                return;
        for (char **i = v; *i; i++)
                free (*i);
        free (v);
}

/* Binary search: the index of key, or where it would be inserted. */
static size_t
kvs_find (const kiln_kvs *m, const char *key, bool *found)
{
        size_t lo = 0, hi = m->n;

        *found = false;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp (m->items[mid].key, key);
                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

void
kiln_kvs_set (kiln_kvs *m, const char *key, const char *value)
{
        bool found;
        size_t i = kvs_find (m, key, &found);
        char *v = kiln_strdup (value);

        if (found) {
                free (m->items[i].value);
                m->items[i].value = v;
                return;
        }
        m->items = kiln_reallocarray (m->items, m->n + 1, sizeof (kiln_kv));
        memmove (&m->items[i + 1], &m->items[i], (m->n - i) * sizeof (kiln_kv));
        m->items[i].key = kiln_strdup (key);
        m->items[i].value = v;
        m->n++;
}

const char *
kiln_kvs_get (const kiln_kvs *m, const char *key)
{
        bool found;
        size_t i = kvs_find (m, key, &found);

        return found ? m->items[i].value : NULL;
}

bool
kiln_kvs_remove (kiln_kvs *m, const char *key)
{
        bool found;
        size_t i = kvs_find (m, key, &found);

        if (!found)
                return false;
        free (m->items[i].key);
        free (m->items[i].value);
        memmove (&m->items[i], &m->items[i + 1], (m->n - i - 1) * sizeof (kiln_kv));
        m->n--;
        if (m->n == 0) {
                free (m->items);
                m->items = NULL;
        }
        return true;
}

void
kiln_kvs_copy (kiln_kvs *dst, const kiln_kvs *src)
{
        kiln_kvs_clear (dst);
        if (src->n == 0)
                return;
        dst->items = kiln_calloc (src->n, sizeof (kiln_kv));
        for (size_t i = 0; i < src->n; i++) {
                dst->items[i].key = kiln_strdup (src->items[i].key);
                dst->items[i].value = kiln_strdup (src->items[i].value);
        }
        dst->n = src->n;
}

bool
kiln_kvs_equal (const kiln_kvs *a, const kiln_kvs *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (strcmp (a->items[i].key, b->items[i].key) != 0
                    || strcmp (a->items[i].value, b->items[i].value) != 0)
                        return false;
        return true;
}

void
kiln_kvs_clear (kiln_kvs *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free (m->items[i].key);
                free (m->items[i].value);
        }
        free (m->items);
        m->items = NULL;
        m->n = 0;
}
