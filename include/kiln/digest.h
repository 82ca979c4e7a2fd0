/* kiln: content digests (OpenSSL EVP; the only module that calls OpenSSL).
 *
 * A digest is handled as its string form "algorithm:hex" in a fixed buffer
 * of KILN_DIGEST_MAX bytes.  sha256 is produced; sha256 and sha512 are read. */
#ifndef KILN_DIGEST_H
#define KILN_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* "sha512:" + 128 hex + NUL */
#define KILN_DIGEST_MAX 136

typedef enum kiln_digest_alg {
        KILN_DIGEST_SHA256 = 0,
        KILN_DIGEST_SHA512,
} kiln_digest_alg;

typedef struct kiln_hasher kiln_hasher;

/* A streaming hasher.  Aborts on out-of-memory.  Free with kiln_hasher_free. */
kiln_hasher *kiln_hasher_new (kiln_digest_alg alg);
void kiln_hasher_update (kiln_hasher *h, const void *data, size_t len);
/* Writes "alg:hex" into out; the hasher may not be updated afterwards. */
void kiln_hasher_final (kiln_hasher *h, char out[KILN_DIGEST_MAX]);
/* Bytes fed so far. */
uint64_t kiln_hasher_count (const kiln_hasher *h);
void kiln_hasher_free (kiln_hasher *h);

static inline void
cleanup_hasherp (void *p)
{
        kiln_hasher_free (*(kiln_hasher **) p);
}
#define cleanup_hasher __attribute__ ((cleanup (cleanup_hasherp)))

/* sha256 of a buffer. */
void kiln_digest_bytes (char out[KILN_DIGEST_MAX], const void *data, size_t len);

/* sha256 (or alg) of everything readable from fd; *size gets the byte count
 * when size is not NULL. */
int kiln_digest_fd (char out[KILN_DIGEST_MAX], kiln_digest_alg alg, int fd, uint64_t *size,
                    kiln_error **err);

/* sha256 (or alg) of a file. */
int kiln_digest_file (char out[KILN_DIGEST_MAX], kiln_digest_alg alg, const char *path,
                      uint64_t *size, kiln_error **err);

/* Checks "algorithm:encoded": sha256 with 64 and sha512 with 128 lower-case
 * hex digits.  On success *alg and *hex (pointing into s) are set when not
 * NULL.  Errors are KILN_E_INVALID and quote the digest. */
int kiln_digest_parse (const char *s, kiln_digest_alg *alg, const char **hex, kiln_error **err);

/* True when s is a valid digest. */
bool kiln_digest_valid (const char *s);

/* Compares two digest strings in time independent of where they differ. */
bool kiln_digest_equal (const char *a, const char *b);

/* Compares two byte strings of equal length in constant time. */
bool kiln_const_time_eq (const void *a, const void *b, size_t len);

/* "sha256" or "sha512". */
const char *kiln_digest_alg_name (kiln_digest_alg alg);

/* The hex part of a valid digest string (after the colon). */
const char *kiln_digest_hex (const char *digest);

/* Random bytes from the system's CSPRNG. */
int kiln_random_bytes (void *buf, size_t len, kiln_error **err);

/* base64 encode (no newlines); caller frees. */
char *kiln_base64_encode (const void *data, size_t len);

/* base64 decode (standard alphabet, padding optional); caller frees *out,
 * which is NUL-terminated.  Returns -1 with KILN_E_INVALID on bad input. */
int kiln_base64_decode (unsigned char **out, size_t *out_len, const char *in, size_t in_len,
                        kiln_error **err);

/* The OpenSSL version in use ("OpenSSL 3.0.x ..."); static. */
const char *kiln_digest_library_version (void);

#endif
