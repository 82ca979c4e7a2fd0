/* kiln: options, progress and results shared by the registry commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/json.h"
#include "kiln/log.h"
#include "kiln/registry.h"

typedef struct progress {
        bool tty;
        const char *verb;
        int64_t started_ms;
        uint64_t bytes;
        bool line_open;
} progress;

static int64_t
now_ms (void)
{
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
human (char out[32], double bytes)
{
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        size_t u = 0;

        while (bytes >= 1024 && u + 1 < KILN_N_ELEMENTS (units)) {
                bytes /= 1024;
                u++;
        }
        snprintf (out, 32, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

/* "sha256:0123456789ab" */
static void
short_digest (char out[20], const char *digest)
{
        snprintf (out, 20, "%.19s", digest);
}

static void
on_progress (void *data, kiln_progress_event ev, const char *digest, uint64_t done, uint64_t total)
{
        progress *p = data;
        char d[20], a[32], b[32], s[32];
        double secs;

        short_digest (d, digest);
        switch (ev) {
        case KILN_PROGRESS_START:
                p->started_ms = now_ms ();
                return;
        case KILN_PROGRESS_BYTES:
                if (!p->tty)
                        return;
                secs = (double) (now_ms () - p->started_ms) / 1000.0;
                human (a, (double) done);
                human (b, (double) total);
                human (s, secs > 0 ? (double) done / secs : 0);
                fprintf (stderr, "\r\033[K%s: %s / %s (%s/s)", d, a, b, s);
                p->line_open = true;
                return;
        default:
                break;
        }
        if (p->line_open)
                fputs ("\r\033[K", stderr);
        p->line_open = false;
        human (a, (double) total);
        if (ev == KILN_PROGRESS_EXISTS)
                fprintf (stderr, "%s: already there\n", d);
        else if (ev == KILN_PROGRESS_MOUNTED)
                fprintf (stderr, "%s: mounted (%s)\n", d, a);
        else
                fprintf (stderr, "%s: %s %s\n", d, p->verb, a);
}

void
kiln_cli_registry_init (kiln_cli_registry *o, const char *verb)
{
        memset (o, 0, sizeof (*o));
        kiln_registry_opts_init (&o->opts);
        o->verb = verb;
}

void
kiln_cli_registry_clear (kiln_cli_registry *o)
{
        kiln_registry_opts_clear (&o->opts);
        kiln_platform_free (o->platform);
        free (o->progress);
        memset (o, 0, sizeof (*o));
}

int
kiln_cli_registry_opt (kiln_cli_registry *o, const kiln_command *cmd, int opt, const char *arg)
{
        cleanup_error kiln_error *err = NULL;
        int64_t v;
        uint64_t size;

        switch (opt) {
        case KILN_OPT_INSECURE_REGISTRY:
                kiln_registry_opts_add_insecure (&o->opts, arg);
                return 1;
        case KILN_OPT_REGISTRY_CA:
                if (kiln_registry_opts_add_ca (&o->opts, arg, &err) < 0) {
                        kiln_cli_usage_error (cmd, "%s", err->msg);
                        return -1;
                }
                return 1;
        case KILN_OPT_REGISTRY_TIMEOUT:
                if (kiln_parse_duration_ms (arg, &v) < 0 || v <= 0) {
                        kiln_cli_usage_error (cmd, "--registry-timeout wants a duration, got `%s`",
                                              arg);
                        return -1;
                }
                o->opts.timeout_ms = v;
                return 1;
        case KILN_OPT_REGISTRIES_CONFIG:
                o->config_file = arg;
                return 1;
        case KILN_OPT_PLATFORM:
                kiln_platform_free (o->platform);
                o->platform = NULL;
                if (kiln_platform_parse (&o->platform, arg, &err) < 0) {
                        kiln_cli_usage_error (cmd, "%s", err->msg);
                        return -1;
                }
                return 1;
        case KILN_OPT_DIGEST_FILE:
                o->digest_file = arg;
                return 1;
        case KILN_OPT_JOBS:
                if (kiln_parse_int64 (arg, 1, KILN_REGISTRY_JOBS_MAX, &v) < 0) {
                        kiln_cli_usage_error (cmd, "--jobs wants 1 to %d, got `%s`",
                                              KILN_REGISTRY_JOBS_MAX, arg);
                        return -1;
                }
                o->opts.jobs = (int) v;
                return 1;
        case KILN_OPT_UPLOAD_CHUNK:
                if (kiln_parse_size (arg, &size) < 0 || size == 0) {
                        kiln_cli_usage_error (cmd, "--upload-chunk wants a size, got `%s`", arg);
                        return -1;
                }
                o->opts.chunk_size = size;
                return 1;
        default:
                return 0;
        }
}

int
kiln_cli_registry_client (kiln_registry **out, kiln_cli_registry *o, const kiln_global *g,
                          kiln_error **err)
{
        if (kiln_registry_opts_load (&o->opts, o->config_file, err) < 0)
                return -1;
        if (!g->quiet && !g->json) {
                progress *p = kiln_calloc (1, sizeof (*p));
                p->tty = isatty (STDERR_FILENO);
                p->verb = o->verb;
                o->progress = p;
                o->opts.progress = on_progress;
                o->opts.progress_data = p;
        }
        return kiln_registry_new (out, &o->opts, err);
}

