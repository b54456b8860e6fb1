/*
 * revoke.c - the worker's revoked task ids, how it learns them, and the
 * pidbox thread that also carries every other remote control request.
 *
 * Three sources, so that no revoke is lost:
 *  - at start, every live revoke stored on the broker side (revoke_add by
 *    `celeriac revoke` and cel_client_revoke(), broker.h), read before
 *    the first fetch, so a worker started after a revoke honours it;
 *  - Celery's `revoke` broadcast on the celery.pidbox fan-out exchange
 *    (proto/control.h), from `celeriac revoke` and from Python's
 *    app.control.revoke(), which arrives at once; the worker stores
 *    what it hears there durably too, so a Python revoke also reaches
 *    workers started later;
 *  - the durable set again every REREAD_MS, for a revoke made while the
 *    subscription was down.
 *
 * The broadcast and the re-reads are the pidbox thread's: a broker handle
 * and a subscription of its own, off the loop thread (on Redis both
 * block). It hands what it learnt to the loop through a uv_async; the
 * loop alone owns the set (an open-addressing hash of ids), checks
 * messages against it (filters.c), settles the revoked ones waiting for
 * the pool, and terminates running ones when asked (pool.h terminate).
 *
 * Every other request addressed to this node goes to the loop through
 * control.c, which answers it there; the replies come back here and go
 * out on this thread's handle (mailbox_send). The same thread reads the
 * queues paused on the broker side (queue_paused_list) at the same
 * pace, and at once when a `celeriac_queue_pause` broadcast says one
 * changed.
 *
 * Hot path: while the set is empty cel__revoke_active() is false and
 * messages are not even parsed; otherwise one header parse per message
 * (cel__inflight_learn_ids) and a hash lookup.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/broker.h"
#include "celeriac/error.h"
#include "core/clock.h"
#include "core/fork_guard.h"
#include "core/log.h"
#include "proto/control.h"
#include "worker/worker_internal.h"

#define COMP "worker"
/* How often the durable set is read again, and a failed subscription
 * tried again. */
#define REREAD_MS 3000
/* Broadcast messages taken per wakeup. */
#define POLL_BATCH 64

struct slot {
    char *id; /* NULL: empty */
    int64_t expires_us;
    bool terminate;
    int signum;
};

struct cel_revokes {
    cel_worker *w;

    /* loop thread only */
    struct slot *slots; /* power-of-two capacity, at most half full */
    size_t cap, count;
    uint64_t *terminated; /* seqs of messages whose process we killed */
    size_t nterminated, capterminated;

    /* the revoke thread */
    struct cel_broker *b; /* its own handle */
    struct cel_fanout_sub *sub;
    pthread_t thread;
    bool started, async_open;
    bool no_sub;        /* the transport cannot subscribe here: re-reads only */
    bool reread_paused; /* a broadcast said the paused queues changed */
    char **paused;      /* the paused set last handed over */
    size_t npaused;
    int kick; /* eventfd: stop */
    atomic_bool stop;
    uv_async_t async;

    /* shared, under mu: learnt, not yet merged by the loop */
    pthread_mutex_t mu;
    struct cel_revoke_entry *pending;
    size_t npending, cappending;
};

/* ---- the set (loop thread) ---------------------------------------------- */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct slot *find(struct cel_revokes *r, const char *id)
{
    if (!r->cap)
        return NULL;
    for (size_t i = hash_id(id) & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
        if (!r->slots[i].id || strcmp(r->slots[i].id, id) == 0)
            return &r->slots[i];
    }
}

/* Rebuilds the table with room for `want` entries, dropping expired ones. */
static int rehash(struct cel_revokes *r, size_t want, int64_t now)
{
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    struct slot *old = r->slots;
    size_t oldcap = r->cap;
    struct slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return CEL_ENOMEM;
    r->slots = slots;
    r->cap = cap;
    r->count = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].id)
            continue;
        if (old[i].expires_us <= now) {
            free(old[i].id);
            continue;
        }
        *find(r, old[i].id) = old[i];
        r->count++;
    }
    free(old);
    return CEL_OK;
}

/* Adds or refreshes one entry and returns its slot (NULL when out of
 * memory); *fresh says whether the id, or its terminate, is new. Takes
 * e->task_id. */
