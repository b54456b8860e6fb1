/*
 * redis_conn.c - reconnecting hiredis connection and RESP pipelines.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "store/redis_conn.h"

#include "core/clock.h"
#include "core/fork_guard.h"
#include "core/log.h"

int cel__redis_target_init(struct cel_redis_target *t, const struct cel_url *u,
                           struct cel_errbuf *err)
{
    memset(t, 0, sizeof *t);
    t->port = 6379;
    bool unix_socket = strcmp(u->scheme, "redis+socket") == 0;
    if (unix_socket) {
        if (!u->path || strcmp(u->path, "/") == 0)
            return cel__err(err, CEL_EURL, "missing socket path in redis+socket URL");
        t->socket_path = strdup(u->path);
        char *db = cel__url_query_get(u, "db");
        if (!db)
            db = cel__url_query_get(u, "virtual_host");
        if (db) {
            char *end;
            long v = strtol(db, &end, 10);
            bool ok = *db && !*end && v >= 0 && v <= 100000;
            free(db);
            if (!ok)
                return cel__err(err, CEL_EURL, "invalid database number in redis+socket URL");
            t->db = (int)v;
        }
        snprintf(t->display, sizeof t->display, "redis+socket://%s?db=%d", u->path, t->db);
    } else {
        t->host = strdup(u->host && *u->host ? u->host : "127.0.0.1");
        if (u->port)
            t->port = u->port;
        if (u->path && u->path[0] == '/' && u->path[1]) {
            char *end;
            long v = strtol(u->path + 1, &end, 10);
            if (*end || v < 0 || v > 100000)
                return cel__err(err, CEL_EURL, "invalid database number '%s' in redis URL",
                                u->path + 1);
            t->db = (int)v;
        }
        bool v6 = strchr(t->host, ':') != NULL;
        snprintf(t->display, sizeof t->display, "redis://%s%s%s%s:%d/%d", u->password ? "***@" : "",
                 v6 ? "[" : "", t->host, v6 ? "]" : "", t->port, t->db);
    }
    if (u->password && *u->password) {
        t->password = strdup(u->password);
        if (u->user && *u->user)
            t->user = strdup(u->user);
    }
    if ((unix_socket && !t->socket_path) || (!unix_socket && !t->host) ||
        (u->password && *u->password && !t->password))
        return cel__err(err, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

static bool dup_field(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return !src || *dst;
}

int cel__redis_target_copy(struct cel_redis_target *dst, const struct cel_redis_target *src)
{
    *dst = *src;
    bool ok = dup_field(&dst->host, src->host);
    ok = dup_field(&dst->socket_path, src->socket_path) && ok;
    ok = dup_field(&dst->user, src->user) && ok;
    ok = dup_field(&dst->password, src->password) && ok;
    if (!ok) {
        cel__redis_target_release(dst);
        return CEL_ENOMEM;
    }
    return CEL_OK;
}

void cel__redis_target_release(struct cel_redis_target *t)
{
    free(t->host);
    free(t->socket_path);
    free(t->user);
    free(t->password);
    memset(t, 0, sizeof *t);
}

void cel__redis_init(struct cel_redis *r, const struct cel_redis_target *t, const char *component,
                     const char *const *scripts, char (*shas)[CEL_REDIS_SHA_LEN + 1])
{
    memset(r, 0, sizeof *r);
    r->target = t;
    r->component = component;
    r->scripts = scripts;
    r->shas = shas;
    r->backoff_ms = CEL_REDIS_BACKOFF_MIN_MS;
}

void cel__redis_close(struct cel_redis *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
}

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/*
 * Why a blocking call on c just failed. A read that hit the command
 * timeout leaves hiredis with only strerror(EAGAIN), "Resource
 * temporarily unavailable"; say instead which command got no answer in
 * how long, and what that means (`hint`).
 */
static void describe_failure(const redisContext *c, int saved_errno, const char *cmd,
                             const char *hint, char *why, size_t whylen)
{
    bool timed_out =
        c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
#ifdef REDIS_ERR_TIMEOUT
    timed_out = timed_out || c->err == REDIS_ERR_TIMEOUT; /* hiredis >= 1.0 */
#endif
    if (timed_out)
        snprintf(why, whylen, "no reply within %.1f s to %s (%s)",
                 CEL_REDIS_COMMAND_TIMEOUT_MS / 1000.0, cmd, hint);
    else
        snprintf(why, whylen, "%s", c->errstr[0] ? c->errstr : "connection closed");
}

/* One command on a fresh context during the handshake. */
static int handshake_cmd(redisContext *c, int argc, const char **argv, char *why, size_t whylen,
                         redisReply **keep)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    if (!rep) {
        describe_failure(c, errno, argv[0],
                         "the server accepted the connection but does not answer", why, whylen);
        return CEL_ECONNECT;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s failed: %s", argv[0], rep->str);
        freeReplyObject(rep);
        return CEL_EBROKER;
    }
    if (keep)
        *keep = rep;
    else
        freeReplyObject(rep);
    return CEL_OK;
}

