/* kiln: the Debian side of stacks.  apt resolves and downloads with a
 * root of its own (its lists, status and configuration live in kiln's
 * cache, never in the host's /var/lib/apt or /etc/apt), and dpkg-deb
 * unpacks: no maintainer script ever runs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/sandbox.h"
#include "stack_private.h"

#define DEFAULT_MIRROR "http://deb.debian.org/debian"
#define DEFAULT_KEYRING "/usr/share/keyrings/debian-archive-keyring.gpg"
#define APT_TIMEOUT_MS (60 * 60 * 1000)
#define CONTROL_MAX ((size_t) 1 << 20)
#define RESOLVE_MAX ((size_t) 8 << 20)

/* ---- architectures ---- */

static const struct {
        const char *debian, *arch, *variant;
} arches[] = {
        { "amd64", "amd64", NULL },       { "arm64", "arm64", "v8" },
        { "armhf", "arm", "v7" },         { "armel", "arm", "v5" },
        { "i386", "386", NULL },          { "ppc64el", "ppc64le", NULL },
        { "s390x", "s390x", NULL },       { "riscv64", "riscv64", NULL },
        { "mips64el", "mips64le", NULL },
};

const char *
kiln_stack_debian_arch (const kiln_platform *p)
{
        if (p == NULL || p->architecture == NULL)
                return NULL;
        if (strcmp (p->architecture, "arm") == 0)
                return p->variant
                               && (strcmp (p->variant, "v5") == 0 || strcmp (p->variant, "v6") == 0)
                           ? "armel"
                           : "armhf";
        for (size_t i = 0; i < KILN_N_ELEMENTS (arches); i++)
                if (strcmp (arches[i].arch, p->architecture) == 0)
                        return arches[i].debian;
        return NULL;
}

kiln_platform *
kiln_stack_platform (const char *debian_arch)
{
        for (size_t i = 0; i < KILN_N_ELEMENTS (arches); i++) {
                kiln_platform *p;

                if (strcmp (arches[i].debian, debian_arch) != 0)
                        continue;
                p = kiln_calloc (1, sizeof (*p));
                p->os = kiln_strdup ("linux");
                p->architecture = kiln_strdup (arches[i].arch);
                p->variant = kiln_strdup (arches[i].variant);
                return p;
        }
        return NULL;
}

/* ---- the host's apt sources ---- */

static bool
has_word (const char *list, const char *word)
{
        size_t n = strlen (word);

        for (const char *p = list; *p;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (strncmp (p, word, n) == 0 && (p[n] == '\0' || p[n] == ' ' || p[n] == '\t'))
                        return true;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
        }
        return false;
}

static char *
first_word (const char *s)
{
        while (*s == ' ' || *s == '\t')
                s++;
        return strndup (s, strcspn (s, " \t"));
}

/* The next word of *p (NULL at the end); *p moves past it. */
static char *
next_word (const char **p)
{
        const char *s = *p + strspn (*p, " \t");
        size_t n = strcspn (s, " \t");

        *p = s + n;
        return n ? strndup (s, n) : NULL;
}

/* "deb [opt=v signed-by=/k] URI SUITE COMP..." */
static int
one_line_entry (char **uri, char **keyring, const char *line, const char *suite)
{
        cleanup_strv char **w = kiln_strv_new ();
        cleanup_free char *opts = NULL;
        const char *p = line + strspn (line, " \t");
        char *word;

        if (strncmp (p, "deb", 3) != 0 || (p[3] != ' ' && p[3] != '\t'))
                return 0;
        p += 3 + strspn (p + 3, " \t");
        if (*p == '[') {
                const char *close = strchr (p, ']');
                if (close == NULL)
                        return 0;
                opts = strndup (p, (size_t) (close - p + 1));
                p = close + 1;
        }
        while ((word = next_word (&p)) != NULL) {
                w = kiln_strv_append (w, word);
                free (word);
        }
        if (kiln_strv_len (w) < 3 || strcmp (w[1], suite) != 0
            || !kiln_strv_contains (w + 2, "main"))
                return 0;
        *uri = kiln_strdup (w[0]);
        if (opts && strstr (opts, "signed-by=")) {
                const char *k = strstr (opts, "signed-by=") + 10;
                *keyring = strndup (k, strcspn (k, " \t]"));
        }
        return 1;
}

