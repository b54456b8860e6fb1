/*
 * cmd_purge.c - `celeriac purge`: remove the messages waiting in queues.
 *
 * Like Celery it asks before deleting unless -f is given; without a
 * terminal to ask on it refuses, so a script never purges by accident.
 * Messages a worker has reserved are not touched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"

#define MAX_QUEUES 64

static const struct cli_opt purge_opts[] = {
    {"queues", required_argument, 'Q', "a,b",
     "queues to purge (default: the worker queues, i.e. task_default_queue)"},
    {"force", no_argument, 'f', NULL, "do not ask for confirmation"},
};

const struct cli_cmd cli_purge_cmd = {
    "purge",    "Remove all messages waiting in the queues.", "[-Q QUEUES] [-f]", false,
    purge_opts, sizeof purge_opts / sizeof purge_opts[0],
};

struct purge_args {
    const char *queues;
    bool force;
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    (void)cli;
    struct purge_args *pa = ctx;
    if (val == 'Q')
        pa->queues = arg;
    else if (val == 'f')
        pa->force = true;
    else
        return CLI_EXIT_USAGE;
    return 0;
}

static bool confirm(const char *list)
{
    fprintf(stderr, "You are about to purge all waiting messages from: %s\nAre you sure? (yes/NO) ",
            list);
    char answer[16] = "";
    if (!fgets(answer, sizeof answer, stdin))
        return false;
    return strcmp(answer, "yes\n") == 0 || strcmp(answer, "y\n") == 0;
}

int cli_cmd_purge(int argc, char **argv)
{
    struct cli cli = {0};
    struct purge_args pa = {0};
    cel_client *client = NULL;

    int rc = cli_parse(&cli, &cli_purge_cmd, argc, argv, on_opt, &pa);
    if (rc >= 0)
        goto out;
    if (cli.check_config) { /* needs no task name, id or module */
        rc = cli_configure(&cli);
        goto out;
    }
    rc = CLI_EXIT_USAGE;
    if (cli.npos > 0) {
        cli_error(&cli, "unexpected argument '%s' (queues are given with -Q)", cli.pos[0]);
        goto out;
    }
    rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;

    rc = CLI_EXIT_USAGE;
    char list[1024] = "";
    if (pa.queues) {
        snprintf(list, sizeof list, "%s", pa.queues);
    } else if (cel_config_get_effective(cli.cfg, "worker_queues", list, sizeof list) != CEL_OK) {
        const char *q = cel_config_get(cli.cfg, "task_default_queue");
        snprintf(list, sizeof list, "%s", q && *q ? q : "celery");
    }
    char names_buf[1024];
    const char *names[MAX_QUEUES];
    size_t n = cli_split_list(list, names_buf, sizeof names_buf, names, MAX_QUEUES);
    if (n == 0) {
        cli_error(&cli, "no queue to purge");
        goto out;
    }
    if (!pa.force) {
        if (!isatty(STDIN_FILENO)) {
            cli_error(&cli, "refusing to purge without confirmation; use -f");
            goto out;
        }
        if (!confirm(list)) {
            fprintf(stderr, "purge cancelled\n");
            rc = CLI_EXIT_OK;
            goto out;
        }
    }

    client = cel_client_new(cli.cfg);
    if (!client) {
        cli_error(&cli, "out of memory");
        goto out;
    }
    int crc = cel_client_connect(client);
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = CLI_EXIT_BROKER;
        goto out;
    }
    rc = CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        size_t removed = 0;
        crc = cel_client_purge(client, names[i], &removed);
        if (crc != CEL_OK) {
            cli_error(&cli, "%s", cel_client_errmsg(client));
            rc = CLI_EXIT_BROKER;
            continue;
        }
        printf("purged %zu message%s from %s\n", removed, removed == 1 ? "" : "s", names[i]);
    }

out:
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
