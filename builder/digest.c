/* kiln: content digests, base64 and random bytes.  The only file that calls
 * OpenSSL, so a change of crypto library touches nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"

/* Large reads keep the per-call overhead out of the hashing loop. */
#define READ_CHUNK ((size_t) 1 << 20)

struct kiln_hasher {
        EVP_MD_CTX *ctx;
        kiln_digest_alg alg;
        uint64_t count;
        bool finished;
};

static const struct {
        const char *name;
        size_t hex_len;
} algs[] = {
        [KILN_DIGEST_SHA256] = { "sha256", 64 },
        [KILN_DIGEST_SHA512] = { "sha512", 128 },
};

static const EVP_MD *
evp_md (kiln_digest_alg alg)
{
        return alg == KILN_DIGEST_SHA512 ? EVP_sha512 () : EVP_sha256 ();
}

kiln_hasher *
kiln_hasher_new (kiln_digest_alg alg)
{
        kiln_hasher *h = kiln_calloc (1, sizeof (*h));

        if ((unsigned) alg >= KILN_N_ELEMENTS (algs))
                abort ();
        h->alg = alg;
        h->ctx = EVP_MD_CTX_new ();
        if (h->ctx == NULL || EVP_DigestInit_ex (h->ctx, evp_md (alg), NULL) != 1)
                abort ();
        return h;
}

void
kiln_hasher_update (kiln_hasher *h, const void *data, size_t len)
{
        if (len == 0)
                return;
        if (h->finished || EVP_DigestUpdate (h->ctx, data, len) != 1)
                abort ();
        h->count += len;
}

static void
hex_encode (char *out, const unsigned char *in, size_t len)
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 0xf];
        }
        out[2 * len] = '\0';
}

void
kiln_hasher_final (kiln_hasher *h, char out[KILN_DIGEST_MAX])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        size_t n;

        if (h->finished || EVP_DigestFinal_ex (h->ctx, md, &md_len) != 1)
                abort ();
        h->finished = true;
        n = strlen (algs[h->alg].name);
        memcpy (out, algs[h->alg].name, n);
        out[n] = ':';
        hex_encode (out + n + 1, md, md_len);
}

uint64_t
kiln_hasher_count (const kiln_hasher *h)
{
        return h->count;
}

void
kiln_hasher_free (kiln_hasher *h)
{
        if (h == NULL)
                return;
        EVP_MD_CTX_free (h->ctx);
        free (h);
}

void
kiln_digest_bytes (char out[KILN_DIGEST_MAX], const void *data, size_t len)
{
        cleanup_hasher kiln_hasher *h = kiln_hasher_new (KILN_DIGEST_SHA256);

        kiln_hasher_update (h, data, len);
        kiln_hasher_final (h, out);
}

