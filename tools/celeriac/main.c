/*
 * main.c - `celeriac`, the command line: a table of subcommands.
 *
 *   celeriac worker -A ./libtasks.so -c 4
 *   celeriac call tasks.add 2 3 --wait
 *   celeriac result <id>
 *   celeriac purge -f
 *   celeriac revoke <id> --terminate
 *   celeriac dead-letters list
 *   celeriac inspect active / control rate_limit tasks.add 10/s / status
 *   celeriac events / queues
 *   celeriac schedule add nightly --task tasks.report --when "every day at 6pm"
 *   celeriac beat
 *
 * Options given before the subcommand name are passed to it, so
 * `celeriac -b URL call ...` works as in Celery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

static const struct {
    const struct cli_cmd *cmd;
    int (*run)(int argc, char **argv);
} commands[] = {
    {&cli_worker_cmd, cli_cmd_worker},
    {&cli_call_cmd, cli_cmd_call},
    {&cli_result_cmd, cli_cmd_result},
    {&cli_purge_cmd, cli_cmd_purge},
    {&cli_revoke_cmd, cli_cmd_revoke},
    {&cli_inspect_cmd, cli_cmd_inspect},
    {&cli_control_cmd, cli_cmd_control},
    {&cli_status_cmd, cli_cmd_status},
    {&cli_events_cmd, cli_cmd_events},
    {&cli_queues_cmd, cli_cmd_queues},
    {&cli_dead_letters_cmd, cli_cmd_dead_letters},
    {&cli_schedule_cmd, cli_cmd_schedule},
    {&cli_beat_cmd, cli_cmd_beat},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: celeriac [--version] [--help] COMMAND [OPTIONS] [ARGS]\n\n"
                 "A distributed task queue that speaks Celery's protocol.\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].cmd->name, commands[i].cmd->summary);
    fprintf(out, "\nRun 'celeriac COMMAND --help' for the options of a command.\n"
                 "Exit codes: 0 ok, 1 task failed, 2 usage or configuration error, 3 timeout,\n"
                 "4 broker or result backend error.\n");
}

static int find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].cmd->name, name) == 0)
            return (int)i;
    return -1;
}

int main(int argc, char **argv)
{
    int at = -1, which = -1;
    for (int i = 1; i < argc && at < 0; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        which = find_command(argv[i]);
        if (which >= 0)
            at = i;
    }
    if (at < 0) {
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
                printf("celeriac %s\n", cel_version_string());
                return CLI_EXIT_OK;
            }
            if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                usage(stdout);
                return CLI_EXIT_OK;
            }
        }
        for (int i = 1; i < argc; i++) {
            if (argv[i][0] != '-') {
                fprintf(stderr, "celeriac: error: unknown command '%s' (see 'celeriac --help')\n",
                        argv[i]);
                return CLI_EXIT_USAGE;
            }
        }
        if (argc > 1)
            fprintf(stderr, "celeriac: error: unknown option '%s'\n\n", argv[1]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }

    /* Rebuild argv as: COMMAND [options before it] [everything after it].
     * The first word naming a command is the command, so an option value
     * that happens to equal a command name (`-n worker`) must come after
     * it. */
    char **args = malloc((size_t)(argc + 1) * sizeof *args);
    if (!args) {
        fprintf(stderr, "celeriac: error: out of memory\n");
        return CLI_EXIT_USAGE;
    }
    int n = 0;
    args[n++] = argv[at];
    for (int i = 1; i < at; i++)
        args[n++] = argv[i];
    for (int i = at + 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    int rc = commands[which].run(n, args);
    free(args);
    return rc;
}
