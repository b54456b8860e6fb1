/* test_sched_parse.c - cron, interval and date-time texts into specs:
 * every cron feature with its bit sets asserted exactly, and the errors
 * with the position of the offending token. */
#include "testing.h"

#include "celeriac/error.h"
#include "schedule/spec.h"

static struct cel_sched_spec parse_ok(const char *kind, const char *text)
{
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    if (cel__sched_parse(kind, text, &s, &e) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "%s '%s' refused: %s", kind, text, e.msg);
    return s;
}

static struct cel_sched_cron cron_ok(const char *text)
{
    struct cel_sched_spec s = parse_ok("cron", text);
    ASSERT_EQ(s.kind, CEL_SCHED_CRON);
    return s.cron;
}

/* Asserts a refusal whose message contains `needle` and points at
 * `token` (its first occurrence in text). */
static void parse_bad(const char *kind, const char *text, const char *needle, const char *token)
{
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    int rc = cel__sched_parse(kind, text, &s, &e);
    if (rc != CEL_EINVAL)
        cel_test_fail(__FILE__, __LINE__, "%s '%s' accepted (rc %d)", kind, text, rc);
    ASSERT_CONTAINS(e.msg, needle);
    if (token) {
        const char *at = strstr(text, token);
        ASSERT(at != NULL);
        if (e.pos != (size_t)(at - text) || e.len != strlen(token))
            cel_test_fail(__FILE__, __LINE__, "'%s': error at %zu+%zu, want %zu+%zu (%s)", text,
                          e.pos, e.len, (size_t)(at - text), strlen(token), e.msg);
    }
}

/* Same, with the position given as numbers. */
static void parse_bad_at(const char *kind, const char *text, const char *needle, size_t pos,
                         size_t len)
{
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    ASSERT_EQ(cel__sched_parse(kind, text, &s, &e), CEL_EINVAL);
    ASSERT_CONTAINS(e.msg, needle);
    ASSERT_EQ(e.pos, pos);
    ASSERT_EQ(e.len, len);
}

static uint64_t span(int lo, int hi, int step)
{
    uint64_t b = 0;
    for (int v = lo; v <= hi; v += step)
        b |= 1ull << v;
    return b;
}

#define ALL_MIN   span(0, 59, 1)
#define ALL_HOUR  span(0, 23, 1)
#define ALL_MDAY  span(1, 31, 1)
#define ALL_MONTH span(1, 12, 1)
#define ALL_WDAY  span(0, 6, 1)

static void test_cron_stars_and_numbers(void)
{
    struct cel_sched_cron c = cron_ok("* * * * *");
    ASSERT_EQ(c.seconds, 1);
    ASSERT_EQ(c.minutes, ALL_MIN);
    ASSERT_EQ(c.hours, ALL_HOUR);
    ASSERT_EQ(c.mdays, ALL_MDAY);
    ASSERT_EQ(c.months, ALL_MONTH);
    ASSERT_EQ(c.wdays, ALL_WDAY);
    ASSERT(c.mday_star && c.wday_star && !c.last_mday);

    c = cron_ok("  5 4 3 2 1  ");
    ASSERT_EQ(c.minutes, 1ull << 5);
    ASSERT_EQ(c.hours, 1u << 4);
    ASSERT_EQ(c.mdays, 1u << 3);
    ASSERT_EQ(c.months, 1u << 2);
    ASSERT_EQ(c.wdays, 1u << 1);
    ASSERT(!c.mday_star && !c.wday_star);

    c = cron_ok("59 23 31 12 6");
    ASSERT_EQ(c.minutes, 1ull << 59);
    ASSERT_EQ(c.hours, 1u << 23);
    ASSERT_EQ(c.mdays, 1u << 31);
    ASSERT_EQ(c.months, 1u << 12);
    ASSERT_EQ(c.wdays, 1u << 6);
}

static void test_cron_ranges_steps_lists(void)
{
    struct cel_sched_cron c = cron_ok("*/15 9-17 1,15 */3 1-5");
    ASSERT_EQ(c.minutes, span(0, 59, 15));
    ASSERT_EQ(c.hours, span(9, 17, 1));
    ASSERT_EQ(c.mdays, (1u << 1) | (1u << 15));
    ASSERT_EQ(c.months, span(1, 12, 3)); /* 1, 4, 7, 10 */
    ASSERT_EQ(c.wdays, span(1, 5, 1));

    c = cron_ok("10-40/10 8-18/2 */2 * *");
    ASSERT_EQ(c.minutes, span(10, 40, 10));
    ASSERT_EQ(c.hours, span(8, 18, 2));
    ASSERT_EQ(c.mdays, span(1, 31, 2));
    ASSERT(!c.mday_star); /* only a bare '*' is a star */

    c = cron_ok("5/20 3/6 * * *"); /* a/n: from a to the field's end */
    ASSERT_EQ(c.minutes, span(5, 59, 20));
    ASSERT_EQ(c.hours, span(3, 23, 6));

    c = cron_ok("0,30,1-3,50-59/5 0 * * *");
    ASSERT_EQ(c.minutes, 1ull | 1ull << 30 | span(1, 3, 1) | span(50, 59, 5));
}

