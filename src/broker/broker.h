/*
 * broker.h - the transport ops table.
 *
 * One struct of function pointers per transport (sqlite.c, memory.c,
 * later redis.c and amqp.c), picked from the URL scheme. Adding a
 * transport means adding one file and one line in registry.c.
 *
 * Every operation returns CEL_OK or a negative CEL_E* code and leaves the
 * detail in the handle's errbuf (cel__broker_errmsg()).
 *
 * Consumption is pull-based and never blocks: fetch() returns what is
 * ready now (up to the prefetch window the caller passes) and a hint of
 * when the next delayed message becomes due; wait_fd() gives a file
 * descriptor that turns readable when new messages may have arrived, so
 * the worker sleeps in poll() instead of spinning. A transport whose
 * client library blocks (hiredis sync, rabbitmq-c) runs its I/O on a
 * thread of its own and signals through that fd.
 *
 * Delivery semantics: a fetched message is reserved for this consumer
 * until ack() (done), reject() (requeue or dead-letter), or until its
 * visibility lease expires without extend(), after which any consumer may
 * get it again (delivery_count + 1).
 */
#ifndef CEL_BROKER_BROKER_H
#define CEL_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "celeriac/config.h"
#include "core/errbuf.h"
#include "core/url.h"

#define CEL_BROKER_ABI 1

/* Capability flags. */
#define CEL_BROKER_CAP_DELAYED      (1u << 0) /* publish with a due time (ETA) */
#define CEL_BROKER_CAP_PRIORITY     (1u << 1) /* priorities honoured */
#define CEL_BROKER_CAP_VISIBILITY   (1u << 2) /* unacked messages come back after a lease */
#define CEL_BROKER_CAP_TRANSACTIONS (1u << 3) /* begin/commit group operations atomically */
#define CEL_BROKER_CAP_DEADLETTER   (1u << 4) /* reject without requeue keeps the message */
#define CEL_BROKER_CAP_SHARED_FILE  (1u << 5) /* results may live in the same store */
/* Only celeriac consumes this transport, so a client may publish a
 * countdown with a due time (the delayed store is private to celeriac).
 * Without it a client publishes the task ready, with only Celery's eta
 * header, so a Python worker on the queue sees and honours it. */
#define CEL_BROKER_CAP_PRIVATE_DELAY (1u << 6)

/* One reserved message. Owned by the caller of fetch(); release with
 * cel__delivery_release(). */
struct cel_delivery {
    char *body; /* envelope text, NUL-terminated */
    size_t len;
    char *queue;
    int64_t tag;        /* transport handle for ack/reject (sqlite rowid, ...) */
    char *tag_str;      /* transport handle as text when it is not a number; may be NULL */
    int delivery_count; /* 1 on first delivery */
};

void cel__delivery_release(struct cel_delivery *d);

struct cel_broker;

/* One fan-out message as a subscriber receives it. Owned by the caller of
 * fanout_poll(); release with cel__fanout_msg_release(). */
struct cel_fanout_msg {
    char *exchange;    /* "celeryev", "celery.pidbox", ... */
    char *routing_key; /* "worker.heartbeat", "" for none */
    char *body;        /* the envelope text as published, NUL-terminated */
    size_t len;
};

void cel__fanout_msg_release(struct cel_fanout_msg *m);

/* A fan-out subscription. Each transport defines it; its head is this. */
struct cel_fanout_sub;

/* One live revoke as revoke_list() reads it back. */
struct cel_revoke_entry {
    char *task_id;
    int64_t expires_us; /* wall µs */
    bool terminate;     /* also stop the task if it is running */
    int signum;         /* with terminate */
};

void cel__revoke_entries_free(struct cel_revoke_entry *v, size_t n);

/* A reply mailbox (mailbox_open). Each transport defines it. */
struct cel_mailbox;

/* One dead-lettered message as dead_list()/dead_get() read it back. */
struct cel_dead_letter {
    char *id;      /* the entry's id in the dead-letter store (not the task id) */
    char *queue;   /* where it came from */
    char *task_id; /* NULL when it could not be read */
    char *reason;  /* why it was dead-lettered */
    char *body;    /* the envelope as it was published */
    size_t len;
    unsigned delivery_count;
    int64_t created_us; /* wall µs, when it was dead-lettered */
};

/* One periodic entry as the store keeps it (sched_get/sched_list). Owned
 * by the caller; release with cel__sched_row_release(). */
struct cel_sched_row {
    char *name;
    char *doc; /* the entry as JSON (client/schedule_doc.c), NUL-terminated */
    size_t len;
    bool enabled;
    int64_t last_run_us; /* scheduled time of the last run sent or skipped; 0: none */
    int64_t total_runs;  /* runs sent */
    int64_t updated_us;  /* wall µs of the last sched_put or sched_enable */
};

