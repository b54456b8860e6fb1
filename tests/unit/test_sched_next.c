/* test_sched_next.c - next-run times against tables computed by hand
 * (expected instants are written as UTC), across daylight saving
 * changes, and against a second-by-second search for entries that follow
 * elapsed time. Specs are built field by field, independent of the
 * parsers. */
#include "testing.h"

#include "celeriac/error.h"
#include "core/clock.h"
#include "schedule/spec.h"
#include "schedule/tz.h"

static uint64_t bits(int lo, int hi, int step)
{
    uint64_t b = 0;
    for (int i = lo; i <= hi; i += step)
        b |= 1ULL << i;
    return b;
}

/* "sec min hour * * *" with every day and month; callers narrow it. */
static struct cel_sched_spec cron(uint64_t seconds, uint64_t minutes, uint32_t hours)
{
    struct cel_sched_spec s = {.kind = CEL_SCHED_CRON};
    s.cron.seconds = seconds;
    s.cron.minutes = minutes;
    s.cron.hours = hours;
    s.cron.mdays = (uint32_t)bits(1, 31, 1);
    s.cron.months = (uint16_t)bits(1, 12, 1);
    s.cron.wdays = (uint8_t)bits(0, 6, 1);
    s.cron.mday_star = true;
    s.cron.wday_star = true;
    return s;
}

static const uint32_t ANY_HOUR = (1u << 24) - 1;

static int64_t at_utc(const char *iso)
{
    int64_t us;
    if (cel__iso8601_parse(iso, &us) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "bad date in the test: %s", iso);
    return us / 1000000;
}

static void show(int64_t t, char *buf, size_t len)
{
    if (t == 0)
        snprintf(buf, len, "none");
    else
        cel__iso8601(t * 1000000, false, buf, len);
}

static struct cel_tz *zone(const char *name)
{
    struct cel_tz *tz = NULL;
    char why[256] = "";
    if (cel__tz_load(name, &tz, why, sizeof why) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "cannot load %s: %s", name, why);
    return tz;
}

/* Runs after `after`, one after the other, must be exactly `want` (a
 * NULL-terminated list of UTC times; "none" for no further run). */
#define EXPECT_RUNS(spec, tz, anchor, after, ...)                                                  \
    expect_runs(__LINE__, spec, tz, anchor, after, (const char *[]){__VA_ARGS__, NULL})

static void expect_runs(int line, const struct cel_sched_spec *s, const char *tz_name,
                        int64_t anchor, const char *after, const char *const *want)
{
    struct cel_tz *tz = tz_name ? zone(tz_name) : NULL;
    int64_t t = at_utc(after);
    for (int i = 0; want[i]; i++) {
        int64_t next = cel__sched_next(s, tz, anchor, t);
        int64_t expected = strcmp(want[i], "none") == 0 ? 0 : at_utc(want[i]);
        if (next != expected) {
            char got[48], prev[48];
            show(next, got, sizeof got);
            show(t, prev, sizeof prev);
            cel_test_fail(__FILE__, line, "%s: run %d after %s: got %s, want %s",
                          tz_name ? tz_name : "UTC", i + 1, prev, got, want[i]);
        }
        if (next == 0)
            break;
        t = next;
    }
    cel__tz_free(tz);
}

static void test_every_15_minutes(void)
{
    struct cel_sched_spec s = cron(1, bits(0, 59, 15), ANY_HOUR);
    EXPECT_RUNS(&s, NULL, 0, "2026-01-01T00:07:00Z", "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z",
                "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z");
    /* Strictly after: a run at `after` itself is the previous one. */
    EXPECT_RUNS(&s, NULL, 0, "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z");
    /* Across a year end. */
    EXPECT_RUNS(&s, "UTC", 0, "2026-12-31T23:50:00Z", "2027-01-01T00:00:00Z",
                "2027-01-01T00:15:00Z");
}

static void test_daily_london_across_dst(void)
{
    struct cel_sched_spec s = cron(1, 1ULL << 30, 1u << 9); /* 09:30 */
    /* Summer time starts 2026-03-29: 09:30 GMT, then 09:30 BST (08:30Z). */
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-03-27T12:00:00Z", "2026-03-28T09:30:00Z",
                "2026-03-29T08:30:00Z", "2026-03-30T08:30:00Z");
    /* And ends 2026-10-25. */
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-10-23T12:00:00Z", "2026-10-24T08:30:00Z",
                "2026-10-25T09:30:00Z", "2026-10-26T09:30:00Z");
}

