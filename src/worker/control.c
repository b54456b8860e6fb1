/*
 * control.c - remote control: pidbox requests in, replies out.
 *
 * Three threads take part, each doing only what it may:
 *  - the pidbox thread (revoke.c) owns a broker handle and the celery.pidbox
 *    subscription. It reads each broadcast addressed to this node and
 *    hands it here (cel__control_submit); later it sends the replies the
 *    loop wrote (cel__control_send) with mailbox_send on its handle;
 *  - the loop thread owns the worker's state. It answers every request
 *    from that state (control_cmds.c, control_inspect.c) in a uv_async
 *    callback and queues the reply envelope, never touching the broker;
 *  - a queue pause stored on the broker side (queue_paused_list) is read
 *    by the pidbox thread too and handed over the same way.
 *
 * Bounds: at most MAX_PENDING requests wait for the loop (a flood of
 * broadcasts is dropped past that, logged), and each handler bounds its
 * own work (lists are cut at CEL_CONTROL_LIST_MAX entries).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/broker.h"
#include "celeriac/error.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/log.h"
#include "worker/control_cmds.h"
#include "worker/events.h"
#include "worker/worker_internal.h"

#define COMP        "worker"
#define MAX_PENDING 256

struct out_item {
    char *reply_to;
    char *env;
    size_t len;
    uint64_t gen; /* deferred: the queue change the transport must see first */
};

struct cel_control {
    cel_worker *w;
    uv_async_t async;
    bool async_open;
    int wake; /* eventfd: replies wait for the pidbox thread */

    /* shared, under mu */
    pthread_mutex_t mu;
    struct cel_control_request *in;
    size_t nin, capin;
    char **paused_in; /* a new paused set, not yet applied */
    size_t npaused_in;
    bool paused_changed;
    struct out_item *out;
    size_t nout, capout;
    size_t dropped;

    /* loop thread only */
    char **paused; /* queues paused on the broker side */
    size_t npaused;
    uint64_t queues_gen; /* the last queue change handed to the store thread */
    /* Replies to commands that changed the queues, held until the
     * transport has seen the change (cel__settler_queues_seen). */
    struct out_item *deferred;
    size_t ndeferred, capdeferred;
};

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- the loop's side ----------------------------------------------------- */

bool cel__control_queue_paused(const cel_worker *w, const char *queue)
{
    const struct cel_control *c = w->control;
    for (size_t i = 0; c && i < c->npaused; i++)
        if (strcmp(c->paused[i], queue) == 0)
            return true;
    return false;
}

void cel__control_apply_queues(cel_worker *w)
{
    const char *v[CEL_WORKER_MAX_QUEUES];
    size_t n = 0;
    for (size_t i = 0; i < w->nqueues; i++)
        if (!cel__control_queue_paused(w, w->queues[i]))
            v[n++] = w->queues[i];
    uint64_t gen = w->settler ? cel__settler_set_queues(w->settler, v, n) : 0;
    if (w->settler && !gen)
        CEL_ERROR(COMP, "out of memory: the queues consumed stay as they were");
    if (gen && w->control)
        w->control->queues_gen = gen;
}

/* Queues a reply for the pidbox thread. Takes env. */
static void post_reply(struct cel_control *c, const char *reply_to, char *env, size_t len)
{
    char *rt = strdup(reply_to);
    pthread_mutex_lock(&c->mu);
    struct out_item *v = rt ? cel__array_grow(c->out, &c->capout, c->nout, sizeof *v, 8) : NULL;
    if (v) {
        c->out = v;
        c->out[c->nout++] = (struct out_item){.reply_to = rt, .env = env, .len = len};
    }
    pthread_mutex_unlock(&c->mu);
    if (!v) {
        CEL_ERROR(COMP, "out of memory: a control reply is dropped");
        free(rt);
        free(env);
        return;
    }
    uint64_t one = 1;
    if (write(c->wake, &one, sizeof one) < 0 && errno != EAGAIN)
        CEL_DEBUG(COMP, "eventfd write: %s", strerror(errno));
}

