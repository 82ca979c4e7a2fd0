/* kiln: helpers shared by the image model files (image_*.c); not public.
 *
 * Readers take the path of the enclosing value ("" at the top, "layers[2]"
 * below) so that an error names the field it is about:
 *   "layers[2].size: expected an integer".
 * Each reader returns 1 when the member was set, 0 when it is absent or JSON
 * null (an optional field may be null), and -1 with KILN_E_INVALID. */
#ifndef KILN_IMAGE_JSON_H
#define KILN_IMAGE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/image.h"
#include "kiln/kv.h"

/* Deeper than any manifest, index or config needs (they nest about five
 * levels); checked on the raw bytes before jansson recurses. */
#define KILN_JSON_DEPTH_MAX 64

/* Room for a field path in error messages; longer paths are truncated. */
#define KILN_JSON_PATH_MAX 256

static inline void
cleanup_jsonp (void *p)
{
        json_decref (*(json_t **) p);
}
#define cleanup_json __attribute__ ((cleanup (cleanup_jsonp)))

/* Parses `len` bytes as one JSON object.  More than `max` bytes is refused
 * with KILN_E_TOO_LARGE before anything is parsed; duplicate keys, trailing
 * bytes, invalid UTF-8 and nesting deeper than KILN_JSON_DEPTH_MAX are
 * KILN_E_INVALID.  *out is the caller's. */
int kiln_json_load (json_t **out, const char *data, size_t len, size_t max, kiln_error **err);

/* Serialises canonically (sorted keys, compact, no newline) into a malloc'd
 * NUL-terminated string.  Fails with KILN_E_INVALID when a string in the
 * tree is not valid UTF-8. */
int kiln_json_dump (char **out, size_t *len, const json_t *root, kiln_error **err);

/* "parent.key" ("key" at the top, "parent" for a NULL key) and
 * "parent.key[i]". */
void kiln_json_path (char out[KILN_JSON_PATH_MAX], const char *parent, const char *key);
void kiln_json_path_index (char out[KILN_JSON_PATH_MAX], const char *parent, const char *key,
                           size_t i);

/* Fails with "PATH.KEY: expected WHAT" / "PATH.KEY: missing". */
int kiln_json_type_error (const char *path, const char *key, const char *what, kiln_error **err);
int kiln_json_missing (const char *path, const char *key, kiln_error **err);

/* Borrows obj[key] if it is of `type` (JSON_OBJECT or JSON_ARRAY). */
int kiln_json_member (json_t **out, json_t *obj, const char *path, const char *key, json_type type,
                      bool required, kiln_error **err);

int kiln_json_get_string (char **out, json_t *obj, const char *path, const char *key, bool required,
                          kiln_error **err);
int kiln_json_get_int (int64_t *out, json_t *obj, const char *path, const char *key, bool required,
                       kiln_error **err);
int kiln_json_get_bool (bool *out, json_t *obj, const char *path, const char *key,
                        kiln_error **err);
/* An array of strings; [] gives a present, empty strv. */
int kiln_json_get_strv (char ***out, json_t *obj, const char *path, const char *key,
                        kiln_error **err);
/* An object of strings (labels, annotations). */
int kiln_json_get_kvs (kiln_kvs *out, json_t *obj, const char *path, const char *key,
                       kiln_error **err);
/* An object whose values are objects ({"8080/tcp": {}}): its keys, sorted. */
int kiln_json_get_set (char ***out, json_t *obj, const char *path, const char *key,
                       kiln_error **err);

/* Reads a descriptor or a platform from the object `v` found at `path`. */
int kiln_json_descriptor (kiln_descriptor *out, json_t *v, const char *path, kiln_error **err);
int kiln_json_platform (kiln_platform **out, json_t *v, const char *path, kiln_error **err);

/* Reads an array of descriptors obj[key]; *out is the caller's. */
int kiln_json_descriptors (kiln_descriptor **out, size_t *n, json_t *obj, const char *key,
                           kiln_error **err);
/* Reads an optional descriptor obj[key] into a new *out (NULL if absent). */
int kiln_json_optional_descriptor (kiln_descriptor **out, json_t *obj, const char *key,
                                   kiln_error **err);

/* Builders.  Strings are not checked here: kiln_json_dump refuses a tree
 * holding invalid UTF-8.  Out-of-memory aborts, as kiln_calloc does. */
json_t *kiln_json_new_object (void);
json_t *kiln_json_new_string (const char *s);
void kiln_json_set (json_t *obj, const char *key, json_t *value);        /* steals value */
void kiln_json_set_string (json_t *obj, const char *key, const char *s); /* s NULL: nothing */
void kiln_json_set_int (json_t *obj, const char *key, int64_t v);
json_t *kiln_json_strv_value (char *const *v);
json_t *kiln_json_kvs_value (const kiln_kvs *m);
json_t *kiln_json_set_value (char *const *keys); /* {"k": {}, ...} */

/* Builds a descriptor or platform, failing with KILN_E_INVALID (naming
 * `path`) when a required field is missing or the digest or size is bad, so
 * that kiln never writes what it would refuse to read. */
int kiln_json_descriptor_value (json_t **out, const kiln_descriptor *d, const char *path,
                                kiln_error **err);
int kiln_json_platform_value (json_t **out, const kiln_platform *p, const char *path,
                              kiln_error **err);

/* "sha256:" + 64 or "sha512:" + 128 lower-case hex digits.  The image model
 * checks only the syntax, so it needs no hashing library. */
bool kiln_image_digest_ok (const char *s);

#endif