static int
one_line_file (char **uri, char **keyring, const char *path, const char *suite)
{
        cleanup_file FILE *f = fopen (path, "re");
        cleanup_free char *line = NULL;
        size_t cap = 0;

        if (f == NULL)
                return 0;
        while (getline (&line, &cap, f) > 0) {
                line[strcspn (line, "#\r\n")] = '\0';
                if (one_line_entry (uri, keyring, line, suite) == 1)
                        return 1;
        }
        return 0;
}

typedef struct stanza {
        char *types, *uris, *suites, *components, *signed_by, *enabled;
} stanza;

static void
stanza_clear (stanza *s)
{
        free (s->types);
        free (s->uris);
        free (s->suites);
        free (s->components);
        free (s->signed_by);
        free (s->enabled);
        memset (s, 0, sizeof (*s));
}

static int
stanza_match (char **uri, char **keyring, const stanza *s, const char *suite)
{
        if (!s->types || !s->uris || !s->suites || !s->components)
                return 0;
        if (s->enabled && strcmp (s->enabled, "no") == 0)
                return 0;
        if (!has_word (s->types, "deb") || !has_word (s->suites, suite)
            || !has_word (s->components, "main"))
                return 0;
        *uri = first_word (s->uris);
        /* An inline key (a multi-line field) is not a file apt can be
         * pointed at: the default keyring is used then. */
        if (s->signed_by && s->signed_by[0] == '/')
                *keyring = first_word (s->signed_by);
        return 1;
}

static void
stanza_field (stanza *s, const char *line)
{
        static const struct {
                const char *name;
                size_t off;
        } fields[] = {
                { "Types:", offsetof (stanza, types) },
                { "URIs:", offsetof (stanza, uris) },
                { "Suites:", offsetof (stanza, suites) },
                { "Components:", offsetof (stanza, components) },
                { "Signed-By:", offsetof (stanza, signed_by) },
                { "Enabled:", offsetof (stanza, enabled) },
        };

        for (size_t i = 0; i < KILN_N_ELEMENTS (fields); i++) {
                char **slot = (char **) ((char *) s + fields[i].off);
                size_t n = strlen (fields[i].name);
                if (strncasecmp (line, fields[i].name, n) != 0)
                        continue;
                free (*slot);
                *slot = kiln_strdup (line + n + strspn (line + n, " \t"));
                return;
        }
}

static int
deb822_file (char **uri, char **keyring, const char *path, const char *suite)
{
        cleanup_file FILE *f = fopen (path, "re");
        cleanup_free char *line = NULL;
        stanza s = { 0 };
        size_t cap = 0;
        int found = 0;

        if (f == NULL)
                return 0;
        while (!found && getline (&line, &cap, f) > 0) {
                line[strcspn (line, "\r\n")] = '\0';
                if (line[0] == '#' || line[0] == ' ' || line[0] == '\t')
                        continue;
                if (line[0] == '\0') {
                        found = stanza_match (uri, keyring, &s, suite);
                        stanza_clear (&s);
                        continue;
                }
                stanza_field (&s, line);
        }
        if (!found)
                found = stanza_match (uri, keyring, &s, suite);
        stanza_clear (&s);
        return found;
}

static int
cmp_str (const void *a, const void *b)
{
        return strcmp (*(char *const *) a, *(char *const *) b);
}

