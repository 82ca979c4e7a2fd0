/* kiln serve: the build service, speaking the Shipwright API over REST. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/cli.h"
#include "kiln/digest.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/serve.h"
#include "kiln/serve_metrics.h"

#define TOKEN_MAX 4096
/* How long events of finished BuildRuns may take to go out at stop. */
#define SINK_DRAIN_MS 5000

typedef struct serve_opts {
        const char *listen;
        const char *data_dir;
        const char *token_file;
        const char *strategies;
        int64_t max_concurrent;
        int64_t history;
        int64_t grace_ms;
        uint64_t max_body;
        const char *unix_path;
        const char *tls_cert;
        const char *tls_key;
        const char *events_sink;
        bool listen_given;
        uint64_t max_source;
} serve_opts;

enum {
        OPT_LISTEN = KILN_OPT_FIRST_COMMAND_OPT,
        OPT_DATA_DIR,
        OPT_TOKEN_FILE,
        OPT_MAX_CONCURRENT,
        OPT_STRATEGIES,
        OPT_EVENT_HISTORY,
        OPT_SHUTDOWN_GRACE,
        OPT_MAX_BODY,
        OPT_UNIX,
        OPT_TLS_CERT,
        OPT_TLS_KEY,
        OPT_EVENTS_SINK,
        OPT_MAX_SOURCE,
};

static int
take_opt (serve_opts *o, const kiln_command *cmd, int opt, const char *arg)
{
        switch (opt) {
        case OPT_LISTEN:
                o->listen = arg;
                o->listen_given = true;
                return 1;
        case OPT_UNIX:
                o->unix_path = arg;
                return 1;
        case OPT_TLS_CERT:
                o->tls_cert = arg;
                return 1;
        case OPT_TLS_KEY:
                o->tls_key = arg;
                return 1;
        case OPT_EVENTS_SINK:
                o->events_sink = arg;
                return 1;
        case OPT_DATA_DIR:
                o->data_dir = arg;
                return 1;
        case OPT_TOKEN_FILE:
                o->token_file = arg;
                return 1;
        case OPT_STRATEGIES:
                o->strategies = arg;
                return 1;
        case OPT_MAX_CONCURRENT:
                if (kiln_parse_int64 (arg, 1, 256, &o->max_concurrent) < 0)
                        return kiln_cli_usage_error (cmd, "--max-concurrent wants 1..256"), -1;
                return 1;
        case OPT_EVENT_HISTORY:
                if (kiln_parse_int64 (arg, 1, 100000000, &o->history) < 0)
                        return kiln_cli_usage_error (cmd, "--event-history wants a count"), -1;
                return 1;
        case OPT_SHUTDOWN_GRACE:
                if (kiln_go_duration_parse (arg, &o->grace_ms) < 0)
                        return kiln_cli_usage_error (cmd, "--shutdown-grace wants a duration"), -1;
                return 1;
        case OPT_MAX_BODY:
                if (kiln_parse_size (arg, &o->max_body) < 0 || o->max_body == 0)
                        return kiln_cli_usage_error (cmd, "--max-body wants a size (8M)"), -1;
                return 1;
        case OPT_MAX_SOURCE:
                if (kiln_parse_size (arg, &o->max_source) < 0 || o->max_source == 0)
                        return kiln_cli_usage_error (cmd, "--max-source-size wants a size (1G)"),
                               -1;
                return 1;
        default:
                return 0;
        }
}

