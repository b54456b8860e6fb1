/*
 * test_canvas.c - workflows become the messages Celery 5.2.6 sends
 * (celery-protocol.md section 7): links, chains, groups, chords, their
 * nesting, and what a finished task hands on.
 */
#include <jansson.h>

#include "celeriac/error.h"
#include "core/json_util.h"
#include "proto/canvas.h"
#include "proto/message.h"
#include "testing.h"

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v)
        cel_test_fail(__FILE__, __LINE__, "bad test JSON: %s: %s", e.text, text);
    return v;
}

static void plan(const char *sig, const char *prepend, const struct cel_canvas_ctx *ctx,
                 struct cel_canvas_plan *p)
{
    json_t *s = J(sig), *pre = prepend ? J(prepend) : NULL;
    char err[256] = "";
    int rc = cel__canvas_plan(s, pre, ctx, p, err, sizeof err);
    if (rc)
        cel_test_fail(__FILE__, __LINE__, "plan failed: %d %s", rc, err);
    json_decref(s);
    json_decref(pre);
}

static void parse(const struct cel_canvas_msg *msg, struct cel_message *m)
{
    char err[256];
    if (cel__message_parse(msg->body, msg->len, NULL, m, err, sizeof err))
        cel_test_fail(__FILE__, __LINE__, "message unreadable: %s", err);
}

static json_t *header(const struct cel_message *m, const char *key)
{
    return json_object_get(json_object_get(m->root, "headers"), key);
}

static char *dump(const json_t *v)
{
    return v ? cel__json_dump(v) : strdup("(none)");
}

#define ASSERT_JSON(v, text)                                                                       \
    do {                                                                                           \
        char *d_ = dump(v);                                                                        \
        ASSERT_STREQ(d_, text);                                                                    \
        free(d_);                                                                                  \
    } while (0)

#define ADD(a) "{\"task\": \"t.add\", \"args\": " a ", \"kwargs\": {}, \"options\": {}}"
#define ADD_ID(a, id)                                                                              \
    "{\"task\": \"t.add\", \"args\": " a ", \"kwargs\": {}, \"options\": {\"task_id\": \"" id "\"" \
    "}}"

