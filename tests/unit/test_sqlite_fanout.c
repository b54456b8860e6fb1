/* test_sqlite_fanout.c - fan-out publish/subscribe on the SQLite transport. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "store/sqlite_db.h"
#include "sql_query.h"
#include "store_open.h"
#include "testing.h"

#define URL "sqlite:///test.db"

static struct cel_broker *open_broker(void)
{
    struct cel_broker *b = cel_test_open_broker(URL);
    ASSERT(b->ops->fanout_publish && b->ops->fanout_subscribe && b->ops->fanout_poll &&
           b->ops->fanout_fd && b->ops->fanout_close);
    return b;
}

static int publish(struct cel_broker *b, const char *exchange, const char *key, const char *body)
{
    return b->ops->fanout_publish(b, exchange, key, body, strlen(body));
}

static struct cel_fanout_sub *subscribe(struct cel_broker *b, const char *exchange,
                                        const char *pattern)
{
    struct cel_fanout_sub *s = NULL;
    int rc = b->ops->fanout_subscribe(b, exchange, pattern, &s);
    if (rc != 0)
        cel_test_fail(__FILE__, __LINE__, "subscribe: %d %s", rc, cel__broker_errmsg(b));
    ASSERT(s != NULL);
    return s;
}

/* Everything the subscription has now, bodies joined with ",". */
static char *drain(const struct cel_broker_ops *ops, struct cel_fanout_sub *s, size_t *count)
{
    size_t cap = 64, len = 0, total = 0;
    char *all = calloc(1, cap);
    ASSERT(all);
    for (;;) {
        struct cel_fanout_msg m[7]; /* small on purpose: the loop must call again */
        size_t n = 99;
        ASSERT_OK(ops->fanout_poll(s, m, 7, &n));
        ASSERT(n <= 7);
        for (size_t i = 0; i < n; i++) {
            size_t need = len + m[i].len + 2;
            if (need > cap) {
                cap = need * 2;
                all = realloc(all, cap);
                ASSERT(all);
            }
            if (len)
                all[len++] = ',';
            memcpy(all + len, m[i].body, m[i].len);
            len += m[i].len;
            all[len] = '\0';
            ASSERT_EQ(strlen(m[i].body), m[i].len);
            cel__fanout_msg_release(&m[i]);
        }
        total += n;
        if (n < 7)
            break;
    }
    if (count)
        *count = total;
    return all;
}

