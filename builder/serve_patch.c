/* kiln: JSON merge patch (RFC 7386) and JSON patch (RFC 6902). */
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/serve.h"

void
kiln_merge_patch (json_t *target, const json_t *patch)
{
        const char *key;
        json_t *value;

        json_object_foreach ((json_t *) patch, key, value)
        {
                json_t *cur = json_object_get (target, key);
                if (json_is_null (value)) {
                        json_object_del (target, key);
                } else if (json_is_object (value)) {
                        if (!json_is_object (cur)) {
                                cur = json_object ();
                                json_object_set_new (target, key, cur);
                        }
                        kiln_merge_patch (cur, value);
                } else {
                        json_object_set (target, key, value);
                }
        }
}

/* ---- JSON pointers (RFC 6901) ---- */

/* Decodes one reference token ("~1" is "/", "~0" is "~"). */
static char *
unescape_token (const char *s, size_t n)
{
        char *out = kiln_calloc (n + 1, 1);
        size_t j = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
                        out[j++] = s[i + 1] == '0' ? '~' : '/';
                        i++;
                } else {
                        out[j++] = s[i];
                }
        }
        return out;
}

/* An array index: digits without leading zeros, or "-" (past the end)
 * when allowed. */
static bool
parse_index (const char *tok, size_t size, bool allow_end, size_t *out)
{
        int64_t v;

        if (allow_end && strcmp (tok, "-") == 0) {
                *out = size;
                return true;
        }
        if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0') || tok[0] == '-' || tok[0] == '+')
                return false;
        if (kiln_parse_int64 (tok, 0, (int64_t) size - (allow_end ? 0 : 1), &v) < 0)
                return false;
        *out = (size_t) v;
        return true;
}

/* Finds the parent of the value a pointer names and its last token.
 * *parent is borrowed; *last is the caller's. */
static int
resolve_parent (json_t **parent, char **last, json_t *doc, const char *ptr, kiln_error **err)
{
        json_t *cur = doc;
        const char *p = ptr;

        if (*p != '/')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "JSON patch: path `%s` must start with /", ptr);
        for (;;) {
                const char *next = strchr (p + 1, '/');
                size_t n = next ? (size_t) (next - p - 1) : strlen (p + 1);
                cleanup_free char *tok = unescape_token (p + 1, n);
                size_t idx;

                if (next == NULL) {
                        *parent = cur;
                        *last = steal_pointer (&tok);
                        return 0;
                }
                if (json_is_object (cur))
                        cur = json_object_get (cur, tok);
                else if (json_is_array (cur)
                         && parse_index (tok, json_array_size (cur), false, &idx))
                        cur = json_array_get (cur, idx);
                else
                        cur = NULL;
                if (cur == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "JSON patch: path `%s` does not exist", ptr);
                p = next;
        }
}

static json_t *
pointer_get (json_t *doc, const char *ptr)
{
        json_t *parent;
        cleanup_free char *last = NULL;
        size_t idx;

        if (*ptr == '\0')
                return doc;
        if (resolve_parent (&parent, &last, doc, ptr, NULL) < 0)
                return NULL;
        if (json_is_object (parent))
                return json_object_get (parent, last);
        if (json_is_array (parent) && parse_index (last, json_array_size (parent), false, &idx))
                return json_array_get (parent, idx);
        return NULL;
}

/* ---- operations ---- */

static int
op_add (json_t **doc, const char *path, json_t *value, kiln_error **err)
{
        json_t *parent;
        cleanup_free char *last = NULL;
        size_t idx;

        if (*path == '\0') {
                json_decref (*doc);
                *doc = json_incref (value);
                return 0;
        }
        if (resolve_parent (&parent, &last, *doc, path, err) < 0)
                return -1;
        if (json_is_object (parent)) {
                json_object_set (parent, last, value);
                return 0;
        }
        if (json_is_array (parent) && parse_index (last, json_array_size (parent), true, &idx)) {
                json_array_insert (parent, idx, value);
                return 0;
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0, "JSON patch: cannot add at `%s`", path);
}

static int
op_remove (json_t **doc, const char *path, kiln_error **err)
{
        json_t *parent;
        cleanup_free char *last = NULL;
        size_t idx;

        if (*path && resolve_parent (&parent, &last, *doc, path, err) == 0) {
                if (json_is_object (parent) && json_object_get (parent, last)) {
                        json_object_del (parent, last);
                        return 0;
                }
                if (json_is_array (parent)
                    && parse_index (last, json_array_size (parent), false, &idx)) {
                        json_array_remove (parent, idx);
                        return 0;
                }
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                 "JSON patch: cannot remove `%s`: it does not exist", path);
}

static int
apply_op (json_t **doc, const json_t *op, size_t i, kiln_error **err)
{
        const char *name = json_string_value (json_object_get (op, "op"));
        const char *path = json_string_value (json_object_get (op, "path"));
        const char *from = json_string_value (json_object_get (op, "from"));
        json_t *value = json_object_get (op, "value");

        if (name == NULL || path == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "JSON patch: operation %zu needs `op` and `path`", i);
        if ((strcmp (name, "add") == 0 || strcmp (name, "replace") == 0
             || strcmp (name, "test") == 0)
            && value == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "JSON patch: operation %zu (%s) needs `value`", i, name);
        if (strcmp (name, "add") == 0)
                return op_add (doc, path, value, err);
        if (strcmp (name, "remove") == 0)
                return op_remove (doc, path, err);
        if (strcmp (name, "replace") == 0) {
                if (*path && op_remove (doc, path, err) < 0)
                        return -1;
                return op_add (doc, path, value, err);
        }
        if (strcmp (name, "test") == 0) {
                if (!json_equal (pointer_get (*doc, path), value))
                        return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                                 "JSON patch: test of `%s` failed", path);
                return 0;
        }
        if ((strcmp (name, "move") == 0 || strcmp (name, "copy") == 0) && from) {
                json_t *v = pointer_get (*doc, from);
                int r;
                if (v == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "JSON patch: `from` path `%s` does not exist",
                                                 from);
                v = json_deep_copy (v);
                r = (name[0] == 'm' ? op_remove (doc, from, err) : 0) < 0
                        ? -1
                        : op_add (doc, path, v, err);
                json_decref (v);
                return r;
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0, "JSON patch: unknown operation `%s`",
                                 name);
}

int
kiln_json_patch (json_t **doc, const json_t *ops, kiln_error **err)
{
        json_t *work;
        size_t i;
        json_t *op;

        if (!json_is_array (ops))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "JSON patch: the body must be an array of operations");
        work = json_deep_copy (*doc);
        json_array_foreach (ops, i, op)
        {
                if (!json_is_object (op) || apply_op (&work, op, i, err) < 0) {
                        json_decref (work);
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "JSON patch: operation %zu is not an object", i);
                }
        }
        json_decref (*doc);
        *doc = work;
        return 0;
}
