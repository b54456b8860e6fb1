/*
 * cmd_inspect.c - `celeriac inspect COMMAND`: ask the workers (celeriac
 * and Python Celery alike) what they are doing, as `celery inspect` does.
 *
 *   celeriac inspect ping
 *   celeriac inspect active -d w1@host --json
 *   celeriac inspect query_task ID...
 *
 * Each command is one broadcast request with Celery's arguments; the
 * replies are printed as Celery prints them (`->  w1@host: OK` and the
 * reply below), with tasks one per line, or with --json as one object
 * {node: reply}. Exit 3 when no worker replied in time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli_remote.h"

#define INDENT 4

static const struct cli_opt inspect_opts[] = {CLI_REMOTE_OPTS};

const struct cli_cmd cli_inspect_cmd = {
    "inspect",
    "Ask the workers what they do (ping, active, stats, ...; see --help).",
    "COMMAND [ARGS] [-d NODE[,NODE]] [-t SECONDS] [--json]",
    false,
    inspect_opts,
    sizeof inspect_opts / sizeof inspect_opts[0],
};

/* "name[id] args=[..] kwargs={..}" of one request dict (Celery's shape). */
static void print_request(FILE *out, const json_t *req, const char *prefix)
{
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *id = json_string_value(json_object_get(req, "id"));
    char *args = json_dumps(json_object_get(req, "args"), JSON_COMPACT | JSON_ENCODE_ANY);
    char *kwargs = json_dumps(json_object_get(req, "kwargs"), JSON_COMPACT | JSON_ENCODE_ANY);
    fprintf(out, "%*s* %s%s[%s] args=%s kwargs=%s", INDENT, "", prefix, name ? name : "?",
            id ? id : "?", args ? args : "?", kwargs ? kwargs : "?");
    free(args);
    free(kwargs);
}

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* A reply that is a list of tasks: `item` prints each; "- empty -". */
static void show_list(FILE *out, const json_t *list, void (*item)(FILE *, const json_t *))
{
    if (!json_is_array(list)) {
        cli_reply_generic(out, list);
        return;
    }
    if (json_array_size(list) == 0)
        fprintf(out, "%*s- empty -\n", INDENT, "");
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        item(out, v);
        fputc('\n', out);
    }
}

/* active: each task with its worker process and the time it has run. */
static void active_item(FILE *out, const json_t *req)
{
    print_request(out, req, "");
    const json_t *pid = json_object_get(req, "worker_pid");
    const json_t *start = json_object_get(req, "time_start");
    if (json_is_integer(pid))
        fprintf(out, " pid=%lld", (long long)json_integer_value(pid));
    if (json_is_number(start))
        fprintf(out, " running %.1fs", now_s() - json_number_value(start));
}

static void reserved_item(FILE *out, const json_t *req)
{
    print_request(out, req, "");
}

static void scheduled_item(FILE *out, const json_t *entry)
{
    print_request(out, json_object_get(entry, "request"), "");
    const char *eta = json_string_value(json_object_get(entry, "eta"));
    fprintf(out, " eta=%s", eta ? eta : "?");
}

/* active_queues: kombu queue objects, by name, exchange and key. */
static void queue_item(FILE *out, const json_t *q)
{
    const json_t *ex = json_object_get(q, "exchange");
    const char *name = json_string_value(json_object_get(q, "name"));
    const char *exname = json_string_value(json_object_get(ex, "name"));
    const char *extype = json_string_value(json_object_get(ex, "type"));
    const char *key = json_string_value(json_object_get(q, "routing_key"));
    fprintf(out, "%*s* %s exchange=%s(%s) key=%s", INDENT, "", name ? name : "?",
            exname ? exname : "", extype ? extype : "?", key ? key : "");
}

static void show_queues(FILE *out, const json_t *list)
{
    show_list(out, list, queue_item);
}

static void show_active(FILE *out, const json_t *list)
{
    show_list(out, list, active_item);
}

static void show_reserved(FILE *out, const json_t *list)
{
    show_list(out, list, reserved_item);
}

static void show_scheduled(FILE *out, const json_t *list)
{
    show_list(out, list, scheduled_item);
}

/* query_task: {id: [state, request]}. */
static void show_query(FILE *out, const json_t *reply)
{
    if (!json_is_object(reply)) {
        cli_reply_generic(out, reply);
        return;
    }
    if (json_object_size(reply) == 0)
        fprintf(out, "%*s- empty -\n", INDENT, "");
    const char *id;
    const json_t *v;
    json_object_foreach((json_t *)reply, id, v)
    {
        const char *state = json_string_value(json_array_get(v, 0));
        print_request(out, json_array_get(v, 1), "");
        fprintf(out, " state=%s\n", state ? state : "?");
    }
}

/* One inspect command: its arguments come from the positional words. */
struct inspect_def {
    struct cli_verb verb;
    cli_reply_fn show;
};

static const struct inspect_def defs[] = {
    {{"ping", 0, 0, ""}, NULL},
    {{"active", 0, 0, ""}, show_active},
    {{"reserved", 0, 0, ""}, show_reserved},
    {{"scheduled", 0, 0, ""}, show_scheduled},
    {{"revoked", 0, 0, ""}, NULL},
    {{"registered", 0, 0, ""}, NULL},
    {{"stats", 0, 0, ""}, NULL},
    {{"active_queues", 0, 0, ""}, show_queues},
    {{"query_task", 1, -1, "ID..."}, show_query},
    {{"conf", 0, 0, ""}, NULL},
    {{"report", 0, 0, ""}, NULL},
    {{"clock", 0, 0, ""}, NULL},
    {{"memsample", 0, 0, ""}, NULL},
};
#define NDEFS (sizeof defs / sizeof defs[0])

/* Celery's arguments for `v` with the words after it. */
static int build_args(const struct cli *cli, const struct cli_remote *ro, const struct cli_verb *v,
                      char **words, int n, json_t **args)
{
    (void)ro;
    if (strcmp(v->name, "registered") == 0) {
        *args = json_pack("{s:[]}", "taskinfoitems");
    } else if (strcmp(v->name, "query_task") == 0) {
        json_t *ids = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(ids, json_string(words[i]));
        *args = json_pack("{s:o}", "ids", ids);
    } else {
        *args = json_object();
    }
    if (*args)
        return -1;
    cli_error(cli, "arguments must be UTF-8");
    return CLI_EXIT_USAGE;
}

static cli_reply_fn show_for(const struct cli_verb *v)
{
    return ((const struct inspect_def *)v)->show;
}

int cli_cmd_inspect(int argc, char **argv)
{
    static const struct cli_verb_spec spec = {
        &cli_inspect_cmd, defs, NDEFS, sizeof defs[0], build_args, NULL, show_for,
    };
    return cli_verb_main(&spec, argc, argv);
}