static void test_cron_names(void)
{
    struct cel_sched_cron c = cron_ok("0 0 * JAN,jul-Sep Mon-FRI");
    ASSERT_EQ(c.months, (1u << 1) | span(7, 9, 1));
    ASSERT_EQ(c.wdays, span(1, 5, 1));
    c = cron_ok("0 0 * dec sun,sat");
    ASSERT_EQ(c.months, 1u << 12);
    ASSERT_EQ(c.wdays, (1u << 0) | (1u << 6));
    c = cron_ok("0 0 * * monday,friday"); /* full names too */
    ASSERT_EQ(c.wdays, (1u << 1) | (1u << 5));
}

static void test_cron_sunday_is_0_and_7(void)
{
    ASSERT_EQ(cron_ok("0 0 * * 7").wdays, 1u);
    ASSERT_EQ(cron_ok("0 0 * * 0").wdays, 1u);
    ASSERT_EQ(cron_ok("0 0 * * 5-7").wdays, (1u << 5) | (1u << 6) | 1u);
    ASSERT_EQ(cron_ok("0 0 * * 7/1").wdays, 1u); /* from Sunday (7) to the end: Sunday */
    ASSERT_EQ(cron_ok("0 0 * * 5/1").wdays, (1u << 5) | (1u << 6));
    ASSERT_EQ(cron_ok("0 0 * * */2").wdays, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 6));
}

static void test_cron_question_mark_and_last(void)
{
    struct cel_sched_cron c = cron_ok("0 12 ? * mon");
    ASSERT(c.mday_star);
    ASSERT_EQ(c.mdays, ALL_MDAY);
    ASSERT(!c.wday_star);
    c = cron_ok("0 12 1 * ?");
    ASSERT(c.wday_star && !c.mday_star);
    ASSERT_EQ(c.wdays, ALL_WDAY);

    c = cron_ok("0 0 L * *");
    ASSERT(c.last_mday && !c.mday_star);
    ASSERT_EQ(c.mdays, 0);
    c = cron_ok("0 0 1,15,l * *");
    ASSERT(c.last_mday);
    ASSERT_EQ(c.mdays, (1u << 1) | (1u << 15));
    parse_bad("cron", "0 0 * * L", "day-of-week field", "L");
    parse_bad("cron", "? 0 * * *", "minute field", "?");
}

static void test_cron_seconds_field(void)
{
    struct cel_sched_cron c = cron_ok("30 */5 9 * * mon-fri");
    ASSERT_EQ(c.seconds, 1ull << 30);
    ASSERT_EQ(c.minutes, span(0, 59, 5));
    ASSERT_EQ(c.hours, 1u << 9);
    ASSERT_EQ(c.wdays, span(1, 5, 1));
    ASSERT_EQ(cron_ok("*/10 * * * * *").seconds, span(0, 59, 10));
}

