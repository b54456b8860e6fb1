/*
 * frame.h - the parent <-> child pipe protocol of the prefork pool.
 *
 * Each frame is a 16-byte header followed by `len` payload bytes:
 *
 *   u32 len | u8 type | u8 status | u16 reserved (0) | u64 seq     (host order)
 *
 * Host byte order is fine: both ends are the same binary on the same
 * machine. The parent sends TASK frames (payload: the message envelope
 * text); the child answers each with one RESULT frame carrying the
 * outcome (execute.h: the result meta document, or why the message must
 * be dead-lettered or deferred). The child parses the message and builds
 * the meta so that all JSON work happens in parallel in the children.
 *
 * While a task runs its child may also send, before the RESULT frame of
 * that task (same seq):
 *  - STATE: a state update to store now (payload: state name NUL meta
 *    document), e.g. PROGRESS with metadata;
 *  - PUBLISH: a message to publish when the task is settled, in the same
 *    transaction as its ack (payload: queue NUL priority NUL due_us NUL
 *    task id NUL envelope), so a follow-up (a callback, the next link of
 *    a chain, a retry) exists exactly when the task is acked.
 *
 *  - CHORD_SIZE / CHORD_JOIN: a chord's size to record, and a chord
 *    header member to join, when the task is settled, in order with its
 *    PUBLISH frames (execute.h: cel_exec_io chord_size / chord_join).
 *
 *  - CRASH: the child is dying of a fatal signal (crash.h) while it runs
 *    that task (payload: signal number NUL backtrace text).
 *
 * Instead of a RESULT, a child that is being retired (the pool shrinks)
 * answers each task queued behind the one it runs with RETURNED (no
 * payload): it did not run it, and the parent gives it to another child.
 *
 * The decoder is a pure function over a byte buffer (fuzzed by
 * fuzz/fuzz_frame.c): it never trusts `len` beyond CEL_FRAME_MAX.
 */
#ifndef CEL_WORKER_FRAME_H
#define CEL_WORKER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CEL_FRAME_HEADER 16
#define CEL_FRAME_MAX    (256u * 1024u * 1024u)

enum cel_frame_type {
    CEL_FRAME_TASK = 1,
    CEL_FRAME_RESULT = 2,
    CEL_FRAME_STATE = 3,
    CEL_FRAME_PUBLISH = 4,
    CEL_FRAME_BEGIN = 5,      /* child -> parent: the policy of the task it starts */
    CEL_FRAME_CRASH = 6,      /* child -> parent: it dies of a signal (crash.h) */
    CEL_FRAME_CHORD_SIZE = 7, /* child -> parent: group id NUL size */
    CEL_FRAME_CHORD_JOIN = 8, /* child -> parent: a chord header member to join */
    CEL_FRAME_RETURNED = 9,   /* child -> parent: a queued task it was asked not to run */
};
#define CEL_FRAME_TYPE_LAST CEL_FRAME_RETURNED

struct cel_frame {
    uint8_t type;
    uint8_t status;
    uint64_t seq;
    const char *payload; /* borrowed from the buffer given to decode */
    uint32_t len;
};

/* Writes the header for a frame into out[CEL_FRAME_HEADER]. */
void cel__frame_header(unsigned char out[CEL_FRAME_HEADER], uint8_t type, uint8_t status,
                       uint64_t seq, uint32_t len);

/*
 * Decodes one frame from buf[0..n). Returns the bytes consumed (> 0) and
 * fills *f, 0 when more bytes are needed, or -1 when the bytes cannot be
 * a frame (unknown type, length over the limit, non-zero reserved field).
 */
long cel__frame_decode(const unsigned char *buf, size_t n, struct cel_frame *f);

/* Frames are read into and queued in the one core buffer type
 * (core/buf.h): bytes [off, len) are unread or unsent. */

/* Reads what the non-blocking fd has into the buffer. Returns bytes read
 * (> 0), 0 at EOF, -1 with errno EAGAIN when nothing is there, or -1 on
 * other errors. */
long cel__framebuf_fill(struct cel_buf *b, int fd);
/* Next complete frame (0 none yet, 1 got one, -1 corrupt stream). */
int cel__framebuf_next(struct cel_buf *b, struct cel_frame *f);
/* Appends a frame (header + payload) for a later cel__framebuf_flush. */
int cel__framebuf_append(struct cel_buf *b, uint8_t type, uint8_t status, uint64_t seq,
                         const char *payload, size_t len);
