/*
 * redis_consumer.c - the Redis transport's consumer: an I/O thread with
 * its own connection.
 *
 * It blocks in BRPOP on every queue x band key (band first, queues
 * rotated round-robin like kombu), then one Lua script records the popped
 * message in unacked/unacked_index and pops up to the rest of the
 * consumer's prefetch window with RPOP, recording those too. Messages
 * wait on the handle's ready list until fetch() takes them; an eventfd
 * tells the worker's poll loop. The thread never holds more than the
 * window the consumer had free at its last fetch(). Every 10 s it also
 * runs kombu's visibility sweep (kombu itself does so about every 100 s),
 * at least every second it moves due delayed messages to their queues
 * (and at the due time of the earliest one it knows of: redis_wake.c
 * tells it of those its own handle parks), and it reconnects by itself
 * after a lost connection.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "broker/redis_internal.h"
#include "core/fork_guard.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/uuid.h"

#define SWEEP_INTERVAL_MS 10000 /* visibility sweep (kombu: ~100 s) */
#define SWEEP_LIMIT       1000  /* restores per sweep */
#define POP_MAX           1000  /* messages per Lua pop */
#define MOVE_LIMIT        1000  /* delayed messages moved per script run */

struct io_state {
    struct redis_broker *b;
    size_t nq;
    size_t *order;                                     /* queue indices, rotated round-robin */
    char (*keys)[CEL_REDIS_NBANDS][CEL_REDIS_KEY_MAX]; /* keys[queue][band] */
    const char **argv;                                 /* scratch: command arguments */
    size_t *lens;
    int64_t next_sweep_ms;
    int64_t next_move_ms;     /* monotonic: next periodic delayed check */
    int64_t next_due_wall_ms; /* earliest known delayed message, 0: none known */
    unsigned bound_gen;       /* io generation whose bindings were added */
    bool rebind;              /* the queue set changed: add its bindings */
    char *pending;            /* popped by BRPOP, not yet recorded */
    size_t pending_len;
    size_t pending_q;
    bool busy; /* the last pop found messages: try RPOP before BRPOP */
    struct cel_errbuf err;
};

/* Waits until `fd_extra` (the Redis socket, or -1) is readable, the kick
 * fd fires or timeout_ms passes. Returns 1 when the socket is readable. */
static int io_wait(struct redis_broker *b, int fd_extra, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = b->kick, .events = POLLIN}, {.fd = fd_extra, .events = POLLIN}};
    cel__fork_guard_wait_begin();
    int n = poll(p, fd_extra >= 0 ? 2 : 1, timeout_ms);
    cel__fork_guard_wait_end();
    if (n > 0 && p[0].revents)
        cel__redis_eventfd_drain(b->kick);
    return n > 0 && fd_extra >= 0 && p[1].revents ? 1 : 0;
}

/* Sends q on the io connection and reads its replies, waiting for the
 * first one in poll() so that close() can interrupt a BRPOP. Returns
 * CEL_EINTR when stopped (the connection is dropped: a reply is owed),
 * CEL_EDISCONNECTED when the connection was lost. */
