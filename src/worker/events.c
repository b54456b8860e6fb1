/*
 * events.c - the worker's monitoring events (events.h, proto/event.h).
 *
 * Two sides:
 *  - the loop thread calls the task hooks (received, started, finished,
 *    rejected) from consumer.c. Each copies bytes it already holds (the
 *    envelope, the result meta) into a small record and appends it to a
 *    queue under a mutex; it parses nothing and never waits. With task
 *    events off a hook is an atomic load and, for the heartbeat's
 *    counters, an atomic add.
 *  - the events thread owns a broker handle of its own. It takes the
 *    queued records, reads the envelopes and metas (JSON work belongs
 *    here, not on the loop), builds Celery's events, batches task events
 *    as task.multi (up to CEL_EVENT_BATCH_MAX, none older than FLUSH_MS)
 *    and publishes them on the celeryev fan-out; it sends worker-online,
 *    a worker-heartbeat every HEARTBEAT_MS and worker-offline.
 *
 * A task's later records carry only its pool sequence number (the loop
 * does not know task ids without parsing), so the thread keeps the ids it
 * read from task-received records in a table by sequence number until the
 * task's final record. The loop marks the messages it announced
 * (f->ev_received), so every one of them gets a final record, also when
 * task events were switched off in between, and the table cannot grow
 * past the messages held.
 *
 * Bounds: at most QUEUE_MAX records or QUEUE_MAX_BYTES are waiting;
 * beyond that records are dropped and counted (events are lossy by
 * contract, the loop is never slowed), and the count is logged.
 */
#include "worker/events.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/broker.h"
#include "celeriac/error.h"
#include "core/clock.h"
#include "core/fork_guard.h"
#include "core/json_scan.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/event.h"
#include "proto/repr.h"
#include "worker/worker_internal.h"

#define COMP "events"
/* Celery's worker heartbeat interval (freq 2.0). */
#define HEARTBEAT_MS 2000
/* The longest a task event waits for a batch to fill. */
#define FLUSH_MS 100
/* Records waiting for the thread, and their bytes. */
#define QUEUE_MAX       65536
#define QUEUE_MAX_BYTES (64u * 1024u * 1024u)
/* A result meta longer than this is not copied: its event goes without
 * the result (Celery cuts the repr to 1024 characters anyway). */
#define META_COPY_MAX (256u * 1024u)
/* Celery's resultrepr_maxsize and argsrepr cut. */
#define REPR_MAX 1024
/* How often dropped records and failed publishes are logged. */
#define COMPLAIN_MS 10000

enum rec_kind { REC_RECEIVED, REC_STARTED, REC_FINISHED, REC_REJECTED, REC_FORGET };

struct rec {
    enum rec_kind kind;
    bool send;          /* task events were on when it was queued */
    cel_state state;    /* FINISHED */
    bool requeue;       /* REJECTED */
    bool terminated;    /* FINISHED, REVOKED */
    bool dead_letter;   /* FINISHED: the message went to the dead-letter store */
    int signum;         /* FINISHED, REVOKED with terminated; 0: unknown */
    uint64_t seq;       /* the pool's sequence number of the message */
    int64_t wall_us;    /* when it happened */
    int64_t runtime_us; /* FINISHED: how long it ran; 0: did not run */
    char *task_id;      /* FINISHED: when the loop knows it; may be NULL */
    char *bytes;        /* RECEIVED: the envelope; FINISHED: the result meta; may be NULL.
                           JSON text: it ends at its NUL */
    size_t len;         /* bytes counted against QUEUE_MAX_BYTES */
};

/* Task ids by sequence number (the events thread's): open addressing,
 * power-of-two capacity, at most half full. */
struct id_slot {
    uint64_t seq; /* 0: empty */
    char *id;
};

/* An envelope waiting for the end of the events thread's round. */
struct outmsg {
    char *env;
    size_t len;
    char rk[32];
};

struct cel_events {
    cel_worker *w;
    struct cel_broker *b; /* the thread's own handle */
    pthread_t thread;
    bool started;
    int kick; /* eventfd: records to flush, a heartbeat asked for, stop */
    atomic_bool stop;
    atomic_bool heartbeat_asked;
    int pid;

