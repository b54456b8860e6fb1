/*
 * cmd_worker.c - `celeriac worker`: load task modules, run a worker.
 *
 * The process around the worker is this file's: --workdir, --detach
 * (daemon.c), --logfile (worker_logfile), --pidfile (worker_pidfile,
 * pidfile.c), and the restart a SIGHUP asks for: once the worker's warm
 * shutdown is complete, this process execs itself with the same
 * arguments (Celery does the same), so the pid, and with it the pid
 * file, stay.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli_common.h"
#include "daemon.h"
#include "pidfile.h"

enum { OPT_WORKDIR = CLI_OPT_LOCAL };

/* A detached worker without --logfile logs here (celery multi's default). */
#define DETACHED_LOGFILE "%n.log"

static const struct cli_opt worker_opts[] = {
    {"detach", no_argument, 'D', NULL,
     "run in the background: the command returns once the worker wrote its pid file (exit 0) "
     "or failed to start (exit 1, with the reason); logs go to --logfile (default %n.log)"},
    {"workdir", required_argument, OPT_WORKDIR, "DIR",
     "change to DIR first (relative paths: config file, database, -A, --pidfile, --logfile)"},
    {"app", required_argument, 'A', "PATH.so",
     "task module to load (repeatable), built with CEL_MODULE_INIT"},
    {"events", no_argument, 'E', NULL,
     "send task events for monitors (worker_send_task_events=true)"},
    {"beat", no_argument, 'B', NULL,
     "also run beat (periodic tasks) in a child process that stops with the worker; any "
     "number of workers may run -B: one beat leads, the others stand by"},
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
    bool detach;
    bool beat;
    const char *workdir;
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

/* The options of the process around the worker; the rest is on_opt's. */
static int on_process_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct worker_args *wa = ctx;
    if (val == 'D')
        wa->detach = true;
    else if (val == 'B')
        wa->beat = true;
    else if (val == OPT_WORKDIR)
        wa->workdir = arg;
    else
        return on_opt(cli, val, arg, ctx);
    return 0;
}

/* The worker's file names with Celery's %n/%h/%d/%p expanded: -1 to go
 * on (out is "" without a pattern), or an exit code. */
static int node_path(struct cli *cli, const char *key, const char *fallback, const char *node,
                     char *out, size_t len)
{
    const char *pattern = cel_config_get(cli->cfg, key);
    if (!pattern || !*pattern)
        pattern = fallback;
    out[0] = '\0';
    if (!pattern)
        return -1;
    int rc = cel_node_format(pattern, node, out, len);
    if (rc == CEL_OK)
        return -1;
    cli_error(cli, "%s '%s': %s", key, pattern,
              rc == CEL_ETOOBIG ? "too long"
                                : "unknown abbreviation (known: %n, %h, %d, %p, %i, %I)");
    return CLI_EXIT_USAGE;
}

/* -D, --detach, or an abbreviation getopt_long took for it ("--de"). */
static bool is_detach_flag(const char *arg)
{
    size_t n = strlen(arg);
    return strcmp(arg, "-D") == 0 || (n >= 4 && strncmp(arg, "--detach", n) == 0);
}

/*
 * SIGHUP's restart: the same command again in this process. Arguments
 * are the ones this run parsed, less --detach (the process already is
 * the daemon; detaching again would change its pid), from the directory
 * the command was started in (a relative --workdir would apply twice).
 * Descriptors other than 0, 1, 2 are closed by the exec, as Celery
 * closes them. Returns only when the exec failed.
 */
static void restart(int argc, char **argv, int start_dir, const char *config_env)
{
    /* cli_configure() took CELERIAC_CONFIG out of the environment (it is
     * no option): the new image must find it again. */
    if (config_env)
        setenv("CELERIAC_CONFIG", config_env, 1);
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args)
        return;
    int n = 0;
    args[n++] = program_invocation_name;
    for (int i = 0; i < argc; i++)
        if (!is_detach_flag(argv[i]))
            args[n++] = argv[i];
    args[n] = NULL;
    if (start_dir >= 0 && fchdir(start_dir) != 0)
        fprintf(stderr, "celeriac worker: cannot return to the start directory: %s\n",
                strerror(errno));
    fflush(NULL);
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        /* Before Linux 5.11: one descriptor at a time. */
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    execv("/proc/self/exe", args);
    execvp(args[0], args);
    fprintf(stderr, "celeriac worker: error: restart failed: cannot exec %s: %s\n", args[0],
            strerror(errno));
    free(args);
}

