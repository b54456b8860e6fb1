/*
 * worker.c - the worker: consumer, prefork pool supervisor and result
 * writer in one poll() loop.
 *
 * The parent process owns the broker and the result store. It reserves
 * messages within the prefetch window, validates them, hands them to
 * children over socketpairs (one task at a time per child, so a long task
 * never holds others hostage), collects the result metas the children
 * build, and writes results and acks in one transaction per loop turn.
 * Messages stay reserved (late ack) until their result is stored, so a
 * worker killed at any moment loses nothing: the broker hands its
 * messages to another worker once their lease runs out. The parent
 * extends the leases of messages it still holds.
 *
 * Signals only set flags (written to a self-pipe to wake poll):
 * TERM/INT = warm shutdown (stop taking, give back what has not started,
 * finish what runs), second INT or QUIT = cold shutdown (kill children,
 * give everything back).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "celeriac/error.h"
#include "celeriac/worker.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/log.h"
#include "proto/message.h"
#include "worker/execute.h"
#include "worker/frame.h"

#define MAX_QUEUES 64
/* A task still running after this long gets its STARTED state written;
 * faster tasks go straight to SUCCESS and save a write. */
#define STARTED_AFTER_US 5000
/* Longest poll() sleep: a safety net against lost wakeups. */
#define MAX_SLEEP_MS 1000
/* How many tasks a child may have queued in its pipe when tasks are
 * short (see dispatch()). */
#define CHILD_DEPTH_MAX 16
/* Tasks faster than this on average are pipelined to children. */
#define PIPELINE_BELOW_US 1000
/* While children have queued work, results may wait this long (or until
 * SETTLE_BATCH of them gather) so that one commit covers many tasks. */
#define SETTLE_DELAY_US 1000
#define SETTLE_BATCH    128
/* While tasks are short (see PIPELINE_BELOW_US) the prefetch window is
 * this many times worker_prefetch_multiplier: 128 messages for -c 2 are
 * still only some 10 ms of work, so other workers lose nothing that
 * matters, and it is what keeps the pipelines to the children full while
 * a refill is on its way (measured on Redis: 10.6k tasks/s at 4x,
 * 13.4k at 16x). */
#define SHORT_TASK_PREFETCH_BOOST 16

/* A message this worker holds reserved. */
struct inflight {
    struct cel_delivery d;
    /* Known only once learn_ids() ran (see there). */
    bool ids_known;
    char *task_id;
    char *task_name;
    char *group_id;
    char *parent_id;
    uint64_t seq;
    bool acked;         /* early ack (task_acks_late off): already acked at dispatch */
    int child;          /* index of the child running it, -1 when waiting */
    int64_t started_us; /* monotonic time it reached the head of its child's queue */
    bool started_written;
    struct inflight *prev, *next; /* all held messages */
    struct inflight *ready_next;  /* waiting for a child */
};

struct child {
    pid_t pid;
    int fd;
    int number; /* ForkPoolWorker-<number> */
    struct cel_framebuf in, out;
    /* Tasks sent and not answered, oldest (running) first. */
    struct inflight *q[CHILD_DEPTH_MAX];
    int qhead, qlen;
    unsigned tasks_sent;
    unsigned tasks_done;
};

/* A result or state to store, and the message to ack with it. */
struct pending {
    char *task_id;
    cel_state state;
    char *meta;
    size_t meta_len;
    struct inflight *ack; /* freed after the flush; NULL for a state-only write */
};

struct cel_worker {
    cel_config *cfg;
    const cel_registry *reg;
    struct cel_errbuf err;

    char hostname[256];
    char *queues[MAX_QUEUES];
    size_t nqueues;
    int concurrency;
    bool solo;
    size_t prefetch_limit;
    int64_t lease_ms;
    int64_t result_ttl_s;
    unsigned max_tasks_per_child;
    bool track_started;
    bool acks_late;

    struct cel_broker *broker;
    struct cel_backend *backend;

    struct child *children;
    struct inflight *held; /* list head */
    size_t nheld;
    struct inflight *ready_head, *ready_tail;
    uint64_t next_seq;
    int next_child_number;
    int64_t runtime_ewma_us; /* recent task run time, for dispatch(); starts "long" */
    int config_rc;           /* result of configure() at creation */

    struct pending *pend;
    size_t npend, cappend;
    int64_t pend_since_us; /* monotonic time the oldest pending write was queued */

    int sigpipe[2];
    atomic_int stop_level; /* 0 run, 1 warm, 2 cold */
    bool need_fetch;
    int64_t next_due_us; /* wall time a delayed message becomes ready, 0 none */
    int64_t next_extend_ms;
};

static cel_worker *signal_worker; /* the worker whose run() owns the signals */

static void on_signal(int sig)
{
    cel_worker *w = signal_worker;
    if (!w)
        return;
    int saved = errno;
    if (sig == SIGQUIT)
        atomic_store(&w->stop_level, 2);
    else if (sig == SIGINT && atomic_load(&w->stop_level) >= 1)
        atomic_store(&w->stop_level, 2);
    else if (sig == SIGTERM || sig == SIGINT) {
        if (atomic_load(&w->stop_level) < 1)
            atomic_store(&w->stop_level, 1);
    }
    char c = (char)sig;
    if (write(w->sigpipe[1], &c, 1) < 0) {
        /* the pipe is full: the loop is already awake */
    }
    errno = saved;
}