static int try_connect(struct cel_redis *r, char *why, size_t whylen)
{
    const struct cel_redis_target *t = r->target;
    struct timeval ct = tv_ms(CEL_REDIS_CONNECT_TIMEOUT_MS);
    redisContext *c = t->socket_path ? redisConnectUnixWithTimeout(t->socket_path, ct)
                                     : redisConnectWithTimeout(t->host, t->port, ct);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return CEL_ENOMEM;
    }
    if (c->err) {
        snprintf(why, whylen, "%s", c->errstr);
        redisFree(c);
        return CEL_ECONNECT;
    }
    /* Prefork children must not keep the broker's sockets. */
    int fl = fcntl(c->fd, F_GETFD);
    if (fl >= 0)
        fcntl(c->fd, F_SETFD, fl | FD_CLOEXEC);
    redisSetTimeout(c, tv_ms(CEL_REDIS_COMMAND_TIMEOUT_MS));
    /* TCP only: on a unix socket hiredis fails SO_KEEPALIVE with
     * EOPNOTSUPP and marks the context as failed. */
    if (!t->socket_path)
        redisEnableKeepAlive(c);

    /* The first command proves that a Redis server answers: AUTH, or a
     * PING (a store with no password, database or scripts would
     * otherwise send nothing before its first real command). */
    int rc = CEL_OK;
    if (t->password) {
        const char *argv[3] = {"AUTH", t->user ? t->user : t->password, t->password};
        rc = handshake_cmd(c, t->user ? 3 : 2, argv, why, whylen, NULL);
    } else {
        const char *argv[1] = {"PING"};
        rc = handshake_cmd(c, 1, argv, why, whylen, NULL);
    }
    if (rc == CEL_OK && t->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", t->db);
        const char *argv[2] = {"SELECT", db};
        rc = handshake_cmd(c, 2, argv, why, whylen, NULL);
    }
    for (size_t i = 0; rc == CEL_OK && r->scripts && r->scripts[i]; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", r->scripts[i]};
        redisReply *rep = NULL;
        rc = handshake_cmd(c, 3, argv, why, whylen, &rep);
        if (rc == CEL_OK) {
            if (rep->type == REDIS_REPLY_STRING && rep->len == CEL_REDIS_SHA_LEN)
                memcpy(r->shas[i], rep->str, CEL_REDIS_SHA_LEN + 1);
            else
                rc = CEL_EBROKER, snprintf(why, whylen, "SCRIPT LOAD returned no digest");
            freeReplyObject(rep);
        }
    }
    if (rc != CEL_OK) {
        redisFree(c);
        return rc;
    }
    r->ctx = c;
    return CEL_OK;
}

int cel__redis_connect(struct cel_redis *r, struct cel_errbuf *err)
{
    if (r->ctx)
        return CEL_OK;
    char why[160];
    struct cel_redis_sigpipe guard;
    cel__redis_sigpipe_block(&guard);
    int rc = try_connect(r, why, sizeof why);
    cel__redis_sigpipe_restore(&guard);
    int64_t now = cel__mono_ms();
    if (rc == CEL_OK) {
        if (r->down_since_ms)
            CEL_INFO(r->component, "reconnected to %s after %.1f s", r->target->display,
                     (double)(now - r->down_since_ms) / 1000.0);
        r->down_since_ms = 0;
        r->backoff_ms = CEL_REDIS_BACKOFF_MIN_MS;
        r->retry_at_ms = 0;
        r->generation++;
        return CEL_OK;
    }
    snprintf(r->last_error, sizeof r->last_error, "%s", why);
    if (!r->down_since_ms)
        r->down_since_ms = now;
    r->retry_at_ms = now + r->backoff_ms;
    /* Before the first connection the caller reports the failure itself
     * (open fails; the worker retries on its own schedule). */
    if (r->generation > 0)
        CEL_WARN(r->component, "cannot connect to %s: %s; retrying in %.1f s", r->target->display,
                 why, (double)r->backoff_ms / 1000.0);
    r->backoff_ms =
        r->backoff_ms * 2 > CEL_REDIS_BACKOFF_MAX_MS ? CEL_REDIS_BACKOFF_MAX_MS : r->backoff_ms * 2;
    if (rc == CEL_ENOMEM)
        return cel__err(err, rc, "out of memory");
    return cel__err(err, CEL_ECONNECT, "cannot connect to %s: %s", r->target->display, why);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    cel__fork_guard_wait_begin(); /* a background thread lets fork() in while it sleeps */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    cel__fork_guard_wait_end();
}