    /* heartbeat counters, written by the loop */
    atomic_uint_fast64_t processed; /* tasks that began to run */
    atomic_uint_fast64_t ended;     /* of those, tasks that ended */

    /* the queue, under mu */
    pthread_mutex_t mu;
    struct rec *q;
    size_t n, cap, bytes;
    bool thread_idle; /* waiting with nothing queued: wake it for the first record */
    size_t peak;      /* most records ever waiting */
    atomic_uint_fast64_t dropped;

    /* the thread's */
    struct id_slot *ids;
    size_t ids_cap, ids_count;
    struct cel_buf batch;  /* task events not yet sent: "[ev, ev, ..." */
    size_t nbatch;         /* events in it */
    int64_t batch_since;   /* monotonic ms of the oldest */
    uint64_t publish_fail; /* since the last complaint */
    uint64_t sent;         /* task events published */
    struct outmsg *out;    /* this round's envelopes (send_out) */
    size_t nout, capout;
    int64_t complained_ms;
    uint64_t dropped_told;
};

/* ---- the Lamport clock (any thread) -------------------------------------- */

int64_t cel__worker_clock_forward(cel_worker *w)
{
    return atomic_fetch_add(&w->lamport, 1) + 1;
}

void cel__worker_clock_adjust(cel_worker *w, int64_t seen)
{
    int64_t cur = atomic_load(&w->lamport);
    int64_t next;
    do
        next = (seen > cur ? seen : cur) + 1;
    while (!atomic_compare_exchange_weak(&w->lamport, &cur, next));
}

int64_t cel__worker_clock_value(const cel_worker *w)
{
    return atomic_load(&((cel_worker *)w)->lamport);
}

/* ---- switching ----------------------------------------------------------- */

bool cel__events_set_enabled(cel_worker *w, bool on)
{
    bool was = atomic_exchange(&w->task_events, on);
    if (was != on)
        CEL_INFO(COMP, "task events %s", on ? "enabled" : "disabled");
    return was;
}

bool cel__events_enabled(const cel_worker *w)
{
    return atomic_load(&((cel_worker *)w)->task_events);
}

static void kick(struct cel_events *e)
{
    uint64_t one = 1;
    if (write(e->kick, &one, sizeof one) < 0 && errno != EAGAIN)
        CEL_DEBUG(COMP, "eventfd write: %s", strerror(errno));
}

void cel__events_heartbeat_now(cel_worker *w)
{
    struct cel_events *e = w->events;
    if (!e || !e->started)
        return;
    atomic_store(&e->heartbeat_asked, true);
    kick(e);
}

/* ---- the loop's side ---------------------------------------------------- */

static void rec_release(struct rec *r)
{
    free(r->task_id);
    free(r->bytes);
}

/* Queues r (takes its strings) or drops it when the queue is full. */
static void push(struct cel_events *e, struct rec *r)
{
    bool wake = false, dropped = false;
    pthread_mutex_lock(&e->mu);
    if (e->n >= QUEUE_MAX || e->bytes + r->len > QUEUE_MAX_BYTES) {
        dropped = true;
    } else {
        if (e->n == e->cap) {
            size_t cap = e->cap ? e->cap * 2 : 256;
            struct rec *q = realloc(e->q, cap * sizeof *q);
            if (!q) {
                dropped = true;
                goto out;
            }
            e->q = q;
            e->cap = cap;
        }
        e->q[e->n++] = *r;
        e->bytes += r->len;
        if (e->n > e->peak)
            e->peak = e->n;
        /* The thread sleeps FLUSH_MS at most while records wait, so it
         * needs waking only to start that wait, or for a full batch. */
        wake = (e->n == 1 && e->thread_idle) || e->n % CEL_EVENT_BATCH_MAX == 0;
        if (wake)
            e->thread_idle = false;
    }
out:
    pthread_mutex_unlock(&e->mu);
    if (dropped) {
        atomic_fetch_add(&e->dropped, 1);
        rec_release(r);
    }
    if (wake)
        kick(e);
}

