/*
 * cmd_dead_letters.c - `celeriac dead-letters list|show|requeue|purge`:
 * the messages the broker kept aside, with the reason each was kept
 * (celeriac/dead_letters.h).
 *
 *   celeriac dead-letters list [-Q QUEUE] [--limit N] [--offset N] [--json]
 *   celeriac dead-letters show ID [--json]
 *   celeriac dead-letters requeue ID...
 *   celeriac dead-letters purge (ID... | -Q QUEUE | --all) [-f]
 *
 * A purge of a whole queue or of everything asks first unless -f is
 * given, and refuses without a terminal, as `celeriac purge` does.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "celeriac/dead_letters.h"
#include "cli_common.h"

#define DEFAULT_LIMIT 50

enum {
    OPT_LIMIT = CLI_OPT_LOCAL,
    OPT_OFFSET,
    OPT_JSON,
    OPT_ALL,
};

static const struct cli_opt dl_opts[] = {
    {"queue", required_argument, 'Q', "QUEUE", "only the entries that came from QUEUE"},
    {"limit", required_argument, OPT_LIMIT, "N", "list at most N entries (default 50)"},
    {"offset", required_argument, OPT_OFFSET, "N", "skip the N newest entries"},
    {"json", no_argument, OPT_JSON, NULL, "print JSON (one object per entry)"},
    {"all", no_argument, OPT_ALL, NULL, "purge: every entry of every queue"},
    {"force", no_argument, 'f', NULL, "purge: do not ask for confirmation"},
};

const struct cli_cmd cli_dead_letters_cmd = {
    "dead-letters",
    "List, show, requeue or purge the messages kept aside, with their reasons.",
    "list [-Q QUEUE] [--limit N] [--offset N] [--json] | show ID [--json] |\n"
    "       requeue ID... | purge (ID... | -Q QUEUE | --all) [-f]",
    false,
    dl_opts,
    sizeof dl_opts / sizeof dl_opts[0],
};

struct dl_args {
    const char *queue;
    long limit, offset;
    bool json, all, force;
};

static bool parse_count(const char *arg, long *out)
{
    char *end = NULL;
    long v = strtol(arg, &end, 10);
    if (!*arg || *end || v < 0)
        return false;
    *out = v;
    return true;
}

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct dl_args *a = ctx;
    switch (val) {
    case 'Q':
        a->queue = arg;
        return 0;
    case OPT_LIMIT:
    case OPT_OFFSET:
        if (!parse_count(arg, val == OPT_LIMIT ? &a->limit : &a->offset)) {
            cli_error(cli, "--%s expects a number, got '%s'", val == OPT_LIMIT ? "limit" : "offset",
                      arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case OPT_JSON:
        a->json = true;
        return 0;
    case OPT_ALL:
        a->all = true;
        return 0;
    case 'f':
        a->force = true;
        return 0;
    }
    return CLI_EXIT_USAGE;
}

static void print_time(double t, FILE *out)
{
    if (t <= 0) {
        fputs("-", out);
        return;
    }
    time_t s = (time_t)t;
    struct tm tm;
    char buf[32];
    gmtime_r(&s, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fputs(buf, out);
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* One entry as a JSON object; the envelope is included when `body`. */
static void print_json(const cel_dead_letters *l, size_t i, bool body)
{
    size_t len = 0;
    const char *env = cel_dead_letter_body(l, i, &len);
    json_t *o = json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s, s:i, s:f}", "id", cel_dead_letter_id(l, i), "queue",
        cel_dead_letter_queue(l, i), "task_id", cel_dead_letter_task_id(l, i), "task",
        cel_dead_letter_task_name(l, i), "reason", cel_dead_letter_reason(l, i), "delivery_count",
        (int)cel_dead_letter_delivery_count(l, i), "time", cel_dead_letter_time(l, i));
    if (o && body) {
        json_t *e = json_loadb(env, len, JSON_DECODE_ANY, NULL);
        json_object_set_new(o, "message", e ? e : json_stringn(env, len));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

static int do_list(struct cli *cli, cel_client *c, const struct dl_args *a)
{
    cel_dead_letters *l = NULL;
    long limit = a->limit ? a->limit : DEFAULT_LIMIT;
    int rc = cel_dead_letters_list(c, a->queue, (size_t)a->offset, (size_t)limit, &l);
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(c));
        return cli_exit_for(rc);
    }
    size_t n = cel_dead_letters_count(l);
    if (!a->json && n == 0)
        printf("no dead letters%s%s\n", a->queue ? " from " : "", a->queue ? a->queue : "");
    for (size_t i = 0; i < n; i++) {
        if (a->json) {
            print_json(l, i, false);
            continue;
        }
        printf("%-16s ", cel_dead_letter_id(l, i));
        print_time(cel_dead_letter_time(l, i), stdout);
        printf("  %-12s %-24s %s\n    %s\n", or_dash(cel_dead_letter_queue(l, i)),
               or_dash(cel_dead_letter_task_name(l, i)), or_dash(cel_dead_letter_task_id(l, i)),
               cel_dead_letter_reason(l, i));
    }
    cel_dead_letters_free(l);
    return CLI_EXIT_OK;
}

