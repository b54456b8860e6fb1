/*
 * buf.h - the one growable byte buffer, with an optional size cap.
 *
 * Every module that builds text or queues bytes uses this type instead
 * of a realloc loop of its own:
 *   core/json_util.c       the JSON dumper (no cap)
 *   proto/repr.c           argsrepr/kwargsrepr text (no cap)
 *   proto/envelope_writer.c, proto/message.c and client/client.c
 *                          a task's envelope, capped at CEL_MESSAGE_MAX_BYTES
 *                          (a bigger one no consumer would accept)
 *   worker/frame.c         frames read from and queued for a prefork child
 *                          (a queue: written at len, consumed from off)
 *
 * Invariants:
 *  - The bytes held are data[off, len); len - off never exceeds `max`
 *    (0: no cap). Appends go at data + len. A buffer that only appends
 *    (a writer) keeps off at 0, so its text starts at data.
 *  - A zeroed struct is an empty buffer with no cap; cel__buf_init() sets
 *    a cap, which must happen before the first append.
 *  - An append either adds all its bytes or changes nothing but `err`:
 *    it fails with CEL_ETOOBIG when the cap would be passed and with
 *    CEL_ENOMEM when memory runs out, and the bytes held stay as they
 *    were. The first failure stays in `err` and later appends are refused
 *    with it, so a writer may append many pieces and check once (at
 *    cel__buf_take()) without ever producing text with a piece missing
 *    in the middle; a queue keeps its order (a small append cannot pass a
 *    refused big one). cel__buf_consume() and cel__buf_reset() clear it.
 *  - After cel__buf_reserve(b, n) succeeds, up to n bytes may be written
 *    in place at data + len and then added to len; there is always room
 *    for one more byte, the NUL that cel__buf_cstr() and cel__buf_take()
 *    write.
 *  - data may move on any call that reserves room: keep offsets into the
 *    buffer, not pointers.
 *
 * Ownership: the buffer owns data until cel__buf_take() hands it to the
 * caller or cel__buf_release() frees it. Not thread-safe.
 */
#ifndef CEL_CORE_BUF_H
#define CEL_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "celeriac/common.h"
#include "celeriac/error.h"

struct cel_buf {
    char *data; /* NULL until the first reservation */
    size_t off; /* start of the bytes held */
    size_t len; /* end of the bytes held */
    size_t cap; /* bytes allocated; > len once allocated */
    size_t max; /* most bytes held at once; 0: no cap */
    int err;    /* CEL_OK, or the first failed append's code */
};

/* An empty buffer that holds at most `max` bytes (0: no cap). */
void cel__buf_init(struct cel_buf *b, size_t max);
/* Frees the memory; the buffer is empty and usable again, cap kept. */
void cel__buf_release(struct cel_buf *b);

/* Slow path of cel__buf_reserve(): compacts, grows or fails. */
int cel__buf_grow(struct cel_buf *b, size_t n);

/* Room for n more bytes at data + len (and the NUL after them). */
static inline int cel__buf_reserve(struct cel_buf *b, size_t n)
{
    /* cap never passes max + 1, so room that is there is within the cap */
    if (b->err == CEL_OK && b->cap - b->len > n)
        return CEL_OK;
    return cel__buf_grow(b, n);
}

static inline int cel__buf_append(struct cel_buf *b, const void *p, size_t n)
{
    int rc = cel__buf_reserve(b, n);
    if (rc != CEL_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return CEL_OK;
}

static inline int cel__buf_appends(struct cel_buf *b, const char *s)
{
    return cel__buf_append(b, s, strlen(s));
}

/* Decimal text of v, without printf's machinery: integers are most of
 * what task arguments hold, and this is inlined into every writer. */
static inline int cel__buf_append_int(struct cel_buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    return cel__buf_append(b, tmp + i, sizeof tmp - i);
}

int cel__buf_printf(struct cel_buf *b, const char *fmt, ...) CEL_PRINTF(2, 3);
int cel__buf_vprintf(struct cel_buf *b, const char *fmt, va_list ap) CEL_PRINTF(2, 0);

/* Records `code` as the buffer's failure unless one is already there (a
 * writer that finds its input unusable, so that take() refuses too);
 * returns the failure in force. */
int cel__buf_fail(struct cel_buf *b, int code);

/* Number of bytes held, and where they start (NULL when none ever were). */
static inline size_t cel__buf_size(const struct cel_buf *b)
{
    return b->len - b->off;
}

static inline char *cel__buf_bytes(const struct cel_buf *b)
{
    return b->data ? b->data + b->off : NULL;
}

/* Keeps the first n bytes held (n <= cel__buf_size()). */
void cel__buf_truncate(struct cel_buf *b, size_t n);
/* Drops n bytes from the front (n <= cel__buf_size()) and clears `err`.
 * Constant time: the space is reclaimed when a later reservation needs
 * it, so a reader may consume frame by frame. */
void cel__buf_consume(struct cel_buf *b, size_t n);
/* Drops everything held and clears `err`; the memory is kept for reuse. */
void cel__buf_reset(struct cel_buf *b);

/* NUL-terminates the bytes held and returns them ("" when none). */
const char *cel__buf_cstr(struct cel_buf *b);

/*
 * Hands the bytes held, NUL-terminated, to the caller (free()); *len
 * (when not NULL) gets their count. The buffer is left empty, its cap
 * kept. NULL when an append failed (the partial text is freed) or when
 * memory runs out.
 */
char *cel__buf_take(struct cel_buf *b, size_t *len);

#endif