static int io_exec(struct io_state *s, const struct cel_redis_cmds *q, redisReply ***out)
{
    struct redis_broker *b = s->b;
    redisContext *c = b->io.ctx;
    *out = NULL;
    if (!c)
        return CEL_EDISCONNECTED;
    if (redisAppendFormattedCommand(c, q->buf, q->len) != REDIS_OK)
        goto lost;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            goto lost;
    /* Blocking commands here wait at most CEL_REDIS_BRPOP_TIMEOUT_MS on the server. */
    int64_t deadline = cel__mono_ms() + CEL_REDIS_BRPOP_TIMEOUT_MS + CEL_REDIS_COMMAND_TIMEOUT_MS;
    for (;;) {
        if (atomic_load(&b->stop)) {
            cel__redis_close(&b->io);
            return CEL_EINTR;
        }
        int64_t left = deadline - cel__mono_ms();
        if (left <= 0) {
            char why[96], cmd[32];
            cel__redis_cmds_name(q, 0, cmd, sizeof cmd);
            snprintf(why, sizeof why, "no reply within %.1f s to %s (the server does not answer)",
                     (CEL_REDIS_BRPOP_TIMEOUT_MS + CEL_REDIS_COMMAND_TIMEOUT_MS) / 1000.0, cmd);
            cel__redis_lost(&b->io, why);
            return CEL_EDISCONNECTED;
        }
        /* Something may already be buffered from an earlier read. */
        void *rep = NULL;
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
            goto lost;
        if (rep) {
            freeReplyObject(rep);
            /* Should not happen (one command in flight); drop it. */
            continue;
        }
        /* Kicked (room freed) or stopped: loop; the reply is still owed. */
        if (io_wait(b, c->fd, (int)left) == 1)
            break;
    }
    redisReply **rs = calloc(q->n, sizeof *rs);
    if (!rs) {
        cel__redis_lost(&b->io, "out of memory");
        return CEL_ENOMEM;
    }
    for (size_t i = 0; i < q->n; i++) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
            cel__redis_replies_free(rs, q->n);
            goto lost;
        }
        rs[i] = rep;
    }
    *out = rs;
    return CEL_OK;
lost:
    cel__redis_lost(&b->io, c->errstr[0] ? c->errstr : "connection closed");
    return CEL_EDISCONNECTED;
}

/* Runs q and frees the replies; logs Redis errors. */
static int io_run(struct io_state *s, const struct cel_redis_cmds *q, redisReply ***keep)
{
    redisReply **rs = NULL;
    int rc = io_exec(s, q, &rs);
    if (rc != CEL_OK)
        return rc;
    const redisReply *e = cel__redis_first_error(rs, q->n);
    if (e) {
        CEL_ERROR(CEL_REDIS_COMP, "redis %s: %s", s->b->target.display, e->str);
        if (strncmp(e->str, "NOSCRIPT", 8) == 0)
            cel__redis_close(&s->b->io); /* reconnecting reloads them */
        cel__redis_replies_free(rs, q->n);
        return CEL_EBROKER;
    }
    if (keep)
        *keep = rs;
    else
        cel__redis_replies_free(rs, q->n);
    return CEL_OK;
}

/* SADD the binding of every consumed queue, as kombu's consumer does. */
static int io_bind(struct io_state *s)
{
    struct cel_redis_cmds q = {0};
    int rc = CEL_OK;
    for (size_t i = 0; i < s->nq && rc == CEL_OK; i++) {
        const char *queue = s->b->queues[i];
        char key[CEL_REDIS_KEY_MAX], member[3 * CEL_REDIS_KEY_MAX];
        if (!cel__redis_binding(queue, key, member))
            continue; /* a name that long was never bound by anyone */
        const char *argv[] = {"SADD", key, member};
        rc = cel__redis_cmds_addv(&q, 3, argv);
    }
    if (rc == CEL_OK)
        rc = io_run(s, &q, NULL);
    cel__redis_cmds_release(&q);
    return rc;
}

static int64_t current_vt_ms(struct redis_broker *b)
{
    pthread_mutex_lock(&b->mu);
    int64_t vt = b->lease_ms > 0 ? b->lease_ms : b->default_vt_ms;
    pthread_mutex_unlock(&b->mu);
    return vt;
}

/* The queue a restored message goes to: exchange "" routes by routing
 * key; a named exchange through the first binding in
 * _kombu.binding.<exchange> whose routing key matches (direct, kombu's
 * _lookup); when nothing matches, the routing key. `found` holds the
 * name when it comes from a binding. */