int
kiln_cli_registry_result (const kiln_cli_registry *o, const kiln_global *g, const kiln_registry *r,
                          const char *reference, const char *digest, kiln_error **err)
{
        if (r) {
                kiln_registry_stats st;
                kiln_registry_get_stats (r, &st);
                kiln_info ("%llu requests (%llu retried), %llu blobs uploaded, %llu mounted, "
                           "%llu already there, %llu bytes up, %llu bytes down",
                           (unsigned long long) st.requests, (unsigned long long) st.retries,
                           (unsigned long long) st.blobs_uploaded,
                           (unsigned long long) st.blobs_mounted,
                           (unsigned long long) st.blobs_existing, (unsigned long long) st.bytes_up,
                           (unsigned long long) st.bytes_down);
        }
        if (o->digest_file) {
                cleanup_free char *line = kiln_strdup_printf ("%s\n", digest);
                if (kiln_write_file (o->digest_file, line, strlen (line), 0644, err) < 0)
                        return kiln_error_wrap (err, "digest file");
        }
        if (g->json) {
                cleanup_kiln_json kiln_json *j = kiln_json_object ();
                cleanup_free char *s = NULL;
                kiln_json_set_str (j, "reference", reference);
                kiln_json_set_str (j, "digest", digest);
                if (kiln_json_format (&s, j, err) < 0)
                        return -1;
                printf ("%s\n", s);
        } else {
                printf ("%s\n", digest);
        }
        fflush (stdout);
        return 0;
}

int
kiln_cli_registry_args (kiln_cli_registry *o, kiln_global *g, const kiln_command *cmd, int argc,
                        char **argv, int nargs, const struct option *extra,
                        int (*on_extra) (void *data, int opt), void *data)
{
        static const struct option base[] = { KILN_GLOBAL_LONGOPTS, KILN_REGISTRY_LONGOPTS };
        struct option longopts[KILN_N_ELEMENTS (base) + 16];
        size_t n = 0;
        int opt;

        for (size_t i = 0; i < KILN_N_ELEMENTS (base); i++)
                longopts[n++] = base[i];
        for (; extra && extra->name && n + 1 < KILN_N_ELEMENTS (longopts); extra++)
                longopts[n++] = *extra;
        memset (&longopts[n], 0, sizeof longopts[n]);
        optind = 1;
        while ((opt = getopt_long (argc, argv, "qh", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, cmd, opt, optarg);
                if (r == 0)
                        r = kiln_cli_registry_opt (o, cmd, opt, optarg);
                if (r == 0 && on_extra)
                        r = on_extra (data, opt);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        kiln_cli_usage_error (cmd, "unknown option");
                        return -1;
                }
        }
        if (argc - optind != nargs) {
                kiln_cli_usage_error (cmd, "expected %d argument%s", nargs, nargs == 1 ? "" : "s");
                return -1;
        }
        return 0;
}

int
kiln_cli_pull_to (kiln_registry *r, const kiln_cli_registry *o, const kiln_reference *ref,
                  const kiln_location *dst, char digest[KILN_DIGEST_MAX], kiln_error **err)
{
        cleanup_free char *tmp = NULL;
        const char *dir = dst->path;
        cleanup_free char *blob = NULL;
        kiln_descriptor desc = { 0 };
        int ret = -1;

        if (dst->transport != KILN_TRANSPORT_OCI) {
                if (kiln_mkdtemp (&tmp, "pull", err) < 0)
                        return -1;
                dir = tmp;
        }
        if (kiln_registry_pull (r, ref, o->platform, dir, digest, err) < 0)
                goto out;
        if (dst->transport != KILN_TRANSPORT_OCI) {
                ret = kiln_layout_export (dir, digest, dst, err);
                goto out;
        }
        /* The layout is the destination: only index.json is left. */
        blob = kiln_layout_blob_path (dir, digest);
        {
                cleanup_free char *raw = NULL;
                size_t len = 0;
                if (kiln_read_file (&raw, &len, blob, KILN_MANIFEST_MAX, err) < 0)
                        goto out;
                desc.media_type
                    = kiln_strdup (kiln_manifest_kind_of (raw, len, NULL) == KILN_KIND_INDEX
                                       ? KILN_MT_OCI_INDEX
                                       : KILN_MT_OCI_MANIFEST);
                {
                        cleanup_manifest kiln_manifest *m = NULL;
                        if (kiln_manifest_parse (&m, raw, len, NULL) == 0 && m->media_type) {
                                free (desc.media_type);
                                desc.media_type = kiln_strdup (m->media_type);
                        }
                }
                desc.size = (int64_t) len;
        }
        kiln_strlcpy (desc.digest, digest, sizeof desc.digest);
        ret = kiln_layout_add_manifest (dir, &desc, dst->tag ? dst->tag : ref->tag, err);
out:
        kiln_descriptor_clear (&desc);
        if (tmp)
                kiln_rm_rf (tmp, NULL);
        return ret;
}
