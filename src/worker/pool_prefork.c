/*
 * pool_prefork.c - the prefork pool, parent side.
 *
 * Children are forked from the worker; each has a socketpair to the
 * parent. The parent's end is non-blocking and watched by the loop: TASK
 * frames wait in a per-child output buffer and go out as the socket
 * takes them, so a child busy writing a large result back can never
 * block the parent (that was a deadlock with large payloads), and
 * signals, timers and the store thread's reports keep flowing.
 *
 * Dispatch: idle children get one task each first, so a long task never
 * waits behind another while a child is free (Celery's -Ofair). While
 * tasks average under CEL_PIPELINE_BELOW_US and acks are late, children
 * also get a short queue of tasks, bounded in count and in bytes, so the
 * round trip to the parent overlaps with work.
 *
 * A child's death is learnt from SIGCHLD (through the loop), after the
 * results it managed to write have been read: its running task fails
 * with WorkerLostError (or goes back to its queue with
 * reject_on_worker_lost, consumer.c), the tasks queued behind it go back
 * to the broker, and a new child takes its slot.
 *
 * Hard time limits: a running task's limit is the worker's, or what its
 * child announced in a BEGIN frame. One timer, armed for the earliest
 * deadline of the tasks running now, SIGKILLs a child past it; its task
 * fails with TimeLimitExceeded when the death is reaped. A child whose
 * resident memory passed worker_max_memory_per_child after a task, or
 * that ran worker_max_tasks_per_child tasks, retires: it finishes what it
 * has and is replaced.
 *
 * Size at run time (pool_grow, pool_shrink, autoscale): growing adds
 * slots, forked at the end of the loop turn as any missing child.
 * Shrinking marks slots unwanted (never refilled): empty ones first,
 * then children already retiring, then idle ones (their socket is closed
 * and they exit), then the busy ones with the fewest tasks. A busy one
 * finishes the task it runs; the tasks queued behind it come back in
 * RETURNED frames (its retire flag, child.c) and go to other children,
 * so a shrink costs no more than the running task, and every task is
 * answered exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "celeriac/error.h"
#include "core/clock.h"
#include "core/log.h"
#include "worker/frame.h"
#include "worker/limits.h"
#include "worker/worker_internal.h"

#define COMP "worker"
/* Tasks a child may have queued when tasks are short. */
#define CHILD_DEPTH_MAX 16
/* Bytes of task messages a child may have queued beyond the one it runs:
 * large messages are not pipelined, so memory stays bounded and a big
 * task never waits behind another in a pipe. */
#define PIPELINE_BYTES_MAX (256u * 1024u)
/* A slot whose fork failed is tried again after this long. */
#define RESPAWN_RETRY_MS 1000

struct child {
    struct prefork *pool;
    int slot;
    pid_t pid;        /* 0: the slot is empty */
    int fd;           /* -1 once closed */
    int number;       /* ForkPoolWorker-<number> */
    uv_poll_t *watch; /* heap: its close completes after the child is gone */
    int events;
    struct cel_buf in, out;
    /* Tasks sent and not answered, oldest (running) first. */
    struct cel_inflight *q[CHILD_DEPTH_MAX];
    int qhead, qlen;
    size_t qbytes;
    unsigned tasks_sent, tasks_done;
    bool retiring; /* takes no more tasks (recycling, shrinking, shutdown) */
    bool unwanted; /* the slot was given up by a shrink: not refilled */
    /* Shared with the child (child.c); raised when a shrink retires it.
     * NULL when it could not be mapped: the child then runs its queue. */
    atomic_int *retire_flag;
    /* Frame seq of the task it was killed for at its hard limit (0: none),
     * until it is reaped. */
    uint64_t killed_seq;
};

struct prefork {
    struct cel_pool base;
    struct child *children; /* slots; reallocated by a grow */
    int n;                  /* slots in use */
    int cap;                /* slots allocated */
    int size;               /* processes wanted (slots not unwanted) */
    int next_number;
    uv_signal_t sigchld;
    uv_timer_t respawn;
    uv_timer_t limits;     /* the earliest hard-limit deadline */
    int64_t armed_us;      /* the deadline it is armed for; 0: stopped */
    int open_handles;      /* closed handles free the pool at 0 */
    int64_t next_spawn_ms; /* after a failed fork */
    bool stopping, cold;
};

