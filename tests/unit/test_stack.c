/* Unit tests: stack files (the YAML subset and the fields), the
 * architecture names, and finding the host's Debian mirror. */
#include <sys/stat.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/stack.h"
#include "unit.h"

static kiln_stack *
parse_ok (const char *text)
{
        kiln_error *err = NULL;
        kiln_stack *s = NULL;

        if (kiln_stack_parse (&s, text, strlen (text), "t.yaml", &err) < 0) {
                fprintf (stderr, "  parse failed: %s\n  input: %s\n", err->msg, text);
                unit_failed_checks++;
                kiln_error_free (err);
                return NULL;
        }
        return s;
}

/* The message for an input that must fail; caller frees. */
static char *
parse_err (const char *text)
{
        kiln_error *err = NULL;
        kiln_stack *s = NULL;
        char *msg;

        if (kiln_stack_parse (&s, text, strlen (text), "t.yaml", &err) == 0) {
                fprintf (stderr, "  expected an error for: %s\n", text);
                unit_failed_checks++;
                kiln_stack_free (s);
                return kiln_strdup ("");
        }
        CHECK (err->code == KILN_E_INVALID || err->code == KILN_E_TOO_LARGE);
        CHECK (strchr (err->msg, '\n') == NULL);
        msg = kiln_strdup (err->msg);
        kiln_error_free (err);
        return msg;
}

#define CHECK_ERR(text, want)                                                                      \
        do {                                                                                       \
                cleanup_free char *m_ = parse_err (text);                                          \
                if (strstr (m_, (want)) == NULL) {                                                 \
                        fprintf (stderr, "  %s:%d: error `%s` lacks `%s`\n", __FILE__, __LINE__,   \
                                 m_, (want));                                                      \
                        unit_failed_checks++;                                                      \
                }                                                                                  \
        } while (0)

static void
test_full (void)
{
        cleanup_stack kiln_stack *s = parse_ok ("# the python runtime\n"
                                                "---\n"
                                                "name: python   # a comment\n"
                                                "suite: \"bookworm\"\n"
                                                "architecture: amd64\n"
                                                "mirror: http://deb.debian.org/debian\n"
                                                "sources:\n"
                                                "  - http://deb.debian.org/debian-security "
                                                "bookworm-security\n"
                                                "  - http://deb.debian.org/debian bookworm-updates "
                                                "main contrib\n"
                                                "\n"
                                                "packages:\n"
                                                "  - python3-minimal\n"
                                                "  # a comment between items\n"
                                                "  - 'libpython3.11-stdlib'\n"
                                                "  - zlib1g=1:1.2.13.dfsg-1\n"
                                                "exclude: [dpkg, \"tar\"]\n"
                                                "remove:\n"
                                                "  - /usr/lib/*/gconv\n"
                                                "user:\n"
                                                "    name: app\n"
                                                "    uid: 1000\n"
                                                "env:\n"
                                                "  PATH: /usr/local/bin:/usr/bin:/bin\n"
                                                "  LANG: C.UTF-8\n"
                                                "  QUOTED: \"a \\\"b\\\" \\u00e9\"\n"
                                                "  SINGLE: 'it''s # not a comment'\n");

        if (s == NULL)
                return;
        CHECK_STR (s->name, "python");
        CHECK_STR (s->suite, "bookworm");
        CHECK_STR (s->architecture, "amd64");
        CHECK_STR (s->mirror, "http://deb.debian.org/debian");
        CHECK (kiln_strv_len (s->sources) == 2);
        CHECK_STR (s->sources[0], "http://deb.debian.org/debian-security bookworm-security");
        CHECK (kiln_strv_len (s->packages) == 3);
        CHECK_STR (s->packages[1], "libpython3.11-stdlib");
        CHECK_STR (s->packages[2], "zlib1g=1:1.2.13.dfsg-1");
        CHECK (kiln_strv_len (s->exclude) == 2);
        CHECK_STR (s->exclude[1], "tar");
        CHECK (kiln_strv_len (s->remove) == 1);
        CHECK_STR (s->remove[0], "/usr/lib/*/gconv");
        CHECK_STR (s->user, "app");
        CHECK (s->uid == 1000 && s->gid == 1000);
        CHECK_STR (s->home, "/home/app");
        CHECK_STR (kiln_kvs_get (&s->env, "PATH"), "/usr/local/bin:/usr/bin:/bin");
        CHECK_STR (kiln_kvs_get (&s->env, "QUOTED"), "a \"b\" \xc3\xa9");
        CHECK_STR (kiln_kvs_get (&s->env, "SINGLE"), "it's # not a comment");
        CHECK (kiln_str_has_prefix (s->file_hash, "sha256:"));
}

