/* kiln: layer blobs kept by the content of the tree they hold, so a
 * launch layer or an app that did not change is not compressed again
 * (see include/kiln/export.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/export.h"
#include "kiln/fs.h"
#include "kiln/json.h"
#include "kiln/kv.h"
#include "kiln/log.h"

#define MAX_ENTRIES 1000000
#define MAX_RECORD ((size_t) 4 << 10)
/* Changing how keys or records are made changes this, so old entries are
 * never read with new meaning. */
#define KEY_VERSION "kiln layer cache 1"
#ifdef KILN_COMMIT
#define KILN_BUILT_FROM KILN_COMMIT
#else
#define KILN_BUILT_FROM "unknown"
#endif

typedef struct inode_seen {
        dev_t dev;
        ino_t ino;
        char *rel;
} inode_seen;

typedef struct walk {
        kiln_hasher *h;
        inode_seen *seen;
        size_t n_seen;
        uint64_t entries;
} walk;

static int
cmp_name (const void *a, const void *b)
{
        return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
sorted_names (char ***out, const char *dir, kiln_error **err)
{
        cleanup_dir DIR *d = opendir (dir);
        char **v = kiln_strv_new ();
        struct dirent *de;

        if (d == NULL) {
                kiln_strv_free (v);
                return kiln_error_make (err, errno, "open `%s`", dir);
        }
        while ((errno = 0, de = readdir (d)) != NULL) {
                if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
                        continue;
                v = kiln_strv_append (v, de->d_name);
        }
        if (errno != 0) {
                kiln_strv_free (v);
                return kiln_error_make (err, errno, "read `%s`", dir);
        }
        qsort (v, kiln_strv_len (v), sizeof (char *), cmp_name);
        *out = v;
        return 0;
}

static const char *
first_link (walk *w, const struct stat *st, const char *rel)
{
        for (size_t i = 0; i < w->n_seen; i++)
                if (w->seen[i].dev == st->st_dev && w->seen[i].ino == st->st_ino)
                        return w->seen[i].rel;
        w->seen = kiln_reallocarray (w->seen, w->n_seen + 1, sizeof (inode_seen));
        w->seen[w->n_seen++] = (inode_seen){ st->st_dev, st->st_ino, kiln_strdup (rel) };
        return NULL;
}

static char
type_char (mode_t m)
{
        if (S_ISDIR (m))
                return 'd';
        if (S_ISREG (m))
                return 'f';
        if (S_ISLNK (m))
                return 'l';
        if (S_ISFIFO (m))
                return 'p';
        if (S_ISCHR (m))
                return 'c';
        return 'b';
}

/* One record: "T PERM SIZE REL\0EXTRA\n". */
static int
hash_entry (walk *w, const char *abs, const char *rel, const struct stat *st, kiln_error **err)
{
        char head[64];
        char extra[KILN_DIGEST_MAX + 2] = "";
        const char *other = NULL;
        cleanup_free char *target = NULL;
        char t = type_char (st->st_mode);

        if (S_ISREG (st->st_mode) && st->st_nlink > 1)
                other = first_link (w, st, rel);
        if (other) {
                t = 'h';
        } else if (S_ISREG (st->st_mode)) {
                if (kiln_digest_file (extra, KILN_DIGEST_SHA256, abs, NULL, err) < 0)
                        return -1;
                other = extra;
        } else if (S_ISLNK (st->st_mode)) {
                target = kiln_calloc (1, (size_t) st->st_size + 2);
                ssize_t n = readlink (abs, target, (size_t) st->st_size + 1);
                if (n < 0)
                        return kiln_error_make (err, errno, "read link `%s`", abs);
                target[n] = '\0';
                other = target;
        }
        snprintf (head, sizeof head, "%c %o %llu ", t, (unsigned) (st->st_mode & 07777),
                  S_ISREG (st->st_mode) ? (unsigned long long) st->st_size : 0ULL);
        kiln_hasher_update (w->h, head, strlen (head));
        kiln_hasher_update (w->h, rel, strlen (rel) + 1);
        if (other)
                kiln_hasher_update (w->h, other, strlen (other));
        kiln_hasher_update (w->h, "\n", 1);
        return 0;
}

static int
walk_dir (walk *w, const char *abs, const char *rel, kiln_error **err)
{
        cleanup_strv char **names = NULL;

        if (sorted_names (&names, abs, err) < 0)
                return -1;
        for (char **n = names; *n; n++) {
                cleanup_free char *child = kiln_strdup_printf ("%s/%s", abs, *n);
                cleanup_free char *crel
                    = *rel ? kiln_strdup_printf ("%s/%s", rel, *n) : kiln_strdup (*n);
                struct stat st;

                if (lstat (child, &st) < 0)
                        return kiln_error_make (err, errno, "stat `%s`", child);
                if (S_ISSOCK (st.st_mode))
                        continue;
                if (++w->entries > MAX_ENTRIES)
                        return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                                 "`%s` has more than %d entries", abs, MAX_ENTRIES);
                if (hash_entry (w, child, crel, &st, err) < 0)
                        return -1;
                if (S_ISDIR (st.st_mode) && walk_dir (w, child, crel, err) < 0)
                        return -1;
        }
        return 0;
}

