/* test_tz.c - zones read from TZif files against the C library's own
 * reading of the same files, wall-clock lookups through gaps and folds,
 * footer rules, and refusals (bad names, corrupt files). */
#include "testing.h"

#include <sys/stat.h>
#include <time.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "schedule/tz.h"
#include "schedule/tzif.h"

static const int64_t YEAR_1970 = 0;
static const int64_t YEAR_2100 = 4102444800LL; /* 2100-01-01T00:00:00Z */

static struct cel_tz *load(const char *name)
{
    struct cel_tz *tz = NULL;
    char why[256] = "";
    int rc = cel__tz_load(name, &tz, why, sizeof why);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "cannot load '%s' (%d): %s", name, rc, why);
    return tz;
}

/* Points the C library at the zone `tz_env` (a zone name or a POSIX TZ
 * string), for comparisons only: the code under test never does this. */
static void libc_use(const char *tz_env)
{
    setenv("TZ", tz_env, 1);
    tzset();
}

static void expect_like_libc(const struct cel_tz *tz, int64_t t, const char *what)
{
    time_t tt = (time_t)t;
    struct tm tm;
    ASSERT(localtime_r(&tt, &tm) != NULL);
    struct cel_local_time lt;
    cel__tz_to_local(tz, t, &lt);
    if (lt.year != tm.tm_year + 1900 || lt.month != tm.tm_mon + 1 || lt.mday != tm.tm_mday ||
        lt.hour != tm.tm_hour || lt.min != tm.tm_min || lt.sec != tm.tm_sec ||
        lt.wday != tm.tm_wday || lt.yday != tm.tm_yday || lt.utc_offset_s != tm.tm_gmtoff ||
        lt.dst != (tm.tm_isdst > 0) || strcmp(lt.abbr, tm.tm_zone) != 0)
        cel_test_fail(__FILE__, __LINE__,
                      "%s at %" PRId64 ": got %04d-%02d-%02d %02d:%02d:%02d wday %d yday %d "
                      "%+d %s dst %d; libc %04d-%02d-%02d %02d:%02d:%02d wday %d yday %d "
                      "%+ld %s dst %d",
                      what, t, lt.year, lt.month, lt.mday, lt.hour, lt.min, lt.sec, lt.wday,
                      lt.yday, lt.utc_offset_s, lt.abbr, lt.dst, tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_wday, tm.tm_yday,
                      tm.tm_gmtoff, tm.tm_zone, tm.tm_isdst);
}

/* Deterministic pseudo-random instants in [lo, hi). */
static int64_t next_instant(uint64_t *state, int64_t lo, int64_t hi)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (int64_t)((*state >> 11) % (uint64_t)(hi - lo));
}

/* Every change of offset between 1970 and 2100 (from the file's table and
 * then its footer rule) one second before, at and after, plus thousands
 * of instants in between. Returns how many changes it saw. */
static int compare_with_libc(const struct cel_tz *tz, const char *what)
{
    int changes = 0;
    struct cel_tz_span sp;
    cel__tz_span(tz, YEAR_1970, &sp);
    while (sp.end < YEAR_2100) {
        for (int64_t d = -1; d <= 1; d++)
            expect_like_libc(tz, sp.end + d, what);
        changes++;
        cel__tz_span(tz, sp.end, &sp);
    }
    uint64_t state = 42;
    for (int i = 0; i < 4000; i++)
        expect_like_libc(tz, next_instant(&state, YEAR_1970, YEAR_2100), what);
    return changes;
}

static void test_to_local_matches_libc(void)
{
    static const struct {
        const char *name;
        int min_changes; /* offset changes 1970-2100 it must have */
    } zones[] = {
        {"Europe/London", 250},
        {"America/New_York", 250},
        {"Australia/Lord_Howe", 200},
        {"Asia/Kolkata", 0},
        {"America/Sao_Paulo", 60},
        {"Pacific/Apia", 20},
        {"UTC", 0},
        {"Etc/UTC", 0},
        {"America/Nuuk", 100},
        {"Asia/Jerusalem", 200},
    };
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        struct cel_tz *tz = load(zones[i].name);
        ASSERT_STREQ(cel__tz_name(tz), zones[i].name);
        libc_use(zones[i].name);
        int changes = compare_with_libc(tz, zones[i].name);
        if (changes < zones[i].min_changes)
            cel_test_fail(__FILE__, __LINE__, "%s: only %d changes", zones[i].name, changes);
        cel__tz_free(tz);
    }
    unsetenv("TZ");
    tzset();
}

