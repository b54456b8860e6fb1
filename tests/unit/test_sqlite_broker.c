/* test_sqlite_broker.c - the SQLite transport: semantics, concurrency, wakeups. */
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "sql_query.h"
#include "store_open.h"
#include "testing.h"

#define URL "sqlite:///test.db"

static struct cel_broker *open_broker(void)
{
    return cel_test_open_broker(URL);
}

static struct cel_backend *open_backend(void)
{
    return cel_test_open_backend(URL);
}

static int publish(struct cel_broker *b, const char *queue, int prio, int64_t due, const char *id)
{
    char body[128];
    snprintf(body, sizeof body, "{\"id\": \"%s\"}", id);
    return b->ops->publish(b, queue, prio, due, id, body, strlen(body));
}

static size_t fetch(struct cel_broker *b, const char *queue, size_t max, int64_t lease_ms,
                    struct cel_delivery *out, int64_t *due)
{
    const char *qs[] = {queue};
    size_t n = 99;
    ASSERT_OK(b->ops->fetch(b, qs, 1, max, lease_ms, out, &n, due));
    return n;
}

static void release_all(struct cel_delivery *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cel__delivery_release(&d[i]);
}

static void test_publish_fetch_ack(void)
{
    struct cel_broker *b = open_broker();
    ASSERT(b->ops->caps & CEL_BROKER_CAP_TRANSACTIONS);
    ASSERT_OK(publish(b, "celery", 0, 0, "a"));
    ASSERT_OK(publish(b, "celery", 0, 0, "b"));
    ASSERT_OK(publish(b, "other", 0, 0, "c"));
    size_t len = 0;
    ASSERT_OK(b->ops->length(b, "celery", &len));
    ASSERT_EQ(len, 2);

    struct cel_delivery d[8];
    int64_t due = -1;
    size_t n = fetch(b, "celery", 8, 30000, d, &due);
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(d[0].body, "{\"id\": \"a\"}");
    ASSERT_EQ(d[0].len, strlen(d[0].body));
    ASSERT_STREQ(d[0].queue, "celery");
    ASSERT_EQ(d[0].delivery_count, 1);
    ASSERT_STREQ(d[1].body, "{\"id\": \"b\"}");
    /* The leases are the next due times of this queue. */
    ASSERT(due > cel__wall_us() + 20 * 1000000LL);

    struct cel_delivery more[2];
    ASSERT_EQ(fetch(b, "celery", 2, 30000, more, NULL), 0);

    ASSERT_OK(b->ops->ack(b, &d[0]));
    ASSERT_OK(b->ops->ack(b, &d[1]));
    ASSERT_OK(b->ops->length(b, "celery", &len));
    ASSERT_EQ(len, 0);
    ASSERT_OK(b->ops->length(b, "other", &len));
    ASSERT_EQ(len, 1);
    release_all(d, n);

    /* Two queues at once: both are served. */
    ASSERT_OK(publish(b, "celery", 0, 0, "d"));
    const char *qs[] = {"celery", "other"};
    ASSERT_OK(b->ops->fetch(b, qs, 2, 8, 30000, d, &n, NULL));
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(d[0].body, "{\"id\": \"c\"}"); /* older first */
    ASSERT_STREQ(d[1].body, "{\"id\": \"d\"}");
    release_all(d, n);
    cel__broker_close(b);
}

static void test_priority_and_fifo(void)
{
    struct cel_broker *b = open_broker();
    ASSERT_OK(publish(b, "q", 0, 0, "p0-1"));
    ASSERT_OK(publish(b, "q", 9, 0, "p9-1"));
    ASSERT_OK(publish(b, "q", 5, 0, "p5-1"));
    ASSERT_OK(publish(b, "q", 9, 0, "p9-2"));
    ASSERT_OK(publish(b, "q", 0, 0, "p0-2"));
    ASSERT_OK(publish(b, "q", 42, 0, "p42")); /* clamped to 9 */
    const char *want[] = {"p9-1", "p9-2", "p42", "p5-1", "p0-1", "p0-2"};
    struct cel_delivery d[8];
    /* One at a time and in one batch must agree. */
    for (size_t i = 0; i < 3; i++) {
        ASSERT_EQ(fetch(b, "q", 1, 30000, &d[i], NULL), 1);
        ASSERT_CONTAINS(d[i].body, want[i]);
    }
    ASSERT_EQ(fetch(b, "q", 8, 30000, &d[3], NULL), 3);
    for (size_t i = 3; i < 6; i++) {
        char quoted[32];
        snprintf(quoted, sizeof quoted, "\"%s\"", want[i]);
        ASSERT_CONTAINS(d[i].body, quoted);
    }
    release_all(d, 6);
    cel__broker_close(b);
}

