/*
 * cmd_call.c - `celeriac call NAME [ARG...]`: send one task, optionally
 * wait for its result.
 *
 * Positional arguments are JSON when they parse as JSON and strings
 * otherwise, so `call tasks.add 2 3` sends [2, 3] and `call tasks.echo
 * hello` sends ["hello"]; quote a number to send it as a string ('"2"').
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

enum {
    OPT_KW = CLI_OPT_LOCAL,
    OPT_COUNTDOWN,
    OPT_PRIORITY,
    OPT_TASK_ID,
    OPT_IGNORE_RESULT,
    OPT_WAIT,
    OPT_TIMEOUT,
    OPT_ETA,
    OPT_EXPIRES,
    OPT_TIME_LIMIT,
    OPT_SOFT_TIME_LIMIT,
    OPT_MAX_RETRIES,
    OPT_RETRY_BACKOFF,
};

/* --retry-backoff without a value: Celery's retry_backoff=True. */
#define DEFAULT_RETRY_BACKOFF 1.0

static const struct cli_opt call_opts[] = {
    {"args", required_argument, 'a', "JSON", "positional arguments as a JSON array"},
    {"kwargs", required_argument, 'k', "JSON", "keyword arguments as a JSON object"},
    {"kw", required_argument, OPT_KW, "KEY=VALUE",
     "one keyword argument, VALUE as JSON or else a string (repeatable)"},
    {"queue", required_argument, 'q', "NAME", "queue to send to (default: task_default_queue)"},
    {"countdown", required_argument, OPT_COUNTDOWN, "SECONDS", "run no earlier than this from now"},
    {"eta", required_argument, OPT_ETA, "ISO",
     "run no earlier than this time (ISO 8601, e.g. 2026-12-02T10:00:00Z; UTC when no offset)"},
    {"expires", required_argument, OPT_EXPIRES, "S|ISO",
     "do not run the task after this many seconds from now, or after this time (state REVOKED)"},
    {"time-limit", required_argument, OPT_TIME_LIMIT, "SECONDS",
     "hard time limit of the run (overrides the task's and the worker's)"},
    {"soft-time-limit", required_argument, OPT_SOFT_TIME_LIMIT, "SECONDS",
     "soft time limit of the run (the task is told and may clean up)"},
    {"max-retries", required_argument, OPT_MAX_RETRIES, "N",
     "retries allowed for this call (0: none; overrides the task's)"},
    {"retry-backoff", optional_argument, OPT_RETRY_BACKOFF, NULL,
     "retry with exponential delays starting at --retry-backoff=SECONDS (default 1)"},
    {"priority", required_argument, OPT_PRIORITY, "N", "message priority 0..9"},
    {"task-id", required_argument, OPT_TASK_ID, "ID", "use this task id instead of a new UUID"},
    {"ignore-result", no_argument, OPT_IGNORE_RESULT, NULL, "the worker stores no result"},
    {"wait", no_argument, OPT_WAIT, NULL,
     "wait for the result and print it as JSON (exit 1 if the task fails; a warning after 3 s "
     "when no worker takes it)"},
    {"timeout", required_argument, OPT_TIMEOUT, "SECONDS",
     "how long --wait waits (default 30; exit 3 on timeout)"},
};

const struct cli_cmd cli_call_cmd = {
    "call",
    "Send a task; print its id, or with --wait its result.",
    "NAME [ARG...] [OPTIONS]   (use -- before an argument that starts with -)",
    false,
    call_opts,
    sizeof call_opts / sizeof call_opts[0],
};

struct call_args {
    const char *args_json;
    const char *kwargs_json;
    json_t *kw; /* from --kw */
    cel_send_options send;
    bool wait;
    double timeout;
    bool has_timeout;
};

