/* crash.c - see crash.h. */
#include "worker/crash.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celeriac/common.h"
#include "worker/frame.h"

/* backtrace() called in the handler returns the handler's own frames
 * and the kernel's signal trampoline first, which say nothing of where it
 * crashed: they are left out (report()). Room for them: */
#define FRAMES_SKIPPED 4
/* A line shows at most this much of a module path (its end: the file
 * name matters most) and of a symbol name. */
#define PATH_SHOWN   240
#define SYMBOL_SHOWN 160
#define LINE_MAX_LEN (PATH_SHOWN + SYMBOL_SHOWN + 96)
/* Enough for the unwinder and dladdr, also in a sanitizer build. */
#define ALTSTACK_SIZE (128 * 1024)

static const struct {
    int signo;
    const char *name;
} fatal_signals[] = {
    {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
    {SIGILL, "SIGILL"},   {SIGABRT, "SIGABRT"},
};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])

/* ---- child side: everything the handler touches is static ---- */

static int report_fd = -1;
static volatile uint64_t running_seq;
static int report_taken; /* the first crashing thread reports, alone */
static char altstack[ALTSTACK_SIZE];
static void *frames[CEL_CRASH_FRAMES_MAX + FRAMES_SKIPPED];
/* The frame is built in place: its text is formatted from the end of
 * the buffer backwards, innermost frame first, so when the bound cuts
 * the text short it is the outermost frames (main, the pool loop) that
 * are left out, never the ones where it crashed. */
static char frame_buf[CEL_CRASH_FRAME_MAX];

