/* test_limits.c - the hard-limit deadline arithmetic of the prefork pool
 * (issue 7) and the resident-memory read behind max-memory-per-child. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "testing.h"
#include "worker/limits.h"

static void test_deadline(void)
{
    ASSERT_EQ(cel__limit_deadline_us(1000000, 1.5), 2500000);
    /* No limit, or a task that has not started: no deadline. */
    ASSERT_EQ(cel__limit_deadline_us(1000000, 0), 0);
    ASSERT_EQ(cel__limit_deadline_us(0, 2), 0);
    ASSERT_EQ(cel__limit_deadline_us(1000000, -1), 0);
}

static void test_earliest_ignores_none(void)
{
    int64_t none[3] = {0, 0, 0};
    ASSERT_EQ(cel__limit_earliest(none, 3), 0);
    int64_t some[5] = {0, 9000, 3000, 0, 7000};
    ASSERT_EQ(cel__limit_earliest(some, 5), 3000);
    int64_t first[2] = {5, 0};
    ASSERT_EQ(cel__limit_earliest(first, 2), 5);
    ASSERT_EQ(cel__limit_earliest(NULL, 0), 0);
}

/* A timer never fires before the deadline: sub-millisecond rests round
 * up, a deadline already passed fires at once. */
static void test_timeout_rounds_up(void)
{
    ASSERT_EQ(cel__limit_timeout_ms(2000000, 1000000), 1000u);
    ASSERT_EQ(cel__limit_timeout_ms(1000001, 1000000), 1u);
    ASSERT_EQ(cel__limit_timeout_ms(1001500, 1000000), 2u);
    ASSERT_EQ(cel__limit_timeout_ms(1000000, 1000000), 0u);
    ASSERT_EQ(cel__limit_timeout_ms(500, 1000000), 0u);
}

static void test_rss_grows_with_touched_memory(void)
{
    long before = cel__limit_rss_kib(getpid());
    ASSERT(before > 0);
    size_t n = 32u << 20;
    /* volatile: the compiler may not drop writes to memory freed unread. */
    volatile char *p = malloc(n);
    ASSERT(p);
    for (size_t i = 0; i < n; i += 4096)
        p[i] = 1;
    long after = cel__limit_rss_kib(getpid());
    ASSERT(after - before >= 30 * 1024);
    free((void *)p);
    ASSERT_EQ(cel__limit_rss_kib(-5), -1);
}

int main(void)
{
    TEST_RUN(test_deadline);
    TEST_RUN(test_earliest_ignores_none);
    TEST_RUN(test_timeout_rounds_up);
    TEST_RUN(test_rss_grows_with_touched_memory);
    return 0;
}