static void test_fixed_hour_in_gap_and_fold(void)
{
    /* 02:30 daily in New York: on 2026-03-08 02:00 EST jumps to 03:00 EDT
     * (07:00Z), so the run is once, at 03:00 EDT. */
    struct cel_sched_spec s = cron(1, 1ULL << 30, 1u << 2);
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-03-06T12:00:00Z", "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z");
    /* 01:30 daily: on 2026-11-01 01:30 shows twice (05:30Z EDT, 06:30Z
     * EST); the run is once, at the first. */
    s = cron(1, 1ULL << 30, 1u << 1);
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-10-30T12:00:00Z", "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z");
    /* Asked from inside the second pass of the fold: that day's run is
     * done, the next is the day after. */
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-11-01T06:00:00Z", "2026-11-02T06:30:00Z");
    /* Every 30 minutes of hour 1 on the fall-back day: the first pass
     * only. */
    s = cron(1, bits(0, 59, 30), 1u << 1);
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z", "2026-11-02T06:00:00Z");
    /* Every 30 minutes of hour 2 on the spring-forward day: 02:00 and
     * 02:30 both fall in the gap and land on its end, once. */
    s = cron(1, bits(0, 59, 30), 1u << 2);
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z",
                "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z");
    /* Lord Howe moves by half an hour: 2026-10-04 02:00 +1030 becomes
     * 02:30 +11 (15:30Z the day before); 02:15 runs at the gap's end. */
    s = cron(1, 1ULL << 15, 1u << 2);
    EXPECT_RUNS(&s, "Australia/Lord_Howe", 0, "2026-10-02T00:00:00Z", "2026-10-02T15:45:00Z",
                "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z");
}

static void test_any_hour_follows_elapsed_time(void)
{
    struct cel_sched_spec s = cron(1, bits(0, 59, 30), ANY_HOUR);
    /* Fall back, 2026-11-01: 01:00 and 01:30 run in EDT and again in EST. */
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-11-01T04:45:00Z", "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z",
                "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z");
    /* Spring forward, 2026-03-08: 02:00 and 02:30 never show. */
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-03-08T06:15:00Z", "2026-03-08T06:30:00Z",
                "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z");
}

static void test_last_day_of_month(void)
{
    struct cel_sched_spec s = cron(1, 1, 1); /* 00:00:00 */
    s.cron.mdays = 0;
    s.cron.last_mday = true;
    s.cron.mday_star = false;
    EXPECT_RUNS(&s, NULL, 0, "2027-01-15T00:00:00Z", "2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z",
                "2027-03-31T00:00:00Z", "2027-04-30T00:00:00Z");
    EXPECT_RUNS(&s, NULL, 0, "2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z",
                "2028-03-31T00:00:00Z");
    /* "L" with February only. */
    s.cron.months = 1u << 2;
    EXPECT_RUNS(&s, NULL, 0, "2026-03-01T00:00:00Z", "2027-02-28T00:00:00Z", "2028-02-29T00:00:00Z",
                "2029-02-28T00:00:00Z");
}

static void test_leap_day_and_impossible_dates(void)
{
    struct cel_sched_spec s = cron(1, 1, 1);
    s.cron.mdays = 1u << 29;
    s.cron.months = 1u << 2;
    s.cron.mday_star = false;
    EXPECT_RUNS(&s, NULL, 0, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z",
                "2032-02-29T00:00:00Z");
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    /* February 30 and April 31 never come: no run, and quickly. */
    s.cron.mdays = 1u << 30;
    int64_t t0 = cel_test_now_ms();
    EXPECT_RUNS(&s, NULL, 0, "2026-03-01T00:00:00Z", "none");
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-03-01T00:00:00Z", "none");
    s.cron.mdays = 1u << 31;
    s.cron.months = 1u << 4;
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-03-01T00:00:00Z", "none");
    /* Every second of an impossible day, in a zone with changes. */
    s = cron(bits(0, 59, 1), bits(0, 59, 1), ANY_HOUR);
    s.cron.mdays = 1u << 30;
    s.cron.months = 1u << 2;
    s.cron.mday_star = false;
    EXPECT_RUNS(&s, "Australia/Lord_Howe", 0, "2026-03-01T00:00:00Z", "none");
    ASSERT(cel_test_now_ms() - t0 < 1000);
}

