/*
 * test_schedule_doc.c - the store document of a periodic entry
 * (client/schedule_doc.c): written and read back field for field, every
 * check refusing with a reason that names the field, and
 * cel_schedule_describe() on top of it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>

#include "client/schedule_doc.h"
#include "testing.h"

/* 2026-12-02T00:00:00Z, a Wednesday. */
#define WED_2026_12_02 INT64_C(1796169600)

static int write_doc(const cel_schedule_entry *e, struct cel_buf *out, char *why, size_t len)
{
    cel__buf_init(out, 0);
    return cel__schedule_doc_write(e, "api", 1000, "UTC", out, why, len);
}

static void test_round_trip(void)
{
    cel_schedule_entry e =
        CEL_SCHEDULE_ENTRY_INIT(.name = "reports.daily:v-2_x", .task = "tasks.report",
                                .args_json = "[1, \"two words\"]",
                                .kwargs_json = "{\"mode\": {\"full\": true}}",
                                .when = "every monday at 8am", .tz = "Europe/London",
                                .queue = "reports", .has_priority = 1, .priority = 7,
                                .expires = 90.5, .catch_up = CEL_CATCH_UP_ALL);
    struct cel_buf doc;
    char why[256] = "";
    cel__buf_init(&doc, 0);
    ASSERT_OK(cel__schedule_doc_write(&e, "config", 1764000000, "UTC", &doc, why, sizeof why));
    const char *text = cel__buf_cstr(&doc);
    ASSERT_CONTAINS(text, "\"when\": \"every monday at 8am\"");
    ASSERT_CONTAINS(text, "\"origin\": \"config\"");
    ASSERT_CONTAINS(text, "\"created\": 1764000000");
    ASSERT(strstr(text, "\"cron\"") == NULL);

    struct cel_schedule_def d;
    ASSERT_OK(cel__schedule_def_parse(text, cel__buf_size(&doc), "America/New_York", &d, why,
                                      sizeof why));
    ASSERT_STREQ(d.e.name, "reports.daily:v-2_x");
    ASSERT_STREQ(d.e.task, "tasks.report");
    ASSERT_STREQ(d.e.args_json, "[1, \"two words\"]");
    ASSERT_STREQ(d.e.kwargs_json, "{\"mode\": {\"full\": true}}");
    ASSERT_STREQ(d.e.when, "every monday at 8am");
    ASSERT(d.e.cron == NULL && d.e.every == NULL && d.e.at == NULL);
    ASSERT_STREQ(d.kind, "when");
    ASSERT_STREQ(d.when_text, "every monday at 8am");
    ASSERT_STREQ(d.e.tz, "Europe/London");
    ASSERT_STREQ(cel__tz_name(d.tz), "Europe/London");
    ASSERT_STREQ(d.e.queue, "reports");
    ASSERT_EQ(d.e.has_priority, 1);
    ASSERT_EQ(d.e.priority, 7);
    ASSERT(d.e.expires == 90.5);
    ASSERT_EQ(d.e.catch_up, CEL_CATCH_UP_ALL);
    ASSERT_STREQ(d.origin, "config");
    ASSERT_EQ(d.created_s, 1764000000);
    ASSERT_EQ(d.e.struct_size, sizeof(cel_schedule_entry));

    /* The spec is the phrase's, and the text its English rendering. */
    struct cel_sched_spec want;
    ASSERT_OK(cel__sched_parse_phrase("every monday at 8am", &want, NULL));
    ASSERT(cel__sched_spec_equal(&d.spec, &want));
    char rendered[256];
    cel__sched_render(&want, rendered, sizeof rendered);
    ASSERT_STREQ(d.text, rendered);

    /* Written again from what was read, the document is the same. */
    struct cel_buf again;
    cel__buf_init(&again, 0);
    ASSERT_OK(cel__schedule_doc_write(&d.e, d.origin, d.created_s, "UTC", &again, why, sizeof why));
    ASSERT_STREQ(cel__buf_cstr(&again), text);
    cel__buf_release(&again);
    cel__schedule_def_clear(&d);
    cel__buf_release(&doc);
}