static int route(struct io_state *s, const char *ex, const char *rk, char found[CEL_REDIS_KEY_MAX],
                 const char **queue)
{
    *queue = rk;
    if (!*ex)
        return CEL_OK;
    char key[CEL_REDIS_KEY_MAX];
    snprintf(key, sizeof key, "_kombu.binding.%s", ex);
    const char *argv[] = {"SMEMBERS", key};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, 2, argv);
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    const redisReply *m = rc == CEL_OK ? rs[0] : NULL;
    size_t rklen = strlen(rk);
    for (size_t k = 0; m && m->type == REDIS_REPLY_ARRAY && k < m->elements; k++) {
        const char *mem = m->element[k]->str;
        const char *sep1 = strstr(mem, CEL_REDIS_SEP);
        const char *sep2 = sep1 ? strstr(sep1 + 2, CEL_REDIS_SEP) : NULL;
        if (sep2 && (size_t)(sep1 - mem) == rklen && strncmp(mem, rk, rklen) == 0) {
            snprintf(found, CEL_REDIS_KEY_MAX, "%s", sep2 + 2);
            *queue = found;
            break;
        }
    }
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

/* What the sweep does with one expired entry, appended to rq. Returns
 * whether it is a restore (whose reply says if it happened). */
static bool sweep_one(struct io_state *s, struct cel_redis_cmds *rq, const char *tag,
                      const redisReply *rec, const char *ceiling, int *rc)
{
    struct redis_broker *b = s->b;
    if (rec->type != REDIS_REPLY_STRING) {
        /* Acked meanwhile: drop the index entry like kombu does, and the
         * delivery count of a message acked by someone who does not count. */
        const char *zrem[] = {"ZREM", CEL_REDIS_KEY_UNACKED_INDEX, tag};
        const char *hdel[] = {"HDEL", CEL_REDIS_KEY_DELIVERIES, tag};
        cel__redis_cmds_addv(rq, 3, zrem);
        cel__redis_cmds_addv(rq, 3, hdel);
        return false;
    }
    const char *env = NULL, *queue = NULL;
    size_t envlen = 0;
    char *ex = NULL, *rk = NULL, found[CEL_REDIS_KEY_MAX];
    bool restore = false;
    if (cel__redis_split_record(rec->str, rec->len, &env, &envlen, &ex, &rk) != CEL_OK) {
        /* Not kombu's layout: nothing to route by. kombu would leave it in
         * unacked for ever; we keep it where an operator looks. */
        CEL_ERROR(CEL_REDIS_COMP,
                  "dead-lettered unacknowledged message %s: its unacked record is not "
                  "[envelope, exchange, routing_key] (kept in " CEL_REDIS_KEY_DEAD ")",
                  tag);
        if (cel__redis_add_dead_letter(rq, "", "unreadable unacked record", tag, rec->str,
                                       rec->len) != CEL_OK)
            *rc = CEL_ENOMEM;
    } else if ((*rc = route(s, ex, rk, found, &queue)) == CEL_OK) {
        restore = cel__redis_add_restore(rq, b->io_shas[CEL_REDIS_SCRIPT_RESTORE], tag, queue, env,
                                         envlen, ceiling) == CEL_OK;
        if (!restore)
            CEL_ERROR(CEL_REDIS_COMP, "cannot restore %s: queue name too long", tag);
    }
    free(ex);
    free(rk);
    return restore;
}

/*
 * kombu's restore_visible: under unacked_mutex, every unacked entry
 * delivered (or last extended) longer than the visibility timeout ago goes
 * back to its queue (route()), its envelope byte for byte with the
 * redelivered marks when it is JSON.
 */
