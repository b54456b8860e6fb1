/*
 * schemes.h - URL scheme tables, for the broker and result-store
 * registries: each maps every scheme it knows to the ops table serving
 * it, so one table may serve several schemes (redis and redis+socket).
 */
#ifndef CEL_CORE_SCHEMES_H
#define CEL_CORE_SCHEMES_H

#include <stddef.h>

struct cel_scheme {
    const char *scheme; /* lower-case, as cel__url_parse() returns it */
    const void *impl;   /* the ops table */
};

/* What serves `scheme` in t[0..n), or NULL. */
const void *cel__scheme_find(const struct cel_scheme *t, size_t n, const char *scheme);

/* "sqlite, memory, redis, ..." into buf, for error messages (truncated
 * to fit). */
void cel__scheme_list(const struct cel_scheme *t, size_t n, char *buf, size_t len);

#endif
