/*
 * redis.c - the Redis transport: redis://[[user]:password@]host[:port][/db]
 * and redis+socket:///path.sock?db=N, in kombu 5.2's keyspace so Python
 * Celery clients and workers share queues with us
 * (reference/celery-protocol.md, sections 1-5 and 10).
 *
 *   queue Q          lists Q, Q\x06\x163, Q\x06\x166, Q\x06\x169 (priority
 *                    0-2, 3-5, 6-8, 9; producers LPUSH, consumers pop from
 *                    the right, lower band first: on Redis 0 is served first)
 *   _kombu.binding.Q set with "Q\x06\x16\x06\x16Q", added by every producer
 *                    and consumer of Q
 *   unacked          hash delivery_tag -> [envelope, exchange, routing_key]
 *   unacked_index    zset delivery_tag scored by delivery time (float s);
 *                    extend() re-scores it, the visibility sweep restores
 *                    entries older than the visibility timeout
 *   unacked_mutex    lock for the sweep (SET NX PX 300000, token checked
 *                    on release), shared with Python workers
 *
 * and two keys of our own, which Python never touches:
 *
 *   celeriac.delayed       zset of messages published with a due time
 *                          (ETA, countdown, retry), scored by due time in
 *                          ms; member {"k": list key, "q": queue,
 *                          "p": priority, "m": envelope text}. Consumers
 *                          move due members to their list with a Lua
 *                          script at least every second. Delayed tasks
 *                          therefore never sit in a worker's memory or in
 *                          `unacked`, where kombu's sweep would duplicate
 *                          them (kombu #337).
 *   celeriac.dead_letters  list of rejected messages (kombu has no dead
 *                          letter queue): {"queue", "reason", "dead_at",
 *                          "message": envelope text}, newest first.
 *
 * Consuming runs on an I/O thread with its own connection: BRPOP on every
 * queue x band key (band first, queues rotated round-robin like kombu),
 * then one Lua script records the popped message in unacked/unacked_index
 * and pops up to the rest of the consumer's prefetch window with RPOP,
 * recording those too. Messages wait on a ready list until fetch() takes
 * them; an eventfd tells the worker's poll loop. The thread never holds
 * more than the window the consumer had free at its last fetch(). Every
 * 10 s it also runs kombu's visibility sweep (kombu itself does so about
 * every 100 s) and it reconnects by itself after a lost connection.
 *
 * Restores (reject with requeue, the sweep, close) RPUSH the envelope with
 * "redelivered": true in headers and delivery_info, to the front of its
 * queue, into the band of its priority (kombu >= 5.4; 5.2 used band 0).
 * Delivery count is not stored on Redis: a redelivered message reports 2.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/broker.h"
#include "store/redis_conn.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/uuid.h"

#define COMP "broker.redis"

#define KEY_UNACKED       "unacked"
#define KEY_UNACKED_INDEX "unacked_index"
#define KEY_UNACKED_MUTEX "unacked_mutex"
#define KEY_DELAYED       "celeriac.delayed"
#define KEY_DEAD          "celeriac.dead_letters"
#define SEP               "\x06\x16"

#define OP_BUDGET_MS      5000  /* reconnect budget of one client-side operation */
#define BRPOP_TIMEOUT_MS  1000  /* kombu's, and our maintenance cadence */
#define SWEEP_INTERVAL_MS 10000 /* visibility sweep (kombu: ~100 s) */
#define SWEEP_LIMIT       1000  /* restores per sweep */
#define POP_MAX           1000  /* messages per Lua pop */
#define MOVE_LIMIT        1000  /* delayed messages moved per script run */
#define NBANDS            4

static const int band_steps[NBANDS] = {0, 3, 6, 9};

/* ---- Lua --------------------------------------------------------------- */

enum { SCRIPT_POP, SCRIPT_MOVE, SCRIPT_RESTORE, SCRIPT_UNLOCK, NSCRIPTS };

/*
 * POP: records a message the consumer already popped with BRPOP (ARGV[3],
 * from queue ARGV[4]; "" when none) and pops up to ARGV[2] more from
 * KEYS[3..] in order, recording each exactly like kombu: unacked_index
 * scored ARGV[1], unacked = [envelope, exchange, routing_key]. ARGV[4+i]
 * is the queue of KEYS[2+i]. Returns {queue, tag, redelivered, envelope}
 * per message. Envelopes that do not decode are still recorded (tag =
 * sha1 of the text) so the worker sees and dead-letters them.
 */