void cel__events_task_received(cel_worker *w, struct cel_inflight *f)
{
    struct cel_events *e = w->events;
    if (!e || !atomic_load_explicit(&w->task_events, memory_order_relaxed))
        return;
    struct rec r = {.kind = REC_RECEIVED,
                    .send = true,
                    .seq = f->seq,
                    .wall_us = cel__wall_us(),
                    .bytes = strndup(f->d.body, f->d.len),
                    .len = f->d.len};
    if (!r.bytes) {
        atomic_fetch_add(&e->dropped, 1);
        return;
    }
    f->ev_received = true;
    push(e, &r);
}

void cel__events_task_started(cel_worker *w, struct cel_inflight *f)
{
    struct cel_events *e = w->events;
    if (!e)
        return;
    atomic_fetch_add_explicit(&e->processed, 1, memory_order_relaxed);
    if (!f->ev_received || !atomic_load_explicit(&w->task_events, memory_order_relaxed))
        return;
    struct rec r = {.kind = REC_STARTED, .send = true, .seq = f->seq, .wall_us = cel__wall_us()};
    push(e, &r);
}

void cel__events_task_finished(cel_worker *w, struct cel_inflight *f,
                               const struct cel_settle_item *it)
{
    struct cel_events *e = w->events;
    if (!e)
        return;
    if (f->started_us)
        atomic_fetch_add_explicit(&e->ended, 1, memory_order_relaxed);
    bool send = atomic_load_explicit(&w->task_events, memory_order_relaxed);
    if (!send && !f->ev_received)
        return;
    bool has_state = it->task_id && it->meta &&
                     (it->state == CEL_STATE_SUCCESS || it->state == CEL_STATE_FAILURE ||
                      it->state == CEL_STATE_RETRY || it->state == CEL_STATE_REVOKED);
    struct rec r = {.kind = has_state ? REC_FINISHED : REC_FORGET,
                    .send = send,
                    .state = it->state,
                    .dead_letter = it->op == CEL_SETTLE_DEAD_LETTER,
                    .seq = f->seq,
                    .wall_us = cel__wall_us(),
                    .runtime_us = f->started_us ? cel__mono_us() - f->started_us : 0};
    if (has_state && send) {
        r.task_id = strdup(it->task_id);
        if (it->meta_len <= META_COPY_MAX) {
            r.bytes = strndup(it->meta, it->meta_len);
            r.len = r.bytes ? it->meta_len : 0;
        }
        if (it->state == CEL_STATE_REVOKED && f->pid && f->started_us) {
            r.terminated = true; /* it was running: its process was killed */
            r.signum = f->task_id ? cel__revoke_signum(w, f->task_id) : 0;
        }
    }
    push(e, &r);
}

void cel__events_task_rejected(cel_worker *w, struct cel_inflight *f, bool requeue)
{
    struct cel_events *e = w->events;
    if (!e || !f->ev_received)
        return;
    /* A requeued message ends here: the forget travels with it. */
    struct rec r = {.kind = REC_REJECTED,
                    .send = atomic_load_explicit(&w->task_events, memory_order_relaxed),
                    .requeue = requeue,
                    .seq = f->seq,
                    .wall_us = cel__wall_us()};
    push(e, &r);
}

/* ---- the task id table (events thread) ----------------------------------- */

static size_t id_home(const struct cel_events *e, uint64_t seq)
{
    return (size_t)(seq * 0x9E3779B97F4A7C15ULL) & (e->ids_cap - 1);
}

static int ids_grow(struct cel_events *e)
{
    size_t cap = e->ids_cap ? e->ids_cap * 2 : 256;
    struct id_slot *old = e->ids;
    size_t oldcap = e->ids_cap;
    struct id_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return CEL_ENOMEM;
    e->ids = slots;
    e->ids_cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].seq)
            continue;
        size_t j = id_home(e, old[i].seq);
        while (slots[j].seq)
            j = (j + 1) & (cap - 1);
        slots[j] = old[i];
    }
    free(old);
    return CEL_OK;
}

static void ids_put(struct cel_events *e, uint64_t seq, const char *id)
{
    if ((e->ids_count + 1) * 2 > e->ids_cap && ids_grow(e) != CEL_OK)
        return;
    char *copy = strdup(id);
    if (!copy)
        return;
    size_t j = id_home(e, seq);
    while (e->ids[j].seq && e->ids[j].seq != seq)
        j = (j + 1) & (e->ids_cap - 1);
    if (e->ids[j].seq) {
        free(e->ids[j].id);
    } else {
        e->ids[j].seq = seq;
        e->ids_count++;
    }
    e->ids[j].id = copy;
}