static void on_child_io(uv_poll_t *h, int status, int events);
static void on_respawn(uv_timer_t *t);

static void watch_closed(uv_handle_t *h)
{
    free(h);
}

static void set_events(struct child *c, int events)
{
    if (!c->watch || c->events == events)
        return;
    c->events = events;
    if (events)
        uv_poll_start(c->watch, events, on_child_io);
    else
        uv_poll_stop(c->watch);
}

static void close_fd(struct child *c)
{
    if (c->watch) {
        uv_close((uv_handle_t *)c->watch, watch_closed);
        c->watch = NULL;
    }
    c->events = 0;
    if (c->fd >= 0)
        close(c->fd); /* an idle child exits on EOF */
    c->fd = -1;
}

static void release_flag(struct child *c)
{
    if (c->retire_flag)
        munmap(c->retire_flag, sizeof *c->retire_flag);
    c->retire_flag = NULL;
}

static int spawn(struct prefork *p, struct child *c)
{
    cel_worker *w = p->base.w;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return cel__err(&w->err, CEL_EIO, "socketpair: %s", strerror(errno));
    int number = ++p->next_number;
    atomic_int *flag =
        mmap(NULL, sizeof *flag, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flag == MAP_FAILED)
        flag = NULL;
    else
        atomic_init(flag, 0);
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        if (flag)
            munmap(flag, sizeof *flag);
        return cel__err(&w->err, CEL_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(sv[0]);
        /* Die with the parent, and leave signal handling to it: the parent
         * decides between warm and cold shutdown. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        for (int i = 0; i < p->n; i++)
            if (p->children[i].fd >= 0)
                close(p->children[i].fd);
        char name[64];
        snprintf(name, sizeof name, "ForkPoolWorker-%d", number);
        cel__log_set_process_name(name);
        cel__child_main(&w->exec_env, sv[1], flag);
    }
    close(sv[1]);
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    memset(c, 0, sizeof *c);
    c->pool = p;
    c->slot = (int)(c - p->children);
    c->pid = pid;
    c->fd = sv[0];
    c->number = number;
    c->retire_flag = flag;
    c->watch = malloc(sizeof *c->watch);
    if (c->watch) {
        uv_poll_init(&w->loop, c->watch, c->fd);
        c->watch->data = c;
        set_events(c, UV_READABLE);
    } else {
        CEL_ERROR(COMP, "out of memory watching child %d; it will be replaced", number);
        kill(pid, SIGKILL);
    }
    CEL_DEBUG(COMP, "child %d started (pid %d)", number, (int)pid);
    return CEL_OK;
}

static struct cel_inflight *head(const struct child *c)
{
    return c->qlen ? c->q[c->qhead] : NULL;
}

static void mark_started(struct child *c, int64_t now)
{
    struct cel_inflight *f = head(c);
    if (f) {
        f->started_us = now;
        f->pid = (int)c->pid;
        cel__consumer_ack_early(c->pool->base.w, f);
    }
}

static struct cel_inflight *pop_head(struct child *c)
{
    struct cel_inflight *f = head(c);
    if (!f)
        return NULL;
    c->qhead = (c->qhead + 1) % CHILD_DEPTH_MAX;
    c->qlen--;
    c->qbytes -= f->d.len;
    f->slot = -1;
    return f;
}

/* The child answered for its running task. */
static int on_result(struct child *c, const struct cel_frame *fr, int64_t now)
{
    cel_worker *w = c->pool->base.w;
    struct cel_inflight *f = head(c);
    if (!f || fr->seq != f->seq)
        return -1;
    struct cel_execution ex;
    if (cel__execution_from_frame(fr, &ex) != 0)
        return -1;
    pop_head(c);
    c->tasks_done++;
    int64_t ran = now - f->started_us;
    w->runtime_ewma_us += (ran - w->runtime_ewma_us) / 8;
    mark_started(c, now);
    cel__consumer_on_outcome(w, f, &ex);
    cel__execution_release(&ex);
    if (w->max_tasks_per_child && c->tasks_done >= w->max_tasks_per_child)
        c->retiring = true;
    if (w->max_memory_kib && !c->retiring) {
        long rss = cel__limit_rss_kib(c->pid);
        if (rss > w->max_memory_kib) {
            CEL_WARN(COMP,
                     "child %d (pid %d) exceeded the memory limit (%ld KiB > %ld KiB); "
                     "replacing it",
                     c->number, (int)c->pid, rss, w->max_memory_kib);
            c->retiring = true;
        }
    }
    return 0;
}

/* A retiring child did not run its oldest task (RETURNED): it goes to
 * the front of the ready queue, for another child. */
static int on_returned(struct child *c, const struct cel_frame *fr, int64_t now)
{
    cel_worker *w = c->pool->base.w;
    struct cel_inflight *f = head(c);
    if (!f || fr->seq != f->seq || !c->retiring)
        return -1;
    pop_head(c);
    f->pid = 0;
    f->started_us = 0;
    mark_started(c, now);
    CEL_DEBUG(COMP, "child %d (pid %d), retiring, gave back a queued task", c->number, (int)c->pid);
    cel__held_push_ready_front(&w->held, f);
    return 0;
}

/* A state update for the running task (STATE frame). */
static int on_state(struct child *c, const struct cel_frame *fr)
{
    struct cel_inflight *f = head(c);
    struct cel_frame_state st;
    if (!f || fr->seq != f->seq || cel__frame_parse_state(fr, &st) != 0)
        return -1;
    cel__consumer_on_state(c->pool->base.w, f, st.state, st.meta, st.meta_len);
    return 0;
}

/* A follow-up the running task asks to publish with its ack (PUBLISH). */
static int on_publish(struct child *c, const struct cel_frame *fr)
{
    struct cel_inflight *f = head(c);
    struct cel_frame_publish pub;
    if (!f || fr->seq != f->seq || cel__frame_parse_publish(fr, &pub) != 0)
        return -1;
    return cel__consumer_add_followup(f, &pub);
}

/* A chord size to record, and a chord member to join, with the running
 * task's ack, in order with its publishes (CHORD_SIZE, CHORD_JOIN). */
static int on_chord_size(struct child *c, const struct cel_frame *fr)
{
    struct cel_inflight *f = head(c);
    const char *gid;
    int size;
    if (!f || fr->seq != f->seq || cel__frame_parse_chord_size(fr, &gid, &size) != 0)
        return -1;
    return cel__consumer_add_chord_size(f, gid, size);
}

static int on_chord_join(struct child *c, const struct cel_frame *fr)
{
    struct cel_inflight *f = head(c);
    struct cel_chord_join j;
    if (!f || fr->seq != f->seq || cel__frame_parse_chord_join(fr, &j) != 0)
        return -1;
    return cel__consumer_add_chord_join(f, &j);
}

/* The running task's policy, sent before its body runs (BEGIN). */
static int on_begin(struct child *c, const struct cel_frame *fr)
{
    struct cel_inflight *f = head(c);
    struct cel_frame_begin b;
    if (!f || fr->seq != f->seq || cel__frame_parse_begin(fr, &b) != 0)
        return -1;
    const struct cel_task_policy p = {.time_limit = b.time_limit,
                                      .soft_time_limit = b.soft_time_limit,
                                      .acks_late = (b.flags & CEL_BEGIN_ACKS_LATE) != 0,
                                      .reject_on_worker_lost =
                                          (b.flags & CEL_BEGIN_REJECT_ON_WORKER_LOST) != 0,
                                      .track_started = (b.flags & CEL_BEGIN_TRACK_STARTED) != 0};
    cel__consumer_on_begin(c->pool->base.w, f, &p);
    return 0;
}

/* ---- the running task's child is dying of a signal (CRASH) ----
 * Kept for cel__consumer_on_lost, which stores it as the traceback once
 * the death is reaped (child_exited reads the socket first). */
static int on_crash(struct child *c, const struct cel_frame *fr)
{
    struct cel_inflight *f = head(c);
    struct cel_frame_crash cr;
    if (!f || fr->seq != f->seq || cel__frame_parse_crash(fr, &cr) != 0)
        return -1;
    char *text = malloc(cr.len + 1);
    if (!text)
        return 0; /* the task still fails with WorkerLostError, without frames */
    memcpy(text, cr.text, cr.len);
    text[cr.len] = '\0';
    free(f->crash_text);
    f->crash_text = text;
    f->crash_len = cr.len;
    f->crash_signal = cr.signo;
    return 0;
}

/* Reads and acts on what the child sent. Returns -1 when the stream is
 * corrupt, 0 at EOF, 1 otherwise. */
static int read_child(struct child *c)
{
    int result = 1;
    /* Until the socket is drained, or a bounded amount per wakeup so one
     * chatty child cannot starve the others. */
    for (int i = 0; i < 64; i++) {
        long got = cel__framebuf_fill(&c->in, c->fd);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (got <= 0) {
            result = 0;
            break;
        }
    }
    int64_t now = cel__mono_us();
    struct cel_frame fr;
    int r;
    while ((r = cel__framebuf_next(&c->in, &fr)) == 1) {
        int rc = fr.type == CEL_FRAME_RESULT       ? on_result(c, &fr, now)
                 : fr.type == CEL_FRAME_STATE      ? on_state(c, &fr)
                 : fr.type == CEL_FRAME_PUBLISH    ? on_publish(c, &fr)
                 : fr.type == CEL_FRAME_BEGIN      ? on_begin(c, &fr)
                 : fr.type == CEL_FRAME_CRASH      ? on_crash(c, &fr)
                 : fr.type == CEL_FRAME_CHORD_SIZE ? on_chord_size(c, &fr)
                 : fr.type == CEL_FRAME_CHORD_JOIN ? on_chord_join(c, &fr)
                 : fr.type == CEL_FRAME_RETURNED   ? on_returned(c, &fr, now)
                                                   : -1;
        if (rc != 0)
            return -1;
    }
    return r < 0 ? -1 : result;
}

static int flush_child(struct child *c)
{
    if (c->fd < 0 || !cel__framebuf_pending(&c->out))
        return 0;
    int r = cel__framebuf_flush(&c->out, c->fd);
    if (r < 0)
        return -1;
    set_events(c, UV_READABLE | (r == 1 ? UV_WRITABLE : 0));
    return 0;
}

/* The child is going: stop reading, wait for SIGCHLD to learn how it died. */
static void child_failed(struct child *c, const char *why)
{
    if (why) {
        CEL_ERROR(COMP, "child %d (pid %d) %s; replacing it", c->number, (int)c->pid, why);
        kill(c->pid, SIGKILL);
    }
    set_events(c, 0);
}

static void on_child_io(uv_poll_t *h, int status, int events)
{
    struct child *c = h->data;
    if (status < 0 || (events & UV_READABLE) || (events & UV_DISCONNECT)) {
        int r = read_child(c);
        if (r < 0) {
            child_failed(c, "sent a corrupt frame");
            return;
        }
        if (r == 0) {
            child_failed(c, NULL); /* EOF: it is exiting */
            return;
        }
    }
    if ((events & UV_WRITABLE) && flush_child(c) != 0)
        child_failed(c, "stopped taking tasks (write failed)");
}

static const char *exit_text(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "Worker exited prematurely: signal %d (%s).", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "Worker exited prematurely: exitcode %d.",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return buf;
}

/* The child process is gone (reaped with `status`). */
static void child_exited(struct prefork *p, struct child *c, int status)
{
    cel_worker *w = p->base.w;
    /* Everything it wrote before dying is read first: its last results,
     * and the CRASH frame a fatal signal sends just before the death
     * read_child stops at EOF; a few more rounds cover a
     * socket holding more than one round reads, bounded in case the
     * socket outlived it in a process it forked. */
    int drained = 1;
    for (int i = 0; i < 16 && c->fd >= 0 && drained == 1; i++)
        drained = read_child(c);
    if (drained < 0)
        CEL_ERROR(COMP, "child %d left a corrupt frame behind", c->number);
    close_fd(c);
    release_flag(c);
    cel__framebuf_release(&c->in);
    cel__framebuf_release(&c->out);
    struct cel_inflight *running = pop_head(c);
    uint64_t killed_seq = c->killed_seq;
    c->killed_seq = 0;
    /* Tasks queued behind the running one never started: give them back. */
    struct cel_inflight *f;
    while ((f = pop_head(c)))
        cel__consumer_requeue(w, f);
    if (running && killed_seq && running->seq == killed_seq) {
        cel__consumer_on_time_limit(w, running, running->time_limit);
    } else if (running && killed_seq && !running->acked) {
        /* The task it was killed for answered just in time; the one that
         * followed it did nothing wrong. */
        cel__consumer_requeue(w, running);
    } else if (running) {
        char msg[200];
        cel__consumer_on_lost(w, running, exit_text(status, msg, sizeof msg));
    } else {
        CEL_DEBUG(COMP, "child %d (pid %d) exited", c->number, (int)c->pid);
    }
    c->pid = 0; /* replaced by spawn_missing() at the end of this loop turn, unless unwanted */
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    struct prefork *p = h->data;
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        int status;
        if (c->pid > 0 && waitpid(c->pid, &status, WNOHANG) == c->pid)
            child_exited(p, c, status);
    }
}

static void on_respawn(uv_timer_t *t)
{
    (void)t; /* wakes the loop: the turn's dispatch retries the spawn */
}

/* ---- hard time limits ---------------------------------------------------- */

static int64_t child_deadline(const struct child *c)
{
    const struct cel_inflight *f = head(c);
    if (!f || c->killed_seq || c->pid <= 0)
        return 0;
    return cel__limit_deadline_us(f->started_us, f->time_limit);
}

static void on_limits(uv_timer_t *t);

/* Arms the timer for the earliest deadline of the running tasks (a scan
 * of the children at the end of each loop turn: they are few). */
static void arm_limits(struct prefork *p)
{
    int64_t earliest = 0;
    for (int i = 0; i < p->n; i++) {
        int64_t d = child_deadline(&p->children[i]);
        earliest = cel__limit_earliest((int64_t[]){earliest, d}, 2);
    }
    if (earliest == p->armed_us)
        return;
    p->armed_us = earliest;
    if (!earliest) {
        uv_timer_stop(&p->limits);
        return;
    }
    uv_update_time(&p->base.w->loop);
    uv_timer_start(&p->limits, on_limits, cel__limit_timeout_ms(earliest, cel__mono_us()), 0);
}

static void child_failed(struct child *c, const char *why);
static int read_child(struct child *c);

static void kill_at_limit(struct child *c, int64_t now)
{
    struct cel_inflight *f = head(c);
    int64_t late_us = now - cel__limit_deadline_us(f->started_us, f->time_limit);
    c->killed_seq = f->seq;
    c->retiring = true;
    kill(c->pid, SIGKILL);
    set_events(c, 0);
    /* The figure bench/time_limit_bench.sh reads. */
    CEL_INFO(COMP, "child %d (pid %d) killed at the hard time limit, %.1f ms after the deadline",
             c->number, (int)c->pid, (double)late_us / 1000.0);
}

static void on_limits(uv_timer_t *t)
{
    struct prefork *p = t->data;
    p->armed_us = 0;
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        int64_t d = child_deadline(c);
        if (!d || d > cel__mono_us())
            continue;
        /* A result already waiting in the socket wins over the kill. */
        if (c->fd >= 0) {
            int r = read_child(c);
            if (r < 0) {
                child_failed(c, "sent a corrupt frame");
                continue;
            }
        }
        d = child_deadline(c);
        int64_t now = cel__mono_us();
        if (d && d <= now)
            kill_at_limit(c, now);
    }
    arm_limits(p);
}

