/*
 * test_cli.c - the `celeriac` command line, run as a user would, in the
 * per-test directory where ./celeriac.db is the default broker and
 * result store. Tests that need a worker start a real one.
 */
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <celeriac.h>

#include "testing.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

static pid_t worker_pid;

static void kill_worker(void)
{
    if (worker_pid > 0) {
        kill(-worker_pid, SIGKILL);
        waitpid(worker_pid, NULL, 0);
        worker_pid = 0;
    }
}

static void start_worker(void)
{
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_TASKS"),
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_MODULE_PUBLIC"),
                    (char *)"-l",
                    (char *)"info",
                    (char *)"-c",
                    (char *)"2",
                    NULL};
    worker_pid = cel_test_spawn(argv, LOG_PATH);
    if (!cel_test_wait_log(LOG_PATH, "ready", WAIT_MS)) {
        char *log = cel_test_read_file(LOG_PATH, NULL);
        fprintf(stderr, "worker log:\n%s\n", log ? log : "(none)");
        free(log);
        ASSERT(!"worker did not become ready");
    }
}

static void stop_worker(void)
{
    kill(worker_pid, SIGTERM);
    int rc = cel_test_wait(worker_pid, WAIT_MS);
    kill_worker();
    ASSERT_EQ(rc, 0);
}

/* A canonical UUID followed by a newline, nothing else. */
static void assert_task_id(const char *out)
{
    ASSERT_EQ(strlen(out), 37);
    ASSERT_EQ(out[36], '\n');
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ASSERT_EQ(out[i], '-');
        else
            ASSERT(strchr("0123456789abcdef", out[i]));
    }
}

static void test_version_and_help(void)
{
    char *out, *err;
    ASSERT_EQ(cel_test_cli(&out, &err, "--version", NULL), 0);
    char want[64];
    snprintf(want, sizeof want, "celeriac %s\n", cel_version_string());
    ASSERT_STREQ(out, want);
    free(out);
    free(err);

    ASSERT_EQ(cel_test_cli(&out, &err, "--help", NULL), 0);
    const char *const cmds[] = {"worker", "call", "result", "purge"};
    for (size_t i = 0; i < 4; i++)
        ASSERT_CONTAINS(out, cmds[i]);
    free(out);
    free(err);

    ASSERT_EQ(cel_test_cli(&out, &err, "call", "--help", NULL), 0);
    ASSERT_CONTAINS(out, "usage: celeriac call");
    ASSERT_CONTAINS(out, "--wait");
    ASSERT_CONTAINS(out, "--countdown");
    ASSERT_CONTAINS(out, "--broker");
    free(out);
    free(err);

    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "--help", NULL), 0);
    ASSERT_CONTAINS(out, "-c, --concurrency");
    ASSERT_CONTAINS(out, "-P, --pool");
    ASSERT_CONTAINS(out, "-Q, --queues");
    ASSERT_CONTAINS(out, "--max-tasks-per-child");
    ASSERT_CONTAINS(out, "-A, --app");
    free(out);
    free(err);

    ASSERT_EQ(cel_test_cli(&out, &err, "result", "--help", NULL), 0);
    ASSERT_CONTAINS(out, "--json");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "purge", "--help", NULL), 0);
    ASSERT_CONTAINS(out, "-f, --force");
    free(out);
    free(err);

    /* Usage errors exit 2 and say what was wrong. */
    ASSERT_EQ(cel_test_cli(&out, &err, "frobnicate", NULL), 2);
    ASSERT_CONTAINS(err, "unknown command 'frobnicate'");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "--bogus", NULL), 2);
    ASSERT_CONTAINS(err, "--bogus");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", NULL), 2);
    ASSERT_CONTAINS(err, "missing task name");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "-a", "{\"x\": 1}", NULL), 2);
    ASSERT_CONTAINS(err, "JSON array");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, NULL), 2);
    free(out);
    free(err);
}

