/*
 * test_chord_structured.c - what a completed chord's body gets
 * (worker/chord.h): the flat list of its entries in order, or, when the
 * header was saved because it nests groups, the results in the saved
 * structure as Celery's GroupResult.join() gives them.
 */
#include <string.h>

#include "core/json_parse.h"
#include "core/json_util.h"
#include "proto/message.h"
#include "testing.h"
#include "worker/chord.h"

#define BODY "{\"task\": \"tasks.echo\", \"options\": {\"task_id\": \"B\"}}"
/* D joined with index 1, the inner group's members with none (last). */
#define ENTRIES                                                                                    \
    "[[1, \"D\", \"SUCCESS\", 8], [1, \"E1\", \"SUCCESS\", [2]], [1, \"E2\", \"SUCCESS\", [2, "    \
    "5]]]"
#define HEADER                                                                                     \
    "{\"result\": [[\"G\", null], [[[\"G\", null], [[[\"E1\", null], null], [[\"E2\", null], "     \
    "null]]], [[\"D\", null], null]]]}"

/* The body's first argument as JSON text (caller frees). */
static char *body_arg(const char *header)
{
    struct cel_chord_outcome out;
    char err[256] = "";
    int rc =
        cel__chord_outcome(BODY, strlen(BODY), ENTRIES, header, "P", "R", &out, err, sizeof err);
    if (rc)
        cel_test_fail(__FILE__, __LINE__, "outcome: %d %s", rc, err);
    ASSERT(!out.failed);
    ASSERT_EQ(out.plan.nmsgs, 1);
    ASSERT_STREQ(out.plan.msgs[0].id, "B");
    struct cel_message m;
    char why[256];
    ASSERT_OK(
        cel__message_parse(out.plan.msgs[0].body, out.plan.msgs[0].len, NULL, &m, why, sizeof why));
    char *arg = cel__json_dump(json_array_get(m.args, 0));
    cel__message_release(&m);
    cel__chord_outcome_release(&out);
    return arg;
}

static void test_flat_without_saved_header(void)
{
    char *a = body_arg(NULL);
    ASSERT_STREQ(a, "[8, [2], [2, 5]]");
    free(a);
}

static void test_structured_with_saved_header(void)
{
    char *a = body_arg(HEADER);
    ASSERT_STREQ(a, "[[[2], [2, 5]], 8]");
    free(a);
}

/* A saved header naming a task that never joined: the flat list. */
static void test_mismatched_header_falls_back(void)
{
    char *a = body_arg("{\"result\": [[\"G\", null], [[[\"X\", null], null]]]}");
    ASSERT_STREQ(a, "[8, [2], [2, 5]]");
    free(a);
}

int main(void)
{
    TEST_RUN(test_flat_without_saved_header);
    TEST_RUN(test_structured_with_saved_header);
    TEST_RUN(test_mismatched_header_falls_back);
    return 0;
}