/*
 * Replaces children that are gone. fork() copies only the calling thread;
 * a lock another thread holds at that moment (the allocator's, a stdio
 * lock in a log line) would stay held in the child for good. So the store
 * thread is parked first, between two round trips, and the fork happens
 * on a later turn, once it is (its report wakes the loop). At start the
 * children are forked before that thread exists.
 */
static void spawn_missing(struct prefork *p)
{
    cel_worker *w = p->base.w;
    if (p->stopping || cel__mono_ms() < p->next_spawn_ms)
        return;
    bool missing = false;
    for (int i = 0; i < p->n && !missing; i++)
        missing = p->children[i].pid == 0 && !p->children[i].unwanted;
    if (!missing)
        return;
    if (w->settler && !cel__settler_parked(w->settler)) {
        cel__settler_park(w->settler);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        if (c->pid == 0 && !c->unwanted && spawn(p, c) != CEL_OK) {
            CEL_ERROR(COMP, "cannot start a child: %s; trying again in %d ms", w->err.msg,
                      RESPAWN_RETRY_MS);
            p->next_spawn_ms = cel__mono_ms() + RESPAWN_RETRY_MS;
            uv_timer_start(&p->respawn, on_respawn, RESPAWN_RETRY_MS, 0);
            break;
        }
    }
    if (w->settler)
        cel__settler_unpark(w->settler);
}

