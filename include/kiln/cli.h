/* kiln: the command-line interface.  builder/main.c only wires the commands
 * below; each command lives in its own builder/cmd_<name>.c.
 *
 * Exit codes: 0 success, 1 failure, 2 usage error. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "error.h"
#include "registry.h"

#define KILN_EXIT_OK 0
#define KILN_EXIT_FAILURE 1
#define KILN_EXIT_USAGE 2

typedef struct kiln_global {
        bool quiet; /* nothing but results */
        bool json;  /* machine output on stdout, JSON log lines */
} kiln_global;

typedef struct kiln_command {
        const char *name;
        int (*run) (kiln_global *g, int argc, char **argv);
        const char *summary; /* one line */
        const char *usage;   /* the full help text */
} kiln_command;

/* Options every command accepts; command getopt tables start with these. */
enum {
        KILN_OPT_QUIET = 0x1000,
        KILN_OPT_JSON,
        KILN_OPT_LOG_LEVEL,
        KILN_OPT_HELP,
        KILN_OPT_FIRST_COMMAND_OPT, /* commands number their own from here */
};

#define KILN_GLOBAL_LONGOPTS                                                                       \
        { "quiet", no_argument, NULL, KILN_OPT_QUIET },                                            \
            { "json", no_argument, NULL, KILN_OPT_JSON },                                          \
            { "log-level", required_argument, NULL, KILN_OPT_LOG_LEVEL },                          \
        {                                                                                          \
                "help", no_argument, NULL, KILN_OPT_HELP                                           \
        }

#define KILN_GLOBAL_HELP                                                                           \
        "Common options:\n"                                                                        \
        "  -q, --quiet           print nothing but results\n"                                      \
        "      --json            machine-readable output on stdout; JSON log lines\n"              \
        "      --log-level L     debug, info, warn (default), error or off\n"                      \
        "  -h, --help            show this help\n"

/* Handles a global option inside a command's getopt loop.  Returns 1 if
 * `opt` was one (help prints cmd->usage and exits 0), 0 if not, and -1 with
 * a usage message on stderr for a bad value. */
int kiln_cli_global_opt (kiln_global *g, const kiln_command *cmd, int opt, const char *arg);