static void test_plain_options(void)
{
    struct cel_canvas_plan p;
    plan("{\"task\": \"t.add\", \"args\": [2, 2], \"kwargs\": {\"z\": 1}, \"options\": "
         "{\"task_id\": \"id-1\", \"queue\": \"hi\", \"priority\": 7, \"countdown\": 60, "
         "\"expires\": \"2099-01-01T00:00:00+00:00\", \"link\": " ADD(
             "[3]") ", \"link_error\": "
                    "[{\"task\": \"t.err\", \"args\": [], \"kwargs\": {}, \"options\": {}, "
                    "\"immutable\": "
                    "true}]}, \"subtask_type\": null, \"immutable\": false}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 1);
    ASSERT_EQ(p.nchords, 0);
    ASSERT(!p.is_group);
    ASSERT_STREQ(p.result_id, "id-1");
    ASSERT_STREQ(p.msgs[0].id, "id-1");
    ASSERT_STREQ(p.msgs[0].queue, "hi");
    ASSERT_EQ(p.msgs[0].priority, 7);
    ASSERT(p.msgs[0].due_us > 0);
    struct cel_message m;
    parse(&p.msgs[0], &m);
    ASSERT_STREQ(m.task, "t.add");
    ASSERT_STREQ(m.root_id, "id-1");
    ASSERT(m.parent_id == NULL);
    ASSERT(m.eta_us == p.msgs[0].due_us);
    ASSERT(m.expires_us > 0);
    ASSERT_JSON(m.args, "[2, 2]");
    ASSERT_JSON(m.kwargs, "{\"z\": 1}");
    ASSERT_JSON(json_object_get(m.embed, "callbacks"), "[" ADD("[3]") "]");
    ASSERT_EQ(json_array_size(json_object_get(m.embed, "errbacks")), 1);
    ASSERT(json_is_null(json_object_get(m.embed, "chain")));
    ASSERT(json_is_null(json_object_get(m.embed, "chord")));
    ASSERT(json_is_null(header(&m, "group_index")));
    cel__message_release(&m);
    cel__canvas_plan_release(&p);

    /* a prepended value goes first unless the signature is immutable */
    plan(ADD("[3]"), "4", NULL, &p);
    parse(&p.msgs[0], &m);
    ASSERT_JSON(m.args, "[4, 3]");
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
    plan("{\"task\": \"t.add\", \"args\": [3], \"immutable\": true}", "4", NULL, &p);
    parse(&p.msgs[0], &m);
    ASSERT_JSON(m.args, "[3]");
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
}

/* 7.2: only the first task is sent, the rest reversed in embed.chain with
 * pre-assigned ids; the chain's value is its last task's. */
static void test_chain(void)
{
    struct cel_canvas_plan p;
    struct cel_canvas_ctx ctx = {.parent_id = "P", .root_id = "R", .group_index = -1};
    plan("{\"task\": \"celery.chain\", \"args\": [], \"kwargs\": {\"tasks\": [" ADD(
             "[1, 2]") ", "
                       "{\"task\": \"t.mul\", \"args\": [10]}, " ADD(
                           "[5]") "]}, \"subtask_type\": \"chain\"}",
         NULL, &ctx, &p);
    ASSERT_EQ(p.nmsgs, 1);
    struct cel_message m;
    parse(&p.msgs[0], &m);
    ASSERT_STREQ(m.task, "t.add");
    ASSERT_JSON(m.args, "[1, 2]");
    ASSERT_STREQ(m.parent_id, "P");
    ASSERT_STREQ(m.root_id, "R");
    json_t *chain = json_object_get(m.embed, "chain");
    ASSERT_EQ(json_array_size(chain), 2);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(chain, 0), "task")), "t.add");
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(chain, 1), "task")), "t.mul");
    const char *last = json_string_value(
        json_object_get(json_object_get(json_array_get(chain, 0), "options"), "task_id"));
    ASSERT(last && strlen(last) == 36);
    ASSERT_STREQ(p.result_id, last);

    /* The next hop: t.mul with [3, 10], chain = the one remaining. */
    json_t *three = json_integer(3);
    struct cel_canvas_plan f;
    char err[256];
    ASSERT_OK(cel__canvas_followups(&m, three, &f, err, sizeof err));
    ASSERT_EQ(f.nmsgs, 1);
    struct cel_message n;
    parse(&f.msgs[0], &n);
    ASSERT_STREQ(n.task, "t.mul");
    ASSERT_JSON(n.args, "[3, 10]");
    ASSERT_STREQ(n.parent_id, m.id);
    ASSERT_STREQ(n.root_id, "R");
    ASSERT_EQ(json_array_size(json_object_get(n.embed, "chain")), 1);
    /* and the last hop carries chain: [] and the pre-assigned id */
    struct cel_canvas_plan g;
    ASSERT_OK(cel__canvas_followups(&n, three, &g, err, sizeof err));
    struct cel_message o;
    parse(&g.msgs[0], &o);
    ASSERT_STREQ(o.id, last);
    ASSERT_JSON(json_object_get(o.embed, "chain"), "[]");
    ASSERT_JSON(o.args, "[3, 5]");
    /* the end of the chain hands nothing on */
    struct cel_canvas_plan h;
    ASSERT_OK(cel__canvas_followups(&o, three, &h, err, sizeof err));
    ASSERT_EQ(h.nmsgs, 0);
    cel__canvas_plan_release(&h);
    cel__message_release(&o);
    cel__canvas_plan_release(&g);
    cel__message_release(&n);
    cel__canvas_plan_release(&f);
    json_decref(three);
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
}