/* Every table option with a Celery flag is offered in --help, with its
 * flags and its key: the worker gets all of them, `call` those that are
 * not worker tuning. */
static void test_help_lists_every_option(void)
{
    char *wout, *werr, *cout, *cerr;
    ASSERT_EQ(cel_test_cli(&wout, &werr, "worker", "--help", NULL), 0);
    ASSERT_EQ(cel_test_cli(&cout, &cerr, "call", "--help", NULL), 0);
    size_t listed = 0;
    for (size_t i = 0; i < cel_config_option_count(); i++) {
        cel_config_option_info o = CEL_CONFIG_OPTION_INFO_INIT;
        ASSERT_OK(cel_config_option_at(i, &o));
        if (!o.short_flag && !o.long_flag)
            continue;
        char key[80], shortf[8], longf[80];
        snprintf(key, sizeof key, "(%s)", o.key);
        snprintf(shortf, sizeof shortf, "-%c, ", o.short_flag);
        snprintf(longf, sizeof longf, "--%s VALUE", o.long_flag ? o.long_flag : "");
        ASSERT_CONTAINS(wout, key);
        if (o.short_flag)
            ASSERT_CONTAINS(wout, shortf);
        if (o.long_flag)
            ASSERT_CONTAINS(wout, longf);
        bool worker_only = strncmp(o.key, "worker_", 7) == 0;
        /* call's own --time-limit/--soft-time-limit (the call's limits)
         * hide the worker's rows of the same flag */
        bool shadowed = o.long_flag && (strcmp(o.long_flag, "time-limit") == 0 ||
                                        strcmp(o.long_flag, "soft-time-limit") == 0);
        if (shadowed) {
            char local[80];
            snprintf(local, sizeof local, "--%s SECONDS", o.long_flag);
            ASSERT_CONTAINS(cout, local);
        }
        if (worker_only || shadowed)
            ASSERT(strstr(cout, key) == NULL);
        else
            ASSERT_CONTAINS(cout, key);
        listed++;
    }
    ASSERT(listed >= 8);
    free(wout);
    free(werr);
    free(cout);
    free(cerr);
}

static void test_call_without_worker(void)
{
    char *out, *err;
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "2", "3", NULL), 0);
    assert_task_id(out);
    char id[37];
    memcpy(id, out, 36);
    id[36] = '\0';
    free(out);
    free(err);
    ASSERT_EQ(access("celeriac.db", F_OK), 0); /* the default broker, in the cwd */

    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, NULL), 0);
    ASSERT_STREQ(out, "PENDING\nnull\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, "--json", NULL), 0);
    ASSERT_CONTAINS(out, "\"status\": \"PENDING\"");
    ASSERT_CONTAINS(out, id);
    free(out);
    free(err);

    /* --task-id is used as given. */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.noop", "--task-id", "my-id-1", NULL), 0);
    ASSERT_STREQ(out, "my-id-1\n");
    free(out);
    free(err);

    /* Nobody runs it: --wait gives up after --timeout with exit 3. */
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(
        cel_test_cli(&out, &err, "call", "tasks.add", "1", "1", "--wait", "--timeout", "0.5", NULL),
        3);
    ASSERT(cel_test_now_ms() - t0 < 10000);
    ASSERT_CONTAINS(err, "timed out");
    ASSERT_STREQ(out, "");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, "--wait", "--timeout", "0.2", NULL), 3);
    ASSERT_CONTAINS(err, "timed out");
    free(out);
    free(err);

    /* A broker that cannot be opened is exit 4 with the URL named. */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "-b", "sqlite:////nonexistent-dir/x/y.db",
                           "tasks.add", NULL),
              4);
    ASSERT_CONTAINS(err, "cannot open broker 'sqlite:////nonexistent-dir/x/y.db'");
    free(out);
    free(err);
}

