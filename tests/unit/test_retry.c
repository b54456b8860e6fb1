/*
 * test_retry.c - retries, custom states and the soft limit, inside one
 * run (execute.c, retry.c, task_state.c): the retry message built from
 * the received one, the retry policy, and what a run then reports, with
 * a fake io table standing in for the prefork parent.
 */
#include <jansson.h>
#include <math.h>

#include "celeriac.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "proto/message.h"
#include "testing.h"
#include "worker/execute.h"
#include "worker/retry.h"

/* A Python 5.2 message as captured (celery-protocol.md 2.5), restored
 * once by kombu (redelivered), with headers and properties celeriac does
 * not know and a body carrying a link. */
static const char PY_ENVELOPE[] =
    "{\"body\": "
    "\"W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNo"
    "b3"
    "JkIjogbnVsbH1d\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", "
    "\"headers\": {\"lang\": \"py\", \"task\": \"t.retry\", \"id\": "
    "\"46596344-2e3f-40d6-ab7e-68beb10933d7\", \"shadow\": null, \"eta\": null, \"expires\": "
    "\"2099-01-01T00:00:00+00:00\", \"group\": \"g-1\", \"group_index\": 2, \"retries\": 1, "
    "\"timelimit\": [30, 20], \"root_id\": \"root-1\", \"parent_id\": \"parent-1\", \"argsrepr\": "
    "\"(2, 3)\", \"kwargsrepr\": \"{}\", \"origin\": \"gen5675@vm\", \"ignore_result\": false, "
    "\"stamps\": {\"x\": [1]}, \"redelivered\": true}, \"properties\": {\"correlation_id\": "
    "\"46596344-2e3f-40d6-ab7e-68beb10933d7\", \"reply_to\": \"5c97a11c\", \"delivery_mode\": 2, "
    "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"hipri\", \"redelivered\": true}, "
    "\"priority\": 6, \"body_encoding\": \"base64\", \"delivery_tag\": \"old-tag\", "
    "\"replaced_task_nesting\": 0}}";

static void parse(const char *env, struct cel_message *m)
{
    char err[160];
    if (cel__message_parse(env, strlen(env), NULL, m, err, sizeof err) != 0)
        cel_test_fail(__FILE__, __LINE__, "cannot parse: %s", err);
}

static json_t *load(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    ASSERT(v);
    return v;
}

static void test_envelope_keeps_everything(void)
{
    struct cel_message m;
    parse(PY_ENVELOPE, &m);
    int64_t eta = cel__wall_us() + 2500000;
    size_t len = 0;
    char *text = cel__retry_envelope(&m, eta, "new-tag", &len);
    ASSERT(text && len == strlen(text));

    json_t *was = load(PY_ENVELOPE), *now = load(text);
    json_t *wh = json_object_get(was, "headers"), *nh = json_object_get(now, "headers");
    /* exactly these changed */
    ASSERT_EQ(json_integer_value(json_object_get(nh, "retries")), 2);
    int64_t got_eta = 0;
    ASSERT_OK(cel__iso8601_parse(json_string_value(json_object_get(nh, "eta")), &got_eta));
    ASSERT(llabs(got_eta - eta) <= 1);
    ASSERT_CONTAINS(json_string_value(json_object_get(nh, "eta")), "+00:00");
    ASSERT(!json_object_get(nh, "redelivered"));
    json_t *np = json_object_get(now, "properties");
    ASSERT_STREQ(json_string_value(json_object_get(np, "delivery_tag")), "new-tag");
    ASSERT(!json_object_get(json_object_get(np, "delivery_info"), "redelivered"));
    /* everything else is what came */
    json_object_del(wh, "retries");
    json_object_del(wh, "eta");
    json_object_del(wh, "redelivered");
    json_object_del(nh, "retries");
    json_object_del(nh, "eta");
    ASSERT(json_equal(wh, nh));
    json_t *wp = json_object_get(was, "properties");
    json_object_del(json_object_get(wp, "delivery_info"), "redelivered");
    json_object_del(wp, "delivery_tag");
    json_object_del(np, "delivery_tag");
    ASSERT(json_equal(wp, np));
    ASSERT_STREQ(json_string_value(json_object_get(now, "body")),
                 json_string_value(json_object_get(was, "body")));
    ASSERT_EQ(json_object_size(now), 5);

    /* and it is a message a worker takes */
    struct cel_message again;
    parse(text, &again);
    ASSERT_EQ(again.retries, 2);
    ASSERT_STREQ(again.id, m.id);
    ASSERT_STREQ(again.root_id, "root-1");
    ASSERT_STREQ(again.parent_id, "parent-1");
    ASSERT_STREQ(again.group_id, "g-1");
    ASSERT(again.time_limit == 30 && again.soft_time_limit == 20);
    ASSERT(again.expires_us == m.expires_us);
    ASSERT(json_equal(again.embed, m.embed));
    cel__message_release(&again);
    json_decref(was);
    json_decref(now);
    free(text);
    cel__message_release(&m);
}