int
kiln_tree_digest (char out[KILN_DIGEST_MAX], const char *dir, kiln_error **err)
{
        walk w = { .h = kiln_hasher_new (KILN_DIGEST_SHA256) };
        struct stat st;
        int r = -1;

        if (stat (dir, &st) < 0) {
                kiln_error_make (err, errno, "stat `%s`", dir);
                goto out;
        }
        if (!S_ISDIR (st.st_mode)) {
                kiln_error_makec (err, KILN_E_INVALID, 0, "`%s` is not a directory", dir);
                goto out;
        }
        if (walk_dir (&w, dir, "", err) < 0)
                goto out;
        kiln_hasher_final (w.h, out);
        r = 0;
out:
        for (size_t i = 0; i < w.n_seen; i++)
                free (w.seen[i].rel);
        free (w.seen);
        kiln_hasher_free (w.h);
        return r;
}

/* ---- the cache ---- */

static void
cache_key (char out[KILN_DIGEST_MAX], const char *tree, const char *dest,
           const kiln_layer_opts *lopts)
{
        /* The writer's code and the compression libraries decide the
         * bytes too: another kiln or zlib must not reuse this one's blobs. */
        cleanup_free char *s = kiln_strdup_printf (
            KEY_VERSION " %s %s\n%s\n%s\n%s %d %lld %d\n", KILN_BUILT_FROM,
            kiln_layer_library_version (), tree, dest, kiln_layer_media_type (lopts->compression),
            lopts->level, (long long) lopts->mtime, lopts->keep_owner ? 1 : 0);
        kiln_digest_bytes (out, s, strlen (s));
}

static int
write_record (const char *path, const kiln_layer_info *info, kiln_error **err)
{
        cleanup_kiln_json kiln_json *j = kiln_json_object ();
        cleanup_free char *text = NULL;
        cleanup_free char *tmp = kiln_strdup_printf ("%s.tmp-%d", path, (int) getpid ());

        kiln_json_set_str (j, "diff_id", info->diff_id);
        kiln_json_set_str (j, "digest", info->digest);
        kiln_json_set_i64 (j, "size", (int64_t) info->size);
        kiln_json_set_i64 (j, "tar_size", (int64_t) info->tar_size);
        kiln_json_set_i64 (j, "entries", (int64_t) info->entries);
        kiln_json_set_str (j, "media_type", info->media_type);
        if (kiln_json_format (&text, j, err) < 0
            || kiln_write_file (tmp, text, strlen (text), 0644, err) < 0)
                return -1;
        if (rename (tmp, path) < 0) {
                unlink (tmp);
                return kiln_error_make (err, errno, "rename `%s`", tmp);
        }
        return 0;
}

/* 1 with *info filled when the record and its blob agree, else 0. */
static int
read_record (kiln_layer_info *info, const char *record, const char *blob,
             const kiln_layer_opts *lopts)
{
        cleanup_free char *text = NULL;
        cleanup_kiln_json kiln_json *j = NULL;
        char actual[KILN_DIGEST_MAX];
        const char *diff_id, *digest, *mt;
        int64_t size, tar_size, entries;
        uint64_t blob_size;
        size_t len;

        memset (info, 0, sizeof (*info));
        if (kiln_read_file (&text, &len, record, MAX_RECORD, NULL) < 0
            || kiln_json_parse (&j, text, len, MAX_RECORD, NULL) < 0)
                return 0;
        diff_id = kiln_json_get_str (j, "diff_id");
        digest = kiln_json_get_str (j, "digest");
        mt = kiln_json_get_str (j, "media_type");
        if (!diff_id || !digest || !mt || !kiln_digest_valid (diff_id)
            || !kiln_digest_valid (digest)
            || strcmp (mt, kiln_layer_media_type (lopts->compression))
            || !kiln_json_get_i64 (j, "size", &size)
            || !kiln_json_get_i64 (j, "tar_size", &tar_size)
            || !kiln_json_get_i64 (j, "entries", &entries) || size < 0 || tar_size < 0
            || entries < 0)
                return 0;
        /* A blob cut short or changed on disk must not reach an image. */
        if (kiln_digest_file (actual, KILN_DIGEST_SHA256, blob, &blob_size, NULL) < 0
            || blob_size != (uint64_t) size || strcmp (actual, digest) != 0)
                return 0;
        kiln_strlcpy (info->diff_id, diff_id, sizeof info->diff_id);
        kiln_strlcpy (info->digest, digest, sizeof info->digest);
        info->size = (uint64_t) size;
        info->tar_size = (uint64_t) tar_size;
        info->entries = (uint64_t) entries;
        info->media_type = kiln_layer_media_type (lopts->compression);
        return 1;
}