static const char *ids_get(const struct cel_events *e, uint64_t seq)
{
    if (!e->ids_cap)
        return NULL;
    for (size_t j = id_home(e, seq); e->ids[j].seq; j = (j + 1) & (e->ids_cap - 1))
        if (e->ids[j].seq == seq)
            return e->ids[j].id;
    return NULL;
}

/* Removes seq; the slots after it move back (no tombstones). */
static void ids_forget(struct cel_events *e, uint64_t seq)
{
    if (!e->ids_cap)
        return;
    size_t mask = e->ids_cap - 1, j = id_home(e, seq);
    while (e->ids[j].seq && e->ids[j].seq != seq)
        j = (j + 1) & mask;
    if (!e->ids[j].seq)
        return;
    free(e->ids[j].id);
    e->ids[j] = (struct id_slot){0};
    e->ids_count--;
    for (size_t k = (j + 1) & mask; e->ids[k].seq; k = (k + 1) & mask) {
        size_t home = id_home(e, e->ids[k].seq);
        /* Moves back when its home is not in (j, k] cyclically. */
        bool stays = j <= k ? (home > j && home <= k) : (home > j || home <= k);
        if (!stays) {
            e->ids[j] = e->ids[k];
            e->ids[k] = (struct id_slot){0};
            j = k;
        }
    }
}

/* ---- building events (events thread) ------------------------------------- */

/* Queues the envelope of json for the end of this round (send_out). */
static void publish_text(struct cel_events *e, const char *json, size_t len, const char *rk)
{
    if (e->nout == e->capout) {
        size_t cap = e->capout ? e->capout * 2 : 16;
        struct outmsg *v = realloc(e->out, cap * sizeof *v);
        if (!v) {
            e->publish_fail++;
            return;
        }
        e->out = v;
        e->capout = cap;
    }
    struct outmsg *o = &e->out[e->nout];
    if (cel__event_envelope_text(json, len, rk, e->w->hostname, &o->env, &o->len) != CEL_OK) {
        e->publish_fail++;
        return;
    }
    snprintf(o->rk, sizeof o->rk, "%s", rk);
    e->nout++;
}

/* Publishes what this round queued in one unit where the transport has
 * one (one Redis round trip, one SQLite transaction): a round trip per
 * batch of 24 events cost more than writing the events. */
static void send_out(struct cel_events *e)
{
    const struct cel_broker_ops *ops = e->b->ops;
    if (e->nout == 0)
        return;
    bool unit = e->nout > 1 && ops->begin && ops->commit && ops->begin(e->b) == CEL_OK;
    for (size_t i = 0; i < e->nout; i++) {
        if (ops->fanout_publish(e->b, CEL_EVENT_EXCHANGE, e->out[i].rk, e->out[i].env,
                                e->out[i].len) != CEL_OK)
            e->publish_fail++;
        free(e->out[i].env);
    }
    if (unit && ops->commit(e->b) != CEL_OK)
        e->publish_fail += e->nout;
    e->nout = 0;
}

static void flush_batch(struct cel_events *e)
{
    if (e->nbatch == 0)
        return;
    cel__buf_append(&e->batch, "]", 1);
    if (e->batch.err == CEL_OK)
        publish_text(e, cel__buf_bytes(&e->batch), cel__buf_size(&e->batch), "task.multi");
    cel__buf_reset(&e->batch);
    e->nbatch = 0;
}

/* Opens the next task event in the batch; the caller adds its fields and
 * calls end_event(). Task events are written as text (proto/event.h):
 * building and dumping JSON trees cost more than the rest together. */
static struct cel_buf *begin_event(struct cel_events *e, const char *type, int64_t wall_us,
                                   const char *uuid)
{
    if (e->nbatch == 0) {
        e->batch_since = cel__mono_ms();
        cel__buf_append(&e->batch, "[", 1);
    } else {
        cel__buf_append(&e->batch, ", ", 2);
    }
    cel__event_begin(&e->batch, type, e->w->hostname, e->pid, cel__worker_clock_forward(e->w),
                     wall_us);
    if (uuid) /* NULL: the caller writes it (cel__event_add_task) */
        cel__event_add_str(&e->batch, "uuid", uuid);
    return &e->batch;
}

