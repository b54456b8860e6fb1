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
    /* ---- periodic entries (beat), redis_schedule.c ----
     * Entry state lives in KEYS[2] (celeriac.schedule.state) as the text
     * "<enabled 0|1> <last_run_us> <total_runs> <updated_us>", next to
     * the document in KEYS[1] (celeriac.schedule); KEYS[3] is
     * celeriac.schedule.version. Numbers travel as decimal text and are
     * compared as text, never as Lua doubles.
     *
     * SCHED_PUT: stores doc ARGV[2] under name ARGV[1], enabled ARGV[3],
     * updated ARGV[5]; an existing entry keeps its last run and total and
     * is replaced only when ARGV[4] is "1". Bumps the version. Returns 1,
     * or 0 (nothing written) when the entry exists and may not be
     * replaced. */
    CEL_REDIS_SCRIPT_SCHED_PUT,
    /* SCHED_EDIT: ARGV[2] "-" removes entry ARGV[1], "0"/"1" disables or
     * enables it (updated ARGV[3]). Bumps the version. Returns 1, or 0
     * (nothing written) when there is no such entry. */
    CEL_REDIS_SCRIPT_SCHED_EDIT,
    /* LEASE: KEYS[1] (celeriac.lease.<name>) becomes ARGV[1] for ARGV[2]
     * ms when it is free (SET PX; an expired lease is gone) or already
     * holds ARGV[1] (PEXPIRE). Returns 1 when ARGV[1] holds it. Released
     * by UNLOCK. */
    CEL_REDIS_SCRIPT_LEASE,
    /* SCHED_FIRE: one run of entry ARGV[1], only while KEYS[3] (its lease)
     * holds ARGV[2] and the entry exists, is enabled and its last run is
     * ARGV[3]. Then, when ARGV[5] is "1", pushes as publish() does: SADD
     * ARGV[8] to KEYS[5] (the queue's binding), and ZADD ARGV[6] scored
     * ARGV[7] to KEYS[4] (celeriac.delayed) when ARGV[7] is not empty,
     * else LPUSH ARGV[6] on KEYS[4] (the band list), and counts the run;
     * the last run becomes ARGV[4] either way. Returns {"ok", ""} or,
     * writing nothing, {"lease", holder or ""}, {"missing", ""},
     * {"disabled", ""}, {"ran", last run}. */
    CEL_REDIS_SCRIPT_SCHED_FIRE,
    CEL_REDIS_NSCRIPTS
};

/* The sources, indexed by enum cel_redis_script, NULL-terminated (the
 * form cel__redis_init() takes). */
extern const char *const cel__redis_broker_scripts[CEL_REDIS_NSCRIPTS + 1];

#endif
