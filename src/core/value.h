/*
 * value.h - the public cel_value (celeriac/value.h) is a jansson value.
 *
 * struct cel_value is never defined: a cel_value pointer is a json_t
 * pointer under another name, so reading a task's arguments as values
 * costs no allocation and a built value becomes a task result without a
 * copy. These two casts are the only place that knows it.
 */
#ifndef CEL_CORE_VALUE_H
#define CEL_CORE_VALUE_H

#include <jansson.h>

#include "celeriac/value.h"

static inline const json_t *cel__value_json(const cel_value *v)
{
    return (const json_t *)v;
}

static inline const cel_value *cel__value_of(const json_t *j)
{
    return (const cel_value *)j;
}

/* The same for a caller-owned value (one reference). */
static inline json_t *cel__value_json_owned(cel_value *v)
{
    return (json_t *)v;
}

static inline cel_value *cel__value_owned(json_t *j)
{
    return (cel_value *)j;
}

/* Nesting of arrays and objects in v, counted up to `limit` + 1 at most
 * (so a cycle or a hostile value costs no more than that); 0 for a
 * scalar. */
int cel__value_depth(const json_t *v, int limit);

#endif