static void test_calls_with_worker(void)
{
    char *out, *err;
    start_worker();

    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "2", "3", "--wait", NULL), 0);
    ASSERT_STREQ(out, "5\n");
    free(out);
    free(err);

    /* A module calling a public function the CLI itself never calls
     * (cel_version) loaded and runs: the executable exports the whole
     * public API to the modules it loads. */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "public.version", "--wait", NULL), 0);
    char want[32];
    snprintf(want, sizeof want, "%u\n", cel_version());
    ASSERT_STREQ(out, want);
    free(out);
    free(err);

    /* Options before the command name work too, as in Celery. */
    ASSERT_EQ(cel_test_cli(&out, &err, "-b", "sqlite:///celeriac.db", "call", "tasks.mul", "6", "7",
                           "--wait", NULL),
              0);
    ASSERT_STREQ(out, "42\n");
    free(out);
    free(err);

    /* Keyword arguments, three ways. */
    ASSERT_EQ(
        cel_test_cli(&out, &err, "call", "tasks.add", "--kw", "x=2", "--kw", "y=3", "--wait", NULL),
        0);
    ASSERT_STREQ(out, "5\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "-k", "{\"x\": 10, \"y\": 5}", "--wait",
                           NULL),
              0);
    ASSERT_STREQ(out, "15\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.echo", "1", "--kw", "name=bob", "--kw",
                           "tags=[\"a\", 2]", "--wait", NULL),
              0);
    ASSERT_STREQ(out, "{\"args\": [1], \"kwargs\": {\"name\": \"bob\", \"tags\": [\"a\", 2]}}\n");
    free(out);
    free(err);

    /* Strings: bare words, quoted numbers, unicode (printed as Python's
     * json.dumps would, \u-escaped). */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.echo", "hello", "\"42\"",
                           "h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83", "", "--wait", NULL),
              0);
    ASSERT_STREQ(out, "[\"hello\", \"42\", \"h\\u00e9llo w\\u00f6rld \\u2603\", \"\"]\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.echo", "-a", "[true, null, {\"k\": [1.5]}]",
                           "--wait", NULL),
              0);
    ASSERT_STREQ(out, "[true, null, {\"k\": [1.5]}]\n");
    free(out);
    free(err);

    /* Python's int/float rules. */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "2.5", "2.5", "--wait", NULL), 0);
    ASSERT_STREQ(out, "5.0\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "2", "3.0", "--wait", NULL), 0);
    ASSERT_STREQ(out, "5.0\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.xsum", "[1, 2, 3]", "--wait", NULL), 0);
    ASSERT_STREQ(out, "6\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "--wait", "--", "-4", "1", NULL), 0);
    ASSERT_STREQ(out, "-3\n");
    free(out);
    free(err);

    /* A failing task: exit 1, "Type: message" on stderr. */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.fail", "--wait", NULL), 1);
    ASSERT_STREQ(out, "");
    ASSERT_CONTAINS(err, "ValueError: boom");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.fail", "disk on fire", "--wait", NULL), 1);
    ASSERT_CONTAINS(err, "ValueError: disk on fire");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "x", "--wait", NULL), 1);
    ASSERT_CONTAINS(err, "TypeError");
    free(out);
    free(err);

    /* `result` of finished tasks. */
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.add", "2", "3", NULL), 0);
    assert_task_id(out);
    char id[37];
    memcpy(id, out, 36);
    id[36] = '\0';
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, "--wait", NULL), 0);
    ASSERT_STREQ(out, "SUCCESS\n5\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, NULL), 0);
    ASSERT_STREQ(out, "SUCCESS\n5\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, "--json", NULL), 0);
    ASSERT_CONTAINS(out, "\"status\": \"SUCCESS\"");
    ASSERT_CONTAINS(out, "\"result\": 5");
    ASSERT_CONTAINS(out, id);
    free(out);
    free(err);

    ASSERT_EQ(cel_test_cli(&out, &err, "call", "tasks.fail", "nope", NULL), 0);
    memcpy(id, out, 36);
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", id, "--wait", NULL), 1);
    ASSERT_STREQ(out, "FAILURE\nValueError: nope\n");
    free(out);
    free(err);

    /* A countdown delays the run on the broker side. */
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(
        cel_test_cli(&out, &err, "call", "tasks.add", "1", "2", "--countdown", "1", "--wait", NULL),
        0);
    ASSERT_STREQ(out, "3\n");
    ASSERT(cel_test_now_ms() - t0 >= 900);
    free(out);
    free(err);

    /* The worker logged in Celery's format. */
    char *log = cel_test_read_file(LOG_PATH, NULL);
    ASSERT(log);
    ASSERT_CONTAINS(log, ": INFO/MainProcess] ");
    ASSERT_CONTAINS(log, "/ForkPoolWorker-");
    ASSERT_CONTAINS(log, "tasks.add");
    free(log);
    stop_worker();
}

static void test_purge(void)
{
    char *out, *err;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(cel_test_cli(NULL, NULL, "call", "tasks.noop", NULL), 0);
    }
    ASSERT_EQ(cel_test_cli(NULL, NULL, "call", "tasks.noop", "-q", "other", NULL), 0);

    if (!isatty(STDIN_FILENO)) {
        /* No terminal to ask on and no -f: refuse. */
        ASSERT_EQ(cel_test_cli(&out, &err, "purge", NULL), 2);
        ASSERT_CONTAINS(err, "-f");
        free(out);
        free(err);
    }
    ASSERT_EQ(cel_test_cli(&out, &err, "purge", "-f", NULL), 0);
    ASSERT_STREQ(out, "purged 3 messages from celery\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "purge", "-f", NULL), 0);
    ASSERT_STREQ(out, "purged 0 messages from celery\n");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "purge", "-f", "-Q", "celery,other", NULL), 0);
    ASSERT_STREQ(out, "purged 0 messages from celery\npurged 1 message from other\n");
    free(out);
    free(err);
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

