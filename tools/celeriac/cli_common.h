/*
 * cli_common.h - what every `celeriac` subcommand shares: option parsing
 * on top of the config table, building the effective configuration,
 * logging to stderr in Celery's format, exit codes.
 *
 * Every option in the config table that names a Celery flag (-b, -c, -Q,
 * ...) is accepted as that flag, so the table stays the one list of
 * options; subcommands add their own flags next to them.
 */
#ifndef CELERIAC_CLI_COMMON_H
#define CELERIAC_CLI_COMMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "celeriac.h"

/* Exit codes, stable for scripts. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_TASK_FAILED = 1,
    CLI_EXIT_USAGE = 2, /* bad flags or bad configuration */
    CLI_EXIT_TIMEOUT = 3,
    CLI_EXIT_BROKER = 4, /* broker or result backend unreachable or failing */
};

/* First `val` a subcommand may use for its own long-only options. */
#define CLI_OPT_LOCAL 0x1000

/* A subcommand's own option: a getopt_long entry plus its help line. */
struct cli_opt {
    const char *name; /* long name */
    int has_arg;      /* no_argument / required_argument */
    int val;          /* a short letter, or >= CLI_OPT_LOCAL */
    const char *arg;  /* argument name in help ("JSON"), NULL without one */
    const char *help;
};

struct cli_cmd {
    const char *name;
    const char *summary;
    const char *usage; /* the line after "usage: celeriac NAME " */
    /* Which table options to offer as flags: worker ones too, or not. */
    bool worker_flags;
    const struct cli_opt *opts;
    size_t nopts;
};

/* State of one invocation; zero-initialise, then cli_parse(). */
struct cli {
    const struct cli_cmd *cmd;
    const char *config_path;
    bool check_config;
    bool help;
    struct cli_set {
        char *key;
        char *value;
    } * sets;
    size_t nsets;
    cel_config *cfg;
    int npos;
    char **pos; /* positional arguments, borrowed from argv */
};

/* Called for each subcommand option; returns 0, or an exit code. */
typedef int (*cli_opt_fn)(struct cli *cli, int val, const char *arg, void *ctx);

/*
 * Parses argv (argv[0] is the subcommand name). Common and table options
 * go into `cli`, the subcommand's own into `fn`. Returns -1 to go on,
 * or an exit code (after printing help or a usage error).
 */
int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, cli_opt_fn fn,
              void *ctx);

/*
 * Builds the effective configuration: defaults < file < environment <
 * flags. Handles --check-config. Installs the stderr log handler at the
 * configured level. Returns -1 to go on, or an exit code.
 */
int cli_configure(struct cli *cli);

void cli_release(struct cli *cli);

/* cli_parse(), then for --check-config cli_configure(): -1 to go on, or
 * the exit code. */
int cli_begin(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, cli_opt_fn fn,
              void *ctx);
/* For a command that takes no positional argument: -1, or the exit code
 * after saying what was unexpected. */
int cli_refuse_args(const struct cli *cli);
/* cli_configure(), then cli_client_open(): -1 with *out connected, or
 * the exit code after printing why. */
int cli_connect(struct cli *cli, cel_client **out);
/* Records `key value` as if given as a flag (a subcommand's shorthand
 * for a table option, such as worker -E). 0, or -1 when out of memory. */
int cli_add_set(struct cli *cli, const char *key, const char *value);

/* "celeriac call: error: ..." on stderr. */
void cli_error(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exit code for a library error code. */
int cli_exit_for(int rc);

/* A client for cli->cfg, connected: -1 with *out set, or an exit code
 * after printing why (*out NULL). */
int cli_client_open(const struct cli *cli, cel_client **out);

/* Parses seconds ("30", "1.5"); false when malformed or negative. */
bool cli_parse_seconds(const char *text, double *out);
/* An ISO 8601 time as Celery writes and reads it ("2026-12-02T10:00:00",
 * optional ".ffffff", then "Z", "+HH:MM", "-HH:MM" or nothing for UTC;
 * a space may stand for the T) into Unix seconds. */
bool cli_parse_time(const char *text, double *out);

/* Queue names of a comma-separated list, trimmed, at most `max`. Returns
 * the count; names are written into `buf` NUL-separated. */
size_t cli_split_list(const char *list, char *buf, size_t buflen, const char **names, size_t max);

/*
 * Waits up to `timeout` seconds for `r`, as `call --wait` and `result
 * --wait` do (in cmd_result.c). When the task still sits unclaimed in a
 * queue no worker consumes after a few seconds, says so once on stderr;
 * on a timeout prints the error (naming the queue the task was never
 * taken from, when the store can tell). Returns cel_result_wait()'s code.
 */
int cli_wait_result(const struct cli *cli, cel_result *r, double timeout);

/* Subcommands. */
int cli_cmd_worker(int argc, char **argv);
int cli_cmd_call(int argc, char **argv);
int cli_cmd_result(int argc, char **argv);
int cli_cmd_purge(int argc, char **argv);
int cli_cmd_revoke(int argc, char **argv);
int cli_cmd_dead_letters(int argc, char **argv);
int cli_cmd_inspect(int argc, char **argv);
int cli_cmd_control(int argc, char **argv);
int cli_cmd_status(int argc, char **argv);
int cli_cmd_events(int argc, char **argv);
int cli_cmd_queues(int argc, char **argv);
int cli_cmd_schedule(int argc, char **argv);
int cli_cmd_beat(int argc, char **argv);

extern const struct cli_cmd cli_worker_cmd;
extern const struct cli_cmd cli_call_cmd;
extern const struct cli_cmd cli_result_cmd;
extern const struct cli_cmd cli_purge_cmd;
extern const struct cli_cmd cli_revoke_cmd;
extern const struct cli_cmd cli_dead_letters_cmd;
extern const struct cli_cmd cli_inspect_cmd;
extern const struct cli_cmd cli_control_cmd;
extern const struct cli_cmd cli_status_cmd;
extern const struct cli_cmd cli_events_cmd;
extern const struct cli_cmd cli_queues_cmd;
extern const struct cli_cmd cli_beat_cmd;
extern const struct cli_cmd cli_schedule_cmd;

/* Runs beat on cli->cfg until SIGTERM, SIGINT or SIGQUIT (cmd_beat.c):
 * the exit code. */
int cli_beat_run(const struct cli *cli);
/* `worker -B`: beat in a child process that dies with the worker. The
 * child's pid, or -1 (said why). */
pid_t cli_beat_spawn(const struct cli *cli);
/* Stops that child (SIGTERM, then SIGKILL after 10 s) and reaps it. */
void cli_beat_reap(pid_t pid);

/* Full help of one subcommand on `out`. */
void cli_print_help(const struct cli_cmd *cmd, FILE *out);

#endif
