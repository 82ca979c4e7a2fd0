/* Unit tests: WWW-Authenticate parsing, config.json credentials and
 * credential helpers. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kiln/auth.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "unit.h"

static void
test_challenge_bearer (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_auth_challenge c;

        CHECK_OK (kiln_auth_challenge_parse (
            &c,
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
            "scope=\"repository:samalba/my-app:pull,push\"",
            &err));
        CHECK (c.scheme == KILN_AUTH_BEARER);
        CHECK_STR (c.realm, "https://auth.docker.io/token");
        CHECK_STR (c.service, "registry.docker.io");
        CHECK_STR (c.scope, "repository:samalba/my-app:pull,push");
        CHECK (c.error == NULL);
        kiln_auth_challenge_clear (&c);

        /* Escapes, spaces around '=', case-insensitive names, tokens. */
        CHECK_OK (kiln_auth_challenge_parse (
            &c,
            "bearer  REALM = \"http://x/t?a=\\\"b\\\\\" , error=insufficient_scope,"
            " scope=\"repository:a:pull repository:b:pull\", foo=bar",
            &err));
        CHECK (c.scheme == KILN_AUTH_BEARER);
        CHECK_STR (c.realm, "http://x/t?a=\"b\\");
        CHECK_STR (c.error, "insufficient_scope");
        CHECK_STR (c.scope, "repository:a:pull repository:b:pull");
        kiln_auth_challenge_clear (&c);
}

static void
test_challenge_multiple (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_auth_challenge c;

        CHECK_OK (kiln_auth_challenge_parse (
            &c, "Basic realm=\"basic\", Bearer realm=\"https://a/token\",service=\"s\"", &err));
        CHECK (c.scheme == KILN_AUTH_BEARER);
        CHECK_STR (c.realm, "https://a/token");
        kiln_auth_challenge_clear (&c);

        CHECK_OK (kiln_auth_challenge_parse (&c, "Basic realm=\"Registry Realm\"", &err));
        CHECK (c.scheme == KILN_AUTH_BASIC);
        CHECK_STR (c.realm, "Registry Realm");
        kiln_auth_challenge_clear (&c);

        CHECK_OK (kiln_auth_challenge_parse (&c, "Negotiate abc==, NTLM", &err));
        CHECK (c.scheme == KILN_AUTH_NONE);
        kiln_auth_challenge_clear (&c);

        CHECK_OK (kiln_auth_challenge_parse (&c, "Basic", &err));
        CHECK (c.scheme == KILN_AUTH_BASIC && c.realm == NULL);
        kiln_auth_challenge_clear (&c);
}

static void
test_challenge_invalid (void)
{
        static const char *const bad[] = {
                "Bearer realm=\"unterminated", "Bearer realm=", "Bearer realm=\"a\" service=\"b\"",
                "Bearer realm=\"a\",=b",       "\"Bearer\"",    "Bearer realm=\"a\\",
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (bad); i++) {
                cleanup_error kiln_error *err = NULL;
                kiln_auth_challenge c;
                if (kiln_auth_challenge_parse (&c, bad[i], &err) == 0) {
                        fprintf (stderr, "  accepted: %s\n", bad[i]);
                        CHECK (!"accepted");
                        kiln_auth_challenge_clear (&c);
                        continue;
                }
                CHECK (err->code == KILN_E_INVALID);
        }
}

static int
from_config (kiln_credential *c, char **helper, const char *json, const char *registry,
             kiln_error **err)
{
        return kiln_credential_from_config (c, helper, json, strlen (json), registry, "config.json",
                                            err);
}

