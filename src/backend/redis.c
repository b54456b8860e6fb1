/*
 * redis.c - result store in Celery's Redis backend layout
 * (reference/celery-protocol.md, section 6): redis://... and
 * redis+socket://..., usually the same server as the broker.
 *
 *   celery-task-meta-<id>   string, the meta JSON, SETEX result_expires
 *                           (SET when 0); every write is also PUBLISHed on
 *                           the channel of the same name, which is what a
 *                           waiting Python AsyncResult.get() listens to.
 *
 * A store runs one Lua script: read the current meta, keep it when it is
 * SUCCESS or when it is ready and the new state is not (Celery's guard,
 * so duplicate deliveries cannot undo a result), else SETEX + PUBLISH.
 * Between begin() and commit() stores are collected and written by one
 * script call, which reads all current metas with a single MGET.
 *
 * wait() does what Celery's client does: SUBSCRIBE to the task's channel
 * on a connection of its own, then GET (in that order, so a result stored
 * in between is not missed), then waits for a published ready state. It
 * GETs again every 500 ms in case a message was lost (a reconnect, or a
 * writer that does not PUBLISH).
 *
 * Chords join exactly as Celery 5.2's on_chord_part_return (protocol
 * 7.4): celery-taskset-meta-<gid>.s holds the size (SETEX + PUBLISH, as
 * Celery's generic set), each member runs one MULTI/EXEC of ZADD .j /
 * ZCOUNT .j / GET .t / GET .s / EXPIRE x3 (redis-py's pipeline is a
 * transaction, which is what makes one member alone see the full count),
 * and the member that sees ZCOUNT == .s + .t reads ZRANGE .j and, unless
 * a member failed, DELs .j .t .s. The read and the delete are separate
 * round trips: a pipeline resent after a lost connection must not DEL
 * before the ZRANGE it resends.
 */
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "store/redis_conn.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"

#define COMP          "backend.redis"
#define KEY_PREFIX    "celery-task-meta-"
#define OP_BUDGET_MS  5000
#define POLL_GET_MS   500
#define BATCH_MAX     500                  /* stores per script call */
#define META_MAX      (512u * 1024 * 1024) /* Redis' string limit, as Celery checks */
#define SUB_BUDGET_MS 2000
#define TASKSET       "celery-taskset-meta-"

/* KEYS: meta keys; ARGV: ttl, status, meta for each key. Returns 1 (stored)
 * or 0 (kept the existing ready state) per key. */
static const char lua_store[] =
    "local ready = {SUCCESS = true, FAILURE = true, REVOKED = true}\n"
    "local cur = redis.call('MGET', unpack(KEYS))\n"
    "local seen, out = {}, {}\n"
    "for i, key in ipairs(KEYS) do\n"
    "  local ttl, st, meta = tonumber(ARGV[3 * i - 2]), ARGV[3 * i - 1], ARGV[3 * i]\n"
    "  local old = seen[key]\n"
    "  if not old and cur[i] then old = string.match(cur[i], '\"status\"%s*:%s*\"([^\"]*)\"') end\n"
    "  if old == 'SUCCESS' or (old and ready[old] and not ready[st]) then\n"
    "    out[i] = 0\n"
    "  else\n"
    "    if ttl > 0 then redis.call('SETEX', key, ttl, meta) else redis.call('SET', key, meta) "
    "end\n"
    "    redis.call('PUBLISH', key, meta)\n"
    "    seen[key] = st\n"
    "    out[i] = 1\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char *const scripts[] = {lua_store, NULL};

struct pending_store {
    char *key;
    char *status;
    char *meta;
    size_t len;
    int64_t ttl_s;
};

struct redis_backend {
    struct cel_backend base;
    struct cel_redis_target target;
    struct cel_redis main;
    char shas[1][CEL_REDIS_SHA_LEN + 1];
    struct cel_redis sub; /* pub/sub, for wait() only; connected on first use */
    bool batching;
    struct pending_store *batch;
    size_t nbatch, batch_cap;
};