static void test_config(void)
{
    char *out, *err;

    /* Invalid value: exit 2, the key and the expected shape named. */
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "--set", "worker_concurrency=abc",
                           "--check-config", NULL),
              2);
    ASSERT_CONTAINS(err, "worker_concurrency");
    ASSERT_CONTAINS(err, "abc");
    ASSERT_STREQ(out, "");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "-c", "abc", NULL), 2);
    ASSERT_CONTAINS(err, "worker_concurrency");
    free(out);
    free(err);

    /* Unknown key: the closest known one is suggested. */
    ASSERT_EQ(
        cel_test_cli(&out, &err, "call", "--set", "worker_concurency=2", "--check-config", NULL),
        2);
    ASSERT_CONTAINS(err, "worker_concurency");
    ASSERT_CONTAINS(err, "worker_concurrency");
    free(out);
    free(err);

    /* A valid configuration is printed with where each value came from. */
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "-c", "3", "-Q", "a,b", "--check-config", NULL),
              0);
    ASSERT_CONTAINS(out, "worker_concurrency = 3");
    ASSERT_CONTAINS(out, "worker_queues = a,b");
    ASSERT_CONTAINS(out, "broker_url = sqlite:///celeriac.db");
    free(out);
    free(err);

    /* ./celeriac.conf is read by default; precedence file < env < flags. */
    ASSERT(
        write_file("celeriac.conf", "# test\nworker_concurrency = 5\ntask_default_queue = q1\n"));
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "--check-config", NULL), 0);
    ASSERT_CONTAINS(out, "worker_concurrency = 5");
    ASSERT_CONTAINS(out, "task_default_queue = q1");
    free(out);
    free(err);
    setenv("CELERIAC_WORKER_CONCURRENCY", "6", 1);
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "--check-config", NULL), 0);
    ASSERT_CONTAINS(out, "worker_concurrency = 6");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "-c", "7", "--check-config", NULL), 0);
    ASSERT_CONTAINS(out, "worker_concurrency = 7");
    ASSERT_CONTAINS(out, "task_default_queue = q1");
    free(out);
    free(err);
    unsetenv("CELERIAC_WORKER_CONCURRENCY");

    /* A config file with an unknown key: exit 2, file, line and the
     * suggestion in the message; also through $CELERIAC_CONFIG. */
    ASSERT(write_file("bad.conf", "broker_url = sqlite:///celeriac.db\nworker_concurreny = 2\n"));
    ASSERT_EQ(cel_test_cli(&out, &err, "call", "--config", "bad.conf", "tasks.add", NULL), 2);
    ASSERT_CONTAINS(err, "bad.conf:2");
    ASSERT_CONTAINS(err, "worker_concurreny");
    ASSERT_CONTAINS(err, "worker_concurrency");
    ASSERT_STREQ(out, "");
    free(out);
    free(err);
    setenv("CELERIAC_CONFIG", "bad.conf", 1);
    ASSERT_EQ(cel_test_cli(&out, &err, "purge", "-f", NULL), 2);
    ASSERT_CONTAINS(err, "bad.conf:2");
    free(out);
    free(err);
    unsetenv("CELERIAC_CONFIG");

    /* An unknown CELERIAC_* variable is an error too (typos show). */
    setenv("CELERIAC_BROKER_URLL", "memory://", 1);
    ASSERT_EQ(cel_test_cli(&out, &err, "result", "x", NULL), 2);
    ASSERT_CONTAINS(err, "CELERIAC_BROKER_URLL");
    free(out);
    free(err);
    unsetenv("CELERIAC_BROKER_URLL");

    ASSERT_EQ(cel_test_cli(&out, &err, "call", "--config", "missing.conf", "tasks.add", NULL), 2);
    ASSERT_CONTAINS(err, "missing.conf");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "--set", "novalue", NULL), 2);
    ASSERT_CONTAINS(err, "KEY=VALUE");
    free(out);
    free(err);
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "-A", "./no-such-module.so", NULL), 2);
    ASSERT_CONTAINS(err, "no-such-module.so");
    free(out);
    free(err);
}

