/*
 * test_client_wait.c - a timed-out wait says whether the task was ever
 * taken from its queue (cel_result_unclaimed_queue()), on the SQLite
 * store, which sees the message row itself.
 */
#include <celeriac.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "store_open.h"
#include "testing.h"

#define URL "sqlite:///test.db"

static cel_client *connect_client(const char *url)
{
    cel_config *cfg = cel_config_new();
    ASSERT(cfg);
    ASSERT_OK(cel_config_set(cfg, "broker_url", url, "test"));
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg);
    ASSERT(c);
    if (cel_client_connect(c) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "connect: %s", cel_client_errmsg(c));
    return c;
}

static cel_result *send_task(cel_client *c, const char *queue, double countdown)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.queue = queue, .countdown = countdown);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_send(c, "tasks.add", "[2, 3]", NULL, &o, &r));
    return r;
}

/* What a worker does first: takes up to `max` messages from `queue` under
 * a lease. */
static size_t take(struct cel_broker *b, const char *queue, size_t max, int64_t lease_ms,
                   struct cel_delivery *out)
{
    const char *qs[] = {queue};
    size_t n = 0;
    ASSERT_OK(b->ops->fetch(b, qs, 1, max, lease_ms, out, &n, NULL));
    return n;
}

static struct cel_broker *open_broker(void)
{
    return cel_test_open_broker(URL);
}

static void test_no_worker_at_all(void)
{
    cel_client *c = connect_client(URL);
    cel_result *r = send_task(c, NULL, 0);
    bool consumed = true;
    ASSERT(cel_result_unclaimed_queue(r, &consumed) == NULL); /* nothing observed yet */
    ASSERT(!consumed);
    ASSERT_EQ(cel_result_wait(r, 50), CEL_ETIMEDOUT);
    ASSERT_EQ(cel_result_state(r), CEL_STATE_PENDING);
    ASSERT_STREQ(cel_result_unclaimed_queue(r, &consumed), "celery");
    ASSERT(!consumed);
    ASSERT_CONTAINS(cel_client_errmsg(c), "it was never taken from queue 'celery'");
    ASSERT_CONTAINS(cel_client_errmsg(c), "no worker is consuming that queue");
    /* NULL for `consumed` is allowed; a refresh forgets the observation. */
    ASSERT_STREQ(cel_result_unclaimed_queue(r, NULL), "celery");
    ASSERT_OK(cel_result_refresh(r));
    ASSERT(cel_result_unclaimed_queue(r, NULL) == NULL);
    cel_result_free(r);

    /* Another queue is named as such. */
    r = send_task(c, "reports", 0);
    ASSERT_EQ(cel_result_wait(r, 10), CEL_ETIMEDOUT);
    ASSERT_STREQ(cel_result_unclaimed_queue(r, NULL), "reports");
    ASSERT_CONTAINS(cel_client_errmsg(c), "never taken from queue 'reports'");
    cel_result_free(r);
    cel_client_free(c);
}

/* Workers that hold other messages of the queue mean a backlog, not an
 * absent worker; one whose lease ran out held nothing alive. */
static void test_backlog_versus_dead_worker(void)
{
    cel_client *c = connect_client(URL);
    struct cel_broker *worker = open_broker();
    cel_result *ahead = send_task(c, NULL, 0);
    struct cel_delivery d[2];
    ASSERT_EQ(take(worker, "celery", 1, 60000, d), 1);
    cel_result *r = send_task(c, NULL, 0);
    bool consumed = false;
    ASSERT_EQ(cel_result_wait(r, 10), CEL_ETIMEDOUT);
    ASSERT_STREQ(cel_result_unclaimed_queue(r, &consumed), "celery");
    ASSERT(consumed);
    ASSERT_CONTAINS(cel_client_errmsg(c), "busy with other tasks");

    /* The held message's lease runs out: its worker is gone. */
    const struct cel_delivery *held[] = {&d[0]};
    ASSERT_OK(worker->ops->extend(worker, held, 1, 1));
    int64_t until = cel__mono_us() + 5000000;
    do {
        ASSERT_EQ(cel_result_wait(r, 5), CEL_ETIMEDOUT);
        cel_result_unclaimed_queue(r, &consumed);
    } while (consumed && cel__mono_us() < until);
    ASSERT(!consumed);
    ASSERT_CONTAINS(cel_client_errmsg(c), "no worker is consuming that queue");
    cel__delivery_release(&d[0]);
    cel_result_free(ahead);
    cel_result_free(r);
    cel__broker_close(worker);
    cel_client_free(c);
}

/* Taken once means not "never taken", whatever happened after. */
static void test_taken_tasks_are_not_unclaimed(void)
{
    cel_client *c = connect_client(URL);
    struct cel_broker *worker = open_broker();
    cel_result *r = send_task(c, NULL, 0);
    struct cel_delivery d;
    ASSERT_EQ(take(worker, "celery", 1, 60000, &d), 1);
    ASSERT_EQ(cel_result_wait(r, 10), CEL_ETIMEDOUT);
    ASSERT_EQ(cel_result_state(r), CEL_STATE_RECEIVED);
    ASSERT(cel_result_unclaimed_queue(r, NULL) == NULL);
    ASSERT(strstr(cel_client_errmsg(c), "never taken") == NULL);

    /* Given back to the queue: waiting again, but not "never taken". */
    ASSERT_OK(worker->ops->reject(worker, &d, true, NULL));
    ASSERT_EQ(cel_result_wait(r, 10), CEL_ETIMEDOUT);
    ASSERT_EQ(cel_result_state(r), CEL_STATE_PENDING);
    ASSERT(cel_result_unclaimed_queue(r, NULL) == NULL);
    cel__delivery_release(&d);
    cel_result_free(r);
    cel__broker_close(worker);
    cel_client_free(c);
}

static void test_countdown_is_not_late(void)
{
    cel_client *c = connect_client(URL);
    cel_result *r = send_task(c, NULL, 60);
    ASSERT_EQ(cel_result_wait(r, 10), CEL_ETIMEDOUT);
    ASSERT(cel_result_unclaimed_queue(r, NULL) == NULL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "(state PENDING)");
    cel_result_free(r);
    cel_client_free(c);
}

/* A store that cannot see queues says nothing rather than guess. */
static void test_memory_store_says_nothing(void)
{
    cel_client *c = connect_client("memory://");
    cel_result *r = send_task(c, NULL, 0);
    ASSERT_EQ(cel_result_wait(r, 10), CEL_ETIMEDOUT);
    ASSERT(cel_result_unclaimed_queue(r, NULL) == NULL);
    ASSERT(strstr(cel_client_errmsg(c), "never taken") == NULL);
    cel_result_free(r);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_no_worker_at_all);
    TEST_RUN(test_backlog_versus_dead_worker);
    TEST_RUN(test_taken_tasks_are_not_unclaimed);
    TEST_RUN(test_countdown_is_not_late);
    TEST_RUN(test_memory_store_says_nothing);
    return 0;
}