/* A version 2 TZif file with no transitions and one type: all it says is
 * its footer rule. */
static size_t footer_only_tzif(const char *rule, unsigned char *buf, size_t cap)
{
    static const unsigned char type_and_chars[] = {0, 0, 0, 0, 0, 0, 'X', 'X', 'X', 0};
    size_t n = 0;
    for (int block = 0; block < 2; block++) {
        memset(buf + n, 0, 44);
        memcpy(buf + n, "TZif2", 5);
        buf[n + 39] = 1; /* typecnt */
        buf[n + 43] = 4; /* charcnt */
        n += 44;
        memcpy(buf + n, type_and_chars, sizeof type_and_chars);
        n += sizeof type_and_chars;
    }
    n += (size_t)snprintf((char *)buf + n, cap - n, "\n%s\n", rule);
    ASSERT(n < cap);
    return n;
}

static void test_footer_rules_match_libc(void)
{
    static const char *rules[] = {
        "GMT0BST,M3.5.0/1,M10.5.0",
        "EST5EDT,M3.2.0,M11.1.0",
        "<+0530>-5:30",
        "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
        "NZST-12NZDT,M9.5.0,M4.1.0/3",
        "AAA3BBB,J60/2,J300/2",            /* Jn: Feb 29 never counted */
        "AAA3BBB,59/2,299/2",              /* n: Feb 29 counted */
        "<-02>2<-01>,M3.5.0/-1,M10.5.0/0", /* negative time (v3) */
        "IST-2IDT,M3.4.4/26,M10.5.0",      /* past 24 h (v3) */
        "<-0330>3:30<-0230>,M3.2.0/0:01,M11.1.0/0:01",
        "CET-1CEST-2:00:00,M3.5.0/2:00:00,M10.5.0/3",
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        unsigned char file[256];
        size_t len = footer_only_tzif(rules[i], file, sizeof file);
        struct cel_tz *tz = NULL;
        char why[200] = "";
        if (cel__tz_parse(file, len, rules[i], &tz, why, sizeof why) != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "rule '%s' refused: %s", rules[i], why);
        libc_use(rules[i]);
        compare_with_libc(tz, rules[i]);
        cel__tz_free(tz);
    }
    unsetenv("TZ");
    tzset();
}

/* Debian may install "slim" files: transitions only as far as the rules
 * changed, the footer rule for everything after. zic (in every glibc
 * install) makes some from a small source; the C library reads the same
 * files through TZDIR. */
