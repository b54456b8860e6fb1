/*
 * test_beat_catch_up.c - which due runs beat sends (beat_catch_up.c):
 * lateness within the grace, the three catch-up policies, the cap on
 * `all`, and clock jumps both ways, on an every-second schedule and
 * with the collector that lists the runs after a jump.
 */
#include "testing.h"

#include "beat/beat_catch_up.h"

#define NOW   1800000000 /* 2027-01-15 08:00:00 UTC */
#define GRACE 5

/* Every second: the runs are the whole seconds. */
static int64_t every_second(void *ctx, int64_t after_s)
{
    (void)ctx;
    return after_s + 1;
}

/* Every `*ctx` seconds from 0. */
static int64_t every_n(void *ctx, int64_t after_s)
{
    int64_t n = *(int64_t *)ctx;
    return (after_s / n + 1) * n;
}

/* What beat sends for an every-second entry last run at last_s when the
 * clock reads now_s: the plan, and the ticks it would send in sent[]. */
struct outcome {
    struct cel_beat_plan plan;
    size_t nsent;
    int64_t first_sent, last_sent;
    size_t older;
};

static struct outcome decide(int64_t last_s, int64_t now_s, cel_catch_up policy, size_t max)
{
    size_t cap = max + GRACE + 2;
    int64_t *ring = malloc(cap * sizeof *ring);
    ASSERT(ring);
    struct cel_beat_due d = {.ticks = ring,
                             .last_run_s = last_s,
                             .now_s = now_s,
                             .grace_s = GRACE,
                             .policy = policy,
                             .max = max};
    d.n = cel__beat_due_collect(every_second, NULL, last_s, now_s, cap, ring, &d.older);
    struct outcome o = {.older = d.older};
    cel__beat_catch_up(&d, &o.plan);
    o.nsent = o.plan.last - o.plan.first;
    if (o.nsent) {
        o.first_sent = ring[o.plan.first];
        o.last_sent = ring[o.plan.last - 1];
    }
    free(ring);
    return o;
}

/* Due within the grace: sent, whatever the policy. */
static void test_on_time_runs_are_sent(void)
{
    const cel_catch_up policies[] = {CEL_CATCH_UP_SKIP, CEL_CATCH_UP_ONCE, CEL_CATCH_UP_ALL,
                                     CEL_CATCH_UP_DEFAULT};
    for (size_t i = 0; i < 4; i++) {
        struct outcome o = decide(NOW - 1, NOW, policies[i], 100);
        ASSERT_EQ(o.nsent, 1);
        ASSERT_EQ(o.first_sent, NOW);
        ASSERT_EQ(o.plan.skipped, 0);
        ASSERT_EQ(o.plan.skip_to, 0);

        /* A beat that slept 5 s (the grace exactly): all five go. */
        o = decide(NOW - 5, NOW, policies[i], 100);
        ASSERT_EQ(o.nsent, 5);
        ASSERT_EQ(o.first_sent, NOW - 4);
        ASSERT_EQ(o.last_sent, NOW);
        ASSERT_EQ(o.plan.skipped, 0);

        /* Nothing due yet. */
        o = decide(NOW, NOW, policies[i], 100);
        ASSERT_EQ(o.nsent, 0);
        ASSERT_EQ(o.plan.skipped, 0);
    }
}

/* Ten seconds behind with a 5 s grace: 4 missed (NOW-9..NOW-6), 6 on time. */
static void test_policies_after_a_short_outage(void)
{
    static const struct {
        cel_catch_up policy;
        size_t max;
        size_t nsent, skipped;
        int64_t first_sent;
    } rows[] = {
        {CEL_CATCH_UP_SKIP, 100, 6, 4, NOW - 5},
        {CEL_CATCH_UP_ONCE, 100, 6, 4, NOW - 5}, /* the on-time runs stand for the missed */
        {CEL_CATCH_UP_ALL, 100, 10, 0, NOW - 9},
        {CEL_CATCH_UP_ALL, 2, 8, 2, NOW - 7}, /* the newest two missed */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct outcome o = decide(NOW - 10, NOW, rows[i].policy, rows[i].max);
        ASSERT_EQ(o.nsent, rows[i].nsent);
        ASSERT_EQ(o.plan.skipped, rows[i].skipped);
        ASSERT_EQ(o.first_sent, rows[i].first_sent);
        ASSERT_EQ(o.last_sent, NOW);
        ASSERT_EQ(o.plan.skip_to, 0); /* the first send moves the last run past them */
    }
}

/* Only missed runs, none on time (an hourly entry 3 h behind, checked
 * 30 s after its last missed hour). */
