/* settle.c - see settle.h. */
#include "worker/settle.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "celeriac/error.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/log.h"
#include "worker/chord.h"

#define COMP "worker"
/* Messages asked for per fetch (one round trip). */
#define FETCH_MAX 256
/* Retry backoff for failed writes. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A failing store is reported at most this often. */
#define FAIL_LOG_EVERY_MS 10000
/* Longest sleep: a safety net against a lost wakeup from the broker. */
#define IDLE_POLL_MS 1000
/* While the loop says nothing is urgent, results gather until this many
 * are waiting or the oldest has waited the loop's gather time, so one
 * commit covers many tasks (a commit costs far more than the statements
 * in it). */
#define GATHER_BATCH 256

struct item_vec {
    struct cel_settle_item *v;
    size_t n, cap;
};

struct rate_req {
    const char *name;
    double per_sec;
    void *key;
};

struct cel_settler {
    struct cel_broker *b;
    struct cel_backend *k;
    struct cel_settler_config cfg;
    pthread_t thread;
    int evfd; /* wakes the thread */
    uv_async_t async;

    /* loop thread */
    struct item_vec local;

    /* shared, under mu */
    pthread_mutex_t mu;
    struct item_vec incoming;
    uint64_t received;
    size_t room;
    bool room_changed;
    int64_t gather_us;
    bool park_req, parked; /* see cel__settler_park() */
    pthread_cond_t park_cv;
    struct cel_settle_report *out;
    bool stopping;
    int64_t deadline_ms;
    atomic_bool done;
    atomic_bool failing;
    atomic_size_t backlog;

    /* the queues to fetch from, as the loop set them last
     * (cel__settler_set_queues): under mu until taken */
    char **q_in;
    size_t nq_in;
    bool q_changed;
    uint64_t q_gen;              /* sets handed over so far */
    atomic_uint_fast64_t q_seen; /* the last set fetch() has seen */

    /* rate-limit token requests: queued under mu, served by the
     * store thread */
    struct rate_req *rate_in;
    size_t nrate_in, caprate_in;

    /* store thread */
    struct item_vec work;
    struct cel_inflight *reserved; /* leases to extend */
    uint64_t fetched_total;
    char **queues; /* fetched from now; owned */
    size_t nqueues;
};

/* ---- small containers ------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* *out: a copy of v[0..n) (NULL when n is 0). */
static int strv_copy(const char *const *v, size_t n, char ***out)
{
    *out = n ? calloc(n, sizeof **out) : NULL;
    if (n && !*out)
        return CEL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!((*out)[i] = strdup(v[i]))) {
            strv_free(*out, n);
            *out = NULL;
            return CEL_ENOMEM;
        }
    return CEL_OK;
}

static int vec_push(struct item_vec *v, const struct cel_settle_item *it)
{
    struct cel_settle_item *p = cel__array_grow(v->v, &v->cap, v->n, sizeof *p, 64);
    if (!p)
        return CEL_ENOMEM;
    v->v = p;
    v->v[v->n++] = *it;
    return CEL_OK;
}

/* Moves every item of src to the end of dst (src ends empty). */
static int vec_take(struct item_vec *dst, struct item_vec *src)
{
    if (!src->n)
        return CEL_OK;
    if (!dst->n) {
        struct item_vec t = *dst;
        *dst = *src;
        *src = t;
        src->n = 0;
        return CEL_OK;
    }
    for (size_t i = 0; i < src->n; i++)
        if (vec_push(dst, &src->v[i]) != CEL_OK) {
            memmove(src->v, src->v + i, (src->n - i) * sizeof *src->v);
            src->n -= i;
            return CEL_ENOMEM;
        }
    src->n = 0;
    return CEL_OK;
}

static void item_release(struct cel_settle_item *it)
{
    free(it->task_id);
    free(it->meta);
    free(it->reason);
    it->task_id = it->meta = it->reason = NULL;
}

static int ptr_push(struct cel_inflight ***v, size_t *n, size_t *cap, struct cel_inflight *f)
{
    struct cel_inflight **p = cel__array_grow(*v, cap, *n, sizeof *p, 64);
    if (!p)
        return CEL_ENOMEM;
    *v = p;
    (*v)[(*n)++] = f;
    return CEL_OK;
}

void cel__settle_report_free(struct cel_settle_report *r)
{
    if (!r)
        return;
    free(r->finished);
    free(r->fetched);
    free(r->rates);
    free(r);
}

/* ---- the thread's list of reservations ------------------------------- */

static void reserved_add(struct cel_settler *s, struct cel_inflight *f)
{
    f->store_prev = NULL;
    f->store_next = s->reserved;
    if (s->reserved)
        s->reserved->store_prev = f;
    s->reserved = f;
}

