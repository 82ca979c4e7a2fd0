/* kiln: a small generic JSON accessor over jansson. */
#include <jansson.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/json.h"

/* The opaque kiln_json is a jansson value: a node is a json_t seen through
 * another name, so borrowing needs no allocation. */
#define J(x) ((json_t *) (x))
#define K(x) ((kiln_json *) (x))

int
kiln_json_parse (kiln_json **out, const char *data, size_t len, size_t max, kiln_error **err)
{
        json_error_t jerr;
        json_t *root;

        if (len > max)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "JSON document of %zu bytes exceeds the limit of %zu", len,
                                         max);
        root = json_loadb (data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (root == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "invalid JSON at line %d column %d", jerr.line,
                                         jerr.column);
        *out = K (root);
        return 0;
}

void
kiln_json_free (kiln_json *j)
{
        json_decref (J (j));
}

const kiln_json *
kiln_json_key (const kiln_json *obj, const char *key)
{
        if (obj == NULL || !json_is_object (J (obj)))
                return NULL;
        return K (json_object_get (J (obj), key));
}

const kiln_json *
kiln_json_get (const kiln_json *obj, const char *path)
{
        const char *p = path;

        while (obj && *p) {
                const char *dot = strchr (p, '.');
                size_t n = dot ? (size_t) (dot - p) : strlen (p);
                char key[256];

                if (n >= sizeof key)
                        return NULL;
                memcpy (key, p, n);
                key[n] = '\0';
                obj = kiln_json_key (obj, key);
                p += n + (dot ? 1 : 0);
        }
        return obj;
}

const char *
kiln_json_get_str (const kiln_json *obj, const char *path)
{
        return kiln_json_str (kiln_json_get (obj, path));
}

bool
kiln_json_get_i64 (const kiln_json *obj, const char *path, int64_t *out)
{
        json_t *v = J (kiln_json_get (obj, path));

        if (v == NULL || !json_is_integer (v))
                return false;
        *out = (int64_t) json_integer_value (v);
        return true;
}

bool
kiln_json_is_object (const kiln_json *j)
{
        return j && json_is_object (J (j));
}

bool
kiln_json_is_array (const kiln_json *j)
{
        return j && json_is_array (J (j));
}

bool
kiln_json_is_string (const kiln_json *j)
{
        return j && json_is_string (J (j));
}

const char *
kiln_json_str (const kiln_json *j)
{
        return j && json_is_string (J (j)) ? json_string_value (J (j)) : NULL;
}

size_t
kiln_json_array_len (const kiln_json *j)
{
        return j && json_is_array (J (j)) ? json_array_size (J (j)) : 0;
}

const kiln_json *
kiln_json_array_at (const kiln_json *j, size_t i)
{
        return j && json_is_array (J (j)) ? K (json_array_get (J (j), i)) : NULL;
}

bool
kiln_json_object_next (const kiln_json *obj, void **it, const char **key, const kiln_json **value)
{
        if (obj == NULL || !json_is_object (J (obj)))
                return false;
        *it = *it ? json_object_iter_next (J (obj), *it) : json_object_iter (J (obj));
        if (*it == NULL)
                return false;
        *key = json_object_iter_key (*it);
        *value = K (json_object_iter_value (*it));
        return true;
}

static json_t *
checked (json_t *v)
{
        if (v == NULL)
                abort ();
        return v;
}

kiln_json *
kiln_json_object (void)
{
        return K (checked (json_object ()));
}

kiln_json *
kiln_json_array (void)
{
        return K (checked (json_array ()));
}

void
kiln_json_set_node (kiln_json *obj, const char *key, kiln_json *child)
{
        if (json_object_set_new (J (obj), key, J (child)) < 0)
                abort ();
}

void
kiln_json_set_str (kiln_json *obj, const char *key, const char *s)
{
        if (s == NULL)
                return;
        /* Not-UTF-8 strings are stored unchecked and refused at format. */
        kiln_json_set_node (obj, key, K (checked (json_stringn_nocheck (s, strlen (s)))));
}

void
kiln_json_set_i64 (kiln_json *obj, const char *key, int64_t v)
{
        kiln_json_set_node (obj, key, K (checked (json_integer ((json_int_t) v))));
}

void
kiln_json_set_bool (kiln_json *obj, const char *key, bool v)
{
        kiln_json_set_node (obj, key, K (json_boolean (v)));
}

void
kiln_json_append_node (kiln_json *arr, kiln_json *child)
{
        if (json_array_append_new (J (arr), J (child)) < 0)
                abort ();
}

void
kiln_json_append_str (kiln_json *arr, const char *s)
{
        kiln_json_append_node (arr, K (checked (json_stringn_nocheck (s, strlen (s)))));
}

static bool
valid_utf8 (const json_t *v)
{
        const char *key;
        json_t *child;
        size_t i;

        switch (json_typeof (v)) {
        case JSON_STRING: {
                json_t *probe = json_stringn (json_string_value (v), json_string_length (v));
                bool ok = probe != NULL;
                json_decref (probe);
                return ok;
        }
        case JSON_OBJECT:
                json_object_foreach ((json_t *) v, key, child)
                {
                        if (!valid_utf8 (child))
                                return false;
                }
                return true;
        case JSON_ARRAY:
                json_array_foreach (v, i, child)
                {
                        if (!valid_utf8 (child))
                                return false;
                }
                return true;
        default:
                return true;
        }
}

int
kiln_json_format (char **out, const kiln_json *j, kiln_error **err)
{
        char *s;

        if (!valid_utf8 (J (j)))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "cannot write JSON: a string is not valid UTF-8");
        s = json_dumps (J (j), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (s == NULL)
                abort ();
        *out = s;
        return 0;
}
