/* kiln: writing layers.
 *
 * Every input is walked first (lstat only) into one list, which is sorted
 * by image path in byte order; duplicates keep the entry of the later
 * input; missing parent directories are added (0755, root-owned); files
 * seen twice by device and inode become hardlinks to the first path in
 * sorted order.  Then one pass streams the tar through a sink.  The root
 * itself ("" or ".") is not written as an entry: a layer does not change
 * the mode of the root it is applied to. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "layer_private.h"

typedef struct wentry {
        char *path; /* clean image path: no leading, trailing or double slash */
        char *host; /* NULL for an added parent directory */
        struct stat st;
        size_t order;         /* input order, for duplicates */
        const char *hardlink; /* the first path of the same inode, borrowed */
} wentry;

typedef struct wlist {
        wentry *v;
        size_t n, cap;
        dev_t skip_dev; /* the output file, when it lies inside an input */
        ino_t skip_ino;
} wlist;

static void
wlist_free (wlist *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free (l->v[i].path);
                free (l->v[i].host);
        }
        free (l->v);
}

static wentry *
wlist_add (wlist *l, char *path, char *host, const struct stat *st, size_t order)
{
        wentry *e;

        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 256;
                l->v = kiln_reallocarray (l->v, l->cap, sizeof (*l->v));
        }
        e = &l->v[l->n++];
        memset (e, 0, sizeof (*e));
        e->path = path;
        e->host = host;
        e->st = *st;
        e->order = order;
        return e;
}

static const char *
type_name (mode_t m)
{
        if (S_ISFIFO (m))
                return "fifo";
        if (S_ISCHR (m))
                return "character device";
        if (S_ISBLK (m))
                return "block device";
        return "special file";
}

static char *
join (const char *a, const char *b)
{
        if (a[0] == '\0')
                return kiln_strdup (b);
        return kiln_strdup_printf ("%s/%s", a, b);
}

static int collect (wlist *l, char *image, char *host, size_t order, kiln_error **err);

static int
collect_dir (wlist *l, const char *image, const char *host, size_t order, kiln_error **err)
{
        cleanup_dir DIR *d = opendir (host);
        struct dirent *de;

        if (d == NULL)
                return kiln_error_make (err, errno, "open directory `%s`", host);
        for (;;) {
                errno = 0;
                de = readdir (d);
                if (de == NULL)
                        break;
                if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
                        continue;
                if (collect (l, join (image, de->d_name), join (host, de->d_name), order, err) < 0)
                        return -1;
        }
        if (errno != 0)
                return kiln_error_make (err, errno, "read directory `%s`", host);
        return 0;
}

/* Takes ownership of image and host. */
static int
collect (wlist *l, char *image, char *host, size_t order, kiln_error **err)
{
        struct stat st;
        wentry *e;

        if (lstat (host, &st) < 0) {
                int saved = errno;
                kiln_error_make (err, saved, "stat `%s`", host);
                free (image);
                free (host);
                return -1;
        }
        if (S_ISSOCK (st.st_mode) || (st.st_dev == l->skip_dev && st.st_ino == l->skip_ino)) {
                kiln_debug ("layer: skipping `%s`", host);
                free (image);
                free (host);
                return 0;
        }
        if (!S_ISREG (st.st_mode) && !S_ISDIR (st.st_mode) && !S_ISLNK (st.st_mode)) {
                kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                  "`%s`: %s: device nodes and fifos cannot be put in a layer", host,
                                  type_name (st.st_mode));
                free (image);
                free (host);
                return -1;
        }
        e = wlist_add (l, image, host, &st, order);
        if (S_ISDIR (st.st_mode))
                return collect_dir (l, e->path, e->host, order, err);
        return 0;
}

