/*
 * test_settle.c - the worker's store thread against transports that fail
 * on command: an ack never precedes its stored result, a failed write is
 * kept and retried (and logged once per interval, not once per task), and
 * messages claimed in a transaction that rolled back are never handed out.
 *
 * The broker and the store are the in-process memory transport with some
 * of their ops swapped for wrappers that fail while a flag is set.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <uv.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "testing.h"
#include "worker/settle.h"
#include "worker/worker_internal.h"

static atomic_bool fail_store, fail_commit;
static atomic_int fail_body_publish; /* publishes of body-1 to fail */

/* What the store thread did, in order (chord tests). */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char events[64][64];
static size_t nevents;

static void note(const char *what, const char *id)
{
    pthread_mutex_lock(&log_mu);
    if (nevents < 64)
        snprintf(events[nevents++], sizeof events[0], "%s %s", what, id);
    pthread_mutex_unlock(&log_mu);
}

/* Position of an event in the log, -1 when absent; *count gets how many
 * times it was logged. */
static int event_at(const char *ev, int *count)
{
    int at = -1;
    *count = 0;
    pthread_mutex_lock(&log_mu);
    for (size_t i = 0; i < nevents; i++)
        if (strcmp(events[i], ev) == 0) {
            if (at < 0)
                at = (int)i;
            (*count)++;
        }
    pthread_mutex_unlock(&log_mu);
    return at;
}
static atomic_int acks, acks_before_result, commits_failed, error_logs;
static struct cel_backend *real_backend; /* for the ack wrapper's check */
static struct cel_backend_ops backend_ops;
static struct cel_broker_ops broker_ops;

static int failing_store(struct cel_backend *bk, const char *task_id, cel_state state,
                         const char *meta, size_t len, int64_t ttl_s)
{
    if (atomic_load(&fail_store))
        return cel__err(&bk->err, CEL_EDISCONNECTED, "result store is down (test)");
    note("store", task_id);
    return cel__backend_memory.store(bk, task_id, state, meta, len, ttl_s);
}

/* The body of every test message is its task id. */
static int checking_ack(struct cel_broker *b, const struct cel_delivery *d)
{
    char *meta = NULL;
    if (cel__backend_memory.get(real_backend, d->body, &meta) != CEL_OK)
        atomic_fetch_add(&acks_before_result, 1);
    free(meta);
    note("ack", d->body);
    atomic_fetch_add(&acks, 1);
    return cel__broker_memory.ack(b, d);
}

static int logging_publish(struct cel_broker *b, const char *queue, int priority, int64_t due_us,
                           const char *task_id, const char *body, size_t len)
{
    if (task_id && strcmp(task_id, "body-1") == 0 && atomic_load(&fail_body_publish) > 0) {
        atomic_fetch_sub(&fail_body_publish, 1);
        return cel__err(&b->err, CEL_EDISCONNECTED, "broker is down (test)");
    }
    note("publish", task_id ? task_id : "");
    return cel__broker_memory.publish(b, queue, priority, due_us, task_id, body, len);
}

static int logging_join(struct cel_backend *bk, const char *gid, int index, const char *entry,
                        size_t len, int64_t ttl_s, bool *complete, char **entries)
{
    int rc = cel__backend_memory.chord_join(bk, gid, index, entry, len, ttl_s, complete, entries);
    note(*complete ? "join-complete" : "join", gid);
    return rc;
}

static int begin_noop(struct cel_broker *b)
{
    (void)b;
    return CEL_OK;
}

static int failing_commit(struct cel_broker *b)
{
    if (atomic_load(&fail_commit)) {
        atomic_fetch_add(&commits_failed, 1);
        return cel__err(&b->err, CEL_EIO, "database or disk is full (test)");
    }
    return CEL_OK;
}

static void count_errors(cel_log_level level, const char *component, const char *msg, void *ud)
{
    (void)component, (void)ud;
    if (level >= CEL_LOG_ERROR && strstr(msg, "kept and retried"))
        atomic_fetch_add(&error_logs, 1);
}

struct harness {
    uv_loop_t loop;
    struct cel_settler *s;
    struct cel_broker *b; /* a second handle, for publishing and checks */
    struct cel_inflight *fetched[512];
    size_t nfetched, nfinished;
};

