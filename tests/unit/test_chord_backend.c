/*
 * test_chord_backend.c - the chord join ops of every result store
 * (backend.h, reference/celery-protocol.md 7.4) on memory, SQLite and a
 * real redis-server: joins in any order complete the chord exactly once
 * with the entries in index order, a repeated join counts once, a failed
 * member is reported and its chord kept (as Celery keeps it), and on
 * Redis the keys are Celery's own.
 */
#include <hiredis/hiredis.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "redis_server.h"
#include "store_open.h"
#include "testing.h"

static struct cel_test_redis srv;
static bool redis_up;

static char *entry(char *buf, size_t len, int i, const char *state)
{
    if (strcmp(state, "FAILURE") == 0)
        snprintf(buf, len,
                 "[1, \"t%d\", \"FAILURE\", {\"exc_type\": \"ValueError\", \"exc_message\": "
                 "[\"x\"], \"exc_module\": \"builtins\"}]",
                 i);
    else
        snprintf(buf, len, "[1, \"t%d\", \"%s\", %d]", i, state, i * 10);
    return buf;
}

/* Joins member i; returns whether that completed the chord, the entries
 * in *out (free()) when it did. */
static bool join(struct cel_backend *bk, const char *gid, int i, int index, const char *state,
                 char **out)
{
    char e[256];
    entry(e, sizeof e, i, state);
    bool complete = true;
    char *entries = (char *)"unset";
    ASSERT_OK(bk->ops->chord_join(bk, gid, index, e, strlen(e), 3600, &complete, &entries));
    ASSERT(complete == (entries != NULL));
    if (out)
        *out = entries;
    else
        free(entries);
    return complete;
}

static void check_any_order(struct cel_backend *bk)
{
    const int order[] = {3, 0, 2, 1};
    ASSERT_OK(bk->ops->chord_size(bk, "g-order", 4, 3600));
    char *entries = NULL;
    for (int k = 0; k < 4; k++)
        ASSERT_EQ(join(bk, "g-order", order[k], order[k], "SUCCESS", &entries), k == 3);
    ASSERT_STREQ(entries, "[[1, \"t0\", \"SUCCESS\", 0],[1, \"t1\", \"SUCCESS\", 10],"
                          "[1, \"t2\", \"SUCCESS\", 20],[1, \"t3\", \"SUCCESS\", 30]]");
    ASSERT_EQ(cel__chord_failed_entry(entries, strlen(entries)), -1);
    free(entries);
    /* The size is consumed: a late duplicate completes nothing. */
    ASSERT(!join(bk, "g-order", 1, 1, "SUCCESS", NULL));
}

static void check_same_member_once(struct cel_backend *bk)
{
    ASSERT_OK(bk->ops->chord_size(bk, "g-dup", 2, 3600));
    ASSERT(!join(bk, "g-dup", 0, 0, "SUCCESS", NULL));
    ASSERT(!join(bk, "g-dup", 0, 0, "SUCCESS", NULL)); /* a retried write */
    ASSERT(join(bk, "g-dup", 1, 1, "SUCCESS", NULL));
}

static void check_null_index_last(struct cel_backend *bk)
{
    ASSERT_OK(bk->ops->chord_size(bk, "g-null", 2, 3600));
    char *entries = NULL;
    ASSERT(!join(bk, "g-null", 7, -1, "SUCCESS", NULL));
    ASSERT(join(bk, "g-null", 5, 5, "SUCCESS", &entries));
    ASSERT_STREQ(entries, "[[1, \"t5\", \"SUCCESS\", 50],[1, \"t7\", \"SUCCESS\", 70]]");
    free(entries);
}

static void check_failed_member(struct cel_backend *bk)
{
    ASSERT_OK(bk->ops->chord_size(bk, "g-fail", 3, 3600));
    char *entries = NULL;
    ASSERT(!join(bk, "g-fail", 0, 0, "SUCCESS", NULL));
    ASSERT(!join(bk, "g-fail", 1, 1, "FAILURE", NULL));
    ASSERT(join(bk, "g-fail", 2, 2, "SUCCESS", &entries));
    ASSERT_EQ(cel__chord_failed_entry(entries, strlen(entries)), 1);
    free(entries);
    /* Kept, as Celery keeps a failed chord: a retried join reports the
     * same failure again (storing the same ChordError). */
    ASSERT(join(bk, "g-fail", 2, 2, "SUCCESS", &entries));
    ASSERT_EQ(cel__chord_failed_entry(entries, strlen(entries)), 1);
    free(entries);
}

