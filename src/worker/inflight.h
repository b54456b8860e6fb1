/*
 * inflight.h - the messages a worker holds reserved, and who owns what.
 *
 * A message fetched from the broker becomes one `struct cel_inflight`. It
 * lives until the store thread (settle.h) has carried out the operation
 * that ends it (an ack after its result is stored, a requeue, a dead
 * letter), and only then does the loop free it. Two threads touch it, so
 * its fields are split by owner:
 *
 *  - the store thread allocates it, fills `d`, and alone uses the
 *    `store_*` fields (its list of reservations whose leases it extends);
 *  - the loop thread uses everything else once the record is handed over.
 *
 * `d` is read by both, and written by neither after the hand-over.
 */
#ifndef CEL_WORKER_INFLIGHT_H
#define CEL_WORKER_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"

/* What a task asked to happen when it is settled, in the order it asked
 * (PUBLISH, CHORD_SIZE and CHORD_JOIN frames, execute.h): each goes out
 * after its result is stored and before its ack (settle.c). */
enum cel_followup_kind {
    CEL_FOLLOWUP_PUBLISH = 0, /* a message: queue, priority, due_us, task_id, body */
    CEL_FOLLOWUP_CHORD_SIZE,  /* group_id, size */
    CEL_FOLLOWUP_CHORD_JOIN,  /* group_id, group_index, task_id, root_id, body (the
                               * chord body signature), entry */
};

struct cel_followup {
    struct cel_followup *next;
    enum cel_followup_kind kind;
    char *queue;
    int priority;
    int64_t due_us;
    char *task_id;
    char *body;
    size_t len;
    char *group_id;
    int size;        /* CHORD_SIZE */
    int group_index; /* CHORD_JOIN; -1: none */
    char *root_id;   /* CHORD_JOIN; may be NULL */
    char *entry;     /* CHORD_JOIN */
    size_t entry_len;
    /* Store thread only: the entries of the chord this join completed,
     * kept until the item is settled, so a retried round trip publishes
     * the body from them rather than joining again (the join consumed
     * the chord on the store: joining again would complete nothing). */
    char *completed;
};

struct cel_inflight {
    struct cel_delivery d;
    /* Written by the loop before the final operation is handed over, read
     * by the store thread after: follow-ups, oldest first. */
    struct cel_followup *followups;

    /* ---- store thread only ---- */
    struct cel_inflight *store_prev, *store_next; /* reservations it extends */
    bool store_acked;                             /* acked early: nothing to extend */

    /* ---- loop thread only ---- */
    uint64_t seq;              /* pool frame sequence number */
    bool ids_known;            /* cel__inflight_learn_ids() ran */
    char *task_id, *task_name; /* known once learn_ids() ran; may stay NULL */
    char *group_id, *parent_id;
    bool ignore_result;               /* the message's ignore_result header (learn_ids) */
    bool acked;                       /* early ack already asked for (acks_late off) */
    bool settling;                    /* its final operation is with the store thread */
    int slot;                         /* pool slot running or queueing it, -1 when none */
    int pid;                          /* process running it, 0 until it starts */
    int64_t started_us;               /* monotonic time it began to run */
    bool started_written;             /* STARTED state stored */
    bool ev_received;                 /* announced in a task-received event (events.c) */
    struct cel_inflight *prev, *next; /* the worker's held list */
    struct cel_inflight *ready_next;  /* waiting for the pool */
    /* Its policy: the worker's when it starts, then what its child
     * announced in a BEGIN frame (pool_prefork.c). */
    bool policy_known;          /* acks_late resolved (cel__consumer_ack_early) */
    bool begun;                 /* a BEGIN arrived */
    bool acks_late;             /* never acked before its result is stored */
    bool reject_on_worker_lost; /* requeued, not failed, when its child dies */
    double time_limit;          /* hard limit, seconds; 0: none */
    /* What its child sent as it died of a signal (CRASH frame,
     * crash.h), for the stored traceback: signal number, native frames
     * (malloc'ed, not NUL-terminated: crash_len bytes). */
    int crash_signal;
    char *crash_text;
    size_t crash_len;
};

/* The held list and the queue of messages waiting for a pool slot. */
struct cel_held {
    struct cel_inflight *head;
    size_t count;
    struct cel_inflight *ready_head, *ready_tail;
    size_t ready_count;
};

struct cel_inflight *cel__inflight_new(void);
void cel__inflight_free(struct cel_inflight *f);
void cel__followup_free(struct cel_followup *u);

/* Reads the message headers once, when the loop needs the ids (a log
 * line, a state write, a failure it reports itself). The hot path never
 * parses messages: children do. */
void cel__inflight_learn_ids(struct cel_inflight *f);

void cel__held_add(struct cel_held *h, struct cel_inflight *f);
void cel__held_remove(struct cel_held *h, struct cel_inflight *f);
void cel__held_push_ready(struct cel_held *h, struct cel_inflight *f);
/* Ahead of the others: a message that already waited its turn once (a
 * retiring child gave it back). */
void cel__held_push_ready_front(struct cel_held *h, struct cel_inflight *f);
/* Oldest message waiting for the pool, or NULL. */
struct cel_inflight *cel__held_pop_ready(struct cel_held *h);

#endif