static bool may_take(const struct prefork *p, const struct child *c, int depth,
                     const struct cel_inflight *f)
{
    const cel_worker *w = p->base.w;
    if (c->pid <= 0 || c->fd < 0 || c->retiring || c->qlen >= depth)
        return false;
    if (w->max_tasks_per_child && c->tasks_sent >= w->max_tasks_per_child)
        return false;
    return c->qlen == 0 || c->qbytes + f->d.len <= PIPELINE_BYTES_MAX;
}

static bool send_task(struct child *c, struct cel_inflight *f)
{
    f->slot = c->slot;
    c->q[(c->qhead + c->qlen) % CHILD_DEPTH_MAX] = f;
    c->qlen++;
    c->qbytes += f->d.len;
    c->tasks_sent++;
    if (c->qlen == 1)
        mark_started(c, cel__mono_us());
    return cel__framebuf_append(&c->out, CEL_FRAME_TASK, 0, f->seq, f->d.body, f->d.len) == 0;
}

static void prefork_dispatch(struct cel_pool *base)
{
    struct prefork *p = (struct prefork *)base;
    cel_worker *w = base->w;
    spawn_missing(p);
    /* With early acks a queued task is acked before it runs, and a
     * child's death would lose it: pipeline only when acks are late. */
    int depth = w->acks_late && w->runtime_ewma_us < CEL_PIPELINE_BELOW_US ? CHILD_DEPTH_MAX : 1;
    for (int pass = 0; pass < 2 && w->held.ready_head && !p->stopping; pass++) {
        int limit = pass == 0 ? 1 : depth;
        bool progress = true;
        while (w->held.ready_head && progress) {
            progress = false;
            for (int i = 0; i < p->n && w->held.ready_head; i++) {
                struct child *c = &p->children[i];
                if (!may_take(p, c, limit, w->held.ready_head))
                    continue;
                struct cel_inflight *f = cel__held_pop_ready(&w->held);
                if (!send_task(c, f)) {
                    CEL_ERROR(COMP, "out of memory sending a task to child %d", c->number);
                    c->qlen--;
                    c->qbytes -= f->d.len;
                    f->slot = -1;
                    cel__consumer_requeue(w, f);
                    continue;
                }
                progress = true;
            }
        }
    }
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        if (flush_child(c) != 0)
            child_failed(c, "stopped taking tasks (write failed)");
        /* Retiring and idle: closing the socket lets it exit. */
        if (c->retiring && c->qlen == 0 && c->fd >= 0)
            close_fd(c);
    }
    arm_limits(p);
}

