/*
 * cmd_revoke.c - `celeriac revoke ID... [--terminate] [--signal SIG]
 * [--expires S]`: tasks that must not run, or must stop.
 *
 * The revoke is stored on the broker side until it expires (so a worker
 * started later still skips the task, unlike Celery's in-memory revokes)
 * and broadcast like `celery control revoke`, so Python workers honour
 * it too (cel_client_revoke() in celeriac/client.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli_common.h"

enum {
    OPT_TERMINATE = CLI_OPT_LOCAL,
    OPT_SIGNAL,
    OPT_EXPIRES,
};

static const struct cli_opt revoke_opts[] = {
    {"terminate", no_argument, OPT_TERMINATE, NULL,
     "also stop the task if a worker runs it now (its process is killed)"},
    {"signal", required_argument, OPT_SIGNAL, "SIG",
     "signal for --terminate: TERM (default), KILL, USR1, ... or a number"},
    {"expires", required_argument, OPT_EXPIRES, "SECONDS",
     "how long the revoke lasts (default: worker_revoke_expires, 3 hours)"},
};

const struct cli_cmd cli_revoke_cmd = {
    "revoke",
    "Revoke tasks: they will not run (--terminate: stop them if running).",
    "ID... [--terminate] [--signal SIG] [--expires SECONDS]",
    false,
    revoke_opts,
    sizeof revoke_opts / sizeof revoke_opts[0],
};

struct revoke_args {
    bool terminate;
    const char *signal;
    double expires;
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct revoke_args *ra = ctx;
    switch (val) {
    case OPT_TERMINATE:
        ra->terminate = true;
        return 0;
    case OPT_SIGNAL:
        ra->signal = arg;
        return 0;
    case OPT_EXPIRES:
        if (!cli_parse_seconds(arg, &ra->expires) || ra->expires <= 0) {
            cli_error(cli, "--expires expects a positive number of seconds, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    return CLI_EXIT_USAGE;
}

int cli_cmd_revoke(int argc, char **argv)
{
    struct cli cli = {0};
    struct revoke_args ra = {0};
    cel_client *client = NULL;

    int rc = cli_parse(&cli, &cli_revoke_cmd, argc, argv, on_opt, &ra);
    if (rc >= 0)
        goto out;
    if (cli.check_config) {
        rc = cli_configure(&cli);
        goto out;
    }
    rc = CLI_EXIT_USAGE;
    if (cli.npos == 0) {
        cli_error(&cli, "no task id given");
        goto out;
    }
    if (ra.signal && !ra.terminate) {
        cli_error(&cli, "--signal is for --terminate");
        goto out;
    }
    rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;

    rc = cli_client_open(&cli, &client);
    if (rc >= 0)
        goto out;
    cel_revoke_options o = CEL_REVOKE_OPTIONS_INIT(.terminate = ra.terminate,
                                                   .signal_name = ra.signal, .expires = ra.expires);
    int crc = cel_client_revoke(client, (const char *const *)cli.pos, (size_t)cli.npos, &o);
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = cli_exit_for(crc);
        goto out;
    }
    for (int i = 0; i < cli.npos; i++)
        printf("%s: revoked%s\n", cli.pos[i], ra.terminate ? " (terminate)" : "");
    rc = CLI_EXIT_OK;

out:
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