static int io_sweep(struct io_state *s)
{
    struct redis_broker *b = s->b;
    char token[CEL_UUID_STRLEN + 1], ceiling[32];
    cel__uuid4(token);
    int64_t vt = current_vt_ms(b);
    int64_t c_us = cel__wall_us() - vt * 1000;
    snprintf(ceiling, sizeof ceiling, "%lld.%06lld", (long long)(c_us / 1000000),
             (long long)(c_us % 1000000));
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    const char *lock[] = {"SET", CEL_REDIS_KEY_UNACKED_MUTEX, token, "NX", "PX", "300000"};
    int rc = cel__redis_cmds_addv(&q, 6, lock);
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    bool locked = rc == CEL_OK && rs[0]->type == REDIS_REPLY_STATUS;
    cel__redis_replies_free(rs, q.n);
    rs = NULL;
    cel__redis_cmds_reset(&q);
    if (!locked) {
        cel__redis_cmds_release(&q);
        return rc;
    }

    char limit[16];
    snprintf(limit, sizeof limit, "%d", SWEEP_LIMIT);
    const char *range[] = {
        "ZREVRANGEBYSCORE", CEL_REDIS_KEY_UNACKED_INDEX, ceiling, "0", "LIMIT", "0", limit};
    rc = cel__redis_cmds_addv(&q, 7, range);
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    redisReply *tags = rc == CEL_OK ? rs[0] : NULL;
    size_t ntags = tags && tags->type == REDIS_REPLY_ARRAY ? tags->elements : 0;
    size_t restored = 0;
    if (ntags) {
        /* One round trip for the records, one for what to do with them. */
        struct cel_redis_cmds hq = {0}, rq = {0};
        redisReply **vals = NULL, **rr = NULL;
        bool *is_restore = calloc(ntags * 6, sizeof *is_restore); /* per command of rq */
        if (!is_restore)
            rc = CEL_ENOMEM;
        for (size_t i = 0; i < ntags && rc == CEL_OK; i++) {
            const char *argv[] = {"HGET", CEL_REDIS_KEY_UNACKED, tags->element[i]->str};
            rc = cel__redis_cmds_addv(&hq, 3, argv);
        }
        if (rc == CEL_OK)
            rc = io_run(s, &hq, &vals);
        for (size_t i = 0; rc == CEL_OK && i < ntags; i++)
            if (sweep_one(s, &rq, tags->element[i]->str, vals[i], ceiling, &rc))
                is_restore[rq.n - 1] = true;
        cel__redis_replies_free(vals, hq.n);
        if (rc == CEL_OK && rq.n)
            rc = io_run(s, &rq, &rr);
        for (size_t i = 0; rc == CEL_OK && i < rq.n; i++)
            restored += is_restore[i] && rr[i]->type == REDIS_REPLY_INTEGER && rr[i]->integer == 1;
        cel__redis_replies_free(rr, rq.n);
        free(is_restore);
        cel__redis_cmds_release(&hq);
        cel__redis_cmds_release(&rq);
    }
    cel__redis_replies_free(rs, q.n);
    if (restored)
        CEL_WARN(CEL_REDIS_COMP,
                 "restored %zu unacknowledged messages older than the visibility timeout "
                 "(%.0f s)",
                 restored, (double)vt / 1000.0);
    if (rc != CEL_EDISCONNECTED && rc != CEL_EINTR && b->io.ctx) {
        cel__redis_cmds_reset(&q);
        const char *unlock[] = {"EVALSHA", b->io_shas[CEL_REDIS_SCRIPT_UNLOCK], "1",
                                CEL_REDIS_KEY_UNACKED_MUTEX, token};
        if (cel__redis_cmds_addv(&q, 5, unlock) == CEL_OK) {
            int urc = io_run(s, &q, NULL);
            if (rc == CEL_OK)
                rc = urc;
        }
    }
    cel__redis_cmds_release(&q);
    return rc;
}

/* Moves due delayed messages to their queues. */
static int io_move_due(struct io_state *s)
{
    struct redis_broker *b = s->b;
    char now[32], limit[16];
    snprintf(now, sizeof now, "%lld", (long long)(cel__wall_us() / 1000));
    snprintf(limit, sizeof limit, "%d", MOVE_LIMIT);
    char dead_at[32];
    cel__redis_now_score(dead_at, sizeof dead_at);
    const char *argv[] = {"EVALSHA",
                          b->io_shas[CEL_REDIS_SCRIPT_MOVE],
                          "2",
                          CEL_REDIS_KEY_DELAYED,
                          CEL_REDIS_KEY_DEAD,
                          now,
                          limit,
                          dead_at};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, 8, argv);
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    if (rc == CEL_OK) {
        const redisReply *r = rs[0];
        long long moved = 0;
        s->next_due_wall_ms = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
            moved = r->element[0]->integer;
            if (r->element[1]->type == REDIS_REPLY_STRING)
                s->next_due_wall_ms = strtoll(r->element[1]->str, NULL, 10);
            if (r->element[2]->integer)
                CEL_ERROR(CEL_REDIS_COMP,
                          "dead-lettered %lld delayed messages that do not decode (members of "
                          "%s not written by celeriac; kept in %s)",
                          r->element[2]->integer, CEL_REDIS_KEY_DELAYED, CEL_REDIS_KEY_DEAD);
        }
        if (moved)
            CEL_DEBUG(CEL_REDIS_COMP, "moved %lld due delayed messages to their queues", moved);
        if (moved >= MOVE_LIMIT)
            s->next_due_wall_ms = 1; /* more are due: again at once */
    }
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