static void test_policies_with_only_missed_runs(void)
{
    int64_t hour = 3600;
    int64_t now = 1800000000 / hour * hour + 30 + hour; /* 30 s past an hour */
    int64_t last = now - 30 - 3 * hour;                 /* three hours missed */
    int64_t ring[16];
    static const struct {
        cel_catch_up policy;
        size_t nsent, skipped;
        bool records_skip;
    } rows[] = {
        {CEL_CATCH_UP_SKIP, 0, 3, true},
        {CEL_CATCH_UP_ONCE, 1, 2, false},
        {CEL_CATCH_UP_DEFAULT, 1, 2, false},
        {CEL_CATCH_UP_ALL, 3, 0, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cel_beat_due d = {.ticks = ring,
                                 .last_run_s = last,
                                 .now_s = now,
                                 .grace_s = GRACE,
                                 .policy = rows[i].policy,
                                 .max = 100};
        d.n = cel__beat_due_collect(every_n, &hour, last, now, 16, ring, &d.older);
        ASSERT_EQ(d.n, 3);
        ASSERT_EQ(d.older, 0);
        struct cel_beat_plan p;
        cel__beat_catch_up(&d, &p);
        ASSERT_EQ(p.last - p.first, rows[i].nsent);
        ASSERT_EQ(p.skipped, rows[i].skipped);
        ASSERT_EQ(p.skip_to, rows[i].records_skip ? now - 30 : 0);
        if (rows[i].nsent)
            ASSERT_EQ(ring[p.last - 1], now - 30); /* the newest goes last */
    }
}

/* The clock jumps an hour ahead under an every-second entry: 3600 runs
 * fall due at once. skip: the on-time six; once: the same; all: the
 * newest beat_catch_up_max missed ones too, the rest recorded as skipped. */
static void test_forward_jump_of_an_hour(void)
{
    int64_t last = NOW - 3600;
    struct outcome o = decide(last, NOW, CEL_CATCH_UP_SKIP, 100);
    ASSERT_EQ(o.nsent, GRACE + 1);
    ASSERT_EQ(o.first_sent, NOW - GRACE);
    ASSERT_EQ(o.last_sent, NOW);
    ASSERT(o.plan.skipped >= 100); /* a lower bound: what the look-back window saw */

    o = decide(last, NOW, CEL_CATCH_UP_ONCE, 100);
    ASSERT_EQ(o.nsent, GRACE + 1);
    ASSERT_EQ(o.first_sent, NOW - GRACE);

    o = decide(last, NOW, CEL_CATCH_UP_ALL, 100);
    ASSERT_EQ(o.nsent, 100 + GRACE + 1); /* capped at beat_catch_up_max */
    ASSERT_EQ(o.first_sent, NOW - GRACE - 100);
    ASSERT_EQ(o.last_sent, NOW);
    ASSERT(o.plan.skipped > 0);

    o = decide(last, NOW, CEL_CATCH_UP_ALL, 10000); /* a cap above the jump: every run */
    ASSERT_EQ(o.nsent, 3600);
    ASSERT_EQ(o.first_sent, last + 1);
    ASSERT_EQ(o.plan.skipped, 0);
    ASSERT_EQ(o.older, 0);
}

/* A year ahead costs about the cap, not a year of seconds; the runs
 * listed are still the newest ones, in order. */
static void test_forward_jump_of_a_year_is_cheap(void)
{
    int64_t ring[32];
    size_t older = 0;
    size_t n = cel__beat_due_collect(every_second, NULL, NOW - 366 * 86400, NOW, 32, ring, &older);
    ASSERT_EQ(n, 32);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(ring[i], NOW - 31 + (int64_t)i);
    ASSERT(older > 0);
}

/* The clock goes back below the last run: nothing is sent again, with
 * any policy; when it passes the last run again, the runs after it go. */
static void test_backward_jump_resends_nothing(void)
{
    const cel_catch_up policies[] = {CEL_CATCH_UP_SKIP, CEL_CATCH_UP_ONCE, CEL_CATCH_UP_ALL};
    for (size_t i = 0; i < 3; i++) {
        struct outcome o = decide(NOW, NOW - 3600, policies[i], 100);
        ASSERT_EQ(o.nsent, 0);
        ASSERT_EQ(o.plan.skipped, 0);
        ASSERT_EQ(o.plan.skip_to, 0);
        o = decide(NOW, NOW - 1, policies[i], 100);
        ASSERT_EQ(o.nsent, 0);
        o = decide(NOW, NOW + 1, policies[i], 100);
        ASSERT_EQ(o.nsent, 1);
        ASSERT_EQ(o.first_sent, NOW + 1);
    }

    /* Runs listed at or before the last run are dropped by the plan too
     * (a list built before the last run moved). */
    int64_t ticks[] = {NOW - 2, NOW - 1, NOW};
    struct cel_beat_due d = {.ticks = ticks,
                             .n = 3,
                             .last_run_s = NOW - 1,
                             .now_s = NOW,
                             .grace_s = GRACE,
                             .policy = CEL_CATCH_UP_ALL,
                             .max = 100};
    struct cel_beat_plan p;
    cel__beat_catch_up(&d, &p);
    ASSERT_EQ(p.first, 2);
    ASSERT_EQ(p.last, 3);
    ASSERT_EQ(p.skipped, 0);
}

/* Runs after now are not due, even if listed. */
static void test_future_runs_wait(void)
{
    int64_t ticks[] = {NOW - 1, NOW, NOW + 1};
    struct cel_beat_due d = {.ticks = ticks,
                             .n = 3,
                             .last_run_s = NOW - 2,
                             .now_s = NOW,
                             .grace_s = GRACE,
                             .policy = CEL_CATCH_UP_ALL,
                             .max = 100};
    struct cel_beat_plan p;
    cel__beat_catch_up(&d, &p);
    ASSERT_EQ(p.first, 0);
    ASSERT_EQ(p.last, 2);
}

int main(void)
{
    TEST_RUN(test_on_time_runs_are_sent);
    TEST_RUN(test_policies_after_a_short_outage);
    TEST_RUN(test_policies_with_only_missed_runs);
    TEST_RUN(test_forward_jump_of_an_hour);
    TEST_RUN(test_forward_jump_of_a_year_is_cheap);
    TEST_RUN(test_backward_jump_resends_nothing);
    TEST_RUN(test_future_runs_wait);
    return 0;
}
