/*
 * test_canvas_cli.c - workflows from C (cel_client_apply) and from
 * `celeriac call --workflow` / `--link`, run by a real worker, on the
 * SQLite default store and on a real redis-server.
 */
#include <signal.h>
#include <unistd.h>

#include <celeriac.h>

#include "redis_server.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS 60000
#define LOG     "worker.log"

/* The broker of the test being run: "" for ./celeriac.db, else Redis. */
static char url[160];
static pid_t worker_pid;

static void stop_worker(void)
{
    if (worker_pid > 0)
        cel_test_worker_stop(worker_pid, SIGTERM, 10000);
    worker_pid = 0;
}

static void start_worker(void)
{
    const char *extra[] = {"-A", cel_test_env("CEL_TEST_TASKS"), "-c", "4", NULL, NULL, NULL};
    if (url[0]) {
        extra[4] = "-b";
        extra[5] = url;
    }
    worker_pid = cel_test_worker_start(LOG, extra);
}

static cel_client *client(void)
{
    cel_config *cfg = cel_config_new();
    if (url[0])
        ASSERT_OK(cel_config_set(cfg, "broker_url", url, "test"));
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg);
    ASSERT(c);
    ASSERT_OK(cel_client_connect(c));
    return c;
}

/* Runs the CLI with `args` (NULL-terminated) on the test's broker. */
static int cli(const char *const *args, char **out, char **err)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)cel_test_env("CEL_TEST_CLI");
    for (; *args && n < 28; args++)
        argv[n++] = (char *)*args;
    if (url[0]) {
        argv[n++] = (char *)"-b";
        argv[n++] = url;
    }
    argv[n] = NULL;
    *out = *err = NULL;
    int rc = cel_test_run(argv, WAIT_MS, out, err);
    if (!*out)
        *out = strdup("");
    if (!*err)
        *err = strdup("");
    return rc;
}

/* A group of 100 adds from C: the value is the list of results in order. */
static void group_of_100(void)
{
    cel_client *c = client();
    cel_sig *sigs[100];
    for (int i = 0; i < 100; i++) {
        char args[32];
        snprintf(args, sizeof args, "[%d, %d]", i, i);
        sigs[i] = cel_sig_new("tasks.add", args, NULL);
    }
    cel_sig *g = cel_group(sigs, 100);
    ASSERT(g);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_apply(c, g, &r));
    ASSERT_EQ(cel_result_member_count(r), 100);
    ASSERT_OK(cel_result_wait(r, WAIT_MS));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_SUCCESS);
    char want[1024] = "[";
    for (int i = 0; i < 100; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? ", " : "", 2 * i);
    strcat(want, "]");
    ASSERT_STREQ(cel_result_value_json(r), want);
    cel_result_free(r);
    cel_sig_free(g);
    cel_client_free(c);
}

/* `call --workflow` with a group, inline and from a file, and a failing
 * member making the whole wait fail with its exception. */
static void cli_group(void)
{
    const char *wf = "{\"task\": \"celery.group\", \"kwargs\": {\"tasks\": ["
                     "{\"task\": \"tasks.add\", \"args\": [1, 1]},"
                     "{\"task\": \"tasks.mul\", \"args\": [3, 3]}]}}";
    const char *inline_args[] = {"call", "--workflow", wf, "--wait", NULL};
    char *out, *err;
    ASSERT_EQ(cli(inline_args, &out, &err), 0);
    ASSERT_STREQ(out, "[2, 9]\n");
    free(out);
    free(err);

    FILE *f = fopen("wf.json", "w");
    ASSERT(f);
    fputs(wf, f);
    fclose(f);
    const char *file_args[] = {"call", "--workflow", "wf.json", NULL};
    ASSERT_EQ(cli(file_args, &out, &err), 0);
    ASSERT_EQ(cel_test_count(out, "\n"), 2); /* the members' ids */
    free(out);
    free(err);

    const char *failing[] = {"call", "--workflow",
                             "{\"task\": \"celery.group\", \"kwargs\": {\"tasks\": ["
                             "{\"task\": \"tasks.add\", \"args\": [1, 1]},"
                             "{\"task\": \"tasks.fail\", \"args\": [\"no\"]}]}}",
                             "--wait", NULL};
    ASSERT_EQ(cli(failing, &out, &err), 1);
    ASSERT_CONTAINS(err, "ValueError: no");
    free(out);
    free(err);

    const char *bad[] = {"call", "--workflow", "{\"task\": \"celery.chain\"}", NULL};
    ASSERT_EQ(cli(bad, &out, &err), 2);
    ASSERT_CONTAINS(err, "non-empty 'tasks'");
    free(out);
    free(err);
}

