/* Unit tests: the image model (manifests, indexes, configs, platforms). */
#include <stdint.h>
#include <time.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/image.h"
#include "unit.h"

#define D_CFG "sha256:12cb64fe927b420341b14fc03da3daf69619762c7a92d8505612cdd0309c3347"
#define D_L0 "sha256:929172fae51e7c4fedc288349b430c1ca2ee1b35f6a9493f3ca7c83b44786791"
#define D_L1 "sha256:dffe8596427fc50e8f64654a609af134d45552f18bbecef90b31135a9e7acaa0"
#define D_L2 "sha256:d76354d8457898445bb69e0dc0dc95fb74cc3cf334f8c1859162a16ad0041f8d"
#define D_AMD64 "sha256:558b624e3a60d3e4a393272854dbbd35c6fea3f18ee692235dcbe31be8370700"
#define D_ARM64 "sha256:3a8d055c8fba3b6098ba85bd127558a309b1bf636dd89c353b4068268625c6a6"
#define D_ARMV7 "sha256:538d5a14b2c697db9add96bed6de034d245a94a5bd7a403a7959e79f34d2399d"
#define D_ARMV6 "sha256:1ec53d8a9704e419c92417352d314c1047c0665641a65e5faec0f587614e710e"
#define D_ARMV5 "sha256:1c5d4ea3211a35fe331c17f9e1a05fe20bea00a9923c09f305be58866c501100"
#define D_PPC "sha256:a04b94be43647685ea0ce730162a3a9f0c90e8173bc4a98990f5c18fa6eb62ea"
#define D_S390X "sha256:a451a93c6a7ef187da9024840dfb15b141066468ffa5745d7c552b4d48c05a4a"
#define D_I386 "sha256:e3b32d92903694321e8a1ec7a3a7dc5e2e99e6c49970018bad415df4abdf641e"
#define D_RISCV "sha256:f3bfa8ef7eb8867b18b00631f03bb4e1850326718c6823c2ba02b052614c455a"
#define D_SUBJ "sha256:e12e3d24bc08d052711daa489e746297af597599f2726d945c1d6309427b9394"
#define D_SHA512                                                                                   \
        "sha512:"                                                                                  \
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2" \
        "877eec2f63b931bd47417a81a538327af927da3e"

/* Sample documents are written with ' for " so they stay readable. */
static char *
J (const char *s)
{
        char *r = kiln_strdup (s);
        for (char *p = r; *p; p++)
                if (*p == '\'')
                        *p = '"';
        return r;
}

/* clang-format off */

/* A Docker Hub-style manifest list, as served for busybox. */
#define LIST_ENTRY(d, arch, variant)                                                       \
        "{'mediaType':'application/vnd.docker.distribution.manifest.v2+json',"             \
        "'digest':'" d "','size':528,"                                                     \
        "'platform':{'architecture':'" arch "','os':'linux'" variant "}}"

static const char busybox_list[] =
        "{\n"
        "  'manifests': [\n"
        "    " LIST_ENTRY (D_AMD64, "amd64", "") ",\n"
        "    " LIST_ENTRY (D_ARMV5, "arm", ",'variant':'v5'") ",\n"
        "    " LIST_ENTRY (D_ARMV6, "arm", ",'variant':'v6'") ",\n"
        "    " LIST_ENTRY (D_ARMV7, "arm", ",'variant':'v7'") ",\n"
        "    " LIST_ENTRY (D_ARM64, "arm64", ",'variant':'v8'") ",\n"
        "    " LIST_ENTRY (D_I386, "386", "") ",\n"
        "    " LIST_ENTRY (D_PPC, "ppc64le", "") ",\n"
        "    " LIST_ENTRY (D_RISCV, "riscv64", "") ",\n"
        "    " LIST_ENTRY (D_S390X, "s390x", "") "\n"
        "  ],\n"
        "  'mediaType': 'application/vnd.docker.distribution.manifest.list.v2+json',\n"
        "  'schemaVersion': 2\n"
        "}\n";

/* A Docker v2 schema 2 manifest, as `docker push` writes it. */
static const char docker_manifest[] =
        "{\n"
        "   'schemaVersion': 2,\n"
        "   'mediaType': 'application/vnd.docker.distribution.manifest.v2+json',\n"
        "   'config': {\n"
        "      'mediaType': 'application/vnd.docker.container.image.v1+json',\n"
        "      'size': 1457,\n"
        "      'digest': '" D_CFG "'\n"
        "   },\n"
        "   'layers': [\n"
        "      {\n"
        "         'mediaType': 'application/vnd.docker.image.rootfs.diff.tar.gzip',\n"
        "         'size': 2152262,\n"
        "         'digest': '" D_L0 "'\n"
        "      },\n"
        "      {\n"
        "         'mediaType': 'application/vnd.docker.image.rootfs.diff.tar.gzip',\n"
        "         'size': 32,\n"
        "         'digest': '" D_L1 "'\n"
        "      }\n"
        "   ]\n"
        "}";

/* An OCI artifact-style manifest with everything optional set. */
static const char oci_manifest[] =
        "{'schemaVersion':2,"
        "'mediaType':'application/vnd.oci.image.manifest.v1+json',"
        "'artifactType':'application/vnd.example.sbom.v1+json',"
        "'config':{'mediaType':'application/vnd.oci.empty.v1+json',"
        "  'digest':'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',"
        "  'size':2,'data':'e30='},"
        "'layers':["
        "  {'mediaType':'application/vnd.oci.image.layer.v1.tar+gzip',"
        "   'digest':'" D_L0 "','size':100,"
        "   'annotations':{'org.opencontainers.image.title':'app.tar.gz'}},"
        "  {'mediaType':'application/vnd.oci.image.layer.v1.tar+zstd',"
        "   'digest':'" D_SHA512 "','size':0,"
        "   'urls':['https://mirror.example.com/blob','https://cdn.example.com/blob']},"
        "  {'mediaType':'application/vnd.oci.image.layer.v1.tar',"
        "   'digest':'" D_L2 "','size':9007199254740993,"
        "   'urls':[]}],"
        "'subject':{'mediaType':'application/vnd.oci.image.manifest.v1+json','digest':'" D_SUBJ "',"
        "  'size':1234,'platform':{'architecture':'arm64','os':'linux','variant':'v8',"
        "  'os.version':'6.1','os.features':['a','b']}},"
        "'annotations':{'org.opencontainers.image.created':'2024-01-02T03:04:05Z',"
        "  'org.opencontainers.image.source':'https://github.com/example/app',"
        "  'z':'','a':'\u00e9t\u00e9'},"
        "'unknownTopLevel':{'nested':[1,2,{'x':null}]}"
        "}";

/* An image config with every field. */
static const char full_config[] =
        "{'created':'2024-05-06T07:08:09.123456789Z','author':'Jane <jane@example.com>',"
        "'architecture':'arm64','os':'linux','os.version':'5.15','os.features':['f1'],"
        "'variant':'v8',"
        "'config':{'User':'1000:1000',"
        "  'ExposedPorts':{'8080/tcp':{},'53/udp':{},'443/tcp':{}},"
        "  'Env':['PATH=/usr/local/bin:/usr/bin:/bin','LANG=C.UTF-8'],"
        "  'Entrypoint':['/bin/app','--serve'],'Cmd':[],"
        "  'Volumes':{'/data':{},'/cache':{}},'WorkingDir':'/srv',"
        "  'Labels':{'org.opencontainers.image.version':'1.2.3','maintainer':'jane'},"
        "  'StopSignal':'SIGTERM','ArgsEscaped':true,"
        "  'Memory':536870912,'MemorySwap':-1,'CpuShares':512,"
        "  'Healthcheck':{'Test':['CMD-SHELL','curl -f http://localhost/ || exit 1'],"
        "    'Interval':30000000000,'Timeout':5000000000,'StartPeriod':1000000000,'Retries':3},"
        "  'Shell':['/bin/bash','-c'],"
        "  'OnBuild':null,'Hostname':''},"
        "'rootfs':{'type':'layers','diff_ids':['" D_L0 "','" D_L1 "']},"
        "'history':["
        "  {'created':'2024-05-06T07:00:00Z','created_by':'/bin/sh -c #(nop) ADD file:abc in /',"
        "   'author':'base','comment':'base layer'},"
        "  {'created':'2024-05-06T07:00:01Z','created_by':'/bin/sh -c #(nop) ENV LANG=C.UTF-8',"
        "   'empty_layer':true},"
        "  {'created':'2024-05-06T07:08:09Z','created_by':'kiln','comment':'app'}],"
        "'container':'ignored','docker_version':'24.0.7'"
        "}";

/* clang-format on */

static kiln_manifest *
parse_manifest (const char *single_quoted)
{
        cleanup_free char *doc = J (single_quoted);
        cleanup_error kiln_error *err = NULL;
        kiln_manifest *m = NULL;

        CHECK_OK (kiln_manifest_parse (&m, doc, strlen (doc), &err));
        return m;
}

static kiln_index *
parse_index (const char *single_quoted)
{
        cleanup_free char *doc = J (single_quoted);
        cleanup_error kiln_error *err = NULL;
        kiln_index *x = NULL;

        CHECK_OK (kiln_index_parse (&x, doc, strlen (doc), &err));
        return x;
}

