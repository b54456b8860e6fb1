/*
 * redis.c - the Redis transport: redis://[[user]:password@]host[:port][/db]
 * and redis+socket:///path.sock?db=N (both schemes map to this one
 * table, see registry.c), in kombu 5.2's keyspace so Python Celery
 * clients and workers share queues with us (redis_keys.h).
 *
 * This file is the ops table: producing, acknowledging, queue management
 * on the caller's connection, and fetch() from the ready list that the
 * consumer's I/O thread (redis_consumer.c) fills; fan-out is in
 * redis_fanout.c. The handle and how the files share it are in
 * redis_internal.h.
 *
 * Delivery count: 1 + the restores counted in celeriac.deliveries (see
 * redis_keys.h); a message restored by a Python worker reports 2.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "broker/redis_internal.h"
#include "core/json_util.h"
#include "core/log.h"

int cel__redis_broker_run(struct redis_broker *b, const struct cel_redis_cmds *q, redisReply ***out)
{
    return cel__redis_run(&b->main, q, out, CEL_REDIS_OP_BUDGET_MS, &b->base.err);
}

static int oom(struct redis_broker *b)
{
    return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
}

/* ---- open / close ------------------------------------------------------ */

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
    atomic_init(&b->wake_hint_ms, 0);
    atomic_init(&b->io_wake_at_ms, 0);
    atomic_init(&b->io_in_brpop, false);
    char id[CEL_UUID_STRLEN + 1];
    cel__uuid4(id);
    snprintf(b->wake_key, sizeof b->wake_key, CEL_REDIS_KEY_WAKE_PREFIX "%s", id);
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
        cel__redis_init(&b->main, &b->target, CEL_REDIS_COMP, cel__redis_broker_scripts,
                        b->main_shas);
        cel__redis_init(&b->io, &b->target, CEL_REDIS_COMP, cel__redis_broker_scripts, b->io_shas);
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
        cel__redis_add_restore(&q, b->main_shas[CEL_REDIS_SCRIPT_RESTORE], d->tag_str, d->queue,
                               d->body, d->len, "1e300");
    }
    if (b->orphan) {
        char key[CEL_REDIS_KEY_MAX];
        const char *argv[] = {"RPUSH", key, b->orphan};
        if (cel__redis_band_key(b->orphan_queue, 0, key, sizeof key))
            cel__redis_cmds_addv(&q, 3, argv);
    }
    if (q.n && cel__redis_broker_run(b, &q, NULL) != CEL_OK)
        CEL_WARN(CEL_REDIS_COMP,
                 "cannot give back %zu prefetched messages (the visibility sweep will): %s", q.n,
                 b->base.err.msg);
    cel__redis_cmds_release(&q);
}

static void rb_close(struct cel_broker *base)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (!b)
        return;
    cel__redis_consumer_stop(b);
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
    free_strv(b->asked, b->nasked);
    free_strv(b->next_queues, b->nnext);
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
    char key[CEL_REDIS_KEY_MAX], member[3 * CEL_REDIS_KEY_MAX];
    if (!cel__redis_binding(queue, key, member))
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

int cel__redis_push_plan(struct redis_broker *b, const char *queue, int priority, int64_t due_us,
                         const char *body, size_t len, struct cel_redis_push *p)
{
    memset(p, 0, sizeof *p);
    if (!cel__redis_band_key(queue, cel__redis_band_of(priority), p->list, sizeof p->list) ||
        !cel__redis_binding(queue, p->binding, p->binding_member))
        return cel__err(&b->base.err, CEL_EINVAL, "queue name too long");
    if (due_us <= cel__wall_us())
        return CEL_OK;
    /* Parked in our delayed set until due; see redis_keys.h. */
    bool bad;
    p->parked = cel__redis_delayed_member(p->list, queue, priority, body, len, &bad);
    if (bad)
        return cel__err(&b->base.err, CEL_EINVAL, "message for queue '%s' is not valid UTF-8",
                        queue);
    if (!p->parked)
        return oom(b);
    p->park_ms = due_us / 1000;
    snprintf(p->score, sizeof p->score, "%lld", (long long)p->park_ms);
    return CEL_OK;
}

void cel__redis_push_release(struct cel_redis_push *p)
{
    free(p->parked);
    p->parked = NULL;
}