static void
test_defaults (void)
{
        cleanup_stack kiln_stack *s
            = parse_ok ("name: n\r\nsuite: bookworm\r\npackages: [nodejs]\r\nenv: {}\r\n");

        if (s == NULL)
                return;
        CHECK (s->architecture == NULL && s->mirror == NULL && s->exclude == NULL);
        CHECK_STR (s->user, "nonroot");
        CHECK (s->uid == 65532 && s->gid == 65532);
        CHECK_STR (s->home, "/home/nonroot");
        CHECK (s->env.n == 0);
}

static void
test_yaml_errors (void)
{
        static const char head[] = "name: n\nsuite: bookworm\npackages: [a1]\n";
        cleanup_free char *t = NULL;

        CHECK_ERR ("name: n\n  suite: x\n", "line 2: unexpected indentation");
        CHECK_ERR ("name: n\nsuite\n", "line 2: expected `KEY: VALUE`");
        CHECK_ERR ("name: n\nname: m\n", "line 2: `name` is given twice (first on line 1)");
        CHECK_ERR ("name: n\npackages:\n\t- a\n", "line 3: a tab in the indentation");
        CHECK_ERR ("name: n\npackages:\n  - a\n    - b\n", "line 4: deeper nesting");
        CHECK_ERR ("name: n\npackages:\n    - a\n  - b\n",
                   "line 4: the indentation does not match");
        CHECK_ERR ("name: n\npackages:\n  - a\n  b: c\n", "line 4: expected a `- ` list item");
        CHECK_ERR ("name: n\nuser:\n  name: a\n  - b\n", "line 4: a list item in the map");
        CHECK_ERR ("name: n\npackages:\n  -\n", "line 3: an empty list item");
        CHECK_ERR ("name: n\npackages:\n  - - a\n", "line 3: nested lists");
        CHECK_ERR ("name: &a n\n", "line 1: anchors and aliases");
        CHECK_ERR ("name: !!str n\n", "line 1: tags are not supported");
        CHECK_ERR ("\n\nname: |\n  x\n", "line 3: block scalars");
        CHECK_ERR ("env: {A: b}\n", "line 1: flow mappings");
        CHECK_ERR ("name: \"abc\n", "line 1: unterminated double-quoted");
        CHECK_ERR ("name: 'abc\n", "line 1: unterminated single-quoted");
        CHECK_ERR ("name: \"a\\q\"\n", "line 1: unknown escape `\\q`");
        CHECK_ERR ("name: \"a\" b\n", "line 1: unexpected text after the value");
        CHECK_ERR ("name: a: b\n", "line 1: `:` followed by a space");
        CHECK_ERR ("packages: [a, [b]]\n", "line 1: only scalars");
        CHECK_ERR ("packages: [a, b\n", "line 1: expected `,` or `]`");
        CHECK_ERR ("name: n\n---\nname: m\n", "line 2: only one YAML document");
        CHECK_ERR ("name: n\nenv:\n  A:\n    B: c\n", "line 3: `env.A` has no value");
        CHECK_ERR ("name: n\x01\n", "line 1: not UTF-8 text, or a control character");
        CHECK_ERR ("a: b\nname: \xff\n", "line 2: not UTF-8");
        t = kiln_strdup_printf ("%sbogus: 1\n", head);
        CHECK_ERR (t, "line 4: unknown key `bogus`");
}

static void
test_field_errors (void)
{
        CHECK_ERR ("suite: b\npackages: [a1]\n", "`t.yaml`: `name` is required");
        CHECK_ERR ("name: n\nsuite: b\npackages: []\n", "line 3: `packages` is empty");
        CHECK_ERR ("name: n\nsuite: b\npackages: a1\n", "line 3: `packages` must be a list");
        CHECK_ERR ("name: N\nsuite: b\npackages: [a1]\n", "line 1: `name` must match");
        CHECK_ERR ("name: ''\nsuite: b\npackages: [a1]\n", "line 1: `name` must match");
        CHECK_ERR ("name: \"\"\nsuite: b\npackages: [a1]\n", "line 1: `name` must match");
        CHECK_ERR ("name: n\nsuite: b\npackages:\n  - ok1\n  - Bad_Name\n",
                   "line 5: `Bad_Name` is not a Debian package name");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1, a1]\n", "line 3: `a1` is listed twice");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nexclude: [b1=2]\n",
                   "line 4: `b1=2` is not a Debian package name");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nuser:\n  uid: 0\n",
                   "line 5: `user.uid` must be a number from 1");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nuser:\n  shell: /bin/sh\n",
                   "line 5: unknown key `user.shell`");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nuser: root\n", "line 4: `user.name`");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nenv:\n  A-B: c\n",
                   "line 5: `env.A-B`: not an environment variable name");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nenv: x\n", "line 4: `env` must be a map");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nmirror: ftp://x\n", "line 4: `mirror`");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nuser:\n  home: rel\n",
                   "line 5: `user.home` must be an absolute path");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nremove: [/usr/../etc]\n",
                   "line 4: `/usr/../etc`: `remove` takes absolute paths");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nremove: [usr/lib]\n",
                   "line 4: `usr/lib`: `remove` takes absolute paths");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nsources: [http://x]\n",
                   "line 4: `http://x`: a source is `URI SUITE [COMPONENT...]`");
        CHECK_ERR ("name: n\nsuite: b\npackages: [a1]\nsources: ['ftp://x b']\n",
                   "line 4: `ftp://x b`: a source");
        CHECK_ERR ("name:\nsuite: b\npackages: [a1]\n",
                   "line 1: `name` must be a value, not empty");
}

