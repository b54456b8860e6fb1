/*
 * test_fanout_memory.c - the routing-key pattern rule every transport's
 * fan-out shares (broker/fanout.h), and fan-out on memory://: every
 * subscriber gets every message, patterns filter, publishers on several
 * threads, a subscriber that stops polling, and a subscription that
 * outlives its handle.
 */
#include <poll.h>
#include <pthread.h>

#include <celeriac.h>

#include "broker/broker.h"
#include "broker/fanout.h"
#include "store_open.h"
#include "testing.h"

static bool match(const char *pattern, const char *rk)
{
    return cel__fanout_match(pattern, rk, strlen(rk));
}

static void test_pattern_rule(void)
{
    ASSERT(match("#", "worker.heartbeat"));
    ASSERT(match("#", ""));
    ASSERT(match("*", "task.sent"));
    ASSERT(match("*", ""));
    ASSERT(match("worker.#", "worker.heartbeat"));
    ASSERT(match("worker.#", "worker.a.b")); /* a glob crosses dots, as on Redis */
    ASSERT(!match("worker.#", "worker"));
    ASSERT(!match("worker.#", "xworker.online"));
    ASSERT(match("task.sent", "task.sent"));
    ASSERT(!match("task.sent", "task.sent.x"));
    ASSERT(!match("task.sent", "task"));
    ASSERT(match("", ""));
    ASSERT(!match("", "x"));
    ASSERT(match("*.online", "worker.online"));
    ASSERT(match("a*b*c", "a-b-b-c"));
    ASSERT(!match("a*b*c", "a-b-b-d"));
    ASSERT(match("a?[b]", "a?[b]")); /* only '#' and '*' are special */
    ASSERT(!match("a?[b]", "ax[b]"));
    /* A length, not a NUL, ends the routing key. */
    ASSERT(cel__fanout_match("ab", "abc", 2));
}

static struct cel_broker *open_mem(const char *url)
{
    return cel_test_open_broker(url);
}

static struct cel_fanout_sub *subscribe(struct cel_broker *b, const char *ex, const char *pat)
{
    struct cel_fanout_sub *s = NULL;
    ASSERT_OK(b->ops->fanout_subscribe(b, ex, pat, &s));
    ASSERT(s);
    return s;
}

static bool readable(struct cel_broker *b, struct cel_fanout_sub *s)
{
    struct pollfd p = {.fd = b->ops->fanout_fd(s), .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static size_t take(struct cel_broker *b, struct cel_fanout_sub *s, struct cel_fanout_msg *m,
                   size_t max)
{
    size_t n = 0;
    ASSERT_OK(b->ops->fanout_poll(s, m, max, &n));
    return n;
}

static void release_all(struct cel_fanout_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cel__fanout_msg_release(&m[i]);
}

static void test_subscribers_and_patterns(void)
{
    struct cel_broker *b = open_mem("memory://fan");
    struct cel_broker *other = open_mem("memory://elsewhere");
    struct cel_fanout_sub *all1 = subscribe(b, "celeryev", "#");
    struct cel_fanout_sub *all2 = subscribe(b, "celeryev", "*");
    struct cel_fanout_sub *workers = subscribe(b, "celeryev", "worker.#");
    struct cel_fanout_sub *pidbox = subscribe(b, "celery.pidbox", "#");
    struct cel_fanout_sub *far = subscribe(other, "celeryev", "#");
    ASSERT(!readable(b, all1));

    const char *rks[] = {"worker.online", "task.sent", "", "worker.heartbeat"};
    for (int i = 0; i < 4; i++)
        ASSERT_OK(b->ops->fanout_publish(b, "celeryev", rks[i], rks[i], strlen(rks[i])));
    ASSERT_OK(b->ops->fanout_publish(b, "celery.pidbox", "", "ping", 4));
    ASSERT(readable(b, all1));

    struct cel_fanout_msg m[8];
    struct cel_fanout_sub *alls[] = {all1, all2};
    for (int k = 0; k < 2; k++) {
        /* Partial polls keep the fd readable until the inbox is empty. */
        ASSERT_EQ(take(b, alls[k], m, 3), 3);
        ASSERT(readable(b, alls[k]));
        ASSERT_EQ(take(b, alls[k], m + 3, 8), 1);
        ASSERT(!readable(b, alls[k]));
        for (int i = 0; i < 4; i++) {
            ASSERT_STREQ(m[i].exchange, "celeryev");
            ASSERT_STREQ(m[i].routing_key, rks[i]);
            ASSERT_STREQ(m[i].body, rks[i]);
            ASSERT_EQ(m[i].len, strlen(rks[i]));
        }
        release_all(m, 4);
    }
    ASSERT_EQ(take(b, workers, m, 8), 2);
    ASSERT_STREQ(m[0].routing_key, "worker.online");
    ASSERT_STREQ(m[1].routing_key, "worker.heartbeat");
    release_all(m, 2);
    ASSERT_EQ(take(b, pidbox, m, 8), 1);
    ASSERT_STREQ(m[0].body, "ping");
    release_all(m, 1);
    ASSERT_EQ(take(b, far, m, 8), 0); /* another memory:// name is another broker */

    /* Closed subscriptions get nothing more; others still do. */
    b->ops->fanout_close(all2);
    ASSERT_OK(b->ops->fanout_publish(b, "celeryev", "task.sent", "x", 1));
    ASSERT_EQ(take(b, all1, m, 8), 1);
    release_all(m, 1);

    struct cel_fanout_sub *subs[] = {all1, workers, pidbox};
    for (int i = 0; i < 3; i++)
        b->ops->fanout_close(subs[i]);
    other->ops->fanout_close(far);
    cel__broker_close(other);
    cel__broker_close(b);
}

struct pub_arg {
    struct cel_broker *b;
    int id;
};

#define PUBLISHERS 4
#define PER_THREAD 2000

static void *publisher(void *arg)
{
    struct pub_arg *a = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "%d:%d", a->id, i);
        if (a->b->ops->fanout_publish(a->b, "celeryev", "worker.heartbeat", text, (size_t)len))
            return (void *)1;
    }
    return NULL;
}