static bool prefork_busy(const struct cel_pool *base)
{
    const struct prefork *p = (const struct prefork *)base;
    for (int i = 0; i < p->n; i++)
        if (p->children[i].qlen)
            return true;
    return false;
}

static bool prefork_hungry(const struct cel_pool *base)
{
    const struct prefork *p = (const struct prefork *)base;
    for (int i = 0; i < p->n; i++) {
        const struct child *c = &p->children[i];
        if (c->pid > 0 && c->fd >= 0 && !c->retiring && c->qlen <= 1)
            return true;
    }
    return false;
}

static void prefork_stop(struct cel_pool *base, bool cold)
{
    struct prefork *p = (struct prefork *)base;
    p->stopping = true;
    uv_timer_stop(&p->respawn);
    if (p->base.w->settler)
        cel__settler_unpark(p->base.w->settler); /* a spawn it was parked for is off */
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        c->retiring = true;
        if (cold && c->pid > 0)
            kill(c->pid, SIGKILL);
    }
    p->cold = p->cold || cold;
}

static bool prefork_stopped(const struct cel_pool *base)
{
    const struct prefork *p = (const struct prefork *)base;
    for (int i = 0; i < p->n; i++)
        if (p->children[i].pid > 0)
            return false;
    return true;
}

static int prefork_start(cel_worker *w, struct cel_pool **out)
{
    struct prefork *p = calloc(1, sizeof *p);
    if (!p)
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    p->base.ops = &cel__pool_prefork;
    p->base.w = w;
    p->n = p->cap = p->size = w->concurrency;
    p->children = calloc((size_t)p->n, sizeof *p->children);
    if (!p->children) {
        free(p);
        return cel__err(&w->err, CEL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < p->n; i++)
        p->children[i].fd = -1;
    uv_signal_init(&w->loop, &p->sigchld);
    p->sigchld.data = p;
    uv_signal_start(&p->sigchld, on_sigchld, SIGCHLD);
    uv_timer_init(&w->loop, &p->respawn);
    p->respawn.data = p;
    uv_timer_init(&w->loop, &p->limits);
    p->limits.data = p;
    p->open_handles = 3; /* sigchld, respawn, limits */
    *out = &p->base;
    for (int i = 0; i < p->n; i++) {
        int rc = spawn(p, &p->children[i]);
        if (rc != CEL_OK)
            return rc; /* the caller frees the pool */
    }
    return CEL_OK;
}

static void free_closed(uv_handle_t *h)
{
    struct prefork *p = h->data;
    if (--p->open_handles == 0) {
        free(p->children);
        free(p);
    }
}

static void prefork_free(struct cel_pool *base)
{
    struct prefork *p = (struct prefork *)base;
    /* Whatever is still alive (a failed start, a child that would not
     * exit) is killed and reaped here. */
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        close_fd(c);
        if (c->pid > 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->pid = 0;
        }
        struct cel_inflight *f;
        while ((f = pop_head(c)))
            cel__consumer_requeue(base->w, f);
        release_flag(c);
        cel__framebuf_release(&c->in);
        cel__framebuf_release(&c->out);
    }
    uv_signal_stop(&p->sigchld);
    uv_close((uv_handle_t *)&p->sigchld, free_closed);
    uv_close((uv_handle_t *)&p->limits, free_closed);
    uv_close((uv_handle_t *)&p->respawn, free_closed);
}