static const char lua_pop[] =
    "local now = ARGV[1]\n"
    "local want = tonumber(ARGV[2])\n"
    "local out, z, h = {}, {}, {}\n"
    "local function fields(msg, q)\n"
    "  local ok, env = pcall(cjson.decode, msg)\n"
    "  local tag, ex, rk, redel = nil, '', q, 0\n"
    "  if ok and type(env) == 'table' then\n"
    "    local p = env['properties']\n"
    "    if type(p) == 'table' then\n"
    "      local t = p['delivery_tag']\n"
    "      if type(t) == 'string' or type(t) == 'number' then tag = tostring(t) end\n"
    "      local di = p['delivery_info']\n"
    "      if type(di) == 'table' then\n"
    "        if type(di['exchange']) == 'string' then ex = di['exchange'] end\n"
    "        if type(di['routing_key']) == 'string' then rk = di['routing_key'] end\n"
    "        if di['redelivered'] == true then redel = 1 end\n"
    "      end\n"
    "    end\n"
    "    local hd = env['headers']\n"
    "    if type(hd) == 'table' and hd['redelivered'] == true then redel = 1 end\n"
    "  end\n"
    "  return tag, ex, rk, redel\n"
    "end\n"
    /* Decoding 1 KB of JSON per message is most of the script's cost, and
     * Lua patterns are not much cheaper, so the common shapes (what kombu
     * and we write: these keys once, plain values) are read with plain
     * finds and anything unusual is decoded. */
    "local function plain(msg, key, init)\n"
    "  local _, e = string.find(msg, key, init, true)\n"
    "  if not e then return nil, nil end\n"
    "  local q = string.find(msg, '\"', e + 1, true)\n"
    "  if not q then return nil, nil end\n"
    "  local v = string.sub(msg, e + 1, q - 1)\n"
    "  if string.find(v, '\\\\', 1, true) then return nil, nil end\n"
    "  return v, q\n"
    "end\n"
    /* Exchange and routing key repeat across a batch: encode each once. */
    "local enc = {}\n"
    "local function jstr(v)\n"
    "  local e = enc[v]\n"
    "  if not e then e = cjson.encode(v); enc[v] = e end\n"
    "  return e\n"
    "end\n"
    "local function record(q, msg)\n"
    "  local tag = plain(msg, '\"delivery_tag\": \"', 1)\n"
    "  local ex, at = plain(msg, '\"delivery_info\": {\"exchange\": \"', 1)\n"
    "  local rk = at and string.sub(msg, at + 1, at + 18) == ', \"routing_key\": \"' and\n"
    "             plain(msg, ', \"routing_key\": \"', at + 1)\n"
    "  local redel = 0\n"
    "  if string.find(msg, '\"redelivered\": true', 1, true) then redel = 1 end\n"
    "  if not tag or not ex or not rk then tag, ex, rk, redel = fields(msg, q) end\n"
    "  if not tag then tag = redis.sha1hex(msg) end\n"
    "  z[#z + 1] = now; z[#z + 1] = tag\n"
    "  h[#h + 1] = tag\n"
    "  h[#h + 1] = '[' .. msg .. ', ' .. jstr(ex) .. ', ' .. jstr(rk) .. ']'\n"
    "  out[#out + 1] = q; out[#out + 1] = tag; out[#out + 1] = redel; out[#out + 1] = msg\n"
    "end\n"
    "if ARGV[3] ~= '' then record(ARGV[4], ARGV[3]) end\n"
    "local i = 3\n"
    "while want > 0 and i <= #KEYS do\n"
    "  local got = redis.call('RPOP', KEYS[i], want)\n"
    "  if got then\n"
    "    for _, m in ipairs(got) do record(ARGV[2 + i], m) end\n"
    "    want = want - #got\n"
    "  end\n"
    "  i = i + 1\n"
    "end\n"
    "if #z > 0 then\n"
    "  redis.call('ZADD', KEYS[2], unpack(z))\n"
    "  redis.call('HSET', KEYS[1], unpack(h))\n"
    "end\n"
    "return out\n";

/* MOVE: pushes delayed messages due at ARGV[1] (ms) to their lists.
 * Returns {moved, next due score or false}. */