static kiln_image_config *
parse_config (const char *single_quoted)
{
        cleanup_free char *doc = J (single_quoted);
        cleanup_error kiln_error *err = NULL;
        kiln_image_config *c = NULL;

        CHECK_OK (kiln_config_parse (&c, doc, strlen (doc), &err));
        return c;
}

static void
test_docker_manifest_list (void)
{
        cleanup_index kiln_index *x = parse_index (busybox_list);

        if (x == NULL)
                return;
        CHECK (x->schema_version == 2);
        CHECK_STR (x->media_type, KILN_MT_DOCKER_LIST);
        CHECK (x->artifact_type == NULL && x->subject == NULL && x->annotations.n == 0);
        CHECK (x->n_manifests == 9);
        CHECK_STR (x->manifests[0].media_type, KILN_MT_DOCKER_MANIFEST);
        CHECK_STR (x->manifests[0].digest, D_AMD64);
        CHECK (x->manifests[0].size == 528);
        CHECK_STR (x->manifests[0].platform->architecture, "amd64");
        CHECK_STR (x->manifests[0].platform->os, "linux");
        CHECK (x->manifests[0].platform->variant == NULL);
        CHECK_STR (x->manifests[3].platform->variant, "v7");
        CHECK_STR (x->manifests[4].platform->architecture, "arm64");
        CHECK_STR (x->manifests[8].platform->architecture, "s390x");
        CHECK (x->manifests[8].urls == NULL);
}

static void
test_docker_v2s2_manifest (void)
{
        cleanup_manifest kiln_manifest *m = parse_manifest (docker_manifest);

        if (m == NULL)
                return;
        CHECK (m->schema_version == 2);
        CHECK_STR (m->media_type, KILN_MT_DOCKER_MANIFEST);
        CHECK_STR (m->config.media_type, KILN_MT_DOCKER_CONFIG);
        CHECK_STR (m->config.digest, D_CFG);
        CHECK (m->config.size == 1457);
        CHECK (m->n_layers == 2);
        CHECK_STR (m->layers[0].media_type, KILN_MT_DOCKER_LAYER_GZIP);
        CHECK (m->layers[0].size == 2152262);
        CHECK_STR (m->layers[1].digest, D_L1);
        CHECK (m->subject == NULL && m->artifact_type == NULL && m->annotations.n == 0);
}

static void
test_oci_manifest_everything (void)
{
        cleanup_manifest kiln_manifest *m = parse_manifest (oci_manifest);

        if (m == NULL)
                return;
        CHECK_STR (m->media_type, KILN_MT_OCI_MANIFEST);
        CHECK_STR (m->artifact_type, "application/vnd.example.sbom.v1+json");
        CHECK_STR (m->config.media_type, KILN_MT_OCI_EMPTY);
        CHECK_STR (m->config.data, "e30=");
        CHECK (m->config.size == 2);
        CHECK (m->n_layers == 3);
        CHECK_STR (kiln_kvs_get (&m->layers[0].annotations, "org.opencontainers.image.title"),
                   "app.tar.gz");
        CHECK_STR (m->layers[1].digest, D_SHA512);
        CHECK (m->layers[1].size == 0);
        CHECK (kiln_strv_len (m->layers[1].urls) == 2);
        CHECK_STR (m->layers[1].urls[1], "https://cdn.example.com/blob");
        /* Beyond 2^53: kept exactly, not through a double. */
        CHECK (m->layers[2].size == INT64_C (9007199254740993));
        CHECK (m->layers[2].urls != NULL && m->layers[2].urls[0] == NULL);
        CHECK (m->subject != NULL);
        CHECK_STR (m->subject->digest, D_SUBJ);
        CHECK_STR (m->subject->platform->variant, "v8");
        CHECK_STR (m->subject->platform->os_version, "6.1");
        CHECK (kiln_strv_len (m->subject->platform->os_features) == 2);
        CHECK (m->annotations.n == 4);
        CHECK_STR (kiln_kvs_get (&m->annotations, "z"), "");
        CHECK_STR (kiln_kvs_get (&m->annotations, "a"), "\xc3\xa9t\xc3\xa9");
}

static void
test_manifest_canonical_bytes (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        cleanup_free char *again = NULL;
        cleanup_manifest kiln_manifest *m = parse_manifest (docker_manifest);
        cleanup_manifest kiln_manifest *m2 = NULL;
        size_t len = 0, len2 = 0;
        const char *want
            = "{\"config\":{\"digest\":\"" D_CFG "\",\"mediaType\":\"" KILN_MT_DOCKER_CONFIG
              "\",\"size\":1457},\"layers\":[{\"digest\":\"" D_L0
              "\",\"mediaType\":\"" KILN_MT_DOCKER_LAYER_GZIP
              "\",\"size\":2152262},{\"digest\":\"" D_L1
              "\",\"mediaType\":\"" KILN_MT_DOCKER_LAYER_GZIP
              "\",\"size\":32}],\"mediaType\":\"" KILN_MT_DOCKER_MANIFEST "\",\"schemaVersion\":2}";

        if (m == NULL)
                return;
        CHECK_OK (kiln_manifest_to_json (&out, &len, m, &err));
        CHECK_STR (out, want);
        CHECK (len == strlen (want));
        CHECK (out[len - 1] == '}');
        /* Canonical output is a fixed point. */
        CHECK_OK (kiln_manifest_parse (&m2, out, len, &err));
        CHECK_OK (kiln_manifest_to_json (&again, &len2, m2, &err));
        CHECK_STR (again, out);
}

static void
test_manifest_from_struct (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        kiln_manifest m = { 0 };
        kiln_descriptor layer = { 0 };

        m.schema_version = 2;
        m.media_type = KILN_MT_OCI_MANIFEST;
        m.config.media_type = KILN_MT_OCI_CONFIG;
        kiln_strlcpy (m.config.digest, D_CFG, sizeof m.config.digest);
        m.config.size = 7;
        layer.media_type = KILN_MT_OCI_LAYER_GZIP;
        kiln_strlcpy (layer.digest, D_L0, sizeof layer.digest);
        layer.size = 3;
        m.layers = &layer;
        m.n_layers = 1;
        kiln_kvs_set (&m.annotations, "b", "2");
        kiln_kvs_set (&m.annotations, "a", "1");
        CHECK_OK (kiln_manifest_to_json (&out, NULL, &m, &err));
        CHECK_STR (out, "{\"annotations\":{\"a\":\"1\",\"b\":\"2\"},\"config\":{\"digest\":\"" D_CFG
                        "\",\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                        "\"size\":7},\"layers\":[{\"digest\":\"" D_L0
                        "\",\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                        "\"size\":3}],\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                        "\"schemaVersion\":2}");
        kiln_kvs_clear (&m.annotations);

        /* No layers is still an array, and no mediaType is left out. */
        free (out);
        out = NULL;
        m.media_type = NULL;
        m.n_layers = 0;
        m.layers = NULL;
        CHECK_OK (kiln_manifest_to_json (&out, NULL, &m, &err));
        CHECK (out && strstr (out, "\"layers\":[]") != NULL);
        CHECK (out && strstr (out, "mediaType\":\"application/vnd.oci.image.manifest") == NULL);
}

static bool
descriptor_equal (const kiln_descriptor *a, const kiln_descriptor *b)
{
        bool pa = a->platform != NULL, pb = b->platform != NULL;

        if (strcmp (a->media_type, b->media_type) != 0 || strcmp (a->digest, b->digest) != 0
            || a->size != b->size || !kiln_strv_equal (a->urls, b->urls)
            || !kiln_kvs_equal (&a->annotations, &b->annotations) || pa != pb)
                return false;
        if ((a->data == NULL) != (b->data == NULL) || (a->data && strcmp (a->data, b->data)))
                return false;
        if ((a->artifact_type == NULL) != (b->artifact_type == NULL)
            || (a->artifact_type && strcmp (a->artifact_type, b->artifact_type)))
                return false;
        if (pa
            && (strcmp (a->platform->os, b->platform->os) != 0
                || strcmp (a->platform->architecture, b->platform->architecture) != 0
                || !kiln_strv_equal (a->platform->os_features, b->platform->os_features)))
                return false;
        return true;
}

static void
test_manifest_round_trip (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        cleanup_free char *out2 = NULL;
        cleanup_manifest kiln_manifest *m = parse_manifest (oci_manifest);
        cleanup_manifest kiln_manifest *r = NULL;
        size_t len = 0;

        if (m == NULL)
                return;
        CHECK_OK (kiln_manifest_to_json (&out, &len, m, &err));
        CHECK (strstr (out, "unknownTopLevel") == NULL);
        CHECK (strstr (out, "\"urls\":[]") != NULL);
        CHECK_OK (kiln_manifest_parse (&r, out, len, &err));
        if (r == NULL)
                return;
        CHECK_STR (r->media_type, m->media_type);
        CHECK_STR (r->artifact_type, m->artifact_type);
        CHECK (descriptor_equal (&r->config, &m->config));
        CHECK (r->n_layers == m->n_layers);
        for (size_t i = 0; i < r->n_layers && i < m->n_layers; i++)
                CHECK (descriptor_equal (&r->layers[i], &m->layers[i]));
        CHECK (r->subject && descriptor_equal (r->subject, m->subject));
        CHECK_STR (r->subject->platform->os_version, "6.1");
        CHECK_STR (r->subject->platform->variant, "v8");
        CHECK (kiln_kvs_equal (&r->annotations, &m->annotations));
        CHECK_OK (kiln_manifest_to_json (&out2, NULL, r, &err));
        CHECK_STR (out2, out);
}

