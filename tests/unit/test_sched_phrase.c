/* test_sched_phrase.c - English schedules: each phrase equals the cron
 * expression or interval it stands for, every spec renders to English
 * that parses back equal, and a phrase not understood is refused naming
 * the word and where it is. */
#include "testing.h"

#include "celeriac/error.h"
#include "schedule/spec.h"

static struct cel_sched_spec parse_ok(const char *kind, const char *text)
{
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    if (cel__sched_parse(kind, text, &s, &e) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "%s '%s' refused: %s (at %zu)", kind, text, e.msg, e.pos);
    return s;
}

/* Renders s and parses the English back: it must be equal. */
static void assert_round_trip(const struct cel_sched_spec *s, const char *origin)
{
    char text[1024];
    size_t n = cel__sched_render(s, text, sizeof text);
    ASSERT(n > 0 && n < sizeof text);
    ASSERT_EQ(strlen(text), n);
    struct cel_sched_spec back;
    struct cel_sched_error e = {{0}, 0, 0};
    if (cel__sched_parse_phrase(text, &back, &e) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "'%s' rendered as '%s', which is refused: %s", origin,
                      text, e.msg);
    if (!cel__sched_spec_equal(s, &back))
        cel_test_fail(__FILE__, __LINE__, "'%s' rendered as '%s', which parses to another spec",
                      origin, text);
}

static const struct {
    const char *phrase;
    const char *kind; /* of the equivalent */
    const char *same;
} phrases[] = {
    {"every day at 09:30", "cron", "30 9 * * *"},
    {"Every Monday at 8am", "cron", "0 8 * * 1"},
    {"every weekday at 18:00", "cron", "0 18 * * 1-5"},
    {"every weekend at 10am", "cron", "0 10 * * 0,6"},
    {"every monday and friday at 8:30am", "cron", "30 8 * * mon,fri"},
    {"every monday, friday at 8:30 am", "cron", "30 8 * * mon,fri"},
    {"every 1st of the month at midnight", "cron", "0 0 1 * *"},
    {"every 1st and 15th of the month at noon", "cron", "0 12 1,15 * *"},
    {"every last day of the month at 23:00", "cron", "0 23 L * *"},
    {"twice a day", "cron", "0 0,12 * * *"},
    {"every hour", "every", "1h"},
    {"every hour at :15", "cron", "15 * * * *"},
    {"every 15 minutes", "every", "15m"},
    {"every 15 minutes between 9am and 5pm on weekdays", "cron", "*/15 9-16 * * 1-5"},
    {"every day at 9am and 5pm", "cron", "0 9,17 * * *"},
    {"every january 1st at midnight", "cron", "0 0 1 1 *"},
    {"every year on january 1st at midnight", "cron", "0 0 1 1 *"},
    {"every day at noon in january and july", "cron", "0 12 * 1,7 *"},
    {"at 9:30 every day", "cron", "30 9 * * *"},
    {"every day at 12am", "cron", "0 0 * * *"},
    {"every day at 12pm", "cron", "0 12 * * *"},
    {"every day at 9:30:15", "cron", "15 30 9 * * *"},
    {"every 30 seconds", "every", "30s"},
    {"every minute", "every", "60s"},
    {"every 2 hours", "every", "2h"},
    {"every 1 hour 30 minutes", "every", "1h30m"},
    {"every 1.5h", "every", "90m"},
    {"@daily", "cron", "0 0 * * *"},
    {"@weekly", "cron", "0 0 * * 0"},
    {"every 2 hours at :00", "cron", "0 */2 * * *"},
    {"every 30 seconds on mondays", "cron", "*/30 * * * * 1"},
    {"every 10 minutes from 10pm to 2am", "cron", "*/10 22,23,0,1 * * *"},
    {"every 5 minutes of every hour", "cron", "*/5 * * * *"},
    {"every hour between 9am and 6pm", "cron", "0 9-17 * * *"},
    {"every 2 hours between 9am and 5pm", "cron", "0 10,12,14,16 * * *"},
    {"every monday to friday at 7:45pm in december", "cron", "45 19 * 12 1-5"},
    {"on the 1st to 5th of the month at 6am", "cron", "0 6 1-5 * *"},
    {"every friday at 5pm, every 1st of the month", "cron", "0 17 1 * 5"},
    {"at minutes 0 and 30 of every hour during hours 9 to 17 on monday to friday in january",
     "cron", "0,30 9-17 * 1 1-5"},
    {"at seconds 0 and 30 of every minute", "cron", "0,30 * * * * *"},
    {"every hour at :00 to :10", "cron", "0-10 * * * *"},
    {"every hour at :15:30", "cron", "30 15 * * * *"},
    {"every 15 minutes between 9am and midnight", "cron", "*/15 9-23 * * *"},
    {"EVERY SUNDAY AT NOON", "cron", "0 12 * * 0"},
    {"every month on the 15th at 9am", "cron", "0 9 15 * *"},
    {"every day at noon in march to may", "cron", "0 12 * 3-5 *"},
    {"when beat starts", "cron", "@reboot"},
    {"@reboot", "cron", "@reboot"},
    {"once at 2026-12-24 18:00", "at", "2026-12-24T18:00"},
    {"once at 2026-12-24 18:00:30+01:00", "at", "2026-12-24T18:00:30+01:00"},
};

