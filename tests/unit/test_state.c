/*
 * test_state.c - task states (celeriac/state.h, proto/state.c): Celery's
 * names both ways, which states are ready, and the internal helpers the
 * result stores use.
 */
#include <celeriac/state.h> /* first: the public header stands on its own */

#include "proto/state.h"
#include "testing.h"

static void test_state_names(void)
{
    ASSERT_STREQ(cel_state_name(CEL_STATE_PENDING), "PENDING");
    ASSERT_STREQ(cel_state_name(CEL_STATE_SUCCESS), "SUCCESS");
    ASSERT_STREQ(cel_state_name(CEL_STATE_REVOKED), "REVOKED");
    ASSERT_STREQ(cel_state_name(CEL_STATE_CUSTOM), "CUSTOM");
    ASSERT_STREQ(cel_state_name((cel_state)99), "UNKNOWN");
    ASSERT_EQ(cel_state_parse("STARTED"), CEL_STATE_STARTED);
    ASSERT_EQ(cel_state_parse("FAILURE"), CEL_STATE_FAILURE);
    ASSERT_EQ(cel_state_parse("RETRY"), CEL_STATE_RETRY);
    ASSERT_EQ(cel_state_parse("PROGRESS"), CEL_STATE_CUSTOM);
    ASSERT_EQ(cel_state_parse("CUSTOM"), CEL_STATE_CUSTOM);
    ASSERT_EQ(cel_state_parse("success"), CEL_STATE_CUSTOM); /* states are case-sensitive */
    ASSERT_EQ(cel_state_parse(NULL), CEL_STATE_CUSTOM);
    for (int s = CEL_STATE_PENDING; s < CEL_STATE_CUSTOM; s++)
        ASSERT_EQ(cel_state_parse(cel_state_name((cel_state)s)), s);
}

static void test_ready_states(void)
{
    ASSERT(cel_state_is_ready(CEL_STATE_SUCCESS));
    ASSERT(cel_state_is_ready(CEL_STATE_FAILURE));
    ASSERT(cel_state_is_ready(CEL_STATE_REVOKED));
    ASSERT(!cel_state_is_ready(CEL_STATE_RETRY));
    ASSERT(!cel_state_is_ready(CEL_STATE_STARTED));
    ASSERT(!cel_state_is_ready(CEL_STATE_PENDING));
    ASSERT(!cel_state_is_ready(CEL_STATE_CUSTOM));

    ASSERT(cel__state_name_is_ready("SUCCESS"));
    ASSERT(cel__state_name_is_ready("FAILURE"));
    ASSERT(cel__state_name_is_ready("REVOKED"));
    ASSERT(!cel__state_name_is_ready("STARTED"));
    ASSERT(!cel__state_name_is_ready("PROGRESS"));
    ASSERT(!cel__state_name_is_ready("success"));
    ASSERT(!cel__state_name_is_ready(NULL));
}

/* Stores take the name of a standard state from the enum and that of a
 * custom state from the meta document: the helper must say which. */
static void test_std_name(void)
{
    for (int s = CEL_STATE_PENDING; s < CEL_STATE_CUSTOM; s++)
        ASSERT_STREQ(cel__state_std_name((cel_state)s), cel_state_name((cel_state)s));
    ASSERT(cel__state_std_name(CEL_STATE_CUSTOM) == NULL);
    ASSERT(cel__state_std_name((cel_state)-1) == NULL);
    ASSERT(cel__state_std_name((cel_state)99) == NULL);
}

int main(void)
{
    TEST_RUN(test_state_names);
    TEST_RUN(test_ready_states);
    TEST_RUN(test_std_name);
    return 0;
}
