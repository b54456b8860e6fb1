/*
 * test_canvas_client.c - the workflow API (celeriac/canvas.h) without a
 * worker: signatures as Celery's dicts, the builders' ownership rule,
 * JSON round trips, and group results and children read from metas a
 * second handle stores on the memory transport.
 */
#include <celeriac.h>

#include "backend/backend.h"
#include "client/client_internal.h"
#include "testing.h"

#define URL "memory://test_canvas_client"

/* The signature's JSON; the test owns nothing afterwards. */
static char *json_of(const cel_sig *s)
{
    char *t = cel_sig_to_json(s);
    ASSERT(t);
    return t;
}

static void assert_json(const cel_sig *s, const char *want)
{
    char *t = json_of(s);
    ASSERT_STREQ(t, want);
    cel_free(t);
}

static void test_sig_is_celerys_dict(void)
{
    cel_sig *s = cel_sig_new("tasks.add", "[2, 3]", NULL);
    ASSERT(s);
    /* Python's dict(add.s(2, 3)), key order included. */
    assert_json(s, "{\"task\": \"tasks.add\", \"args\": [2, 3], \"kwargs\": {}, \"options\": {}, "
                   "\"subtask_type\": null, \"immutable\": false}");
    ASSERT_STREQ(cel_sig_task(s), "tasks.add");
    ASSERT(cel_sig_task_id(s) == NULL);
    cel_sig_free(s);
}

static void test_sig_rejects_bad_input(void)
{
    ASSERT(cel_sig_new("", NULL, NULL) == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "task name is empty");
    ASSERT(cel_sig_new("t", "{\"a\": 1}", NULL) == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "args must be a JSON array");
    ASSERT(cel_sig_new("t", NULL, "[1") == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "kwargs is not JSON");
}

static void test_options(void)
{
    cel_sig *s = cel_sig_new("tasks.add", "[1]", "{\"y\": 2}");
    ASSERT_OK(cel_sig_set_queue(s, "math"));
    ASSERT_OK(cel_sig_set_countdown(s, 1.5));
    ASSERT_OK(cel_sig_set_priority(s, 7));
    ASSERT_OK(cel_sig_set_task_id(s, "my-id"));
    ASSERT_OK(cel_sig_set_immutable(s, true));
    ASSERT_OK(cel_sig_set_option(s, "expires", "60"));
    ASSERT_STREQ(cel_sig_task_id(s), "my-id");
    assert_json(s, "{\"task\": \"tasks.add\", \"args\": [1], \"kwargs\": {\"y\": 2}, \"options\": "
                   "{\"queue\": \"math\", \"countdown\": 1.5, \"priority\": 7, \"task_id\": "
                   "\"my-id\", \"expires\": 60}, \"subtask_type\": null, \"immutable\": true}");

    ASSERT_EQ(cel_sig_set_priority(s, 10), CEL_EINVAL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "out of range");
    ASSERT_EQ(cel_sig_set_eta(s, 2e9), CEL_EINVAL); /* countdown is set */
    ASSERT_CONTAINS(cel_sig_errmsg(), "not both");
    ASSERT_EQ(cel_sig_set_countdown(s, -1), CEL_EINVAL);
    ASSERT_EQ(cel_sig_set_option(s, "expires", "{"), CEL_EJSON);

    /* Removing: countdown 0, priority -1, NULL task id, NULL option. */
    ASSERT_OK(cel_sig_set_countdown(s, 0));
    ASSERT_OK(cel_sig_set_priority(s, -1));
    ASSERT_OK(cel_sig_set_task_id(s, NULL));
    ASSERT_OK(cel_sig_set_option(s, "expires", NULL));
    ASSERT_OK(cel_sig_set_queue(s, NULL));
    ASSERT_OK(cel_sig_set_eta(s, 1767225600.0)); /* 2026-01-01T00:00:00Z */
    char *t = json_of(s);
    ASSERT_CONTAINS(t, "\"options\": {\"eta\": \"2026-01-01T00:00:00");
    cel_free(t);
    cel_sig_free(s);
}

