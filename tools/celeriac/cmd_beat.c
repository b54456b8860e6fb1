/*
 * cmd_beat.c - `celeriac beat`: send periodic entries when they fall due
 * (celeriac/beat.h), and the beat process `celeriac worker -B` runs
 * beside its worker.
 *
 *   celeriac beat                          entries of the store and of
 *                                          the config's [schedule.NAME]
 *   celeriac beat -b redis://host/0 -l info --pidfile beat.pid
 *
 * Run as many as you like against one broker: one leads and sends, the
 * others stand by and take over within beat_lease_ttl when it dies (at
 * once when it is stopped). SIGTERM or SIGINT stops it cleanly (exit 0).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "daemon.h"
#include "pidfile.h"

enum { OPT_PIDFILE = CLI_OPT_LOCAL, OPT_LOGFILE };

static const struct cli_opt beat_opts[] = {
    {"detach", no_argument, 'D', NULL,
     "run in the background: the command returns once beat wrote its pid file (exit 0) or "
     "failed to start (exit 1); logs go to --logfile (default celeriac-beat.log)"},
    {"pidfile", required_argument, OPT_PIDFILE, "FILE",
     "write the process id to FILE, and refuse to start while a live process holds it"},
    {"logfile", required_argument, OPT_LOGFILE, "FILE", "append the log to FILE"},
};

const struct cli_cmd cli_beat_cmd = {
    "beat",
    "Send periodic tasks when they are due (run any number: one leads, the others stand by).",
    "[--pidfile FILE] [--logfile FILE] [-D] [OPTIONS]",
    false,
    beat_opts,
    sizeof beat_opts / sizeof beat_opts[0],
};

#define DETACHED_LOGFILE "celeriac-beat.log"
/* How long a worker waits for its beat to stop before killing it. */
#define BEAT_STOP_WAIT_MS 10000

struct beat_args {
    bool detach;
    const char *pidfile;
    const char *logfile;
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    (void)cli;
    struct beat_args *ba = ctx;
    if (val == 'D')
        ba->detach = true;
    else if (val == OPT_PIDFILE)
        ba->pidfile = arg;
    else if (val == OPT_LOGFILE)
        ba->logfile = arg;
    else
        return CLI_EXIT_USAGE;
    return 0;
}

/* The beat the signal handlers stop. */
static cel_beat *running_beat;

static void on_stop_signal(int sig)
{
    (void)sig;
    cel_beat_stop(running_beat); /* async-signal-safe */
}

static void handle_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    const int stop[] = {SIGTERM, SIGINT, SIGQUIT};
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++)
        sigaction(stop[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_beat_run(const struct cli *cli)
{
    cel_beat *b = cel_beat_new(cli->cfg);
    if (!b) {
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    running_beat = b;
    handle_signals();
    int rc = cel_beat_run(b);
    int exit_code = CLI_EXIT_OK;
    if (rc != CEL_OK) {
        const char *msg = cel_beat_errmsg(b);
        cli_error(cli, "%s", msg && *msg ? msg : cel_strerror(rc));
        exit_code = cli_exit_for(rc);
        if (exit_code == CLI_EXIT_OK || exit_code == CLI_EXIT_TASK_FAILED ||
            exit_code == CLI_EXIT_TIMEOUT)
            exit_code = CLI_EXIT_BROKER;
    }
    running_beat = NULL;
    cel_beat_free(b);
    return exit_code;
}

pid_t cli_beat_spawn(const struct cli *cli)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0)
            cli_error(cli, "cannot start beat: fork: %s", strerror(errno));
        return pid;
    }
    /* Beat must not outlive its worker, even one killed with SIGKILL. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(CLI_EXIT_OK); /* the worker died before the line above */
    /* The worker's own signals are its business: a restart (HUP) or a
     * dump (USR1) of the worker's process group is not beat's. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    _exit(cli_beat_run(cli));
}

void cli_beat_reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int waited = 0; waited < BEAT_STOP_WAIT_MS; waited += 10) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "celeriac worker: beat did not stop within %d s: killed\n",
            BEAT_STOP_WAIT_MS / 1000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int cli_cmd_beat(int argc, char **argv)
{
    struct cli cli = {0};
    struct beat_args ba = {0};
    char why[1024];
    bool have_pidfile = false;
    int rc = cli_begin(&cli, &cli_beat_cmd, argc, argv, on_opt, &ba);
    if (rc < 0)
        rc = cli_refuse_args(&cli);
    if (rc < 0)
        rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;
    const char *logfile = ba.logfile ? ba.logfile : ba.detach ? DETACHED_LOGFILE : NULL;
    if (ba.detach && daemon_detach(why, sizeof why) != 0) {
        cli_error(&cli, "cannot detach: %s", why);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (ba.pidfile && pidfile_acquire(ba.pidfile, why, sizeof why) != 0) {
        cli_error(&cli, "%s", why);
        daemon_failed(why);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    have_pidfile = ba.pidfile != NULL;
    if (logfile && daemon_log_to(logfile, ba.detach, why, sizeof why) != 0) {
        cli_error(&cli, "%s", why);
        daemon_failed(why);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    daemon_ready();
    rc = cli_beat_run(&cli);

out:
    if (have_pidfile)
        pidfile_release(ba.pidfile);
    cli_release(&cli);
    return rc;
}
