/*
 * test_pool_resize.c - the prefork pool resized at run time through the
 * loop-thread calls the control commands use (worker/autoscale.h):
 * pool_grow, pool_shrink and autoscale, with tasks running and queued in
 * the children while it shrinks; none may be lost or run twice.
 *
 * The worker runs in a forked process of this test (its own threads only,
 * as in production), on the SQLite broker of the test directory. As it
 * logs "ready." from its loop thread, a log hook puts a command pipe on
 * its loop; the test writes "grow N", "shrink N", "autoscale MAX MIN",
 * "size" or "quit" lines and reads one reply line for each, so every call
 * runs on the loop thread exactly as a control command's would.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record_file.h"
#include "task_batch.h"
#include "testing.h"
#include "worker/autoscale.h"
#include "worker_proc.h"
#include "worker/worker_internal.h"

#define RECORD_PATH "runs.txt"

/* ---- the worker process's side ---------------------------------------- */

static cel_worker *hooked_worker;
static int cmd_in = -1, cmd_out = -1;
static uv_poll_t cmd_watch;
static atomic_bool hooked;
static char cmd_buf[512];
static size_t cmd_len;
static atomic_int returned_lines; /* "gave back" log lines (RETURNED frames) */

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(cmd_out, line + off, (size_t)(n - off));
        if (w <= 0)
            return;
        off += (int)w;
    }
}

static void run_command(cel_worker *w, char *line)
{
    char msg[256];
    int a = 0, b = 0;
    if (sscanf(line, "grow %d", &a) == 1) {
        bool ok = cel__pool_grow(w, a, msg, sizeof msg);
        reply("%s %s", ok ? "ok" : "error", msg);
    } else if (sscanf(line, "shrink %d", &a) == 1) {
        bool ok = cel__pool_shrink(w, a, msg, sizeof msg);
        reply("%s %s", ok ? "ok" : "error", msg);
    } else if (sscanf(line, "autoscale %d %d", &a, &b) == 2) {
        bool ok = cel__autoscale_set(w, a, b, msg, sizeof msg);
        reply("%s %s", ok ? "ok" : "error", msg);
    } else if (strcmp(line, "size") == 0) {
        int pids[64];
        size_t n = w->pool->ops->pids(w->pool, pids, 64);
        char list[1024] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && i < 64; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, " %d", pids[i]);
        reply("ok size=%d live=%zu window=%zu returned=%d in_pool=%zu pids=%s",
              w->pool->ops->size(w->pool), n, cel__consumer_window(w), atomic_load(&returned_lines),
              w->held.count - w->held.ready_count, list);
    } else if (strcmp(line, "quit") == 0) {
        uv_poll_stop(&cmd_watch);
        uv_close((uv_handle_t *)&cmd_watch, NULL);
        cel_worker_stop(w, 0);
        reply("ok quitting");
    } else {
        reply("error unknown command: %s", line);
    }
}

static void on_command(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    cel_worker *w = h->data;
    ssize_t got = read(cmd_in, cmd_buf + cmd_len, sizeof cmd_buf - 1 - cmd_len);
    if (got <= 0) {
        if (got < 0 && errno == EAGAIN)
            return;
        uv_poll_stop(&cmd_watch); /* the test went away: stop too */
        uv_close((uv_handle_t *)&cmd_watch, NULL);
        cel_worker_stop(w, 1);
        return;
    }
    cmd_len += (size_t)got;
    char *nl;
    while ((nl = memchr(cmd_buf, '\n', cmd_len))) {
        *nl = '\0';
        run_command(w, cmd_buf);
        size_t used = (size_t)(nl + 1 - cmd_buf);
        memmove(cmd_buf, nl + 1, cmd_len - used);
        cmd_len -= used;
    }
}

/* Called on any thread of the worker process, and in its children: only
 * the loop thread's "ready." line acts, and nothing here takes a lock a
 * fork could leave held. */