static int rb_publish(struct cel_broker *base, const char *queue, int priority, int64_t due_us,
                      const char *task_id, const char *body, size_t len)
{
    (void)task_id;
    struct redis_broker *b = (struct redis_broker *)base;
    struct cel_redis_cmds local = {0};
    struct cel_redis_cmds *q = b->batching ? &b->batch : &local;
    struct cel_redis_push p;
    int rc = cel__redis_push_plan(b, queue, priority, due_us, body, len, &p);
    if (rc == CEL_OK)
        rc = add_binding(b, q, queue);
    if (rc == CEL_OK && p.parked) {
        const char *argv[] = {"ZADD", CEL_REDIS_KEY_DELAYED, p.score, p.parked};
        if (cel__redis_cmds_addv(q, 4, argv) != CEL_OK)
            rc = oom(b);
    } else if (rc == CEL_OK) {
        const char *argv[] = {"LPUSH", p.list, body};
        size_t lens[] = {5, strlen(p.list), len};
        if (cel__redis_cmds_add(q, 3, argv, lens) != CEL_OK)
            rc = oom(b);
    }
    int64_t park_ms = rc == CEL_OK ? p.park_ms : 0;
    cel__redis_push_release(&p);
    if (rc == CEL_OK && !b->batching)
        rc = cel__redis_broker_run(b, q, NULL);
    if (rc == CEL_OK && park_ms && !b->batching)
        cel__redis_wake_for(b, park_ms);
    else if (rc == CEL_OK && park_ms && (!b->batch_due_ms || park_ms < b->batch_due_ms))
        b->batch_due_ms = park_ms; /* told once the batch is written */
    cel__redis_cmds_release(&local);
    return rc;
}

static int rb_begin(struct cel_broker *base)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (b->batching)
        return cel__err(&base->err, CEL_ESTATE, "a batch is already open");
    b->batching = true;
    b->batch_due_ms = 0;
    cel__redis_cmds_reset(&b->batch);
    return CEL_OK;
}

/* One ZREM and one HDEL for every tag acked in the batch, and one HDEL of
 * the delivery counts of the first `ncounted` (delivered more than once:
 * the only ones that may have a count). */
static int add_acks(struct cel_redis_cmds *q, char *const *tags, size_t n, size_t ncounted)
{
    const char **argv = malloc((n + 2) * sizeof *argv);
    size_t *lens = malloc((n + 2) * sizeof *lens);
    int rc = argv && lens ? CEL_OK : CEL_ENOMEM;
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        argv[i + 2] = tags[i];
        lens[i + 2] = strlen(tags[i]);
    }
    static const char *const keys[] = {CEL_REDIS_KEY_UNACKED_INDEX, CEL_REDIS_KEY_UNACKED,
                                       CEL_REDIS_KEY_DELIVERIES};
    for (int k = 0; rc == CEL_OK && k < 3; k++) {
        size_t m = k < 2 ? n : ncounted;
        if (m == 0)
            continue;
        argv[0] = k == 0 ? "ZREM" : "HDEL", lens[0] = 4;
        argv[1] = keys[k], lens[1] = strlen(keys[k]);
        rc = cel__redis_cmds_add(q, (int)m + 2, argv, lens);
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
    if (b->nacks && add_acks(&b->batch, b->acks, b->nacks, b->ncounted) != CEL_OK)
        rc = oom(b);
    if (rc == CEL_OK)
        rc = cel__redis_broker_run(b, &b->batch, NULL);
    if (rc == CEL_OK && b->batch_due_ms)
        cel__redis_wake_for(b, b->batch_due_ms);
    b->batch_due_ms = 0;
    cel__redis_cmds_reset(&b->batch);
    for (size_t i = 0; i < b->nacks; i++)
        free(b->acks[i]);
    b->nacks = b->ncounted = 0;
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
        if (d->delivery_count > 1) {
            /* Counted tags stay in front: swap it there. */
            char *t = b->acks[b->ncounted];
            b->acks[b->ncounted++] = b->acks[b->nacks];
            b->acks[b->nacks] = t;
        }
        b->nacks++;
        return CEL_OK;
    }
    struct cel_redis_cmds q = {0};
    char *tags[1] = {d->tag_str};
    int rc = add_acks(&q, tags, 1, d->delivery_count > 1) == CEL_OK
                 ? cel__redis_broker_run(b, &q, NULL)
                 : oom(b);
    cel__redis_cmds_release(&q);
    return rc;
}

/* Gives a reserved message back: to the front of its queue (due_us 0),
 * parked until due_us, or to the dead letters (!requeue). */