static struct slot *put(struct cel_revokes *r, struct cel_revoke_entry *e, int64_t now, bool *fresh)
{
    *fresh = false;
    if ((r->count + 1) * 2 > r->cap && rehash(r, r->count + 1, now) != CEL_OK)
        return NULL;
    struct slot *s = find(r, e->task_id);
    if (s->id) {
        free(e->task_id);
        *fresh = e->terminate && !s->terminate;
    } else {
        s->id = e->task_id;
        r->count++;
        *fresh = true;
    }
    e->task_id = NULL;
    if (e->expires_us > s->expires_us)
        s->expires_us = e->expires_us;
    if (e->terminate) {
        s->terminate = true;
        s->signum = e->signum;
    }
    return s;
}

bool cel__revoke_active(const cel_worker *w)
{
    return w->revokes && w->revokes->count > 0;
}

bool cel__revoke_has(cel_worker *w, const char *task_id)
{
    struct cel_revokes *r = w->revokes;
    if (!r || !r->count || !task_id)
        return false;
    struct slot *s = find(r, task_id);
    return s->id && s->expires_us > cel__wall_us();
}

json_t *cel__revoke_dump(cel_worker *w, bool with_expiry, size_t max)
{
    struct cel_revokes *r = w->revokes;
    json_t *out = with_expiry ? json_object() : json_array();
    int64_t now = cel__wall_us();
    double keep_s = cel_config_get_double(w->cfg, "worker_revoke_expires");
    int64_t keep_us = (int64_t)((keep_s > 0 ? keep_s : 10800) * 1e6);
    size_t n = 0;
    for (size_t i = 0; r && out && i < r->cap && n < max; i++) {
        const struct slot *s = &r->slots[i];
        if (!s->id || s->expires_us <= now)
            continue;
        if (with_expiry) /* Celery's LimitedSet: when it was added, a float */
            json_object_set_new(out, s->id, json_real((double)(s->expires_us - keep_us) / 1e6));
        else
            json_array_append_new(out, json_string(s->id));
        n++;
    }
    return out;
}

/* ---- terminate (loop thread) -------------------------------------------- */

static void remember_terminated(struct cel_revokes *r, uint64_t seq)
{
    if (r->nterminated == r->capterminated) {
        size_t cap = r->capterminated ? r->capterminated * 2 : 8;
        uint64_t *v = realloc(r->terminated, cap * sizeof *v);
        if (!v) {
            CEL_ERROR(COMP, "out of memory: a terminated task may be reported as WorkerLostError");
            return;
        }
        r->terminated = v;
        r->capterminated = cap;
    }
    r->terminated[r->nterminated++] = seq;
}

bool cel__revoke_terminated(cel_worker *w, const struct cel_inflight *f)
{
    struct cel_revokes *r = w->revokes;
    for (size_t i = 0; r && i < r->nterminated; i++) {
        if (r->terminated[i] == f->seq) {
            r->terminated[i] = r->terminated[--r->nterminated];
            return true;
        }
    }
    return false;
}

/* Kills the process running `id`, if one here runs it. */
int cel__revoke_signum(cel_worker *w, const char *task_id)
{
    struct slot *s = w->revokes ? find(w->revokes, task_id) : NULL;
    return s && s->id && s->terminate ? s->signum : 0;
}

static void terminate_running(cel_worker *w, const char *id, int signum)
{
    for (struct cel_inflight *f = w->held.head; f; f = f->next) {
        if (!f->pid || f->settling)
            continue;
        cel__inflight_learn_ids(f);
        if (!f->task_id || strcmp(f->task_id, id) != 0)
            continue;
        char sig[32];
        CEL_INFO(COMP, "Terminating %s (%s)", id, cel__signal_name(signum, sig, sizeof sig));
        if (w->pool->ops->terminate(w->pool, f, signum))
            remember_terminated(w->revokes, f->seq);
        else
            CEL_WARN(COMP, "cannot terminate %s: the %s pool runs tasks in the worker process", id,
                     w->pool->ops->name);
        return;
    }
}

/* Settles every message waiting for the pool whose id is now revoked. */
static void discard_waiting(cel_worker *w)
{
    size_t n = w->held.ready_count;
    for (size_t i = 0; i < n; i++) {
        struct cel_inflight *f = cel__held_pop_ready(&w->held);
        if (!f)
            break;
        cel__inflight_learn_ids(f);
        if (f->task_id && cel__revoke_has(w, f->task_id)) {
            CEL_INFO(COMP, "Discarding revoked task: %s[%s]", f->task_name ? f->task_name : "?",
                     f->task_id);
            cel__consumer_revoked(w, f, "revoked");
        } else {
            cel__held_push_ready(&w->held, f); /* to the back: the order is kept */
        }
    }
}

