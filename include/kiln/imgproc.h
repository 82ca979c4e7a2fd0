/* kiln: image processing after a build's steps (what Shipwright's
 * image-processing step does, for `kiln serve` and `kiln image-processing`).
 *
 * The image comes either from a directory a strategy wrote (Shipwright's
 * shp-output-directory) or from the registry the strategy pushed to.  It
 * gets labels (image config), manifest annotations and a creation time
 * (config `created` and every history entry's), then is pushed to the
 * output reference.  Layers are never rewritten: their blobs are reused as
 * they are (a registry has them already, or they are read from the
 * directory).
 *
 * What a directory may hold (as Shipwright's LoadImageOrImageIndexFromDirectory):
 *   - an OCI image layout (index.json): an index with exactly one entry is
 *     followed (through nested indexes) down to its image; an index with
 *     several entries is pushed as it is, with its images;
 *   - otherwise exactly one file: an oci-archive or docker-archive tarball
 *     (kaniko's image.tar);
 *   - anything else is KILN_E_NOT_FOUND "no image was found at \"DIR\"". */
#ifndef KILN_IMGPROC_H
#define KILN_IMGPROC_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "kv.h"
#include "registry.h"

typedef struct kiln_imgproc_opts {
        const char *image;    /* the output reference (tag, or tag@digest to read) */
        const char *push_dir; /* the image's directory; NULL: the image at `image` */
        kiln_kvs labels;      /* borrowed */
        kiln_kvs annotations; /* borrowed */
        int64_t timestamp;    /* seconds since the epoch; < 0: keep the image's */
        kiln_registry *registry;
} kiln_imgproc_opts;

typedef struct kiln_imgproc_result {
        char digest[KILN_DIGEST_MAX]; /* of the manifest (or index) pushed */
        int64_t size;                 /* config + layers, compressed; -1 for an index */
        bool pushed;                  /* false: the image in the registry was left as it was */
        bool index;                   /* an image index: labels, annotations and time not applied */
} kiln_imgproc_result;

/* The latest timestamp kiln writes (9999-12-31T23:59:59Z). */
#define KILN_IMGPROC_TIMESTAMP_MAX INT64_C (253402300799)

/* Loads, changes and pushes the image as above.  Without a push_dir and
 * with nothing to change, nothing is pushed: the image's digest and size
 * are reported.  Errors name the directory or the reference; a directory
 * without an image is KILN_E_NOT_FOUND. */
int kiln_imgproc_run (kiln_imgproc_result *out, const kiln_imgproc_opts *opts, kiln_error **err);

#endif