static void log_hook(cel_log_level level, const char *component, const char *msg, void *ud)
{
    (void)level;
    (void)component;
    (void)ud;
    if (strstr(msg, "gave back"))
        atomic_fetch_add(&returned_lines, 1);
    if (strstr(msg, " ready.") && !atomic_exchange(&hooked, true)) {
        uv_poll_init(&hooked_worker->loop, &cmd_watch, cmd_in);
        cmd_watch.data = hooked_worker;
        uv_poll_start(&cmd_watch, UV_READABLE, on_command);
    }
    if (level >= CEL_LOG_WARNING || getenv("CEL_TEST_VERBOSE")) {
        char line[600];
        int n = snprintf(line, sizeof line, "[worker] %s: %.500s\n", component, msg);
        if (write(2, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1)) < 0)
            return;
    }
}

static void __attribute__((noreturn))
worker_main(int in, int out, const char *const settings[][2], size_t nsettings)
{
    cmd_in = in;
    cmd_out = out;
    fcntl(cmd_in, F_SETFL, fcntl(cmd_in, F_GETFL) | O_NONBLOCK);
    cel_registry *reg = cel_registry_new();
    char *err = NULL;
    if (!reg || cel_registry_load_module(reg, cel_test_env("CEL_TEST_TESTTASKS"), &err) != CEL_OK) {
        fprintf(stderr, "cannot load the test tasks: %s\n", err ? err : "?");
        _exit(2);
    }
    cel_config *cfg = cel_config_new();
    cel_config_set(cfg, "worker_pool", "prefork", NULL);
    for (size_t i = 0; i < nsettings; i++)
        if (cel_config_set(cfg, settings[i][0], settings[i][1], NULL) != CEL_OK) {
            fprintf(stderr, "bad setting %s=%s\n", settings[i][0], settings[i][1]);
            _exit(2);
        }
    setenv("CEL_TEST_RECORD_FILE", RECORD_PATH, 1);
    cel_set_log_handler(log_hook, NULL, CEL_LOG_DEBUG);
    hooked_worker = cel_worker_new(cfg, reg);
    int rc = hooked_worker ? cel_worker_run(hooked_worker) : CEL_ENOMEM;
    if (rc != CEL_OK)
        fprintf(stderr, "worker: %s\n", cel_worker_errmsg(hooked_worker));
    cel_worker_free(hooked_worker);
    cel_config_free(cfg);
    cel_registry_free(reg);
    close(cmd_in);
    close(cmd_out);
    exit(rc == CEL_OK ? 0 : 1); /* exit(), not _exit(): a leak check runs under ASan */
}

/* ---- the test's side ---------------------------------------------------- */

struct inproc {
    pid_t pid;
    int to, from;
};

static struct inproc start_worker(const char *const settings[][2], size_t n)
{
    int down[2], up[2];
    ASSERT(pipe(down) == 0 && pipe(up) == 0);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(down[1]);
        close(up[0]);
        worker_main(down[0], up[1], settings, n);
    }
    close(down[0]);
    close(up[1]);
    return (struct inproc){.pid = pid, .to = down[1], .from = up[0]};
}

