/*
 * array.h - growing a plain C array by doubling.
 *
 * The worker and the transports keep many small vectors (reservations,
 * acks, revokes, report entries); each used to repeat the same
 * realloc-and-double lines.
 */
#ifndef CEL_CORE_ARRAY_H
#define CEL_CORE_ARRAY_H

#include <stddef.h>

/*
 * Makes room for one more element in `arr` (n elements of `elem` bytes in
 * room for *cap): when n == *cap it is reallocated to twice *cap, or
 * `first` when *cap is 0. Returns the array to use from now on, or NULL
 * when out of memory (then `arr` and *cap are unchanged):
 *
 *     struct x *p = cel__array_grow(v->items, &v->cap, v->n, sizeof *p, 64);
 *     if (!p)
 *         return CEL_ENOMEM;
 *     v->items = p;
 */
void *cel__array_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first);

#endif
