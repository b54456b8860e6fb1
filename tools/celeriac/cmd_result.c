/*
 * cmd_result.c - `celeriac result ID`: show the state and result of a task.
 *
 *   SUCCESS            FAILURE                 PENDING    PROGRESS
 *   5                  ValueError: boom        null       {"current": 2, "total": 5}
 *
 * A custom state's line is the meta the task stored with it. Once a task
 * has retried, a line "retries: N" follows (the retries of the run that
 * stored the state: RETRY after the first run says 0); --traceback adds
 * the traceback of a failure or a retry.
 *
 * Exit code 1 when the task failed or was revoked, so scripts can branch
 * on it as on `call --wait`.
 *
 * --tree walks the workflow from the task down, as Celery's
 * AsyncResult.children graph: each task's children are the results its
 * meta lists (the next link of a chain, callbacks, a chord header it
 * started), a group's are its members:
 *
 *   0f6c...  SUCCESS  8
 *   └── 5d1e...  SUCCESS  13
 *
 * --tree --wait waits for the whole tree (cel_result_wait_tree): every
 * task below the root ready, a failed one ending its branch, within one
 * --timeout. On a timeout the tree is printed as it stands, and the exit
 * code is 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

enum {
    OPT_WAIT = CLI_OPT_LOCAL,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_TRACEBACK,
    OPT_TREE,
};

static const struct cli_opt result_opts[] = {
    {"wait", no_argument, OPT_WAIT, NULL,
     "wait until the task is ready (with --tree: until every task in the tree is)"},
    {"timeout", required_argument, OPT_TIMEOUT, "SECONDS",
     "how long --wait waits (default 30; exit 3 on timeout)"},
    {"json", no_argument, OPT_JSON, NULL, "print the whole stored meta document as JSON"},
    {"traceback", no_argument, OPT_TRACEBACK, NULL,
     "also print the traceback of a failure or retry"},
    {"tree", no_argument, OPT_TREE, NULL,
     "print the tree of task states below the task: its children (chain links, callbacks, "
     "chord headers) and group members (exit 1 if any failed)"},
};

const struct cli_cmd cli_result_cmd = {
    "result",
    "Show the state and result of a task.",
    "ID [--wait] [--timeout SECONDS] [--json] [--traceback] [--tree]",
    false,
    result_opts,
    sizeof result_opts / sizeof result_opts[0],
};

struct result_args {
    bool wait, json, traceback, has_timeout, tree;
    double timeout;
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct result_args *ra = ctx;
    switch (val) {
    case OPT_WAIT:
        ra->wait = true;
        return 0;
    case OPT_JSON:
        ra->json = true;
        return 0;
    case OPT_TRACEBACK:
        ra->traceback = true;
        return 0;
    case OPT_TREE:
        ra->tree = true;
        return 0;
    case OPT_TIMEOUT:
        if (!cli_parse_seconds(arg, &ra->timeout)) {
            cli_error(cli, "--timeout expects seconds, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        ra->has_timeout = true;
        return 0;
    }
    return CLI_EXIT_USAGE;
}

/* How long a --wait lets a task sit unclaimed before it says so. */
#define UNCLAIMED_NOTICE_MS 3000

int cli_wait_result(const struct cli *cli, cel_result *r, double timeout)
{
    int64_t total_ms = (int64_t)(timeout * 1000);
    int64_t first_ms = total_ms < UNCLAIMED_NOTICE_MS ? total_ms : UNCLAIMED_NOTICE_MS;
    int rc = cel_result_wait(r, first_ms);
    bool consumed = false;
    const char *queue;
    if (rc == CEL_ETIMEDOUT && first_ms < total_ms) {
        /* A backlog on a queue that workers consume is not worth a word. */
        queue = cel_result_unclaimed_queue(r, &consumed);
        if (queue && !consumed)
            fprintf(stderr,
                    "celeriac: task %s is still queued on '%s' after %g s: no worker has taken "
                    "it; is a worker consuming that queue?\n",
                    cel_result_id(r), queue, (double)first_ms / 1000.0);
        rc = cel_result_wait(r, total_ms - first_ms);
    }
    if (rc != CEL_ETIMEDOUT)
        return rc;
    queue = cel_result_unclaimed_queue(r, &consumed);
    if (queue)
        cli_error(cli,
                  "timed out after %g s waiting for task %s: it was never taken from queue '%s'%s",
                  timeout, cel_result_id(r), queue,
                  consumed ? " (workers on that queue are busy with other tasks)"
                           : "; no worker is consuming that queue");
    else
        cli_error(cli, "timed out after %g s waiting for task %s (state %s)", timeout,
                  cel_result_id(r), cel_result_state_name(r));
    return rc;
}

