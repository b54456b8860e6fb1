/*
 * cmd_status.c - `celeriac status`: which workers are online, as
 * `celery status` shows it: a ping to every worker (celeriac and Python
 * alike), one `->  node: OK` line per reply, then "N nodes online.".
 * Exit 3 when none replied.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli_remote.h"

static const struct cli_opt status_opts[] = {CLI_REMOTE_OPTS};

const struct cli_cmd cli_status_cmd = {
    "status",
    "Show the workers online (a ping to every worker).",
    "[-d NODE[,NODE]] [-t SECONDS] [--json]",
    false,
    status_opts,
    sizeof status_opts / sizeof status_opts[0],
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    int rc = cli_remote_opt(cli, ctx, val, arg);
    return rc < 0 ? CLI_EXIT_USAGE : rc;
}

static void show_ok(FILE *out, const json_t *reply)
{
    (void)out;
    (void)reply; /* the OK on the node's line says it all */
}

int cli_cmd_status(int argc, char **argv)
{
    struct cli cli = {0};
    struct cli_remote ro = {0};
    cel_client *client = NULL;
    cel_control_replies *replies = NULL;

    int rc = cli_begin(&cli, &cli_status_cmd, argc, argv, on_opt, &ro);
    if (rc < 0)
        rc = cli_refuse_args(&cli);
    if (rc >= 0)
        goto out;
    rc = cli_connect(&cli, &client);
    if (rc >= 0)
        goto out;
    rc = cli_remote_call(&cli, client, &ro, "ping", NULL, false, &replies);
    if (rc >= 0)
        goto out;
    rc = cli_remote_print(&ro, replies, show_ok);
    size_t n = cel_control_replies_count(replies);
    if (!ro.json && n > 0)
        printf("\n%zu %s online.\n", n, n == 1 ? "node" : "nodes");

out:
    cel_control_replies_free(replies);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
