/*
 * redis_keys.h - the Redis transport's key layout: kombu 5.2's keyspace,
 * so Python Celery clients and workers share queues with us
 * (reference/celery-protocol.md, sections 1-5 and 10), plus two keys of
 * our own that Python never touches.
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
 *   _kombu.binding.reply.celery.pidbox
 *                    set with "<oid>\x06\x16\x06\x16<oid>.reply.celery.pidbox"
 *                    while control client <oid> waits for replies
 *   <oid>.reply.celery.pidbox
 *                    list (and its bands) of the replies to that client:
 *                    repliers LPUSH only while the binding exists, the
 *                    client BRPOPs, then SREMs the binding and DELs them
 *
 * Ours:
 *
 *   celeriac.delayed       zset of messages published with a due time
 *                          (ETA, countdown, retry), scored by due time in
 *                          ms; member {"k": list key, "q": queue,
 *                          "p": priority, "m": envelope text}. Consumers
 *                          move due members to their list with a Lua
 *                          script at least every second, and at the
 *                          due time of the earliest member they know of
 *                          (seen at that check, or parked by their own
 *                          handle: celeriac.wake.<id>). Delayed tasks
 *                          therefore never sit in a worker's memory or in
 *                          `unacked`, where kombu's sweep would duplicate
 *                          them (kombu #337).
 *   celeriac.dead_letters  list of rejected messages (kombu has no dead
 *                          letter queue), newest first: {"queue",
 *                          "reason", "dead_at", "delivery_tag" (when
 *                          known), "message": envelope text}, or
 *                          "message_base64" instead when the bytes are
 *                          not UTF-8. Also what the transport cannot
 *                          deliver: empty messages, unacked records and
 *                          delayed members that do not decode.
 *   celeriac.deliveries    hash delivery_tag -> how often we restored the
 *                          message (reject with requeue, the visibility
 *                          sweep, close), so that delivery_count counts
 *                          on Redis and the worker can stop a poison
 *                          message. Read when popped, removed on ack and
 *                          dead-letter. Only a message we restored and a
 *                          Python worker then acked leaves its field
 *                          behind (kombu does not know the hash; our sweep
 *                          drops fields of messages it finds acked).
 *   celeriac.paused        set of queue names no celeriac worker consumes
 *                          until they are resumed (queue_pause)
 *   celeriac.wake.<id>     list, one per consuming handle (random id):
 *                          the I/O thread's BRPOP also waits on it, and
 *                          the handle pushes a token there when it parked
 *                          a message due before the thread would wake
 *                          (redis_wake.c). Tokens are discarded, never
 *                          messages; the key is in no binding, never a
 *                          queue, and expires a few seconds after the
 *                          last push, so a crashed worker leaves nothing.
 *   celeriac.schedule      hash entry name -> its document (JSON, beat)
 *   celeriac.schedule.state
 *                          hash entry name -> "<enabled 0|1> <last_run_us>
 *                          <total_runs> <updated_us>" (decimal, one space
 *                          apart), written only by the scripts of
 *                          redis_scripts.h together with the document
 *   celeriac.schedule.version
 *                          integer, INCR by every put, remove, enable
 *   celeriac.lease.<name>  string: the holder of lease <name> (the leading
 *                          beat), PX its remaining time; gone when free
 *
 * Pure helpers only: no I/O, nothing to link.
 */
#ifndef CEL_BROKER_REDIS_KEYS_H
#define CEL_BROKER_REDIS_KEYS_H

#include <stdbool.h>
#include <stdio.h>

#define CEL_REDIS_KEY_UNACKED       "unacked"
#define CEL_REDIS_KEY_UNACKED_INDEX "unacked_index"
#define CEL_REDIS_KEY_UNACKED_MUTEX "unacked_mutex"
#define CEL_REDIS_KEY_DELAYED       "celeriac.delayed"
#define CEL_REDIS_KEY_DEAD          "celeriac.dead_letters"
/* Revokes (redis_revoke.c): zset task id -> expiry (ms), and hash task id
 * -> signal number for the revokes that also terminate. */
