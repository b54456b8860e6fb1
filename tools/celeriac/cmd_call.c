/*
 * cmd_call.c - `celeriac call NAME [ARG...]`: send one task, optionally
 * wait for its result; `celeriac call --workflow JSON|FILE|-`: send a
 * workflow written as Celery's signature dict.
 *
 * Positional arguments are JSON when they parse as JSON and strings
 * otherwise, so `call tasks.add 2 3` sends [2, 3] and `call tasks.echo
 * hello` sends ["hello"]; quote a number to send it as a string ('"2"').
 *
 * A call with --link/--link-error, and every workflow, goes through
 * cel_client_apply() (celeriac/canvas.h); a plain call stays on
 * cel_client_send(), which also carries the celeriac-only retry options.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_args.h"
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
    OPT_WORKFLOW,
    OPT_LINK,
    OPT_LINK_ERROR,
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
    {"workflow", required_argument, OPT_WORKFLOW, "JSON|FILE|-",
     "send a workflow: Celery's signature dict ({\"task\": ..., \"subtask_type\": \"chain\", "
     "...}) inline, in FILE, or on stdin with -; instead of NAME [ARG...]"},
    {"link", required_argument, OPT_LINK, "TASK",
     "after the task succeeds, run TASK with its result as first argument (repeatable; TASK "
     "may be a signature JSON object)"},
    {"link-error", required_argument, OPT_LINK_ERROR, "TASK",
     "if the task fails, run TASK with the failed task's id as first argument (repeatable)"},
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
    "Send a task or a workflow; print its id (a group: its members' ids), or with --wait its "
    "result (a group: the list of results).",
    "NAME [ARG...] [OPTIONS]   (use -- before an argument that starts with -)\n"
    "       celeriac call --workflow JSON|FILE|- [--wait] [--timeout SECONDS]",
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
    const char *workflow; /* --workflow: inline JSON, a file, or "-" */
    json_t *links;        /* --link TASKs, strings */
    json_t *errbacks;     /* --link-error TASKs, strings */
};

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
    case OPT_KW:
        return cli_add_kw(cli, &ca->kw, arg);
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
    case OPT_WORKFLOW:
        ca->workflow = arg;
        return 0;
    case OPT_LINK:
    case OPT_LINK_ERROR: {
        json_t **list = val == OPT_LINK ? &ca->links : &ca->errbacks;
        if (!*list)
            *list = json_array();
        if (!*arg || !*list || json_array_append_new(*list, json_string(arg)) != 0) {
            cli_error(cli, "invalid --%s '%s'", val == OPT_LINK ? "link" : "link-error", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
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

/* The first per-call option given, by its flag; NULL when none. A
 * workflow carries its options in its JSON. */
static const char *send_option_given(const cel_send_options *o)
{
    if (o->queue)
        return "--queue";
    if (o->countdown > 0)
        return "--countdown";
    if (o->eta > 0)
        return "--eta";
    if (o->expires > 0 || o->expires_at > 0)
        return "--expires";
    if (o->time_limit > 0)
        return "--time-limit";
    if (o->soft_time_limit > 0)
        return "--soft-time-limit";
    if (o->has_max_retries)
        return "--max-retries";
    if (o->retry_backoff > 0)
        return "--retry-backoff";
    if (o->has_priority)
        return "--priority";
    if (o->task_id)
        return "--task-id";
    if (o->ignore_result)
        return "--ignore-result";
    return NULL;
}

/* The text of --workflow: inline when it starts with '{', stdin for "-",
 * else the named file. NULL (after saying why) when unreadable. */
static char *workflow_text(struct cli *cli, const char *arg)
{
    const char *p = arg + strspn(arg, " \t\r\n");
    if (*p == '{')
        return strdup(arg);
    bool is_stdin = strcmp(arg, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(arg, "r");
    if (!f) {
        cli_error(cli, "cannot read workflow file '%s': %s", arg, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (!buf || bad) {
        cli_error(cli, "cannot read workflow from '%s'", arg);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* A --link/--link-error TASK: a signature JSON object, or a task name
 * called with no arguments of its own. */
static cel_sig *link_sig(struct cli *cli, const char *text)
{
    if (text[strspn(text, " \t")] != '{') {
        cel_sig *s = cel_sig_new(text, NULL, NULL);
        if (!s)
            cli_error(cli, "invalid linked task '%s': %s", text, cel_sig_errmsg());
        return s;
    }
    cel_sig *s = NULL;
    char why[256];
    if (cel_sig_from_json(text, &s, why, sizeof why) != CEL_OK)
        cli_error(cli, "invalid linked signature '%s': %s", text, why);
    return s;
}

/* Puts a plain call's options on its signature (what Celery's
 * apply_async takes as options); false after saying why. */
static bool set_sig_options(struct cli *cli, const cel_send_options *o, cel_sig *s)
{
    if (o->has_max_retries || o->retry_backoff > 0) {
        cli_error(cli, "%s cannot be combined with --link or --link-error",
                  o->has_max_retries ? "--max-retries" : "--retry-backoff");
        return false;
    }
    char num[64];
    int rc = CEL_OK;
    if (o->queue)
        rc = cel_sig_set_queue(s, o->queue);
    if (rc == CEL_OK && o->countdown > 0)
        rc = cel_sig_set_countdown(s, o->countdown);
    if (rc == CEL_OK && o->eta > 0)
        rc = cel_sig_set_eta(s, o->eta);
    if (rc == CEL_OK && o->has_priority)
        rc = cel_sig_set_priority(s, o->priority);
    if (rc == CEL_OK && o->task_id)
        rc = cel_sig_set_task_id(s, o->task_id);
    /* An absolute expiry travels as seconds from now: the planner turns
     * either into the same expires header. */
    double expires = o->expires > 0      ? o->expires
                     : o->expires_at > 0 ? o->expires_at - (double)time(NULL)
                                         : 0;
    if (rc == CEL_OK && (o->expires > 0 || o->expires_at > 0)) {
        snprintf(num, sizeof num, "%.6f", expires > 0 ? expires : 0);
        rc = cel_sig_set_option(s, "expires", num);
    }
    if (rc == CEL_OK && o->time_limit > 0) {
        snprintf(num, sizeof num, "%.6f", o->time_limit);
        rc = cel_sig_set_option(s, "time_limit", num);
    }
    if (rc == CEL_OK && o->soft_time_limit > 0) {
        snprintf(num, sizeof num, "%.6f", o->soft_time_limit);
        rc = cel_sig_set_option(s, "soft_time_limit", num);
    }
    if (rc == CEL_OK && o->ignore_result)
        rc = cel_sig_set_option(s, "ignore_result", "true");
    if (rc != CEL_OK)
        cli_error(cli, "%s", cel_sig_errmsg());
    return rc == CEL_OK;
}

/* Adds each TASK of `list` with `add` (cel_sig_link or _link_error). */
static bool add_links(struct cli *cli, cel_sig *s, const json_t *list,
                      int (*add)(cel_sig *, cel_sig *))
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        cel_sig *l = link_sig(cli, json_string_value(v));
        if (!l)
            return false;
        if (add(s, l) != CEL_OK) {
            cli_error(cli, "%s", cel_sig_errmsg());
            return false;
        }
    }
    return true;
}

/*
 * The signature to apply: the --workflow, or the plain call with its
 * links. NULL with *sig for a plain call without links (cel_client_send
 * does it). Returns -1 or an exit code after saying why.
 */
static int build_sig(struct cli *cli, struct call_args *ca, const char *args, const char *kwargs,
                     cel_sig **sig)
{
    *sig = NULL;
    if (ca->workflow) {
        char *text = workflow_text(cli, ca->workflow);
        if (!text)
            return CLI_EXIT_USAGE;
        char why[512];
        int rc = cel_sig_from_json(text, sig, why, sizeof why);
        free(text);
        if (rc != CEL_OK) {
            cli_error(cli, "invalid --workflow: %s", why);
            return CLI_EXIT_USAGE;
        }
        return -1;
    }
    if (!ca->links && !ca->errbacks)
        return -1;
    *sig = cel_sig_new(cli->pos[0], args, kwargs);
    if (!*sig) {
        cli_error(cli, "%s", cel_sig_errmsg());
        return CLI_EXIT_USAGE;
    }
    if (!set_sig_options(cli, &ca->send, *sig) || !add_links(cli, *sig, ca->links, cel_sig_link) ||
        !add_links(cli, *sig, ca->errbacks, cel_sig_link_error)) {
        cel_sig_free(*sig);
        *sig = NULL;
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* Without --wait: the id to look the result up by; a group's members,
 * one per line (a group has no stored result of its own). */
static void print_ids(cel_result *r)
{
    size_t n = cel_result_member_count(r);
    if (n == 0)
        printf("%s\n", cel_result_id(r));
    for (size_t i = 0; i < n; i++)
        printf("%s\n", cel_result_member_id(r, i));
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
    cel_sig *sig = NULL;
    char *args = NULL, *kwargs = NULL;

    int rc = cli_parse(&cli, &cli_call_cmd, argc, argv, on_opt, &ca);
    if (rc >= 0)
        goto out;
    if (cli.check_config) { /* needs no task name, id or module */
        rc = cli_configure(&cli);
        goto out;
    }
    rc = CLI_EXIT_USAGE;
    if (ca.workflow) {
        const char *extra = cli.npos         ? "a task name"
                            : ca.args_json   ? "--args"
                            : ca.kwargs_json ? "--kwargs"
                            : ca.kw          ? "--kw"
                            : ca.links       ? "--link"
                            : ca.errbacks    ? "--link-error"
                                             : send_option_given(&ca.send);
        if (extra) {
            cli_error(&cli,
                      "--workflow takes no %s: its JSON holds the tasks, their arguments "
                      "and options",
                      extra);
            goto out;
        }
    } else if (cli.npos < 1) {
        cli_error(&cli, "missing task name (usage: celeriac call NAME [ARG...] or celeriac call "
                        "--workflow JSON)");
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
    if (!ca.workflow) {
        rc = cli_call_arguments(&cli, cli.pos + 1, cli.npos - 1, ca.args_json, ca.kwargs_json,
                                ca.kw, &args, &kwargs);
        if (rc >= 0)
            goto out;
    }
    rc = build_sig(&cli, &ca, args, kwargs, &sig);
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
    if (sig)
        crc = cel_client_apply(client, sig, &res);
    else
        crc = cel_client_send(client, cli.pos[0], args, kwargs, &ca.send, &res);
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = cli_exit_for(crc) == CLI_EXIT_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_BROKER;
        goto out;
    }
    if (!ca.wait) {
        print_ids(res);
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
    json_decref(ca.links);
    json_decref(ca.errbacks);
    cel_sig_free(sig);
    cel_result_free(res);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
