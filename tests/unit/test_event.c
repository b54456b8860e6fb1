/*
 * test_event.c - Celery's monitoring events (proto/event.h): the Lamport
 * clock's rules, the common fields, routing keys, envelopes for one event
 * and for a task.multi batch read back, and what Python's kombu sends.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "proto/event.h"
#include "kombu_envelope.h"
#include "testing.h"

static void test_lamport(void)
{
    struct cel_lamport c = {0};
    ASSERT_EQ(cel__lamport_forward(&c), 1);
    ASSERT_EQ(cel__lamport_forward(&c), 2);
    cel__lamport_adjust(&c, 10); /* ahead of us: max + 1 */
    ASSERT_EQ(c.value, 11);
    cel__lamport_adjust(&c, 3); /* behind us: still + 1 */
    ASSERT_EQ(c.value, 12);
    ASSERT_EQ(cel__lamport_forward(&c), 13);
}

static void test_common_fields(void)
{
    json_t *e = cel__event_new("task-started", "w1@host", 4242, 7, 1795802954390251);
    ASSERT(e);
    ASSERT_STREQ(json_string_value(json_object_get(e, "type")), "task-started");
    ASSERT_STREQ(json_string_value(json_object_get(e, "hostname")), "w1@host");
    ASSERT_EQ(json_integer_value(json_object_get(e, "pid")), 4242);
    ASSERT_EQ(json_integer_value(json_object_get(e, "clock")), 7);
    ASSERT(json_is_integer(json_object_get(e, "utcoffset")));
    const json_t *ts = json_object_get(e, "timestamp");
    ASSERT(json_is_real(ts)); /* Python's receivers do float arithmetic on it */
    ASSERT(json_real_value(ts) > 1795802954.39 && json_real_value(ts) < 1795802954.391);
    json_decref(e);
}

static void test_utcoffset_is_hours_west(void)
{
    /* Celery's utcoffset(): time.timezone // 3600, so New York is +5. */
    setenv("TZ", "America/New_York", 1);
    tzset();
    json_t *e = cel__event_new("worker-online", "w", 1, 1, 1795802954000000); /* Nov: EST */
    ASSERT_EQ(json_integer_value(json_object_get(e, "utcoffset")), 5);
    json_decref(e);
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    e = cel__event_new("worker-online", "w", 1, 1, 1795802954000000);
    ASSERT_EQ(json_integer_value(json_object_get(e, "utcoffset")), -1);
    json_decref(e);
    setenv("TZ", "UTC", 1);
    tzset();
    e = cel__event_new("worker-online", "w", 1, 1, 1795802954000000);
    ASSERT_EQ(json_integer_value(json_object_get(e, "utcoffset")), 0);
    json_decref(e);
}

static void test_routing_key(void)
{
    char buf[32];
    cel__event_routing_key("task-succeeded", buf, sizeof buf);
    ASSERT_STREQ(buf, "task.succeeded");
    cel__event_routing_key("worker-heartbeat", buf, sizeof buf);
    ASSERT_STREQ(buf, "worker.heartbeat");
    cel__event_routing_key("worker-heartbeat", buf, 7); /* truncated, still terminated */
    ASSERT_STREQ(buf, "worker");
}

/* The decoded body of an envelope we wrote, checked for kombu's fields. */
static json_t *body_of(const char *env)
{
    json_t *e = json_loads(env, 0, NULL);
    ASSERT(e);
    const json_t *props = json_object_get(e, "properties");
    ASSERT_STREQ(json_string_value(json_object_get(props, "body_encoding")), "base64");
    ASSERT_EQ(json_integer_value(json_object_get(props, "delivery_mode")), 1);
    ASSERT_STREQ(
        json_string_value(json_object_get(json_object_get(props, "delivery_info"), "exchange")),
        "celeryev");
    ASSERT_STREQ(json_string_value(json_object_get(e, "content-type")), "application/json");
    const char *b64 = json_string_value(json_object_get(e, "body"));
    size_t n;
    unsigned char *raw = cel__base64_decode(b64, strlen(b64), &n);
    ASSERT(raw);
    json_t *body = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    json_decref(e);
    ASSERT(body);
    return body;
}

