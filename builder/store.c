/* kiln: the daemon's records in SQLite. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/store.h"

#define DEFAULT_HISTORY 10000
#define NAME_MAX_LEN 253
/* Prepared statements kept for reuse, keyed by their SQL's address (every
 * statement is a string literal): a GET then costs no SQL parsing. */
#define STMT_CACHE 32

typedef struct cached_stmt {
        const char *sql;
        sqlite3_stmt *st;
        bool in_use;
} cached_stmt;

struct kiln_store {
        sqlite3 *db;
        cached_stmt cache[STMT_CACHE];
        pthread_mutex_t lock;
        pthread_cond_t moved;
        int64_t rv;        /* newest resourceVersion */
        int64_t compacted; /* events up to this one were dropped */
        size_t history;
        bool shut_down;
};

static const char schema[]
    = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, ns TEXT NOT NULL,"
      "  name TEXT NOT NULL, rv INTEGER NOT NULL, doc TEXT NOT NULL,"
      "  PRIMARY KEY (kind, ns, name));"
      "CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
      "  ns TEXT NOT NULL, type TEXT NOT NULL, doc TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS events_kind ON events (kind, rv);"
      "INSERT OR IGNORE INTO meta VALUES ('rv', 0), ('compacted', 0);";

static int
db_fail (kiln_error **err, sqlite3 *db, const char *what)
{
        return kiln_error_makec (err, KILN_E_IO, 0, "store: %s: %s", what, sqlite3_errmsg (db));
}

