/* kiln: applying a layer to a root directory.  A security boundary.
 *
 * Every path is walked from the root one component at a time with
 * openat (O_NOFOLLOW | O_DIRECTORY).  A symlink met on the way is resolved
 * inside the root, as under chroot: an absolute target starts again at the
 * root, and a ".." that would climb above the root is refused as an
 * escape.  The last component is never followed: whatever is there is
 * removed and the entry created with O_EXCL | O_NOFOLLOW (or mkdirat,
 * symlinkat, linkat), so nothing outside the root is ever written.
 *
 * Whiteouts follow the OCI image spec: ".wh.NAME" removes NAME of the lower
 * layers and ".wh..wh..opq" empties its directory of lower content,
 * wherever it appears in the layer; this layer's own entries are kept
 * because every path it creates is remembered.  Device nodes and fifos are
 * skipped (kiln runs unprivileged and builds images for functions), as are
 * other special types.  The root entry itself ("./") is skipped: the mode
 * of the root belongs to the caller. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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

#define DEFAULT_MAX_ENTRIES UINT64_C (1000000)
#define DEFAULT_MAX_BYTES (UINT64_C (32) << 30)
#define MAX_SYMLINK_HOPS 40
#define WHITEOUT ".wh."
#define OPAQUE ".wh..wh..opq"

/* A set of paths, open addressing. */
typedef struct pathset {
        char **slots;
        size_t cap, n;
} pathset;

static uint64_t
hash_str (const char *s, size_t len)
{
        uint64_t h = UINT64_C (1469598103934665603);

        for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char) s[i]) * UINT64_C (1099511628211);
        return h;
}

static char **
pathset_slot (const pathset *s, const char *p, size_t len)
{
        size_t i = (size_t) hash_str (p, len) & (s->cap - 1);

        while (s->slots[i] && !(strncmp (s->slots[i], p, len) == 0 && s->slots[i][len] == '\0'))
                i = (i + 1) & (s->cap - 1);
        return &s->slots[i];
}

static bool
pathset_has (const pathset *s, const char *p)
{
        return s->cap > 0 && *pathset_slot (s, p, strlen (p)) != NULL;
}

static void
pathset_grow (pathset *s)
{
        pathset bigger = { kiln_calloc (s->cap ? s->cap * 2 : 1024, sizeof (char *)),
                           s->cap ? s->cap * 2 : 1024, s->n };

        for (size_t i = 0; i < s->cap; i++)
                if (s->slots[i])
                        *pathset_slot (&bigger, s->slots[i], strlen (s->slots[i])) = s->slots[i];
        free (s->slots);
        *s = bigger;
}

/* Adds p and its ancestors: a path this layer names keeps its parents. */
static void
pathset_add_with_parents (pathset *s, const char *p)
{
        size_t len = strlen (p);

        while (len > 0) {
                char **slot;

                if ((s->n + 1) * 2 > s->cap)
                        pathset_grow (s);
                slot = pathset_slot (s, p, len);
                if (*slot)
                        return;
                *slot = strndup (p, len);
                if (*slot == NULL)
                        abort ();
                s->n++;
                while (len > 0 && p[len - 1] != '/')
                        len--;
                if (len > 0)
                        len--;
        }
}

static void
pathset_free (pathset *s)
{
        for (size_t i = 0; i < s->cap; i++)
                free (s->slots[i]);
        free (s->slots);
}

typedef struct dir_attr {
        char *path;
        mode_t mode;
        struct timespec mtime;
        uid_t uid;
        gid_t gid;
} dir_attr;

typedef struct extractor {
        int root_fd;
        uint64_t max_entries, max_bytes;
        uint64_t entries, bytes;
        bool chown_ok;
        bool no_whiteouts;
        layer_source *src;
        kiln_error *src_err;
        struct archive *a;
        const char *entry; /* the raw name of the entry being extracted */
        char *cache_path;  /* the parent directory opened last */
        int cache_fd;
        pathset created;
        dir_attr *dirs;
        size_t n_dirs, cap_dirs;
} extractor;

