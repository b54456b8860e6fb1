/*
 * redis_revoke.c - revokes on Redis (broker.h): the zset celeriac.revoked,
 * task id scored by expiry in ms, trimmed on every add with
 * ZREMRANGEBYSCORE (expired) and ZREMRANGEBYRANK (over the bound), and the
 * hash celeriac.revoked.signal holding the signal of the revokes that
 * also terminate. Python Celery never reads these keys: its workers learn
 * revokes from the pidbox broadcast only.
 *
 * The hash is not trimmed by the add (a hash cannot expire its fields):
 * revoke_list() drops the fields whose id is no longer in the zset.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/redis_internal.h"
#include "core/log.h"

/* Score text of a wall-µs time in ms. */
static void ms_text(int64_t us, char *buf, size_t len)
{
    snprintf(buf, len, "%lld", (long long)(us / 1000));
}

static int add_cmds(struct cel_redis_cmds *q, const char *const *ids, size_t n, int64_t expires_us,
                    bool terminate, int signum, size_t keep_max)
{
    char score[32], now[32], sig[16], rank[32];
    ms_text(expires_us, score, sizeof score);
    snprintf(now, sizeof now, "%lld", (long long)(cel__wall_us() / 1000));
    snprintf(sig, sizeof sig, "%d", signum);
    snprintf(rank, sizeof rank, "-%zu", keep_max + 1);
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    int rc = cel__redis_cmds_addv(q, 1, multi);
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        /* GT: a revoke stored again keeps the later expiry. */
        const char *zadd[] = {"ZADD", CEL_REDIS_KEY_REVOKED, "GT", score, ids[i]};
        rc = cel__redis_cmds_addv(q, 5, zadd);
        const char *hset[] = {"HSET", CEL_REDIS_KEY_REVOKED_SIGNAL, ids[i], sig};
        const char *hdel[] = {"HDEL", CEL_REDIS_KEY_REVOKED_SIGNAL, ids[i]};
        if (rc == CEL_OK)
            rc = terminate ? cel__redis_cmds_addv(q, 4, hset) : cel__redis_cmds_addv(q, 3, hdel);
    }
    const char *expire[] = {"ZREMRANGEBYSCORE", CEL_REDIS_KEY_REVOKED, "-inf", now};
    const char *bound[] = {"ZREMRANGEBYRANK", CEL_REDIS_KEY_REVOKED, "0", rank};
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 4, expire);
    if (rc == CEL_OK && keep_max)
        rc = cel__redis_cmds_addv(q, 4, bound);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(q, 1, exec);
    return rc;
}

int cel__redis_revoke_add(struct cel_broker *base, const char *const *ids, size_t n,
                          int64_t expires_us, bool terminate, int signum, size_t keep_max)
{
    struct redis_broker *b = (struct redis_broker *)base;
    struct cel_redis_cmds q = {0};
    int rc = add_cmds(&q, ids, n, expires_us, terminate, signum, keep_max);
    if (rc != CEL_OK)
        rc = cel__err(&base->err, rc, "out of memory");
    else
        rc = cel__redis_broker_run(b, &q, NULL);
    cel__redis_cmds_release(&q);
    return rc;
}

/* The signal stored for `id` in an HGETALL reply, or 0. */
static int signal_of(const redisReply *h, const char *id)
{
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, id) == 0)
            return h->element[i + 1]->type == REDIS_REPLY_STRING ? atoi(h->element[i + 1]->str) : 0;
    return 0;
}

/* Drops the signal fields whose revoke is gone (best effort). */
static void drop_stale_signals(struct redis_broker *b, const redisReply *h,
                               const struct cel_revoke_entry *v, size_t n)
{
    struct cel_redis_cmds q = {0};
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const char *id = h->element[i]->type == REDIS_REPLY_STRING ? h->element[i]->str : NULL;
        bool live = false;
        for (size_t j = 0; id && j < n && !live; j++)
            live = strcmp(v[j].task_id, id) == 0;
        const char *hdel[] = {"HDEL", CEL_REDIS_KEY_REVOKED_SIGNAL, id};
        if (id && !live && cel__redis_cmds_addv(&q, 3, hdel) != CEL_OK)
            break;
    }
    if (q.n && cel__redis_broker_run(b, &q, NULL) != CEL_OK)
        CEL_DEBUG(CEL_REDIS_COMP, "cannot drop stale revoke signals: %s", b->base.err.msg);
    cel__redis_cmds_release(&q);
}

int cel__redis_revoke_list(struct cel_broker *base, struct cel_revoke_entry **out, size_t *n)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *out = NULL;
    *n = 0;
    char from[40];
    snprintf(from, sizeof from, "(%lld", (long long)(cel__wall_us() / 1000));
    const char *zr[] = {"ZRANGEBYSCORE", CEL_REDIS_KEY_REVOKED, from, "+inf", "WITHSCORES"};
    const char *hg[] = {"HGETALL", CEL_REDIS_KEY_REVOKED_SIGNAL};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, 5, zr);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 2, hg);
    if (rc != CEL_OK)
        rc = cel__err(&base->err, rc, "out of memory");
    else
        rc = cel__redis_broker_run(b, &q, &rs);
    const redisReply *z = rc == CEL_OK ? rs[0] : NULL;
    size_t count = z && z->type == REDIS_REPLY_ARRAY ? z->elements / 2 : 0;
    struct cel_revoke_entry *v = count ? calloc(count, sizeof *v) : NULL;
    if (count && !v)
        rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CEL_OK && i < count; i++) {
        const redisReply *id = z->element[2 * i], *score = z->element[2 * i + 1];
        if (id->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING)
            continue;
        struct cel_revoke_entry *e = &v[*n];
        e->task_id = strdup(id->str);
        if (!e->task_id) {
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
            break;
        }
        e->expires_us = (int64_t)(strtod(score->str, NULL) * 1000);
        e->signum = signal_of(rs[1], e->task_id);
        e->terminate = e->signum != 0;
        (*n)++;
    }
    if (rc == CEL_OK && rs[1]->type == REDIS_REPLY_ARRAY && rs[1]->elements > 0)
        drop_stale_signals(b, rs[1], v, *n);
    if (rs)
        cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    if (rc != CEL_OK) {
        cel__revoke_entries_free(v, *n);
        *n = 0;
        return rc;
    }
    if (*n)
        *out = v;
    else
        free(v);
    return CEL_OK;
}