/* Records the BRPOP'd message (s->pending, may be none) and pops up to
 * `more` others, then hands them all to the ready list. */
static int io_pop(struct io_state *s, size_t more)
{
    struct redis_broker *b = s->b;
    size_t nkeys = s->nq * CEL_REDIS_NBANDS;
    char now[32], want[16];
    cel__redis_index_score(now, sizeof now);
    snprintf(want, sizeof want, "%zu", more > POP_MAX ? (size_t)POP_MAX : more);
    char nk[16];
    snprintf(nk, sizeof nk, "%zu", nkeys + 4);
    size_t argc = 0;
    const char **a = s->argv;
    size_t *l = s->lens;
    a[argc++] = "EVALSHA";
    a[argc++] = b->io_shas[CEL_REDIS_SCRIPT_POP];
    a[argc++] = nk;
    a[argc++] = CEL_REDIS_KEY_UNACKED;
    a[argc++] = CEL_REDIS_KEY_UNACKED_INDEX;
    a[argc++] = CEL_REDIS_KEY_DELIVERIES;
    a[argc++] = CEL_REDIS_KEY_DEAD;
    for (int band = 0; band < CEL_REDIS_NBANDS; band++)
        for (size_t k = 0; k < s->nq; k++)
            a[argc++] = s->keys[s->order[k]][band];
    a[argc++] = now;
    a[argc++] = want;
    a[argc++] = s->pending ? "1" : "0";
    size_t pending_at = argc;
    a[argc++] = s->pending ? s->pending : "";
    a[argc++] = s->pending ? b->queues[s->pending_q] : "";
    for (int band = 0; band < CEL_REDIS_NBANDS; band++)
        for (size_t k = 0; k < s->nq; k++)
            a[argc++] = b->queues[s->order[k]];
    for (size_t i = 0; i < argc; i++)
        l[i] = strlen(a[i]);
    if (s->pending)
        l[pending_at] = s->pending_len; /* may be empty, or hold NULs */

    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_add(&q, (int)argc, a, l) == CEL_OK ? CEL_OK : CEL_ENOMEM;
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    cel__redis_cmds_release(&q);
    if (rc != CEL_OK)
        return rc; /* s->pending is kept and recorded after reconnecting */
    free(s->pending);
    s->pending = NULL;

    const redisReply *r = rs[0];
    size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements / 4 : 0;
    s->busy = got > 0;
    if (got) {
        pthread_mutex_lock(&b->mu);
        struct cel_redis_ready_list *rl = &b->ready;
        if (rl->head + rl->n + got > rl->cap) {
            /* Compact, then grow. */
            if (rl->n)
                memmove(rl->v, rl->v + rl->head, rl->n * sizeof *rl->v);
            rl->head = 0;
            if (rl->n + got > rl->cap) {
                size_t cap = rl->cap ? rl->cap : 64;
                while (cap < rl->n + got)
                    cap *= 2;
                struct cel_delivery *v = realloc(rl->v, cap * sizeof *v);
                if (v) {
                    rl->v = v;
                    rl->cap = cap;
                }
            }
        }
        for (size_t i = 0; i < got && rl->n < rl->cap; i++) {
            const redisReply *const *e = (const redisReply *const *)&r->element[4 * i];
            if (e[2]->integer == 0) {
                CEL_ERROR(CEL_REDIS_COMP,
                          "dead-lettered a message from queue '%s': %s (kept in %s)", e[0]->str,
                          e[1]->str, CEL_REDIS_KEY_DEAD);
                continue;
            }
            struct cel_delivery *d = &rl->v[rl->head + rl->n];
            memset(d, 0, sizeof *d);
            d->queue = strdup(e[0]->str);
            d->tag_str = strdup(e[1]->str);
            d->body = malloc(e[3]->len + 1);
            if (!d->queue || !d->tag_str || !d->body) {
                /* Recorded in unacked: the visibility sweep gives it back. */
                cel__delivery_release(d);
                continue;
            }
            memcpy(d->body, e[3]->str, e[3]->len);
            d->body[e[3]->len] = '\0';
            d->len = e[3]->len;
            d->tag = ++b->tag_seq;
            d->delivery_count = e[2]->integer > 1 ? (int)e[2]->integer : 1;
            rl->n++;
        }
        pthread_mutex_unlock(&b->mu);
        cel__redis_eventfd_signal(b->efd);
    }
    cel__redis_replies_free(rs, 1);
    return CEL_OK;
}