static int entry_error (extractor *x, kiln_error **err, kiln_error_code code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
entry_error (extractor *x, kiln_error **err, kiln_error_code code, const char *fmt, ...)
{
        cleanup_free char *reason = NULL;
        va_list ap;

        va_start (ap, fmt);
        if (vasprintf (&reason, fmt, ap) < 0)
                abort ();
        va_end (ap);
        return kiln_error_makec (err, code, 0, "layer entry `%s`: %s", x->entry, reason);
}

static int
entry_syserr (extractor *x, kiln_error **err, int errno_, const char *what)
{
        return kiln_error_make (err, errno_, "layer entry `%s`: %s", x->entry, what);
}

/* Something on a cached path may have changed.  The fd stays open: the
 * entry being extracted may be using it (its parent is still valid). */
static void
forget_cache (extractor *x)
{
        free (x->cache_path);
        x->cache_path = NULL;
}

/* Opens the real directory `at` (a path of plain directories already
 * walked) again from the root. */
static int
reopen (extractor *x, const char *at, kiln_error **err)
{
        cleanup_free char *copy = kiln_strdup (at);
        int fd = openat (x->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char *c = copy;

        while (fd >= 0 && *c) {
                char *end = strchrnul (c, '/');
                bool more = *end != '\0';
                int next;

                *end = '\0';
                next = openat (fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                close (fd);
                fd = next;
                c = more ? end + 1 : end;
        }
        if (fd < 0)
                return entry_syserr (x, err, errno, "open a parent directory");
        return fd;
}

typedef struct walk {
        int fd;      /* the directory reached */
        kiln_buf at; /* its real path from the root */
        char *rest;  /* what is left to walk */
        int hops;
} walk;

/* A symlink met while walking: its target replaces it in the path. */
static int
walk_symlink (extractor *x, walk *w, const char *comp, const char *rest, kiln_error **err)
{
        char target[PATH_MAX];
        ssize_t n;
        char *next;

        if (++w->hops > MAX_SYMLINK_HOPS)
                return entry_error (x, err, KILN_E_INVALID, "too many levels of symbolic links");
        n = readlinkat (w->fd, comp, target, sizeof (target) - 1);
        if (n < 0)
                return entry_syserr (x, err, errno, "read a symbolic link");
        target[n] = '\0';
        if (target[0] == '/') {
                int fd = openat (x->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0)
                        return entry_syserr (x, err, errno, "open the root");
                close (w->fd);
                w->fd = fd;
                kiln_buf_reset (&w->at);
        }
        next = kiln_strdup_printf ("%s/%s", target, rest);
        free (w->rest);
        w->rest = next;
        return 0;
}

static int
walk_up (extractor *x, walk *w, kiln_error **err)
{
        char *slash;
        int fd;

        if (w->at.len == 0)
                return entry_error (x, err, KILN_E_INVALID,
                                    "a symbolic link on its path points outside the root");
        slash = strrchr (w->at.data, '/');
        w->at.len = slash ? (size_t) (slash - w->at.data) : 0;
        w->at.data[w->at.len] = '\0';
        fd = reopen (x, w->at.data, err);
        if (fd < 0)
                return -1;
        close (w->fd);
        w->fd = fd;
        return 0;
}

/* One step of the walk: 1 when the component is missing and create is
 * false. */
static int
walk_step (extractor *x, walk *w, const char *comp, const char *rest, bool create, kiln_error **err)
{
        struct stat st;
        int fd;

        if (strcmp (comp, "..") == 0)
                return walk_up (x, w, err);
        for (;;) {
                fd = openat (w->fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0 || errno != ENOENT || !create)
                        break;
                if (mkdirat (w->fd, comp, 0755) < 0 && errno != EEXIST)
                        return entry_syserr (x, err, errno, "create a parent directory");
        }
        if (fd >= 0) {
                close (w->fd);
                w->fd = fd;
                if (w->at.len > 0 && kiln_buf_puts (&w->at, "/", err) < 0)
                        return -1;
                return kiln_buf_puts (&w->at, comp, err);
        }
        if (errno == ENOENT)
                return 1;
        if (errno != ELOOP && errno != ENOTDIR)
                return entry_syserr (x, err, errno, "open a parent directory");
        if (fstatat (w->fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return entry_syserr (x, err, errno, "stat a parent directory");
        if (!S_ISLNK (st.st_mode))
                return entry_error (x, err, KILN_E_INVALID, "`%s` on its path is not a directory",
                                    comp);
        return walk_symlink (x, w, comp, rest, err);
}

/* Opens the directory at the clean path `path` inside the root, creating
 * missing directories when asked.  Returns the fd, -1 on error, or -2 when
 * something is missing and create is false. */
static int
open_dir (extractor *x, const char *path, bool create, kiln_error **err)
{
        walk w = { -1, KILN_BUF_INIT, kiln_strdup (path), 0 };
        int rc = 0;

        w.fd = openat (x->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (w.fd < 0)
                rc = entry_syserr (x, err, errno, "open the root");
        while (rc == 0 && w.rest[0] != '\0') {
                char *comp = w.rest;
                char *slash = strchr (comp, '/');
                cleanup_free char *rest = kiln_strdup (slash ? slash + 1 : "");

                if (slash)
                        *slash = '\0';
                if (comp[0] == '\0' || strcmp (comp, ".") == 0) {
                        free (w.rest);
                        w.rest = steal_pointer (&rest);
                        continue;
                }
                rc = walk_step (x, &w, comp, rest, create, err);
                if (rc == 0 && w.rest == comp) {
                        free (w.rest);
                        w.rest = steal_pointer (&rest);
                }
        }
        free (w.rest);
        kiln_buf_free (&w.at);
        if (rc != 0) {
                if (w.fd >= 0)
                        close (w.fd);
                return rc == 1 ? -2 : -1;
        }
        return w.fd;
}

/* The parent of the entry, through a one-directory cache: tar entries
 * come grouped by directory. */
static int
parent_fd (extractor *x, const char *parent, kiln_error **err)
{
        int fd;

        if (x->cache_path && strcmp (x->cache_path, parent) == 0)
                return x->cache_fd;
        fd = open_dir (x, parent, true, err);
        if (fd < 0)
                return -1;
        forget_cache (x);
        if (x->cache_fd >= 0)
                close (x->cache_fd);
        x->cache_path = kiln_strdup (parent);
        x->cache_fd = fd;
        return fd;
}

static int remove_tree_at (extractor *x, int dfd, const char *name, kiln_error **err);

static int
empty_dir_fd (extractor *x, int fd, kiln_error **err)
{
        cleanup_dir DIR *d = fdopendir (fd);
        struct dirent *de;

        if (d == NULL) {
                close (fd);
                return entry_syserr (x, err, errno, "read a directory");
        }
        while ((errno = 0, de = readdir (d)) != NULL) {
                if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
                        continue;
                if (remove_tree_at (x, dirfd (d), de->d_name, err) < 0)
                        return -1;
        }
        if (errno != 0)
                return entry_syserr (x, err, errno, "read a directory");
        return 0;
}

/* rm -rf of dfd/name, never following a symlink. */
static int
remove_tree_at (extractor *x, int dfd, const char *name, kiln_error **err)
{
        int fd;

        if (unlinkat (dfd, name, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return entry_syserr (x, err, errno, "remove an existing path");
        fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return entry_syserr (x, err, errno, "remove an existing directory");
        if (empty_dir_fd (x, fd, err) < 0)
                return -1;
        if (unlinkat (dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return entry_syserr (x, err, errno, "remove an existing directory");
        return 0;
}

/* Clears the way for a new entry.  Returns 1 when an existing directory
 * was kept (keep_dir), else 0. */
static int
clear_leaf (extractor *x, int dfd, const char *leaf, bool keep_dir, kiln_error **err)
{
        struct stat st;

        if (fstatat (dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return entry_syserr (x, err, errno, "stat");
        }
        if (S_ISDIR (st.st_mode) && keep_dir)
                return 1;
        /* The cached parent may lie below what goes away. */
        if (S_ISDIR (st.st_mode) || S_ISLNK (st.st_mode))
                forget_cache (x);
        if (remove_tree_at (x, dfd, leaf, err) < 0)
                return -1;
        return 0;
}

static struct timespec
entry_mtime (struct archive_entry *ae)
{
        struct timespec t = { 0, 0 };

        if (archive_entry_mtime_is_set (ae)) {
                t.tv_sec = archive_entry_mtime (ae);
                t.tv_nsec = archive_entry_mtime_nsec (ae);
        }
        return t;
}

static int
copy_data (extractor *x, int fd, kiln_error **err)
{
        const void *buf;
        size_t size;
        la_int64_t offset;
        int r;

        while ((r = archive_read_data_block (x->a, &buf, &size, &offset)) == ARCHIVE_OK) {
                const char *p = buf;
                while (size > 0) {
                        ssize_t n = pwrite (fd, p, size, (off_t) offset);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return entry_syserr (x, err, errno, "write");
                        p += n;
                        offset += n;
                        size -= (size_t) n;
                }
        }
        if (r != ARCHIVE_EOF)
                return -2;
        return 0;
}

static int
extract_file (extractor *x, struct archive_entry *ae, int dfd, const char *leaf, kiln_error **err)
{
        cleanup_close int fd = -1;
        struct timespec times[2];
        int rc;

        if (clear_leaf (x, dfd, leaf, false, err) < 0)
                return -1;
        fd = openat (dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return entry_syserr (x, err, errno, "create");
        rc = copy_data (x, fd, err);
        if (rc < 0)
                return rc;
        /* A sparse entry may end in a hole. */
        if (archive_entry_size_is_set (ae) && ftruncate (fd, archive_entry_size (ae)) < 0)
                return entry_syserr (x, err, errno, "set the size");
        if (x->chown_ok && fchown (fd, archive_entry_uid (ae), archive_entry_gid (ae)) < 0)
                return entry_syserr (x, err, errno, "chown");
        if (fchmod (fd, archive_entry_perm (ae) & 07777) < 0)
                return entry_syserr (x, err, errno, "chmod");
        times[0] = times[1] = entry_mtime (ae);
        if (futimens (fd, times) < 0)
                return entry_syserr (x, err, errno, "set the times");
        return 0;
}

static int
extract_dir (extractor *x, struct archive_entry *ae, const char *path, int dfd, const char *leaf,
             kiln_error **err)
{
        dir_attr *d;
        int rc = clear_leaf (x, dfd, leaf, true, err);

        if (rc < 0)
                return -1;
        /* 0700 until the end, so a read-only directory can be filled. */
        if (rc == 0 && mkdirat (dfd, leaf, 0700) < 0)
                return entry_syserr (x, err, errno, "create the directory");
        if (x->n_dirs == x->cap_dirs) {
                x->cap_dirs = x->cap_dirs ? x->cap_dirs * 2 : 64;
                x->dirs = kiln_reallocarray (x->dirs, x->cap_dirs, sizeof (*x->dirs));
        }
        d = &x->dirs[x->n_dirs++];
        d->path = kiln_strdup (path);
        d->mode = archive_entry_perm (ae) & 07777;
        d->mtime = entry_mtime (ae);
        d->uid = archive_entry_uid (ae);
        d->gid = archive_entry_gid (ae);
        return 0;
}

static int
extract_symlink (extractor *x, struct archive_entry *ae, int dfd, const char *leaf,
                 kiln_error **err)
{
        const char *target = archive_entry_symlink (ae);
        struct timespec times[2];

        if (target == NULL || target[0] == '\0')
                return entry_error (x, err, KILN_E_INVALID, "symbolic link without a target");
        if (clear_leaf (x, dfd, leaf, false, err) < 0)
                return -1;
        if (symlinkat (target, dfd, leaf) < 0)
                return entry_syserr (x, err, errno, "create the symbolic link");
        if (x->chown_ok
            && fchownat (dfd, leaf, archive_entry_uid (ae), archive_entry_gid (ae),
                         AT_SYMLINK_NOFOLLOW)
                   < 0)
                return entry_syserr (x, err, errno, "chown");
        times[0] = times[1] = entry_mtime (ae);
        if (utimensat (dfd, leaf, times, AT_SYMLINK_NOFOLLOW) < 0)
                return entry_syserr (x, err, errno, "set the times");
        return 0;
}

static void
split (char *path, const char **parent, const char **leaf)
{
        char *slash = strrchr (path, '/');

        if (slash == NULL) {
                *parent = "";
                *leaf = path;
                return;
        }
        *slash = '\0';
        *parent = path;
        *leaf = slash + 1;
}

static int
extract_hardlink (extractor *x, const char *target, int dfd, const char *leaf, kiln_error **err)
{
        cleanup_free char *clean = NULL;
        cleanup_close int tfd = -1;
        const char *tparent, *tleaf;
        kiln_error *perr = NULL;
        struct stat st;

        if (layer_clean_path (&clean, target, false, &perr) < 0) {
                kiln_error_free (perr);
                return entry_error (x, err, KILN_E_INVALID,
                                    "hard link target `%s` is outside the root", target);
        }
        if (clean[0] == '\0')
                return entry_error (x, err, KILN_E_INVALID, "hard link to the root");
        split (clean, &tparent, &tleaf);
        tfd = open_dir (x, tparent, false, err);
        if (tfd == -1)
                return -1;
        if (tfd == -2 || fstatat (tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return entry_error (x, err, KILN_E_INVALID,
                                    "hard link target `%s` does not exist in the root", target);
        if (S_ISDIR (st.st_mode))
                return entry_error (x, err, KILN_E_INVALID, "hard link target `%s` is a directory",
                                    target);
        if (clear_leaf (x, dfd, leaf, false, err) < 0)
                return -1;
        if (linkat (tfd, tleaf, dfd, leaf, 0) < 0)
                return entry_syserr (x, err, errno, "create the hard link");
        return 0;
}

/* Removes what the lower layers have under the directory fd, keeping what
 * this layer created. */
static int
purge_lower (extractor *x, int fd, kiln_buf *path, kiln_error **err)
{
        cleanup_dir DIR *d = fdopendir (fd);
        struct dirent *de;
        size_t base = path->len;

        if (d == NULL) {
                close (fd);
                return entry_syserr (x, err, errno, "read a directory");
        }
        while ((errno = 0, de = readdir (d)) != NULL) {
                int sub;

                if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
                        continue;
                path->len = base;
                if ((base > 0 && kiln_buf_puts (path, "/", err) < 0)
                    || kiln_buf_puts (path, de->d_name, err) < 0)
                        return -1;
                if (!pathset_has (&x->created, path->data)) {
                        if (remove_tree_at (x, dirfd (d), de->d_name, err) < 0)
                                return -1;
                        continue;
                }
                sub = openat (dirfd (d), de->d_name,
                              O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0 && purge_lower (x, sub, path, err) < 0)
                        return -1;
        }
        if (errno != 0)
                return entry_syserr (x, err, errno, "read a directory");
        path->len = base;
        return 0;
}

static int
whiteout (extractor *x, const char *parent, const char *leaf, kiln_error **err)
{
        const char *name = leaf + strlen (WHITEOUT);
        cleanup_free char *victim = NULL;
        int fd;

        if (strcmp (leaf, OPAQUE) != 0 && kiln_str_has_prefix (leaf, WHITEOUT WHITEOUT)) {
                kiln_debug ("layer: ignoring reserved whiteout `%s`", x->entry);
                return 0;
        }
        if (name[0] == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
                return entry_error (x, err, KILN_E_INVALID, "invalid whiteout");
        fd = open_dir (x, parent, false, err);
        if (fd == -1)
                return -1;
        if (fd == -2)
                return 0; /* nothing below to hide */
        forget_cache (x);
        if (strcmp (leaf, OPAQUE) == 0) {
                kiln_buf path = KILN_BUF_INIT;
                int rc;

                if (kiln_buf_puts (&path, parent, err) < 0) {
                        close (fd);
                        return -1;
                }
                rc = purge_lower (x, fd, &path, err);
                kiln_buf_free (&path);
                return rc;
        }
        victim = parent[0] ? kiln_strdup_printf ("%s/%s", parent, name) : kiln_strdup (name);
        if (!pathset_has (&x->created, victim) && remove_tree_at (x, fd, name, err) < 0) {
                close (fd);
                return -1;
        }
        close (fd);
        return 0;
}

static int
check_limits (extractor *x, struct archive_entry *ae, kiln_error **err)
{
        if (++x->entries > x->max_entries)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "layer has more than %llu entries",
                                         (unsigned long long) x->max_entries);
        /* The stream is bounded by the source; sparse entries can claim more
         * than they carry, so their sizes are bounded too. */
        if (archive_entry_size_is_set (ae) && archive_entry_size (ae) > 0) {
                x->bytes += (uint64_t) archive_entry_size (ae);
                if (x->bytes > x->max_bytes)
                        return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                                 "layer unpacks to more than %llu bytes",
                                                 (unsigned long long) x->max_bytes);
        }
        return 0;
}

static int
extract_typed (extractor *x, struct archive_entry *ae, const char *full, const char *parent,
               const char *leaf, kiln_error **err)
{
        mode_t type = archive_entry_filetype (ae);
        const char *hardlink = archive_entry_hardlink (ae);
        int dfd;

        if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK
            || (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && hardlink == NULL)) {
                kiln_debug ("layer: skipping special file `%s`", x->entry);
                return 0;
        }
        dfd = parent_fd (x, parent, err);
        if (dfd < 0)
                return -1;
        if (hardlink)
                return extract_hardlink (x, hardlink, dfd, leaf, err);
        switch (type) {
        case AE_IFDIR:
                return extract_dir (x, ae, full, dfd, leaf, err);
        case AE_IFLNK:
                return extract_symlink (x, ae, dfd, leaf, err);
        default:
                return extract_file (x, ae, dfd, leaf, err);
        }
}

static int
extract_entry (extractor *x, struct archive_entry *ae, kiln_error **err)
{
        cleanup_free char *clean = NULL;
        cleanup_free char *full = NULL;
        const char *parent, *leaf;
        kiln_error *perr = NULL;
        int rc;

        x->entry = archive_entry_pathname (ae);
        if (x->entry == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "layer entry without a name");
        if (check_limits (x, ae, err) < 0)
                return -1;
        if (layer_clean_path (&clean, x->entry, false, &perr) < 0) {
                bool absolute = x->entry[0] == '/';
                kiln_error_free (perr);
                return entry_error (x, err, KILN_E_INVALID, "%s",
                                    absolute ? "absolute path" : "path contains `..`");
        }
        if (clean[0] == '\0') {
                if (archive_entry_filetype (ae) == AE_IFDIR)
                        return 0;
                return entry_error (x, err, KILN_E_INVALID, "the root must be a directory");
        }
        full = kiln_strdup (clean);
        split (clean, &parent, &leaf);
        if (!x->no_whiteouts && kiln_str_has_prefix (leaf, WHITEOUT))
                return whiteout (x, parent, leaf, err);
        rc = extract_typed (x, ae, full, parent, leaf, err);
        if (rc == 0)
                pathset_add_with_parents (&x->created, full);
        return rc;
}

/* Directory modes and times last: creating entries inside changes the
 * times, and a read-only mode would stop the creation. */
static int
apply_dir_attrs (extractor *x, kiln_error **err)
{
        for (size_t i = x->n_dirs; i-- > 0;) {
                dir_attr *d = &x->dirs[i];
                struct timespec times[2] = { d->mtime, d->mtime };
                int fd;

                x->entry = d->path;
                fd = open_dir (x, d->path, false, err);
                if (fd == -2)
                        continue;
                if (fd < 0)
                        return -1;
                if ((x->chown_ok && fchown (fd, d->uid, d->gid) < 0) || fchmod (fd, d->mode) < 0
                    || futimens (fd, times) < 0) {
                        int e = errno;
                        close (fd);
                        return entry_syserr (x, err, e, "set the attributes");
                }
                close (fd);
        }
        return 0;
}

static la_ssize_t
read_cb (struct archive *a, void *data, const void **buf)
{
        extractor *x = data;
        ssize_t n = layer_source_read (x->src, buf, &x->src_err);

        if (n < 0) {
                archive_set_error (a, EIO, "%s", kiln_error_msg (x->src_err));
                return -1;
        }
        return n;
}

/* The source's error says more than libarchive's echo of it. */
static int
archive_fail (extractor *x, kiln_error **err)
{
        if (x->src_err) {
                *err = kiln_error_take (&x->src_err);
                return -1;
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0, "layer: %s", archive_error_string (x->a));
}

static int
run (extractor *x, char diff_id[KILN_DIGEST_MAX], kiln_error **err)
{
        struct archive_entry *ae;
        int r;

        x->a = archive_read_new ();
        if (x->a == NULL)
                abort ();
        archive_read_support_format_tar (x->a);
        archive_read_support_format_empty (x->a);
        if (archive_read_open (x->a, x, NULL, read_cb, NULL) != ARCHIVE_OK)
                return archive_fail (x, err);
        while ((r = archive_read_next_header (x->a, &ae)) != ARCHIVE_EOF) {
                if (r < ARCHIVE_WARN)
                        return archive_fail (x, err);
                r = extract_entry (x, ae, err);
                if (r == -2)
                        return archive_fail (x, err);
                if (r < 0)
                        return -1;
        }
        x->entry = NULL;
        if (apply_dir_attrs (x, err) < 0)
                return -1;
        if (diff_id && layer_source_finish (x->src, diff_id, err) < 0)
                return -1;
        return 0;
}

int
kiln_layer_extract_fd (int fd, const char *root, const kiln_extract_opts *opts,
                       char diff_id[KILN_DIGEST_MAX], kiln_error **err)
{
        kiln_extract_opts defaults;
        extractor x = { .root_fd = -1, .cache_fd = -1 };
        locale_t prev;
        int rc = -1;

        if (opts == NULL) {
                kiln_extract_opts_init (&defaults);
                opts = &defaults;
        }
        x.max_entries = opts->max_entries ? opts->max_entries : DEFAULT_MAX_ENTRIES;
        x.max_bytes = opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES;
        x.chown_ok = opts->keep_owner && geteuid () == 0;
        x.no_whiteouts = opts->no_whiteouts;
        x.root_fd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (x.root_fd < 0) {
                kiln_error_make (err, errno, "open `%s`", root);
                goto out;
        }
        if (layer_source_new (&x.src, fd, x.max_bytes, err) < 0
            || layer_source_prefetch (x.src, err) < 0)
                goto out;
        prev = layer_locale_enter ();
        rc = run (&x, diff_id, err);
        layer_locale_leave (prev);
out:
        if (x.a)
                archive_read_free (x.a);
        layer_source_free (x.src);
        kiln_error_free (x.src_err);
        forget_cache (&x);
        if (x.cache_fd >= 0)
                close (x.cache_fd);
        pathset_free (&x.created);
        for (size_t i = 0; i < x.n_dirs; i++)
                free (x.dirs[i].path);
        free (x.dirs);
        if (x.root_fd >= 0)
                close (x.root_fd);
        return rc;
}

int
kiln_layer_extract (const char *layer_path, const char *root, const kiln_extract_opts *opts,
                    char diff_id[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_close int fd = open (layer_path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return kiln_error_make (err, errno, "open `%s`", layer_path);
        posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (kiln_layer_extract_fd (fd, root, opts, diff_id, err) < 0)
                return kiln_error_wrap (err, "extract `%s`", layer_path);
        return 0;
}
