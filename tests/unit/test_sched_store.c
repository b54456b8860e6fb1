/*
 * test_sched_store.c - the periodic-entry and lease ops of the SQLite and
 * Redis transports (broker.h sched_*, lease_*): entries stored, listed
 * and edited with a version that moves; a lease held by one holder at a
 * time; sched_fire sending one message and recording the run, or
 * refusing (lease, disabled, a run recorded meanwhile) and sending
 * nothing; and 50 processes racing for a lease and for one run, of which
 * exactly one wins.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "core/clock.h"
#include "redis_server.h"
#include "store_open.h"
#include "testing.h"

#define RACERS 50
#define S      1000000LL /* µs */

static const char *const beat_q[] = {"beat-q"};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void put(struct cel_broker *b, const char *name, const char *doc, bool replace)
{
    if (b->ops->sched_put(b, name, doc, strlen(doc), true, replace) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "sched_put %s: %s", name, cel__broker_errmsg(b));
}

static int64_t version(struct cel_broker *b)
{
    int64_t v = -1;
    ASSERT_OK(b->ops->sched_version(b, &v));
    return v;
}

static struct cel_sched_row get(struct cel_broker *b, const char *name)
{
    struct cel_sched_row r;
    if (b->ops->sched_get(b, name, &r) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "sched_get %s: %s", name, cel__broker_errmsg(b));
    return r;
}

/* A run of `name` under (lease, holder) with a body naming task_id. */
static struct cel_sched_fire run_of(const char *name, const char *lease, const char *holder,
                                    int64_t expect, int64_t tick, const char *task_id,
                                    const char *body)
{
    struct cel_sched_fire f = {.name = name,
                               .lease = lease,
                               .holder = holder,
                               .expect_last_run_us = expect,
                               .tick_us = tick,
                               .send = true,
                               .queue = beat_q[0],
                               .priority = 6,
                               .task_id = task_id,
                               .body = body,
                               .len = strlen(body)};
    return f;
}

static size_t queued(struct cel_broker *b)
{
    size_t len = 0;
    ASSERT_OK(b->ops->length(b, beat_q[0], &len));
    return len;
}

/* Fetches one message within timeout_ms (the Redis consumer fills its
 * ready list on a thread); false when none came. */
static bool fetch_one(struct cel_broker *b, struct cel_delivery *d, int timeout_ms)
{
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    for (;;) {
        size_t n = 0;
        b->ops->drain_wakeup(b);
        ASSERT_OK(b->ops->fetch(b, beat_q, 1, 1, 60000, d, &n, NULL));
        if (n == 1)
            return true;
        int64_t left = deadline - cel_test_now_ms();
        if (left <= 0)
            return false;
        int fd = b->ops->wakeup_fd(b);
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, (int)(left < 50 ? left : 50));
        } else {
            sleep_ms(10);
        }
    }
}

/* ---- entries ------------------------------------------------------------ */