/* Room the consumer has for more messages right now. */
static size_t io_room(struct redis_broker *b)
{
    pthread_mutex_lock(&b->mu);
    size_t room = b->room > b->ready.n ? b->room - b->ready.n : 0;
    pthread_mutex_unlock(&b->mu);
    return room;
}

/* One BRPOP over all keys; on a message, records it and pops more. */
/* False when fetch() has since left queue qi out of the set (the thread
 * takes the new set after this pop). */
static bool still_wanted(struct io_state *s, size_t qi)
{
    struct redis_broker *b = s->b;
    bool wanted = true;
    pthread_mutex_lock(&b->mu);
    if (b->queues_changed) {
        wanted = false;
        for (size_t i = 0; i < b->nnext && !wanted; i++)
            wanted = strcmp(b->next_queues[i], b->queues[qi]) == 0;
    }
    pthread_mutex_unlock(&b->mu);
    return wanted;
}

/* A message popped from a queue no longer consumed goes back where it
 * was (BRPOP takes the right end). */
static int give_back(struct io_state *s, const char *key, const char *body, size_t len)
{
    const char *argv[] = {"RPUSH", key, body};
    size_t lens[] = {5, strlen(key), len};
    struct cel_redis_cmds q = {0};
    int rc = cel__redis_cmds_add(&q, 3, argv, lens) == CEL_OK ? io_run(s, &q, NULL) : CEL_ENOMEM;
    cel__redis_cmds_release(&q);
    return rc;
}

static int io_brpop(struct io_state *s, size_t room, int64_t timeout_ms)
{
    size_t argc = 0;
    s->argv[argc++] = "BRPOP";
    for (int band = 0; band < CEL_REDIS_NBANDS; band++)
        for (size_t k = 0; k < s->nq; k++)
            s->argv[argc++] = s->keys[s->order[k]][band];
    /* Last: a message waiting in a queue is served first; the token then
     * ends the next BRPOP at once, which only costs a round trip. */
    s->argv[argc++] = s->b->wake_key;
    char t[32];
    snprintf(t, sizeof t, "%.3f", (double)timeout_ms / 1000.0);
    s->argv[argc++] = t;
    for (size_t i = 0; i < argc; i++)
        s->lens[i] = strlen(s->argv[i]);
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_add(&q, (int)argc, s->argv, s->lens) == CEL_OK ? CEL_OK : CEL_ENOMEM;
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    cel__redis_cmds_release(&q);
    if (rc != CEL_OK)
        return rc;
    const redisReply *r = rs[0];
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        strcmp(r->element[0]->str, s->b->wake_key) == 0) {
        /* A wake-up token, never a message: io_main() takes the hint. */
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        const char *key = r->element[0]->str;
        size_t qi = s->nq;
        for (size_t k = 0; k < s->nq && qi == s->nq; k++)
            for (int band = 0; band < CEL_REDIS_NBANDS; band++)
                if (strcmp(key, s->keys[k][band]) == 0)
                    qi = k;
        /* Given back when it can be; otherwise recorded as any other
         * (a lost connection keeps it pending, see io_main). */
        if (qi < s->nq && !still_wanted(s, qi) &&
            give_back(s, key, r->element[1]->str, r->element[1]->len) == CEL_OK) {
            cel__redis_replies_free(rs, 1);
            return CEL_OK;
        }
        s->pending = malloc(r->element[1]->len + 1);
        if (s->pending && qi < s->nq) {
            memcpy(s->pending, r->element[1]->str, r->element[1]->len);
            s->pending[r->element[1]->len] = '\0';
            s->pending_len = r->element[1]->len;
            s->pending_q = qi;
            rc = io_pop(s, room - 1);
            /* Round robin: the queue just served goes last. */
            size_t pos = 0;
            while (pos < s->nq && s->order[pos] != qi)
                pos++;
            for (; pos + 1 < s->nq; pos++)
                s->order[pos] = s->order[pos + 1];
            s->order[s->nq - 1] = qi;
        } else {
            free(s->pending);
            s->pending = NULL;
            CEL_ERROR(CEL_REDIS_COMP, "lost a message popped from '%s': out of memory", key);
        }
    }
    cel__redis_replies_free(rs, 1);
    return rc;
}