static int print_result(cel_result *r, const struct result_args *ra)
{
    cel_state st = cel_result_state(r);
    bool failed = st == CEL_STATE_FAILURE || st == CEL_STATE_REVOKED;
    if (ra->json) {
        const char *meta = cel_result_meta_json(r);
        if (meta)
            printf("%s\n", meta);
        else /* nothing stored: what Celery reports for an unknown id */
            printf("{\"status\": \"PENDING\", \"result\": null, \"traceback\": null, "
                   "\"children\": [], \"date_done\": null, \"task_id\": \"%s\"}\n",
                   cel_result_id(r));
        return failed ? CLI_EXIT_TASK_FAILED : CLI_EXIT_OK;
    }
    printf("%s\n", cel_result_state_name(r));
    if (cel_result_exc_type(r))
        printf("%s: %s\n", cel_result_exc_type(r),
               cel_result_exc_message(r) ? cel_result_exc_message(r) : "");
    else
        printf("%s\n", cel_result_value_json(r));
    int retries = cel_result_retries(r);
    if (retries >= 0)
        printf("retries: %d\n", retries);
    if (ra->traceback && cel_result_traceback(r))
        printf("%s", cel_result_traceback(r));
    return failed ? CLI_EXIT_TASK_FAILED : CLI_EXIT_OK;
}

/* --- --tree ---------------------------------------------------------- */

/* Bounds on a tree: a chain of thousands of links or a cycle a buggy
 * producer wrote must not print forever. */
#define TREE_MAX_DEPTH 64
#define TREE_MAX_NODES 2000
/* Values longer than this are cut on a tree line. */
#define TREE_VALUE_MAX 60

struct tree {
    const struct cli *cli;
    cel_client *client;
    int nodes;
    bool any_failed;
    bool cut; /* a bound was reached */
};

/* "<id>  <STATE>  <value or exception>", the value cut to fit a line. */
static void print_node_line(cel_result *r)
{
    cel_state st = cel_result_state(r);
    printf("%s  %s", cel_result_id(r), cel_result_state_name(r));
    if (cel_result_exc_type(r)) {
        printf("  %s: %s\n", cel_result_exc_type(r),
               cel_result_exc_message(r) ? cel_result_exc_message(r) : "");
        return;
    }
    if (st == CEL_STATE_PENDING) {
        printf("\n");
        return;
    }
    const char *v = cel_result_value_json(r);
    if (strlen(v) > TREE_VALUE_MAX)
        printf("  %.*s...\n", TREE_VALUE_MAX, v);
    else
        printf("  %s\n", v);
}

/* Prints `r` (owned: freed here) on a line after `prefix`+`branch`, then
 * its children with the prefix extended like tree(1). */
static int print_tree_node(struct tree *t, cel_result *r, const char *prefix, const char *branch,
                           const char *stem, int depth)
{
    int rc = CEL_OK;
    size_t n = cel_result_member_count(r);
    bool group = n > 0;
    printf("%s%s", prefix, branch);
    if (group) {
        printf("group %s (%zu members)\n", cel_result_id(r), n);
    } else {
        rc = cel_result_refresh(r);
        if (rc != CEL_OK) {
            printf("%s  (%s)\n", cel_result_id(r), cel_client_errmsg(t->client));
            cel_result_free(r);
            return rc;
        }
        print_node_line(r);
        cel_state st = cel_result_state(r);
        t->any_failed |= st == CEL_STATE_FAILURE || st == CEL_STATE_REVOKED;
        n = cel_result_child_count(r);
    }
    char next[TREE_MAX_DEPTH * 8 + 8];
    snprintf(next, sizeof next, "%s%s", prefix, stem);
    if (n && (depth >= TREE_MAX_DEPTH || t->nodes >= TREE_MAX_NODES)) {
        printf("%s└── ... (%zu more not shown)\n", next, n);
        t->cut = true;
        n = 0;
    }
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        cel_result *k = NULL;
        rc = group ? cel_client_result(t->client, cel_result_member_id(r, i), &k)
                   : cel_result_child(r, i, &k);
        if (rc != CEL_OK)
            break;
        t->nodes++;
        bool last = i + 1 == n;
        rc = print_tree_node(t, k, next, last ? "└── " : "├── ", last ? "    " : "│   ", depth + 1);
    }
    cel_result_free(r);
    return rc;
}