/* ---- what the thread learnt, on the loop -------------------------------- */

static void on_learnt(uv_async_t *h)
{
    struct cel_revokes *r = h->data;
    cel_worker *w = r->w;
    pthread_mutex_lock(&r->mu);
    struct cel_revoke_entry *v = r->pending;
    size_t n = r->npending;
    r->pending = NULL;
    r->npending = r->cappending = 0;
    pthread_mutex_unlock(&r->mu);
    int64_t now = cel__wall_us();
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        bool fresh;
        struct slot *s = v[i].expires_us > now ? put(r, &v[i], now, &fresh) : NULL;
        if (!s)
            continue;
        any = any || fresh;
        if (fresh && v[i].terminate && w->pool)
            terminate_running(w, s->id, v[i].signum);
    }
    cel__revoke_entries_free(v, n);
    if (any) {
        CEL_DEBUG(COMP, "%zu revoked task ids known", r->count);
        discard_waiting(w);
    }
}

/* ---- the revoke thread -------------------------------------------------- */

static void hand_over(struct cel_revokes *r, struct cel_revoke_entry *v, size_t n)
{
    pthread_mutex_lock(&r->mu);
    if (r->npending + n > r->cappending) {
        size_t cap = r->cappending ? r->cappending : 64;
        while (cap < r->npending + n)
            cap *= 2;
        struct cel_revoke_entry *p = realloc(r->pending, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&r->mu);
            CEL_ERROR(COMP, "out of memory: %zu revokes are learnt at the next reading", n);
            cel__revoke_entries_free(v, n);
            return;
        }
        r->pending = p;
        r->cappending = cap;
    }
    memcpy(r->pending + r->npending, v, n * sizeof *v);
    r->npending += n;
    pthread_mutex_unlock(&r->mu);
    free(v);
    uv_async_send(&r->async);
}

static void reread(struct cel_revokes *r)
{
    struct cel_revoke_entry *v;
    size_t n;
    if (!r->b->ops->revoke_list)
        return;
    if (r->b->ops->revoke_list(r->b, &v, &n) != CEL_OK) {
        CEL_WARN(COMP, "cannot read the revoked tasks: %s", cel__broker_errmsg(r->b));
        return;
    }
    if (n)
        hand_over(r, v, n);
}

/* A revoke for us is handed over and stored. */
static void on_revoke(struct cel_revokes *r, const struct cel_fanout_msg *m, int64_t expires_s,
                      size_t keep_max)
{
    struct cel_control_revoke rq;
    if (cel__control_parse_revoke(m->body, m->len, r->w->hostname, &rq) != CEL_OK)
        return;
    /* From a Python client (no expiry of ours) the broadcast is the only
     * copy: store it, so workers started later honour it too. A celeriac
     * client stored it before broadcasting. */
    int64_t until = rq.expires_us ? rq.expires_us : cel__wall_us() + expires_s * 1000000;
    if (!rq.expires_us && r->b->ops->revoke_add &&
        r->b->ops->revoke_add(r->b, (const char *const *)rq.ids, rq.n, until, rq.terminate,
                              rq.signum, keep_max) != CEL_OK)
        CEL_WARN(COMP, "cannot store a broadcast revoke: %s", cel__broker_errmsg(r->b));
    struct cel_revoke_entry *v = calloc(rq.n, sizeof *v);
    if (!v) {
        cel__control_revoke_release(&rq);
        return;
    }
    for (size_t i = 0; i < rq.n; i++) {
        v[i] = (struct cel_revoke_entry){.task_id = rq.ids[i],
                                         .expires_us = until,
                                         .terminate = rq.terminate,
                                         .signum = rq.signum};
        rq.ids[i] = NULL;
    }
    size_t n = rq.n;
    cel__control_revoke_release(&rq);
    hand_over(r, v, n);
}

/* One broadcast message: revokes are learnt here, every request for us
 * goes to the loop (control.c), which answers those that want it. */
static void reread_paused(struct cel_revokes *r);