/* 7.3: members with the group header, a null group_index, own roots. */
static void test_group(void)
{
    struct cel_canvas_plan p;
    plan("{\"task\": \"celery.group\", \"kwargs\": {\"tasks\": [" ADD_ID("[1, 1]", "a") ", " ADD_ID(
             "[2, 2]",
             "b") ", {\"task\": \"celery.group\", \"kwargs\": {\"tasks\": [" ADD_ID("[3, 3]",
                                                                                    "c") "]}, "
                                                                                         "\"subtas"
                                                                                         "k_type"
                                                                                         "\": "
                                                                                         "\"group"
                                                                                         "\"}]}, "
                                                                                         "\"option"
                                                                                         "s\": "
                                                                                         "{\"task_"
                                                                                         "id\": "
                                                                                         "\"G\"}, "
                                                                                         "\"subtas"
                                                                                         "k_type"
                                                                                         "\": "
                                                                                         "\"group"
                                                                                         "\"}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 3);
    ASSERT(p.is_group);
    ASSERT_STREQ(p.result_id, "G");
    ASSERT_EQ(p.nmembers, 3);
    ASSERT_STREQ(p.member_ids[2], "c"); /* the nested group is unrolled */
    for (size_t i = 0; i < 3; i++) {
        struct cel_message m;
        parse(&p.msgs[i], &m);
        ASSERT_STREQ(m.group_id, "G");
        ASSERT_STREQ(m.root_id, m.id);
        ASSERT(json_is_null(header(&m, "group_index")));
        ASSERT_STREQ(m.id, p.member_ids[i]);
        cel__message_release(&m);
    }
    cel__canvas_plan_release(&p);
}

/* A chain's value is its last step's: a trailing group's members. */
static void test_chain_ending_in_group(void)
{
    static const char sig[] = "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD_ID(
        "[1, 1]", "a") ", "
                       "{\"task\": \"celery.group\", \"kwargs\": {\"tasks\": [" ADD_ID(
                           "[1]", "b") ", " ADD_ID("[2]",
                                                   "c") "]}, \"subtask_type\": \"group\"}]}, "
                                                        "\"subtask_type\": \"chain\"}";
    struct cel_canvas_plan p;
    plan(sig, NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 1); /* only the first link goes out now */
    ASSERT(p.is_group);
    ASSERT_EQ(p.nmembers, 2);
    ASSERT_STREQ(p.member_ids[0], "b");
    ASSERT_STREQ(p.member_ids[1], "c");
    cel__canvas_plan_release(&p);
}

/* 7.4: header members carry group, group_index and embed.chord (the body
 * with its pre-assigned id); the size is recorded. */