static int oom(struct redis_backend *bk)
{
    return cel__err(&bk->base.err, CEL_ENOMEM, "out of memory");
}

static char *meta_key(const char *task_id)
{
    size_t n = strlen(KEY_PREFIX) + strlen(task_id) + 1;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, KEY_PREFIX "%s", task_id);
    return k;
}

static int rk_open(const struct cel_url *url, const cel_config *cfg, struct cel_backend **out,
                   struct cel_errbuf *err)
{
    (void)cfg;
    *out = NULL;
    struct redis_backend *bk = calloc(1, sizeof *bk);
    if (!bk)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    bk->base.ops = &cel__backend_redis;
    int rc = cel__redis_target_init(&bk->target, url, err);
    if (rc == CEL_OK) {
        cel__redis_init(&bk->main, &bk->target, COMP, scripts, bk->shas);
        cel__redis_init(&bk->sub, &bk->target, COMP, NULL, NULL);
        rc = cel__redis_connect(&bk->main, err);
    }
    if (rc != CEL_OK) {
        cel__redis_target_release(&bk->target);
        free(bk);
        return rc;
    }
    *out = &bk->base;
    return CEL_OK;
}

static void batch_clear(struct redis_backend *bk)
{
    for (size_t i = 0; i < bk->nbatch; i++) {
        free(bk->batch[i].key);
        free(bk->batch[i].status);
        free(bk->batch[i].meta);
    }
    bk->nbatch = 0;
}

static void rk_close(struct cel_backend *base)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    if (!bk)
        return;
    batch_clear(bk);
    free(bk->batch);
    cel__redis_close(&bk->main);
    cel__redis_close(&bk->sub);
    cel__redis_target_release(&bk->target);
    free(bk);
}

/* Celery's state names; CUSTOM states are read from the meta itself. */
static char *status_of(cel_state state, const char *meta, size_t len)
{
    const char *name = cel__state_std_name(state);
    if (name)
        return strdup(name);
    json_t *root = cel__json_parse(meta, len, 0, NULL, 0);
    const char *s = cel__json_cstr(json_object_get(root, "status"));
    char *out = s && *s ? strdup(s) : NULL;
    json_decref(root);
    return out;
}

/* Writes stores [0, n) with one script call per BATCH_MAX, pipelined. */
static int write_stores(struct redis_backend *bk, const struct pending_store *ps, size_t n)
{
    struct cel_redis_cmds q = {0};
    size_t cap = 3 + 4 * (n < BATCH_MAX ? n : BATCH_MAX);
    const char **argv = malloc(cap * sizeof *argv);
    size_t *lens = malloc(cap * sizeof *lens);
    char(*ttls)[24] = malloc((n ? n : 1) * sizeof *ttls);
    int rc = argv && lens && ttls ? CEL_OK : CEL_ENOMEM;
    for (size_t start = 0; rc == CEL_OK && start < n; start += BATCH_MAX) {
        size_t m = n - start < BATCH_MAX ? n - start : BATCH_MAX;
        char nk[16];
        snprintf(nk, sizeof nk, "%zu", m);
        int argc = 0;
        argv[argc++] = "EVALSHA";
        argv[argc++] = bk->shas[0];
        argv[argc++] = nk;
        for (size_t i = 0; i < m; i++)
            argv[argc++] = ps[start + i].key;
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        for (size_t i = 0; i < m; i++) {
            const struct pending_store *p = &ps[start + i];
            snprintf(ttls[start + i], sizeof ttls[0], "%lld", (long long)p->ttl_s);
            argv[argc] = ttls[start + i], lens[argc] = strlen(argv[argc]), argc++;
            argv[argc] = p->status, lens[argc] = strlen(argv[argc]), argc++;
            argv[argc] = p->meta, lens[argc] = p->len, argc++;
        }
        rc = cel__redis_cmds_add(&q, argc, argv, lens);
    }
    if (rc != CEL_OK) {
        rc = oom(bk);
    } else {
        redisReply **rs = NULL;
        rc = cel__redis_exec(&bk->main, &q, &rs, OP_BUDGET_MS, &bk->base.err);
        const redisReply *e = rc == CEL_OK ? cel__redis_first_error(rs, q.n) : NULL;
        if (e)
            rc = cel__err(&bk->base.err, CEL_EBACKEND, "redis %s: %s", bk->target.display, e->str);
        for (size_t i = 0; rc == CEL_OK && i < q.n; i++)
            for (size_t k = 0; rs[i]->type == REDIS_REPLY_ARRAY && k < rs[i]->elements; k++)
                if (rs[i]->element[k]->integer == 0)
                    CEL_DEBUG(COMP, "kept the ready state of %s", ps[i * BATCH_MAX + k].key);
        cel__redis_replies_free(rs, q.n);
    }
    free(argv);
    free(lens);
    free(ttls);
    cel__redis_cmds_release(&q);
    return rc;
}

