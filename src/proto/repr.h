/*
 * repr.h - Python's repr() of a JSON value, as Celery shows arguments.
 *
 * Celery puts repr(args) and repr(kwargs) in the argsrepr/kwargsrepr
 * headers ("(2, 3)", "{'x': 1}"), cut to 1024 characters, and its tools
 * and logs show them. The envelope writer writes these headers; anyone
 * who shows a task's arguments the way Celery does uses this too.
 */
#ifndef CEL_PROTO_REPR_H
#define CEL_PROTO_REPR_H

#include <jansson.h>
#include <stddef.h>

/* Python-style repr of args/kwargs for the argsrepr/kwargsrepr headers,
 * truncated to max_len bytes ("..." appended; 0: no limit) without
 * splitting a UTF-8 sequence. A top-level array is shown as the args
 * tuple: "(2, 3)", "(2,)". NULL shows as "None". Caller frees; NULL when
 * out of memory. */
char *cel__json_pyrepr(const json_t *v, size_t max_len);

#endif
