/* kiln: building stacks into run images (see include/kiln/stack.h). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/compose.h"
#include "kiln/json.h"
#include "kiln/layer.h"
#include "kiln/layout.h"
#include "kiln/log.h"
#include "stack_private.h"

/* Bumped whenever what a build puts in the image changes, so no cached
 * image of an older recipe is reused. */
#define STACK_FORMAT "2"

char *
kiln_stack_default_cache_dir (void)
{
        const char *v = getenv ("KILN_CACHE_DIR");

        if (v && *v)
                return kiln_strdup_printf ("%s/stacks", v);
        v = getenv ("XDG_CACHE_HOME");
        if (v && *v)
                return kiln_strdup_printf ("%s/kiln/stacks", v);
        v = getenv ("HOME");
        if (v && *v)
                return kiln_strdup_printf ("%s/.cache/kiln/stacks", v);
        return kiln_strdup ("/var/cache/kiln/stacks");
}

const char *
kiln_stack_dir (const char *stacks_dir)
{
        const char *v = getenv ("KILN_STACKS_DIR");

        if (stacks_dir)
                return stacks_dir;
        return v && *v ? v : NULL;
}

void
kiln_stack_result_clear (kiln_stack_result *r)
{
        free (r->location);
        free (r->layout);
        kiln_strv_free (r->packages);
        memset (r, 0, sizeof (*r));
}

typedef struct build {
        const kiln_stack *s;
        const char *cache;
        const char *arch;
        int64_t epoch;
        stack_apt *apt;
        char *images;   /* CACHE/images: an OCI layout */
        char *file_ref; /* CACHE/files/HEX: the key this file's last build gave */
        stack_pkg *pkgs;
        size_t n;
        char key[KILN_DIGEST_MAX];
} build;

static void
build_clear (build *b)
{
        free (b->images);
        free (b->file_ref);
        stack_apt_free (b->apt);
        stack_pkgs_free (b->pkgs, b->n);
}

/* ---- the cache ---- */