static void check_entries(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->sched_put && b->ops->sched_get && b->ops->sched_list && b->ops->sched_remove &&
           b->ops->sched_enable && b->ops->sched_version);
    struct cel_sched_row *v;
    size_t n;
    ASSERT_OK(b->ops->sched_list(b, &v, &n));
    ASSERT_EQ(n, 0);
    ASSERT(v == NULL);
    ASSERT_EQ(version(b), 0);

    int64_t before = cel__wall_us();
    put(b, "zeta", "{\"task\":\"z\"}", false);
    put(b, "alpha", "{\"task\":\"a\"}", false);
    ASSERT_OK(b->ops->sched_put(b, "mid", "{\"task\":\"m\"}xx", 12, false, false));
    int64_t v3 = version(b);
    ASSERT(v3 >= 3);

    ASSERT_OK(b->ops->sched_list(b, &v, &n));
    ASSERT_EQ(n, 3);
    ASSERT_STREQ(v[0].name, "alpha");
    ASSERT_STREQ(v[1].name, "mid");
    ASSERT_STREQ(v[2].name, "zeta");
    ASSERT_STREQ(v[1].doc, "{\"task\":\"m\"}"); /* exactly len bytes */
    ASSERT_EQ(v[1].len, 12);
    ASSERT(!v[1].enabled);
    ASSERT(v[0].enabled);
    ASSERT_EQ(v[0].last_run_us, 0);
    ASSERT_EQ(v[0].total_runs, 0);
    ASSERT(v[0].updated_us >= before && v[0].updated_us <= cel__wall_us());
    cel__sched_rows_free(v, n);

    /* Without replace an existing entry is refused and left alone. */
    ASSERT_EQ(b->ops->sched_put(b, "alpha", "{}", 2, true, false), CEL_ESTATE);
    ASSERT_CONTAINS(cel__broker_errmsg(b), "alpha");
    struct cel_sched_row r = get(b, "alpha");
    ASSERT_STREQ(r.doc, "{\"task\":\"a\"}");
    cel__sched_row_release(&r);
    ASSERT_EQ(version(b), v3);

    /* A run recorded, then a replace: the run and its count stay. */
    bool held = false;
    ASSERT_OK(b->ops->lease_acquire(b, "beat", "me", 10000, &held));
    ASSERT(held);
    struct cel_sched_fire f = run_of("alpha", "beat", "me", 0, 100 * S, "id-1", "{\"m\":1}");
    f.send = false;
    ASSERT_OK(b->ops->sched_fire(b, &f));
    put(b, "alpha", "{\"task\":\"a2\"}", true);
    ASSERT(version(b) > v3);
    r = get(b, "alpha");
    ASSERT_STREQ(r.doc, "{\"task\":\"a2\"}");
    ASSERT_EQ(r.last_run_us, 100 * S);
    ASSERT_EQ(r.total_runs, 0);
    cel__sched_row_release(&r);

    /* enable / disable / remove, each bumping the version. */
    int64_t v0 = version(b);
    ASSERT_OK(b->ops->sched_enable(b, "alpha", false));
    int64_t v1 = version(b);
    ASSERT(v1 > v0);
    r = get(b, "alpha");
    ASSERT(!r.enabled);
    ASSERT_EQ(r.last_run_us, 100 * S);
    cel__sched_row_release(&r);
    ASSERT_OK(b->ops->sched_enable(b, "alpha", true));
    r = get(b, "alpha");
    ASSERT(r.enabled);
    cel__sched_row_release(&r);
    ASSERT_OK(b->ops->sched_remove(b, "zeta"));
    int64_t v2 = version(b);
    ASSERT(v2 > v1);
    ASSERT_EQ(b->ops->sched_get(b, "zeta", &r), CEL_ENOTFOUND);
    ASSERT_EQ(b->ops->sched_remove(b, "zeta"), CEL_ENOTFOUND);
    ASSERT_EQ(b->ops->sched_enable(b, "zeta", true), CEL_ENOTFOUND);
    ASSERT_EQ(version(b), v2); /* failed edits bump nothing */
    ASSERT_OK(b->ops->sched_list(b, &v, &n));
    ASSERT_EQ(n, 2);
    cel__sched_rows_free(v, n);

    /* A second handle sees the same store. */
    struct cel_broker *b2 = cel_test_open_broker(url);
    ASSERT_EQ(version(b2), v2);
    r = get(b2, "mid");
    ASSERT_EQ(r.len, 12);
    cel__sched_row_release(&r);
    cel__broker_close(b2);
    ASSERT_OK(b->ops->lease_release(b, "beat", "me"));
    cel__broker_close(b);
}

/* ---- leases ------------------------------------------------------------- */

static bool acquire(struct cel_broker *b, const char *holder, int64_t ttl_ms)
{
    bool held = true;
    if (b->ops->lease_acquire(b, "beat", holder, ttl_ms, &held) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "lease_acquire %s: %s", holder, cel__broker_errmsg(b));
    return held;
}

