/* kiln: a BuildRun's output image: output.timestamp's rules, and the
 * image-processing step kiln serve runs after a strategy's steps (as
 * Shipwright adds step-image-processing, reference §3.3 and §4.3).
 *
 * The step is `kiln image-processing` run like any other step: in the
 * run's environment, so it sees only the pushSecret (DOCKER_CONFIG) and
 * never the daemon's own credentials. */
#include <string.h>
#include <time.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/imgproc.h"
#include "kiln/kv.h"
#include "kiln/serve.h"

static const char *
timestamp_of (const json_t *output)
{
        return json_string_value (json_object_get (output, "timestamp"));
}

static bool
is_decimal (const char *s)
{
        int64_t v;

        return kiln_parse_int64 (s, INT64_MIN, INT64_MAX, &v) == 0;
}

const char *
kiln_output_timestamp_check (const json_t *spec, char **message)
{
        const char *ts = timestamp_of (json_object_get (spec, "output"));
        const json_t *src = json_object_get (spec, "source");

        *message = NULL;
        if (ts == NULL || *ts == '\0' || strcmp (ts, "Zero") == 0
            || strcmp (ts, "BuildTimestamp") == 0)
                return NULL;
        if (strcmp (ts, "SourceTimestamp") == 0) {
                if (json_object_get (src, "git") || json_object_get (src, "ociArtifact")
                    || json_object_get (src, "local"))
                        return NULL;
                *message = kiln_strdup (
                    "cannot use SourceTimestamp output image setting with an empty build source");
                return "OutputTimestampNotSupported";
        }
        if (is_decimal (ts))
                return NULL;
        *message = kiln_strdup ("output timestamp value is invalid, must be Zero, SourceTimestamp, "
                                "BuildTimestamp, or number");
        return "OutputTimestampNotValid";
}

int64_t
kiln_rfc3339_parse (const char *s)
{
        struct tm tm = { 0 };
        int64_t v[6];
        static const struct {
                size_t at, len;
                char after;
        } parts[] = { { 0, 4, '-' },  { 5, 2, '-' },  { 8, 2, 'T' },
                      { 11, 2, ':' }, { 14, 2, ':' }, { 17, 2, 'Z' } };

        if (s == NULL || strlen (s) != 20)
                return -1;
        for (size_t i = 0; i < KILN_N_ELEMENTS (parts); i++) {
                char buf[8];
                memcpy (buf, s + parts[i].at, parts[i].len);
                buf[parts[i].len] = '\0';
                if (s[parts[i].at + parts[i].len] != parts[i].after
                    || kiln_parse_int64 (buf, 0, 9999, &v[i]) < 0)
                        return -1;
        }
        tm.tm_year = (int) v[0] - 1900;
        tm.tm_mon = (int) v[1] - 1;
        tm.tm_mday = (int) v[2];
        tm.tm_hour = (int) v[3];
        tm.tm_min = (int) v[4];
        tm.tm_sec = (int) v[5];
        return (int64_t) timegm (&tm);
}

/* The seconds output.timestamp asks for; -1: keep the image's. */
static int
resolve_timestamp (int64_t *out, const kiln_output_plan *p, kiln_error **err)
{
        const char *ts = timestamp_of (p->output);

        *out = -1;
        if (ts == NULL || *ts == '\0')
                return 0;
        if (strcmp (ts, "Zero") == 0) {
                *out = 0;
        } else if (strcmp (ts, "SourceTimestamp") == 0) {
                if (p->source_time < 0)
                        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                                 "cannot use SourceTimestamp setting, because "
                                                 "there is no source timestamp available for "
                                                 "this source");
                *out = p->source_time;
        } else if (strcmp (ts, "BuildTimestamp") == 0) {
                *out = p->created >= 0 ? p->created : (int64_t) time (NULL);
        } else if (kiln_parse_int64 (ts, 0, KILN_IMGPROC_TIMESTAMP_MAX, out) < 0) {
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "output timestamp `%s` is not a number of seconds "
                                         "between 1970 and the year 9999",
                                         ts);
        }
        return 0;
}

static char **
add_pairs (char **argv, const char *flag, const json_t *map)
{
        const char *key;
        json_t *value;

        json_object_foreach ((json_t *) map, key, value)
        {
                cleanup_free char *kv = NULL;
                if (!json_is_string (value))
                        continue;
                kv = kiln_strdup_printf ("%s=%s", key, json_string_value (value));
                argv = kiln_strv_append (argv, flag);
                argv = kiln_strv_append (argv, kv);
        }
        return argv;
}

static char **
add_result (char **argv, const char *flag, const char *results, const char *name)
{
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", results, name);

        argv = kiln_strv_append (argv, flag);
        return kiln_strv_append (argv, path);
}

int
kiln_output_step_argv (char ***argv, bool *optional, const kiln_output_plan *p, kiln_error **err)
{
        const json_t *labels = json_object_get (p->output, "labels");
        const json_t *annotations = json_object_get (p->output, "annotations");
        const char *image = json_string_value (json_object_get (p->output, "image"));
        cleanup_free char *pinned = NULL;
        char **v;
        int64_t ts;
        bool changes;

        *argv = NULL;
        *optional = false;
        if (image == NULL)
                return 0;
        if (resolve_timestamp (&ts, p, err) < 0)
                return -1;
        changes = json_object_size (labels) || json_object_size (annotations) || ts >= 0;
        if (p->output_dir == NULL && !changes) {
                /* Only the size of what the strategy pushed is missing. */
                if (p->digest == NULL || p->has_size || strchr (image, '@'))
                        return 0;
                *optional = true;
                pinned = kiln_strdup_printf ("%s@%s", image, p->digest);
                image = pinned;
        }
        v = kiln_strv_new ();
        v = kiln_strv_append (v, p->kiln_path);
        v = kiln_strv_append (v, "image-processing");
        v = kiln_strv_append (v, "--quiet");
        v = kiln_strv_append (v, "--image");
        v = kiln_strv_append (v, image);
        if (p->output_dir) {
                v = kiln_strv_append (v, "--push");
                v = kiln_strv_append (v, p->output_dir);
        }
        v = add_pairs (v, "--label", labels);
        v = add_pairs (v, "--annotation", annotations);
        if (ts >= 0) {
                char n[32];
                snprintf (n, sizeof n, "%lld", (long long) ts);
                v = kiln_strv_append (v, "--image-timestamp");
                v = kiln_strv_append (v, n);
        }
        if (json_is_true (json_object_get (p->output, "insecure")))
                v = kiln_strv_append (v, "--insecure");
        v = add_result (v, "--result-file-image-digest", p->results, "shp-image-digest");
        v = add_result (v, "--result-file-image-size", p->results, "shp-image-size");
        v = add_result (v, "--result-file-error-reason", p->results, "shp-error-reason");
        v = add_result (v, "--result-file-error-message", p->results, "shp-error-message");
        *argv = v;
        return 0;
}
