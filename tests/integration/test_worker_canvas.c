/*
 * test_worker_canvas.c - workflows run by a real worker, on SQLite and on
 * Redis: the messages are planned here as a Python client would send
 * them (proto/canvas.h) and published straight to the broker; the worker
 * hands each task's follow-ups on.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>

#include "broker/broker.h"
#include "core/errbuf.h"
#include "proto/canvas.h"
#include "record_file.h"
#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS     30000
#define DB_PATH     "celeriac.db"
#define RECORD_PATH "record.txt"
#define LOG         "w.log"

struct env {
    const char *name;
    struct cel_test_redis srv;
    char url[160];
    pid_t worker;
    cel_client *client;
    struct cel_broker *broker;
};

static struct env E;

static void env_up(const char *name)
{
    memset(&E, 0, sizeof E);
    E.name = name;
    if (strcmp(name, "redis") == 0) {
        cel_test_redis_setup(&E.srv);
        snprintf(E.url, sizeof E.url, "%s", E.srv.url);
    } else {
        snprintf(E.url, sizeof E.url, "sqlite:///%s/" DB_PATH, cel_test_dir());
    }
    char record[4200];
    snprintf(record, sizeof record, "%s/" RECORD_PATH, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    const char *args[] = {"-b", E.url, "-c", "2", "-A", cel_test_env("CEL_TEST_TASKS"), NULL};
    E.worker = cel_test_worker_start(LOG, args);
    E.client = cel_test_client(E.url, NULL);
    struct cel_errbuf eb = {{0}};
    ASSERT_OK(cel__broker_open(E.url, NULL, &E.broker, &eb));
}

static void env_down(void)
{
    cel__broker_close(E.broker);
    cel_client_free(E.client);
    ASSERT_EQ(cel_test_worker_stop(E.worker, SIGTERM, WAIT_MS), 0);
    if (E.srv.pid > 0)
        cel_test_redis_stop(&E.srv);
}

/* Plans `sig` as a client and publishes it; the plan is the caller's. */
static void send_sig(const char *sig, struct cel_canvas_plan *p)
{
    json_error_t je;
    json_t *s = json_loads(sig, 0, &je);
    if (!s)
        cel_test_fail(__FILE__, __LINE__, "bad JSON %s: %s", je.text, sig);
    char err[256];
    if (cel__canvas_plan(s, NULL, NULL, p, err, sizeof err))
        cel_test_fail(__FILE__, __LINE__, "plan: %s", err);
    json_decref(s);
    ASSERT_EQ(p->nchords, 0); /* chord sizes need the worker's chord support */
    for (size_t i = 0; i < p->nmsgs; i++) {
        const struct cel_canvas_msg *m = &p->msgs[i];
        ASSERT_OK(E.broker->ops->publish(E.broker, m->queue, m->priority, m->due_us, m->id, m->body,
                                         m->len));
    }
}

/* Waits for the result of `id`; the caller frees it. */
static cel_result *wait_id(const char *id)
{
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(E.client, id, &r));
    if (cel_result_wait(r, WAIT_MS) != CEL_OK || !cel_state_is_ready(cel_result_state(r))) {
        cel_test_worker_postmortem(E.worker, LOG);
        E.worker = 0;
        cel_test_fail(__FILE__, __LINE__, "%s not ready (%s)", id, cel_result_state_name(r));
    }
    return r;
}

static void expect_value(const char *id, const char *value)
{
    cel_result *r = wait_id(id);
    ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
    ASSERT_STREQ(cel_result_value_json(r), value);
    cel_result_free(r);
}

#define ADD(a) "{\"task\": \"tasks.add\", \"args\": " a "}"

/* chain(add(4, 4), add(5)) = 13 on the last id, which the client knows
 * in advance; the first task names the next as its child. */
static void check_chain(void)
{
    struct cel_canvas_plan p;
    send_sig("{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD("[4, 4]") ", " ADD(
                 "[5]") "]}, \"subtask_type\": \"chain\"}",
             &p);
    expect_value(p.result_id, "13");
    cel_result *first = wait_id(p.msgs[0].id);
    ASSERT_STREQ(cel_result_value_json(first), "8");
    ASSERT_CONTAINS(cel_result_meta_json(first), p.result_id);
    cel_result_free(first);
    cel__canvas_plan_release(&p);
}

/* link: each callback gets the result first, unless immutable. */
static void check_callbacks(void)
{
    struct cel_canvas_plan p;
    send_sig("{\"task\": \"tasks.add\", \"args\": [2, 2], \"options\": {\"link\": [{\"task\": "
             "\"tasks.mul\", \"args\": [3], \"options\": {\"task_id\": \"cb-mul\"}}, {\"task\": "
             "\"tasks.add\", \"args\": [1, 1], \"immutable\": true, \"options\": {\"task_id\": "
             "\"cb-add\"}}]}}",
             &p);
    expect_value("cb-mul", "12");
    expect_value("cb-add", "2");
    cel__canvas_plan_release(&p);
}

