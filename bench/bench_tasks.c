/*
 * bench_tasks.c - the task module for the shared Celery-on-Redis harness
 * (../shared/bench-celery, see its benchapp.py), built as
 * build/bench/libbench_tasks.so:
 *
 *   bench.noop  returns null; the worker stores the result unless the
 *               message says ignore_result.
 *   bench.incr  INCR bench:done in the broker db; no result (ignore_result
 *               in its definition, like the Python task).
 *
 * bench.incr talks to Redis itself, as the Python task does with
 * redis-py: BENCH_REDIS (default redis://127.0.0.1:6391) and
 * BENCH_BROKER_DB (default 0), one connection per process, opened on
 * first use (a prefork child must not share its parent's socket) and
 * reopened after an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <celeriac/error.h>
#include <celeriac/task.h>

static redisContext *conn;
static pid_t conn_pid;

static void drop_conn(void)
{
    if (conn)
        redisFree(conn);
    conn = NULL;
}

/* host and port from "redis://host:port" (a trailing /db is ignored:
 * the db comes from BENCH_BROKER_DB, as in benchapp.py). */
static int parse_base(const char *url, char *host, size_t hostlen, int *port)
{
    const char *p = strncmp(url, "redis://", 8) == 0 ? url + 8 : url;
    const char *at = strchr(p, '@'); /* no passwords on the bench Redis */
    if (at)
        p = at + 1;
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    *port = 6379;
    if (p[n] == ':')
        *port = atoi(p + n + 1);
    return *port > 0 && *port < 65536 ? 0 : -1;
}

static redisContext *get_conn(cel_task *t)
{
    if (conn && conn_pid != getpid()) /* inherited across fork: not ours */
        drop_conn();
    if (conn)
        return conn;
    const char *url = getenv("BENCH_REDIS");
    const char *db = getenv("BENCH_BROKER_DB");
    char host[256];
    int port;
    if (parse_base(url ? url : "redis://127.0.0.1:6391", host, sizeof host, &port) != 0) {
        cel_task_fail(t, "ValueError", NULL, "BENCH_REDIS is not redis://host:port");
        return NULL;
    }
    struct timeval tv = {5, 0};
    conn = redisConnectWithTimeout(host, port, tv);
    if (!conn || conn->err) {
        cel_task_failf(t, "ConnectionError", "cannot connect to %s:%d: %s", host, port,
                       conn ? conn->errstr : "out of memory");
        drop_conn();
        return NULL;
    }
    redisSetTimeout(conn, tv);
    conn_pid = getpid();
    redisReply *r = redisCommand(conn, "SELECT %d", db ? atoi(db) : 0);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        cel_task_failf(t, "ConnectionError", "SELECT %s: %s", db ? db : "0",
                       r ? r->str : conn->errstr);
        if (r)
            freeReplyObject(r);
        drop_conn();
        return NULL;
    }
    freeReplyObject(r);
    return conn;
}

static int bench_noop(cel_task *t, void *ud)
{
    (void)ud;
    return cel_task_return_null(t);
}

static int bench_incr(cel_task *t, void *ud)
{
    (void)ud;
    /* One retry on a fresh connection: a Redis restart or an idle
     * timeout should cost one reconnect, not a failed task. */
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *c = get_conn(t);
        if (!c)
            return CEL_OK; /* get_conn recorded the failure */
        redisReply *r = redisCommand(c, "INCR bench:done");
        if (r && r->type == REDIS_REPLY_INTEGER) {
            freeReplyObject(r);
            return cel_task_return_null(t);
        }
        if (r && r->type == REDIS_REPLY_ERROR) {
            cel_task_failf(t, "ResponseError", "INCR bench:done: %s", r->str);
            freeReplyObject(r);
            return CEL_OK;
        }
        if (r)
            freeReplyObject(r);
        if (attempt == 1)
            cel_task_failf(t, "ConnectionError", "INCR bench:done: %s", c->errstr);
        drop_conn();
    }
    return CEL_OK;
}

CEL_MODULE_INIT(reg)
{
    static const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "bench.noop", .fn = bench_noop),
        CEL_TASK_DEF_INIT(.name = "bench.incr", .fn = bench_incr, .ignore_result = 1),
    };
    return cel_registry_add_many(reg, defs, sizeof defs / sizeof defs[0]);
}