static int rk_store(struct cel_backend *base, const char *task_id, cel_state state,
                    const char *meta_json, size_t len, int64_t ttl_s)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    if (len > META_MAX)
        return cel__err(&base->err, CEL_ETOOBIG, "result of task %s is larger than 512 MiB",
                        task_id);
    struct pending_store p = {0};
    p.key = meta_key(task_id);
    p.status = status_of(state, meta_json, len);
    p.meta = malloc(len + 1);
    p.len = len;
    p.ttl_s = ttl_s > 0 ? ttl_s : 0;
    if (!p.key || !p.meta || !p.status) {
        bool no_status = p.key && p.meta && !p.status;
        free(p.key), free(p.status), free(p.meta);
        return no_status
                   ? cel__err(&base->err, CEL_EINVAL, "result of task %s has no status", task_id)
                   : oom(bk);
    }
    memcpy(p.meta, meta_json, len);
    p.meta[len] = '\0';
    if (bk->batching) {
        if (bk->nbatch == bk->batch_cap) {
            size_t cap = bk->batch_cap ? bk->batch_cap * 2 : 64;
            struct pending_store *v = realloc(bk->batch, cap * sizeof *v);
            if (!v) {
                free(p.key), free(p.status), free(p.meta);
                return oom(bk);
            }
            bk->batch = v;
            bk->batch_cap = cap;
        }
        bk->batch[bk->nbatch++] = p;
        return CEL_OK;
    }
    int rc = write_stores(bk, &p, 1);
    free(p.key), free(p.status), free(p.meta);
    return rc;
}

static int rk_begin(struct cel_backend *base)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    if (bk->batching)
        return cel__err(&base->err, CEL_ESTATE, "a batch is already open");
    bk->batching = true;
    return CEL_OK;
}

static int rk_commit(struct cel_backend *base)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    if (!bk->batching)
        return cel__err(&base->err, CEL_ESTATE, "no batch is open");
    bk->batching = false;
    int rc = bk->nbatch ? write_stores(bk, bk->batch, bk->nbatch) : CEL_OK;
    batch_clear(bk);
    return rc;
}

/* One command on the main connection, reply kept. */
static int command(struct redis_backend *bk, int argc, const char *const *argv, redisReply **out)
{
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, argc, argv) == CEL_OK ? CEL_OK : oom(bk);
    if (rc == CEL_OK)
        rc = cel__redis_exec(&bk->main, &q, &rs, OP_BUDGET_MS, &bk->base.err);
    if (rc == CEL_OK && rs[0]->type == REDIS_REPLY_ERROR)
        rc = cel__err(&bk->base.err, CEL_EBACKEND, "redis %s: %s", bk->target.display, rs[0]->str);
    if (rc == CEL_OK)
        *out = rs[0], rs[0] = NULL;
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

/* ---- chords ---- */

/* celery-taskset-meta-<gid><suffix>; NULL: no memory. */
static char *taskset_key(const char *gid, const char *suffix)
{
    size_t n = strlen(TASKSET) + strlen(gid) + strlen(suffix) + 1;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, TASKSET "%s%s", gid, suffix);
    return k;
}

/* SET (SETEX when ttl_s > 0) and PUBLISH `key`, as Celery's RedisBackend.set()
 * does for every key it writes. */
