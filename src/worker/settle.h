/*
 * settle.h - the store thread: every broker and result-store call of a
 * worker runs here, never on the loop thread.
 *
 * The loop hands over what finished (a result to store, and the message
 * to ack, requeue or dead-letter with it) and how many more messages it
 * can take; the thread batches what has gathered into one round trip
 * (one SQLite transaction, one Redis pipeline), fetches new messages in
 * the same round trip, extends the leases of what the worker holds, and
 * reports back through a uv_async handle.
 *
 * Invariants this file keeps (DESIGN.md 5):
 *  - an ack follows its stored result, never precedes it: a message whose
 *    result could not be stored stays reserved and its lease extended;
 *  - a failed commit never causes a re-run: what ran is kept, the write
 *    is retried with backoff (100 ms doubling to 5 s), and the condition
 *    is logged once per interval, not once per task; messages fetched in
 *    a transaction that rolled back are never handed out;
 *  - retried writes are idempotent (a stored SUCCESS is never replaced,
 *    acks and requeues of the same message repeat harmlessly).
 *
 * Threading: cel__settler_push/flush/set_room/stop are called on the loop
 * thread only; the callback runs on the loop thread.
 */
#ifndef CEL_WORKER_SETTLE_H
#define CEL_WORKER_SETTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "celeriac/client.h"
#include "worker/inflight.h"

enum cel_settle_op {
    CEL_SETTLE_NONE,        /* store the result only (a state on the way, e.g. STARTED) */
    CEL_SETTLE_ACK,         /* done: store the result, then ack */
    CEL_SETTLE_EARLY_ACK,   /* ack now; the message is not finished (task_acks_late off) */
    CEL_SETTLE_RELEASE,     /* done, already acked early: store the result, forget it */
    CEL_SETTLE_REQUEUE,     /* give the message back to its queue */
    CEL_SETTLE_DEAD_LETTER, /* store the result, keep the message for an operator */
    CEL_SETTLE_REPARK,      /* publish the message again due at due_us, then ack it */
};

struct cel_settle_item {
    enum cel_settle_op op;
    struct cel_inflight *f; /* the message; NULL with CEL_SETTLE_NONE for a bare state */
    char *task_id;          /* the result to store first, or NULL; owned */
    cel_state state;
    char *meta; /* owned */
    size_t meta_len;
    char *reason;   /* DEAD_LETTER; owned, may be NULL */
    int64_t due_us; /* REPARK; REQUEUE: not before (0: now) */
    int priority;   /* REPARK */
    /* store thread only */
    bool result_done, broker_done;
    bool turn_result, turn_broker; /* set in the current round trip */
};

/* The broker's answer to a rate-limit token request (rate limits). */
struct cel_rate_answer {
    void *key;       /* the requester's, echoed */
    int rc;          /* CEL_OK, or the broker's error (logged by the thread) */
    int64_t wait_us; /* 0: a token was taken; else µs until one is due */
};

/* What the thread hands back; the loop owns it (cel__settle_report_free). */
struct cel_settle_report {
    struct cel_inflight **finished; /* final operation done: free them */
    size_t nfinished, capfinished;
    struct cel_inflight **fetched; /* new reservations */
    size_t nfetched, capfetched;
    struct cel_rate_answer *rates; /* answers to cel__settler_rate_request() */
    size_t nrates, caprates;
};

void cel__settle_report_free(struct cel_settle_report *r);

typedef void (*cel_settle_cb)(void *ud, struct cel_settle_report *r);

struct cel_settler_config {
    uv_loop_t *loop;
    const char *const *queues; /* copied at start */
    size_t nqueues;
    int64_t lease_ms;
    int64_t result_ttl_s;
    cel_settle_cb on_report; /* on the loop thread; takes the report */
    void *ud;
};

struct cel_settler;

/* Starts the thread; it takes over b and k (closed by cel__settler_free).
 * On error nothing is taken. */
int cel__settler_start(struct cel_settler **out, struct cel_broker *b, struct cel_backend *k,
                       const struct cel_settler_config *cfg, struct cel_errbuf *err);

/* Queues one item (its strings are taken over, also when it fails; *item
 * may be reused). The thread sees it at the next cel__settler_flush(). */
int cel__settler_push(struct cel_settler *s, const struct cel_settle_item *item);
/* Hands the queued items over and wakes the thread (once per loop turn). */
void cel__settler_flush(struct cel_settler *s);

/* How many more messages the loop can take, counted after it received
 * `received` fetched messages in all. 0 stops fetching. */
void cel__settler_set_room(struct cel_settler *s, uint64_t received, size_t room);

/* The queues to fetch from from now on (copied; n may be 0: fetch
 * nothing). Messages already fetched from a queue left out still run.
 * Returns the change's number (> 0), or 0 when out of memory (the set
 * stays as it was). */
uint64_t cel__settler_set_queues(struct cel_settler *s, const char *const *queues, size_t n);
/* Whether the transport has been shown change number `gen`: nothing is
 * fetched from a queue it left out from then on. The report callback's
 * wakeup follows the moment it becomes true. */
bool cel__settler_queues_seen(struct cel_settler *s, uint64_t gen);

/* How long results may wait for others to share their round trip (0:
 * settle at once). The loop sets it each turn: 0 when a result or a
 * refill is urgent (a child about to run dry, long tasks, shutdown). */
void cel__settler_set_gather(struct cel_settler *s, int64_t gather_us);

/*
 * Forking a child while this thread may hold a lock (the allocator's, a
 * stdio lock inside a log line) would leave the child with that lock held
 * forever. So the pool forks only while the thread is parked: park()
 * asks (it never waits), the report callback's wakeup follows once the
 * thread has parked between two round trips, parked() says so, and
 * unpark() lets it go on. Stopping unparks it.
 */
void cel__settler_park(struct cel_settler *s);
bool cel__settler_parked(struct cel_settler *s);
void cel__settler_unpark(struct cel_settler *s);

/* True while writes are failing and being retried. */
bool cel__settler_failing(const struct cel_settler *s);
/* Items handed over and not yet settled (for shutdown). */
size_t cel__settler_backlog(const struct cel_settler *s);

/* Asks the thread to settle everything queued, retrying failed writes
 * until `deadline_ms` (monotonic), then to exit. Returns at once; the
 * report callback keeps running until the thread has exited and
 * cel__settler_done() says so (the thread has exited and its last report
 * has reached the callback). */
void cel__settler_stop(struct cel_settler *s, int64_t deadline_ms);
bool cel__settler_done(struct cel_settler *s);

/*
 * ---- rate limits ----
 * Asks the broker for one token of the global bucket `name` (the
 * transport's rate_acquire); the answer comes back in a later report's
 * `rates`, tagged with `key`. `name` is borrowed until then. The thread
 * serves requests first thing in each pass, outside the round trip's
 * transaction and without gathering, so a request waits at most for the
 * round trip in progress. Served here rather than on a connection of the
 * limiter's own because the broker handle belongs to this thread, and a
 * thread of our own would have to be parked around every fork() too
 * (see park() above). CEL_ENOMEM when it cannot be queued.
 */
int cel__settler_rate_request(struct cel_settler *s, const char *name, double per_sec, void *key);

/* Joins the thread, frees what was never settled (logging how many),
 * and closes the broker and store. The uv handle is closed and the
 * settler's memory freed when that completes: run the loop once more. */
void cel__settler_free(struct cel_settler *s);

#endif