static const char lua_move[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "for _, m in ipairs(due) do\n"
    "  local ok, d = pcall(cjson.decode, m)\n"
    "  if ok and type(d) == 'table' and type(d['k']) == 'string' and type(d['m']) == 'string' "
    "then\n"
    "    redis.call('LPUSH', d['k'], d['m'])\n"
    "  else\n"
    "    redis.call('LPUSH', KEYS[2], m)\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return {#due, nxt[2] or false}\n";

/* RESTORE: kombu's WATCH/HGET/MULTI restore as one atomic step. Gives
 * tag ARGV[1] back as ARGV[2] at the front of KEYS[3], unless someone
 * acked or restored it meanwhile, or (sweep) its score moved above
 * ARGV[3] because its owner extended it. */
static const char lua_restore[] = "local s = redis.call('ZSCORE', KEYS[2], ARGV[1])\n"
                                  "if s and tonumber(s) > tonumber(ARGV[3]) then return 0 end\n"
                                  "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                                  "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
                                  "  redis.call('RPUSH', KEYS[3], ARGV[2])\n"
                                  "  return 1\n"
                                  "end\n"
                                  "return 0\n";

/* UNLOCK: kombu's Mutex release (compare-and-delete). */
static const char lua_unlock[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                 "  return redis.call('DEL', KEYS[1])\n"
                                 "end\n"
                                 "return 0\n";

static const char *const scripts[NSCRIPTS + 1] = {lua_pop, lua_move, lua_restore, lua_unlock, NULL};

/* ---- handle ------------------------------------------------------------ */

struct ready_list {
    struct cel_delivery *v; /* v[head .. head + n) */
    size_t head, n, cap;
};

struct redis_broker {
    struct cel_broker base;
    struct cel_redis_target target;
    int64_t default_vt_ms;

    /* Caller's thread. */
    struct cel_redis main;
    char main_shas[NSCRIPTS][CEL_REDIS_SHA_LEN + 1];
    struct cel_redis_cmds batch; /* between begin() and commit() */
    bool batching;
    char **acks; /* tags acked inside the batch */
    size_t nacks, acks_cap;
    char **bound; /* queues whose binding this connection added */
    size_t nbound;
    unsigned bound_gen;

    /* Consumer: shared between the caller and the I/O thread under mu. */
    pthread_mutex_t mu;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    char **queues;
    size_t nqueues;
    size_t room;      /* free prefetch slots at the last fetch() */
    int64_t lease_ms; /* visibility timeout the consumer asked for */
    struct ready_list ready;
    char *orphan, *orphan_queue; /* popped, not recorded, left by the thread */
    int64_t tag_seq;
    int efd;  /* wakeup_fd(): messages on the ready list */
    int kick; /* wakes the I/O thread: room freed, or stop */

    /* I/O thread only. */
    struct cel_redis io;
    char io_shas[NSCRIPTS][CEL_REDIS_SHA_LEN + 1];
};

/*
 * unacked_index score for "now": whole seconds. kombu writes float
 * seconds and compares them with now - visibility_timeout only, so one
 * second of truncation is harmless; integer scores keep Redis from
 * parsing every score of the (small, listpack-encoded) zset with strtod
 * on each insert, which made ZADD the costliest command per message.
 */
static void index_score(char *buf, size_t len)
{
    snprintf(buf, len, "%lld", (long long)(cel__wall_us() / 1000000));
}

static int band_of(int priority)
{
    int p = priority < 0 ? 0 : priority > 9 ? 9 : priority;
    return p >= 9 ? 9 : p >= 6 ? 6 : p >= 3 ? 3 : 0;
}

/* Key of band `step` of `queue` into buf; NULL when it does not fit. */
static const char *band_key(const char *queue, int step, char *buf, size_t len)
{
    int n = step ? snprintf(buf, len, "%s" SEP "%d", queue, step) : snprintf(buf, len, "%s", queue);
    return n >= 0 && (size_t)n < len ? buf : NULL;
}

#define KEY_MAX 1024

static void eventfd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w; /* EAGAIN: already readable */
}

static void eventfd_drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

/* Runs q on the caller's connection; returns the first Redis error as
 * CEL_EBROKER. Replies are kept when `out` is not NULL. */
static int run(struct redis_broker *b, const struct cel_redis_cmds *q, redisReply ***out)
{
    redisReply **rs = NULL;
    int rc = cel__redis_exec(&b->main, q, &rs, OP_BUDGET_MS, &b->base.err);
    if (rc != CEL_OK)
        return rc;
    const redisReply *e = cel__redis_first_error(rs, q->n);
    if (e) {
        rc = cel__err(&b->base.err, CEL_EBROKER, "redis %s: %s", b->target.display, e->str);
        cel__redis_replies_free(rs, q->n);
        return rc;
    }
    if (out)
        *out = rs;
    else
        cel__redis_replies_free(rs, q->n);
    return CEL_OK;
}

static int oom(struct redis_broker *b)
{
    return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
}

/* ---- envelopes --------------------------------------------------------- */

/* The envelope with "redelivered": true in headers and in
 * properties.delivery_info (kombu's restore). *priority gets
 * properties.priority. NULL when it is not a JSON object: the text is
 * then restored as it is. */
static char *mark_redelivered(const char *env, size_t len, int *priority)
{
    *priority = 0;
    json_t *root = json_loadb(env, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    json_t *headers = json_object_get(root, "headers");
    if (json_is_object(headers))
        json_object_set_new(headers, "redelivered", json_true());
    json_t *props = json_object_get(root, "properties");
    if (json_is_object(props)) {
        json_t *pr = json_object_get(props, "priority");
        if (json_is_integer(pr))
            *priority = (int)json_integer_value(pr);
        json_t *di = json_object_get(props, "delivery_info");
        if (json_is_object(di))
            json_object_set_new(di, "redelivered", json_true());
    }
    char *out = cel__json_dump(root);
    json_decref(root);
    return out;
}

/* Appends the atomic restore of `tag` to q: `env` (as delivered) goes back
 * to the front of `queue`'s band list, flagged redelivered. */
static int add_restore(struct cel_redis_cmds *q, const char *sha, const char *tag,
                       const char *queue, const char *env, size_t len, const char *max_score)
{
    int priority = 0;
    char *marked = mark_redelivered(env, len, &priority);
    char key[KEY_MAX];
    if (!band_key(queue, band_of(priority), key, sizeof key)) {
        free(marked);
        return CEL_EINVAL;
    }
    const char *argv[] = {"EVALSHA",         sha, "3", KEY_UNACKED,
                          KEY_UNACKED_INDEX, key, tag, marked ? marked : env,
                          max_score};
    size_t lens[9];
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    if (!marked)
        lens[7] = len;
    int rc = cel__redis_cmds_add(q, 9, argv, lens);
    free(marked);
    return rc;
}

/* ---- open / close ------------------------------------------------------ */

static void consumer_stop(struct redis_broker *b);

static int rb_open(const struct cel_url *url, const cel_config *cfg, struct cel_broker **out,
                   struct cel_errbuf *err)
{
    *out = NULL;
    struct redis_broker *b = calloc(1, sizeof *b);
    if (!b)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    b->base.ops = &cel__broker_redis;
    b->efd = b->kick = -1;
    pthread_mutex_init(&b->mu, NULL);
    atomic_init(&b->stop, false);
    int rc = cel__redis_target_init(&b->target, url, err);
    if (rc == CEL_OK) {
        double vt = cfg ? cel_config_get_double(cfg, "broker_visibility_timeout") : 0;
        b->default_vt_ms = vt > 0 ? (int64_t)(vt * 1000) : 3600 * 1000;
        b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        b->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (b->efd < 0 || b->kick < 0)
            rc = cel__err(err, CEL_EIO, "eventfd: %s", strerror(errno));
    }
    if (rc == CEL_OK) {
        cel__redis_init(&b->main, &b->target, COMP, scripts, b->main_shas);
        cel__redis_init(&b->io, &b->target, COMP, scripts, b->io_shas);
        /* Fail early on a wrong URL or password rather than at the first
         * publish. */
        rc = cel__redis_connect(&b->main, err);
    }
    if (rc != CEL_OK) {
        b->base.ops->close(&b->base);
        return rc;
    }
    *out = &b->base;
    return CEL_OK;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Gives back what the consumer thread popped but nobody fetched. */
static void restore_unfetched(struct redis_broker *b)
{
    struct cel_redis_cmds q = {0};
    for (size_t i = 0; i < b->ready.n; i++) {
        struct cel_delivery *d = &b->ready.v[b->ready.head + i];
        add_restore(&q, b->main_shas[SCRIPT_RESTORE], d->tag_str, d->queue, d->body, d->len,
                    "1e300");
    }
    if (b->orphan) {
        char key[KEY_MAX];
        const char *argv[] = {"RPUSH", key, b->orphan};
        if (band_key(b->orphan_queue, 0, key, sizeof key))
            cel__redis_cmds_addv(&q, 3, argv);
    }
    if (q.n && run(b, &q, NULL) != CEL_OK)
        CEL_WARN(COMP, "cannot give back %zu prefetched messages (the visibility sweep will): %s",
                 q.n, b->base.err.msg);
    cel__redis_cmds_release(&q);
}

static void rb_close(struct cel_broker *base)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (!b)
        return;
    consumer_stop(b);
    restore_unfetched(b);
    for (size_t i = 0; i < b->ready.n; i++)
        cel__delivery_release(&b->ready.v[b->ready.head + i]);
    free(b->ready.v);
    free(b->orphan);
    free(b->orphan_queue);
    cel__redis_close(&b->main);
    cel__redis_close(&b->io);
    cel__redis_cmds_release(&b->batch);
    free_strv(b->acks, b->nacks);
    free_strv(b->bound, b->nbound);
    free_strv(b->queues, b->nqueues);
    cel__redis_target_release(&b->target);
    if (b->efd >= 0)
        close(b->efd);
    if (b->kick >= 0)
        close(b->kick);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- producing --------------------------------------------------------- */

/* Adds SADD _kombu.binding.<q> once per queue and connection. */
static int add_binding(struct redis_broker *b, struct cel_redis_cmds *q, const char *queue)
{
    if (b->bound_gen != b->main.generation) {
        free_strv(b->bound, b->nbound);
        b->bound = NULL;
        b->nbound = 0;
        b->bound_gen = b->main.generation;
    }
    for (size_t i = 0; i < b->nbound; i++)
        if (strcmp(b->bound[i], queue) == 0)
            return CEL_OK;
    char key[KEY_MAX], member[3 * KEY_MAX];
    int n1 = snprintf(key, sizeof key, "_kombu.binding.%s", queue);
    int n2 = snprintf(member, sizeof member, "%s" SEP SEP "%s", queue, queue);
    if (n1 < 0 || (size_t)n1 >= sizeof key || n2 < 0 || (size_t)n2 >= sizeof member)
        return cel__err(&b->base.err, CEL_EINVAL, "queue name too long");
    const char *argv[] = {"SADD", key, member};
    char **v = realloc(b->bound, (b->nbound + 1) * sizeof *v);
    if (!v)
        return oom(b);
    b->bound = v;
    if (!(v[b->nbound] = strdup(queue)) || cel__redis_cmds_addv(q, 3, argv) != CEL_OK)
        return oom(b);
    b->nbound++;
    return CEL_OK;
}

static int rb_publish(struct cel_broker *base, const char *queue, int priority, int64_t due_us,
                      const char *task_id, const char *body, size_t len)
{
    (void)task_id;
    struct redis_broker *b = (struct redis_broker *)base;
    struct cel_redis_cmds local = {0};
    struct cel_redis_cmds *q = b->batching ? &b->batch : &local;
    char key[KEY_MAX];
    if (!band_key(queue, band_of(priority), key, sizeof key))
        return cel__err(&base->err, CEL_EINVAL, "queue name too long");
    int rc = add_binding(b, q, queue);
    if (rc == CEL_OK && due_us > cel__wall_us()) {
        /* Parked in our delayed set until due; see the top of the file. */
        json_t *m =
            json_pack("{s:s, s:s, s:i, s:s%}", "k", key, "q", queue, "p", priority, "m", body, len);
        char *member = m ? json_dumps(m, JSON_COMPACT) : NULL;
        json_decref(m);
        char score[32];
        snprintf(score, sizeof score, "%lld", (long long)(due_us / 1000));
        const char *argv[] = {"ZADD", KEY_DELAYED, score, member};
        if (!m)
            rc = cel__err(&base->err, CEL_EINVAL, "message for queue '%s' is not valid UTF-8",
                          queue);
        else if (!member || cel__redis_cmds_addv(q, 4, argv) != CEL_OK)
            rc = oom(b);
        free(member);
    } else if (rc == CEL_OK) {
        const char *argv[] = {"LPUSH", key, body};
        size_t lens[] = {5, strlen(key), len};
        if (cel__redis_cmds_add(q, 3, argv, lens) != CEL_OK)
            rc = oom(b);
    }
    if (rc == CEL_OK && !b->batching)
        rc = run(b, q, NULL);
    cel__redis_cmds_release(&local);
    return rc;
}

static int rb_begin(struct cel_broker *base)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (b->batching)
        return cel__err(&base->err, CEL_ESTATE, "a batch is already open");
    b->batching = true;
    cel__redis_cmds_reset(&b->batch);
    return CEL_OK;
}

/* One ZREM and one HDEL for every tag acked in the batch. */
static int add_acks(struct cel_redis_cmds *q, char *const *tags, size_t n)
{
    const char **argv = malloc((n + 2) * sizeof *argv);
    size_t *lens = malloc((n + 2) * sizeof *lens);
    int rc = argv && lens ? CEL_OK : CEL_ENOMEM;
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        argv[i + 2] = tags[i];
        lens[i + 2] = strlen(tags[i]);
    }
    if (rc == CEL_OK) {
        argv[0] = "ZREM", lens[0] = 4;
        argv[1] = KEY_UNACKED_INDEX, lens[1] = strlen(KEY_UNACKED_INDEX);
        rc = cel__redis_cmds_add(q, (int)n + 2, argv, lens);
    }
    if (rc == CEL_OK) {
        argv[0] = "HDEL", lens[0] = 4;
        argv[1] = KEY_UNACKED, lens[1] = strlen(KEY_UNACKED);
        rc = cel__redis_cmds_add(q, (int)n + 2, argv, lens);
    }
    free(argv);
    free(lens);
    return rc;
}

static int rb_commit(struct cel_broker *base)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (!b->batching)
        return cel__err(&base->err, CEL_ESTATE, "no batch is open");
    b->batching = false;
    int rc = CEL_OK;
    if (b->nacks && add_acks(&b->batch, b->acks, b->nacks) != CEL_OK)
        rc = oom(b);
    if (rc == CEL_OK)
        rc = run(b, &b->batch, NULL);
    cel__redis_cmds_reset(&b->batch);
    for (size_t i = 0; i < b->nacks; i++)
        free(b->acks[i]);
    b->nacks = 0;
    return rc;
}