static int set_and_publish(struct redis_backend *bk, const char *key, const char *value, size_t len,
                           int64_t ttl_s)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_s);
    const char *setex[] = {"SETEX", key, ttl, value}, *set[] = {"SET", key, value};
    const char *pub[] = {"PUBLISH", key, value};
    const size_t setex_lens[] = {5, strlen(key), strlen(ttl), len};
    const size_t set_lens[] = {3, strlen(key), len}, pub_lens[] = {7, strlen(key), len};
    struct cel_redis_cmds q = {0};
    int rc = (ttl_s > 0 ? cel__redis_cmds_add(&q, 4, setex, setex_lens)
                        : cel__redis_cmds_add(&q, 3, set, set_lens)) == CEL_OK &&
                     cel__redis_cmds_add(&q, 3, pub, pub_lens) == CEL_OK
                 ? CEL_OK
                 : oom(bk);
    redisReply **rs = NULL;
    if (rc == CEL_OK)
        rc = cel__redis_exec(&bk->main, &q, &rs, OP_BUDGET_MS, &bk->base.err);
    const redisReply *e = rc == CEL_OK ? cel__redis_first_error(rs, q.n) : NULL;
    if (e)
        rc = cel__err(&bk->base.err, CEL_EBACKEND, "redis %s: %s", bk->target.display, e->str);
    if (rs)
        cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

static int rk_chord_size(struct cel_backend *base, const char *gid, int size, int64_t ttl_s)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    char *key = taskset_key(gid, ".s");
    if (!key)
        return oom(bk);
    char num[16];
    snprintf(num, sizeof num, "%d", size);
    int rc = set_and_publish(bk, key, num, strlen(num), ttl_s);
    free(key);
    return rc;
}

/* An integer from a GET reply (nil: 0); -1 when it is not one. */
static long long reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_STRING)
        return -1;
    char *end;
    long long v = strtoll(r->str, &end, 10);
    return end == r->str || *end ? -1 : v;
}

/* ZRANGE .j 0 -1 as one JSON array. */
static int chord_entries(struct redis_backend *bk, const char *jkey, char **out)
{
    const char *argv[] = {"ZRANGE", jkey, "0", "-1"};
    redisReply *r = NULL;
    int rc = command(bk, 4, argv, &r);
    if (rc != CEL_OK)
        return rc;
    struct cel_buf b = {0};
    rc = cel__buf_append(&b, "[", 1);
    for (size_t i = 0; rc == CEL_OK && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        if (i)
            rc = cel__buf_append(&b, ",", 1);
        if (rc == CEL_OK)
            rc = cel__buf_append(&b, r->element[i]->str, r->element[i]->len);
    }
    if (rc == CEL_OK)
        rc = cel__buf_append(&b, "]", 1);
    freeReplyObject(r);
    *out = rc == CEL_OK ? cel__buf_take(&b, NULL) : NULL;
    cel__buf_release(&b);
    return *out ? CEL_OK : oom(bk);
}