int cli_cmd_worker(int argc, char **argv)
{
    struct cli cli = {0};
    struct worker_args wa = {0};
    cel_registry *reg = NULL;
    cel_worker *w = NULL;
    char pidfile[4096] = "", logfile[4096] = "", why[1024];
    bool restarting = false, hup_restarts = false;
    int start_dir = -1;
    pid_t beat_pid = -1;
    char *config_env = getenv("CELERIAC_CONFIG") ? strdup(getenv("CELERIAC_CONFIG")) : NULL;
    int rc = cli_parse(&cli, &cli_worker_cmd, argc, argv, on_process_opt, &wa);
    if (rc >= 0)
        goto out;
    if (wa.workdir) {
        start_dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (chdir(wa.workdir) != 0) {
            cli_error(&cli, "--workdir '%s': %s", wa.workdir, strerror(errno));
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
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
        char *mwhy = NULL;
        if (cel_registry_load_module(reg, wa.modules[i], &mwhy) != CEL_OK) {
            /* The registry's messages name the module already ("task
             * module 'x.so' was built against ..."): prefixing them
             * again would say it twice. */
            if (mwhy && strstr(mwhy, wa.modules[i]))
                cli_error(&cli, "%s", mwhy);
            else
                cli_error(&cli, "cannot load task module '%s': %s", wa.modules[i],
                          mwhy ? mwhy : "unknown error");
            cel_free(mwhy);
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
    /* A rejected configuration (a bad -n) is reported now, on the
     * terminal, before detaching; run() returns it and touches nothing. */
    const char *node = cel_worker_nodename(w);
    if (!node)
        goto run;
    if ((rc = node_path(&cli, "worker_pidfile", NULL, node, pidfile, sizeof pidfile)) >= 0 ||
        (rc = node_path(&cli, "worker_logfile", wa.detach ? DETACHED_LOGFILE : NULL, node, logfile,
                        sizeof logfile)) >= 0)
        goto out;
    /* Whether a SIGHUP restarts: not when the command runs on a terminal
     * (that SIGHUP is the terminal closing), as Celery decides. */
    hup_restarts = wa.detach || !isatty(STDOUT_FILENO);
    if (wa.detach && daemon_detach(why, sizeof why) != 0) {
        cli_error(&cli, "cannot detach: %s", why);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    /* The pid file first: a worker refused because another one runs says
     * so on the terminal, not in the other worker's log file. */
    if (pidfile[0] && pidfile_acquire(pidfile, why, sizeof why) != 0) {
        cli_error(&cli, "%s", why);
        daemon_failed(why);
        pidfile[0] = '\0'; /* not ours: never removed */
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (logfile[0] && daemon_log_to(logfile, wa.detach, why, sizeof why) != 0) {
        cli_error(&cli, "%s", why);
        daemon_failed(why);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    daemon_ready();

run:;
    char *banner = cel_worker_banner(w);
    if (banner && node) {
        fputs(banner, stdout);
        fflush(stdout);
    }
    cel_free(banner);
    /* The worker allocates and frees a few kilobytes per task; without
     * this, glibc returns the top of the heap to the kernel and asks for
     * it again thousands of times a second (brk() was 6% of the parent's
     * time). 1 MiB of slack is noise next to what it saves. */
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
    mallopt(M_TOP_PAD, 256 << 10);
    /* Forked before the worker starts its threads and its pool. */
    if (wa.beat && (beat_pid = cli_beat_spawn(&cli)) < 0) {
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    int wrc = cel_worker_run(w);
    if (wrc != CEL_OK) {
        const char *msg = cel_worker_errmsg(w);
        cli_error(&cli, "%s", msg && *msg ? msg : cel_strerror(wrc));
        rc = cli_exit_for(wrc);
        if (rc == CLI_EXIT_OK || rc == CLI_EXIT_TASK_FAILED || rc == CLI_EXIT_TIMEOUT)
            rc = CLI_EXIT_BROKER;
    } else {
        rc = CLI_EXIT_OK;
        restarting = cel_worker_restart_requested(w) != 0;
        if (restarting && !hup_restarts) {
            /* Celery too restarts on SIGHUP only off a terminal: closing
             * the terminal must not bring the worker back in the
             * background. The warm shutdown is done; that is all. */
            fprintf(stderr, "celeriac worker: SIGHUP on a terminal: not restarting\n");
            restarting = false;
        } else if (restarting) {
            fprintf(stderr, "celeriac worker: Restarting (SIGHUP): the same command again in this "
                            "process\n");
        }
    }

out:
    cli_beat_reap(beat_pid); /* before a restart, which starts it again */
    cel_worker_free(w);
    cel_registry_free(reg);
    free(wa.modules);
    cli_release(&cli);
    if (restarting) {
        restart(argc, argv, start_dir, config_env);
        rc = CLI_EXIT_BROKER; /* the exec failed: said above */
    }
    pidfile_release(pidfile);
    free(config_env);
    if (start_dir >= 0)
        close(start_dir);
    return rc;
}