/* A copy of `env` with one header set (value as JSON text). */
static char *with_header(const char *env, const char *key, const char *value_json)
{
    json_t *root = load(env);
    json_object_set_new(json_object_get(root, "headers"), key, load(value_json));
    char *out = cel__json_dump(root);
    json_decref(root);
    return out;
}

static void test_limit(void)
{
    struct cel_message m;
    parse(PY_ENVELOPE, &m);
    cel_task_def def = CEL_TASK_DEF_INIT(.name = "t.retry");
    ASSERT_EQ(cel__retry_limit(NULL, &m), 3);
    ASSERT_EQ(cel__retry_limit(&def, &m), 3);
    def.max_retries = CEL_RETRIES_UNLIMITED;
    ASSERT_EQ(cel__retry_limit(&def, &m), -1);
    def.max_retries = CEL_RETRIES_NONE;
    ASSERT_EQ(cel__retry_limit(&def, &m), 0);
    def.max_retries = 7;
    ASSERT_EQ(cel__retry_limit(&def, &m), 7);
    cel__message_release(&m);

    /* the call's header wins */
    char *env = with_header(PY_ENVELOPE, "celeriac_max_retries", "1");
    parse(env, &m);
    ASSERT_EQ(cel__retry_limit(&def, &m), 1);
    cel__message_release(&m);
    free(env);
    env = with_header(PY_ENVELOPE, "celeriac_max_retries", "-1");
    parse(env, &m);
    ASSERT_EQ(cel__retry_limit(&def, &m), -1);
    cel__message_release(&m);
    free(env);
}

static void test_delay(void)
{
    struct cel_message m;
    parse(PY_ENVELOPE, &m); /* retries 1 */
    cel_task_def def = CEL_TASK_DEF_INIT(.name = "t.retry");
    ASSERT(cel__retry_delay(NULL, &m, 0.5) == 180);
    ASSERT(cel__retry_delay(&def, &m, 0.5) == 180);
    def.default_retry_delay = 7;
    ASSERT(cel__retry_delay(&def, &m, 0.5) == 7);

    /* backoff 2 s at retries 1: 4 s, fully jittered */
    def.retry_backoff = 2;
    ASSERT(cel__retry_delay(&def, &m, 0.0) == 0);
    ASSERT(cel__retry_delay(&def, &m, 0.25) == 1);
    ASSERT(fabs(cel__retry_delay(&def, &m, 0.999999) - 4) < 1e-4);
    def.retry_jitter = CEL_TRI_OFF;
    ASSERT(cel__retry_delay(&def, &m, 0.25) == 4);
    /* capped: 600 by default, else the definition's */
    m.retries = 20;
    ASSERT(cel__retry_delay(&def, &m, 0.25) == 600);
    m.retries = 100000; /* 2^100000 is inf: still the cap */
    def.retry_backoff_max = 30;
    ASSERT(cel__retry_delay(&def, &m, 0.25) == 30);
    cel__message_release(&m);

    /* a call's backoff base, jitter as the definition says */
    char *env = with_header(PY_ENVELOPE, "celeriac_retry_backoff", "0.5");
    parse(env, &m);
    def.retry_backoff = 0;
    ASSERT(cel__retry_delay(&def, &m, 0.9) == 1); /* 0.5 * 2^1 */
    cel__message_release(&m);
    free(env);
}

/* ---- whole runs, with a fake parent ------------------------------------ */

struct fake_parent {
    int publishes, states, fail_publish;
    char queue[64], task_id[64], body[8192], state[32], meta[2048];
    int priority;
    int64_t due_us;
};