/* Publishers on their own handles and threads, the subscriber polling on
 * another: nothing lost, each publisher's messages in its order. */
static void test_threads(void)
{
    struct cel_broker *sb = open_mem("memory://threads");
    struct cel_fanout_sub *s = subscribe(sb, "celeryev", "#");
    pthread_t th[PUBLISHERS];
    struct pub_arg args[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) {
        args[i] = (struct pub_arg){open_mem("memory://threads"), i};
        ASSERT_OK(pthread_create(&th[i], NULL, publisher, &args[i]));
    }
    int next[PUBLISHERS] = {0};
    int total = 0;
    int64_t deadline = cel_test_now_ms() + 10000;
    while (total < PUBLISHERS * PER_THREAD && cel_test_now_ms() < deadline) {
        struct pollfd p = {.fd = sb->ops->fanout_fd(s), .events = POLLIN};
        poll(&p, 1, 100);
        struct cel_fanout_msg m[64];
        size_t n = take(sb, s, m, 64);
        for (size_t i = 0; i < n; i++) {
            int id = -1, seq = -1;
            ASSERT_EQ(sscanf(m[i].body, "%d:%d", &id, &seq), 2);
            ASSERT(id >= 0 && id < PUBLISHERS);
            ASSERT_EQ(seq, next[id]);
            next[id]++;
        }
        total += (int)n;
        release_all(m, n);
    }
    ASSERT_EQ(total, PUBLISHERS * PER_THREAD);
    for (int i = 0; i < PUBLISHERS; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        ASSERT(ret == NULL);
        cel__broker_close(args[i].b);
    }
    /* The subscription outlives every handle of its store. */
    cel__broker_close(sb);
    struct cel_broker *b = open_mem("memory://threads");
    ASSERT_OK(b->ops->fanout_publish(b, "celeryev", "x", "late", 4));
    struct cel_fanout_msg m;
    ASSERT_EQ(take(b, s, &m, 1), 1);
    ASSERT_STREQ(m.body, "late");
    cel__fanout_msg_release(&m);
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

/* A subscriber that never polls costs a bounded inbox: the oldest
 * messages go, logged once, with the total once it polls again. */
static void test_slow_subscriber_is_bounded(void)
{
    struct cel_broker *b = open_mem("memory://slow");
    struct cel_fanout_sub *s = subscribe(b, "celeryev", "#");
    const int extra = 25;
    for (int i = 0; i < CEL_FANOUT_INBOX_MAX + extra; i++) {
        char text[16];
        int len = snprintf(text, sizeof text, "%d", i);
        ASSERT_OK(b->ops->fanout_publish(b, "celeryev", "e", text, (size_t)len));
    }
    ASSERT_EQ(cel_test_logged("dropping the oldest messages"), 1);
    struct cel_fanout_msg m[1];
    ASSERT_EQ(take(b, s, m, 1), 1);
    char first[16];
    snprintf(first, sizeof first, "%d", extra);
    ASSERT_STREQ(m[0].body, first);
    cel__fanout_msg_release(&m[0]);
    ASSERT(cel_test_logged("25 messages were dropped while the subscriber did not poll") == 1);
    b->ops->fanout_close(s);
    cel__broker_close(b);
}

int main(void)
{
    cel_test_capture_logs(CEL_LOG_WARNING);
    TEST_RUN(test_pattern_rule);
    TEST_RUN(test_subscribers_and_patterns);
    TEST_RUN(test_threads);
    TEST_RUN(test_slow_subscriber_is_bounded);
    return 0;
}