static void reserved_remove(struct cel_settler *s, struct cel_inflight *f)
{
    if (f->store_prev)
        f->store_prev->store_next = f->store_next;
    else if (s->reserved == f)
        s->reserved = f->store_next;
    else
        return; /* not listed (acked early) */
    if (f->store_next)
        f->store_next->store_prev = f->store_prev;
    f->store_prev = f->store_next = NULL;
}

/* ---- one round trip ---------------------------------------------------- */

static bool has_result(const struct cel_settle_item *it)
{
    return it->task_id && it->meta;
}

/* Sends what a completed chord becomes (chord.h): the body's chord
 * sizes then its messages, or the ChordError stored on the body. An
 * outcome that can never be sent (a body that is not a signature) is
 * logged and dropped rather than wedging every later ack behind it. */
static int fire_chord(struct cel_settler *s, const struct cel_followup *u)
{
    const struct cel_backend_ops *ko = s->k->ops;
    /* A header that nests groups was saved by whoever sent the chord
     * (Celery's apply_chord): the body gets its results in that shape. */
    char *header = NULL;
    if (ko->group_get) {
        int grc = ko->group_get(s->k, u->group_id, &header);
        if (grc != CEL_OK && grc != CEL_ENOTFOUND)
            return cel__err(&s->b->err, grc, "chord %s: %s", u->group_id,
                            cel__backend_errmsg(s->k));
    }
    struct cel_chord_outcome out;
    char why[256];
    int rc = cel__chord_outcome(u->body, u->len, u->completed, header, u->task_id, u->root_id, &out,
                                why, sizeof why);
    free(header);
    if (rc != CEL_OK) {
        CEL_ERROR(COMP, "chord %s completed by %s cannot go on: %s", u->group_id, u->task_id, why);
        cel__chord_outcome_release(&out);
        return rc == CEL_ENOMEM ? cel__err(&s->b->err, rc, "out of memory") : CEL_OK;
    }
    const struct cel_broker_ops *bo = s->b->ops;
    if (out.failed && out.errbacks_dropped[0])
        CEL_ERROR(COMP, "chord %s: the errbacks of its body %s are dropped: %s", u->group_id,
                  out.body_id, out.errbacks_dropped);
    if (out.failed) {
        rc = ko->store(s->k, out.body_id, CEL_STATE_FAILURE, out.meta, out.meta_len,
                       s->cfg.result_ttl_s);
        if (rc != CEL_OK)
            rc = cel__err(&s->b->err, rc, "chord %s: %s", u->group_id, cel__backend_errmsg(s->k));
    }
    for (size_t i = 0; rc == CEL_OK && i < out.plan.nchords; i++) {
        const char *saved = out.plan.chords[i].saved_header;
        if (saved && ko->group_save)
            rc = ko->group_save(s->k, out.plan.chords[i].id, saved, strlen(saved),
                                s->cfg.result_ttl_s);
        if (rc == CEL_OK)
            rc = ko->chord_size(s->k, out.plan.chords[i].id, out.plan.chords[i].size,
                                s->cfg.result_ttl_s);
        if (rc != CEL_OK)
            rc = cel__err(&s->b->err, rc, "chord %s: %s", out.plan.chords[i].id,
                          cel__backend_errmsg(s->k));
    }
    for (size_t i = 0; rc == CEL_OK && i < out.plan.nmsgs; i++) {
        const struct cel_canvas_msg *m = &out.plan.msgs[i];
        rc = bo->publish(s->b, m->queue, m->priority, m->due_us, m->id, m->body, m->len);
    }
    cel__chord_outcome_release(&out);
    return rc;
}

/* Joins a chord header member. When the join completes the chord its
 * entries are kept on the follow-up: a round trip that fails after it is
 * retried whole, and the retry joins again (a transaction that rolled
 * back undid the join; joining the same entry twice counts once) but
 * falls back on the kept entries when the earlier join had landed and
 * consumed the chord (Redis: DEL .s), so the body goes out exactly when
 * the ack does. */
static int join_chord(struct cel_settler *s, struct cel_followup *u)
{
    const struct cel_backend_ops *ko = s->k->ops;
    bool complete = false;
    char *entries = NULL;
    int rc = ko->chord_join(s->k, u->group_id, u->group_index, u->entry, u->entry_len,
                            s->cfg.result_ttl_s, &complete, &entries);
    if (rc != CEL_OK)
        return cel__err(&s->b->err, rc, "chord %s: %s", u->group_id, cel__backend_errmsg(s->k));
    if (complete) {
        free(u->completed);
        u->completed = entries;
    }
    return u->completed ? fire_chord(s, u) : CEL_OK;
}

/* Follow-ups go out before the ack in the same round trip, in the order
 * the task asked for them: chord sizes are recorded before the header
 * messages that join them are published, joins come after the result
 * is stored. A retry after a failed non-transactional write may publish
 * one twice (at least once, never lost). */