/* Holds a reply until the store thread has shown queue change `gen` to
 * the transport. Takes env. */
static void defer_reply(struct cel_control *c, const char *reply_to, char *env, size_t len,
                        uint64_t gen)
{
    char *rt = strdup(reply_to);
    struct out_item *v =
        rt ? cel__array_grow(c->deferred, &c->capdeferred, c->ndeferred, sizeof *v, 4) : NULL;
    if (!v) {
        free(rt);
        post_reply(c, reply_to, env, len); /* out of memory: at once rather than never */
        return;
    }
    c->deferred = v;
    c->deferred[c->ndeferred++] =
        (struct out_item){.reply_to = rt, .env = env, .len = len, .gen = gen};
}

void cel__control_on_turn(cel_worker *w)
{
    struct cel_control *c = w->control;
    if (!c || !c->ndeferred)
        return;
    size_t k = 0;
    for (size_t i = 0; i < c->ndeferred; i++) {
        struct out_item *d = &c->deferred[i];
        if (w->settler && !cel__settler_queues_seen(w->settler, d->gen)) {
            c->deferred[k++] = *d;
            continue;
        }
        post_reply(c, d->reply_to, d->env, d->len);
        free(d->reply_to);
    }
    c->ndeferred = k;
}

static void answer(struct cel_control *c, struct cel_control_request *rq)
{
    cel_worker *w = c->w;
    if (rq->clock)
        cel__worker_clock_adjust(w, rq->clock);
    bool reply = true;
    uint64_t gen_before = c->queues_gen;
    json_t *value = cel__control_dispatch(w, rq, &reply);
    if (reply && rq->ticket) {
        char *env;
        size_t len;
        int rc = cel__control_reply_envelope(w->hostname, value, rq->ticket, rq->reply_to,
                                             cel__worker_clock_forward(w), &env, &len);
        /* A pause was applied just before this request (on_requests):
         * its reply too waits until the transport has the new set. */
        bool queues_changed =
            c->queues_gen != gen_before || strcmp(rq->method, "celeriac_queue_pause") == 0;
        if (rc == CEL_OK && queues_changed && c->queues_gen)
            defer_reply(c, rq->reply_to, env, len, c->queues_gen);
        else if (rc == CEL_OK)
            post_reply(c, rq->reply_to, env, len);
        else
            CEL_WARN(COMP, "cannot write the reply to %s: %s", rq->method, cel_strerror(rc));
    }
    json_decref(value);
}

static void on_requests(uv_async_t *h)
{
    struct cel_control *c = h->data;
    pthread_mutex_lock(&c->mu);
    struct cel_control_request *v = c->in;
    size_t n = c->nin;
    c->in = NULL;
    c->nin = c->capin = 0;
    char **paused = c->paused_in;
    size_t npaused = c->npaused_in;
    bool paused_changed = c->paused_changed;
    c->paused_in = NULL;
    c->npaused_in = 0;
    c->paused_changed = false;
    size_t dropped = c->dropped;
    c->dropped = 0;
    pthread_mutex_unlock(&c->mu);
    if (dropped)
        CEL_WARN(COMP, "%zu control requests dropped: they came faster than they were answered",
                 dropped);
    if (paused_changed) {
        for (size_t i = 0; i < npaused; i++)
            if (!cel__control_queue_paused(c->w, paused[i]))
                CEL_INFO(COMP, "Queue %s is paused", paused[i]);
        strv_free(c->paused, c->npaused);
        c->paused = paused;
        c->npaused = npaused;
        cel__control_apply_queues(c->w);
        /* Received before the pause, not started: they wait on the queue
         * like the rest instead of running while it is paused. */
        cel__consumer_requeue_paused(c->w);
    }
    for (size_t i = 0; i < n; i++) {
        answer(c, &v[i]);
        cel__control_request_release(&v[i]);
    }
    free(v);
}

