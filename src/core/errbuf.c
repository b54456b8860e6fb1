/* errbuf.c - see errbuf.h. */
#include "core/errbuf.h"

#include <stdio.h>
#include <string.h>

int cel__verr(struct cel_errbuf *e, int code, const char *fmt, va_list ap)
{
    if (e)
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return code;
}

int cel__err(struct cel_errbuf *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cel__verr(e, code, fmt, ap);
    va_end(ap);
    return code;
}

void cel__err_clear(struct cel_errbuf *e)
{
    if (e)
        e->msg[0] = '\0';
}

void cel__err_copy(struct cel_errbuf *dst, const char *src)
{
    if (dst)
        snprintf(dst->msg, sizeof dst->msg, "%s", src ? src : "");
}

int cel__errf(char *buf, size_t len, int code, const char *fmt, ...)
{
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return code;
}