static int run_followups(struct cel_settler *s, struct cel_inflight *f)
{
    const struct cel_backend_ops *ko = s->k->ops;
    for (struct cel_followup *u = f ? f->followups : NULL; u; u = u->next) {
        int rc = CEL_OK;
        if ((u->kind == CEL_FOLLOWUP_CHORD_SIZE || u->kind == CEL_FOLLOWUP_CHORD_JOIN) &&
            (!ko->chord_size || !ko->chord_join)) {
            CEL_ERROR(COMP, "the %s result store cannot join chords: chord %s is dropped",
                      ko->scheme, u->group_id);
            continue;
        }
        switch (u->kind) {
        case CEL_FOLLOWUP_PUBLISH:
            rc = s->b->ops->publish(s->b, u->queue, u->priority, u->due_us, u->task_id, u->body,
                                    u->len);
            break;
        case CEL_FOLLOWUP_CHORD_SIZE:
            rc = ko->chord_size(s->k, u->group_id, u->size, s->cfg.result_ttl_s);
            if (rc != CEL_OK)
                rc = cel__err(&s->b->err, rc, "chord %s: %s", u->group_id,
                              cel__backend_errmsg(s->k));
            break;
        case CEL_FOLLOWUP_CHORD_JOIN:
            rc = join_chord(s, u);
            break;
        }
        if (rc != CEL_OK)
            return rc;
    }
    return CEL_OK;
}

static int broker_op(struct cel_settler *s, struct cel_settle_item *it)
{
    const struct cel_broker_ops *bo = s->b->ops;
    struct cel_delivery *d = it->f ? &it->f->d : NULL;
    if (it->op == CEL_SETTLE_ACK || it->op == CEL_SETTLE_RELEASE) {
        int rc = run_followups(s, it->f);
        if (rc != CEL_OK)
            return rc;
    }
    switch (it->op) {
    case CEL_SETTLE_NONE:
    case CEL_SETTLE_RELEASE:
        return CEL_OK;
    case CEL_SETTLE_ACK:
    case CEL_SETTLE_EARLY_ACK:
        return bo->ack(s->b, d);
    case CEL_SETTLE_REQUEUE:
        if (it->due_us && bo->requeue_at)
            return bo->requeue_at(s->b, d, it->due_us);
        return bo->reject(s->b, d, true, NULL);
    case CEL_SETTLE_DEAD_LETTER:
        return bo->reject(s->b, d, false, it->reason ? it->reason : "rejected");
    case CEL_SETTLE_REPARK: {
        int rc =
            bo->publish(s->b, d->queue, it->priority, it->due_us, it->f->task_id, d->body, d->len);
        return rc == CEL_OK ? bo->ack(s->b, d) : rc;
    }
    }
    return CEL_EINVAL;
}

/* A store error that retrying cannot fix: the result is dropped (and
 * said so) rather than wedging every later result behind it. */
static bool permanent(int rc)
{
    return rc == CEL_ETOOBIG || rc == CEL_EINVAL;
}

struct turn_result {
    bool ok;
    char why[512];
    size_t got;
};

/*
 * Stores results, then carries out the broker operations of the items
 * whose results are stored, fetches up to `want` messages and extends
 * leases, all in one transaction or pipeline when the transports batch.
 */