int
kiln_export_add_tree (kiln_compose *c, const char *cache_dir, const char *dir, const char *dest,
                      const kiln_layer_opts *lopts, const char *created_by, kiln_layer_info *info,
                      bool *hit, kiln_error **err)
{
        char tree[KILN_DIGEST_MAX], key[KILN_DIGEST_MAX];
        kiln_layer_info local;
        kiln_layer_opts defaults;
        cleanup_free char *blob = NULL;
        cleanup_free char *record = NULL;
        cleanup_free char *tmp = NULL;

        if (info == NULL)
                info = &local;
        if (hit)
                *hit = false;
        if (cache_dir == NULL)
                return kiln_compose_add_dir (c, dir, dest, lopts, created_by, info, err);
        if (lopts == NULL) {
                kiln_layer_opts_init (&defaults);
                lopts = &defaults;
        }
        if (lopts->mtime < 0) {
                defaults = *lopts;
                if (kiln_source_date_epoch (&defaults.mtime, err) < 0)
                        return -1;
                lopts = &defaults;
        }
        if (kiln_tree_digest (tree, dir, err) < 0)
                return -1;
        cache_key (key, tree, dest, lopts);
        blob = kiln_strdup_printf ("%s/%s.layer", cache_dir, kiln_digest_hex (key));
        record = kiln_strdup_printf ("%s/%s.json", cache_dir, kiln_digest_hex (key));
        if (read_record (info, record, blob, lopts)) {
                /* The time of last use is what pruning goes by. */
                utimensat (AT_FDCWD, blob, NULL, 0);
                if (hit)
                        *hit = true;
                return kiln_compose_add_layer_file (c, blob, info, created_by, err);
        }
        if (kiln_mkdir_p (cache_dir, 0700, err) < 0)
                return -1;
        tmp = kiln_strdup_printf ("%s/.tmp-%s-%d", cache_dir, kiln_digest_hex (key),
                                  (int) getpid ());
        if (kiln_layer_write_dir (info, dir, dest, tmp, lopts, err) < 0)
                return -1;
        if (rename (tmp, blob) < 0) {
                int e = errno;
                unlink (tmp);
                return kiln_error_make (err, e, "rename `%s`", tmp);
        }
        if (write_record (record, info, err) < 0)
                return -1;
        return kiln_compose_add_layer_file (c, blob, info, created_by, err);
}

int
kiln_export_cache_prune (const char *cache_dir, int64_t max_age_s, kiln_error **err)
{
        cleanup_strv char **names = NULL;
        time_t now = time (NULL);

        if (!kiln_is_dir (cache_dir))
                return 0;
        if (sorted_names (&names, cache_dir, err) < 0)
                return -1;
        for (char **n = names; *n; n++) {
                cleanup_free char *path = kiln_strdup_printf ("%s/%s", cache_dir, *n);
                struct stat st;
                bool layer = kiln_str_has_suffix (*n, ".layer");

                if (!layer && !kiln_str_has_prefix (*n, ".tmp-"))
                        continue;
                if (lstat (path, &st) < 0 || (int64_t) (now - st.st_mtime) < max_age_s)
                        continue;
                unlink (path);
                if (layer) {
                        cleanup_free char *rec = kiln_strdup_printf ("%s/%.*s.json", cache_dir,
                                                                     (int) (strlen (*n) - 6), *n);
                        unlink (rec);
                }
                kiln_debug ("pruned `%s` from the layer cache", *n);
        }
        return 0;
}