/* A module that cannot be loaded: one line, naming it once, with the
 * cause, and no second "cannot load task module" in front of the
 * registry's own message. */
static void test_module_load_errors(void)
{
    char *out, *err;
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "-A", "./no-such-module.so", NULL), 2);
    const char *head = "celeriac worker: error: cannot load task module './no-such-module.so': ";
    ASSERT(strncmp(err, head, strlen(head)) == 0);
    ASSERT_EQ(cel_test_count(err, "cannot load task module"), 1);
    ASSERT_CONTAINS(err, "No such file or directory");
    ASSERT_EQ(cel_test_count(err, "\n"), 1);
    free(out);
    free(err);

    const char *v1 = cel_test_env("CEL_TEST_MODULE_V1");
    ASSERT_EQ(cel_test_cli(&out, &err, "worker", "-A", v1, NULL), 2);
    char want[1024];
    snprintf(want, sizeof want, "celeriac worker: error: task module '%s' was built against", v1);
    ASSERT(strncmp(err, want, strlen(want)) == 0);
    ASSERT_EQ(cel_test_count(err, v1), 1);
    ASSERT_EQ(cel_test_count(err, "cannot load task module"), 0);
    ASSERT_EQ(cel_test_count(err, "\n"), 1);
    free(out);
    free(err);
}

int main(void)
{
    atexit(kill_worker);
    TEST_RUN(test_version_and_help);
    TEST_RUN(test_help_lists_every_option);
    TEST_RUN(test_call_without_worker);
    TEST_RUN(test_calls_with_worker);
    TEST_RUN(test_purge);
    TEST_RUN(test_config);
    TEST_RUN(test_module_load_errors);
    return 0;
}
