/* test_memory_broker.c - the in-process transport and result store. */
#include <poll.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "store_open.h"
#include "testing.h"

static struct cel_broker *open_broker(const char *url)
{
    return cel_test_open_broker(url);
}

static int publish(struct cel_broker *b, const char *queue, int prio, int64_t due, const char *id)
{
    char body[64];
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

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

static void test_shared_by_name(void)
{
    struct cel_broker *a = open_broker("memory://one");
    struct cel_broker *b = open_broker("memory://one");
    struct cel_broker *other = open_broker("memory://two");
    ASSERT_STREQ(a->ops->scheme, "memory");
    int fd = b->ops->wakeup_fd(b);
    ASSERT(fd >= 0);
    ASSERT(!readable(fd, 0));
    ASSERT_OK(publish(a, "q", 0, 0, "x"));
    ASSERT(readable(fd, 0)); /* a publish on one handle wakes the others */
    b->ops->drain_wakeup(b);
    ASSERT(!readable(fd, 0));
    size_t len = 0;
    ASSERT_OK(b->ops->length(b, "q", &len));
    ASSERT_EQ(len, 1);
    ASSERT_OK(other->ops->length(other, "q", &len));
    ASSERT_EQ(len, 0);
    struct cel_delivery d[2];
    ASSERT_EQ(fetch(b, "q", 2, 30000, d, NULL), 1);
    ASSERT_STREQ(d[0].body, "{\"id\": \"x\"}");
    ASSERT_STREQ(d[0].queue, "q");
    ASSERT_OK(b->ops->ack(b, &d[0]));
    release_all(d, 1);
    ASSERT_OK(a->ops->length(a, "q", &len));
    ASSERT_EQ(len, 0);
    cel__broker_close(a);
    cel__broker_close(b);
    cel__broker_close(other);
}

static void test_priority_fifo_delay(void)
{
    struct cel_broker *b = open_broker("memory://");
    int64_t due = cel__wall_us() + 200 * 1000;
    ASSERT_OK(publish(b, "q", 0, 0, "p0-1"));
    ASSERT_OK(publish(b, "q", 9, 0, "p9-1"));
    ASSERT_OK(publish(b, "q", 9, due, "p9-later"));
    ASSERT_OK(publish(b, "q", 4, 0, "p4-1"));
    ASSERT_OK(publish(b, "q", 0, 0, "p0-2"));
    struct cel_delivery d[8];
    int64_t next = 0;
    size_t n = fetch(b, "q", 8, 30000, d, &next);
    ASSERT_EQ(n, 4);
    ASSERT_CONTAINS(d[0].body, "p9-1");
    ASSERT_CONTAINS(d[1].body, "p4-1");
    ASSERT_CONTAINS(d[2].body, "p0-1");
    ASSERT_CONTAINS(d[3].body, "p0-2");
    ASSERT_EQ(next, due);
    for (size_t i = 0; i < n; i++)
        ASSERT_OK(b->ops->ack(b, &d[i]));
    release_all(d, n);
    while (cel__wall_us() < due)
        cel_test_sleep_ms(5);
    ASSERT_EQ(fetch(b, "q", 8, 30000, d, &next), 1);
    ASSERT_CONTAINS(d[0].body, "p9-later");
    ASSERT_OK(b->ops->ack(b, &d[0]));
    release_all(d, 1);
    cel__broker_close(b);
}

static void test_lease_expiry_and_extend(void)
{
    struct cel_broker *b = open_broker("memory://lease");
    ASSERT_OK(publish(b, "q", 0, 0, "a"));
    ASSERT_OK(publish(b, "q", 0, 0, "b"));
    struct cel_delivery d[2], again[2];
    ASSERT_EQ(fetch(b, "q", 2, 100, d, NULL), 2);
    const struct cel_delivery *keep[] = {&d[1]};
    ASSERT_OK(b->ops->extend(b, keep, 1, 10000));
    ASSERT_EQ(fetch(b, "q", 2, 100, again, NULL), 0); /* leased */
    cel_test_sleep_ms(150);
    ASSERT_EQ(fetch(b, "q", 2, 30000, again, NULL), 1); /* only the unextended one */
    ASSERT_CONTAINS(again[0].body, "\"a\"");
    ASSERT_EQ(again[0].delivery_count, 2);
    ASSERT_OK(b->ops->ack(b, &again[0]));
    ASSERT_OK(b->ops->ack(b, &d[1]));
    release_all(again, 1);
    release_all(d, 2);
    size_t len = 1;
    ASSERT_OK(b->ops->length(b, "q", &len));
    ASSERT_EQ(len, 0);
    cel__broker_close(b);
}

static void test_reject_and_purge(void)
{
    struct cel_broker *b = open_broker("memory://rp");
    ASSERT_OK(publish(b, "q", 0, 0, "a"));
    ASSERT_OK(publish(b, "q", 0, 0, "b"));
    ASSERT_OK(publish(b, "q", 0, 0, "c"));
    struct cel_delivery d[2];
    ASSERT_EQ(fetch(b, "q", 2, 30000, d, NULL), 2);
    ASSERT_OK(b->ops->reject(b, &d[0], true, NULL));
    ASSERT_OK(b->ops->reject(b, &d[1], false, "bad"));
    release_all(d, 2);
    size_t len = 0, removed = 0;
    ASSERT_OK(b->ops->length(b, "q", &len));
    ASSERT_EQ(len, 2); /* a (requeued) and c */
    ASSERT_EQ(fetch(b, "q", 1, 30000, d, NULL), 1);
    ASSERT_CONTAINS(d[0].body, "\"a\"");
    ASSERT_EQ(d[0].delivery_count, 2);
    ASSERT_OK(b->ops->purge(b, "q", &removed));
    ASSERT_EQ(removed, 1); /* c; a is reserved */
    ASSERT_OK(b->ops->length(b, "q", &len));
    ASSERT_EQ(len, 1);
    release_all(d, 1);
    cel__broker_close(b);
}

static void test_memory_backend(void)
{
    struct cel_errbuf err = {{0}};
    struct cel_backend *a = NULL, *b = NULL;
    ASSERT_OK(cel__backend_open("memory://r", NULL, &a, &err));
    ASSERT_OK(cel__backend_open("memory://r", NULL, &b, &err));
    char *meta = NULL;
    ASSERT_EQ(a->ops->get(a, "t", &meta), CEL_ENOTFOUND);
    const char ok[] = "{\"status\": \"SUCCESS\", \"result\": 1}";
    const char started[] = "{\"status\": \"STARTED\", \"result\": null}";
    ASSERT_OK(a->ops->store(a, "t", CEL_STATE_STARTED, started, strlen(started), 0));
    ASSERT(readable(b->ops->wakeup_fd(b), 0));
    ASSERT_OK(a->ops->store(a, "t", CEL_STATE_SUCCESS, ok, strlen(ok), 0));
    ASSERT_OK(a->ops->store(a, "t", CEL_STATE_STARTED, started, strlen(started), 0));
    ASSERT_OK(b->ops->get(b, "t", &meta));
    ASSERT_STREQ(meta, ok);
    free(meta);
    ASSERT_OK(cel__backend_wait(b, "t", 100, &meta));
    ASSERT_STREQ(meta, ok);
    free(meta);
    ASSERT_EQ(cel__backend_wait(b, "none", 30, &meta), CEL_ETIMEDOUT);
    ASSERT_OK(a->ops->forget(a, "t"));
    ASSERT_EQ(b->ops->get(b, "t", &meta), CEL_ENOTFOUND);
    /* Expiry. */
    ASSERT_OK(a->ops->store(a, "e", CEL_STATE_SUCCESS, ok, strlen(ok), 1));
    ASSERT_OK(b->ops->get(b, "e", &meta));
    free(meta);
    cel_test_sleep_ms(1050);
    ASSERT_EQ(b->ops->get(b, "e", &meta), CEL_ENOTFOUND);
    cel__backend_close(a);
    cel__backend_close(b);
}

int main(void)
{
    TEST_RUN(test_shared_by_name);
    TEST_RUN(test_priority_fifo_delay);
    TEST_RUN(test_lease_expiry_and_extend);
    TEST_RUN(test_reject_and_purge);
    TEST_RUN(test_memory_backend);
    return 0;
}