static void on_report(void *ud, struct cel_settle_report *r)
{
    struct harness *h = ud;
    for (size_t i = 0; i < r->nfetched; i++)
        h->fetched[h->nfetched++] = r->fetched[i];
    for (size_t i = 0; i < r->nfinished; i++) {
        h->nfinished++;
        cel__inflight_free(r->finished[i]);
    }
    cel__settle_report_free(r);
}

static const char *const queues[] = {"celery"};

static void start(struct harness *h, const char *url, bool transactional, int64_t lease_ms)
{
    memset(h, 0, sizeof *h);
    atomic_store(&fail_store, false);
    atomic_store(&fail_commit, false);
    atomic_store(&acks, 0);
    atomic_store(&acks_before_result, 0);
    atomic_store(&commits_failed, 0);
    atomic_store(&error_logs, 0);
    atomic_store(&fail_body_publish, 0);
    nevents = 0;
    ASSERT_EQ(uv_loop_init(&h->loop), 0);
    struct cel_errbuf err = {{0}};
    struct cel_broker *b = NULL;
    struct cel_backend *k = NULL;
    ASSERT_OK(cel__broker_open(url, NULL, &b, &err));
    ASSERT_OK(cel__broker_open(url, NULL, &h->b, &err));
    ASSERT_OK(cel__backend_open(url, NULL, &k, &err));
    backend_ops = cel__backend_memory;
    backend_ops.store = failing_store;
    backend_ops.chord_join = logging_join;
    k->ops = &backend_ops;
    real_backend = k;
    broker_ops = cel__broker_memory;
    broker_ops.ack = checking_ack;
    broker_ops.publish = logging_publish;
    if (transactional) {
        broker_ops.caps |= CEL_BROKER_CAP_TRANSACTIONS;
        broker_ops.begin = begin_noop;
        broker_ops.commit = failing_commit;
    }
    b->ops = &broker_ops;
    struct cel_settler_config cfg = {.loop = &h->loop,
                                     .queues = queues,
                                     .nqueues = 1,
                                     .lease_ms = lease_ms,
                                     .result_ttl_s = 0,
                                     .on_report = on_report,
                                     .ud = h};
    ASSERT_OK(cel__settler_start(&h->s, b, k, &cfg, &err));
}

static void publish(struct harness *h, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "task-%d", i);
        ASSERT_OK(h->b->ops->publish(h->b, "celery", 0, 0, id, id, strlen(id)));
    }
}

/* Runs the loop until cond holds or ms pass; returns cond. */
#define RUN_UNTIL(h, cond, ms)                                                                     \
    ({                                                                                             \
        int64_t until_ = cel__mono_ms() + (ms);                                                    \
        while (!(cond) && cel__mono_ms() < until_) {                                               \
            cel__settler_flush((h)->s);                                                            \
            uv_run(&(h)->loop, UV_RUN_NOWAIT);                                                     \
            cel_test_sleep_ms(1);                                                                  \
        }                                                                                          \
        (cond);                                                                                    \
    })

static void push_result(struct harness *h, struct cel_inflight *f)
{
    char meta[128];
    snprintf(meta, sizeof meta, "{\"status\": \"SUCCESS\", \"task_id\": \"%s\"}", f->d.body);
    struct cel_settle_item it = {.op = CEL_SETTLE_ACK,
                                 .f = f,
                                 .task_id = strdup(f->d.body),
                                 .state = CEL_STATE_SUCCESS,
                                 .meta = strdup(meta),
                                 .meta_len = strlen(meta)};
    ASSERT_OK(cel__settler_push(h->s, &it));
}

static void stop(struct harness *h)
{
    cel__settler_stop(h->s, cel__mono_ms() + 2000);
    ASSERT(RUN_UNTIL(h, cel__settler_done(h->s), 5000));
    cel__settler_free(h->s);
    while (uv_run(&h->loop, UV_RUN_NOWAIT))
        ;
    ASSERT_EQ(uv_loop_close(&h->loop), 0);
    cel__broker_close(h->b);
}

/* The result store goes away while results wait: nothing is acked, the
 * results are kept, and once it is back every result lands before its ack. */
