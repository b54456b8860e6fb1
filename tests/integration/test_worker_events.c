/*
 * test_worker_events.c - a real worker's monitoring events on SQLite,
 * read back from the celeryev fan-out as a monitor reads them:
 *  - with -E: worker-online first, heartbeats every 2 s, a task's
 *    task-received, task-started and task-succeeded (result repr,
 *    runtime) in clock order, a failing task's task-failed with Python's
 *    exception repr and a traceback, worker-offline at shutdown;
 *  - without -E: heartbeats, and not one task event.
 */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>
#include <jansson.h>

#include "broker/broker.h"
#include "proto/event.h"
#include "store_open.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"
#define NODE     "ev@test"

struct monitor {
    struct cel_broker *b;
    struct cel_fanout_sub *sub;
    json_t *events; /* every event so far, in arrival order */
};

static void monitor_open(struct monitor *m)
{
    m->b = cel_test_open_broker("sqlite:///celeriac.db"); /* the worker's default file */
    ASSERT_OK(m->b->ops->fanout_subscribe(m->b, CEL_EVENT_EXCHANGE, "#", &m->sub));
    m->events = json_array();
}

static void monitor_close(struct monitor *m)
{
    m->b->ops->fanout_close(m->sub);
    cel__broker_close(m->b);
    json_decref(m->events);
}

/* Takes what arrived, waiting up to ms for something. */
static void pump(struct monitor *m, int ms)
{
    struct pollfd p = {.fd = m->b->ops->fanout_fd(m->sub), .events = POLLIN};
    poll(&p, 1, ms);
    for (;;) {
        struct cel_fanout_msg msg[16];
        size_t n = 0;
        ASSERT_OK(m->b->ops->fanout_poll(m->sub, msg, 16, &n));
        for (size_t i = 0; i < n; i++) {
            json_t *events;
            ASSERT_OK(cel__event_parse(msg[i].body, msg[i].len, &events));
            json_array_extend(m->events, events);
            json_decref(events);
            cel__fanout_msg_release(&msg[i]);
        }
        if (n < 16)
            return;
    }
}

/* The n-th event (0: first) of `type` (about task `uuid`, unless NULL). */
static const json_t *find(const struct monitor *m, const char *type, const char *uuid, size_t nth)
{
    for (size_t i = 0; i < json_array_size(m->events); i++) {
        const json_t *e = json_array_get(m->events, i);
        const char *u = json_string_value(json_object_get(e, "uuid"));
        if (strcmp(json_string_value(json_object_get(e, "type")), type) != 0 ||
            (uuid && (!u || strcmp(u, uuid) != 0)))
            continue;
        if (nth-- == 0)
            return e;
    }
    return NULL;
}

static const json_t *wait_event(struct monitor *m, const char *type, const char *uuid, size_t nth)
{
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    const json_t *e;
    while (!(e = find(m, type, uuid, nth)) && cel_test_now_ms() < deadline)
        pump(m, 200);
    if (!e)
        cel_test_fail(__FILE__, __LINE__, "no %s event #%zu for %s after %d ms", type, nth + 1,
                      uuid ? uuid : "the worker", WAIT_MS);
    return e;
}

static size_t count_prefix(const struct monitor *m, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(m->events); i++)
        n += strncmp(json_string_value(json_object_get(json_array_get(m->events, i), "type")),
                     prefix, strlen(prefix)) == 0;
    return n;
}

static json_int_t clock_of(const json_t *e)
{
    return json_integer_value(json_object_get(e, "clock"));
}

static void send_as(cel_client *c, const char *task, const char *args, const char *id)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = id);
    ASSERT_OK(cel_client_send(c, task, args, NULL, &o, NULL));
}

static cel_state wait_state(cel_client *c, const char *id)
{
    cel_result *r;
    ASSERT_OK(cel_client_result(c, id, &r));
    if (cel_result_wait(r, WAIT_MS) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "task %s not ready", id);
    cel_state st = cel_result_state(r);
    cel_result_free(r);
    return st;
}