static void test_defaults(void)
{
    static const char *const kinds[] = {"cron", "every", "at", "when"};
    for (int k = 0; k < 4; k++) {
        cel_schedule_entry e = CEL_SCHEDULE_ENTRY_INIT(.name = "n", .task = "t");
        const char *texts[] = {"*/5 * * * *", "15m", "2030-01-01T00:00", "twice a day"};
        const char **slot[] = {&e.cron, &e.every, &e.at, &e.when};
        *slot[k] = texts[k];
        struct cel_buf doc;
        char why[256] = "";
        if (write_doc(&e, &doc, why, sizeof why) != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "%s: %s", kinds[k], why);
        const char *text = cel__buf_cstr(&doc);
        ASSERT_CONTAINS(text, "\"args\": []");
        ASSERT_CONTAINS(text, "\"kwargs\": {}");
        ASSERT_CONTAINS(text, "\"tz\": null");
        ASSERT_CONTAINS(text, "\"queue\": null");
        ASSERT_CONTAINS(text, "\"priority\": null");
        ASSERT_CONTAINS(text, "\"expires\": 0");
        ASSERT_CONTAINS(text, "\"catch_up\": \"default\"");
        struct cel_schedule_def d;
        ASSERT_OK(cel__schedule_def_parse(text, strlen(text), "Asia/Tokyo", &d, why, sizeof why));
        ASSERT_STREQ(d.kind, kinds[k]);
        ASSERT_STREQ(d.when_text, texts[k]);
        ASSERT(d.e.tz == NULL);
        ASSERT_STREQ(cel__tz_name(d.tz), "Asia/Tokyo"); /* the default zone */
        ASSERT_STREQ(d.e.args_json, "[]");
        ASSERT_STREQ(d.e.kwargs_json, "{}");
        ASSERT_EQ(d.e.has_priority, 0);
        ASSERT_EQ(d.e.catch_up, CEL_CATCH_UP_DEFAULT);
        ASSERT_STREQ(d.origin, "api");
        cel__schedule_def_clear(&d);
        /* No default zone: UTC. */
        ASSERT_OK(cel__schedule_def_parse(text, strlen(text), NULL, &d, why, sizeof why));
        ASSERT_STREQ(cel__tz_name(d.tz), "UTC");
        cel__schedule_def_clear(&d);
        cel__buf_release(&doc);
    }
}

/* Each case breaks one field of a good entry. */
static void test_write_refusals(void)
{
    char long_name[202];
    memset(long_name, 'a', 201);
    long_name[201] = '\0';
    char max_name[201];
    memset(max_name, 'b', 200);
    max_name[200] = '\0';
    const cel_schedule_entry good =
        CEL_SCHEDULE_ENTRY_INIT(.name = "ok", .task = "t", .cron = "0 8 * * *");
    struct {
        cel_schedule_entry e;
        const char *why;
    } cases[] = {
        {good, NULL},
        {good, "name:"},
        {good, "name:"},
        {good, "name:"},
        {good, "name:"},
        {good, "task:"},
        {good, "task:"},
        {good, "args: expected a JSON array"},
        {good, "args: not JSON"},
        {good, "kwargs: expected a JSON object"},
        {good, "exactly one of cron, every, at or when"},
        {good, "only one of cron, every, at or when"},
        {good, "cron:"},
        {good, "when: "},
        {good, "every:"},
        {good, "at:"},
        {good, "tz:"},
        {good, "tz:"},
        {good, "priority: 10"},
        {good, "priority: -1"},
        {good, "expires:"},
        {good, "expires:"},
        {good, "catch_up:"},
        {good, "CEL_SCHEDULE_ENTRY_INIT"},
        {good, "queue:"},
    };
    int i = 1;
    cases[i++].e.name = "has space";
    cases[i++].e.name = "";
    cases[i++].e.name = long_name;
    cases[i++].e.name = "slash/no";
    cases[i++].e.task = "";
    cases[i++].e.task = NULL;
    cases[i++].e.args_json = "{\"a\": 1}";
    cases[i++].e.args_json = "[1,";
    cases[i++].e.kwargs_json = "[1]";
    cases[i++].e.cron = NULL;
    cases[i++].e.every = "5m";
    cases[i++].e.cron = "61 * * * *";
    cases[i].e.cron = NULL;
    cases[i++].e.when = "every mondey at 8am";
    cases[i].e.cron = NULL;
    cases[i++].e.every = "5 fortnights";
    cases[i].e.cron = NULL;
    cases[i++].e.at = "2026-13-40T99:00";
    cases[i++].e.tz = "Mars/Olympus_Mons";
    cases[i++].e.tz = "../etc/passwd";
    cases[i].e.has_priority = 1;
    cases[i++].e.priority = 10;
    cases[i].e.has_priority = 1;
    cases[i++].e.priority = -1;
    cases[i++].e.expires = -1;
    cases[i++].e.expires = NAN;
    cases[i++].e.catch_up = (cel_catch_up)7;
    cases[i++].e.struct_size = 8;
    cases[i++].e.queue = "";
    ASSERT_EQ(i, (int)(sizeof cases / sizeof cases[0]));
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct cel_buf doc;
        char why[256] = "";
        int rc = write_doc(&cases[k].e, &doc, why, sizeof why);
        if (!cases[k].why) {
            ASSERT_OK(rc);
        } else {
            if (rc != CEL_EINVAL)
                cel_test_fail(__FILE__, __LINE__, "case %zu: rc %d (%s)", k, rc, why);
            ASSERT_CONTAINS(why, cases[k].why);
            ASSERT_EQ(cel__buf_size(&doc), 0);
        }
        cel__buf_release(&doc);
    }
    /* The phrase error names the word it could not read. */
    struct cel_buf doc;
    char why[256] = "";
    cel_schedule_entry e =
        CEL_SCHEDULE_ENTRY_INIT(.name = "x", .task = "t", .when = "every mondey at 8am");
    ASSERT_EQ(write_doc(&e, &doc, why, sizeof why), CEL_EINVAL);
    ASSERT_CONTAINS(why, "'mondey'");
    cel__buf_release(&doc);
    /* A 200-byte name is fine; an unknown origin is not. */
    e = (cel_schedule_entry)CEL_SCHEDULE_ENTRY_INIT(.name = max_name, .task = "t", .every = "1h");
    ASSERT_OK(write_doc(&e, &doc, why, sizeof why));
    cel__buf_release(&doc);
    ASSERT_EQ(cel__schedule_doc_write(&e, "cli", 0, NULL, &doc, why, sizeof why), CEL_EINVAL);
    ASSERT_CONTAINS(why, "origin");
    cel__buf_release(&doc);
    ASSERT_EQ(cel__schedule_doc_write(NULL, "api", 0, NULL, &doc, why, sizeof why), CEL_EINVAL);
    cel__buf_release(&doc);
}