static void test_cron_aliases(void)
{
    struct {
        const char *alias, *same;
    } cases[] = {
        {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
        {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"}, {" @DAILY ", "0 0 * * *"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cel_sched_spec a = parse_ok("cron", cases[i].alias);
        struct cel_sched_spec b = parse_ok("cron", cases[i].same);
        if (!cel__sched_spec_equal(&a, &b))
            cel_test_fail(__FILE__, __LINE__, "%s != %s", cases[i].alias, cases[i].same);
    }
    ASSERT_EQ(parse_ok("cron", "@reboot").kind, CEL_SCHED_REBOOT);
    parse_bad("cron", "@dayly", "did you mean '@daily'", "@dayly");
    parse_bad("cron", "@sometimes", "unknown word '@sometimes'", "@sometimes");
}

static void test_cron_errors_name_field_and_token(void)
{
    parse_bad("cron", "61 * * * *", "minute field: '61' is out of range 0-59", "61");
    parse_bad("cron", "0 24 * * *", "hour field: '24' is out of range 0-23", "24");
    parse_bad("cron", "0 0 32 * *", "day-of-month field: '32' is out of range 1-31", "32");
    parse_bad_at("cron", "0 0 0 * *", "day-of-month field: '0' is out of range 1-31", 4, 1);
    parse_bad("cron", "0 0 * 13 *", "month field: '13' is out of range 1-12", "13");
    parse_bad("cron", "0 0 * * 8", "day-of-week field: '8' is out of range 0-7", "8");
    parse_bad("cron", "0 0 * * mondey",
              "unknown word 'mondey' in day-of-week field (did you mean 'mon'?)", "mondey");
    parse_bad("cron", "0 0 * jnu *", "unknown word 'jnu' in month field (did you mean 'jun'?)",
              "jnu");
    parse_bad("cron", "0 0 * * xyzzy", "unknown word 'xyzzy' in day-of-week field", "xyzzy");
    parse_bad("cron", "a * * * *", "minute field: 'a' is not a number", "a");
    parse_bad("cron", "30-10 * * * *", "minute field: range '30-10' runs backwards", "30-10");
    parse_bad("cron", "*/0 * * * *", "minute field: step '0'", "0");
    parse_bad("cron", "*/x * * * *", "minute field: step 'x'", "x");
    parse_bad_at("cron", "1,,2 * * * *", "minute field: empty item", 2, 1);
    parse_bad("cron", "0 0 * * 1 2 3", "got more than 6", "3");
    parse_bad("cron", "5 4 * *", "expected 5 fields", "5 4 * *");
    parse_bad("cron", "", "empty", NULL);
    /* the position is that of the token, also in a six-field text */
    parse_bad("cron", "0 0 99 * * *", "hour field: '99'", "99");
}

static struct cel_sched_spec every_ok(const char *text, int64_t seconds)
{
    struct cel_sched_spec s = parse_ok("every", text);
    ASSERT_EQ(s.kind, CEL_SCHED_INTERVAL);
    if (s.every_s != seconds)
        cel_test_fail(__FILE__, __LINE__, "'%s': %lld s, want %lld", text, (long long)s.every_s,
                      (long long)seconds);
    return s;
}

static void test_every_forms(void)
{
    every_ok("15m", 900);
    every_ok("30s", 30);
    every_ok("2h", 7200);
    every_ok("1d", 86400);
    every_ok("1h30m", 5400);
    every_ok("1h 30m 15s", 5415);
    every_ok("90", 90);
    every_ok("1.5h", 5400);
    every_ok("0.5m", 30);
    every_ok(" 2 W ", 2 * 604800);
    every_ok("every 15 minutes", 900);
    every_ok("every minute", 60);
    every_ok("Every 2 Hours", 7200);
    every_ok("every 30 seconds", 30);
    every_ok("every 1 hour and 30 minutes", 5400);
    every_ok("every 90", 90);
}

static void test_every_errors(void)
{
    parse_bad("every", "0m", "'0m' is not a positive interval", "0m");
    parse_bad("every", "0", "not a positive interval", "0");
    parse_bad("every", "15 parsecs", "'parsecs' is not understood", "parsecs");
    parse_bad("every", "1h30", "'30' needs a unit", "30");
    parse_bad("every", "1.5s", "'1.5s' is not a whole number of seconds", "1.5s");
    parse_bad("every", "", "missing", NULL);
    parse_bad("every", "every", "missing", NULL);
    parse_bad("every", "999999999d", "too long", "999999999d");
    parse_bad("every", "-5m", "'-' is not understood", "-");
}

static struct cel_sched_at at_ok(const char *text)
{
    struct cel_sched_spec s = parse_ok("at", text);
    ASSERT_EQ(s.kind, CEL_SCHED_AT);
    return s.at;
}

static void test_at_forms(void)
{
    struct cel_sched_at a = at_ok("2026-12-24T18:00");
    ASSERT_EQ(a.year, 2026);
    ASSERT_EQ(a.month, 12);
    ASSERT_EQ(a.mday, 24);
    ASSERT_EQ(a.hour, 18);
    ASSERT_EQ(a.min, 0);
    ASSERT_EQ(a.sec, 0);
    ASSERT(!a.has_offset);

    a = at_ok(" 2026-12-24 18:05:09 ");
    ASSERT_EQ(a.min, 5);
    ASSERT_EQ(a.sec, 9);
    ASSERT(!a.has_offset);

    a = at_ok("2026-12-24T18:00Z");
    ASSERT(a.has_offset);
    ASSERT_EQ(a.utc_offset_s, 0);
    a = at_ok("2026-12-24T18:00:00+01:00");
    ASSERT(a.has_offset);
    ASSERT_EQ(a.utc_offset_s, 3600);
    a = at_ok("2026-12-24 18:00-05:30");
    ASSERT_EQ(a.utc_offset_s, -(5 * 3600 + 30 * 60));
    a = at_ok("2026-12-24 18:00+0200");
    ASSERT_EQ(a.utc_offset_s, 7200);
    a = at_ok("2028-02-29 00:00"); /* a leap year */
    ASSERT_EQ(a.mday, 29);
    at_ok("2000-02-29 00:00"); /* divisible by 400 */
}

static void test_at_errors(void)
{
    parse_bad("at", "2026-02-29 10:00", "day '29' is out of range 1-28", "29");
    parse_bad("at", "2100-02-29 10:00", "day '29' is out of range 1-28", "29");
    parse_bad("at", "2026-04-31 10:00", "day '31' is out of range 1-30", "31");
    parse_bad("at", "2026-13-01 10:00", "month '13' is out of range 1-12", "13");
    parse_bad_at("at", "2026-12-24 24:00", "hour '24' is out of range 0-23", 11, 2);
    parse_bad("at", "2026-12-24 18:60", "minute '60' is out of range 0-59", "60");
    parse_bad("at", "2026-12-24 18:00:61", "second '61' is out of range 0-59", "61");
    parse_bad("at", "2026-12-24", "expected 'T' or a blank", NULL);
    parse_bad("at", "2026-12-24 18:00 tomorrow", "unexpected 'tomorrow'", "tomorrow");
    parse_bad("at", "2026-12-24 18:00+15:00", "offset '+15:00' is out of range", "+15:00");
    parse_bad("at", "24/12/2026 18:00", "expected the year", NULL);
    parse_bad("at", "", "empty", NULL);
}

static void test_dispatch(void)
{
    ASSERT_EQ(parse_ok("when", "every 15 minutes").every_s, 900);
    parse_bad("sometimes", "15m", "unknown schedule kind 'sometimes'", NULL);
}

static void test_spec_equal_meaningful_fields(void)
{
    struct cel_sched_spec a = parse_ok("every", "15m"), b = a;
    b.cron.minutes = 12345; /* not meaningful for an interval */
    ASSERT(cel__sched_spec_equal(&a, &b));
    b.every_s = 901;
    ASSERT(!cel__sched_spec_equal(&a, &b));

    a = parse_ok("cron", "0 9 * * 1");
    b = a;
    b.every_s = 7;
    ASSERT(cel__sched_spec_equal(&a, &b));
    b.cron.wday_star = true;
    ASSERT(!cel__sched_spec_equal(&a, &b));
    b = a;
    b.cron.last_mday = true;
    ASSERT(!cel__sched_spec_equal(&a, &b));
    b = a;
    b.cron.seconds = 2;
    ASSERT(!cel__sched_spec_equal(&a, &b));

    a = parse_ok("at", "2026-12-24 18:00+01:00");
    b = parse_ok("at", "2026-12-24 18:00");
    ASSERT(!cel__sched_spec_equal(&a, &b));
    b = parse_ok("at", "2026-12-24T18:00:00+0100");
    ASSERT(cel__sched_spec_equal(&a, &b));

    a = parse_ok("cron", "@reboot");
    b = parse_ok("cron", "@daily");
    ASSERT(!cel__sched_spec_equal(&a, &b));
}

static void test_tick_id(void)
{
    char a[37], b[37], c[37], d[37];
    cel__sched_tick_id("nightly", 1767225600, a);
    cel__sched_tick_id("nightly", 1767225600, b);
    cel__sched_tick_id("nightly", 1767225601, c);
    cel__sched_tick_id("nightlz", 1767225600, d);
    ASSERT_STREQ(a, b);
    ASSERT(strcmp(a, c) != 0);
    ASSERT(strcmp(a, d) != 0);
    ASSERT_EQ(strlen(a), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ASSERT_EQ(a[i], '-');
        else
            ASSERT(strchr("0123456789abcdef", a[i]) != NULL);
    }
    ASSERT(a[14] == '5' || a[14] == '8');  /* version */
    ASSERT(strchr("89ab", a[19]) != NULL); /* RFC 4122 variant */
    /* a fixed value: the id must not change between releases */
    char again[37];
    cel__sched_tick_id("nightly", 1767225600, again);
    ASSERT_STREQ(again, a);
    /* many ids, no collision among neighbouring ticks and names */
    char seen[200][37];
    for (int i = 0; i < 200; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%d", i % 10);
        cel__sched_tick_id(name, 1000 + i / 10, seen[i]);
        for (int j = 0; j < i; j++)
            ASSERT(strcmp(seen[i], seen[j]) != 0);
    }
}

int main(void)
{
    TEST_RUN(test_cron_stars_and_numbers);
    TEST_RUN(test_cron_ranges_steps_lists);
    TEST_RUN(test_cron_names);
    TEST_RUN(test_cron_sunday_is_0_and_7);
    TEST_RUN(test_cron_question_mark_and_last);
    TEST_RUN(test_cron_seconds_field);
    TEST_RUN(test_cron_aliases);
    TEST_RUN(test_cron_errors_name_field_and_token);
    TEST_RUN(test_every_forms);
    TEST_RUN(test_every_errors);
    TEST_RUN(test_at_forms);
    TEST_RUN(test_at_errors);
    TEST_RUN(test_dispatch);
    TEST_RUN(test_spec_equal_meaningful_fields);
    TEST_RUN(test_tick_id);
    return 0;
}