static void test_two_subscribers_get_every_message(void)
{
    struct cel_broker *b = open_broker();
    struct cel_fanout_sub *s1 = subscribe(b, "celeryev", "#");
    struct cel_fanout_sub *s2 = subscribe(b, "celeryev", "*");
    char want[4096] = "";
    for (int i = 0; i < 100; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"n\": %d}", i);
        ASSERT_OK(publish(b, "celeryev", i % 2 ? "task.succeeded" : "worker.heartbeat", body));
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? "," : "", body);
    }
    size_t n1 = 0, n2 = 0;
    char *got1 = drain(b->ops, s1, &n1);
    char *got2 = drain(b->ops, s2, &n2);
    ASSERT_EQ(n1, 100);
    ASSERT_EQ(n2, 100);
    ASSERT_STREQ(got1, want); /* every message, once, in publish order */
    ASSERT_STREQ(got2, want);
    free(got1);
    free(got2);

    /* Read once means gone for that subscriber, not for the other. */
    ASSERT_OK(publish(b, "celeryev", "x", "late"));
    got1 = drain(b->ops, s1, &n1);
    ASSERT_STREQ(got1, "late");
    free(got1);
    got1 = drain(b->ops, s1, &n1);
    ASSERT_EQ(n1, 0);
    got2 = drain(b->ops, s2, &n2);
    ASSERT_STREQ(got2, "late");
    free(got1);
    free(got2);

    /* The message carries its exchange and routing key. */
    ASSERT_OK(publish(b, "celeryev", "worker.online", "{}"));
    struct cel_fanout_msg m;
    size_t n = 0;
    ASSERT_OK(b->ops->fanout_poll(s1, &m, 1, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(m.exchange, "celeryev");
    ASSERT_STREQ(m.routing_key, "worker.online");
    ASSERT_STREQ(m.body, "{}");
    cel__fanout_msg_release(&m);

    b->ops->fanout_close(s1);
    b->ops->fanout_close(s2);
    cel__broker_close(b);
}

static void test_patterns_and_exchanges(void)
{
    struct cel_broker *b = open_broker();
    struct cel_fanout_sub *prefix = subscribe(b, "celeryev", "worker.#");
    struct cel_fanout_sub *exact = subscribe(b, "celeryev", "task.succeeded");
    struct cel_fanout_sub *pidbox = subscribe(b, "celery.pidbox", "#");
    ASSERT_OK(publish(b, "celeryev", "worker.heartbeat", "1"));
    ASSERT_OK(publish(b, "celeryev", "worker", "2"));
    ASSERT_OK(publish(b, "celeryev", "workers.x", "3"));
    ASSERT_OK(publish(b, "celeryev", "task.succeeded", "4"));
    ASSERT_OK(publish(b, "celeryev", "task.succeeded.more", "5"));
    ASSERT_OK(publish(b, "celery.pidbox", "", "6"));
    ASSERT_OK(publish(b, "celeryevx", "worker.heartbeat", "7"));
    ASSERT_OK(publish(b, "celeryev", "worker.a.b", "8"));
    char *got = drain(b->ops, prefix, NULL);
    ASSERT_STREQ(got, "1,2,8");
    free(got);
    got = drain(b->ops, exact, NULL);
    ASSERT_STREQ(got, "4");
    free(got);
    got = drain(b->ops, pidbox, NULL);
    ASSERT_STREQ(got, "6");
    free(got);
    b->ops->fanout_close(prefix);
    b->ops->fanout_close(exact);
    b->ops->fanout_close(pidbox);
    cel__broker_close(b);
}

static void test_only_messages_after_subscribing(void)
{
    struct cel_broker *b = open_broker();
    ASSERT_OK(publish(b, "celeryev", "k", "before-1"));
    ASSERT_OK(publish(b, "celeryev", "k", "before-2"));
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "#");
    char *got = drain(b->ops, s, NULL);
    ASSERT_STREQ(got, "");
    free(got);
    ASSERT_OK(publish(b, "celeryev", "k", "after"));
    got = drain(b->ops, s, NULL);
    ASSERT_STREQ(got, "after");
    free(got);
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

/* Inside the caller's begin()/commit() a fan-out message goes out with the
 * batch (the worker sends events with its acks), not before. */
static void test_publish_inside_a_batch(void)
{
    struct cel_broker *b = open_broker();
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "#");
    ASSERT_OK(b->ops->begin(b));
    ASSERT_OK(publish(b, "celeryev", "task.succeeded", "batched"));
    char *got = drain(b->ops, s, NULL); /* another connection: sees nothing yet */
    ASSERT_STREQ(got, "");
    free(got);
    ASSERT_OK(b->ops->commit(b));
    got = drain(b->ops, s, NULL);
    ASSERT_STREQ(got, "batched");
    free(got);
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

static void test_pruning_bounds_the_table(void)
{
    enum { EXTRA = 500 };
    struct cel_broker *b = open_broker();
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "#");
    int64_t t0 = cel__mono_us();
    ASSERT_OK(b->ops->begin(b));
    for (int i = 0; i < CEL_SQLDB_FANOUT_MAX_ROWS + EXTRA; i++) {
        char body[32];
        snprintf(body, sizeof body, "%d", i);
        ASSERT_OK(publish(b, "celeryev", "k", body));
    }
    ASSERT_OK(b->ops->commit(b));
    fprintf(stderr, "   %d fan-out publishes in one batch: %.1f ms\n",
            CEL_SQLDB_FANOUT_MAX_ROWS + EXTRA, (cel__mono_us() - t0) / 1000.0);
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM fanout"),
              CEL_SQLDB_FANOUT_MAX_ROWS);
    /* The newest are kept: a subscriber that fell behind gets those. */
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT MIN(CAST(body AS INTEGER)) FROM fanout"), EXTRA);
    size_t n = 0;
    char *got = drain(b->ops, s, &n);
    ASSERT_EQ(n, CEL_SQLDB_FANOUT_MAX_ROWS);
    free(got);

    /* By age: rows older than the limit go at the next publish of a handle
     * that has not pruned yet (age pruning runs once a second). */
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open("test.db", &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM fanout", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "INSERT INTO fanout (exchange, routing_key, body, created_at)"
                                 " VALUES ('celeryev', 'k', 'old', ?1)",
                                 -1, &st, NULL),
              SQLITE_OK);
    int64_t old = cel__wall_us() - (CEL_SQLDB_FANOUT_MAX_AGE_S + 5) * 1000000LL;
    for (int i = 0; i < 50; i++) {
        sqlite3_bind_int64(st, 1, old + i);
        ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM fanout"), 50);
    struct cel_broker *b2 = open_broker();
    ASSERT_OK(publish(b2, "celeryev", "k", "fresh"));
    ASSERT_EQ(cel_test_sql_int("test.db", "SELECT COUNT(*) FROM fanout"), 1);
    /* Ids never go back, even with the table emptied by pruning: the
     * subscriber still sees what comes next. */
    got = drain(b->ops, s, &n);
    ASSERT_STREQ(got, "fresh");
    free(got);
    cel__broker_close(b2);
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

static bool wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    return n == 1 && (p.revents & POLLIN);
}