static void test_delayed(void)
{
    struct cel_broker *b = open_broker();
    int64_t due_at = cel__wall_us() + 300 * 1000;
    ASSERT_OK(publish(b, "q", 0, due_at, "later"));
    ASSERT_OK(publish(b, "q", 0, due_at + 5000000, "much-later"));
    struct cel_delivery d[4];
    int64_t next = 0;
    ASSERT_EQ(fetch(b, "q", 4, 30000, d, &next), 0);
    ASSERT_EQ(next, due_at);
    size_t len = 0;
    ASSERT_OK(b->ops->length(b, "q", &len));
    ASSERT_EQ(len, 2);
    cel_test_sleep_ms(150);
    ASSERT_EQ(fetch(b, "q", 4, 30000, d, &next), 0);
    while (cel__wall_us() < due_at)
        cel_test_sleep_ms(5);
    ASSERT_EQ(fetch(b, "q", 4, 30000, d, &next), 1);
    ASSERT_CONTAINS(d[0].body, "\"later\"");
    ASSERT_EQ(next, due_at + 5000000); /* the other one; our lease is later */
    release_all(d, 1);
    /* No queue has anything: next due 0. */
    ASSERT_EQ(fetch(b, "empty", 4, 30000, d, &next), 0);
    ASSERT_EQ(next, 0);
    cel__broker_close(b);
}

/* A consumer process: batches of 16 inside begin/commit, each result
 * stored next to its ack, as the worker does. */
static void consume_child(int k, int start_fd)
{
    struct cel_broker *b = open_broker();
    struct cel_backend *bk = open_backend();
    char go;
    if (read(start_fd, &go, 1) != 0) /* EOF: every consumer is ready */
        _exit(9);
    char path[32];
    snprintf(path, sizeof path, "ids.%d", k);
    FILE *f = fopen(path, "w");
    if (!f)
        _exit(10);
    struct cel_delivery d[16];
    const char *qs[] = {"celery"};
    for (;;) {
        size_t n = 0;
        if (b->ops->begin(b) != 0)
            _exit(11);
        if (b->ops->fetch(b, qs, 1, 16, 30000, d, &n, NULL) != 0)
            _exit(12);
        for (size_t i = 0; i < n; i++) {
            char id[32], meta[160];
            if (sscanf(d[i].body, "{\"id\": \"%31[^\"]\"}", id) != 1)
                _exit(13);
            int ml = snprintf(meta, sizeof meta,
                              "{\"status\": \"SUCCESS\", \"result\": 1, \"task_id\": \"%s\"}", id);
            if (bk->ops->store(bk, id, CEL_STATE_SUCCESS, meta, (size_t)ml, 0) != 0)
                _exit(14);
            if (b->ops->ack(b, &d[i]) != 0)
                _exit(15);
            fprintf(f, "%s\n", id);
        }
        if (b->ops->commit(b) != 0)
            _exit(16);
        release_all(d, n);
        if (n == 0)
            break;
    }
    fclose(f);
    cel__backend_close(bk);
    cel__broker_close(b);
    _exit(0);
}