static void test_slim_files_match_libc(void)
{
    static const char source[] = "Rule EU 1977 1980 - Apr Sun>=1 1:00u 1:00 S\n"
                                 "Rule EU 1977 only - Sep lastSun 1:00u 0 -\n"
                                 "Rule EU 1978 only - Oct 1 1:00u 0 -\n"
                                 "Rule EU 1979 1995 - Sep lastSun 1:00u 0 -\n"
                                 "Rule EU 1981 max - Mar lastSun 1:00u 1:00 S\n"
                                 "Rule EU 1996 max - Oct lastSun 1:00u 0 -\n"
                                 "Zone Test/Europe 0:00 - GMT 1990\n"
                                 "\t1:00 EU CE%sT\n"
                                 "Rule AN 2001 2007 - Oct lastSun 2:00s 1:00 D\n"
                                 "Rule AN 2006 only - Apr Sun>=1 2:00s 0 S\n"
                                 "Rule AN 2007 only - Mar lastSun 2:00s 0 S\n"
                                 "Rule AN 2008 max - Apr Sun>=1 2:00s 0 S\n"
                                 "Rule AN 2008 max - Oct Sun>=1 2:00s 1:00 D\n"
                                 "Zone Test/South 10:00 AN AE%sT\n"
                                 "Rule LH 2008 max - Apr Sun>=1 2:00 0 -\n"
                                 "Rule LH 2008 max - Oct Sun>=1 2:00 0:30 -\n"
                                 "Zone Test/Half 10:30 LH +1030/+11\n";
    char dir[4096], src[4200];
    snprintf(dir, sizeof dir, "%s/zones", cel_test_dir());
    snprintf(src, sizeof src, "%s/zones.src", cel_test_dir());
    FILE *f = fopen(src, "w");
    ASSERT(f != NULL);
    ASSERT(fputs(source, f) >= 0);
    ASSERT_OK(fclose(f));
    char *argv[] = {
        (char *)"/usr/sbin/zic", (char *)"-b", (char *)"slim", (char *)"-d", dir, src, NULL};
    char *out = NULL, *err = NULL;
    int st = cel_test_run(argv, 20000, &out, &err);
    if (st != 0)
        cel_test_fail(__FILE__, __LINE__, "zic failed (%d): %s", st, err ? err : "");
    free(out);
    free(err);
    setenv("TZDIR", dir, 1);
    const char *names[] = {"Test/Europe", "Test/South", "Test/Half"};
    for (int i = 0; i < 3; i++) {
        struct cel_tz *tz = load(names[i]);
        ASSERT(tz->has_rule);
        ASSERT(tz->ntimes < 60); /* slim indeed: the rule does the rest */
        libc_use(names[i]);
        if (compare_with_libc(tz, names[i]) < 150)
            cel_test_fail(__FILE__, __LINE__, "%s: too few changes", names[i]);
        cel__tz_free(tz);
    }
    unsetenv("TZDIR");
    unsetenv("TZ");
    tzset();
}