static void test_seconds_field(void)
{
    struct cel_sched_spec s = cron(bits(0, 59, 10), bits(0, 59, 1), ANY_HOUR);
    EXPECT_RUNS(&s, NULL, 0, "2026-05-05T10:59:45Z", "2026-05-05T10:59:50Z", "2026-05-05T11:00:00Z",
                "2026-05-05T11:00:10Z");
    s = cron(bits(0, 59, 10), 1ULL << 30, 1u << 9); /* */
    EXPECT_RUNS(&s, NULL, 0, "2026-05-05T09:30:45Z", "2026-05-05T09:30:50Z", "2026-05-06T09:30:00Z",
                "2026-05-06T09:30:10Z");
    /* Seconds in London's local time, across the spring-forward instant
     * (01:00Z: 00:59:50 GMT, then 02:00:00 BST). */
    s = cron(bits(0, 59, 10), bits(0, 59, 1), ANY_HOUR);
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-03-29T00:59:45Z", "2026-03-29T00:59:50Z",
                "2026-03-29T01:00:00Z", "2026-03-29T01:00:10Z");
}

static void test_day_fields(void)
{
    /* 13th and Friday both restricted: either runs (April 2026: Fridays
     * 3, 10, 17, 24; the 13th a Monday; May 1 a Friday, May 13 a
     * Wednesday). */
    struct cel_sched_spec s = cron(1, 1, 1);
    s.cron.mdays = 1u << 13;
    s.cron.wdays = 1u << 5;
    s.cron.mday_star = false;
    s.cron.wday_star = false;
    EXPECT_RUNS(&s, NULL, 0, "2026-04-01T00:00:00Z", "2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z",
                "2026-04-13T00:00:00Z", "2026-04-17T00:00:00Z", "2026-04-24T00:00:00Z",
                "2026-05-01T00:00:00Z", "2026-05-08T00:00:00Z", "2026-05-13T00:00:00Z");
    /* The 13th with day-of-week '*': the 13ths only. */
    s.cron.wdays = (uint8_t)bits(0, 6, 1);
    s.cron.wday_star = true;
    EXPECT_RUNS(&s, NULL, 0, "2026-04-01T00:00:00Z", "2026-04-13T00:00:00Z",
                "2026-05-13T00:00:00Z");
    /* Friday with day-of-month '*': Fridays only. */
    s.cron.mdays = (uint32_t)bits(1, 31, 1);
    s.cron.mday_star = true;
    s.cron.wdays = 1u << 5;
    s.cron.wday_star = false;
    EXPECT_RUNS(&s, NULL, 0, "2026-04-01T00:00:00Z", "2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z",
                "2026-04-17T00:00:00Z");
    /* Friday the 13th, written as a wday-restricted day of the 13th
     * alone is impossible in cron: Vixie's rule makes it "either". Weekday
     * ranges: mon-fri at 09:00 from a Friday afternoon. */
    s = cron(1, 1, 1u << 9);
    s.cron.wdays = (uint8_t)bits(1, 5, 1);
    s.cron.wday_star = false;
    EXPECT_RUNS(&s, NULL, 0, "2026-04-03T10:00:00Z", "2026-04-06T09:00:00Z",
                "2026-04-07T09:00:00Z");
    /* sat,sun in New York (EDT, -4). */
    s.cron.wdays = 1u << 0 | 1u << 6;
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-04-01T00:00:00Z", "2026-04-04T13:00:00Z",
                "2026-04-05T13:00:00Z", "2026-04-11T13:00:00Z");
    /* A month list: January and July, 1st at 00:00 London time. */
    s = cron(1, 1, 1);
    s.cron.mdays = 1u << 1;
    s.cron.mday_star = false;
    s.cron.months = 1u << 1 | 1u << 7;
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-02-01T00:00:00Z", "2026-06-30T23:00:00Z",
                "2027-01-01T00:00:00Z", "2027-06-30T23:00:00Z");
}