static void test_ack_waits_for_stored_result(void)
{
    struct harness h;
    start(&h, "memory://settle-blip", false, 60000);
    publish(&h, 50);
    cel__settler_set_room(h.s, 0, 100);
    ASSERT(RUN_UNTIL(&h, h.nfetched == 50, 5000));
    atomic_store(&fail_store, true);
    for (size_t i = 0; i < h.nfetched; i++)
        push_result(&h, h.fetched[i]);
    cel__settler_set_room(h.s, 50, 50);
    RUN_UNTIL(&h, false, 400);
    ASSERT_EQ(atomic_load(&acks), 0);
    ASSERT_EQ(h.nfinished, 0u);
    ASSERT(cel__settler_failing(h.s));
    ASSERT_EQ(cel__settler_backlog(h.s), 50u);
    /* Retried with backoff, reported once: not once per task or per try. */
    ASSERT_EQ(atomic_load(&error_logs), 1);
    atomic_store(&fail_store, false);
    ASSERT(RUN_UNTIL(&h, h.nfinished == 50, 8000));
    ASSERT_EQ(atomic_load(&acks), 50);
    ASSERT_EQ(atomic_load(&acks_before_result), 0);
    ASSERT(!cel__settler_failing(h.s));
    size_t left = 99;
    ASSERT_OK(h.b->ops->length(h.b, "celery", &left));
    ASSERT_EQ(left, 0u);
    stop(&h);
}

/* A commit that fails (a full disk) rolls back the claims made in it: the
 * thread must not hand those messages out, or they would run while still
 * queued and run again when claimed later. */
static void test_rolled_back_claims_not_handed_out(void)
{
    struct harness h;
    start(&h, "memory://settle-full", true, 300);
    atomic_store(&fail_commit, true);
    publish(&h, 20);
    cel__settler_set_room(h.s, 0, 100);
    ASSERT(RUN_UNTIL(&h, atomic_load(&commits_failed) >= 2, 5000));
    ASSERT_EQ(h.nfetched, 0u);
    atomic_store(&fail_commit, false);
    /* The memory transport cannot roll back, so its claims come back after
     * their 300 ms lease, as a rolled-back claim would be there at once. */
    ASSERT(RUN_UNTIL(&h, h.nfetched == 20, 8000));
    for (size_t i = 0; i < h.nfetched; i++)
        push_result(&h, h.fetched[i]);
    ASSERT(RUN_UNTIL(&h, h.nfinished == 20, 5000));
    ASSERT_EQ(atomic_load(&acks_before_result), 0);
    stop(&h);
}

/* Shutdown lands what is queued before the thread exits. */
static void test_stop_settles_backlog(void)
{
    struct harness h;
    start(&h, "memory://settle-stop", false, 60000);
    publish(&h, 30);
    cel__settler_set_room(h.s, 0, 30);
    ASSERT(RUN_UNTIL(&h, h.nfetched == 30, 5000));
    for (size_t i = 0; i < h.nfetched; i++)
        push_result(&h, h.fetched[i]);
    cel__settler_set_room(h.s, 30, 0);
    cel__settler_stop(h.s, cel__mono_ms() + 5000);
    ASSERT(RUN_UNTIL(&h, cel__settler_done(h.s), 5000));
    ASSERT_EQ(h.nfinished, 30u);
    ASSERT_EQ(atomic_load(&acks), 30);
    stop(&h);
}

/* issue 8: a chord whose two header members settle here. The first
 * records the size and joins; the second completes the chord: its result
 * is stored, then it joins, then the body goes out with both results in
 * index order, then it is acked. The body's first publish fails: the
 * retried round trip sends it once, from the entries the first join
 * kept (that join consumed the chord), never a second time. */
static const char chord_body[] =
    "{\"task\": \"tsum\", \"args\": [], \"kwargs\": {}, \"options\": {\"task_id\": \"body-1\", "
    "\"queue\": \"bodyq\"}, \"subtask_type\": null, \"immutable\": false}";

static void add_join(struct cel_inflight *f, int index)
{
    char entry[64];
    snprintf(entry, sizeof entry, "[1, \"%s\", \"SUCCESS\", %d]", f->d.body, 10 + index);
    const struct cel_chord_join j = {.group_id = "g-1",
                                     .group_index = index,
                                     .task_id = f->d.body,
                                     .root_id = "root-1",
                                     .body = chord_body,
                                     .body_len = strlen(chord_body),
                                     .entry = entry,
                                     .entry_len = strlen(entry)};
    ASSERT_OK(cel__consumer_add_chord_join(f, &j));
}