static int
parse_args (serve_opts *o, kiln_global *g, int argc, char **argv)
{
        static const struct option longopts[] = {
                KILN_GLOBAL_LONGOPTS,
                { "listen", required_argument, NULL, OPT_LISTEN },
                { "data-dir", required_argument, NULL, OPT_DATA_DIR },
                { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
                { "max-concurrent", required_argument, NULL, OPT_MAX_CONCURRENT },
                { "strategies", required_argument, NULL, OPT_STRATEGIES },
                { "event-history", required_argument, NULL, OPT_EVENT_HISTORY },
                { "shutdown-grace", required_argument, NULL, OPT_SHUTDOWN_GRACE },
                { "max-body", required_argument, NULL, OPT_MAX_BODY },
                { "unix", required_argument, NULL, OPT_UNIX },
                { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
                { "tls-key", required_argument, NULL, OPT_TLS_KEY },
                { "events-sink", required_argument, NULL, OPT_EVENTS_SINK },
                { "max-source-size", required_argument, NULL, OPT_MAX_SOURCE },
                { NULL, 0, NULL, 0 },
        };
        const kiln_command *cmd = &kiln_cmd_serve;
        int opt;

        optind = 1;
        while ((opt = getopt_long (argc, argv, "qh", longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (g, cmd, opt, optarg);
                if (r == 0)
                        r = take_opt (o, cmd, opt, optarg);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        kiln_cli_usage_error (cmd, "unknown option");
                        return -1;
                }
        }
        if (optind < argc) {
                kiln_cli_usage_error (cmd, "unexpected argument `%s`", argv[optind]);
                return -1;
        }
        if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
                kiln_cli_usage_error (cmd, "--tls-cert and --tls-key go together");
                return -1;
        }
        /* --unix alone listens only there; with --listen, on both. */
        if (o->unix_path && !o->listen_given)
                o->listen = NULL;
        if (o->tls_cert && o->listen == NULL) {
                kiln_cli_usage_error (cmd,
                                      "--tls-cert needs --listen (the Unix socket is plain HTTP)");
                return -1;
        }
        return 0;
}

/* ---- where things are ---- */

static char *
default_data_dir (void)
{
        const char *state = getenv ("XDG_STATE_HOME");
        const char *home = getenv ("HOME");

        if (state && *state)
                return kiln_strdup_printf ("%s/kiln/serve", state);
        return kiln_strdup_printf ("%s/.local/state/kiln/serve", home && *home ? home : "/tmp");
}

static char *
self_path (void)
{
        char buf[PATH_MAX];
        ssize_t n = readlink ("/proc/self/exe", buf, sizeof buf - 1);

        if (n <= 0)
                return kiln_strdup ("kiln");
        buf[n] = '\0';
        return kiln_strdup (buf);
}

/* An install's PREFIX/share/kiln/strategies, or the source tree's
 * strategies/ when kiln runs from its build directory. */
static char *
default_strategies (const char *exe)
{
        static const char *const rel[]
            = { "../share/kiln/strategies", "../strategies", "../../strategies" };
        cleanup_free char *dir = kiln_strdup (exe);
        char *slash = strrchr (dir, '/');

        if (slash)
                *slash = '\0';
        for (size_t i = 0; i < KILN_N_ELEMENTS (rel); i++) {
                char *p = kiln_strdup_printf ("%s/%s", dir, rel[i]);
                if (kiln_is_dir (p))
                        return p;
                free (p);
        }
        return NULL;
}

/* The token from --token-file, else DATA/token, made on first start. */
static int
load_token (char **out, const serve_opts *o, const char *data_dir, kiln_error **err)
{
        cleanup_free char *made = kiln_strdup_printf ("%s/token", data_dir);
        const char *path = o->token_file ? o->token_file : made;
        char *data = NULL;
        size_t len;

        if (o->token_file == NULL && access (made, F_OK) < 0) {
                unsigned char raw[32];
                if (kiln_random_bytes (raw, sizeof raw, err) < 0)
                        return -1;
                cleanup_free char *hex = kiln_calloc (sizeof raw * 2 + 2, 1);
                for (size_t i = 0; i < sizeof raw; i++)
                        snprintf (hex + 2 * i, 3, "%02x", raw[i]);
                hex[sizeof raw * 2] = '\n';
                if (kiln_write_file (made, hex, strlen (hex), 0600, err) < 0)
                        return -1;
                kiln_info ("made a bearer token in %s", made);
        }
        if (kiln_read_file (&data, &len, path, TOKEN_MAX, err) < 0)
                return kiln_error_wrap (err, "token file");
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
                data[--len] = '\0';
        if (len < 16) {
                free (data);
                return kiln_error_makec (
                    err, KILN_E_INVALID, 0,
                    "token file `%s`: the token must be at least 16 characters", path);
        }
        *out = data;
        return 0;
}

/* ---- running ---- */

typedef struct daemon_parts {
        kiln_store *store;
        kiln_events_sink *sink;
        kiln_metrics *metrics;
        kiln_runner *runner;
        kiln_reaper *reaper;
        kiln_api *api;
        kiln_http_server *http;
        char *token;
} daemon_parts;

static int
start (daemon_parts *d, const serve_opts *o, const char *data_dir, kiln_error **err)
{
        cleanup_free char *exe = self_path ();
        cleanup_free char *strategies
            = o->strategies ? kiln_strdup (o->strategies) : default_strategies (exe);
        kiln_runner_opts ro = { .data_dir = data_dir,
                                .kiln_path = exe,
                                .max_concurrent = (unsigned) o->max_concurrent };
        kiln_api_opts ao = { 0 };
        kiln_http_opts ho = { .listen = o->listen,
                              .unix_path = o->unix_path,
                              .tls_cert = o->tls_cert,
                              .tls_key = o->tls_key,
                              .max_body = o->max_body };

        if (kiln_store_open (&d->store, data_dir, (size_t) o->history, err) < 0
            || load_token (&d->token, o, data_dir, err) < 0)
                return -1;
        if (strategies && kiln_strategies_load (d->store, strategies, err) < 0)
                return -1;
        if (strategies == NULL)
                kiln_warn ("no strategies directory found beside %s; use --strategies", exe);
        ro.store = d->store;
        if (o->events_sink && kiln_events_sink_start (&d->sink, o->events_sink, err) < 0)
                return -1;
        /* Before the runner: the BuildRuns its recovery fails are news. */
        if (kiln_metrics_start (&d->metrics, d->store, d->sink, err) < 0)
                return -1;
        if (kiln_runner_start (&d->runner, &ro, err) < 0
            || kiln_reaper_start (&d->reaper, d->store, d->runner, err) < 0)
                return -1;
        kiln_metrics_set_runner (d->metrics, d->runner);
        ao = (kiln_api_opts){ .store = d->store,
                              .runner = d->runner,
                              .metrics = d->metrics,
                              .token = d->token,
                              .max_source = o->max_source };
        kiln_api_new (&d->api, &ao);
        kiln_api_handlers (d->api, &ho.handlers);
        ho.observe = kiln_metrics_observe_http;
        ho.observe_data = d->metrics;
        if (kiln_http_start (&d->http, &ho, err) < 0)
                return -1;
        kiln_info ("kiln serve: listening on %s%s%s%s%s, data in %s, %lld builds at a time",
                   o->listen ? o->listen : "", o->tls_cert ? " (https)" : "",
                   o->listen && o->unix_path ? " and " : "", o->unix_path ? "unix:" : "",
                   o->unix_path ? o->unix_path : "", data_dir, (long long) o->max_concurrent);
        return 0;
}

static void
stop (daemon_parts *d, int64_t grace_ms)
{
        kiln_http_quiesce (d->http);
        kiln_reaper_stop (d->reaper);
        if (d->runner)
                kiln_runner_stop (d->runner, grace_ms);
        if (d->metrics)
                kiln_metrics_set_runner (d->metrics, NULL);
        /* The events of the last statuses go out before the sink stops. */
        kiln_metrics_stop (d->metrics);
        kiln_events_sink_stop (d->sink, SINK_DRAIN_MS);
        if (d->store)
                kiln_store_shutdown (d->store);
        kiln_http_stop (d->http);
        kiln_api_free (d->api);
        kiln_store_free (d->store);
        if (d->token)
                explicit_bzero (d->token, strlen (d->token));
        free (d->token);
}

static int
run (kiln_global *g, int argc, char **argv)
{
        serve_opts o = { .listen = "127.0.0.1:8080", .max_concurrent = 2, .grace_ms = 30000 };
        cleanup_free char *data_dir = NULL;
        daemon_parts d = { 0 };
        kiln_error *err = NULL;
        sigset_t sigs;
        int sig = 0;

        if (kiln_log_get_level () == KILN_LOG_WARN)
                kiln_log_setup (KILN_LOG_INFO, g->json);
        if (parse_args (&o, g, argc, argv) < 0)
                return KILN_EXIT_USAGE;
        data_dir = o.data_dir ? kiln_strdup (o.data_dir) : default_data_dir ();
        /* Every thread inherits the mask, so only sigwait below sees them. */
        sigemptyset (&sigs);
        sigaddset (&sigs, SIGTERM);
        sigaddset (&sigs, SIGINT);
        sigaddset (&sigs, SIGHUP);
        pthread_sigmask (SIG_BLOCK, &sigs, NULL);
        signal (SIGPIPE, SIG_IGN);
        umask (077);
        if (start (&d, &o, data_dir, &err) < 0) {
                stop (&d, 0);
                return kiln_cli_fail (g, err);
        }
        while (sigwait (&sigs, &sig) == 0 && sig == SIGHUP)
                ;
        kiln_info ("kiln serve: signal %d, stopping (running builds get %lld ms)", sig,
                   (long long) o.grace_ms);
        stop (&d, o.grace_ms);
        kiln_info ("kiln serve: stopped");
        return KILN_EXIT_OK;
}

const kiln_command kiln_cmd_serve = {
        "serve",
        run,
        "run the build service (the Shipwright build API over REST)",
        "Usage: kiln serve [options]\n"
        "\n"
        "Serves the Shipwright v1beta1 API (Build, BuildRun, BuildStrategy,\n"
        "ClusterBuildStrategy) and core v1 Secrets as Kubernetes-style JSON over\n"
        "HTTP, runs BuildRuns with the strategies in --strategies, and keeps its\n"
        "records in SQLite under --data-dir.  Every request but /healthz and\n"
        "/readyz needs `Authorization: Bearer TOKEN`.  SIGTERM stops accepting\n"
        "connections, lets running builds finish for --shutdown-grace, then\n"
        "stops them.  GET /metrics gives Prometheus metrics.  See docs/api.md.\n"
        "\n"
        "Options:\n"
        "      --listen ADDR:PORT    where to listen (default 127.0.0.1:8080)\n"
        "      --data-dir DIR        records, logs, work dirs, unpacked step images\n"
        "                            (default $XDG_STATE_HOME/kiln/serve or\n"
        "                            ~/.local/state/kiln/serve)\n"
        "      --token-file F        the bearer token clients must send (default:\n"
        "                            DATA/token, made with a random token on first start)\n"
        "      --max-concurrent N    BuildRuns that run at once (default 2)\n"
        "      --strategies DIR      ClusterBuildStrategy YAML files to load at start\n"
        "                            (default: the strategies/ installed with kiln)\n"
        "      --shutdown-grace DUR  how long running builds may go on after SIGTERM\n"
        "                            (default 30s)\n"
        "      --event-history N     watch events kept for reconnecting clients\n"
        "                            (default 10000)\n"
        "      --max-body SIZE       the largest request body (default 8M)\n"
        "      --tls-cert F, --tls-key F\n"
        "                            serve HTTPS on --listen with this PEM certificate\n"
        "                            (chain) and key; both or neither\n"
        "      --unix PATH           listen on a Unix socket too (plain HTTP, mode 0600,\n"
        "                            removed at exit); without --listen, only there\n"
        "      --events-sink URL     POST a CloudEvent (binary mode, type\n"
        "                            dev.kiln.buildrun.finished) for each BuildRun that\n"
        "                            finishes\n"
        "      --max-source-size SIZE  the largest source upload, a tar or tar.gz\n"
        "                            (default 1G)\n"
        "\n" KILN_GLOBAL_HELP,
};