/* ---- acknowledging ------------------------------------------------------ */

static const char *tag_of(const struct cel_delivery *d)
{
    return d->tag_str ? d->tag_str : "";
}

static int rb_ack(struct cel_broker *base, const struct cel_delivery *d)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (!d->tag_str)
        return cel__err(&base->err, CEL_EINVAL, "delivery has no redis delivery tag");
    if (b->batching) {
        if (b->nacks == b->acks_cap) {
            size_t cap = b->acks_cap ? b->acks_cap * 2 : 64;
            char **v = realloc(b->acks, cap * sizeof *v);
            if (!v)
                return oom(b);
            b->acks = v;
            b->acks_cap = cap;
        }
        if (!(b->acks[b->nacks] = strdup(d->tag_str)))
            return oom(b);
        b->nacks++;
        return CEL_OK;
    }
    struct cel_redis_cmds q = {0};
    char *tags[1] = {d->tag_str};
    int rc = add_acks(&q, tags, 1) == CEL_OK ? run(b, &q, NULL) : oom(b);
    cel__redis_cmds_release(&q);
    return rc;
}

static int rb_reject(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (!d->tag_str || !d->queue)
        return cel__err(&base->err, CEL_EINVAL, "delivery has no redis delivery tag");
    struct cel_redis_cmds q = {0};
    int rc;
    if (requeue) {
        rc = add_restore(&q, b->main_shas[SCRIPT_RESTORE], tag_of(d), d->queue, d->body, d->len,
                         "1e300");
    } else {
        /* kombu would just drop it; we keep it for an operator. */
        char score[32];
        cel__redis_now_score(score, sizeof score);
        json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s%}", "queue", d->queue, "reason",
                                reason ? reason : "rejected", "delivery_tag", tag_of(d), "dead_at",
                                score, "message", d->body, d->len);
        if (!rec) /* not UTF-8: keep it anyway, as a string of what we can */
            rec = json_pack("{s:s, s:s, s:s, s:s, s:s}", "queue", d->queue, "reason",
                            reason ? reason : "rejected", "delivery_tag", tag_of(d), "dead_at",
                            score, "message", "<invalid UTF-8>");
        char *text = rec ? cel__json_dump(rec) : NULL;
        json_decref(rec);
        const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
        const char *push[] = {"LPUSH", KEY_DEAD, text ? text : ""};
        const char *zrem[] = {"ZREM", KEY_UNACKED_INDEX, tag_of(d)};
        const char *hdel[] = {"HDEL", KEY_UNACKED, tag_of(d)};
        rc = text ? CEL_OK : CEL_ENOMEM;
        if (rc == CEL_OK)
            rc = cel__redis_cmds_addv(&q, 1, multi);
        if (rc == CEL_OK)
            rc = cel__redis_cmds_addv(&q, 3, push);
        if (rc == CEL_OK)
            rc = cel__redis_cmds_addv(&q, 3, zrem);
        if (rc == CEL_OK)
            rc = cel__redis_cmds_addv(&q, 3, hdel);
        if (rc == CEL_OK)
            rc = cel__redis_cmds_addv(&q, 1, exec);
        free(text);
    }
    if (rc == CEL_OK)
        rc = run(b, &q, NULL);
    else if (rc == CEL_ENOMEM)
        oom(b);
    else
        cel__err(&base->err, rc, "queue name too long");
    cel__redis_cmds_release(&q);
    return rc;
}

