/* kiln: run images kiln makes itself, with no download. */
#ifndef KILN_RUNBASE_H
#define KILN_RUNBASE_H

#include "error.h"
#include "image.h"
#include "layout.h"

/* The name buildpacks use for the static base: `default-run-image =
 * "kiln:static"` in buildpack.toml [metadata]. */
#define KILN_STATIC_BASE "kiln:static"

#define KILN_NONROOT_UID 65532

/* Makes the static base: one reproducible layer holding /etc/passwd and
 * /etc/group (root, and nonroot with uid/gid 65532, home /home/nonroot),
 * /tmp (mode 1777), /home/nonroot, and the build host's CA certificates at
 * /etc/ssl/certs/ca-certificates.crt (when the host has them); a config
 * for `platform` (NULL: the host's) that runs as 65532:65532 with PATH and
 * SSL_CERT_FILE set.  The image lives in a temporary OCI layout owned by
 * *out (removed by kiln_local_image_free).  The digest depends only on the
 * certificates and SOURCE_DATE_EPOCH. */
int kiln_static_base_create (kiln_local_image **out, const kiln_platform *platform,
                             kiln_error **err);

#endif