int
kiln_stack_host_mirror (char **uri, char **keyring, const char *etc_apt, const char *suite)
{
        cleanup_free char *main_list = kiln_strdup_printf ("%s/sources.list", etc_apt);
        cleanup_free char *parts = kiln_strdup_printf ("%s/sources.list.d", etc_apt);
        cleanup_strv char **names = kiln_strv_new ();
        cleanup_dir DIR *d = NULL;
        struct dirent *de;
        size_t n;

        *uri = *keyring = NULL;
        if (one_line_file (uri, keyring, main_list, suite))
                return 1;
        d = opendir (parts);
        while (d && (de = readdir (d)) != NULL)
                if (kiln_str_has_suffix (de->d_name, ".list")
                    || kiln_str_has_suffix (de->d_name, ".sources"))
                        names = kiln_strv_append (names, de->d_name);
        n = kiln_strv_len (names);
        qsort (names, n, sizeof (char *), cmp_str);
        for (size_t i = 0; i < n; i++) {
                cleanup_free char *p = kiln_strdup_printf ("%s/%s", parts, names[i]);
                int found = kiln_str_has_suffix (names[i], ".list")
                                ? one_line_file (uri, keyring, p, suite)
                                : deb822_file (uri, keyring, p, suite);
                if (found)
                        return 1;
                free (*uri);
                free (*keyring);
                *uri = *keyring = NULL;
        }
        return 0;
}

/* ---- running apt-get and dpkg-deb ---- */

struct stack_apt {
        const kiln_stack *stack;
        char *arch;
        char *root; /* apt's Dir */
        char *conf;
        char *debs;
        char *mirror;
        char *apt_get;
        char *dpkg_deb;
        char **env;
};

/* The program on PATH (or in /usr/bin, /bin); the caller's. */
static char *
find_program (const char *name, kiln_error **err)
{
        const char *path = getenv ("PATH");
        cleanup_free char *dirs = kiln_strdup_printf ("%s:/usr/bin:/bin", path ? path : "");

        for (const char *d = dirs; *d; d += strcspn (d, ":") + (d[strcspn (d, ":")] == ':')) {
                char *p = kiln_strdup_printf ("%.*s/%s", (int) strcspn (d, ":"), d, name);
                if (d[0] == '/' && access (p, X_OK) == 0)
                        return p;
                free (p);
        }
        kiln_error_makec (err, KILN_E_NOT_FOUND, 0,
                          "`%s` is not installed (kiln stack build needs apt and dpkg)", name);
        return NULL;
}

typedef struct run_out {
        kiln_buf *out;   /* stdout, when kept */
        char **errors;   /* apt's "E: " lines, without the prefix */
        char *last_line; /* the last stderr line, for other tools */
} run_out;

static void
on_output (void *data, const char *label, int stream, const char *line, size_t len)
{
        run_out *o = data;

        if (stream == 1 && o->out) {
                if (kiln_buf_append (o->out, line, len, NULL) < 0
                    || kiln_buf_append (o->out, "\n", 1, NULL) < 0)
                        kiln_debug ("%s: output over its bound", label);
                return;
        }
        kiln_debug ("%s: %.*s", label, (int) len, line);
        if (stream != 2)
                return;
        if (len > 3 && memcmp (line, "E: ", 3) == 0) {
                cleanup_free char *e = strndup (line + 3, len - 3);
                o->errors = kiln_strv_append (o->errors, e);
        }
        free (o->last_line);
        o->last_line = strndup (line, len);
}

static char **
make_env (const char *conf)
{
        static const char *const pass[]
            = { "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY" };
        const char *path = getenv ("PATH");
        char **env = kiln_strv_new ();
        cleanup_free char *p = kiln_strdup_printf ("PATH=%s", path ? path : "/usr/bin:/bin");
        cleanup_free char *c = kiln_strdup_printf ("APT_CONFIG=%s", conf);

        env = kiln_strv_append (env, p);
        env = kiln_strv_append (env, c);
        env = kiln_strv_append (env, "LC_ALL=C");
        for (size_t i = 0; i < KILN_N_ELEMENTS (pass); i++) {
                const char *v = getenv (pass[i]);
                if (v) {
                        cleanup_free char *kv = kiln_strdup_printf ("%s=%s", pass[i], v);
                        env = kiln_strv_append (env, kv);
                }
        }
        return env;
}