static void test_links_are_lists_and_taken(void)
{
    cel_sig *s = cel_sig_new("tasks.add", "[2, 2]", NULL);
    ASSERT_OK(cel_sig_link(s, cel_sig_new("tasks.mul", "[3]", NULL)));
    ASSERT_OK(cel_sig_link(s, cel_sig_new("tasks.echo", NULL, NULL)));
    cel_sig *eb = cel_sig_new("tasks.tsum", "[[0]]", NULL);
    ASSERT_OK(cel_sig_set_immutable(eb, true));
    ASSERT_OK(cel_sig_link_error(s, eb));
    char *t = json_of(s);
    ASSERT_CONTAINS(t, "\"options\": {\"link\": [{\"task\": \"tasks.mul\", \"args\": [3]");
    ASSERT_CONTAINS(t, "{\"task\": \"tasks.echo\"");
    ASSERT_CONTAINS(t, "\"link_error\": [{\"task\": \"tasks.tsum\", \"args\": [[0]], \"kwargs\": "
                       "{}, \"options\": {}, \"subtask_type\": null, \"immutable\": true}]");
    cel_free(t);
    /* A NULL callback fails and a NULL target frees the callback (ASan
     * would report it otherwise). */
    ASSERT_EQ(cel_sig_link(s, NULL), CEL_EINVAL);
    ASSERT_EQ(cel_sig_link(NULL, cel_sig_new("tasks.x", NULL, NULL)), CEL_EINVAL);
    cel_sig_free(s);
}

static void test_chain_group_chord_shapes(void)
{
    cel_sig *steps[] = {cel_sig_new("tasks.add", "[4, 4]", NULL),
                        cel_sig_new("tasks.add", "[5]", NULL)};
    cel_sig *chain = cel_chain(steps, 2);
    ASSERT(chain);
    assert_json(chain, "{\"task\": \"celery.chain\", \"args\": [], \"kwargs\": {\"tasks\": "
                       "[{\"task\": \"tasks.add\", \"args\": [4, 4], \"kwargs\": {}, \"options\": "
                       "{}, \"subtask_type\": null, \"immutable\": false}, {\"task\": "
                       "\"tasks.add\", \"args\": [5], \"kwargs\": {}, \"options\": {}, "
                       "\"subtask_type\": null, \"immutable\": false}]}, \"options\": {}, "
                       "\"subtask_type\": \"chain\", \"immutable\": false}");

    cel_sig *members[] = {cel_sig_new("tasks.add", "[1, 1]", NULL), chain};
    cel_sig *group = cel_group(members, 2);
    ASSERT(group);
    char *t = json_of(group);
    ASSERT_CONTAINS(t, "{\"task\": \"celery.group\", \"args\": [], \"kwargs\": {\"tasks\": "
                       "[{\"task\": \"tasks.add\", \"args\": [1, 1]");
    ASSERT_CONTAINS(t, "\"subtask_type\": \"chain\"");
    ASSERT_CONTAINS(t, "\"subtask_type\": \"group\", \"immutable\": false}");
    cel_free(t);

    cel_sig *chord = cel_chord(group, cel_sig_new("tasks.tsum", NULL, NULL));
    ASSERT(chord);
    t = json_of(chord);
    ASSERT(strncmp(t,
                   "{\"task\": \"celery.chord\", \"args\": [], \"kwargs\": {\"kwargs\": {}, "
                   "\"header\": {\"task\": \"celery.group\"",
                   strlen("{\"task\": \"celery.chord\", \"args\": [], \"kwargs\": {\"kwargs\": "
                          "{}, \"header\": {\"task\": \"celery.group\"")) == 0);
    ASSERT_CONTAINS(t, "\"body\": {\"task\": \"tasks.tsum\", \"args\": []");
    ASSERT_CONTAINS(t, "\"subtask_type\": \"chord\", \"immutable\": false}");
    cel_free(t);
    cel_sig_free(chord);

    /* A header that is not a group becomes a group of one, as in Python. */
    chord = cel_chord(cel_sig_new("tasks.add", "[1, 2]", NULL), cel_sig_new("tasks.tsum", 0, 0));
    t = json_of(chord);
    ASSERT_CONTAINS(t, "\"header\": {\"task\": \"celery.group\", \"args\": [], \"kwargs\": "
                       "{\"tasks\": [{\"task\": \"tasks.add\", \"args\": [1, 2]");
    cel_free(t);
    cel_sig_free(chord);
}

/* Builders take their inputs on failure too: nothing may leak here (the
 * ASan build checks), and a constructor's NULL passes straight through. */
static void test_builders_take_on_failure(void)
{
    cel_sig *steps[] = {cel_sig_new("tasks.add", "[1]", NULL), cel_sig_new("t", "{", NULL),
                        cel_sig_new("tasks.add", "[2]", NULL)};
    ASSERT(cel_chain(steps, 3) == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "args is not JSON");
    ASSERT(cel_group(NULL, 0) == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "at least one");
    ASSERT(cel_chord(cel_sig_new("tasks.add", "[1]", NULL), NULL) == NULL);
    /* The reason of the first failure survives the builders around it. */
    ASSERT(cel_chord(cel_sig_new("tasks.add", "[1]", NULL), cel_sig_new("", NULL, NULL)) == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "task name is empty");
}

