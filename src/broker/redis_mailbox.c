/*
 * redis_mailbox.c - reply mailboxes on Redis, exactly as kombu 5.2's
 * pidbox client and worker use them (reference/celery-protocol.md,
 * sections 9.3, 9.4 and 10), so `celery inspect` hears replies we send
 * and we hear replies Python workers send:
 *
 *   open   SADD _kombu.binding.reply.celery.pidbox
 *               "<name>\x06\x16\x06\x16<name>.reply.celery.pidbox"
 *   take   BRPOP <name>.reply.celery.pidbox and its three priority bands
 *          (kombu's client polls them all, so a reply pushed to any band
 *          by some other producer is still heard)
 *   close  SREM of the binding, then DEL of the four lists (MULTI/EXEC)
 *   send   the REPLY script: LPUSH to the list only while the binding
 *          exists, one round trip; a reply for a client that is gone is
 *          dropped without creating a list nobody would delete
 *
 * A mailbox has a blocking connection of its own, so the handle's owner
 * is never stuck behind a BRPOP. take() waits in slices of at most
 * TAKE_SLICE_MS: the connection's command timeout (5 s) must stay above
 * every BRPOP. After a reconnect the binding is added again (a Redis
 * restart without persistence forgets it, and repliers would drop every
 * reply). A wait that ends empty may end up to 100 ms
 * late: Redis checks blocked clients' timeouts at its `hz` (10 a second
 * by default), as kombu's own 1 s BRPOPs experience too.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/redis_internal.h"
#include "core/log.h"

#define COMP_MAILBOX  "broker.redis.mailbox"
#define TAKE_SLICE_MS 1000

struct cel_mailbox {
    struct cel_redis_target target; /* a copy: the handle may close first */
    struct cel_redis conn;
    char list[CEL_REDIS_KEY_MAX];                        /* <name>.reply.celery.pidbox */
    char member[CEL_REDIS_KEY_MAX];                      /* its binding */
    char bands[CEL_REDIS_NBANDS][CEL_REDIS_KEY_MAX + 8]; /* list + "\x06\x16<step>" */
    unsigned bound_gen; /* conn.generation the binding was added on */
    struct cel_errbuf err;
};

/* Runs q on the mailbox's connection within budget_ms; replies kept when
 * out is not NULL. */
static int mb_run(struct cel_mailbox *m, const struct cel_redis_cmds *q, int64_t budget_ms,
                  redisReply ***out)
{
    return cel__redis_run(&m->conn, q, out, budget_ms, &m->err);
}

/* SADD of the binding, on a connection that has not added it yet. */
static int bind_mailbox(struct cel_mailbox *m, int64_t budget_ms)
{
    const char *argv[] = {"SADD", CEL_REDIS_KEY_REPLY_BINDING, m->member};
    struct cel_redis_cmds q = {0};
    int rc = cel__redis_cmds_addv(&q, 3, argv) == CEL_OK
                 ? mb_run(m, &q, budget_ms, NULL)
                 : cel__err(&m->err, CEL_ENOMEM, "out of memory");
    if (rc == CEL_OK)
        m->bound_gen = m->conn.generation;
    cel__redis_cmds_release(&q);
    return rc;
}

static void mailbox_free(struct cel_mailbox *m)
{
    cel__redis_close(&m->conn);
    cel__redis_target_release(&m->target);
    free(m);
}

int cel__redis_mailbox_open(struct cel_broker *base, const char *name, struct cel_mailbox **out)
{
    struct redis_broker *b = (struct redis_broker *)base;
    *out = NULL;
    struct cel_mailbox *m = calloc(1, sizeof *m);
    if (!m)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    if (!cel__redis_reply_binding(name, m->list, m->member)) {
        free(m);
        return cel__err(&base->err, CEL_EINVAL, "mailbox name too long");
    }
    for (int i = 0; i < CEL_REDIS_NBANDS; i++)
        cel__redis_band_key(m->list, cel__redis_band_step(i), m->bands[i], sizeof m->bands[i]);
    if (cel__redis_target_copy(&m->target, &b->target) != CEL_OK) {
        free(m);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    cel__redis_init(&m->conn, &m->target, COMP_MAILBOX, NULL, NULL);
    int rc = bind_mailbox(m, CEL_REDIS_OP_BUDGET_MS);
    if (rc != CEL_OK) {
        cel__err(&base->err, rc, "cannot open mailbox '%s': %s", name, m->err.msg);
        mailbox_free(m);
        return rc;
    }
    *out = m;
    return CEL_OK;
}

/* The envelope of a BRPOP reply [key, value] into *env; CEL_ETIMEDOUT
 * for nil. */
static int popped(struct cel_mailbox *m, const redisReply *r, char **env, size_t *len)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return CEL_ETIMEDOUT; /* nil: nothing within the wait */
    const redisReply *v = r->element[1];
    char *copy = malloc(v->len + 1);
    if (!copy)
        return cel__err(&m->err, CEL_ENOMEM, "out of memory");
    memcpy(copy, v->str, v->len);
    copy[v->len] = '\0';
    *env = copy;
    *len = v->len;
    return CEL_OK;
}

/*
 * One look: BRPOP over the bands for up to wait_ms, or, with wait_ms 0,
 * the same BRPOP inside MULTI/EXEC, where Redis never blocks (it pops
 * like RPOP from the first non-empty band, or answers nil).
 */