static int give_back(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason, int64_t due_us)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (!d->tag_str || !d->queue)
        return cel__err(&base->err, CEL_EINVAL, "delivery has no redis delivery tag");
    struct cel_redis_cmds q = {0};
    int rc;
    if (requeue && due_us) {
        rc = cel__redis_add_restore_at(&q, b->main_shas[CEL_REDIS_SCRIPT_RESTORE_AT], tag_of(d),
                                       d->queue, d->body, d->len, due_us);
    } else if (requeue) {
        rc = cel__redis_add_restore(&q, b->main_shas[CEL_REDIS_SCRIPT_RESTORE], tag_of(d), d->queue,
                                    d->body, d->len, "1e300");
    } else {
        /* kombu would just drop it; we keep it for an operator. */
        rc = cel__redis_add_dead_letter(&q, d->queue, reason ? reason : "rejected", tag_of(d),
                                        d->body, d->len);
    }
    if (rc == CEL_OK)
        rc = cel__redis_broker_run(b, &q, NULL);
    else if (rc == CEL_ENOMEM)
        oom(b);
    else
        cel__err(&base->err, rc, "queue name too long or message not UTF-8");
    if (rc == CEL_OK && requeue && due_us)
        cel__redis_wake_for(b, due_us / 1000);
    cel__redis_cmds_release(&q);
    return rc;
}

static int rb_reject(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason)
{
    return give_back(base, d, requeue, reason, 0);
}

static int rb_requeue_at(struct cel_broker *base, const struct cel_delivery *d, int64_t due_us)
{
    return give_back(base, d, true, NULL, due_us > 0 ? due_us : 1);
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
    cel__redis_index_score(score, sizeof score);
    int argc = 0;
    argv[argc++] = "ZADD";
    argv[argc++] = CEL_REDIS_KEY_UNACKED_INDEX;
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
        rc = cel__redis_broker_run(b, q, NULL);
    cel__redis_cmds_release(&local);
    free(argv);
    free(lens);
    return rc;
}

/* ---- queue management --------------------------------------------------- */

static int add_band_cmds(struct cel_redis_cmds *q, const char *cmd, const char *queue)
{
    for (int i = 0; i < CEL_REDIS_NBANDS; i++) {
        char key[CEL_REDIS_KEY_MAX];
        const char *argv[] = {cmd,
                              cel__redis_band_key(queue, cel__redis_band_step(i), key, sizeof key)};
        if (!argv[1])
            return CEL_EINVAL;
        if (cel__redis_cmds_addv(q, 2, argv) != CEL_OK)
            return CEL_ENOMEM;
    }
    return CEL_OK;
}

/*
 * Adds the DELAYED script over `queue`'s members of celeriac.delayed:
 * counted, and removed when `remove`. The members are compact JSON
 * written by cel__redis_delayed_member(), so the queue field is
 * '"q":' + the queue as jansson dumps it + ','.
 */
static int add_delayed_cmd(struct redis_broker *b, struct cel_redis_cmds *q, const char *queue,
                           bool remove)
{
    json_t *name = json_string(queue);
    char *text = name ? json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(name);
    if (!text)
        return CEL_EINVAL;
    size_t n = strlen(text) + 6;
    char *field = malloc(n);
    int rc = CEL_ENOMEM;
    if (field) {
        snprintf(field, n, "\"q\":%s,", text);
        const char *argv[] = {"EVALSHA", b->main_shas[CEL_REDIS_SCRIPT_DELAYED],
                              "1",       CEL_REDIS_KEY_DELAYED,
                              field,     remove ? "1" : "0"};
        rc = cel__redis_cmds_addv(q, 6, argv);
    }
    free(field);
    free(text);
    return rc;
}

/* Integer replies [from, from + n) summed. */
static size_t sum_ints(redisReply *const *rs, size_t from, size_t n)
{
    size_t total = 0;
    for (size_t i = from; i < from + n; i++)
        if (rs[i]->type == REDIS_REPLY_INTEGER && rs[i]->integer > 0)
            total += (size_t)rs[i]->integer;
    return total;
}