static int
exec_sql (kiln_store *s, const char *sql, kiln_error **err)
{
        if (sqlite3_exec (s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return db_fail (err, s->db, sql);
        return 0;
}

typedef struct stmt {
        sqlite3_stmt *st;
        cached_stmt *cached; /* NULL: finalized at the end of its scope */
} stmt;

static void
cleanup_stmtp (void *p)
{
        stmt *q = p;

        if (q->cached) {
                sqlite3_reset (q->st);
                sqlite3_clear_bindings (q->st);
                q->cached->in_use = false;
        } else {
                sqlite3_finalize (q->st);
        }
}
#define cleanup_stmt __attribute__ ((cleanup (cleanup_stmtp)))

/* A statement for sql from the cache, prepared on first use; NULL when the
 * cache is full or the statement is in use further up the stack. */
static cached_stmt *
cache_take (kiln_store *s, const char *sql)
{
        cached_stmt *free_slot = NULL;

        for (size_t i = 0; i < STMT_CACHE; i++) {
                cached_stmt *c = &s->cache[i];
                if (c->sql == sql) {
                        if (c->in_use)
                                return NULL;
                        c->in_use = true;
                        return c;
                }
                if (c->sql == NULL && free_slot == NULL)
                        free_slot = c;
        }
        if (free_slot == NULL
            || sqlite3_prepare_v3 (s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &free_slot->st, NULL)
                   != SQLITE_OK)
                return NULL;
        free_slot->sql = sql;
        free_slot->in_use = true;
        return free_slot;
}

/* Prepares sql (or takes it from the cache; callers hold s->lock) and binds
 * the text arguments (NULL ends the list). */
static int
prepare (stmt *out, kiln_store *s, const char *sql, kiln_error **err, ...)
{
        va_list ap;
        const char *a;
        int i = 1;

        out->cached = cache_take (s, sql);
        if (out->cached)
                out->st = out->cached->st;
        else if (sqlite3_prepare_v2 (s->db, sql, -1, &out->st, NULL) != SQLITE_OK)
                return db_fail (err, s->db, "prepare");
        va_start (ap, err);
        while ((a = va_arg (ap, const char *)) != NULL)
                sqlite3_bind_text (out->st, i++, a, -1, SQLITE_TRANSIENT);
        va_end (ap);
        return 0;
}

static int64_t
meta_get (kiln_store *s, const char *key)
{
        cleanup_stmt stmt q = { .st = NULL };
        int64_t v = 0;

        if (prepare (&q, s, "SELECT v FROM meta WHERE k = ?", NULL, key, NULL) < 0)
                return 0;
        if (sqlite3_step (q.st) == SQLITE_ROW)
                v = sqlite3_column_int64 (q.st, 0);
        return v;
}

static int
meta_set (kiln_store *s, const char *key, int64_t v, kiln_error **err)
{
        cleanup_stmt stmt q = { .st = NULL };

        if (prepare (&q, s, "UPDATE meta SET v = ? WHERE k = ?", err, NULL) < 0)
                return -1;
        sqlite3_bind_int64 (q.st, 1, v);
        sqlite3_bind_text (q.st, 2, key, -1, SQLITE_STATIC);
        if (sqlite3_step (q.st) != SQLITE_DONE)
                return db_fail (err, s->db, "update meta");
        return 0;
}

/* The file is made before SQLite opens it so that it (and the -wal and
 * -shm files SQLite derives from it) are never readable by others. */
static int
create_private (const char *path, kiln_error **err)
{
        int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

        if (fd < 0)
                return kiln_error_make (err, errno, "store: create `%s`", path);
        if (fchmod (fd, 0600) < 0) {
                int e = errno;
                close (fd);
                return kiln_error_make (err, e, "store: chmod `%s`", path);
        }
        close (fd);
        return 0;
}

static int
open_db (kiln_store *s, const char *dir, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/kiln.db", dir);

        if (kiln_mkdir_p (dir, 0700, err) < 0 || create_private (path, err) < 0)
                return -1;
        if (chmod (dir, 0700) < 0)
                return kiln_error_make (err, errno, "store: chmod `%s`", dir);
        if (sqlite3_open_v2 (path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL)
            != SQLITE_OK) {
                kiln_error_makec (err, KILN_E_IO, 0, "store: open `%s`: %s", path,
                                  s->db ? sqlite3_errmsg (s->db) : "out of memory");
                return -1;
        }
        sqlite3_busy_timeout (s->db, 5000);
        if (exec_sql (s, "PRAGMA journal_mode=WAL", err) < 0
            || exec_sql (s, "PRAGMA synchronous=FULL", err) < 0 || exec_sql (s, schema, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        return 0;
}

int
kiln_store_open (kiln_store **out, const char *dir, size_t history, kiln_error **err)
{
        kiln_store *s = kiln_calloc (1, sizeof (*s));

        pthread_mutex_init (&s->lock, NULL);
        pthread_cond_init (&s->moved, NULL);
        s->history = history ? history : DEFAULT_HISTORY;
        if (open_db (s, dir, err) < 0) {
                kiln_store_free (s);
                return -1;
        }
        s->rv = meta_get (s, "rv");
        s->compacted = meta_get (s, "compacted");
        *out = s;
        return 0;
}

void
kiln_store_shutdown (kiln_store *s)
{
        pthread_mutex_lock (&s->lock);
        s->shut_down = true;
        pthread_cond_broadcast (&s->moved);
        pthread_mutex_unlock (&s->lock);
}

bool
kiln_store_is_shut_down (kiln_store *s)
{
        bool r;

        pthread_mutex_lock (&s->lock);
        r = s->shut_down;
        pthread_mutex_unlock (&s->lock);
        return r;
}

void
kiln_store_free (kiln_store *s)
{
        if (s == NULL)
                return;
        for (size_t i = 0; i < STMT_CACHE; i++)
                sqlite3_finalize (s->cache[i].st);
        if (s->db)
                sqlite3_close (s->db);
        pthread_cond_destroy (&s->moved);
        pthread_mutex_destroy (&s->lock);
        free (s);
}

int64_t
kiln_store_current (kiln_store *s)
{
        int64_t rv;

        pthread_mutex_lock (&s->lock);
        rv = s->rv;
        pthread_mutex_unlock (&s->lock);
        return rv;
}

void
kiln_store_uuid (char out[37])
{
        unsigned char b[16];
        size_t got = 0;

        while (got < sizeof b) {
                ssize_t n = getrandom (b + got, sizeof b - got, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        abort ();
                got += (size_t) n;
        }
        b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);
        snprintf (out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                  b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                  b[13], b[14], b[15]);
}

void
kiln_store_now (char out[32])
{
        time_t t = time (NULL);
        struct tm tm;

        gmtime_r (&t, &tm);
        strftime (out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- reading ---- */

static json_t *
column_json (sqlite3_stmt *st, int col)
{
        const char *text = (const char *) sqlite3_column_text (st, col);
        return text ? json_loads (text, 0, NULL) : NULL;
}

static int
get_locked (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
            kiln_error **err)
{
        cleanup_stmt stmt q = { .st = NULL };
        int rc;

        if (prepare (&q, s, "SELECT doc FROM objects WHERE kind = ? AND ns = ? AND name = ?", err,
                     kind, ns, name, NULL)
            < 0)
                return -1;
        rc = sqlite3_step (q.st);
        if (rc == SQLITE_DONE)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "%s `%s` not found", kind, name);
        if (rc != SQLITE_ROW)
                return db_fail (err, s->db, "read object");
        *out = column_json (q.st, 0);
        if (*out == NULL)
                return kiln_error_makec (err, KILN_E_IO, 0, "store: %s `%s` is not JSON", kind,
                                         name);
        return 0;
}

int
kiln_store_get (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
                kiln_error **err)
{
        int r;

        pthread_mutex_lock (&s->lock);
        r = get_locked (out, s, kind, ns ? ns : "", name, err);
        pthread_mutex_unlock (&s->lock);
        return r;
}

static int
list_locked (json_t *items, kiln_store *s, const char *kind, const char *ns, kiln_error **err)
{
        cleanup_stmt stmt q = { .st = NULL };
        int rc;

        if (ns)
                rc = prepare (&q, s,
                              "SELECT doc FROM objects WHERE kind = ? AND ns = ? ORDER BY ns, name",
                              err, kind, ns, NULL);
        else
                rc = prepare (&q, s, "SELECT doc FROM objects WHERE kind = ? ORDER BY ns, name",
                              err, kind, NULL);
        if (rc < 0)
                return -1;
        while ((rc = sqlite3_step (q.st)) == SQLITE_ROW) {
                json_t *doc = column_json (q.st, 0);
                if (doc)
                        json_array_append_new (items, doc);
        }
        if (rc != SQLITE_DONE)
                return db_fail (err, s->db, "list objects");
        return 0;
}

int
kiln_store_list (json_t **out, int64_t *rv, kiln_store *s, const char *kind, const char *ns,
                 kiln_error **err)
{
        json_t *items = json_array ();
        int r;

        pthread_mutex_lock (&s->lock);
        r = list_locked (items, s, kind, ns, err);
        *rv = s->rv;
        pthread_mutex_unlock (&s->lock);
        if (r < 0) {
                json_decref (items);
                return -1;
        }
        *out = items;
        return 0;
}

/* ---- writing ---- */

static bool
exists_locked (kiln_store *s, const char *kind, const char *ns, const char *name)
{
        cleanup_stmt stmt q = { .st = NULL };

        if (prepare (&q, s, "SELECT 1 FROM objects WHERE kind = ? AND ns = ? AND name = ?", NULL,
                     kind, ns, name, NULL)
            < 0)
                return false;
        return sqlite3_step (q.st) == SQLITE_ROW;
}

static const char *
meta_str (json_t *obj, const char *key)
{
        return json_string_value (json_object_get (json_object_get (obj, "metadata"), key));
}

static json_t *
metadata_of (json_t *obj)
{
        json_t *m = json_object_get (obj, "metadata");

        if (!json_is_object (m)) {
                m = json_object ();
                json_object_set_new (obj, "metadata", m);
        }
        return m;
}

static void
set_rv (json_t *obj, int64_t rv)
{
        char buf[32];

        snprintf (buf, sizeof buf, "%lld", (long long) rv);
        json_object_set_new (metadata_of (obj), "resourceVersion", json_string (buf));
}

static int
write_object (kiln_store *s, const char *sql, const char *kind, const char *ns, const char *name,
              json_t *obj, int64_t rv, kiln_error **err)
{
        cleanup_stmt stmt q = { .st = NULL };
        cleanup_free char *doc = json_dumps (obj, JSON_COMPACT | JSON_SORT_KEYS);

        if (doc == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "store: cannot write %s `%s`",
                                         kind, name);
        if (prepare (&q, s, sql, err, NULL) < 0)
                return -1;
        sqlite3_bind_text (q.st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text (q.st, 2, ns, -1, SQLITE_STATIC);
        sqlite3_bind_text (q.st, 3, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (q.st, 4, rv);
        sqlite3_bind_text (q.st, 5, doc, -1, SQLITE_STATIC);
        if (sqlite3_step (q.st) != SQLITE_DONE)
                return db_fail (err, s->db, "write object");
        return 0;
}

/* Secrets change the resourceVersion but are never streamed to watchers. */
static int
log_event (kiln_store *s, const char *kind, const char *ns, const char *type, json_t *obj,
           int64_t rv, kiln_error **err)
{
        cleanup_stmt stmt drop = { .st = NULL };
        int64_t horizon = rv - (int64_t) s->history;

        if (strcmp (kind, "Secret") == 0)
                return 0;
        if (write_object (s, "INSERT INTO events (kind, ns, type, rv, doc) VALUES (?, ?, ?, ?, ?)",
                          kind, ns, type, obj, rv, err)
            < 0)
                return -1;
        if (horizon <= s->compacted)
                return 0;
        if (prepare (&drop, s, "DELETE FROM events WHERE rv <= ?", err, NULL) < 0)
                return -1;
        sqlite3_bind_int64 (drop.st, 1, horizon);
        if (sqlite3_step (drop.st) != SQLITE_DONE)
                return db_fail (err, s->db, "compact events");
        if (meta_set (s, "compacted", horizon, err) < 0)
                return -1;
        s->compacted = horizon; /* reread from the file on rollback */
        return 0;
}

static void
random_suffix (char out[6])
{
        /* Kubernetes' alphabet: no vowels, no look-alikes. */
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        unsigned char b[5];

        if (getrandom (b, sizeof b, 0) != (ssize_t) sizeof b)
                memset (b, (int) (time (NULL) & 0xff), sizeof b);
        for (int i = 0; i < 5; i++)
                out[i] = alphabet[b[i] % (sizeof alphabet - 1)];
        out[5] = '\0';
}

static int
choose_name (char **out, kiln_store *s, const char *kind, const char *ns, json_t *obj,
             kiln_error **err)
{
        const char *name = meta_str (obj, "name");
        const char *gen = meta_str (obj, "generateName");

        if (name && *name) {
                *out = kiln_strdup (name);
                return 0;
        }
        if (gen == NULL || *gen == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "metadata.name: Required value: name or generateName "
                                         "is required");
        for (int tries = 0; tries < 16; tries++) {
                char suffix[6];
                random_suffix (suffix);
                cleanup_free char *n = kiln_strdup_printf ("%.*s%s", NAME_MAX_LEN - 5, gen, suffix);
                if (!exists_locked (s, kind, ns, n)) {
                        *out = steal_pointer (&n);
                        return 0;
                }
        }
        return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                 "metadata.generateName: no free name for `%s`", gen);
}

static int
begin (kiln_store *s, kiln_error **err)
{
        return exec_sql (s, "BEGIN IMMEDIATE", err);
}

/* Commits, or rolls back when r < 0; moves the counter on success. */
static int
end (kiln_store *s, int r, int64_t rv, kiln_error **err)
{
        if (r == 0 && meta_set (s, "rv", rv, err) == 0 && exec_sql (s, "COMMIT", err) == 0) {
                s->rv = rv;
                pthread_cond_broadcast (&s->moved);
                return 0;
        }
        sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
        s->compacted = meta_get (s, "compacted");
        return -1;
}

static int
create_locked (json_t **out, kiln_store *s, const char *kind, const char *ns, json_t *obj,
               kiln_error **err)
{
        cleanup_free char *name = NULL;
        int64_t rv = s->rv + 1;
        json_t *m;
        char uid[37], now[32];

        if (choose_name (&name, s, kind, ns, obj, err) < 0)
                return -1;
        if (exists_locked (s, kind, ns, name))
                return kiln_error_makec (err, KILN_E_CONFLICT, 0, "%s `%s` already exists", kind,
                                         name);
        kiln_store_uuid (uid);
        kiln_store_now (now);
        m = metadata_of (obj);
        json_object_set_new (m, "name", json_string (name));
        if (*ns)
                json_object_set_new (m, "namespace", json_string (ns));
        else
                json_object_del (m, "namespace");
        json_object_set_new (m, "uid", json_string (uid));
        json_object_set_new (m, "generation", json_integer (1));
        json_object_set_new (m, "creationTimestamp", json_string (now));
        set_rv (obj, rv);
        if (write_object (s, "INSERT INTO objects (kind, ns, name, rv, doc) VALUES (?, ?, ?, ?, ?)",
                          kind, ns, name, obj, rv, err)
                < 0
            || log_event (s, kind, ns, "ADDED", obj, rv, err) < 0)
                return -1;
        if (out)
                *out = json_incref (obj);
        return 0;
}

int
kiln_store_create (json_t **out, kiln_store *s, const char *kind, const char *ns, json_t *obj,
                   kiln_error **err)
{
        int r;

        ns = ns ? ns : "";
        pthread_mutex_lock (&s->lock);
        r = begin (s, err);
        if (r == 0)
                r = end (s, create_locked (out, s, kind, ns, obj, err), s->rv + 1, err);
        pthread_mutex_unlock (&s->lock);
        return r;
}

static int64_t
rv_of (json_t *obj)
{
        const char *v = meta_str (obj, "resourceVersion");
        int64_t rv = 0;

        if (v)
                kiln_parse_int64 (v, 0, INT64_MAX, &rv);
        return rv;
}

/* The fields the store owns come from the stored object, whatever the
 * caller sent. */
static void
keep_owned_metadata (json_t *obj, json_t *old)
{
        json_t *m = metadata_of (obj), *om = metadata_of (old);
        static const char *const keys[] = { "name", "namespace", "uid", "creationTimestamp" };
        json_int_t gen = json_integer_value (json_object_get (om, "generation"));

        for (size_t i = 0; i < KILN_N_ELEMENTS (keys); i++) {
                json_t *v = json_object_get (om, keys[i]);
                if (v)
                        json_object_set (m, keys[i], v);
                else
                        json_object_del (m, keys[i]);
        }
        json_object_del (m, "generateName");
        if (json_object_get (om, "generateName"))
                json_object_set (m, "generateName", json_object_get (om, "generateName"));
        if (!json_equal (json_object_get (obj, "spec"), json_object_get (old, "spec")))
                gen++;
        json_object_set_new (m, "generation", json_integer (gen ? gen : 1));
}

static int
update_locked (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
               json_t *obj, int64_t expect_rv, kiln_error **err)
{
        json_t *old = NULL;
        int64_t rv = s->rv + 1;
        int r;

        if (get_locked (&old, s, kind, ns, name, err) < 0)
                return -1;
        if (expect_rv > 0 && rv_of (old) != expect_rv) {
                json_decref (old);
                return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                         "Operation cannot be fulfilled on %s `%s`: the object "
                                         "has been modified; please apply your changes to the "
                                         "latest version and try again",
                                         kind, name);
        }
        keep_owned_metadata (obj, old);
        json_decref (old);
        set_rv (obj, rv);
        r = write_object (
            s, "UPDATE objects SET rv = ?4, doc = ?5 WHERE kind = ?1 AND ns = ?2 AND name = ?3",
            kind, ns, name, obj, rv, err);
        if (r == 0)
                r = log_event (s, kind, ns, "MODIFIED", obj, rv, err);
        if (r == 0 && out)
                *out = json_incref (obj);
        return r;
}

int
kiln_store_update (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
                   json_t *obj, int64_t expect_rv, kiln_error **err)
{
        /* name may point into obj, whose metadata is rewritten below. */
        cleanup_free char *own_ns = kiln_strdup (ns ? ns : "");
        cleanup_free char *own_name = kiln_strdup (name);
        int r;

        pthread_mutex_lock (&s->lock);
        r = begin (s, err);
        if (r == 0)
                r = end (s, update_locked (out, s, kind, own_ns, own_name, obj, expect_rv, err),
                         s->rv + 1, err);
        pthread_mutex_unlock (&s->lock);
        return r;
}

static int
delete_locked (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
               kiln_error **err)
{
        cleanup_stmt stmt q = { .st = NULL };
        json_t *old = NULL;
        int64_t rv = s->rv + 1;
        int r = 0;

        if (get_locked (&old, s, kind, ns, name, err) < 0)
                return -1;
        set_rv (old, rv);
        if (prepare (&q, s, "DELETE FROM objects WHERE kind = ? AND ns = ? AND name = ?", err, kind,
                     ns, name, NULL)
                < 0
            || sqlite3_step (q.st) != SQLITE_DONE)
                r = db_fail (err, s->db, "delete object");
        if (r == 0)
                r = log_event (s, kind, ns, "DELETED", old, rv, err);
        if (r == 0 && out)
                *out = json_incref (old);
        json_decref (old);
        return r;
}

int
kiln_store_delete (json_t **out, kiln_store *s, const char *kind, const char *ns, const char *name,
                   kiln_error **err)
{
        int r;

        ns = ns ? ns : "";
        pthread_mutex_lock (&s->lock);
        r = begin (s, err);
        if (r == 0)
                r = end (s, delete_locked (out, s, kind, ns, name, err), s->rv + 1, err);
        pthread_mutex_unlock (&s->lock);
        return r;
}

/* ---- watching ---- */

static int
events_locked (json_t *items, int64_t *last, kiln_store *s, const char *kind, const char *ns,
               int64_t since, size_t max, kiln_error **err)
{
        cleanup_stmt stmt q = { .st = NULL };
        size_t n = 0;
        int rc;

        rc = prepare (&q, s,
                      ns ? "SELECT rv, type, doc FROM events WHERE kind = ?1 AND rv > ?2 AND ns = "
                           "?3 ORDER BY rv LIMIT ?4"
                         : "SELECT rv, type, doc FROM events WHERE kind = ?1 AND rv > ?2 ORDER "
                           "BY rv LIMIT ?4",
                      err, NULL);
        if (rc < 0)
                return -1;
        sqlite3_bind_text (q.st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (q.st, 2, since);
        if (ns)
                sqlite3_bind_text (q.st, 3, ns, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (q.st, 4, (sqlite3_int64) max);
        *last = since;
        while ((rc = sqlite3_step (q.st)) == SQLITE_ROW) {
                json_t *doc = column_json (q.st, 2);
                *last = sqlite3_column_int64 (q.st, 0);
                n++;
                if (doc == NULL)
                        continue;
                json_array_append_new (
                    items, json_pack ("{s:s,s:o}", "type",
                                      (const char *) sqlite3_column_text (q.st, 1), "object", doc));
        }
        if (rc != SQLITE_DONE)
                return db_fail (err, s->db, "read events");
        if (n < max)
                *last = s->rv > since ? s->rv : since;
        return 0;
}

int
kiln_store_events (json_t **out, int64_t *last, bool *gone, kiln_store *s, const char *kind,
                   const char *ns, int64_t since, size_t max, kiln_error **err)
{
        json_t *items = json_array ();
        int r = 0;

        *gone = false;
        pthread_mutex_lock (&s->lock);
        if (since < s->compacted)
                *gone = true;
        else
                r = events_locked (items, last, s, kind, ns, since, max, err);
        pthread_mutex_unlock (&s->lock);
        if (r < 0 || *gone) {
                json_decref (items);
                *out = NULL;
                return r;
        }
        *out = items;
        return 0;
}

bool
kiln_store_wait (kiln_store *s, int64_t after, int timeout_ms)
{
        struct timespec until;
        bool moved;

        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock (&s->lock);
        while (s->rv <= after && !s->shut_down)
                if (pthread_cond_timedwait (&s->moved, &s->lock, &until) == ETIMEDOUT)
                        break;
        moved = s->rv > after;
        pthread_mutex_unlock (&s->lock);
        return moved;
}
