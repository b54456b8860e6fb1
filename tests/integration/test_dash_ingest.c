/*
 * test_dash_ingest.c - the dashboard's history fed by a real worker: a
 * `celeriac worker -E` on the SQLite broker runs a task that succeeds and
 * one that fails, sent through the client API; the events come through
 * the public event receiver into the history store, which then shows
 * both tasks with their worker, states and runtime.
 */
#include <signal.h>
#include <string.h>

#include <celeriac.h>
#include <jansson.h>

#include "dashboard/history.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"
#define NODE     "dash@test"

static void send_as(cel_client *c, const char *task, const char *args, const char *id)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = id);
    ASSERT_OK(cel_client_send(c, task, args, NULL, &o, NULL));
}

/* The task's state in the history, or "" when it is not there yet. */
static void state_of(struct cel_dash_history *h, const char *id, char *out, size_t len)
{
    char *s = NULL;
    out[0] = '\0';
    if (cel__dash_history_task_json(h, id, &s) != CEL_OK)
        return;
    json_t *t = json_loads(s, 0, NULL);
    free(s);
    ASSERT(t);
    snprintf(out, len, "%s", json_string_value(json_object_get(t, "state")));
    json_decref(t);
}

/* Ingests what the receiver has until both tasks are final. */
static void pump_until_done(cel_event_receiver *r, struct cel_dash_history *h)
{
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    char ok[32] = "", bad[32] = "";
    while (cel_test_now_ms() < deadline &&
           (strcmp(ok, "SUCCESS") != 0 || strcmp(bad, "FAILURE") != 0)) {
        const char *ev;
        int rc = cel_event_next(r, 200, &ev);
        if (rc == CEL_OK)
            ASSERT_OK(cel__dash_history_ingest(h, ev, strlen(ev)));
        else
            ASSERT_EQ(rc, CEL_ETIMEDOUT);
        ASSERT_OK(cel__dash_history_flush(h));
        state_of(h, "ok-1", ok, sizeof ok);
        state_of(h, "bad-1", bad, sizeof bad);
    }
    if (strcmp(ok, "SUCCESS") != 0 || strcmp(bad, "FAILURE") != 0)
        cel_test_fail(__FILE__, __LINE__, "history shows ok-1 '%s', bad-1 '%s'", ok, bad);
}

static void test_worker_events_into_history(void)
{
    cel_client *c = cel_test_client(NULL, NULL);
    cel_event_receiver *r = NULL;
    ASSERT_OK(cel_event_receiver_open(c, NULL, &r));
    struct cel_dash_history *h;
    char why[256] = "";
    if (cel__dash_history_open("dash-history.db", NULL, &h, why, sizeof why) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "open: %s", why);

    const char *const extra[] = {"-E", "-n", NODE, "-c", "1", NULL};
    pid_t pid = cel_test_worker_start(LOG_PATH, extra);
    send_as(c, "test.echo", "[\"hi\"]", "ok-1");
    send_as(c, "test.echo", "[5]", "bad-1"); /* not a string: TypeError */
    pump_until_done(r, h);

    char *s;
    ASSERT_OK(cel__dash_history_task_json(h, "ok-1", &s));
    json_t *ok = json_loads(s, 0, NULL);
    free(s);
    ASSERT_STREQ(json_string_value(json_object_get(ok, "worker")), NODE);
    ASSERT_STREQ(json_string_value(json_object_get(ok, "name")), "test.echo");
    ASSERT_STREQ(json_string_value(json_object_get(ok, "result")), "'hi'");
    ASSERT(json_real_value(json_object_get(ok, "runtime")) > 0);
    ASSERT(json_number_value(json_object_get(ok, "received")) > 0);
    ASSERT(json_number_value(json_object_get(ok, "started")) > 0);
    json_decref(ok);

    /* The failure, found by search as the dashboard's task list does. */
    struct cel_dash_task_query q;
    ASSERT_OK(cel__dash_task_query_parse("state:FAILURE worker:" NODE, &q, why, sizeof why));
    ASSERT_OK(cel__dash_history_tasks_json(h, &q, &s));
    json_t *list = json_loads(s, 0, NULL);
    free(s);
    ASSERT_EQ(json_object_size(list), 1);
    json_t *bad = json_object_get(list, "bad-1");
    ASSERT(bad);
    ASSERT_CONTAINS(json_string_value(json_object_get(bad, "exception")), "TypeError");
    ASSERT_CONTAINS(json_string_value(json_object_get(bad, "traceback")), "TypeError");
    json_decref(list);

    ASSERT_OK(cel__dash_history_workers_json(h, 0, &s));
    json_t *workers = json_loads(s, 0, NULL);
    free(s);
    json_t *w = json_object_get(workers, NODE);
    ASSERT_STREQ(json_string_value(json_object_get(w, "status")), "online");
    ASSERT_STREQ(json_string_value(json_object_get(w, "sw_ident")), "celeriac");
    ASSERT_EQ(json_integer_value(json_object_get(w, "succeeded")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(w, "failed")), 1);
    json_decref(workers);

    /* Stopped, the worker says goodbye and the history shows it offline. */
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    bool offline = false;
    while (!offline && cel_test_now_ms() < deadline) {
        const char *ev;
        if (cel_event_next(r, 200, &ev) == CEL_OK) {
            ASSERT_OK(cel__dash_history_ingest(h, ev, strlen(ev)));
            offline = strstr(ev, "\"worker-offline\"") != NULL;
        }
    }
    ASSERT(offline);
    ASSERT_OK(cel__dash_history_workers_json(h, 0, &s));
    workers = json_loads(s, 0, NULL);
    free(s);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(workers, NODE), "status")),
                 "offline");
    json_decref(workers);

    struct cel_dash_history_stats st;
    cel__dash_history_stats(h, &st);
    ASSERT_EQ(st.malformed, 0);
    ASSERT(st.ingested >= 8);
    cel__dash_history_close(h);
    cel_event_receiver_free(r);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_worker_events_into_history);
    return 0;
}