static int rk_chord_join(struct cel_backend *base, const char *gid, int index, const char *entry,
                         size_t len, int64_t ttl_s, bool *complete, char **entries_json)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    *complete = false;
    *entries_json = NULL;
    char *j = taskset_key(gid, ".j"), *t = taskset_key(gid, ".t"), *sk = taskset_key(gid, ".s");
    char score[16], ttl[24];
    snprintf(score, sizeof score, index < 0 ? "+inf" : "%d", index);
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_s);
    struct cel_redis_cmds q = {0};
    int rc = j && t && sk ? CEL_OK : CEL_ENOMEM;
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *zadd[] = {"ZADD", j, score, entry};
    const size_t zlens[] = {4, strlen(j ? j : ""), strlen(score), len};
    const char *zcount[] = {"ZCOUNT", j, "-inf", "+inf"};
    const char *gett[] = {"GET", t}, *gets[] = {"GET", sk};
    const char *exp[3][3] = {{"EXPIRE", j, ttl}, {"EXPIRE", t, ttl}, {"EXPIRE", sk, ttl}};
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 1, multi);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_add(&q, 4, zadd, zlens);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 4, zcount);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 2, gett);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 2, gets);
    for (int i = 0; rc == CEL_OK && ttl_s > 0 && i < 3; i++)
        rc = cel__redis_cmds_addv(&q, 3, exp[i]);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 1, exec);
    redisReply **rs = NULL;
    if (rc != CEL_OK)
        rc = oom(bk);
    else
        rc = cel__redis_exec(&bk->main, &q, &rs, OP_BUDGET_MS, &bk->base.err);
    const redisReply *x = rc == CEL_OK ? rs[q.n - 1] : NULL;
    const redisReply *e = rc == CEL_OK ? cel__redis_first_error(rs, q.n) : NULL;
    if (e)
        rc = cel__err(&base->err, CEL_EBACKEND, "redis %s: %s", bk->target.display, e->str);
    else if (rc == CEL_OK && (x->type != REDIS_REPLY_ARRAY || x->elements < 4 ||
                              x->element[1]->type != REDIS_REPLY_INTEGER))
        rc = cel__err(&base->err, CEL_EBACKEND, "redis %s: the chord join was not run",
                      bk->target.display);
    if (rc == CEL_OK && x->element[3]->type != REDIS_REPLY_NIL) {
        /* Celery: total = int(.s) + int(.t or 0); complete when equal. */
        long long size = reply_int(x->element[3]), extra = reply_int(x->element[2]);
        if (size < 0 || extra < 0)
            rc = cel__err(&base->err, CEL_EBACKEND, "redis %s: %s or %s is not a number",
                          bk->target.display, sk, t);
        else if (x->element[1]->integer == size + extra)
            *complete = true;
    }
    if (rs)
        cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    if (rc == CEL_OK && *complete)
        rc = chord_entries(bk, j, entries_json);
    if (rc == CEL_OK && *complete &&
        cel__chord_failed_entry(*entries_json, strlen(*entries_json)) == -1) {
        const char *del[] = {"DEL", j, t, sk};
        redisReply *r = NULL;
        rc = command(bk, 4, del, &r);
        if (r)
            freeReplyObject(r);
    }
    if (rc != CEL_OK) {
        *complete = false;
        free(*entries_json);
        *entries_json = NULL;
    }
    free(j), free(t), free(sk);
    return rc;
}

/* GET `key` into a caller-owned string; CEL_ENOTFOUND when absent. */
static int get_key(struct redis_backend *bk, const char *key, char **out)
{
    *out = NULL;
    const char *argv[] = {"GET", key};
    redisReply *r = NULL;
    int rc = command(bk, 2, argv, &r);
    if (rc != CEL_OK)
        return rc;
    if (r->type == REDIS_REPLY_STRING) {
        *out = malloc(r->len + 1);
        if (*out) {
            memcpy(*out, r->str, r->len);
            (*out)[r->len] = '\0';
        } else {
            rc = oom(bk);
        }
    } else {
        rc = CEL_ENOTFOUND;
    }
    freeReplyObject(r);
    return rc;
}

static int del_key(struct redis_backend *bk, const char *key)
{
    const char *argv[] = {"DEL", key};
    redisReply *r = NULL;
    int rc = command(bk, 2, argv, &r);
    if (r)
        freeReplyObject(r);
    return rc;
}

static int rk_get(struct cel_backend *base, const char *task_id, char **meta_json)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    *meta_json = NULL;
    char *key = meta_key(task_id);
    if (!key)
        return oom(bk);
    int rc = get_key(bk, key, meta_json);
    free(key);
    return rc;
}

static int rk_forget(struct cel_backend *base, const char *task_id)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    char *key = meta_key(task_id);
    if (!key)
        return oom(bk);
    int rc = del_key(bk, key);
    free(key);
    return rc;
}

/* ---- group results: celery-taskset-meta-<gid>, as GroupResult.save() ---- */