void cel__sched_row_release(struct cel_sched_row *r);
void cel__sched_rows_free(struct cel_sched_row *v, size_t n);

/* One run of a periodic entry for sched_fire(). Everything is borrowed
 * for the call. */
struct cel_sched_fire {
    const char *name;  /* the entry */
    const char *lease; /* fencing: act only while `holder` holds `lease` */
    const char *holder;
    int64_t expect_last_run_us; /* act only if the entry's last_run_us is still this */
    int64_t tick_us;            /* the run's scheduled time: the new last_run_us */
    bool send;                  /* false: record the run as skipped, send nothing */
    /* with send, the message as publish() takes it: */
    const char *queue;
    int priority;
    int64_t due_us;
    const char *task_id;
    const char *body;
    size_t len;
};

void cel__dead_letter_release(struct cel_dead_letter *d);
void cel__dead_letters_free(struct cel_dead_letter *v, size_t n);
void cel__strv_free(char **v, size_t n);

struct cel_broker_ops {
    int abi;            /* CEL_BROKER_ABI */
    const char *scheme; /* "sqlite", "memory", ... */
    unsigned caps;
    /* Lease used when broker_visibility_timeout is 0 (the default). */
    int64_t default_lease_ms;

    int (*open)(const struct cel_url *url, const cel_config *cfg, struct cel_broker **out,
                struct cel_errbuf *err);
    void (*close)(struct cel_broker *b);

    /* Stores one envelope on `queue`. due_us: wall-clock µs before which
     * the message must not be delivered (0: now). `body` is borrowed for
     * the call only (clients reuse the buffer): copy what you keep, also
     * inside begin()/commit(). */
    int (*publish)(struct cel_broker *b, const char *queue, int priority, int64_t due_us,
                   const char *task_id, const char *body, size_t len);

    /* Optional (NULL when unsupported): group the calls between them into
     * one atomic unit, for batching. Nesting is not allowed. */
    int (*begin)(struct cel_broker *b);
    int (*commit)(struct cel_broker *b);

    /* Reserves up to `max` ready messages from `queues` (higher priority
     * first, then FIFO) for `lease_ms`. *n receives the count. When
     * next_due_us is not NULL it receives the wall time of the next delayed
     * or leased message on those queues (0: none), so the caller knows how
     * long it may sleep. */
    int (*fetch)(struct cel_broker *b, const char *const *queues, size_t nqueues, size_t max,
                 int64_t lease_ms, struct cel_delivery *out, size_t *n, int64_t *next_due_us);

    int (*ack)(struct cel_broker *b, const struct cel_delivery *d);
    /* requeue: make it ready again now; otherwise move it to the dead-letter
     * store with `reason` (when CEL_BROKER_CAP_DEADLETTER) or drop it. */
    int (*reject)(struct cel_broker *b, const struct cel_delivery *d, bool requeue,
                  const char *reason);
    /* Pushes the lease of reserved messages `lease_ms` into the future. */
    int (*extend)(struct cel_broker *b, const struct cel_delivery *const *ds, size_t n,
                  int64_t lease_ms);

    /* Both count the queue's delayed messages (countdown, eta, retry)
     * with its ready ones; purge removes them too (and leaves reserved
     * messages alone). */
    int (*purge)(struct cel_broker *b, const char *queue, size_t *removed);
    int (*length)(struct cel_broker *b, const char *queue, size_t *len);

    /* A descriptor that becomes readable when messages may have arrived,
     * or -1 when the transport has none (the caller then polls). After it
     * fires, call drain_wakeup() before fetching. */
    int (*wakeup_fd)(struct cel_broker *b);
    void (*drain_wakeup)(struct cel_broker *b);

    /*
     * Fan-out (optional, NULL when unsupported): events and broadcast
     * control. Every live subscription whose pattern matches gets every
     * message published to its exchange after it subscribed; nobody
     * listening means the message is gone (Celery's fanout semantics).
     * On Redis this is kombu's pub/sub layout, so Celery's own tools see
     * it; on SQLite a bounded table; in memory a per-process list.
     *
     * `envelope` is the complete kombu envelope text, borrowed for the
     * call. `pattern` is a routing-key pattern: "#" (or "*") matches all,
     * "worker.#" a prefix, anything else exactly.
     *
     * A subscription lives apart from the broker handle: it has its own
     * connection and may be used from another thread than the handle's
     * (the worker polls it on its loop thread while another thread owns
     * the handle). It never blocks: fanout_poll() returns what arrived,
     * and fanout_fd() turns readable when more may have.
     */
    int (*fanout_publish)(struct cel_broker *b, const char *exchange, const char *routing_key,
                          const char *envelope, size_t len);
    int (*fanout_subscribe)(struct cel_broker *b, const char *exchange, const char *pattern,
                            struct cel_fanout_sub **out);
    int (*fanout_poll)(struct cel_fanout_sub *s, struct cel_fanout_msg *out, size_t max, size_t *n);
    int (*fanout_fd)(struct cel_fanout_sub *s);
    void (*fanout_close)(struct cel_fanout_sub *s);