static void
test_config_auths (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *helper = NULL;
        kiln_credential c;
        /* "user:pa:ss" and "alice:secret\0\0" */
        const char *json = "{\"auths\":{"
                           "\"https://index.docker.io/v1/\":{\"auth\":\"dXNlcjpwYTpzcw==\"},"
                           "\"http://127.0.0.1:5000/v2/\":{\"auth\":\"YWxpY2U6c2VjcmV0AAA\"},"
                           "\"plain.example.com\":{\"username\":\"bob\",\"password\":\"pw\"},"
                           "\"tok.example.com\":{\"identitytoken\":\"refresh\"},"
                           "\"reg.example.com\":{\"registrytoken\":\"bearer-tok\"},"
                           "\"empty.example.com\":{}}}";

        CHECK (from_config (&c, &helper, json, "docker.io", &err) == 1);
        CHECK_STR (c.username, "user");
        CHECK_STR (c.password, "pa:ss");
        CHECK_STR (c.source, "config.json");
        kiln_credential_clear (&c);

        CHECK (from_config (&c, &helper, json, "127.0.0.1:5000", &err) == 1);
        CHECK_STR (c.username, "alice");
        CHECK_STR (c.password, "secret");
        kiln_credential_clear (&c);

        CHECK (from_config (&c, &helper, json, "plain.example.com", &err) == 1);
        CHECK_STR (c.username, "bob");
        CHECK_STR (c.password, "pw");
        kiln_credential_clear (&c);

        CHECK (from_config (&c, &helper, json, "tok.example.com", &err) == 1);
        CHECK_STR (c.identity_token, "refresh");
        CHECK (c.username == NULL);
        kiln_credential_clear (&c);

        CHECK (from_config (&c, &helper, json, "reg.example.com", &err) == 1);
        CHECK_STR (c.registry_token, "bearer-tok");
        kiln_credential_clear (&c);

        CHECK (from_config (&c, &helper, json, "empty.example.com", &err) == 0);
        CHECK (from_config (&c, &helper, json, "other.example.com", &err) == 0);
        CHECK (kiln_credential_empty (&c));
}

static void
test_config_bad_auth (void)
{
        static const char *const bad[] = {
                "{\"auths\":{\"r.io\":{\"auth\":\"!!!notbase64\"}}}",
                "{\"auths\":{\"r.io\":{\"auth\":\"bm9jb2xvbg==\"}}}", /* "nocolon" */
                "{\"auths\":",
                "[1,2]",
        };
        for (size_t i = 0; i < KILN_N_ELEMENTS (bad); i++) {
                cleanup_error kiln_error *err = NULL;
                cleanup_free char *helper = NULL;
                kiln_credential c;
                CHECK (from_config (&c, &helper, bad[i], "r.io", &err) < 0);
                CHECK (err && strstr (err->msg, "config.json") != NULL);
                kiln_credential_clear (&c);
        }
}

static void
test_config_helpers (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_credential c;
        char *helper = NULL;
        const char *json = "{\"credHelpers\":{\"gcr.io\":\"gcr\"},\"credsStore\":\"desktop\","
                           "\"auths\":{\"gcr.io\":{\"auth\":\"YTpi\"}}}";

        CHECK (from_config (&c, &helper, json, "gcr.io", &err) == 2);
        CHECK_STR (helper, "gcr");
        free (helper);
        CHECK (from_config (&c, &helper, json, "quay.io", &err) == 2);
        CHECK_STR (helper, "desktop");
        free (helper);
}

static char *tmpdir;

static void
write_exec (const char *name, const char *body)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *p = kiln_strdup_printf ("%s/%s", tmpdir, name);
        CHECK_OK (kiln_write_file (p, body, strlen (body), 0755, &err));
}