static void test_parse_refusals(void)
{
    static const struct {
        const char *doc;
        int code;
        const char *why;
    } cases[] = {
        {"{\"name\":", CEL_EPROTO, ""},
        {"[1]", CEL_EPROTO, "not a JSON object"},
        {"{\"name\":\"a\",\"task\":\"t\"}", CEL_EINVAL, "exactly one of"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"every\":\"1h\"}", CEL_EINVAL,
         "only one of"},
        {"{\"name\":\"a\",\"task\":5,\"cron\":\"@daily\"}", CEL_EPROTO, "text field"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":7}", CEL_EPROTO, "cron"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"priority\":\"high\"}", CEL_EINVAL,
         "priority"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"priority\":12}", CEL_EINVAL,
         "priority: 12"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"expires\":\"soon\"}", CEL_EINVAL,
         "expires"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"catch_up\":\"twice\"}", CEL_EINVAL,
         "catch_up: 'twice'"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"args\":{}}", CEL_EINVAL,
         "args: expected a JSON array"},
        {"{\"name\":\"a b\",\"task\":\"t\",\"cron\":\"@daily\"}", CEL_EINVAL, "name:"},
        {"{\"name\":\"a\",\"task\":\"t\",\"cron\":\"@daily\",\"tz\":\"No/Such_Zone\"}", CEL_EINVAL,
         "tz:"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct cel_schedule_def d;
        char why[256] = "";
        int rc =
            cel__schedule_def_parse(cases[k].doc, strlen(cases[k].doc), NULL, &d, why, sizeof why);
        if (rc != cases[k].code)
            cel_test_fail(__FILE__, __LINE__, "case %zu: rc %d (%s)", k, rc, why);
        ASSERT_CONTAINS(why, cases[k].why);
        ASSERT(d.strings == NULL && d.tz == NULL && d.text == NULL);
        cel__schedule_def_clear(&d);
    }
    /* A minimal document: everything else takes its default. */
    static const char min[] = "{\"name\":\"a\",\"task\":\"t\",\"every\":\"1h\"}";
    struct cel_schedule_def d;
    char why[256];
    ASSERT_OK(cel__schedule_def_parse(min, sizeof min - 1, NULL, &d, why, sizeof why));
    ASSERT_STREQ(d.e.args_json, "[]");
    ASSERT_STREQ(d.e.kwargs_json, "{}");
    ASSERT_STREQ(d.origin, "api");
    ASSERT_EQ(d.created_s, 0);
    ASSERT_EQ(d.spec.kind, CEL_SCHED_INTERVAL);
    ASSERT_EQ(d.spec.every_s, 3600);
    cel__schedule_def_clear(&d);
}

static void test_describe(void)
{
    cel_schedule_entry e =
        CEL_SCHEDULE_ENTRY_INIT(.name = "weekly", .task = "t", .cron = "0 8 * * 1");
    char text[128], why[256];
    int64_t runs[5];
    size_t n = 99;
    ASSERT_OK(cel_schedule_describe(&e, NULL, WED_2026_12_02 * 1000000, text, sizeof text, runs, 5,
                                    &n, why, sizeof why));
    ASSERT_EQ(n, 5);
    for (int k = 0; k < 5; k++) /* Mondays 7, 14, 21, 28 Dec, 4 Jan at 08:00 UTC */
        ASSERT_EQ(runs[k], (WED_2026_12_02 + (5 + 7 * k) * 86400 + 8 * 3600) * 1000000);
    ASSERT_CONTAINS(text, "Monday");
    ASSERT_CONTAINS(text, "08:00");

    /* In a zone: 08:00 in New York is 13:00 UTC in December. */
    e.tz = "America/New_York";
    ASSERT_OK(cel_schedule_describe(&e, NULL, WED_2026_12_02 * 1000000, text, sizeof text, runs, 2,
                                    &n, why, sizeof why));
    ASSERT_EQ(n, 2);
    ASSERT_EQ(runs[0], (WED_2026_12_02 + 5 * 86400 + 13 * 3600) * 1000000);

    /* The default zone applies to an entry without one. */
    e.tz = NULL;
    ASSERT_OK(cel_schedule_describe(&e, "Asia/Kolkata", WED_2026_12_02 * 1000000, NULL, 0, runs, 1,
                                    &n, why, sizeof why));
    ASSERT_EQ(runs[0], (WED_2026_12_02 + 5 * 86400 + 8 * 3600 - 5 * 3600 - 1800) * 1000000);

    /* A bad default zone is named as the option it came from. */
    ASSERT_EQ(
        cel_schedule_describe(&e, "Nowhere/Atlantis", 0, NULL, 0, NULL, 0, &n, why, sizeof why),
        CEL_EINVAL);
    ASSERT_CONTAINS(why, "tz: ");
    ASSERT_CONTAINS(why, "(the timezone option)");

    /* A one-off has one run; an interval counts from the given time. */
    e.cron = NULL;
    e.at = "2026-12-24T18:00Z";
    ASSERT_OK(cel_schedule_describe(&e, NULL, WED_2026_12_02 * 1000000, text, sizeof text, runs, 5,
                                    &n, why, sizeof why));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(runs[0], (WED_2026_12_02 + 22 * 86400 + 18 * 3600) * 1000000);
    e.at = NULL;
    e.every = "90m";
    ASSERT_OK(cel_schedule_describe(&e, NULL, WED_2026_12_02 * 1000000, text, sizeof text, runs, 3,
                                    &n, why, sizeof why));
    ASSERT_EQ(n, 3);
    ASSERT_EQ(runs[2], (WED_2026_12_02 + 3 * 5400) * 1000000);

    /* @reboot has no run times; a bad entry says why. */
    e.every = NULL;
    e.cron = "@reboot";
    ASSERT_OK(cel_schedule_describe(&e, NULL, WED_2026_12_02 * 1000000, text, sizeof text, runs, 3,
                                    &n, why, sizeof why));
    ASSERT_EQ(n, 0);
    e.cron = "0 25 * * *";
    ASSERT_EQ(cel_schedule_describe(&e, NULL, 0, text, sizeof text, runs, 3, &n, why, sizeof why),
              CEL_EINVAL);
    ASSERT_CONTAINS(why, "cron:");
    ASSERT_EQ(n, 0);
}

int main(void)
{
    TEST_RUN(test_round_trip);
    TEST_RUN(test_defaults);
    TEST_RUN(test_write_refusals);
    TEST_RUN(test_parse_refusals);
    TEST_RUN(test_describe);
    return 0;
}