    /*
     * Revokes (optional, NULL when unsupported): task ids no worker may
     * run, kept on the broker side until they expire, so a worker started
     * after the revoke still skips them (Celery keeps them in worker
     * memory only, its #8888). SQLite: the revoked table; Redis: the
     * celeriac.revoked sorted set (score: expiry in ms) and, for revokes
     * with terminate, the celeriac.revoked.signal hash; memory: a list.
     *
     * revoke_add stores ids[0..n), each live until expires_us (wall µs);
     * an id stored again keeps the later expiry and the latest terminate
     * and signal. It drops expired entries, and then the entries expiring
     * first while more than keep_max remain (0: no bound).
     *
     * revoke_list hands out every live entry (caller frees them with
     * cel__revoke_entries_free()); *out is NULL when there is none.
     */
    int (*revoke_add)(struct cel_broker *b, const char *const *ids, size_t n, int64_t expires_us,
                      bool terminate, int signum, size_t keep_max);
    int (*revoke_list)(struct cel_broker *b, struct cel_revoke_entry **out, size_t *n);

    /*
     * ---- rate limits ----
     * Optional (NULL: the transport keeps no shared buckets, and a worker
     * refuses --rate-limit-scope global on it). Takes one token from the
     * bucket `name`, shared by every process using this broker: capacity
     * 1, refilled at per_sec (> 0) tokens a second (core/rate.h, Celery's
     * TokenBucket). *wait_us receives 0 when a token was taken, else the
     * µs until one is due (nothing was taken). Atomic across processes;
     * runs in a transaction of its own, never between begin() and
     * commit(). The clock is the broker's (Redis TIME) or, for the file
     * and in-process stores, the machine's.
     */
    int (*rate_acquire)(struct cel_broker *b, const char *name, double per_sec, int64_t *wait_us);

    /* Optional (NULL: callers fall back to reject() with requeue): gives a
     * reserved message back to its queue, deliverable again from wall
     * time due_us, its delivery count kept (the next delivery counts one
     * more), so a message handed back and forth stays bounded. */
    int (*requeue_at)(struct cel_broker *b, const struct cel_delivery *d, int64_t due_us);

    /*
     * ---- mailboxes: replies to broadcast requests ----
     * Optional (NULL: remote control can send but never hear replies).
     * A mailbox is a private, short-lived queue a control client reads
     * replies from; `name` is the reply routing key (Celery's `oid`).
     * On Redis it is kombu's direct reply exchange: mailbox_open declares
     * `<name>.reply.celery.pidbox` by SADD of its binding to
     * `_kombu.binding.reply.celery.pidbox`; mailbox_send LPUSHes there only
     * while that binding exists (a client gone leaves no list behind);
     * mailbox_close SREMs the binding and DELs the lists. SQLite: rows in
     * a mailbox table that mailbox_close deletes; memory: a list.
     *
     * mailbox_take waits up to timeout_ms (0: just looks) for the next
     * envelope: CEL_OK with *env (caller frees, NUL-terminated) and *len,
     * or CEL_ETIMEDOUT. A mailbox is used by one thread; it has its own
     * connection and is independent of the broker handle after opening.
     * mailbox_send uses the handle (any thread that owns the handle) and
     * returns CEL_OK also when nobody is bound (the reply is dropped, as
     * kombu does).
     */
    int (*mailbox_open)(struct cel_broker *b, const char *name, struct cel_mailbox **out);
    int (*mailbox_take)(struct cel_mailbox *m, int64_t timeout_ms, char **env, size_t *len);
    void (*mailbox_close)(struct cel_mailbox *m);
    int (*mailbox_send)(struct cel_broker *b, const char *name, const char *env, size_t len);

    /*
     * ---- dead letters ----
     * Optional (NULL with no CEL_BROKER_CAP_DEADLETTER). What reject()
     * without requeue and the worker's dead-lettering kept, newest first.
     * dead_list fills up to `max` entries starting after `offset` (caller
     * frees with cel__dead_letters_free()); `queue` NULL lists all queues.
     * dead_get reads one by its id (CEL_ENOTFOUND). dead_requeue puts the
     * envelope back on its queue (delivery count reset) and removes the
     * entry, atomically; dead_purge removes entries (`id` NULL: all of
     * `queue`, or every entry when `queue` is NULL too) and says how many.
     */
    int (*dead_list)(struct cel_broker *b, const char *queue, size_t offset, size_t max,
                     struct cel_dead_letter **out, size_t *n);
    int (*dead_get)(struct cel_broker *b, const char *id, struct cel_dead_letter *out);
    int (*dead_requeue)(struct cel_broker *b, const char *id);
    int (*dead_purge)(struct cel_broker *b, const char *queue, const char *id, size_t *removed);

