/*
 * redis_internal.h - the Redis transport's handle, shared by its files:
 *
 *   redis.c           the ops table: open/close, publish, ack, reject,
 *                     extend, purge, length, fetch from the ready list
 *   redis_consumer.c  the consumer's I/O thread (BRPOP, pop script,
 *                     visibility sweep, delayed mover)
 *   redis_envelope.c  what the transport writes back about a message:
 *                     kombu's restore
 *   redis_fanout.c    fan-out publish/subscribe (kombu's pub/sub layout)
 *   redis_mailbox.c   reply mailboxes (kombu's reply.celery.pidbox)
 *   redis_schedule.c  periodic entries and leases (beat)
 *   redis_wake.c      waking the I/O thread early for a message this
 *                     handle parks in celeriac.delayed
 *   redis_keys.h      the key layout; redis_scripts.{c,h} the Lua scripts
 *
 * Threads: the caller (the handle's owner) uses `main`; the I/O thread
 * uses `io`; the fields between them are shared under `mu`.
 */
#ifndef CEL_BROKER_REDIS_INTERNAL_H
#define CEL_BROKER_REDIS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/redis_keys.h"
#include "broker/redis_scripts.h"
#include "core/clock.h"
#include "core/uuid.h"
#include "store/redis_conn.h"

#define CEL_REDIS_COMP "broker.redis"

#define CEL_REDIS_OP_BUDGET_MS     5000 /* reconnect budget of one caller-side operation */
#define CEL_REDIS_BRPOP_TIMEOUT_MS 1000 /* kombu's, and our maintenance cadence */

struct cel_redis_ready_list {
    struct cel_delivery *v; /* v[head .. head + n) */
    size_t head, n, cap;
};

struct redis_broker {
    struct cel_broker base;
    struct cel_redis_target target;
    int64_t default_vt_ms;

    /* Caller's thread. */
    struct cel_redis main;
    char main_shas[CEL_REDIS_NSCRIPTS][CEL_REDIS_SHA_LEN + 1];
    struct cel_redis_cmds batch; /* between begin() and commit() */
    bool batching;
    char **acks;                      /* tags acked inside the batch; the first ncounted may */
    size_t nacks, acks_cap, ncounted; /* have a field in celeriac.deliveries */
    char **asked; /* the queues fetch() was last called with (the caller's thread) */
    size_t nasked;
    char **bound; /* queues whose binding this connection added */
    size_t nbound;
    unsigned bound_gen;

    /* Consumer: shared between the caller and the I/O thread under mu. */
    pthread_mutex_t mu;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    char **queues; /* the I/O thread's while it runs */
    size_t nqueues;
    char **next_queues; /* a new set for the I/O thread (queues_changed) */
    size_t nnext;
    bool queues_changed;
    size_t room;      /* free prefetch slots at the last fetch() */
    int64_t lease_ms; /* visibility timeout the consumer asked for */
    struct cel_redis_ready_list ready;
    char *orphan, *orphan_queue; /* popped, not recorded, left by the thread */
    int64_t tag_seq;
    int efd;  /* wakeup_fd(): messages on the ready list */
    int kick; /* wakes the I/O thread: room freed, a park, or stop */

    /* Early wake-up (redis_wake.c). The I/O thread only learns due times
     * from its periodic check of celeriac.delayed; a park by this handle
     * due before the thread's next look tells it directly. Lock-free: the
     * parker stores the hint then reads io_wake_at_ms, the thread stores
     * io_wake_at_ms then reads the hint, so one of them always sees the
     * other (all seq_cst). */
    char wake_key[sizeof CEL_REDIS_KEY_WAKE_PREFIX + CEL_UUID_STRLEN]; /* set at open */
    atomic_llong wake_hint_ms;  /* earliest due (wall ms) parked here, not yet taken; 0: none */
    atomic_llong io_wake_at_ms; /* wall ms the blocked I/O thread looks next; 0: awake */
    atomic_bool io_in_brpop;    /* ...blocked in BRPOP (else in io_wait) */
    int64_t batch_due_ms;       /* caller's thread: earliest park in the open batch, 0: none */

    /* I/O thread only. */
    struct cel_redis io;
    char io_shas[CEL_REDIS_NSCRIPTS][CEL_REDIS_SHA_LEN + 1];
};

