/*
 * redis_fanout.c - fan-out on Redis exactly as kombu 5.2 does it
 * (reference/celery-protocol.md, sections 8.1 and 9.1-9.2), so that
 * `celery events`, flower and `celery inspect` see and reach us:
 *
 *   publish    PUBLISH /<db>.<exchange>/<routing key> on the handle's
 *              connection; /<db>.<exchange> when the routing key is empty
 *              (how `celery inspect` sends to celery.pidbox)
 *   subscribe  PSUBSCRIBE /<db>.<exchange>/<pattern>, '#' rewritten to
 *              '*' as kombu does, on a connection of the subscription's
 *              own; a pattern that matches the empty routing key ("#")
 *              also subscribes /<db>.<exchange>, so one subscription to
 *              celery.pidbox gets what Celery's tools broadcast
 *
 * Pub/sub channels are global to a server; the "/<db>." prefix is what
 * keeps apps on different database numbers apart. Literal characters of
 * the exchange and the pattern are escaped for Redis' glob, and every
 * received message is checked again against the pattern (fanout.h).
 *
 * A subscription is a thread with a blocking connection, handing messages
 * to an inbox whose eventfd is fanout_fd(). Why not a non-blocking hiredis
 * context whose socket is fanout_fd(): the subscription must come back by
 * itself after a server restart (reconnect with backoff, AUTH,
 * PSUBSCRIBE again). With the socket as the fd, the caller's fd would
 * change at every reconnect (a libuv poll handle must be stopped before
 * its fd is closed, so the caller would have to learn of each one), and
 * while the server is down there would be no fd at all, so the caller
 * would also need a timer for our backoff. The thread sleeps in poll() on
 * its socket and an eventfd that close() kicks, reuses the reconnect code
 * every Redis connection uses, and the caller's fd never changes. Cost: a
 * thread and a connection per subscription (a worker has two: events and
 * control), and a copy of each message.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "broker/fanout.h"
#include "broker/redis_internal.h"
#include "core/fork_guard.h"
#include "core/log.h"

#define COMP_FANOUT "broker.redis.fanout"

struct cel_fanout_sub {
    struct cel_fanout_inbox inbox;
    struct cel_redis_target target; /* a copy: the handle may close first */
    struct cel_redis conn;
    char *exchange;
    char *pattern;
    char *prefix; /* "/<db>.<exchange>": every channel we get starts so */
    size_t prefix_len;
    char *globs[2]; /* what we PSUBSCRIBE to */
    int nglobs;
    int pending;         /* PSUBSCRIBE confirmations still owed */
    int64_t pending_due; /* monotonic ms by which they must have come */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int kick; /* wakes the thread for close() */
    char what[160];
};

/* "/<db>.<exchange>" plus "/<routing key>" when there is one: kombu's
 * _get_publish_topic with fanout_prefix and fanout_patterns on. */
static char *channel_of(int db, const char *exchange, const char *rk)
{
    size_t n = strlen(exchange) + (rk ? strlen(rk) : 0) + 24;
    char *c = malloc(n);
    if (c)
        snprintf(c, n, "/%d.%s%s%s", db, exchange, rk && *rk ? "/" : "", rk && *rk ? rk : "");
    return c;
}

int cel__redis_fanout_publish(struct cel_broker *base, const char *exchange,
                              const char *routing_key, const char *envelope, size_t len)
{
    struct redis_broker *b = (struct redis_broker *)base;
    char *channel = channel_of(b->target.db, exchange, routing_key);
    if (!channel)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    /* Inside begin()/commit() it rides along with the batch's pipeline
     * (events of a settled batch go out with its acks). */
    struct cel_redis_cmds local = {0};
    struct cel_redis_cmds *q = b->batching ? &b->batch : &local;
    const char *argv[] = {"PUBLISH", channel, envelope};
    size_t lens[] = {7, strlen(channel), len};
    int rc = cel__redis_cmds_add(q, 3, argv, lens) == CEL_OK
                 ? CEL_OK
                 : cel__err(&base->err, CEL_ENOMEM, "out of memory");
    if (rc == CEL_OK && !b->batching)
        rc = cel__redis_broker_run(b, q, NULL);
    cel__redis_cmds_release(&local);
    free(channel);
    return rc;
}

/* ---- subscriptions ------------------------------------------------------ */

/* Copies s to out escaping Redis glob specials; with `wild`, '#' and '*'
 * become the glob '*'. Returns the end. out needs 2 * strlen(s) + 1. */
static char *glob_put(char *out, const char *s, bool wild)
{
    for (; *s; s++) {
        if (wild && (*s == '#' || *s == '*')) {
            *out++ = '*';
            continue;
        }
        if (strchr("*?[]\\", *s))
            *out++ = '\\';
        *out++ = *s;
    }
    *out = '\0';
    return out;
}

