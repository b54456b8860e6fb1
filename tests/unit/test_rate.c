/* test_rate.c - Celery's rate strings and the token bucket's arithmetic
 * (time injected, so every figure is exact). */
#include "testing.h"

#include <math.h>

#include "celeriac/error.h"
#include "core/rate.h"

static double parse_ok(const char *text)
{
    double r = -1;
    char why[128] = "";
    if (cel__rate_parse(text, &r, why, sizeof why) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "'%s' refused: %s", text, why);
    return r;
}

static void test_parse_celery_forms(void)
{
    /* celery.utils.time.rate: N/s, N/m, N/h, bare N per second. */
    ASSERT(parse_ok("10/s") == 10);
    ASSERT(fabs(parse_ok("100/m") - 100.0 / 60) < 1e-12);
    ASSERT(fabs(parse_ok("1000/h") - 1000.0 / 3600) < 1e-12);
    ASSERT(parse_ok("20") == 20);
    ASSERT(parse_ok("0.5/s") == 0.5);
    ASSERT(parse_ok(".5") == 0.5);
    ASSERT(parse_ok(" 7 ") == 7);
    ASSERT(parse_ok("10/") == 10); /* partition('/') gives '' -> 's' */
    ASSERT(parse_ok("1e2/m") == 100.0 / 60);
    ASSERT(parse_ok("0") == 0); /* Celery: no limit */
    ASSERT(parse_ok("0/s") == 0);
}

static void test_parse_refuses(void)
{
    const char *bad[] = {"",         "/s",  "ten/s", "10/d",  "10/sec", "10/ss", "-1/s",
                         "10 per s", "inf", "nan",   "1e999", "10/s x", "0x10",  "."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double r = 5;
        char why[128] = "";
        int rc = cel__rate_parse(bad[i], &r, why, sizeof why);
        if (rc != CEL_EINVAL || !why[0])
            cel_test_fail(__FILE__, __LINE__, "'%s' accepted (rc %d, rate %g)", bad[i], rc, r);
    }
    char why[128];
    double r;
    ASSERT_EQ(cel__rate_parse(NULL, &r, why, sizeof why), CEL_EINVAL);
    ASSERT_EQ(cel__rate_parse("10/d", &r, why, sizeof why), CEL_EINVAL);
    ASSERT_CONTAINS(why, "unit");
}

static void test_bucket_no_burst(void)
{
    /* kombu's TokenBucket with capacity 1: the first take is granted, the
     * next waits a full 1/rate, however long the bucket sat idle. */
    struct cel_token_bucket b;
    cel__bucket_init(&b, 20, 1000000);
    ASSERT_EQ(cel__bucket_take(&b, 1000000), 0);
    ASSERT_EQ(cel__bucket_take(&b, 1000000), 50000);
    ASSERT_EQ(cel__bucket_take(&b, 1020000), 30000); /* nothing taken while waiting */
    ASSERT_EQ(cel__bucket_take(&b, 1050000), 0);
    /* An hour idle still holds one token only. */
    ASSERT_EQ(cel__bucket_take(&b, 1050000 + INT64_C(3600000000)), 0);
    ASSERT(cel__bucket_take(&b, 1050000 + INT64_C(3600000000)) > 0);
}

static void test_bucket_rate_over_time(void)
{
    /* Taking whenever told to wait exactly as long as asked gives the
     * rate: 100/m over 10 minutes is 1000 grants (+1 for the full start). */
    struct cel_token_bucket b;
    int64_t now = 0;
    cel__bucket_init(&b, 100.0 / 60, now);
    int grants = 0;
    while (now <= INT64_C(600000000)) {
        int64_t wait = cel__bucket_take(&b, now);
        if (wait == 0)
            grants++;
        else
            now += wait;
    }
    ASSERT_EQ(grants, 1001);
}

static void test_bucket_clock_backwards(void)
{
    struct cel_token_bucket b;
    cel__bucket_init(&b, 10, 5000000);
    ASSERT_EQ(cel__bucket_take(&b, 5000000), 0);
    /* A step back is no time passed: still a full 100 ms from there. */
    ASSERT_EQ(cel__bucket_take(&b, 4000000), 100000);
    ASSERT_EQ(cel__bucket_take(&b, 4100000), 0);
}

int main(void)
{
    TEST_RUN(test_parse_celery_forms);
    TEST_RUN(test_parse_refuses);
    TEST_RUN(test_bucket_no_burst);
    TEST_RUN(test_bucket_rate_over_time);
    TEST_RUN(test_bucket_clock_backwards);
    return 0;
}
