/*
 * worker_internal.h - the worker's parts and what they share.
 *
 * The worker parent is one libuv loop (src/worker/worker.c) with rooms
 * around it, each in its own file:
 *
 *   signals.c    TERM/INT/QUIT/HUP/USR1 and cel_worker_stop() into the
 *                loop; the soft shutdown's timer
 *   dump.c       SIGUSR1: running tasks and native backtraces to the log
 *   consumer.c   the prefetch window, accepting what the store thread
 *                fetched, the message filters, STARTED states
 *   filters.c    what a message passes before it may run
 *   settle.c     the store thread: results, acks, fetches, leases
 *   rate_limit.c tasks waiting for their rate limit's next token
 *   pool.h       the pool ops table: pool_prefork.c (+ child.c), pool_solo.c
 *   events.c     monitoring events on the celeryev fan-out (events.h)
 *   banner.c     the start banner
 *
 * Everything here runs on the loop thread unless a comment says
 * otherwise.
 */
#ifndef CEL_WORKER_WORKER_INTERNAL_H
#define CEL_WORKER_WORKER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <jansson.h>

#include "celeriac/worker.h"
#include "core/errbuf.h"
#include "worker/events.h"
#include "worker/execute.h"
#include "worker/inflight.h"
#include "worker/pool.h"
#include "worker/settle.h"

#define CEL_WORKER_MAX_QUEUES 64
/* Tasks faster than this on average are pipelined to children, and the
 * prefetch window grows (see cel__consumer_window()). */
#define CEL_PIPELINE_BELOW_US 1000
/* While tasks are short the prefetch window is this many times
 * worker_prefetch_multiplier: 128 messages for -c 2 are still only some
 * 10 ms of work, so other workers lose nothing that matters, and it keeps
 * the pipelines to the children full while a refill is on its way. */
#define CEL_SHORT_TASK_PREFETCH_BOOST 16
/* A task still running after this long gets its STARTED state written;
 * faster tasks go straight to SUCCESS and save a write. */
#define CEL_STARTED_AFTER_MS 5
/* How long results of short tasks may wait to share a commit. */
#define CEL_GATHER_US 1000

/* CEL_COLD with worker_soft_shutdown_timeout first lets the running tasks
 * finish for that long; CEL_KILL (the timeout, or another cold request)
 * kills them. Without a soft timeout CEL_COLD kills at once. */
enum cel_stop_level { CEL_RUNNING = 0, CEL_WARM = 1, CEL_COLD = 2, CEL_KILL = 3 };

struct cel_worker {
    cel_config *cfg;
    const cel_registry *reg;
    struct cel_errbuf err;
    int config_rc; /* configure() at creation; returned by run() */

    /* configuration, resolved once */
    char hostname[256];
    char *queues[CEL_WORKER_MAX_QUEUES];
    size_t nqueues;
    int concurrency;
    const struct cel_pool_ops *pool_ops;
    size_t prefetch_limit;
    int64_t lease_ms;
    int64_t result_ttl_s;
    unsigned max_tasks_per_child;
    unsigned delivery_limit; /* 0: none */
    bool track_started;
    bool acks_late;
    struct cel_exec_env exec_env; /* what every task run starts from (execute.h) */
    struct cel_revokes *revokes;  /* revoke.c; NULL when the transport has none */
    /* worker failures and recycling */
    unsigned poison_limit;     /* task_poison_limit: deliveries that killed a child; 0: none */
    long max_memory_kib;       /* worker_max_memory_per_child; 0: none */
    bool acks_late_overridden; /* acks_late is off but some task's definition says on */

    /* running */
    uv_loop_t loop;
    uv_prepare_t turn;     /* end of each loop turn: dispatch, hand over, refill */
    uv_timer_t started;    /* STARTED states of tasks that run long */
    uv_async_t stop_async; /* cel_worker_stop() from any thread or a signal */
    uv_signal_t sig[5];    /* TERM, INT, QUIT, HUP, USR1 */
    bool signals_on;
    atomic_int stop_level;
    atomic_bool async_ready; /* stop_async may be sent to */
    int announced;           /* stop level already acted on */
    /* lifecycle (signals.c, dump.c) */
    int64_t soft_shutdown_ms; /* worker_soft_shutdown_timeout; 0: a cold stop kills at once */
    uv_timer_t soft_timer;    /* the end of a soft shutdown */
    bool soft_started;        /* a soft shutdown is under way (or was) */
    atomic_bool restart;      /* SIGHUP: a warm shutdown, then the caller starts again */

    struct cel_settler *settler;
    struct cel_pool *pool;
    struct cel_held held;
    uint64_t received; /* messages received from the settler in all */
    uint64_t next_seq;
    int64_t runtime_ewma_us; /* recent task run time; starts "long" */
    bool exiting;            /* the loop is winding down */

    /* ---- pool size at run time (autoscale.c) ---- */
    size_t prefetch_multiplier;      /* prefetch_limit = this x the processes that may run */
    struct cel_autoscale *autoscale; /* NULL: --autoscale is off */