static void test_concurrent_consumers(void)
{
    enum { N = 2000, M = 4 };
    struct cel_broker *b = open_broker();
    ASSERT_OK(b->ops->begin(b));
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%05d", i);
        ASSERT_OK(publish(b, "celery", i % 3, 0, id));
    }
    ASSERT_OK(b->ops->commit(b));

    int start[2];
    ASSERT_OK(pipe(start));
    pid_t pids[M];
    for (int k = 0; k < M; k++) {
        pids[k] = fork();
        ASSERT(pids[k] >= 0);
        if (pids[k] == 0) {
            close(start[1]);
            consume_child(k, start[0]);
        }
    }
    close(start[0]);
    cel_test_sleep_ms(100); /* let them open their connections */
    int64_t t0 = cel__mono_us();
    close(start[1]);
    for (int k = 0; k < M; k++)
        ASSERT_EQ(cel_test_wait(pids[k], 60000), 0);
    int64_t elapsed = cel__mono_us() - t0;
    fprintf(stderr, "   %d fetch+store+ack cycles by %d processes in %.1f ms: %.0f tasks/s\n", N, M,
            elapsed / 1000.0, N * 1e6 / (double)elapsed);

    static int seen[N];
    memset(seen, 0, sizeof seen);
    int total = 0, busy = 0;
    for (int k = 0; k < M; k++) {
        char path[32], line[64];
        snprintf(path, sizeof path, "ids.%d", k);
        FILE *f = fopen(path, "r");
        ASSERT(f != NULL);
        int mine = 0;
        while (fgets(line, sizeof line, f)) {
            int i = -1;
            ASSERT_EQ(sscanf(line, "t%d", &i), 1);
            ASSERT(i >= 0 && i < N);
            seen[i]++;
            total++;
            mine++;
        }
        busy += mine > 0;
        fprintf(stderr, "   consumer %d: %d tasks\n", k, mine);
        fclose(f);
    }
    ASSERT_EQ(total, N);
    for (int i = 0; i < N; i++)
        if (seen[i] != 1)
            cel_test_fail(__FILE__, __LINE__, "task t%05d delivered %d times", i, seen[i]);
    ASSERT(busy >= 2); /* the work was actually shared */
    size_t len = 1;
    ASSERT_OK(b->ops->length(b, "celery", &len));
    ASSERT_EQ(len, 0);
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM results WHERE status = 'SUCCESS'"),
              N);
    cel__broker_close(b);
}

static void test_redelivery_after_kill(void)
{
    struct cel_broker *b = open_broker();
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "r%d", i);
        ASSERT_OK(publish(b, "q", 0, 0, id));
    }
    int fds[2];
    ASSERT_OK(pipe(fds));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        /* Uses the parent's handle: it must move to a connection of its own. */
        struct cel_delivery d[8];
        const char *qs[] = {"q"};
        size_t n = 0;
        int rc = b->ops->fetch(b, qs, 1, 8, 300, d, &n, NULL);
        char c = rc == 0 && n == 5 ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c = 0;
    ASSERT_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    int64_t fetched_at = cel__wall_us();
    ASSERT_EQ(c, 'y');
    kill(pid, SIGKILL);
    ASSERT_EQ(cel_test_wait(pid, 5000), 128 + SIGKILL);

    /* Leased to the dead child: nobody else gets them yet. */
    struct cel_delivery d[8];
    int64_t next = 0;
    ASSERT_EQ(fetch(b, "q", 8, 30000, d, &next), 0);
    ASSERT(next > fetched_at && next <= fetched_at + 300 * 1000);
    while (cel__wall_us() < next)
        cel_test_sleep_ms(10);
    size_t n = fetch(b, "q", 8, 30000, d, NULL);
    ASSERT_EQ(n, 5);
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(d[i].delivery_count, 2);
        char want[32];
        snprintf(want, sizeof want, "\"r%d\"", (int)i);
        ASSERT_CONTAINS(d[i].body, want);
        ASSERT_OK(b->ops->ack(b, &d[i]));
    }
    release_all(d, n);
    cel__broker_close(b);
}

static void test_reject_and_dead_letters(void)
{
    struct cel_broker *b = open_broker();
    ASSERT_OK(publish(b, "q", 0, 0, "x"));
    struct cel_delivery d[2];
    ASSERT_EQ(fetch(b, "q", 1, 30000, d, NULL), 1);
    ASSERT_OK(b->ops->reject(b, &d[0], true, NULL));
    release_all(d, 1);
    ASSERT_EQ(fetch(b, "q", 1, 30000, d, NULL), 1);
    ASSERT_EQ(d[0].delivery_count, 2);
    ASSERT_OK(b->ops->reject(b, &d[0], false, "malformed envelope"));
    release_all(d, 1);
    size_t len = 1;
    ASSERT_OK(b->ops->length(b, "q", &len));
    ASSERT_EQ(len, 0);
    ASSERT_EQ(cel_test_sql_int(
                  "test.db", "SELECT COUNT(*) FROM dead_letters WHERE queue = 'q' AND task_id = 'x'"
                             " AND reason = 'malformed envelope' AND delivery_count = 2"
                             " AND body = '{\"id\": \"x\"}'"),
              1);
    cel__broker_close(b);
}