static int rb_extend(struct cel_broker *base, const struct cel_delivery *const *ds, size_t n,
                     int64_t lease_ms)
{
    (void)lease_ms; /* the index holds the time of the last touch, not a deadline */
    struct redis_broker *b = (struct redis_broker *)base;
    if (n == 0)
        return CEL_OK;
    const char **argv = malloc((2 * n + 3) * sizeof *argv);
    size_t *lens = malloc((2 * n + 3) * sizeof *lens);
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return oom(b);
    }
    char score[32];
    index_score(score, sizeof score);
    int argc = 0;
    argv[argc++] = "ZADD";
    argv[argc++] = KEY_UNACKED_INDEX;
    argv[argc++] = "XX"; /* never resurrect an entry acked meanwhile */
    for (size_t i = 0; i < n; i++) {
        if (!ds[i]->tag_str)
            continue;
        argv[argc++] = score;
        argv[argc++] = ds[i]->tag_str;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    struct cel_redis_cmds local = {0};
    struct cel_redis_cmds *q = b->batching ? &b->batch : &local;
    int rc = CEL_OK;
    if (argc > 3 && cel__redis_cmds_add(q, argc, argv, lens) != CEL_OK)
        rc = oom(b);
    if (rc == CEL_OK && !b->batching)
        rc = run(b, q, NULL);
    cel__redis_cmds_release(&local);
    free(argv);
    free(lens);
    return rc;
}

/* ---- queue management --------------------------------------------------- */

static int add_band_cmds(struct cel_redis_cmds *q, const char *cmd, const char *queue)
{
    for (int i = 0; i < NBANDS; i++) {
        char key[KEY_MAX];
        const char *argv[] = {cmd, band_key(queue, band_steps[i], key, sizeof key)};
        if (!argv[1])
            return CEL_EINVAL;
        if (cel__redis_cmds_addv(q, 2, argv) != CEL_OK)
            return CEL_ENOMEM;
    }
    return CEL_OK;
}