static void test_fd_wakes_on_publish_from_another_process(void)
{
    struct cel_broker *b = open_broker();
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "worker.#");
    int fd = b->ops->fanout_fd(s);
    ASSERT(fd >= 0);
    char *got = drain(b->ops, s, NULL);
    free(got);
    ASSERT(!wait_readable(fd, 0)); /* quiet before anything is published */

    int go[2];
    ASSERT_OK(pipe(go));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        char byte;
        if (read(go[0], &byte, 1) != 1)
            _exit(2);
        struct cel_errbuf err = {{0}};
        struct cel_broker *cb = NULL;
        if (cel__broker_open(URL, NULL, &cb, &err) != 0)
            _exit(3);
        int rc = publish(cb, "celeryev", "worker.heartbeat", "from-child");
        cel__broker_close(cb);
        _exit(rc == 0 ? 0 : 4);
    }
    close(go[0]);
    int64_t t0 = cel__mono_us();
    ASSERT_EQ(write(go[1], "g", 1), 1);
    close(go[1]);
    ASSERT(wait_readable(fd, 5000));
    int64_t woke_us = cel__mono_us() - t0;
    ASSERT_EQ(cel_test_wait(pid, 10000), 0);
    got = drain(b->ops, s, NULL);
    ASSERT_STREQ(got, "from-child");
    free(got);
    fprintf(stderr, "   woken %.2f ms after the child was told to publish\n", woke_us / 1000.0);
    /* poll drained the doorbell: quiet again until the next publish. */
    ASSERT(!wait_readable(fd, 0));
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

struct reader {
    const struct cel_broker_ops *ops;
    struct cel_fanout_sub *sub;
    int want;
    int got;
    bool in_order;
};