int cel__redis_ensure(struct cel_redis *r, int64_t deadline_ms, struct cel_errbuf *err)
{
    for (;;) {
        if (r->ctx)
            return CEL_OK;
        int64_t now = cel__mono_ms();
        if (r->retry_at_ms > now) {
            if (r->retry_at_ms > deadline_ms)
                return cel__err(err, CEL_ECONNECT, "cannot reach %s: %s (next attempt in %.1f s)",
                                r->target->display, r->last_error,
                                (double)(r->retry_at_ms - now) / 1000.0);
            sleep_ms(r->retry_at_ms - now);
        }
        int rc = cel__redis_connect(r, err);
        if (rc == CEL_OK || rc == CEL_ENOMEM)
            return rc;
        if (cel__mono_ms() >= deadline_ms)
            return rc;
    }
}

void cel__redis_lost(struct cel_redis *r, const char *why)
{
    snprintf(r->last_error, sizeof r->last_error, "%s", why && *why ? why : "connection closed");
    cel__redis_close(r);
    int64_t now = cel__mono_ms();
    if (!r->down_since_ms)
        r->down_since_ms = now;
    r->retry_at_ms = now + r->backoff_ms;
    CEL_WARN(r->component, "connection to %s lost: %s; reconnecting in %.1f s", r->target->display,
             r->last_error, (double)r->backoff_ms / 1000.0);
}

/* ---- SIGPIPE ------------------------------------------------------------ */

/*
 * hiredis writes with write(), so a server that went away raises SIGPIPE,
 * whose default action kills the program that merely called
 * cel_client_send(). Around our socket I/O the signal is blocked in the
 * calling thread and a SIGPIPE we caused is consumed before unblocking:
 * the write then just fails with EPIPE and we reconnect.
 */
void cel__redis_sigpipe_block(struct cel_redis_sigpipe *g)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    g->was_blocked =
        pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old) == 0 && sigismember(&g->old, SIGPIPE) == 1;
}

void cel__redis_sigpipe_restore(struct cel_redis_sigpipe *g)
{
    if (g->was_blocked)
        return; /* the caller blocks it anyway: nothing to undo */
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- pipelines ---------------------------------------------------------- */

static int cmds_reserve(struct cel_redis_cmds *q, size_t more)
{
    if (q->len + more <= q->cap)
        return CEL_OK;
    size_t cap = q->cap ? q->cap : 4096;
    while (cap < q->len + more)
        cap *= 2;
    char *b = realloc(q->buf, cap);
    if (!b)
        return CEL_ENOMEM;
    q->buf = b;
    q->cap = cap;
    return CEL_OK;
}

/* Room for it was reserved: a prefix, 20 digits, CRLF. */
static void cmds_put(struct cel_redis_cmds *q, char prefix, size_t n)
{
    q->len += (size_t)snprintf(q->buf + q->len, q->cap - q->len, "%c%zu\r\n", prefix, n);
}

int cel__redis_cmds_add(struct cel_redis_cmds *q, int argc, const char *const *argv,
                        const size_t *lens)
{
    size_t need = 24;
    for (int i = 0; i < argc; i++)
        need += lens[i] + 26;
    if (cmds_reserve(q, need) != CEL_OK)
        return CEL_ENOMEM;
    cmds_put(q, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        cmds_put(q, '$', lens[i]);
        memcpy(q->buf + q->len, argv[i], lens[i]);
        q->len += lens[i];
        q->buf[q->len++] = '\r';
        q->buf[q->len++] = '\n';
    }
    q->n++;
    return CEL_OK;
}

int cel__redis_cmds_addv(struct cel_redis_cmds *q, int argc, const char *const *argv)
{
    size_t lens[16];
    if (argc > 16)
        return CEL_EINVAL;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return cel__redis_cmds_add(q, argc, argv, lens);
}

void cel__redis_cmds_name(const struct cel_redis_cmds *q, size_t i, char *buf, size_t len)
{
    /* Each command is "*<argc>\r\n" then "$<len>\r\n<arg>\r\n" per argument. */
    const char *p = q->buf, *end = q->buf + q->len;
    snprintf(buf, len, "?");
    for (size_t k = 0; p && p < end && k <= i; k++) {
        long argc = strtol(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p));
        for (long a = 0; p && a < argc; a++) {
            size_t n = (size_t)strtoul(p + 2, NULL, 10);
            const char *arg = memchr(p + 1, '\n', (size_t)(end - p - 1));
            if (!arg || (size_t)(end - arg) < n + 3)
                return;
            arg++;
            if (k == i && a == 0)
                snprintf(buf, len, "%.*s", (int)(n < 31 ? n : 31), arg);
            p = arg + n + 1; /* the '\n' of the CRLF after the argument */
        }
        if (p)
            p++;
    }
}

void cel__redis_cmds_reset(struct cel_redis_cmds *q)
{
    q->len = 0;
    q->n = 0;
}

