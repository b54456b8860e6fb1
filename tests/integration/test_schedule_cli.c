/*
 * test_schedule_cli.c - periodic entries edited through the real
 * `celeriac schedule` binary and the C API, on a SQLite file and on a
 * private Redis: each kind of schedule added, listed, shown in English
 * with its next five runs, switched off and on, removed, run at once
 * (the message lands on the entry's queue), refused with a caret under a
 * bad word or for a past one-off, replaced keeping its last run; and
 * cel_schedule_sync_config() keeping config-born entries in step with a
 * file while leaving API-born ones alone.
 */
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>

#include "core/clock.h"
#include "core/config_table.h"
#include "redis_server.h"
#include "store_open.h"
#include "task_batch.h"
#include "testing.h"

/* `celeriac schedule ...` against the broker in CELERIAC_BROKER_URL. */
#define SCHEDULE(out, err, ...) cel_test_cli(out, err, "schedule", __VA_ARGS__, NULL)

/* Records a run of `name` at tick_s as beat would (skipped: nothing sent). */
static void record_run(const char *url, const char *name, int64_t expect_us, int64_t tick_s)
{
    struct cel_broker *b = cel_test_open_broker(url);
    bool held = false;
    ASSERT_OK(b->ops->lease_acquire(b, "beat", "test:1", 10000, &held));
    ASSERT(held);
    struct cel_sched_fire f = {.name = name,
                               .lease = "beat",
                               .holder = "test:1",
                               .expect_last_run_us = expect_us,
                               .tick_us = tick_s * 1000000,
                               .send = false};
    ASSERT_OK(b->ops->sched_fire(b, &f));
    ASSERT_OK(b->ops->lease_release(b, "beat", "test:1"));
    cel__broker_close(b);
}

static int64_t last_run_of(cel_client *c, const char *name)
{
    cel_schedule_entries *l = NULL;
    ASSERT_OK(cel_schedule_get(c, name, &l));
    int64_t v = cel_schedule_entries_last_run(l, 0);
    cel_schedule_entries_free(l);
    return v;
}

/* The first line of `text` that contains `needle`, as a new string. */
static char *line_with(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (!p)
        return NULL;
    while (p > text && p[-1] != '\n')
        p--;
    return strndup(p, strcspn(p, "\n"));
}

static void add_each_kind(void)
{
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "weekly", "--task", "tasks.report", "--cron", "0 8 * * 1",
                       "--tz", "Europe/London", "--queue", "reports", "--priority", "7",
                       "--expires", "600"),
              0);
    ASSERT_CONTAINS(out, "added weekly");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "tick", "--task", "tasks.tick", "--every", "15m",
                       "--catch-up", "skip"),
              0);
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "once", "--task", "tasks.once", "--at",
                       "2099-01-01T09:30", "--tz", "Asia/Tokyo"),
              0);
    free(out);
    free(err);
    /* Positional words after the task are its arguments, as in `call`. */
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "office", "--task", "tasks.poll", "1", "two", "{\"x\":3}",
                       "-k", "{\"mode\": \"fast\"}", "--when",
                       "every 15 minutes between 9am and 5pm on weekdays", "--queue", "office"),
              0);
    free(out);
    free(err);
}

static void check_list_and_show(void)
{
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "list"), 0);
    ASSERT_CONTAINS(out, "NAME");
    char *l = line_with(out, "weekly");
    ASSERT(l);
    ASSERT_CONTAINS(l, "Monday");
    ASSERT_CONTAINS(l, "yes");
    ASSERT_CONTAINS(l, "tasks.report");
    free(l);
    l = line_with(out, "office");
    ASSERT(l);
    ASSERT_CONTAINS(l, "15 minutes");
    free(l);
    l = line_with(out, "once ");
    ASSERT(l);
    ASSERT_CONTAINS(l, "2099-01-01T00:30:00Z"); /* 09:30 in Tokyo */
    free(l);
    free(out);
    free(err);

    ASSERT_EQ(SCHEDULE(&out, &err, "list", "--json"), 0);
    ASSERT_EQ(cel_test_count(out, "\n"), 4);
    ASSERT_CONTAINS(out, "\"args\": [1, \"two\", {\"x\": 3}]");
    ASSERT_CONTAINS(out, "\"kwargs\": {\"mode\": \"fast\"}");
    ASSERT_CONTAINS(out, "\"catch_up\": \"skip\"");
    ASSERT_CONTAINS(out, "\"origin\": \"api\"");
    free(out);
    free(err);

    /* show: every field, the sentence, five runs in the zone and in UTC. */
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "weekly"), 0);
    ASSERT_CONTAINS(out, "name:       weekly");
    ASSERT_CONTAINS(out, "cron        0 8 * * 1");
    ASSERT_CONTAINS(out, "schedule:   every Monday at 08:00");
    ASSERT_CONTAINS(out, "zone:       Europe/London");
    ASSERT_CONTAINS(out, "queue:      reports");
    ASSERT_CONTAINS(out, "priority:   7");
    ASSERT_CONTAINS(out, "expires:    600 s");
    ASSERT_CONTAINS(out, "last run:   never");
    ASSERT_EQ(cel_test_count(out, " 08:00:00 "), 5); /* London wall clock */
    ASSERT_EQ(cel_test_count(out, "Z\n"), 5);        /* and UTC */
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "office", "--json"), 0);
    ASSERT_CONTAINS(out, "\"text\": \"");
    ASSERT_CONTAINS(out, "\"next_runs\": [");
    ASSERT_EQ(cel_test_count(out, "Z\""), 5);
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "once"), 0);
    ASSERT_EQ(cel_test_count(out, "Z\n"), 1); /* a one-off runs once */
    ASSERT_CONTAINS(out, "2099-01-01 09:30:00 JST");
    free(out);
    free(err);
}