static void turn(struct cel_settler *s, size_t want, bool extend, struct cel_settle_report *rep,
                 int64_t *next_due_us, struct turn_result *tr)
{
    const struct cel_broker_ops *bo = s->b->ops;
    const struct cel_backend_ops *ko = s->k->ops;
    tr->ok = true;
    tr->why[0] = '\0';
    tr->got = 0;
    bool btx = bo->begin && bo->commit && bo->begin(s->b) == CEL_OK;
    bool ktx = ko->begin && ko->commit && ko->begin(s->k) == CEL_OK;

    /* Results first: an ack must never go out for a result not stored. */
    bool kfail = false;
    size_t nwork = s->work.n;
    for (size_t i = 0; i < nwork && !kfail; i++) {
        struct cel_settle_item *it = &s->work.v[i];
        if (!has_result(it) || it->result_done)
            continue;
        int rc =
            ko->store(s->k, it->task_id, it->state, it->meta, it->meta_len, s->cfg.result_ttl_s);
        if (rc != CEL_OK && permanent(rc)) {
            CEL_ERROR(COMP, "cannot store the result of %s, dropping it: %s", it->task_id,
                      cel__backend_errmsg(s->k));
            it->result_done = true;
        } else if (rc != CEL_OK) {
            kfail = true;
            snprintf(tr->why, sizeof tr->why, "cannot store results: %s",
                     cel__backend_errmsg(s->k));
        }
    }
    if (ktx && ko->commit(s->k) != CEL_OK && !kfail) {
        kfail = true;
        snprintf(tr->why, sizeof tr->why, "cannot store results: %s", cel__backend_errmsg(s->k));
    }
    /* Marks made in this turn (turn_*) are undone if the transaction
     * rolls back. */
    bool bfail = false;
    for (size_t i = 0; i < nwork; i++) {
        struct cel_settle_item *it = &s->work.v[i];
        it->turn_result = it->turn_broker = false;
        if (has_result(it) && !it->result_done && !kfail)
            it->result_done = it->turn_result = true;
    }
    for (size_t i = 0; i < nwork && !bfail; i++) {
        struct cel_settle_item *it = &s->work.v[i];
        if (it->broker_done || (has_result(it) && !it->result_done))
            continue;
        if (broker_op(s, it) != CEL_OK) {
            bfail = true;
            snprintf(tr->why, sizeof tr->why, "cannot ack or requeue messages: %s",
                     cel__broker_errmsg(s->b));
            break;
        }
        it->broker_done = it->turn_broker = true;
    }

    size_t nfetched = 0;
    struct cel_delivery batch[FETCH_MAX];
    if (!s->nqueues)
        want = 0;
    if (want && !kfail && !bfail) {
        if (want > FETCH_MAX)
            want = FETCH_MAX;
        int64_t due = 0;
        if (bo->fetch(s->b, (const char *const *)s->queues, s->nqueues, want, s->cfg.lease_ms,
                      batch, &nfetched, &due) != CEL_OK) {
            CEL_ERROR(COMP, "cannot fetch messages: %s", cel__broker_errmsg(s->b));
            nfetched = 0;
        } else {
            *next_due_us = due;
        }
    }
    if (extend && bo->extend && !bfail) {
        size_t n = 0;
        for (struct cel_inflight *f = s->reserved; f; f = f->store_next)
            n++;
        const struct cel_delivery **ds = n ? malloc(n * sizeof *ds) : NULL;
        if (ds) {
            n = 0;
            for (struct cel_inflight *f = s->reserved; f; f = f->store_next)
                ds[n++] = &f->d;
            if (bo->extend(s->b, ds, n, s->cfg.lease_ms) != CEL_OK)
                CEL_WARN(COMP, "cannot extend message leases: %s", cel__broker_errmsg(s->b));
            free(ds);
        }
    }
    if (btx && bo->commit(s->b) != CEL_OK && !bfail) {
        bfail = true;
        snprintf(tr->why, sizeof tr->why, "cannot commit results and acks: %s",
                 cel__broker_errmsg(s->b));
    }
    if (bfail) {
        /* Nothing of this turn is known to have landed. Results are
         * stored again on retry (a stored SUCCESS is never replaced);
         * messages claimed in a rolled-back transaction are still queued
         * and must not run here. */
        for (size_t i = 0; i < nwork; i++) {
            struct cel_settle_item *it = &s->work.v[i];
            if (it->turn_broker)
                it->broker_done = false;
            if (btx && it->turn_result)
                it->result_done = false;
        }
        if (btx && (bo->caps & CEL_BROKER_CAP_TRANSACTIONS)) {
            for (size_t i = 0; i < nfetched; i++)
                cel__delivery_release(&batch[i]);
            nfetched = 0;
        }
    }
    tr->ok = !kfail && !bfail;

    for (size_t i = 0; i < nfetched; i++) {
        struct cel_inflight *f = cel__inflight_new();
        if (!f || ptr_push(&rep->fetched, &rep->nfetched, &rep->capfetched, f) != CEL_OK) {
            /* Cannot track it: give it back rather than hold it unseen. */
            bo->reject(s->b, &batch[i], true, NULL);
            cel__delivery_release(&batch[i]);
            free(f);
            continue;
        }
        f->d = batch[i];
        reserved_add(s, f);
        s->fetched_total++;
    }
    tr->got = nfetched;

    /* Hand back what is done; keep the rest for the next turn. */
    size_t keep = 0;
    for (size_t i = 0; i < s->work.n; i++) {
        struct cel_settle_item *it = &s->work.v[i];
        bool complete = it->broker_done && (!has_result(it) || it->result_done);
        if (!complete) {
            s->work.v[keep++] = *it;
            continue;
        }
        if (it->f) {
            reserved_remove(s, it->f);
            if (it->op == CEL_SETTLE_EARLY_ACK)
                it->f->store_acked = true;
            else if (ptr_push(&rep->finished, &rep->nfinished, &rep->capfinished, it->f) != CEL_OK)
                CEL_ERROR(COMP, "out of memory: a settled message record is leaked");
        }
        item_release(it);
    }
    s->work.n = keep;
}

/* ---- rate limits ------------------------------------------- */

static void wake(struct cel_settler *s);