/* Runs argv; a non-zero exit is an error carrying apt's first "E: " line
 * (or the last stderr line).  out->errors is left for the caller. */
static int
run (stack_apt *a, const char *label, char *const *argv, const char *cwd, run_out *out,
     kiln_error **err)
{
        kiln_sandbox_opts o = {
                .argv = argv,
                .env = a->env,
                .cwd = cwd,
                .mode = KILN_SANDBOX_NONE,
                .timeout_ms = APT_TIMEOUT_MS,
                .label = label,
                .output = on_output,
                .output_data = out,
        };
        kiln_sandbox_result res;
        int r = 0;

        if (kiln_sandbox_run (&res, &o, err) < 0)
                return -1;
        if (res.exit_code != 0) {
                if (out->errors)
                        r = kiln_error_makec (err, KILN_E_FAILED, 0, "%s: %s", label,
                                              out->errors[0]);
                else
                        r = kiln_error_makec (err, KILN_E_FAILED, 0, "%s exited with %d%s%s", label,
                                              res.exit_code, out->last_line ? ": " : "",
                                              out->last_line ? out->last_line : "");
        }
        kiln_sandbox_result_clear (&res);
        return r;
}

static void
run_out_clear (run_out *o)
{
        kiln_strv_free (o->errors);
        free (o->last_line);
        memset (o, 0, sizeof (*o));
}

/* apt.conf values are quoted strings: nothing that ends one. */
static int
check_conf_value (const char *what, const char *v, kiln_error **err)
{
        if (strpbrk (v, "\"\n\\{};") != NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "%s `%s`: a character apt cannot "
                                         "take in its configuration",
                                         what, v);
        return 0;
}

static int
make_dirs (const char *root, const char *debs, kiln_error **err)
{
        static const char *const dirs[] = {
                "etc/apt/apt.conf.d",
                "etc/apt/preferences.d",
                "etc/apt/sources.list.d",
                "etc/apt/trusted.gpg.d",
                "var/lib/apt/lists/partial",
                "var/lib/dpkg",
                "var/cache/apt/archives/partial",
                "var/log/apt",
        };
        cleanup_free char *partial = kiln_strdup_printf ("%s/partial", debs);
        cleanup_free char *status = kiln_strdup_printf ("%s/var/lib/dpkg/status", root);

        for (size_t i = 0; i < KILN_N_ELEMENTS (dirs); i++) {
                cleanup_free char *p = kiln_strdup_printf ("%s/%s", root, dirs[i]);
                if (kiln_mkdir_p (p, 0755, err) < 0)
                        return -1;
        }
        if (kiln_mkdir_p (partial, 0755, err) < 0)
                return -1;
        /* apt resolves against an empty system: every dependency is in. */
        return kiln_write_file (status, "", 0, 0644, err);
}

static size_t
count_words (const char *s)
{
        size_t n = 0;

        for (const char *p = s; *p;) {
                p += strspn (p, " \t");
                if (*p == '\0')
                        break;
                n++;
                p += strcspn (p, " \t");
        }
        return n;
}