/*
 * Revoke with terminate. Children ignore SIGTERM and SIGINT, so that a
 * signal to the whole process group (a terminal's Ctrl-C, a service
 * manager's stop) leaves the choice between warm and cold shutdown to
 * the parent; for those two the child gets SIGKILL, which ends a C task
 * just as abruptly as SIGTERM's default action would.
 */
static bool prefork_terminate(struct cel_pool *base, struct cel_inflight *f, int signum)
{
    struct prefork *p = (struct prefork *)base;
    if (f->slot < 0 || f->slot >= p->n)
        return false;
    struct child *c = &p->children[f->slot];
    if (c->pid <= 0 || head(c) != f)
        return false;
    if (signum == SIGTERM || signum == SIGINT)
        signum = SIGKILL;
    return kill(c->pid, signum) == 0;
}

/* ---- size at run time ---------------------------------------------------- */

/* Room for `more` slots after the n in use. The children move: their
 * watches' back pointers follow. */
static int reserve_slots(struct prefork *p, int more)
{
    if (p->n + more <= p->cap)
        return CEL_OK;
    int cap = p->cap * 2 > p->n + more ? p->cap * 2 : p->n + more;
    struct child *grown = realloc(p->children, (size_t)cap * sizeof *grown);
    if (!grown)
        return CEL_ENOMEM;
    p->children = grown;
    p->cap = cap;
    for (int i = 0; i < p->n; i++)
        if (grown[i].watch)
            grown[i].watch->data = &grown[i];
    return CEL_OK;
}