static int
lock_cache (int *fd, const char *cache, kiln_error **err)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/lock", cache);

        if (kiln_mkdir_p (cache, 0755, err) < 0)
                return kiln_error_wrap (err, "stack cache");
        *fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (*fd < 0)
                return kiln_error_make (err, errno, "stack cache: open `%s`", path);
        while (flock (*fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return kiln_error_make (err, errno, "stack cache: lock `%s`", path);
        return 0;
}

static void
file_ref_path (build *b)
{
        cleanup_free char *what
            = kiln_strdup_printf ("kiln stack file %s\nkiln %s\n%s\n%s\n%lld\n", STACK_FORMAT,
                                  KILN_VERSION, b->s->file_hash, b->arch, (long long) b->epoch);
        char d[KILN_DIGEST_MAX];

        kiln_digest_bytes (d, what, strlen (what));
        b->file_ref = kiln_strdup_printf ("%s/files/%s", b->cache, kiln_digest_hex (d));
}

/* The content key: the file, the exact package set, and what else the
 * bytes depend on. */
static void
content_key (build *b)
{
        cleanup_buf kiln_buf t = KILN_BUF_INIT;

        kiln_buf_printf (&t, NULL, "kiln stack %s\nkiln %s\nfile %s\narchitecture %s\nepoch %lld\n",
                         STACK_FORMAT, KILN_VERSION, b->s->file_hash, b->arch,
                         (long long) b->epoch);
        for (size_t i = 0; i < b->n; i++)
                kiln_buf_printf (&t, NULL, "package %s %s %s%s\n", b->pkgs[i].name,
                                 b->pkgs[i].version, b->pkgs[i].arch,
                                 b->pkgs[i].excluded ? " excluded" : "");
        kiln_digest_bytes (b->key, t.data, t.len);
}

static char *
packages_label (const stack_pkg *p, size_t n)
{
        kiln_buf b = KILN_BUF_INIT;

        for (size_t i = 0; i < n; i++)
                if (!p[i].excluded)
                        kiln_buf_printf (&b, NULL, "%s%s=%s", b.len ? "," : "", p[i].name,
                                         p[i].version);
        return kiln_buf_steal (&b, NULL);
}

static char **
split_label (const char *v)
{
        char **out = kiln_strv_new ();

        for (const char *p = v; p && *p; p += strcspn (p, ",") + (p[strcspn (p, ",")] == ',')) {
                cleanup_free char *one = strndup (p, strcspn (p, ","));
                out = kiln_strv_append (out, one);
        }
        return out;
}

/* Fills out from the image tagged with the key in the cache; 0 when it is
 * not there. */
static int
from_cache (kiln_stack_result *out, build *b, const char *key_hex, kiln_error **err)
{
        cleanup_local_image kiln_local_image *img = NULL;
        cleanup_free char *spec = kiln_strdup_printf ("oci:%s:%s", b->images, key_hex);
        kiln_location loc = { 0 };
        kiln_error *e = NULL;
        int r;

        if (access (b->images, F_OK) < 0)
                return 0;
        if (kiln_location_parse (&loc, spec, err) < 0)
                return -1;
        r = kiln_local_image_open (&img, &loc, NULL, &e);
        kiln_location_clear (&loc);
        if (r < 0) {
                /* Not in the cache is not an error; anything else is. */
                r = e->code == KILN_E_NOT_FOUND ? 0 : -1;
                if (r < 0 && err && *err == NULL)
                        *err = steal_pointer (&e);
                kiln_error_free (e);
                return r;
        }
        out->location = steal_pointer (&spec);
        out->layout = kiln_strdup (b->images);
        kiln_strlcpy (out->digest, img->manifest_digest, sizeof out->digest);
        kiln_snprintf (out->key, sizeof out->key, NULL, "sha256:%s", key_hex);
        out->packages
            = split_label (kiln_kvs_get (&img->config->labels, KILN_LABEL_STACK_PACKAGES));
        out->cached = true;
        return 1;
}

static int
write_file_ref (build *b, kiln_error **err)
{
        cleanup_free char *dir = kiln_strdup_printf ("%s/files", b->cache);
        const char *hex = kiln_digest_hex (b->key);

        if (kiln_mkdir_p (dir, 0755, err) < 0)
                return -1;
        return kiln_write_file (b->file_ref, hex, strlen (hex), 0644, err);
}

/* ---- the tree ---- */

/* Nothing kiln writes or removes may land outside the tree: a path whose
 * parents include a symlink is refused. */
static int
no_symlink_on_way (const char *tree, const char *rel, kiln_error **err)
{
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", tree, rel);

        for (char *c = p + strlen (tree) + 1; (c = strchr (c, '/')) != NULL; *c++ = '/') {
                struct stat st;
                *c = '\0';
                if (lstat (p, &st) == 0 && S_ISLNK (st.st_mode))
                        return kiln_error_makec (
                            err, KILN_E_INVALID, 0,
                            "`/%s` is a symlink in the stack's tree: kiln does "
                            "not write through it",
                            p + strlen (tree) + 1);
        }
        return 0;
}

static int
rm_in (const char *tree, const char *rel, kiln_error **err)
{
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", tree, rel);

        if (no_symlink_on_way (tree, rel, err) < 0)
                return -1;
        return kiln_rm_rf (p, err);
}

/* /usr/share/doc keeps each package's copyright file only. */
static int
trim_docs (const char *tree, kiln_error **err)
{
        cleanup_free char *doc = kiln_strdup_printf ("%s/usr/share/doc", tree);
        cleanup_dir DIR *d = NULL;
        struct dirent *de;

        if (no_symlink_on_way (tree, "usr/share/doc/x", err) < 0)
                return -1;
        d = opendir (doc);
        while (d && (de = readdir (d)) != NULL) {
                cleanup_free char *pkg = kiln_strdup_printf ("%s/%s", doc, de->d_name);
                cleanup_dir DIR *pd = NULL;
                struct stat st;

                if (de->d_name[0] == '.' || lstat (pkg, &st) < 0 || S_ISLNK (st.st_mode))
                        continue;
                if (!S_ISDIR (st.st_mode)) {
                        if (kiln_rm_rf (pkg, err) < 0)
                                return -1;
                        continue;
                }
                pd = opendir (pkg);
                for (struct dirent *f; pd && (f = readdir (pd)) != NULL;) {
                        cleanup_free char *p = NULL;
                        if (strcmp (f->d_name, ".") == 0 || strcmp (f->d_name, "..") == 0
                            || strcmp (f->d_name, "copyright") == 0)
                                continue;
                        p = kiln_strdup_printf ("%s/%s", pkg, f->d_name);
                        if (kiln_rm_rf (p, err) < 0)
                                return -1;
                }
        }
        return 0;
}

/* The stack file's `remove:` patterns. */
static int
remove_globs (const char *tree, const kiln_stack *s, kiln_error **err)
{
        size_t base = strlen (tree);

        for (char **pat = s->remove; pat && *pat; pat++) {
                cleanup_free char *full = kiln_strdup_printf ("%s%s", tree, *pat);
                glob_t g = { 0 };
                int r = glob (full, GLOB_NOSORT, NULL, &g), rc = 0;

                if (r == GLOB_NOMATCH)
                        kiln_warn ("stack %s: `remove: %s` matches nothing", s->name, *pat);
                else if (r != 0)
                        rc = kiln_error_makec (err, KILN_E_FAILED, 0, "remove `%s`: glob failed",
                                               *pat);
                for (size_t i = 0; r == 0 && rc == 0 && i < g.gl_pathc; i++) {
                        if (strncmp (g.gl_pathv[i], tree, base) != 0 || g.gl_pathv[i][base] != '/')
                                continue;
                        rc = rm_in (tree, g.gl_pathv[i] + base + 1, err);
                }
                globfree (&g);
                if (rc < 0)
                        return kiln_error_wrap (err, "remove `%s`", *pat);
        }
        return 0;
}

/* What a runtime never reads: documentation (but copyright notices),
 * translations, shell completions, bug-report hooks, debugger helpers,
 * and package-manager state and logs (which would hold build times). */
static int
trim (const char *tree, const kiln_stack *s, kiln_error **err)
{
        static const char *const gone[] = {
                "usr/share/man",     "usr/share/info",
                "usr/share/lintian", "usr/share/linda",
                "usr/share/bug",     "usr/share/doc-base",
                "usr/share/locale",  "usr/share/bash-completion",
                "usr/share/zsh",     "usr/share/fish",
                "usr/share/menu",    "usr/share/gdb",
                "usr/share/gcc",     "var/log",
                "var/cache",         "var/lib/apt",
                "var/lib/dpkg",      "etc/apt",
        };

        for (size_t i = 0; i < KILN_N_ELEMENTS (gone); i++)
                if (rm_in (tree, gone[i], err) < 0)
                        return -1;
        if (trim_docs (tree, err) < 0)
                return -1;
        return remove_globs (tree, s, err);
}

/* Creates the directories of rel that are missing, 0755 whatever the
 * umask. */
static int
make_dirs (const char *tree, const char *rel, kiln_error **err)
{
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", tree, rel);
        char *c = p + strlen (tree);

        if (no_symlink_on_way (tree, rel, err) < 0)
                return -1;
        do {
                c = strchr (c + 1, '/');
                if (c)
                        *c = '\0';
                if (mkdir (p, 0755) == 0) {
                        if (chmod (p, 0755) < 0)
                                return kiln_error_make (err, errno, "chmod `%s`", p);
                } else if (errno != EEXIST) {
                        return kiln_error_make (err, errno, "mkdir `%s`", p);
                }
                if (c)
                        *c = '/';
        } while (c);
        return 0;
}

static int
put (const char *tree, const char *rel, const char *text, mode_t mode, kiln_error **err)
{
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", tree, rel);
        cleanup_free char *parent = kiln_strdup (rel);

        if (strrchr (parent, '/')) {
                *strrchr (parent, '/') = '\0';
                if (make_dirs (tree, parent, err) < 0)
                        return -1;
        }
        if (no_symlink_on_way (tree, rel, err) < 0
            || kiln_write_file (p, text, strlen (text), (int) mode, err) < 0)
                return -1;
        /* chmod, not the mode given: the umask must not change the image. */
        if (chmod (p, mode) < 0)
                return kiln_error_make (err, errno, "chmod `%s`", p);
        return 0;
}

static int
make_dir (const char *tree, const char *rel, mode_t mode, kiln_error **err)
{
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", tree, rel);

        if (make_dirs (tree, rel, err) < 0)
                return -1;
        if (chmod (p, mode) < 0)
                return kiln_error_make (err, errno, "chmod `%s`", p);
        return 0;
}

static int
add_users (const char *tree, const kiln_stack *s, kiln_error **err)
{
        cleanup_free char *passwd = kiln_strdup_printf (
            "root:x:0:0:root:/root:/sbin/nologin\n%s:x:%lld:%lld:%s:%s:/sbin/nologin\n", s->user,
            (long long) s->uid, (long long) s->gid, s->user, s->home);
        cleanup_free char *group
            = kiln_strdup_printf ("root:x:0:\n%s:x:%lld:\n", s->user, (long long) s->gid);

        if (make_dir (tree, "etc", 0755, err) < 0 || make_dir (tree, "tmp", 01777, err) < 0
            || make_dir (tree, "root", 0700, err) < 0
            || make_dir (tree, s->home + 1, 0755, err) < 0)
                return -1;
        if (put (tree, "etc/passwd", passwd, 0644, err) < 0
            || put (tree, "etc/group", group, 0644, err) < 0)
                return -1;
        return 0;
}

/* Each package's control data where scanners look for it in images
 * without a dpkg database (var/lib/dpkg/status.d/NAME). */
static int
add_status (const char *tree, const build *b, kiln_error **err)
{
        for (size_t i = 0; i < b->n; i++) {
                cleanup_free char *rel = NULL;
                if (b->pkgs[i].excluded)
                        continue;
                rel = kiln_strdup_printf ("var/lib/dpkg/status.d/%s", b->pkgs[i].name);
                if (put (tree, rel, b->pkgs[i].control, 0644, err) < 0)
                        return -1;
        }
        return 0;
}

/* ---- the SBOM: SPDX 2.3 JSON ---- */

/* Percent-encodes all but unreserved characters, as purl wants. */
static void
purl_part (kiln_buf *b, const char *s)
{
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '.' || c == '-' || c == '_' || c == '~')
                        kiln_buf_append (b, s, 1, NULL);
                else
                        kiln_buf_printf (b, NULL, "%%%02X", c);
        }
}

