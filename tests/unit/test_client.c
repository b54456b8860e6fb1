/*
 * test_client.c - the client API (celeriac/client.h) on the memory
 * transport: what a send puts on the broker, how stored results read
 * back, batching, purge and the error messages.
 *
 * A second handle on the same memory:// store plays the worker: it
 * fetches the envelopes and stores meta documents directly.
 */
#include <celeriac.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "proto/message.h"
#include "testing.h"

#define URL "memory://test_client"

struct side {
    struct cel_broker *broker;
    struct cel_backend *backend;
};

static cel_client *client_on(const char *url)
{
    cel_config *cfg = cel_config_new();
    ASSERT(cfg);
    ASSERT_OK(cel_config_set(cfg, "broker_url", url, "test"));
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg); /* the client keeps its own copy */
    ASSERT(c);
    return c;
}

static struct side open_side(void)
{
    struct side s = {0};
    struct cel_errbuf err = {{0}};
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel__broker_open(URL, cfg, &s.broker, &err));
    ASSERT_OK(cel__backend_open(URL, cfg, &s.backend, &err));
    cel_config_free(cfg);
    return s;
}

static void close_side(struct side *s)
{
    cel__broker_close(s->broker);
    cel__backend_close(s->backend);
}

/* Fetches one ready message from `queue` and parses it. */
static bool take(struct side *s, const char *queue, struct cel_message *m)
{
    struct cel_delivery d = {0};
    size_t n = 0;
    const char *qs[] = {queue};
    ASSERT_OK(s->broker->ops->fetch(s->broker, qs, 1, 1, 60000, &d, &n, NULL));
    if (n == 0)
        return false;
    char err[128];
    ASSERT_OK(cel__message_parse(d.body, d.len, NULL, m, err, sizeof err));
    ASSERT_OK(s->broker->ops->ack(s->broker, &d));
    cel__delivery_release(&d);
    return true;
}

static void store(struct side *s, const char *id, const char *meta)
{
    json_error_t jerr;
    json_t *doc = json_loads(meta, 0, &jerr);
    ASSERT(doc);
    cel_state st = cel_state_parse(json_string_value(json_object_get(doc, "status")));
    json_decref(doc);
    ASSERT_OK(s->backend->ops->store(s->backend, id, st, meta, strlen(meta), 0));
}

static void test_send_builds_celery_message(void)
{
    struct side s = open_side();
    cel_client *c = client_on(URL);
    ASSERT_OK(cel_client_connect(c));
    ASSERT_STREQ(cel_client_errmsg(c), "");

    cel_result *r = NULL;
    ASSERT_OK(cel_client_send(c, "tasks.add", "[2, 3]", "{\"z\": 1}", NULL, &r));
    ASSERT(r);
    ASSERT_EQ(strlen(cel_result_id(r)), 36);

    struct cel_message m = {0};
    ASSERT(take(&s, "celery", &m));
    ASSERT_STREQ(m.task, "tasks.add");
    ASSERT_STREQ(m.id, cel_result_id(r));
    ASSERT_STREQ(m.routing_key, "celery");
    ASSERT_EQ(json_integer_value(json_array_get(m.args, 1)), 3);
    ASSERT_EQ(json_integer_value(json_object_get(m.kwargs, "z")), 1);
    ASSERT_EQ(m.eta_us, 0);
    ASSERT(!m.ignore_result);
    cel__message_release(&m);
    cel_result_free(r);

    /* Options: queue, id, priority, ignore_result, countdown. */
    cel_send_options o = CEL_SEND_OPTIONS_INIT();
    o.queue = "low";
    o.task_id = "fixed-id";
    o.priority = 7;
    o.has_priority = true;
    o.ignore_result = true;
    ASSERT_OK(cel_client_send(c, "tasks.noop", NULL, NULL, &o, &r));
    ASSERT_STREQ(cel_result_id(r), "fixed-id");
    cel_result_free(r);
    ASSERT(!take(&s, "celery", &m));
    ASSERT(take(&s, "low", &m));
    ASSERT_STREQ(m.id, "fixed-id");
    ASSERT_EQ(m.priority, 7);
    ASSERT(m.ignore_result);
    ASSERT_EQ(json_array_size(m.args), 0);
    cel__message_release(&m);

    cel_send_options later = CEL_SEND_OPTIONS_INIT(.countdown = 30);
    ASSERT_OK(cel_client_send(c, "tasks.noop", NULL, NULL, &later, NULL));
    ASSERT(!take(&s, "celery", &m)); /* held back on the broker side */
    size_t len = 0;
    ASSERT_OK(s.broker->ops->length(s.broker, "celery", &len));
    ASSERT_EQ(len, 1);

    /* The default queue comes from the configuration. */
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "broker_url", URL, NULL));
    ASSERT_OK(cel_config_set(cfg, "task_default_queue", "jobs", NULL));
    cel_client *c2 = cel_client_new(cfg);
    cel_config_free(cfg);
    ASSERT_OK(cel_client_connect(c2));
    ASSERT_OK(cel_client_send(c2, "tasks.noop", NULL, NULL, NULL, NULL));
    ASSERT(take(&s, "jobs", &m));
    cel__message_release(&m);
    cel_client_free(c2);

    size_t removed = 99;
    ASSERT_OK(cel_client_purge(c, NULL, &removed));
    ASSERT_EQ(removed, 1); /* the delayed one */
    ASSERT_OK(cel_client_purge(c, "nothing-here", &removed));
    ASSERT_EQ(removed, 0);
    cel_client_free(c);
    close_side(&s);
}