static void test_extend(void)
{
    struct cel_broker *b = open_broker();
    ASSERT_OK(publish(b, "q", 0, 0, "x"));
    struct cel_delivery d[2];
    ASSERT_EQ(fetch(b, "q", 1, 150, d, NULL), 1);
    const struct cel_delivery *dp[] = {&d[0]};
    ASSERT_OK(b->ops->extend(b, dp, 1, 5000));
    cel_test_sleep_ms(250);
    struct cel_delivery again[2];
    ASSERT_EQ(fetch(b, "q", 1, 150, again, NULL), 0);
    ASSERT_OK(b->ops->ack(b, &d[0]));
    release_all(d, 1);
    cel__broker_close(b);
}

static void test_purge_and_length(void)
{
    struct cel_broker *b = open_broker();
    for (int i = 0; i < 3; i++)
        ASSERT_OK(publish(b, "q1", 0, 0, "a"));
    ASSERT_OK(publish(b, "q1", 0, cel__wall_us() + 60000000LL, "delayed"));
    ASSERT_OK(publish(b, "q2", 0, 0, "b"));
    ASSERT_OK(publish(b, "q2", 0, 0, "c"));
    struct cel_delivery d[1];
    ASSERT_EQ(fetch(b, "q1", 1, 30000, d, NULL), 1);
    size_t removed = 0, len = 0;
    ASSERT_OK(b->ops->purge(b, "q1", &removed));
    ASSERT_EQ(removed, 3); /* two ready + one delayed; the reserved one stays */
    ASSERT_OK(b->ops->length(b, "q1", &len));
    ASSERT_EQ(len, 1);
    ASSERT_OK(b->ops->length(b, "q2", &len));
    ASSERT_EQ(len, 2);
    ASSERT_OK(b->ops->purge(b, "nothing", &removed));
    ASSERT_EQ(removed, 0);
    release_all(d, 1);
    cel__broker_close(b);
}

/* Batching: broker begin/commit also covers the results stored in between
 * (one shared connection per file and process). */
static void test_shared_transaction(void)
{
    struct cel_broker *b = open_broker();
    struct cel_backend *bk = open_backend();
    ASSERT_OK(publish(b, "q", 0, 0, "tx"));
    ASSERT_OK(b->ops->begin(b));
    struct cel_delivery d[1];
    ASSERT_EQ(fetch(b, "q", 1, 30000, d, NULL), 1);
    const char meta[] = "{\"status\": \"SUCCESS\", \"result\": 3, \"task_id\": \"tx\"}";
    ASSERT_OK(bk->ops->store(bk, "tx", CEL_STATE_SUCCESS, meta, strlen(meta), 0));
    ASSERT_OK(b->ops->ack(b, &d[0]));
    /* Another connection sees neither the ack nor the result yet. */
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM results"), 0);
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM messages"), 1);
    ASSERT_OK(b->ops->commit(b));
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM results"), 1);
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM messages"), 0);
    ASSERT_EQ(b->ops->commit(b), CEL_ESTATE); /* unbalanced */
    release_all(d, 1);
    cel__backend_close(bk);
    cel__broker_close(b);
}

