/* kiln upload: what `shp build upload` does, against kiln serve.  The
 * directory is packed into a reproducible tar.gz (the layer module), without
 * .git and without what .gitignore files exclude, a BuildRun with a Local
 * source is created and the tarball posted to its source endpoint. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_private.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/serve.h"

#define GITIGNORE_MAX ((size_t) 1 << 20)
#define MAX_DEPTH 256

/* ---- .gitignore: comments, blank lines, * ? [..] ** globs, a leading or
 * inner / anchors, a trailing / means directories, ! re-includes ---- */

typedef struct ignore_rule {
        char *pattern;
        char *base; /* the directory of its .gitignore, "" or "a/b/" */
        bool negate, dir_only, anchored;
} ignore_rule;

typedef struct ignore_list {
        ignore_rule *v;
        size_t n, cap;
} ignore_list;

static bool
class_match (const char **pp, char c)
{
        const char *p = *pp + 1;
        bool neg = false, hit = false;

        if (*p == '!' || *p == '^') {
                neg = true;
                p++;
        }
        for (bool first = true; *p && (first || *p != ']'); first = false) {
                char lo = *p, hi = *p;
                if (p[1] == '-' && p[2] && p[2] != ']') {
                        hi = p[2];
                        p += 3;
                } else {
                        p++;
                }
                if (c >= lo && c <= hi)
                        hit = true;
        }
        if (*p != ']')
                return false; /* an unclosed class matches nothing */
        *pp = p + 1;
        return hit != neg;
}

static bool
glob_match (const char *p, const char *s)
{
        for (;;) {
                if (*p == '\0')
                        return *s == '\0';
                if (p[0] == '*' && p[1] == '*' && (p[2] == '/' || p[2] == '\0')) {
                        const char *rest = p + 2;
                        if (*rest == '\0')
                                return true; /* trailing **: everything inside */
                        rest++;              /* "**" "/": zero or more directories */
                        if (glob_match (rest, s))
                                return true;
                        for (const char *q = s; *q; q++)
                                if (*q == '/' && glob_match (rest, q + 1))
                                        return true;
                        return false;
                }
                if (*p == '*') {
                        while (*p == '*')
                                p++;
                        for (const char *q = s;; q++) {
                                if (glob_match (p, q))
                                        return true;
                                if (*q == '\0' || *q == '/')
                                        return false;
                        }
                }
                if (*s == '\0')
                        return false;
                if (*p == '?') {
                        if (*s == '/')
                                return false;
                } else if (*p == '[') {
                        if (*s == '/' || !class_match (&p, *s))
                                return false;
                        s++;
                        continue;
                } else {
                        if (*p == '\\' && p[1])
                                p++;
                        if (*p != *s)
                                return false;
                }
                p++;
                s++;
        }
}

static void
ignore_add (ignore_list *l, const char *base, char *line)
{
        size_t n = strlen (line);
        ignore_rule r = { 0 };
        char *p = line;

        while (n && (line[n - 1] == '\r' || (line[n - 1] == ' ' && (n < 2 || line[n - 2] != '\\'))))
                line[--n] = '\0';
        if (n == 0 || line[0] == '#')
                return;
        if (*p == '!') {
                r.negate = true;
                p++;
        } else if (*p == '\\' && (p[1] == '!' || p[1] == '#')) {
                p++;
        }
        n = strlen (p);
        if (n && p[n - 1] == '/') {
                r.dir_only = true;
                p[--n] = '\0';
        }
        if (*p == '/') {
                r.anchored = true;
                p++;
        } else if (strchr (p, '/')) {
                r.anchored = true;
        }
        if (*p == '\0')
                return;
        r.pattern = kiln_strdup (p);
        r.base = kiln_strdup (base);
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 16;
                l->v = realloc (l->v, l->cap * sizeof (*l->v));
                if (l->v == NULL)
                        abort ();
        }
        l->v[l->n++] = r;
}

