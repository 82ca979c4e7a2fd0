/* kiln: the static run image, made from nothing but text and the host's
 * CA certificates, for statically linked programs such as Go functions. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/runbase.h"

#define HOST_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

static const char passwd[] = "root:x:0:0:root:/root:/sbin/nologin\n"
                             "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
static const char group[] = "root:x:0:\n"
                            "nonroot:x:65532:\n";

/* Writes the tree of the base under dir. */
static int
make_tree (const char *dir, kiln_error **err)
{
        static const struct {
                const char *path;
                mode_t mode;
        } dirs[] = {
                { "etc", 0755 },  { "etc/ssl", 0755 }, { "etc/ssl/certs", 0755 },
                { "tmp", 01777 }, { "home", 0755 },    { "home/nonroot", 0700 },
                { "root", 0700 },
        };
        cleanup_free char *p = NULL;

        for (size_t i = 0; i < KILN_N_ELEMENTS (dirs); i++) {
                free (p);
                p = kiln_strdup_printf ("%s/%s", dir, dirs[i].path);
                if (kiln_mkdir_p (p, 0755, err) < 0)
                        return -1;
                /* chmod, not mkdir's mode: the umask must not change the image. */
                if (chmod (p, dirs[i].mode) < 0)
                        return kiln_error_make (err, errno, "chmod `%s`", p);
        }
        free (p);
        p = kiln_strdup_printf ("%s/etc/passwd", dir);
        if (kiln_write_file (p, passwd, strlen (passwd), 0644, err) < 0)
                return -1;
        free (p);
        p = kiln_strdup_printf ("%s/etc/group", dir);
        if (kiln_write_file (p, group, strlen (group), 0644, err) < 0)
                return -1;
        return 0;
}

/* The entries of the layer: the tree, and the host's CA bundle. */
static int
write_layer (kiln_layer_info *info, const char *tree, const char *out, kiln_error **err)
{
        kiln_layer_entry entries[2]
            = { { "", tree }, { "etc/ssl/certs/ca-certificates.crt", HOST_CA_FILE } };
        size_t n = 1;
        kiln_layer_opts opts;

        kiln_layer_opts_init (&opts);
        if (access (HOST_CA_FILE, R_OK) == 0)
                n = 2;
        else
                kiln_warn ("no CA certificates at %s: the static base will have none",
                           HOST_CA_FILE);
        return kiln_layer_write (info, entries, n, out, &opts, err);
}

static void
set_config (kiln_image_config *c, const char *diff_id, const char *created)
{
        char uid[32];

        free (c->created);
        c->created = kiln_strdup (created);
        c->has_config = true;
        snprintf (uid, sizeof uid, "%d:%d", KILN_NONROOT_UID, KILN_NONROOT_UID);
        c->user = kiln_strdup (uid);
        kiln_config_set_env (c, "PATH", "/usr/local/bin:/usr/bin:/bin");
        kiln_config_set_env (c, "SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt");
        kiln_kvs_set (&c->labels, "dev.kiln.run-image", KILN_STATIC_BASE);
        kiln_config_add_layer (c, diff_id, created,
                               "kiln static base: passwd, group, tmp, CA certificates", NULL);
}

static int
build_image (kiln_local_image *img, const kiln_platform *p, kiln_error **err)
{
        cleanup_free char *tree = kiln_strdup_printf ("%s/tree", img->tmp_dir);
        cleanup_free char *tmp = NULL;
        kiln_layer_info info;
        kiln_manifest *m;
        char created[32];
        int64_t epoch;

        img->layout_dir = kiln_strdup_printf ("%s/layout", img->tmp_dir);
        if (kiln_source_date_epoch (&epoch, err) < 0 || kiln_layout_init (img->layout_dir, err) < 0
            || make_tree (tree, err) < 0)
                return -1;
        tmp = kiln_layout_blob_tmp_path (img->layout_dir);
        if (write_layer (&info, tree, tmp, err) < 0
            || kiln_layout_put_blob_file (img->layout_dir, info.digest, tmp, true, err) < 0)
                return -1;
        kiln_time_rfc3339 (created, epoch);
        img->config = kiln_config_new (p->os, p->architecture);
        if (p->variant)
                img->config->variant = kiln_strdup (p->variant);
        set_config (img->config, info.diff_id, created);
        if (kiln_config_to_json (&img->config_raw, &img->config_len, img->config, err) < 0)
                return -1;

        m = kiln_calloc (1, sizeof (*m));
        img->manifest = m;
        m->schema_version = 2;
        m->media_type = kiln_strdup (KILN_MT_OCI_MANIFEST);
        m->config.media_type = kiln_strdup (KILN_MT_OCI_CONFIG);
        m->config.size = (int64_t) img->config_len;
        m->layers = kiln_calloc (1, sizeof (kiln_descriptor));
        m->n_layers = 1;
        m->layers[0].media_type = kiln_strdup (info.media_type);
        kiln_strlcpy (m->layers[0].digest, info.digest, sizeof m->layers[0].digest);
        m->layers[0].size = (int64_t) info.size;
        if (kiln_layout_put_blob_bytes (img->layout_dir, img->config_raw, img->config_len,
                                        m->config.digest, err)
                < 0
            || kiln_manifest_to_json (&img->manifest_raw, &img->manifest_len, m, err) < 0)
                return -1;
        return kiln_layout_put_blob_bytes (img->layout_dir, img->manifest_raw, img->manifest_len,
                                           img->manifest_digest, err);
}

int
kiln_static_base_create (kiln_local_image **out, const kiln_platform *platform, kiln_error **err)
{
        kiln_local_image *img = kiln_calloc (1, sizeof (*img));
        kiln_platform *host = platform ? NULL : kiln_platform_host ();
        int r;

        img->name = kiln_strdup (KILN_STATIC_BASE);
        r = kiln_mkdtemp (&img->tmp_dir, "static-base", err);
        if (r == 0)
                r = build_image (img, platform ? platform : host, err);
        kiln_platform_free (host);
        if (r < 0) {
                kiln_local_image_free (img);
                return kiln_error_wrap (err, "static base image");
        }
        *out = img;
        return 0;
}
