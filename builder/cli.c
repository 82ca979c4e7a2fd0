/* kiln: helpers shared by the commands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "kiln/cli.h"
#include "kiln/log.h"

int
kiln_cli_global_opt (kiln_global *g, const kiln_command *cmd, int opt, const char *arg)
{
        kiln_log_level level;

        switch (opt) {
        case 'q':
        case KILN_OPT_QUIET:
                g->quiet = true;
                kiln_log_setup (KILN_LOG_ERROR, g->json);
                return 1;
        case KILN_OPT_JSON:
                g->json = true;
                kiln_log_setup (kiln_log_get_level (), true);
                return 1;
        case KILN_OPT_LOG_LEVEL:
                if (kiln_log_level_parse (arg, &level) < 0) {
                        kiln_cli_usage_error (cmd, "unknown log level `%s`", arg);
                        return -1;
                }
                kiln_log_setup (level, g->json);
                return 1;
        case 'h':
        case KILN_OPT_HELP:
                fputs (cmd->usage, stdout);
                exit (KILN_EXIT_OK);
        default:
                return 0;
        }
}

int
kiln_cli_usage_error (const kiln_command *cmd, const char *fmt, ...)
{
        va_list ap;

        fprintf (stderr, "kiln %s: ", cmd ? cmd->name : "");
        va_start (ap, fmt);
        vfprintf (stderr, fmt, ap);
        va_end (ap);
        fprintf (stderr, "\nRun `kiln help %s` for usage.\n", cmd ? cmd->name : "");
        return KILN_EXIT_USAGE;
}

static void
json_string (FILE *f, const char *s)
{
        fputc ('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fprintf (f, "\\%c", *p);
                else if (*p < 0x20)
                        fprintf (f, "\\u%04x", *p);
                else
                        fputc (*p, f);
        }
        fputc ('"', f);
}

int
kiln_cli_fail (kiln_global *g, kiln_error *e)
{
        const char *msg = kiln_error_msg (e);

        if (g && g->json) {
                fputs ("{\"error\":", stdout);
                json_string (stdout, msg);
                fputs (",\"code\":", stdout);
                json_string (stdout, kiln_error_code_name (e ? e->code : KILN_E_FAILED));
                fputs ("}\n", stdout);
                fflush (stdout);
        }
        fprintf (stderr, "kiln: error: %s\n", msg);
        kiln_error_free (e);
        return KILN_EXIT_FAILURE;
}