struct line {
    char b[LINE_MAX_LEN];
    size_t n;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (n > sizeof l->b - l->n)
        n = sizeof l->b - l->n;
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

/* At most `max` bytes of s: its start, or its end when keep_end. */
static void put_str(struct line *l, const char *s, size_t max, int keep_end)
{
    size_t n = strlen(s);
    if (n <= max) {
        put(l, s, n);
    } else if (keep_end) {
        put(l, "...", 3);
        put(l, s + n - (max - 3), max - 3);
    } else {
        put(l, s, max - 3);
        put(l, "...", 3);
    }
}

static void put_hex(struct line *l, uintptr_t v)
{
    char d[2 + 2 * sizeof v];
    size_t i = sizeof d;
    do {
        d[--i] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    d[--i] = 'x';
    d[--i] = '0';
    put(l, d + i, sizeof d - i);
}

/* `  File "MODULE", offset 0xOFF, in SYMBOL+0xOFF`: the module offset is
 * what `addr2line -e MODULE` takes. Symbols are the dynamic ones dladdr
 * sees: a task module's exported functions, the CLI's public API (it is
 * linked with -rdynamic), the C library's; static functions show as ??. */
static void format_frame(struct line *l, void *pc)
{
    Dl_info di;
    memset(&di, 0, sizeof di);
    put(l, "  File \"", 8);
    if (dladdr(pc, &di) && di.dli_fname && *di.dli_fname) {
        put_str(l, di.dli_fname, PATH_SHOWN, 1);
        put(l, "\", offset ", 10);
        put_hex(l, (uintptr_t)pc - (uintptr_t)di.dli_fbase);
    } else {
        put(l, "??\", address ", 13);
        put_hex(l, (uintptr_t)pc);
    }
    put(l, ", in ", 5);
    if (di.dli_sname && *di.dli_sname) {
        put_str(l, di.dli_sname, SYMBOL_SHOWN, 0);
        if (di.dli_saddr) {
            put(l, "+", 1);
            put_hex(l, (uintptr_t)pc - (uintptr_t)di.dli_saddr);
        }
    } else {
        put(l, "??", 2);
    }
    put(l, "\n", 1);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* `trampoline`: the handler's return address, the last frame left out
 * (all are kept should it not be found). */
static void report(int signo, uint64_t seq, void *trampoline)
{
    int n = backtrace(frames, (int)(sizeof frames / sizeof frames[0]));
    int first = 0;
    for (int i = 0; i < n && i < FRAMES_SKIPPED; i++)
        if (frames[i] == trampoline)
            first = i + 1;
    const size_t floor = CEL_FRAME_HEADER + 3, end = sizeof frame_buf;
    size_t pos = end;
    for (int i = first; i < n && i < first + CEL_CRASH_FRAMES_MAX; i++) {
        struct line l;
        l.n = 0;
        format_frame(&l, frames[i]);
        if (l.n > pos - floor)
            break;
        pos -= l.n;
        memcpy(frame_buf + pos, l.b, l.n);
    }
    size_t len = cel__frame_encode_crash(frame_buf, sizeof frame_buf, seq, signo, frame_buf + pos,
                                         end - pos);
    if (len)
        write_all(report_fd, frame_buf, len); /* one write(), unless the socket is full */
}

static void on_fatal(int signo)
{
    int saved = errno;
    uint64_t seq = running_seq;
    if (seq && report_fd >= 0 && !__atomic_exchange_n(&report_taken, 1, __ATOMIC_SEQ_CST))
        report(signo, seq, __builtin_return_address(0));
    errno = saved;
    /* SA_RESETHAND restored the default action: the signal, pending while
     * this handler runs, kills the process as it returns. A fault would
     * recur anyway; a signal sent with kill() or raise() would not. */
    raise(signo);
}

void cel__crash_install(int fd)
{
    report_fd = fd;
    /* The first backtrace() loads libgcc_s with dlopen: not in a handler. */
    void *warm[2];
    backtrace(warm, 2);
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatal_signals[i].signo, &sa, NULL);
}

/* ---- on demand: SIGUSR1 (dump.c) ---- */

static void put_dec(struct line *l, long v)
{
    char d[24];
    size_t i = sizeof d;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--i] = '-';
    put(l, d + i, sizeof d - i);
}

size_t cel__native_backtrace(char *buf, size_t len, int skip)
{
    static void *pcs[CEL_CRASH_FRAMES_MAX + FRAMES_SKIPPED + 4];
    int n = backtrace(pcs, (int)(sizeof pcs / sizeof pcs[0]));
    size_t used = 0;
    for (int i = skip + 1; i < n; i++) { /* + 1: this function's own frame */
        struct line l;
        l.n = 0;
        format_frame(&l, pcs[i]);
        if (used + l.n > len)
            break;
        memcpy(buf + used, l.b, l.n);
        used += l.n;
    }
    return used;
}

/* The child's dump: one write() of a header and its frames, so the
 * dumps of children answering the same signal do not interleave in the
 * log. Static memory: the handler allocates nothing (SIGUSR1 is blocked
 * while it runs, so it is never re-entered). */
static char dump_buf[16384];

static void on_dump(int signo)
{
    (void)signo;
    int saved = errno;
    struct line l;
    l.n = 0;
    const char *name = cel_log_process_name();
#define PUT_LITERAL(l, s) put((l), (s), sizeof(s) - 1)
    PUT_LITERAL(&l, "celeriac: SIGUSR1: native backtrace of ");
    put_str(&l, name, 64, 0);
    PUT_LITERAL(&l, " (pid ");
    put_dec(&l, (long)getpid());
    PUT_LITERAL(&l, "), innermost first:\n");
#undef PUT_LITERAL
    memcpy(dump_buf, l.b, l.n);
    /* Skipped: this handler; kept: the signal trampoline's caller on. */
    size_t n = l.n + cel__native_backtrace(dump_buf + l.n, sizeof dump_buf - l.n, 1);
    write_all(STDERR_FILENO, dump_buf, n);
    errno = saved;
}

void cel__crash_install_dump(void)
{
    void *warm[2];
    backtrace(warm, 2); /* loads the unwinder now, not in the handler */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* the child's blocking read goes on */
    sigaction(SIGUSR1, &sa, NULL);
}

void cel__crash_set_task(uint64_t seq)
{
    running_seq = seq;
}

/* ---- parent side ---- */

const char *cel__crash_signal_name(int signo)
{
    for (size_t i = 0; i < NFATAL; i++)
        if (fatal_signals[i].signo == signo)
            return fatal_signals[i].name;
    return NULL;
}

char *cel__crash_traceback(const char *task, int pid, int signo, const char *frames_text,
                           size_t frames_len, const char *exc_type, const char *message)
{
    const char *name = cel__crash_signal_name(signo);
    char sig[48];
    snprintf(sig, sizeof sig, "%s", name ? name : "signal");
    if (!frames_len) {
        frames_text = "  (no native frames)\n";
        frames_len = strlen(frames_text);
    }
#define CRASH_FMT                                                                                  \
    "Fatal signal %d (%s: %s) in worker process %d, native frames below\n"                         \
    "Traceback (most recent call last):\n"                                                         \
    "  File \"<celeriac>\", in %s\n"                                                               \
    "%.*s%s: %s\n"
    int n = snprintf(NULL, 0, CRASH_FMT, signo, sig, strsignal(signo), pid, task, (int)frames_len,
                     frames_text, exc_type, message);
    char *tb = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (tb)
        snprintf(tb, (size_t)n + 1, CRASH_FMT, signo, sig, strsignal(signo), pid, task,
                 (int)frames_len, frames_text, exc_type, message);
#undef CRASH_FMT
    return tb;
}
