/* kiln: file-tree helpers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/fs.h"

#define COPY_MAX_DEPTH 256

bool
kiln_is_dir (const char *path)
{
        struct stat st;
        return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

static int
copy_file (const char *src, const char *dst, mode_t mode, kiln_error **err)
{
        cleanup_close int in = open (src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        cleanup_close int out = -1;
        char chunk[65536];

        if (in < 0)
                return kiln_error_make (err, errno, "open `%s`", src);
        unlink (dst);
        out = open (dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
        if (out < 0)
                return kiln_error_make (err, errno, "create `%s`", dst);
        /* In the kernel when it can (no copy through user space; a reflink
         * on file systems that have them); by hand when it cannot. */
        for (;;) {
                ssize_t n = copy_file_range (in, NULL, out, NULL, (size_t) 1 << 30, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == 0)
                        goto done;
                if (n < 0) {
                        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS
                            && errno != EOPNOTSUPP && errno != EBADF)
                                return kiln_error_make (err, errno, "copy `%s`", src);
                        if (lseek (in, 0, SEEK_SET) < 0 || ftruncate (out, 0) < 0
                            || lseek (out, 0, SEEK_SET) < 0)
                                return kiln_error_make (err, errno, "copy `%s`", src);
                        break;
                }
        }
        for (;;) {
                ssize_t n = read (in, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kiln_error_make (err, errno, "read `%s`", src);
                if (n == 0)
                        break;
                if (kiln_write_all (out, chunk, (size_t) n, err) < 0)
                        return kiln_error_wrap (err, "`%s`", dst);
        }
done:
        /* The umask may have cut bits the source had. */
        if (fchmod (out, mode & 07777) < 0)
                return kiln_error_make (err, errno, "chmod `%s`", dst);
        return 0;
}

static int
copy_link (const char *src, const char *dst, kiln_error **err)
{
        char target[PATH_MAX];
        ssize_t n = readlink (src, target, sizeof target - 1);

        if (n < 0)
                return kiln_error_make (err, errno, "readlink `%s`", src);
        target[n] = '\0';
        unlink (dst);
        if (symlink (target, dst) < 0)
                return kiln_error_make (err, errno, "symlink `%s`", dst);
        return 0;
}

static bool
skipped (const char *name, const char *const *skip)
{
        for (; skip && *skip; skip++)
                if (strcmp (name, *skip) == 0)
                        return true;
        return false;
}

static int
copy_dir (const char *src, const char *dst, const char *const *skip, int depth, kiln_error **err)
{
        cleanup_dir DIR *d = NULL;
        struct dirent *e;
        struct stat st;

        if (depth > COPY_MAX_DEPTH)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0,
                                         "`%s` is nested more than %d directories deep", src,
                                         COPY_MAX_DEPTH);
        if (stat (src, &st) < 0)
                return kiln_error_make (err, errno, "stat `%s`", src);
        if (mkdir (dst, 0700) < 0 && errno != EEXIST)
                return kiln_error_make (err, errno, "mkdir `%s`", dst);
        d = opendir (src);
        if (d == NULL)
                return kiln_error_make (err, errno, "open directory `%s`", src);
        while ((errno = 0, e = readdir (d)) != NULL) {
                cleanup_free char *s = NULL;
                cleanup_free char *t = NULL;
                struct stat est;
                int r = 0;

                if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0
                    || skipped (e->d_name, skip))
                        continue;
                s = kiln_strdup_printf ("%s/%s", src, e->d_name);
                t = kiln_strdup_printf ("%s/%s", dst, e->d_name);
                if (lstat (s, &est) < 0)
                        return kiln_error_make (err, errno, "stat `%s`", s);
                if (S_ISDIR (est.st_mode))
                        r = copy_dir (s, t, skip, depth + 1, err);
                else if (S_ISREG (est.st_mode))
                        r = copy_file (s, t, est.st_mode, err);
                else if (S_ISLNK (est.st_mode))
                        r = copy_link (s, t, err);
                if (r < 0)
                        return -1;
        }
        if (errno)
                return kiln_error_make (err, errno, "read directory `%s`", src);
        if (chmod (dst, st.st_mode & 07777) < 0)
                return kiln_error_make (err, errno, "chmod `%s`", dst);
        return 0;
}

int
kiln_copy_tree (const char *src, const char *dst, const char *const *skip, kiln_error **err)
{
        struct stat st;

        if (lstat (src, &st) < 0)
                return kiln_error_make (err, errno, "stat `%s`", src);
        if (S_ISLNK (st.st_mode))
                return copy_link (src, dst, err);
        if (S_ISREG (st.st_mode))
                return copy_file (src, dst, st.st_mode, err);
        return copy_dir (src, dst, skip, 0, err);
}

int
kiln_move_tree (const char *src, const char *dst, kiln_error **err)
{
        if (rename (src, dst) == 0)
                return 0;
        if (errno != EXDEV)
                return kiln_error_make (err, errno, "move `%s` to `%s`", src, dst);
        if (kiln_copy_tree (src, dst, NULL, err) < 0)
                return -1;
        return kiln_rm_rf (src, err);
}

bool
kiln_path_is_relative_safe (const char *rel)
{
        const char *p = rel;

        if (rel == NULL || rel[0] == '/')
                return false;
        while (*p) {
                const char *slash = strchr (p, '/');
                size_t n = slash ? (size_t) (slash - p) : strlen (p);
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return false;
                p += n;
                while (*p == '/')
                        p++;
        }
        return true;
}

static bool
within (const char *path, const char *root)
{
        size_t n = strlen (root);
        if (strcmp (root, "/") == 0)
                return true;
        return strncmp (path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int
kiln_path_resolve_within (char **out, const char *root, const char *rel, kiln_error **err)
{
        cleanup_free char *real_root = realpath (root, NULL);
        cleanup_free char *joined = NULL;
        cleanup_free char *real = NULL;

        if (real_root == NULL)
                return kiln_error_make (err, errno, "resolve `%s`", root);
        if (!kiln_path_is_relative_safe (rel))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s` must be a relative path without `..`", rel);
        joined = kiln_strdup_printf ("%s/%s", real_root, rel);
        real = realpath (joined, NULL);
        if (real == NULL)
                return kiln_error_make (err, errno, "`%s`", rel);
        if (!within (real, real_root))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s` escapes its root through a symlink", rel);
        *out = steal_pointer (&real);
        return 0;
}