static int grow(struct prefork *p, int more)
{
    /* Slots a shrink gave up and whose child is gone are taken first. */
    for (int i = 0; i < p->n && more > 0; i++) {
        struct child *c = &p->children[i];
        if (c->unwanted && c->pid == 0) {
            c->unwanted = false;
            more--;
        }
    }
    if (more > 0 && reserve_slots(p, more) != CEL_OK)
        return cel__err(&p->base.w->err, CEL_ENOMEM, "out of memory");
    for (; more > 0; more--) {
        struct child *c = &p->children[p->n];
        memset(c, 0, sizeof *c);
        c->fd = -1;
        c->slot = p->n++;
    }
    p->next_spawn_ms = 0; /* forked at the end of this loop turn */
    return CEL_OK;
}

static void retire(struct child *c)
{
    c->unwanted = true;
    c->retiring = true;
    if (c->retire_flag)
        atomic_store_explicit(c->retire_flag, 1, memory_order_release);
}

/* The wanted slot to give up next: one without a process, one retiring
 * anyway, an idle one, then the one with the fewest tasks. */
static struct child *least_needed(struct prefork *p)
{
    struct child *best = NULL;
    int best_rank = 0;
    for (int i = 0; i < p->n; i++) {
        struct child *c = &p->children[i];
        if (c->unwanted)
            continue;
        int rank = c->pid <= 0 ? 0 : c->retiring ? 1 : 2 + c->qlen;
        if (!best || rank < best_rank) {
            best = c;
            best_rank = rank;
        }
    }
    return best;
}

