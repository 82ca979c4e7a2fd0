/* kiln: the daemon's records (SQLite; the only module that calls it).
 *
 * `kiln serve` keeps every object it serves (Builds, BuildRuns, strategies,
 * Secrets) as a JSON document in one SQLite database in WAL mode, with
 * synchronous=FULL: a call that returned 0 has reached the disk, so a
 * kill -9 loses nothing that was acknowledged.  The database file (and its
 * -wal and -shm files) are mode 0600, since Secrets live there too.
 *
 * Every change gets the next value of one global counter, the
 * resourceVersion, and (except for Secrets) an entry in an event log that
 * watchers read from.  The log keeps the newest `history` events; asking
 * for events older than that is "gone" (HTTP 410 for the API).
 *
 * Objects are jansson values (this is a JSON-model module).  The store
 * owns metadata.uid, .resourceVersion, .generation and .creationTimestamp:
 * it sets them on create and keeps them on update.  Kinds are the
 * Kubernetes kind names ("Build"); a cluster-scoped object has ns "".
 *
 * All functions are thread-safe (one connection behind a mutex). */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct kiln_store kiln_store;

/* Opens (creating when missing) DIR/kiln.db; DIR is created mode 0700.
 * history: how many events the log keeps (0: 10000). */
int kiln_store_open (kiln_store **out, const char *dir, size_t history, kiln_error **err);

/* Closes the database; accepts NULL.  Wakes and fails every waiter first
 * (see kiln_store_shutdown). */
void kiln_store_free (kiln_store *s);

/* Makes kiln_store_wait return at once from now on, so that streaming
 * requests end when the daemon stops. */
void kiln_store_shutdown (kiln_store *s);
bool kiln_store_is_shut_down (kiln_store *s);

/* The newest resourceVersion given out (0 for an empty store). */
int64_t kiln_store_current (kiln_store *s);

/* The object, a new reference in *out.  KILN_E_NOT_FOUND when missing. */
int kiln_store_get (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
                    kiln_error **err);

/* Every object of a kind, in one namespace or (ns NULL) all, ordered by
 * namespace then name, as a new array in *out; *rv gets the resourceVersion
 * the list was read at. */
int kiln_store_list (json_t **out, int64_t *rv, kiln_store *s, const char *kind, const char *ns,
                     kiln_error **err);

/* Stores a new object.  obj's metadata.name, or when it is missing or
 * empty metadata.generateName plus five random characters, names it;
 * metadata.namespace is set to ns (removed for ns "").  *out (may be NULL)
 * gets the stored object.  KILN_E_CONFLICT when the name is taken. */
int kiln_store_create (json_t **out, kiln_store *s, const char *kind, const char *ns, json_t *obj,
                       kiln_error **err);

/* Replaces an object.  When expect_rv > 0 and the stored resourceVersion
 * differs: KILN_E_CONFLICT.  generation goes up by one when .spec changed.
 * KILN_E_NOT_FOUND when missing.  *out (may be NULL) gets the new object. */
int kiln_store_update (json_t **out, kiln_store *s, const char *kind, const char *ns,
                       const char *name, json_t *obj, int64_t expect_rv, kiln_error **err);

/* Removes an object; *out (may be NULL) gets it as it was, with the
 * resourceVersion of the deletion.  KILN_E_NOT_FOUND when missing. */
int kiln_store_delete (json_t **out, kiln_store *s, const char *kind, const char *ns,
                       const char *name, kiln_error **err);

/* The events after resourceVersion `since` for a kind (ns NULL: every
 * namespace), at most max of them, as a new array in *out of
 * {"type":"ADDED|MODIFIED|DELETED","object":...}; *last gets the
 * resourceVersion the caller should continue from.  *gone is set (and
 * nothing else) when events after `since` were already dropped. */
int kiln_store_events (json_t **out, int64_t *last, bool *gone, kiln_store *s, const char *kind,
                       const char *ns, int64_t since, size_t max, kiln_error **err);

/* Blocks until the store moves past resourceVersion `after`, timeout_ms
 * passes or the store shuts down.  Returns true when it moved. */
bool kiln_store_wait (kiln_store *s, int64_t after, int timeout_ms);

/* A new random RFC 4122 version 4 UUID (37 bytes with the NUL). */
void kiln_store_uuid (char out[37]);

/* The current UTC time as RFC 3339 ("2025-01-01T10:00:00Z"). */
void kiln_store_now (char out[32]);

#endif