static void
test_index_round_trip (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        cleanup_free char *out2 = NULL;
        cleanup_index kiln_index *x = parse_index (busybox_list);
        cleanup_index kiln_index *r = NULL;
        size_t len = 0;

        if (x == NULL)
                return;
        kiln_kvs_set (&x->annotations, "org.opencontainers.image.ref.name", "latest");
        x->artifact_type = kiln_strdup ("application/vnd.example+type");
        x->subject = kiln_calloc (1, sizeof (kiln_descriptor));
        kiln_descriptor_copy (x->subject, &x->manifests[2]);
        CHECK_OK (kiln_index_to_json (&out, &len, x, &err));
        CHECK_OK (kiln_index_parse (&r, out, len, &err));
        if (r == NULL)
                return;
        CHECK_STR (r->media_type, KILN_MT_DOCKER_LIST);
        CHECK_STR (r->artifact_type, "application/vnd.example+type");
        CHECK (r->n_manifests == x->n_manifests);
        for (size_t i = 0; i < r->n_manifests && i < x->n_manifests; i++)
                CHECK (descriptor_equal (&r->manifests[i], &x->manifests[i]));
        CHECK (r->subject && descriptor_equal (r->subject, &x->manifests[2]));
        CHECK (kiln_kvs_equal (&r->annotations, &x->annotations));
        CHECK_OK (kiln_index_to_json (&out2, NULL, r, &err));
        CHECK_STR (out2, out);
        /* Order of entries is meaningful (first match wins) and kept. */
        CHECK (strstr (out, D_AMD64) < strstr (out, D_S390X));
}

static void
test_index_empty_and_minimal (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        cleanup_index kiln_index *x = parse_index ("{'schemaVersion':2,'manifests':[]}");

        if (x == NULL)
                return;
        CHECK (x->n_manifests == 0 && x->media_type == NULL);
        CHECK_OK (kiln_index_to_json (&out, NULL, x, &err));
        CHECK_STR (out, "{\"manifests\":[],\"schemaVersion\":2}");
}

static void
test_kind_of (void)
{
        cleanup_free char *list = J (busybox_list);
        cleanup_free char *man = J (docker_manifest);
        const char *no_mt_index = "{\"schemaVersion\":2,\"manifests\":[]}";
        const char *no_mt_manifest = "{\"schemaVersion\":2,\"config\":{},\"layers\":[]}";
        const char *artifact = "{\"mediaType\":\"application/x-other\",\"layers\":[]}";

        CHECK (kiln_manifest_kind_of (list, strlen (list), NULL) == KILN_KIND_INDEX);
        CHECK (kiln_manifest_kind_of (man, strlen (man), NULL) == KILN_KIND_MANIFEST);
        /* The body's mediaType wins over a Content-Type. */
        CHECK (kiln_manifest_kind_of (man, strlen (man), KILN_MT_OCI_INDEX) == KILN_KIND_MANIFEST);
        CHECK (kiln_manifest_kind_of ("{}", 2, KILN_MT_OCI_INDEX "; charset=utf-8")
               == KILN_KIND_INDEX);
        CHECK (kiln_manifest_kind_of ("{}", 2, KILN_MT_DOCKER_MANIFEST) == KILN_KIND_MANIFEST);
        CHECK (kiln_manifest_kind_of (no_mt_index, strlen (no_mt_index), "application/json")
               == KILN_KIND_INDEX);
        CHECK (kiln_manifest_kind_of (no_mt_manifest, strlen (no_mt_manifest), NULL)
               == KILN_KIND_MANIFEST);
        CHECK (kiln_manifest_kind_of (artifact, strlen (artifact), NULL) == KILN_KIND_MANIFEST);
        CHECK (kiln_manifest_kind_of ("{}", 2, NULL) == KILN_KIND_UNKNOWN);
        /* Not JSON: the Content-Type picks the parser that will say why. */
        CHECK (kiln_manifest_kind_of ("not json", 8, KILN_MT_OCI_MANIFEST) == KILN_KIND_MANIFEST);
        CHECK (kiln_manifest_kind_of ("not json", 8, NULL) == KILN_KIND_UNKNOWN);
        CHECK (kiln_manifest_kind_of ("[]", 2, NULL) == KILN_KIND_UNKNOWN);
}

static void
test_media_types (void)
{
        CHECK (kiln_media_type_is_manifest (KILN_MT_OCI_MANIFEST));
        CHECK (kiln_media_type_is_manifest (KILN_MT_DOCKER_MANIFEST));
        CHECK (kiln_media_type_is_manifest ("application/vnd.oci.image.manifest.v1+json; x=y"));
        CHECK (!kiln_media_type_is_manifest (KILN_MT_OCI_INDEX));
        CHECK (!kiln_media_type_is_manifest (KILN_MT_OCI_CONFIG));
        CHECK (!kiln_media_type_is_manifest (
            "application/vnd.docker.distribution.manifest.v1+prettyjws"));
        CHECK (!kiln_media_type_is_manifest (NULL));
        CHECK (!kiln_media_type_is_manifest (""));
        CHECK (kiln_media_type_is_index (KILN_MT_OCI_INDEX));
        CHECK (kiln_media_type_is_index (KILN_MT_DOCKER_LIST));
        CHECK (!kiln_media_type_is_index (KILN_MT_DOCKER_MANIFEST));
        CHECK (!kiln_media_type_is_index (KILN_MT_OCI_INDEX "x"));
}

/* Each malformed document must fail with `code` and exactly `msg`. */
typedef struct bad_doc {
        const char *doc; /* single-quoted */
        kiln_error_code code;
        const char *msg;
} bad_doc;

typedef int (*parse_fn) (const char *data, size_t len, kiln_error **err);

static int
try_manifest (const char *data, size_t len, kiln_error **err)
{
        cleanup_manifest kiln_manifest *m = NULL;
        return kiln_manifest_parse (&m, data, len, err);
}

static int
try_index (const char *data, size_t len, kiln_error **err)
{
        cleanup_index kiln_index *x = NULL;
        return kiln_index_parse (&x, data, len, err);
}

static int
try_config (const char *data, size_t len, kiln_error **err)
{
        cleanup_config kiln_image_config *c = NULL;
        return kiln_config_parse (&c, data, len, err);
}

static void
check_bad (parse_fn parse, const bad_doc *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                cleanup_free char *doc = J (cases[i].doc);
                cleanup_error kiln_error *err = NULL;

                if (parse (doc, strlen (doc), &err) == 0) {
                        fprintf (stderr, "  accepted: %s\n", doc);
                        CHECK (!"malformed document accepted");
                        continue;
                }
                CHECK (err != NULL);
                if (err == NULL)
                        continue;
                CHECK (err->code == cases[i].code);
                CHECK_STR (err->msg, cases[i].msg);
        }
}

#define DESC(d) "'mediaType':'m','digest':'" d "','size':1"
#define CFGD "'config':{" DESC (D_CFG) "}"

static void
test_manifest_wrong_types (void)
{
        static const bad_doc cases[] = {
                { "{'schemaVersion':'2'," CFGD ",'layers':[]}", KILN_E_INVALID,
                  "manifest: schemaVersion: expected an integer" },
                { "{'schemaVersion':2.0," CFGD ",'layers':[]}", KILN_E_INVALID,
                  "manifest: schemaVersion: expected an integer" },
                { "{'schemaVersion':2," CFGD ",'layers':{}}", KILN_E_INVALID,
                  "manifest: layers: expected an array" },
                { "{'schemaVersion':2,'config':[],"
                  "'layers':[]}",
                  KILN_E_INVALID, "manifest: config: expected an object" },
                { "{'schemaVersion':2," CFGD ",'layers':[{" DESC (D_L0) "},{" DESC (
                      D_L1) "},{'mediaType':'m','digest':'" D_L2 "','size':'12'}]}",
                  KILN_E_INVALID, "manifest: layers[2].size: expected an integer" },
                { "{'schemaVersion':2," CFGD ",'layers':[{" DESC (D_L0) "},7]}", KILN_E_INVALID,
                  "manifest: layers[1]: expected an object" },
                { "{'schemaVersion':2,'config':{'mediaType':'m','digest':5,'size':1},'layers':[]}",
                  KILN_E_INVALID, "manifest: config.digest: expected a string" },
                { "{'schemaVersion':2,'config':{'mediaType':true,'digest':'" D_CFG
                  "','size':1},'layers':[]}",
                  KILN_E_INVALID, "manifest: config.mediaType: expected a string" },
                { "{'schemaVersion':2," CFGD ",'layers':[{" DESC (D_L0) ",'urls':['a',1]}]}",
                  KILN_E_INVALID, "manifest: layers[0].urls[1]: expected a string" },
                { "{'schemaVersion':2," CFGD ",'layers':[{" DESC (D_L0) ",'annotations':{'k':1}}]}",
                  KILN_E_INVALID, "manifest: layers[0].annotations.k: expected a string" },
                { "{'schemaVersion':2," CFGD ",'layers':[],'annotations':[]}", KILN_E_INVALID,
                  "manifest: annotations: expected an object" },
                { "{'schemaVersion':2," CFGD ",'layers':[],'subject':'x'}", KILN_E_INVALID,
                  "manifest: subject: expected an object" },
                { "{'schemaVersion':2," CFGD ",'layers':[],'mediaType':7}", KILN_E_INVALID,
                  "manifest: mediaType: expected a string" },
                { "{'schemaVersion':2," CFGD ",'layers':[],'artifactType':{}}", KILN_E_INVALID,
                  "manifest: artifactType: expected a string" },
                { "{'schemaVersion':2,'config':{" DESC (
                      D_CFG) ",'platform':{'architecture':'amd64','os':'linux','os.features':'x'}},"
                             "'layers':[]}",
                  KILN_E_INVALID, "manifest: config.platform.os.features: expected an array" },
                { "{'schemaVersion':2," CFGD ",'layers':[{" DESC (D_L0) ",'data':false}]}",
                  KILN_E_INVALID, "manifest: layers[0].data: expected a string" },
                { "[1,2]", KILN_E_INVALID, "manifest: expected a JSON object" },
        };
        check_bad (try_manifest, cases, KILN_N_ELEMENTS (cases));
}

