/*
 * redis_scripts.h - the Lua scripts of the Redis transport.
 *
 * Each script makes one step atomic that kombu does in several round
 * trips (or with WATCH), so a consumer never leaves half a record behind
 * and costs one round trip per batch. The connection loads them at every
 * connect (store/redis_conn.h) and calls them by SHA with EVALSHA; the
 * keys they touch are named in redis_keys.h.
 */
#ifndef CEL_BROKER_REDIS_SCRIPTS_H
#define CEL_BROKER_REDIS_SCRIPTS_H

enum cel_redis_script {
    /*
     * POP: records a message the consumer already popped with BRPOP
     * (ARGV[4], from queue ARGV[5], when ARGV[3] is "1") and pops up to
     * ARGV[2] more from KEYS[5..] in order, recording each exactly like
     * kombu: KEYS[2] (unacked_index) scored ARGV[1], KEYS[1] (unacked) =
     * [envelope, exchange, routing_key]. ARGV[1+i] is the queue of
     * KEYS[i]. Returns {queue, tag, delivery count, envelope} per
     * message: 1 + the count in KEYS[3] (celeriac.deliveries) when there
     * is one, else 2 when the envelope says "redelivered": true (restored
     * by kombu, which does not count), else 1. Envelopes that do not
     * decode are still recorded (tag = sha1 of the text) so the worker
     * sees and dead-letters them; an empty message is dead-lettered to
     * KEYS[4] at once and returned as {queue, reason, 0, ""}.
     */
    CEL_REDIS_SCRIPT_POP,
    /* MOVE: pushes members of KEYS[1] (celeriac.delayed) due at ARGV[1]
     * (ms), at most ARGV[2], to their lists; members that do not decode go
     * to KEYS[2] (dead letters, dead_at ARGV[3]). Returns {moved, next due
     * score or false, dead-lettered}. */
    CEL_REDIS_SCRIPT_MOVE,
    /* RESTORE: kombu's WATCH/HGET/MULTI restore as one atomic step. Gives
     * tag ARGV[1] back as ARGV[2] at the front of KEYS[3], removing it
     * from KEYS[1] (unacked) and KEYS[2] (unacked_index), and counts the
     * restore in KEYS[4] (celeriac.deliveries), unless someone acked or
     * restored it meanwhile, or (sweep) its score moved above ARGV[3]
     * because its owner extended it. Returns 1 when restored. */
    CEL_REDIS_SCRIPT_RESTORE,
    /* UNLOCK: kombu's Mutex release: DEL KEYS[1] if it holds ARGV[1]. */
    CEL_REDIS_SCRIPT_UNLOCK,
    /* ---- rate limits (issue 7) ----
     * RATE: takes a token from the bucket hash KEYS[1] (fields t: tokens,
     * s: stamp in µs) refilled at ARGV[1] tokens a second, capacity 1,
     * on the server's clock (TIME), so worker clocks do not matter.
     * Returns 0 when taken, else the µs until a token is due (nothing
     * written). The key expires once it would be full again anyway. */
    CEL_REDIS_SCRIPT_RATE,
    /* DELAYED: counts the members of KEYS[1] (celeriac.delayed) that
     * contain ARGV[1] (the member's queue field, '"q":"<queue>",', which
     * can occur nowhere else in a member: every quote inside the values
     * is escaped) and removes them when ARGV[2] is "1". O(members). */
    CEL_REDIS_SCRIPT_DELAYED,
    /* RESTORE_AT: RESTORE into the delayed set instead of the list: tag
     * ARGV[1] leaves KEYS[1] (unacked) and KEYS[2] (unacked_index),
     * member ARGV[2] joins KEYS[3] (celeriac.delayed) scored ARGV[3] (ms),
     * and the restore is counted in KEYS[4] (celeriac.deliveries), which
     * still counts when the member is moved and popped again (same tag).
     * Returns 1 when restored, 0 when someone acked or restored it. */
    CEL_REDIS_SCRIPT_RESTORE_AT,
    /* REPLY: kombu's reply to a control client, in one round trip: LPUSH
     * ARGV[2] on KEYS[2] (the client's reply list) only if ARGV[1] (its
     * binding member) is in KEYS[1] (_kombu.binding.reply.celery.pidbox),
     * so a reply to a client that is gone leaves no list behind. Returns 1
     * when pushed, 0 when dropped. */
    CEL_REDIS_SCRIPT_REPLY,
    CEL_REDIS_NSCRIPTS
};

/* The sources, indexed by enum cel_redis_script, NULL-terminated (the
 * form cel__redis_init() takes). */
extern const char *const cel__redis_broker_scripts[CEL_REDIS_NSCRIPTS + 1];

#endif