static int
write_config (stack_apt *a, const char *keyring, kiln_error **err)
{
        cleanup_free char *sources = kiln_strdup_printf ("%s/etc/apt/sources.list", a->root);
        cleanup_buf kiln_buf list = KILN_BUF_INIT;
        cleanup_free char *conf
            = kiln_strdup_printf ("Dir \"%s/\";\n"
                                  "Dir::State::status \"%s/var/lib/dpkg/status\";\n"
                                  "Dir::Cache::Archives \"%s/\";\n"
                                  "Dir::Log \"%s/var/log/apt\";\n"
                                  "APT::Architecture \"%s\";\n"
                                  "APT::Architectures { \"%s\"; };\n"
                                  "APT::Install-Recommends \"false\";\n"
                                  "APT::Install-Suggests \"false\";\n"
                                  "Acquire::Languages \"none\";\n"
                                  "Acquire::Retries \"3\";\n"
                                  "pkgCacheGen::ForceEssential \",\";\n"
                                  /* kiln holds a lock on the cache directory itself. */
                                  "Debug::NoLocking \"true\";\n",
                                  a->root, a->root, a->debs, a->root, a->arch, a->arch);

        if (access (keyring, R_OK) < 0)
                return kiln_error_makec (err, KILN_E_NOT_FOUND, errno,
                                         "keyring `%s` (install debian-archive-keyring, or name "
                                         "one with `keyring:`)",
                                         keyring);
        kiln_buf_printf (&list, NULL, "deb [signed-by=%s] %s %s main\n", keyring, a->mirror,
                         a->stack->suite);
        for (char **src = a->stack->sources; src && *src; src++) {
                /* "URI SUITE" means the main component. */
                kiln_buf_printf (&list, NULL, "deb [signed-by=%s] %s%s\n", keyring, *src,
                                 count_words (*src) == 2 ? " main" : "");
        }
        if (kiln_write_file (sources, list.data, list.len, 0644, err) < 0)
                return -1;
        return kiln_write_file (a->conf, conf, strlen (conf), 0644, err);
}

static int
choose_source (stack_apt *a, char **keyring, kiln_error **err)
{
        const kiln_stack *s = a->stack;
        char *host_uri = NULL, *host_key = NULL;

        if (s->mirror == NULL
            && kiln_stack_host_mirror (&host_uri, &host_key, "/etc/apt", s->suite))
                a->mirror = host_uri;
        else
                a->mirror = kiln_strdup (s->mirror ? s->mirror : DEFAULT_MIRROR);
        *keyring = kiln_strdup (s->keyring                          ? s->keyring
                                : a->mirror == host_uri && host_key ? host_key
                                                                    : DEFAULT_KEYRING);
        free (host_key);
        if (check_conf_value ("mirror", a->mirror, err) < 0
            || check_conf_value ("keyring", *keyring, err) < 0)
                return -1;
        kiln_info ("stack %s: %s %s (%s)", s->name, a->mirror, s->suite, a->arch);
        return 0;
}

int
stack_apt_open (stack_apt **out, const kiln_stack *s, const char *arch, const char *cache_dir,
                kiln_error **err)
{
        stack_apt *a = kiln_calloc (1, sizeof (*a));
        cleanup_free char *keyring = NULL;
        cleanup_free char *what = NULL;
        char key[KILN_DIGEST_MAX];

        a->stack = s;
        a->arch = kiln_strdup (arch);
        if (check_conf_value ("cache directory", cache_dir, err) < 0
            || check_conf_value ("architecture", arch, err) < 0
            || choose_source (a, &keyring, err) < 0)
                goto fail;
        /* One apt root per archive, suite and architecture: their lists
         * are kept between builds. */
        what = kiln_strdup_printf ("%s\n%s\n%s\n%s", a->mirror, s->suite, arch, keyring);
        for (char **src = s->sources; src && *src; src++) {
                char *more = kiln_strdup_printf ("%s\n%s", what, *src);
                free (what);
                what = more;
        }
        kiln_digest_bytes (key, what, strlen (what));
        a->root = kiln_strdup_printf ("%s/apt/%.16s", cache_dir, kiln_digest_hex (key));
        a->conf = kiln_strdup_printf ("%s/apt.conf", a->root);
        a->debs = kiln_strdup_printf ("%s/debs", cache_dir);
        a->env = make_env (a->conf);
        if (make_dirs (a->root, a->debs, err) < 0 || write_config (a, keyring, err) < 0)
                goto fail;
        a->apt_get = find_program ("apt-get", err);
        a->dpkg_deb = a->apt_get ? find_program ("dpkg-deb", err) : NULL;
        if (a->dpkg_deb == NULL)
                goto fail;
        *out = a;
        return 0;
fail:
        stack_apt_free (a);
        return -1;
}

void
stack_apt_free (stack_apt *a)
{
        if (a == NULL)
                return;
        free (a->arch);
        free (a->root);
        free (a->conf);
        free (a->debs);
        free (a->mirror);
        free (a->apt_get);
        free (a->dpkg_deb);
        kiln_strv_free (a->env);
        free (a);
}