void cel_worker_stop(cel_worker *w, int cold)
{
    if (!w)
        return;
    int want = cold ? 2 : 1;
    if (atomic_load(&w->stop_level) < want)
        atomic_store(&w->stop_level, want);
    char c = 0;
    if (w->sigpipe[1] >= 0 && write(w->sigpipe[1], &c, 1) < 0) {
        /* already awake */
    }
}

static int add_queue(cel_worker *w, const char *name, size_t n)
{
    for (size_t i = 0; i < w->nqueues; i++)
        if (strlen(w->queues[i]) == n && memcmp(w->queues[i], name, n) == 0)
            return CEL_OK;
    if (w->nqueues == MAX_QUEUES)
        return cel__err(&w->err, CEL_ECONFIG, "too many queues (at most %d)", MAX_QUEUES);
    w->queues[w->nqueues] = strndup(name, n);
    if (!w->queues[w->nqueues])
        return CEL_ENOMEM;
    w->nqueues++;
    return CEL_OK;
}

/* worker_queues (-Q) when given; otherwise task_default_queue plus every
 * queue a registered task names in its definition, so a module that
 * declares `queue = "images"` for a task is served without extra flags. */
static int parse_queues(cel_worker *w)
{
    const char *list = cel_config_get(w->cfg, "worker_queues");
    bool explicit_list = list && *list;
    if (!explicit_list)
        list = cel_config_get(w->cfg, "task_default_queue");
    int rc;
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n > 0 && (rc = add_queue(w, p, n)) != CEL_OK)
            return rc;
        p = comma ? comma + 1 : NULL;
    }
    for (size_t i = 0; !explicit_list && i < cel_registry_count(w->reg); i++) {
        const char *q = cel_registry_at(w->reg, i)->queue;
        if (q && *q && (rc = add_queue(w, q, strlen(q))) != CEL_OK)
            return rc;
    }
    if (w->nqueues == 0)
        return cel__err(&w->err, CEL_ECONFIG, "no queue to consume from");
    return CEL_OK;
}

static int configure(cel_worker *w);

cel_worker *cel_worker_new(const cel_config *cfg, const cel_registry *reg)
{
    cel_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = cfg ? cel_config_dup(cfg) : cel_config_new();
    w->reg = reg;
    w->sigpipe[0] = w->sigpipe[1] = -1;
    if (!w->cfg) {
        free(w);
        return NULL;
    }
    /* Resolved once, so the banner and run() agree; an error is kept and
     * returned by run(). */
    w->config_rc = configure(w);
    return w;
}

static void release_inflight(struct inflight *f)
{
    if (!f)
        return;
    cel__delivery_release(&f->d);
    free(f->task_id);
    free(f->task_name);
    free(f->group_id);
    free(f->parent_id);
    free(f);
}

void cel_worker_free(cel_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nqueues; i++)
        free(w->queues[i]);
    cel_config_free(w->cfg);
    free(w);
}

const char *cel_worker_errmsg(const cel_worker *w)
{
    return w ? w->err.msg : "";
}

static int configure(cel_worker *w)
{
    const char *name = cel_config_get(w->cfg, "worker_hostname");
    if (name && *name) {
        snprintf(w->hostname, sizeof w->hostname, "%s", name);
    } else {
        char host[200] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(w->hostname, sizeof w->hostname, "celeriac@%s", host);
    }
    const char *pool = cel_config_get(w->cfg, "worker_pool");
    w->solo = pool && strcmp(pool, "solo") == 0;
    int64_t c = cel_config_get_int(w->cfg, "worker_concurrency");
    if (c <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        c = ncpu > 0 ? ncpu : 1;
    }
    w->concurrency = w->solo ? 1 : (int)c;
    int64_t mult = cel_config_get_int(w->cfg, "worker_prefetch_multiplier");
    w->prefetch_limit = (size_t)(w->concurrency * (mult > 0 ? mult : 1));
    double vt = cel_config_get_double(w->cfg, "broker_visibility_timeout");
    w->lease_ms = vt > 0 ? (int64_t)(vt * 1000) : 0; /* 0: the transport's, at open */
    w->result_ttl_s = (int64_t)cel_config_get_double(w->cfg, "result_expires");
    int64_t mtpc = cel_config_get_int(w->cfg, "worker_max_tasks_per_child");
    w->max_tasks_per_child = mtpc > 0 ? (unsigned)mtpc : 0;
    w->track_started = cel_config_get_int(w->cfg, "task_track_started") != 0;
    w->acks_late = cel_config_get_int(w->cfg, "task_acks_late") != 0;
    return parse_queues(w);
}

/* ---- banner ------------------------------------------------------------ */