static void test_map_starmap_chunks(void)
{
    cel_sig *m = cel_map("tasks.double", "[1, 2, 3]");
    assert_json(m, "{\"task\": \"celery.map\", \"args\": [], \"kwargs\": {\"task\": {\"task\": "
                   "\"tasks.double\", \"args\": [], \"kwargs\": {}, \"options\": {}, "
                   "\"subtask_type\": null, \"immutable\": false}, \"it\": [1, 2, 3]}, "
                   "\"options\": {}, \"subtask_type\": null, \"immutable\": true}");
    cel_sig_free(m);
    ASSERT(cel_starmap("tasks.add", "[[1, 2], 3]") == NULL);
    ASSERT_CONTAINS(cel_sig_errmsg(), "item 1 is not an argument array");

    /* 10 pairs in chunks of 3: 4 starmaps over consecutive slices. */
    cel_sig *c =
        cel_chunks("tasks.add", "[[0,0],[1,1],[2,2],[3,3],[4,4],[5,5],[6,6],[7,7],[8,8],[9,9]]", 3);
    ASSERT(c);
    char *t = json_of(c);
    ASSERT_CONTAINS(t, "{\"task\": \"celery.group\"");
    ASSERT_CONTAINS(t, "\"it\": [[0, 0], [1, 1], [2, 2]]}");
    ASSERT_CONTAINS(t, "\"it\": [[6, 6], [7, 7], [8, 8]]}");
    ASSERT_CONTAINS(t, "\"it\": [[9, 9]]}");
    size_t n = 0;
    for (const char *p = t; (p = strstr(p, "celery.starmap")); p++)
        n++;
    ASSERT_EQ(n, 4);
    cel_free(t);
    cel_sig_free(c);
    ASSERT(cel_chunks("tasks.add", "[[1, 1]]", 0) == NULL);
    ASSERT(cel_chunks("tasks.add", "[]", 2) == NULL);
}

static void test_json_round_trip(void)
{
    cel_sig *steps[] = {cel_sig_new("tasks.add", "[4, 4]", NULL),
                        cel_sig_new("tasks.add", "[5]", NULL)};
    ASSERT_OK(cel_sig_link_error(steps[1], cel_sig_new("tasks.on_error", NULL, NULL)));
    cel_sig *members[] = {cel_chain(steps, 2), cel_map("tasks.double", "[1]")};
    cel_sig *wf =
        cel_chord(cel_group(members, 2), cel_sig_new("tasks.tsum", NULL, "{\"\\u00e9\": 1}"));
    ASSERT(wf);
    char *t1 = json_of(wf);
    cel_sig *back = NULL;
    char err[256];
    ASSERT_OK(cel_sig_from_json(t1, &back, err, sizeof err));
    char *t2 = json_of(back);
    ASSERT_STREQ(t2, t1);
    cel_sig *copy = cel_sig_dup(back);
    char *t3 = json_of(copy);
    ASSERT_STREQ(t3, t1);
    cel_free(t1);
    cel_free(t2);
    cel_free(t3);
    cel_sig_free(wf);
    cel_sig_free(back);
    cel_sig_free(copy);
}