static int
cmp_entry (const void *a, const void *b)
{
        const wentry *x = a, *y = b;
        int c = strcmp (x->path, y->path);

        if (c != 0)
                return c;
        return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts and keeps, of equal paths, the entry of the latest input. */
static void
sort_unique (wlist *l)
{
        size_t o = 0;

        qsort (l->v, l->n, sizeof (*l->v), cmp_entry);
        for (size_t i = 0; i < l->n; i++) {
                if (i + 1 < l->n && strcmp (l->v[i].path, l->v[i + 1].path) == 0) {
                        free (l->v[i].path);
                        free (l->v[i].host);
                        continue;
                }
                l->v[o++] = l->v[i];
        }
        l->n = o;
}

static wentry *
find (wlist *l, size_t n, const char *path)
{
        wentry key = { .path = (char *) path, .order = 0 };
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp (l->v[mid].path, key.path);
                if (c == 0)
                        return &l->v[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Adds every missing ancestor directory.  A parent that is not a
 * directory means two inputs disagree about a path. */
static int
add_parents (wlist *l, int64_t mtime, kiln_error **err)
{
        size_t n = l->n;
        struct stat dir_st = { 0 };

        dir_st.st_mode = S_IFDIR | 0755;
        dir_st.st_mtime = (time_t) mtime;
        for (size_t i = 0; i < n; i++) {
                cleanup_free char *p = kiln_strdup (l->v[i].path);
                char *slash;

                while ((slash = strrchr (p, '/')) != NULL) {
                        wentry *parent;

                        *slash = '\0';
                        parent = find (l, n, p);
                        if (parent && !S_ISDIR (parent->st.st_mode))
                                return kiln_error_makec (
                                    err, KILN_E_CONFLICT, 0,
                                    "`%s` is not a directory in the layer but `%s` is "
                                    "inside it",
                                    p, l->v[i].path);
                        if (parent)
                                break;
                        wlist_add (l, kiln_strdup (p), NULL, &dir_st, 0);
                }
        }
        if (l->n != n)
                sort_unique (l);
        return 0;
}

static int
cmp_inode (const void *a, const void *b)
{
        const wentry *x = *(wentry *const *) a, *y = *(wentry *const *) b;

        if (x->st.st_dev != y->st.st_dev)
                return x->st.st_dev < y->st.st_dev ? -1 : 1;
        if (x->st.st_ino != y->st.st_ino)
                return x->st.st_ino < y->st.st_ino ? -1 : 1;
        return x < y ? -1 : x > y;
}

/* The first path of an inode (in sorted order, as the array is) carries
 * the data; later ones link to it. */
static void
find_hardlinks (wlist *l)
{
        cleanup_free wentry **v = NULL;
        size_t n = 0;

        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].host && S_ISREG (l->v[i].st.st_mode) && l->v[i].st.st_nlink > 1)
                        n++;
        if (n < 2)
                return;
        v = kiln_calloc (n, sizeof (*v));
        n = 0;
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].host && S_ISREG (l->v[i].st.st_mode) && l->v[i].st.st_nlink > 1)
                        v[n++] = &l->v[i];
        qsort (v, n, sizeof (*v), cmp_inode);
        for (size_t i = 1; i < n; i++) {
                wentry *first = v[i - 1]->hardlink ? NULL : v[i - 1];
                if (v[i]->st.st_dev != v[i - 1]->st.st_dev
                    || v[i]->st.st_ino != v[i - 1]->st.st_ino)
                        continue;
                v[i]->hardlink = first ? first->path : v[i - 1]->hardlink;
        }
}

typedef struct writer {
        struct archive *a;
        struct archive_entry *ae;
        layer_sink *sink;
        kiln_error *sink_err;
        const kiln_layer_opts *opts;
        int64_t mtime;
        unsigned char *buf;
        uint64_t entries;
} writer;

static la_ssize_t
write_cb (struct archive *a, void *data, const void *buf, size_t len)
{
        writer *w = data;

        (void) a;
        if (layer_sink_write (w->sink, buf, len, &w->sink_err) < 0)
                return -1;
        return (la_ssize_t) len;
}

static int
archive_fail (writer *w, kiln_error **err, const char *what)
{
        if (w->sink_err) {
                *err = kiln_error_take (&w->sink_err);
                return kiln_error_wrap (err, "%s", what);
        }
        return kiln_error_make (err, 0, "%s: %s", what, archive_error_string (w->a));
}