/* Sends one command, returns its reply line (static buffer). */
static const char *command(struct inproc *wp, const char *line)
{
    static char buf[4096];
    char out[256];
    int n = snprintf(out, sizeof out, "%s\n", line);
    ASSERT(write(wp->to, out, (size_t)n) == n);
    size_t len = 0;
    int64_t deadline = cel_test_now_ms() + 20000;
    while (len == 0 || buf[len - 1] != '\n') {
        struct pollfd p = {.fd = wp->from, .events = POLLIN};
        int left = (int)(deadline - cel_test_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            cel_test_fail(__FILE__, __LINE__, "no reply to \"%s\"", line);
        ssize_t got = read(wp->from, buf + len, sizeof buf - 1 - len);
        if (got <= 0)
            cel_test_fail(__FILE__, __LINE__, "the worker went away during \"%s\"", line);
        len += (size_t)got;
    }
    buf[len - 1] = '\0';
    return buf;
}

/* Waits until the pool's reply to "size" says `live` processes run
 * (children forked, retired ones exited and reaped); returns the last
 * reply. */
static const char *wait_live(struct inproc *wp, int live, int timeout_ms)
{
    char want[32];
    snprintf(want, sizeof want, " live=%d ", live);
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    const char *r;
    while (!strstr((r = command(wp, "size")), want)) {
        if (cel_test_now_ms() > deadline)
            cel_test_fail(__FILE__, __LINE__, "pool never had %d live processes: %s", live, r);
        cel_test_sleep_ms(20);
    }
    return r;
}

/* The children of pid, counted from /proc (independent of the pool's own
 * bookkeeping). */
static void stop_worker(struct inproc *wp)
{
    ASSERT_CONTAINS(command(wp, "quit"), "ok");
    int status = cel_test_wait(wp->pid, 30000);
    close(wp->to);
    close(wp->from);
    if (status != 0)
        cel_test_fail(__FILE__, __LINE__, "worker process exited with status %d", status);
}

/* Each of ids ran once; `others` runs of other tasks are in the file. */
static void check_each_ran_once(char **ids, size_t n, size_t others)
{
    struct cel_test_runs r = cel_test_count_runs(RECORD_PATH, ids, n);
    cel_test_runs_print("runs", &r);
    ASSERT_EQ(r.once, n);
    ASSERT_EQ(r.never, 0);
    ASSERT_EQ(r.repeated, 0);
    ASSERT_EQ(r.foreign, others);
}

/* Grow at once, then shrink from 4 to 1 while 4 long tasks run and more
 * wait: the running ones finish in the children that retire, the waiting
 * ones run in the one that stays, and the window follows the size. */
static void test_grow_then_shrink_while_tasks_run(void)
{
    const char *const settings[][2] = {{"worker_concurrency", "2"},
                                       {"worker_prefetch_multiplier", "1"}};
    struct inproc wp = start_worker(settings, 2);
    const char *r = wait_live(&wp, 2, 20000);
    ASSERT_CONTAINS(r, "size=2 ");
    ASSERT_CONTAINS(r, "window=2 ");

    ASSERT_STREQ(command(&wp, "grow 2"), "ok pool will grow");
    r = wait_live(&wp, 4, 20000);
    ASSERT_CONTAINS(r, "size=4 ");
    ASSERT_CONTAINS(r, "window=4 ");
    ASSERT_EQ(cel_test_child_count(wp.pid), 4);

    enum { N = 12 };
    cel_client *c = cel_test_client(NULL, NULL);
    char **ids = cel_test_send_many(c, "test.sleep", "[0.4]", N);
    /* test.sleep records as it starts: shrink once all four run. */
    int64_t deadline = cel_test_now_ms() + 20000;
    while (cel_test_count_in_file(RECORD_PATH, "\n") < 4 && cel_test_now_ms() < deadline)
        cel_test_sleep_ms(10);
    ASSERT_EQ(cel_test_count_in_file(RECORD_PATH, "\n"), 4);
    ASSERT_STREQ(command(&wp, "shrink 3"), "ok pool will shrink");
    r = command(&wp, "size");
    ASSERT_CONTAINS(r, "size=1 ");
    ASSERT_CONTAINS(r, "window=1 ");
    /* Busy children finish their task first: still four processes. */
    ASSERT_CONTAINS(r, "live=4 ");

    struct cel_test_tally t = cel_test_wait_all(c, ids, N, "0.4", 60000, 10000);
    cel_test_tally_print("sleeps", &t);
    ASSERT_EQ(t.success, N);
    wait_live(&wp, 1, 20000);
    ASSERT_EQ(cel_test_child_count(wp.pid), 1);
    check_each_ran_once(ids, N, 0);

    /* One process stays. */
    ASSERT_CONTAINS(command(&wp, "shrink 1"), "error pool_shrink: cannot shrink by 1");
    ASSERT_STREQ(command(&wp, "autoscale 4 1"), "error ValueError('Autoscale not enabled')");
    /* A shrunk pool grows again, reusing the slots it gave up. */
    ASSERT_STREQ(command(&wp, "grow 1"), "ok pool will grow");
    wait_live(&wp, 2, 20000);
    stop_worker(&wp);
    cel_test_ids_free(ids, N);
    cel_client_free(c);
}

/* Tasks under a millisecond are pipelined to the children (up to 16
 * queued per child), and a shrink has busy children hand the queued ones
 * back (how many depends on timing: printed). Several rounds of grow and
 * shrink under load: every task ran exactly once. */
static void test_resize_rounds_under_load(void)
{
    const char *const settings[][2] = {{"worker_concurrency", "4"}};
    struct inproc wp = start_worker(settings, 1);
    wait_live(&wp, 4, 20000);
    enum { N = 6000 };
    cel_client *c = cel_test_client(NULL, NULL);
    /* 0.5 ms each: short enough to pipeline, long enough that the
     * children, not the broker, are the bottleneck, so queues fill. */
    char **ids = cel_test_send_many(c, "test.sleep", "[0.0005]", N);
    /* Resize while the tasks flow: 4 -> 1 -> 4 -> 2 -> 4 -> 1. */
    static const char *const steps[] = {"shrink 3", "grow 3", "shrink 2", "grow 2", "shrink 3"};
    size_t step = 0;
    int64_t deadline = cel_test_now_ms() + 60000;
    for (;;) {
        int done = cel_test_count_in_file(RECORD_PATH, "\n");
        if (done >= N || cel_test_now_ms() > deadline)
            break;
        if (step < sizeof steps / sizeof steps[0] && done >= (int)(N / 8 * (step + 1))) {
            ASSERT_CONTAINS(command(&wp, steps[step]), "ok pool will");
            step++;
        }
        cel_test_sleep_ms(2);
    }
    struct cel_test_tally t = cel_test_wait_all(c, ids, N, NULL, 60000, 10000);
    cel_test_tally_print("short sleeps", &t);
    ASSERT_EQ(t.success, N);
    ASSERT_EQ(step, sizeof steps / sizeof steps[0]);
    check_each_ran_once(ids, N, 0);
    const char *r = wait_live(&wp, 1, 20000);
    fprintf(stderr, "   after the rounds: %s\n", r);
    stop_worker(&wp);
    cel_test_ids_free(ids, N);
    cel_client_free(c);
}

/* The number after `key` ("returned=") in a "size" reply. */
static int field_of(const char *reply, const char *key)
{
    const char *p = strstr(reply, key);
    return p ? atoi(p + strlen(key)) : -1;
}

/* Whether a record-file line "<id> <pid>" of one of ids[0..n) names a
 * pid in the space-separated list `pids`. */
static bool ran_in(char **ids, size_t n, const char *pids)
{
    char *text = cel_test_read_file(RECORD_PATH, NULL);
    bool found = false;
    char *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        char *space = strchr(line, ' ');
        if (!space)
            continue;
        *space = '\0';
        char pid[24];
        snprintf(pid, sizeof pid, " %s ", space + 1);
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(ids[i], line) == 0 && strstr(pids, pid);
    }
    free(text);
    return found;
}