static void test_chord(void)
{
    struct cel_canvas_plan p;
    plan("{\"task\": \"celery.chord\", \"args\": [], \"kwargs\": {\"kwargs\": {}, \"header\": "
         "{\"task\": \"celery.group\", \"args\": [], \"kwargs\": {\"tasks\": [" ADD(
             "[0, 0]") ", " ADD("[1, 1]") ", " ADD("[2, 2]") "]}, \"options\": {\"task_id\": "
                                                             "\"GID\"}, "
                                                             "\"subtask_type\": \"group\"}, "
                                                             "\"body\": {\"task\": "
                                                             "\"t.tsum\", \"args\": [], "
                                                             "\"kwargs\": {}, \"options\": "
                                                             "{}}}, \"subtask_type\": \"chord\"}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nchords, 1);
    ASSERT_STREQ(p.chords[0].id, "GID");
    ASSERT_EQ(p.chords[0].size, 3);
    ASSERT(p.chords[0].saved_header == NULL); /* a simple header is not saved */
    ASSERT_EQ(p.nmsgs, 3);
    ASSERT(!p.is_group);
    for (size_t i = 0; i < 3; i++) {
        struct cel_message m;
        parse(&p.msgs[i], &m);
        ASSERT_STREQ(m.group_id, "GID");
        ASSERT_EQ(json_integer_value(header(&m, "group_index")), (long long)i);
        json_t *body = json_object_get(m.embed, "chord");
        ASSERT_STREQ(json_string_value(json_object_get(body, "task")), "t.tsum");
        ASSERT_STREQ(
            json_string_value(json_object_get(json_object_get(body, "options"), "task_id")),
            p.result_id);
        /* a header member's join is not a follow-up */
        struct cel_canvas_plan f;
        char err[128];
        json_t *r = json_integer(4);
        ASSERT_OK(cel__canvas_followups(&m, r, &f, err, sizeof err));
        ASSERT_EQ(f.nmsgs, 0);
        json_decref(r);
        cel__message_release(&m);
    }
    /* the body planned by whoever completes the chord gets the results */
    struct cel_message m;
    parse(&p.msgs[0], &m);
    struct cel_canvas_plan b;
    plan("{\"task\": \"t.tsum\", \"args\": [], \"options\": {\"task_id\": \"B\"}}", "[0, 2, 4]",
         NULL, &b);
    struct cel_message bm;
    parse(&b.msgs[0], &bm);
    ASSERT_JSON(bm.args, "[[0, 2, 4]]");
    ASSERT_STREQ(bm.id, "B");
    cel__message_release(&bm);
    cel__canvas_plan_release(&b);
    cel__message_release(&m);
    cel__canvas_plan_release(&p);

    /* a chord with an empty header runs its body on [] at once */
    plan("{\"task\": \"celery.chord\", \"kwargs\": {\"header\": [], \"body\": " ADD(
             "[]") "}, "
                   "\"subtask_type\": \"chord\"}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 1);
    ASSERT_EQ(p.nchords, 0);
    parse(&p.msgs[0], &m);
    ASSERT_JSON(m.args, "[[]]");
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
}

/*
 * chord([d, chain(a, group(b, c)), e], body), or with the chain first:
 * what Celery 5.2.6 sends, captured from its own worker on Redis. The
 * chain's first link carries the header's group id and the chain's
 * group_index on the trailing group; the worker that ran it sends b and c
 * with that same group id and the CHAIN's group_index (not 0 and 1, their
 * places in the inner group), so their join entries sort at the chain's
 * place among the header's results. The size counts b and c.
 */
static void check_group_ending_chain_in_chord(int chain_at)
{
    char members[3][512];
    /* b and c as Python freezes them: their places in the inner group
     * in their own options, which the sent messages do not carry. */
    const char *chain = "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD_ID(
        "[1, 1]", "a") ", {\"task\": \"celery.group\", \"kwargs\": {\"tasks\": ["
                       "{\"task\": \"t.add\", \"args\": [10], \"options\": {\"task_id\": "
                       "\"b\", \"group_index\": 0}}, {\"task\": \"t.add\", \"args\": [100], "
                       "\"options\": {\"task_id\": \"c\", \"group_index\": 1}}]}, "
                       "\"subtask_type\": \"group\"}]}, \"subtask_type\": \"chain\"}";
    for (int i = 0, other = 0; i < 3; i++)
        snprintf(members[i], sizeof members[i], "%s",
                 i == chain_at ? chain
                 : other++     ? ADD_ID("[5, 5]", "e")
                               : ADD_ID("[4, 4]", "d"));
    char sig[4096];
    snprintf(sig, sizeof sig,
             "{\"task\": \"celery.chord\", \"kwargs\": {\"header\": {\"task\": "
             "\"celery.group\", \"kwargs\": {\"tasks\": [%s, %s, %s]}, \"options\": "
             "{\"task_id\": \"GID\"}, \"subtask_type\": \"group\"}, \"body\": " ADD_ID(
                 "[]", "BODY") "}, \"subtask_type\": \"chord\"}",
             members[0], members[1], members[2]);
    struct cel_canvas_plan p;
    plan(sig, NULL, NULL, &p);
    ASSERT_EQ(p.nchords, 1);
    ASSERT_EQ(p.chords[0].size, 4); /* d, e, and the group's b and c */
    ASSERT_EQ(p.nmsgs, 3);
    struct cel_message a;
    parse(&p.msgs[chain_at], &a);
    ASSERT_STREQ(a.id, "a");
    ASSERT(a.group_id == NULL); /* a is not a member: its chain's end is */
    ASSERT(json_is_null(header(&a, "group_index")) || !header(&a, "group_index"));
    json_t *g = json_array_get(json_object_get(a.embed, "chain"), 0);
    ASSERT_STREQ(json_string_value(json_object_get(g, "task")), "celery.group");
    ASSERT_JSON(json_object_get(json_object_get(g, "options"), "group_id"), "\"GID\"");
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(g, "options"), "group_index")),
              chain_at);
    for (int i = 0; i < 3; i++) {
        if (i == chain_at)
            continue;
        struct cel_message m;
        parse(&p.msgs[i], &m);
        ASSERT_STREQ(m.group_id, "GID");
        ASSERT_EQ(json_integer_value(header(&m, "group_index")), i);
        cel__message_release(&m);
    }

    json_t *two = json_integer(2);
    struct cel_canvas_plan f;
    char err[256];
    ASSERT_OK(cel__canvas_followups(&a, two, &f, err, sizeof err));
    ASSERT_EQ(f.nchords, 0); /* the size was recorded with the header */
    ASSERT_EQ(f.nmsgs, 2);
    const char *ids[] = {"b", "c"}, *args[] = {"[2, 10]", "[2, 100]"};
    for (size_t i = 0; i < 2; i++) {
        struct cel_message m;
        parse(&f.msgs[i], &m);
        ASSERT_STREQ(m.id, ids[i]);
        ASSERT_JSON(m.args, args[i]);
        ASSERT_STREQ(m.group_id, "GID");
        ASSERT(json_is_integer(header(&m, "group_index")));
        ASSERT_EQ(json_integer_value(header(&m, "group_index")), chain_at);
        ASSERT_STREQ(json_string_value(json_object_get(
                         json_object_get(json_object_get(m.embed, "chord"), "options"), "task_id")),
                     "BODY");
        cel__message_release(&m);
    }
    cel__canvas_plan_release(&f);
    json_decref(two);
    cel__message_release(&a);
    cel__canvas_plan_release(&p);
}

