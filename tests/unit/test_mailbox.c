/*
 * test_mailbox.c - reply mailboxes (broker.h mailbox_open/take/close/send)
 * on every transport: memory://, sqlite:// and a real redis-server. The
 * same cases run on each: a reply to nobody is dropped without error,
 * replies arrive in order and only in their own mailbox, take() times
 * out on time and wakes promptly for a reply sent from another thread,
 * and close() leaves nothing behind. Then what is particular to each:
 * kombu's key layout on Redis, pruning after dead clients on SQLite.
 */
#include <pthread.h>
#include <sqlite3.h>

#include <celeriac.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "redis_server.h"
#include "sql_query.h"
#include "store_open.h"
#include "testing.h"

#define SQLITE_URL "sqlite:///mailbox.db"
#define SQLITE_DB  "mailbox.db"

static struct cel_test_redis srv;

static struct cel_broker *open_url(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->mailbox_open && b->ops->mailbox_take && b->ops->mailbox_close &&
           b->ops->mailbox_send);
    return b;
}

static struct cel_mailbox *open_mailbox(struct cel_broker *b, const char *name)
{
    struct cel_mailbox *m = NULL;
    int rc = b->ops->mailbox_open(b, name, &m);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "mailbox_open %s: %s", name, cel__broker_errmsg(b));
    ASSERT(m);
    return m;
}

static void send(struct cel_broker *b, const char *name, const char *text)
{
    int rc = b->ops->mailbox_send(b, name, text, strlen(text));
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "mailbox_send %s: %s", name, cel__broker_errmsg(b));
}

/* take() that must return `want`. */
static void expect(struct cel_broker *b, struct cel_mailbox *m, int64_t timeout_ms,
                   const char *want)
{
    char *env = NULL;
    size_t len = 0;
    ASSERT_OK(b->ops->mailbox_take(m, timeout_ms, &env, &len));
    ASSERT_STREQ(env, want);
    ASSERT_EQ(len, strlen(want));
    free(env);
}

static void expect_empty(struct cel_broker *b, struct cel_mailbox *m, int64_t timeout_ms)
{
    char *env = (char *)"x";
    size_t len = 9;
    ASSERT_EQ(b->ops->mailbox_take(m, timeout_ms, &env, &len), CEL_ETIMEDOUT);
    ASSERT(env == NULL);
    ASSERT_EQ(len, 0);
}

/* ---- the cases every transport passes ------------------------------------ */

static void case_nobody_bound(const char *url)
{
    struct cel_broker *b = open_url(url);
    /* Nobody has this mailbox open: accepted and dropped. */
    send(b, "nobody", "{\"lost\": 1}");
    struct cel_mailbox *m = open_mailbox(b, "nobody");
    expect_empty(b, m, 0);
    send(b, "nobody", "{\"kept\": 1}");
    expect(b, m, 0, "{\"kept\": 1}");
    b->ops->mailbox_close(m);
    cel__broker_close(b);
}

static void case_order_and_isolation(const char *url)
{
    struct cel_broker *b = open_url(url);
    struct cel_broker *replier = open_url(url); /* another handle, as a worker is */
    struct cel_mailbox *a = open_mailbox(b, "3f1c2a9e-a");
    struct cel_mailbox *c = open_mailbox(b, "3f1c2a9e-c");
    char text[64];
    for (int i = 0; i < 20; i++) {
        snprintf(text, sizeof text, "{\"n\": %d}", i);
        send(replier, "3f1c2a9e-a", text);
    }
    send(replier, "3f1c2a9e-c", "{\"for\": \"c\"}");
    for (int i = 0; i < 20; i++) {
        snprintf(text, sizeof text, "{\"n\": %d}", i);
        expect(b, a, 1000, text);
    }
    expect_empty(b, a, 0);
    expect(b, c, 0, "{\"for\": \"c\"}");
    expect_empty(b, c, 0);
    b->ops->mailbox_close(a);
    b->ops->mailbox_close(c);
    cel__broker_close(replier);
    cel__broker_close(b);
}