static void
test_manifest_required_fields (void)
{
        static const bad_doc cases[] = {
                { "{" CFGD ",'layers':[]}", KILN_E_INVALID, "manifest: schemaVersion: missing" },
                { "{'schemaVersion':null," CFGD ",'layers':[]}", KILN_E_INVALID,
                  "manifest: schemaVersion: missing" },
                { "{'schemaVersion':2,'layers':[]}", KILN_E_INVALID, "manifest: config: missing" },
                { "{'schemaVersion':2," CFGD "}", KILN_E_INVALID, "manifest: layers: missing" },
                { "{'schemaVersion':2,'config':{'digest':'" D_CFG "','size':1},'layers':[]}",
                  KILN_E_INVALID, "manifest: config.mediaType: missing" },
                { "{'schemaVersion':2,'config':{'mediaType':'m','size':1},'layers':[]}",
                  KILN_E_INVALID, "manifest: config.digest: missing" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'" D_L0 "'}]}",
                  KILN_E_INVALID, "manifest: layers[0].size: missing" },
                { "{'schemaVersion':2," CFGD ",'layers':[],'subject':{'mediaType':'m'}}",
                  KILN_E_INVALID, "manifest: subject.digest: missing" },
                { "{'schemaVersion':2,'config':{" DESC (
                      D_CFG) ",'platform':{'os':'linux'}},'layers':[]}",
                  KILN_E_INVALID, "manifest: config.platform.architecture: missing" },
                { "{'schemaVersion':1,'name':'library/busybox','tag':'latest','fsLayers':[]}",
                  KILN_E_INVALID,
                  "manifest: schemaVersion: expected 2, got 1 (Docker schema 1 is not supported)" },
                { "{'schemaVersion':3," CFGD ",'layers':[]}", KILN_E_INVALID,
                  "manifest: schemaVersion: expected 2, got 3" },
                { "{'schemaVersion':2,'mediaType':'" KILN_MT_OCI_INDEX "'," CFGD ",'layers':[]}",
                  KILN_E_INVALID,
                  "manifest: mediaType: `application/vnd.oci.image.index.v1+json` is not an "
                  "image manifest type" },
                { "{'schemaVersion':2,'mediaType':'" KILN_MT_DOCKER_LIST "'," CFGD ",'layers':[]}",
                  KILN_E_INVALID,
                  "manifest: mediaType: `" KILN_MT_DOCKER_LIST "` is not an image manifest type" },
        };
        check_bad (try_manifest, cases, KILN_N_ELEMENTS (cases));
}

static void
test_manifest_bad_digest_and_size (void)
{
        static const bad_doc cases[] = {
                { "{'schemaVersion':2,'config':{'mediaType':'m','digest':'sha256:ABC','size':1},"
                  "'layers':[]}",
                  KILN_E_INVALID, "manifest: config.digest: `sha256:ABC` is not a valid digest" },
                { "{'schemaVersion':2,'config':{'mediaType':'m','digest':'"
                  "sha256:12CB64FE927B420341B14FC03DA3DAF69619762C7A92D8505612CDD0309C3347',"
                  "'size':1},'layers':[]}",
                  KILN_E_INVALID,
                  "manifest: config.digest: "
                  "`sha256:12CB64FE927B420341B14FC03DA3DAF69619762C7A92D8505612CDD0309C3347` is "
                  "not a valid digest" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'md5:"
                  "d41d8cd98f00b204e9800998ecf8427e','size':1}]}",
                  KILN_E_INVALID,
                  "manifest: layers[0].digest: `md5:d41d8cd98f00b204e9800998ecf8427e` is not a "
                  "valid digest" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'" D_L0
                  "0','size':1}]}",
                  KILN_E_INVALID, "manifest: layers[0].digest: `" D_L0 "0` is not a valid digest" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'','size':1}]}",
                  KILN_E_INVALID, "manifest: layers[0].digest: `` is not a valid digest" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'" D_L0
                  "','size':-1}]}",
                  KILN_E_INVALID, "manifest: layers[0].size: -1 is negative" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'" D_L0
                  "','size':1.5}]}",
                  KILN_E_INVALID, "manifest: layers[0].size: expected an integer" },
                { "{'schemaVersion':2," CFGD ",'layers':[{'mediaType':'m','digest':'" D_L0
                  "','size':1e3}]}",
                  KILN_E_INVALID, "manifest: layers[0].size: expected an integer" },
        };
        check_bad (try_manifest, cases, KILN_N_ELEMENTS (cases));
}

/* A message that starts with `prefix`; jansson words the rest. */
static void
check_bad_prefix (parse_fn parse, const char *doc, size_t len, kiln_error_code code,
                  const char *prefix)
{
        cleanup_error kiln_error *err = NULL;

        CHECK (parse (doc, len, &err) < 0);
        CHECK (err != NULL);
        if (err == NULL)
                return;
        CHECK (err->code == code);
        if (strncmp (err->msg, prefix, strlen (prefix)) != 0) {
                fprintf (stderr, "  message \"%s\" does not start with \"%s\"\n", err->msg, prefix);
                CHECK (!"unexpected message");
        }
        CHECK (strchr (err->msg, '\n') == NULL);
}

static void
test_malformed_json (void)
{
        cleanup_free char *ok = J ("{'schemaVersion':2," CFGD ",'layers':[]}");
        cleanup_free char *dup = J ("{'schemaVersion':2," CFGD ",'layers':[],'layers':[]}");
        cleanup_free char *dup_inner
            = J ("{'schemaVersion':2,'config':{" DESC (D_CFG) ",'size':2},'layers':[]}");
        cleanup_free char *trailing = J ("{'schemaVersion':2," CFGD ",'layers':[]} {}");
        cleanup_free char *trailing2 = J ("{'schemaVersion':2," CFGD ",'layers':[]}x");
        cleanup_free char *bad_utf8 = J ("{'schemaVersion':2," CFGD ",'layers':[],"
                                         "'annotations':{'k':'\xc3\x28'}}");
        cleanup_free char *bad_utf8_key = J ("{'schemaVersion':2," CFGD ",'layers':[],"
                                             "'\xff':1}");
        cleanup_free char *nul = J ("{'schemaVersion':2," CFGD ",'layers':[],"
                                    "'annotations':{'k':'a\\u0000b'}}");
        cleanup_free char *unterminated = J ("{'schemaVersion':2," CFGD ",'layers':[");

        {
                cleanup_free char *nl = kiln_strdup_printf ("\n %s \r\n\t", ok);
                cleanup_manifest kiln_manifest *m = NULL;
                cleanup_error kiln_error *err = NULL;
                /* Whitespace around the object is fine: registries often add
                 * a newline. */
                CHECK_OK (kiln_manifest_parse (&m, nl, strlen (nl), &err));
        }
        check_bad_prefix (try_manifest, dup, strlen (dup), KILN_E_INVALID,
                          "manifest: invalid JSON at line 1, column ");
        check_bad_prefix (try_manifest, dup_inner, strlen (dup_inner), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, trailing, strlen (trailing), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, trailing2, strlen (trailing2), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, bad_utf8, strlen (bad_utf8), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, bad_utf8_key, strlen (bad_utf8_key), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, nul, strlen (nul), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, unterminated, strlen (unterminated), KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_manifest, "", 0, KILN_E_INVALID, "manifest: invalid JSON");
        check_bad_prefix (try_manifest, NULL, 0, KILN_E_INVALID, "manifest: invalid JSON");
        /* An embedded NUL byte ends nothing early: the length is what counts. */
        check_bad_prefix (try_manifest, ok, strlen (ok) + 1, KILN_E_INVALID,
                          "manifest: invalid JSON");
        check_bad_prefix (try_index, dup, strlen (dup), KILN_E_INVALID, "index: invalid JSON");
        check_bad_prefix (try_config, trailing, strlen (trailing), KILN_E_INVALID,
                          "image config: invalid JSON");
}