static void test_group_ending_chain_in_chord(void)
{
    check_group_ending_chain_in_chord(0);
    check_group_ending_chain_in_chord(1);
    check_group_ending_chain_in_chord(2);
}

/* 7.5: chain(add, group(mul, mul), tsum): add goes with a one-element
 * chain holding a celery.chord; reaching it sends the header members with
 * the result prepended, embed.chord = tsum, and the size. */
#define ECHO(id) "{\"task\": \"tasks.echo\", \"options\": {\"task_id\": \"" id "\"}}"

/* A header member that is a chain ending in a group makes the header
 * "complex": the plan saves Celery's GroupResult document for it, the
 * inner group taking the chord's id as Celery freezes it. */
static void test_complex_header(void)
{
    struct cel_canvas_plan p;
    plan(
        "{\"task\": \"celery.chord\", \"kwargs\": {\"header\": {\"task\": \"celery.group\", "
        "\"kwargs\": {\"tasks\": [{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD(
            "[1, "
            "1]") ", {\"task\": \"celery.group\", \"kwargs\": {\"tasks\": [" ECHO("E1") ", " ECHO("E2") "]}, \"subtask_type\": \"group\"}]}, \"subtask_type\": "
                                                                                                        "\"chain\"}, {\"task\": "
                                                                                                        "\"tasks.add\", \"args\": [4, 4], \"options\": {\"task_id\": "
                                                                                                        "\"D\"}}]}, "
                                                                                                        "\"options\": {\"task_id\": \"GID\"}, \"subtask_type\": "
                                                                                                        "\"group\"}, \"body\": "
                                                                                                        "{\"task\": \"tasks.echo\"}}, \"subtask_type\": \"chord\"}",
        NULL, NULL, &p);
    ASSERT_EQ(p.nchords, 1);
    ASSERT_EQ(p.chords[0].size, 3);
    ASSERT_STREQ(p.chords[0].saved_header,
                 "{\"result\": [[\"GID\", null], [[[\"GID\", null], [[[\"E1\", null], null], "
                 "[[\"E2\", null], null]]], [[\"D\", null], null]]]}");
    cel__canvas_plan_release(&p);
}

static void test_chain_with_group(void)
{
    struct cel_canvas_plan p;
    plan("{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD(
             "[1, 1]") ", {\"task\": "
                       "\"celery.group\", \"kwargs\": {\"tasks\": [{\"task\": \"t.mul\", \"args\": "
                       "[2]}, "
                       "{\"task\": \"t.mul\", \"args\": [3]}]}, \"subtask_type\": \"group\"}, "
                       "{\"task\": "
                       "\"t.tsum\", \"args\": []}]}, \"subtask_type\": \"chain\"}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 1);
    struct cel_message m;
    parse(&p.msgs[0], &m);
    json_t *chain = json_object_get(m.embed, "chain");
    ASSERT_EQ(json_array_size(chain), 1);
    json_t *c = json_array_get(chain, 0);
    ASSERT_STREQ(json_string_value(json_object_get(c, "subtask_type")), "chord");
    ASSERT_STREQ(json_string_value(json_object_get(c, "task")), "celery.chord");
    const char *body_id = json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(c, "kwargs"), "body"), "options"),
        "task_id"));
    ASSERT_STREQ(p.result_id, body_id);

    json_t *two = json_integer(2);
    struct cel_canvas_plan f;
    char err[256];
    ASSERT_OK(cel__canvas_followups(&m, two, &f, err, sizeof err));
    ASSERT_EQ(f.nmsgs, 2);
    ASSERT_EQ(f.nchords, 1);
    ASSERT_EQ(f.chords[0].size, 2);
    for (size_t i = 0; i < 2; i++) {
        struct cel_message h;
        parse(&f.msgs[i], &h);
        ASSERT_STREQ(h.task, "t.mul");
        ASSERT_EQ(json_integer_value(json_array_get(h.args, 0)), 2);
        ASSERT_STREQ(h.group_id, f.chords[0].id);
        ASSERT_STREQ(h.parent_id, m.id);
        ASSERT_STREQ(h.root_id, m.id);
        ASSERT_STREQ(json_string_value(json_object_get(
                         json_object_get(json_object_get(h.embed, "chord"), "options"), "task_id")),
                     body_id);
        cel__message_release(&h);
    }
    cel__canvas_plan_release(&f);
    json_decref(two);
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
}