static void
test_too_large (void)
{
        size_t n = KILN_STACK_MAX_SIZE + 1;
        cleanup_free char *big = kiln_calloc (1, n + 1);
        kiln_error *err = NULL;
        kiln_stack *s = NULL;

        memset (big, '#', n);
        CHECK (kiln_stack_parse (&s, big, n, "big.yaml", &err) < 0);
        CHECK (err && err->code == KILN_E_TOO_LARGE);
        kiln_error_free (err);
}

static void
test_arch (void)
{
        kiln_error *err = NULL;
        kiln_platform *p = NULL;

        CHECK_OK (kiln_platform_parse (&p, "linux/arm/v7", &err));
        CHECK_STR (kiln_stack_debian_arch (p), "armhf");
        kiln_platform_free (p);
        p = kiln_stack_platform ("arm64");
        CHECK (p && strcmp (p->architecture, "arm64") == 0 && strcmp (p->variant, "v8") == 0);
        kiln_platform_free (p);
        p = kiln_stack_platform ("amd64");
        CHECK (p && strcmp (p->architecture, "amd64") == 0 && p->variant == NULL);
        CHECK_STR (kiln_stack_debian_arch (p), "amd64");
        kiln_platform_free (p);
        CHECK (kiln_stack_platform ("hurd-i386") == NULL);
}

static void
write_at (const char *dir, const char *rel, const char *text)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", dir, rel);
        cleanup_free char *parent = kiln_strdup (p);

        *strrchr (parent, '/') = '\0';
        CHECK_OK (kiln_mkdir_p (parent, 0755, &err));
        CHECK_OK (kiln_write_file (p, text, strlen (text), 0644, &err));
}

static void
test_host_mirror (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *dir = NULL;
        char *uri = NULL, *keyring = NULL;

        CHECK_OK (kiln_mkdtemp (&dir, "test-stack", &err));
        write_at (dir, "sources.list",
                  "# nothing\n"
                  "deb-src http://src.example/debian bookworm main\n"
                  "deb [arch=amd64] http://one.example/debian bullseye main\n"
                  "deb http://two.example/debian trixie contrib main # x\n");
        write_at (dir, "sources.list.d/debian.sources",
                  "Types: deb\n"
                  "URIs: http://sec.example/debian-security\n"
                  "Suites: bookworm-security\n"
                  "Components: main\n"
                  "\n"
                  "Types: deb deb-src\n"
                  "# a comment\n"
                  "URIs: http://mirror.example/debian http://other.example/debian\n"
                  "Suites: bookworm bookworm-updates\n"
                  "Components: main contrib\n"
                  "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n");
        CHECK (kiln_stack_host_mirror (&uri, &keyring, dir, "bookworm") == 1);
        CHECK_STR (uri, "http://mirror.example/debian");
        CHECK_STR (keyring, "/usr/share/keyrings/debian-archive-keyring.gpg");
        free (uri);
        free (keyring);
        uri = keyring = NULL;
        CHECK (kiln_stack_host_mirror (&uri, &keyring, dir, "bullseye") == 1);
        CHECK_STR (uri, "http://one.example/debian");
        CHECK (keyring == NULL);
        free (uri);
        uri = NULL;
        CHECK (kiln_stack_host_mirror (&uri, &keyring, dir, "trixie") == 1);
        CHECK_STR (uri, "http://two.example/debian");
        free (uri);
        uri = NULL;
        CHECK (kiln_stack_host_mirror (&uri, &keyring, dir, "sid") == 0);
        CHECK (uri == NULL);
        kiln_rm_rf (dir, NULL);
}

int
main (void)
{
        RUN (test_full);
        RUN (test_defaults);
        RUN (test_yaml_errors);
        RUN (test_field_errors);
        RUN (test_too_large);
        RUN (test_arch);
        RUN (test_host_mirror);
        UNIT_DONE ("stack");
}