static void
test_deep_nesting (void)
{
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        cleanup_buf kiln_buf shallow = KILN_BUF_INIT;
        cleanup_error kiln_error *err = NULL;
        cleanup_manifest kiln_manifest *m = NULL;

        /* Deep nesting under an unknown key is still refused before parsing. */
        kiln_buf_puts (&b, "{\"schemaVersion\":2,\"x\":", NULL);
        for (int i = 0; i < 100000; i++)
                kiln_buf_puts (&b, "[", NULL);
        for (int i = 0; i < 100000; i++)
                kiln_buf_puts (&b, "]", NULL);
        kiln_buf_puts (&b, "}", NULL);
        check_bad_prefix (try_manifest, b.data, b.len, KILN_E_INVALID,
                          "manifest: JSON nested deeper than 64 levels");
        check_bad_prefix (try_config, b.data, b.len, KILN_E_INVALID,
                          "image config: JSON nested deeper than 64 levels");
        /* Unbalanced openers alone also count. */
        kiln_buf_reset (&b);
        for (int i = 0; i < 65; i++)
                kiln_buf_puts (&b, "{\"a\":", NULL);
        check_bad_prefix (try_index, b.data, b.len, KILN_E_INVALID,
                          "index: JSON nested deeper than 64 levels");

        /* Brackets inside strings are not nesting; 60 real levels are fine. */
        kiln_buf_puts (&shallow, "{\"schemaVersion\":2,\"config\":{", NULL);
        kiln_buf_puts (&shallow,
                       "\"mediaType\":\"m\",\"digest\":\"" D_CFG "\",\"size\":1},\"layers\":[],"
                       "\"annotations\":{\"k\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                       "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"},\"y\":",
                       NULL);
        for (int i = 0; i < 60; i++)
                kiln_buf_puts (&shallow, "[", NULL);
        for (int i = 0; i < 60; i++)
                kiln_buf_puts (&shallow, "]", NULL);
        kiln_buf_puts (&shallow, "}", NULL);
        CHECK_OK (kiln_manifest_parse (&m, shallow.data, shallow.len, &err));
        CHECK (m && m->annotations.n == 1 && strlen (kiln_kvs_get (&m->annotations, "k")) == 88);
}

static void
test_too_large (void)
{
        const size_t n = (size_t) 100 << 20;
        char *big = malloc (n);
        struct timespec t0, t1;

        if (big == NULL)
                return;
        /* A valid-looking 100 MB document: one huge string. */
        memset (big, 'a', n);
        memcpy (big, "{\"schemaVersion\":2,\"x\":\"", 24);
        memcpy (big + n - 2, "\"}", 2);
        clock_gettime (CLOCK_MONOTONIC, &t0);
        check_bad_prefix (try_manifest, big, n, KILN_E_TOO_LARGE,
                          "manifest: 104857600 bytes exceed the limit of 4194304 bytes");
        check_bad_prefix (try_index, big, n, KILN_E_TOO_LARGE, "index: 104857600 bytes exceed");
        check_bad_prefix (try_config, big, n, KILN_E_TOO_LARGE,
                          "image config: 104857600 bytes exceed the limit of 8388608 bytes");
        clock_gettime (CLOCK_MONOTONIC, &t1);
        /* Refused by its length, not by parsing 100 MB: well under a second
         * even under sanitizers and valgrind. */
        CHECK ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
        /* One byte over each limit. */
        check_bad_prefix (try_manifest, big, KILN_MANIFEST_MAX + 1, KILN_E_TOO_LARGE,
                          "manifest: 4194305 bytes exceed");
        check_bad_prefix (try_config, big, KILN_CONFIG_MAX + 1, KILN_E_TOO_LARGE,
                          "image config: 8388609 bytes exceed");
        free (big);
}

static void
test_limits_differ (void)
{
        /* A 5 MB config (a big label) is fine; as a manifest it is too large. */
        cleanup_buf kiln_buf b = KILN_BUF_INIT;
        cleanup_error kiln_error *err = NULL;
        cleanup_config kiln_image_config *c = NULL;
        const size_t label = (size_t) 5 << 20;

        kiln_buf_puts (&b,
                       "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                       "\"layers\",\"diff_ids\":[]},\"config\":{\"Labels\":{\"big\":\"",
                       NULL);
        kiln_buf_reserve (&b, label, NULL);
        memset (b.data + b.len, 'x', label);
        b.len += label;
        kiln_buf_puts (&b, "\"}}}", NULL);
        CHECK_OK (kiln_config_parse (&c, b.data, b.len, &err));
        CHECK (c && strlen (kiln_kvs_get (&c->labels, "big")) == label);
        check_bad_prefix (try_manifest, b.data, b.len, KILN_E_TOO_LARGE, "manifest: ");
}

static void
test_null_optionals_and_unknown_keys (void)
{
        cleanup_manifest kiln_manifest *m = parse_manifest (
            "{'schemaVersion':2,'mediaType':null,'artifactType':null,'subject':null,"
            "'annotations':null,'config':{" DESC (
                D_CFG) ",'urls':null,'annotations':null,"
                       "'platform':null,'data':null,'artifactType':null,'future':{'a':[1]}},"
                       "'layers':[{" DESC (D_L0) ",'platform':{'architecture':'amd64','os':'linux',"
                                                 "'os.version':null,'os.features':null,'variant':"
                                                 "null,'features':['sse4']}}],"
                                                 "'somethingNew':[true,false,null]}");
        cleanup_index kiln_index *x
            = parse_index ("{'schemaVersion':2,'mediaType':null,'subject':null,'annotations':null,"
                           "'artifactType':null,'manifests':[{" DESC (D_AMD64) "}],'extra':1}");
        cleanup_config kiln_image_config *c = parse_config (
            "{'architecture':'amd64','os':'linux','created':null,'author':null,"
            "'os.version':null,'os.features':null,'variant':null,"
            "'config':{'User':null,'ExposedPorts':{'80/tcp':null},'Env':null,"
            "'Entrypoint':null,'Cmd':null,'Volumes':null,'WorkingDir':null,'Labels':null,"
            "'StopSignal':null,'ArgsEscaped':null,'Memory':null,'MemorySwap':null,"
            "'CpuShares':null,'Healthcheck':null,'Shell':null,'Domainname':''},"
            "'rootfs':{'type':'layers','diff_ids':null},'history':null,'id':'legacy'}");

        CHECK (m && m->media_type == NULL && m->subject == NULL && m->annotations.n == 0);
        CHECK (m && m->config.urls == NULL && m->config.platform == NULL && !m->config.data);
        CHECK (m && m->layers[0].platform && m->layers[0].platform->variant == NULL);
        CHECK (m && m->layers[0].platform && m->layers[0].platform->os_features == NULL);
        CHECK (x && x->n_manifests == 1 && x->media_type == NULL);
        CHECK (c && c->has_config && c->env == NULL && c->entrypoint == NULL && c->cmd == NULL);
        CHECK (c && c->user == NULL && c->healthcheck_json == NULL && c->labels.n == 0);
        CHECK (c && kiln_strv_len (c->exposed_ports) == 1 && c->n_history == 0);
        /* Docker writes no diff_ids for an image without layers. */
        CHECK (c && c->diff_ids && c->diff_ids[0] == NULL);
}

static void
test_config_every_field (void)
{
        cleanup_config kiln_image_config *c = parse_config (full_config);

        if (c == NULL)
                return;
        CHECK_STR (c->created, "2024-05-06T07:08:09.123456789Z");
        CHECK_STR (c->author, "Jane <jane@example.com>");
        CHECK_STR (c->architecture, "arm64");
        CHECK_STR (c->os, "linux");
        CHECK_STR (c->os_version, "5.15");
        CHECK (kiln_strv_len (c->os_features) == 1);
        CHECK_STR (c->variant, "v8");
        CHECK (c->has_config);
        CHECK_STR (c->user, "1000:1000");
        CHECK (kiln_strv_len (c->exposed_ports) == 3);
        /* Kept sorted, whatever order the document had. */
        CHECK_STR (c->exposed_ports[0], "443/tcp");
        CHECK_STR (c->exposed_ports[1], "53/udp");
        CHECK_STR (c->exposed_ports[2], "8080/tcp");
        CHECK (kiln_strv_len (c->env) == 2);
        CHECK_STR (kiln_config_get_env (c, "LANG"), "C.UTF-8");
        CHECK_STR (c->entrypoint[1], "--serve");
        CHECK (c->cmd != NULL && c->cmd[0] == NULL);
        CHECK_STR (c->volumes[0], "/cache");
        CHECK_STR (c->volumes[1], "/data");
        CHECK_STR (c->working_dir, "/srv");
        CHECK_STR (kiln_kvs_get (&c->labels, "maintainer"), "jane");
        CHECK_STR (c->stop_signal, "SIGTERM");
        CHECK (c->args_escaped);
        CHECK (c->memory == 536870912 && c->memory_swap == -1 && c->cpu_shares == 512);
        CHECK_STR (c->healthcheck_json,
                   "{\"Interval\":30000000000,\"Retries\":3,\"StartPeriod\":1000000000,"
                   "\"Test\":[\"CMD-SHELL\",\"curl -f http://localhost/ || exit 1\"],"
                   "\"Timeout\":5000000000}");
        CHECK_STR (c->shell[0], "/bin/bash");
        CHECK (kiln_strv_len (c->diff_ids) == 2);
        CHECK_STR (c->diff_ids[1], D_L1);
        CHECK (c->n_history == 3);
        CHECK_STR (c->history[0].author, "base");
        CHECK_STR (c->history[0].comment, "base layer");
        CHECK (!c->history[0].empty_layer);
        CHECK (c->history[1].empty_layer);
        CHECK (c->history[1].comment == NULL);
        CHECK_STR (c->history[2].created_by, "kiln");
}