static void check_lease(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->lease_acquire && b->ops->lease_release);
    ASSERT(acquire(b, "a", 10000));
    ASSERT(acquire(b, "a", 10000)); /* renewed */
    ASSERT(!acquire(b, "b", 10000));
    /* Releasing someone else's lease does nothing. */
    ASSERT_OK(b->ops->lease_release(b, "beat", "b"));
    ASSERT(!acquire(b, "b", 10000));
    ASSERT_OK(b->ops->lease_release(b, "beat", "a"));
    ASSERT(acquire(b, "b", 300));
    ASSERT(!acquire(b, "a", 300));
    /* A renewal pushes the expiry: still b's after more than one ttl. */
    sleep_ms(200);
    ASSERT(acquire(b, "b", 300));
    sleep_ms(200);
    ASSERT(!acquire(b, "a", 300));
    /* Not renewed: expired, and anyone may take it. */
    sleep_ms(400);
    ASSERT(acquire(b, "a", 10000));
    ASSERT(!acquire(b, "b", 10000));
    /* Leases are independent of each other. */
    bool held = false;
    ASSERT_OK(b->ops->lease_acquire(b, "other", "b", 10000, &held));
    ASSERT(held);
    ASSERT_OK(b->ops->lease_release(b, "beat", "a"));
    ASSERT_OK(b->ops->lease_release(b, "other", "b"));
    cel__broker_close(b);
}

/* ---- sched_fire --------------------------------------------------------- */

static void fire_refused(struct cel_broker *b, const struct cel_sched_fire *f, const char *why)
{
    int rc = b->ops->sched_fire(b, f);
    if (rc != CEL_ESTATE)
        cel_test_fail(__FILE__, __LINE__, "sched_fire returned %d, not CEL_ESTATE (%s)", rc,
                      cel__broker_errmsg(b));
    ASSERT_CONTAINS(cel__broker_errmsg(b), why);
}