char *cel_worker_banner(const cel_worker *w)
{
    if (!w)
        return NULL;
    char broker[512], results[512];
    const char *b = cel_config_get(w->cfg, "broker_url");
    const char *r = cel_config_get(w->cfg, "result_backend");
    cel__url_redact(b ? b : "", broker, sizeof broker);
    cel__url_redact(r && *r ? r : (b ? b : ""), results, sizeof results);
    struct utsname un;
    if (uname(&un) != 0)
        memset(&un, 0, sizeof un);

    size_t cap = 4096 + cel_registry_count(w->reg) * 160 + w->nqueues * 160;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = 0;
#define BANNER(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
    BANNER(" -------------- %s v%s\n", w->hostname[0] ? w->hostname : "celeriac",
           cel_version_string());
    BANNER("--- ***** ----- %s-%s %s\n", un.sysname, un.release, un.machine);
    BANNER("- ** ---------- [config]\n");
    BANNER("- ** ---------- .> transport:   %s\n", broker);
    BANNER("- ** ---------- .> results:     %s\n", results);
    BANNER("- *** --- * --- .> concurrency: %d (%s)\n", w->concurrency,
           w->solo ? "solo" : "prefork");
    BANNER("-- ******* ---- .> prefetch:    %zu messages (x%d for sub-ms tasks), late ack\n",
           w->prefetch_limit, SHORT_TASK_PREFETCH_BOOST);
    BANNER("--- ***** ----- [queues]\n");
    for (size_t i = 0; i < w->nqueues; i++)
        BANNER(" -------------- .> %s\n", w->queues[i]);
    BANNER("\n[tasks]\n");
    for (size_t i = 0; i < cel_registry_count(w->reg); i++)
        BANNER("  . %s\n", cel_registry_at(w->reg, i)->name);
#undef BANNER
    if (n >= cap)
        out[cap - 1] = '\0';
    return out;
}

/* ---- pending writes ---------------------------------------------------- */

static int push_pending(cel_worker *w, const char *task_id, cel_state state, char *meta,
                        size_t meta_len, struct inflight *ack)
{
    if (w->npend == w->cappend) {
        size_t cap = w->cappend ? w->cappend * 2 : 64;
        struct pending *p = realloc(w->pend, cap * sizeof *p);
        if (!p) {
            free(meta);
            return CEL_ENOMEM;
        }
        w->pend = p;
        w->cappend = cap;
    }
    if (w->npend == 0)
        w->pend_since_us = cel__mono_us();
    struct pending *p = &w->pend[w->npend++];
    p->task_id = task_id ? strdup(task_id) : NULL;
    p->state = state;
    p->meta = meta;
    p->meta_len = meta_len;
    p->ack = ack;
    return CEL_OK;
}

static void unlink_held(cel_worker *w, struct inflight *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        w->held = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    w->nheld--;
    /* Freed capacity in the prefetch window: look for more work. */
    w->need_fetch = true;
}

/* Stores every pending result and acks its message. */
static void write_pending(cel_worker *w)
{
    const struct cel_broker_ops *bo = w->broker->ops;
    for (size_t i = 0; i < w->npend; i++) {
        struct pending *p = &w->pend[i];
        if (p->meta && p->task_id) {
            int rc = w->backend->ops->store(w->backend, p->task_id, p->state, p->meta, p->meta_len,
                                            w->result_ttl_s);
            if (rc != CEL_OK)
                CEL_ERROR("worker", "cannot store result of %s: %s", p->task_id,
                          cel__backend_errmsg(w->backend));
        }
        if (p->ack && !p->ack->acked) {
            if (bo->ack(w->broker, &p->ack->d) != CEL_OK)
                CEL_ERROR("worker", "cannot ack %s: %s", p->ack->task_id ? p->ack->task_id : "?",
                          cel__broker_errmsg(w->broker));
        }
    }
}

static void clear_pending(cel_worker *w)
{
    for (size_t i = 0; i < w->npend; i++) {
        free(w->pend[i].task_id);
        free(w->pend[i].meta);
        release_inflight(w->pend[i].ack);
    }
    w->npend = 0;
}

static void fetch_more(cel_worker *w);
static void extend_leases(cel_worker *w);

/*
 * One round trip to the store per loop turn: results, acks, new
 * reservations and lease extensions share one transaction when the
 * broker has them (and the backend shares its connection, as SQLite
 * does). On a single machine this is what makes the worker fast: a
 * commit costs far more than the statements inside it.
 */
static void settle(cel_worker *w, bool fetch)
{
    if (!w->npend && !fetch)
        return;
    const struct cel_broker_ops *bo = w->broker->ops;
    const struct cel_backend_ops *ko = w->backend->ops;
    /* Both batch: on SQLite they share one connection and nest into one
     * transaction; on Redis each sends its commands as one pipeline. */
    bool tx = bo->begin && bo->commit && bo->begin(w->broker) == CEL_OK;
    bool ktx = ko->begin && ko->commit && ko->begin(w->backend) == CEL_OK;
    write_pending(w);
    if (ktx && ko->commit(w->backend) != CEL_OK)
        CEL_ERROR("worker", "cannot store results: %s", cel__backend_errmsg(w->backend));
    if (fetch)
        fetch_more(w);
    extend_leases(w);
    if (tx && bo->commit(w->broker) != CEL_OK)
        CEL_ERROR("worker", "cannot commit results and acks: %s", cel__broker_errmsg(w->broker));
    clear_pending(w);
}

static void flush_pending(cel_worker *w)
{
    settle(w, false);
}

/* Stores a meta the parent builds itself (worker lost, not registered,
 * expired) for `f`, and acks f's message with it when `ack` is true
 * (otherwise f is freed here). f must already be unlinked from `held`. */
static void finish_in_parent(cel_worker *w, struct inflight *f, bool ack, const char *status,
                             const char *exc_type, const char *exc_module, const char *message)
{
    json_t *exc = cel__exception_new(exc_type, exc_module, message);
    json_t *meta = cel__result_meta_new(f->task_id ? f->task_id : "", status, exc, NULL,
                                        f->group_id, f->parent_id, cel__wall_us());
    char *text = meta ? cel__json_dump(meta) : NULL;
    json_decref(meta);
    push_pending(w, f->task_id, cel_state_parse(status), text, text ? strlen(text) : 0,
                 ack ? f : NULL);
    if (!ack)
        release_inflight(f);
}

