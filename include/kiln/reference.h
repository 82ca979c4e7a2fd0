/* kiln: image references, `[host[:port]/]path[:tag][@digest]`.
 *
 * Parsed as the distribution reference grammar says:
 *   - the first component is a registry host when it holds a '.' or a ':',
 *     is "localhost", or is a bracketed IPv6 address; otherwise the
 *     reference is on Docker Hub ("docker.io"), and a one-component path
 *     gets "library/" in front of it;
 *   - path components match [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*;
 *   - a tag matches [A-Za-z0-9_][A-Za-z0-9._-]{0,127};
 *   - a digest is sha256:<64 hex> or sha512:<128 hex>;
 *   - host "/" path is at most 255 characters.
 * Every error is KILN_E_INVALID and quotes the reference and says which
 * part is wrong. */
#ifndef KILN_REFERENCE_H
#define KILN_REFERENCE_H

#include <stdbool.h>

#include "digest.h"
#include "error.h"

#define KILN_REFERENCE_NAME_MAX 255
#define KILN_DOCKER_HUB "docker.io"
/* Where Docker Hub's API lives, and its key in docker's config.json. */
#define KILN_DOCKER_HUB_API "registry-1.docker.io"
#define KILN_DOCKER_HUB_AUTH_KEY "https://index.docker.io/v1/"

typedef struct kiln_reference {
        char *registry;               /* "docker.io", "127.0.0.1:5000", "[::1]:5000"; owned */
        char *repository;             /* "library/alpine"; owned */
        char *tag;                    /* NULL when not given */
        char digest[KILN_DIGEST_MAX]; /* "" when not given */
} kiln_reference;

/* Parses a reference; *out is the caller's (kiln_reference_free). */
int kiln_reference_parse (kiln_reference **out, const char *s, kiln_error **err);

/* A copy; never fails (aborts on out-of-memory). */
kiln_reference *kiln_reference_dup (const kiln_reference *ref);

/* The same repository with another tag (or, with tag NULL, none) and
 * another digest ("" or NULL: none).  Tag is not re-validated: callers
 * pass tags they have checked with kiln_reference_tag_valid. */
kiln_reference *kiln_reference_with (const kiln_reference *ref, const char *tag,
                                     const char *digest);

void kiln_reference_free (kiln_reference *ref);

static inline void
cleanup_referencep (void *p)
{
        kiln_reference_free (*(kiln_reference **) p);
}
#define cleanup_reference __attribute__ ((cleanup (cleanup_referencep)))

/* "registry/repository[:tag][@digest]" in full (Docker Hub names keep
 * "docker.io/library/"); caller frees. */
char *kiln_reference_format (const kiln_reference *ref);

/* "registry/repository"; caller frees. */
char *kiln_reference_name (const kiln_reference *ref);

/* What to ask the registry for: the digest when given, else the tag, else
 * "latest".  Borrowed. */
const char *kiln_reference_identifier (const kiln_reference *ref);

/* The host[:port] to connect to: "registry-1.docker.io" for Docker Hub,
 * the registry otherwise.  Static or borrowed. */
const char *kiln_reference_api_host (const kiln_reference *ref);

bool kiln_reference_tag_valid (const char *tag);
bool kiln_reference_repository_valid (const char *repository);

/* True when host[:port] names the local machine: "localhost", an address
 * in 127.0.0.0/8, or [::1].  Such registries may be spoken to over plain
 * HTTP without being marked insecure. */
bool kiln_registry_host_is_loopback (const char *host);

/* Normalises a registry key as docker's config.json writes it: strips
 * "http://"/"https://" and any path, and maps Docker Hub's names
 * (docker.io, index.docker.io, registry-1.docker.io) to
 * KILN_DOCKER_HUB_AUTH_KEY.  Caller frees. */
char *kiln_registry_auth_key (const char *key);

#endif