static void case_timeout_on_time(const char *url)
{
    struct cel_broker *b = open_url(url);
    struct cel_mailbox *m = open_mailbox(b, "slow");
    int64_t t0 = cel_test_now_ms();
    expect_empty(b, m, 0);
    ASSERT(cel_test_now_ms() - t0 < 100);
    /* Longer than one Redis wait slice (1 s), to cover the slicing. */
    t0 = cel_test_now_ms();
    expect_empty(b, m, 1300);
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "%s: take(1300) timed out after %lld ms\n", url, (long long)took);
    ASSERT(took >= 1290);
    ASSERT(took < 1800);
    b->ops->mailbox_close(m);
    cel__broker_close(b);
}

struct late_send {
    const char *url;
    int delay_ms;
    int64_t sent_ms;
};

static void *send_late(void *arg)
{
    struct late_send *ls = arg;
    struct cel_broker *b = open_url(ls->url);
    cel_test_sleep_ms(ls->delay_ms);
    ls->sent_ms = cel_test_now_ms();
    send(b, "waiting", "{\"late\": true}");
    cel__broker_close(b);
    return NULL;
}

/* A reply sent while take() waits wakes it at once, not at the end of a
 * poll interval or of the timeout. */
static void case_wakes_promptly(const char *url)
{
    struct cel_broker *b = open_url(url);
    struct cel_mailbox *m = open_mailbox(b, "waiting");
    int64_t worst = 0;
    for (int round = 0; round < 5; round++) {
        struct late_send ls = {url, 150 + 37 * round, 0};
        pthread_t t;
        ASSERT_OK(pthread_create(&t, NULL, send_late, &ls));
        expect(b, m, 5000, "{\"late\": true}");
        int64_t got = cel_test_now_ms();
        pthread_join(t, NULL);
        ASSERT(ls.sent_ms > 0);
        /* sent_ms is taken just before the send's round trip. */
        int64_t latency = got - ls.sent_ms;
        if (latency > worst)
            worst = latency;
    }
    fprintf(stderr, "%s: worst wake-up latency %lld ms\n", url, (long long)worst);
    ASSERT(worst < 100);
    b->ops->mailbox_close(m);
    cel__broker_close(b);
}

/* Closing drops what was not taken and unbinds: a reopened mailbox of the
 * same name is empty, and a send between close and reopen is dropped. */
static void case_close_removes_everything(const char *url)
{
    struct cel_broker *b = open_url(url);
    struct cel_mailbox *m = open_mailbox(b, "closing");
    send(b, "closing", "{\"n\": 1}");
    send(b, "closing", "{\"n\": 2}");
    b->ops->mailbox_close(m);
    send(b, "closing", "{\"n\": 3}");
    m = open_mailbox(b, "closing");
    expect_empty(b, m, 0);
    b->ops->mailbox_close(m);
    b->ops->mailbox_close(NULL); /* allowed, like free(NULL) */
    cel__broker_close(b);
}

/* The handle may close before its mailbox: the mailbox is independent. */
static void case_outlives_its_handle(const char *url)
{
    struct cel_broker *b = open_url(url);
    struct cel_broker *keep = open_url(url); /* memory:// stores live with a handle */
    struct cel_mailbox *m = open_mailbox(b, "orphan");
    cel__broker_close(b);
    send(keep, "orphan", "{\"still\": \"here\"}");
    expect(keep, m, 1000, "{\"still\": \"here\"}");
    keep->ops->mailbox_close(m);
    cel__broker_close(keep);
}

/* Replies sent inside the replier's begin()/commit() become visible with
 * the commit, and wake a waiting take. memory:// has no batches. */
static void case_send_in_batch(const char *url)
{
    struct cel_broker *b = open_url(url);
    struct cel_broker *replier = open_url(url);
    struct cel_mailbox *m = open_mailbox(b, "batched");
    ASSERT_OK(replier->ops->begin(replier));
    send(replier, "batched", "{\"in\": \"batch\"}");
    expect_empty(b, m, 0);
    ASSERT_OK(replier->ops->commit(replier));
    expect(b, m, 1000, "{\"in\": \"batch\"}");
    b->ops->mailbox_close(m);
    cel__broker_close(replier);
    cel__broker_close(b);
}

static void run_common(const char *url)
{
    case_nobody_bound(url);
    case_order_and_isolation(url);
    case_timeout_on_time(url);
    case_wakes_promptly(url);
    case_close_removes_everything(url);
    case_outlives_its_handle(url);
}