/* SPDX identifiers take [A-Za-z0-9.-]. */
static char *
spdx_id (const stack_pkg *p)
{
        char *id = kiln_strdup_printf ("SPDXRef-Package-deb-%s-%s", p->name, p->arch);

        for (char *c = id; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                      || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
                        *c = '-';
        return id;
}

static kiln_json *
sbom_package (const build *b, const stack_pkg *p, const char *id)
{
        kiln_json *j = kiln_json_object ();
        kiln_json *sums = kiln_json_array (), *sum = kiln_json_object ();
        kiln_json *refs = kiln_json_array (), *ref = kiln_json_object ();
        cleanup_buf kiln_buf purl = KILN_BUF_INIT;
        cleanup_free char *src = kiln_strdup_printf ("built from the Debian source package %s %s",
                                                     p->source, p->source_version);

        kiln_json_set_str (j, "SPDXID", id);
        kiln_json_set_str (j, "name", p->name);
        kiln_json_set_str (j, "versionInfo", p->version);
        kiln_json_set_str (j, "downloadLocation", "NOASSERTION");
        kiln_json_set_bool (j, "filesAnalyzed", false);
        kiln_json_set_str (j, "licenseConcluded", "NOASSERTION");
        kiln_json_set_str (j, "licenseDeclared", "NOASSERTION");
        kiln_json_set_str (j, "copyrightText", "NOASSERTION");
        kiln_json_set_str (j, "supplier", "Organization: Debian");
        kiln_json_set_str (j, "sourceInfo", src);
        kiln_json_set_str (sum, "algorithm", "SHA256");
        kiln_json_set_str (sum, "checksumValue", kiln_digest_hex (p->sha256));
        kiln_json_append_node (sums, sum);
        kiln_json_set_node (j, "checksums", sums);
        kiln_buf_puts (&purl, "pkg:deb/debian/", NULL);
        purl_part (&purl, p->name);
        kiln_buf_puts (&purl, "@", NULL);
        purl_part (&purl, p->version);
        kiln_buf_puts (&purl, "?arch=", NULL);
        purl_part (&purl, p->arch);
        kiln_buf_puts (&purl, "&distro=", NULL);
        purl_part (&purl, b->s->suite);
        kiln_json_set_str (ref, "referenceCategory", "PACKAGE-MANAGER");
        kiln_json_set_str (ref, "referenceType", "purl");
        kiln_json_set_str (ref, "referenceLocator", purl.data);
        kiln_json_append_node (refs, ref);
        kiln_json_set_node (j, "externalRefs", refs);
        return j;
}

/* Deterministic: packages sorted by name, the creation time is the
 * image's, the namespace is made of the content key. */
static int
sbom (char **out, const build *b, kiln_error **err)
{
        cleanup_kiln_json kiln_json *doc = kiln_json_object ();
        kiln_json *info = kiln_json_object (), *creators = kiln_json_array ();
        kiln_json *pkgs = kiln_json_array (), *rels = kiln_json_array ();
        cleanup_free char *name = kiln_strdup_printf ("kiln-stack-%s", b->s->name);
        cleanup_free char *ns = kiln_strdup_printf ("https://spdx.org/spdxdocs/kiln-stack-%s-%s",
                                                    b->s->name, kiln_digest_hex (b->key));
        cleanup_free char *tool = kiln_strdup_printf ("Tool: kiln-%s", KILN_VERSION);
        char created[32];

        kiln_time_rfc3339 (created, b->epoch);
        kiln_json_set_str (doc, "spdxVersion", "SPDX-2.3");
        kiln_json_set_str (doc, "dataLicense", "CC0-1.0");
        kiln_json_set_str (doc, "SPDXID", "SPDXRef-DOCUMENT");
        kiln_json_set_str (doc, "name", name);
        kiln_json_set_str (doc, "documentNamespace", ns);
        kiln_json_append_str (creators, tool);
        kiln_json_set_node (info, "creators", creators);
        kiln_json_set_str (info, "created", created);
        kiln_json_set_node (doc, "creationInfo", info);
        for (size_t i = 0; i < b->n; i++) {
                cleanup_free char *id = NULL;
                kiln_json *rel;
                if (b->pkgs[i].excluded)
                        continue;
                id = spdx_id (&b->pkgs[i]);
                kiln_json_append_node (pkgs, sbom_package (b, &b->pkgs[i], id));
                rel = kiln_json_object ();
                kiln_json_set_str (rel, "spdxElementId", "SPDXRef-DOCUMENT");
                kiln_json_set_str (rel, "relationshipType", "DESCRIBES");
                kiln_json_set_str (rel, "relatedSpdxElement", id);
                kiln_json_append_node (rels, rel);
        }
        kiln_json_set_node (doc, "packages", pkgs);
        kiln_json_set_node (doc, "relationships", rels);
        return kiln_json_format (out, doc, err);
}

static int
make_tree (const char *tree, build *b, kiln_error **err)
{
        cleanup_free char *doc = NULL;

        for (size_t i = 0; i < b->n; i++) {
                if (b->pkgs[i].excluded)
                        continue;
                kiln_debug ("stack %s: unpacking %s %s", b->s->name, b->pkgs[i].name,
                            b->pkgs[i].version);
                if (stack_apt_extract (b->apt, &b->pkgs[i], tree, err) < 0)
                        return -1;
        }
        if (trim (tree, b->s, err) < 0 || add_users (tree, b->s, err) < 0
            || add_status (tree, b, err) < 0 || sbom (&doc, b, err) < 0)
                return -1;
        return put (tree, KILN_STACK_SBOM_PATH, doc, 0644, err);
}

/* ---- the image ---- */

static void
set_config (kiln_image_config *c, const build *b)
{
        const kiln_stack *s = b->s;
        cleanup_free char *user
            = kiln_strdup_printf ("%lld:%lld", (long long) s->uid, (long long) s->gid);
        cleanup_free char *packages = packages_label (b->pkgs, b->n);

        free (c->user);
        c->user = steal_pointer (&user);
        if (kiln_kvs_get (&s->env, "PATH") == NULL)
                kiln_config_set_env (
                    c, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for (size_t i = 0; i < s->env.n; i++)
                kiln_config_set_env (c, s->env.items[i].key, s->env.items[i].value);
        kiln_kvs_set (&c->labels, KILN_LABEL_STACK_NAME, s->name);
        kiln_kvs_set (&c->labels, KILN_LABEL_STACK_ID, b->key);
        kiln_kvs_set (&c->labels, KILN_LABEL_STACK_SUITE, s->suite);
        kiln_kvs_set (&c->labels, KILN_LABEL_STACK_PACKAGES, packages);
}

static int
compose_image (kiln_stack_result *out, build *b, const char *tree, kiln_error **err)
{
        cleanup_compose kiln_compose *c = NULL;
        kiln_platform *platform = kiln_stack_platform (b->arch);
        const kiln_layer_owner home
            = { b->s->home + 1, (unsigned) b->s->uid, (unsigned) b->s->gid };
        kiln_compose_opts copts = { .base = "scratch", .platform = platform, .created = b->epoch };
        cleanup_free char *by = NULL;
        cleanup_free char *spec = NULL;
        size_t kept = 0;
        kiln_layer_opts lo;
        int r = -1;

        if (platform == NULL)
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "no OCI platform for the architecture `%s`", b->arch);
        for (size_t i = 0; i < b->n; i++)
                kept += !b->pkgs[i].excluded;
        kiln_layer_opts_init (&lo);
        lo.mtime = b->epoch;
        lo.owners = &home;
        lo.n_owners = 1;
        by = kiln_strdup_printf ("kiln stack build %s: %zu Debian packages from %s", b->s->name,
                                 kept, b->s->suite);
        spec = kiln_strdup_printf ("oci:%s:%s", b->images, kiln_digest_hex (b->key));
        if (kiln_compose_new (&c, &copts, err) < 0
            || kiln_compose_add_dir (c, tree, "", &lo, by, NULL, err) < 0)
                goto out;
        set_config (kiln_compose_config (c), b);
        if (kiln_compose_publish (c, spec, out->digest, err) < 0)
                goto out;
        out->location = steal_pointer (&spec);
        out->layout = kiln_strdup (b->images);
        kiln_strlcpy (out->key, b->key, sizeof out->key);
        out->packages = kiln_strv_new ();
        for (size_t i = 0; i < b->n; i++) {
                cleanup_free char *nv = NULL;
                if (b->pkgs[i].excluded)
                        continue;
                nv = kiln_strdup_printf ("%s=%s", b->pkgs[i].name, b->pkgs[i].version);
                out->packages = kiln_strv_append (out->packages, nv);
        }
        r = 0;
out:
        kiln_platform_free (platform);
        return r;
}

static int
make_image (kiln_stack_result *out, build *b, kiln_error **err)
{
        cleanup_free char *tree = NULL;
        int r;

        if (stack_apt_fetch (b->apt, b->pkgs, b->n, err) < 0)
                return -1;
        if (kiln_mkdtemp (&tree, "stack", err) < 0)
                return -1;
        r = make_tree (tree, b, err);
        if (r == 0)
                r = compose_image (out, b, tree, err);
        if (kiln_rm_rf (tree, NULL) < 0)
                kiln_warn ("could not remove `%s`", tree);
        return r;
}

static int
resolve (kiln_stack_result *out, build *b, kiln_error **err)
{
        int r;

        if (stack_apt_open (&b->apt, b->s, b->arch, b->cache, err) < 0
            || stack_apt_update (b->apt, err) < 0
            || stack_apt_resolve (&b->pkgs, &b->n, b->apt, err) < 0)
                return -1;
        content_key (b);
        kiln_info ("stack %s: %zu packages, key %s", b->s->name, b->n, b->key);
        r = from_cache (out, b, kiln_digest_hex (b->key), err);
        if (r < 0)
                return -1;
        if (r == 0 && make_image (out, b, err) < 0)
                return -1;
        return write_file_ref (b, err);
}

/* The image the last build of this very file gave, if the cache has it. */
static int
reuse (kiln_stack_result *out, build *b, kiln_error **err)
{
        cleanup_free char *key = NULL;
        size_t len;
        kiln_error *e = NULL;

        if (kiln_read_file (&key, &len, b->file_ref, 256, &e) < 0) {
                kiln_error_free (e);
                return 0;
        }
        if (len != 64 || strspn (key, "0123456789abcdef") != 64)
                return 0;
        return from_cache (out, b, key, err);
}

static int
do_build (kiln_stack_result *out, build *b, bool may_reuse, kiln_error **err)
{
        cleanup_close int lock = -1;
        int r;

        if (lock_cache (&lock, b->cache, err) < 0)
                return -1;
        file_ref_path (b);
        if (may_reuse) {
                r = reuse (out, b, err);
                if (r != 0)
                        return r < 0 ? -1 : 0;
        }
        return resolve (out, b, err);
}

int
kiln_stack_build (kiln_stack_result *out, const kiln_stack *s, const kiln_stack_build_opts *o,
                  kiln_error **err)
{
        cleanup_free char *cache = o && o->cache_dir ? NULL : kiln_stack_default_cache_dir ();
        kiln_platform *host = NULL;
        build b = { .s = s, .epoch = o ? o->created : -1 };
        int r = -1;

        memset (out, 0, sizeof (*out));
        b.cache = cache ? cache : o->cache_dir;
        b.arch = s->architecture;
        if (b.arch == NULL) {
                host = kiln_platform_host ();
                b.arch = kiln_stack_debian_arch (host);
        }
        if (b.arch == NULL) {
                kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                  "Debian has no architecture for this host: name one");
                goto out;
        }
        if (b.epoch < 0 && kiln_source_date_epoch (&b.epoch, err) < 0)
                goto out;
        b.images = kiln_strdup_printf ("%s/images", b.cache);
        r = do_build (out, &b, o && o->reuse, err);
out:
        if (r < 0) {
                kiln_stack_result_clear (out);
                kiln_error_wrap (err, "stack `%s`", s->path ? s->path : s->name);
        }
        kiln_platform_free (host);
        build_clear (&b);
        return r;
}