/* The PSUBSCRIBE patterns of a subscription. */
static int build_globs(struct cel_fanout_sub *s)
{
    size_t n = 2 * (s->prefix_len + strlen(s->pattern)) + 3;
    if (*s->pattern) {
        char *g = s->globs[s->nglobs] = malloc(n);
        if (!g)
            return CEL_ENOMEM;
        char *end = glob_put(g, s->prefix, false);
        *end++ = '/';
        glob_put(end, s->pattern, true);
        s->nglobs++;
    }
    if (cel__fanout_match(s->pattern, "", 0)) {
        char *g = s->globs[s->nglobs] = malloc(n);
        if (!g)
            return CEL_ENOMEM;
        glob_put(g, s->prefix, false);
        s->nglobs++;
    }
    return CEL_OK;
}

/* Sends PSUBSCRIBE on a fresh connection; its confirmations are then
 * owed within the command timeout. */
static int send_psubscribe(struct cel_fanout_sub *s)
{
    const char *argv[3] = {"PSUBSCRIBE", s->globs[0], s->globs[1]};
    redisContext *c = s->conn.ctx;
    int done = 0;
    if (redisAppendCommandArgv(c, 1 + s->nglobs, argv, NULL) != REDIS_OK)
        goto lost;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            goto lost;
    s->pending = s->nglobs;
    s->pending_due = cel__mono_ms() + CEL_REDIS_COMMAND_TIMEOUT_MS;
    return CEL_OK;
lost:
    cel__redis_lost(&s->conn, c->errstr[0] ? c->errstr : "connection closed");
    return CEL_EDISCONNECTED;
}

static bool reply_is(const redisReply *r, const char *kind, size_t elements)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == elements &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, kind) == 0;
}

static void on_reply(struct cel_fanout_sub *s, const redisReply *r)
{
    if (reply_is(r, "psubscribe", 3)) {
        if (s->pending > 0)
            s->pending--;
        return;
    }
    if (!reply_is(r, "pmessage", 4) || r->element[2]->type != REDIS_REPLY_STRING ||
        r->element[3]->type != REDIS_REPLY_STRING)
        return;
    const char *ch = r->element[2]->str;
    size_t chlen = r->element[2]->len;
    if (chlen < s->prefix_len || memcmp(ch, s->prefix, s->prefix_len) != 0)
        return;
    const char *rk = ch + s->prefix_len;
    size_t rklen = chlen - s->prefix_len;
    if (rklen && *rk != '/')
        return; /* another exchange that starts with ours */
    if (rklen)
        rk++, rklen--;
    if (!cel__fanout_match(s->pattern, rk, rklen))
        return;
    if (cel__fanout_inbox_push(&s->inbox, s->exchange, rk, rklen, r->element[3]->str,
                               r->element[3]->len) != CEL_OK)
        CEL_ERROR(COMP_FANOUT, "%s: lost a message: out of memory", s->what);
}

/*
 * Waits up to timeout_ms (-1: until something happens) for the socket or
 * the kick, then handles every reply that arrived. A lost connection is
 * dropped (cel__redis_lost logs it) and reported as CEL_EDISCONNECTED.
 */
static int pump(struct cel_fanout_sub *s, int timeout_ms)
{
    redisContext *c = s->conn.ctx;
    struct pollfd p[2] = {{.fd = s->kick, .events = POLLIN}, {.fd = c->fd, .events = POLLIN}};
    cel__fork_guard_wait_begin();
    int n = poll(p, 2, timeout_ms);
    cel__fork_guard_wait_end();
    if (n <= 0)
        return CEL_OK; /* timeout, EINTR */
    if (p[0].revents)
        cel__redis_eventfd_drain(s->kick);
    if (!p[1].revents)
        return CEL_OK;
    if (redisBufferRead(c) != REDIS_OK) {
        cel__redis_lost(&s->conn, c->errstr[0] ? c->errstr : "connection closed");
        return CEL_EDISCONNECTED;
    }
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK) {
            cel__redis_lost(&s->conn, c->errstr[0] ? c->errstr : "protocol error");
            return CEL_EDISCONNECTED;
        }
        if (!rep)
            return CEL_OK;
        on_reply(s, rep);
        freeReplyObject(rep);
    }
}

/* Milliseconds pump() may sleep: until the confirmations are due, or
 * until kicked. Drops the connection when they are overdue. */
static int sleep_budget(struct cel_fanout_sub *s)
{
    if (s->pending == 0)
        return -1;
    int64_t left = s->pending_due - cel__mono_ms();
    if (left > 0)
        return (int)left;
    char why[96];
    snprintf(why, sizeof why, "no reply within %.1f s to PSUBSCRIBE",
             CEL_REDIS_COMMAND_TIMEOUT_MS / 1000.0);
    cel__redis_lost(&s->conn, why);
    return 0;
}

