/*
 * cmd_queues.c - `celeriac queues`: the queues as the broker and the
 * workers see them: messages waiting, per priority band, whether the
 * queue is paused (celeriac control pause), and which workers consume it
 * (their `active_queues` replies: celeriac and Python workers).
 *
 * Without -Q it shows the default queue, every queue a worker replied it
 * consumes, and every paused queue. Workers that do not reply within
 * --timeout are simply not listed as consumers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_remote.h"

#define MAX_QUEUES 256
#define MAX_BANDS  16

static const struct cli_opt queues_opts[] = {
    {"queues", required_argument, 'Q', "a,b", "only these queues"},
    CLI_REMOTE_OPTS,
};

const struct cli_cmd cli_queues_cmd = {
    "queues",
    "Show the queues: messages per priority band, paused or not, consuming workers.",
    "[-Q QUEUES] [-d NODE[,NODE]] [-t SECONDS] [--json]",
    false,
    queues_opts,
    sizeof queues_opts / sizeof queues_opts[0],
};

struct queues_args {
    struct cli_remote ro;
    const char *only;
};

struct queue_row {
    char *name;
    size_t length;
    cel_queue_band bands[MAX_BANDS];
    size_t nbands;
    bool paused;
    json_t *consumers; /* array of node names */
};

struct rows {
    struct queue_row v[MAX_QUEUES];
    size_t n;
};

static struct queue_row *row_for(struct rows *rows, const char *name, bool add)
{
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->v[i].name, name) == 0)
            return &rows->v[i];
    if (!add || rows->n == MAX_QUEUES)
        return NULL;
    struct queue_row *r = &rows->v[rows->n];
    *r = (struct queue_row){.name = strdup(name), .consumers = json_array()};
    if (!r->name || !r->consumers) {
        free(r->name);
        json_decref(r->consumers);
        return NULL;
    }
    rows->n++;
    return r;
}

static void rows_release(struct rows *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].name);
        json_decref(rows->v[i].consumers);
    }
    rows->n = 0;
}

/* Adds each replying node as a consumer of the queues it named. */
static void add_consumers(struct rows *rows, const cel_control_replies *r, bool add_queues)
{
    for (size_t i = 0; i < cel_control_replies_count(r); i++) {
        json_t *list = cli_reply_value(r, i);
        size_t k;
        const json_t *q;
        json_array_foreach(list, k, q)
        {
            const char *name = json_string_value(json_object_get(q, "name"));
            struct queue_row *row = name ? row_for(rows, name, add_queues) : NULL;
            if (row)
                json_array_append_new(row->consumers, json_string(cel_control_reply_node(r, i)));
        }
        json_decref(list);
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct queue_row *)a)->name, ((const struct queue_row *)b)->name);
}

static void print_json(const struct rows *rows)
{
    json_t *all = json_array();
    for (size_t i = 0; i < rows->n; i++) {
        const struct queue_row *r = &rows->v[i];
        json_t *bands = json_array();
        for (size_t b = 0; b < r->nbands; b++)
            json_array_append_new(bands, json_pack("{s:i, s:I}", "priority", r->bands[b].priority,
                                                   "messages", (json_int_t)r->bands[b].length));
        json_array_append_new(all, json_pack("{s:s, s:I, s:o, s:b, s:O}", "name", r->name,
                                             "messages", (json_int_t)r->length, "bands", bands,
                                             "paused", r->paused, "consumers", r->consumers));
    }
    char *text = json_dumps(all, JSON_COMPACT);
    printf("%s\n", text ? text : "[]");
    free(text);
    json_decref(all);
}