static void check_fire(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(b->ops->sched_fire);
    put(b, "every", "{\"task\":\"t\"}", false);
    ASSERT(acquire(b, "me", 10000));
    int64_t v0 = version(b);

    const char *body = "{\"body\":\"e30=\",\"headers\":{\"id\":\"tick-1\"},\"properties\":{}}";
    struct cel_sched_fire f = run_of("every", "beat", "me", 0, 60 * S, "tick-1", body);
    /* A consumer asleep on another handle wakes as for a publish (on
     * Redis the fd is the consumer thread's, covered by fetch_one). */
    struct cel_broker *sleeper = strncmp(url, "sqlite:", 7) == 0 ? cel_test_open_broker(url) : NULL;
    if (sleeper)
        sleeper->ops->drain_wakeup(sleeper);
    ASSERT_OK(b->ops->sched_fire(b, &f));
    if (sleeper) {
        struct pollfd p = {.fd = sleeper->ops->wakeup_fd(sleeper), .events = POLLIN};
        ASSERT(p.fd >= 0);
        ASSERT_EQ(poll(&p, 1, 2000), 1);
        cel__broker_close(sleeper);
    }
    ASSERT_EQ(queued(b), 1);
    struct cel_sched_row r = get(b, "every");
    ASSERT_EQ(r.last_run_us, 60 * S);
    ASSERT_EQ(r.total_runs, 1);
    cel__sched_row_release(&r);
    ASSERT_EQ(version(b), v0); /* a run is no edit */
    int prios[4];
    size_t lens[4], nb = 0;
    ASSERT_OK(b->ops->length_bands(b, beat_q[0], prios, lens, 4, &nb));
    /* Redis reports all four bands, SQLite those with messages. */
    size_t in_bands = 0;
    for (size_t i = 0; i < nb; i++) {
        in_bands += lens[i];
        if (lens[i])
            ASSERT_EQ(prios[i], 6);
    }
    ASSERT_EQ(in_bands, 1);
    struct cel_delivery d;
    ASSERT(fetch_one(b, &d, 3000));
    ASSERT_STREQ(d.body, body);
    ASSERT_CONTAINS(d.body, "tick-1");
    ASSERT_OK(b->ops->ack(b, &d));
    cel__delivery_release(&d);

    /* The same run again (a second beat, or a retry): refused. */
    fire_refused(b, &f, "ran already");
    /* Lease not held, or held by someone else. */
    struct cel_sched_fire g = run_of("every", "beat", "you", 60 * S, 120 * S, "tick-2", body);
    fire_refused(b, &g, "held by me");
    g.lease = "nobody";
    fire_refused(b, &g, "not held");
    /* Disabled, and missing. */
    ASSERT_OK(b->ops->sched_enable(b, "every", false));
    g = run_of("every", "beat", "me", 60 * S, 120 * S, "tick-2", body);
    fire_refused(b, &g, "disabled");
    ASSERT_OK(b->ops->sched_enable(b, "every", true));
    g.name = "missing";
    fire_refused(b, &g, "no entry 'missing'");
    ASSERT_EQ(queued(b), 0);
    r = get(b, "every");
    ASSERT_EQ(r.last_run_us, 60 * S);
    ASSERT_EQ(r.total_runs, 1);
    cel__sched_row_release(&r);

    /* Skipped: the last run moves, nothing is sent, nothing counted. */
    g.name = "every";
    g.send = false;
    ASSERT_OK(b->ops->sched_fire(b, &g));
    ASSERT_EQ(queued(b), 0);
    r = get(b, "every");
    ASSERT_EQ(r.last_run_us, 120 * S);
    ASSERT_EQ(r.total_runs, 1);
    cel__sched_row_release(&r);

    /* With a due time the message is parked as publish() parks it. */
    g = run_of("every", "beat", "me", 120 * S, 180 * S, "tick-3", body);
    g.due_us = cel__wall_us() + 3600 * S;
    ASSERT_OK(b->ops->sched_fire(b, &g));
    ASSERT_EQ(queued(b), 1);
    ASSERT(!fetch_one(b, &d, 300));
    size_t purged = 0;
    ASSERT_OK(b->ops->purge(b, beat_q[0], &purged));
    r = get(b, "every");
    ASSERT_EQ(r.total_runs, 2);
    cel__sched_row_release(&r);

    /* After the lease expired the holder is fenced off. */
    ASSERT(acquire(b, "me", 100));
    sleep_ms(250);
    g = run_of("every", "beat", "me", 180 * S, 240 * S, "tick-4", body);
    fire_refused(b, &g, "lease 'beat'");
    ASSERT_EQ(queued(b), 0);
    cel__broker_close(b);
}

/* ---- races -------------------------------------------------------------- */

enum { WON = 0, LOST = 1, FAILED = 2 };

struct racer {
    int ready[2]; /* children write one byte each once open */
    int go[2];    /* the parent closes its end: all start at once */
    pid_t pids[RACERS];
};

/* Child side: open, report ready, wait for the start, run `body`. */
typedef int (*race_body)(struct cel_broker *b, int i);

static void race_child(struct racer *rc, const char *url, int i, race_body body)
{
    close(rc->ready[0]);
    close(rc->go[1]);
    struct cel_errbuf err = {0};
    struct cel_broker *b = NULL;
    int code = cel__broker_open(url, NULL, &b, &err);
    if (code != CEL_OK)
        fprintf(stderr, "racer %d: open: %s\n", i, err.msg);
    ssize_t w = write(rc->ready[1], "r", 1);
    (void)w;
    char c;
    while (read(rc->go[0], &c, 1) < 0 && errno == EINTR)
        ;
    int out = code == CEL_OK ? body(b, i) : FAILED;
    cel__broker_close(b);
    _exit(out);
}