static int do_show(struct cli *cli, cel_client *c, const struct dl_args *a, const char *id)
{
    cel_dead_letters *l = NULL;
    int rc = cel_dead_letters_get(c, id, &l);
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(c));
        return cli_exit_for(rc);
    }
    if (a->json) {
        print_json(l, 0, true);
    } else {
        size_t len = 0;
        const char *env = cel_dead_letter_body(l, 0, &len);
        printf("id:        %s\nqueue:     %s\ntask:      %s\ntask id:   %s\nreason:    %s\n"
               "delivered: %u\nkept at:   ",
               cel_dead_letter_id(l, 0), or_dash(cel_dead_letter_queue(l, 0)),
               or_dash(cel_dead_letter_task_name(l, 0)), or_dash(cel_dead_letter_task_id(l, 0)),
               cel_dead_letter_reason(l, 0), cel_dead_letter_delivery_count(l, 0));
        print_time(cel_dead_letter_time(l, 0), stdout);
        printf("\nmessage:   %.*s\n", (int)len, env);
    }
    cel_dead_letters_free(l);
    return CLI_EXIT_OK;
}

static bool confirm(const char *what)
{
    if (!isatty(STDIN_FILENO))
        return false;
    fprintf(stderr, "You are about to delete %s.\nAre you sure? (yes/NO) ", what);
    char answer[16] = "";
    if (!fgets(answer, sizeof answer, stdin))
        return false;
    return strcmp(answer, "yes\n") == 0 || strcmp(answer, "y\n") == 0;
}

static int do_purge(struct cli *cli, cel_client *c, const struct dl_args *a, char **ids, int nids)
{
    int rc = CEL_OK;
    size_t total = 0;
    if (nids > 0) {
        for (int i = 0; i < nids && rc == CEL_OK; i++) {
            size_t n = 0;
            rc = cel_dead_letters_purge(c, NULL, ids[i], &n);
            total += n;
        }
    } else {
        char what[256];
        snprintf(what, sizeof what, "every dead letter%s%s", a->queue ? " from " : "",
                 a->queue ? a->queue : "");
        if (!a->force && !confirm(what)) {
            cli_error(cli, "not purged (give -f to purge without asking)");
            return CLI_EXIT_USAGE;
        }
        rc = cel_dead_letters_purge(c, a->queue, NULL, &total);
    }
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(c));
        return cli_exit_for(rc);
    }
    printf("removed %zu dead letter%s\n", total, total == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

static int do_requeue(struct cli *cli, cel_client *c, char **ids, int nids)
{
    for (int i = 0; i < nids; i++) {
        int rc = cel_dead_letters_requeue(c, ids[i]);
        if (rc != CEL_OK) {
            cli_error(cli, "%s: %s", ids[i], cel_client_errmsg(c));
            return cli_exit_for(rc);
        }
        printf("%s: requeued\n", ids[i]);
    }
    return CLI_EXIT_OK;
}

int cli_cmd_dead_letters(int argc, char **argv)
{
    struct cli cli = {0};
    struct dl_args a = {0};
    cel_client *client = NULL;

    int rc = cli_begin(&cli, &cli_dead_letters_cmd, argc, argv, on_opt, &a);
    if (rc >= 0)
        goto out;
    rc = CLI_EXIT_USAGE;
    const char *action = cli.npos > 0 ? cli.pos[0] : "list";
    char **ids = cli.npos > 1 ? cli.pos + 1 : NULL;
    int nids = cli.npos > 1 ? cli.npos - 1 : 0;
    bool list = strcmp(action, "list") == 0, show = strcmp(action, "show") == 0;
    bool requeue = strcmp(action, "requeue") == 0, purge = strcmp(action, "purge") == 0;
    if (!list && !show && !requeue && !purge) {
        cli_error(&cli, "unknown action '%s' (list, show, requeue or purge)", action);
        goto out;
    }
    if (list && nids) {
        cli_error(&cli, "list takes no ids (use show ID)");
        goto out;
    }
    if ((show && nids != 1) || (requeue && nids == 0)) {
        cli_error(&cli, "%s needs %s", action, show ? "one id" : "at least one id");
        goto out;
    }
    if (purge && (nids > 0) + (a.queue != NULL) + a.all != 1) {
        cli_error(&cli, "purge needs ids, or -Q QUEUE, or --all (one of them)");
        goto out;
    }
    rc = cli_connect(&cli, &client);
    if (rc >= 0)
        goto out;
    if (list)
        rc = do_list(&cli, client, &a);
    else if (show)
        rc = do_show(&cli, client, &a, ids[0]);
    else if (requeue)
        rc = do_requeue(&cli, client, ids, nids);
    else
        rc = do_purge(&cli, client, &a, ids, nids);

out:
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