static void end_event(struct cel_events *e)
{
    cel__event_end(&e->batch);
    if (e->batch.err != CEL_OK) { /* out of memory: this batch is lost */
        cel__buf_reset(&e->batch);
        e->nbatch = 0;
        return;
    }
    e->sent++;
    if (++e->nbatch >= CEL_EVENT_BATCH_MAX)
        flush_batch(e);
}

/* ---- reading what the loop copied (events thread) ----------------------- */

static void on_received(struct cel_events *e, const struct rec *r)
{
    struct cel_event_task t;
    if (cel__event_task_read(r->bytes, strlen(r->bytes), &t) != CEL_OK)
        return; /* the worker says what is wrong with it when it settles it */
    ids_put(e, r->seq, t.id);
    begin_event(e, "task-received", r->wall_us, NULL);
    cel__event_add_task(&e->batch, &t);
    end_event(e);
    cel__event_task_release(&t);
}

/* Python's repr of an exception from its stored form: ValueError('boom'),
 * KeyError('a', 1), RuntimeError(). */
static char *exception_repr(const json_t *exc)
{
    const char *type = cel__json_cstr(json_object_get(exc, "exc_type"));
    const json_t *msg = json_object_get(exc, "exc_message");
    char *args = NULL;
    if (json_is_array(msg) && json_array_size(msg) != 1) {
        args = cel__json_pyrepr(msg, REPR_MAX); /* a tuple: "()", "('a', 1)" */
    } else {
        const json_t *one = json_is_array(msg) ? json_array_get(msg, 0) : msg;
        char *inner = one ? cel__json_pyrepr(one, REPR_MAX) : strdup("");
        size_t n = inner ? strlen(inner) : 0;
        args = inner ? malloc(n + 3) : NULL;
        if (args) {
            args[0] = '(';
            memcpy(args + 1, inner, n);
            memcpy(args + 1 + n, ")", 2);
        }
        free(inner);
    }
    if (!type)
        type = "Exception";
    size_t tn = strlen(type), an = args ? strlen(args) : 2;
    char *out = malloc(tn + an + 1);
    if (out) {
        memcpy(out, type, tn);
        memcpy(out + tn, args ? args : "()", an + 1);
    }
    free(args);
    return out;
}

/* The stored exception's message, when it is one string ("expired"). */
static const char *exception_text(const json_t *exc)
{
    const json_t *msg = json_object_get(exc, "exc_message");
    return cel__json_cstr(json_is_array(msg) ? json_array_get(msg, 0) : msg);
}

static void on_finished(struct cel_events *e, const struct rec *r)
{
    const char *id = r->task_id ? r->task_id : ids_get(e, r->seq);
    if (!id)
        return;
    static const char *const keys[] = {"result", "traceback"};
    struct cel_json_member m[2];
    bool read = r->bytes && cel__json_pick(r->bytes, strlen(r->bytes), keys, 2, m) == CEL_OK;
    json_t *result = read ? cel__json_member_parse(&m[0]) : NULL;
    json_t *traceback = read ? cel__json_member_parse(&m[1]) : NULL;
    struct cel_buf *b;
    char *repr;
    switch (r->state) {
    case CEL_STATE_SUCCESS:
        repr = result ? cel__json_pyrepr(result, REPR_MAX) : NULL;
        b = begin_event(e, "task-succeeded", r->wall_us, id);
        cel__event_add_str(b, "result", repr);
        cel__event_add_seconds(b, "runtime", r->runtime_us);
        end_event(e);
        free(repr);
        break;
    case CEL_STATE_FAILURE:
    case CEL_STATE_RETRY:
        repr = result ? exception_repr(result) : NULL;
        b = begin_event(e, r->state == CEL_STATE_RETRY ? "task-retried" : "task-failed", r->wall_us,
                        id);
        cel__event_add_str(b, "exception", repr);
        cel__event_add_str(b, "traceback", cel__json_cstr(traceback));
        end_event(e);
        free(repr);
        break;
    case CEL_STATE_REVOKED: {
        const char *why = exception_text(result);
        b = begin_event(e, "task-revoked", r->wall_us, id);
        cel__event_add_bool(b, "terminated", r->terminated);
        if (r->signum)
            cel__event_add_int(b, "signum", r->signum);
        else
            cel__event_add_str(b, "signum", NULL);
        cel__event_add_bool(b, "expired", why && strcmp(why, "expired") == 0);
        end_event(e);
        break;
    }
    default:
        break;
    }
    /* A dead-lettered message is also rejected, for good. */
    if (r->dead_letter) {
        b = begin_event(e, "task-rejected", r->wall_us, id);
        cel__event_add_bool(b, "requeue", false);
        end_event(e);
    }
    json_decref(result);
    json_decref(traceback);
}

