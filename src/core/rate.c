/* rate.c - see rate.h. */
#include "core/rate.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"

/* Far beyond any real limit, and small enough that 1/rate in µs stays
 * meaningful. */
#define RATE_MAX 1e9

int cel__rate_parse(const char *text, double *per_sec, char *why, size_t whylen)
{
    *per_sec = 0;
    if (!text) {
        snprintf(why, whylen, "no rate");
        return CEL_EINVAL;
    }
    /* Python's float() takes surrounding blanks; so do we, and no more
     * than that (no "inf", "nan", hex). */
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    const char *num = p;
    if (*p == '+')
        p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (digits && (*p == 'e' || *p == 'E')) {
        const char *e = p + 1;
        if (*e == '+' || *e == '-')
            e++;
        if (isdigit((unsigned char)*e)) {
            while (isdigit((unsigned char)*e))
                e++;
            p = e;
        }
    }
    if (!digits) {
        snprintf(why, whylen, "rate '%.64s' does not start with a number (like \"10/s\")", text);
        return CEL_EINVAL;
    }
    double n = strtod(num, NULL);
    while (isspace((unsigned char)*p))
        p++;
    double unit = 1;
    if (*p == '/') {
        p++;
        /* Celery: "10/" is per second, as a bare "10" is. */
        if (*p == 's')
            p++;
        else if (*p == 'm')
            unit = 60, p++;
        else if (*p == 'h')
            unit = 3600, p++;
        else if (*p)
            unit = 0;
    }
    if (unit == 0 || *p) {
        snprintf(why, whylen, "rate '%.64s' has an unknown unit: use /s, /m or /h", text);
        return CEL_EINVAL;
    }
    double r = n / unit;
    if (!isfinite(r) || r > RATE_MAX) {
        snprintf(why, whylen, "rate '%.64s' is too large", text);
        return CEL_EINVAL;
    }
    *per_sec = r;
    return CEL_OK;
}

void cel__bucket_init(struct cel_token_bucket *b, double per_sec, int64_t now_us)
{
    b->per_sec = per_sec;
    b->tokens = 1;
    b->stamp_us = now_us;
}

int64_t cel__bucket_take(struct cel_token_bucket *b, int64_t now_us)
{
    int64_t elapsed = now_us - b->stamp_us;
    if (elapsed > 0)
        b->tokens += (double)elapsed * b->per_sec / 1e6;
    if (b->tokens > 1)
        b->tokens = 1;
    b->stamp_us = now_us;
    /* A wait computed below lands on 1 up to rounding. */
    if (b->tokens >= 1 - 1e-9) {
        b->tokens = b->tokens > 1 ? 0 : b->tokens - 1 < 0 ? 0 : b->tokens - 1;
        return 0;
    }
    int64_t wait = (int64_t)ceil((1 - b->tokens) * 1e6 / b->per_sec);
    return wait > 0 ? wait : 1;
}