static void test_interval_anchored(void)
{
    struct cel_sched_spec s = {.kind = CEL_SCHED_INTERVAL, .every_s = 900};
    int64_t anchor = at_utc("2026-01-01T00:00:07Z");
    EXPECT_RUNS(&s, NULL, anchor, "2026-01-01T00:00:07Z", "2026-01-01T00:15:07Z",
                "2026-01-01T00:30:07Z");
    /* Late: the next run keeps the anchor's phase, no drift. */
    EXPECT_RUNS(&s, NULL, anchor, "2026-01-01T00:20:00Z", "2026-01-01T00:30:07Z");
    EXPECT_RUNS(&s, "America/New_York", anchor, "2026-03-08T06:59:59Z", "2026-03-08T07:00:07Z");
    /* Before the anchor: the first run is one period after it. */
    EXPECT_RUNS(&s, NULL, anchor, "2025-12-31T00:00:00Z", "2026-01-01T00:15:07Z");
    s.every_s = 0;
    EXPECT_RUNS(&s, NULL, anchor, "2026-01-01T00:00:00Z", "none");
}

static void test_at(void)
{
    struct cel_sched_spec s = {.kind = CEL_SCHED_AT};
    s.at = (struct cel_sched_at){2026, 12, 24, 18, 0, 0, false, 0};
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-12-01T00:00:00Z", "2026-12-24T18:00:00Z", "none");
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-12-01T00:00:00Z", "2026-12-24T23:00:00Z", "none");
    EXPECT_RUNS(&s, NULL, 0, "2026-12-01T00:00:00Z", "2026-12-24T18:00:00Z");
    /* Its own offset wins over the zone. */
    s.at.has_offset = true;
    s.at.utc_offset_s = 3600;
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-12-01T00:00:00Z", "2026-12-24T17:00:00Z");
    /* In the past, or at `after` itself: none. */
    EXPECT_RUNS(&s, "America/New_York", 0, "2027-01-01T00:00:00Z", "none");
    EXPECT_RUNS(&s, "America/New_York", 0, "2026-12-24T17:00:00Z", "none");
    /* In a gap: its end; in a fold: the first instant. */
    s.at = (struct cel_sched_at){2026, 3, 29, 1, 30, 0, false, 0};
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-03-01T00:00:00Z", "2026-03-29T01:00:00Z");
    s.at = (struct cel_sched_at){2026, 10, 25, 1, 30, 0, false, 0};
    EXPECT_RUNS(&s, "Europe/London", 0, "2026-10-01T00:00:00Z", "2026-10-25T00:30:00Z");
    /* A date that does not exist. */
    s.at = (struct cel_sched_at){2026, 2, 30, 0, 0, 0, false, 0};
    EXPECT_RUNS(&s, NULL, 0, "2026-01-01T00:00:00Z", "none");
}

static void test_reboot_has_no_next(void)
{
    struct cel_sched_spec s = {.kind = CEL_SCHED_REBOOT};
    EXPECT_RUNS(&s, NULL, 0, "2026-01-01T00:00:00Z", "none");
}

/* Entries with hours '*' run whenever the wall clock shows a matching
 * time: checked second by second over days around every change of 2026
 * in a few zones. */
static void test_any_hour_matches_brute_force(void)
{
    /* Two days from each start, which is shortly before a change. */
    static const struct {
        const char *zone, *start;
    } windows[] = {
        {"Europe/London", "2026-03-28T12:00:00Z"},
        {"Europe/London", "2026-10-24T12:00:00Z"},
        {"America/New_York", "2026-03-07T12:00:00Z"},
        {"America/New_York", "2026-10-31T12:00:00Z"},
        {"Australia/Lord_Howe", "2026-04-04T00:00:00Z"},
        {"Australia/Lord_Howe", "2026-10-03T00:00:00Z"},
        {"Pacific/Apia", "2011-12-29T12:00:00Z"},      /* skipped a day */
        {"America/Sao_Paulo", "2018-11-03T12:00:00Z"}, /* at midnight */
        {"America/Sao_Paulo", "2019-02-16T12:00:00Z"},
        {"Asia/Kolkata", "2026-01-10T00:00:00Z"}, /* no change */
    };
    struct cel_sched_spec specs[] = {
        cron(1, bits(0, 59, 30), ANY_HOUR),
        cron(1, bits(5, 59, 7), ANY_HOUR),
        cron(bits(0, 59, 15), bits(0, 59, 1), ANY_HOUR),
        cron(1, 1ULL << 45, ANY_HOUR),
    };
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        struct cel_tz *tz = zone(windows[w].zone);
        for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
            const struct cel_sched_cron *c = &specs[k].cron;
            int64_t t = at_utc(windows[w].start), end = t + 2 * 86400;
            int64_t next = cel__sched_next(&specs[k], tz, 0, t);
            for (int64_t u = t + 1; u < end; u++) {
                struct cel_local_time lt;
                cel__tz_to_local(tz, u, &lt);
                if (!(c->seconds >> lt.sec & 1) || !(c->minutes >> lt.min & 1))
                    continue;
                if (next != u)
                    cel_test_fail(__FILE__, __LINE__,
                                  "%s from %s spec %zu: got %" PRId64 ", brute force %" PRId64,
                                  windows[w].zone, windows[w].start, k, next, u);
                next = cel__sched_next(&specs[k], tz, 0, u);
            }
            ASSERT(next >= end);
        }
        cel__tz_free(tz);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Entries with fixed hours run once per matching wall-clock time: at its
 * only instant, the first of a fold's two, or a gap's end. Checked
 * against those instants, found minute by minute with from_local. */