/* A failing middle task stops the chain and runs its errback, called
 * with the failed task's id (test.record returns its length). */
static void check_failing_chain(void)
{
    struct cel_canvas_plan p;
    send_sig("{\"task\": \"celery.chain\", \"options\": {\"link_error\": [{\"task\": "
             "\"test.record\", \"options\": {\"task_id\": \"eb-1\"}}]}, \"kwargs\": {\"tasks\": "
             "[" ADD("[1, 1]") ", {\"task\": \"tasks.fail\", \"args\": [\"boom\"], \"immutable\": "
                               "true, \"options\": {\"task_id\": \"mid\"}}, " ADD(
                                   "[5]") "]}, \"subtask_type\": "
                                          "\"chain\"}",
             &p);
    cel_result *mid = wait_id("mid");
    ASSERT_STREQ(cel_result_state_name(mid), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(mid), "ValueError");
    cel_result_free(mid);
    expect_value("eb-1", "3"); /* len("mid") */
    char *ids[] = {(char *)"eb-1"};
    struct cel_test_runs runs = cel_test_count_runs(RECORD_PATH, ids, 1);
    ASSERT_EQ(runs.once, 1);
    ASSERT_EQ(runs.lines, 1);
    /* the link after the failure never runs */
    cel_result *last = NULL;
    ASSERT_OK(cel_client_result(E.client, p.result_id, &last));
    ASSERT_OK(cel_result_refresh(last));
    ASSERT_STREQ(cel_result_state_name(last), "PENDING");
    cel_result_free(last);
    cel__canvas_plan_release(&p);
}

/* Sends a workflow given as signature JSON through the client API (which
 * records chord sizes, unlike send_sig). */
static void apply_json(const char *wf)
{
    cel_sig *sig = NULL;
    char err[256];
    if (cel_sig_from_json(wf, &sig, err, sizeof err) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "workflow: %s", err);
    ASSERT_OK(cel_client_apply(E.client, sig, NULL));
    cel_sig_free(sig);
}

/* A chord whose header member fails: ChordError on the body, and the
 * body's errback runs once with the body's id (test.record returns the
 * length of its argument), sent by the worker that stored the failure. */
static void check_chord_errback(void)
{
    const char *wf = "{\"task\": \"celery.chord\", \"kwargs\": {\"header\": {\"task\": "
                     "\"celery.group\", \"kwargs\": {\"tasks\": [" ADD(
                         "[1, 1]") ", {\"task\": \"tasks.fail\", \"args\": [\"x\"]}]}}, "
                                   "\"body\": {\"task\": \"tasks.add\", \"args\": [1], "
                                   "\"options\": {\"task_id\": \"chord-body\", "
                                   "\"link_error\": [{\"task\": \"test.record\", "
                                   "\"options\": {\"task_id\": \"eb-chord\"}}]}}}}";
    apply_json(wf);
    expect_value("eb-chord", "10"); /* len("chord-body") */
    cel_result *body = wait_id("chord-body");
    ASSERT_STREQ(cel_result_state_name(body), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(body), "ChordError");
    cel_result_free(body);
    char *ids[] = {(char *)"eb-chord"};
    struct cel_test_runs runs = cel_test_count_runs(RECORD_PATH, ids, 1);
    ASSERT_EQ(runs.once, 1);
}

/* chord([chain(add(1, 1), group(add(10), add(100))), add(0, 1), add(0, 2)],
 * echo): the group's members join the chord at the chain's place, and
 * the body runs once with them nested there, as Celery gives them (the
 * header is saved because it nests a group). */
static void check_chord_header_chain_ending_in_group(void)
{
    const char *wf =
        "{\"task\": \"celery.chord\", \"kwargs\": {\"header\": {\"task\": \"celery.group\", "
        "\"kwargs\": {\"tasks\": [{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD(
            "[1, 1]") ", {\"task\": \"celery.group\", \"kwargs\": {\"tasks\": [{\"task\": "
                      "\"tasks.add\", \"args\": [10], \"options\": {\"task_id\": \"cg-b\"}}, "
                      "{\"task\": \"tasks.add\", \"args\": [100], \"options\": {\"task_id\": "
                      "\"cg-c\"}}]}}]}}, " ADD("[0, 1]") ", " ADD(
                          "[0, 2]") "]}}, \"body\": {\"task\": \"tasks.echo\", \"options\": "
                                    "{\"task_id\": \"cg-body\"}}}}";
    apply_json(wf);
    expect_value("cg-body", "[[[12, 102], 1, 2]]");
}