static void
test_config_round_trip (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        cleanup_free char *out2 = NULL;
        cleanup_config kiln_image_config *c = parse_config (full_config);
        cleanup_config kiln_image_config *r = NULL;
        size_t len = 0;

        if (c == NULL)
                return;
        CHECK_OK (kiln_config_to_json (&out, &len, c, &err));
        CHECK (strstr (out, "docker_version") == NULL && strstr (out, "Hostname") == NULL);
        CHECK (strstr (out, "\"Cmd\":[]") != NULL);
        CHECK (strstr (out, "\"ExposedPorts\":{\"443/tcp\":{},\"53/udp\":{},\"8080/tcp\":{}}"));
        CHECK (strstr (out, "\"Volumes\":{\"/cache\":{},\"/data\":{}}") != NULL);
        CHECK_OK (kiln_config_parse (&r, out, len, &err));
        if (r == NULL)
                return;
        CHECK_STR (r->created, c->created);
        CHECK_STR (r->author, c->author);
        CHECK_STR (r->os_version, c->os_version);
        CHECK (kiln_strv_equal (r->os_features, c->os_features));
        CHECK_STR (r->variant, c->variant);
        CHECK_STR (r->user, c->user);
        CHECK (kiln_strv_equal (r->exposed_ports, c->exposed_ports));
        CHECK (kiln_strv_equal (r->env, c->env));
        CHECK (kiln_strv_equal (r->entrypoint, c->entrypoint));
        CHECK (kiln_strv_equal (r->cmd, c->cmd));
        CHECK (kiln_strv_equal (r->volumes, c->volumes));
        CHECK_STR (r->working_dir, c->working_dir);
        CHECK (kiln_kvs_equal (&r->labels, &c->labels));
        CHECK_STR (r->stop_signal, c->stop_signal);
        CHECK (r->args_escaped == c->args_escaped);
        CHECK (r->memory == c->memory && r->memory_swap == c->memory_swap);
        CHECK (r->cpu_shares == c->cpu_shares);
        CHECK_STR (r->healthcheck_json, c->healthcheck_json);
        CHECK (kiln_strv_equal (r->shell, c->shell));
        CHECK (kiln_strv_equal (r->diff_ids, c->diff_ids));
        CHECK (r->n_history == c->n_history);
        for (size_t i = 0; i < r->n_history && i < c->n_history; i++) {
                CHECK (r->history[i].empty_layer == c->history[i].empty_layer);
                CHECK_STR (r->history[i].created, c->history[i].created);
                CHECK_STR (r->history[i].created_by, c->history[i].created_by);
        }
        CHECK_OK (kiln_config_to_json (&out2, NULL, r, &err));
        CHECK_STR (out2, out);
}

static void
test_config_new_and_emit_rules (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_free char *out = NULL;
        cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");

        CHECK_OK (kiln_config_to_json (&out, NULL, c, &err));
        CHECK_STR (out, "{\"architecture\":\"amd64\",\"os\":\"linux\","
                        "\"rootfs\":{\"diff_ids\":[],\"type\":\"layers\"}}");
        free (out);
        out = NULL;

        c->cmd = kiln_strv_new ();
        c->created = kiln_strdup ("1970-01-01T00:00:00Z");
        kiln_config_add_port (c, "8080");
        kiln_config_set_env (c, "PATH", "/bin");
        kiln_config_add_layer (c, D_L0, "1970-01-01T00:00:00Z", "kiln build", NULL);
        kiln_kvs_set (&c->labels, "a", "b");
        CHECK_OK (kiln_config_to_json (&out, NULL, c, &err));
        CHECK_STR (out,
                   "{\"architecture\":\"amd64\",\"config\":{\"Cmd\":[],\"Env\":[\"PATH=/bin\"],"
                   "\"ExposedPorts\":{\"8080/tcp\":{}},\"Labels\":{\"a\":\"b\"}},"
                   "\"created\":\"1970-01-01T00:00:00Z\","
                   "\"history\":[{\"created\":\"1970-01-01T00:00:00Z\","
                   "\"created_by\":\"kiln build\"}],\"os\":\"linux\","
                   "\"rootfs\":{\"diff_ids\":[\"" D_L0 "\"],\"type\":\"layers\"}}");
}

static void
test_config_wrong_types (void)
{
        static const bad_doc cases[] = {
#define ROOT "'rootfs':{'type':'layers','diff_ids':[]}"
                { "{'os':'linux'," ROOT "}", KILN_E_INVALID,
                  "image config: architecture: missing" },
                { "{'architecture':'amd64'," ROOT "}", KILN_E_INVALID,
                  "image config: os: missing" },
                { "{'architecture':'amd64','os':'linux'}", KILN_E_INVALID,
                  "image config: rootfs: missing" },
                { "{'architecture':'amd64','os':'linux','rootfs':null}", KILN_E_INVALID,
                  "image config: rootfs: missing" },
                { "{'architecture':'amd64','os':'linux','rootfs':{'diff_ids':[]}}", KILN_E_INVALID,
                  "image config: rootfs.type: missing" },
                { "{'architecture':'amd64','os':'linux','rootfs':{'type':'tar','diff_ids':[]}}",
                  KILN_E_INVALID, "image config: rootfs.type: expected \"layers\", got \"tar\"" },
                { "{'architecture':'amd64','os':'linux','rootfs':{'type':'layers','diff_ids':{}}}",
                  KILN_E_INVALID, "image config: rootfs.diff_ids: expected an array" },
                { "{'architecture':'amd64','os':'linux','rootfs':{'type':'layers',"
                  "'diff_ids':['" D_L0 "','sha256:xyz']}}",
                  KILN_E_INVALID,
                  "image config: rootfs.diff_ids[1]: `sha256:xyz` is not a valid digest" },
                { "{'architecture':7,'os':'linux'," ROOT "}", KILN_E_INVALID,
                  "image config: architecture: expected a string" },
                { "{'architecture':'amd64','os':'linux','config':[]," ROOT "}", KILN_E_INVALID,
                  "image config: config: expected an object" },
                { "{'architecture':'amd64','os':'linux','config':{'User':0}," ROOT "}",
                  KILN_E_INVALID, "image config: config.User: expected a string" },
                { "{'architecture':'amd64','os':'linux','config':{'Env':['A=1',2]}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Env[1]: expected a string" },
                { "{'architecture':'amd64','os':'linux','config':{'Entrypoint':'/bin/sh'}," ROOT
                  "}",
                  KILN_E_INVALID, "image config: config.Entrypoint: expected an array" },
                { "{'architecture':'amd64','os':'linux','config':{'ExposedPorts':['80/tcp']}," ROOT
                  "}",
                  KILN_E_INVALID, "image config: config.ExposedPorts: expected an object" },
                { "{'architecture':'amd64','os':'linux','config':{'Volumes':{'/d':1}}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Volumes./d: expected an object" },
                { "{'architecture':'amd64','os':'linux','config':{'Labels':{'a':1}}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Labels.a: expected a string" },
                { "{'architecture':'amd64','os':'linux','config':{'ArgsEscaped':'yes'}," ROOT "}",
                  KILN_E_INVALID, "image config: config.ArgsEscaped: expected a boolean" },
                { "{'architecture':'amd64','os':'linux','config':{'Memory':'1g'}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Memory: expected an integer" },
                { "{'architecture':'amd64','os':'linux','config':{'Healthcheck':[]}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Healthcheck: expected an object" },
                { "{'architecture':'amd64','os':'linux','config':{'Healthcheck':"
                  "{'Interval':'30s'}}," ROOT "}",
                  KILN_E_INVALID,
                  "image config: config.Healthcheck.Interval: expected an integer" },
                { "{'architecture':'amd64','os':'linux','config':{'Healthcheck':"
                  "{'Test':'curl'}}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Healthcheck.Test: expected an array" },
                { "{'architecture':'amd64','os':'linux','config':{'Shell':[null]}," ROOT "}",
                  KILN_E_INVALID, "image config: config.Shell[0]: expected a string" },
                { "{'architecture':'amd64','os':'linux'," ROOT ",'history':{}}", KILN_E_INVALID,
                  "image config: history: expected an array" },
                { "{'architecture':'amd64','os':'linux'," ROOT ",'history':[{},'x']}",
                  KILN_E_INVALID, "image config: history[1]: expected an object" },
                { "{'architecture':'amd64','os':'linux'," ROOT
                  ",'history':[{},{'empty_layer':'true'}]}",
                  KILN_E_INVALID, "image config: history[1].empty_layer: expected a boolean" },
                { "{'architecture':'amd64','os':'linux'," ROOT ",'history':[{'created':1}]}",
                  KILN_E_INVALID, "image config: history[0].created: expected a string" },
                { "{'architecture':'amd64','os':'linux','os.features':'x'," ROOT "}",
                  KILN_E_INVALID, "image config: os.features: expected an array" },
#undef ROOT
        };
        check_bad (try_config, cases, KILN_N_ELEMENTS (cases));
}

