/* kiln image-processing: labels, annotations and a creation time on an
 * image a build made, then the push (Shipwright's image-processing step;
 * kiln serve runs it after a strategy's steps). */
#include <stdio.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/imgproc.h"
#include "kiln/reference.h"

enum {
        OPT_IMAGE = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_PUSH,
        OPT_ANNOTATION,
        OPT_LABEL,
        OPT_TIMESTAMP,
        OPT_INSECURE,
        OPT_RESULT_DIGEST,
        OPT_RESULT_SIZE,
        OPT_RESULT_REASON,
        OPT_RESULT_MESSAGE,
};

static const struct option extra[] = {
        { "image", required_argument, NULL, OPT_IMAGE },
        { "push", required_argument, NULL, OPT_PUSH },
        { "annotation", required_argument, NULL, OPT_ANNOTATION },
        { "label", required_argument, NULL, OPT_LABEL },
        { "image-timestamp", required_argument, NULL, OPT_TIMESTAMP },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "result-file-image-digest", required_argument, NULL, OPT_RESULT_DIGEST },
        { "result-file-image-size", required_argument, NULL, OPT_RESULT_SIZE },
        { "result-file-error-reason", required_argument, NULL, OPT_RESULT_REASON },
        { "result-file-error-message", required_argument, NULL, OPT_RESULT_MESSAGE },
        { NULL, 0, NULL, 0 },
};

typedef struct options {
        kiln_imgproc_opts p;
        bool insecure;
        const char *result_digest;
        const char *result_size;
        const char *result_reason;
        const char *result_message;
} options;

static int
add_pair (kiln_kvs *m, const char *what, const char *arg)
{
        const char *eq = strchr (arg, '=');
        cleanup_free char *key = NULL;

        if (eq == NULL || eq == arg) {
                kiln_cli_usage_error (&kiln_cmd_image_processing, "--%s `%s`: expected KEY=VALUE",
                                      what, arg);
                return -1;
        }
        key = kiln_strdup_printf ("%.*s", (int) (eq - arg), arg);
        kiln_kvs_set (m, key, eq + 1);
        return 1;
}

static int
on_extra (void *data, int opt)
{
        options *o = data;

        switch (opt) {
        case OPT_IMAGE:
                o->p.image = optarg;
                return 1;
        case OPT_PUSH:
                o->p.push_dir = optarg;
                return 1;
        case OPT_ANNOTATION:
                return add_pair (&o->p.annotations, "annotation", optarg);
        case OPT_LABEL:
                return add_pair (&o->p.labels, "label", optarg);
        case OPT_TIMESTAMP:
                if (kiln_parse_int64 (optarg, 0, KILN_IMGPROC_TIMESTAMP_MAX, &o->p.timestamp) < 0) {
                        kiln_cli_usage_error (&kiln_cmd_image_processing,
                                              "--image-timestamp `%s`: expected seconds since "
                                              "1970 (up to the year 9999)",
                                              optarg);
                        return -1;
                }
                return 1;
        case OPT_INSECURE:
                o->insecure = true;
                return 1;
        case OPT_RESULT_DIGEST:
                o->result_digest = optarg;
                return 1;
        case OPT_RESULT_SIZE:
                o->result_size = optarg;
                return 1;
        case OPT_RESULT_REASON:
                o->result_reason = optarg;
                return 1;
        case OPT_RESULT_MESSAGE:
                o->result_message = optarg;
                return 1;
        default:
                return 0;
        }
}

static int
write_result (const char *path, const char *value, kiln_error **err)
{
        if (path == NULL)
                return 0;
        return kiln_write_file (path, value, strlen (value), 0600, err);
}