static int rb_purge(struct cel_broker *base, const char *queue, size_t *removed)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (removed)
        *removed = 0;
    struct cel_redis_cmds q = {0};
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    int rc = cel__redis_cmds_addv(&q, 1, multi);
    if (rc == CEL_OK)
        rc = add_band_cmds(&q, "LLEN", queue);
    if (rc == CEL_OK)
        rc = add_band_cmds(&q, "DEL", queue);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 1, exec);
    redisReply **rs = NULL;
    if (rc == CEL_OK)
        rc = run(b, &q, &rs);
    else
        rc = cel__err(&base->err, rc, "cannot purge queue '%s'", queue);
    if (rc == CEL_OK) {
        const redisReply *ex = rs[q.n - 1];
        size_t total = 0;
        for (size_t i = 0; ex->type == REDIS_REPLY_ARRAY && i < NBANDS && i < ex->elements; i++)
            if (ex->element[i]->type == REDIS_REPLY_INTEGER)
                total += (size_t)ex->element[i]->integer;
        if (removed)
            *removed = total;
    }
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

static int rb_length(struct cel_broker *base, const char *queue, size_t *len)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *len = 0;
    struct cel_redis_cmds q = {0};
    int rc = add_band_cmds(&q, "LLEN", queue);
    redisReply **rs = NULL;
    if (rc == CEL_OK)
        rc = run(b, &q, &rs);
    else
        rc = cel__err(&base->err, rc, "cannot read length of queue '%s'", queue);
    for (size_t i = 0; rc == CEL_OK && i < q.n; i++)
        if (rs[i]->type == REDIS_REPLY_INTEGER)
            *len += (size_t)rs[i]->integer;
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

/* ---- the I/O thread ------------------------------------------------------ */