/* Prints "kiln CMD: MESSAGE" and a hint to stderr; returns KILN_EXIT_USAGE. */
int kiln_cli_usage_error (const kiln_command *cmd, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Reports a failure: "kiln: error: MESSAGE" on stderr (or a JSON object
 * {"error":..,"code":..} on stdout with --json), frees e, returns 1. */
int kiln_cli_fail (kiln_global *g, kiln_error *e);

/* ---- options shared by the commands that talk to registries ---- */

enum {
        KILN_OPT_INSECURE_REGISTRY = 0x1100,
        KILN_OPT_REGISTRY_CA,
        KILN_OPT_REGISTRY_TIMEOUT,
        KILN_OPT_REGISTRIES_CONFIG,
        KILN_OPT_PLATFORM,
        KILN_OPT_DIGEST_FILE,
        KILN_OPT_JOBS,
        KILN_OPT_UPLOAD_CHUNK,
};

#define KILN_REGISTRY_LONGOPTS                                                                     \
        { "insecure-registry", required_argument, NULL, KILN_OPT_INSECURE_REGISTRY },              \
            { "registry-ca", required_argument, NULL, KILN_OPT_REGISTRY_CA },                      \
            { "registry-timeout", required_argument, NULL, KILN_OPT_REGISTRY_TIMEOUT },            \
            { "registries-config", required_argument, NULL, KILN_OPT_REGISTRIES_CONFIG },          \
            { "platform", required_argument, NULL, KILN_OPT_PLATFORM },                            \
            { "digest-file", required_argument, NULL, KILN_OPT_DIGEST_FILE },                      \
            { "jobs", required_argument, NULL, KILN_OPT_JOBS },                                    \
        {                                                                                          \
                "upload-chunk", required_argument, NULL, KILN_OPT_UPLOAD_CHUNK                     \
        }

#define KILN_REGISTRY_HELP                                                                         \
        "Registry options:\n"                                                                      \
        "      --insecure-registry HOST  plain HTTP or unverified TLS for HOST[:PORT]\n"           \
        "      --registry-ca HOST=FILE   trust the PEM CA FILE for HOST[:PORT]\n"                  \
        "      --registry-timeout DUR    give up on an unresponsive registry (default 60s)\n"      \
        "      --registries-config FILE  per-registry settings (see docs/registry.md)\n"           \
        "      --platform OS/ARCH[/VAR]  the image to pick from an index (default: host)\n"        \
        "      --digest-file FILE        write the manifest digest to FILE\n"                      \
        "      --jobs N                  parallel blob transfers (default 4)\n"                    \
        "      --upload-chunk SIZE       upload blobs in PATCH chunks of SIZE (e.g. 5M)\n"

typedef struct kiln_cli_registry {
        kiln_registry_opts opts;
        const char *config_file;
        const char *digest_file;
        kiln_platform *platform; /* NULL: the host's */
        const char *verb;        /* "pushed", "pulled": for progress lines */
        void *progress;          /* the progress printer's state */
} kiln_cli_registry;

void kiln_cli_registry_init (kiln_cli_registry *o, const char *verb);
void kiln_cli_registry_clear (kiln_cli_registry *o);

/* Handles a registry option inside a command's getopt loop, as
 * kiln_cli_global_opt does. */
int kiln_cli_registry_opt (kiln_cli_registry *o, const kiln_command *cmd, int opt, const char *arg);

/* Parses a registry command's arguments: the global and registry
 * options, the command's own `extra` ones (handed to on_extra, which
 * returns 1 when it took one), and exactly nargs operands left at
 * argv[optind].  Prints usage errors; returns -1 on one. */
int kiln_cli_registry_args (kiln_cli_registry *o, kiln_global *g, const kiln_command *cmd, int argc,
                            char **argv, int nargs, const struct option *extra,
                            int (*on_extra) (void *data, int opt), void *data);

/* A client from the options (and the registries file), printing progress
 * on stderr unless --quiet or --json. */
int kiln_cli_registry_client (kiln_registry **out, kiln_cli_registry *o, const kiln_global *g,
                              kiln_error **err);

/* Prints the result of a command that made or found a manifest: the
 * digest (or {"reference","digest"} with --json), and writes the digest
 * file when asked.  What the client did is logged at info level. */
int kiln_cli_registry_result (const kiln_cli_registry *o, const kiln_global *g,
                              const kiln_registry *r, const char *reference, const char *digest,
                              kiln_error **err);

/* Pulls ref (platform from o) into an on-disk location: straight into
 * an oci: layout (tagged with dst's tag, else ref's), or through a
 * temporary layout exported to an archive. */
int kiln_cli_pull_to (kiln_registry *r, const kiln_cli_registry *o, const kiln_reference *ref,
                      const kiln_location *dst, char digest[KILN_DIGEST_MAX], kiln_error **err);

/* The commands. */
extern const kiln_command kiln_cmd_version;
extern const kiln_command kiln_cmd_build;
extern const kiln_command kiln_cmd_append;
extern const kiln_command kiln_cmd_pull;
extern const kiln_command kiln_cmd_push;
extern const kiln_command kiln_cmd_copy;
extern const kiln_command kiln_cmd_inspect;
extern const kiln_command kiln_cmd_digest;
extern const kiln_command kiln_cmd_tag;
extern const kiln_command kiln_cmd_layer;
extern const kiln_command kiln_cmd_stack;
extern const kiln_command kiln_cmd_rebase;
extern const kiln_command kiln_cmd_serve;
extern const kiln_command kiln_cmd_image_processing;
extern const kiln_command kiln_cmd_get;
extern const kiln_command kiln_cmd_apply;
extern const kiln_command kiln_cmd_delete;
extern const kiln_command kiln_cmd_logs;
extern const kiln_command kiln_cmd_cancel;
extern const kiln_command kiln_cmd_upload;

/* All commands, NULL-terminated, in the order `kiln --help` lists them. */
extern const kiln_command *const kiln_commands[];

/* Version strings. */
#ifndef KILN_VERSION
#define KILN_VERSION "0.1.0"
#endif
#ifndef KILN_COMMIT
#define KILN_COMMIT "unknown"
#endif

#endif