static void test_phrases_equal_their_cron_or_interval(void)
{
    ASSERT(sizeof phrases / sizeof phrases[0] >= 30);
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++) {
        struct cel_sched_spec got = parse_ok("when", phrases[i].phrase);
        struct cel_sched_spec want = parse_ok(phrases[i].kind, phrases[i].same);
        if (!cel__sched_spec_equal(&got, &want))
            cel_test_fail(__FILE__, __LINE__, "'%s' != %s '%s'", phrases[i].phrase, phrases[i].kind,
                          phrases[i].same);
        assert_round_trip(&got, phrases[i].phrase);
    }
}

static void test_phrases_literal_bits(void)
{
    struct cel_sched_spec s = parse_ok("when", "every 15 minutes between 9am and 5pm on weekdays");
    ASSERT_EQ(s.kind, CEL_SCHED_CRON);
    ASSERT_EQ(s.cron.seconds, 1);
    ASSERT_EQ(s.cron.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    ASSERT_EQ(s.cron.hours, 0x1fe00); /* 9..16: the window is half-open */
    ASSERT_EQ(s.cron.wdays, 0x3e);
    ASSERT_EQ(s.cron.mdays, 0xfffffffe);
    ASSERT_EQ(s.cron.months, 0x1ffe);
    ASSERT(s.cron.mday_star && !s.cron.wday_star && !s.cron.last_mday);

    s = parse_ok("when", "twice a day");
    ASSERT_EQ(s.cron.hours, (1u << 0) | (1u << 12));
    ASSERT_EQ(s.cron.minutes, 1);
    ASSERT(s.cron.mday_star && s.cron.wday_star);

    s = parse_ok("when", "every last day of the month at 23:00");
    ASSERT(s.cron.last_mday && !s.cron.mday_star);
    ASSERT_EQ(s.cron.mdays, 0);
    ASSERT_EQ(s.cron.hours, 1u << 23);

    s = parse_ok("when", "every weekend at 10am");
    ASSERT_EQ(s.cron.wdays, (1u << 0) | (1u << 6));
    ASSERT_EQ(s.cron.hours, 1u << 10);

    s = parse_ok("when", "every 15 minutes");
    ASSERT_EQ(s.kind, CEL_SCHED_INTERVAL);
    ASSERT_EQ(s.every_s, 900);
}

static const struct {
    const char *cron;
    const char *english; /* NULL: only the round trip is checked */
} crons[] = {
    {"30 9 * * *", "every day at 09:30"},
    {"0 8 * * 1", "every Monday at 08:00"},
    {"*/15 9-16 * * 1-5", "every 15 minutes between 09:00 and 17:00 on weekdays"},
    {"*/15 * * * *", "every 15 minutes of every hour"},
    {"15 * * * *", "every hour at :15"},
    {"0 0 L * *", "every last day of the month at 00:00"},
    {"0 0,12 1,15 * *", "every 1st and 15th of the month at 00:00 and 12:00"},
    {"0 0 1 1 *", "every January 1st at 00:00"},
    {"0 12 * * sat,sun", "every weekend at 12:00"},
    {"0 */2 * * *", "every 2 hours at :00"},
    {"0 9-17 * * *", "every hour between 09:00 and 18:00"},
    {"*/10 * * * * *", "every 10 seconds of every minute"},
    {"0 0 1 * 5", "every Friday or the 1st of the month at 00:00"},
    {"0-10 * * * *", "every hour at :00 to :10"},
    {"30 0 9,17 * * *", "every day at 09:00:30 and 17:00:30"},
    {"0 0 * jan-mar,jul *", "every day at 00:00 in January to March and July"},
    {"*/5 22-23,0-1 * * *", "every 5 minutes during hours 0, 1, 22 and 23"},
    {"5,30 * * * * *", "at seconds 5 and 30"},
    {"* * * * *", NULL},
    {"* * * * * *", NULL},
    {"*/7 * * * *", NULL},
    {"5/15 3/6 */2 * *", NULL},
    {"0 0 1-31 * 1", NULL},
    {"0 0 * * 0-6", NULL},
    {"0 0 1,15,L * *", NULL},
    {"0 0 L * mon-wed,fri", NULL},
    {"*/10 */5 * * * *", NULL},
    {"0-30/7 1-2,5 1,3,5,7,9 2-11/3 *", NULL},
    {"59 59 23 31 12 *", NULL},
    {"7 5,10 * * * *", NULL},
    {"1,2 3,4 5,6 * * *", NULL},
    {"@hourly", NULL},
    {"@yearly", NULL},
};

static void test_cron_renders_to_english(void)
{
    ASSERT(sizeof crons / sizeof crons[0] >= 20);
    for (size_t i = 0; i < sizeof crons / sizeof crons[0]; i++) {
        struct cel_sched_spec s = parse_ok("cron", crons[i].cron);
        char text[1024];
        cel__sched_render(&s, text, sizeof text);
        if (crons[i].english && strcmp(text, crons[i].english) != 0)
            cel_test_fail(__FILE__, __LINE__, "'%s' renders as '%s', want '%s'", crons[i].cron,
                          text, crons[i].english);
        assert_round_trip(&s, crons[i].cron);
    }
}

/* xorshift64: the same sequence on every run, so a failure repeats. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* A non-empty set of lo..hi: one value, all, a step, a range or random. */
static uint64_t random_set(uint64_t *rs, int lo, int hi)
{
    uint64_t bits = 0;
    int span = hi - lo + 1, a = lo + (int)(next_random(rs) % (uint64_t)span);
    switch (next_random(rs) % 5) {
    case 0:
        bits = 1ull << a;
        break;
    case 1:
        for (int v = lo; v <= hi; v++)
            bits |= 1ull << v;
        break;
    case 2:
        for (int v = a, step = 1 + (int)(next_random(rs) % 12); v <= hi; v += step)
            bits |= 1ull << v;
        break;
    case 3:
        for (int v = a, end = a + (int)(next_random(rs) % (uint64_t)(hi - a + 1)); v <= end; v++)
            bits |= 1ull << v;
        break;
    default:
        for (int v = lo; v <= hi; v++)
            if (next_random(rs) % 3 == 0)
                bits |= 1ull << v;
    }
    return bits ? bits : 1ull << lo;
}

/* Any cron spec a cron text can produce renders to English that reads
 * back equal, not only the ones written in the tables. */
static void test_random_cron_specs_round_trip(void)
{
    uint64_t rs = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 20000; i++) {
        struct cel_sched_spec s;
        memset(&s, 0, sizeof s);
        s.kind = CEL_SCHED_CRON;
        struct cel_sched_cron *c = &s.cron;
        c->seconds = next_random(&rs) % 3 ? 1 : random_set(&rs, 0, 59);
        c->minutes = random_set(&rs, 0, 59);
        c->hours = (uint32_t)random_set(&rs, 0, 23);
        if (next_random(&rs) % 4 == 0) {
            c->mday_star = true;
            c->mdays = 0xfffffffe;
        } else {
            c->mdays = next_random(&rs) % 5 ? (uint32_t)random_set(&rs, 1, 31) : 0;
            c->last_mday = !c->mdays || next_random(&rs) % 4 == 0;
        }
        if (next_random(&rs) % 3 == 0) {
            c->wday_star = true;
            c->wdays = 0x7f;
        } else {
            c->wdays = (uint8_t)random_set(&rs, 0, 6);
        }
        c->months = next_random(&rs) % 2 ? 0x1ffe : (uint16_t)random_set(&rs, 1, 12);
        assert_round_trip(&s, "a random cron spec");
    }
}