    /*
     * ---- paused queues ----
     * Optional. A queue paused here is not consumed by any celeriac worker
     * until resumed, including workers started later (the flag is stored
     * on the broker side: SQLite a table, Redis the celeriac.paused set).
     * Messages published meanwhile wait on the queue. queue_paused_list
     * hands out the paused names (caller frees with cel__strv_free()).
     */
    int (*queue_pause)(struct cel_broker *b, const char *queue, bool paused);
    int (*queue_paused_list)(struct cel_broker *b, char ***names, size_t *n);

    /*
     * ---- queue lengths per priority band ----
     * Optional (NULL: callers show length() as one band). Fills up to
     * `max` bands of `queue`, lowest priority value first: prios[i] is
     * the band's lowest priority, lens[i] its waiting messages; *n says
     * how many bands there are. Redis: kombu's four lists (0, 3, 6, 9),
     * without the parked ETA messages length() also counts; SQLite and
     * memory: one band per priority value that has messages.
     */
    int (*length_bands)(struct cel_broker *b, const char *queue, int *prios, size_t *lens,
                        size_t max, size_t *n);

    /*
     * ---- periodic entries (beat) ----
     * Optional (NULL: beat and `celeriac schedule` refuse the transport).
     * The store keeps each entry's document (opaque here), its enabled
     * flag, and the scheduled time of its last run, so a restarted or a
     * newly elected beat neither skips nor repeats a run. SQLite: the
     * schedule and leases tables; Redis: the celeriac.schedule hash (name
     * -> doc), celeriac.schedule.state hash (name -> enabled, last run,
     * total), celeriac.schedule.version and celeriac.lease.<name> keys.
     *
     * sched_put stores `doc` under `name`; an existing entry is replaced
     * when `replace` (its last run and total are kept) and is otherwise
     * CEL_ESTATE. sched_get and sched_remove and sched_enable answer
     * CEL_ENOTFOUND for an unknown name. sched_list hands out every entry
     * sorted by name (*out NULL when none). Every put, remove and enable
     * bumps a version number sched_version() reads, so a running beat
     * notices a change with one cheap read.
     */
    int (*sched_put)(struct cel_broker *b, const char *name, const char *doc, size_t len,
                     bool enabled, bool replace);
    int (*sched_get)(struct cel_broker *b, const char *name, struct cel_sched_row *out);
    int (*sched_list)(struct cel_broker *b, struct cel_sched_row **out, size_t *n);
    int (*sched_remove)(struct cel_broker *b, const char *name);
    int (*sched_enable)(struct cel_broker *b, const char *name, bool enabled);
    int (*sched_version)(struct cel_broker *b, int64_t *version);

    /*
     * A lease elects one holder among processes sharing the store. Takes
     * `lease` for `holder` when it is free, expired, or already held by
     * `holder` (which renews it), for ttl_ms from now; *held says whether
     * `holder` holds it after the call. The clock is the store's: Redis
     * keeps the expiry (SET PX), the file store the machine's wall clock.
     * lease_release gives it up if `holder` holds it (a no-op otherwise).
     */
    int (*lease_acquire)(struct cel_broker *b, const char *lease, const char *holder,
                         int64_t ttl_ms, bool *held);
    int (*lease_release)(struct cel_broker *b, const char *lease, const char *holder);

    /*
     * Sends one run of an entry and records it, atomically: if f->holder
     * holds f->lease, the entry exists, is enabled and its last_run_us
     * still equals f->expect_last_run_us, then (with f->send) the message
     * is published exactly as publish() would, last_run_us becomes
     * f->tick_us and total_runs grows by one (without f->send only
     * last_run_us moves). Otherwise nothing changes and the call returns
     * CEL_ESTATE, the errbuf saying which condition failed. A process
     * killed during the call leaves either all of it done or none.
     */
    int (*sched_fire)(struct cel_broker *b, const struct cel_sched_fire *f);
};

/* Common head of every transport handle; transports embed it first. */
struct cel_broker {
    const struct cel_broker_ops *ops;
    struct cel_errbuf err;
};

/* Opens the transport named by `url` (NULL: the configured broker_url).
 * On failure *out is NULL and err says why. */
int cel__broker_open(const char *url, const cel_config *cfg, struct cel_broker **out,
                     struct cel_errbuf *err);
void cel__broker_close(struct cel_broker *b);
const char *cel__broker_errmsg(const struct cel_broker *b);

/* Transport tables, one per transport (registry.c maps schemes to them). */
extern const struct cel_broker_ops cel__broker_sqlite;
extern const struct cel_broker_ops cel__broker_memory;
extern const struct cel_broker_ops cel__broker_redis;

#endif