static int rk_group_save(struct cel_backend *base, const char *gid, const char *meta_json,
                         size_t len, int64_t ttl_s)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    char *key = taskset_key(gid, "");
    if (!key)
        return oom(bk);
    int rc = set_and_publish(bk, key, meta_json, len, ttl_s);
    free(key);
    return rc;
}

static int rk_group_get(struct cel_backend *base, const char *gid, char **meta_json)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    *meta_json = NULL;
    char *key = taskset_key(gid, "");
    if (!key)
        return oom(bk);
    int rc = get_key(bk, key, meta_json);
    free(key);
    return rc;
}

static int rk_group_forget(struct cel_backend *base, const char *gid)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    char *key = taskset_key(gid, "");
    if (!key)
        return oom(bk);
    int rc = del_key(bk, key);
    free(key);
    return rc;
}

/* ---- waiting ------------------------------------------------------------ */

/* Next pub/sub reply within timeout_ms: 1 with *out, 0 on timeout, <0 on
 * a lost connection (dropped). */
static int sub_read(struct redis_backend *bk, int timeout_ms, redisReply **out)
{
    redisContext *c = bk->sub.ctx;
    *out = NULL;
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
            break;
        if (rep) {
            *out = rep;
            return 1;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, timeout_ms);
        if (n == 0)
            return 0;
        if (n < 0)
            continue; /* EINTR: the caller's deadline still holds */
        if (redisBufferRead(c) != REDIS_OK)
            break;
        timeout_ms = 100; /* a partial reply: the rest follows at once */
    }
    cel__redis_lost(&bk->sub, c->errstr[0] ? c->errstr : "connection closed");
    return CEL_EDISCONNECTED;
}

static bool is_pubsub(const redisReply *r, const char *kind)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, kind) == 0;
}

/* SUBSCRIBE and wait for its confirmation, reading past what the previous
 * wait left on the connection (its UNSUBSCRIBE confirmation, a message
 * published just before it). */
static int subscribe(struct redis_backend *bk, const char *channel)
{
    if (cel__redis_ensure(&bk->sub, cel__mono_ms() + SUB_BUDGET_MS, &bk->base.err) != CEL_OK)
        return CEL_ECONNECT;
    const char *argv[] = {"SUBSCRIBE", channel};
    if (redisAppendCommandArgv(bk->sub.ctx, 2, argv, NULL) != REDIS_OK) {
        cel__redis_lost(&bk->sub, bk->sub.ctx->errstr);
        return CEL_EDISCONNECTED;
    }
    int done = 0;
    while (!done)
        if (redisBufferWrite(bk->sub.ctx, &done) != REDIS_OK) {
            cel__redis_lost(&bk->sub, bk->sub.ctx->errstr);
            return CEL_EDISCONNECTED;
        }
    int64_t deadline = cel__mono_ms() + CEL_REDIS_COMMAND_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - cel__mono_ms();
        redisReply *r = NULL;
        int n = left > 0 ? sub_read(bk, (int)left, &r) : 0;
        if (n < 0)
            return n;
        if (n == 0) {
            cel__redis_lost(&bk->sub, "no reply to SUBSCRIBE");
            return CEL_ETIMEDOUT;
        }
        bool ok = is_pubsub(r, "subscribe") && r->element[1]->type == REDIS_REPLY_STRING &&
                  strcmp(r->element[1]->str, channel) == 0;
        freeReplyObject(r);
        if (ok)
            return CEL_OK;
    }
}

/* UNSUBSCRIBE without waiting for its confirmation: the next subscribe()
 * reads past it (and past any message still in flight for this channel),
 * so a finished wait returns one round trip sooner. On trouble the
 * connection is dropped instead. */
static void unsubscribe(struct redis_backend *bk, const char *channel)
{
    if (!bk->sub.ctx)
        return;
    const char *argv[] = {"UNSUBSCRIBE", channel};
    int done = 0;
    if (redisAppendCommandArgv(bk->sub.ctx, 2, argv, NULL) != REDIS_OK) {
        cel__redis_close(&bk->sub);
        return;
    }
    while (!done)
        if (redisBufferWrite(bk->sub.ctx, &done) != REDIS_OK) {
            cel__redis_close(&bk->sub);
            return;
        }
}