static int answer_push(struct cel_settle_report *r, const struct cel_rate_answer *a)
{
    struct cel_rate_answer *p = cel__array_grow(r->rates, &r->caprates, r->nrates, sizeof *p, 16);
    if (!p)
        return CEL_ENOMEM;
    r->rates = p;
    r->rates[r->nrates++] = *a;
    return CEL_OK;
}

/* Serves the token requests queued so far, each in its own broker
 * transaction. A failing broker is logged here, at most once every
 * FAIL_LOG_EVERY_MS; the requester tries again later. */
static void serve_rate_requests(struct cel_settler *s, struct cel_settle_report *rep,
                                int64_t *last_log_ms)
{
    pthread_mutex_lock(&s->mu);
    struct rate_req *v = s->rate_in;
    size_t n = s->nrate_in;
    s->rate_in = NULL;
    s->nrate_in = s->caprate_in = 0;
    pthread_mutex_unlock(&s->mu);
    const struct cel_broker_ops *bo = s->b->ops;
    for (size_t i = 0; i < n; i++) {
        struct cel_rate_answer a = {.key = v[i].key};
        a.rc = bo->rate_acquire ? bo->rate_acquire(s->b, v[i].name, v[i].per_sec, &a.wait_us)
                                : cel__err(&s->b->err, CEL_EINVAL,
                                           "the %s transport keeps no rate buckets", bo->scheme);
        if (a.rc != CEL_OK && cel__mono_ms() - *last_log_ms >= FAIL_LOG_EVERY_MS) {
            CEL_ERROR(COMP, "cannot take a rate-limit token for %s: %s (trying again)", v[i].name,
                      cel__broker_errmsg(s->b));
            *last_log_ms = cel__mono_ms();
        }
        if (answer_push(rep, &a) != CEL_OK)
            CEL_ERROR(COMP, "out of memory answering a rate-limit request");
    }
    free(v);
}

int cel__settler_rate_request(struct cel_settler *s, const char *name, double per_sec, void *key)
{
    pthread_mutex_lock(&s->mu);
    int rc = CEL_OK;
    if (s->nrate_in == s->caprate_in) {
        size_t cap = s->caprate_in ? s->caprate_in * 2 : 16;
        struct rate_req *p = realloc(s->rate_in, cap * sizeof *p);
        if (p) {
            s->rate_in = p;
            s->caprate_in = cap;
        } else {
            rc = CEL_ENOMEM;
        }
    }
    if (rc == CEL_OK)
        s->rate_in[s->nrate_in++] = (struct rate_req){name, per_sec, key};
    pthread_mutex_unlock(&s->mu);
    if (rc == CEL_OK)
        wake(s);
    return rc;
}

/* Appends a thread-side report to the one the loop will pick up. */
static void post_report(struct cel_settler *s, struct cel_settle_report *rep)
{
    if (!rep->nfinished && !rep->nfetched && !rep->nrates)
        return;
    pthread_mutex_lock(&s->mu);
    if (!s->out) {
        s->out = calloc(1, sizeof *s->out);
    }
    bool lost = !s->out;
    for (size_t i = 0; !lost && i < rep->nfinished; i++)
        lost = ptr_push(&s->out->finished, &s->out->nfinished, &s->out->capfinished,
                        rep->finished[i]) != CEL_OK;
    for (size_t i = 0; !lost && i < rep->nfetched; i++)
        lost = ptr_push(&s->out->fetched, &s->out->nfetched, &s->out->capfetched,
                        rep->fetched[i]) != CEL_OK;
    for (size_t i = 0; !lost && i < rep->nrates; i++)
        lost = answer_push(s->out, &rep->rates[i]) != CEL_OK;
    pthread_mutex_unlock(&s->mu);
    if (lost)
        CEL_ERROR(COMP, "out of memory while reporting settled messages");
    rep->nfinished = rep->nfetched = rep->nrates = 0;
    uv_async_send(&s->async);
}

/*
 * A new queue set is shown to the transport at once, with an empty
 * fetch: Redis's consumer thread stops popping from a queue left out
 * from then on (and gives back what it pops there). Only then does the
 * loop answer the command that changed it, so a client that sends to a
 * cancelled queue after the reply finds it not consumed.
 */
static void show_queues(struct cel_settler *s, uint64_t gen)
{
    struct cel_delivery none[1];
    size_t n = 0;
    int64_t due = 0;
    if (s->b->ops->fetch(s->b, (const char *const *)s->queues, s->nqueues, 0, s->cfg.lease_ms, none,
                         &n, &due) != CEL_OK)
        CEL_WARN(COMP, "cannot change the queues consumed: %s", cel__broker_errmsg(s->b));
    atomic_store(&s->q_seen, gen);
    uv_async_send(&s->async);
}

