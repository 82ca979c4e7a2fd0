/* kiln: the command-line entry point.  It only wires subcommands. */
#include <stdio.h>
#include <string.h>

#include "kiln/cli.h"
#include "kiln/log.h"

/* libgit2's known PCRE2 leak (a long-running `kiln serve` clones from
 * worker threads) is suppressed for LeakSanitizer by builder/source.c,
 * beside the libgit2 calls, for every program that links them. */

static void
print_help (FILE *f)
{
        int w = 4; /* "help" */

        fputs ("kiln: turn function source into OCI images, without a Docker daemon.\n\n"
               "Usage: kiln [--quiet] [--json] [--log-level L] COMMAND [ARGS...]\n\n"
               "Commands:\n",
               f);
        for (const kiln_command *const *c = kiln_commands; *c; c++)
                if ((int) strlen ((*c)->name) > w)
                        w = (int) strlen ((*c)->name);
        for (const kiln_command *const *c = kiln_commands; *c; c++)
                fprintf (f, "  %-*s  %s\n", w, (*c)->name, (*c)->summary);
        fprintf (f, "  %-*s  show the help of a command\n\n", w, "help");
        fputs ("Run `kiln help COMMAND` for a command's options.\n"
               "Exit codes: 0 success, 1 failure, 2 usage error.\n",
               f);
}

static const kiln_command *
find_command (const char *name)
{
        for (const kiln_command *const *c = kiln_commands; *c; c++)
                if (strcmp ((*c)->name, name) == 0)
                        return *c;
        return NULL;
}

int
main (int argc, char **argv)
{
        kiln_global g = { 0 };
        const kiln_command *cmd;
        int i = 1;

        kiln_log_setup (KILN_LOG_WARN, false);
        for (; i < argc && argv[i][0] == '-'; i++) {
                kiln_log_level level;
                if (strcmp (argv[i], "--quiet") == 0 || strcmp (argv[i], "-q") == 0) {
                        g.quiet = true;
                        kiln_log_setup (KILN_LOG_ERROR, g.json);
                } else if (strcmp (argv[i], "--json") == 0) {
                        g.json = true;
                        kiln_log_setup (kiln_log_get_level (), true);
                } else if (strcmp (argv[i], "--log-level") == 0 && i + 1 < argc
                           && kiln_log_level_parse (argv[i + 1], &level) == 0) {
                        kiln_log_setup (level, g.json);
                        i++;
                } else if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
                        print_help (stdout);
                        return KILN_EXIT_OK;
                } else if (strcmp (argv[i], "--version") == 0) {
                        return kiln_cmd_version.run (&g, 1, (char *[]){ "version", NULL });
                } else {
                        fprintf (stderr, "kiln: unknown option `%s`\n", argv[i]);
                        print_help (stderr);
                        return KILN_EXIT_USAGE;
                }
        }
        if (i >= argc) {
                print_help (stderr);
                return KILN_EXIT_USAGE;
        }
        if (strcmp (argv[i], "help") == 0) {
                if (i + 1 >= argc) {
                        print_help (stdout);
                        return KILN_EXIT_OK;
                }
                cmd = find_command (argv[i + 1]);
                if (cmd == NULL) {
                        fprintf (stderr, "kiln: unknown command `%s`\n", argv[i + 1]);
                        return KILN_EXIT_USAGE;
                }
                fputs (cmd->usage, stdout);
                return KILN_EXIT_OK;
        }
        cmd = find_command (argv[i]);
        if (cmd == NULL) {
                fprintf (stderr, "kiln: unknown command `%s`\nRun `kiln --help` for the list.\n",
                         argv[i]);
                return KILN_EXIT_USAGE;
        }
        return cmd->run (&g, argc - i, argv + i);
}