/* What a person types, and what Python's dict(sig) gives, both read. */
static void test_from_json_normalises(void)
{
    cel_sig *s = NULL;
    char err[256];
    ASSERT_OK(cel_sig_from_json("{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": ["
                                "{\"task\": \"tasks.add\", \"args\": [4, 4]},"
                                "{\"task\": \"tasks.add\", \"args\": [5], \"options\": "
                                "{\"link\": {\"task\": \"tasks.log\"}}}]}}",
                                &s, err, sizeof err));
    char *t = json_of(s);
    ASSERT_CONTAINS(t, "\"subtask_type\": \"chain\", \"immutable\": false}");
    ASSERT_CONTAINS(t, "{\"task\": \"tasks.add\", \"args\": [4, 4], \"kwargs\": {}, \"options\": "
                       "{}, \"subtask_type\": null, \"immutable\": false}");
    ASSERT_CONTAINS(t, "\"link\": {\"task\": \"tasks.log\", \"args\": [], \"kwargs\": {}");
    cel_free(t);
    cel_sig_free(s);

    /* Python 5.2's dict(chord(...)) carries keys we keep as they are. */
    ASSERT_OK(cel_sig_from_json("{\"task\": \"celery.chord\", \"args\": [], \"kwargs\": "
                                "{\"kwargs\": {}, \"header\": {\"task\": \"celery.group\", "
                                "\"args\": [], \"kwargs\": {\"tasks\": [{\"task\": \"a\"}]}, "
                                "\"options\": {}, \"subtask_type\": \"group\", \"immutable\": "
                                "false}, \"body\": {\"task\": \"b\"}}, \"options\": {}, "
                                "\"subtask_type\": \"chord\", \"immutable\": false, "
                                "\"chord_size\": null}",
                                &s, err, sizeof err));
    t = json_of(s);
    ASSERT_CONTAINS(t, "\"immutable\": false, \"chord_size\": null}");
    cel_free(t);
    cel_sig_free(s);

    struct {
        const char *json, *why;
        int rc;
    } bad[] = {
        {"[1]", "signature: a signature must be a JSON object", CEL_EINVAL},
        {"{\"args\": []}", "signature: 'task' must be a non-empty string", CEL_EINVAL},
        {"{\"task\": \"a\", \"args\": {}}", "signature.args: must be a JSON array", CEL_EINVAL},
        {"{\"task\": \"celery.group\", \"kwargs\": {\"tasks\": [{\"task\": \"a\"}, {}]}}",
         "signature.kwargs.tasks[1]: 'task' must be a non-empty string", CEL_EINVAL},
        {"{\"task\": \"celery.chord\", \"kwargs\": {\"header\": {\"task\": \"a\"}}}",
         "a chord needs a 'header' and a 'body'", CEL_EINVAL},
        {"{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": []}}", "non-empty 'tasks'",
         CEL_EINVAL},
        {"{\"task\": \"a\", \"immutable\": 1}", "'immutable' must be true or false", CEL_EINVAL},
        {"{\"task\": ", "not JSON", CEL_EJSON},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = (cel_sig *)1;
        ASSERT_EQ(cel_sig_from_json(bad[i].json, &s, err, sizeof err), bad[i].rc);
        ASSERT(s == NULL);
        ASSERT_CONTAINS(err, bad[i].why);
    }
}

/* --- group results and children, on the memory transport ----------- */

static struct cel_backend *store_side(void)
{
    struct cel_backend *bk = NULL;
    struct cel_errbuf err = {{0}};
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel__backend_open(URL, cfg, &bk, &err));
    cel_config_free(cfg);
    return bk;
}

static void store(struct cel_backend *bk, const char *id, const char *meta)
{
    cel_state st = strstr(meta, "FAILURE") ? CEL_STATE_FAILURE : CEL_STATE_SUCCESS;
    ASSERT_OK(bk->ops->store(bk, id, st, meta, strlen(meta), 0));
}

static cel_client *connected(void)
{
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "broker_url", URL, "test"));
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg);
    ASSERT(c);
    ASSERT_OK(cel_client_connect(c));
    return c;
}

static void test_group_result_wait(void)
{
    cel_client *c = connected();
    struct cel_backend *bk = store_side();
    const char *ids[] = {"m0", "m1", "m2"};
    cel_result *g = cel__result_new_group(c, "g1", ids, 3);
    ASSERT(g);
    ASSERT_STREQ(cel_result_id(g), "g1");
    ASSERT_EQ(cel_result_member_count(g), 3);
    ASSERT_STREQ(cel_result_member_id(g, 2), "m2");
    ASSERT(cel_result_member_id(g, 3) == NULL);

    /* Members finish out of order; the value keeps member order. */
    store(bk, "m2", "{\"status\": \"SUCCESS\", \"result\": 30, \"task_id\": \"m2\"}");
    ASSERT_OK(cel_result_refresh(g));
    ASSERT_EQ(cel_result_state(g), CEL_STATE_PENDING);
    ASSERT_EQ(cel_result_wait(g, 50), CEL_ETIMEDOUT);
    ASSERT_CONTAINS(cel_client_errmsg(c), "member 1 of 3 (task 'm0'");
    store(bk, "m0", "{\"status\": \"SUCCESS\", \"result\": [1], \"task_id\": \"m0\"}");
    store(bk, "m1", "{\"status\": \"SUCCESS\", \"result\": \"b\", \"task_id\": \"m1\"}");
    ASSERT_OK(cel_result_wait(g, 1000));
    ASSERT_EQ(cel_result_state(g), CEL_STATE_SUCCESS);
    ASSERT_STREQ(cel_result_value_json(g), "[[1], \"b\", 30]");
    ASSERT(cel_result_meta_json(g) == NULL);
    ASSERT_OK(cel_result_refresh(g));
    ASSERT_STREQ(cel_result_value_json(g), "[[1], \"b\", 30]");

    /* Forgetting a group forgets its members. */
    ASSERT_OK(cel_result_forget(g));
    char *meta = NULL;
    ASSERT_EQ(bk->ops->get(bk, "m1", &meta), CEL_ENOTFOUND);
    free(meta);
    cel_result_free(g);
    cel__backend_close(bk);
    cel_client_free(c);
}