/* " 11 12 13 " from a "size" reply's "pids= 11 12 13". */
static void pids_of(const char *reply, char *out, size_t len)
{
    const char *p = strstr(reply, "pids=");
    snprintf(out, len, "%s ", p ? p + strlen("pids=") : "");
}

/* The hand-back made certain: once short tasks have made the worker
 * pipeline, four long tasks each hold a child with 15 short tasks queued
 * behind them. Shrinking 4 -> 1 (then growing by one, so a fresh child
 * is there) retires three of them: each ends its long task, gives back
 * the 15 queued behind it (RETURNED) instead of running them, and exits.
 * No short task runs in a retired child; each runs once elsewhere. */
static void test_shrink_hands_back_pipelined_tasks(void)
{
    const char *const settings[][2] = {{"worker_concurrency", "4"}};
    struct inproc wp = start_worker(settings, 1);
    wait_live(&wp, 4, 20000);
    enum { WARM = 400, WARM_ROUNDS = 10, LONG = 4, SHORT = 200, DEPTH = 16, QUEUED = DEPTH - 1 };
    cel_client *c = cel_test_client(NULL, NULL);
    /* Short tasks until the worker measures them under 1 ms (its window
     * grows 16x then): from then on it pipelines. A loaded machine (a
     * sanitizer build) may need more than one round. */
    char **warm[WARM_ROUNDS] = {0};
    int rounds = 0;
    struct cel_test_tally t;
    do {
        warm[rounds] = cel_test_send_many(c, "test.record", "[\"x\"]", WARM);
        t = cel_test_wait_all(c, warm[rounds], WARM, "1", 60000, 10000);
        ASSERT_EQ(t.success, WARM);
        rounds++;
    } while (field_of(command(&wp, "size"), " window=") < 4 * 4 * DEPTH && rounds < WARM_ROUNDS);
    fprintf(stderr, "   pipelining after %d round(s) of %d short tasks\n", rounds, WARM);
    ASSERT_EQ(field_of(command(&wp, "size"), " window="), 4 * 4 * DEPTH);
    char **longs = cel_test_send_many(c, "test.sleep", "[2]", LONG);
    char **shorts = cel_test_send_many(c, "test.record", "[\"x\"]", SHORT);
    /* Every child holds its long task and 15 short ones. */
    int64_t deadline = cel_test_now_ms() + 20000;
    const char *r;
    while ((field_of((r = command(&wp, "size")), " in_pool=") < LONG * DEPTH ||
            cel_test_count_in_file(RECORD_PATH, "\n") < rounds * WARM + LONG) &&
           cel_test_now_ms() < deadline)
        cel_test_sleep_ms(5);
    fprintf(stderr, "   before the shrink: %s\n", r);
    ASSERT_EQ(field_of(r, " in_pool="), LONG * DEPTH);
    char before[512];
    pids_of(r, before, sizeof before);
    /* The long tasks record as they start; the short ones wait behind. */
    ASSERT_EQ(cel_test_count_in_file(RECORD_PATH, "\n"), rounds * WARM + LONG);
    ASSERT_STREQ(command(&wp, "shrink 3"), "ok pool will shrink");
    ASSERT_STREQ(command(&wp, "grow 1"), "ok pool will grow");

    t = cel_test_wait_all(c, shorts, SHORT, "1", 60000, 10000);
    ASSERT_EQ(t.success, SHORT);
    struct cel_test_tally lt = cel_test_wait_all(c, longs, LONG, "2.0", 60000, 10000);
    ASSERT_EQ(lt.success, LONG);
    r = wait_live(&wp, 2, 20000);
    fprintf(stderr, "   after the shrink: %s\n", r);
    /* The three retired children gave back all they had queued... */
    ASSERT_EQ(field_of(r, " returned="), 3 * QUEUED);
    /* ...and ran no short task: their pids are those not live now. */
    char after[512], retired[512] = " ";
    pids_of(r, after, sizeof after);
    char *save = NULL;
    for (char *pid = strtok_r(before, " ", &save); pid; pid = strtok_r(NULL, " ", &save)) {
        char key[24];
        snprintf(key, sizeof key, " %s ", pid);
        if (!strstr(after, key))
            snprintf(retired + strlen(retired), sizeof retired - strlen(retired), "%s ", pid);
    }
    fprintf(stderr, "   retired:%s\n", retired);
    ASSERT_EQ(cel_test_count(retired, " ") - 1, 3);
    ASSERT(!ran_in(shorts, SHORT, retired));
    ASSERT(ran_in(longs, LONG, retired)); /* they did run the long ones */
    check_each_ran_once(shorts, SHORT, (size_t)rounds * WARM + LONG);
    check_each_ran_once(longs, LONG, (size_t)rounds * WARM + SHORT);
    stop_worker(&wp);
    for (int i = 0; i < rounds; i++)
        cel_test_ids_free(warm[i], WARM);
    cel_test_ids_free(longs, LONG);
    cel_test_ids_free(shorts, SHORT);
    cel_client_free(c);
}