static void test_fixed_hours_match_from_local(void)
{
    static const char *zones[] = {"Europe/London", "America/New_York", "Australia/Lord_Howe",
                                  "Pacific/Apia", "America/Sao_Paulo"};
    struct cel_sched_spec specs[] = {
        cron(1, bits(0, 59, 30), 1u << 1 | 1u << 2),
        cron(1, 1ULL << 15, 1u << 2),
        cron(1, 1, 1),
        cron(1, bits(0, 59, 20), (uint32_t)bits(0, 3, 1)),
        cron(1, bits(0, 59, 1), 1u << 2 | 1u << 12),
    };
    const char *starts[] = {"2011-12-28T00:00:00Z", "2018-11-02T00:00:00Z", "2019-02-14T00:00:00Z",
                            "2026-03-06T00:00:00Z", "2026-03-27T00:00:00Z", "2026-04-03T00:00:00Z",
                            "2026-10-02T00:00:00Z", "2026-10-23T00:00:00Z", "2026-10-30T00:00:00Z"};
    enum { DAYS = 4, MAX_RUNS = DAYS * 24 * 60 };
    int64_t *want = malloc(MAX_RUNS * sizeof *want);
    ASSERT(want != NULL);
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        struct cel_tz *tz = zone(zones[z]);
        for (size_t w = 0; w < sizeof starts / sizeof starts[0]; w++)
            for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
                const struct cel_sched_cron *c = &specs[k].cron;
                int64_t day0 = at_utc(starts[w]) / 86400;
                size_t n = 0;
                for (int64_t m = 0; m < DAYS * 24 * 60; m++) {
                    int hour = (int)(m / 60 % 24), min = (int)(m % 60);
                    if (!(c->hours >> hour & 1) || !(c->minutes >> min & 1))
                        continue;
                    int y, mo, d;
                    cel__civil_from_days(day0 + m / 1440, &y, &mo, &d);
                    int64_t first, second;
                    cel__tz_from_local(tz, y, mo, d, hour, min, 0, &first, &second);
                    if (n == 0 || want[n - 1] != first)
                        want[n++] = first;
                }
                qsort(want, n, sizeof *want, cmp_i64);
                /* Compared from the second day to the last: the first and
                 * last days are partly outside the local window. */
                int64_t lo = (day0 + 1) * 86400, hi = (day0 + DAYS - 1) * 86400;
                int64_t t = lo, next = cel__sched_next(&specs[k], tz, 0, t);
                for (size_t i = 0; i < n; i++) {
                    if (want[i] <= lo || want[i] >= hi || (i > 0 && want[i] == want[i - 1]))
                        continue;
                    if (next != want[i])
                        cel_test_fail(__FILE__, __LINE__,
                                      "%s from %s spec %zu: got %" PRId64 ", want %" PRId64,
                                      zones[z], starts[w], k, next, want[i]);
                    next = cel__sched_next(&specs[k], tz, 0, next);
                }
            }
        cel__tz_free(tz);
    }
    free(want);
}

int main(void)
{
    TEST_RUN(test_every_15_minutes);
    TEST_RUN(test_daily_london_across_dst);
    TEST_RUN(test_fixed_hour_in_gap_and_fold);
    TEST_RUN(test_any_hour_follows_elapsed_time);
    TEST_RUN(test_last_day_of_month);
    TEST_RUN(test_leap_day_and_impossible_dates);
    TEST_RUN(test_seconds_field);
    TEST_RUN(test_day_fields);
    TEST_RUN(test_interval_anchored);
    TEST_RUN(test_at);
    TEST_RUN(test_reboot_has_no_next);
    TEST_RUN(test_any_hour_matches_brute_force);
    TEST_RUN(test_fixed_hours_match_from_local);
    return 0;
}