/* Runs RACERS children of `body` against `url`; `between` runs in the
 * parent once every child has opened the store, before they start.
 * counts[WON/LOST/FAILED] receive the outcomes. */
static void race(const char *url, race_body body, void (*between)(const char *url), int counts[3])
{
    struct racer rc;
    ASSERT_OK(pipe(rc.ready));
    ASSERT_OK(pipe(rc.go));
    fflush(stderr);
    for (int i = 0; i < RACERS; i++) {
        rc.pids[i] = fork();
        ASSERT(rc.pids[i] >= 0);
        if (rc.pids[i] == 0)
            race_child(&rc, url, i, body);
    }
    close(rc.ready[1]);
    close(rc.go[0]);
    for (int got = 0; got < RACERS;) {
        char buf[RACERS];
        ssize_t r = read(rc.ready[0], buf, sizeof buf);
        if (r <= 0) {
            ASSERT(r < 0 && errno == EINTR);
            continue;
        }
        got += (int)r;
    }
    close(rc.ready[0]);
    if (between)
        between(url);
    close(rc.go[1]);
    counts[WON] = counts[LOST] = counts[FAILED] = 0;
    for (int i = 0; i < RACERS; i++) {
        int st = 0;
        ASSERT_EQ(waitpid(rc.pids[i], &st, 0), rc.pids[i]);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : FAILED;
        counts[code <= FAILED ? code : FAILED]++;
    }
}

static int retry_busy(struct cel_broker *b, int (*op)(struct cel_broker *b, void *arg), void *arg)
{
    int rc = CEL_EBUSY;
    for (int tries = 0; rc == CEL_EBUSY && tries < 50; tries++)
        if ((rc = op(b, arg)) == CEL_EBUSY)
            sleep_ms(20);
    return rc;
}

static void holder_of(int i, char *buf, size_t len)
{
    snprintf(buf, len, "racer-%d:%d", i, (int)getpid());
}

static int lease_op(struct cel_broker *b, void *arg)
{
    void **a = arg;
    return b->ops->lease_acquire(b, a[0], a[1], 30000, a[2]);
}

static int take_lease(struct cel_broker *b, const char *lease, const char *holder, bool *held)
{
    void *args[] = {(void *)lease, (void *)holder, held};
    int rc = retry_busy(b, lease_op, args);
    if (rc != CEL_OK)
        fprintf(stderr, "lease_acquire: %s\n", cel__broker_errmsg(b));
    return rc;
}

static int lease_body(struct cel_broker *b, int i)
{
    char holder[64];
    holder_of(i, holder, sizeof holder);
    bool held = false;
    if (take_lease(b, "beat", holder, &held) != CEL_OK)
        return FAILED;
    return held ? WON : LOST;
}

static void check_lease_race(const char *url)
{
    int counts[3];
    race(url, lease_body, NULL, counts);
    ASSERT_EQ(counts[FAILED], 0);
    ASSERT_EQ(counts[WON], 1);
    ASSERT_EQ(counts[LOST], RACERS - 1);
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT(!acquire(b, "parent", 1000)); /* still held by the winner */
    cel__broker_close(b);
}

static const char race_body_text[] = "{\"headers\":{\"id\":\"race-tick\"}}";

static int fire_op(struct cel_broker *b, void *arg)
{
    return b->ops->sched_fire(b, arg);
}

/* One fire of the race: WON, LOST (CEL_ESTATE) or FAILED. */
static int fire_as(struct cel_broker *b, const char *lease, const char *holder, int64_t expect,
                   int64_t tick)
{
    struct cel_sched_fire f =
        run_of("race", lease, holder, expect, tick, "race-tick", race_body_text);
    int rc = retry_busy(b, fire_op, &f);
    if (rc == CEL_ESTATE)
        return LOST;
    if (rc != CEL_OK)
        fprintf(stderr, "sched_fire: %d %s\n", rc, cel__broker_errmsg(b));
    return rc == CEL_OK ? WON : FAILED;
}

