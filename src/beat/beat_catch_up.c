/* beat_catch_up.c - see beat_catch_up.h. */
#include "beat/beat_catch_up.h"

#include <stdlib.h>
#include <string.h>

void cel__beat_catch_up(const struct cel_beat_due *d, struct cel_beat_plan *out)
{
    *out = (struct cel_beat_plan){0};
    /* The due window: after the last run (a clock that went back never
     * repeats a run) and not after now. */
    size_t lo = 0, hi = d->n;
    while (lo < hi && d->ticks[lo] <= d->last_run_s)
        lo++;
    while (hi > lo && d->ticks[hi - 1] > d->now_s)
        hi--;
    size_t older = lo == 0 ? d->older : 0; /* listed ticks past last_run: none older is due */
    if (lo == hi) {
        out->first = out->last = hi;
        return;
    }
    /* [lo, ontime) missed, [ontime, hi) on time. */
    size_t ontime = lo;
    while (ontime < hi && d->now_s - d->ticks[ontime] > d->grace_s)
        ontime++;
    size_t missed = ontime - lo;

    size_t first = ontime;
    switch (d->policy) {
    case CEL_CATCH_UP_SKIP:
        break;
    case CEL_CATCH_UP_ALL:
        first = ontime - (missed < d->max ? missed : d->max);
        break;
    case CEL_CATCH_UP_DEFAULT:
    case CEL_CATCH_UP_ONCE:
    default:
        if (ontime == hi && missed > 0)
            first = ontime - 1;
        break;
    }
    out->first = first;
    out->last = hi;
    out->skipped = older + (first - lo);
    if (first == hi && out->skipped > 0)
        out->skip_to = d->ticks[hi - 1];
}

/* The first due window looked at; doubled until it holds enough runs or
 * reaches the last run. */
#define FIRST_WINDOW_S 64

size_t cel__beat_due_collect(cel_beat_next_fn next, void *ctx, int64_t after_s, int64_t now_s,
                             size_t cap, int64_t *out, size_t *older)
{
    for (int64_t window = FIRST_WINDOW_S;; window *= 2) {
        int64_t start = now_s - window > after_s ? now_s - window : after_s;
        size_t count = 0;
        for (int64_t t = next(ctx, start), prev = start; t > prev && t <= now_s;
             prev = t, t = next(ctx, t))
            out[count++ % cap] = t;
        if (start > after_s && count < cap)
            continue;
        size_t n = count < cap ? count : cap;
        if (count > cap) {
            /* The ring starts at count % cap: rotate it into order. */
            size_t head = count % cap;
            int64_t *tmp = malloc(cap * sizeof *tmp);
            if (tmp) {
                memcpy(tmp, out + head, (cap - head) * sizeof *tmp);
                memcpy(tmp + (cap - head), out, head * sizeof *tmp);
                memcpy(out, tmp, cap * sizeof *tmp);
                free(tmp);
            } else {
                n = 0; /* out of memory: nothing this time, the next tick tries again */
            }
        }
        *older = count - n;
        return n;
    }
}