/* No size recorded yet: joins wait for it and never complete alone. */
static void check_no_size(struct cel_backend *bk)
{
    ASSERT(!join(bk, "g-nosize", 0, 0, "SUCCESS", NULL));
}

static void check_all(const char *url)
{
    struct cel_backend *bk = cel_test_open_backend(url);
    ASSERT(bk->ops->chord_size && bk->ops->chord_join);
    check_any_order(bk);
    check_same_member_once(bk);
    check_null_index_last(bk);
    check_failed_member(bk);
    check_no_size(bk);
    cel__backend_close(bk);
}

static void test_memory(void)
{
    check_all("memory://chords");
}

static void test_sqlite(void)
{
    check_all("sqlite:///chords.db");
}

/* Transactions that share the connection: a join rolled back with the
 * caller's batch leaves nothing behind, so retrying it completes. */
static void test_sqlite_rollback_retries(void)
{
    struct cel_backend *bk = cel_test_open_backend("sqlite:///chords.db");
    ASSERT_OK(bk->ops->chord_size(bk, "g-rb", 1, 3600));
    ASSERT_OK(bk->ops->begin(bk));
    ASSERT(join(bk, "g-rb", 0, 0, "SUCCESS", NULL));
    /* No commit: closing drops the open transaction. */
    cel__backend_close(bk);
    bk = cel_test_open_backend("sqlite:///chords.db");
    ASSERT(join(bk, "g-rb", 0, 0, "SUCCESS", NULL));
    cel__backend_close(bk);
}

static void test_redis(void)
{
    cel_test_redis_setup(&srv);
    redis_up = true;
    check_all(srv.url);
}

/* The bytes Celery's on_chord_part_return reads and writes. */
static void test_redis_keys(void)
{
    struct cel_backend *bk = cel_test_open_backend(srv.url);
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT_OK(bk->ops->chord_size(bk, "g-keys", 2, 86400));
    redisReply *r = cel_test_redis_cmd(c, "GET celery-taskset-meta-g-keys.s");
    ASSERT_STREQ(r->str, "2");
    freeReplyObject(r);
    ASSERT(!join(bk, "g-keys", 1, 1, "SUCCESS", NULL));
    ASSERT(cel_test_redis_int(c, "TTL celery-taskset-meta-g-keys.j") > 3500);
    ASSERT_EQ(cel_test_redis_int(c, "ZCARD celery-taskset-meta-g-keys.j"), 1);
    r = cel_test_redis_cmd(c, "ZRANGE celery-taskset-meta-g-keys.j 0 -1 WITHSCORES");
    ASSERT_EQ(r->elements, 2);
    ASSERT_STREQ(r->element[0]->str, "[1, \"t1\", \"SUCCESS\", 10]");
    ASSERT_STREQ(r->element[1]->str, "1");
    freeReplyObject(r);
    /* .t (add_to_chord) raises the total as Celery counts it. */
    ASSERT_EQ(cel_test_redis_int(c, "INCRBY celery-taskset-meta-g-keys.t 1"), 1);
    ASSERT(!join(bk, "g-keys", 0, 0, "SUCCESS", NULL));
    ASSERT(join(bk, "g-keys", 2, 2, "SUCCESS", NULL));
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS celery-taskset-meta-g-keys.j "
                                    "celery-taskset-meta-g-keys.t celery-taskset-meta-g-keys.s"),
              0);
    redisFree(c);
    cel__backend_close(bk);
}

int main(void)
{
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_sqlite_rollback_retries);
    TEST_RUN(test_redis);
    if (redis_up) {
        TEST_RUN(test_redis_keys);
        cel_test_redis_stop(&srv);
    }
    return 0;
}
