/*
 * test_chord_outcome.c - what a completed chord becomes (worker/chord.c):
 * the body with the header's results, or, when a member failed, the
 * ChordError on the body and the body's errbacks, sent as Celery 5.2.6's
 * chord_error_from_stack sends them: one group called with the body's id
 * (an immutable errback keeps its own args), parent and root the body.
 */
#include <jansson.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_util.h"
#include "proto/message.h"
#include "testing.h"
#include "worker/chord.h"

#define OK_ENTRY(id, v) "[1, \"" id "\", \"SUCCESS\", " v "]"
#define BAD_ENTRY(id)                                                                              \
    "[1, \"" id "\", \"FAILURE\", {\"exc_type\": \"ValueError\", \"exc_message\": [\"x\"], "       \
    "\"exc_module\": \"builtins\"}]"

static void outcome(const char *body, const char *entries, struct cel_chord_outcome *out)
{
    char err[256] = "";
    int rc = cel__chord_outcome(body, strlen(body), entries, NULL, "member-2", "root-1", out, err,
                                sizeof err);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "chord outcome failed: %d %s", rc, err);
}

static void parse(const struct cel_canvas_msg *msg, struct cel_message *m)
{
    char err[256];
    if (cel__message_parse(msg->body, msg->len, NULL, m, err, sizeof err))
        cel_test_fail(__FILE__, __LINE__, "message unreadable: %s", err);
}

static void assert_args(const struct cel_message *m, const char *want)
{
    char *got = cel__json_dump(m->args);
    ASSERT_STREQ(got, want);
    free(got);
}

static void test_success_sends_body(void)
{
    struct cel_chord_outcome out;
    outcome("{\"task\": \"t.sum\", \"args\": [], \"kwargs\": {}, \"options\": {\"task_id\": "
            "\"body-1\", \"link_error\": [{\"task\": \"t.eb\", \"args\": [], \"kwargs\": {}, "
            "\"options\": {}}]}}",
            "[" OK_ENTRY("m1", "1") ", " OK_ENTRY("m2", "2") "]", &out);
    ASSERT(!out.failed);
    ASSERT_EQ(out.plan.nmsgs, 1);
    struct cel_message m;
    parse(&out.plan.msgs[0], &m);
    ASSERT_STREQ(m.task, "t.sum");
    ASSERT_STREQ(m.id, "body-1");
    assert_args(&m, "[[1, 2]]");
    cel__message_release(&m);
    cel__chord_outcome_release(&out);
}

static void test_failure_sends_errbacks(void)
{
    struct cel_chord_outcome out;
    outcome("{\"task\": \"t.sum\", \"args\": [], \"kwargs\": {}, \"options\": {\"task_id\": "
            "\"body-1\", \"link_error\": [{\"task\": \"t.eb\", \"args\": [7], \"kwargs\": {}, "
            "\"options\": {\"task_id\": \"eb-1\"}}, {\"task\": \"t.eb_si\", \"args\": [8], "
            "\"kwargs\": {}, \"options\": {\"task_id\": \"eb-2\"}, \"immutable\": true}]}}",
            "[" OK_ENTRY("m1", "1") ", " BAD_ENTRY("m2") "]", &out);
    ASSERT(out.failed);
    ASSERT_STREQ(out.body_id, "body-1");
    ASSERT_STREQ(out.errbacks_dropped, "");
    ASSERT_CONTAINS(out.meta, "ChordError");
    ASSERT_CONTAINS(out.meta, "Dependency m2 raised ValueError('x')");
    ASSERT_EQ(out.plan.nchords, 0);
    ASSERT_EQ(out.plan.nmsgs, 2);
    const char *ids[] = {"eb-1", "eb-2"}, *tasks[] = {"t.eb", "t.eb_si"};
    const char *args[] = {"[\"body-1\", 7]", "[8]"};
    const char *group_id = NULL;
    for (size_t i = 0; i < 2; i++) {
        struct cel_message m;
        parse(&out.plan.msgs[i], &m);
        ASSERT_STREQ(m.id, ids[i]);
        ASSERT_STREQ(m.task, tasks[i]);
        assert_args(&m, args[i]);
        ASSERT_STREQ(m.parent_id, "body-1");
        ASSERT_STREQ(m.root_id, "body-1");
        /* one group for both, as Celery's group(old_signature) */
        ASSERT(m.group_id != NULL);
        if (i == 0)
            group_id = strdup(m.group_id);
        else
            ASSERT_STREQ(m.group_id, group_id);
        cel__message_release(&m);
    }
    free((char *)group_id);
    cel__chord_outcome_release(&out);
}

/* A revoked member fails the body too; a body without errbacks sends
 * nothing. */
static void test_failure_without_errbacks(void)
{
    struct cel_chord_outcome out;
    outcome("{\"task\": \"t.sum\", \"args\": [], \"kwargs\": {}, \"options\": {\"task_id\": "
            "\"body-1\"}}",
            "[[1, \"m1\", \"REVOKED\", {\"exc_type\": \"TaskRevokedError\", \"exc_message\": "
            "[\"revoked\"]}]]",
            &out);
    ASSERT(out.failed);
    ASSERT_EQ(out.plan.nmsgs, 0);
    cel__chord_outcome_release(&out);
}

/* An errback that cannot be planned is reported, and the failure is
 * still there to store. */
static void test_bad_errback_keeps_failure(void)
{
    struct cel_chord_outcome out;
    outcome("{\"task\": \"t.sum\", \"args\": [], \"kwargs\": {}, \"options\": {\"task_id\": "
            "\"body-1\", \"link_error\": [{\"args\": 5}]}}",
            "[" BAD_ENTRY("m1") "]", &out);
    ASSERT(out.failed);
    ASSERT(out.meta != NULL);
    ASSERT(out.errbacks_dropped[0] != '\0');
    ASSERT_EQ(out.plan.nmsgs, 0);
    cel__chord_outcome_release(&out);
}

int main(void)
{
    TEST_RUN(test_success_sends_body);
    TEST_RUN(test_failure_sends_errbacks);
    TEST_RUN(test_failure_without_errbacks);
    TEST_RUN(test_bad_errback_keeps_failure);
    return 0;
}