/* The memory store takes a meta with a NUL in a string (Python's
 * json.dumps writes "\u0000"), and the waiting client gets it back. */
static void test_result_with_nul(void)
{
    struct side s = open_side();
    cel_client *c = client_on(URL);
    ASSERT_OK(cel_client_connect(c));
    const char *meta = "{\"status\": \"SUCCESS\", \"result\": \"a\\u0000b\", \"traceback\": "
                       "null, \"children\": [], \"date_done\": null, \"task_id\": \"nul-1\"}";
    ASSERT_OK(s.backend->ops->store(s.backend, "nul-1", CEL_STATE_SUCCESS, meta, strlen(meta), 0));
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, "nul-1", &r));
    ASSERT_OK(cel_result_wait(r, 5000));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_SUCCESS);
    ASSERT_STREQ(cel_result_value_json(r), "\"a\\u0000b\"");
    cel_result_free(r);

    /* Not a meta document at all: still refused. */
    ASSERT_EQ(s.backend->ops->store(s.backend, "nul-2", CEL_STATE_SUCCESS, "5", 1, 0), CEL_EINVAL);
    ASSERT_EQ(s.backend->ops->store(s.backend, "nul-2", CEL_STATE_SUCCESS, "{", 1, 0), CEL_EINVAL);
    cel_client_free(c);
    close_side(&s);
}

static void test_send_errors(void)
{
    cel_client *c = client_on(URL);
    /* Not connected yet. */
    ASSERT_EQ(cel_client_send(c, "tasks.add", NULL, NULL, NULL, NULL), CEL_ESTATE);
    ASSERT_CONTAINS(cel_client_errmsg(c), "not connected");
    ASSERT_OK(cel_client_connect(c));
    ASSERT_OK(cel_client_connect(c)); /* idempotent */

    cel_result *r = (cel_result *)&r;
    ASSERT_EQ(cel_client_send(c, "tasks.add", "[1,", NULL, NULL, &r), CEL_EJSON);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "tasks.add");
    ASSERT(cel_client_send(c, "tasks.add", "{\"a\": 1}", NULL, NULL, NULL) < 0);
    ASSERT(cel_client_send(c, "tasks.add", NULL, "[1]", NULL, NULL) < 0);
    ASSERT_EQ(cel_client_send(c, "", NULL, NULL, NULL, NULL), CEL_EINVAL);
    cel_send_options o = CEL_SEND_OPTIONS_INIT();
    o.priority = 12;
    o.has_priority = true;
    ASSERT_EQ(cel_client_send(c, "tasks.add", NULL, NULL, &o, NULL), CEL_EINVAL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "priority");
    o.has_priority = false;
    o.countdown = -1;
    ASSERT_EQ(cel_client_send(c, "tasks.add", NULL, NULL, &o, NULL), CEL_EINVAL);

    /* A good call clears the message. */
    ASSERT_OK(cel_client_send(c, "tasks.add", "[]", NULL, NULL, NULL));
    ASSERT_STREQ(cel_client_errmsg(c), "");
    ASSERT_OK(cel_client_purge(c, NULL, NULL));

    ASSERT_EQ(cel_client_result(c, "", &r), CEL_EINVAL);
    ASSERT(r == NULL);
    cel_client_free(c);
    cel_client_free(NULL);
    cel_result_free(NULL);
}