static void shrink(struct prefork *p, int fewer)
{
    for (; fewer > 0; fewer--) {
        struct child *c = least_needed(p);
        if (!c)
            return;
        if (c->pid > 0 && !c->retiring)
            CEL_DEBUG(COMP, "child %d (pid %d) retires (%d task(s) in hand)", c->number,
                      (int)c->pid, c->qlen);
        retire(c);
    }
}

static int prefork_resize(struct cel_pool *base, int processes)
{
    struct prefork *p = (struct prefork *)base;
    if (processes < 1)
        return cel__err(&base->w->err, CEL_EINVAL, "a pool needs at least one process");
    if (p->stopping)
        return cel__err(&base->w->err, CEL_EINVAL, "the pool is stopping");
    if (processes > p->size) {
        int rc = grow(p, processes - p->size);
        if (rc != CEL_OK)
            return rc;
    } else if (processes < p->size) {
        shrink(p, p->size - processes);
    }
    p->size = processes;
    return CEL_OK;
}

static int prefork_size(const struct cel_pool *base)
{
    return ((const struct prefork *)base)->size;
}

static size_t prefork_pids(const struct cel_pool *base, int *out, size_t max)
{
    const struct prefork *p = (const struct prefork *)base;
    size_t live = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->children[i].pid <= 0)
            continue;
        if (live < max)
            out[live] = (int)p->children[i].pid;
        live++;
    }
    return live;
}

static int prefork_occupied(const struct cel_pool *base)
{
    const struct prefork *p = (const struct prefork *)base;
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += !p->children[i].unwanted && p->children[i].qlen > 0;
    return n;
}

const struct cel_pool_ops cel__pool_prefork = {
    .name = "prefork",
    .start = prefork_start,
    .dispatch = prefork_dispatch,
    .busy = prefork_busy,
    .hungry = prefork_hungry,
    .stop = prefork_stop,
    .stopped = prefork_stopped,
    .free = prefork_free,
    .terminate = prefork_terminate,
    .resize = prefork_resize,
    .size = prefork_size,
    .pids = prefork_pids,
    .occupied = prefork_occupied,
};