static int
write_data (writer *w, const wentry *e, int fd, kiln_error **err)
{
        uint64_t left = (uint64_t) e->st.st_size;

        while (left > 0) {
                size_t want = left < LAYER_IO_BUF ? (size_t) left : LAYER_IO_BUF;
                ssize_t n = read (fd, w->buf, want);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kiln_error_make (err, errno, "read `%s`", e->host);
                if (n == 0)
                        return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                                 "`%s` shrank while it was being read", e->host);
                if (archive_write_data (w->a, w->buf, (size_t) n) != n) {
                        cleanup_free char *what = kiln_strdup_printf ("write `%s`", e->path);
                        return archive_fail (w, err, what);
                }
                left -= (uint64_t) n;
        }
        return 0;
}

static int
set_symlink (writer *w, const wentry *e, kiln_error **err)
{
        cleanup_free char *target = kiln_calloc (1, (size_t) e->st.st_size + 2);
        ssize_t n = readlink (e->host, target, (size_t) e->st.st_size + 1);

        if (n < 0)
                return kiln_error_make (err, errno, "readlink `%s`", e->host);
        if (n > e->st.st_size)
                return kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                         "`%s` changed while it was being read", e->host);
        target[n] = '\0';
        archive_entry_set_symlink (w->ae, target);
        return 0;
}

static int
write_entry (writer *w, const wentry *e, kiln_error **err)
{
        struct archive_entry *ae = w->ae;
        cleanup_close int fd = -1;
        bool with_data = S_ISREG (e->st.st_mode) && e->hardlink == NULL;

        archive_entry_clear (ae);
        archive_entry_set_pathname (ae, e->path);
        archive_entry_set_filetype (ae, e->st.st_mode & S_IFMT);
        archive_entry_set_perm (ae, e->st.st_mode & 07777);
        archive_entry_set_mtime (ae, (time_t) w->mtime, 0);
        if (w->opts->keep_owner && e->host) {
                archive_entry_set_uid (ae, e->st.st_uid);
                archive_entry_set_gid (ae, e->st.st_gid);
        }
        for (size_t i = 0; i < w->opts->n_owners; i++) {
                if (strcmp (w->opts->owners[i].path, e->path) != 0)
                        continue;
                archive_entry_set_uid (ae, w->opts->owners[i].uid);
                archive_entry_set_gid (ae, w->opts->owners[i].gid);
        }
        archive_entry_set_size (ae, with_data ? e->st.st_size : 0);
        if (e->hardlink)
                archive_entry_set_hardlink (ae, e->hardlink);
        if (S_ISLNK (e->st.st_mode) && set_symlink (w, e, err) < 0)
                return -1;
        if (with_data) {
                fd = open (e->host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return kiln_error_make (err, errno, "open `%s`", e->host);
                posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        }
        if (archive_write_header (w->a, ae) != ARCHIVE_OK) {
                cleanup_free char *what = kiln_strdup_printf ("write `%s`", e->path);
                return archive_fail (w, err, what);
        }
        w->entries++;
        if (with_data)
                return write_data (w, e, fd, err);
        return 0;
}

static int
write_all_entries (writer *w, const wlist *l, kiln_error **err)
{
        w->a = archive_write_new ();
        w->ae = archive_entry_new ();
        if (w->a == NULL || w->ae == NULL)
                abort ();
        /* ustar headers, with a pax header only for what ustar cannot hold;
         * no blocking, so nothing pads the end beyond the two zero
         * records. */
        if (archive_write_set_format_pax_restricted (w->a) != ARCHIVE_OK
            || archive_write_set_bytes_per_block (w->a, 0) != ARCHIVE_OK
            || archive_write_open (w->a, w, NULL, write_cb, NULL) != ARCHIVE_OK)
                return archive_fail (w, err, "start tar");
        for (size_t i = 0; i < l->n; i++) {
                if (l->v[i].path[0] == '\0')
                        continue;
                if (write_entry (w, &l->v[i], err) < 0)
                        return -1;
        }
        if (archive_write_close (w->a) != ARCHIVE_OK)
                return archive_fail (w, err, "end tar");
        return 0;
}

static int
resolve_threads (int threads)
{
        long n;

        if (threads > 0)
                return threads;
        n = sysconf (_SC_NPROCESSORS_ONLN);
        return n < 1 ? 1 : n > 64 ? 64 : (int) n;
}

static int
collect_inputs (wlist *l, const kiln_layer_entry *entries, size_t n_entries, kiln_error **err)
{
        for (size_t i = 0; i < n_entries; i++) {
                char *image = NULL;
                size_t before = l->n;

                if (layer_clean_path (&image, entries[i].image_path, true, err) < 0)
                        return kiln_error_wrap (err, "layer path");
                if (collect (l, image, kiln_strdup (entries[i].host_path), i + 1, err) < 0)
                        return -1;
                if (l->n > before && l->v[before].path[0] == '\0'
                    && !S_ISDIR (l->v[before].st.st_mode))
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "`%s` is not a directory and cannot be the root",
                                                 entries[i].host_path);
        }
        return 0;
}