static void on_record(struct cel_events *e, const struct rec *r)
{
    const char *id;
    switch (r->kind) {
    case REC_RECEIVED:
        on_received(e, r);
        return;
    case REC_STARTED:
        if ((id = ids_get(e, r->seq))) {
            begin_event(e, "task-started", r->wall_us, id);
            end_event(e);
        }
        return;
    case REC_FINISHED:
        if (r->send)
            on_finished(e, r);
        break;
    case REC_REJECTED:
        if (r->send && (id = ids_get(e, r->seq))) {
            cel__event_add_bool(begin_event(e, "task-rejected", r->wall_us, id), "requeue",
                                r->requeue);
            end_event(e);
        }
        break;
    case REC_FORGET:
        break;
    }
    ids_forget(e, r->seq);
}

/* worker-online, -heartbeat, -offline: Celery's fields (protocol.md 8.4). */
static void send_worker_event(struct cel_events *e, const char *type)
{
    json_t *ev = cel__event_new(type, e->w->hostname, e->pid, cel__worker_clock_forward(e->w),
                                cel__wall_us());
    if (!ev)
        return;
    uint64_t processed = atomic_load(&e->processed), ended = atomic_load(&e->ended);
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0)
        memset(load, 0, sizeof load);
    json_t *loadavg = json_array();
    for (int i = 0; i < 3; i++) /* Celery rounds them to two places */
        json_array_append_new(loadavg, json_real((double)(int64_t)(load[i] * 100 + 0.5) / 100));
    json_object_set_new(ev, "freq", json_real(HEARTBEAT_MS / 1000.0));
    json_object_set_new(ev, "active",
                        json_integer(processed > ended ? (json_int_t)(processed - ended) : 0));
    json_object_set_new(ev, "processed", json_integer((json_int_t)processed));
    json_object_set_new(ev, "loadavg", loadavg);
    json_object_set_new(ev, "sw_ident", json_string("celeriac"));
    json_object_set_new(ev, "sw_ver", json_string(cel_version_string()));
    json_object_set_new(ev, "sw_sys", json_string("Linux"));
    char *text = cel__json_dump(ev);
    char rk[32];
    cel__event_routing_key(type, rk, sizeof rk);
    if (text)
        publish_text(e, text, strlen(text), rk);
    free(text);
    json_decref(ev);
}

/* ---- the thread ---------------------------------------------------------- */

/* Takes what is queued (the caller frees the array). */
static struct rec *take(struct cel_events *e, size_t *n)
{
    pthread_mutex_lock(&e->mu);
    struct rec *q = e->q;
    *n = e->n;
    if (e->n) {
        e->q = NULL;
        e->n = e->cap = e->bytes = 0;
    }
    e->thread_idle = false;
    pthread_mutex_unlock(&e->mu);
    return *n ? q : NULL;
}

static void complain(struct cel_events *e)
{
    int64_t now = cel__mono_ms();
    if (now - e->complained_ms < COMPLAIN_MS)
        return;
    uint64_t dropped = atomic_load(&e->dropped);
    if (dropped != e->dropped_told) {
        CEL_WARN(COMP, "%" PRIu64 " task events dropped: the events thread fell behind",
                 dropped - e->dropped_told);
        e->dropped_told = dropped;
        e->complained_ms = now;
    }
    if (e->publish_fail) {
        CEL_WARN(COMP, "%" PRIu64 " event messages could not be published: %s", e->publish_fail,
                 cel__broker_errmsg(e->b));
        e->publish_fail = 0;
        e->complained_ms = now;
    }
}

static void drain_queue(struct cel_events *e)
{
    size_t n;
    struct rec *q = take(e, &n);
    for (size_t i = 0; i < n; i++) {
        on_record(e, &q[i]);
        rec_release(&q[i]);
    }
    free(q);
}