static void *read_on_another_thread(void *arg)
{
    struct reader *r = arg;
    int fd = r->ops->fanout_fd(r->sub);
    int64_t deadline = cel__mono_us() + 20 * 1000000LL;
    r->in_order = true;
    while (r->got < r->want && cel__mono_us() < deadline) {
        struct cel_fanout_msg m[16];
        size_t n = 0;
        if (r->ops->fanout_poll(r->sub, m, 16, &n) != 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (strtol(m[i].body, NULL, 10) != r->got)
                r->in_order = false;
            r->got++;
            cel__fanout_msg_release(&m[i]);
        }
        if (n < 16)
            wait_readable(fd, 100);
    }
    return NULL;
}

/* The subscription is polled on one thread while another publishes
 * through the broker handle that made it. */
static void test_subscription_on_another_thread(void)
{
    enum { N = 300 };
    struct cel_broker *b = open_broker();
    struct reader r = {.ops = b->ops, .sub = subscribe(b, "celeryev", "#"), .want = N};
    pthread_t th;
    ASSERT_OK(pthread_create(&th, NULL, read_on_another_thread, &r));
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof body, "%d", i);
        ASSERT_OK(publish(b, "celeryev", "k", body));
        /* Plain broker work on this thread meanwhile. */
        size_t len;
        ASSERT_OK(b->ops->length(b, "celery", &len));
    }
    ASSERT_OK(pthread_join(th, NULL));
    ASSERT_EQ(r.got, N);
    ASSERT(r.in_order);
    b->ops->fanout_close(r.sub);
    cel__broker_close(b);
}

/* A version 1 file (before the fanout table) is migrated on open. */
static void test_schema_1_is_migrated(void)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open("test.db", &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "PRAGMA journal_mode=WAL;"
                           "CREATE TABLE messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL,"
                           " priority INTEGER NOT NULL DEFAULT 0, task_id TEXT, body TEXT NOT NULL,"
                           " visible_at INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0,"
                           " delivery_count INTEGER NOT NULL DEFAULT 0,"
                           " created_at INTEGER NOT NULL);"
                           "INSERT INTO messages (queue, body, visible_at, created_at)"
                           " VALUES ('celery', '{}', 0, 0);"
                           "PRAGMA user_version = 1;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    struct cel_broker *b = open_broker();
    ASSERT_EQ(cel_test_sql_int("test.db", "PRAGMA user_version"), CEL_SQLDB_SCHEMA_VERSION);
    size_t len = 0;
    ASSERT_OK(b->ops->length(b, "celery", &len));
    ASSERT_EQ(len, 1); /* kept what was queued */
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "#");
    ASSERT_OK(publish(b, "celeryev", "k", "works"));
    char *got = drain(b->ops, s, NULL);
    ASSERT_STREQ(got, "works");
    free(got);
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

/* An in-memory database lives in one connection: a subscription, which
 * needs its own, is refused rather than left deaf. */
static void test_memory_database_refuses_subscriptions(void)
{
    struct cel_errbuf err = {{0}};
    struct cel_broker *b = NULL;
    ASSERT_OK(cel__broker_open("sqlite:///:memory:", NULL, &b, &err));
    struct cel_fanout_sub *s = NULL;
    ASSERT_EQ(b->ops->fanout_subscribe(b, "celeryev", "#", &s), CEL_EINVAL);
    ASSERT(s == NULL);
    ASSERT_CONTAINS(cel__broker_errmsg(b), "fan-out needs a database file");
    ASSERT_OK(publish(b, "celeryev", "k", "nobody listens")); /* publishing still works */
    cel__broker_close(b);
}

int main(void)
{
    TEST_RUN(test_two_subscribers_get_every_message);
    TEST_RUN(test_patterns_and_exchanges);
    TEST_RUN(test_only_messages_after_subscribing);
    TEST_RUN(test_publish_inside_a_batch);
    TEST_RUN(test_pruning_bounds_the_table);
    TEST_RUN(test_fd_wakes_on_publish_from_another_process);
    TEST_RUN(test_subscription_on_another_thread);
    TEST_RUN(test_schema_1_is_migrated);
    TEST_RUN(test_memory_database_refuses_subscriptions);
    return 0;
}