static int fake_state(void *ud, const char *state, const char *meta, size_t len)
{
    struct fake_parent *p = ud;
    p->states++;
    snprintf(p->state, sizeof p->state, "%s", state);
    snprintf(p->meta, sizeof p->meta, "%.*s", (int)len, meta);
    return 0;
}

static int fake_publish(void *ud, const struct cel_frame_publish *pub)
{
    struct fake_parent *p = ud;
    if (p->fail_publish)
        return -1;
    p->publishes++;
    snprintf(p->queue, sizeof p->queue, "%s", pub->queue);
    snprintf(p->task_id, sizeof p->task_id, "%s", pub->task_id);
    snprintf(p->body, sizeof p->body, "%.*s", (int)pub->len, pub->body);
    p->priority = pub->priority;
    p->due_us = pub->due_us;
    return 0;
}

/* t.retry(countdown): retries with KeyError('again') */
static int retry_task(cel_task *t, void *ud)
{
    (void)ud;
    double countdown = -1;
    if (cel_task_argc(t) > 0 && cel_task_arg_double(t, 0, &countdown) != CEL_OK)
        return cel_task_fail_args(t);
    return cel_task_retry(t, countdown, "KeyError", NULL, "again");
}

static int io_error(cel_task *t, void *ud)
{
    (void)ud;
    return cel_task_fail(t, "IOError", NULL, "disk on fire");
}

static int progress(cel_task *t, void *ud)
{
    (void)ud;
    ASSERT_EQ(cel_task_update_state(t, "SUCCESS", "1"), CEL_EINVAL);
    ASSERT_EQ(cel_task_update_state(t, "FAILURE", "1"), CEL_EINVAL);
    ASSERT_EQ(cel_task_update_state(t, "REVOKED", "1"), CEL_EINVAL);
    ASSERT_EQ(cel_task_update_state(t, "", "1"), CEL_EINVAL);
    ASSERT_EQ(cel_task_update_state(t, "PROGRESS", "{bad"), CEL_EJSON);
    ASSERT_OK(cel_task_update_state(t, "PROGRESS", "{\"current\": 1, \"total\": 2}"));
    return cel_task_return_int(t, 2);
}

/* Polls the soft limit; fails once it has passed (argument: fail or not). */
static int soft(cel_task *t, void *ud)
{
    (void)ud;
    bool fail = true;
    if (cel_task_argc(t) > 0)
        cel_task_arg_bool(t, 0, &fail);
    ASSERT(!cel_task_soft_limit_reached(t));
    int64_t deadline = cel__mono_ms() + 5000;
    while (!cel_task_soft_limit_reached(t) && cel__mono_ms() < deadline)
        ;
    ASSERT(cel_task_soft_limit_reached(t));
    if (fail)
        return cel_task_fail(t, "RuntimeError", NULL, "cleaned up and stopped");
    return cel_task_return_string(t, "stopped early");
}

static const char *const AUTORETRY[] = {"IOError", NULL};

static cel_registry *registry(void)
{
    cel_registry *reg = cel_registry_new();
    const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "t.retry", .fn = retry_task),
        CEL_TASK_DEF_INIT(.name = "t.flaky", .fn = io_error, .autoretry_for = AUTORETRY,
                          .retry_backoff = 1, .retry_jitter = CEL_TRI_OFF),
        CEL_TASK_DEF_INIT(.name = "t.ioerror", .fn = io_error),
        CEL_TASK_DEF_INIT(.name = "t.progress", .fn = progress),
        CEL_TASK_DEF_INIT(.name = "t.soft", .fn = soft, .soft_time_limit = 0.05),
    };
    ASSERT_OK(cel_registry_add_many(reg, defs, sizeof defs / sizeof defs[0]));
    return reg;
}

static char *build(const char *task, const char *args, int retries)
{
    struct cel_task_spec spec = {
        .task = task, .id = "id-1", .args_json = args, .queue = "jobs", .priority = 4};
    spec.retries = retries;
    spec.parent_id = "p-1";
    char *out = NULL, err[128];
    size_t len;
    ASSERT_OK(cel__message_build(&spec, &out, &len, NULL, err, sizeof err));
    return out;
}