static void *events_main(void *arg)
{
    struct cel_events *e = arg;
    cel__fork_guard_enter(); /* let go only while waiting: see fork_guard.h */
    send_worker_event(e, "worker-online");
    send_out(e);
    int64_t next_beat = cel__mono_ms() + HEARTBEAT_MS;
    while (!atomic_load(&e->stop)) {
        drain_queue(e);
        int64_t now = cel__mono_ms();
        if (e->nbatch && now - e->batch_since >= FLUSH_MS)
            flush_batch(e);
        if (now >= next_beat || atomic_exchange(&e->heartbeat_asked, false)) {
            send_worker_event(e, "worker-heartbeat");
            next_beat = now + HEARTBEAT_MS;
        }
        send_out(e);
        complain(e);
        /* Sleep until the heartbeat, or FLUSH_MS while a batch or records
         * wait (the loop wakes the thread only for the first record and
         * for full batches). */
        int64_t until = next_beat;
        pthread_mutex_lock(&e->mu);
        bool pending = e->n > 0;
        e->thread_idle = !pending; /* decided under the lock the loop pushes under */
        pthread_mutex_unlock(&e->mu);
        if (e->nbatch)
            until = e->batch_since + FLUSH_MS < until ? e->batch_since + FLUSH_MS : until;
        if (pending)
            until = now + FLUSH_MS < until ? now + FLUSH_MS : until;
        int64_t wait = until - cel__mono_ms();
        struct pollfd p = {.fd = e->kick, .events = POLLIN};
        cel__fork_guard_wait_begin();
        int got = poll(&p, 1, wait > 0 ? (int)wait : 0);
        cel__fork_guard_wait_end();
        if (got > 0) {
            uint64_t v;
            if (read(e->kick, &v, sizeof v) < 0 && errno != EAGAIN)
                CEL_DEBUG(COMP, "eventfd read: %s", strerror(errno));
        }
    }
    /* Stopping: what the loop queued last, then goodbye. */
    drain_queue(e);
    flush_batch(e);
    send_worker_event(e, "worker-offline");
    send_out(e);
    e->complained_ms = 0;
    complain(e);
    CEL_DEBUG(COMP,
              "%" PRIu64 " task events sent, %" PRIu64 " dropped, at most %zu records waiting",
              e->sent, (uint64_t)atomic_load(&e->dropped), e->peak);
    cel__fork_guard_leave();
    return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

int cel__events_start(cel_worker *w)
{
    struct cel_events *e = calloc(1, sizeof *e);
    if (!e)
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    e->w = w;
    e->kick = -1;
    e->pid = (int)getpid();
    pthread_mutex_init(&e->mu, NULL);
    w->events = e;
    int rc = cel__broker_open(NULL, w->cfg, &e->b, &w->err);
    if (rc != CEL_OK)
        return rc;
    if (!e->b->ops->fanout_publish) {
        CEL_INFO(COMP, "the broker has no fan-out: no events are sent");
        return CEL_OK;
    }
    e->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->kick < 0)
        return cel__err(&w->err, CEL_EIO, "eventfd: %s", strerror(errno));
    rc = pthread_create(&e->thread, NULL, events_main, e);
    if (rc != 0)
        return cel__err(&w->err, CEL_EIO, "cannot start the events thread: %s", strerror(rc));
    e->started = true;
    return CEL_OK;
}

void cel__events_stop(cel_worker *w)
{
    struct cel_events *e = w->events;
    if (!e)
        return;
    if (e->started) {
        atomic_store(&e->stop, true);
        kick(e);
        pthread_join(e->thread, NULL);
    }
    w->events = NULL; /* the hooks are no-ops from here */
    for (size_t i = 0; i < e->n; i++)
        rec_release(&e->q[i]);
    free(e->q);
    for (size_t i = 0; i < e->ids_cap; i++)
        free(e->ids[i].id);
    free(e->ids);
    cel__buf_release(&e->batch);
    for (size_t i = 0; i < e->nout; i++)
        free(e->out[i].env);
    free(e->out);
    if (e->b)
        cel__broker_close(e->b);
    if (e->kick >= 0)
        close(e->kick);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
