/*
 * test_dead_letters.c - messages kept aside, read back and acted on
 * through the public API (celeriac/dead_letters.h) and the command line,
 * on SQLite, Redis and in memory: what a reject without requeue kept is
 * listed newest first with its reason and task, filtered by queue, shown
 * by id, requeued to its queue with its priority (and runs again), and
 * purged by id, by queue and whole.
 */
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>
#include <celeriac/dead_letters.h>

#include "core/clock.h"
#include "redis_server.h"
#include "store_open.h"
#include "task_batch.h"
#include "testing.h"

/* Takes the next message of `queue` with a handle of its own (a Redis
 * handle consumes the queues of its first fetch; its consumer thread may
 * need a moment to pop the message). The caller settles d with the
 * returned handle, then closes it. */
static struct cel_broker *fetch_one(const char *url, const char *queue, struct cel_delivery *d)
{
    struct cel_broker *b = cel_test_open_broker(url);
    const char *qs[] = {queue};
    int64_t deadline = cel__mono_ms() + 10000;
    size_t n = 0;
    while (n == 0 && cel__mono_ms() < deadline) {
        int64_t next_due = 0;
        ASSERT_OK(b->ops->fetch(b, qs, 1, 1, 60000, d, &n, &next_due));
        if (n == 0)
            cel_test_sleep_ms(10);
    }
    ASSERT_EQ(n, 1);
    return b;
}

static char *send_task(cel_client *c, const char *name, const char *queue, int priority)
{
    cel_send_options o =
        CEL_SEND_OPTIONS_INIT(.queue = queue, .priority = priority, .has_priority = 1);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_send(c, name, "[1]", NULL, &o, &r));
    char *id = strdup(cel_result_id(r));
    cel_result_free(r);
    return id;
}

/* Sends `name` to `queue` and dead-letters it for `reason`. */
static char *kill_one(cel_client *c, const char *url, const char *name, const char *queue,
                      int priority, const char *reason)
{
    char *id = send_task(c, name, queue, priority);
    struct cel_delivery d;
    struct cel_broker *b = fetch_one(url, queue, &d);
    ASSERT_CONTAINS(d.body, id);
    ASSERT_OK(b->ops->reject(b, &d, false, reason));
    cel__delivery_release(&d);
    cel__broker_close(b);
    return id;
}

