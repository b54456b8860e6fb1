/*
 * child.c - a prefork child: reads TASK frames, runs them, answers each
 * with one RESULT frame.
 *
 * Its socket is blocking: a child has nothing else to do while it waits,
 * and the parent never blocks on its end (pool_prefork.c), so a child
 * writing a large result while the parent writes a large task cannot
 * deadlock. It exits when the parent closes the socket (shutdown,
 * recycling) or when the stream is corrupt.
 *
 * A child the pool is shrinking by gets its retire flag raised (a word
 * of memory shared with the parent, read before each task: no signal
 * that could cut short a sleep in task code, no extra system call per
 * task). Once the task it runs ends, it answers the tasks queued behind
 * it with RETURNED frames instead of running them, so it exits after that
 * one task, they run in other children, and nothing it was sent is run
 * twice or lost.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "worker/crash.h"
#include "worker/execute.h"
#include "worker/frame.h"
#include "worker/pool.h"

/* What a running task sends goes out at once, ahead of its RESULT: the
 * parent must know the policy (hard limit) while the task runs, and a
 * state is worth storing only while it is current. */
struct child_io {
    int fd;
    uint64_t seq;
    struct cel_buf *out;
};

static int io_send(struct child_io *c)
{
    return cel__framebuf_flush(c->out, c->fd) == 0 ? 0 : -1;
}

static int io_begin(void *ud, const struct cel_task_policy *p)
{
    struct child_io *c = ud;
    struct cel_frame_begin b = {
        .time_limit = p->time_limit,
        .soft_time_limit = p->soft_time_limit,
        .flags = (p->acks_late ? CEL_BEGIN_ACKS_LATE : 0) |
                 (p->reject_on_worker_lost ? CEL_BEGIN_REJECT_ON_WORKER_LOST : 0) |
                 (p->track_started ? CEL_BEGIN_TRACK_STARTED : 0)};
    if (cel__frame_append_begin(c->out, c->seq, &b) != 0)
        return -1;
    return io_send(c);
}

static int io_state(void *ud, const char *state, const char *meta, size_t len)
{
    struct child_io *c = ud;
    if (cel__frame_append_state(c->out, c->seq, state, meta, len) != 0)
        return -1;
    return io_send(c);
}

static int io_publish(void *ud, const struct cel_frame_publish *p)
{
    struct child_io *c = ud;
    /* Buffered: publishes only matter with the RESULT, which flushes. */
    return cel__frame_append_publish(c->out, c->seq, p);
}

/* Chord frames are buffered like publishes: they matter with the RESULT. */
static int io_chord_size(void *ud, const char *group_id, int size)
{
    struct child_io *c = ud;
    return cel__frame_append_chord_size(c->out, c->seq, group_id, size);
}

static int io_chord_join(void *ud, const struct cel_chord_join *j)
{
    struct child_io *c = ud;
    return cel__frame_append_chord_join(c->out, c->seq, j);
}

void cel__child_main(const struct cel_exec_env *env, int fd, const atomic_int *retire)
{
    struct cel_buf in = {0}, out = {0};
    struct child_io cio = {.fd = fd, .out = &out};
    const struct cel_exec_io io = {.ud = &cio,
                                   .begin = io_begin,
                                   .state = io_state,
                                   .publish = io_publish,
                                   .chord_size = io_chord_size,
                                   .chord_join = io_chord_join};
    cel__crash_install(fd); /* a fatal signal reports its backtrace */
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
            if (retire && atomic_load_explicit(retire, memory_order_acquire)) {
                if (cel__framebuf_append(&out, CEL_FRAME_RETURNED, 0, f.seq, NULL, 0) != 0 ||
                    cel__framebuf_flush(&out, fd) != 0)
                    _exit(0);
                continue;
            }
            struct cel_execution ex;
            cio.seq = f.seq;
            cel__crash_set_task(f.seq);
            cel__execute(env, &io, f.payload, f.len, &ex);
            cel__crash_set_task(0);
            int rc = cel__execution_to_frame(&ex, f.seq, &out);
            cel__execution_release(&ex);
            if (rc != 0)
                _exit(4);
            /* Answer at once: the parent starts the next queued task's
             * clock and settles this one while we run the next. */
            if (cel__framebuf_flush(&out, fd) != 0)
                _exit(0);
        }
        if (r < 0)
            _exit(3);
    }
}