/* A group of 100 adds: each member's result, in order. */
static void check_group(void)
{
    char sig[16384] = "{\"task\": \"celery.group\", \"subtask_type\": \"group\", \"kwargs\": "
                      "{\"tasks\": [";
    for (int i = 0; i < 100; i++)
        snprintf(sig + strlen(sig), sizeof sig - strlen(sig), "%s" ADD("[%d, %d]"), i ? ", " : "",
                 i, i);
    strcat(sig, "]}}");
    struct cel_canvas_plan p;
    send_sig(sig, &p);
    ASSERT(p.is_group);
    ASSERT_EQ(p.nmembers, 100);
    for (size_t i = 0; i < 100; i++) {
        cel_result *r = wait_id(p.member_ids[i]);
        ASSERT_EQ(atoi(cel_result_value_json(r)), 2 * (int)i);
        ASSERT_CONTAINS(cel_result_meta_json(r), p.result_id); /* its group_id */
        cel_result_free(r);
    }
    cel__canvas_plan_release(&p);
}

static void check_map_starmap(void)
{
    struct cel_canvas_plan p;
    send_sig("{\"task\": \"celery.map\", \"kwargs\": {\"task\": " ADD("[10]") ", \"it\": [1, 2, "
                                                                              "3]}}",
             &p);
    expect_value(p.result_id, "[11, 12, 13]");
    cel__canvas_plan_release(&p);
    send_sig("{\"task\": \"celery.starmap\", \"kwargs\": {\"task\": " ADD("[]") ", \"it\": [[1, "
                                                                                "2], [3, 4]]}}",
             &p);
    expect_value(p.result_id, "[3, 7]");
    cel__canvas_plan_release(&p);
    send_sig("{\"task\": \"celery.map\", \"kwargs\": {\"task\": {\"task\": \"no.such\"}, \"it\": "
             "[1]}}",
             &p);
    cel_result *r = wait_id(p.result_id);
    ASSERT_STREQ(cel_result_exc_type(r), "NotRegistered");
    cel_result_free(r);
    cel__canvas_plan_release(&p);
}

/* chain(add(1, 1), replace_add, add(5)): the middle task becomes
 * add(2, 100) under its own id, and the chain goes on from there. */
static void check_replace(void)
{
    struct cel_canvas_plan p;
    send_sig("{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD(
                 "[1, 1]") ", {\"task\": "
                           "\"test.replace_add\", \"options\": {\"task_id\": \"rep\"}}, " ADD(
                               "[5]") "]}, "
                                      "\"subtask_type\": \"chain\"}",
             &p);
    expect_value(p.result_id, "107");
    expect_value("rep", "102");
    cel__canvas_plan_release(&p);
}

static void send_task(const char *name, const char *args, const char *kwargs, const char *id)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = id);
    cel_result *r = NULL;
    ASSERT_OK(cel_client_send(E.client, name, args, kwargs, &o, &r));
    cel_result_free(r);
}

#define UNLOCK_KWARGS(h0, h1)                                                                      \
    "{\"interval\": 0.1, \"max_retries\": null, \"result\": [[[\"" h0 "\", null], null], "         \
    "[[\"" h1 "\", null], null]]}"

/* celery.chord_unlock as a Python client without a native join sends
 * it: the body goes out once the slow member is done, with both values;
 * a failed member fails the body with ChordError instead. */
static void check_chord_unlock(void)
{
    send_task("tasks.sleep", "[0.5]", NULL, "u-h1");
    send_task("tasks.add", "[1, 2]", NULL, "u-h0");
    send_task("celery.chord_unlock",
              "[\"u-g\", {\"task\": \"tasks.xsum\", \"options\": {\"task_id\": \"u-body\"}}]",
              UNLOCK_KWARGS("u-h0", "u-h1"), "u-unlock");
    expect_value("u-body", "3.5");

    send_task("tasks.fail", "[\"boom\"]", NULL, "u-f1");
    send_task("tasks.add", "[1, 2]", NULL, "u-f0");
    send_task("celery.chord_unlock",
              "[\"u-gf\", {\"task\": \"tasks.xsum\", \"options\": {\"task_id\": "
              "\"u-fbody\"}}]",
              UNLOCK_KWARGS("u-f0", "u-f1"), "u-funlock");
    cel_result *r = wait_id("u-fbody");
    ASSERT_STREQ(cel_result_state_name(r), "FAILURE");
    ASSERT_STREQ(cel_result_exc_type(r), "ChordError");
    ASSERT_STREQ(cel_result_exc_message(r), "Dependency u-f1 raised ValueError('boom')");
    cel_result_free(r);
}

static void run_all(const char *name)
{
    env_up(name);
    check_chain();
    check_callbacks();
    check_failing_chain();
    check_chord_errback();
    check_chord_header_chain_ending_in_group();
    check_group();
    check_map_starmap();
    check_replace();
    check_chord_unlock();
    env_down();
}

static void test_sqlite(void)
{
    run_all("sqlite");
}

static void test_redis(void)
{
    run_all("redis");
}

int main(void)
{
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    return 0;
}