struct io_state {
    struct redis_broker *b;
    size_t nq;
    size_t *order;                 /* queue indices, rotated round-robin */
    char (*keys)[NBANDS][KEY_MAX]; /* keys[queue][band] */
    const char **argv;             /* scratch: command arguments */
    size_t *lens;
    int64_t next_sweep_ms;
    int64_t next_move_ms;     /* monotonic: next periodic delayed check */
    int64_t next_due_wall_ms; /* earliest known delayed message, 0: none known */
    unsigned bound_gen;       /* io generation whose bindings were added */
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
    int n = poll(p, fd_extra >= 0 ? 2 : 1, timeout_ms);
    if (n > 0 && p[0].revents)
        eventfd_drain(b->kick);
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
    /* Blocking commands here wait at most BRPOP_TIMEOUT_MS on the server. */
    int64_t deadline = cel__mono_ms() + BRPOP_TIMEOUT_MS + CEL_REDIS_COMMAND_TIMEOUT_MS;
    for (;;) {
        if (atomic_load(&b->stop)) {
            cel__redis_close(&b->io);
            return CEL_EINTR;
        }
        int64_t left = deadline - cel__mono_ms();
        if (left <= 0) {
            cel__redis_lost(&b->io, "no reply within the command timeout");
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
        CEL_ERROR(COMP, "redis %s: %s", s->b->target.display, e->str);
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
        char key[KEY_MAX], member[3 * KEY_MAX];
        snprintf(key, sizeof key, "_kombu.binding.%s", queue);
        snprintf(member, sizeof member, "%s" SEP SEP "%s", queue, queue);
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

/*
 * kombu's restore_visible: under unacked_mutex, every unacked entry
 * delivered (or last extended) longer than the visibility timeout ago goes
 * back to its queue. Exchange "" routes by routing key, others through
 * _kombu.binding.<exchange>; when nothing matches, the routing key.
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
    const char *lock[] = {"SET", KEY_UNACKED_MUTEX, token, "NX", "PX", "300000"};
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
        "ZREVRANGEBYSCORE", KEY_UNACKED_INDEX, ceiling, "0", "LIMIT", "0", limit};
    rc = cel__redis_cmds_addv(&q, 7, range);
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    redisReply *tags = rc == CEL_OK ? rs[0] : NULL;
    size_t ntags = tags && tags->type == REDIS_REPLY_ARRAY ? tags->elements : 0;
    size_t restored = 0;
    char found[KEY_MAX];
    if (ntags) {
        /* One round trip for the records, one for the restores. */
        struct cel_redis_cmds hq = {0}, rq = {0};
        redisReply **vals = NULL;
        for (size_t i = 0; i < ntags && rc == CEL_OK; i++) {
            const char *argv[] = {"HGET", KEY_UNACKED, tags->element[i]->str};
            rc = cel__redis_cmds_addv(&hq, 3, argv);
        }
        if (rc == CEL_OK)
            rc = io_run(s, &hq, &vals);
        for (size_t i = 0; rc == CEL_OK && i < ntags; i++) {
            const char *tag = tags->element[i]->str;
            json_t *rec = vals[i]->type == REDIS_REPLY_STRING
                              ? json_loadb(vals[i]->str, vals[i]->len, 0, NULL)
                              : NULL;
            json_t *env = json_array_get(rec, 0);
            const char *ex = json_string_value(json_array_get(rec, 1));
            const char *rk = json_string_value(json_array_get(rec, 2));
            char *text = env ? cel__json_dump(env) : NULL;
            const char *queue = rk;
            if (text && ex && *ex) {
                /* Named exchange: the first binding whose routing key
                 * matches (direct), kombu's _lookup. */
                char key[KEY_MAX];
                snprintf(key, sizeof key, "_kombu.binding.%s", ex);
                redisReply *m = redisCommand(b->io.ctx, "SMEMBERS %s", key);
                for (size_t k = 0; m && m->type == REDIS_REPLY_ARRAY && k < m->elements; k++) {
                    const char *mem = m->element[k]->str;
                    const char *sep1 = strstr(mem, SEP);
                    const char *sep2 = sep1 ? strstr(sep1 + 2, SEP) : NULL;
                    if (sep2 && rk && (size_t)(sep1 - mem) == strlen(rk) &&
                        strncmp(mem, rk, strlen(rk)) == 0) {
                        snprintf(found, sizeof found, "%s", sep2 + 2);
                        queue = found;
                        break;
                    }
                }
                if (m) {
                    freeReplyObject(m);
                } else {
                    cel__redis_lost(&b->io, b->io.ctx->errstr);
                    rc = CEL_EDISCONNECTED;
                }
            }
            if (text && queue) {
                if (add_restore(&rq, b->io_shas[SCRIPT_RESTORE], tag, queue, text, strlen(text),
                                ceiling) != CEL_OK)
                    CEL_ERROR(COMP, "cannot restore %s: queue name too long", tag);
            } else {
                /* No record (acked meanwhile) or unreadable: drop the
                 * index entry like kombu does. */
                const char *argv[] = {"ZREM", KEY_UNACKED_INDEX, tag};
                cel__redis_cmds_addv(&rq, 3, argv);
            }
            free(text);
            json_decref(rec);
        }
        cel__redis_replies_free(vals, hq.n);
        redisReply **rr = NULL;
        if (rc == CEL_OK && rq.n)
            rc = io_run(s, &rq, &rr);
        for (size_t i = 0; rc == CEL_OK && i < rq.n; i++)
            restored += rr[i]->type == REDIS_REPLY_INTEGER && rr[i]->integer == 1;
        cel__redis_replies_free(rr, rq.n);
        cel__redis_cmds_release(&hq);
        cel__redis_cmds_release(&rq);
    }
    cel__redis_replies_free(rs, q.n);
    if (restored)
        CEL_WARN(COMP,
                 "restored %zu unacknowledged messages older than the visibility timeout "
                 "(%.0f s)",
                 restored, (double)vt / 1000.0);
    if (rc != CEL_EDISCONNECTED && rc != CEL_EINTR && b->io.ctx) {
        cel__redis_cmds_reset(&q);
        const char *unlock[] = {"EVALSHA", b->io_shas[SCRIPT_UNLOCK], "1", KEY_UNACKED_MUTEX,
                                token};
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
    const char *argv[] = {"EVALSHA", b->io_shas[SCRIPT_MOVE], "2", KEY_DELAYED, KEY_DEAD, now,
                          limit};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, 7, argv);
    if (rc == CEL_OK)
        rc = io_run(s, &q, &rs);
    if (rc == CEL_OK) {
        const redisReply *r = rs[0];
        long long moved = 0;
        s->next_due_wall_ms = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            moved = r->element[0]->integer;
            if (r->element[1]->type == REDIS_REPLY_STRING)
                s->next_due_wall_ms = strtoll(r->element[1]->str, NULL, 10);
        }
        if (moved)
            CEL_DEBUG(COMP, "moved %lld due delayed messages to their queues", moved);
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
    size_t nkeys = s->nq * NBANDS;
    char now[32], want[16];
    index_score(now, sizeof now);
    snprintf(want, sizeof want, "%zu", more > POP_MAX ? (size_t)POP_MAX : more);
    char nk[16];
    snprintf(nk, sizeof nk, "%zu", nkeys + 2);
    size_t argc = 0;
    const char **a = s->argv;
    size_t *l = s->lens;
    a[argc++] = "EVALSHA";
    a[argc++] = b->io_shas[SCRIPT_POP];
    a[argc++] = nk;
    a[argc++] = KEY_UNACKED;
    a[argc++] = KEY_UNACKED_INDEX;
    for (int band = 0; band < NBANDS; band++)
        for (size_t k = 0; k < s->nq; k++)
            a[argc++] = s->keys[s->order[k]][band];
    a[argc++] = now;
    a[argc++] = want;
    a[argc++] = s->pending ? s->pending : "";
    a[argc++] = s->pending ? b->queues[s->pending_q] : "";
    for (int band = 0; band < NBANDS; band++)
        for (size_t k = 0; k < s->nq; k++)
            a[argc++] = b->queues[s->order[k]];
    for (size_t i = 0; i < argc; i++)
        l[i] = strlen(a[i]);
    if (s->pending)
        l[5 + nkeys + 2] = s->pending_len;

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
        struct ready_list *rl = &b->ready;
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
            d->delivery_count = e[2]->integer ? 2 : 1;
            rl->n++;
        }
        pthread_mutex_unlock(&b->mu);
        eventfd_signal(b->efd);
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
static int io_brpop(struct io_state *s, size_t room, int64_t timeout_ms)
{
    size_t argc = 0;
    s->argv[argc++] = "BRPOP";
    for (int band = 0; band < NBANDS; band++)
        for (size_t k = 0; k < s->nq; k++)
            s->argv[argc++] = s->keys[s->order[k]][band];
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
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        const char *key = r->element[0]->str;
        size_t qi = s->nq;
        for (size_t k = 0; k < s->nq && qi == s->nq; k++)
            for (int band = 0; band < NBANDS; band++)
                if (strcmp(key, s->keys[k][band]) == 0)
                    qi = k;
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
            CEL_ERROR(COMP, "lost a message popped from '%s': out of memory", key);
        }
    }
    cel__redis_replies_free(rs, 1);
    return rc;
}

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
    s->next_sweep_ms = 0; /* once at start, like kombu */
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
        if (s->bound_gen != b->io.generation) {
            rc = io_bind(s);
            if (rc == CEL_OK)
                s->bound_gen = b->io.generation;
        }
        if (rc == CEL_OK && s->pending)
            rc = io_pop(s, 0); /* record what we popped before losing the connection */
        if (rc == CEL_OK && mono >= s->next_sweep_ms) {
            rc = io_sweep(s);
            s->next_sweep_ms = mono + SWEEP_INTERVAL_MS;
        }
        int64_t wall_ms = cel__wall_us() / 1000;
        if (rc == CEL_OK &&
            (mono >= s->next_move_ms || (s->next_due_wall_ms && s->next_due_wall_ms <= wall_ms))) {
            rc = io_move_due(s);
            s->next_move_ms = mono + BRPOP_TIMEOUT_MS;
        }
        if (rc != CEL_OK)
            continue; /* lost: reconnect; stopped: leave */

        int64_t timeout = BRPOP_TIMEOUT_MS;
        if (s->next_due_wall_ms) {
            int64_t until = s->next_due_wall_ms - cel__wall_us() / 1000;
            if (until < timeout)
                timeout = until < 10 ? 10 : until;
        }
        size_t room = io_room(b);
        if (room == 0) {
            /* The consumer's window is full: wait for fetch() (kick). */
            io_wait(b, -1, (int)timeout);
            continue;
        }
        /* Under load one script call refills the window; BRPOP (a round
         * trip more) only once the queues ran dry. */
        if (s->busy)
            io_pop(s, room);
        else
            io_brpop(s, room, timeout);
    }
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

