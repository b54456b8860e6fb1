/*
 * test_queue_pause.c - paused queues (broker.h queue_pause and
 * queue_paused_list) on memory://, sqlite:// and a real redis-server:
 * pausing is idempotent, resuming what is not paused is harmless, the
 * list is sorted, and a handle opened later (a worker started after the
 * pause) sees the flag, because it is stored on the broker side: the
 * celeriac.paused set on Redis, the paused_queues table on SQLite.
 */
#include <sqlite3.h>

#include <celeriac.h>

#include "broker/broker.h"
#include "store/sqlite_db.h"
#include "redis_server.h"
#include "sql_query.h"
#include "store_open.h"
#include "testing.h"

#define SQLITE_DB "paused.db"

static struct cel_test_redis srv;

/* The paused list, comma-joined ("" when none). */
static char *paused(struct cel_broker *b)
{
    char **names = (char **)&names; /* must be overwritten */
    size_t n = 99;
    int rc = b->ops->queue_paused_list(b, &names, &n);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "queue_paused_list: %s", cel__broker_errmsg(b));
    ASSERT(n > 0 || names == NULL);
    static char buf[512];
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(buf, ",");
        strcat(buf, names[i]);
    }
    cel__strv_free(names, n);
    return buf;
}

static void pause_queue(struct cel_broker *b, const char *queue, bool on)
{
    int rc = b->ops->queue_pause(b, queue, on);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "queue_pause %s: %s", queue, cel__broker_errmsg(b));
}

static void run_cases(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->queue_pause && b->ops->queue_paused_list);
    ASSERT_STREQ(paused(b), "");
    pause_queue(b, "videos", true);
    pause_queue(b, "celery", true);
    pause_queue(b, "videos", true); /* again: still once */
    ASSERT_STREQ(paused(b), "celery,videos");

    /* Another handle, opened after the pause, as a worker started later. */
    struct cel_broker *later = cel_test_open_broker(url);
    ASSERT_STREQ(paused(later), "celery,videos");
    pause_queue(later, "celery", false);
    pause_queue(later, "never-paused", false); /* harmless */
    ASSERT_STREQ(paused(b), "videos");
    pause_queue(b, "videos", false);
    ASSERT_STREQ(paused(later), "");
    pause_queue(b, "audio", true);
    cel__broker_close(later);
    cel__broker_close(b);
}

static void test_memory(void)
{
    run_cases("memory://paused");
}

static void test_sqlite(void)
{
    run_cases("sqlite:///" SQLITE_DB);
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM paused_queues WHERE queue = "
                                          "'audio' AND paused_at > 0"),
              1);
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "SELECT COUNT(*) FROM paused_queues"), 1);
}

static void test_redis(void)
{
    cel_test_redis_setup(&srv);
    run_cases(srv.url);
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    ASSERT_EQ(cel_test_redis_int(c, "SCARD celeriac.paused"), 1);
    ASSERT_EQ(cel_test_redis_int(c, "SISMEMBER celeriac.paused audio"), 1);
    redisFree(c);
    cel_test_redis_stop(&srv);
}

/* A database made by the previous schema (4, before mailboxes and paused
 * queues) gains the new tables when opened, its messages kept. */
static void test_sqlite_schema_4_is_migrated(void)
{
    struct cel_broker *b = cel_test_open_broker("sqlite:///" SQLITE_DB);
    ASSERT_OK(b->ops->publish(b, "celery", 0, 0, "t1", "{}", 2));
    cel__broker_close(b);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(SQLITE_DB, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DROP TABLE paused_queues; DROP TABLE mailboxes;"
                           "DROP TABLE mailbox_replies; PRAGMA user_version = 4;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    b = cel_test_open_broker("sqlite:///" SQLITE_DB);
    ASSERT_EQ(cel_test_sql_int(SQLITE_DB, "PRAGMA user_version"), CEL_SQLDB_SCHEMA_VERSION);
    pause_queue(b, "celery", true);
    ASSERT_STREQ(paused(b), "celery");
    struct cel_mailbox *m = NULL;
    ASSERT_OK(b->ops->mailbox_open(b, "migrated", &m));
    b->ops->mailbox_close(m);
    size_t len = 0;
    ASSERT_OK(b->ops->length(b, "celery", &len));
    ASSERT_EQ(len, 1);
    cel__broker_close(b);
}

int main(void)
{
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    TEST_RUN(test_sqlite_schema_4_is_migrated);
    return 0;
}
