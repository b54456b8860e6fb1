/*
 * canvas_internal.h - what canvas.c, sig_json.c and apply.c share: the
 * struct behind cel_sig and the per-thread error detail.
 */
#ifndef CEL_CLIENT_CANVAS_INTERNAL_H
#define CEL_CLIENT_CANVAS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "celeriac/canvas.h"

struct cel_sig {
    json_t *j; /* Celery's signature dict; owned */
};

/* Wraps `j` (stolen); NULL (and `j` released) when `j` is NULL or out of
 * memory. */
cel_sig *cel__sig_adopt(json_t *j);

/* Celery's signature dict with every key, in Python's order; steals
 * args, kwargs and options (NULL for any of them fails). */
json_t *cel__sig_dict(const char *task, json_t *args, json_t *kwargs, json_t *options,
                      const char *subtask_type, bool immutable);

/* Sets cel_sig_errmsg() and returns `code`. */
int cel__sig_err(int code, const char *fmt, ...) CEL_PRINTF(2, 3);

#endif