static int rk_wait(struct cel_backend *base, const char *task_id, int64_t timeout_ms,
                   char **meta_json)
{
    struct redis_backend *bk = (struct redis_backend *)base;
    *meta_json = NULL;
    int64_t deadline = timeout_ms >= 0 ? cel__mono_ms() + timeout_ms : -1;
    char *key = meta_key(task_id);
    if (!key)
        return oom(bk);
    struct cel_redis_sigpipe guard;
    cel__redis_sigpipe_block(&guard);
    struct cel_errbuf keep = bk->base.err;
    bool subscribed = subscribe(bk, key) == CEL_OK;
    if (!subscribed) {
        CEL_DEBUG(COMP, "waiting for %s by polling: %s", task_id, bk->base.err.msg);
        bk->base.err = keep;
    }
    int rc;
    for (;;) {
        char *meta = NULL;
        rc = rk_get(base, task_id, &meta);
        if (rc != CEL_OK && rc != CEL_ENOTFOUND)
            break;
        if (meta) {
            free(*meta_json);
            *meta_json = meta;
            if (cel__meta_is_ready(meta, strlen(meta))) {
                rc = CEL_OK;
                break;
            }
        }
        int64_t next_get = cel__mono_ms() + POLL_GET_MS;
        bool ready = false;
        for (;;) {
            int64_t now = cel__mono_ms();
            int64_t until = deadline >= 0 && deadline < next_get ? deadline : next_get;
            if (now >= until)
                break;
            if (!subscribed || !bk->sub.ctx) {
                struct pollfd none = {.fd = -1};
                poll(&none, 0, (int)(until - now));
                continue;
            }
            redisReply *r = NULL;
            int n = sub_read(bk, (int)(until - now), &r);
            if (n < 0) {
                /* Lost: poll with GET until it is back; resubscribe later. */
                subscribed = false;
                continue;
            }
            if (n == 0)
                continue;
            if (is_pubsub(r, "message") && r->element[1]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[1]->str, key) == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
                char *m = malloc(r->element[2]->len + 1);
                if (m) {
                    memcpy(m, r->element[2]->str, r->element[2]->len);
                    m[r->element[2]->len] = '\0';
                    free(*meta_json);
                    *meta_json = m;
                    ready = cel__meta_is_ready(m, r->element[2]->len);
                }
            }
            freeReplyObject(r);
            if (ready)
                break;
        }
        if (ready) {
            rc = CEL_OK;
            break;
        }
        if (deadline >= 0 && cel__mono_ms() >= deadline) {
            rc = cel__err(&base->err, CEL_ETIMEDOUT, "timed out waiting for task %s", task_id);
            break;
        }
        if (!subscribed && bk->sub.retry_at_ms <= cel__mono_ms()) {
            keep = bk->base.err;
            subscribed = subscribe(bk, key) == CEL_OK;
            bk->base.err = keep;
        }
    }
    if (subscribed)
        unsubscribe(bk, key);
    cel__redis_sigpipe_restore(&guard);
    free(key);
    if (rc != CEL_OK && rc != CEL_ETIMEDOUT) {
        free(*meta_json);
        *meta_json = NULL;
    }
    return rc;
}

/* Serves redis+socket too (an alias in registry.c). */
const struct cel_backend_ops cel__backend_redis = {
    .abi = CEL_BACKEND_ABI,
    .scheme = "redis",
    .caps = CEL_BACKEND_CAP_TRANSACTIONS,
    .open = rk_open,
    .close = rk_close,
    .store = rk_store,
    .get = rk_get,
    .forget = rk_forget,
    .begin = rk_begin,
    .commit = rk_commit,
    .wakeup_fd = NULL,
    .drain_wakeup = NULL,
    .wait = rk_wait,
    .chord_size = rk_chord_size,
    .chord_join = rk_chord_join,
    .group_save = rk_group_save,
    .group_get = rk_group_get,
    .group_forget = rk_group_forget,
};