static void print_table(const struct rows *rows)
{
    int width = 5;
    for (size_t i = 0; i < rows->n; i++)
        if ((int)strlen(rows->v[i].name) > width)
            width = (int)strlen(rows->v[i].name);
    printf("%-*s  %8s  %-22s  %-6s  %s\n", width, "QUEUE", "MESSAGES", "BY PRIORITY", "PAUSED",
           "CONSUMERS");
    for (size_t i = 0; i < rows->n; i++) {
        const struct queue_row *r = &rows->v[i];
        char bands[128] = "";
        size_t at = 0;
        for (size_t b = 0; b < r->nbands && at < sizeof bands; b++)
            at += (size_t)snprintf(bands + at, sizeof bands - at, "%s%d:%zu", b ? " " : "",
                                   r->bands[b].priority, r->bands[b].length);
        if (!r->nbands)
            snprintf(bands, sizeof bands, "-");
        printf("%-*s  %8zu  %-22s  %-6s  ", width, r->name, r->length, bands,
               r->paused ? "yes" : "no");
        size_t k;
        const json_t *node;
        json_array_foreach(r->consumers, k, node)
            printf("%s%s", k ? ", " : "", json_string_value(node));
        printf("%s\n", json_array_size(r->consumers) ? "" : "-");
    }
}

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct queues_args *qa = ctx;
    if (val == 'Q') {
        qa->only = arg;
        return 0;
    }
    int rc = cli_remote_opt(cli, &qa->ro, val, arg);
    return rc < 0 ? CLI_EXIT_USAGE : rc;
}

int cli_cmd_queues(int argc, char **argv)
{
    struct cli cli = {0};
    struct queues_args qa = {0};
    cel_client *client = NULL;
    cel_control_replies *replies = NULL;
    struct rows *rows = calloc(1, sizeof *rows);
    char **paused = NULL;
    size_t npaused = 0;

    int rc = cli_begin(&cli, &cli_queues_cmd, argc, argv, on_opt, &qa);
    if (rc < 0)
        rc = cli_refuse_args(&cli);
    if (rc >= 0)
        goto out;
    if (!rows) {
        cli_error(&cli, "out of memory");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = cli_connect(&cli, &client);
    if (rc >= 0)
        goto out;

    /* Which queues: those asked for, or every one anybody knows of. */
    if (qa.only) {
        char buf[4096];
        const char *names[MAX_QUEUES];
        size_t n = cli_split_list(qa.only, buf, sizeof buf, names, MAX_QUEUES);
        for (size_t i = 0; i < n; i++)
            row_for(rows, names[i], true);
    } else {
        const char *q = cel_config_get(cli.cfg, "task_default_queue");
        row_for(rows, q && *q ? q : "celery", true);
    }
    rc = cli_remote_call(&cli, client, &qa.ro, "active_queues", NULL, false, &replies);
    if (rc >= 0)
        goto out;
    add_consumers(rows, replies, !qa.only);
    int crc = cel_client_paused_queues(client, &paused, &npaused);
    if (crc != CEL_OK)
        goto fail;
    for (size_t i = 0; i < npaused; i++) {
        struct queue_row *row = row_for(rows, paused[i], !qa.only);
        if (row)
            row->paused = true;
    }
    qsort(rows->v, rows->n, sizeof rows->v[0], by_name);
    for (size_t i = 0; i < rows->n; i++) {
        struct queue_row *r = &rows->v[i];
        crc = cel_client_queue_length(client, r->name, &r->length);
        if (crc == CEL_OK)
            crc = cel_client_queue_bands(client, r->name, r->bands, MAX_BANDS, &r->nbands);
        if (crc != CEL_OK)
            goto fail;
        if (r->nbands > MAX_BANDS)
            r->nbands = MAX_BANDS;
    }
    if (qa.ro.json)
        print_json(rows);
    else
        print_table(rows);
    rc = CLI_EXIT_OK;
    goto out;

fail:
    cli_error(&cli, "%s", cel_client_errmsg(client));
    rc = cli_exit_for(crc);
out:
    cel_client_names_free(paused, npaused);
    if (rows)
        rows_release(rows);
    free(rows);
    cel_control_replies_free(replies);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