static void
test_index_errors (void)
{
        static const bad_doc cases[] = {
                { "{'schemaVersion':2}", KILN_E_INVALID, "index: manifests: missing" },
                { "{'manifests':[]}", KILN_E_INVALID, "index: schemaVersion: missing" },
                { "{'schemaVersion':2,'manifests':{}}", KILN_E_INVALID,
                  "index: manifests: expected an array" },
                { "{'schemaVersion':2,'mediaType':'" KILN_MT_OCI_MANIFEST "','manifests':[]}",
                  KILN_E_INVALID,
                  "index: mediaType: `" KILN_MT_OCI_MANIFEST "` is not an image index type" },
                { "{'schemaVersion':2,'mediaType':'" KILN_MT_DOCKER_MANIFEST "','manifests':[]}",
                  KILN_E_INVALID,
                  "index: mediaType: `" KILN_MT_DOCKER_MANIFEST "` is not an image index type" },
                { "{'schemaVersion':2,'manifests':[{" DESC (D_AMD64) "},{" DESC (
                      D_ARM64) ",'platform':{'architecture':'arm64','os':7}}]}",
                  KILN_E_INVALID, "index: manifests[1].platform.os: expected a string" },
                { "{'schemaVersion':2,'manifests':[{" DESC (D_AMD64) ",'platform':[]}]}",
                  KILN_E_INVALID, "index: manifests[0].platform: expected an object" },
                { "{'schemaVersion':2,'manifests':[{'mediaType':'m','digest':'" D_AMD64
                  "','size':-5}]}",
                  KILN_E_INVALID, "index: manifests[0].size: -5 is negative" },
                { "{'schemaVersion':2,'manifests':[],'annotations':{'a':{}}}", KILN_E_INVALID,
                  "index: annotations.a: expected a string" },
                { "{'schemaVersion':2,'manifests':[],'subject':{" DESC ("sha256:00") "}}",
                  KILN_E_INVALID, "index: subject.digest: `sha256:00` is not a valid digest" },
        };
        check_bad (try_index, cases, KILN_N_ELEMENTS (cases));
}

static void
test_emit_refuses_invalid (void)
{
        cleanup_error kiln_error *err = NULL;
        char *out = NULL;
        kiln_manifest m = { 0 };
        kiln_index x = { 0 };
        cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");

        m.config.media_type = KILN_MT_OCI_CONFIG;
        kiln_strlcpy (m.config.digest, "sha256:abc", sizeof m.config.digest);
        CHECK (kiln_manifest_to_json (&out, NULL, &m, &err) < 0 && out == NULL);
        CHECK (err && err->code == KILN_E_INVALID);
        CHECK_STR (err ? err->msg : NULL,
                   "manifest: config.digest: `sha256:abc` is not a valid digest");
        kiln_error_free (kiln_error_take (&err));

        kiln_strlcpy (m.config.digest, D_CFG, sizeof m.config.digest);
        m.config.size = -1;
        CHECK (kiln_manifest_to_json (&out, NULL, &m, &err) < 0);
        CHECK_STR (err ? err->msg : NULL, "manifest: config.size: -1 is negative");
        kiln_error_free (kiln_error_take (&err));

        m.config.size = 1;
        m.media_type = KILN_MT_OCI_INDEX;
        CHECK (kiln_manifest_to_json (&out, NULL, &m, &err) < 0);
        CHECK (err && err->code == KILN_E_INVALID);
        kiln_error_free (kiln_error_take (&err));

        m.media_type = NULL;
        kiln_kvs_set (&m.annotations, "k", "\xff\xfe");
        CHECK (kiln_manifest_to_json (&out, NULL, &m, &err) < 0 && out == NULL);
        CHECK_STR (err ? err->msg : NULL, "manifest: cannot encode: a string is not valid UTF-8");
        kiln_error_free (kiln_error_take (&err));
        kiln_kvs_clear (&m.annotations);

        x.media_type = KILN_MT_DOCKER_MANIFEST;
        CHECK (kiln_index_to_json (&out, NULL, &x, &err) < 0);
        kiln_error_free (kiln_error_take (&err));
        x.media_type = NULL;
        kiln_descriptor d = { 0 };
        x.manifests = &d;
        x.n_manifests = 1;
        CHECK (kiln_index_to_json (&out, NULL, &x, &err) < 0);
        CHECK_STR (err ? err->msg : NULL, "index: manifests[0].mediaType: missing");
        kiln_error_free (kiln_error_take (&err));

        c->diff_ids = kiln_strv_append (c->diff_ids, "sha256:nope");
        CHECK (kiln_config_to_json (&out, NULL, c, &err) < 0);
        CHECK_STR (err ? err->msg : NULL,
                   "image config: rootfs.diff_ids[0]: `sha256:nope` is not a valid digest");
        kiln_error_free (kiln_error_take (&err));
        free (c->diff_ids[0]);
        c->diff_ids[0] = kiln_strdup (D_L0);
        c->healthcheck_json = kiln_strdup ("[1]");
        CHECK (kiln_config_to_json (&out, NULL, c, &err) < 0);
        CHECK_STR (err ? err->msg : NULL, "image config: config.Healthcheck: not a JSON object");
        kiln_error_free (kiln_error_take (&err));
        free (c->os);
        c->os = NULL;
        CHECK (kiln_config_to_json (&out, NULL, c, &err) < 0);
        CHECK_STR (err ? err->msg : NULL, "image config: os: missing");
        CHECK (out == NULL);
}

static void
test_env_helpers (void)
{
        cleanup_config kiln_image_config *c = kiln_config_new ("linux", "amd64");

        CHECK (kiln_config_get_env (c, "PATH") == NULL);
        kiln_config_set_env (c, "PATH", "/usr/bin");
        kiln_config_set_env (c, "PATHX", "other");
        kiln_config_set_env (c, "EMPTY", "");
        CHECK (c->has_config);
        CHECK_STR (kiln_config_get_env (c, "PATH"), "/usr/bin");
        CHECK_STR (kiln_config_get_env (c, "PATHX"), "other");
        CHECK_STR (kiln_config_get_env (c, "EMPTY"), "");
        CHECK (kiln_config_get_env (c, "PAT") == NULL);
        kiln_config_set_env (c, "PATH", "/bin:/usr/bin");
        CHECK (kiln_strv_len (c->env) == 3);
        /* Replaced in place: the order of Env is kept. */
        CHECK_STR (c->env[0], "PATH=/bin:/usr/bin");
        CHECK_STR (c->env[1], "PATHX=other");
        kiln_config_set_env (c, "V", "a=b=c");
        CHECK_STR (kiln_config_get_env (c, "V"), "a=b=c");
}

static void
test_port_and_layer_helpers (void)
{
        cleanup_config kiln_image_config *c = kiln_config_new ("linux", "arm64");

        kiln_config_add_port (c, "8080/tcp");
        kiln_config_add_port (c, "53/udp");
        kiln_config_add_port (c, "8080");
        kiln_config_add_port (c, "10000/tcp");
        kiln_config_add_port (c, "53/udp");
        CHECK (kiln_strv_len (c->exposed_ports) == 3);
        CHECK_STR (c->exposed_ports[0], "10000/tcp");
        CHECK_STR (c->exposed_ports[1], "53/udp");
        CHECK_STR (c->exposed_ports[2], "8080/tcp");
        CHECK (c->exposed_ports[3] == NULL);

        kiln_config_add_layer (c, D_L0, "2024-01-01T00:00:00Z", "COPY . /app", "app");
        kiln_config_add_layer (c, D_L1, NULL, NULL, NULL);
        CHECK (kiln_strv_len (c->diff_ids) == 2);
        CHECK_STR (c->diff_ids[1], D_L1);
        CHECK (c->n_history == 2);
        CHECK_STR (c->history[0].created_by, "COPY . /app");
        CHECK_STR (c->history[0].comment, "app");
        CHECK (!c->history[0].empty_layer && c->history[0].author == NULL);
        CHECK (c->history[1].created == NULL && !c->history[1].empty_layer);
}

static kiln_platform *
platform (const char *s)
{
        cleanup_error kiln_error *err = NULL;
        kiln_platform *p = NULL;

        CHECK_OK (kiln_platform_parse (&p, s, &err));
        return p;
}

static void
test_platform_parse (void)
{
        static const char *const bad[] = { "linux",
                                           "",
                                           "/",
                                           "linux/",
                                           "/amd64",
                                           "linux//v8",
                                           "linux/arm64/v8/x",
                                           "linux/amd 64",
                                           "linux/arm64/" };
        kiln_platform *p = platform ("linux/amd64");

        CHECK (p && strcmp (p->os, "linux") == 0 && strcmp (p->architecture, "amd64") == 0);
        CHECK (p && p->variant == NULL && p->os_version == NULL && p->os_features == NULL);
        kiln_platform_free (p);
        p = platform ("linux/arm64/v8");
        CHECK (p && strcmp (p->architecture, "arm64") == 0 && strcmp (p->variant, "v8") == 0);
        kiln_platform_free (p);
        p = platform ("linux/aarch64");
        CHECK (p && strcmp (p->architecture, "arm64") == 0 && strcmp (p->variant, "v8") == 0);
        kiln_platform_free (p);
        p = platform ("linux/x86_64");
        CHECK (p && strcmp (p->architecture, "amd64") == 0 && p->variant == NULL);
        kiln_platform_free (p);
        p = platform ("linux/armhf");
        CHECK (p && strcmp (p->architecture, "arm") == 0 && strcmp (p->variant, "v7") == 0);
        kiln_platform_free (p);
        p = platform ("windows/amd64");
        CHECK (p && strcmp (p->os, "windows") == 0);
        kiln_platform_free (p);

        for (size_t i = 0; i < KILN_N_ELEMENTS (bad); i++) {
                cleanup_error kiln_error *err = NULL;
                cleanup_free char *want = kiln_strdup_printf (
                    "platform `%s`: expected os/architecture[/variant]", bad[i]);
                p = NULL;
                CHECK (kiln_platform_parse (&p, bad[i], &err) < 0 && p == NULL);
                CHECK (err && err->code == KILN_E_INVALID);
                CHECK_STR (err ? err->msg : NULL, want);
        }
}

