/* Unit tests: writing layers (reproducible tar, gzip, zstd) and applying
 * them (round trip, whiteouts).  Tar contents are read back with Python's
 * tarfile (tests/fixtures/tar_list.py); gzip and zstd output is checked
 * with the gzip and zstd tools. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "unit.h"

static char *tmp;

static char *
path_in (const char *rel)
{
        return kiln_strdup_printf ("%s/%s", tmp, rel);
}

static void
put (const char *rel, const char *content, mode_t mode)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *p = path_in (rel);
        cleanup_free char *parent = kiln_strdup (p);

        *strrchr (parent, '/') = '\0';
        CHECK_OK (kiln_mkdir_p (parent, 0755, &err));
        CHECK_OK (kiln_write_file (p, content, strlen (content), 0644, &err));
        CHECK (chmod (p, mode) == 0);
}

static void
dir (const char *rel, mode_t mode)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *p = path_in (rel);

        CHECK_OK (kiln_mkdir_p (p, 0755, &err));
        CHECK (chmod (p, mode) == 0);
}

static bool
exists (const char *rel)
{
        cleanup_free char *p = path_in (rel);
        struct stat st;

        return lstat (p, &st) == 0;
}

/* The output of a shell command; NULL if it fails. */
static char *sh (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static char *
sh (const char *fmt, ...)
{
        cleanup_free char *cmd = NULL;
        cleanup_buf kiln_buf out = KILN_BUF_INIT;
        char chunk[4096];
        va_list ap;
        FILE *f;
        size_t n;

        va_start (ap, fmt);
        if (vasprintf (&cmd, fmt, ap) < 0)
                abort ();
        va_end (ap);
        f = popen (cmd, "r");
        if (f == NULL)
                return NULL;
        while ((n = fread (chunk, 1, sizeof (chunk), f)) > 0)
                kiln_buf_append (&out, chunk, n, NULL);
        if (pclose (f) != 0) {
                fprintf (stderr, "  command failed: %s\n", cmd);
                return NULL;
        }
        return kiln_buf_steal (&out, NULL);
}

static char *
list_layer (const char *layer)
{
        return sh ("python3 tests/fixtures/tar_list.py '%s'", layer);
}

static void
opts_fixed (kiln_layer_opts *o, kiln_compression c)
{
        kiln_layer_opts_init (o);
        o->compression = c;
        o->mtime = 1234;
}

static int
write_dir (kiln_layer_info *info, const char *src_rel, const char *out_rel,
           const kiln_layer_opts *o, kiln_error **err)
{
        cleanup_free char *src = path_in (src_rel);
        cleanup_free char *out = path_in (out_rel);

        return kiln_layer_write_dir (info, src, "", out, o, err);
}

static void
make_tree (const char *base)
{
        char d[101], e[101], f[101], n[121];
        struct {
                const char *fmt;
                const char *content; /* NULL: a directory */
                mode_t mode;
        } items[] = {
                { "%s", NULL, 0755 },        { "%s/a", NULL, 0755 },
                { "%s/a/x", "x\n", 0755 },   { "%s/a/setuid", "s\n", 04755 },
                { "%s/b.txt", "b\n", 0644 }, { "%s/sticky", NULL, 01777 },
                { "%s/empty", NULL, 0700 },  { "%s/%s", "long\n", 0600 },
                { "%s/%s/%s", NULL, 0755 },  { "%s/%s/%s/%s", "deep\n", 0644 },
        };

        memset (d, 'd', 100);
        memset (e, 'e', 100);
        memset (f, 'f', 100);
        memset (n, 'n', 120);
        d[100] = e[100] = f[100] = n[120] = '\0';
        for (size_t i = 0; i < KILN_N_ELEMENTS (items); i++) {
                cleanup_free char *p = NULL;

                if (i == 7)
                        p = kiln_strdup_printf (items[i].fmt, base, n);
                else if (i >= 8)
                        p = kiln_strdup_printf (items[i].fmt, base, d, e, f);
                else
                        p = kiln_strdup_printf (items[i].fmt, base);
                if (items[i].content)
                        put (p, items[i].content, items[i].mode);
                else
                        dir (p, items[i].mode);
        }
        {
                cleanup_free char *from = kiln_strdup_printf ("%s/%s/b.txt", tmp, base);
                cleanup_free char *to = kiln_strdup_printf ("%s/%s/a/hard", tmp, base);
                cleanup_free char *sym = kiln_strdup_printf ("%s/%s/link", tmp, base);
                CHECK (link (from, to) == 0);
                CHECK (symlink ("a/x", sym) == 0);
        }
}

static const char expected_listing[] = "a d 755 0 0 - - 1234 0 - -\n"
                                       "a/hard f 644 0 0 - - 1234 2 - -\n"
                                       "a/setuid f 4755 0 0 - - 1234 2 - -\n"
                                       "a/x f 755 0 0 - - 1234 2 - -\n"
                                       "b.txt h 644 0 0 - - 1234 0 a/hard -\n"
                                       "%s d 755 0 0 - - 1234 0 - path\n"
                                       "%s/%s d 755 0 0 - - 1234 0 - path\n"
                                       "%s/%s/%s f 644 0 0 - - 1234 5 - path\n"
                                       "empty d 700 0 0 - - 1234 0 - -\n"
                                       "link l 777 0 0 - - 1234 0 a/x -\n"
                                       "%s f 600 0 0 - - 1234 5 - path\n"
                                       "opt d 755 0 0 - - 1234 0 - -\n"
                                       "opt/extra d 755 0 0 - - 1234 0 - -\n"
                                       "opt/extra/tool h 644 0 0 - - 1234 0 a/hard -\n"
                                       "sticky d 1777 0 0 - - 1234 0 - -\n";

/* Sorted by full path, parents added, root-owned with empty names, fixed
 * mtime, modes kept, links, long names through pax only. */
static void
test_tar_listing (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *src = path_in ("listing");
        cleanup_free char *tool = path_in ("listing/b.txt");
        cleanup_free char *out = path_in ("listing.tar");
        cleanup_free char *listing = NULL;
        cleanup_free char *expected = NULL;
        kiln_layer_entry entries[] = { { "", src }, { "/opt/extra/tool", tool } };
        kiln_layer_opts o;
        kiln_layer_info info;
        char d[101], e[101], f[101], n[121];

        make_tree ("listing");
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (kiln_layer_write (&info, entries, 2, out, &o, &err));
        CHECK_STR (info.diff_id, info.digest);
        CHECK_STR (info.media_type, "application/vnd.oci.image.layer.v1.tar");
        CHECK (info.entries == 15);
        listing = list_layer (out);
        memset (d, 'd', 100);
        memset (e, 'e', 100);
        memset (f, 'f', 100);
        memset (n, 'n', 120);
        d[100] = e[100] = f[100] = n[120] = '\0';
        expected = kiln_strdup_printf (expected_listing, d, d, e, d, e, f, n);
        CHECK_STR (listing, expected);
}

static void
touch_all (const char *base, time_t when)
{
        free (sh ("find '%s/%s' -exec touch -h -d @%lld {} +", tmp, base, (long long) when));
}

/* The same tree made elsewhere, in another order, at another time, gives
 * the same bytes. */
static void
test_reproducible (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_layer_opts o;
        kiln_layer_info one, two, three;

        make_tree ("repro1");
        dir ("repro2", 0755);
        free (sh ("cd '%s' && cp -a repro1/. repro2/ && touch -d @99999 repro2", tmp));
        touch_all ("repro2", 424242);
        put ("repro2/zz-late", "late\n", 0644);
        put ("repro1/zz-late", "late\n", 0644);
        kiln_layer_opts_init (&o);
        o.mtime = 77;
        CHECK_OK (write_dir (&one, "repro1", "repro1.tar.gz", &o, &err));
        o.threads = 1;
        CHECK_OK (write_dir (&two, "repro2", "repro2.tar.gz", &o, &err));
        o.threads = 2;
        CHECK_OK (write_dir (&three, "repro2", "repro3.tar.gz", &o, &err));
        CHECK_STR (one.digest, two.digest);
        CHECK_STR (one.diff_id, two.diff_id);
        CHECK_STR (two.digest, three.digest);
        CHECK (one.size == two.size && one.tar_size == two.tar_size);
}

static void
test_source_date_epoch (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *listing = NULL;
        cleanup_free char *out = path_in ("sde.tar");
        kiln_error *e = NULL;
        kiln_layer_opts o;
        int64_t t = -1;

        dir ("sde/sub", 0755);
        put ("sde/sub/f", "f\n", 0644);
        kiln_layer_opts_init (&o);
        o.compression = KILN_COMPRESS_NONE;
        setenv ("SOURCE_DATE_EPOCH", "1700000000", 1);
        CHECK_OK (write_dir (NULL, "sde", "sde.tar", &o, &err));
        listing = list_layer (out);
        CHECK_STR (listing, "sub d 755 0 0 - - 1700000000 0 - -\n"
                            "sub/f f 644 0 0 - - 1700000000 2 - -\n");

        setenv ("SOURCE_DATE_EPOCH", "17x", 1);
        CHECK (write_dir (NULL, "sde", "sde.tar", &o, &e) == -1);
        CHECK (e && e->code == KILN_E_INVALID && strstr (e->msg, "SOURCE_DATE_EPOCH `17x`"));
        kiln_error_free (e);
        e = NULL;
        setenv ("SOURCE_DATE_EPOCH", "-5", 1);
        CHECK (kiln_source_date_epoch (&t, &e) == -1);
        kiln_error_free (e);

        unsetenv ("SOURCE_DATE_EPOCH");
        CHECK_OK (kiln_source_date_epoch (&t, &err));
        CHECK (t == KILN_DEFAULT_EPOCH);
        setenv ("SOURCE_DATE_EPOCH", "", 1);
        CHECK_OK (kiln_source_date_epoch (&t, &err));
        CHECK (t == KILN_DEFAULT_EPOCH);
        unsetenv ("SOURCE_DATE_EPOCH");
}

static void
test_fifo_refused (void)
{
        cleanup_free char *fifo = path_in ("fifo/pipe");
        cleanup_free char *out = path_in ("fifo.tar");
        kiln_error *err = NULL;
        kiln_layer_opts o;

        dir ("fifo", 0755);
        CHECK (mkfifo (fifo, 0644) == 0);
        opts_fixed (&o, KILN_COMPRESS_GZIP);
        CHECK (write_dir (NULL, "fifo", "fifo.tar", &o, &err) == -1);
        CHECK (err && err->code == KILN_E_UNSUPPORTED);
        CHECK (err && strstr (err->msg, fifo) && strstr (err->msg, "fifo"));
        CHECK (err && strchr (err->msg, '\n') == NULL);
        CHECK (access (out, F_OK) != 0);
        kiln_error_free (err);
}

static void
test_socket_skipped (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *sock = path_in ("sock/s");
        cleanup_free char *out = path_in ("sock.tar");
        cleanup_free char *listing = NULL;
        cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        kiln_layer_opts o;

        dir ("sock", 0755);
        put ("sock/file", "x", 0644);
        kiln_strlcpy (addr.sun_path, sock, sizeof (addr.sun_path));
        CHECK (bind (fd, (struct sockaddr *) &addr, sizeof (addr)) == 0);
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (write_dir (NULL, "sock", "sock.tar", &o, &err));
        listing = list_layer (out);
        CHECK_STR (listing, "file f 644 0 0 - - 1234 1 - -\n");
}

/* A few MiB of text-like data: several gzip blocks, compressible. */
static void
make_big_tree (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        static const char *words[] = { "layer ", "image ", "kiln ",  "tar ",   "digest\n",
                                       "gzip ",  "zstd ",  "block ", "index ", "0123 " };
        uint32_t x = 12345;

        dir ("big", 0755);
        for (int f = 0; f < 3; f++) {
                cleanup_free char *p = kiln_strdup_printf ("%s/big/file%d", tmp, f);
                kiln_buf_reset (&b);
                while (b.len < ((size_t) 1 << 20) + (size_t) f * 77777) {
                        x = x * 1103515245 + 12345;
                        kiln_buf_puts (&b, words[(x >> 16) % 10], &err);
                }
                CHECK_OK (kiln_write_file (p, b.data, b.len, 0644, &err));
        }
}

static void
test_gzip_threads_identical (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *sum = NULL;
        cleanup_free char *gz6 = NULL;
        cleanup_free char *out1 = path_in ("big-1.tar.gz");
        cleanup_free char *tar = path_in ("big.tar");
        kiln_layer_info info[4], plain;
        int threads[4] = { 1, 2, 3, 8 };
        kiln_layer_opts o;
        long ref;

        make_big_tree ();
        opts_fixed (&o, KILN_COMPRESS_GZIP);
        for (int i = 0; i < 4; i++) {
                cleanup_free char *name = kiln_strdup_printf ("big-%d.tar.gz", threads[i]);
                o.threads = threads[i];
                CHECK_OK (write_dir (&info[i], "big", name, &o, &err));
                CHECK_STR (info[i].digest, info[0].digest);
                CHECK_STR (info[i].diff_id, info[0].diff_id);
        }
        CHECK_STR (info[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
        free (sh ("gzip -t '%s'", out1));
        sum = sh ("gzip -dc '%s' | sha256sum | cut -c1-64", out1);
        CHECK (sum && strncmp (sum, info[0].diff_id + 7, 64) == 0);
        /* Size close to gzip -6 of the same tar. */
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (write_dir (&plain, "big", "big.tar", &o, &err));
        CHECK_STR (plain.diff_id, info[0].diff_id);
        CHECK (plain.tar_size == info[0].tar_size);
        gz6 = sh ("gzip -6 -c '%s' | wc -c", tar);
        ref = gz6 ? strtol (gz6, NULL, 10) : 0;
        CHECK (ref > 0 && (double) info[0].size < (double) ref * 1.01);
        /* The header is fixed: no name, mtime 0, OS 255. */
        {
                cleanup_free char *head = sh ("head -c 10 '%s' | od -An -tx1", out1);
                CHECK_STR (head, " 1f 8b 08 00 00 00 00 00 00 ff\n");
        }
}

static void
test_gzip_edge_sizes (void)
{
        cleanup_error kiln_error *err = NULL;
        kiln_layer_opts o;
        kiln_layer_info a, b;

        /* An empty layer, and one exactly at a block boundary. */
        dir ("edge-empty", 0755);
        opts_fixed (&o, KILN_COMPRESS_GZIP);
        o.threads = 1;
        CHECK_OK (write_dir (&a, "edge-empty", "edge-empty.tar.gz", &o, &err));
        o.threads = 4;
        CHECK_OK (write_dir (&b, "edge-empty", "edge-empty4.tar.gz", &o, &err));
        CHECK_STR (a.digest, b.digest);
        CHECK (a.tar_size == 1024);
        {
                cleanup_free char *p = path_in ("edge-empty.tar.gz");
                cleanup_free char *sum = sh ("gzip -dc '%s' | sha256sum | cut -c1-64", p);
                CHECK (sum && strncmp (sum, a.diff_id + 7, 64) == 0);
        }
        /* 512 header + 130048 data + 1024 end = 131584; 131072 - 512 - 1024
         * of data makes the tar exactly one 128 KiB block. */
        {
                cleanup_free char *data = kiln_calloc (1, 131072 - 1536);
                cleanup_free char *p = path_in ("edge-block/f");
                cleanup_free char *gz = path_in ("edge-block.tar.gz");
                cleanup_free char *sum = NULL;

                dir ("edge-block", 0755);
                CHECK_OK (kiln_write_file (p, data, 131072 - 1536, 0644, &err));
                o.threads = 2;
                CHECK_OK (write_dir (&a, "edge-block", "edge-block.tar.gz", &o, &err));
                CHECK (a.tar_size == 131072);
                sum = sh ("gzip -dc '%s' | sha256sum | cut -c1-64", gz);
                CHECK (sum && strncmp (sum, a.diff_id + 7, 64) == 0);
        }
}

static bool
have_tool (const char *tool)
{
        cleanup_free char *out = sh ("command -v %s || true", tool);

        return out && out[0] != '\0';
}

static void
test_zstd_threads_identical (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = path_in ("bigz-1.tar.zst");
        kiln_layer_opts o;
        kiln_layer_info a, b;
        kiln_compression c = KILN_COMPRESS_NONE;

        opts_fixed (&o, KILN_COMPRESS_ZSTD);
        o.threads = 1;
        CHECK_OK (write_dir (&a, "big", "bigz-1.tar.zst", &o, &err));
        o.threads = 3;
        CHECK_OK (write_dir (&b, "big", "bigz-3.tar.zst", &o, &err));
        CHECK_STR (a.digest, b.digest);
        CHECK_STR (a.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
        CHECK_OK (kiln_layer_detect (&c, out, &err));
        CHECK (c == KILN_COMPRESS_ZSTD);
        if (have_tool ("zstd")) {
                cleanup_free char *sum = sh ("zstd -dc '%s' | sha256sum | cut -c1-64", out);
                CHECK (sum && strncmp (sum, a.diff_id + 7, 64) == 0);
        } else {
                fprintf (stderr, "  zstd tool missing: zstd output not checked by zstd -d\n");
        }
}

/* write -> extract -> same tree, same diff_id. */
static void
test_roundtrip (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = path_in ("rt.tar.gz");
        cleanup_free char *root = path_in ("rt-root");
        cleanup_free char *diff = NULL;
        cleanup_free char *setuid = path_in ("rt-root/a/setuid");
        cleanup_free char *hard = path_in ("rt-root/a/hard");
        char extracted[KILN_DIGEST_MAX], again[KILN_DIGEST_MAX];
        kiln_compression c = KILN_COMPRESS_NONE;
        kiln_layer_opts o;
        kiln_layer_info info;
        struct stat st;

        make_tree ("rt-src");
        touch_all ("rt-src", 1234);
        opts_fixed (&o, KILN_COMPRESS_GZIP);
        CHECK_OK (write_dir (&info, "rt-src", "rt.tar.gz", &o, &err));
        dir ("rt-root", 0755);
        CHECK_OK (kiln_layer_extract (layer, root, NULL, extracted, &err));
        CHECK_STR (extracted, info.diff_id);
        CHECK_OK (kiln_layer_diff_id (again, layer, &err));
        CHECK_STR (again, info.diff_id);
        CHECK_OK (kiln_layer_detect (&c, layer, &err));
        CHECK (c == KILN_COMPRESS_GZIP);
        diff = sh ("cd '%s' && diff -r --no-dereference rt-src rt-root && echo same", tmp);
        CHECK_STR (diff, "same\n");
        CHECK (stat (setuid, &st) == 0 && (st.st_mode & 07777) == 04755);
        CHECK (st.st_mtime == 1234 && st.st_uid == 0);
        CHECK (stat (hard, &st) == 0 && st.st_nlink == 2);
        {
                cleanup_free char *modes = sh ("cd '%s' && (cd rt-src && find . -printf '%%p %%m "
                                               "%%T@ %%y\\n' | sort) > m1 && (cd rt-root && "
                                               "find . -mindepth 1 -printf '%%p %%m %%T@ %%y\\n' "
                                               "| sort) > m2 && grep -v '^\\. ' m1 | diff - m2 "
                                               "&& echo same",
                                               tmp);
                CHECK_STR (modes, "same\n");
        }
}

/* Non-ASCII names (UTF-8, as in Debian's ca-certificates) survive a round
 * trip in a program that never set a locale, and a reader of the tar
 * (Python's tarfile) sees the same names. */
static void
test_utf8_names (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = path_in ("u8.tar.gz");
        cleanup_free char *root = path_in ("u8-root");
        cleanup_free char *link = path_in ("u8-src/link-\xc5\x91");
        cleanup_free char *diff = NULL;
        cleanup_free char *listing = NULL;
        char extracted[KILN_DIGEST_MAX];
        kiln_layer_opts o;
        kiln_layer_info info;

        put ("u8-src/F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.crt", "cert\n", 0644);
        CHECK (symlink ("F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.crt", link) == 0);
        opts_fixed (&o, KILN_COMPRESS_GZIP);
        CHECK_OK (write_dir (&info, "u8-src", "u8.tar.gz", &o, &err));
        dir ("u8-root", 0755);
        CHECK_OK (kiln_layer_extract (layer, root, NULL, extracted, &err));
        CHECK_STR (extracted, info.diff_id);
        diff = sh ("cd '%s' && diff -r --no-dereference u8-src u8-root && echo same", tmp);
        CHECK_STR (diff, "same\n");
        listing = sh ("python3 -c 'import sys,tarfile; print(sorted(m.name for m in "
                      "tarfile.open(sys.argv[1])))' '%s'",
                      layer);
        CHECK_STR (listing, "['F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.crt', 'link-\xc5\x91']\n");
}

/* Whiteouts remove lower content; an opaque directory keeps only this
 * layer's entries, even ones that come before the marker. */
static void
test_whiteouts (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = path_in ("wh.tar");
        cleanup_free char *root = path_in ("wh-root");
        cleanup_free char *root2 = path_in ("wh-root2");
        kiln_extract_opts x;
        kiln_layer_opts o;

        dir ("wh-root/dir/sub", 0755);
        put ("wh-root/keep", "k", 0644);
        put ("wh-root/gone", "g", 0644);
        dir ("wh-root/gonedir/inner", 0755);
        put ("wh-root/dir/old", "o", 0644);
        put ("wh-root/dir/sub/old2", "o", 0644);
        put ("wh-root/other/x", "x", 0644);

        dir ("wh-src/dir/sub", 0755);
        put ("wh-src/.wh.gone", "", 0644);
        put ("wh-src/.wh.gonedir", "", 0644);
        put ("wh-src/.wh.missing", "", 0644);
        put ("wh-src/dir/+new", "n", 0644);
        put ("wh-src/dir/.wh..wh..opq", "", 0644);
        put ("wh-src/dir/sub/new2", "n", 0644);
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (write_dir (NULL, "wh-src", "wh.tar", &o, &err));
        CHECK_OK (kiln_layer_extract (layer, root, NULL, NULL, &err));
        CHECK (exists ("wh-root/keep"));
        CHECK (!exists ("wh-root/gone"));
        CHECK (!exists ("wh-root/gonedir"));
        CHECK (!exists ("wh-root/.wh.gone"));
        CHECK (!exists ("wh-root/.wh.missing"));
        CHECK (!exists ("wh-root/missing"));
        CHECK (exists ("wh-root/dir/+new"));
        CHECK (!exists ("wh-root/dir/old"));
        CHECK (!exists ("wh-root/dir/sub/old2"));
        CHECK (exists ("wh-root/dir/sub/new2"));
        CHECK (!exists ("wh-root/dir/.wh..wh..opq"));
        CHECK (exists ("wh-root/other/x"));

        dir ("wh-root2", 0755);
        kiln_extract_opts_init (&x);
        x.no_whiteouts = true;
        CHECK_OK (kiln_layer_extract (layer, root2, &x, NULL, &err));
        CHECK (exists ("wh-root2/.wh.gone"));
        CHECK (exists ("wh-root2/dir/.wh..wh..opq"));
}

/* Extraction replaces what is there: files by directories and back,
 * symlinks are replaced and never followed. */
static void
test_extract_replaces (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *layer = path_in ("rep.tar");
        cleanup_free char *root = path_in ("rep-root");
        cleanup_free char *data = NULL;
        cleanup_free char *victim = path_in ("rep-victim");
        cleanup_free char *link = path_in ("rep-root/f");
        kiln_layer_opts o;
        size_t len;
        struct stat st;

        put ("rep-victim", "victim", 0644);
        dir ("rep-root/d", 0755);
        put ("rep-root/d/inner", "i", 0644);
        CHECK (symlink (victim, link) == 0);
        dir ("rep-src/f", 0755);
        put ("rep-src/d", "now a file", 0600);
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (write_dir (NULL, "rep-src", "rep.tar", &o, &err));
        CHECK_OK (kiln_layer_extract (layer, root, NULL, NULL, &err));
        CHECK (lstat (link, &st) == 0 && S_ISDIR (st.st_mode));
        CHECK_OK (kiln_read_file (&data, &len, victim, 100, &err));
        CHECK_STR (data, "victim");
        free (data);
        data = path_in ("rep-root/d");
        CHECK (lstat (data, &st) == 0 && S_ISREG (st.st_mode) && (st.st_mode & 0777) == 0600);
}

static void
test_duplicates (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *a = path_in ("dup/a");
        cleanup_free char *b = path_in ("dup/b");
        cleanup_free char *tree = path_in ("dup/tree");
        cleanup_free char *out = path_in ("dup.tar");
        cleanup_free char *listing = NULL;
        kiln_layer_entry later_wins[] = { { "x", a }, { "x", b } };
        kiln_layer_entry conflict[] = { { "", tree }, { "sub", a } };
        kiln_layer_opts o;
        kiln_error *e = NULL;

        put ("dup/a", "a", 0644);
        put ("dup/b", "bb", 0600);
        dir ("dup/tree/sub", 0755);
        put ("dup/tree/sub/inner", "i", 0644);
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (kiln_layer_write (NULL, later_wins, 2, out, &o, &err));
        listing = list_layer (out);
        CHECK_STR (listing, "x f 600 0 0 - - 1234 2 - -\n");
        CHECK (kiln_layer_write (NULL, conflict, 2, out, &o, &e) == -1);
        CHECK (e && e->code == KILN_E_CONFLICT && strstr (e->msg, "`sub`"));
        kiln_error_free (e);
        e = NULL;
        {
                kiln_layer_entry bad[] = { { "../x", a } };
                CHECK (kiln_layer_write (NULL, bad, 1, out, &o, &e) == -1);
                CHECK (e && e->code == KILN_E_INVALID);
                kiln_error_free (e);
        }
}

/* Files over 8 GiB need a pax size header.  Reading 8 GiB of a sparse file
 * takes a while, so it runs only with KILN_SLOW_TESTS=1. */
static void
test_large_file (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *p = path_in ("large/f");
        cleanup_close int fd = -1;
        uint64_t size = ((uint64_t) 8 << 30) + 1;
        kiln_layer_entry e = { "", NULL };
        kiln_layer_opts o;
        kiln_layer_info info;
        cleanup_free char *src = path_in ("large");

        if (getenv ("KILN_SLOW_TESTS") == NULL || strcmp (getenv ("KILN_SLOW_TESTS"), "1") != 0)
                return;
        dir ("large", 0755);
        fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK (fd >= 0 && ftruncate (fd, (off_t) size) == 0);
        e.host_path = src;
        opts_fixed (&o, KILN_COMPRESS_NONE);
        CHECK_OK (kiln_layer_write (&info, &e, 1, "/dev/null", &o, &err));
        /* pax header + its record + ustar header + data padded + end */
        CHECK (info.tar_size == 512 + 512 + 512 + ((size + 511) / 512) * 512 + 1024);
        CHECK (info.entries == 1);
}

/* An owner override applies to its path only, whoever owns the file. */
static void
test_owners (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *src = path_in ("owners");
        cleanup_free char *out = path_in ("owners.tar");
        cleanup_free char *listing = NULL;
        const kiln_layer_owner owners[] = { { "home/app", 65532, 65533 } };
        kiln_layer_opts o;

        dir ("owners/home", 0755);
        dir ("owners/home/app", 0700);
        put ("owners/home/app/f", "f\n", 0644);
        opts_fixed (&o, KILN_COMPRESS_NONE);
        o.owners = owners;
        o.n_owners = 1;
        CHECK_OK (kiln_layer_write_dir (NULL, src, "", out, &o, &err));
        listing = list_layer (out);
        CHECK_STR (listing, "home d 755 0 0 - - 1234 0 - -\n"
                            "home/app d 700 65532 65533 - - 1234 0 - -\n"
                            "home/app/f f 644 0 0 - - 1234 2 - -\n");
}

static void
test_misc (void)
{
        const char *v = kiln_layer_library_version ();

        CHECK (strstr (v, "libarchive 3.") && strstr (v, " zlib ") && strstr (v, " zstd "));
        CHECK_STR (kiln_layer_media_type (KILN_COMPRESS_GZIP),
                   "application/vnd.oci.image.layer.v1.tar+gzip");
        CHECK_STR (kiln_layer_media_type (KILN_COMPRESS_NONE),
                   "application/vnd.oci.image.layer.v1.tar");
        CHECK_STR (kiln_layer_media_type (KILN_COMPRESS_ZSTD),
                   "application/vnd.oci.image.layer.v1.tar+zstd");
}

int
main (void)
{
        cleanup_error kiln_error *err = NULL;

        umask (022);
        if (kiln_mkdtemp (&tmp, "test-layer", &err) < 0) {
                fprintf (stderr, "%s\n", err->msg);
                return 1;
        }
        RUN (test_tar_listing);
        RUN (test_reproducible);
        RUN (test_source_date_epoch);
        RUN (test_fifo_refused);
        RUN (test_socket_skipped);
        RUN (test_gzip_threads_identical);
        RUN (test_gzip_edge_sizes);
        RUN (test_zstd_threads_identical);
        RUN (test_roundtrip);
        RUN (test_utf8_names);
        RUN (test_whiteouts);
        RUN (test_extract_replaces);
        RUN (test_duplicates);
        RUN (test_large_file);
        RUN (test_owners);
        RUN (test_misc);
        kiln_rm_rf (tmp, &err);
        free (tmp);
        UNIT_DONE ("layer");
}
