/* cmd_worker.c - `celeriac worker`: load task modules, run a worker. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

static const struct cli_opt worker_opts[] = {
    {"app", required_argument, 'A', "PATH.so",
     "task module to load (repeatable), built with CEL_MODULE_INIT"},
    {"events", no_argument, 'E', NULL,
     "send task events for monitors (worker_send_task_events=true)"},
};

const struct cli_cmd cli_worker_cmd = {
    "worker",
    "Start a worker: consume tasks from the broker and run them.",
    "[-A PATH.so]... [OPTIONS]",
    true,
    worker_opts,
    sizeof worker_opts / sizeof worker_opts[0],
};

struct worker_args {
    const char **modules;
    size_t nmodules;
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct worker_args *wa = ctx;
    if (val == 'E') {
        if (cli_add_set(cli, "worker_send_task_events", "true") == 0)
            return 0;
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    if (val != 'A')
        return CLI_EXIT_USAGE;
    const char **grown = realloc(wa->modules, (wa->nmodules + 1) * sizeof *grown);
    if (!grown) {
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    wa->modules = grown;
    wa->modules[wa->nmodules++] = arg;
    return 0;
}

int cli_cmd_worker(int argc, char **argv)
{
    struct cli cli = {0};
    struct worker_args wa = {0};
    cel_registry *reg = NULL;
    cel_worker *w = NULL;
    int rc = cli_parse(&cli, &cli_worker_cmd, argc, argv, on_opt, &wa);
    if (rc >= 0)
        goto out;
    if (cli.check_config) { /* needs no task name, id or module */
        rc = cli_configure(&cli);
        goto out;
    }
    if (cli.npos > 0) {
        cli_error(&cli, "unexpected argument '%s' (task modules are given with -A)", cli.pos[0]);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;

    reg = cel_registry_new();
    if (!reg) {
        cli_error(&cli, "out of memory");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    for (size_t i = 0; i < wa.nmodules; i++) {
        char *why = NULL;
        if (cel_registry_load_module(reg, wa.modules[i], &why) != CEL_OK) {
            /* The registry's messages name the module already ("task
             * module 'x.so' was built against ..."): prefixing them
             * again would say it twice. */
            if (why && strstr(why, wa.modules[i]))
                cli_error(&cli, "%s", why);
            else
                cli_error(&cli, "cannot load task module '%s': %s", wa.modules[i],
                          why ? why : "unknown error");
            cel_free(why);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (wa.nmodules == 0)
        fprintf(stderr, "celeriac worker: warning: no task modules given (-A PATH.so); every "
                        "task will be rejected as not registered\n");

    w = cel_worker_new(cli.cfg, reg);
    if (!w) {
        cli_error(&cli, "out of memory");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    char *banner = cel_worker_banner(w);
    if (banner) {
        fputs(banner, stdout);
        fflush(stdout);
        cel_free(banner);
    }
    /* The worker allocates and frees a few kilobytes per task; without
     * this, glibc returns the top of the heap to the kernel and asks for
     * it again thousands of times a second (brk() was 6% of the parent's
     * time). 1 MiB of slack is noise next to what it saves. */
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
    mallopt(M_TOP_PAD, 256 << 10);
    int wrc = cel_worker_run(w);
    if (wrc != CEL_OK) {
        const char *msg = cel_worker_errmsg(w);
        cli_error(&cli, "%s", msg && *msg ? msg : cel_strerror(wrc));
        rc = cli_exit_for(wrc);
        if (rc == CLI_EXIT_OK || rc == CLI_EXIT_TASK_FAILED || rc == CLI_EXIT_TIMEOUT)
            rc = CLI_EXIT_BROKER;
    } else {
        rc = CLI_EXIT_OK;
    }

out:
    cel_worker_free(w);
    cel_registry_free(reg);
    free(wa.modules);
    cli_release(&cli);
    return rc;
}
