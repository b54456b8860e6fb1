/*
 * dump.c - SIGUSR1: what the worker is doing, in its log.
 *
 * The parent logs every task running now (id, name, pid, run time so
 * far) and the messages waiting for a process, then its own native
 * backtrace (taken in the loop callback, so it shows the loop and not
 * what the parent was doing when the signal came: the parent runs no
 * task code, except under -P solo, where the signal is seen only once
 * the task returned). Then it passes the signal on to every child, and
 * each child writes its own backtrace, taken in its signal handler while
 * its task runs (crash.c), to standard error: the log file under
 * --logfile. Nothing stops; a running task goes on from where it was.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "worker/crash.h"
#include "worker/worker_internal.h"

#define COMP "worker"
/* Children signalled at most (far above any concurrency in use). */
#define PIDS_MAX 1024
/* A log line holds up to 2 KiB: frames go out in chunks below that. */
#define CHUNK_MAX 1800

static bool running(const struct cel_inflight *f)
{
    return f->started_us && f->pid > 0 && !f->settling;
}

static void log_tasks(cel_worker *w, int64_t now)
{
    size_t n = 0;
    for (struct cel_inflight *f = w->held.head; f; f = f->next)
        n += running(f);
    CEL_WARN(COMP, "worker: SIGUSR1: %zu task(s) running, %zu waiting for a process, %zu held", n,
             w->held.ready_count, w->held.count);
    for (struct cel_inflight *f = w->held.head; f; f = f->next) {
        if (!running(f))
            continue;
        cel__inflight_learn_ids(f);
        CEL_WARN(COMP, "worker: running: %s[%s] in pid %d for %.3f s",
                 f->task_name ? f->task_name : "?", f->task_id ? f->task_id : "?", f->pid,
                 (double)(now - f->started_us) / 1e6);
    }
}

static void log_own_backtrace(void)
{
    static char text[16384];
    size_t len = cel__native_backtrace(text, sizeof text, 0);
    CEL_WARN(COMP, "worker: SIGUSR1: native backtrace of MainProcess (pid %d), innermost first:",
             (int)getpid());
    /* In chunks of whole lines, each one log line. */
    size_t at = 0;
    while (at < len) {
        size_t end = at;
        while (end < len) {
            const char *nl = memchr(text + end, '\n', len - end);
            size_t next = nl ? (size_t)(nl - text) + 1 : len;
            if (next - at > CHUNK_MAX && end > at)
                break;
            end = next;
        }
        size_t n = end - at;
        if (n && text[at + n - 1] == '\n')
            n--;
        CEL_WARN(COMP, "\n%.*s", (int)n, text + at);
        at = end;
    }
}

/* The pool's processes when it can tell (pool.h); else those running
 * tasks. Never this process (solo reports itself). */
static size_t child_pids(cel_worker *w, int *pids, size_t max)
{
    size_t n = 0;
    if (w->pool->ops->pids) {
        n = w->pool->ops->pids(w->pool, pids, max);
        if (n > max)
            n = max;
    } else {
        for (struct cel_inflight *f = w->held.head; f && n < max; f = f->next)
            if (running(f))
                pids[n++] = f->pid;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = pids[i] == (int)getpid() || pids[i] <= 0;
        for (size_t j = 0; j < kept && !dup; j++)
            dup = pids[j] == pids[i];
        if (!dup)
            pids[kept++] = pids[i];
    }
    return kept;
}

void cel__worker_dump(cel_worker *w)
{
    log_tasks(w, cel__mono_us());
    log_own_backtrace();
    if (!w->pool)
        return;
    static int pids[PIDS_MAX];
    size_t n = child_pids(w, pids, PIDS_MAX);
    for (size_t i = 0; i < n; i++)
        kill((pid_t)pids[i], SIGUSR1);
    CEL_WARN(COMP,
             "worker: SIGUSR1: passed on to %zu child process(es); each logs its own "
             "backtrace",
             n);
}
