/* kiln: the command-line interface.  builder/main.c only wires the commands
 * below; each command lives in its own builder/cmd_<name>.c.
 *
 * Exit codes: 0 success, 1 failure, 2 usage error. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "error.h"

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

/* The commands. */
extern const kiln_command kiln_cmd_version;
extern const kiln_command kiln_cmd_append;
extern const kiln_command kiln_cmd_layer;

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