static void test_connect_error_names_url(void)
{
    cel_client *c = client_on("sqlite:////nonexistent-celeriac-dir/sub/x.db");
    int rc = cel_client_connect(c);
    ASSERT(rc < 0);
    ASSERT_CONTAINS(cel_client_errmsg(c),
                    "cannot open broker 'sqlite:////nonexistent-celeriac-dir/sub/x.db': ");
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, "some-id", &r));
    ASSERT_EQ(cel_result_refresh(r), CEL_ESTATE);
    cel_result_free(r);
    cel_client_free(c);

    /* A password never shows in a message. */
    c = client_on("redis://:s3cret@127.0.0.1:1/0");
    rc = cel_client_connect(c);
    if (rc != CEL_OK) {
        ASSERT(!strstr(cel_client_errmsg(c), "s3cret"));
        ASSERT_CONTAINS(cel_client_errmsg(c), "cannot open broker 'redis://");
    }
    cel_client_free(c);
}

static void test_results_read_back(void)
{
    struct side s = open_side();
    cel_client *c = client_on(URL);
    ASSERT_OK(cel_client_connect(c));
    cel_result *r = NULL;

    /* Unknown ids are PENDING, as in Celery. */
    ASSERT_OK(cel_client_result(c, "id-1", &r));
    ASSERT_OK(cel_result_refresh(r));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_PENDING);
    ASSERT_STREQ(cel_result_state_name(r), "PENDING");
    ASSERT_STREQ(cel_result_value_json(r), "null");
    ASSERT(cel_result_meta_json(r) == NULL);
    ASSERT(cel_result_exc_type(r) == NULL);
    ASSERT_EQ(cel_result_wait(r, 50), CEL_ETIMEDOUT);
    ASSERT_CONTAINS(cel_client_errmsg(c), "id-1");

    store(&s, "id-1",
          "{\"status\": \"SUCCESS\", \"result\": {\"a\": [1, 2.5, \"x\"]}, \"traceback\": null, "
          "\"children\": [], \"date_done\": \"2026-11-27T18:09:14.392338\", \"task_id\": "
          "\"id-1\"}");
    ASSERT_OK(cel_result_wait(r, 5000));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_SUCCESS);
    ASSERT_STREQ(cel_result_value_json(r), "{\"a\": [1, 2.5, \"x\"]}");
    ASSERT_CONTAINS(cel_result_meta_json(r), "\"date_done\"");
    ASSERT(cel_result_traceback(r) == NULL);
    ASSERT_OK(cel_result_forget(r));
    ASSERT_OK(cel_result_refresh(r));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_PENDING);
    cel_result_free(r);

    /* FAILURE: exception type and message, traceback. */
    ASSERT_OK(cel_client_result(c, "id-2", &r));
    store(&s, "id-2",
          "{\"status\": \"FAILURE\", \"result\": {\"exc_type\": \"ValueError\", \"exc_message\": "
          "[\"boom\"], \"exc_module\": \"builtins\"}, \"traceback\": \"Traceback ...\\nValueError: "
          "boom\\n\", \"children\": [], \"date_done\": null, \"task_id\": \"id-2\"}");
    ASSERT_OK(cel_result_wait(r, 5000));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_FAILURE);
    ASSERT_STREQ(cel_result_exc_type(r), "ValueError");
    ASSERT_STREQ(cel_result_exc_message(r), "boom");
    ASSERT_CONTAINS(cel_result_traceback(r), "ValueError: boom");
    ASSERT_CONTAINS(cel_result_value_json(r), "\"exc_type\": \"ValueError\"");
    cel_result_free(r);

    /* exc_message shapes: several items, non-strings, empty, a plain string. */
    static const struct {
        const char *msg_json, *want;
    } cases[] = {
        {"[\"a\", 2, null]", "a, 2, null"}, {"[42]", "42"}, {"[]", ""}, {"\"plain\"", "plain"},
        {"[\"h\\u00e9\"]", "h\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[16], meta[512];
        snprintf(id, sizeof id, "id-x%zu", i);
        snprintf(meta, sizeof meta,
                 "{\"status\": \"REVOKED\", \"result\": {\"exc_type\": \"TaskRevokedError\", "
                 "\"exc_message\": %s, \"exc_module\": \"celery.exceptions\"}, \"traceback\": "
                 "null, \"children\": [], \"date_done\": null, \"task_id\": \"%s\"}",
                 cases[i].msg_json, id);
        store(&s, id, meta);
        ASSERT_OK(cel_client_result(c, id, &r));
        ASSERT_OK(cel_result_refresh(r));
        ASSERT_EQ(cel_result_state(r), CEL_STATE_REVOKED);
        ASSERT_STREQ(cel_result_exc_type(r), "TaskRevokedError");
        ASSERT_STREQ(cel_result_exc_message(r), cases[i].want);
        cel_result_free(r);
    }

    /* A custom state keeps its name; wait does not end on it. */
    ASSERT_OK(cel_client_result(c, "id-3", &r));
    store(&s, "id-3",
          "{\"status\": \"PROGRESS\", \"result\": {\"done\": 1}, \"traceback\": null, "
          "\"children\": [], \"date_done\": null, \"task_id\": \"id-3\"}");
    ASSERT_EQ(cel_result_wait(r, 100), CEL_ETIMEDOUT);
    ASSERT_EQ(cel_result_state(r), CEL_STATE_CUSTOM);
    ASSERT_STREQ(cel_result_state_name(r), "PROGRESS");
    ASSERT_STREQ(cel_result_value_json(r), "{\"done\": 1}");
    ASSERT(cel_result_exc_type(r) == NULL);
    cel_result_free(r);

    cel_client_free(c);
    close_side(&s);
}