#define CEL_REDIS_KEY_REVOKED        "celeriac.revoked"
#define CEL_REDIS_KEY_REVOKED_SIGNAL "celeriac.revoked.signal"
#define CEL_REDIS_KEY_DELIVERIES     "celeriac.deliveries"
/* Paused queues (queue_pause): a set of queue names. */
#define CEL_REDIS_KEY_PAUSED "celeriac.paused"
/* kombu's direct reply exchange of remote control (redis_mailbox.c): the
 * binding set, and the suffix of each client's reply list. */
#define CEL_REDIS_KEY_REPLY_BINDING "_kombu.binding.reply.celery.pidbox"
#define CEL_REDIS_REPLY_SUFFIX      ".reply.celery.pidbox"
/* + a random id: a consumer's wake-up list (above). */
#define CEL_REDIS_KEY_WAKE_PREFIX "celeriac.wake."
#define CEL_REDIS_WAKE_TTL_MS     "5000"
/* + task name: a global rate-limit bucket (redis_scripts.h, RATE). */
#define CEL_REDIS_KEY_RATE_PREFIX "celeriac.rate."

/* Periodic entries and leases (redis_schedule.c, described above). */
#define CEL_REDIS_KEY_SCHEDULE         "celeriac.schedule"
#define CEL_REDIS_KEY_SCHEDULE_STATE   "celeriac.schedule.state"
#define CEL_REDIS_KEY_SCHEDULE_VERSION "celeriac.schedule.version"
#define CEL_REDIS_KEY_LEASE_PREFIX     "celeriac.lease."

/* kombu's separator of band suffixes and binding fields. */
#define CEL_REDIS_SEP "\x06\x16"

/* Priority bands: kombu's priority_steps [0, 3, 6, 9]. */
#define CEL_REDIS_NBANDS 4

/* Longest key we build (queue names are shorter in practice). */
#define CEL_REDIS_KEY_MAX 1024

/* Priority step of band i (0 is served first). */
static inline int cel__redis_band_step(int i)
{
    return 3 * i;
}

/* The band a priority falls into: the largest step <= priority, clamped
 * to 0..9. */
static inline int cel__redis_band_of(int priority)
{
    int p = priority < 0 ? 0 : priority > 9 ? 9 : priority;
    return p >= 9 ? 9 : p >= 6 ? 6 : p >= 3 ? 3 : 0;
}

/* Key of band `step` of `queue` into buf; NULL when it does not fit. */
static inline const char *cel__redis_band_key(const char *queue, int step, char *buf, size_t len)
{
    int n = step ? snprintf(buf, len, "%s" CEL_REDIS_SEP "%d", queue, step)
                 : snprintf(buf, len, "%s", queue);
    return n >= 0 && (size_t)n < len ? buf : NULL;
}

/* The binding set of queue `queue` and its member for direct routing
 * (routing key = queue name), as every kombu producer and consumer adds
 * it. key needs CEL_REDIS_KEY_MAX bytes, member 3 * CEL_REDIS_KEY_MAX.
 * False when the queue name is too long. */
static inline bool cel__redis_binding(const char *queue, char *key, char *member)
{
    int n1 = snprintf(key, CEL_REDIS_KEY_MAX, "_kombu.binding.%s", queue);
    int n2 = snprintf(member, 3 * CEL_REDIS_KEY_MAX, "%s" CEL_REDIS_SEP CEL_REDIS_SEP "%s", queue,
                      queue);
    return n1 >= 0 && n1 < CEL_REDIS_KEY_MAX && n2 >= 0 && n2 < 3 * CEL_REDIS_KEY_MAX;
}

/* Reply list of mailbox `name` ("<name>.reply.celery.pidbox") and its
 * member of the reply binding set; both need CEL_REDIS_KEY_MAX bytes.
 * False when the name is too long. */
static inline bool cel__redis_reply_binding(const char *name, char *list, char *member)
{
    int n1 = snprintf(list, CEL_REDIS_KEY_MAX, "%s" CEL_REDIS_REPLY_SUFFIX, name);
    int n2 = snprintf(member, CEL_REDIS_KEY_MAX, "%s" CEL_REDIS_SEP CEL_REDIS_SEP "%s", name,
                      n1 >= 0 && n1 < CEL_REDIS_KEY_MAX ? list : "");
    return n1 >= 0 && n1 < CEL_REDIS_KEY_MAX && n2 >= 0 && n2 < CEL_REDIS_KEY_MAX;
}

#endif