static void check_enable_remove(void)
{
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "disable", "tick"), 0);
    ASSERT_CONTAINS(out, "tick: disabled");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "list"), 0);
    char *l = line_with(out, "tick");
    ASSERT(l && strstr(l, " no "));
    free(l);
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "enable", "tick"), 0);
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "tick"), 0);
    ASSERT_CONTAINS(out, "enabled:    yes");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "remove", "tick"), 0);
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "tick"), 2);
    ASSERT_CONTAINS(err, "no schedule entry named 'tick'");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "enable", "tick"), 2);
    free(out);
    free(err);
}

/* run-now sends the entry's task with its arguments on its queue. */
static void check_run_now(const char *url)
{
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "run-now", "office"), 0);
    char id[64] = "";
    ASSERT_EQ(sscanf(out, "%63s", id), 1);
    ASSERT_EQ(strlen(id), 36);
    free(out);
    free(err);
    struct cel_broker *b = cel_test_open_broker(url);
    const char *qs[] = {"office"};
    struct cel_delivery d;
    size_t n = 0;
    int64_t deadline = cel__mono_ms() + 10000;
    while (n == 0 && cel__mono_ms() < deadline) {
        int64_t next_due = 0;
        ASSERT_OK(b->ops->fetch(b, qs, 1, 1, 60000, &d, &n, &next_due));
        if (n == 0)
            cel_test_sleep_ms(10);
    }
    ASSERT_EQ(n, 1);
    ASSERT_CONTAINS(d.body, id);
    ASSERT_CONTAINS(d.body, "tasks.poll");
    ASSERT_CONTAINS(d.body, "\"argsrepr\": \"(1, 'two', {'x': 3})\"");
    ASSERT_CONTAINS(d.body, "\"kwargsrepr\": \"{'mode': 'fast'}\"");
    ASSERT_OK(b->ops->ack(b, &d));
    cel__delivery_release(&d);
    cel__broker_close(b);
}

static void check_refusals(void)
{
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "bad", "--task", "t", "--when", "every mondey at 8am"),
              2);
    ASSERT_CONTAINS(err, "unknown word 'mondey'");
    ASSERT_CONTAINS(err, "    every mondey at 8am\n          ^^^^^^\n");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "past", "--task", "t", "--at", "2001-02-03T04:05"), 2);
    ASSERT_CONTAINS(err, "in the past");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "weekly", "--task", "t", "--every", "1h"), 2);
    ASSERT_CONTAINS(err, "exists");
    free(out);
    free(err);
    ASSERT_EQ(
        SCHEDULE(&out, &err, "add", "two", "--task", "t", "--every", "1h", "--cron", "@daily"), 2);
    ASSERT_CONTAINS(err, "exactly one of --cron, --every, --at or --when");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "zone", "--task", "t", "--every", "1h", "--tz",
                       "Nowhere/Atlantis"),
              2);
    ASSERT_CONTAINS(err, "tz:");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "list", "--task", "t"), 2);
    free(out);
    free(err);
    char *list = NULL;
    ASSERT_EQ(SCHEDULE(&list, NULL, "list"), 0);
    ASSERT(strstr(list, "bad") == NULL && strstr(list, "past") == NULL);
    free(list);
}