static void test_footer_rules_refused(void)
{
    static const char *rules[] = {
        "G0",
        "GMT",
        "GMT0BST,M3.5.0",
        "GMT0BST,M13.5.0,M10.5.0",
        "GMT0BST,M3.6.0,M10.5.0",
        "GMT0BST,M3.5.7,M10.5.0",
        "GMT0BST,J0,J365",
        "GMT0BST,366,0",
        "GMT25",
        "<+05",
        "GMT0BST,M3.5.0/168,M10.5.0",
        "GMT0BST,M3.5.0,M10.5.0x",
        "GMT0BST,M3.5.",
        "EST5EDT,M3.2.0/1:60,M11.1.0",
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        unsigned char file[256];
        size_t len = footer_only_tzif(rules[i], file, sizeof file);
        struct cel_tz *tz = NULL;
        char why[200] = "";
        int rc = cel__tz_parse(file, len, "x", &tz, why, sizeof why);
        if (rc != CEL_EPROTO || tz || !why[0])
            cel_test_fail(__FILE__, __LINE__, "rule '%s' accepted (%d)", rules[i], rc);
    }
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    return cel__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

static int64_t utc_text(const char *iso)
{
    int64_t us;
    if (cel__iso8601_parse(iso, &us) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "bad date in the test: %s", iso);
    return us / 1000000;
}

static void test_from_local_gaps_and_folds(void)
{
    static const struct {
        const char *zone;
        int year, month, mday, hour, min;
        int n;                      /* 0 gap, 1, 2 fold */
        const char *first, *second; /* UTC */
    } cases[] = {
        /* 2026-03-29: 01:00 GMT becomes 02:00 BST; 01:30 never shows. */
        {"Europe/London", 2026, 3, 29, 1, 30, 0, "2026-03-29T01:00:00Z", "2026-03-29T01:00:00Z"},
        {"Europe/London", 2026, 3, 29, 0, 59, 1, "2026-03-29T00:59:00Z", "2026-03-29T00:59:00Z"},
        {"Europe/London", 2026, 3, 29, 2, 0, 1, "2026-03-29T01:00:00Z", "2026-03-29T01:00:00Z"},
        /* 2026-10-25: 02:00 BST becomes 01:00 GMT; 01:30 shows twice. */
        {"Europe/London", 2026, 10, 25, 1, 30, 2, "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"},
        {"Europe/London", 2026, 10, 25, 2, 0, 1, "2026-10-25T02:00:00Z", "2026-10-25T02:00:00Z"},
        {"Europe/London", 2026, 7, 1, 12, 0, 1, "2026-07-01T11:00:00Z", "2026-07-01T11:00:00Z"},
        /* Past the file's table (2037): the footer rule. 2050-03-27 and
         * 2050-10-30 are the last Sundays of their months. */
        {"Europe/London", 2050, 3, 27, 1, 30, 0, "2050-03-27T01:00:00Z", "2050-03-27T01:00:00Z"},
        {"Europe/London", 2050, 10, 30, 1, 30, 2, "2050-10-30T00:30:00Z", "2050-10-30T01:30:00Z"},
        /* 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC). */
        {"America/New_York", 2026, 3, 8, 2, 30, 0, "2026-03-08T07:00:00Z", "2026-03-08T07:00:00Z"},
        /* 2026-11-01: 02:00 EDT becomes 01:00 EST. */
        {"America/New_York", 2026, 11, 1, 1, 30, 2, "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
        {"America/New_York", 2026, 11, 1, 0, 30, 1, "2026-11-01T04:30:00Z", "2026-11-01T04:30:00Z"},
        /* Lord Howe moves by 30 minutes: 2026-10-04 02:00 +1030 becomes
         * 02:30 +11. */
        {"Australia/Lord_Howe", 2026, 10, 4, 2, 15, 0, "2026-10-03T15:30:00Z",
         "2026-10-03T15:30:00Z"},
        /* Apia skipped 2011-12-30 whole, going from -10 to +14. */
        {"Pacific/Apia", 2011, 12, 30, 12, 0, 0, "2011-12-30T10:00:00Z", "2011-12-30T10:00:00Z"},
        {"UTC", 2026, 3, 29, 1, 30, 1, "2026-03-29T01:30:00Z", "2026-03-29T01:30:00Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cel_tz *tz = load(cases[i].zone);
        int64_t first = -1, second = -1;
        int n = cel__tz_from_local(tz, cases[i].year, cases[i].month, cases[i].mday, cases[i].hour,
                                   cases[i].min, 0, &first, &second);
        if (n != cases[i].n || first != utc_text(cases[i].first) ||
            second != utc_text(cases[i].second))
            cel_test_fail(
                __FILE__, __LINE__,
                "%s %04d-%02d-%02d %02d:%02d: got %d %" PRId64 " %" PRId64 ", want %d %s %s",
                cases[i].zone, cases[i].year, cases[i].month, cases[i].mday, cases[i].hour,
                cases[i].min, n, first, second, cases[i].n, cases[i].first, cases[i].second);
        cel__tz_free(tz);
    }
}

static void expect_refused(const char *name, int want_rc)
{
    struct cel_tz *tz = (struct cel_tz *)1;
    char why[256] = "";
    int rc = cel__tz_load(name, &tz, why, sizeof why);
    if (rc != want_rc || tz != NULL || !why[0])
        cel_test_fail(__FILE__, __LINE__, "'%s': rc %d (want %d), why '%s'", name ? name : "NULL",
                      rc, want_rc, why);
}

static void test_bad_names_refused(void)
{
    expect_refused("../etc/passwd", CEL_EINVAL);
    expect_refused("Europe/../../etc/passwd", CEL_EINVAL);
    expect_refused("/etc", CEL_EINVAL);
    expect_refused("/usr/share/zoneinfo/UTC", CEL_EINVAL);
    expect_refused("", CEL_EINVAL);
    expect_refused(NULL, CEL_EINVAL);
    expect_refused("Europe/London;rm", CEL_EINVAL);
    expect_refused("Europe/Lon don", CEL_EINVAL);
    expect_refused("Mars/Olympus_Mons", CEL_ENOTFOUND);
    expect_refused("Europe", CEL_ENOTFOUND); /* a directory */
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    ASSERT_OK(fclose(f));
}

static void test_corrupt_files_refused(void)
{
    size_t len = 0;
    unsigned char *good =
        (unsigned char *)cel_test_read_file("/usr/share/zoneinfo/Europe/London", &len);
    ASSERT(good != NULL && len > 1000);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/zones", cel_test_dir());
    ASSERT_OK(mkdir(dir, 0700));
    setenv("TZDIR", dir, 1);

    char path[4200];
    snprintf(path, sizeof path, "%s/Good", dir);
    write_file(path, good, len);
    struct cel_tz *tz = load("Good"); /* read from $TZDIR */
    struct cel_local_time lt;
    cel__tz_to_local(tz, utc(2026, 7, 1, 12, 0, 0), &lt);
    ASSERT_EQ(lt.utc_offset_s, 3600);
    ASSERT_STREQ(lt.abbr, "BST");
    cel__tz_free(tz);

    /* Cut at every length: refused, never a crash (ASan watches). */
    snprintf(path, sizeof path, "%s/Bad", dir);
    for (size_t cut = 0; cut < len; cut += cut < 100 ? 1 : 37) {
        write_file(path, good, cut);
        expect_refused("Bad", CEL_EPROTO);
    }
    /* Counts that promise more than the file holds. */
    unsigned char *bad = malloc(len);
    ASSERT(bad != NULL);
    memcpy(bad, good, len);
    bad[32] = 0x7f; /* timecnt of the first header */
    write_file(path, bad, len);
    expect_refused("Bad", CEL_EPROTO);
    /* Transitions out of order, in the 64-bit block (the one read). */
    memcpy(bad, good, len);
    size_t timecnt = (size_t)good[32] << 24 | (size_t)good[33] << 16 | good[34] << 8 | good[35];
    size_t typecnt = good[39], charcnt = good[43];
    size_t v2 = 44 + timecnt * 5 + typecnt * 6 + charcnt + good[23] + good[27] + 44;
    ASSERT(timecnt > 2 && v2 + 16 < len);
    memcpy(bad + v2 + 8, bad + v2, 8);
    write_file(path, bad, len);
    expect_refused("Bad", CEL_EPROTO);
    write_file(path, "not a zone\n", 11);
    expect_refused("Bad", CEL_EPROTO);

    /* UTC needs no file at all. */
    const char *utc_names[] = {"UTC", "Etc/UTC", "Z"};
    for (int i = 0; i < 3; i++) {
        tz = load(utc_names[i]);
        cel__tz_to_local(tz, utc(2026, 7, 1, 12, 0, 0), &lt);
        ASSERT_EQ(lt.utc_offset_s, 0);
        ASSERT_EQ(lt.hour, 12);
        ASSERT_STREQ(cel__tz_name(tz), utc_names[i]);
        cel__tz_free(tz);
    }
    unsetenv("TZDIR");
    free(bad);
    free(good);
}

static void test_days_in_month(void)
{
    ASSERT_EQ(cel__days_in_month(2026, 1), 31);
    ASSERT_EQ(cel__days_in_month(2026, 2), 28);
    ASSERT_EQ(cel__days_in_month(2028, 2), 29);
    ASSERT_EQ(cel__days_in_month(2100, 2), 28);
    ASSERT_EQ(cel__days_in_month(2000, 2), 29);
    ASSERT_EQ(cel__days_in_month(2026, 4), 30);
    ASSERT_EQ(cel__days_in_month(2026, 12), 31);
    ASSERT_EQ(cel__days_in_month(2026, 13), 0);
}

static void test_civil_round_trip(void)
{
    for (int64_t days = -800000; days < 800000; days += 13) {
        int y, m, d;
        cel__civil_from_days(days, &y, &m, &d);
        ASSERT(m >= 1 && m <= 12 && d >= 1 && d <= cel__days_in_month(y, m));
        ASSERT_EQ(cel__days_from_civil(y, m, d), days);
    }
}

int main(void)
{
    TEST_RUN(test_to_local_matches_libc);
    TEST_RUN(test_footer_rules_match_libc);
    TEST_RUN(test_slim_files_match_libc);
    TEST_RUN(test_footer_rules_refused);
    TEST_RUN(test_from_local_gaps_and_folds);
    TEST_RUN(test_bad_names_refused);
    TEST_RUN(test_corrupt_files_refused);
    TEST_RUN(test_days_in_month);
    TEST_RUN(test_civil_round_trip);
    return 0;
}
