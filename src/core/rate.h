/*
 * rate.h - Celery's rate-limit strings and the token bucket that enforces
 * them.
 *
 * Syntax (celery.utils.time.rate): "N/s", "N/m", "N/h" or a bare "N"
 * (per second); N is a decimal number ("0.5/s"). A rate of 0 means no
 * limit, as in Celery.
 *
 * The bucket is kombu's TokenBucket as Celery's worker uses it: capacity
 * 1, so there is no burst: a task may start once every 1/rate seconds.
 * A full bucket grants at once; an empty one says how long until its
 * next token. Time is passed in, so the arithmetic is testable and the
 * same code serves the worker's monotonic clock and a broker's shared
 * wall clock.
 */
#ifndef CEL_CORE_RATE_H
#define CEL_CORE_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses `text` into tokens per second (0: no limit). CEL_OK, or
 * CEL_EINVAL with the reason in why. */
int cel__rate_parse(const char *text, double *per_sec, char *why, size_t whylen);

struct cel_token_bucket {
    double per_sec;   /* fill rate, > 0 */
    double tokens;    /* 0..1 */
    int64_t stamp_us; /* time tokens was last brought up to date */
};

/* A full bucket (the first take is granted at once). */
void cel__bucket_init(struct cel_token_bucket *b, double per_sec, int64_t now_us);
/* Takes a token when one is there and returns 0; otherwise takes
 * nothing and returns the µs until one is due (> 0). A clock that went
 * backwards counts as no time passed. */
int64_t cel__bucket_take(struct cel_token_bucket *b, int64_t now_us);

#endif