int
stack_apt_update (stack_apt *a, kiln_error **err)
{
        char *argv[] = { a->apt_get, "update", "-qq", "--error-on=any", NULL };
        run_out o = { 0 };
        int r = run (a, "apt-get update", argv, NULL, &o, err);

        run_out_clear (&o);
        if (r < 0)
                return kiln_error_wrap (err, "%s %s", a->mirror, a->stack->suite);
        return 0;
}

void
stack_pkgs_free (stack_pkg *p, size_t n)
{
        for (size_t i = 0; p && i < n; i++) {
                free (p[i].name);
                free (p[i].version);
                free (p[i].arch);
                free (p[i].deb);
                free (p[i].control);
                free (p[i].source);
                free (p[i].source_version);
        }
        free (p);
}

/* "Inst NAME [OLD] (VERSION ARCHIVES [ARCH]) ..." */
static int
parse_inst (stack_pkg *p, const char *line)
{
        const char *name = line + 5, *open = strchr (name, '('), *sp, *lb, *rb;

        if (open == NULL)
                return -1;
        sp = strchr (open, ' ');
        rb = strchr (open, ')');
        lb = rb ? memrchr (open, '[', (size_t) (rb - open)) : NULL;
        if (sp == NULL || rb == NULL || lb == NULL || sp > rb || rb[-1] != ']')
                return -1;
        p->name = strndup (name, strcspn (name, " "));
        p->version = strndup (open + 1, (size_t) (sp - open - 1));
        p->arch = strndup (lb + 1, (size_t) (rb - 1 - lb - 1));
        return 0;
}

static int
cmp_pkg (const void *a, const void *b)
{
        return strcmp (((const stack_pkg *) a)->name, ((const stack_pkg *) b)->name);
}

/* apt's "Unable to locate package X" lines, as one message. */
static int
missing_packages (stack_apt *a, char **errors, kiln_error **err)
{
        cleanup_buf kiln_buf names = KILN_BUF_INIT;
        size_t n = 0;

        for (char **e = errors; e && *e; e++) {
                if (!kiln_str_has_prefix (*e, "Unable to locate package "))
                        continue;
                kiln_buf_printf (&names, NULL, "%s`%s`", n ? ", " : "", *e + 25);
                n++;
        }
        if (n == 0)
                return 0;
        return kiln_error_makec (err, KILN_E_NOT_FOUND, 0, "package%s %s %s not in %s (%s)",
                                 n > 1 ? "s" : "", names.data, n > 1 ? "are" : "is",
                                 a->stack->suite, a->arch);
}

static int
parse_resolution (stack_pkg **out, size_t *n, const char *text, kiln_error **err)
{
        size_t cap = 64;
        stack_pkg *v = kiln_calloc (cap, sizeof (*v));
        const char *line = text;

        *n = 0;
        for (; *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : line + strlen (line)) {
                cleanup_free char *l = strndup (line, strcspn (line, "\n"));
                if (!kiln_str_has_prefix (l, "Inst "))
                        continue;
                if (*n == cap) {
                        cap *= 2;
                        v = kiln_reallocarray (v, cap, sizeof (*v));
                }
                memset (&v[*n], 0, sizeof (v[*n]));
                if (parse_inst (&v[*n], l) < 0) {
                        stack_pkgs_free (v, *n + 1);
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "apt-get: unexpected line `%s`", l);
                }
                (*n)++;
        }
        qsort (v, *n, sizeof (*v), cmp_pkg);
        *out = v;
        return 0;
}

static int
mark_excluded (stack_apt *a, stack_pkg *pkgs, size_t n, kiln_error **err)
{
        for (char **x = a->stack->exclude; x && *x; x++) {
                stack_pkg key = { .name = *x };
                stack_pkg *p = bsearch (&key, pkgs, n, sizeof (*pkgs), cmp_pkg);
                if (p == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "exclude: `%s` is not among the resolved packages",
                                                 *x);
                p->excluded = true;
        }
        return 0;
}