/* A chain in a group in a chord; a group of chords; a chord whose body
 * is a chain; a chord followed by a link. */
static void test_nesting(void)
{
    struct cel_canvas_plan p;
    /* chord([chain(a, b), c], tsum): the chain's last link joins */
    plan("{\"task\": \"celery.chord\", \"kwargs\": {\"header\": [{\"task\": \"celery.chain\", "
         "\"kwargs\": {\"tasks\": [" ADD("[1, 1]") ", " ADD_ID(
             "[1]", "B") "]}, \"subtask_type\": "
                         "\"chain\"}, " ADD_ID("[5, 5]",
                                               "C") "], \"body\": {\"task\": \"t.tsum\"}}, "
                                                    "\"subtask_type\": \"chord\"}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 2);
    ASSERT_EQ(p.chords[0].size, 2);
    struct cel_message a, c;
    parse(&p.msgs[0], &a);
    parse(&p.msgs[1], &c);
    ASSERT(a.group_id == NULL); /* the chain's first link is not a member */
    ASSERT(json_is_null(json_object_get(a.embed, "chord")));
    json_t *b = json_array_get(json_object_get(a.embed, "chain"), 0);
    json_t *bo = json_object_get(b, "options");
    ASSERT_STREQ(json_string_value(json_object_get(bo, "group_id")), p.chords[0].id);
    ASSERT_EQ(json_integer_value(json_object_get(bo, "group_index")), 0);
    ASSERT(json_is_object(json_object_get(bo, "chord")));
    ASSERT_STREQ(c.group_id, p.chords[0].id);
    ASSERT_EQ(json_integer_value(header(&c, "group_index")), 1);
    /* when a finishes, b goes out as a member of the chord */
    json_t *two = json_integer(2);
    struct cel_canvas_plan f;
    char err[256];
    ASSERT_OK(cel__canvas_followups(&a, two, &f, err, sizeof err));
    struct cel_message bm;
    parse(&f.msgs[0], &bm);
    ASSERT_STREQ(bm.id, "B");
    ASSERT_STREQ(bm.group_id, p.chords[0].id);
    ASSERT_EQ(json_integer_value(header(&bm, "group_index")), 0);
    ASSERT(json_is_object(json_object_get(bm.embed, "chord")));
    cel__message_release(&bm);
    cel__canvas_plan_release(&f);
    cel__message_release(&a);
    cel__message_release(&c);
    cel__canvas_plan_release(&p);

    /* group of two chords: two sizes, each body in the outer group */
    plan(
        "{\"task\": \"celery.group\", \"options\": {\"task_id\": \"OUT\"}, \"kwargs\": "
        "{\"tasks\": [{\"task\": \"celery.chord\", \"kwargs\": {\"header\": [" ADD(
            "[1, 1]") ", " ADD("[2, 2]") "], \"body\": " ADD_ID("[]",
                                                                "B1") "}, \"subtask_type\": "
                                                                      "\"chord\"}, "
                                                                      "{\"task\": "
                                                                      "\"celery.chord\", "
                                                                      "\"kwargs\": {\"header\": "
                                                                      "[" ADD(
                                                                          "[3, 3]") "], "
                                                                                    "\"bod"
                                                                                    "y\": " ADD_ID(
                                                                                        "[]",
                                                                                        "B2") "}, "
                                                                                              "\"su"
                                                                                              "btas"
                                                                                              "k_"
                                                                                              "type"
                                                                                              "\": "
                                                                                              "\"ch"
                                                                                              "ord"
                                                                                              "\"}]"
                                                                                              "}, "
                                                                                              "\"su"
                                                                                              "btas"
                                                                                              "k_"
                                                                                              "type"
                                                                                              "\": "
                                                                                              "\"gr"
                                                                                              "oup"
                                                                                              "\"}",
        NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 3);
    ASSERT_EQ(p.nchords, 2);
    ASSERT_EQ(p.chords[0].size, 2);
    ASSERT_EQ(p.chords[1].size, 1);
    ASSERT(p.is_group);
    ASSERT_STREQ(p.member_ids[0], "B1");
    ASSERT_STREQ(p.member_ids[1], "B2");
    parse(&p.msgs[2], &a);
    json_t *body = json_object_get(a.embed, "chord");
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(body, "options"), "group_id")),
                 "OUT");
    ASSERT_STREQ(a.group_id, p.chords[1].id);
    cel__message_release(&a);
    cel__canvas_plan_release(&p);

    /* chain(chord([a], b), c): c travels in the body's options.chain and
     * the body, planned later, sends it on */
    plan("{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [{\"task\": \"celery.chord\", "
         "\"kwargs\": {\"header\": [" ADD("[1, 1]") "], \"body\": " ADD_ID(
             "[]", "B") "}, "
                        "\"subtask_type\": \"chord\"}, " ADD_ID(
                            "[7]", "C") "]}, \"subtask_type\": \"chain\"}",
         NULL, NULL, &p);
    ASSERT_STREQ(p.result_id, "C");
    ASSERT_EQ(p.nmsgs, 1);
    parse(&p.msgs[0], &a);
    body = json_object_get(a.embed, "chord");
    json_t *bchain = json_object_get(json_object_get(body, "options"), "chain");
    ASSERT_EQ(json_array_size(bchain), 1);
    struct cel_canvas_plan bp;
    json_t *res = J("[2]");
    struct cel_canvas_ctx ctx = {.parent_id = a.id, .root_id = a.id, .group_index = -1};
    ASSERT_OK(cel__canvas_plan(body, res, &ctx, &bp, err, sizeof err));
    struct cel_message bmsg;
    parse(&bp.msgs[0], &bmsg);
    ASSERT_STREQ(bmsg.id, "B");
    ASSERT_JSON(bmsg.args, "[[2]]");
    ASSERT_STREQ(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(bmsg.embed, "chain"), 0), "options"),
            "task_id")),
        "C");
    cel__message_release(&bmsg);
    cel__canvas_plan_release(&bp);
    json_decref(res);
    json_decref(two);
    cel__message_release(&a);
    cel__canvas_plan_release(&p);
}