int
kiln_digest_fd (char out[KILN_DIGEST_MAX], kiln_digest_alg alg, int fd, uint64_t *size,
                kiln_error **err)
{
        cleanup_hasher kiln_hasher *h = kiln_hasher_new (alg);
        cleanup_free unsigned char *buf = kiln_calloc (1, READ_CHUNK);

        for (;;) {
                ssize_t n = read (fd, buf, READ_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kiln_error_make (err, errno, "read");
                if (n == 0)
                        break;
                kiln_hasher_update (h, buf, (size_t) n);
        }
        if (size)
                *size = kiln_hasher_count (h);
        kiln_hasher_final (h, out);
        return 0;
}

int
kiln_digest_file (char out[KILN_DIGEST_MAX], kiln_digest_alg alg, const char *path, uint64_t *size,
                  kiln_error **err)
{
        cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return kiln_error_make (err, errno, "open `%s`", path);
        if (kiln_digest_fd (out, alg, fd, size, err) < 0)
                return kiln_error_wrap (err, "`%s`", path);
        return 0;
}

static bool
is_lower_hex (const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

int
kiln_digest_parse (const char *s, kiln_digest_alg *alg, const char **hex, kiln_error **err)
{
        const char *colon;

        if (s == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "missing digest");
        colon = strchr (s, ':');
        if (colon == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "invalid digest `%s`: expected algorithm:hex", s);
        for (size_t i = 0; i < KILN_N_ELEMENTS (algs); i++) {
                size_t n = strlen (algs[i].name);
                const char *h = colon + 1;

                if ((size_t) (colon - s) != n || memcmp (s, algs[i].name, n) != 0)
                        continue;
                if (strlen (h) != algs[i].hex_len || !is_lower_hex (h, algs[i].hex_len))
                        return kiln_error_makec (
                            err, KILN_E_INVALID, 0,
                            "invalid digest `%s`: %s needs %zu lower-case hex digits", s,
                            algs[i].name, algs[i].hex_len);
                if (alg)
                        *alg = (kiln_digest_alg) i;
                if (hex)
                        *hex = h;
                return 0;
        }
        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                 "invalid digest `%s`: unsupported algorithm (sha256, sha512)", s);
}

bool
kiln_digest_valid (const char *s)
{
        return kiln_digest_parse (s, NULL, NULL, NULL) == 0;
}

bool
kiln_digest_equal (const char *a, const char *b)
{
        size_t la = strlen (a), lb = strlen (b);

        /* The lengths of digests are public (they follow from the
         * algorithm); only the content must not leak through timing. */
        if (la != lb)
                return false;
        return CRYPTO_memcmp (a, b, la) == 0;
}

bool
kiln_const_time_eq (const void *a, const void *b, size_t len)
{
        return CRYPTO_memcmp (a, b, len) == 0;
}

const char *
kiln_digest_alg_name (kiln_digest_alg alg)
{
        if ((unsigned) alg >= KILN_N_ELEMENTS (algs))
                return "unknown";
        return algs[alg].name;
}

const char *
kiln_digest_hex (const char *digest)
{
        const char *colon = strchr (digest, ':');

        return colon ? colon + 1 : digest;
}

static int
openssl_error (kiln_error **err, const char *what)
{
        char msg[256];
        unsigned long e = ERR_get_error ();

        ERR_clear_error ();
        if (e == 0)
                return kiln_error_make (err, 0, "%s failed", what);
        ERR_error_string_n (e, msg, sizeof (msg));
        return kiln_error_make (err, 0, "%s: %s", what, msg);
}

int
kiln_random_bytes (void *buf, size_t len, kiln_error **err)
{
        unsigned char *p = buf;

        /* RAND_bytes takes an int; feed large requests in slices. */
        while (len > 0) {
                int n = len > (1 << 20) ? (1 << 20) : (int) len;
                if (RAND_bytes (p, n) != 1)
                        return openssl_error (err, "random bytes");
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

char *
kiln_base64_encode (const void *data, size_t len)
{
        const unsigned char *in = data;
        size_t groups = len / 3 + (len % 3 != 0);
        char *out;
        size_t o = 0;

        if (groups > (SIZE_MAX - 1) / 4)
                abort ();
        out = kiln_calloc (groups * 4 + 1, 1);
        /* EVP_EncodeBlock takes an int length; encode in whole groups. */
        while (len > 0) {
                size_t n = len > (size_t) 3 << 20 ? (size_t) 3 << 20 : len;
                o += (size_t) EVP_EncodeBlock ((unsigned char *) out + o, in, (int) n);
                in += n;
                len -= n;
        }
        out[o] = '\0';
        return out;
}

static int
b64_value (unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* OpenSSL's EVP_DecodeBlock neither accepts missing padding nor reports the
 * true length, so decoding is done here, strictly. */
int
kiln_base64_decode (unsigned char **out, size_t *out_len, const char *in, size_t in_len,
                    kiln_error **err)
{
        cleanup_free unsigned char *buf = NULL;
        uint32_t acc = 0;
        size_t bits = 0, o = 0, pad = 0;

        buf = kiln_calloc (in_len / 4 * 3 + 4, 1);
        for (size_t i = 0; i < in_len; i++) {
                unsigned char c = (unsigned char) in[i];
                int v;

                if (c == '=') {
                        pad++;
                        continue;
                }
                v = b64_value (c);
                if (v < 0 || pad > 0)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "invalid base64: unexpected byte at offset %zu",
                                                 i);
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        buf[o++] = (unsigned char) (acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        /* 6 leftover bits cannot encode a byte; padding must complete the
         * last group. */
        if (bits >= 6 || pad > 2 || (pad > 0 && (in_len % 4) != 0))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "invalid base64: bad length");
        buf[o] = '\0';
        *out_len = o;
        *out = steal_pointer (&buf);
        return 0;
}

const char *
kiln_digest_library_version (void)
{
        return OpenSSL_version (OPENSSL_VERSION);
}
