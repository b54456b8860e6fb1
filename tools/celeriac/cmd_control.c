/*
 * cmd_control.c - `celeriac control COMMAND ARGS`: change what the
 * workers do, as `celery control` does, on celeriac and Python workers.
 *
 *   celeriac control rate_limit tasks.add 10/s
 *   celeriac control pool_grow 2 -d w1@host
 *   celeriac control pause images        # every celeriac worker, now and later
 *
 * Each command is one broadcast request with Celery's arguments, its
 * replies printed as Celery prints them. Two differ: `shutdown` is sent
 * without waiting (workers exit without replying), and `pause`/`resume`
 * store the queue's flag on the broker side and wait for the running
 * workers to apply it (cel_client_queue_pause()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_remote.h"

static const struct cli_opt control_opts[] = {CLI_REMOTE_OPTS};

const struct cli_cmd cli_control_cmd = {
    "control",
    "Change what the workers do (rate_limit, pool_grow, pause, ...; see --help).",
    "COMMAND [ARGS] [-d NODE[,NODE]] [-t SECONDS] [--json]",
    false,
    control_opts,
    sizeof control_opts / sizeof control_opts[0],
};

enum kind {
    CALL,  /* request and replies */
    CAST,  /* request only */
    PAUSE, /* cel_client_queue_pause() */
};

struct control_def {
    struct cli_verb verb;
    enum kind kind;
};

static const struct control_def defs[] = {
    {{"rate_limit", 2, 2, "TASK RATE"}, CALL},
    {{"time_limit", 2, 3, "TASK SOFT [HARD]"}, CALL},
    {{"add_consumer", 1, 1, "QUEUE"}, CALL},
    {{"cancel_consumer", 1, 1, "QUEUE"}, CALL},
    {{"revoke", 1, -1, "ID..."}, CALL},
    {{"terminate", 2, -1, "SIGNAL ID..."}, CALL},
    {{"pool_grow", 0, 1, "[N]"}, CALL},
    {{"pool_shrink", 0, 1, "[N]"}, CALL},
    {{"autoscale", 2, 2, "MAX MIN"}, CALL},
    {{"enable_events", 0, 0, ""}, CALL},
    {{"disable_events", 0, 0, ""}, CALL},
    {{"heartbeat", 0, 0, ""}, CALL},
    {{"shutdown", 0, 0, ""}, CAST},
    {{"pause", 1, 1, "QUEUE"}, PAUSE},
    {{"resume", 1, 1, "QUEUE"}, PAUSE},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static bool parse_count(const char *text, long long min, json_int_t *out)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || v < min || v > 100000)
        return false;
    *out = (json_int_t)v;
    return true;
}

static json_t *id_list(char **words, int n)
{
    json_t *ids = json_array();
    for (int i = 0; i < n && ids; i++)
        if (json_array_append_new(ids, json_string(words[i])) != 0) {
            json_decref(ids);
            return NULL;
        }
    return ids;
}

/* Celery's arguments for `name` from its words; NULL when a word is
 * wrong (*said: the reason is printed) or not UTF-8. */
static json_t *args_of(const struct cli *cli, const char *name, char **w, int n, bool *said)
{
    *said = true;
    if (strcmp(name, "rate_limit") == 0) {
        *said = false;
        return json_pack("{s:s, s:s}", "task_name", w[0], "rate_limit", w[1]);
    }
    if (strcmp(name, "time_limit") == 0) {
        double soft, hard = 0;
        if (!cli_parse_seconds(w[1], &soft) || (n > 2 && !cli_parse_seconds(w[2], &hard))) {
            cli_error(cli, "time_limit expects seconds: TASK SOFT [HARD]");
            return NULL;
        }
        *said = false;
        return json_pack("{s:s, s:f, s:o}", "task_name", w[0], "soft", soft, "hard",
                         n > 2 ? json_real(hard) : json_null());
    }
    *said = false;
    if (strcmp(name, "add_consumer") == 0 || strcmp(name, "cancel_consumer") == 0)
        return json_pack("{s:s}", "queue", w[0]);
    if (strcmp(name, "revoke") == 0)
        return json_pack("{s:o}", "task_id", id_list(w, n));
    if (strcmp(name, "terminate") == 0)
        return json_pack("{s:s, s:o}", "signal", w[0], "task_id", id_list(w + 1, n - 1));
    *said = true;
    if (strcmp(name, "pool_grow") == 0 || strcmp(name, "pool_shrink") == 0) {
        json_int_t count = 1;
        if (n > 0 && !parse_count(w[0], 1, &count)) {
            cli_error(cli, "%s expects a positive count, got '%s'", name, w[0]);
            return NULL;
        }
        return json_pack("{s:I}", "n", count);
    }
    if (strcmp(name, "autoscale") == 0) {
        json_int_t max, min;
        if (!parse_count(w[0], 1, &max) || !parse_count(w[1], 0, &min) || min > max) {
            cli_error(cli, "autoscale expects MAX MIN with 0 <= MIN <= MAX, MAX >= 1");
            return NULL;
        }
        return json_pack("{s:I, s:I}", "max", max, "min", min);
    }
    *said = false;
    return json_object();
}

static int build_args(const struct cli *cli, const struct cli_remote *ro, const struct cli_verb *v,
                      char **words, int n, json_t **args)
{
    if (((const struct control_def *)v)->kind == PAUSE) {
        if (!ro->nnodes)
            return -1;
        cli_error(cli, "pause and resume apply to every worker; for one worker use "
                       "cancel_consumer/add_consumer -d NODE");
        return CLI_EXIT_USAGE;
    }
    bool said;
    *args = args_of(cli, v->name, words, n, &said);
    if (*args)
        return -1;
    if (!said)
        cli_error(cli, "arguments must be UTF-8");
    return CLI_EXIT_USAGE;
}

/* pause/resume: the durable flag, applied by the running workers
 * (cel_client_queue_pause). */
static int pause_queue(const struct cli *cli, cel_client *client, const struct cli_remote *ro,
                       const char *queue, bool paused)
{
    int rc = cel_client_queue_pause(client, queue, paused);
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(client));
        return cli_exit_for(rc);
    }
    if (ro->json) {
        json_t *v = json_pack("{s:s, s:b}", "queue", queue, "paused", paused);
        char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(v);
    } else {
        printf("queue %s %s on every celeriac worker\n", queue, paused ? "paused" : "resumed");
    }
    return CLI_EXIT_OK;
}

/* pause/resume and the casts; -1 for the verbs that are plain calls. */
static int run(const struct cli *cli, cel_client *client, const struct cli_remote *ro,
               const struct cli_verb *v, const json_t *args)
{
    switch (((const struct control_def *)v)->kind) {
    case PAUSE:
        return pause_queue(cli, client, ro, cli->pos[1], strcmp(v->name, "pause") == 0);
    case CAST: {
        cel_control_replies *none = NULL;
        int rc = cli_remote_call(cli, client, ro, v->name, args, true, &none);
        if (rc >= 0)
            return rc;
        printf("%s sent (workers do not reply to it)\n", v->name);
        return CLI_EXIT_OK;
    }
    case CALL:
        break;
    }
    return -1;
}

int cli_cmd_control(int argc, char **argv)
{
    static const struct cli_verb_spec spec = {
        &cli_control_cmd, defs, NDEFS, sizeof defs[0], build_args, run, NULL,
    };
    return cli_verb_main(&spec, argc, argv);
}
