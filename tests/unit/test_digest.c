/* Unit tests: digests, digest strings, base64 and random bytes. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/digest.h"
#include "unit.h"

#define SHA256_EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA512_ABC                                                                                 \
        "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"                  \
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
#define OCI_EMPTY_BLOB "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

static void
test_known_vectors (void)
{
        char d[KILN_DIGEST_MAX];

        kiln_digest_bytes (d, "", 0);
        CHECK_STR (d, SHA256_EMPTY);
        kiln_digest_bytes (d, "abc", 3);
        CHECK_STR (d, SHA256_ABC);
        kiln_digest_bytes (d, "{}", 2);
        CHECK_STR (d, OCI_EMPTY_BLOB);

        cleanup_hasher kiln_hasher *h = kiln_hasher_new (KILN_DIGEST_SHA512);
        kiln_hasher_update (h, "a", 1);
        kiln_hasher_update (h, "", 0);
        kiln_hasher_update (h, "bc", 2);
        CHECK (kiln_hasher_count (h) == 3);
        kiln_hasher_final (h, d);
        CHECK_STR (d, SHA512_ABC);
}

static void
test_streaming_equals_oneshot (void)
{
        static unsigned char data[100000];
        char one[KILN_DIGEST_MAX], streamed[KILN_DIGEST_MAX];
        cleanup_hasher kiln_hasher *h = kiln_hasher_new (KILN_DIGEST_SHA256);

        for (size_t i = 0; i < sizeof (data); i++)
                data[i] = (unsigned char) (i * 31 + 7);
        kiln_digest_bytes (one, data, sizeof (data));
        for (size_t off = 0, step = 1; off < sizeof (data); off += step, step = step * 3 + 1) {
                size_t n = step < sizeof (data) - off ? step : sizeof (data) - off;
                kiln_hasher_update (h, data + off, n);
        }
        kiln_hasher_final (h, streamed);
        CHECK_STR (one, streamed);
}

static void
test_digest_file (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *dir = NULL;
        cleanup_free char *path = NULL;
        char d[KILN_DIGEST_MAX];
        uint64_t size = 0;

        CHECK_OK (kiln_mkdtemp (&dir, "test-digest", &err));
        if (dir == NULL)
                return;
        path = kiln_strdup_printf ("%s/blob", dir);
        CHECK_OK (kiln_write_file (path, "abc", 3, 0644, &err));
        CHECK_OK (kiln_digest_file (d, KILN_DIGEST_SHA256, path, &size, &err));
        CHECK_STR (d, SHA256_ABC);
        CHECK (size == 3);
        CHECK_OK (kiln_digest_file (d, KILN_DIGEST_SHA512, path, NULL, &err));
        CHECK_STR (d, SHA512_ABC);

        kiln_error *e = NULL;
        cleanup_free char *missing = kiln_strdup_printf ("%s/missing", dir);
        CHECK (kiln_digest_file (d, KILN_DIGEST_SHA256, missing, NULL, &e) == -1);
        CHECK (e && e->code == KILN_E_NOT_FOUND);
        CHECK (e && strstr (e->msg, "missing") != NULL);
        kiln_error_free (e);
        CHECK_OK (kiln_rm_rf (dir, &err));
}

static void
test_parse_valid (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_digest_alg alg = KILN_DIGEST_SHA512;
        const char *hex = NULL;

        CHECK_OK (kiln_digest_parse (SHA256_ABC, &alg, &hex, &err));
        CHECK (alg == KILN_DIGEST_SHA256);
        CHECK (hex && strcmp (hex, &SHA256_ABC[7]) == 0);
        CHECK_OK (kiln_digest_parse (SHA512_ABC, &alg, NULL, &err));
        CHECK (alg == KILN_DIGEST_SHA512);
        CHECK (kiln_digest_valid (OCI_EMPTY_BLOB));
        CHECK_STR (kiln_digest_hex (SHA256_ABC), &SHA256_ABC[7]);
        CHECK_STR (kiln_digest_alg_name (KILN_DIGEST_SHA256), "sha256");
        CHECK_STR (kiln_digest_alg_name (KILN_DIGEST_SHA512), "sha512");
}

static void
check_invalid (const char *s)
{
        kiln_error *err = NULL;

        CHECK (kiln_digest_parse (s, NULL, NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        if (err && s[0] != '\0' && strstr (err->msg, s) == NULL) {
                fprintf (stderr, "  error does not quote `%s`: %s\n", s, err->msg);
                CHECK (0);
        }
        CHECK (!kiln_digest_valid (s));
        kiln_error_free (err);
}

static void
test_parse_invalid (void)
{
        check_invalid ("");
        check_invalid ("sha256");
        check_invalid ("sha256:");
        /* Upper case */
        check_invalid ("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
        /* Too short and too long */
        check_invalid ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a");
        check_invalid ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0");
        /* A sha256 length under the sha512 name */
        check_invalid ("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        check_invalid ("md5:900150983cd24fb0d6963f7d28e17f72");
        check_invalid ("SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        check_invalid ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        check_invalid ("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a-");
        check_invalid (":ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

        kiln_error *err = NULL;
        CHECK (kiln_digest_parse (NULL, NULL, NULL, &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        kiln_error_free (err);
}

static void
test_equal (void)
{
        CHECK (kiln_digest_equal (SHA256_ABC, SHA256_ABC));
        CHECK (!kiln_digest_equal (SHA256_ABC, SHA256_EMPTY));
        CHECK (!kiln_digest_equal (SHA256_ABC, SHA512_ABC));
        CHECK (!kiln_digest_equal ("", SHA256_ABC));
        CHECK (kiln_const_time_eq ("abcd", "abcd", 4));
        CHECK (!kiln_const_time_eq ("abcd", "abce", 4));
        CHECK (kiln_const_time_eq ("x", "y", 0));
}

static void
check_b64 (const char *plain, const char *encoded)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *e = kiln_base64_encode (plain, strlen (plain));
        cleanup_free unsigned char *d = NULL;
        size_t n = 0;

        CHECK_STR (e, encoded);
        CHECK_OK (kiln_base64_decode (&d, &n, encoded, strlen (encoded), &err));
        CHECK (d && n == strlen (plain) && memcmp (d, plain, n) == 0 && d[n] == '\0');
}

static void
check_b64_bad (const char *in)
{
        kiln_error *err = NULL;
        unsigned char *d = NULL;
        size_t n = 0;

        CHECK (kiln_base64_decode (&d, &n, in, strlen (in), &err) == -1);
        CHECK (err && err->code == KILN_E_INVALID);
        CHECK (d == NULL);
        kiln_error_free (err);
}

static void
test_base64 (void)
{
        /* RFC 4648 section 10 */
        check_b64 ("", "");
        check_b64 ("f", "Zg==");
        check_b64 ("fo", "Zm8=");
        check_b64 ("foo", "Zm9v");
        check_b64 ("foob", "Zm9vYg==");
        check_b64 ("fooba", "Zm9vYmE=");
        check_b64 ("foobar", "Zm9vYmFy");
        check_b64 ("user:pass", "dXNlcjpwYXNz");

        cleanup_error kiln_error *err = NULL;
        cleanup_free unsigned char *d = NULL;
        size_t n = 0;
        CHECK_OK (kiln_base64_decode (&d, &n, "Zm9vYg", 6, &err));
        CHECK (n == 4 && memcmp (d, "foob", 4) == 0);

        check_b64_bad ("Z");
        check_b64_bad ("Zm9v!");
        check_b64_bad ("Zg=");
        check_b64_bad ("Zg===");
        check_b64_bad ("Zg==Zg==");
        check_b64_bad ("Zm 9v");

        /* Binary round trip */
        unsigned char bin[256];
        for (size_t i = 0; i < sizeof (bin); i++)
                bin[i] = (unsigned char) i;
        cleanup_free char *e = kiln_base64_encode (bin, sizeof (bin));
        cleanup_free unsigned char *back = NULL;
        CHECK_OK (kiln_base64_decode (&back, &n, e, strlen (e), &err));
        CHECK (back && n == sizeof (bin) && memcmp (back, bin, n) == 0);
}

static void
test_random (void)
{
        cleanup_error kiln_error *err = NULL;
        unsigned char a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };

        CHECK_OK (kiln_random_bytes (a, sizeof (a), &err));
        CHECK_OK (kiln_random_bytes (b, sizeof (b), &err));
        CHECK (memcmp (a, b, sizeof (a)) != 0);
        CHECK (memcmp (a, zero, sizeof (a)) != 0);
        CHECK_OK (kiln_random_bytes (a, 0, &err));
}

static void
test_library_version (void)
{
        CHECK (strstr (kiln_digest_library_version (), "OpenSSL") != NULL);
}

int
main (void)
{
        RUN (test_known_vectors);
        RUN (test_streaming_equals_oneshot);
        RUN (test_digest_file);
        RUN (test_parse_valid);
        RUN (test_parse_invalid);
        RUN (test_equal);
        RUN (test_base64);
        RUN (test_random);
        RUN (test_library_version);
        UNIT_DONE ("digest");
}
