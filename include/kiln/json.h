/* kiln: a small generic JSON accessor (jansson; a JSON-model module).
 *
 * For the small documents that are not part of the image model: registry
 * token responses and error bodies, docker config.json, credential helper
 * output, and the --json output of commands.  The image model
 * (image.h) has its own strict readers.
 *
 * A document is parsed whole from a bounded buffer into a kiln_json tree
 * owned by the caller (free with kiln_json_free).  Lookups return nodes
 * borrowed from that tree; they live as long as the root.  Paths are
 * member names joined by '.', so "auths.example\.com" is not supported:
 * use kiln_json_key for keys that may contain dots. */
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct kiln_json kiln_json;

/* Parses `len` bytes as one JSON value.  More than `max` bytes is
 * KILN_E_TOO_LARGE before anything is parsed; malformed JSON, trailing
 * bytes or duplicate keys are KILN_E_INVALID (the message gives the
 * position, never the content).  *out is the caller's. */
int kiln_json_parse (kiln_json **out, const char *data, size_t len, size_t max, kiln_error **err);

/* Frees a tree made by kiln_json_parse or kiln_json_object; accepts NULL.
 * Never call it on a borrowed node. */
void kiln_json_free (kiln_json *j);

static inline void
cleanup_kiln_jsonp (void *p)
{
        kiln_json_free (*(kiln_json **) p);
}
#define cleanup_kiln_json __attribute__ ((cleanup (cleanup_kiln_jsonp)))

/* The node at a dotted path ("a.b.c"; "" is obj itself), or NULL when a
 * member is missing or an intermediate value is not an object.  Borrowed. */
const kiln_json *kiln_json_get (const kiln_json *obj, const char *path);

/* The member `key` of an object (the key is taken literally). */
const kiln_json *kiln_json_key (const kiln_json *obj, const char *key);

/* The string at path, or NULL when missing or not a string.  Borrowed. */
const char *kiln_json_get_str (const kiln_json *obj, const char *path);

/* The integer at path into *out; false when missing or not an integer. */
bool kiln_json_get_i64 (const kiln_json *obj, const char *path, int64_t *out);

bool kiln_json_is_object (const kiln_json *j);
bool kiln_json_is_array (const kiln_json *j);
bool kiln_json_is_string (const kiln_json *j);

/* The value of a string node, or NULL.  Borrowed. */
const char *kiln_json_str (const kiln_json *j);

/* Number of elements of an array (0 for anything else) and the i-th. */
size_t kiln_json_array_len (const kiln_json *j);
const kiln_json *kiln_json_array_at (const kiln_json *j, size_t i);

/* Iterates over an object's members in the document's order:
 *   void *it = NULL; const char *key; const kiln_json *val;
 *   while (kiln_json_object_next (obj, &it, &key, &val)) ...
 * Returns false at the end (and at once for a non-object). */
bool kiln_json_object_next (const kiln_json *obj, void **it, const char **key,
                            const kiln_json **value);

/* ---- building small outputs ---- */

/* A new empty object or array; the caller's.  Out-of-memory aborts. */
kiln_json *kiln_json_object (void);
kiln_json *kiln_json_array (void);

/* Sets obj[key]; s NULL sets nothing.  Strings that are not valid UTF-8
 * make kiln_json_format fail. */
void kiln_json_set_str (kiln_json *obj, const char *key, const char *s);
void kiln_json_set_i64 (kiln_json *obj, const char *key, int64_t v);
void kiln_json_set_bool (kiln_json *obj, const char *key, bool v);
/* Steals child. */
void kiln_json_set_node (kiln_json *obj, const char *key, kiln_json *child);
/* Appends to an array; append_node steals child. */
void kiln_json_append_str (kiln_json *arr, const char *s);
void kiln_json_append_node (kiln_json *arr, kiln_json *child);

/* Serialises compactly with sorted keys; *out is the caller's. */
int kiln_json_format (char **out, const kiln_json *j, kiln_error **err);

#endif