static void test_batch(void)
{
    struct side s = open_side();
    cel_client *c = client_on(URL);
    ASSERT_EQ(cel_client_begin(c), CEL_ESTATE); /* not connected */
    ASSERT_OK(cel_client_connect(c));
    ASSERT_OK(cel_client_flush(c)); /* nothing open: a no-op */
    ASSERT_OK(cel_client_begin(c));
    ASSERT_EQ(cel_client_begin(c), CEL_ESTATE); /* no nesting */
    for (int i = 0; i < 10; i++)
        ASSERT_OK(cel_client_send(c, "tasks.noop", NULL, NULL, NULL, NULL));
    ASSERT_OK(cel_client_flush(c));
    size_t len = 0;
    ASSERT_OK(s.broker->ops->length(s.broker, "celery", &len));
    ASSERT_EQ(len, 10);
    size_t removed = 0;
    ASSERT_OK(cel_client_purge(c, "celery", &removed));
    ASSERT_EQ(removed, 10);
    cel_client_free(c);
    close_side(&s);
}

/* What a caller built against a later header passes: today's options
 * followed by fields this library does not know yet. */
struct send_options_next {
    cel_send_options known;
    double expires;
    const char *link;
};

static void test_send_options_sizes(void)
{
    struct side s = open_side();
    cel_client *c = client_on(URL);
    ASSERT_OK(cel_client_connect(c));
    struct cel_message m;

    /* Options not made with the initialiser (struct_size 0) are refused,
     * and nothing is sent. */
    cel_send_options zeroed = {0};
    zeroed.queue = "sized";
    ASSERT_EQ(cel_client_send(c, "tasks.noop", NULL, NULL, &zeroed, NULL), CEL_EINVAL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "CEL_SEND_OPTIONS_INIT");
    ASSERT(!take(&s, "sized", &m));
    /* Nor is a size below the first published layout. */
    cel_send_options small = CEL_SEND_OPTIONS_INIT(.queue = "sized");
    small.struct_size = offsetof(cel_send_options, countdown);
    ASSERT_EQ(cel_client_send(c, "tasks.noop", NULL, NULL, &small, NULL), CEL_EINVAL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "struct_size");
    ASSERT(!take(&s, "sized", &m));

    /* A later caller whose new fields are zero: accepted, and the fields
     * this library knows are honoured. */
    struct send_options_next next = {
        .known = CEL_SEND_OPTIONS_INIT(.queue = "sized", .task_id = "next-1", .priority = 3,
                                       .has_priority = 1),
    };
    next.known.struct_size = sizeof next;
    ASSERT_OK(cel_client_send(c, "tasks.noop", NULL, NULL, &next.known, NULL));
    ASSERT(take(&s, "sized", &m));
    ASSERT_STREQ(m.id, "next-1");
    ASSERT_EQ(m.priority, 3);
    cel__message_release(&m);

    /* ... and one that sets a field this library cannot honour is refused
     * rather than sent without it. */
    next.link = "chain";
    ASSERT_EQ(cel_client_send(c, "tasks.noop", NULL, NULL, &next.known, NULL), CEL_EINVAL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "does not know");
    ASSERT(!take(&s, "sized", &m));

    cel_client_free(c);
    close_side(&s);
}

int main(void)
{
    TEST_RUN(test_send_builds_celery_message);
    TEST_RUN(test_send_errors);
    TEST_RUN(test_send_options_sizes);
    TEST_RUN(test_connect_error_names_url);
    TEST_RUN(test_results_read_back);
    TEST_RUN(test_result_with_nul);
    TEST_RUN(test_batch);
    return 0;
}