/* --replace keeps the last run even when the schedule changes. */
static void check_replace(const char *url, cel_client *c)
{
    int64_t tick = cel__wall_us() / 1000000 - 3600;
    record_run(url, "weekly", 0, tick);
    ASSERT_EQ(last_run_of(c, "weekly"), tick * 1000000);
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "add", "weekly", "--task", "tasks.report2", "--when",
                       "every day at noon", "--replace"),
              0);
    free(out);
    free(err);
    ASSERT_EQ(last_run_of(c, "weekly"), tick * 1000000);
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "weekly"), 0);
    ASSERT_CONTAINS(out, "task:       tasks.report2");
    ASSERT_CONTAINS(out, "last run:   ");
    ASSERT(strstr(out, "last run:   never") == NULL);
    free(out);
    free(err);
}

/* A one-off that ran has no next run: it is done. */
static void check_one_off_done(const char *url)
{
    record_run(url, "once", 0, INT64_C(4070910600)); /* 2099-01-01T00:30:00Z */
    char *out = NULL, *err = NULL;
    ASSERT_EQ(SCHEDULE(&out, &err, "show", "once"), 0);
    ASSERT_CONTAINS(out, "next runs:  none (done)");
    ASSERT_CONTAINS(out, "last run:   2099-01-01T00:30:00Z");
    free(out);
    free(err);
    ASSERT_EQ(SCHEDULE(&out, &err, "list"), 0);
    char *l = line_with(out, "once ");
    ASSERT(l);
    ASSERT_CONTAINS(l, " done ");
    free(l);
    free(out);
    free(err);
}

static void check_transport(const char *url)
{
    setenv("CELERIAC_BROKER_URL", url, 1);
    cel_client *c = cel_test_client(url, NULL);
    add_each_kind();
    check_list_and_show();
    check_enable_remove();
    check_run_now(url);
    check_refusals();
    check_replace(url, c);
    check_one_off_done(url);
    cel_client_free(c);
    unsetenv("CELERIAC_BROKER_URL");
}

static void test_sqlite(void)
{
    check_transport("sqlite:///schedule.db");
}

static void test_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    check_transport(srv.url);
    cel_test_redis_stop(&srv);
}

static void test_memory_refused(void)
{
    cel_client *c = cel_test_client("memory://", NULL);
    cel_schedule_entries *l = NULL;
    ASSERT_EQ(cel_schedule_list(c, &l), CEL_ENOTSUP);
    ASSERT_CONTAINS(cel_client_errmsg(c), "keeps no schedule");
    cel_client_free(c);
}

/* ---- cel_schedule_sync_config ----------------------------------------- */

static cel_config *config_of(const char *text)
{
    cel_config *cfg = cel_config_new();
    if (cel__config_load_buffer(cfg, text, strlen(text), "beat.conf") != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "config: %s", cel_config_errmsg(cfg));
    return cfg;
}

static const char *origin_of(cel_client *c, const char *name, char *buf, size_t len)
{
    cel_schedule_entries *l = NULL;
    if (cel_schedule_get(c, name, &l) != CEL_OK)
        return NULL;
    snprintf(buf, len, "%s%s", cel_schedule_entries_origin(l, 0),
             cel_schedule_entries_enabled(l, 0) ? "" : " disabled");
    cel_schedule_entries_free(l);
    return buf;
}

