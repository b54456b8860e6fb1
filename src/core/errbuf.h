/*
 * errbuf.h - the detailed last-error message every handle keeps.
 *
 * Error codes say what kind of failure happened; the errbuf says which
 * file, key, URL or message it was about. Messages follow git's style:
 * lowercase, no trailing period, problem first.
 */
#ifndef CEL_CORE_ERRBUF_H
#define CEL_CORE_ERRBUF_H

#include <stdarg.h>

#include "celeriac/common.h"
#include "celeriac/error.h"

#define CEL_ERRBUF_SIZE 512

struct cel_errbuf {
    char msg[CEL_ERRBUF_SIZE];
};

/* Formats the message and returns `code`, so callers can write
 * `return cel__err(&h->err, CEL_EIO, "cannot open '%s'", path);`. */
int cel__err(struct cel_errbuf *e, int code, const char *fmt, ...) CEL_PRINTF(3, 4);
int cel__verr(struct cel_errbuf *e, int code, const char *fmt, va_list ap) CEL_PRINTF(3, 0);
void cel__err_clear(struct cel_errbuf *e);
/* Copies another message ("" when src is NULL). */
void cel__err_copy(struct cel_errbuf *dst, const char *src);

/* Same, for plain (char *buf, size_t len) pairs used by pure functions. */
int cel__errf(char *buf, size_t len, int code, const char *fmt, ...) CEL_PRINTF(4, 5);

#endif
