/* strbuf.c - see strbuf.h. */
#include "core/strbuf.h"

#include <stdint.h>
#include <stdlib.h>

bool cel__strbuf_grow(struct cel_strbuf *b, size_t n)
{
    if (b->oom || n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

char *cel__strbuf_finish(struct cel_strbuf *b)
{
    if (b->oom || !cel__strbuf_reserve(b, 0)) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    b->p[b->len] = '\0';
    char *out = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return out;
}