static void test_task_events_with_flag(void)
{
    struct monitor m;
    monitor_open(&m);
    cel_client *c = cel_test_client(NULL, NULL);
    const char *const extra[] = {"-E", "-n", NODE, "-c", "1", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);

    const json_t *online = wait_event(&m, "worker-online", NULL, 0);
    ASSERT_STREQ(json_string_value(json_object_get(online, "hostname")), NODE);
    ASSERT_STREQ(json_string_value(json_object_get(online, "sw_ident")), "celeriac");
    ASSERT_EQ(json_integer_value(json_object_get(online, "pid")), pid);

    send_as(c, "test.echo", "[\"hi\"]", "ok-1");
    send_as(c, "test.echo", "[5]", "bad-1"); /* not a string: TypeError */
    ASSERT_EQ(wait_state(c, "ok-1"), CEL_STATE_SUCCESS);
    ASSERT_EQ(wait_state(c, "bad-1"), CEL_STATE_FAILURE);

    const json_t *rec = wait_event(&m, "task-received", "ok-1", 0);
    const json_t *start = wait_event(&m, "task-started", "ok-1", 0);
    const json_t *done = wait_event(&m, "task-succeeded", "ok-1", 0);
    ASSERT_STREQ(json_string_value(json_object_get(rec, "name")), "test.echo");
    ASSERT_STREQ(json_string_value(json_object_get(rec, "args")), "('hi',)");
    ASSERT_STREQ(json_string_value(json_object_get(rec, "kwargs")), "{}");
    ASSERT_STREQ(json_string_value(json_object_get(rec, "root_id")), "ok-1");
    ASSERT_EQ(json_integer_value(json_object_get(rec, "retries")), 0);
    ASSERT(clock_of(online) < clock_of(rec));
    ASSERT(clock_of(rec) < clock_of(start));
    ASSERT(clock_of(start) < clock_of(done));
    ASSERT_STREQ(json_string_value(json_object_get(done, "result")), "'hi'");
    ASSERT(json_real_value(json_object_get(done, "runtime")) > 0);

    const json_t *failed = wait_event(&m, "task-failed", "bad-1", 0);
    ASSERT(strncmp(json_string_value(json_object_get(failed, "exception")), "TypeError('", 11) ==
           0);
    ASSERT_CONTAINS(json_string_value(json_object_get(failed, "traceback")), "TypeError");

    /* Heartbeats every 2 s, counting what ran. */
    const json_t *beat = wait_event(&m, "worker-heartbeat", NULL, 1);
    const json_t *first = find(&m, "worker-heartbeat", NULL, 0);
    double gap = json_real_value(json_object_get(beat, "timestamp")) -
                 json_real_value(json_object_get(first, "timestamp"));
    if (gap < 1.5 || gap > 2.5)
        cel_test_fail(__FILE__, __LINE__, "heartbeats %.3f s apart", gap);
    ASSERT_EQ(json_real_value(json_object_get(beat, "freq")), 2.0);

    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    const json_t *off = wait_event(&m, "worker-offline", NULL, 0);
    ASSERT_STREQ(json_string_value(json_object_get(off, "hostname")), NODE);
    ASSERT_EQ(json_integer_value(json_object_get(off, "processed")), 2);
    ASSERT_EQ(json_integer_value(json_object_get(off, "active")), 0);
    cel_client_free(c);
    monitor_close(&m);
}

static void test_no_task_events_without_flag(void)
{
    struct monitor m;
    monitor_open(&m);
    cel_client *c = cel_test_client(NULL, NULL);
    const char *const extra[] = {"-n", NODE, "-c", "1", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    wait_event(&m, "worker-online", NULL, 0);
    send_as(c, "test.echo", "[\"hi\"]", "quiet-1");
    ASSERT_EQ(wait_state(c, "quiet-1"), CEL_STATE_SUCCESS);
    /* Task events would be out within 100 ms; two heartbeats take 2 s
     * and more, and the second one has counted the task. */
    const json_t *beat = wait_event(&m, "worker-heartbeat", NULL, 1);
    size_t nth = 1;
    while (json_integer_value(json_object_get(beat, "processed")) < 1)
        beat = wait_event(&m, "worker-heartbeat", NULL, ++nth);
    pump(&m, 200);
    ASSERT_EQ(count_prefix(&m, "task-"), 0);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    wait_event(&m, "worker-offline", NULL, 0);
    ASSERT_EQ(count_prefix(&m, "task-"), 0);
    cel_client_free(c);
    monitor_close(&m);
}

int main(void)
{
    TEST_RUN(test_task_events_with_flag);
    TEST_RUN(test_no_task_events_without_flag);
    return 0;
}