/* The parent does not parse messages on the hot path (execute.h); when it
 * needs a message's ids (a child died under it, it runs long enough to be
 * STARTED, the log is at INFO) it reads the headers here, once. */
static void learn_ids(struct inflight *f)
{
    if (f->ids_known)
        return;
    f->ids_known = true;
    struct cel_message m;
    char err[64];
    const struct cel_message_limits headers_only = {.headers_only = true};
    if (cel__message_parse(f->d.body, f->d.len, &headers_only, &m, err, sizeof err) != 0)
        return;
    f->task_id = strdup(m.id);
    f->task_name = strdup(m.task);
    f->group_id = m.group_id ? strdup(m.group_id) : NULL;
    f->parent_id = m.parent_id ? strdup(m.parent_id) : NULL;
    cel__message_release(&m);
}

/* ---- consuming --------------------------------------------------------- */

static void dead_letter(cel_worker *w, struct cel_delivery *d, const char *reason)
{
    if (w->broker->ops->reject(w->broker, d, false, reason) != CEL_OK)
        CEL_ERROR("worker", "cannot dead-letter a message from '%s': %s", d->queue,
                  cel__broker_errmsg(w->broker));
}

static void push_ready(cel_worker *w, struct inflight *f)
{
    if (w->ready_tail)
        w->ready_tail->ready_next = f;
    else
        w->ready_head = f;
    w->ready_tail = f;
}

/*
 * Acts on what the executor decided about a message (execute.h). f is
 * unlinked from `held`; ex's meta is taken over.
 */
static void apply_outcome(cel_worker *w, struct inflight *f, struct cel_execution *ex)
{
    const struct cel_broker_ops *bo = w->broker->ops;
    switch (ex->outcome) {
    case CEL_OUTCOME_RESULT:
        push_pending(w, ex->task_id, ex->state, ex->meta, ex->meta_len, f);
        ex->meta = NULL;
        return;
    case CEL_OUTCOME_MALFORMED:
    case CEL_OUTCOME_UNREGISTERED:
        /* Kept for an operator (a deploy may have missed the task, a
         * producer may be broken); the stored failure tells the client. */
        if (f->acked)
            CEL_WARN("worker", "not keeping the message in the dead-letter store: it was acked "
                               "before it ran (task_acks_late is off)");
        else
            dead_letter(w, &f->d, ex->reason);
        if (ex->meta && ex->task_id) {
            push_pending(w, ex->task_id, ex->state, ex->meta, ex->meta_len, NULL);
            ex->meta = NULL;
        }
        release_inflight(f);
        return;
    case CEL_OUTCOME_DEFER:
        /* A future task from a client that cannot publish with a due time
         * (Python Celery puts eta in a header): park it on the broker side,
         * not in worker memory, and settle the original. */
        if (bo->publish(w->broker, f->d.queue, ex->priority, ex->eta_us, ex->task_id, f->d.body,
                        f->d.len) == CEL_OK) {
            push_pending(w, NULL, CEL_STATE_PENDING, NULL, 0, f);
        } else {
            CEL_ERROR("worker", "cannot park eta task %s: %s; giving it back",
                      ex->task_id ? ex->task_id : "?", cel__broker_errmsg(w->broker));
            bo->reject(w->broker, &f->d, true, NULL);
            release_inflight(f);
        }
        return;
    }
}

/* Takes a reserved message (ownership of *d) and queues it for a child. */
static void accept_delivery(cel_worker *w, struct cel_delivery *d)
{
    struct inflight *f = calloc(1, sizeof *f);
    if (!f) {
        w->broker->ops->reject(w->broker, d, true, NULL);
        cel__delivery_release(d);
        return;
    }
    f->d = *d;
    memset(d, 0, sizeof *d);
    f->child = -1;
    f->seq = ++w->next_seq;
    f->next = w->held;
    if (w->held)
        w->held->prev = f;
    w->held = f;
    w->nheld++;
    if (cel__log_min_level <= CEL_LOG_INFO) {
        learn_ids(f);
        CEL_INFO("worker", "Task %s[%s] received", f->task_name ? f->task_name : "?",
                 f->task_id ? f->task_id : "?");
    }
    push_ready(w, f);
}

static size_t prefetch_window(const cel_worker *w)
{
    bool short_tasks = !w->solo && w->runtime_ewma_us < PIPELINE_BELOW_US;
    return w->prefetch_limit * (short_tasks ? SHORT_TASK_PREFETCH_BOOST : 1);
}

static void fetch_more(cel_worker *w)
{
    w->need_fetch = false;
    size_t window = prefetch_window(w);
    if (atomic_load(&w->stop_level) || w->nheld >= window)
        return;
    size_t want = window - w->nheld;
    struct cel_delivery batch[256];
    if (want > 256)
        want = 256;
    size_t got = 0;
    int64_t next_due = 0;
    int rc = w->broker->ops->fetch(w->broker, (const char *const *)w->queues, w->nqueues, want,
                                   w->lease_ms, batch, &got, &next_due);
    if (rc != CEL_OK) {
        CEL_ERROR("worker", "cannot fetch messages: %s", cel__broker_errmsg(w->broker));
        return;
    }
    w->next_due_us = next_due;
    for (size_t i = 0; i < got; i++)
        accept_delivery(w, &batch[i]);
    /* A full batch means there may be more waiting. */
    if (got == want)
        w->need_fetch = true;
}

/* ---- prefork children -------------------------------------------------- */

static void child_loop(cel_worker *w, int fd) __attribute__((noreturn));

