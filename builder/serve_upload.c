/* kiln: a BuildRun's local source, uploaded as a tar (what `shp build
 * upload` streams into the step-source-local container).
 *
 * The body is spooled to an unlinked file by the HTTP server (bounded by
 * --max-source-size, not --max-body), extracted with the layer extractor
 * (nothing is written outside the upload's own directory) into
 * DATA/uploads/.UID-XXXXXX/source, and published by renaming that
 * directory to DATA/uploads/UID without replacing: the first upload wins,
 * a second one is a 409.  The run waits for DATA/uploads/UID/source. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/layer.h"
#include "kiln/log.h"
#include "kiln/serve.h"

bool
kiln_source_is_local (const json_t *spec)
{
        const char *type
            = json_string_value (json_object_get (json_object_get (spec, "source"), "type"));
        return type && strcmp (type, "Local") == 0;
}

/* Finds the BuildRun and checks that it takes an upload now; answers resp
 * when not.  On success *uid is the run's uid (owned). */
static int
check_run (char **uid, kiln_store *s, kiln_runner *r, const char *ns, const char *name,
           kiln_http_response *resp)
{
        json_t *br = NULL;
        kiln_verdict v;
        kiln_resolved res;
        const char *type;
        int rc = -1;

        if (kiln_store_get (&br, s, "BuildRun", ns, name, NULL) < 0) {
                kiln_api_status (resp, 404, "NotFound", "buildruns.shipwright.io \"%s\" not found",
                                 name);
                return -1;
        }
        kiln_validate_buildrun (&v, &res, s, ns, br);
        type = json_string_value (
            json_object_get (json_object_get (res.effective, "source"), "type"));
        /* A run that is not Local never takes one, whatever its state: that
         * is said first, so the answer does not depend on how fast it ran. */
        if (res.effective != NULL && !kiln_source_is_local (res.effective)) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "buildrun %s does not take a source upload: its source type is "
                                 "%s, not Local",
                                 name, type ? type : "(none)");
        } else if (kiln_buildrun_is_done (br)) {
                kiln_api_status (resp, 409, "Conflict",
                                 "buildrun %s has already finished: it takes no source upload",
                                 name);
        } else if (res.effective == NULL) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "buildrun %s cannot take a source upload: %s", name,
                                 v.message ? v.message : "it does not resolve");
        } else {
                const char *u
                    = json_string_value (json_object_get (json_object_get (br, "metadata"), "uid"));
                cleanup_free char *dir = kiln_runner_upload_dir (r, u ? u : "");
                struct stat st;
                if (u == NULL || lstat (dir, &st) == 0)
                        kiln_api_status (resp, 409, "Conflict",
                                         "the source of buildrun %s was already uploaded", name);
                else {
                        *uid = kiln_strdup (u);
                        rc = 0;
                }
        }
        kiln_verdict_clear (&v);
        kiln_resolved_clear (&res);
        json_decref (br);
        return rc;
}

void
kiln_upload_precheck (kiln_store *s, kiln_runner *r, uint64_t limit, const char *ns,
                      const char *name, kiln_http_response *resp)
{
        cleanup_free char *uid = NULL;
        cleanup_free char *tmpl = NULL;
        int fd;

        if (r == NULL) {
                kiln_api_status (resp, 503, "ServiceUnavailable", "no runner: uploads are off");
                return;
        }
        if (check_run (&uid, s, r, ns, name, resp) < 0)
                return;
        tmpl = kiln_runner_upload_dir (r, ".spool-XXXXXX");
        fd = mkostemp (tmpl, O_CLOEXEC);
        if (fd < 0) {
                kiln_api_status (resp, 500, "InternalError", "cannot spool the upload: %s",
                                 strerror (errno));
                return;
        }
        unlink (tmpl);
        resp->spool_fd = fd;
        resp->spool_limit = limit;
}

void
kiln_upload_handle (kiln_store *s, kiln_runner *r, const char *ns, const char *name,
                    const kiln_http_request *req, kiln_http_response *resp)
{
        cleanup_free char *uid = NULL;
        cleanup_free char *tmp = NULL;
        cleanup_free char *dest = NULL;
        cleanup_free char *final = NULL;
        kiln_extract_opts xo;
        kiln_error *err = NULL;
        int fd = kiln_http_spool_fd (req);
        struct stat st;

        if (fd < 0 || r == NULL) {
                kiln_api_status (resp, 500, "InternalError", "the upload was not spooled");
                return;
        }
        if (check_run (&uid, s, r, ns, name, resp) < 0)
                return;
        if (fstat (fd, &st) == 0 && st.st_size == 0) {
                kiln_api_status (resp, 400, "BadRequest",
                                 "source upload for buildrun %s: the body is empty (want a tar "
                                 "or tar.gz)",
                                 name);
                return;
        }
        tmp = kiln_runner_upload_dir (r, ".extract-XXXXXX");
        if (mkdtemp (tmp) == NULL) {
                kiln_api_status (resp, 500, "InternalError", "cannot extract the upload: %s",
                                 strerror (errno));
                return;
        }
        dest = kiln_strdup_printf ("%s/source", tmp);
        kiln_extract_opts_init (&xo);
        xo.no_whiteouts = true;
        if (mkdir (dest, 0700) < 0)
                kiln_error_makec (&err, KILN_E_IO, errno, "mkdir %s", dest);
        else
                kiln_layer_extract_fd (fd, dest, &xo, NULL, &err);
        if (err) {
                kiln_rm_rf (tmp, NULL);
                kiln_api_status (resp, err->code == KILN_E_TOO_LARGE ? 413 : 400,
                                 err->code == KILN_E_TOO_LARGE ? "RequestEntityTooLarge"
                                                               : "BadRequest",
                                 "source upload for buildrun %s refused: %s", name, err->msg);
                kiln_error_free (err);
                return;
        }
        final = kiln_runner_upload_dir (r, uid);
        if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
                int e = errno;
                kiln_rm_rf (tmp, NULL);
                if (e == EEXIST || e == ENOTEMPTY)
                        kiln_api_status (resp, 409, "Conflict",
                                         "the source of buildrun %s was already uploaded", name);
                else
                        kiln_api_status (resp, 500, "InternalError", "cannot store the upload: %s",
                                         strerror (e));
                return;
        }
        kiln_info ("buildrun %s/%s: source uploaded (%lld bytes)", ns, name,
                   (long long) st.st_size);
        {
                json_t *ok
                    = json_pack ("{s:s,s:s,s:{},s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1",
                                 "metadata", "status", "Success", "message", "", "code", 200);
                char *msg = kiln_strdup_printf ("source of buildrun %s uploaded (%lld bytes)", name,
                                                (long long) st.st_size);
                json_object_set_new (ok, "message", json_string (msg));
                free (msg);
                char *body = json_dumps (ok, JSON_COMPACT | JSON_SORT_KEYS);
                resp->status = 200;
                resp->content_type = "application/json";
                resp->body = kiln_strdup_printf ("%s\n", body);
                resp->len = strlen (resp->body);
                free (body);
                json_decref (ok);
        }
}