static int consumer_start(struct redis_broker *b, const char *const *queues, size_t nqueues)
{
    if (nqueues == 0)
        return cel__err(&b->base.err, CEL_EINVAL, "no queues to consume from");
    struct io_state *s = calloc(1, sizeof *s);
    b->queues = calloc(nqueues, sizeof *b->queues);
    if (!s || !b->queues)
        goto nomem;
    b->nqueues = nqueues;
    for (size_t i = 0; i < nqueues; i++)
        if (!(b->queues[i] = strdup(queues[i])))
            goto nomem;
    s->b = b;
    s->nq = nqueues;
    s->order = calloc(nqueues, sizeof *s->order);
    s->keys = calloc(nqueues, sizeof *s->keys);
    s->argv = calloc(2 * nqueues * NBANDS + 16, sizeof *s->argv);
    s->lens = calloc(2 * nqueues * NBANDS + 16, sizeof *s->lens);
    if (!s->order || !s->keys || !s->argv || !s->lens)
        goto nomem;
    for (size_t i = 0; i < nqueues; i++) {
        s->order[i] = i;
        for (int band = 0; band < NBANDS; band++)
            if (!band_key(queues[i], band_steps[band], s->keys[i][band], KEY_MAX)) {
                free(s->order), free(s->keys), free(s->argv), free(s->lens), free(s);
                return cel__err(&b->base.err, CEL_EINVAL, "queue name too long");
            }
    }
    int e = pthread_create(&b->thread, NULL, io_main, s);
    if (e != 0) {
        free(s->order), free(s->keys), free(s->argv), free(s->lens), free(s);
        return cel__err(&b->base.err, CEL_EIO, "cannot start the redis consumer thread: %s",
                        strerror(e));
    }
    b->started = true;
    return CEL_OK;
nomem:
    if (s)
        free(s->order), free(s->keys), free(s->argv), free(s->lens);
    free(s);
    return oom(b);
}

static void consumer_stop(struct redis_broker *b)
{
    if (!b->started)
        return;
    atomic_store(&b->stop, true);
    eventfd_signal(b->kick);
    void *ret = NULL;
    pthread_join(b->thread, &ret);
    b->started = false;
}

static int rb_fetch(struct cel_broker *base, const char *const *queues, size_t nqueues, size_t max,
                    int64_t lease_ms, struct cel_delivery *out, size_t *n, int64_t *next_due_us)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *n = 0;
    if (next_due_us)
        *next_due_us = 0; /* due times are the I/O thread's business */
    if (!b->started) {
        /* Before the thread starts: its first sweep needs the timeout. */
        pthread_mutex_lock(&b->mu);
        if (lease_ms > 0)
            b->lease_ms = lease_ms;
        b->room = max;
        pthread_mutex_unlock(&b->mu);
        int rc = consumer_start(b, queues, nqueues);
        if (rc != CEL_OK)
            return rc;
    }
    pthread_mutex_lock(&b->mu);
    size_t take = b->ready.n < max ? b->ready.n : max;
    for (size_t i = 0; i < take; i++)
        out[i] = b->ready.v[b->ready.head + i];
    b->ready.head += take;
    b->ready.n -= take;
    if (b->ready.n == 0)
        b->ready.head = 0;
    size_t old_room = b->room;
    b->room = max - take;
    if (lease_ms > 0)
        b->lease_ms = lease_ms;
    bool kick = b->room > b->ready.n && (b->room > old_room || take);
    pthread_mutex_unlock(&b->mu);
    *n = take;
    if (kick)
        eventfd_signal(b->kick);
    return CEL_OK;
}

static int rb_wakeup_fd(struct cel_broker *base)
{
    return ((struct redis_broker *)base)->efd;
}

static void rb_drain_wakeup(struct cel_broker *base)
{
    eventfd_drain(((struct redis_broker *)base)->efd);
}

const struct cel_broker_ops cel__broker_redis = {
    .abi = CEL_BROKER_ABI,
    .default_lease_ms = 3600 * 1000, /* kombu's visibility_timeout */
    .scheme = "redis",
    .caps = CEL_BROKER_CAP_DELAYED | CEL_BROKER_CAP_PRIORITY | CEL_BROKER_CAP_VISIBILITY |
            CEL_BROKER_CAP_DEADLETTER,
    .open = rb_open,
    .close = rb_close,
    .publish = rb_publish,
    .begin = rb_begin,
    .commit = rb_commit,
    .fetch = rb_fetch,
    .ack = rb_ack,
    .reject = rb_reject,
    .extend = rb_extend,
    .purge = rb_purge,
    .length = rb_length,
    .wakeup_fd = rb_wakeup_fd,
    .drain_wakeup = rb_drain_wakeup,
};

const struct cel_broker_ops cel__broker_redis_socket = {
    .abi = CEL_BROKER_ABI,
    .default_lease_ms = 3600 * 1000, /* kombu's visibility_timeout */
    .scheme = "redis+socket",
    .caps = CEL_BROKER_CAP_DELAYED | CEL_BROKER_CAP_PRIORITY | CEL_BROKER_CAP_VISIBILITY |
            CEL_BROKER_CAP_DEADLETTER,
    .open = rb_open,
    .close = rb_close,
    .publish = rb_publish,
    .begin = rb_begin,
    .commit = rb_commit,
    .fetch = rb_fetch,
    .ack = rb_ack,
    .reject = rb_reject,
    .extend = rb_extend,
    .purge = rb_purge,
    .length = rb_length,
    .wakeup_fd = rb_wakeup_fd,
    .drain_wakeup = rb_drain_wakeup,
};