/* chain(add(4, 4), add(5)) = 13 from C and from the CLI. */
static void chain_13(void)
{
    cel_client *c = client();
    cel_sig *steps[] = {cel_sig_new("tasks.add", "[4, 4]", NULL),
                        cel_sig_new("tasks.add", "[5]", NULL)};
    cel_sig *ch = cel_chain(steps, 2);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_apply(c, ch, &r));
    ASSERT_OK(cel_result_wait(r, WAIT_MS));
    ASSERT_STREQ(cel_result_value_json(r), "13");
    cel_result_free(r);
    cel_sig_free(ch);
    cel_client_free(c);

    const char *args[] = {"call", "--workflow",
                          "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": ["
                          "{\"task\": \"tasks.add\", \"args\": [4, 4]},"
                          "{\"task\": \"tasks.add\", \"args\": [5]}]}}",
                          "--wait", NULL};
    char *out, *err;
    ASSERT_EQ(cli(args, &out, &err), 0);
    ASSERT_STREQ(out, "13\n");
    free(out);
    free(err);
}

static void cli_link_and_tree(void)
{
    /* The callback gets the result prepended: mul(5, 10); the tree of
     * the task shows it as its child. */
    const char *args[] = {"call",      "tasks.add", "2",
                          "3",         "--link",    "{\"task\": \"tasks.mul\", \"args\": [10]}",
                          "--task-id", "link-root", "--wait",
                          NULL};
    char *out, *err;
    ASSERT_EQ(cli(args, &out, &err), 0);
    ASSERT_STREQ(out, "5\n");
    free(out);
    free(err);
    const char *link_tree[] = {"result", "link-root", "--tree", NULL};
    out = err = NULL;
    int64_t until = cel_test_now_ms() + WAIT_MS;
    do { /* the callback runs after the result it waited for is stored */
        free(out);
        free(err);
        ASSERT_EQ(cli(link_tree, &out, &err), 0);
    } while (!strstr(out, "SUCCESS  50") && cel_test_now_ms() < until);
    ASSERT_CONTAINS(out, "link-root  SUCCESS  5\n└── ");
    ASSERT_CONTAINS(out, "  SUCCESS  50\n");
    free(out);
    free(err);

    const char *chain[] = {"call", "--workflow",
                           "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": ["
                           "{\"task\": \"tasks.add\", \"args\": [4, 4], \"options\": "
                           "{\"task_id\": \"tree-root\"}},"
                           "{\"task\": \"tasks.add\", \"args\": [5]}]}}",
                           "--wait", NULL};
    ASSERT_EQ(cli(chain, &out, &err), 0);
    free(out);
    free(err);
    const char *tree[] = {"result", "tree-root", "--tree", NULL};
    ASSERT_EQ(cli(tree, &out, &err), 0);
    ASSERT_CONTAINS(out, "tree-root  SUCCESS  8\n");
    ASSERT_CONTAINS(out, "└── ");
    ASSERT_CONTAINS(out, "  SUCCESS  13\n");
    free(out);
    free(err);
}

/* `result --tree --wait`: returns once the deepest link is done (no
 * polling here: a first look must show every node SUCCESS), and with a
 * short --timeout returns promptly with exit 3 and the tree so far. */
static void cli_tree_wait(void)
{
    const char *chain[] = {"call", "--workflow",
                           "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": ["
                           "{\"task\": \"tasks.add\", \"args\": [4, 4], \"options\": "
                           "{\"task_id\": \"tw-root\"}},"
                           "{\"task\": \"tasks.sleep\", \"args\": [0.3], \"immutable\": true},"
                           "{\"task\": \"tasks.add\", \"args\": [1]}]}}",
                           NULL};
    char *out, *err;
    ASSERT_EQ(cli(chain, &out, &err), 0);
    free(out);
    free(err);
    const char *wait[] = {"result", "tw-root", "--tree", "--wait", "--timeout", "30", NULL};
    ASSERT_EQ(cli(wait, &out, &err), 0);
    ASSERT_CONTAINS(out, "tw-root  SUCCESS  8\n");
    ASSERT_CONTAINS(out, "  SUCCESS  0.3\n");
    ASSERT_CONTAINS(out, "  SUCCESS  1.3\n"); /* the last link: 0.3 + 1 */
    ASSERT(!strstr(out, "PENDING"));
    free(out);
    free(err);

    const char *slow[] = {"call", "--workflow",
                          "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": ["
                          "{\"task\": \"tasks.add\", \"args\": [1, 1], \"options\": "
                          "{\"task_id\": \"tt-root\"}},"
                          "{\"task\": \"tasks.sleep\", \"args\": [2], \"immutable\": true}]}}",
                          NULL};
    ASSERT_EQ(cli(slow, &out, &err), 0);
    free(out);
    free(err);
    const char *timeout[] = {"result", "tt-root", "--tree", "--wait", "--timeout", "0.5", NULL};
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cli(timeout, &out, &err), 3);
    int64_t took = cel_test_now_ms() - t0;
    ASSERT(took < 1800);
    ASSERT_CONTAINS(err, "timed out");
    ASSERT_CONTAINS(out, "tt-root  ");
    free(out);
    free(err);
}

static void run_all(void)
{
    start_worker();
    group_of_100();
    cli_group();
    chain_13();
    cli_link_and_tree();
    cli_tree_wait();
    stop_worker();
}

static void test_sqlite(void)
{
    url[0] = '\0';
    run_all();
}

static void test_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    snprintf(url, sizeof url, "%s", srv.url);
    run_all();
    cel_test_redis_stop(&srv);
}

int main(void)
{
    atexit(stop_worker);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    return 0;
}