static void test_memory(void)
{
    run_common("memory://mailbox");
}

static void test_sqlite(void)
{
    run_common(SQLITE_URL);
    case_send_in_batch(SQLITE_URL);
    /* Closed mailboxes leave no row. */
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailboxes"), 0);
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailbox_replies"), 0);
}

static void test_redis(void)
{
    cel_test_redis_setup(&srv);
    run_common(srv.url);
    case_send_in_batch(srv.url);
    /* Nothing left: no binding, no reply list (dropped replies made none). */
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    ASSERT_EQ(cel_test_redis_int(c, "DBSIZE"), 0);
    redisFree(c);
    cel_test_redis_stop(&srv);
}

/* ---- Redis: kombu's layout ----------------------------------------------- */

static void test_redis_kombu_layout(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    const char *oid = "1be4817e-92de-3fc3-8a01-aacce953503c";
    const char *list = "1be4817e-92de-3fc3-8a01-aacce953503c.reply.celery.pidbox";
    const char member[] = "1be4817e-92de-3fc3-8a01-aacce953503c\x06\x16\x06\x16"
                          "1be4817e-92de-3fc3-8a01-aacce953503c.reply.celery.pidbox";
    struct cel_mailbox *m = open_mailbox(b, oid);
    ASSERT_EQ(cel_test_redis_int(c, "SCARD _kombu.binding.reply.celery.pidbox"), 1);
    ASSERT_EQ(cel_test_redis_int(c, "SISMEMBER _kombu.binding.reply.celery.pidbox %b", member,
                                 sizeof member - 1),
              1);

    /* send LPUSHes the envelope as it is to the reply list. */
    send(b, oid, "{\"body\": \"e30=\"}");
    ASSERT_EQ(cel_test_redis_int(c, "LLEN %s", list), 1);
    redisReply *r = cel_test_redis_cmd(c, "LINDEX %s 0", list);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_STREQ(r->str, "{\"body\": \"e30=\"}");
    freeReplyObject(r);
    expect(b, m, 0, "{\"body\": \"e30=\"}");

    /* take hears every band, lower band first, FIFO within one (kombu's
     * producers LPUSH, its client BRPOPs the four keys in that order). */
    freeReplyObject(cel_test_redis_cmd(c, "LPUSH %s\x06\x16%d band9", list, 9));
    freeReplyObject(cel_test_redis_cmd(c, "LPUSH %s\x06\x16%d band3", list, 3));
    freeReplyObject(cel_test_redis_cmd(c, "LPUSH %s first", list));
    freeReplyObject(cel_test_redis_cmd(c, "LPUSH %s second", list));
    expect(b, m, 1000, "first");
    expect(b, m, 1000, "second");
    expect(b, m, 1000, "band3");
    expect(b, m, 1000, "band9");
    expect_empty(b, m, 0);

    /* close: the binding is removed and the lists deleted. */
    send(b, oid, "{\"left\": \"behind\"}");
    freeReplyObject(cel_test_redis_cmd(c, "LPUSH %s\x06\x16%d also", list, 6));
    b->ops->mailbox_close(m);
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS _kombu.binding.reply.celery.pidbox"), 0);
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS %s %s\x06\x16%d", list, list, 6), 0);
    /* Now nobody is bound: a send creates no list. */
    send(b, oid, "{\"too\": \"late\"}");
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS %s", list), 0);

    /* Another client's binding in the set is left alone. */
    freeReplyObject(cel_test_redis_cmd(c, "SADD _kombu.binding.reply.celery.pidbox other-binding"));
    m = open_mailbox(b, oid);
    b->ops->mailbox_close(m);
    ASSERT_EQ(cel_test_redis_int(c, "SISMEMBER _kombu.binding.reply.celery.pidbox other-binding"),
              1);
    ASSERT_EQ(cel_test_redis_int(c, "SCARD _kombu.binding.reply.celery.pidbox"), 1);
    redisFree(c);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

/* The server restarts empty while a client waits: the mailbox binds itself
 * again, so replies sent after the restart still reach it. */
static void test_redis_rebinds_after_restart(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    struct cel_mailbox *m = open_mailbox(b, "survivor");
    cel_test_redis_stop(&srv);
    cel_test_redis_start(&srv);
    expect_empty(b, m, 0); /* notices, reconnects, and binds again */
    send(b, "survivor", "{\"after\": \"restart\"}");
    expect(b, m, 1000, "{\"after\": \"restart\"}");
    b->ops->mailbox_close(m);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

/* With the server gone, take() fails soon after its timeout instead of
 * waiting out a producer's reconnect budget, and works again once the
 * server is back. */
static void test_redis_take_without_server(void)
{
    cel_test_redis_setup(&srv);
    struct cel_broker *b = open_url(srv.url);
    struct cel_mailbox *m = open_mailbox(b, "stranded");
    cel_test_redis_stop(&srv);
    char *env = NULL;
    size_t len = 0;
    int64_t t0 = cel_test_now_ms();
    int rc = b->ops->mailbox_take(m, 500, &env, &len);
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "take(500) without a server: %d after %lld ms\n", rc, (long long)took);
    ASSERT(rc != CEL_OK && rc != CEL_ETIMEDOUT);
    ASSERT(env == NULL);
    ASSERT(took < 2500);
    cel_test_redis_start(&srv);
    send(b, "stranded", "{\"back\": true}"); /* the binding was lost with the server */
    /* The connection's backoff may still hold the next attempt back for
     * a moment after such an outage: takes fail until it is due, then
     * one reconnects and binds again. */
    int64_t until = cel_test_now_ms() + 10000;
    do
        rc = b->ops->mailbox_take(m, 100, &env, &len);
    while (rc == CEL_ECONNECT && cel_test_now_ms() < until);
    ASSERT_EQ(rc, CEL_ETIMEDOUT); /* and the dropped reply is not there */
    send(b, "stranded", "{\"back\": true}");
    expect(b, m, 1000, "{\"back\": true}");
    b->ops->mailbox_close(m);
    cel__broker_close(b);
    cel_test_redis_stop(&srv);
}

/* ---- SQLite: dead clients leave nothing ---------------------------------- */

static void exec_sql(const char *sql)
{
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(SQLITE_DB, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        cel_test_fail(__FILE__, __LINE__, "%s: %s", sql, msg);
    sqlite3_close(db);
}

static void test_sqlite_prunes_dead_clients(void)
{
    struct cel_broker *b = open_url(SQLITE_URL);
    /* A client killed two minutes ago left its binding and a reply; one
     * killed just now left its binding. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO mailboxes (name, seen_at) VALUES ('dead', %lld), ('fresh', %lld);"
             "INSERT INTO mailbox_replies (name, body, created_at) VALUES ('dead', 'x', %lld);",
             (long long)(cel__wall_us() - 120 * 1000000LL), (long long)cel__wall_us(),
             (long long)(cel__wall_us() - 120 * 1000000LL));
    exec_sql(sql);
    struct cel_mailbox *m = open_mailbox(b, "live");
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailboxes WHERE name = 'dead'"), 0);
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailbox_replies"), 0);
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailboxes WHERE name = 'fresh'"),
              1);
    /* A reply to the dead client is dropped now. */
    send(b, "dead", "{\"to\": \"the dead\"}");
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailbox_replies"), 0);
    /* A taken reply is deleted at once. */
    send(b, "live", "{\"to\": \"the living\"}");
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailbox_replies"), 1);
    expect(b, m, 0, "{\"to\": \"the living\"}");
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM mailbox_replies"), 0);
    b->ops->mailbox_close(m);
    cel__broker_close(b);
}

static void test_sqlite_memory_database_refuses(void)
{
    struct cel_broker *b = open_url("sqlite:///:memory:");
    struct cel_mailbox *m = NULL;
    ASSERT_EQ(b->ops->mailbox_open(b, "x", &m), CEL_EINVAL);
    ASSERT(m == NULL);
    ASSERT_CONTAINS(cel__broker_errmsg(b), "memory://");
    cel__broker_close(b);
}

int main(void)
{
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    TEST_RUN(test_redis_kombu_layout);
    TEST_RUN(test_redis_rebinds_after_restart);
    TEST_RUN(test_redis_take_without_server);
    TEST_RUN(test_sqlite_prunes_dead_clients);
    TEST_RUN(test_sqlite_memory_database_refuses);
    return 0;
}