/* Writes pending bytes to fd. Returns 0 when all are written, 1 when a
 * non-blocking fd took only part of them (wait for POLLOUT and call again),
 * -1 on error (errno). On a blocking fd it returns 0 or -1. */
int cel__framebuf_flush(struct cel_buf *b, int fd);
/* Bytes appended and not yet written. */
size_t cel__framebuf_pending(const struct cel_buf *b);
void cel__framebuf_release(struct cel_buf *b);

/* The payload of a STATE frame, borrowed from the frame. */
struct cel_frame_state {
    const char *state; /* "PROGRESS", ... */
    const char *meta;  /* the meta document to store */
    size_t meta_len;
};

/* The payload of a PUBLISH frame, borrowed from the frame. */
struct cel_frame_publish {
    const char *queue;
    int priority;
    int64_t due_us; /* 0: now */
    const char *task_id;
    const char *body; /* the envelope */
    size_t len;
};

/* The payload of a BEGIN frame (the task's policy, execute.h). */
struct cel_frame_begin {
    double time_limit;      /* 0: none */
    double soft_time_limit; /* 0: none */
    unsigned flags;         /* CEL_BEGIN_* */
};
#define CEL_BEGIN_ACKS_LATE             0x1u
#define CEL_BEGIN_REJECT_ON_WORKER_LOST 0x2u
#define CEL_BEGIN_TRACK_STARTED         0x4u

int cel__frame_append_begin(struct cel_buf *b, uint64_t seq, const struct cel_frame_begin *p);
int cel__frame_parse_begin(const struct cel_frame *f, struct cel_frame_begin *out);

/* Appends a STATE / PUBLISH frame for task `seq`. 0 or -1 (out of memory,
 * or a field that would not survive the trip: a NUL inside it). */
int cel__frame_append_state(struct cel_buf *b, uint64_t seq, const char *state, const char *meta,
                            size_t meta_len);
int cel__frame_append_publish(struct cel_buf *b, uint64_t seq, const struct cel_frame_publish *p);
/* Reads them back: 0, or -1 when the payload does not have that shape. */
int cel__frame_parse_state(const struct cel_frame *f, struct cel_frame_state *out);
int cel__frame_parse_publish(const struct cel_frame *f, struct cel_frame_publish *out);

/* ---- chords (execute.h) ---- */
/* CHORD_SIZE: group id NUL size (decimal, >= 0). The group id is
 * borrowed from the frame. */
int cel__frame_append_chord_size(struct cel_buf *b, uint64_t seq, const char *group_id, int size);
int cel__frame_parse_chord_size(const struct cel_frame *f, const char **group_id, int *size);
/* CHORD_JOIN: group id NUL index NUL task id NUL root id NUL body length
 * NUL, then the body signature and the join entry back to back. Index
 * -1 is Celery's null; an empty root id reads back as NULL. Strings are
 * borrowed from the frame; body and entry are not NUL-terminated. */
struct cel_chord_join;
int cel__frame_append_chord_join(struct cel_buf *b, uint64_t seq, const struct cel_chord_join *j);
int cel__frame_parse_chord_join(const struct cel_frame *f, struct cel_chord_join *out);

/* ---- the CRASH frame (crash.h) ---- */
/* Bounds of its text, so a crash report never weighs on the parent. */
#define CEL_CRASH_TEXT_MAX 16384u
/* Signal number (up to 2 digits), NUL. */
#define CEL_CRASH_FRAME_MAX (CEL_FRAME_HEADER + 3 + CEL_CRASH_TEXT_MAX)

/* The payload of a CRASH frame, borrowed from the frame. */
struct cel_frame_crash {
    int signo;        /* 1..64 */
    const char *text; /* no NUL inside; not NUL-terminated */
    size_t len;       /* <= CEL_CRASH_TEXT_MAX */
};

/*
 * Writes a whole CRASH frame into out[0..cap) and returns its length, or
 * 0 when it does not fit or the fields cannot be sent (a signal out of
 * range, text over the bound or holding a NUL). Async-signal-safe: no
 * allocation, no stdio, so the child's fatal-signal handler calls it.
 * `text` may lie inside `out` itself, at out + CEL_FRAME_HEADER + 3 or
 * later (the handler formats it there and the frame is built around it).
 */
size_t cel__frame_encode_crash(char *out, size_t cap, uint64_t seq, int signo, const char *text,
                               size_t len);
/* Reads it back: 0, or -1 when the payload does not have that shape. */
int cel__frame_parse_crash(const struct cel_frame *f, struct cel_frame_crash *out);

#endif