static int
write_layer (kiln_layer_info *out, const kiln_layer_entry *entries, size_t n_entries, int fd,
             const kiln_layer_opts *opts, int64_t mtime, kiln_error **err)
{
        wlist l = { 0 };
        writer w = { 0 };
        struct stat out_st;
        int rc = -1;

        if (fstat (fd, &out_st) == 0 && S_ISREG (out_st.st_mode)) {
                l.skip_dev = out_st.st_dev;
                l.skip_ino = out_st.st_ino;
        }
        if (collect_inputs (&l, entries, n_entries, err) < 0)
                goto out;
        sort_unique (&l);
        if (add_parents (&l, mtime, err) < 0)
                goto out;
        find_hardlinks (&l);
        w.opts = opts;
        w.mtime = mtime;
        w.buf = kiln_calloc (1, LAYER_IO_BUF);
        if (layer_sink_new (&w.sink, fd, opts->compression, opts->level,
                            resolve_threads (opts->threads), err)
            < 0)
                goto out;
        if (write_all_entries (&w, &l, err) < 0 || layer_sink_finish (w.sink, out, err) < 0)
                goto out;
        out->entries = w.entries;
        out->media_type = kiln_layer_media_type (opts->compression);
        rc = 0;
out:
        if (w.a)
                archive_write_free (w.a);
        archive_entry_free (w.ae);
        layer_sink_free (w.sink);
        kiln_error_free (w.sink_err);
        free (w.buf);
        wlist_free (&l);
        return rc;
}

int
kiln_layer_write (kiln_layer_info *out, const kiln_layer_entry *entries, size_t n_entries,
                  const char *out_path, const kiln_layer_opts *opts, kiln_error **err)
{
        kiln_layer_opts defaults;
        kiln_layer_info info = { 0 };
        cleanup_close int fd = -1;
        struct stat st;
        int64_t mtime;
        locale_t prev;
        int r;

        if (opts == NULL) {
                kiln_layer_opts_init (&defaults);
                opts = &defaults;
        }
        mtime = opts->mtime;
        if (mtime < 0 && kiln_source_date_epoch (&mtime, err) < 0)
                return -1;
        fd = open (out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return kiln_error_make (err, errno, "create `%s`", out_path);
        prev = layer_locale_enter ();
        r = write_layer (&info, entries, n_entries, fd, opts, mtime, err);
        layer_locale_leave (prev);
        if (r < 0) {
                if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode))
                        unlink (out_path);
                return -1;
        }
        if (close (kiln_steal_fd (&fd)) < 0)
                return kiln_error_make (err, errno, "write `%s`", out_path);
        if (out)
                *out = info;
        return 0;
}

int
kiln_layer_write_dir (kiln_layer_info *out, const char *dir, const char *dest, const char *out_path,
                      const kiln_layer_opts *opts, kiln_error **err)
{
        kiln_layer_entry e = { dest ? dest : "", dir };

        return kiln_layer_write (out, &e, 1, out_path, opts, err);
}