    /* ---- monitoring events (events.c) ---- */
    struct cel_events *events; /* NULL when not running */
    atomic_bool task_events;   /* worker_send_task_events, switchable at run time */
    _Atomic int64_t lamport;   /* the worker's Lamport clock */

    /* ---- rate limits (rate_limit.c) ---- */
    struct cel_rate_limits *rate; /* NULL when no registered task has a rate limit */

    /* ---- remote control (control.c, control_cmds.c, control_inspect.c) ---- */
    struct cel_control *control;      /* the request/reply hand-over; NULL when not running */
    struct cel_control_state *cstate; /* what inspection reports; lives with the worker */
    /* Run-time time limits (the time_limit command), shared with the
     * children; made before the pool forks, exec_env borrows it. */
    cel_time_limit_table *time_limits;
    int64_t run_started_us; /* monotonic: uptime */
};

/* ---- consumer.c ---- */
size_t cel__consumer_window(const cel_worker *w);
/* The settler's report: new messages in, finished ones freed. */
void cel__consumer_on_report(void *ud, struct cel_settle_report *r);
/* Tells the settler how many more messages fit. */
void cel__consumer_update_room(cel_worker *w);
/* The pool's report on one message: what the executor decided. Takes
 * ex's strings. */
void cel__consumer_on_outcome(cel_worker *w, struct cel_inflight *f, struct cel_execution *ex);
/* The process running f died: WorkerLostError (or a requeue on cold
 * shutdown). `why` ends up in the stored exception. */
void cel__consumer_on_lost(cel_worker *w, struct cel_inflight *f, const char *why);
/* Settles f without running it: keeps the message for an operator with
 * `reason` and stores a FAILURE of exc_type/exc_module for its client. */
void cel__consumer_dead_letter(cel_worker *w, struct cel_inflight *f, const char *reason,
                               const char *exc_type, const char *exc_module, const char *message);
/* A message that never started goes back to its queue. */
void cel__consumer_requeue(cel_worker *w, struct cel_inflight *f);
/* A message that never started is published again due at due_us (wall
 * µs) and the original acked: parked on the broker, not in this worker
 * (rate limits). Its priority is not kept. */
void cel__consumer_repark(cel_worker *w, struct cel_inflight *f, int64_t due_us);
/* Early ack when task_acks_late is off (the pool calls it as a task
 * starts). */
void cel__consumer_ack_early(cel_worker *w, struct cel_inflight *f);
/* Gives back everything waiting for the pool. */
void cel__consumer_requeue_waiting(cel_worker *w);
/* Gives back what waits for the pool from a queue now paused. */
void cel__consumer_requeue_paused(cel_worker *w);
void cel__consumer_write_started(cel_worker *w);
/* Stores a state for f now (STATE frames). Takes meta. */
void cel__consumer_store_state(cel_worker *w, struct cel_inflight *f, cel_state state, char *meta,
                               size_t len);

/* Settles f without running it (a revoke): REVOKED with Celery's
 * TaskRevokedError(reason) is stored and the message acked. */
void cel__consumer_revoked(cel_worker *w, struct cel_inflight *f, const char *reason);
/* ---- consumer.c: what a running task tells the parent ---- */
/* Its policy (BEGIN frame, or the solo pool's begin hook): arms its hard
 * limit, and acks it now if it is not acks_late. */
void cel__consumer_on_begin(cel_worker *w, struct cel_inflight *f, const struct cel_task_policy *p);
/* Its process was killed at its hard limit: FAILURE, TimeLimitExceeded. */
void cel__consumer_on_time_limit(cel_worker *w, struct cel_inflight *f, double limit);
/* Stores a state it reports (copies meta). */
void cel__consumer_on_state(cel_worker *w, struct cel_inflight *f, const char *state,
                            const char *meta, size_t len);
/* A message it asks to publish with its ack (copied). 0 or -1 (memory). */
int cel__consumer_add_followup(struct cel_inflight *f, const struct cel_frame_publish *pub);
/* A chord size to record / a chord header member to join with its ack,
 * in order with the publishes (copied). 0 or -1 (memory). */
int cel__consumer_add_chord_size(struct cel_inflight *f, const char *group_id, int size);
int cel__consumer_add_chord_join(struct cel_inflight *f, const struct cel_chord_join *j);

/* ---- filters.c ---- */
enum cel_filter_verdict {
    CEL_FILTER_PASS,        /* may run */
    CEL_FILTER_DEAD_LETTER, /* settled by the filter: failure stored, message kept aside */
    CEL_FILTER_SETTLED,     /* settled by the filter: its state stored, message acked */
    CEL_FILTER_HELD,        /* kept by the filter, which makes it ready later, or parked on
                               the broker by it */
};
enum cel_filter_verdict cel__filters_run(cel_worker *w, struct cel_inflight *f);

/* ---- revoke.c ---- */
/* Loads the live revokes with b (before the first fetch) and starts the
 * thread that learns new ones. On error the caller still calls stop. */