static void *settler_main(void *arg)
{
    struct cel_settler *s = arg;
    struct cel_settle_report rep = {0};
    bool more = true; /* messages may be waiting */
    int64_t next_due_us = 0;
    int64_t lease_every = s->cfg.lease_ms / 3 > 0 ? s->cfg.lease_ms / 3 : 1000;
    int64_t next_extend_ms = cel__mono_ms() + lease_every;
    int64_t retry_at_ms = 0, backoff_ms = BACKOFF_MIN_MS, last_log_ms = 0, failing_since = 0;
    int64_t work_since_us = 0; /* when the oldest unsettled item arrived */
    size_t fail_logs = 0;
    int64_t rate_log_ms = -FAIL_LOG_EVERY_MS; /* last rate-request failure logged */
    const struct cel_broker_ops *bo = s->b->ops;

    for (;;) {
        pthread_mutex_lock(&s->mu);
        /* Parked while the loop forks: holding nothing but this mutex,
         * which pthread_cond_wait releases. */
        while (s->park_req && !s->stopping) {
            if (!s->parked) {
                s->parked = true;
                uv_async_send(&s->async);
            }
            pthread_cond_wait(&s->park_cv, &s->mu);
        }
        s->parked = false;
        if (vec_take(&s->work, &s->incoming) != CEL_OK)
            CEL_ERROR(COMP, "out of memory taking settle items; retrying");
        uint64_t received = s->received;
        size_t cap = s->room;
        if (s->room_changed) {
            s->room_changed = false;
            more = true;
        }
        uint64_t q_taken = 0;
        if (s->q_changed) {
            s->q_changed = false;
            strv_free(s->queues, s->nqueues);
            s->queues = s->q_in;
            s->nqueues = s->nq_in;
            s->q_in = NULL;
            s->nq_in = 0;
            q_taken = s->q_gen;
            more = true;
        }
        bool stopping = s->stopping;
        int64_t deadline = s->deadline_ms;
        int64_t gather_us = s->gather_us;
        bool rate_asked = s->nrate_in > 0;
        pthread_mutex_unlock(&s->mu);

        if (rate_asked) {
            serve_rate_requests(s, &rep, &rate_log_ms);
            post_report(s, &rep);
        }
        if (q_taken)
            show_queues(s, q_taken);

        uint64_t unseen = s->fetched_total - received;
        size_t room = cap > unseen ? cap - (size_t)unseen : 0;
        int64_t now_ms = cel__mono_ms();
        if (next_due_us && cel__wall_us() >= next_due_us) {
            next_due_us = 0;
            more = true;
        }
        bool failing = atomic_load(&s->failing);
        bool may_try = !failing || now_ms >= retry_at_ms;
        bool want_fetch = !stopping && room > 0 && more;
        bool want_extend = s->reserved && now_ms >= next_extend_ms;
        int64_t now_us = cel__mono_us();
        if (!s->work.n)
            work_since_us = 0;
        else if (!work_since_us)
            work_since_us = now_us;
        /* Let results gather while the loop says it can wait. */
        int64_t gather_left_us = 0;
        if (s->work.n && s->work.n < GATHER_BATCH && gather_us > 0 && !stopping && !failing &&
            !want_extend)
            gather_left_us = work_since_us + gather_us - now_us;
        if (gather_left_us > 0) {
            may_try = false;
        } else if (may_try && (s->work.n || want_fetch || want_extend)) {
            struct turn_result tr;
            turn(s, want_fetch ? room : 0, want_extend, &rep, &next_due_us, &tr);
            if (want_fetch && tr.ok)
                more = tr.got == (room > FETCH_MAX ? FETCH_MAX : room);
            if (want_extend)
                next_extend_ms = now_ms + lease_every;
            if (!tr.ok) {
                if (!failing) {
                    failing_since = now_ms;
                    fail_logs = 0;
                }
                atomic_store(&s->failing, true);
                retry_at_ms = now_ms + backoff_ms;
                if (fail_logs == 0 || now_ms - last_log_ms >= FAIL_LOG_EVERY_MS) {
                    CEL_ERROR(COMP,
                              "%s; %zu results and acks are kept and retried (backoff up to "
                              "%.0f s; this is logged once every %d s)",
                              tr.why, s->work.n, BACKOFF_MAX_MS / 1000.0, FAIL_LOG_EVERY_MS / 1000);
                    last_log_ms = now_ms;
                    fail_logs++;
                }
                backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
            } else if (failing) {
                atomic_store(&s->failing, false);
                backoff_ms = BACKOFF_MIN_MS;
                CEL_WARN(COMP, "results and acks are being stored again after %.1f s",
                         (double)(now_ms - failing_since) / 1000.0);
            }
            post_report(s, &rep);
        }
        atomic_store(&s->backlog, s->work.n);
        if (stopping) {
            /* Done when everything handed over is settled and every
             * message fetched has reached the loop (which gives back the
             * ones it can no longer run), or when time is up. */
            pthread_mutex_lock(&s->mu);
            bool idle = !s->work.n && !s->incoming.n && s->fetched_total == s->received;
            pthread_mutex_unlock(&s->mu);
            if (idle || cel__mono_ms() >= deadline)
                break;
        }

        /* Sleep until the loop hands something over, the broker rings,
         * a retry, a lease extension or a delayed message is due. */
        now_ms = cel__mono_ms();
        int64_t timeout = IDLE_POLL_MS;
        bool poll_us = false;
        if (atomic_load(&s->failing))
            timeout = retry_at_ms - now_ms;
        else if (gather_left_us > 0)
            poll_us = true;
        else if (s->work.n)
            timeout = 0;
        if (s->reserved && next_extend_ms - now_ms < timeout)
            timeout = next_extend_ms - now_ms;
        if (next_due_us) {
            int64_t due = (next_due_us - cel__wall_us()) / 1000 + 1;
            if (due < timeout)
                timeout = due;
        }
        if (stopping && deadline - now_ms < timeout)
            timeout = deadline - now_ms;
        if (timeout < 0)
            timeout = 0;
        struct pollfd p[2] = {{.fd = s->evfd, .events = POLLIN}, {.fd = -1}};
        int wfd = bo->wakeup_fd ? bo->wakeup_fd(s->b) : -1;
        if (wfd >= 0 && room > 0 && !stopping)
            p[1] = (struct pollfd){.fd = wfd, .events = POLLIN};
        int r;
        if (poll_us) {
            /* Sub-millisecond: poll() cannot sleep that briefly. */
            struct timespec ts = {0, (long)(gather_left_us * 1000)};
            r = ppoll(p, 2, &ts, NULL);
        } else {
            r = poll(p, 2, (int)timeout);
        }
        if (r == 0 && !poll_us && timeout == IDLE_POLL_MS)
            more = true; /* safety net against a lost wakeup */
        if (r > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(s->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                CEL_DEBUG(COMP, "eventfd read: %s", strerror(errno));
        }
        if (r > 0 && p[1].fd >= 0 && p[1].revents) {
            if (bo->drain_wakeup)
                bo->drain_wakeup(s->b);
            more = true;
        }
    }
    free(rep.finished);
    free(rep.fetched);
    free(rep.rates);
    atomic_store(&s->done, true);
    uv_async_send(&s->async);
    return NULL;
}

/* ---- loop side --------------------------------------------------------- */

static void on_async(uv_async_t *h)
{
    struct cel_settler *s = h->data;
    pthread_mutex_lock(&s->mu);
    struct cel_settle_report *r = s->out;
    s->out = NULL;
    pthread_mutex_unlock(&s->mu);
    if (r)
        s->cfg.on_report(s->cfg.ud, r);
}

int cel__settler_start(struct cel_settler **out, struct cel_broker *b, struct cel_backend *k,
                       const struct cel_settler_config *cfg, struct cel_errbuf *err)
{
    *out = NULL;
    struct cel_settler *s = calloc(1, sizeof *s);
    if (!s)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    s->b = b;
    s->k = k;
    s->cfg = *cfg;
    if (strv_copy(cfg->queues, cfg->nqueues, &s->queues) != CEL_OK) {
        free(s);
        return cel__err(err, CEL_ENOMEM, "out of memory");
    }
    s->nqueues = cfg->nqueues;
    s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->evfd < 0) {
        strv_free(s->queues, s->nqueues);
        free(s);
        return cel__err(err, CEL_EIO, "eventfd: %s", strerror(errno));
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->park_cv, NULL);
    uv_async_init(cfg->loop, &s->async, on_async);
    s->async.data = s;
    int rc = pthread_create(&s->thread, NULL, settler_main, s);
    if (rc != 0) {
        uv_close((uv_handle_t *)&s->async, NULL);
        uv_run(cfg->loop, UV_RUN_NOWAIT);
        close(s->evfd);
        pthread_cond_destroy(&s->park_cv);
        pthread_mutex_destroy(&s->mu);
        strv_free(s->queues, s->nqueues);
        free(s);
        return cel__err(err, CEL_EIO, "cannot start the store thread: %s", strerror(rc));
    }
    *out = s;
    return CEL_OK;
}