/*
 * unacked_index score for "now": whole seconds. kombu writes float
 * seconds and compares them with now - visibility_timeout only, so one
 * second of truncation is harmless; integer scores keep Redis from
 * parsing every score of the (small, listpack-encoded) zset with strtod
 * on each insert, which made ZADD the costliest command per message.
 */
static inline void cel__redis_index_score(char *buf, size_t len)
{
    snprintf(buf, len, "%lld", (long long)(cel__wall_us() / 1000000));
}

static inline void cel__redis_eventfd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w; /* EAGAIN: already readable */
}

static inline void cel__redis_eventfd_drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

/* How publish() stores one message: LPUSH on `list`, or, when due later,
 * ZADD `parked` to celeriac.delayed scored `score` (due ms); and the
 * queue's binding (SADD binding_member to binding), as kombu producers
 * declare it. sched_fire's script does the same in Lua. */
struct cel_redis_push {
    char list[CEL_REDIS_KEY_MAX];
    char binding[CEL_REDIS_KEY_MAX];
    char binding_member[3 * CEL_REDIS_KEY_MAX];
    char *parked;    /* NULL: push now */
    char score[32];  /* with parked */
    int64_t park_ms; /* with parked: for cel__redis_wake_for() */
};

/* Fills p for publishing `body` on `queue` (CEL_EINVAL: queue name too
 * long or, when parked, body not UTF-8). Release with
 * cel__redis_push_release(), also after a failure. */
int cel__redis_push_plan(struct redis_broker *b, const char *queue, int priority, int64_t due_us,
                         const char *body, size_t len, struct cel_redis_push *p);
void cel__redis_push_release(struct cel_redis_push *p);

/* Runs q on the caller's connection (b->main); returns the first Redis
 * error as CEL_EBROKER. Replies are kept when `out` is not NULL. */
int cel__redis_broker_run(struct redis_broker *b, const struct cel_redis_cmds *q,
                          redisReply ***out);

/* Appends to q the atomic restore (RESTORE script, by `sha`) of `tag`:
 * `env` (as delivered) goes back to the front of `queue`'s band list for
 * its priority, flagged redelivered like kombu's restore, unless its
 * unacked_index score is above `max_score` ("1e300": unconditionally).
 * CEL_EINVAL when the queue name is too long, CEL_ENOMEM. */
int cel__redis_add_restore(struct cel_redis_cmds *q, const char *sha, const char *tag,
                           const char *queue, const char *env, size_t len, const char *max_score);

/* The member of celeriac.delayed for `body` due on list `key` of `queue`
 * (redis_keys.h); caller frees. NULL when body is not UTF-8 or out of
 * memory (*bad_utf8 tells which). */
char *cel__redis_delayed_member(const char *key, const char *queue, int priority, const char *body,
                                size_t len, bool *bad_utf8);

/* Appends to q the restore of `tag` into celeriac.delayed, due at due_us
 * (RESTORE_AT script, by `sha`): the restore of cel__redis_add_restore(),
 * counted the same way, but parked until then. CEL_EINVAL when the queue
 * name is too long or the envelope not UTF-8, CEL_ENOMEM. */
int cel__redis_add_restore_at(struct cel_redis_cmds *q, const char *sha, const char *tag,
                              const char *queue, const char *env, size_t len, int64_t due_us);

/* Appends to q the dead-lettering of `tag` as one MULTI/EXEC: its record
 * (with the message bytes as they are, base64 when not UTF-8) pushed on
 * celeriac.dead_letters, its unacked entries and delivery count removed.
 * CEL_ENOMEM. */
int cel__redis_add_dead_letter(struct cel_redis_cmds *q, const char *queue, const char *reason,
                               const char *tag, const char *body, size_t len);

/* Reads an unacked record "[envelope, exchange, routing_key]" by its
 * layout, so that an envelope that is not JSON, or not UTF-8, comes back
 * byte for byte: *env points into rec; exchange and routing key are new
 * strings (caller frees). CEL_EPROTO when rec is not of that layout. */
int cel__redis_split_record(const char *rec, size_t len, const char **env, size_t *envlen,
                            char **exchange, char **routing_key);