/* The ready lists and the queue's delayed members go together: a purge
 * that left countdown tasks behind would run them later, unasked. */
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
        rc = add_delayed_cmd(b, &q, queue, true);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 1, exec);
    redisReply **rs = NULL;
    if (rc == CEL_OK)
        rc = cel__redis_broker_run(b, &q, &rs);
    else
        rc = cel__err(&base->err, rc, "cannot purge queue '%s'", queue);
    if (rc == CEL_OK) {
        const redisReply *ex = rs[q.n - 1];
        size_t total = 0;
        if (ex->type == REDIS_REPLY_ARRAY && ex->elements == 2 * CEL_REDIS_NBANDS + 1) {
            total = sum_ints(ex->element, 0, CEL_REDIS_NBANDS);
            total += sum_ints(ex->element, 2 * CEL_REDIS_NBANDS, 1);
        }
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
    if (rc == CEL_OK)
        rc = add_delayed_cmd(b, &q, queue, false);
    redisReply **rs = NULL;
    if (rc == CEL_OK)
        rc = cel__redis_broker_run(b, &q, &rs);
    else
        rc = cel__err(&base->err, rc, "cannot read length of queue '%s'", queue);
    if (rc == CEL_OK)
        *len = sum_ints(rs, 0, q.n);
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

/* ---- paused queues: the set celeriac.paused (redis_keys.h) -------------- */

static int rb_queue_pause(struct cel_broker *base, const char *queue, bool paused)
{
    struct redis_broker *b = (struct redis_broker *)base;
    const char *argv[] = {paused ? "SADD" : "SREM", CEL_REDIS_KEY_PAUSED, queue};
    struct cel_redis_cmds q = {0};
    int rc =
        cel__redis_cmds_addv(&q, 3, argv) == CEL_OK ? cel__redis_broker_run(b, &q, NULL) : oom(b);
    cel__redis_cmds_release(&q);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int rb_queue_paused_list(struct cel_broker *base, char ***names, size_t *n)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *names = NULL;
    *n = 0;
    const char *argv[] = {"SMEMBERS", CEL_REDIS_KEY_PAUSED};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc =
        cel__redis_cmds_addv(&q, 2, argv) == CEL_OK ? cel__redis_broker_run(b, &q, &rs) : oom(b);
    const redisReply *r = rc == CEL_OK ? rs[0] : NULL;
    size_t count = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    char **v = count ? calloc(count, sizeof *v) : NULL;
    if (count && !v)
        rc = oom(b);
    for (size_t i = 0; rc == CEL_OK && i < count; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        if (!(v[*n] = strdup(r->element[i]->str)))
            rc = oom(b);
        else
            (*n)++;
    }
    if (rs)
        cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    if (rc != CEL_OK) {
        cel__strv_free(v, *n);
        *n = 0;
        return rc;
    }
    if (*n) {
        qsort(v, *n, sizeof *v, cmp_name); /* a set has no order; give a stable one */
        *names = v;
    } else {
        free(v);
    }
    return CEL_OK;
}

static bool same_queues(char **v, size_t nv, const char *const *queues, size_t n)
{
    if (n != nv)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(queues[i], v[i]) != 0)
            return false;
    return true;
}

/* A copy of queues[0..n) (non-NULL also for n == 0), or NULL. */
static char **copy_strv(const char *const *queues, size_t n)
{
    char **v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = strdup(queues[i]))) {
            free_strv(v, i);
            return NULL;
        }
    return v;
}

/*
 * The worker's queue set changed (add_consumer, cancel_consumer, a
 * paused queue): the I/O thread takes the new set between two commands
 * (within a BRPOP timeout), never in the middle of one, so no popped
 * message is lost on the way. What it prefetched stays reserved and is
 * handed out.
 */
static int post_queues(struct redis_broker *b, const char *const *queues, size_t n)
{
    char **asked = copy_strv(queues, n), **next = copy_strv(queues, n);
    if (!asked || !next) {
        free_strv(asked, n);
        free_strv(next, n);
        return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
    }
    free_strv(b->asked, b->nasked);
    b->asked = asked;
    b->nasked = n;
    pthread_mutex_lock(&b->mu);
    free_strv(b->next_queues, b->nnext);
    b->next_queues = next;
    b->nnext = n;
    b->queues_changed = true;
    pthread_mutex_unlock(&b->mu);
    cel__redis_wake_for(b, 1); /* ends a BRPOP on the old set now */
    return CEL_OK;
}

static int rb_length_bands(struct cel_broker *base, const char *queue, int *prios, size_t *lens,
                           size_t max, size_t *n)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *n = 0;
    struct cel_redis_cmds q = {0};
    int rc = add_band_cmds(&q, "LLEN", queue);
    redisReply **rs = NULL;
    if (rc == CEL_OK)
        rc = cel__redis_broker_run(b, &q, &rs);
    else
        rc = cel__err(&base->err, rc, "cannot read length of queue '%s'", queue);
    if (rc == CEL_OK) {
        /* Every band, empty ones too: the four lists are kombu's layout. */
        for (int i = 0; i < CEL_REDIS_NBANDS; i++) {
            if ((size_t)i < max) {
                prios[i] = cel__redis_band_step(i);
                lens[i] = sum_ints(rs, (size_t)i, 1);
            }
        }
        *n = CEL_REDIS_NBANDS;
    }
    cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