/* Prints the tree under `root` (owned); the exit code. */
static int print_tree(const struct cli *cli, cel_client *client, cel_result *root)
{
    struct tree t = {cli, client, 1, false, false};
    int rc = print_tree_node(&t, root, "", "", "", 0);
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(client));
        return cli_exit_for(rc) == CLI_EXIT_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_BROKER;
    }
    if (t.cut)
        fprintf(stderr, "celeriac: the tree is cut at depth %d or %d tasks\n", TREE_MAX_DEPTH,
                TREE_MAX_NODES);
    return t.any_failed ? CLI_EXIT_TASK_FAILED : CLI_EXIT_OK;
}

int cli_cmd_result(int argc, char **argv)
{
    struct cli cli = {0};
    struct result_args ra = {0};
    cel_client *client = NULL;
    cel_result *res = NULL;

    int rc = cli_parse(&cli, &cli_result_cmd, argc, argv, on_opt, &ra);
    if (rc >= 0)
        goto out;
    if (cli.check_config) { /* needs no task name, id or module */
        rc = cli_configure(&cli);
        goto out;
    }
    rc = CLI_EXIT_USAGE;
    if (cli.npos != 1) {
        if (cli.npos)
            cli_error(&cli, "expected one task id, got %d arguments", cli.npos);
        else
            cli_error(&cli, "missing task id (usage: celeriac result ID)");
        goto out;
    }
    if (ra.has_timeout && !ra.wait) {
        cli_error(&cli, "--timeout only applies with --wait");
        goto out;
    }
    if (ra.tree && ra.json) {
        cli_error(&cli, "--tree and --json cannot be combined");
        goto out;
    }
    rc = cli_configure(&cli);
    if (rc >= 0)
        goto out;

    rc = CLI_EXIT_BROKER;
    client = cel_client_new(cli.cfg);
    if (!client) {
        cli_error(&cli, "out of memory");
        goto out;
    }
    int crc = cel_client_connect(client);
    if (crc == CEL_OK)
        crc = cel_client_result(client, cli.pos[0], &res);
    if (crc == CEL_OK) {
        if (ra.wait && ra.tree) {
            double timeout = ra.has_timeout ? ra.timeout : 30.0;
            crc = cel_result_wait_tree(res, (int64_t)(timeout * 1000));
            if (crc == CEL_ETIMEDOUT) {
                /* What is done so far is worth seeing next to the error. */
                cli_error(&cli, "%s", cel_client_errmsg(client));
                print_tree(&cli, client, res);
                res = NULL; /* print_tree frees it */
                rc = CLI_EXIT_TIMEOUT;
                goto out;
            }
        } else if (ra.wait) {
            crc = cli_wait_result(&cli, res, ra.has_timeout ? ra.timeout : 30.0);
            if (crc == CEL_ETIMEDOUT) {
                rc = CLI_EXIT_TIMEOUT;
                goto out;
            }
        } else {
            crc = cel_result_refresh(res);
        }
    }
    if (crc != CEL_OK) {
        cli_error(&cli, "%s", cel_client_errmsg(client));
        rc = cli_exit_for(crc) == CLI_EXIT_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_BROKER;
        goto out;
    }
    if (ra.tree) {
        rc = print_tree(&cli, client, res);
        res = NULL; /* print_tree frees it */
    } else {
        rc = print_result(res, &ra);
    }

out:
    cel_result_free(res);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