int cel__settler_push(struct cel_settler *s, const struct cel_settle_item *item)
{
    struct cel_settle_item it = *item;
    it.result_done = it.broker_done = false;
    if (vec_push(&s->local, &it) != CEL_OK) {
        CEL_ERROR(COMP, "out of memory queueing a result; its message stays reserved");
        item_release(&it);
        return CEL_ENOMEM;
    }
    if (it.f)
        it.f->settling = it.op != CEL_SETTLE_EARLY_ACK && it.op != CEL_SETTLE_NONE;
    return CEL_OK;
}

static void wake(struct cel_settler *s)
{
    uint64_t one = 1;
    if (write(s->evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        CEL_DEBUG(COMP, "eventfd write: %s", strerror(errno));
}

void cel__settler_flush(struct cel_settler *s)
{
    if (!s->local.n)
        return;
    pthread_mutex_lock(&s->mu);
    int rc = vec_take(&s->incoming, &s->local);
    pthread_mutex_unlock(&s->mu);
    if (rc != CEL_OK)
        CEL_ERROR(COMP, "out of memory handing results over; retrying");
    wake(s);
}

void cel__settler_set_room(struct cel_settler *s, uint64_t received, size_t room)
{
    pthread_mutex_lock(&s->mu);
    bool changed = s->received != received || s->room != room;
    s->received = received;
    s->room = room;
    if (changed)
        s->room_changed = true;
    pthread_mutex_unlock(&s->mu);
    if (changed)
        wake(s);
}

uint64_t cel__settler_set_queues(struct cel_settler *s, const char *const *queues, size_t n)
{
    char **copy;
    if (strv_copy(queues, n, &copy) != CEL_OK)
        return 0;
    pthread_mutex_lock(&s->mu);
    strv_free(s->q_in, s->nq_in);
    s->q_in = copy;
    s->nq_in = n;
    s->q_changed = true;
    uint64_t gen = ++s->q_gen;
    pthread_mutex_unlock(&s->mu);
    wake(s);
    return gen;
}

bool cel__settler_queues_seen(struct cel_settler *s, uint64_t gen)
{
    return atomic_load(&s->q_seen) >= gen;
}

void cel__settler_set_gather(struct cel_settler *s, int64_t gather_us)
{
    pthread_mutex_lock(&s->mu);
    bool sooner = gather_us < s->gather_us;
    s->gather_us = gather_us;
    pthread_mutex_unlock(&s->mu);
    if (sooner)
        wake(s); /* an item gathering may be urgent now */
}

void cel__settler_park(struct cel_settler *s)
{
    pthread_mutex_lock(&s->mu);
    bool ask = !s->park_req;
    s->park_req = true;
    pthread_mutex_unlock(&s->mu);
    if (ask)
        wake(s);
}

bool cel__settler_parked(struct cel_settler *s)
{
    pthread_mutex_lock(&s->mu);
    bool parked = s->parked && s->park_req;
    pthread_mutex_unlock(&s->mu);
    return parked;
}

void cel__settler_unpark(struct cel_settler *s)
{
    pthread_mutex_lock(&s->mu);
    s->park_req = false;
    pthread_cond_signal(&s->park_cv);
    pthread_mutex_unlock(&s->mu);
}

bool cel__settler_failing(const struct cel_settler *s)
{
    return atomic_load(&s->failing);
}

size_t cel__settler_backlog(const struct cel_settler *s)
{
    return atomic_load(&s->backlog) + s->local.n;
}

void cel__settler_stop(struct cel_settler *s, int64_t deadline_ms)
{
    cel__settler_flush(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->park_cv);
    s->deadline_ms = deadline_ms;
    s->room = 0;
    pthread_mutex_unlock(&s->mu);
    wake(s);
}

bool cel__settler_done(struct cel_settler *s)
{
    if (!atomic_load(&s->done))
        return false;
    /* Done means the loop has also had the last report. */
    pthread_mutex_lock(&s->mu);
    bool delivered = s->out == NULL;
    pthread_mutex_unlock(&s->mu);
    return delivered;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void cel__settler_free(struct cel_settler *s)
{
    if (!s)
        return;
    if (!atomic_load(&s->done))
        cel__settler_stop(s, cel__mono_ms());
    pthread_join(s->thread, NULL);
    on_async(&s->async); /* a last report nobody picked up */
    size_t lost = 0;
    struct item_vec *vs[] = {&s->work, &s->incoming, &s->local};
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < vs[k]->n; i++) {
            struct cel_settle_item *it = &vs[k]->v[i];
            if (it->f && it->op != CEL_SETTLE_EARLY_ACK && it->op != CEL_SETTLE_NONE) {
                lost++;
                cel__inflight_free(it->f);
            }
            item_release(it);
        }
        free(vs[k]->v);
    }
    if (lost)
        CEL_ERROR(COMP,
                  "%zu results and acks could not be stored before shutdown; their messages "
                  "stay reserved and return to their queues when their leases run out",
                  lost);
    /* Reservations the loop never finished are freed by their owner (the
     * loop's held list); this list only links them. */
    close(s->evfd);
    free(s->rate_in);
    strv_free(s->queues, s->nqueues);
    strv_free(s->q_in, s->nq_in);
    pthread_cond_destroy(&s->park_cv);
    pthread_mutex_destroy(&s->mu);
    cel__backend_close(s->k);
    cel__broker_close(s->b);
    /* The handle lives in s: libuv reads it until the close completes. */
    uv_close((uv_handle_t *)&s->async, on_closed);
}