static void test_wakeup_latency(void)
{
    struct cel_broker *b = open_broker();
    int ready[2], report[2];
    ASSERT_OK(pipe(ready));
    ASSERT_OK(pipe(report));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        struct cel_broker *w = open_broker();
        int fd = w->ops->wakeup_fd(w);
        w->ops->drain_wakeup(w);
        char c = fd >= 0 ? 'r' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        const char *qs[] = {"q"};
        struct cel_delivery d[1];
        size_t n = 0;
        int64_t until = cel__mono_ms() + 5000;
        while (n == 0 && cel__mono_ms() < until) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 1000) < 0)
                _exit(2);
            w->ops->drain_wakeup(w);
            if (w->ops->fetch(w, qs, 1, 1, 30000, d, &n, NULL) != 0)
                _exit(3);
        }
        int64_t t = n ? cel__wall_us() : 0;
        if (write(report[1], &t, sizeof t) != sizeof t)
            _exit(4);
        release_all(d, n);
        cel__broker_close(w);
        _exit(0);
    }
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'r');
    cel_test_sleep_ms(100); /* let the waiter settle in poll() */
    int64_t t0 = cel__wall_us();
    ASSERT_OK(publish(b, "q", 0, 0, "wake"));
    int64_t t1 = 0;
    ASSERT_EQ(read(report[0], &t1, sizeof t1), (long)sizeof t1);
    ASSERT_EQ(cel_test_wait(pid, 5000), 0);
    ASSERT(t1 > 0);
    fprintf(stderr, "   publish -> fetched in another process: %.2f ms\n", (t1 - t0) / 1000.0);
    ASSERT(t1 - t0 < 50 * 1000);
    close(ready[0]);
    close(ready[1]);
    close(report[0]);
    close(report[1]);
    cel__broker_close(b);
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

static void test_idle_fetch_does_not_wake(void)
{
    struct cel_broker *watcher = open_broker();
    struct cel_broker *b = open_broker();
    ASSERT_OK(publish(b, "q", 0, cel__wall_us() + 60000000LL, "future"));
    int fd = watcher->ops->wakeup_fd(watcher);
    ASSERT(fd >= 0);
    /* A write does fire it... */
    ASSERT(readable(fd, 1000));
    cel_test_sleep_ms(20);
    watcher->ops->drain_wakeup(watcher);
    ASSERT(!readable(fd, 0));
    /* ...idle fetches, bare or in the worker's begin/commit, do not. */
    struct cel_delivery d[16];
    for (int i = 0; i < 20; i++) {
        int64_t next = 0;
        ASSERT_EQ(fetch(b, "q", 16, 30000, d, &next), 0);
        ASSERT(next > 0);
        ASSERT_OK(b->ops->begin(b));
        ASSERT_EQ(fetch(b, "q", 16, 30000, d, &next), 0);
        ASSERT_OK(b->ops->commit(b));
    }
    ASSERT(!readable(fd, 150));
    cel__broker_close(b);
    cel__broker_close(watcher);
}

static void test_registry_errors(void)
{
    struct cel_errbuf err = {{0}};
    struct cel_broker *b = (struct cel_broker *)&err;
    ASSERT_EQ(cel__broker_open("foo://x", NULL, &b, &err), CEL_ESCHEME);
    ASSERT(b == NULL);
    ASSERT_CONTAINS(err.msg, "unsupported broker scheme 'foo' in 'foo://x' (known: sqlite, memory");
    /* A scheme the URL parser knows but no transport serves yet. */
    ASSERT_EQ(cel__broker_open("amqp://guest:guest@localhost:5672//", NULL, &b, &err), CEL_ESCHEME);
    ASSERT_CONTAINS(err.msg, "unsupported broker scheme 'amqp'");
    ASSERT(cel__broker_open("sqlite:///no/such/dir/x.db", NULL, &b, &err) < 0);
    ASSERT_CONTAINS(err.msg, "no/such/dir");
    /* The default URL: ./celeriac.db */
    ASSERT_OK(cel__broker_open(NULL, NULL, &b, &err));
    ASSERT_EQ(access("celeriac.db", F_OK), 0);
    cel__broker_close(b);
}

int main(void)
{
    TEST_RUN(test_publish_fetch_ack);
    TEST_RUN(test_priority_and_fifo);
    TEST_RUN(test_delayed);
    TEST_RUN(test_concurrent_consumers);
    TEST_RUN(test_redelivery_after_kill);
    TEST_RUN(test_reject_and_dead_letters);
    TEST_RUN(test_extend);
    TEST_RUN(test_purge_and_length);
    TEST_RUN(test_shared_transaction);
    TEST_RUN(test_wakeup_latency);
    TEST_RUN(test_idle_fetch_does_not_wake);
    TEST_RUN(test_registry_errors);
    return 0;
}