static void test_single_envelope(void)
{
    json_t *ev = cel__event_new("worker-heartbeat", "w\"1@h", 9, 3, 1795802954000000);
    json_object_set_new(ev, "freq", json_real(2.0));
    char *env;
    size_t len;
    const char *rk;
    ASSERT_OK(cel__event_envelope(ev, "w\"1@h", &env, &len, &rk));
    ASSERT_STREQ(rk, "worker.heartbeat");
    ASSERT_EQ(strlen(env), len);
    ASSERT_CONTAINS(env, "\"routing_key\": \"worker.heartbeat\"");
    ASSERT_CONTAINS(env, "\"headers\": {\"hostname\": \"w\\\"1@h\"}");
    json_t *body = body_of(env);
    ASSERT(json_equal(body, ev));
    json_decref(body);

    json_t *events;
    ASSERT_OK(cel__event_parse(env, len, &events));
    ASSERT_EQ(json_array_size(events), 1);
    ASSERT(json_equal(json_array_get(events, 0), ev));
    json_decref(events);
    free(env);
    json_decref(ev);
}

static void test_batch_envelope(void)
{
    json_t *batch = json_array();
    for (int i = 0; i < CEL_EVENT_BATCH_MAX; i++) {
        json_t *ev = cel__event_new(i % 2 ? "task-started" : "task-received", "w@h", 9, i + 1,
                                    1795802954000000 + i);
        json_object_set_new(ev, "uuid", json_string("id"));
        json_array_append_new(batch, ev);
    }
    char *env;
    size_t len;
    const char *rk;
    ASSERT_OK(cel__event_envelope(batch, "w@h", &env, &len, &rk));
    ASSERT_STREQ(rk, "task.multi");
    ASSERT_CONTAINS(env, "\"routing_key\": \"task.multi\"");
    json_t *events;
    ASSERT_OK(cel__event_parse(env, len, &events));
    ASSERT(json_equal(events, batch));
    free(env);
    json_decref(events);
    json_decref(batch);
    /* Neither an object nor an array is nothing to send. */
    json_t *s = json_string("x");
    ASSERT_EQ(cel__event_envelope(s, "w@h", &env, &len, &rk), CEL_EINVAL);
    json_decref(s);
}

static char *python_envelope(const char *body, const char *rk)
{
    return cel_test_kombu_envelope(body, "celeryev", rk, "w6@vm");
}

static void test_python_shapes(void)
{
    /* A task.multi captured from Celery 5.2.6 (protocol.md 8.4). */
    char *env = python_envelope(
        "[{\"hostname\": \"w6@vm\", \"utcoffset\": 0, \"pid\": 11284, \"clock\": 11, \"uuid\": "
        "\"a25b\", \"name\": \"app.rejector\", \"args\": \"(True,)\", \"kwargs\": \"{}\", "
        "\"root_id\": \"a25b\", \"parent_id\": null, \"retries\": 0, \"eta\": null, \"expires\": "
        "null, \"timestamp\": 1795803277.5000224, \"type\": \"task-received\"}, {\"hostname\": "
        "\"w6@vm\", \"utcoffset\": 0, \"pid\": 11284, \"clock\": 13, \"uuid\": \"a25b\", "
        "\"requeue\": true, \"timestamp\": 1795803277.5017383, \"type\": \"task-rejected\"}]",
        "task.multi");
    json_t *events;
    ASSERT_OK(cel__event_parse(env, strlen(env), &events));
    ASSERT_EQ(json_array_size(events), 2);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(events, 0), "args")), "(True,)");
    ASSERT(json_is_true(json_object_get(json_array_get(events, 1), "requeue")));
    json_decref(events);
    free(env);

    /* A batch keeps its events when one element is not an event. */
    env = python_envelope("[{\"type\": \"task-started\", \"uuid\": \"x\"}, 5, {\"uuid\": \"y\"}]",
                          "task.multi");
    ASSERT_OK(cel__event_parse(env, strlen(env), &events));
    ASSERT_EQ(json_array_size(events), 1);
    json_decref(events);
    free(env);
}

