/*
 * strbuf.h - a growable text buffer for code that writes JSON or repr.
 *
 * Appends never fail loudly: an allocation failure sets `oom`, later
 * appends are dropped, and cel__strbuf_finish() reports it once. That
 * keeps writers free of error checks on every append.
 */
#ifndef CEL_CORE_STRBUF_H
#define CEL_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct cel_strbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Slow path of cel__strbuf_reserve(). */
bool cel__strbuf_grow(struct cel_strbuf *b, size_t n);

/* Room for n more bytes and the final NUL (written by finish()). */
static inline bool cel__strbuf_reserve(struct cel_strbuf *b, size_t n)
{
    if (!b->oom && b->cap - b->len > n)
        return true;
    return cel__strbuf_grow(b, n);
}

static inline void cel__strbuf_add(struct cel_strbuf *b, const char *s, size_t n)
{
    if (!cel__strbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void cel__strbuf_adds(struct cel_strbuf *b, const char *s)
{
    cel__strbuf_add(b, s, strlen(s));
}

/* NUL-terminates and hands the text to the caller (free()); NULL, with
 * the buffer freed, when an append ran out of memory. */
char *cel__strbuf_finish(struct cel_strbuf *b);

#endif
