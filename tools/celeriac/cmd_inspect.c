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

static bool print_empty(FILE *out, const json_t *list)
{
    if (!json_is_array(list)) {
        cli_reply_generic(out, list);
        return true;
    }
    if (json_array_size(list) == 0) {
        fprintf(out, "%*s- empty -\n", INDENT, "");
        return true;
    }
    return false;
}

/* active: each task with its worker process and the time it has run. */
static void show_active(FILE *out, const json_t *list)
{
    if (print_empty(out, list))
        return;
    size_t i;
    const json_t *req;
    json_array_foreach(list, i, req)
    {
        print_request(out, req, "");
        const json_t *pid = json_object_get(req, "worker_pid");
        const json_t *start = json_object_get(req, "time_start");
        if (json_is_integer(pid))
            fprintf(out, " pid=%lld", (long long)json_integer_value(pid));
        if (json_is_number(start))
            fprintf(out, " running %.1fs", now_s() - json_number_value(start));
        fputc('\n', out);
    }
}

static void show_reserved(FILE *out, const json_t *list)
{
    if (print_empty(out, list))
        return;
    size_t i;
    const json_t *req;
    json_array_foreach(list, i, req)
    {
        print_request(out, req, "");
        fputc('\n', out);
    }
}

static void show_scheduled(FILE *out, const json_t *list)
{
    if (print_empty(out, list))
        return;
    size_t i;
    const json_t *entry;
    json_array_foreach(list, i, entry)
    {
        print_request(out, json_object_get(entry, "request"), "");
        const char *eta = json_string_value(json_object_get(entry, "eta"));
        fprintf(out, " eta=%s\n", eta ? eta : "?");
    }
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
    const char *name;
    int min_args, max_args; /* -1: any number */
    const char *args_usage;
    cli_reply_fn show;
};

static const struct inspect_def defs[] = {
    {"ping", 0, 0, "", NULL},
    {"active", 0, 0, "", show_active},
    {"reserved", 0, 0, "", show_reserved},
    {"scheduled", 0, 0, "", show_scheduled},
    {"revoked", 0, 0, "", NULL},
    {"registered", 0, 0, "", NULL},
    {"stats", 0, 0, "", NULL},
    {"active_queues", 0, 0, "", NULL},
    {"query_task", 1, -1, "ID...", show_query},
    {"conf", 0, 0, "", NULL},
    {"report", 0, 0, "", NULL},
    {"clock", 0, 0, "", NULL},
    {"memsample", 0, 0, "", NULL},
};
#define NDEFS (sizeof defs / sizeof defs[0])

/* Celery's arguments for `def` with the words after its name. */
static json_t *build_args(const struct inspect_def *def, char **words, int n)
{
    if (strcmp(def->name, "registered") == 0)
        return json_pack("{s:[]}", "taskinfoitems");
    if (strcmp(def->name, "query_task") == 0) {
        json_t *ids = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(ids, json_string(words[i]));
        return json_pack("{s:o}", "ids", ids);
    }
    return json_object();
}

static void list_commands(FILE *out)
{
    fprintf(out, "commands:\n");
    for (size_t i = 0; i < NDEFS; i++)
        fprintf(out, "  %s %s\n", defs[i].name, defs[i].args_usage);
}

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    int rc = cli_remote_opt(cli, ctx, val, arg);
    return rc < 0 ? CLI_EXIT_USAGE : rc;
}

int cli_cmd_inspect(int argc, char **argv)
{
    struct cli cli = {0};
    struct cli_remote ro = {0};
    cel_client *client = NULL;
    cel_control_replies *replies = NULL;
    json_t *args = NULL;

    int rc = cli_parse(&cli, &cli_inspect_cmd, argc, argv, on_opt, &ro);
    if (rc == CLI_EXIT_OK && argc > 1)
        list_commands(stdout); /* after --help */
    if (rc >= 0)
        goto out;
    if (cli.check_config) {
        rc = cli_configure(&cli);
        goto out;
    }
    rc = CLI_EXIT_USAGE;
    if (cli.npos == 0) {
        cli_error(&cli, "no command given (see 'celeriac inspect --help')");
        goto out;
    }
    const struct inspect_def *def = NULL;
    for (size_t i = 0; i < NDEFS && !def; i++)
        if (strcmp(defs[i].name, cli.pos[0]) == 0)
            def = &defs[i];
    if (!def) {
        cli_error(&cli, "unknown inspect command '%s'", cli.pos[0]);
        list_commands(stderr);
        goto out;
    }
    int nargs = cli.npos - 1;
    if (nargs < def->min_args || (def->max_args >= 0 && nargs > def->max_args)) {
        cli_error(&cli, "usage: celeriac inspect %s %s", def->name, def->args_usage);
        goto out;
    }
    args = build_args(def, cli.pos + 1, nargs);
    if (!args) {
        cli_error(&cli, "arguments must be UTF-8");
        goto out;
    }
    rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;
    rc = cli_client_open(&cli, &client);
    if (rc >= 0)
        goto out;
    rc = cli_remote_call(&cli, client, &ro, def->name, args, false, &replies);
    if (rc >= 0)
        goto out;
    rc = cli_remote_print(&ro, replies, def->show);

out:
    json_decref(args);
    cel_control_replies_free(replies);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