static void test_text_writer(void)
{
    struct cel_buf b = {0};
    cel__buf_append(&b, "[", 1);
    cel__event_begin(&b, "task-succeeded", "w\"@h", 77, 12, 1795803277000042);
    cel__event_add_str(&b, "uuid", "id-1");
    cel__event_add_str(&b, "result", "'\u00e9'");
    cel__event_add_str(&b, "parent_id", NULL);
    cel__event_add_seconds(&b, "runtime", 1500);
    cel__event_add_int(&b, "retries", -3);
    cel__event_add_bool(&b, "requeue", true);
    cel__event_add_raw(&b, "eta", "\"2026-12-02T13:00:00+00:00\"", 27);
    cel__event_end(&b);
    cel__buf_append(&b, "]", 1);
    ASSERT_OK(b.err);
    /* Exact to the µs, without float printing. */
    ASSERT_CONTAINS(cel__buf_cstr(&b), "\"timestamp\": 1795803277.000042");
    ASSERT_CONTAINS(cel__buf_cstr(&b), "\"runtime\": 0.001500");

    char *env;
    size_t len;
    ASSERT_OK(cel__event_envelope_text(cel__buf_bytes(&b), cel__buf_size(&b), "task.multi", "w@h",
                                       &env, &len));
    ASSERT_CONTAINS(env, "\"routing_key\": \"task.multi\"");
    json_t *events;
    ASSERT_OK(cel__event_parse(env, len, &events));
    const json_t *ev = json_array_get(events, 0);
    ASSERT_STREQ(json_string_value(json_object_get(ev, "type")), "task-succeeded");
    ASSERT_STREQ(json_string_value(json_object_get(ev, "hostname")), "w\"@h");
    ASSERT_STREQ(json_string_value(json_object_get(ev, "result")), "'\u00e9'");
    ASSERT(json_is_null(json_object_get(ev, "parent_id")));
    ASSERT_EQ(json_integer_value(json_object_get(ev, "pid")), 77);
    ASSERT_EQ(json_integer_value(json_object_get(ev, "clock")), 12);
    ASSERT_EQ(json_integer_value(json_object_get(ev, "retries")), -3);
    ASSERT(json_is_true(json_object_get(ev, "requeue")));
    ASSERT(json_is_integer(json_object_get(ev, "utcoffset")));
    ASSERT(json_real_value(json_object_get(ev, "runtime")) == 0.0015);
    ASSERT_STREQ(json_string_value(json_object_get(ev, "eta")), "2026-12-02T13:00:00+00:00");
    json_decref(events);
    free(env);
    cel__buf_release(&b);
}

static void test_refused(void)
{
    json_t *events = (json_t *)1;
    const char *bad[] = {
        "",
        "not json",
        "[1, 2]",
        "{\"body\": 5}",
        "{\"body\": \"!!!\", \"properties\": {\"body_encoding\": \"base64\"}}",
        "{\"body\": \"{\\\"no\\\": \\\"type\\\"}\"}",
        "{\"body\": \"\\\"text\\\"\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ(cel__event_parse(bad[i], strlen(bad[i]), &events), CEL_EPROTO);
        ASSERT(events == NULL);
    }
    /* A plain JSON body (no body_encoding) is read as it is. */
    const char *plain = "{\"body\": \"{\\\"type\\\": \\\"worker-online\\\"}\"}";
    ASSERT_OK(cel__event_parse(plain, strlen(plain), &events));
    ASSERT_EQ(json_array_size(events), 1);
    json_decref(events);
}

int main(void)
{
    TEST_RUN(test_lamport);
    TEST_RUN(test_common_fields);
    TEST_RUN(test_utcoffset_is_hours_west);
    TEST_RUN(test_routing_key);
    TEST_RUN(test_single_envelope);
    TEST_RUN(test_batch_envelope);
    TEST_RUN(test_python_shapes);
    TEST_RUN(test_text_writer);
    TEST_RUN(test_refused);
    return 0;
}
