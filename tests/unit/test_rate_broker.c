/*
 * test_rate_broker.c - the brokers' shared rate-limit buckets
 * (rate_acquire): one token at a time across handles (two connections
 * standing for two workers), never more than capacity 1 + rate x time,
 * buckets per name, on memory, SQLite and Redis.
 */
#include "testing.h"

#include <time.h>

#include "broker/broker.h"
#include "celeriac/error.h"
#include "core/clock.h"
#include "redis_server.h"
#include "store_open.h"

static struct cel_test_redis srv;

static void sleep_us(int64_t us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void check_transport(const char *url)
{
    fprintf(stderr, "   %s\n", url);
    struct cel_broker *a = cel_test_open_broker(url), *b = cel_test_open_broker(url);
    int64_t wait = -1;
    /* A fresh bucket is full: the first take is granted, the next one, by
     * the other handle, is told to wait up to 1/rate (10/s: 100 ms). */
    ASSERT_OK(a->ops->rate_acquire(a, "t.limited", 10, &wait));
    ASSERT_EQ(wait, 0);
    ASSERT_OK(b->ops->rate_acquire(b, "t.limited", 10, &wait));
    ASSERT(wait > 50000 && wait <= 100000);
    /* Another name has a bucket of its own. */
    ASSERT_OK(b->ops->rate_acquire(b, "t.other", 10, &wait));
    ASSERT_EQ(wait, 0);

    /* Two handles taking as fast as they are let, 40/s for 0.5 s: at most
     * 1 + 20 grants between them, and not far fewer. */
    const char *name = "t.race";
    int grants = 0;
    int64_t start = cel__mono_us(), end = start + 500000;
    int64_t next[2] = {start, start};
    struct cel_broker *h[2] = {a, b};
    while (cel__mono_us() < end) {
        int i = next[0] <= next[1] ? 0 : 1;
        int64_t now = cel__mono_us();
        if (next[i] > now)
            sleep_us(next[i] - now);
        if (cel__mono_us() >= end)
            break;
        ASSERT_OK(h[i]->ops->rate_acquire(h[i], name, 40, &wait));
        if (wait == 0)
            grants++;
        next[i] = cel__mono_us() + wait;
    }
    fprintf(stderr, "   %d grants in 0.5 s at 40/s\n", grants);
    ASSERT(grants <= 21);
    ASSERT(grants >= 15);
    cel__broker_close(a);
    cel__broker_close(b);
}

static void test_memory(void)
{
    check_transport("memory://rate");
}

static void test_sqlite(void)
{
    check_transport("sqlite:///rate.db");
}

static void test_redis(void)
{
    check_transport(srv.url);
    /* The bucket lives in one key that expires once it would be full. */
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    long long ttl = cel_test_redis_int(c, "PTTL celeriac.rate.t.limited");
    ASSERT(ttl > 0 && ttl <= 60100);
    redisFree(c);
}

int main(void)
{
    cel_test_redis_setup(&srv);
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    cel_test_redis_stop(&srv);
    return 0;
}
