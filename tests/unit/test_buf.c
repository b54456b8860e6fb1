/*
 * test_buf.c - the core byte buffer (core/buf.h): appends, the size cap
 * (refused appends change nothing and stay refused until consumed), the
 * front-consuming queue use, and handing the text over.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "testing.h"

/* The bytes held, compared as text. */
static void assert_holds(struct cel_buf *b, const char *want)
{
    ASSERT_EQ(cel__buf_size(b), strlen(want));
    ASSERT_STREQ(cel__buf_cstr(b), want);
}

static void test_append_and_take(void)
{
    struct cel_buf b = {0};
    ASSERT_STREQ(cel__buf_cstr(&b), "");
    ASSERT_OK(cel__buf_appends(&b, "tasks.add"));
    ASSERT_OK(cel__buf_append(&b, "(2, 3)xyz", 6));
    ASSERT_OK(cel__buf_append(&b, NULL, 0));
    assert_holds(&b, "tasks.add(2, 3)");
    ASSERT_OK(cel__buf_printf(&b, " %s=%d", "n", 42));
    assert_holds(&b, "tasks.add(2, 3) n=42");

    size_t len = 0;
    char *text = cel__buf_take(&b, &len);
    ASSERT_STREQ(text, "tasks.add(2, 3) n=42");
    ASSERT_EQ(len, strlen(text));
    free(text);
    /* taken: the buffer is empty and usable */
    ASSERT(b.data == NULL);
    ASSERT_EQ(cel__buf_size(&b), 0);
    text = cel__buf_take(&b, &len);
    ASSERT_STREQ(text, "");
    ASSERT_EQ(len, 0);
    free(text);
    cel__buf_release(&b);
}

static void test_append_int(void)
{
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {-5, "-5"},
        {1234567890123, "1234567890123"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cel_buf b = {0};
        ASSERT_OK(cel__buf_append_int(&b, cases[i].v));
        assert_holds(&b, cases[i].want);
        cel__buf_release(&b);
    }
}

/* Growth past the first allocation, by append and by printf (whose
 * first try does not fit). */
static void test_growth(void)
{
    struct cel_buf b = {0};
    char chunk[100];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 100; i++)
        ASSERT_OK(cel__buf_append(&b, chunk, sizeof chunk));
    ASSERT_EQ(cel__buf_size(&b), 10000);
    ASSERT(b.cap > b.len);

    cel__buf_reset(&b);
    ASSERT_EQ(cel__buf_size(&b), 0);
    ASSERT(b.data != NULL); /* the memory is kept */

    /* from a small buffer, so that printf's first try does not fit */
    cel__buf_release(&b);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_OK(cel__buf_appends(&b, "<"));
    ASSERT_OK(cel__buf_printf(&b, "%s>", big));
    ASSERT_EQ(cel__buf_size(&b), sizeof big + 1);
    const char *s = cel__buf_cstr(&b);
    ASSERT(s[0] == '<' && s[1] == 'x' && s[sizeof big - 1] == 'x' && s[sizeof big] == '>');
    cel__buf_release(&b);
}

static void test_cap_refuses_and_keeps(void)
{
    struct cel_buf b;
    cel__buf_init(&b, 10);
    ASSERT_OK(cel__buf_appends(&b, "12345678"));
    ASSERT_EQ(cel__buf_appends(&b, "abc"), CEL_ETOOBIG);
    assert_holds(&b, "12345678"); /* intact */
    /* refused from now on, even what would fit: no hole in the text */
    ASSERT_EQ(cel__buf_appends(&b, "9"), CEL_ETOOBIG);
    ASSERT_EQ(cel__buf_printf(&b, "%d", 9), CEL_ETOOBIG);
    ASSERT_EQ(cel__buf_append_int(&b, 9), CEL_ETOOBIG);
    assert_holds(&b, "12345678");
    ASSERT(b.cap <= 11); /* never allocates past the cap */
    /* a writer that checks only at the end gets nothing */
    ASSERT(cel__buf_take(&b, NULL) == NULL);
    ASSERT_EQ(cel__buf_size(&b), 0);
    ASSERT_EQ(b.max, 10); /* the cap survives */
    ASSERT_OK(cel__buf_appends(&b, "0123456789"));
    ASSERT_EQ(cel__buf_appends(&b, "x"), CEL_ETOOBIG);
    cel__buf_reset(&b);
    ASSERT_OK(cel__buf_printf(&b, "%s", "0123456789"));
    ASSERT_EQ(cel__buf_printf(&b, "%s", "x"), CEL_ETOOBIG);
    assert_holds(&b, "0123456789");
    cel__buf_release(&b);

    /* a size that cannot be represented fails without allocating */
    struct cel_buf u = {0};
    ASSERT_EQ(cel__buf_reserve(&u, SIZE_MAX), CEL_ETOOBIG);
    ASSERT(u.data == NULL);
    cel__buf_release(&u);
}

/* The queue use: bytes leave from the front, the space comes back when
 * an append needs it, and a refused append can be retried once the
 * reader has made room. */
static void test_consume_as_queue(void)
{
    struct cel_buf b;
    cel__buf_init(&b, 8);
    ASSERT_OK(cel__buf_appends(&b, "abcdef"));
    cel__buf_consume(&b, 2);
    assert_holds(&b, "cdef");
    ASSERT_EQ(cel__buf_appends(&b, "ghijk"), CEL_ETOOBIG); /* 4 + 5 > 8 */
    ASSERT_EQ(cel__buf_appends(&b, "g"), CEL_ETOOBIG);     /* order kept */
    cel__buf_consume(&b, 1);                               /* clears the refusal */
    ASSERT_OK(cel__buf_appends(&b, "ghijk"));              /* compacts in place */
    assert_holds(&b, "defghijk");
    ASSERT(b.cap <= 9);
    cel__buf_consume(&b, 8);
    ASSERT_EQ(cel__buf_size(&b), 0);
    ASSERT_EQ(b.off, 0); /* empty: back to the front */
    ASSERT_OK(cel__buf_appends(&b, "xy"));
    cel__buf_consume(&b, 1);
    char *text = cel__buf_take(&b, NULL);
    ASSERT_STREQ(text, "y");
    free(text);
    cel__buf_release(&b);
}

static void test_truncate_and_fail(void)
{
    struct cel_buf b = {0};
    ASSERT_OK(cel__buf_appends(&b, "hello world"));
    cel__buf_truncate(&b, 5);
    assert_holds(&b, "hello");
    cel__buf_truncate(&b, 50); /* longer than held: nothing changes */
    assert_holds(&b, "hello");
    /* in place after a reservation */
    ASSERT_OK(cel__buf_reserve(&b, 3));
    memcpy(b.data + b.len, "!!!", 3);
    b.len += 3;
    assert_holds(&b, "hello!!!");
    /* the first recorded failure is the one that stays */
    ASSERT_EQ(cel__buf_fail(&b, CEL_EINVAL), CEL_EINVAL);
    ASSERT_EQ(cel__buf_fail(&b, CEL_ENOMEM), CEL_EINVAL);
    ASSERT_EQ(cel__buf_appends(&b, "x"), CEL_EINVAL);
    ASSERT(cel__buf_take(&b, NULL) == NULL);
    cel__buf_release(&b);
}

int main(void)
{
    TEST_RUN(test_append_and_take);
    TEST_RUN(test_append_int);
    TEST_RUN(test_growth);
    TEST_RUN(test_cap_refuses_and_keeps);
    TEST_RUN(test_consume_as_queue);
    TEST_RUN(test_truncate_and_fail);
    return 0;
}