/* Reads DIR/.gitignore (rel is "" or "a/b/"). */
static int
ignore_load (ignore_list *l, const char *dir, const char *rel, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/.gitignore", dir);
        cleanup_free char *data = NULL;
        size_t len;
        char *save = NULL;
        kiln_error *e = NULL;

        if (kiln_read_file (&data, &len, path, GITIGNORE_MAX, &e) < 0) {
                if (e->code == KILN_E_NOT_FOUND) {
                        kiln_error_free (e);
                        return 0;
                }
                if (*err == NULL)
                        *err = e;
                else
                        kiln_error_free (e);
                return -1;
        }
        for (char *line = strtok_r (data, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
                ignore_add (l, rel, line);
        return 0;
}

static void
ignore_truncate (ignore_list *l, size_t n)
{
        while (l->n > n) {
                l->n--;
                free (l->v[l->n].pattern);
                free (l->v[l->n].base);
        }
}

static bool
ignored (const ignore_list *l, const char *rel, bool is_dir)
{
        bool out = false;

        for (size_t i = 0; i < l->n; i++) {
                const ignore_rule *r = &l->v[i];
                const char *sub, *base;
                if (!kiln_str_has_prefix (rel, r->base) || (r->dir_only && !is_dir))
                        continue;
                sub = rel + strlen (r->base);
                base = strrchr (sub, '/');
                if (glob_match (r->pattern, r->anchored ? sub : (base ? base + 1 : sub)))
                        out = !r->negate;
        }
        return out;
}

/* ---- the walk ---- */

static bool
dir_is_empty (const char *path)
{
        DIR *d = opendir (path);
        struct dirent *de;
        bool empty = true;

        if (d == NULL)
                return false;
        while (empty && (de = readdir (d)) != NULL)
                if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
                        empty = false;
        closedir (d);
        return empty;
}

typedef struct pack {
        ignore_list rules;
        char **host; /* strv */
        char **image;
        size_t skipped;
} pack;

static int
walk (pack *pk, const char *dir, const char *rel, int depth, kiln_error **err)
{
        size_t mark = pk->rules.n;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > MAX_DEPTH)
                return kiln_error_makec (err, KILN_E_TOO_LARGE, 0, "%s: directories nest too deep",
                                         dir);
        if (ignore_load (&pk->rules, dir, rel, err) < 0)
                return -1;
        d = opendir (dir);
        if (d == NULL)
                return kiln_error_make (err, errno, "open %s", dir);
        while (r == 0 && (de = readdir (d)) != NULL) {
                const char *n = de->d_name;
                struct stat st;
                if (strcmp (n, ".") == 0 || strcmp (n, "..") == 0)
                        continue;
                cleanup_free char *host = kiln_strdup_printf ("%s/%s", dir, n);
                cleanup_free char *img = kiln_strdup_printf ("%s%s", rel, n);
                if (lstat (host, &st) < 0) {
                        r = kiln_error_make (err, errno, "stat %s", host);
                        break;
                }
                if (strcmp (n, ".git") == 0 || ignored (&pk->rules, img, S_ISDIR (st.st_mode))) {
                        pk->skipped++;
                        continue;
                }
                if (S_ISDIR (st.st_mode)) {
                        cleanup_free char *sub = kiln_strdup_printf ("%s/", img);
                        size_t before = kiln_strv_len (pk->host);
                        r = walk (pk, host, sub, depth + 1, err);
                        /* An empty directory is kept as itself. */
                        if (r == 0 && kiln_strv_len (pk->host) == before && dir_is_empty (host)) {
                                pk->host = kiln_strv_append (pk->host, host);
                                pk->image = kiln_strv_append (pk->image, img);
                        }
                } else if (S_ISREG (st.st_mode) || S_ISLNK (st.st_mode)) {
                        pk->host = kiln_strv_append (pk->host, host);
                        pk->image = kiln_strv_append (pk->image, img);
                } else {
                        pk->skipped++; /* sockets, fifos, devices */
                }
        }
        closedir (d);
        ignore_truncate (&pk->rules, mark);
        return r;
}

/* Packs dir into a tar.gz at out_path. */
static int
pack_dir (const char *dir, const char *out_path, size_t *files, kiln_error **err)
{
        pack pk = { 0 };
        kiln_layer_opts lo;
        kiln_layer_info info;
        kiln_layer_entry *entries;
        struct stat st;
        size_t n;
        int r;

        if (stat (dir, &st) < 0)
                return kiln_error_make (err, errno, "%s", dir);
        if (!S_ISDIR (st.st_mode))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s is not a directory", dir);
        r = walk (&pk, dir, "", 0, err);
        n = kiln_strv_len (pk.host);
        entries = kiln_calloc (n ? n : 1, sizeof (*entries));
        for (size_t i = 0; i < n; i++)
                entries[i]
                    = (kiln_layer_entry){ .image_path = pk.image[i], .host_path = pk.host[i] };
        kiln_layer_opts_init (&lo);
        lo.compression = KILN_COMPRESS_GZIP;
        if (r == 0)
                r = kiln_layer_write (&info, entries, n, out_path, &lo, err);
        *files = n;
        free (entries);
        kiln_strv_free (pk.host);
        kiln_strv_free (pk.image);
        ignore_truncate (&pk.rules, 0);
        free (pk.rules.v);
        return r;
}

typedef struct upload_opts {
        bool follow;
} upload_opts;

static int
post_source (client *c, const char *name, int fd, kiln_error **err)
{
        const client_kind *k = client_kind_of ("BuildRun");
        cleanup_free char *coll = client_collection (c, k, NULL);
        cleanup_free char *path = kiln_strdup_printf ("%s/%s/source", coll, name);
        kiln_api_call call
            = { .method = "POST", .path = path, .content_type = "application/gzip", .body_fd = fd };
        int r = 0;

        if (client_call (c, &call, err) < 0)
                return -1;
        if (call.status != 200)
                r = client_status_error (&call, err);
        kiln_api_call_clear (&call);
        return r;
}

/* After -f: the run's outcome decides the exit status. */
static int
outcome (client *c, const char *name, kiln_error **err)
{
        const client_kind *k = client_kind_of ("BuildRun");
        cleanup_free char *coll = client_collection (c, k, NULL);
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", coll, name);
        json_t *br = NULL;
        const json_t *conds;
        const json_t *cond = NULL;
        size_t i;
        json_t *x;
        int r = 0;

        if (client_get_json (c, path, &br, err) < 0)
                return -1;
        conds = json_object_get (json_object_get (br, "status"), "conditions");
        json_array_foreach (conds, i, x)
        {
                const char *t = json_string_value (json_object_get (x, "type"));
                if (t && strcmp (t, "Succeeded") == 0)
                        cond = x;
        }
        const char *st = json_string_value (json_object_get (cond, "status"));
        if (st == NULL || strcmp (st, "True") != 0)
                r = kiln_error_makec (err, KILN_E_FAILED, 0, "buildrun %s %s: %s: %s", name,
                                      st && strcmp (st, "False") == 0 ? "failed" : "did not finish",
                                      json_string_value (json_object_get (cond, "reason"))
                                          ?: "Unknown",
                                      json_string_value (json_object_get (cond, "message")) ?: "");
        json_decref (br);
        return r;
}

static int
upload (client *c, const upload_opts *o, const char *build, const char *dir, kiln_error **err)
{
        const client_kind *bk = client_kind_of ("Build");
        const client_kind *rk = client_kind_of ("BuildRun");
        cleanup_free char *bcoll = client_collection (c, bk, NULL);
        cleanup_free char *bpath = kiln_strdup_printf ("%s/%s", bcoll, build);
        cleanup_free char *rcoll = client_collection (c, rk, NULL);
        cleanup_free char *gen = kiln_strdup_printf ("%s-", build);
        const char *tmpdir = getenv ("TMPDIR");
        cleanup_free char *tar
            = kiln_strdup_printf ("%s/kiln-upload-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
        cleanup_free char *name = NULL;
        json_t *obj = NULL;
        json_t *br;
        size_t files = 0;
        int fd, r;

        if (client_get_json (c, bpath, &obj, err) < 0)
                return -1;
        json_decref (obj);
        obj = NULL;
        fd = mkstemp (tar);
        if (fd < 0)
                return kiln_error_make (err, errno, "make a temporary file in %s", tar);
        close (fd);
        r = pack_dir (dir, tar, &files, err);
        fd = r == 0 ? open (tar, O_RDONLY | O_CLOEXEC) : -1;
        unlink (tar);
        if (r < 0)
                return kiln_error_wrap (err, "pack %s", dir);
        if (fd < 0)
                return kiln_error_make (err, errno, "open %s", tar);
        kiln_info ("packed %zu entries of %s", files, dir);
        br = json_pack ("{s:s,s:s,s:{s:s},s:{s:{s:s},s:{s:s,s:{s:s}}}}", "apiVersion",
                        KILN_SHP_API_VERSION, "kind", "BuildRun", "metadata", "generateName", gen,
                        "spec", "build", "name", build, "source", "type", "Local", "local", "name",
                        "local-copy");
        r = client_send_json (c, "POST", rcoll, NULL, br, &obj, err);
        json_decref (br);
        if (r < 0) {
                close (fd);
                return kiln_error_wrap (err, "create a BuildRun of %s", build);
        }
        name = kiln_strdup (
            json_string_value (json_object_get (json_object_get (obj, "metadata"), "name")) ?: "");
        json_decref (obj);
        r = post_source (c, name, fd, err);
        close (fd);
        if (r < 0) {
                /* A run that will never get its source is of no use. */
                cleanup_free char *path = kiln_strdup_printf ("%s/%s", rcoll, name);
                kiln_api_call del = { .method = "DELETE", .path = path };
                if (client_call (c, &del, NULL) == 0)
                        kiln_api_call_clear (&del);
                return kiln_error_wrap (err, "upload to buildrun %s (deleted)", name);
        }
        printf ("%s\n", name);
        fflush (stdout);
        if (!o->follow)
                return 0;
        if (client_logs (c, name, true, err) < 0)
                return -1;
        return outcome (c, name, err);
}

static int
upload_take (void *data, int opt, const char *arg)
{
        (void) arg;
        if (opt != 'f' && opt != 'F')
                return 0;
        ((upload_opts *) data)->follow = true;
        return 1;
}

static int
run_upload (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "follow", no_argument, NULL, 'f' },
                { NULL, 0, NULL, 0 },
        };
        client c;
        upload_opts o = { 0 };
        kiln_error *err = NULL;
        int i, r;

        client_init (&c, &kiln_cmd_upload, g);
        if ((i = parse_common (&c, argc, argv, "fF", extra, upload_take, &o)) < 0)
                return KILN_EXIT_USAGE;
        if (i >= argc)
                return client_failf (&c, "a BUILD is required");
        if (argc - i > 2)
                return client_failf (&c, "unexpected argument `%s`", argv[i + 2]);
        if (client_connect (&c, &err) < 0)
                return client_fail (&c, err);
        r = upload (&c, &o, argv[i], i + 1 < argc ? argv[i + 1] : ".", &err);
        client_clear (&c);
        return r < 0 ? client_fail (&c, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_upload = {
        "upload",
        run_upload,
        "build a local directory with a Build on kiln serve",
        "Usage: kiln upload BUILD [DIR] [-f]\n\n"
        "As `shp build upload`: packs DIR (default .) into a reproducible tar.gz,\n"
        "leaving out .git and what .gitignore files exclude (comments, blank\n"
        "lines, * ? [..] ** globs, / anchors, a trailing / for directories, !\n"
        "re-includes), creates a BuildRun of BUILD with spec.source {type: Local,\n"
        "local: {name: local-copy}}, uploads the tarball to it and prints the\n"
        "BuildRun's name.\n\n"
        "Options:\n"
        "  -f, -F, --follow      then follow its log; exit 1 unless it succeeds\n\n" CLIENT_HELP
            KILN_GLOBAL_HELP,
};