static void run(const cel_registry *reg, struct fake_parent *p, const char *env,
                struct cel_execution *ex)
{
    const struct cel_exec_env e = {.reg = reg, .hostname = "w@test"};
    const struct cel_exec_io io = {.ud = p, .state = fake_state, .publish = fake_publish};
    cel__execute(&e, p ? &io : NULL, env, strlen(env), ex);
}

/* Runs task(args) as delivery `retries` and checks the state it ends in
 * and how many retry messages it published (p NULL: no parent, none).
 * Returns the meta document it stores (caller frees). */
static char *expect(const cel_registry *reg, struct fake_parent *p, const char *task,
                    const char *args, int retries, cel_state state, int publishes)
{
    if (p)
        p->publishes = p->states = 0;
    char *env = build(task, args, retries);
    struct cel_execution ex;
    run(reg, p, env, &ex);
    free(env);
    ASSERT_EQ(ex.outcome, CEL_OUTCOME_RESULT);
    ASSERT_STREQ(cel_state_name(ex.state), cel_state_name(state));
    ASSERT_EQ(p ? p->publishes : 0, publishes);
    ASSERT(ex.meta);
    char *meta = strdup(ex.meta);
    cel__execution_release(&ex);
    return meta;
}

static void test_run_retries(void)
{
    cel_registry *reg = registry();
    struct fake_parent p = {0};
    int64_t before = cel__wall_us();
    char *text = expect(reg, &p, "t.retry", "[5]", 0, CEL_STATE_RETRY, 1);
    ASSERT_STREQ(p.queue, "jobs");
    ASSERT_STREQ(p.task_id, "id-1");
    ASSERT_EQ(p.priority, 4);
    ASSERT(p.due_us >= before + 5000000 && p.due_us <= cel__wall_us() + 5000000);
    struct cel_message m;
    parse(p.body, &m);
    ASSERT_EQ(m.retries, 1);
    ASSERT_STREQ(m.id, "id-1");
    ASSERT(llabs(m.eta_us - p.due_us) <= 1);
    cel__message_release(&m);

    /* Celery's RETRY meta: the error, a traceback ending in Retry, the
     * retry as a child, no date_done */
    json_t *meta = load(text);
    ASSERT_STREQ(json_string_value(json_object_get(meta, "status")), "RETRY");
    json_t *want = load("{\"exc_type\": \"KeyError\", \"exc_message\": [\"again\"], "
                        "\"exc_module\": \"builtins\"}");
    ASSERT(json_equal(json_object_get(meta, "result"), want));
    ASSERT_CONTAINS(json_string_value(json_object_get(meta, "traceback")),
                    "celery.exceptions.Retry: Retry in 5s: KeyError('again')\n");
    json_t *children = load("[[[\"id-1\", null], null]]");
    ASSERT(json_equal(json_object_get(meta, "children"), children));
    ASSERT(json_is_null(json_object_get(meta, "date_done")));
    ASSERT_EQ(json_integer_value(json_object_get(meta, "retries")), 0);
    ASSERT_STREQ(json_string_value(json_object_get(meta, "parent_id")), "p-1");
    ASSERT_CONTAINS(text, "\"task_id\": \"id-1\"}"); /* still last */
    json_decref(want);
    json_decref(children);
    json_decref(meta);
    free(text);

    /* the last allowed retry (Celery's default limit 3: retries 0..2) */
    free(expect(reg, &p, "t.retry", "[0]", 2, CEL_STATE_RETRY, 1));

    /* then MaxRetriesExceededError, nothing published */
    text = expect(reg, &p, "t.retry", "[0]", 3, CEL_STATE_FAILURE, 0);
    meta = load(text);
    json_t *res = json_object_get(meta, "result");
    ASSERT_STREQ(json_string_value(json_object_get(res, "exc_type")), "MaxRetriesExceededError");
    ASSERT_STREQ(json_string_value(json_object_get(res, "exc_module")), "celery.exceptions");
    const char *msg = json_string_value(json_array_get(json_object_get(res, "exc_message"), 0));
    ASSERT_CONTAINS(msg, "Can't retry t.retry[id-1] args:(0,) kwargs:{}");
    ASSERT_CONTAINS(msg, "KeyError: again");
    ASSERT_EQ(json_integer_value(json_object_get(meta, "retries")), 3);
    ASSERT_CONTAINS(json_string_value(json_object_get(meta, "traceback")),
                    "MaxRetriesExceededError: Can't retry");
    json_decref(meta);
    free(text);
    cel_registry_free(reg);
}