static void test_group_result_failing_member(void)
{
    cel_client *c = connected();
    struct cel_backend *bk = store_side();
    const char *ids[] = {"f0", "f1", "f2"};
    cel_result *g = cel__result_new_group(c, "g2", ids, 3);
    store(bk, "f0", "{\"status\": \"SUCCESS\", \"result\": 1, \"task_id\": \"f0\"}");
    store(bk, "f1",
          "{\"status\": \"FAILURE\", \"result\": {\"exc_type\": \"ValueError\", \"exc_message\": "
          "[\"boom\"], \"exc_module\": \"builtins\"}, \"traceback\": \"tb\", \"task_id\": \"f1\"}");
    /* f2 never finishes: the failure ends the wait without it. */
    ASSERT_OK(cel_result_wait(g, 5000));
    ASSERT_EQ(cel_result_state(g), CEL_STATE_FAILURE);
    ASSERT_STREQ(cel_result_exc_type(g), "ValueError");
    ASSERT_STREQ(cel_result_exc_message(g), "boom");
    ASSERT_STREQ(cel_result_traceback(g), "tb");
    ASSERT_STREQ(cel_result_id(g), "g2");
    ASSERT_OK(cel_result_refresh(g));
    ASSERT_EQ(cel_result_state(g), CEL_STATE_FAILURE);
    cel_result_free(g);
    cel__backend_close(bk);
    cel_client_free(c);
}

static void test_children(void)
{
    cel_client *c = connected();
    struct cel_backend *bk = store_side();
    store(bk, "p",
          "{\"status\": \"SUCCESS\", \"result\": 2, \"children\": [[[\"c1\", null], null], "
          "[[\"grp\", null], [[[\"x\", null], null], [[\"y\", null], null]]]], \"task_id\": "
          "\"p\"}");
    cel_result *r = NULL;
    ASSERT_OK(cel_client_result(c, "p", &r));
    ASSERT_EQ(cel_result_child_count(r), 0); /* not read yet */
    ASSERT_OK(cel_result_refresh(r));
    ASSERT_EQ(cel_result_child_count(r), 2);
    cel_result *k = NULL;
    ASSERT_OK(cel_result_child(r, 0, &k));
    ASSERT_STREQ(cel_result_id(k), "c1");
    ASSERT_EQ(cel_result_member_count(k), 0);
    cel_result_free(k);
    ASSERT_OK(cel_result_child(r, 1, &k));
    ASSERT_STREQ(cel_result_id(k), "grp");
    ASSERT_EQ(cel_result_member_count(k), 2);
    ASSERT_STREQ(cel_result_member_id(k, 1), "y");
    cel_result_free(k);
    ASSERT_EQ(cel_result_child(r, 2, &k), CEL_EINVAL);
    ASSERT(k == NULL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "has no child 2");
    cel_result_free(r);
    cel__backend_close(bk);
    cel_client_free(c);
}

static void test_apply_needs_connection(void)
{
    cel_client *c = cel_client_new(NULL);
    cel_sig *s = cel_sig_new("tasks.add", "[1, 2]", NULL);
    cel_result *r = (cel_result *)1;
    ASSERT_EQ(cel_client_apply(c, s, &r), CEL_ESTATE);
    ASSERT(r == NULL);
    ASSERT_EQ(cel_client_apply(c, NULL, NULL), CEL_EINVAL);
    cel_sig_free(s);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_sig_is_celerys_dict);
    TEST_RUN(test_sig_rejects_bad_input);
    TEST_RUN(test_options);
    TEST_RUN(test_links_are_lists_and_taken);
    TEST_RUN(test_chain_group_chord_shapes);
    TEST_RUN(test_builders_take_on_failure);
    TEST_RUN(test_map_starmap_chunks);
    TEST_RUN(test_json_round_trip);
    TEST_RUN(test_from_json_normalises);
    TEST_RUN(test_group_result_wait);
    TEST_RUN(test_group_result_failing_member);
    TEST_RUN(test_children);
    TEST_RUN(test_apply_needs_connection);
    return 0;
}
