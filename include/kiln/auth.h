/* kiln: registry authentication inputs: WWW-Authenticate challenges and
 * stored credentials (docker's config.json, podman's auth.json, and
 * docker-credential-* helpers).
 *
 * Secrets never appear in an error message or a log line: messages name
 * the registry and the file or helper, never a user name, password or
 * token.  kiln_credential_clear wipes the secrets before freeing them. */
#ifndef KILN_AUTH_H
#define KILN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef enum kiln_auth_scheme {
        KILN_AUTH_NONE = 0, /* no (usable) challenge */
        KILN_AUTH_BASIC,
        KILN_AUTH_BEARER,
} kiln_auth_scheme;

/* One challenge of a WWW-Authenticate header; strings owned, NULL when the
 * parameter was not given. */
typedef struct kiln_auth_challenge {
        kiln_auth_scheme scheme;
        char *realm;
        char *service;
        char *scope; /* space-separated scopes, as sent */
        char *error; /* e.g. "insufficient_scope", "invalid_token" */
} kiln_auth_challenge;

/* Parses a WWW-Authenticate value: one or more challenges separated by
 * commas, each a scheme and auth-params (token or quoted-string values,
 * with backslash escapes).  Bearer is preferred over Basic when both are
 * offered; unknown schemes are skipped.  Malformed input is KILN_E_INVALID;
 * a header with only unknown schemes gives scheme KILN_AUTH_NONE.  *out is
 * cleared first and owned by the caller (kiln_auth_challenge_clear). */
int kiln_auth_challenge_parse (kiln_auth_challenge *out, const char *header, kiln_error **err);
void kiln_auth_challenge_clear (kiln_auth_challenge *c);

/* A stored credential for one registry; all fields owned, NULL if unset. */
typedef struct kiln_credential {
        char *username;
        char *password;       /* with username: Basic, or the token request's Basic */
        char *identity_token; /* an OAuth2 refresh token (helper user "<token>") */
        char *registry_token; /* sent as is as a Bearer token */
        char *source;         /* "FILE" or "docker-credential-NAME", for messages */
} kiln_credential;

bool kiln_credential_empty (const kiln_credential *c);
void kiln_credential_clear (kiln_credential *c);

/* Looks up the credential for `registry` (as in a reference: "docker.io",
 * "host:port").  Files, first match wins:
 *   $REGISTRY_AUTH_FILE,
 *   $DOCKER_CONFIG/config.json (else ~/.docker/config.json),
 *   $XDG_RUNTIME_DIR/containers/auth.json,
 *   $XDG_CONFIG_HOME/containers/auth.json (else ~/.config/containers/auth.json).
 * Within a file: credHelpers[registry], then credsStore, then
 * auths[registry] (keys normalised with kiln_registry_auth_key).  Returns 1
 * with *out filled, 0 when there is none (anonymous), -1 on error (a file
 * that is not valid JSON, a helper that fails). */
int kiln_credential_lookup (kiln_credential *out, const char *registry, kiln_error **err);

/* The same lookup in one config document (for tests and fuzzing):
 * returns 1 and fills *out from auths, 2 and sets *helper (borrowed from
 * nothing: the caller frees) when a helper should be run, 0 when the file
 * has nothing for the registry. */
int kiln_credential_from_config (kiln_credential *out, char **helper, const char *json, size_t len,
                                 const char *registry, const char *source, kiln_error **err);

/* Runs `docker-credential-NAME get` (found on PATH) with the server URL on
 * stdin and reads {"Username","Secret"} from its stdout (bounded, with a
 * 30 s limit).  "credentials not found" gives 0; a Username of "<token>"
 * makes Secret an identity token.  Returns 1 when found. */
int kiln_credential_helper_get (kiln_credential *out, const char *helper, const char *server,
                                kiln_error **err);

#endif