/* 7.1: callbacks with the result, errbacks as a group with the id. */
static void test_followups(void)
{
    struct cel_canvas_plan p;
    plan("{\"task\": \"t.add\", \"args\": [2, 2], \"options\": {\"task_id\": \"T\", \"link\": "
         "[{\"task\": \"t.mul\", \"args\": [3]}, {\"task\": \"t.log\", \"immutable\": true}], "
         "\"link_error\": {\"task\": \"t.err\", \"args\": [9]}}}",
         NULL, NULL, &p);
    struct cel_message m;
    parse(&p.msgs[0], &m);
    json_t *four = json_integer(4);
    struct cel_canvas_plan f;
    char err[256];
    ASSERT_OK(cel__canvas_followups(&m, four, &f, err, sizeof err));
    ASSERT_EQ(f.nmsgs, 2);
    struct cel_message x, y;
    parse(&f.msgs[0], &x);
    parse(&f.msgs[1], &y);
    ASSERT_JSON(x.args, "[4, 3]");
    ASSERT_JSON(y.args, "[]");
    ASSERT_STREQ(x.parent_id, "T");
    ASSERT_STREQ(x.root_id, "T");
    ASSERT(x.group_id && y.group_id && strcmp(x.group_id, y.group_id) == 0);
    cel__message_release(&x);
    cel__message_release(&y);
    cel__canvas_plan_release(&f);

    ASSERT_OK(cel__canvas_followups(&m, NULL, &f, err, sizeof err));
    ASSERT_EQ(f.nmsgs, 1);
    parse(&f.msgs[0], &x);
    ASSERT_STREQ(x.task, "t.err");
    ASSERT_JSON(x.args, "[\"T\", 9]");
    ASSERT_STREQ(x.parent_id, "T");
    cel__message_release(&x);
    cel__canvas_plan_release(&f);
    json_decref(four);
    cel__message_release(&m);
    cel__canvas_plan_release(&p);

    /* a chain's link_error is on every link */
    plan("{\"task\": \"celery.chain\", \"options\": {\"link_error\": [{\"task\": \"t.err\"}]}, "
         "\"kwargs\": {\"tasks\": [" ADD("[1, 1]") ", " ADD("[1]") "]}, \"subtask_type\": "
                                                                   "\"chain\"}",
         NULL, NULL, &p);
    parse(&p.msgs[0], &m);
    ASSERT_EQ(json_array_size(json_object_get(m.embed, "errbacks")), 1);
    json_t *next = json_array_get(json_object_get(m.embed, "chain"), 0);
    ASSERT_EQ(json_array_size(json_object_get(json_object_get(next, "options"), "link_error")), 1);
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
}