/* The autoscale command on a worker started with --autoscale: bounds
 * move, the pool follows at once where a bound demands it, and
 * pool_grow / pool_shrink are refused as in Celery. */
static void test_autoscale_command(void)
{
    /* Celery's order does not matter: the larger number is MAX. */
    const char *const settings[][2] = {{"worker_autoscale", "1,3"},
                                       {"worker_prefetch_multiplier", "2"}};
    struct inproc wp = start_worker(settings, 2);
    const char *r = wait_live(&wp, 1, 20000);
    ASSERT_CONTAINS(r, "window=6 "); /* MAX x multiplier, as Celery's */
    ASSERT_STREQ(command(&wp, "grow 1"), "error pool_grow is not supported with autoscale. "
                                         "Adjust autoscale range instead.");
    ASSERT_STREQ(command(&wp, "shrink 1"), "error pool_shrink is not supported with autoscale. "
                                           "Adjust autoscale range instead.");
    ASSERT_STREQ(command(&wp, "autoscale 5 3"), "ok autoscale now max=5 min=3");
    r = wait_live(&wp, 3, 20000);
    ASSERT_CONTAINS(r, "size=3 ");
    ASSERT_CONTAINS(r, "window=10 ");
    ASSERT_CONTAINS(command(&wp, "autoscale 2 3"), "error autoscale: min (3) must not exceed max");
    ASSERT_STREQ(command(&wp, "autoscale 2 1"), "ok autoscale now max=2 min=1");
    r = wait_live(&wp, 2, 20000);
    ASSERT_CONTAINS(r, "size=2 ");
    stop_worker(&wp);
}

