/*
 * beat_catch_up.h - which due runs of an entry beat sends, as a pure
 * function of the runs, the clock and the entry's policy, so the rules
 * for lateness, catch-up and clock jumps are tested without a clock.
 *
 * A run late by at most `grace` seconds is on time and always sent.
 * Older runs are missed, and the policy decides:
 *   skip  none of them is sent;
 *   once  they collapse into one run: when an on-time run is due as
 *         well it is that one, otherwise the newest missed run is sent;
 *   all   each is sent, oldest first, at most `max` of them (the newest
 *         ones); the older ones count as skipped.
 * Runs at or before the last run (a clock that went back) are never
 * sent again, and runs after `now` are not due.
 */
#ifndef CEL_BEAT_BEAT_CATCH_UP_H
#define CEL_BEAT_BEAT_CATCH_UP_H

#include <stddef.h>
#include <stdint.h>

#include "celeriac/schedule.h"

struct cel_beat_due {
    const int64_t *ticks; /* scheduled times (UTC s), ascending: the newest due runs */
    size_t n;
    size_t older;       /* due runs before ticks[0] that were not listed */
    int64_t last_run_s; /* the entry's last run (0: never) */
    int64_t now_s;
    int64_t grace_s;
    cel_catch_up policy; /* SKIP, ONCE or ALL (DEFAULT is taken as ONCE) */
    size_t max;          /* ALL: most missed runs sent */
};

struct cel_beat_plan {
    size_t first;    /* index of the first tick sent; ticks[first..last) are */
    size_t last;     /* sent in order (first == last: none) */
    size_t skipped;  /* due runs not sent (the listed and the older ones) */
    int64_t skip_to; /* when nothing is sent but runs were skipped: the
                        newest of them, to record as the last run; else 0 */
};

void cel__beat_catch_up(const struct cel_beat_due *d, struct cel_beat_plan *out);

/* The first run strictly after after_s, or 0 for none (cel__sched_next
 * of one entry). */
typedef int64_t (*cel_beat_next_fn)(void *ctx, int64_t after_s);

/*
 * Lists the runs in (after_s, now_s]: the newest `cap` of them, ascending,
 * into out (the ring the caller hands cel__beat_catch_up()), and in *older
 * how many earlier ones there are, at least. It looks back from now in
 * windows that double, so a clock that jumped a year ahead costs about
 * `cap` runs, not a year of them. Returns how many it listed (0 also
 * when out of memory: the next tick tries again).
 */
size_t cel__beat_due_collect(cel_beat_next_fn next, void *ctx, int64_t after_s, int64_t now_s,
                             size_t cap, int64_t *out, size_t *older);

#endif