static int
process (options *o, kiln_cli_registry *reg, kiln_global *g, kiln_error **err)
{
        cleanup_registry kiln_registry *r = NULL;
        kiln_imgproc_result res;
        char size[32];

        if (o->insecure) {
                cleanup_reference kiln_reference *ref = NULL;
                if (kiln_reference_parse (&ref, o->p.image, err) < 0)
                        return -1;
                kiln_registry_opts_add_insecure (&reg->opts, ref->registry);
        }
        if (kiln_cli_registry_client (&r, reg, g, err) < 0)
                return -1;
        o->p.registry = r;
        if (kiln_imgproc_run (&res, &o->p, err) < 0)
                return -1;
        if (write_result (o->result_digest, res.digest, err) < 0)
                return -1;
        if (res.size >= 0) {
                snprintf (size, sizeof size, "%lld", (long long) res.size);
                if (write_result (o->result_size, size, err) < 0)
                        return -1;
        }
        return kiln_cli_registry_result (reg, g, r, o->p.image, res.digest, err);
}

/* A failure's reason and message for the caller's status (kiln serve
 * copies them into failureDetails). */
static void
write_failure (const options *o, const kiln_error *e)
{
        const char *reason = "ImageProcessingFailed";

        if (o->p.push_dir && e->code == KILN_E_NOT_FOUND
            && strstr (kiln_error_msg (e), "no image was found at"))
                reason = "OutputImageNotFound";
        write_result (o->result_reason, reason, NULL);
        write_result (o->result_message, kiln_error_msg (e), NULL);
}

static int
run (kiln_global *g, int argc, char **argv)
{
        kiln_cli_registry reg;
        options o = { .p = { .timestamp = -1 } };
        kiln_error *err = NULL;
        int ret = KILN_EXIT_OK;

        kiln_cli_registry_init (&reg, "pushed");
        if (kiln_cli_registry_args (&reg, g, &kiln_cmd_image_processing, argc, argv, 0, extra,
                                    on_extra, &o)
            < 0) {
                ret = KILN_EXIT_USAGE;
                goto out;
        }
        if (o.p.image == NULL) {
                ret = kiln_cli_usage_error (&kiln_cmd_image_processing, "--image is required");
                goto out;
        }
        if (process (&o, &reg, g, &err) < 0) {
                kiln_error_wrap (&err, "image processing of %s", o.p.image);
                write_failure (&o, err);
                ret = kiln_cli_fail (g, err);
        }
out:
        kiln_kvs_clear (&o.p.labels);
        kiln_kvs_clear (&o.p.annotations);
        kiln_cli_registry_clear (&reg);
        return ret;
}

const kiln_command kiln_cmd_image_processing = {
        "image-processing",
        run,
        "label, annotate, date and push a built image (Shipwright's image-processing)",
        "Usage: kiln image-processing --image REFERENCE [OPTIONS]\n\n"
        "Takes the image a build made, from the directory given with --push or else\n"
        "from REFERENCE itself, applies labels (image config), annotations (manifest)\n"
        "and a creation time (config and history; layers are left as they are), and\n"
        "pushes it to REFERENCE.  A directory holds an OCI image layout (index.json:\n"
        "an index with one entry is followed to its image, one with several is\n"
        "pushed as it is) or exactly one oci-archive or docker-archive file;\n"
        "anything else fails with `no image was found at \"DIR\"`.  With no --push\n"
        "and nothing to change, nothing is pushed: the image's digest and size are\n"
        "reported.  Prints the manifest digest.\n\n"
        "Options:\n"
        "      --image REF                  the output image (required)\n"
        "      --push DIR                   the directory holding the image to push\n"
        "      --label K=V                  set an image config label (repeatable)\n"
        "      --annotation K=V             set a manifest annotation (repeatable)\n"
        "      --image-timestamp SECONDS    the image's created time and its history's\n"
        "      --insecure                   plain HTTP or unverified TLS for REF's registry\n"
        "      --result-file-image-digest F write the digest to F\n"
        "      --result-file-image-size F   write the size (config + layers, compressed)\n"
        "      --result-file-error-reason F on failure, write a reason: OutputImageNotFound\n"
        "                                   or ImageProcessingFailed\n"
        "      --result-file-error-message F  on failure, write the error "
        "message\n\n" KILN_REGISTRY_HELP KILN_GLOBAL_HELP,
};