static void test_other_kinds_render(void)
{
    struct {
        const char *kind, *text, *english;
    } cases[] = {
        {"every", "15m", "every 15 minutes"},
        {"every", "90", "every 90 seconds"},
        {"every", "1h", "every hour"},
        {"every", "1h30m", "every 90 minutes"},
        {"every", "1d", "every day"},
        {"every", "25h", "every 25 hours"},
        {"every", "36599d 86399s", "every 36599 days 23 hours 59 minutes 59 seconds"},
        {"at", "2026-12-24T18:00", "once at 2026-12-24 18:00"},
        {"at", "2026-12-24T18:00:05Z", "once at 2026-12-24 18:00:05Z"},
        {"at", "2026-12-24T18:00-09:30", "once at 2026-12-24 18:00-09:30"},
        {"cron", "@reboot", "when beat starts"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cel_sched_spec s = parse_ok(cases[i].kind, cases[i].text);
        char text[256];
        cel__sched_render(&s, text, sizeof text);
        ASSERT_STREQ(text, cases[i].english);
        assert_round_trip(&s, cases[i].text);
    }
}

static void test_render_truncates_like_snprintf(void)
{
    struct cel_sched_spec s = parse_ok("cron", "*/15 9-16 * * 1-5");
    char full[256], small[10];
    size_t n = cel__sched_render(&s, full, sizeof full);
    ASSERT_EQ(cel__sched_render(&s, small, sizeof small), n);
    ASSERT_EQ(strlen(small), sizeof small - 1);
    ASSERT(strncmp(small, full, sizeof small - 1) == 0);
    ASSERT_EQ(cel__sched_render(&s, NULL, 0), n);
}

static void phrase_bad(const char *text, const char *word, size_t pos, const char *needle)
{
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    if (cel__sched_parse_phrase(text, &s, &e) != CEL_EINVAL)
        cel_test_fail(__FILE__, __LINE__, "'%s' accepted", text);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", word);
    ASSERT_CONTAINS(e.msg, quoted);
    if (needle)
        ASSERT_CONTAINS(e.msg, needle);
    if (e.pos != pos || e.len != strlen(word))
        cel_test_fail(__FILE__, __LINE__, "'%s': error at %zu+%zu, want %zu+%zu (%s)", text, e.pos,
                      e.len, pos, strlen(word), e.msg);
}

static void test_bad_phrases_name_the_word(void)
{
    phrase_bad("every mondey at 8am", "mondey", 6, "did you mean 'monday'?");
    phrase_bad("every monday at 8am sharp", "sharp", 20, NULL);
    phrase_bad("evry day at 9am", "evry", 0, "did you mean 'every'?");
    phrase_bad("every day at 9am in janury", "janury", 20, NULL);
    phrase_bad("every 7 minutes on weekdays", "7 minutes", 6, "7 does not divide 60");
    phrase_bad("every 5 hours between 9am and 5pm", "5 hours", 6, "5 does not divide 24");
    phrase_bad("every day at 25:00", "25:00", 13, "not a time of day");
    phrase_bad("every day at 13pm", "13pm", 13, "not a time of day");
    phrase_bad("every day at 9:30 and 17:00", "9:30 and 17:00", 13, "every combination");
    phrase_bad("between 9:30am and 5pm", "9:30am", 8, "not on the hour");
    phrase_bad("every 32nd of the month", "32nd", 6, "not a day of the month");
    phrase_bad("every month", "month", 6, "needs a day");
    phrase_bad("every 3 days at noon", "3 days", 6, "cannot be combined");
    phrase_bad("once at 2026-02-30 10:00", "30", 16, "out of range");
    phrase_bad("at minute 75", "75", 10, "not a minute");
    phrase_bad("every 2 hours between 9am and 10am", "2 hours", 6, "leaves no hour");
    phrase_bad("every day at 9am on or", "or", 20, "is not understood here");
    phrase_bad("@dayly", "@dayly", 0, "did you mean '@daily'?");
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    ASSERT_EQ(cel__sched_parse_phrase("", &s, &e), CEL_EINVAL);
    ASSERT_CONTAINS(e.msg, "nothing to schedule");
    ASSERT_EQ(cel__sched_parse_phrase("every day at", &s, &e), CEL_EINVAL);
    ASSERT_CONTAINS(e.msg, "ends where");
    ASSERT_EQ(e.pos, 12);
}

int main(void)
{
    TEST_RUN(test_phrases_equal_their_cron_or_interval);
    TEST_RUN(test_phrases_literal_bits);
    TEST_RUN(test_cron_renders_to_english);
    TEST_RUN(test_random_cron_specs_round_trip);
    TEST_RUN(test_other_kinds_render);
    TEST_RUN(test_render_truncates_like_snprintf);
    TEST_RUN(test_bad_phrases_name_the_word);
    return 0;
}