/* ---- kiln-stack:NAME ---- */

static int
stack_for_platform (kiln_stack *s, const kiln_platform *platform, kiln_error **err)
{
        const char *want;

        if (platform == NULL)
                return 0;
        want = kiln_stack_debian_arch (platform);
        if (want == NULL)
                return kiln_error_makec (err, KILN_E_UNSUPPORTED, 0,
                                         "Debian has no architecture for %s/%s", platform->os,
                                         platform->architecture);
        if (s->architecture == NULL) {
                s->architecture = kiln_strdup (want);
                return 0;
        }
        if (strcmp (s->architecture, want) != 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "`%s` is for %s, not %s", s->path,
                                         s->architecture, want);
        return 0;
}

int
kiln_stack_resolve_base (char **location, const char *name, const char *stacks_dir,
                         const char *cache_dir, const kiln_platform *platform, kiln_error **err)
{
        const char *stack = name + strlen (KILN_STACK_PREFIX);
        const char *dir = kiln_stack_dir (stacks_dir);
        cleanup_stack kiln_stack *s = NULL;
        cleanup_free char *path = NULL;
        kiln_stack_build_opts o = { .cache_dir = cache_dir, .created = -1, .reuse = true };
        kiln_stack_result res;

        if (!kiln_str_has_prefix (name, KILN_STACK_PREFIX) || stack[0] == '\0'
            || strspn (stack, "abcdefghijklmnopqrstuvwxyz0123456789._-") != strlen (stack)
            || stack[0] == '.' || stack[0] == '-')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s`: a stack name is [a-z0-9][a-z0-9._-]*", name);
        if (dir == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "`%s`: no stacks directory (set KILN_STACKS_DIR)", name);
        path = kiln_strdup_printf ("%s/%s.yaml", dir, stack);
        if (kiln_stack_load (&s, path, err) < 0 || stack_for_platform (s, platform, err) < 0)
                return -1;
        if (kiln_stack_build (&res, s, &o, err) < 0)
                return -1;
        kiln_info ("%s: %s%s", name, res.digest, res.cached ? " (cached)" : "");
        *location = steal_pointer (&res.location);
        kiln_stack_result_clear (&res);
        return 0;
}
