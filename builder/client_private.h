/* kiln: what the API client commands (cmd_client.c, cmd_upload.c) share:
 * the options that name the server, the kinds, and one-line errors. */
#ifndef KILN_CLIENT_PRIVATE_H
#define KILN_CLIENT_PRIVATE_H

#include <jansson.h>
#include <stdbool.h>

#include "kiln/apiclient.h"
#include "kiln/cli.h"

enum {
        CLIENT_OPT_SERVER = 0x1200,
        CLIENT_OPT_TOKEN,
        CLIENT_OPT_TOKEN_FILE,
        CLIENT_OPT_CACERT,
};

#define CLIENT_LONGOPTS                                                                            \
        { "server", required_argument, NULL, CLIENT_OPT_SERVER },                                  \
            { "token", required_argument, NULL, CLIENT_OPT_TOKEN },                                \
            { "token-file", required_argument, NULL, CLIENT_OPT_TOKEN_FILE },                      \
            { "cacert", required_argument, NULL, CLIENT_OPT_CACERT },                              \
        {                                                                                          \
                "namespace", required_argument, NULL, 'n'                                          \
        }

#define CLIENT_HELP                                                                                \
        "Server options:\n"                                                                        \
        "      --server URL      kiln serve's address (default $KILN_SERVER, else\n"               \
        "                        http://127.0.0.1:8080)\n"                                         \
        "      --token TOKEN     the bearer token (default $KILN_TOKEN)\n"                         \
        "      --token-file F    read the token from F\n"                                          \
        "      --cacert F        CA certificates for an https server\n"                            \
        "  -n, --namespace NS    the namespace (default `default`)\n"

typedef struct client {
        const kiln_command *cmd;
        kiln_global *g;
        const char *server;
        const char *token;
        const char *token_file;
        const char *cacert;
        const char *ns;
        kiln_api_client *api;
} client;

/* A kind as the commands name it. */
typedef struct client_kind {
        const char *names[5]; /* plural first */
        const char *kind;
        const char *group; /* "" for core */
        bool namespaced;
} client_kind;

void client_init (client *c, const kiln_command *cmd, kiln_global *g);
void client_clear (client *c);
/* 1 when opt was a server option, 0 when not. */
int client_opt (client *c, int opt, const char *arg);
/* Connects the options to a client (the token file is read here). */
int client_connect (client *c, kiln_error **err);

const client_kind *client_find_kind (const char *name);
const client_kind *client_kind_of (const char *kind);
/* The collection's path in c's namespace (ns NULL: c->ns). */
char *client_collection (const client *c, const client_kind *k, const char *ns);
/* "builds.shipwright.io" / "secrets"; "build.shipwright.io" / "secret". */
char *client_qualified (const client_kind *k, bool plural);

/* Sends a request; a JSON body is sent as compact JSON. */
int client_call (client *c, kiln_api_call *call, kiln_error **err);
/* The error an answer carries: the Status message, else the HTTP status. */
int client_status_error (const kiln_api_call *call, kiln_error **err);
/* GET path into *out (JSON); status other than 200 is an error. */
int client_get_json (client *c, const char *path, json_t **out, kiln_error **err);
/* Sends a JSON body, expects 200/201; *out may be NULL. */
int client_send_json (client *c, const char *method, const char *path, const char *content_type,
                      const json_t *body, json_t **out, kiln_error **err);

/* Parses the options every client command shares plus `shorts` and
 * `extra`; other options go to take (may be NULL).  Returns optind, or -1
 * after a usage message. */
int parse_common (client *c, int argc, char **argv, const char *shorts, const struct option *extra,
                  int (*take) (void *data, int opt, const char *arg), void *data);

/* Follows (or prints) a BuildRun's log to stdout. */
int client_logs (client *c, const char *name, bool follow, kiln_error **err);

/* Prints "kiln CMD: MESSAGE" (one line) and returns 1. */
int client_fail (const client *c, kiln_error *e);
int client_failf (const client *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#endif