static void check_transport(const char *url, bool counts)
{
    cel_client *c = cel_test_client(url, NULL);
    cel_dead_letters *l = NULL;
    ASSERT_OK(cel_dead_letters_list(c, NULL, 0, 10, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 0);
    cel_dead_letters_free(l);

    char *t1 = kill_one(c, url, "tasks.one", "qa", 6, "poison: killed its process 3 times");
    char *t2 = kill_one(c, url, "tasks.two", "qb", 0, "unreadable");
    char *t3 = kill_one(c, url, "tasks.three", "qa", 0, "NotRegistered after 5 deliveries");

    /* Newest first, with everything an operator needs. */
    ASSERT_OK(cel_dead_letters_list(c, NULL, 0, 10, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 3);
    ASSERT_STREQ(cel_dead_letter_task_id(l, 0), t3);
    ASSERT_STREQ(cel_dead_letter_task_name(l, 0), "tasks.three");
    ASSERT_STREQ(cel_dead_letter_reason(l, 0), "NotRegistered after 5 deliveries");
    ASSERT_STREQ(cel_dead_letter_queue(l, 0), "qa");
    ASSERT_STREQ(cel_dead_letter_task_id(l, 2), t1);
    if (counts)
        ASSERT_EQ(cel_dead_letter_delivery_count(l, 2), 1);
    size_t len = 0;
    ASSERT_CONTAINS(cel_dead_letter_body(l, 2, &len), "tasks.one");
    ASSERT(len > 0);
    double now = (double)cel__wall_us() / 1e6;
    ASSERT(cel_dead_letter_time(l, 0) > now - 60 && cel_dead_letter_time(l, 0) <= now + 1);
    char *id1 = strdup(cel_dead_letter_id(l, 2)), *id2 = strdup(cel_dead_letter_id(l, 1));
    cel_dead_letters_free(l);

    /* Paging and the queue filter. */
    ASSERT_OK(cel_dead_letters_list(c, NULL, 1, 1, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 1);
    ASSERT_STREQ(cel_dead_letter_task_id(l, 0), t2);
    cel_dead_letters_free(l);
    ASSERT_OK(cel_dead_letters_list(c, "qa", 0, 10, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 2);
    cel_dead_letters_free(l);

    /* Show one; an unknown id is not found. */
    ASSERT_OK(cel_dead_letters_get(c, id1, &l));
    ASSERT_STREQ(cel_dead_letter_task_id(l, 0), t1);
    ASSERT_STREQ(cel_dead_letter_reason(l, 0), "poison: killed its process 3 times");
    cel_dead_letters_free(l);
    ASSERT_EQ(cel_dead_letters_get(c, "999999", &l), CEL_ENOTFOUND);
    ASSERT(l == NULL);

    /* Requeue: back on its queue, deliverable, and gone from the list. */
    ASSERT_OK(cel_dead_letters_requeue(c, id1));
    ASSERT_EQ(cel_dead_letters_requeue(c, id1), CEL_ENOTFOUND);
    struct cel_delivery d;
    struct cel_broker *b = fetch_one(url, "qa", &d);
    ASSERT_CONTAINS(d.body, t1);
    if (counts)
        ASSERT_EQ(d.delivery_count, 1);
    ASSERT_OK(b->ops->ack(b, &d));
    cel__delivery_release(&d);
    cel__broker_close(b);
    ASSERT_OK(cel_dead_letters_list(c, NULL, 0, 10, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 2);
    cel_dead_letters_free(l);

    /* Purge by id, by queue, everything. */
    size_t removed = 0;
    ASSERT_OK(cel_dead_letters_purge(c, NULL, id2, &removed));
    ASSERT_EQ(removed, 1);
    char *t4 = kill_one(c, url, "tasks.four", "qb", 0, "rejected");
    ASSERT_OK(cel_dead_letters_purge(c, "qa", NULL, &removed));
    ASSERT_EQ(removed, 1);
    ASSERT_OK(cel_dead_letters_list(c, NULL, 0, 10, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 1);
    ASSERT_STREQ(cel_dead_letter_task_id(l, 0), t4);
    cel_dead_letters_free(l);
    ASSERT_OK(cel_dead_letters_purge(c, NULL, NULL, &removed));
    ASSERT_EQ(removed, 1);
    ASSERT_OK(cel_dead_letters_list(c, NULL, 0, 10, &l));
    ASSERT_EQ(cel_dead_letters_count(l), 0);
    cel_dead_letters_free(l);

    free(t1), free(t2), free(t3), free(t4), free(id1), free(id2);
    cel_client_free(c);
}

static void test_memory(void)
{
    check_transport("memory://dead", true);
}

static void test_sqlite(void)
{
    check_transport("sqlite:///dead.db", true);
}

static void test_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    check_transport(srv.url, false);
    cel_test_redis_stop(&srv);
}

static void test_cli(void)
{
    const char *url = "sqlite:///celeriac.db";
    cel_client *c = cel_test_client(url, NULL);
    char *t1 = kill_one(c, url, "tasks.cli", "celery", 0, "poison message");
    char *out = NULL;
    ASSERT_EQ(cel_test_cli(&out, NULL, "dead-letters", "list", NULL), 0);
    ASSERT_CONTAINS(out, "tasks.cli");
    ASSERT_CONTAINS(out, "poison message");
    free(out);
    ASSERT_EQ(cel_test_cli(&out, NULL, "dead-letters", "list", "--json", NULL), 0);
    ASSERT_CONTAINS(out, "\"task_id\":\"");
    ASSERT_CONTAINS(out, t1);
    char *idp = strstr(out, "\"id\":\"");
    ASSERT(idp);
    char id[32] = "";
    sscanf(idp + 6, "%31[^\"]", id);
    free(out);
    ASSERT_EQ(cel_test_cli(&out, NULL, "dead-letters", "show", id, NULL), 0);
    ASSERT_CONTAINS(out, "reason:    poison message");
    free(out);
    ASSERT_EQ(cel_test_cli(&out, NULL, "dead-letters", "requeue", id, NULL), 0);
    free(out);
    struct cel_delivery d;
    struct cel_broker *b = fetch_one(url, "celery", &d);
    ASSERT_CONTAINS(d.body, t1);
    ASSERT_OK(b->ops->reject(b, &d, false, "again"));
    cel__delivery_release(&d);
    cel__broker_close(b);
    /* Without -f and without a terminal a purge of everything refuses. */
    ASSERT_EQ(cel_test_cli(&out, NULL, "dead-letters", "purge", "--all", NULL), 2);
    free(out);
    ASSERT_EQ(cel_test_cli(&out, NULL, "dead-letters", "purge", "--all", "-f", NULL), 0);
    ASSERT_CONTAINS(out, "removed 1 dead letter");
    free(out);
    ASSERT(cel_test_cli(&out, NULL, "dead-letters", "show", id, NULL) != 0);
    free(out);
    free(t1);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    TEST_RUN(test_cli);
    return 0;
}