static void
test_helper_run (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_credential c;

        write_exec (
            "docker-credential-kilntest",
            "#!/bin/sh\n"
            "read host\n"
            "case \"$host\" in\n"
            "reg.example.com) echo '{\"ServerURL\":\"reg.example.com\",\"Username\":\"u1\","
            "\"Secret\":\"s3cr3t\"}' ;;\n"
            "tok.example.com) echo '{\"Username\":\"<token>\",\"Secret\":\"idtok\"}' ;;\n"
            "https://index.docker.io/v1/) echo '{\"Username\":\"hub\",\"Secret\":\"h\"}' ;;\n"
            "*) echo 'credentials not found in native keychain'; exit 1 ;;\n"
            "esac\n");
        write_exec ("docker-credential-broken", "#!/bin/sh\necho oops >&2\nexit 3\n");
        CHECK (kiln_credential_helper_get (&c, "kilntest", "reg.example.com", &err) == 1);
        CHECK_STR (c.username, "u1");
        CHECK_STR (c.password, "s3cr3t");
        CHECK_STR (c.source, "docker-credential-kilntest");
        kiln_credential_clear (&c);
        CHECK (kiln_credential_helper_get (&c, "kilntest", "tok.example.com", &err) == 1);
        CHECK_STR (c.identity_token, "idtok");
        kiln_credential_clear (&c);
        CHECK (kiln_credential_helper_get (&c, "kilntest", "nope.example.com", &err) == 0);
        CHECK (kiln_credential_helper_get (&c, "broken", "x", &err) < 0);
        CHECK (err && err->code == KILN_E_AUTH);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_credential_helper_get (&c, "missing-helper", "x", &err) < 0);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        kiln_error_free (err);
        err = NULL;
        CHECK (kiln_credential_helper_get (&c, "../evil", "x", &err) < 0);
}

static void
test_lookup_order (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *docker = kiln_strdup_printf ("%s/docker", tmpdir);
        cleanup_free char *dpath = kiln_strdup_printf ("%s/config.json", docker);
        cleanup_free char *apath = kiln_strdup_printf ("%s/auth.json", tmpdir);
        const char *dj = "{\"auths\":{\"a.io\":{\"auth\":\"ZDpk\"},\"b.io\":{\"auth\":\"ZDpk\"}},"
                         "\"credHelpers\":{\"docker.io\":\"kilntest\"}}";
        const char *aj = "{\"auths\":{\"a.io\":{\"auth\":\"cDpw\"}}}";
        kiln_credential c;

        kiln_mkdir_p (docker, 0700, &err);
        CHECK_OK (kiln_write_file (dpath, dj, strlen (dj), 0600, &err));
        CHECK_OK (kiln_write_file (apath, aj, strlen (aj), 0600, &err));
        setenv ("DOCKER_CONFIG", docker, 1);
        setenv ("REGISTRY_AUTH_FILE", apath, 1);
        setenv ("XDG_RUNTIME_DIR", tmpdir, 1);
        setenv ("XDG_CONFIG_HOME", tmpdir, 1);
        /* REGISTRY_AUTH_FILE comes first. */
        CHECK (kiln_credential_lookup (&c, "a.io", &err) == 1);
        CHECK_STR (c.username, "p");
        kiln_credential_clear (&c);
        CHECK (kiln_credential_lookup (&c, "b.io", &err) == 1);
        CHECK_STR (c.username, "d");
        kiln_credential_clear (&c);
        /* docker.io goes to the helper with Docker Hub's key. */
        CHECK (kiln_credential_lookup (&c, "docker.io", &err) == 1);
        CHECK_STR (c.username, "hub");
        kiln_credential_clear (&c);
        CHECK (kiln_credential_lookup (&c, "c.io", &err) == 0);
        unsetenv ("REGISTRY_AUTH_FILE");
        setenv ("DOCKER_CONFIG", tmpdir, 1); /* no config.json there */
        CHECK (kiln_credential_lookup (&c, "a.io", &err) == 0);
}

int
main (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *path = NULL;

        if (kiln_mkdtemp (&tmpdir, "test-auth", &err) < 0) {
                fprintf (stderr, "%s\n", err->msg);
                return 1;
        }
        path = kiln_strdup_printf ("%s:%s", tmpdir, getenv ("PATH") ? getenv ("PATH") : "/bin");
        setenv ("PATH", path, 1);
        RUN (test_challenge_bearer);
        RUN (test_challenge_multiple);
        RUN (test_challenge_invalid);
        RUN (test_config_auths);
        RUN (test_config_bad_auth);
        RUN (test_config_helpers);
        RUN (test_helper_run);
        RUN (test_lookup_order);
        kiln_rm_rf (tmpdir, NULL);
        free (tmpdir);
        UNIT_DONE ("test_auth");
}