/* A replaced task's chain and chord move to the replacement; its id goes
 * to the replacement's last task. */
static void test_replace_ctx(void)
{
    json_t *chain = J("[" ADD_ID("[1]", "NEXT") "]");
    json_t *chord = J("{\"task\": \"t.tsum\", \"options\": {\"task_id\": \"BODY\"}}");
    struct cel_canvas_ctx ctx = {.parent_id = "ME",
                                 .root_id = "ROOT",
                                 .chain = chain,
                                 .chord = chord,
                                 .group_id = "G",
                                 .group_index = 4,
                                 .task_id = "ME"};
    struct cel_canvas_plan p;
    plan("{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": [" ADD("[1, 1]") ", " ADD(
             "[2]") "]}, \"subtask_type\": \"chain\"}",
         NULL, &ctx, &p);
    ASSERT_STREQ(p.result_id, "ME");
    struct cel_message m;
    parse(&p.msgs[0], &m);
    ASSERT(m.group_id == NULL);
    json_t *ch = json_object_get(m.embed, "chain");
    ASSERT_EQ(json_array_size(ch), 2);
    json_t *last = json_array_get(ch, 1);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(last, "options"), "task_id")),
                 "ME");
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(last, "options"), "group_id")),
                 "G");
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(ch, 0), "task")), "t.add");
    cel__message_release(&m);
    cel__canvas_plan_release(&p);
    json_decref(chain);
    json_decref(chord);
}

static void test_refusals(void)
{
    static const char *const bad[] = {
        "[]",
        "{\"args\": []}",
        "{\"task\": \"t\", \"args\": {}}",
        "{\"task\": \"celery.chain\", \"kwargs\": {\"tasks\": []}, \"subtask_type\": \"chain\"}",
        "{\"task\": \"celery.chord\", \"kwargs\": {\"header\": []}, \"subtask_type\": \"chord\"}",
        "{\"task\": \"t\", \"options\": {\"task_id\": 5}}",
        "{\"task\": \"t\", \"options\": {\"priority\": 12}}",
        "{\"task\": \"t\", \"options\": {\"eta\": \"yesterday\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *s = J(bad[i]);
        struct cel_canvas_plan p;
        char err[256] = "";
        ASSERT(cel__canvas_plan(s, NULL, NULL, &p, err, sizeof err) < 0);
        ASSERT(err[0]);
        ASSERT_EQ(p.nmsgs, 0);
        json_decref(s);
    }
}

static void test_chunks_and_join_entry(void)
{
    struct cel_canvas_plan p;
    plan("{\"task\": \"celery.chunks\", \"kwargs\": {\"task\": {\"task\": \"t.add\"}, \"it\": "
         "[[0, 0], [1, 1], [2, 2]], \"n\": 2}, \"subtask_type\": \"chunks\"}",
         NULL, NULL, &p);
    ASSERT_EQ(p.nmsgs, 2);
    ASSERT(p.is_group);
    struct cel_message m;
    parse(&p.msgs[1], &m);
    ASSERT_STREQ(m.task, "celery.starmap");
    ASSERT_JSON(json_object_get(m.kwargs, "it"), "[[2, 2]]");
    ASSERT_STREQ(m.group_id, p.result_id);
    cel__message_release(&m);
    cel__canvas_plan_release(&p);

    json_t *v = json_integer(3);
    json_t *e = cel__canvas_join_entry("id", "SUCCESS", v);
    ASSERT_JSON(e, "[1, \"id\", \"SUCCESS\", 3]");
    json_decref(e);
    json_decref(v);
}

int main(void)
{
    TEST_RUN(test_plain_options);
    TEST_RUN(test_chain);
    TEST_RUN(test_group);
    TEST_RUN(test_chain_ending_in_group);
    TEST_RUN(test_chord);
    TEST_RUN(test_group_ending_chain_in_chord);
    TEST_RUN(test_chain_with_group);
    TEST_RUN(test_nesting);
    TEST_RUN(test_followups);
    TEST_RUN(test_replace_ctx);
    TEST_RUN(test_refusals);
    TEST_RUN(test_chunks_and_join_entry);
    TEST_RUN(test_complex_header);
    return 0;
}