static int rb_fetch(struct cel_broker *base, const char *const *queues, size_t nqueues, size_t max,
                    int64_t lease_ms, struct cel_delivery *out, size_t *n, int64_t *next_due_us)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *n = 0;
    if (next_due_us)
        *next_due_us = 0; /* due times are the I/O thread's business */
    if (b->started && !same_queues(b->asked, b->nasked, queues, nqueues)) {
        int rc = post_queues(b, queues, nqueues);
        if (rc != CEL_OK)
            return rc;
    }
    if (!b->started && nqueues == 0)
        return CEL_OK;
    if (!b->started) {
        /* Before the thread starts: its first sweep needs the timeout. */
        pthread_mutex_lock(&b->mu);
        if (lease_ms > 0)
            b->lease_ms = lease_ms;
        b->room = max;
        pthread_mutex_unlock(&b->mu);
        int rc = cel__redis_consumer_start(b, queues, nqueues);
        if (rc == CEL_OK && !(b->asked = copy_strv(queues, nqueues)))
            rc = cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
        if (rc != CEL_OK)
            return rc;
        b->nasked = nqueues;
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
        cel__redis_eventfd_signal(b->kick);
    return CEL_OK;
}

static int rb_wakeup_fd(struct cel_broker *base)
{
    return ((struct redis_broker *)base)->efd;
}

static void rb_drain_wakeup(struct cel_broker *base)
{
    cel__redis_eventfd_drain(((struct redis_broker *)base)->efd);
}

/* ---- rate limits (issue 7) ----------------------------------------------
 * One EVALSHA: the script reads, refills and takes on the server's clock,
 * atomically among all workers. */
static int rb_rate_acquire(struct cel_broker *base, const char *name, double per_sec,
                           int64_t *wait_us)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *wait_us = 0;
    char key[CEL_REDIS_KEY_MAX], rate[64];
    int n = snprintf(key, sizeof key, CEL_REDIS_KEY_RATE_PREFIX "%s", name);
    if (n < 0 || (size_t)n >= sizeof key)
        return cel__err(&base->err, CEL_EINVAL, "task name too long for a rate bucket");
    snprintf(rate, sizeof rate, "%.17g", per_sec);
    const char *argv[] = {"EVALSHA", b->main_shas[CEL_REDIS_SCRIPT_RATE], "1", key, rate};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc =
        cel__redis_cmds_addv(&q, 5, argv) == CEL_OK ? cel__redis_broker_run(b, &q, &rs) : oom(b);
    if (rc == CEL_OK) {
        if (rs[0]->type == REDIS_REPLY_INTEGER)
            *wait_us = rs[0]->integer > 0 ? rs[0]->integer : 0;
        else
            rc = cel__err(&base->err, CEL_EBROKER, "redis %s: unexpected reply to the rate script",
                          b->target.display);
        cel__redis_replies_free(rs, q.n);
    }
    cel__redis_cmds_release(&q);
    return rc;
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
    .requeue_at = rb_requeue_at,
    .extend = rb_extend,
    .purge = rb_purge,
    .length = rb_length,
    .length_bands = rb_length_bands,
    .wakeup_fd = rb_wakeup_fd,
    .drain_wakeup = rb_drain_wakeup,
    .fanout_publish = cel__redis_fanout_publish,
    .fanout_subscribe = cel__redis_fanout_subscribe,
    .fanout_poll = cel__redis_fanout_poll,
    .fanout_fd = cel__redis_fanout_fd,
    .fanout_close = cel__redis_fanout_close,
    .revoke_add = cel__redis_revoke_add,
    .revoke_list = cel__redis_revoke_list,
    .rate_acquire = rb_rate_acquire,
    .dead_list = cel__redis_dead_list,
    .dead_get = cel__redis_dead_get,
    .dead_requeue = cel__redis_dead_requeue,
    .dead_purge = cel__redis_dead_purge,
    .mailbox_open = cel__redis_mailbox_open,
    .mailbox_take = cel__redis_mailbox_take,
    .mailbox_close = cel__redis_mailbox_close,
    .mailbox_send = cel__redis_mailbox_send,
    .queue_pause = rb_queue_pause,
    .queue_paused_list = rb_queue_paused_list,
    .sched_put = cel__redis_sched_put,
    .sched_get = cel__redis_sched_get,
    .sched_list = cel__redis_sched_list,
    .sched_remove = cel__redis_sched_remove,
    .sched_enable = cel__redis_sched_enable,
    .sched_version = cel__redis_sched_version,
    .lease_acquire = cel__redis_lease_acquire,
    .lease_release = cel__redis_lease_release,
    .sched_fire = cel__redis_sched_fire,
};
