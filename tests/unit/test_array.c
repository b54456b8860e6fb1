/* test_array.c - cel__array_grow: doubling, the first size, overflow. */
#include <stdint.h>
#include <stdlib.h>

#include "core/array.h"
#include "testing.h"

static void test_doubles_and_keeps(void)
{
    int *v = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100; i++) {
        int *p = cel__array_grow(v, &cap, n, sizeof *p, 4);
        ASSERT(p != NULL);
        v = p;
        v[n++] = i;
        ASSERT(cap >= n);
    }
    ASSERT_EQ(cap, 128); /* 4, 8, ..., 128 */
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(v[i], i);
    /* room left: the same array, no change */
    size_t before = cap;
    ASSERT(cel__array_grow(v, &cap, 100, sizeof *v, 4) == v);
    ASSERT_EQ(cap, before);
    free(v);
}

static void test_overflow_refused(void)
{
    char dummy[1];
    size_t cap = SIZE_MAX / 2 + 1;
    ASSERT(cel__array_grow(dummy, &cap, cap, 1, 4) == NULL);
    ASSERT_EQ(cap, SIZE_MAX / 2 + 1);
    cap = SIZE_MAX / 16;
    ASSERT(cel__array_grow(dummy, &cap, cap, 16, 4) == NULL);
    ASSERT_EQ(cap, SIZE_MAX / 16);
}

int main(void)
{
    TEST_RUN(test_doubles_and_keeps);
    TEST_RUN(test_overflow_refused);
    return 0;
}