/* Parker side of the early wake-up, on the caller's thread after a park
 * due at due_ms (wall) succeeded: records it for the I/O thread and, when
 * the thread waits beyond it, wakes it (kick, or a token on wake_key when
 * it is in BRPOP, which the eventfd cannot interrupt). Costs one atomic
 * when the handle does not consume or the thread looks earlier anyway.
 * Never fails: the message is parked; at worst it runs at the periodic
 * check, as one parked by another process does. */
void cel__redis_wake_for(struct redis_broker *b, int64_t due_ms);
/* I/O thread side: takes the earliest due parked since the last call
 * (wall ms), 0 when none. */
int64_t cel__redis_wake_take(struct redis_broker *b);
/* I/O thread side, just before it blocks until wake_at_ms (wall) in BRPOP
 * (`brpop`) or io_wait(): publishes that and returns false when a hint
 * due before then arrived meanwhile (do not block: loop and take it).
 * cel__redis_wake_awake() after the wait. */
bool cel__redis_wake_arm(struct redis_broker *b, int64_t wake_at_ms, bool brpop);
void cel__redis_wake_awake(struct redis_broker *b);

/* Starts the I/O thread consuming `queues` (copied); see redis_consumer.c. */
int cel__redis_consumer_start(struct redis_broker *b, const char *const *queues, size_t nqueues);
/* Stops and joins it; a message it popped but did not record is left in
 * b->orphan for close() to give back. No-op when not started. */
void cel__redis_consumer_stop(struct redis_broker *b);

/* The fan-out ops (broker.h), in redis_fanout.c. */
int cel__redis_fanout_publish(struct cel_broker *b, const char *exchange, const char *routing_key,
                              const char *envelope, size_t len);
int cel__redis_fanout_subscribe(struct cel_broker *b, const char *exchange, const char *pattern,
                                struct cel_fanout_sub **out);
int cel__redis_fanout_poll(struct cel_fanout_sub *s, struct cel_fanout_msg *out, size_t max,
                           size_t *n);
int cel__redis_fanout_fd(struct cel_fanout_sub *s);
void cel__redis_fanout_close(struct cel_fanout_sub *s);

/* The revoke ops (broker.h), in redis_revoke.c. */
int cel__redis_revoke_add(struct cel_broker *b, const char *const *ids, size_t n,
                          int64_t expires_us, bool terminate, int signum, size_t keep_max);
int cel__redis_revoke_list(struct cel_broker *b, struct cel_revoke_entry **out, size_t *n);

/* redis_dead.c: the dead-letter ops (broker.h). */
int cel__redis_dead_list(struct cel_broker *b, const char *queue, size_t offset, size_t max,
                         struct cel_dead_letter **out, size_t *n);
int cel__redis_dead_get(struct cel_broker *b, const char *id, struct cel_dead_letter *out);
int cel__redis_dead_requeue(struct cel_broker *b, const char *id);
int cel__redis_dead_purge(struct cel_broker *b, const char *queue, const char *id, size_t *removed);
/* The periodic-entry and lease ops (broker.h), in redis_schedule.c. */
int cel__redis_sched_put(struct cel_broker *b, const char *name, const char *doc, size_t len,
                         bool enabled, bool replace);
int cel__redis_sched_get(struct cel_broker *b, const char *name, struct cel_sched_row *out);
int cel__redis_sched_list(struct cel_broker *b, struct cel_sched_row **out, size_t *n);
int cel__redis_sched_remove(struct cel_broker *b, const char *name);
int cel__redis_sched_enable(struct cel_broker *b, const char *name, bool enabled);
int cel__redis_sched_version(struct cel_broker *b, int64_t *version);
int cel__redis_lease_acquire(struct cel_broker *b, const char *lease, const char *holder,
                             int64_t ttl_ms, bool *held);
int cel__redis_lease_release(struct cel_broker *b, const char *lease, const char *holder);
int cel__redis_sched_fire(struct cel_broker *b, const struct cel_sched_fire *f);

/* The mailbox ops (broker.h), in redis_mailbox.c. */
int cel__redis_mailbox_open(struct cel_broker *b, const char *name, struct cel_mailbox **out);
int cel__redis_mailbox_take(struct cel_mailbox *m, int64_t timeout_ms, char **env, size_t *len);
void cel__redis_mailbox_close(struct cel_mailbox *m);
int cel__redis_mailbox_send(struct cel_broker *b, const char *name, const char *env, size_t len);

#endif
