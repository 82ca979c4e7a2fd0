/* kiln: a TOML subset, enough for the Cloud Native Buildpacks files
 * (buildpack.toml, order.toml, <layer>.toml, launch.toml, build plans).
 *
 * Parsed: comments, bare/quoted/dotted keys, tables `[a.b]`, arrays of
 * tables `[[a.b]]`, basic strings with escapes, literal strings, their
 * multi-line forms, integers (decimal, 0x, 0o, 0b, `_` separators), floats,
 * booleans, arrays (mixed types, newlines, trailing comma) and inline tables.
 * Dates and times are refused with KILN_E_UNSUPPORTED.  Redefinitions
 * (duplicate keys, a table defined twice, extending an inline table or a
 * static array) are errors, as TOML 1.0 says.
 *
 * Input is bounded (size, nesting depth, keys per table) and must be UTF-8.
 * Every parse error is KILN_E_INVALID (or KILN_E_TOO_LARGE,
 * KILN_E_UNSUPPORTED) with a one-line message starting "line N: ".
 *
 * A parsed document is a tree of kiln_toml nodes owned by its root; free it
 * with kiln_toml_free.  Pointers returned by the getters are borrowed from
 * the tree and live as long as it.  Tables keep their keys in document
 * order. */
#ifndef KILN_TOML_H
#define KILN_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

/* The default bound on a document's size, and the deepest nesting of
 * arrays, inline tables and dotted keys the parser accepts. */
#define KILN_TOML_MAX_SIZE ((size_t) 1 << 20)
#define KILN_TOML_MAX_DEPTH 64
#define KILN_TOML_MAX_KEYS 4096 /* members of one table */

typedef enum kiln_toml_type {
        KILN_TOML_TABLE = 1,
        KILN_TOML_ARRAY,
        KILN_TOML_STRING,
        KILN_TOML_INT,
        KILN_TOML_FLOAT,
        KILN_TOML_BOOL,
} kiln_toml_type;

typedef struct kiln_toml kiln_toml;

/* Parses len bytes of data (need not be NUL-terminated).  max bounds len
 * (0: KILN_TOML_MAX_SIZE) and a longer input is refused before parsing with
 * KILN_E_TOO_LARGE.  *out is the caller's: a table. */
int kiln_toml_parse (kiln_toml **out, const char *data, size_t len, size_t max, kiln_error **err);

/* Reads and parses a file; errors are prefixed with "`PATH`: ".  A missing
 * file is KILN_E_NOT_FOUND. */
int kiln_toml_parse_file (kiln_toml **out, const char *path, size_t max, kiln_error **err);

/* Frees a node and everything under it; accepts NULL.  Only call it on a
 * root (what parse or kiln_toml_new returned), not on a borrowed node. */
void kiln_toml_free (kiln_toml *t);

static inline void
cleanup_tomlp (void *p)
{
        kiln_toml_free (*(kiln_toml **) p);
}
#define cleanup_toml __attribute__ ((cleanup (cleanup_tomlp)))

/* --- Reading --------------------------------------------------------- */

kiln_toml_type kiln_toml_type_of (const kiln_toml *v);

/* "table", "array", "string", "integer", "float", "boolean".  Static. */
const char *kiln_toml_type_name (kiln_toml_type type);

/* The node at a dotted path of bare keys below table t ("buildpack.id"),
 * or NULL when any step is missing or not a table.  t may be NULL.  A key
 * that contains a dot is reached with kiln_toml_member. */
const kiln_toml *kiln_toml_get (const kiln_toml *t, const char *path);

/* One member of table t by its exact key, or NULL. */
const kiln_toml *kiln_toml_member (const kiln_toml *t, const char *key);

/* Typed shorthands for kiln_toml_get: NULL (or dflt) when the path is
 * missing or holds another type. */
const char *kiln_toml_get_string (const kiln_toml *t, const char *path);
const kiln_toml *kiln_toml_get_table (const kiln_toml *t, const char *path);
const kiln_toml *kiln_toml_get_array (const kiln_toml *t, const char *path);
bool kiln_toml_get_bool (const kiln_toml *t, const char *path, bool dflt);
int64_t kiln_toml_get_int (const kiln_toml *t, const char *path, int64_t dflt);

/* For validating files: *out is the node at path, or NULL when absent.
 * Fails with KILN_E_INVALID "`PATH` must be a TYPE, not a TYPE" when the
 * node exists with another type, or "`PATH` is required" when required
 * and absent. */
int kiln_toml_expect (const kiln_toml **out, const kiln_toml *t, const char *path,
                      kiln_toml_type type, bool required, kiln_error **err);

/* Members of a table or elements of an array (0 for a scalar or NULL). */
size_t kiln_toml_len (const kiln_toml *v);

/* The i-th member or element, or NULL out of range. */
const kiln_toml *kiln_toml_at (const kiln_toml *v, size_t i);

/* The key under which a table member is stored; NULL for array elements
 * and roots. */
const char *kiln_toml_key (const kiln_toml *v);

/* Scalar values; a node of another type gives NULL / 0 / false. */
const char *kiln_toml_string (const kiln_toml *v);
int64_t kiln_toml_int (const kiln_toml *v);
double kiln_toml_float (const kiln_toml *v);
bool kiln_toml_bool (const kiln_toml *v);

/* A copy of an array of strings as a strv (see kv.h).  NULL when v is not
 * an array or holds anything but strings. */
char **kiln_toml_strv (const kiln_toml *v);

/* --- Building and writing -------------------------------------------- */

/* A new empty table or array, or a scalar.  Returned nodes are the
 * caller's until attached to a parent, which then owns them. */
kiln_toml *kiln_toml_new (kiln_toml_type type);
kiln_toml *kiln_toml_new_string (const char *s);
kiln_toml *kiln_toml_new_int (int64_t i);
kiln_toml *kiln_toml_new_bool (bool b);

/* A deep copy of v (the copy has no key). */
kiln_toml *kiln_toml_dup (const kiln_toml *v);

/* Stores value (taking ownership) under key in table, replacing any member
 * of that key.  Returns value, borrowed. */
kiln_toml *kiln_toml_set (kiln_toml *table, const char *key, kiln_toml *value);

/* Appends value (taking ownership) to an array.  Returns value. */
kiln_toml *kiln_toml_push (kiln_toml *array, kiln_toml *value);

/* Shorthands on a table. */
void kiln_toml_set_string (kiln_toml *table, const char *key, const char *s);
void kiln_toml_set_int (kiln_toml *table, const char *key, int64_t i);
void kiln_toml_set_bool (kiln_toml *table, const char *key, bool b);

/* Appends a new table to the array of tables at key (created if absent)
 * and returns it, borrowed: `[[key]]`. */
kiln_toml *kiln_toml_push_table (kiln_toml *table, const char *key);

/* Appends a TOML document for table t to out: plain keys first, then
 * `[sub.tables]`, then `[[arrays.of.tables]]`; other tables and arrays are
 * written inline.  The output parses back to an equal tree. */
int kiln_toml_emit (kiln_buf *out, const kiln_toml *t, kiln_error **err);

/* Writes kiln_toml_emit's output to path atomically. */
int kiln_toml_write_file (const char *path, const kiln_toml *t, kiln_error **err);

#endif
