/* array.c - see array.h. */
#include "core/array.h"

#include <stdint.h>
#include <stdlib.h>

void *cel__array_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap)
        return arr;
    size_t want = *cap ? *cap * 2 : first;
    if (want <= *cap || want > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(arr, want * elem);
    if (p)
        *cap = want;
    return p;
}