void cel__redis_cmds_release(struct cel_redis_cmds *q)
{
    free(q->buf);
    memset(q, 0, sizeof *q);
}

void cel__redis_replies_free(redisReply **rs, size_t n)
{
    if (!rs)
        return;
    for (size_t i = 0; i < n; i++)
        if (rs[i])
            freeReplyObject(rs[i]);
    free(rs);
}

const redisReply *cel__redis_first_error(redisReply *const *rs, size_t n)
{
    for (size_t i = 0; rs && i < n; i++) {
        if (rs[i] && rs[i]->type == REDIS_REPLY_ERROR)
            return rs[i];
        /* Errors inside EXEC come back as elements of its array. */
        if (rs[i] && rs[i]->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k < rs[i]->elements; k++)
                if (rs[i]->element[k] && rs[i]->element[k]->type == REDIS_REPLY_ERROR &&
                    strncmp(rs[i]->element[k]->str, "EXECABORT", 9) != 0)
                    return rs[i]->element[k];
        }
    }
    return NULL;
}

int cel__redis_run(struct cel_redis *r, const struct cel_redis_cmds *q, redisReply ***replies,
                   int64_t budget_ms, struct cel_errbuf *err)
{
    redisReply **rs = NULL;
    if (replies)
        *replies = NULL;
    int rc = cel__redis_exec(r, q, &rs, budget_ms, err);
    if (rc != CEL_OK)
        return rc;
    const redisReply *e = cel__redis_first_error(rs, q->n);
    if (e) {
        rc = cel__err(err, CEL_EBROKER, "redis %s: %s", r->target->display, e->str);
        cel__redis_replies_free(rs, q->n);
        return rc;
    }
    if (replies)
        *replies = rs;
    else
        cel__redis_replies_free(rs, q->n);
    return CEL_OK;
}

static bool has_noscript(redisReply *const *rs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rs[i] && rs[i]->type == REDIS_REPLY_ERROR && strncmp(rs[i]->str, "NOSCRIPT", 8) == 0)
            return true;
    return false;
}

int cel__redis_exec(struct cel_redis *r, const struct cel_redis_cmds *q, redisReply ***replies,
                    int64_t budget_ms, struct cel_errbuf *err)
{
    if (replies)
        *replies = NULL;
    if (q->n == 0)
        return CEL_OK;
    int64_t now = cel__mono_ms();
    int64_t deadline = now + budget_ms;
    /* Down for longer than a whole budget already: one attempt when one
     * is due, then fail fast, so a caller with many operations queued up
     * (a worker acking a batch) does not wait a budget for each. */
    if (!r->ctx && r->down_since_ms && now - r->down_since_ms > budget_ms)
        deadline = now;
    bool reloaded = false;
    for (;;) {
        int rc = cel__redis_ensure(r, deadline, err);
        if (rc != CEL_OK)
            return rc;
        redisReply **rs = calloc(q->n, sizeof *rs);
        if (!rs)
            return cel__err(err, CEL_ENOMEM, "out of memory");
        bool io_failed = false;
        struct cel_redis_sigpipe guard;
        cel__redis_sigpipe_block(&guard);
        size_t at = 0; /* the reply being read */
        int saved_errno = 0;
        if (redisAppendFormattedCommand(r->ctx, q->buf, q->len) != REDIS_OK) {
            io_failed = true;
        } else {
            for (; at < q->n; at++) {
                void *rep = NULL;
                if (redisGetReply(r->ctx, &rep) != REDIS_OK || !rep) {
                    saved_errno = errno;
                    io_failed = true;
                    break;
                }
                rs[at] = rep;
            }
        }
        cel__redis_sigpipe_restore(&guard);
        if (io_failed) {
            char why[160], cmd[32];
            cel__redis_cmds_name(q, at, cmd, sizeof cmd);
            describe_failure(r->ctx, saved_errno, cmd, "the server does not answer", why,
                             sizeof why);
            cel__redis_replies_free(rs, q->n);
            cel__redis_lost(r, why);
            if (cel__mono_ms() >= deadline)
                return cel__err(err, CEL_ECONNECT, "connection to %s lost: %s", r->target->display,
                                why);
            continue;
        }
        if (!reloaded && has_noscript(rs, q->n)) {
            /* SCRIPT FLUSH or a failover: reconnecting loads them again. */
            cel__redis_replies_free(rs, q->n);
            cel__redis_close(r);
            reloaded = true;
            continue;
        }
        if (replies)
            *replies = rs;
        else
            cel__redis_replies_free(rs, q->n);
        return CEL_OK;
    }
}

void cel__redis_now_score(char *buf, size_t len)
{
    int64_t us = cel__wall_us();
    snprintf(buf, len, "%lld.%06lld", (long long)(us / 1000000), (long long)(us % 1000000));
}
