/*
 * redis_conn.h - one hiredis connection that comes back by itself.
 *
 * The store layer: below both the Redis transport (src/broker/redis*.c)
 * and the Redis result store (src/backend/redis.c), above src/core only,
 * so it includes nothing from broker/ or backend/. A cel_redis owns one blocking redisContext
 * and knows how to (re)build it: connect with a 2 s timeout, AUTH, SELECT
 * the database, set a 5 s command timeout and load the caller's Lua
 * scripts. When a command fails with an I/O error the context is dropped
 * and the next operation reconnects, waiting 100 ms, then 200 ms, ...
 * up to 5 s between attempts, so a Redis restart costs a few warnings in
 * the log and never a hung or silently idle process.
 *
 * Commands are written in RESP into a cel_redis_cmds buffer first and
 * sent in one write (a pipeline): batching is then free, and a batch
 * that was cut off by a lost connection can be sent again as a whole.
 * Resending makes delivery at-least-once: a command that reached the
 * server just before the connection died runs twice.
 */
#ifndef CEL_STORE_REDIS_CONN_H
#define CEL_STORE_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "core/url.h"

#define CEL_REDIS_CONNECT_TIMEOUT_MS 2000
#define CEL_REDIS_COMMAND_TIMEOUT_MS 5000
#define CEL_REDIS_BACKOFF_MIN_MS     100
#define CEL_REDIS_BACKOFF_MAX_MS     5000
#define CEL_REDIS_SHA_LEN            40

/* Where to connect, from a redis:// or redis+socket:// URL. */
struct cel_redis_target {
    char *host;        /* TCP host, NULL for a unix socket */
    int port;          /* 6379 when absent */
    char *socket_path; /* redis+socket only */
    char *user;        /* ACL user (Redis 6+), NULL for password-only AUTH */
    char *password;
    int db;
    char display[256]; /* the URL with the password hidden, for messages */
};

int cel__redis_target_init(struct cel_redis_target *t, const struct cel_url *u,
                           struct cel_errbuf *err);
/* A deep copy, for a connection that outlives the handle it came from. */
int cel__redis_target_copy(struct cel_redis_target *dst, const struct cel_redis_target *src);
void cel__redis_target_release(struct cel_redis_target *t);

struct cel_redis {
    const struct cel_redis_target *target;
    const char *component;      /* log component, "broker.redis" */
    const char *const *scripts; /* NULL-terminated Lua sources, loaded on connect */
    char (*shas)[CEL_REDIS_SHA_LEN + 1];
    redisContext *ctx;     /* NULL while disconnected */
    int64_t backoff_ms;    /* wait before the next attempt after a failure */
    int64_t retry_at_ms;   /* monotonic time before which no attempt is made */
    int64_t down_since_ms; /* 0 while connected or never connected */
    unsigned generation;   /* bumped by every successful connect */
    char last_error[160];
};

/* `scripts` and `shas` may be NULL; shas needs one slot per script. */
void cel__redis_init(struct cel_redis *r, const struct cel_redis_target *t, const char *component,
                     const char *const *scripts, char (*shas)[CEL_REDIS_SHA_LEN + 1]);
void cel__redis_close(struct cel_redis *r);

/* One connection attempt now, regardless of the backoff. On failure the
 * backoff advances and the failure is logged. */
int cel__redis_connect(struct cel_redis *r, struct cel_errbuf *err);
/* Connected on return, or CEL_ECONNECT once `deadline_ms` (monotonic)
 * would pass before the next allowed attempt. Sleeps between attempts. */
int cel__redis_ensure(struct cel_redis *r, int64_t deadline_ms, struct cel_errbuf *err);
/* Drops the context after an I/O error, logging why. */
void cel__redis_lost(struct cel_redis *r, const char *why);

/* A pipeline of commands in wire format. */
struct cel_redis_cmds {
    char *buf;
    size_t len, cap;
    size_t n; /* commands, i.e. replies to read */
};

int cel__redis_cmds_add(struct cel_redis_cmds *q, int argc, const char *const *argv,
                        const size_t *lens);
/* Same, with NUL-terminated arguments. */
int cel__redis_cmds_addv(struct cel_redis_cmds *q, int argc, const char *const *argv);
/* The name (first argument) of the i-th command of q, for messages. */
void cel__redis_cmds_name(const struct cel_redis_cmds *q, size_t i, char *buf, size_t len);
void cel__redis_cmds_reset(struct cel_redis_cmds *q);
void cel__redis_cmds_release(struct cel_redis_cmds *q);

/*
 * Sends the pipeline and reads one reply per command into *replies
 * (caller frees with cel__redis_replies_free(*replies, q->n); may be
 * NULL to discard them). On a lost connection it reconnects and resends
 * the whole pipeline until `budget_ms` has passed, then fails with
 * CEL_ECONNECT. Redis error replies are returned, not turned into
 * failures, except NOSCRIPT, which reloads the scripts and resends once.
 */
int cel__redis_exec(struct cel_redis *r, const struct cel_redis_cmds *q, redisReply ***replies,
                    int64_t budget_ms, struct cel_errbuf *err);
void cel__redis_replies_free(redisReply **rs, size_t n);

/* First Redis error reply among rs[0..n), or NULL. */
const redisReply *cel__redis_first_error(redisReply *const *rs, size_t n);

/* cel__redis_exec() that also fails on a Redis error reply: CEL_EBROKER
 * with "redis <server>: <error>" in err, the replies freed. */
int cel__redis_run(struct cel_redis *r, const struct cel_redis_cmds *q, redisReply ***replies,
                   int64_t budget_ms, struct cel_errbuf *err);

/* Current wall time as Redis score text, float seconds like Python's time(). */
void cel__redis_now_score(char *buf, size_t len);

/* Blocks SIGPIPE in this thread around socket I/O, then drops a SIGPIPE
 * the I/O raised (see redis_conn.c). */
struct cel_redis_sigpipe {
    sigset_t old;
    bool was_blocked, was_pending;
};
void cel__redis_sigpipe_block(struct cel_redis_sigpipe *g);
void cel__redis_sigpipe_restore(struct cel_redis_sigpipe *g);

#endif
