/*
 * test_suggest.c - the "did you mean" of an unregistered task
 * (worker/suggest.c): edit distance, the nearest registered name, and
 * the once-per-name memory.
 */
#include <celeriac.h>

#include "testing.h"
#include "worker/suggest.h"

static int noop(cel_task *t, void *userdata)
{
    (void)userdata;
    return cel_task_return_null(t);
}

static void test_edit_distance(void)
{
    ASSERT_EQ(cel__edit_distance("", "", 3), 0);
    ASSERT_EQ(cel__edit_distance("tasks.add", "tasks.add", 3), 0);
    ASSERT_EQ(cel__edit_distance("tasks.ad", "tasks.add", 3), 1);    /* insertion */
    ASSERT_EQ(cel__edit_distance("tasks.adx", "tasks.add", 3), 1);   /* substitution */
    ASSERT_EQ(cel__edit_distance("taks.add", "tasks.add", 3), 1);    /* deletion */
    ASSERT_EQ(cel__edit_distance("kitten", "sitting", 5), 3);        /* the classic */
    ASSERT_EQ(cel__edit_distance("abc", "xyzabcdef", 2), 3);         /* stops past the limit */
    ASSERT_EQ(cel__edit_distance("aaaaaaaaaa", "bbbbbbbbbb", 3), 4); /* limit + 1 */
}

static void test_nearest_name(void)
{
    cel_registry *reg = cel_registry_new();
    ASSERT(reg);
    const char *names[] = {"tasks.add", "tasks.mul", "tasks.echo", "images.resize"};
    for (size_t i = 0; i < 4; i++)
        ASSERT_OK(
            cel_registry_add(reg, &(cel_task_def)CEL_TASK_DEF_INIT(.name = names[i], .fn = noop)));
    ASSERT_STREQ(cel__suggest_task(reg, "tasks.ad"), "tasks.add");
    ASSERT_STREQ(cel__suggest_task(reg, "tasks.echoo"), "tasks.echo");
    ASSERT_STREQ(cel__suggest_task(reg, "resize"), "images.resize"); /* the unqualified name */
    ASSERT_STREQ(cel__suggest_task(reg, "tasks.mull"), "tasks.mul");
    ASSERT(cel__suggest_task(reg, "billing.invoice") == NULL); /* nothing near */
    ASSERT(cel__suggest_task(reg, "ad") == NULL);              /* 1 edit of 2 bytes is too far */
    ASSERT(cel__suggest_task(reg, "") == NULL);
    ASSERT(cel__suggest_task(NULL, "tasks.add") == NULL);
    cel_registry_free(reg);
}

static void test_first_seen_once(void)
{
    ASSERT(cel__unregistered_first_seen("py.only_task"));
    ASSERT(!cel__unregistered_first_seen("py.only_task"));
    ASSERT(cel__unregistered_first_seen("py.other_task"));
    ASSERT(!cel__unregistered_first_seen("py.only_task"));
    /* Bounded: past the cap new names count as seen (no log, no growth). */
    char name[32];
    for (int i = 0; i < CEL_SUGGEST_SEEN_MAX + 10; i++) {
        snprintf(name, sizeof name, "flood.%d", i);
        cel__unregistered_first_seen(name);
    }
    ASSERT(!cel__unregistered_first_seen("flood.never_before"));
}

int main(void)
{
    TEST_RUN(test_edit_distance);
    TEST_RUN(test_nearest_name);
    TEST_RUN(test_first_seen_once);
    return 0;
}
