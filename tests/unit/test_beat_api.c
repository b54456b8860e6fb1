/*
 * test_beat_api.c - cel_beat through its public API, in process: run()
 * on a thread leads, sends, and returns CEL_OK soon after cel_beat_stop()
 * (which releases the lease: a second beat leads at once); a broker
 * without periodic entries is refused with a reason.
 */
#include "testing.h"

#include <pthread.h>

#include <celeriac.h>
#include <celeriac/beat.h>
#include <celeriac/schedule.h>

#include "task_batch.h"

#define WAIT_MS 5000

struct runner {
    cel_beat *beat;
    pthread_t thread;
    int rc;
};

static void *run(void *arg)
{
    struct runner *r = arg;
    r->rc = cel_beat_run(r->beat);
    return NULL;
}

static cel_config *config(const char *url)
{
    cel_config *cfg = cel_config_new();
    ASSERT(cfg);
    ASSERT_OK(cel_config_set(cfg, "broker_url", url, NULL));
    ASSERT_OK(cel_config_set(cfg, "beat_lease_ttl", "1s", NULL));
    return cfg;
}

static void start(struct runner *r, const cel_config *cfg)
{
    r->beat = cel_beat_new(cfg);
    ASSERT(r->beat);
    r->rc = -12345;
    ASSERT_OK(pthread_create(&r->thread, NULL, run, r));
}

static bool wait_leader(const struct runner *r, int want)
{
    int64_t until = cel_test_now_ms() + WAIT_MS;
    while (cel_beat_is_leader(r->beat) != want && cel_test_now_ms() < until)
        cel_test_sleep_ms(10);
    return cel_beat_is_leader(r->beat) == want;
}

static void stop(struct runner *r)
{
    int64_t t0 = cel_test_now_ms();
    cel_beat_stop(r->beat);
    ASSERT_OK(pthread_join(r->thread, NULL));
    ASSERT(cel_test_now_ms() - t0 < 1000); /* a sleeping loop wakes at once */
    ASSERT_EQ(r->rc, CEL_OK);
    ASSERT_EQ(cel_beat_is_leader(r->beat), 0);
    cel_beat_free(r->beat);
}

static void test_leads_sends_and_stops(void)
{
    char url[4200];
    snprintf(url, sizeof url, "sqlite:///%s/celeriac.db", cel_test_dir());
    cel_client *c = cel_test_client(url, NULL);
    cel_schedule_entry e = CEL_SCHEDULE_ENTRY_INIT(.name = "api", .task = "tasks.add",
                                                   .args_json = "[1, 2]", .every = "1s");
    ASSERT_OK(cel_schedule_add(c, &e, 0));
    cel_config *cfg = config(url);

    struct runner one, two;
    start(&one, cfg);
    ASSERT(wait_leader(&one, 1));
    start(&two, cfg);
    cel_test_sleep_ms(1500);
    ASSERT_EQ(cel_beat_is_leader(two.beat), 0); /* one leader at a time */

    cel_schedule_entries *l = NULL;
    ASSERT_OK(cel_schedule_get(c, "api", &l));
    ASSERT(cel_schedule_entries_total_runs(l, 0) >= 1);
    cel_schedule_entries_free(l);

    /* Stopping releases the lease: the standby leads within its next
     * try (a third of the ttl), not after the ttl. */
    stop(&one);
    int64_t t0 = cel_test_now_ms();
    ASSERT(wait_leader(&two, 1));
    ASSERT(cel_test_now_ms() - t0 < 900);
    stop(&two);

    cel_config_free(cfg);
    cel_client_free(c);
}

static void test_stop_before_run(void)
{
    cel_config *cfg = config("memory://");
    cel_beat *b = cel_beat_new(cfg);
    ASSERT(b);
    cel_beat_stop(b);
    ASSERT_EQ(cel_beat_run(b), CEL_OK);
    cel_beat_free(b);
    cel_config_free(cfg);
}

static void test_refuses_a_broker_without_entries(void)
{
    cel_config *cfg = config("memory://");
    cel_beat *b = cel_beat_new(cfg);
    ASSERT(b);
    ASSERT_EQ(cel_beat_run(b), CEL_ENOTSUP);
    ASSERT_CONTAINS(cel_beat_errmsg(b), "keeps no periodic entries");
    cel_beat_free(b);
    cel_config_free(cfg);
}

int main(void)
{
    TEST_RUN(test_leads_sends_and_stops);
    TEST_RUN(test_stop_before_run);
    TEST_RUN(test_refuses_a_broker_without_entries);
    return 0;
}