int
stack_apt_resolve (stack_pkg **out, size_t *n, stack_apt *a, kiln_error **err)
{
        cleanup_strv char **argv = kiln_strv_new ();
        kiln_buf text = KILN_BUF_INIT;
        run_out o = { .out = &text };
        int r;

        kiln_buf_init (&text, RESOLVE_MAX);
        argv = kiln_strv_append (argv, a->apt_get);
        argv = kiln_strv_append (argv, "install");
        argv = kiln_strv_append (argv, "--simulate");
        argv = kiln_strv_append (argv, "-qq");
        for (char **p = a->stack->packages; *p; p++)
                argv = kiln_strv_append (argv, *p);
        r = run (a, "apt-get", argv, NULL, &o, err);
        if (r < 0 && err && *err && missing_packages (a, o.errors, NULL) < 0) {
                /* A name apt does not know says more than apt's wording. */
                kiln_error_free (kiln_error_take (err));
                missing_packages (a, o.errors, err);
        }
        if (r == 0)
                r = parse_resolution (out, n, text.data ? text.data : "", err);
        if (r == 0 && *n == 0)
                r = kiln_error_makec (err, KILN_E_INVALID, 0, "apt resolved no package");
        if (r == 0 && mark_excluded (a, *out, *n, err) < 0) {
                stack_pkgs_free (*out, *n);
                *out = NULL;
                r = -1;
        }
        run_out_clear (&o);
        kiln_buf_free (&text);
        return r;
}

/* apt's name for a downloaded archive: NAME_VERSION_ARCH.deb, with ':'
 * and '_' (and, in the architecture, '.') written as %xx. */
static void
quote_into (kiln_buf *b, const char *s, const char *bad)
{
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '%' || c <= 0x20 || c >= 0x7f || strchr (bad, c))
                        kiln_buf_printf (b, NULL, "%%%02x", c);
                else
                        kiln_buf_append (b, s, 1, NULL);
        }
}

static char *
deb_file_name (const stack_pkg *p)
{
        kiln_buf b = KILN_BUF_INIT;

        quote_into (&b, p->name, "_:");
        kiln_buf_puts (&b, "_", NULL);
        quote_into (&b, p->version, "_:");
        kiln_buf_puts (&b, "_", NULL);
        quote_into (&b, p->arch, "_:.");
        kiln_buf_puts (&b, ".deb", NULL);
        return kiln_buf_steal (&b, NULL);
}

int
stack_apt_fetch (stack_apt *a, stack_pkg *pkgs, size_t n, kiln_error **err)
{
        cleanup_strv char **argv = kiln_strv_new ();
        run_out o = { 0 };
        int r;

        argv = kiln_strv_append (argv, a->apt_get);
        argv = kiln_strv_append (argv, "download");
        argv = kiln_strv_append (argv, "-qq");
        for (size_t i = 0; i < n; i++) {
                if (pkgs[i].excluded)
                        continue;
                cleanup_free char *pin
                    = kiln_strdup_printf ("%s=%s", pkgs[i].name, pkgs[i].version);
                argv = kiln_strv_append (argv, pin);
        }
        /* apt-get download writes into the current directory and leaves a
         * file that is already there with the right checksum alone. */
        r = run (a, "apt-get download", argv, a->debs, &o, err);
        run_out_clear (&o);
        if (r < 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                cleanup_free char *file = NULL;
                if (pkgs[i].excluded)
                        continue;
                file = deb_file_name (&pkgs[i]);
                pkgs[i].deb = kiln_strdup_printf ("%s/%s", a->debs, file);
                if (access (pkgs[i].deb, R_OK) < 0)
                        return kiln_error_make (err, errno, "apt-get download: `%s`", pkgs[i].deb);
        }
        return 0;
}