static void on_broadcast(struct cel_revokes *r, const struct cel_fanout_msg *m, int64_t expires_s,
                         size_t keep_max)
{
    struct cel_control_request rq;
    int rc = cel__control_parse_request(m->body, m->len, r->w->hostname, &rq);
    if (rc == CEL_EPROTO)
        CEL_DEBUG(COMP, "ignoring a control message that cannot be read");
    if (rc != CEL_OK)
        return;
    /* Celery's client stops listening at `expires`: a late answer is
     * wasted, and a late command is one its sender gave up on. */
    if (rq.expires_us && rq.expires_us < cel__wall_us()) {
        CEL_DEBUG(COMP, "ignoring an expired %s request", rq.method);
        cel__control_request_release(&rq);
        return;
    }
    bool revoke = strcmp(rq.method, "revoke") == 0 || strcmp(rq.method, "terminate") == 0;
    if (revoke)
        on_revoke(r, m, expires_s, keep_max);
    else if (strcmp(rq.method, "celeriac_queue_pause") == 0)
        reread_paused(r); /* now: the loop must have the new set before it answers */
    if (revoke && !rq.ticket)
        cel__control_request_release(&rq); /* learnt above; nobody waits for a reply */
    else
        cel__control_submit(r->w, &rq); /* takes rq */
}

static bool same_set(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t k = 0; k < nb && !found; k++)
            found = strcmp(a[i], b[k]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static char **strv_dup(char **v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            cel__strv_free(out, i);
            return NULL;
        }
    return out;
}

/* The paused queues, handed to the loop when they changed. */
static void reread_paused(struct cel_revokes *r)
{
    r->reread_paused = false;
    if (!r->b->ops->queue_paused_list)
        return;
    char **names;
    size_t n;
    if (r->b->ops->queue_paused_list(r->b, &names, &n) != CEL_OK) {
        CEL_WARN(COMP, "cannot read the paused queues: %s", cel__broker_errmsg(r->b));
        return;
    }
    char **copy = same_set(names, n, r->paused, r->npaused) ? NULL : strv_dup(names, n);
    if (copy) {
        cel__strv_free(r->paused, r->npaused);
        r->paused = names;
        r->npaused = n;
        cel__control_set_paused(r->w, copy, n);
    } else {
        cel__strv_free(names, n);
    }
}

static void subscribe(struct cel_revokes *r)
{
    r->no_sub = !r->b->ops->fanout_subscribe;
    if (r->no_sub)
        return;
    int rc = r->b->ops->fanout_subscribe(r->b, CEL_CONTROL_EXCHANGE, "#", &r->sub);
    if (rc == CEL_OK)
        return;
    r->sub = NULL;
    /* EINVAL: a store that cannot fan out (SQLite ':memory:'); re-reads
     * still bring every revoke. */
    r->no_sub = rc == CEL_EINVAL;
    CEL_WARN(COMP, "cannot listen to remote control broadcasts%s: %s",
             r->no_sub ? "" : " (trying again in a few seconds)", cel__broker_errmsg(r->b));
}

