/*
 * child.c - a prefork child: reads TASK frames, runs them, answers each
 * with one RESULT frame.
 *
 * Its socket is blocking: a child has nothing else to do while it waits,
 * and the parent never blocks on its end (pool_prefork.c), so a child
 * writing a large result while the parent writes a large task cannot
 * deadlock. It exits when the parent closes the socket (shutdown,
 * recycling) or when the stream is corrupt.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "worker/execute.h"
#include "worker/frame.h"
#include "worker/pool.h"

void cel__child_main(const cel_registry *reg, const char *hostname, int fd)
{
    struct cel_buf in = {0}, out = {0};
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
            cel__execute(reg, hostname, f.payload, f.len, &ex);
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