/* Values a worker must refuse at start, with a message naming them. */
static void test_autoscale_config_refused(void)
{
    static const struct {
        const char *value, *pool, *message;
    } cases[] = {
        {"4,x", "prefork", "worker_autoscale: expected MAX,MIN"},
        {"0", "prefork", "worker_autoscale: expected MAX,MIN"},
        {"2,1,0", "prefork", "worker_autoscale: expected MAX,MIN"},
        {"4,1", "solo", "worker_autoscale needs the prefork pool"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cel_config *cfg = cel_config_new();
        ASSERT_OK(cel_config_set(cfg, "worker_autoscale", cases[i].value, NULL));
        ASSERT_OK(cel_config_set(cfg, "worker_pool", cases[i].pool, NULL));
        cel_registry *reg = cel_registry_new();
        cel_worker *w = cel_worker_new(cfg, reg);
        ASSERT(w);
        ASSERT_EQ(cel_worker_run(w), CEL_ECONFIG);
        ASSERT_CONTAINS(cel_worker_errmsg(w), cases[i].message);
        cel_worker_free(w);
        cel_registry_free(reg);
        cel_config_free(cfg);
    }
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "worker_autoscale", "4,1", NULL));
    ASSERT_OK(cel_config_set(cfg, "worker_autoscale_keepalive", "0", NULL));
    cel_worker *w = cel_worker_new(cfg, NULL);
    ASSERT_EQ(cel_worker_run(w), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_worker_errmsg(w), "worker_autoscale_keepalive must be above 0");
    cel_worker_free(w);
    cel_config_free(cfg);
}

int main(void)
{
    TEST_RUN(test_grow_then_shrink_while_tasks_run);
    TEST_RUN(test_resize_rounds_under_load);
    TEST_RUN(test_shrink_hands_back_pipelined_tasks);
    TEST_RUN(test_autoscale_command);
    TEST_RUN(test_autoscale_config_refused);
    return 0;
}