static void check_sync(const char *url)
{
    cel_client *c = cel_test_client(url, NULL);
    cel_schedule_entry api = CEL_SCHEDULE_ENTRY_INIT(.name = "by-hand", .task = "t", .every = "1h");
    ASSERT_OK(cel_schedule_add(c, &api, 0));

    cel_config *cfg = config_of("[schedule.a]\n"
                                "task tasks.a\n"
                                "args [1, \"x y\"]\n"
                                "every 5m\n"
                                "[schedule.b]\n"
                                "task tasks.b\n"
                                "cron @hourly\n"
                                "catch_up all\n"
                                "priority 3\n"
                                "[schedule.c]\n"
                                "task tasks.c\n"
                                "when every day at 6pm\n"
                                "enabled false\n");
    ASSERT_OK(cel_schedule_sync_config(c, cfg));
    char o[64];
    ASSERT_STREQ(origin_of(c, "a", o, sizeof o), "config");
    ASSERT_STREQ(origin_of(c, "b", o, sizeof o), "config");
    ASSERT_STREQ(origin_of(c, "c", o, sizeof o), "config disabled");
    ASSERT_STREQ(origin_of(c, "by-hand", o, sizeof o), "api");
    cel_schedule_entries *l = NULL;
    ASSERT_OK(cel_schedule_get(c, "c", &l));
    ASSERT_EQ(cel_schedule_entries_entry(l, 0)->disabled, 1);
    cel_schedule_entries_free(l);
    ASSERT_OK(cel_schedule_get(c, "b", &l));
    ASSERT_EQ(cel_schedule_entries_entry(l, 0)->catch_up, CEL_CATCH_UP_ALL);
    ASSERT_EQ(cel_schedule_entries_entry(l, 0)->priority, 3);
    cel_schedule_entries_free(l);
    ASSERT_OK(cel_schedule_get(c, "a", &l));
    ASSERT_STREQ(cel_schedule_entries_entry(l, 0)->args_json, "[1, \"x y\"]");
    char *doc_a = strdup(cel_schedule_entries_json(l, 0));
    cel_schedule_entries_free(l);

    /* Runs recorded, b disabled at run time; syncing the same file again
     * changes nothing, not even the interval anchor or b's switch. */
    int64_t tick = cel__wall_us() / 1000000 - 60;
    record_run(url, "a", 0, tick);
    record_run(url, "b", 0, tick);
    ASSERT_OK(cel_schedule_enable(c, "b", 0));
    ASSERT_OK(cel_schedule_sync_config(c, cfg));
    ASSERT_STREQ(origin_of(c, "b", o, sizeof o), "config disabled");
    ASSERT_OK(cel_schedule_get(c, "a", &l));
    ASSERT_CONTAINS(doc_a, "\"created\": ");
    const char *at = strstr(doc_a, "\"created\": ");
    char *created = strndup(at, strcspn(at, ",}"));
    ASSERT_CONTAINS(cel_schedule_entries_json(l, 0), created);
    free(created);
    cel_schedule_entries_free(l);
    free(doc_a);
    cel_config_free(cfg);

    /* a changed, b gone, c the same: a keeps its last run, b is removed,
     * the API entry stays. */
    cfg = config_of("[schedule.a]\n"
                    "task tasks.a\n"
                    "every 10m\n"
                    "[schedule.c]\n"
                    "task tasks.c\n"
                    "when every day at 6pm\n"
                    "enabled false\n");
    ASSERT_OK(cel_schedule_sync_config(c, cfg));
    ASSERT_EQ(last_run_of(c, "a"), tick * 1000000);
    ASSERT_OK(cel_schedule_get(c, "a", &l));
    ASSERT_CONTAINS(cel_schedule_entries_text(l, 0), "10 minutes");
    cel_schedule_entries_free(l);
    ASSERT(origin_of(c, "b", o, sizeof o) == NULL);
    ASSERT_STREQ(origin_of(c, "by-hand", o, sizeof o), "api");
    cel_config_free(cfg);

    /* A section named like an API entry, or one that does not check, is
     * an error naming it, and nothing changes. */
    cfg = config_of("[schedule.z]\ntask t\nevery 1m\n"
                    "[schedule.by-hand]\ntask t\nevery 1m\n");
    ASSERT_EQ(cel_schedule_sync_config(c, cfg), CEL_ESTATE);
    ASSERT_CONTAINS(cel_client_errmsg(c), "file:4: [schedule.by-hand]");
    ASSERT(origin_of(c, "z", o, sizeof o) == NULL);
    ASSERT_STREQ(origin_of(c, "a", o, sizeof o), "config");
    cel_config_free(cfg);
    cfg = config_of("[schedule.z]\ntask t\nevery 1m\n"
                    "[schedule.y]\ntask t\nwhen every fortnite\n");
    ASSERT_EQ(cel_schedule_sync_config(c, cfg), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_client_errmsg(c), "file:4: [schedule.y]: when:");
    ASSERT(origin_of(c, "z", o, sizeof o) == NULL);
    cel_config_free(cfg);
    cfg = config_of("[schedule.y]\ntask t\nevery 1m\npriority 12\n");
    ASSERT_EQ(cel_schedule_sync_config(c, cfg), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_client_errmsg(c), "priority");
    cel_config_free(cfg);

    /* An empty file removes every config-born entry and only those. */
    cfg = cel_config_new();
    ASSERT_OK(cel_schedule_sync_config(c, cfg));
    ASSERT_OK(cel_schedule_list(c, &l));
    ASSERT_EQ(cel_schedule_entries_count(l), 1);
    ASSERT_STREQ(cel_schedule_entries_entry(l, 0)->name, "by-hand");
    cel_schedule_entries_free(l);
    cel_config_free(cfg);
    cel_client_free(c);
}

static void test_sync_sqlite(void)
{
    check_sync("sqlite:///sync.db");
}

static void test_sync_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    check_sync(srv.url);
    cel_test_redis_stop(&srv);
}

int main(void)
{
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    TEST_RUN(test_memory_refused);
    TEST_RUN(test_sync_sqlite);
    TEST_RUN(test_sync_redis);
    return 0;
}
