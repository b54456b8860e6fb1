/*
 * crash.h - a prefork child that dies of a fatal signal while it runs a
 * task tells its parent where: the signal and a native backtrace of the
 * child.
 *
 * Child side: handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT,
 * run on an alternate stack (a stack overflow is caught too), capture
 * the native backtrace, send it as one CRASH frame (frame.h) for the
 * task being run, and re-raise the signal, so the parent still sees the
 * death by that signal (and WorkerLostError names it as before). The
 * handler allocates nothing and takes no stdio lock: it formats into
 * static memory and writes with write().
 *
 * Parent side: the frame's text is kept on the running task's inflight
 * record until the death is reaped, and becomes the stored traceback of
 * its WorkerLostError (consumer.c).
 */
#ifndef CEL_WORKER_CRASH_H
#define CEL_WORKER_CRASH_H

#include <stddef.h>
#include <stdint.h>

/* Native frames sent at most (the innermost ones). */
#define CEL_CRASH_FRAMES_MAX 64

/* In the child, once, before its first task: reports go to `fd` (its
 * socket to the parent). Loads the unwinder now, so the handler never
 * has to load a library. */
void cel__crash_install(int fd);
/* The task the child runs now (its frame seq); 0 between tasks, when a
 * crash has no task to be reported for. */
void cel__crash_set_task(uint64_t seq);

/*
 * On demand (SIGUSR1, dump.c): a child writes its native backtrace to
 * standard error (the log file under --logfile) and goes on. glibc's
 * backtrace() is not documented as async-signal-safe: its first call
 * loads libgcc_s (dlopen, malloc), which is why the install calls it
 * once first; after that it walks the stack with the unwinder, and
 * dladdr() names the frames, both without malloc. Both take the dynamic
 * loader's lock, so a signal landing in a task's dlopen() could
 * deadlock that child: a risk accepted for a debugging aid the operator
 * asks for (Celery's own SIGUSR1 dump runs Python code in a handler).
 */
void cel__crash_install_dump(void);
/* The calling thread's native frames as `  File "MODULE", offset ...`
 * lines, innermost first, leaving out this call and `skip` more; at most
 * len bytes (whole lines), not NUL-terminated. Returns the length. No
 * allocation, no lock of ours. */
size_t cel__native_backtrace(char *buf, size_t len, int skip);

/* "SIGSEGV", ... for the signals the child reports; NULL for others. */
const char *cel__crash_signal_name(int signo);

/*
 * The traceback stored for a task whose child died of `signo`: a first
 * line naming the signal and the child, then Python's traceback shape
 * (execute.c) with the child's native frames, outermost first, as text
 * `frames` (CRASH frame, frames_len bytes), ending with the
 * `exc_type: message` line. Returns a malloc'ed string (the caller
 * frees it), or NULL when out of memory.
 */
char *cel__crash_traceback(const char *task, int pid, int signo, const char *frames,
                           size_t frames_len, const char *exc_type, const char *message);

#endif