int cel__revoke_start(cel_worker *w, struct cel_broker *b);
void cel__revoke_stop(cel_worker *w);
/* Whether any revoke is known: false keeps messages unparsed. */
bool cel__revoke_active(const cel_worker *w);
bool cel__revoke_has(cel_worker *w, const char *task_id);
/* Whether f's process was killed by a revoke with terminate (then its
 * death is a REVOKED, not a WorkerLostError); forgets it. */
bool cel__revoke_terminated(cel_worker *w, const struct cel_inflight *f);
/* The live revoked ids (at most max): a list, or with_expiry an object
 * {id: epoch seconds} as Celery's mingle exchanges them: the time each was
 * added (its expiry less worker_revoke_expires), so a Python worker that
 * takes them keeps them as long as we do (the `revoked` and `hello`
 * replies). */
json_t *cel__revoke_dump(cel_worker *w, bool with_expiry, size_t max);

/* The signal a revoke with terminate of task_id asked for; 0 when none
 * is known. */
int cel__revoke_signum(cel_worker *w, const char *task_id);

/* ---- rate_limit.c ---- */
struct cel_rate_limits;
/* Reads the registry's rate limits and the scope; CEL_ECONFIG naming the
 * task for a malformed rate. */
int cel__rate_limits_configure(cel_worker *w);
/* Timers on w->loop, for one run; stop() closes them. */
void cel__rate_limits_start(cel_worker *w);
void cel__rate_limits_stop(cel_worker *w);
void cel__rate_limits_free(cel_worker *w);
/* True when f may run now; false when it waits for a token (the limiter
 * pushes it to the ready queue when one comes). Only with w->rate set. */
bool cel__rate_limit_admit(cel_worker *w, struct cel_inflight *f);
/* The store thread's answers to global token requests. */
void cel__rate_limits_on_answers(cel_worker *w, const struct cel_rate_answer *a, size_t n);
/* Waiting messages left out of the prefetch window. */
size_t cel__rate_limits_uncounted(const cel_worker *w);
/* Gives every waiting message back to its queue (a stop). */
void cel__rate_limits_requeue_all(cel_worker *w);
/* The rate_limit control command: `text` in Celery's syntax ("10/m"), or
 * NULL/""/"0" to lift the limit; waiting messages of a lifted limit run
 * at once. CEL_ENOTFOUND (not registered) or CEL_EINVAL with why. */
int cel__rate_limit_set(cel_worker *w, const char *name, const char *text, char *why, size_t len);
/* The limit in force for def as text, NULL when none. */
const char *cel__rate_limit_text(const cel_worker *w, const cel_task_def *def);

/* ---- control.c: remote control requests and replies ---- */
struct cel_control_request;
struct cel_broker;
/* The hand-over to the loop (before the pidbox thread starts). On error
 * the caller still calls stop. */
int cel__control_start(cel_worker *w);
/* After the pidbox thread has been joined. */
void cel__control_stop(cel_worker *w);
/* pidbox thread: a request addressed to us, for the loop to answer
 * (takes *rq); a new set of queues paused on the broker side (takes
 * names); the fd that turns readable when replies wait, and sending
 * them with the thread's own handle. */
void cel__control_submit(cel_worker *w, struct cel_control_request *rq);
void cel__control_set_paused(cel_worker *w, char **names, size_t n);
/* The same on the loop before the store thread starts (takes names). */
void cel__control_set_paused_now(cel_worker *w, char **names, size_t n);
int cel__control_wake_fd(const cel_worker *w);
void cel__control_send(cel_worker *w, struct cel_broker *b);
/* Loop: whether `queue` is paused on the broker side; tells the store
 * thread the queues to fetch from (w->queues less the paused ones). */
bool cel__control_queue_paused(const cel_worker *w, const char *queue);
void cel__control_apply_queues(cel_worker *w);
/* End of every loop turn: sends the replies held for a queue change the
 * transport has now seen. */
void cel__control_on_turn(cel_worker *w);

/* ---- control_inspect.c: what inspection needs noted as tasks pass ---- */
/* f ran to a result (stats' "total"). Cheap: no parse in the common case. */
void cel__control_note_done(cel_worker *w, struct cel_inflight *f);
/* f was parked on the broker until its ETA (scheduled, query_task). */
void cel__control_note_parked(cel_worker *w, struct cel_inflight *f, int64_t eta_us, int priority);
/* A hard time limit set at run time for f's task (time_limit command)
 * replaces *limit. */
void cel__control_state_free(cel_worker *w);

/* ---- signals.c ---- */
int cel__signals_start(cel_worker *w);
void cel__signals_stop(cel_worker *w);
/* Acts on a new stop level (called from the loop when it rises). */
void cel__worker_on_stop_level(cel_worker *w);
/* Whether the running tasks are to be killed now: a cold stop without a
 * soft timeout, or the soft timeout's end. */
bool cel__worker_killing(const cel_worker *w);

/* ---- dump.c ---- */
/* SIGUSR1: logs what every process runs and the parent's native
 * backtrace, and passes the signal on to the pool's children, which
 * write their own (crash.h). */
void cel__worker_dump(cel_worker *w);

#endif