static void io_take_queues(struct io_state *s);

static void *io_main(void *arg)
{
    struct io_state *s = arg;
    struct redis_broker *b = s->b;
    /* A write to a vanished server fails with EPIPE here instead of
     * killing the process (signals raised by a write go to its thread). */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    cel__fork_guard_enter(); /* let go only while waiting: see fork_guard.h */
    s->next_sweep_ms = 0;    /* once at start, like kombu */
    while (!atomic_load(&b->stop)) {
        int64_t mono = cel__mono_ms();
        if (!b->io.ctx) {
            if (b->io.retry_at_ms > mono) {
                io_wait(b, -1, (int)(b->io.retry_at_ms - mono));
                continue;
            }
            if (cel__redis_connect(&b->io, &s->err) != CEL_OK)
                continue;
        }
        int rc = CEL_OK;
        int64_t hint = cel__redis_wake_take(b);
        if (hint && (!s->next_due_wall_ms || hint < s->next_due_wall_ms))
            s->next_due_wall_ms = hint;
        if (rc == CEL_OK && s->pending)
            rc = io_pop(s, 0); /* record what we popped before losing the connection */
        if (rc == CEL_OK && !s->pending)
            io_take_queues(s); /* pending_q indexes the old set until then */
        if (rc == CEL_OK && (s->bound_gen != b->io.generation || s->rebind)) {
            rc = io_bind(s);
            if (rc == CEL_OK) {
                s->bound_gen = b->io.generation;
                s->rebind = false;
            }
        }
        if (rc == CEL_OK && mono >= s->next_sweep_ms) {
            rc = io_sweep(s);
            s->next_sweep_ms = mono + SWEEP_INTERVAL_MS;
        }
        int64_t wall_ms = cel__wall_us() / 1000;
        if (rc == CEL_OK &&
            (mono >= s->next_move_ms || (s->next_due_wall_ms && s->next_due_wall_ms <= wall_ms))) {
            rc = io_move_due(s);
            s->next_move_ms = mono + CEL_REDIS_BRPOP_TIMEOUT_MS;
        }
        if (rc != CEL_OK)
            continue; /* lost: reconnect; stopped: leave */

        int64_t timeout = CEL_REDIS_BRPOP_TIMEOUT_MS;
        if (s->next_due_wall_ms) {
            int64_t until = s->next_due_wall_ms - cel__wall_us() / 1000;
            if (until < timeout)
                timeout = until < 10 ? 10 : until;
        }
        size_t room = s->nq ? io_room(b) : 0; /* no queue: nothing to pop */
        /* Under load one script call refills the window; BRPOP (a round
         * trip more) only once the queues ran dry. */
        if (room && s->busy) {
            io_pop(s, room);
            continue;
        }
        if (!cel__redis_wake_arm(b, cel__wall_us() / 1000 + timeout, room > 0))
            continue; /* a park due sooner arrived meanwhile */
        if (room == 0)
            io_wait(b, -1, (int)timeout); /* window full: wait for fetch() (kick) */
        else
            io_brpop(s, room, timeout);
        cel__redis_wake_awake(b);
    }
    cel__fork_guard_leave();
    /* A message popped but not recorded goes back in close(). */
    pthread_mutex_lock(&b->mu);
    if (s->pending) {
        b->orphan = s->pending;
        b->orphan_queue = strdup(b->queues[s->pending_q]);
        s->pending = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    free(s->order);
    free(s->keys);
    free(s->argv);
    free(s->lens);
    free(s);
    return NULL;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* Makes `queues` (taken, also on failure) the set the thread consumes:
 * their keys, the scratch room for BRPOP, and their bindings again. */
static int io_set_queues(struct io_state *s, char **queues, size_t n)
{
    struct redis_broker *b = s->b;
    size_t *order = calloc(n ? n : 1, sizeof *order);
    char(*keys)[CEL_REDIS_NBANDS][CEL_REDIS_KEY_MAX] = calloc(n ? n : 1, sizeof *keys);
    const char **argv = calloc(2 * n * CEL_REDIS_NBANDS + 16, sizeof *argv);
    size_t *lens = calloc(2 * n * CEL_REDIS_NBANDS + 16, sizeof *lens);
    int rc = order && keys && argv && lens ? CEL_OK
                                           : cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == CEL_OK; i++) {
        order[i] = i;
        for (int band = 0; band < CEL_REDIS_NBANDS && rc == CEL_OK; band++)
            if (!cel__redis_band_key(queues[i], cel__redis_band_step(band), keys[i][band],
                                     CEL_REDIS_KEY_MAX))
                rc = cel__err(&b->base.err, CEL_EINVAL, "queue name too long");
    }
    if (rc != CEL_OK) {
        free(order), free(keys), free(argv), free(lens);
        strv_free(queues, n);
        return rc;
    }
    free(s->order), free(s->keys), free(s->argv), free(s->lens);
    s->order = order;
    s->keys = keys;
    s->argv = argv;
    s->lens = lens;
    s->nq = n;
    s->busy = false;
    s->rebind = true;
    strv_free(b->queues, b->nqueues);
    b->queues = queues;
    b->nqueues = n;
    return CEL_OK;
}

/* A new set from fetch() (post_queues in redis.c), between commands. */
static void io_take_queues(struct io_state *s)
{
    struct redis_broker *b = s->b;
    pthread_mutex_lock(&b->mu);
    char **v = b->queues_changed ? b->next_queues : NULL;
    size_t n = b->nnext;
    if (b->queues_changed) {
        b->next_queues = NULL;
        b->nnext = 0;
        b->queues_changed = false;
    }
    pthread_mutex_unlock(&b->mu);
    if (v && io_set_queues(s, v, n) != CEL_OK)
        CEL_ERROR(CEL_REDIS_COMP, "cannot change the queues consumed: %s", b->base.err.msg);
}

int cel__redis_consumer_start(struct redis_broker *b, const char *const *queues, size_t nqueues)
{
    struct io_state *s = calloc(1, sizeof *s);
    char **v = calloc(nqueues ? nqueues : 1, sizeof *v);
    if (!s || !v) {
        free(s);
        free(v);
        return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nqueues; i++)
        if (!(v[i] = strdup(queues[i]))) {
            strv_free(v, i);
            free(s);
            return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
        }
    s->b = b;
    int rc = io_set_queues(s, v, nqueues);
    if (rc != CEL_OK) {
        free(s);
        return rc;
    }
    int e = pthread_create(&b->thread, NULL, io_main, s);
    if (e != 0) {
        free(s->order), free(s->keys), free(s->argv), free(s->lens), free(s);
        return cel__err(&b->base.err, CEL_EIO, "cannot start the redis consumer thread: %s",
                        strerror(e));
    }
    b->started = true;
    return CEL_OK;
}

void cel__redis_consumer_stop(struct redis_broker *b)
{
    if (!b->started)
        return;
    atomic_store(&b->stop, true);
    cel__redis_eventfd_signal(b->kick);
    void *ret = NULL;
    pthread_join(b->thread, &ret);
    b->started = false;
}