static int take_once(struct cel_mailbox *m, int64_t wait_ms, char **env, size_t *len)
{
    /* Disconnected, or reconnected since the binding was added (the
     * server may have restarted empty): bind (again) before waiting. */
    if (!m->conn.ctx || m->bound_gen != m->conn.generation) {
        int rc = bind_mailbox(m, wait_ms + TAKE_SLICE_MS);
        if (rc != CEL_OK)
            return rc;
    }
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", wait_ms / 1000.0);
    const char *argv[2 + CEL_REDIS_NBANDS] = {"BRPOP"};
    for (int i = 0; i < CEL_REDIS_NBANDS; i++)
        argv[1 + i] = m->bands[i];
    argv[1 + CEL_REDIS_NBANDS] = wait_ms > 0 ? secs : "0";
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    struct cel_redis_cmds q = {0};
    int rc = CEL_OK;
    if (wait_ms <= 0)
        rc = cel__redis_cmds_addv(&q, 1, multi);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 2 + CEL_REDIS_NBANDS, argv);
    if (rc == CEL_OK && wait_ms <= 0)
        rc = cel__redis_cmds_addv(&q, 1, exec);
    redisReply **rs = NULL;
    /* The budget covers the wait plus one slice for reconnecting: with the
     * server down, a caller waiting 1 s for replies hears so within about
     * 2 s, not after the 5 s a producer would keep trying. */
    if (rc == CEL_OK)
        rc = mb_run(m, &q, wait_ms + TAKE_SLICE_MS, &rs);
    else
        rc = cel__err(&m->err, CEL_ENOMEM, "out of memory");
    if (rc == CEL_OK) {
        const redisReply *r = rs[q.n - 1];
        if (wait_ms <= 0)
            r = r->type == REDIS_REPLY_ARRAY && r->elements == 1 ? r->element[0] : NULL;
        rc = r ? popped(m, r, env, len) : CEL_ETIMEDOUT;
        cel__redis_replies_free(rs, q.n);
        /* The connection came back inside this wait: bind at once rather
         * than a slice later, so fewer replies are dropped meanwhile. */
        if (m->bound_gen != m->conn.generation && bind_mailbox(m, TAKE_SLICE_MS) != CEL_OK)
            CEL_WARN(COMP_MAILBOX, "cannot bind %s again: %s", m->list, m->err.msg);
    }
    cel__redis_cmds_release(&q);
    return rc;
}

int cel__redis_mailbox_take(struct cel_mailbox *m, int64_t timeout_ms, char **env, size_t *len)
{
    *env = NULL;
    *len = 0;
    int64_t deadline = cel__mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - cel__mono_ms();
        int rc = take_once(m,
                           left <= 0              ? 0
                           : left < TAKE_SLICE_MS ? left
                                                  : TAKE_SLICE_MS,
                           env, len);
        if (rc != CEL_ETIMEDOUT || left <= TAKE_SLICE_MS)
            return rc;
    }
}

void cel__redis_mailbox_close(struct cel_mailbox *m)
{
    if (!m)
        return;
    /* kombu's order: unbind first, so no replier pushes after the DEL. */
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *srem[] = {"SREM", CEL_REDIS_KEY_REPLY_BINDING, m->member};
    const char *del[2 + CEL_REDIS_NBANDS] = {"DEL"};
    for (int i = 0; i < CEL_REDIS_NBANDS; i++)
        del[1 + i] = m->bands[i];
    struct cel_redis_cmds q = {0};
    int rc = cel__redis_cmds_addv(&q, 1, multi);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 3, srem);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 1 + CEL_REDIS_NBANDS, del);
    if (rc == CEL_OK)
        rc = cel__redis_cmds_addv(&q, 1, exec);
    if (rc == CEL_OK)
        rc = mb_run(m, &q, CEL_REDIS_OP_BUDGET_MS, NULL);
    if (rc != CEL_OK)
        CEL_WARN(COMP_MAILBOX, "cannot remove mailbox %s: %s", m->list, m->err.msg);
    cel__redis_cmds_release(&q);
    mailbox_free(m);
}

int cel__redis_mailbox_send(struct cel_broker *base, const char *name, const char *env, size_t len)
{
    struct redis_broker *b = (struct redis_broker *)base;
    char list[CEL_REDIS_KEY_MAX], member[CEL_REDIS_KEY_MAX];
    if (!cel__redis_reply_binding(name, list, member))
        return cel__err(&base->err, CEL_EINVAL, "mailbox name too long");
    const char *argv[] = {"EVALSHA", b->main_shas[CEL_REDIS_SCRIPT_REPLY],
                          "2",       CEL_REDIS_KEY_REPLY_BINDING,
                          list,      member,
                          env};
    size_t lens[7];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    lens[6] = len;
    /* Inside begin()/commit() it rides along with the batch. */
    struct cel_redis_cmds local = {0};
    struct cel_redis_cmds *q = b->batching ? &b->batch : &local;
    int rc = cel__redis_cmds_add(q, 7, argv, lens) == CEL_OK
                 ? CEL_OK
                 : cel__err(&base->err, CEL_ENOMEM, "out of memory");
    if (rc == CEL_OK && !b->batching)
        rc = cel__redis_broker_run(b, q, NULL);
    cel__redis_cmds_release(&local);
    return rc;
}