/* "Source: NAME" or "Source: NAME (VERSION)"; absent: the package's. */
static void
read_source (stack_pkg *p)
{
        const char *f = strstr (p->control, "\nSource: ");
        const char *v, *end;

        if (kiln_str_has_prefix (p->control, "Source: "))
                f = p->control - 1;
        if (f == NULL) {
                p->source = kiln_strdup (p->name);
                p->source_version = kiln_strdup (p->version);
                return;
        }
        f += 9;
        end = f + strcspn (f, "\n");
        p->source = strndup (f, strcspn (f, " \n"));
        v = memchr (f, '(', (size_t) (end - f));
        if (v && memchr (v, ')', (size_t) (end - v)))
                p->source_version = strndup (v + 1, strcspn (v + 1, ")"));
        else
                p->source_version = kiln_strdup (p->version);
}

/* Reads what is left of fd, so the writer ends without SIGPIPE. */
static void
drain (int fd)
{
        char buf[65536];

        while (read (fd, buf, sizeof buf) > 0 || errno == EINTR)
                ;
}

/* `dpkg-deb --fsys-tarfile DEB` piped into kiln's own extractor: modes
 * exactly as packaged whatever the umask and whoever runs kiln, and
 * nothing written outside the tree (no absolute paths, no `..`, no
 * writes through symlinks). */
static int
unpack (stack_apt *a, const stack_pkg *p, const char *tree, kiln_error **err)
{
        char *argv[] = { a->dpkg_deb, "--fsys-tarfile", p->deb, NULL };
        cleanup_close int out = -1, in = -1, errs = -1;
        posix_spawn_file_actions_t fa;
        kiln_extract_opts eo;
        int fds[2], status = 0, rc;
        pid_t pid;

        if (pipe2 (fds, O_CLOEXEC) < 0)
                return kiln_error_make (err, errno, "pipe");
        in = fds[0];
        out = fds[1];
        errs = memfd_create ("dpkg-deb-stderr", MFD_CLOEXEC);
        if (errs < 0)
                return kiln_error_make (err, errno, "memfd_create");
        posix_spawn_file_actions_init (&fa);
        posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2 (&fa, out, 1);
        posix_spawn_file_actions_adddup2 (&fa, errs, 2);
        rc = posix_spawn (&pid, a->dpkg_deb, &fa, NULL, argv, a->env);
        posix_spawn_file_actions_destroy (&fa);
        if (rc != 0)
                return kiln_error_make (err, rc, "run `%s`", a->dpkg_deb);
        close (kiln_steal_fd (&out));
        kiln_extract_opts_init (&eo);
        eo.no_whiteouts = true;
        rc = kiln_layer_extract_fd (in, tree, &eo, NULL, err);
        if (rc == 0)
                drain (in);
        close (kiln_steal_fd (&in));
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (rc == 0 && !(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
                char msg[512] = "";
                ssize_t n = pread (errs, msg, sizeof msg - 1, 0);
                msg[n > 0 ? n : 0] = '\0';
                msg[strcspn (msg, "\n")] = '\0';
                return kiln_error_makec (err, KILN_E_FAILED, 0,
                                         "dpkg-deb --fsys-tarfile `%s` failed%s%s", p->deb,
                                         msg[0] ? ": " : "", msg);
        }
        return rc;
}

int
stack_apt_extract (stack_apt *a, stack_pkg *p, const char *tree, kiln_error **err)
{
        char *f[] = { a->dpkg_deb, "--field", p->deb, NULL };
        kiln_buf control = KILN_BUF_INIT;
        run_out o = { 0 };
        int r;

        if (unpack (a, p, tree, err) < 0)
                return kiln_error_wrap (err, "package %s", p->name);
        kiln_buf_init (&control, CONTROL_MAX);
        o.out = &control;
        r = run (a, "dpkg-deb --field", f, NULL, &o, err);
        run_out_clear (&o);
        if (r < 0) {
                kiln_buf_free (&control);
                return kiln_error_wrap (err, "package %s", p->name);
        }
        p->control = kiln_buf_steal (&control, NULL);
        read_source (p);
        return kiln_digest_file (p->sha256, KILN_DIGEST_SHA256, p->deb, NULL, err);
}