static void test_chord_member_order(void)
{
    struct harness h;
    start(&h, "memory://settle-chord", false, 60000);
    publish(&h, 2);
    cel__settler_set_room(h.s, 0, 2);
    ASSERT(RUN_UNTIL(&h, h.nfetched == 2, 5000));
    struct cel_inflight *first = h.fetched[0], *second = h.fetched[1];
    /* The header is published by task-0, which records the size first
     * (a client would; here the members settle in one worker). */
    ASSERT_OK(cel__consumer_add_chord_size(first, "g-1", 2));
    add_join(second, 1);
    add_join(first, 0);
    atomic_store(&fail_body_publish, 1);
    push_result(&h, first);
    ASSERT(RUN_UNTIL(&h, h.nfinished == 1, 5000));
    push_result(&h, second);
    ASSERT(RUN_UNTIL(&h, h.nfinished == 2, 8000));

    int n, store = event_at("store task-1", &n), join = event_at("join-complete g-1", &n);
    int joins_complete = n, pub = event_at("publish body-1", &n), pubs = n;
    int ack = event_at("ack task-1", &n);
    ASSERT(store >= 0 && store < join && join < pub && pub < ack);
    ASSERT_EQ(joins_complete, 1); /* the retry's join finds the chord consumed */
    ASSERT_EQ(pubs, 1);
    ASSERT(event_at("ack task-0", &n) < join);

    /* The body, with both results in index order, parent the completer. */
    struct cel_delivery d[2];
    size_t got = 0;
    const char *const bq[] = {"bodyq"};
    int64_t due = 0;
    ASSERT_OK(h.b->ops->fetch(h.b, bq, 1, 2, 60000, d, &got, &due));
    ASSERT_EQ(got, 1u);
    ASSERT_CONTAINS(d[0].body, "\"argsrepr\": \"([10, 11],)\""); /* args [[10, 11]] */
    ASSERT_CONTAINS(d[0].body, "\"parent_id\": \"task-1\"");
    ASSERT_CONTAINS(d[0].body, "\"root_id\": \"root-1\"");
    cel__delivery_release(&d[0]);
    stop(&h);
}

/* A failed member: the body is not sent; ChordError is stored on it. */
static void test_chord_failure_stored_on_body(void)
{
    struct harness h;
    start(&h, "memory://settle-chord-fail", false, 60000);
    publish(&h, 1);
    cel__settler_set_room(h.s, 0, 1);
    ASSERT(RUN_UNTIL(&h, h.nfetched == 1, 5000));
    struct cel_inflight *f = h.fetched[0];
    ASSERT_OK(cel__consumer_add_chord_size(f, "g-1", 1));
    const char entry[] = "[1, \"task-0\", \"FAILURE\", {\"exc_type\": \"ValueError\", "
                         "\"exc_message\": [\"x\"], \"exc_module\": \"builtins\"}]";
    const struct cel_chord_join j = {.group_id = "g-1",
                                     .group_index = 0,
                                     .task_id = "task-0",
                                     .body = chord_body,
                                     .body_len = strlen(chord_body),
                                     .entry = entry,
                                     .entry_len = strlen(entry)};
    ASSERT_OK(cel__consumer_add_chord_join(f, &j));
    push_result(&h, f);
    ASSERT(RUN_UNTIL(&h, h.nfinished == 1, 5000));
    int n;
    ASSERT_EQ(event_at("publish body-1", &n), -1);
    ASSERT(event_at("store body-1", &n) < event_at("ack task-0", &n));
    char *meta = NULL;
    ASSERT_OK(cel__backend_memory.get(real_backend, "body-1", &meta));
    ASSERT_CONTAINS(meta, "\"status\": \"FAILURE\"");
    ASSERT_CONTAINS(meta, "\"exc_type\": \"ChordError\"");
    ASSERT_CONTAINS(meta, "Dependency task-0 raised ValueError('x')");
    ASSERT_CONTAINS(meta, "\"exc_module\": \"celery.exceptions\"");
    free(meta);
    stop(&h);
}

int main(void)
{
    cel_set_log_handler(count_errors, NULL, CEL_LOG_WARNING);
    TEST_RUN(test_ack_waits_for_stored_result);
    TEST_RUN(test_rolled_back_claims_not_handed_out);
    TEST_RUN(test_stop_settles_backlog);
    TEST_RUN(test_chord_member_order);
    TEST_RUN(test_chord_failure_stored_on_body);
    return 0;
}