/* No way to publish, or the parent refuses: the task fails saying why. */
static void test_retry_cannot_publish(void)
{
    cel_registry *reg = registry();
    char *text = expect(reg, NULL, "t.retry", "[1]", 0, CEL_STATE_FAILURE, 0);
    ASSERT_CONTAINS(text, "RuntimeError");
    ASSERT_CONTAINS(text, "cannot retry t.retry[id-1]: this worker cannot publish");
    ASSERT_CONTAINS(text, "KeyError: again");
    free(text);

    struct fake_parent p = {.fail_publish = 1};
    text = expect(reg, &p, "t.retry", "[1]", 0, CEL_STATE_FAILURE, 0);
    ASSERT_CONTAINS(text, "did not take the retry message");
    free(text);
    cel_registry_free(reg);
}

static void test_autoretry(void)
{
    cel_registry *reg = registry();
    struct fake_parent p = {0};
    int64_t before = cel__wall_us();
    /* backoff 1 s * 2^2, no jitter */
    char *text = expect(reg, &p, "t.flaky", "[]", 2, CEL_STATE_RETRY, 1);
    ASSERT(p.due_us >= before + 4000000 && p.due_us <= cel__wall_us() + 4000000);
    ASSERT_CONTAINS(text, "\"exc_type\": \"IOError\"");
    ASSERT_CONTAINS(text, "disk on fire");
    free(text);

    text = expect(reg, &p, "t.flaky", "[]", 3, CEL_STATE_FAILURE, 0);
    ASSERT_CONTAINS(text, "MaxRetriesExceededError");
    ASSERT_CONTAINS(text, "IOError: disk on fire");
    free(text);

    /* the same error, not listed: a plain failure */
    text = expect(reg, &p, "t.ioerror", "[]", 0, CEL_STATE_FAILURE, 0);
    ASSERT_CONTAINS(text, "\"exc_type\": \"IOError\"");
    ASSERT(!strstr(text, "\"retries\"")); /* none on a first run */
    free(text);
    cel_registry_free(reg);
}

static void test_update_state(void)
{
    cel_registry *reg = registry();
    struct fake_parent p = {0};
    free(expect(reg, &p, "t.progress", "[]", 0, CEL_STATE_SUCCESS, 0));
    ASSERT_EQ(p.states, 1);
    ASSERT_STREQ(p.state, "PROGRESS");
    json_t *meta = load(p.meta);
    ASSERT_STREQ(json_string_value(json_object_get(meta, "status")), "PROGRESS");
    json_t *want = load("{\"current\": 1, \"total\": 2}");
    ASSERT(json_equal(json_object_get(meta, "result"), want));
    ASSERT_STREQ(json_string_value(json_object_get(meta, "task_id")), "id-1");
    ASSERT(json_is_null(json_object_get(meta, "date_done")));
    json_decref(want);
    json_decref(meta);

    /* no parent to tell (solo today): dropped, not an error */
    free(expect(reg, NULL, "t.progress", "[]", 0, CEL_STATE_SUCCESS, 0));
    cel_registry_free(reg);
}

static void test_soft_limit(void)
{
    cel_registry *reg = registry();
    char *text = expect(reg, NULL, "t.soft", "[true]", 0, CEL_STATE_FAILURE, 0);
    ASSERT_CONTAINS(text, "\"exc_type\": \"SoftTimeLimitExceeded\"");
    ASSERT_CONTAINS(text, "\"exc_module\": \"billiard.exceptions\"");
    ASSERT_CONTAINS(text, "cleaned up and stopped");
    free(text);

    /* a task that stops and returns a result has succeeded */
    text = expect(reg, NULL, "t.soft", "[false]", 0, CEL_STATE_SUCCESS, 0);
    ASSERT_CONTAINS(text, "stopped early");
    free(text);
    cel_registry_free(reg);
}

int main(void)
{
    TEST_RUN(test_envelope_keeps_everything);
    TEST_RUN(test_limit);
    TEST_RUN(test_delay);
    TEST_RUN(test_run_retries);
    TEST_RUN(test_retry_cannot_publish);
    TEST_RUN(test_autoretry);
    TEST_RUN(test_update_state);
    TEST_RUN(test_soft_limit);
    return 0;
}