/* Everyone tries the shared lease, then fires whether it got it or not:
 * fencing lets only the holder through. */
static int fire_shared_lease(struct cel_broker *b, int i)
{
    char holder[64];
    holder_of(i, holder, sizeof holder);
    bool held;
    if (take_lease(b, "fire-beat", holder, &held) != CEL_OK)
        return FAILED;
    return fire_as(b, "fire-beat", holder, 0, 60 * S);
}

/* Everyone holds a lease of its own: only the last-run check stands
 * between them. */
static int fire_own_lease(struct cel_broker *b, int i)
{
    char holder[64], lease[64];
    holder_of(i, holder, sizeof holder);
    snprintf(lease, sizeof lease, "own-%d", i);
    bool held;
    if (take_lease(b, lease, holder, &held) != CEL_OK || !held)
        return FAILED;
    return fire_as(b, lease, holder, 60 * S, 120 * S);
}

static void put_race_entry(const char *url)
{
    struct cel_broker *b = cel_test_open_broker(url);
    put(b, "race", "{\"task\":\"race\"}", false);
    cel__broker_close(b);
}

static void check_fire_race(const char *url)
{
    int counts[3];
    race(url, fire_shared_lease, put_race_entry, counts);
    ASSERT_EQ(counts[FAILED], 0);
    ASSERT_EQ(counts[WON], 1);
    struct cel_broker *b = cel_test_open_broker(url);
    ASSERT_EQ(queued(b), 1);
    struct cel_sched_row r = get(b, "race");
    ASSERT_EQ(r.total_runs, 1);
    ASSERT_EQ(r.last_run_us, 60 * S);
    cel__sched_row_release(&r);
    cel__broker_close(b);

    race(url, fire_own_lease, NULL, counts);
    ASSERT_EQ(counts[FAILED], 0);
    ASSERT_EQ(counts[WON], 1);
    b = cel_test_open_broker(url);
    ASSERT_EQ(queued(b), 2);
    r = get(b, "race");
    ASSERT_EQ(r.total_runs, 2);
    ASSERT_EQ(r.last_run_us, 120 * S);
    cel__sched_row_release(&r);
    cel__broker_close(b);
}

/* ---- per transport ------------------------------------------------------ */

static void test_sqlite(void)
{
    check_entries("sqlite:///entries.db");
    check_lease("sqlite:///lease.db");
    check_fire("sqlite:///fire.db");
}

/* Each race on a file none of the racers opened before: they create the
 * schema together too. */
static void test_sqlite_races(void)
{
    check_lease_race("sqlite:///lease-race.db");
    check_fire_race("sqlite:///fire-race.db");
}

static void test_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    check_entries(srv.url);
    check_lease(srv.url);
    check_fire(srv.url);
    /* The layout is the documented one (redis_keys.h). */
    redisContext *c = cel_test_redis_connect(&srv);
    ASSERT(c);
    redisReply *r = cel_test_redis_cmd(c, "HGET celeriac.schedule.state every");
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_EQ(strncmp(r->str, "1 180000000 2 ", 14), 0); /* enabled, last run, total, updated */
    freeReplyObject(r);
    ASSERT(cel_test_redis_int(c, "EXISTS celeriac.schedule.version") == 1);
    ASSERT(cel_test_redis_int(c, "HEXISTS celeriac.schedule every") == 1);
    redisFree(c);
    cel_test_redis_stop(&srv);
}

static void test_redis_races(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    check_lease_race(srv.url);
    check_fire_race(srv.url);
    cel_test_redis_stop(&srv);
}

int main(void)
{
    TEST_RUN(test_sqlite);
    TEST_RUN(test_sqlite_races);
    TEST_RUN(test_redis);
    TEST_RUN(test_redis_races);
    return 0;
}
