/*
 * backend.h - the result-store ops table.
 *
 * Results are stored as Celery's meta documents (the celery-task-meta-<id>
 * JSON: status, result, traceback, children, date_done, task_id), so every
 * store holds the same bytes a Python client reads from Redis.
 *
 * Every operation returns CEL_OK or a negative CEL_E* code and leaves the
 * detail in the handle's errbuf.
 */
#ifndef CEL_BACKEND_BACKEND_H
#define CEL_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "celeriac/config.h"
#include "core/errbuf.h"
#include "core/url.h"
#include "proto/state.h"

#define CEL_BACKEND_ABI 1

#define CEL_BACKEND_CAP_TRANSACTIONS (1u << 0) /* begin/commit batch stores */
#define CEL_BACKEND_CAP_CHEAP_STATES (1u << 1) /* storing STARTED costs little: always do it */

struct cel_backend;

/* Where a task's message is, for stores that hold the queue too (see
 * find_message below). */
struct cel_task_message {
    char *queue;         /* caller-owned (free()); NULL when no message has this id */
    bool reserved;       /* a worker holds it under a lease */
    int delivery_count;  /* times a worker took it; 0: never */
    int64_t due_us;      /* wall µs when it became (or becomes) claimable */
    bool queue_consumed; /* a worker holds some message of that queue under a live lease */
};

struct cel_backend_ops {
    int abi;
    const char *scheme;
    unsigned caps;

    int (*open)(const struct cel_url *url, const cel_config *cfg, struct cel_backend **out,
                struct cel_errbuf *err);
    void (*close)(struct cel_backend *bk);

    /* Stores `meta_json` (a complete meta document) for `task_id`, with a
     * time to live in seconds (0: forever). A stored ready state (SUCCESS,
     * FAILURE, REVOKED) is never replaced by a non-ready one, and SUCCESS is
     * never replaced at all (duplicate deliveries must not undo it). */
    int (*store)(struct cel_backend *bk, const char *task_id, cel_state state,
                 const char *meta_json, size_t len, int64_t ttl_s);
    /* Reads the meta document; CEL_ENOTFOUND when there is none. When the
     * store also knows the queue (sqlite), a task still queued reports
     * CEL_ENOTFOUND and one reserved by a worker is synthesised as a
     * RECEIVED meta. *meta_json is caller-owned (free()). */
    int (*get)(struct cel_backend *bk, const char *task_id, char **meta_json);
    int (*forget)(struct cel_backend *bk, const char *task_id);

    /* Optional batching, as in the broker table. */
    int (*begin)(struct cel_backend *bk);
    int (*commit)(struct cel_backend *bk);

    /* Readable when results may have changed; -1 when none (callers poll). */
    int (*wakeup_fd)(struct cel_backend *bk);
    void (*drain_wakeup)(struct cel_backend *bk);

    /* Optional: the store's own way to wait for a ready state, with the
     * contract of cel__backend_wait() (which uses it when present), e.g.
     * Redis pub/sub. */
    int (*wait)(struct cel_backend *bk, const char *task_id, int64_t timeout_ms, char **meta_json);

    /* Optional, for stores that hold the queue too (sqlite): where the
     * task's message is, so a waiting client can say that no worker took
     * it. It may scan the queue: call it to explain a wait, not per poll. */
    int (*find_message)(struct cel_backend *bk, const char *task_id, struct cel_task_message *out);

    /* ---- chords (Celery's native join, reference/celery-protocol.md 7.4) ----
     * Optional (NULL: this store cannot join chords). Keys live `ttl_s`
     * seconds (0: forever), refreshed by every join as Celery does.
     *
     * chord_size records how many header members the chord `group_id`
     * waits for (Redis: SETEX celery-taskset-meta-<gid>.s).
     *
     * chord_join adds member `index` (-1: Celery's null group_index, ordered
     * last) with its entry [1, task_id, state, value] (JSON text) and says
     * whether this join completed the chord: the members counted equal the
     * recorded size (plus .t), checked atomically with the add, so of
     * distinct members exactly one completes it. On a success the keys
     * are deleted then, so a later join of the same chord (a retried
     * write, a duplicate delivery) finds no size and completes nothing;
     * when an entry is FAILURE or REVOKED they are kept until they expire,
     * as Celery leaves them (joining again then reports the same failure,
     * which stores the same ChordError). Joining the same entry twice
     * counts once. On completion *entries_json (caller-owned, free()) is
     * the JSON array of every entry ordered by index (then by entry
     * text, as a Redis sorted set orders equal scores). */
    int (*chord_size)(struct cel_backend *bk, const char *group_id, int size, int64_t ttl_s);
    int (*chord_join)(struct cel_backend *bk, const char *group_id, int index, const char *entry,
                      size_t len, int64_t ttl_s, bool *complete, char **entries_json);

    /* ---- group results (Celery's GroupResult.save(), protocol 6.7) ----
     * Optional (NULL: this store keeps no group results). group_save
     * stores `meta_json`, Celery's {"result": <group result tuple>}, for
     * `group_id` for ttl_s seconds (0: forever), replacing any (Redis:
     * SETEX celery-taskset-meta-<gid>, which Python's
     * GroupResult.restore() reads). group_get reads it back
     * (caller-owned, free(); CEL_ENOTFOUND when none); group_forget
     * deletes it (none is not an error). */
    int (*group_save)(struct cel_backend *bk, const char *group_id, const char *meta_json,
                      size_t len, int64_t ttl_s);
    int (*group_get)(struct cel_backend *bk, const char *group_id, char **meta_json);
    int (*group_forget)(struct cel_backend *bk, const char *group_id);
};

struct cel_backend {
    const struct cel_backend_ops *ops;
    struct cel_errbuf err;
};

/* Opens the store named by `url` (NULL: the configured result_backend,
 * which defaults to the broker URL when empty). */
int cel__backend_open(const char *url, const cel_config *cfg, struct cel_backend **out,
                      struct cel_errbuf *err);
void cel__backend_close(struct cel_backend *bk);
const char *cel__backend_errmsg(const struct cel_backend *bk);

/* Waits until `task_id` has a ready state or timeout_ms passes (negative:
 * forever), sleeping on wakeup_fd() when there is one. *meta_json gets the
 * last meta seen (NULL when none). CEL_ETIMEDOUT on timeout. */
int cel__backend_wait(struct cel_backend *bk, const char *task_id, int64_t timeout_ms,
                      char **meta_json);

/* Whether a meta document's status is ready (SUCCESS, FAILURE, REVOKED):
 * only those end a wait (Celery's clients once stopped on STARTED). */
bool cel__meta_is_ready(const char *meta, size_t len);

/* Whether a chord's entries (chord_join's *entries_json) hold a member
 * that failed (FAILURE or REVOKED): the first such entry's index, else -1
 * (-2 when the text is not an array of entries). */
int cel__chord_failed_entry(const char *entries_json, size_t len);

extern const struct cel_backend_ops cel__backend_sqlite;
extern const struct cel_backend_ops cel__backend_memory;
extern const struct cel_backend_ops cel__backend_redis;

#endif