static void child_loop(cel_worker *w, int fd)
{
    struct cel_framebuf in = {0}, out = {0};
    for (;;) {
        long got = cel__framebuf_fill(&in, fd);
        if (got == 0)
            _exit(0); /* the parent closed our socket: shutdown */
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            _exit(1);
        }
        struct cel_frame f;
        int r;
        while ((r = cel__framebuf_next(&in, &f)) == 1) {
            if (f.type != CEL_FRAME_TASK)
                _exit(3);
            struct cel_execution ex;
            cel__execute(w->reg, w->hostname, f.payload, f.len, &ex);
            int rc = cel__execution_to_frame(&ex, f.seq, &out);
            cel__execution_release(&ex);
            if (rc != 0)
                _exit(4);
        }
        if (r < 0)
            _exit(3);
        if (cel__framebuf_flush(&out, fd) != 0)
            _exit(0);
    }
}

static int spawn_child(cel_worker *w, int slot)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return cel__err(&w->err, CEL_EIO, "socketpair: %s", strerror(errno));
    int number = ++w->next_child_number;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return cel__err(&w->err, CEL_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(sv[0]);
        /* Die with the parent, and leave signal handling to it: the parent
         * decides between warm and cold shutdown. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal_worker = NULL;
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        for (int i = 0; i < w->concurrency; i++)
            if (w->children[i].fd >= 0)
                close(w->children[i].fd);
        close(w->sigpipe[0]);
        close(w->sigpipe[1]);
        char name[64];
        snprintf(name, sizeof name, "ForkPoolWorker-%d", number);
        cel__log_set_process_name(name);
        child_loop(w, sv[1]);
    }
    close(sv[1]);
    struct child *c = &w->children[slot];
    memset(c, 0, sizeof *c);
    c->pid = pid;
    c->fd = sv[0];
    c->number = number;
    return CEL_OK;
}

static void reap_child(cel_worker *w, struct child *c, const char *why)
{
    int status = 0;
    if (c->fd >= 0)
        close(c->fd); /* an idle child exits on EOF */
    c->fd = -1;
    if (c->pid > 0) {
        /* The socket said the child is gone; wait briefly for the exit
         * status so the log can say how it died. */
        pid_t r = 0;
        for (int i = 0; i < 100 && (r = waitpid(c->pid, &status, WNOHANG)) == 0; i++)
            usleep(1000);
        if (r == 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
        }
    }
    cel__framebuf_release(&c->in);
    cel__framebuf_release(&c->out);
    struct inflight *f = c->qlen ? c->q[c->qhead] : NULL;
    /* Tasks queued behind the running one never started: give them back. */
    for (int k = 1; k < c->qlen; k++) {
        struct inflight *queued = c->q[(c->qhead + k) % CHILD_DEPTH_MAX];
        unlink_held(w, queued);
        w->broker->ops->reject(w->broker, &queued->d, true, NULL);
        release_inflight(queued);
    }
    c->qlen = c->qhead = 0;
    if (f) {
        char msg[200];
        if (WIFSIGNALED(status))
            snprintf(msg, sizeof msg, "Worker exited prematurely: signal %d (%s).",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(msg, sizeof msg, "Worker exited prematurely: exitcode %d.",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        learn_ids(f);
        CEL_ERROR("worker", "Task handler raised error: WorkerLostError('%s') task=%s[%s]", msg,
                  f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?");
        unlink_held(w, f);
        if (atomic_load(&w->stop_level) >= 2) {
            /* Cold shutdown killed it: give the message back instead. */
            w->broker->ops->reject(w->broker, &f->d, true, NULL);
            release_inflight(f);
        } else {
            finish_in_parent(w, f, true, "FAILURE", "WorkerLostError", "billiard.exceptions", msg);
        }
    } else if (why) {
        CEL_DEBUG("worker", "child %d (pid %d) %s", c->number, (int)c->pid, why);
    }
    c->pid = 0;
}

/* task_acks_late off (Celery's default, not ours): the message is acked
 * as it is handed to a child, so a task whose worker dies is lost rather
 * than run twice. */
static void ack_early(cel_worker *w, struct inflight *f)
{
    if (w->acks_late || f->acked)
        return;
    if (w->broker->ops->ack(w->broker, &f->d) != CEL_OK)
        CEL_ERROR("worker", "cannot ack a message from '%s': %s", f->d.queue,
                  cel__broker_errmsg(w->broker));
    f->acked = true;
}

static bool send_task(cel_worker *w, int slot, struct inflight *f)
{
    struct child *c = &w->children[slot];
    ack_early(w, f);
    f->child = slot;
    if (c->qlen == 0)
        f->started_us = cel__mono_us();
    c->q[(c->qhead + c->qlen) % CHILD_DEPTH_MAX] = f;
    c->qlen++;
    c->tasks_sent++;
    return cel__framebuf_append(&c->out, CEL_FRAME_TASK, 0, f->seq, f->d.body, f->d.len) == 0;
}

static struct inflight *pop_ready(cel_worker *w)
{
    struct inflight *f = w->ready_head;
    if (f) {
        w->ready_head = f->ready_next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        f->ready_next = NULL;
    }
    return f;
}

static bool may_take(const cel_worker *w, const struct child *c, int depth)
{
    return c->fd >= 0 && c->qlen < depth &&
           (!w->max_tasks_per_child || c->tasks_sent < w->max_tasks_per_child);
}

/*
 * Idle children get one task each first, so a long task never waits
 * behind another while a child is free (Celery's -Ofair). When tasks are
 * short on average and work is left over, children also get a queue of
 * tasks in their pipe: the round trip to the parent then overlaps with
 * work, and the parent settles results in bigger batches.
 */
static void dispatch(cel_worker *w)
{
    /* With early acks a queued task is acked before it runs, and a child's
     * death would lose it: pipeline only when acks are late. */
    int depth = w->acks_late && w->runtime_ewma_us < PIPELINE_BELOW_US ? CHILD_DEPTH_MAX : 1;
    for (int pass = 0; pass < 2 && w->ready_head; pass++) {
        int limit = pass == 0 ? 1 : depth;
        bool progress = true;
        while (w->ready_head && progress) {
            progress = false;
            for (int i = 0; i < w->concurrency && w->ready_head; i++) {
                if (!may_take(w, &w->children[i], limit))
                    continue;
                if (!send_task(w, i, pop_ready(w)))
                    break;
                progress = true;
            }
        }
    }
    for (int i = 0; i < w->concurrency; i++) {
        struct child *c = &w->children[i];
        if (c->fd >= 0 && c->out.len > c->out.off && cel__framebuf_flush(&c->out, c->fd) != 0) {
            reap_child(w, c, "lost while sending a task");
            if (!atomic_load(&w->stop_level))
                spawn_child(w, i);
        }
    }
}

static void on_child_readable(cel_worker *w, int slot)
{
    struct child *c = &w->children[slot];
    long got = cel__framebuf_fill(&c->in, c->fd);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        reap_child(w, c, "exited");
        if (!atomic_load(&w->stop_level))
            spawn_child(w, slot);
        return;
    }
    struct cel_frame fr;
    int r;
    bool recycle = false;
    int64_t now = cel__mono_us();
    while ((r = cel__framebuf_next(&c->in, &fr)) == 1) {
        struct inflight *f = c->qlen ? c->q[c->qhead] : NULL;
        if (fr.type != CEL_FRAME_RESULT || !f || fr.seq != f->seq) {
            r = -1;
            break;
        }
        c->qhead = (c->qhead + 1) % CHILD_DEPTH_MAX;
        c->qlen--;
        c->tasks_done++;
        int64_t ran = now - f->started_us;
        w->runtime_ewma_us += (ran - w->runtime_ewma_us) / 8;
        if (c->qlen)
            c->q[c->qhead]->started_us = now;
        unlink_held(w, f);
        struct cel_execution ex;
        if (cel__execution_from_frame(&fr, &ex) != 0) {
            /* Unreadable outcome: the task may have run; give the message
             * back rather than guess (at-least-once), and replace the child. */
            w->broker->ops->reject(w->broker, &f->d, true, NULL);
            release_inflight(f);
            r = -1;
            break;
        }
        apply_outcome(w, f, &ex);
        cel__execution_release(&ex);
        if (w->max_tasks_per_child && c->tasks_done >= w->max_tasks_per_child)
            recycle = true;
    }
    if (r < 0) {
        CEL_ERROR("worker", "child %d sent a corrupt frame; replacing it", c->number);
        kill(c->pid, SIGKILL);
        recycle = true;
    }
    if (recycle) {
        reap_child(w, c, "recycled");
        if (!atomic_load(&w->stop_level))
            spawn_child(w, slot);
    }
}

/* ---- solo pool --------------------------------------------------------- */

static void run_solo(cel_worker *w)
{
    struct inflight *f = w->ready_head;
    if (!f)
        return;
    w->ready_head = f->ready_next;
    if (!w->ready_head)
        w->ready_tail = NULL;
    f->ready_next = NULL;
    ack_early(w, f);
    struct cel_execution ex;
    cel__execute(w->reg, w->hostname, f->d.body, f->d.len, &ex);
    unlink_held(w, f);
    apply_outcome(w, f, &ex);
    cel__execution_release(&ex);
}

/* ---- periodic work ----------------------------------------------------- */

static void write_started_states(cel_worker *w)
{
    if (!w->track_started)
        return;
    int64_t now = cel__mono_us();
    for (struct inflight *f = w->held; f; f = f->next) {
        if (f->child < 0 || f->started_written || now - f->started_us < STARTED_AFTER_US)
            continue;
        const struct child *c = &w->children[f->child];
        if (!c->qlen || c->q[c->qhead] != f)
            continue; /* queued behind another task, not started yet */
        f->started_written = true;
        learn_ids(f);
        if (!f->task_id)
            continue;
        pid_t pid = w->children[f->child].pid;
        json_t *info = json_pack("{s:i, s:s}", "pid", (json_int_t)pid, "hostname", w->hostname);
        json_t *meta = cel__result_meta_new(f->task_id, "STARTED", info, NULL, NULL, NULL, 0);
        char *text = meta ? cel__json_dump(meta) : NULL;
        json_decref(meta);
        if (text)
            push_pending(w, f->task_id, CEL_STATE_STARTED, text, strlen(text), NULL);
    }
}

static void extend_leases(cel_worker *w)
{
    int64_t now = cel__mono_ms();
    if (now < w->next_extend_ms || !w->held || !w->broker->ops->extend)
        return;
    w->next_extend_ms = now + w->lease_ms / 3;
    const struct cel_delivery **ds = malloc(w->nheld * sizeof *ds);
    if (!ds)
        return;
    size_t n = 0;
    for (struct inflight *f = w->held; f; f = f->next)
        if (!f->acked)
            ds[n++] = &f->d;
    if (w->broker->ops->extend(w->broker, ds, n, w->lease_ms) != CEL_OK)
        CEL_WARN("worker", "cannot extend message leases: %s", cel__broker_errmsg(w->broker));
    free(ds);
}

/* Gives back every held message that no child has started. */
static void requeue_waiting(cel_worker *w, bool running_too)
{
    w->ready_head = w->ready_tail = NULL;
    struct inflight *f = w->held;
    while (f) {
        struct inflight *next = f->next;
        if (f->child < 0 || running_too) {
            unlink_held(w, f);
            if (w->broker->ops->reject(w->broker, &f->d, true, NULL) != CEL_OK)
                CEL_ERROR("worker", "cannot give back a message from '%s': %s", f->d.queue,
                          cel__broker_errmsg(w->broker));
            release_inflight(f);
        }
        f = next;
    }
}

/* Whether the loop must settle (commit) now, or may let results gather. */
static bool settle_due(const cel_worker *w, bool fetch, int64_t now_us)
{
    if (!w->npend && !fetch)
        return false;
    if (atomic_load(&w->stop_level) || w->solo || w->runtime_ewma_us >= PIPELINE_BELOW_US)
        return true; /* no pipelining: every result matters to someone now */
    if (w->npend >= SETTLE_BATCH || (w->npend && now_us - w->pend_since_us >= SETTLE_DELAY_US))
        return true;
    if (fetch && !w->ready_head)
        for (int i = 0; i < w->concurrency; i++)
            if (w->children[i].fd >= 0 && w->children[i].qlen <= 1)
                return true; /* a child is about to run dry */
    return false;
}

static int64_t poll_timeout_us(cel_worker *w, bool settled)
{
    int64_t timeout = MAX_SLEEP_MS * 1000;
    if (!settled && w->npend) {
        int64_t left = SETTLE_DELAY_US - (cel__mono_us() - w->pend_since_us);
        return left < 0 ? 0 : left;
    }
    if (w->need_fetch || w->npend)
        return 0;
    if (w->next_due_us) {
        int64_t due = w->next_due_us - cel__wall_us() + 1000;
        if (due < timeout)
            timeout = due < 0 ? 0 : due;
    }
    if (w->track_started && w->held && !w->solo)
        if (timeout > STARTED_AFTER_US)
            timeout = STARTED_AFTER_US;
    if (w->held) {
        int64_t ext = (w->next_extend_ms - cel__mono_ms()) * 1000;
        if (ext < timeout)
            timeout = ext < 0 ? 0 : ext;
    }
    return timeout;
}

static bool children_busy(const cel_worker *w)
{
    for (int i = 0; i < w->concurrency; i++)
        if (w->children[i].qlen)
            return true;
    return false;
}

static void install_signals(cel_worker *w, struct sigaction old[4])
{
    static const int sigs[4] = {SIGTERM, SIGINT, SIGQUIT, SIGPIPE};
    signal_worker = w;
    for (int i = 0; i < 4; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sigs[i] == SIGPIPE ? SIG_IGN : on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, &old[i]);
    }
}

static void restore_signals(struct sigaction old[4])
{
    static const int sigs[4] = {SIGTERM, SIGINT, SIGQUIT, SIGPIPE};
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    signal_worker = NULL;
}

static void stop_children(cel_worker *w)
{
    for (int i = 0; i < w->concurrency; i++) {
        struct child *c = &w->children[i];
        if (c->pid <= 0)
            continue;
        if (atomic_load(&w->stop_level) >= 2)
            kill(c->pid, SIGKILL);
        close(c->fd); /* EOF tells an idle child to exit */
        c->fd = -1;
    }
    for (int i = 0; i < w->concurrency; i++) {
        struct child *c = &w->children[i];
        if (c->pid <= 0)
            continue;
        int status;
        pid_t r = 0;
        for (int t = 0; t < 2000 && (r = waitpid(c->pid, &status, WNOHANG)) == 0; t++)
            usleep(1000);
        if (r == 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
        }
        c->pid = 0;
        cel__framebuf_release(&c->in);
        cel__framebuf_release(&c->out);
    }
}

static int open_stores(cel_worker *w)
{
    int rc = cel__broker_open(NULL, w->cfg, &w->broker, &w->err);
    if (rc != CEL_OK)
        return rc;
    if (w->lease_ms <= 0)
        w->lease_ms =
            w->broker->ops->default_lease_ms > 0 ? w->broker->ops->default_lease_ms : 120000;
    rc = cel__backend_open(NULL, w->cfg, &w->backend, &w->err);
    if (rc != CEL_OK)
        return rc;
    return CEL_OK;
}

/* Sleeps up to ms, or until a signal asks the worker to stop. */
static void sleep_unless_stopped(cel_worker *w, int64_t ms)
{
    struct pollfd p = {.fd = w->sigpipe[0], .events = POLLIN};
    if (!atomic_load(&w->stop_level))
        poll(&p, 1, (int)ms);
}

/*
 * A broker that is down when the worker starts (a reboot that brought the
 * worker up before Redis) is waited for with backoff, as Celery does with
 * broker_connection_retry_on_startup; other errors (a bad URL, a file
 * that cannot be created) end the start at once. TERM or INT stop the
 * waiting.
 */
static int open_stores_retrying(cel_worker *w)
{
    int64_t backoff_ms = 500;
    for (;;) {
        int rc = open_stores(w);
        if (rc == CEL_OK)
            return CEL_OK;
        cel__backend_close(w->backend);
        cel__broker_close(w->broker);
        w->backend = NULL;
        w->broker = NULL;
        if (rc != CEL_ECONNECT && rc != CEL_EDISCONNECTED)
            return rc;
        CEL_ERROR("worker", "consumer: cannot connect: %s; trying again in %.1f s", w->err.msg,
                  (double)backoff_ms / 1000.0);
        sleep_unless_stopped(w, backoff_ms);
        if (atomic_load(&w->stop_level))
            return CEL_OK; /* asked to stop while waiting: a clean shutdown */
        backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
    }
}

static void loop(cel_worker *w)
{
    struct pollfd *pfds = calloc((size_t)w->concurrency + 2, sizeof *pfds);
    if (!pfds)
        return;
    w->need_fetch = true;
    int announced = 0;
    for (;;) {
        int level = atomic_load(&w->stop_level);
        if (level && announced < level) {
            announced = level;
            CEL_WARN("worker", "worker: %s shutdown (MainProcess)", level >= 2 ? "Cold" : "Warm");
            requeue_waiting(w, false);
            if (level >= 2) {
                for (int i = 0; i < w->concurrency && !w->solo; i++)
                    if (w->children[i].pid > 0)
                        kill(w->children[i].pid, SIGKILL);
            }
        }
        if (level && (w->solo || !children_busy(w)))
            break;

        write_started_states(w);
        bool fetch = !level && w->need_fetch;
        bool settled = settle_due(w, fetch, cel__mono_us());
        if (settled)
            settle(w, fetch);
        if (w->solo) {
            if (!level)
                run_solo(w);
        } else {
            dispatch(w);
        }

        nfds_t n = 0;
        pfds[n++] = (struct pollfd){.fd = w->sigpipe[0], .events = POLLIN};
        int wfd = w->broker->ops->wakeup_fd ? w->broker->ops->wakeup_fd(w->broker) : -1;
        int wake_index = -1;
        if (wfd >= 0 && !level && w->nheld < prefetch_window(w)) {
            wake_index = (int)n;
            pfds[n++] = (struct pollfd){.fd = wfd, .events = POLLIN};
        }
        int first_child = (int)n;
        if (!w->solo)
            for (int i = 0; i < w->concurrency; i++)
                pfds[n++] = (struct pollfd){.fd = w->children[i].fd, .events = POLLIN};

        int64_t timeout = (w->solo && w->ready_head && !level) ? 0 : poll_timeout_us(w, settled);
        struct timespec ts = {(time_t)(timeout / 1000000), (long)(timeout % 1000000) * 1000};
        int ready = ppoll(pfds, n, &ts, NULL);
        if (ready < 0 && errno != EINTR) {
            CEL_ERROR("worker", "poll: %s", strerror(errno));
            break;
        }
        if (ready <= 0) {
            /* Timer: a delayed message may be due, or a lost wakeup. */
            if (!w->ready_head)
                w->need_fetch = true;
            continue;
        }
        if (pfds[0].revents) {
            char buf[64];
            while (read(w->sigpipe[0], buf, sizeof buf) > 0)
                ;
        }
        if (wake_index >= 0 && pfds[wake_index].revents) {
            if (w->broker->ops->drain_wakeup)
                w->broker->ops->drain_wakeup(w->broker);
            w->need_fetch = true;
        }
        for (int i = 0; !w->solo && i < w->concurrency; i++)
            if (pfds[first_child + i].fd >= 0 && pfds[first_child + i].revents)
                on_child_readable(w, i);
    }
    free(pfds);
}

int cel_worker_run(cel_worker *w)
{
    if (!w)
        return CEL_EINVAL;
    if (w->config_rc != CEL_OK)
        return w->config_rc;
    cel__err_clear(&w->err);
    int rc;
    if (pipe2(w->sigpipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return cel__err(&w->err, CEL_EIO, "pipe: %s", strerror(errno));
    atomic_store(&w->stop_level, 0);
    w->runtime_ewma_us = 10 * PIPELINE_BELOW_US;
    struct sigaction old[4];
    install_signals(w, old);
    if ((rc = open_stores_retrying(w)) != CEL_OK)
        goto out_signals;

    if (!w->solo) {
        w->children = calloc((size_t)w->concurrency, sizeof *w->children);
        if (!w->children) {
            rc = CEL_ENOMEM;
            goto out_signals;
        }
        for (int i = 0; i < w->concurrency; i++)
            w->children[i].fd = -1;
        for (int i = 0; i < w->concurrency; i++)
            if ((rc = spawn_child(w, i)) != CEL_OK)
                goto out_children;
    }
    CEL_INFO("worker", "%s ready.", w->hostname);
    loop(w);
    /* Whatever was never started goes back to the queue. */
    requeue_waiting(w, atomic_load(&w->stop_level) >= 2);
    flush_pending(w);
out_children:
    if (w->children) {
        stop_children(w);
        free(w->children);
        w->children = NULL;
    }
    requeue_waiting(w, true);
    flush_pending(w);
out_signals:
    restore_signals(old);
    free(w->pend);
    w->pend = NULL;
    w->npend = w->cappend = 0;
    if (w->sigpipe[0] >= 0) {
        close(w->sigpipe[0]);
        close(w->sigpipe[1]);
        w->sigpipe[0] = w->sigpipe[1] = -1;
    }
    cel__backend_close(w->backend);
    cel__broker_close(w->broker);
    w->backend = NULL;
    w->broker = NULL;
    return rc;
}