static void
test_platform_match (void)
{
        kiln_platform *amd64 = platform ("linux/amd64");
        kiln_platform *arm64 = platform ("linux/arm64");
        kiln_platform *arm64v8 = platform ("linux/arm64/v8");
        kiln_platform *arm64v9 = platform ("linux/arm64/v9");
        kiln_platform *armv7 = platform ("linux/arm/v7");
        kiln_platform *armv6 = platform ("linux/arm/v6");
        kiln_platform *arm = platform ("linux/arm");
        kiln_platform *win = platform ("windows/amd64");
        kiln_platform *amd64v1 = platform ("linux/amd64/v1");
        kiln_platform *amd64v3 = platform ("linux/amd64/v3");

        CHECK (kiln_platform_match (amd64, amd64));
        CHECK (!kiln_platform_match (amd64, arm64));
        CHECK (!kiln_platform_match (amd64, win));
        CHECK (!kiln_platform_match (win, amd64));
        /* A want without a variant takes any variant. */
        CHECK (kiln_platform_match (arm64, arm64v8));
        CHECK (kiln_platform_match (arm64, arm64v9));
        CHECK (kiln_platform_match (arm, armv6));
        CHECK (kiln_platform_match (amd64, amd64v3));
        /* arm64 without a variant is v8. */
        CHECK (kiln_platform_match (arm64v8, arm64));
        CHECK (kiln_platform_match (arm64v8, arm64v8));
        CHECK (!kiln_platform_match (arm64v8, arm64v9));
        CHECK (!kiln_platform_match (arm64v9, arm64));
        /* arm variants are distinct, and a bare arm is not assumed v7. */
        CHECK (kiln_platform_match (armv7, armv7));
        CHECK (!kiln_platform_match (armv7, armv6));
        CHECK (!kiln_platform_match (armv7, arm));
        CHECK (!kiln_platform_match (armv7, arm64v8));
        CHECK (kiln_platform_match (amd64v1, amd64));
        CHECK (!kiln_platform_match (amd64v3, amd64));
        CHECK (!kiln_platform_match (NULL, amd64));
        CHECK (!kiln_platform_match (amd64, NULL));

        kiln_platform *all[]
            = { amd64, arm64, arm64v8, arm64v9, armv7, armv6, arm, win, amd64v1, amd64v3 };
        for (size_t i = 0; i < KILN_N_ELEMENTS (all); i++)
                kiln_platform_free (all[i]);
}

static void
test_platform_host_and_dup (void)
{
        kiln_platform *h = kiln_platform_host ();
        kiln_platform *d;

        CHECK_STR (h->os, "linux");
        CHECK (h->architecture && *h->architecture);
#if defined(__x86_64__)
        CHECK_STR (h->architecture, "amd64");
        CHECK (h->variant == NULL);
#elif defined(__aarch64__)
        CHECK_STR (h->architecture, "arm64");
        CHECK_STR (h->variant, "v8");
#endif
        CHECK (kiln_platform_match (h, h));
        d = kiln_platform_dup (h);
        CHECK (d != h && kiln_platform_match (d, h) && kiln_platform_match (h, d));
        CHECK (d->architecture != h->architecture);
        kiln_platform_free (d);
        kiln_platform_free (h);
        kiln_platform_free (NULL);
        CHECK (kiln_platform_dup (NULL) == NULL);
}

static void
test_index_select (void)
{
        cleanup_error kiln_error *err = NULL;
        cleanup_index kiln_index *x = parse_index (busybox_list);
        cleanup_index kiln_index *dup = parse_index (
            "{'schemaVersion':2,'manifests':["
            "{" DESC (D_L0) "},"
                            "{" DESC (D_AMD64) ",'platform':{'architecture':'amd64','os':'linux'}},"
                                               "{" DESC (D_L1) ",'platform':{'architecture':'amd64'"
                                                               ",'os':'linux'}}]}");
        const kiln_descriptor *d = NULL;
        kiln_platform *want;

        if (x == NULL || dup == NULL)
                return;
        want = platform ("linux/arm64");
        CHECK_OK (kiln_index_select (&d, x, want, &err));
        CHECK (d == &x->manifests[4]);
        kiln_platform_free (want);

        want = platform ("linux/arm/v7");
        CHECK_OK (kiln_index_select (&d, x, want, &err));
        CHECK (d && strcmp (d->digest, D_ARMV7) == 0);
        kiln_platform_free (want);

        /* A bare "arm" takes the first arm entry. */
        want = platform ("linux/arm");
        CHECK_OK (kiln_index_select (&d, x, want, &err));
        CHECK (d && strcmp (d->digest, D_ARMV5) == 0);
        kiln_platform_free (want);

        /* First match wins; entries without a platform are skipped. */
        want = platform ("linux/amd64");
        CHECK_OK (kiln_index_select (&d, dup, want, &err));
        CHECK (d && strcmp (d->digest, D_AMD64) == 0);
        kiln_platform_free (want);

        want = platform ("windows/amd64");
        d = NULL;
        CHECK (kiln_index_select (&d, x, want, &err) < 0 && d == NULL);
        CHECK (err && err->code == KILN_E_NOT_FOUND);
        CHECK_STR (err ? err->msg : NULL,
                   "no manifest for windows/amd64 in the index (available: linux/amd64, "
                   "linux/arm/v5, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/386, "
                   "linux/ppc64le, linux/riscv64, linux/s390x)");
        kiln_error_free (kiln_error_take (&err));
        kiln_platform_free (want);

        want = platform ("linux/arm/v8");
        CHECK (kiln_index_select (&d, dup, want, &err) < 0);
        CHECK_STR (err ? err->msg : NULL,
                   "no manifest for linux/arm/v8 in the index (available: linux/amd64, "
                   "linux/amd64)");
        kiln_platform_free (want);
}

static void
test_descriptor_copy_and_free (void)
{
        cleanup_manifest kiln_manifest *m = parse_manifest (oci_manifest);
        kiln_descriptor d = { 0 };

        if (m == NULL)
                return;
        kiln_descriptor_copy (&d, m->subject);
        CHECK (descriptor_equal (&d, m->subject));
        CHECK (d.platform != m->subject->platform && d.media_type != m->subject->media_type);
        kiln_descriptor_copy (&d, &m->layers[1]);
        CHECK (descriptor_equal (&d, &m->layers[1]) && d.platform == NULL);
        /* Copying onto itself is safe. */
        kiln_descriptor_copy (&d, &d);
        CHECK (descriptor_equal (&d, &m->layers[1]));
        kiln_descriptor_clear (&d);
        CHECK (d.media_type == NULL && d.urls == NULL && d.digest[0] == '\0');
        kiln_descriptor_clear (&d);
        kiln_descriptor_clear (NULL);
        kiln_manifest_free (NULL);
        kiln_index_free (NULL);
        kiln_config_free (NULL);
}

static void
test_time_and_version (void)
{
        char t[32];

        kiln_time_rfc3339 (t, 0);
        CHECK_STR (t, "1970-01-01T00:00:00Z");
        kiln_time_rfc3339 (t, 1700000000);
        CHECK_STR (t, "2023-11-14T22:13:20Z");
        kiln_time_rfc3339 (t, 951782400); /* leap day */
        CHECK_STR (t, "2000-02-29T00:00:00Z");
        kiln_time_rfc3339 (t, -5);
        CHECK_STR (t, "1970-01-01T00:00:00Z");
        kiln_time_rfc3339 (t, INT64_MAX);
        CHECK_STR (t, "9999-12-31T23:59:59Z");
        CHECK_STR (kiln_image_library_version (), "jansson 2.14");
}

int
main (void)
{
        RUN (test_docker_manifest_list);
        RUN (test_docker_v2s2_manifest);
        RUN (test_oci_manifest_everything);
        RUN (test_manifest_canonical_bytes);
        RUN (test_manifest_from_struct);
        RUN (test_manifest_round_trip);
        RUN (test_index_round_trip);
        RUN (test_index_empty_and_minimal);
        RUN (test_kind_of);
        RUN (test_media_types);
        RUN (test_manifest_wrong_types);
        RUN (test_manifest_required_fields);
        RUN (test_manifest_bad_digest_and_size);
        RUN (test_malformed_json);
        RUN (test_deep_nesting);
        RUN (test_too_large);
        RUN (test_limits_differ);
        RUN (test_null_optionals_and_unknown_keys);
        RUN (test_config_every_field);
        RUN (test_config_round_trip);
        RUN (test_config_new_and_emit_rules);
        RUN (test_config_wrong_types);
        RUN (test_index_errors);
        RUN (test_emit_refuses_invalid);
        RUN (test_env_helpers);
        RUN (test_port_and_layer_helpers);
        RUN (test_platform_parse);
        RUN (test_platform_match);
        RUN (test_platform_host_and_dup);
        RUN (test_index_select);
        RUN (test_descriptor_copy_and_free);
        RUN (test_time_and_version);
        UNIT_DONE ("test_image");
}