static void *sub_main(void *arg)
{
    struct cel_fanout_sub *s = arg;
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    cel__fork_guard_enter(); /* let go only while waiting: see fork_guard.h */
    struct cel_errbuf err;
    while (!atomic_load(&s->stop)) {
        if (!s->conn.ctx) {
            /* Down: back off (close() kicks us), reconnect, subscribe
             * again. What was published meanwhile is gone: fan-out. */
            int64_t wait = s->conn.retry_at_ms - cel__mono_ms();
            if (wait > 0) {
                struct pollfd p = {.fd = s->kick, .events = POLLIN};
                cel__fork_guard_wait_begin();
                int n = poll(&p, 1, (int)wait);
                cel__fork_guard_wait_end();
                if (n > 0)
                    cel__redis_eventfd_drain(s->kick);
                continue;
            }
            if (cel__redis_connect(&s->conn, &err) != CEL_OK || send_psubscribe(s) != CEL_OK)
                continue;
        }
        int budget = sleep_budget(s);
        if (s->conn.ctx)
            pump(s, budget);
    }
    cel__fork_guard_leave();
    return NULL;
}

void cel__redis_fanout_close(struct cel_fanout_sub *s)
{
    if (!s)
        return;
    if (s->started) {
        atomic_store(&s->stop, true);
        cel__redis_eventfd_signal(s->kick);
        pthread_join(s->thread, NULL);
    }
    cel__redis_close(&s->conn);
    cel__fanout_inbox_release(&s->inbox);
    cel__redis_target_release(&s->target);
    if (s->kick >= 0)
        close(s->kick);
    for (int i = 0; i < s->nglobs; i++)
        free(s->globs[i]);
    free(s->exchange);
    free(s->pattern);
    free(s->prefix);
    free(s);
}

/* Connects and waits for the PSUBSCRIBE confirmations on the caller's
 * thread, so that a message published once subscribe() returned reaches
 * the subscription. */
static int first_subscribe(struct cel_fanout_sub *s, struct cel_errbuf *err)
{
    struct cel_redis_sigpipe guard;
    cel__redis_sigpipe_block(&guard);
    int rc = cel__redis_connect(&s->conn, err);
    if (rc == CEL_OK && send_psubscribe(s) != CEL_OK)
        rc = cel__err(err, CEL_ECONNECT, "cannot subscribe to %s on %s: %s", s->globs[0],
                      s->target.display, s->conn.last_error);
    while (rc == CEL_OK && s->pending > 0) {
        int budget = sleep_budget(s);
        if (!s->conn.ctx || pump(s, budget) != CEL_OK)
            rc = cel__err(err, CEL_ECONNECT, "cannot subscribe to %s on %s: %s", s->globs[0],
                          s->target.display, s->conn.last_error);
    }
    cel__redis_sigpipe_restore(&guard);
    return rc;
}

int cel__redis_fanout_subscribe(struct cel_broker *base, const char *exchange, const char *pattern,
                                struct cel_fanout_sub **out)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *out = NULL;
    struct cel_fanout_sub *s = calloc(1, sizeof *s);
    if (!s)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    s->kick = -1;
    s->inbox.efd = -1;
    atomic_init(&s->stop, false);
    s->exchange = strdup(exchange);
    s->pattern = strdup(pattern ? pattern : "#");
    s->prefix = channel_of(b->target.db, exchange, NULL);
    int rc = s->exchange && s->pattern && s->prefix ? CEL_OK : CEL_ENOMEM;
    if (rc == CEL_OK) {
        s->prefix_len = strlen(s->prefix);
        rc = build_globs(s);
    }
    if (rc == CEL_OK)
        rc = cel__redis_target_copy(&s->target, &b->target);
    if (rc != CEL_OK) {
        cel__redis_fanout_close(s);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    snprintf(s->what, sizeof s->what, "fan-out subscription to '%.60s' ('%.60s')", exchange,
             s->pattern);
    cel__redis_init(&s->conn, &s->target, COMP_FANOUT, NULL, NULL);
    s->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->kick < 0)
        rc = cel__err(&base->err, CEL_EIO, "eventfd: %s", strerror(errno));
    if (rc == CEL_OK)
        rc = cel__fanout_inbox_init(&s->inbox, COMP_FANOUT, s->what, &base->err);
    if (rc == CEL_OK)
        rc = first_subscribe(s, &base->err);
    if (rc == CEL_OK) {
        int e = pthread_create(&s->thread, NULL, sub_main, s);
        if (e != 0)
            rc = cel__err(&base->err, CEL_EIO, "cannot start the subscription thread: %s",
                          strerror(e));
        s->started = e == 0;
    }
    if (rc != CEL_OK) {
        cel__redis_fanout_close(s);
        return rc;
    }
    *out = s;
    return CEL_OK;
}

int cel__redis_fanout_poll(struct cel_fanout_sub *s, struct cel_fanout_msg *out, size_t max,
                           size_t *n)
{
    cel__fanout_inbox_take(&s->inbox, out, max, n);
    return CEL_OK;
}

int cel__redis_fanout_fd(struct cel_fanout_sub *s)
{
    return s->inbox.efd;
}
