/* buf.c - see buf.h. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>

#define BUF_MIN_CAP 256

void cel__buf_init(struct cel_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void cel__buf_release(struct cel_buf *b)
{
    free(b->data);
    cel__buf_init(b, b->max);
}

int cel__buf_fail(struct cel_buf *b, int code)
{
    if (b->err == CEL_OK)
        b->err = code;
    return b->err;
}

int cel__buf_grow(struct cel_buf *b, size_t n)
{
    if (b->err != CEL_OK)
        return b->err;
    size_t held = b->len - b->off;
    size_t limit = b->max ? b->max : SIZE_MAX / 2;
    if (n > limit - held)
        return cel__buf_fail(b, CEL_ETOOBIG);
    size_t need = held + n + 1; /* <= limit + 1: cannot overflow */
    if (b->off > 0) {
        /* Reclaim what was consumed before asking for more memory. */
        memmove(b->data, b->data + b->off, held);
        b->off = 0;
        b->len = held;
        if (need <= b->cap)
            return CEL_OK;
    }
    if (need <= b->cap)
        return CEL_OK;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > limit + 1)
        cap = limit + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return cel__buf_fail(b, CEL_ENOMEM);
    b->data = p;
    b->cap = cap;
    return CEL_OK;
}

int cel__buf_vprintf(struct cel_buf *b, const char *fmt, va_list ap)
{
    if (b->err != CEL_OK)
        return b->err;
    /* Try the room there is first; spare capacity may be scribbled on. */
    size_t room = b->data ? b->cap - b->len : 0;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    if (n >= 0 && (size_t)n >= room) {
        int rc = cel__buf_reserve(b, (size_t)n);
        if (rc != CEL_OK) {
            va_end(again);
            return rc;
        }
        n = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (n < 0)
        return cel__buf_fail(b, CEL_EINVAL); /* an encoding error in a %ls */
    b->len += (size_t)n;
    return CEL_OK;
}

int cel__buf_printf(struct cel_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cel__buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void cel__buf_truncate(struct cel_buf *b, size_t n)
{
    if (n < b->len - b->off)
        b->len = b->off + n;
}

void cel__buf_consume(struct cel_buf *b, size_t n)
{
    size_t held = b->len - b->off;
    b->off += n < held ? n : held;
    if (b->off == b->len)
        b->off = b->len = 0; /* empty: start over at the front for free */
    b->err = CEL_OK;
}

void cel__buf_reset(struct cel_buf *b)
{
    b->off = b->len = 0;
    b->err = CEL_OK;
}

const char *cel__buf_cstr(struct cel_buf *b)
{
    if (!b->data)
        return "";
    b->data[b->len] = '\0'; /* cap > len always leaves this byte */
    return b->data + b->off;
}

char *cel__buf_take(struct cel_buf *b, size_t *len)
{
    if (len)
        *len = 0;
    /* An empty buffer still hands out "", so take() means "the text". */
    if (b->err != CEL_OK || cel__buf_reserve(b, 0) != CEL_OK) {
        cel__buf_release(b);
        return NULL;
    }
    size_t held = b->len - b->off;
    if (b->off > 0)
        memmove(b->data, b->data + b->off, held);
    b->data[held] = '\0';
    char *out = b->data;
    if (len)
        *len = held;
    b->data = NULL;
    cel__buf_init(b, b->max);
    return out;
}