static void *revoke_main(void *arg)
{
    struct cel_revokes *r = arg;
    const struct cel_broker_ops *bo = r->b->ops;
    int64_t expires_s = (int64_t)cel_config_get_double(r->w->cfg, "worker_revoke_expires");
    int64_t keep = cel_config_get_int(r->w->cfg, "worker_revokes_max");
    cel__fork_guard_enter(); /* let go only while waiting: see fork_guard.h */
    int64_t next_read = cel__mono_ms() + REREAD_MS;
    while (!atomic_load(&r->stop)) {
        if (!r->sub && !r->no_sub)
            subscribe(r);
        struct pollfd p[3] = {{.fd = r->kick, .events = POLLIN},
                              {.fd = r->sub ? bo->fanout_fd(r->sub) : -1, .events = POLLIN},
                              {.fd = cel__control_wake_fd(r->w), .events = POLLIN}};
        int64_t wait = next_read - cel__mono_ms();
        cel__fork_guard_wait_begin();
        int got = poll(p, 3, wait > 0 ? (int)wait : 0);
        cel__fork_guard_wait_end();
        if (atomic_load(&r->stop))
            break;
        if (got > 0 && p[1].fd >= 0 && p[1].revents) {
            struct cel_fanout_msg m[POLL_BATCH];
            size_t n = 0;
            if (bo->fanout_poll(r->sub, m, POLL_BATCH, &n) != CEL_OK)
                CEL_DEBUG(COMP, "broadcast poll failed");
            for (size_t i = 0; i < n; i++) {
                on_broadcast(r, &m[i], expires_s > 0 ? expires_s : 10800,
                             keep > 0 ? (size_t)keep : 0);
                cel__fanout_msg_release(&m[i]);
            }
        }
        if (got > 0 && p[2].fd >= 0 && p[2].revents)
            cel__control_send(r->w, r->b);
        if (r->reread_paused)
            reread_paused(r);
        if (cel__mono_ms() >= next_read) {
            reread(r);
            reread_paused(r);
            next_read = cel__mono_ms() + REREAD_MS;
        }
    }
    cel__control_send(r->w, r->b); /* what was answered before the stop */
    cel__fork_guard_leave();
    return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

/* The revokes and paused queues stored on the broker side, read with the
 * worker's handle before the first fetch. */
static int load_stored(cel_worker *w, struct cel_revokes *r, struct cel_broker *b)
{
    if (b->ops->queue_paused_list) {
        char **names;
        size_t n;
        int rc = b->ops->queue_paused_list(b, &names, &n);
        if (rc != CEL_OK)
            return cel__err(&w->err, rc, "cannot read the paused queues: %s",
                            cel__broker_errmsg(b));
        r->paused = strv_dup(names, n);
        r->npaused = r->paused ? n : 0;
        cel__control_set_paused_now(w, names, n);
    }
    if (!b->ops->revoke_list)
        return CEL_OK; /* a transport without revokes: nothing to honour */
    struct cel_revoke_entry *v;
    size_t n;
    int rc = b->ops->revoke_list(b, &v, &n);
    if (rc != CEL_OK)
        return cel__err(&w->err, rc, "cannot read the revoked tasks: %s", cel__broker_errmsg(b));
    int64_t now = cel__wall_us();
    for (size_t i = 0; i < n; i++) {
        bool fresh;
        if (!put(r, &v[i], now, &fresh)) {
            cel__revoke_entries_free(v, n);
            return cel__err(&w->err, CEL_ENOMEM, "out of memory");
        }
    }
    cel__revoke_entries_free(v, n);
    if (r->count)
        CEL_INFO(COMP, "%zu revoked tasks will not run", r->count);
    return CEL_OK;
}

int cel__revoke_start(cel_worker *w, struct cel_broker *b)
{
    struct cel_revokes *r = calloc(1, sizeof *r);
    if (!r)
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    r->w = w;
    r->kick = -1;
    pthread_mutex_init(&r->mu, NULL);
    w->revokes = r;
    /* Before the first fetch, on the worker's handle: a message fetched
     * next must already meet the revokes made while no worker ran, and
     * leave the paused queues alone. */
    int rc = load_stored(w, r, b);
    if (rc != CEL_OK)
        return rc;
    rc = cel__broker_open(NULL, w->cfg, &r->b, &w->err);
    if (rc != CEL_OK)
        return rc;
    /* Listening before "ready.": a broadcast revoke sent once the worker
     * said so is not missed (a Python client's exists nowhere else). */
    subscribe(r);
    r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->kick < 0)
        return cel__err(&w->err, CEL_EIO, "eventfd: %s", strerror(errno));
    uv_async_init(&w->loop, &r->async, on_learnt);
    r->async.data = r;
    r->async_open = true;
    rc = pthread_create(&r->thread, NULL, revoke_main, r);
    if (rc != 0)
        return cel__err(&w->err, CEL_EIO, "cannot start the pidbox thread: %s", strerror(rc));
    r->started = true;
    return CEL_OK;
}

static void revokes_free(struct cel_revokes *r)
{
    for (size_t i = 0; i < r->cap; i++)
        free(r->slots[i].id);
    free(r->slots);
    free(r->terminated);
    cel__revoke_entries_free(r->pending, r->npending);
    cel__strv_free(r->paused, r->npaused);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void on_async_closed(uv_handle_t *h)
{
    revokes_free(h->data);
}

void cel__revoke_stop(cel_worker *w)
{
    struct cel_revokes *r = w->revokes;
    if (!r)
        return;
    w->revokes = NULL;
    if (r->started) {
        atomic_store(&r->stop, true);
        uint64_t one = 1;
        if (write(r->kick, &one, sizeof one) < 0)
            CEL_DEBUG(COMP, "eventfd write: %s", strerror(errno));
        pthread_join(r->thread, NULL);
    }
    if (r->sub)
        r->b->ops->fanout_close(r->sub);
    if (r->b)
        cel__broker_close(r->b);
    if (r->kick >= 0)
        close(r->kick);
    if (r->async_open)
        uv_close((uv_handle_t *)&r->async, on_async_closed); /* frees r once closed */
    else
        revokes_free(r);
}
