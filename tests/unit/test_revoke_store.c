/*
 * test_revoke_store.c - the revoke ops of every transport (broker.h
 * revoke_add/revoke_list): what is stored comes back, an id stored again
 * keeps the later expiry and the latest terminate, expired entries are
 * gone, and the bound keeps the entries that expire last.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "redis_server.h"
#include "store_open.h"
#include "testing.h"

#define S 1000000LL /* µs */

static const struct cel_revoke_entry *find(const struct cel_revoke_entry *v, size_t n,
                                           const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].task_id, id) == 0)
            return &v[i];
    return NULL;
}

static void add(struct cel_broker *b, const char *id, int64_t expires_us, bool terminate,
                int signum, size_t keep_max)
{
    const char *ids[] = {id};
    if (b->ops->revoke_add(b, ids, 1, expires_us, terminate, signum, keep_max) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "revoke_add %s: %s", id, cel__broker_errmsg(b));
}

static void check_transport(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->revoke_add && b->ops->revoke_list);
    struct cel_revoke_entry *v;
    size_t n;
    ASSERT_OK(b->ops->revoke_list(b, &v, &n));
    ASSERT_EQ(n, 0);
    ASSERT(v == NULL);

    int64_t now = cel__wall_us();
    const char *ab[] = {"a", "b"};
    ASSERT_OK(b->ops->revoke_add(b, ab, 2, now + 60 * S, false, 0, 0));
    add(b, "c", now + 60 * S, true, SIGKILL, 0);
    add(b, "a", now + 10 * S, false, 0, 0); /* earlier: the later expiry stays */
    add(b, "gone", now - S, false, 0, 0);   /* already expired */
    ASSERT_OK(b->ops->revoke_list(b, &v, &n));
    ASSERT_EQ(n, 3);
    ASSERT(find(v, n, "gone") == NULL);
    const struct cel_revoke_entry *a = find(v, n, "a"), *c = find(v, n, "c");
    ASSERT(a && find(v, n, "b") && c);
    /* Redis keeps milliseconds. */
    ASSERT((now + 60 * S) - a->expires_us < 1000);
    ASSERT(!a->terminate);
    ASSERT(c->terminate);
    ASSERT_EQ(c->signum, SIGKILL);
    cel__revoke_entries_free(v, n);

    /* The latest terminate wins; the bound keeps what expires last. */
    add(b, "c", now + 60 * S, false, 0, 0);
    add(b, "d", now + 120 * S, false, 0, 0);
    add(b, "e", now + 30 * S, false, 0, 3); /* e expires first: dropped */
    ASSERT_OK(b->ops->revoke_list(b, &v, &n));
    ASSERT_EQ(n, 3);
    ASSERT(find(v, n, "e") == NULL);
    ASSERT(find(v, n, "d"));
    c = find(v, n, "c");
    ASSERT(c && !c->terminate);
    cel__revoke_entries_free(v, n);

    /* A second handle on the same store sees them (a worker started later). */
    struct cel_broker *b2 = cel_test_open_broker(url);
    ASSERT_OK(b2->ops->revoke_list(b2, &v, &n));
    ASSERT_EQ(n, 3);
    cel__revoke_entries_free(v, n);
    cel__broker_close(b2);
    cel__broker_close(b);
}

static void test_memory(void)
{
    check_transport("memory://revokes");
}

static void test_sqlite(void)
{
    check_transport("sqlite:///revokes.db");
}

static void test_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    check_transport(srv.url);
    /* The signal of a revoke that is gone does not stay behind. */
    redisContext *rc = cel_test_redis_connect(&srv);
    ASSERT(rc);
    cel_test_redis_int(rc, "ZADD celeriac.revoked 1 old");
    cel_test_redis_int(rc, "HSET celeriac.revoked.signal old 9");
    struct cel_broker *b = cel_test_open_broker(srv.url);
    struct cel_revoke_entry *v;
    size_t n;
    ASSERT_OK(b->ops->revoke_list(b, &v, &n));
    cel__revoke_entries_free(v, n);
    ASSERT_EQ(cel_test_redis_int(rc, "HEXISTS celeriac.revoked.signal old"), 0);
    cel__broker_close(b);
    redisFree(rc);
    cel_test_redis_stop(&srv);
}

int main(void)
{
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    return 0;
}