/* ---- the pidbox thread's side -------------------------------------------- */

void cel__control_submit(cel_worker *w, struct cel_control_request *rq)
{
    struct cel_control *c = w->control;
    pthread_mutex_lock(&c->mu);
    struct cel_control_request *v =
        c->nin < MAX_PENDING ? cel__array_grow(c->in, &c->capin, c->nin, sizeof *v, 8) : NULL;
    if (v) {
        c->in = v;
        c->in[c->nin++] = *rq;
        memset(rq, 0, sizeof *rq);
    } else {
        c->dropped++;
    }
    pthread_mutex_unlock(&c->mu);
    if (!v)
        cel__control_request_release(rq);
    uv_async_send(&c->async);
}

void cel__control_set_paused(cel_worker *w, char **names, size_t n)
{
    struct cel_control *c = w->control;
    pthread_mutex_lock(&c->mu);
    strv_free(c->paused_in, c->npaused_in);
    c->paused_in = names;
    c->npaused_in = n;
    c->paused_changed = true;
    pthread_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
}

void cel__control_set_paused_now(cel_worker *w, char **names, size_t n)
{
    struct cel_control *c = w->control;
    for (size_t i = 0; i < n; i++)
        CEL_INFO(COMP, "Queue %s is paused: not consuming from it", names[i]);
    strv_free(c->paused, c->npaused);
    c->paused = names;
    c->npaused = n;
}

int cel__control_wake_fd(const cel_worker *w)
{
    return w->control ? w->control->wake : -1;
}

void cel__control_send(cel_worker *w, struct cel_broker *b)
{
    struct cel_control *c = w->control;
    uint64_t got;
    if (read(c->wake, &got, sizeof got) < 0 && errno != EAGAIN)
        CEL_DEBUG(COMP, "eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&c->mu);
    struct out_item *v = c->out;
    size_t n = c->nout;
    c->out = NULL;
    c->nout = c->capout = 0;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (b->ops->mailbox_send &&
            b->ops->mailbox_send(b, v[i].reply_to, v[i].env, v[i].len) != CEL_OK)
            CEL_WARN(COMP, "cannot send a control reply: %s", cel__broker_errmsg(b));
        free(v[i].reply_to);
        free(v[i].env);
    }
    free(v);
}

/* ---- start and stop ------------------------------------------------------ */

int cel__control_start(cel_worker *w)
{
    struct cel_control *c = calloc(1, sizeof *c);
    if (!c)
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    c->w = w;
    pthread_mutex_init(&c->mu, NULL);
    w->control = c;
    c->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wake < 0)
        return cel__err(&w->err, CEL_EIO, "eventfd: %s", strerror(errno));
    uv_async_init(&w->loop, &c->async, on_requests);
    c->async.data = c;
    c->async_open = true;
    return CEL_OK;
}

static void control_free(struct cel_control *c)
{
    for (size_t i = 0; i < c->nin; i++)
        cel__control_request_release(&c->in[i]);
    free(c->in);
    for (size_t i = 0; i < c->nout; i++) {
        free(c->out[i].reply_to);
        free(c->out[i].env);
    }
    free(c->out);
    for (size_t i = 0; i < c->ndeferred; i++) {
        free(c->deferred[i].reply_to);
        free(c->deferred[i].env);
    }
    free(c->deferred);
    strv_free(c->paused_in, c->npaused_in);
    strv_free(c->paused, c->npaused);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void on_async_closed(uv_handle_t *h)
{
    control_free(h->data);
}

void cel__control_stop(cel_worker *w)
{
    struct cel_control *c = w->control;
    if (!c)
        return;
    w->control = NULL;
    if (c->wake >= 0)
        close(c->wake);
    if (c->async_open)
        uv_close((uv_handle_t *)&c->async, on_async_closed);
    else
        control_free(c);
}