/* JSON if it parses as a JSON value, else the text as a string. */
static json_t *json_or_string(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v)
        return v;
    return json_string(text); /* NULL for text that is not UTF-8 */
}

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct call_args *ca = ctx;
    switch (val) {
    case 'a':
        ca->args_json = arg;
        return 0;
    case 'k':
        ca->kwargs_json = arg;
        return 0;
    case 'q':
        ca->send.queue = arg;
        return 0;
    case OPT_KW: {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg) {
            cli_error(cli, "--kw expects KEY=VALUE, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        if (!ca->kw)
            ca->kw = json_object();
        char *key = strndup(arg, (size_t)(eq - arg));
        json_t *v = json_or_string(eq + 1);
        int bad = !ca->kw || !key || !v || json_object_set_new(ca->kw, key, v) != 0;
        free(key);
        if (bad) {
            cli_error(cli, "invalid --kw '%s' (not UTF-8?)", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    case OPT_COUNTDOWN:
        if (!cli_parse_seconds(arg, &ca->send.countdown)) {
            cli_error(cli, "--countdown expects seconds, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case OPT_ETA:
        if (!cli_parse_time(arg, &ca->send.eta)) {
            cli_error(cli, "--eta expects an ISO 8601 time (2026-12-02T10:00:00Z), got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case OPT_EXPIRES:
        ca->send.expires = ca->send.expires_at = 0; /* the last one given wins */
        if (!cli_parse_seconds(arg, &ca->send.expires) &&
            !cli_parse_time(arg, &ca->send.expires_at)) {
            cli_error(cli, "--expires expects seconds or an ISO 8601 time, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case OPT_TIME_LIMIT:
    case OPT_SOFT_TIME_LIMIT: {
        bool hard = val == OPT_TIME_LIMIT;
        if (!cli_parse_seconds(arg, hard ? &ca->send.time_limit : &ca->send.soft_time_limit)) {
            cli_error(cli, "--%s expects seconds, got '%s'",
                      hard ? "time-limit" : "soft-time-limit", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    case OPT_MAX_RETRIES: {
        char *end;
        long n = strtol(arg, &end, 10);
        if (!*arg || *end || n < 0 || n > 1000000) {
            cli_error(cli, "--max-retries expects an integer >= 0, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        ca->send.max_retries = (int)n;
        ca->send.has_max_retries = true;
        return 0;
    }
    case OPT_RETRY_BACKOFF:
        ca->send.retry_backoff = DEFAULT_RETRY_BACKOFF;
        if (arg &&
            (!cli_parse_seconds(arg, &ca->send.retry_backoff) || ca->send.retry_backoff <= 0)) {
            cli_error(cli, "--retry-backoff expects seconds > 0, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case OPT_PRIORITY: {
        char *end;
        long p = strtol(arg, &end, 10);
        if (!*arg || *end || p < 0 || p > 9) {
            cli_error(cli, "--priority expects an integer 0..9, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        ca->send.priority = (int)p;
        ca->send.has_priority = true;
        return 0;
    }
    case OPT_TASK_ID:
        ca->send.task_id = arg;
        return 0;
    case OPT_IGNORE_RESULT:
        ca->send.ignore_result = true;
        return 0;
    case OPT_WAIT:
        ca->wait = true;
        return 0;
    case OPT_TIMEOUT:
        if (!cli_parse_seconds(arg, &ca->timeout)) {
            cli_error(cli, "--timeout expects seconds, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        ca->has_timeout = true;
        return 0;
    }
    return CLI_EXIT_USAGE;
}

/* Builds the args array and kwargs object texts; exit code or -1. */
static int build_arguments(struct cli *cli, struct call_args *ca, char **args_out,
                           char **kwargs_out)
{
    json_error_t jerr;
    json_t *args = NULL, *kwargs = NULL;
    int rc = CLI_EXIT_USAGE;

    if (ca->args_json) {
        args = json_loads(ca->args_json, 0, &jerr);
        if (!json_is_array(args)) {
            cli_error(cli, "--args must be a JSON array, got '%s'%s%s", ca->args_json,
                      args ? "" : ": ", args ? "" : jerr.text);
            goto out;
        }
        if (cli->npos > 1) {
            cli_error(cli, "give positional arguments either after the task name or with --args, "
                           "not both");
            goto out;
        }
    } else {
        args = json_array();
        for (int i = 1; i < cli->npos; i++) {
            json_t *v = json_or_string(cli->pos[i]);
            if (!v || json_array_append_new(args, v) != 0) {
                cli_error(cli, "argument '%s' is neither JSON nor UTF-8 text", cli->pos[i]);
                goto out;
            }
        }
    }
    if (ca->kwargs_json) {
        kwargs = json_loads(ca->kwargs_json, 0, &jerr);
        if (!json_is_object(kwargs)) {
            cli_error(cli, "--kwargs must be a JSON object, got '%s'%s%s", ca->kwargs_json,
                      kwargs ? "" : ": ", kwargs ? "" : jerr.text);
            goto out;
        }
    } else {
        kwargs = json_object();
    }
    if (ca->kw && json_object_update(kwargs, ca->kw) != 0)
        goto out;
    *args_out = json_dumps(args, JSON_ENSURE_ASCII);
    *kwargs_out = json_dumps(kwargs, JSON_ENSURE_ASCII);
    rc = *args_out && *kwargs_out ? -1 : CLI_EXIT_USAGE;
out:
    json_decref(args);
    json_decref(kwargs);
    return rc;
}

/* Prints a finished task the way --wait promises; returns the exit code. */
static int report_outcome(cel_result *r)
{
    switch (cel_result_state(r)) {
    case CEL_STATE_SUCCESS:
        printf("%s\n", cel_result_value_json(r));
        return CLI_EXIT_OK;
    case CEL_STATE_FAILURE:
    case CEL_STATE_REVOKED: {
        const char *type = cel_result_exc_type(r);
        const char *msg = cel_result_exc_message(r);
        if (type)
            fprintf(stderr, "%s: %s\n", type, msg ? msg : "");
        else
            fprintf(stderr, "%s: %s\n", cel_result_state_name(r), cel_result_value_json(r));
        return CLI_EXIT_TASK_FAILED;
    }
    default:
        fprintf(stderr, "celeriac call: error: task %s ended in state %s\n", cel_result_id(r),
                cel_result_state_name(r));
        return CLI_EXIT_TASK_FAILED;
    }
}

int cli_cmd_call(int argc, char **argv)
{
    struct cli cli = {0};
    struct call_args ca = {.send = CEL_SEND_OPTIONS_INIT()};
    cel_client *client = NULL;
    cel_result *res = NULL;
    char *args = NULL, *kwargs = NULL;

    int rc = cli_parse(&cli, &cli_call_cmd, argc, argv, on_opt, &ca);
    if (rc >= 0)
        goto out;
    if (cli.check_config) { /* needs no task name, id or module */
        rc = cli_configure(&cli);
        goto out;
    }
    rc = CLI_EXIT_USAGE;
    if (cli.npos < 1) {
        cli_error(&cli, "missing task name (usage: celeriac call NAME [ARG...])");
        goto out;
    }
    if (ca.wait && ca.send.ignore_result) {
        cli_error(&cli, "--wait cannot wait for a task sent with --ignore-result");
        goto out;
    }
    if (ca.has_timeout && !ca.wait) {
        cli_error(&cli, "--timeout only applies with --wait");
        goto out;
    }
    rc = build_arguments(&cli, &ca, &args, &kwargs);
    if (rc >= 0)
        goto out;
    rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;

    client = cel_client_new(cli.cfg);
    if (!client) {
        cli_error(&cli, "out of memory");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    int crc = cel_client_connect(client);
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = cli_exit_for(crc) == CLI_EXIT_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_BROKER;
        goto out;
    }
    crc = cel_client_send(client, cli.pos[0], args, kwargs, &ca.send, &res);
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = cli_exit_for(crc) == CLI_EXIT_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_BROKER;
        goto out;
    }
    if (!ca.wait) {
        printf("%s\n", cel_result_id(res));
        rc = CLI_EXIT_OK;
        goto out;
    }

    crc = cli_wait_result(&cli, res, ca.has_timeout ? ca.timeout : 30.0);
    if (crc == CEL_ETIMEDOUT) {
        rc = CLI_EXIT_TIMEOUT;
        goto out;
    }
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = CLI_EXIT_BROKER;
        goto out;
    }
    rc = report_outcome(res);

out:
    free(args);
    free(kwargs);
    json_decref(ca.kw);
    cel_result_free(res);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
