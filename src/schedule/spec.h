/*
 * spec.h - when a periodic entry runs.
 *
 * Every way of writing a schedule comes down to one cel_sched_spec:
 *
 *   cron    "*\/15 * * * *", "0 30 9 * * mon-fri" (leading seconds field),
 *           "0 0 L * *", "@daily" ...                      -> CEL_SCHED_CRON
 *   every   "15m", "30s", "2h", "1h30m", "every 15 minutes" -> CEL_SCHED_INTERVAL
 *   at      "2026-12-24T18:00", "2026-12-24 18:00:00+01:00" -> CEL_SCHED_AT
 *   when    "every monday at 8am", "twice a day",
 *           "every 15 minutes between 9am and 5pm on weekdays" -> any of the above
 *
 * and every spec renders back as an English sentence (cel__sched_render)
 * that cel__sched_parse_phrase() reads back to an equal spec.
 *
 * Pure computation: no I/O except the zone files tz.h reads.
 */
#ifndef CEL_SCHEDULE_SPEC_H
#define CEL_SCHEDULE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schedule/tz.h"

enum cel_sched_kind {
    CEL_SCHED_CRON = 1,
    CEL_SCHED_INTERVAL = 2,
    CEL_SCHED_AT = 3,
    CEL_SCHED_REBOOT = 4, /* @reboot: once when a beat process becomes leader */
};

/* Cron fields as bit sets: bit n set means value n matches. A day matches
 * as Vixie cron decides: when both mdays and wdays are restricted (neither
 * written as '*'), a day matching either runs; otherwise both must match.
 * Bits outside a field's range are never set. */
struct cel_sched_cron {
    uint64_t seconds; /* bits 0..59; five-field cron: bit 0 only */
    uint64_t minutes; /* bits 0..59 */
    uint32_t hours;   /* bits 0..23 */
    uint32_t mdays;   /* bits 1..31 */
    uint16_t months;  /* bits 1..12 */
    uint8_t wdays;    /* bits 0..6, Sunday 0 (7 in cron text is Sunday too) */
    bool last_mday;   /* L in the day-of-month field: the month's last day */
    bool mday_star;   /* day-of-month written as '*' (or '?') */
    bool wday_star;   /* day-of-week written as '*' (or '?') */
};

/* A date-time as written: resolved against the entry's zone when the next
 * run is computed, unless it carried its own offset. */
struct cel_sched_at {
    int year, month, mday, hour, min, sec;
    bool has_offset;      /* written with Z or +HH:MM */
    int32_t utc_offset_s; /* with has_offset */
};

struct cel_sched_spec {
    enum cel_sched_kind kind;
    struct cel_sched_cron cron; /* CEL_SCHED_CRON */
    int64_t every_s;            /* CEL_SCHED_INTERVAL: period in seconds, > 0 */
    struct cel_sched_at at;     /* CEL_SCHED_AT */
};

/* Where parsing stopped and why: `msg` names the offending word in quotes
 * ("unknown word 'mondey' (did you mean 'monday'?)"), `pos`/`len` are its
 * byte offset and length in the text, so a caller can underline it. */
struct cel_sched_error {
    char msg[256];
    size_t pos;
    size_t len;
};

/* Each returns CEL_OK and fills *out, or CEL_EINVAL with *err filled
 * (err may be NULL). Input is case-insensitive; leading and trailing
 * blanks are ignored. */
int cel__sched_parse_cron(const char *text, struct cel_sched_spec *out,
                          struct cel_sched_error *err);
int cel__sched_parse_every(const char *text, struct cel_sched_spec *out,
                           struct cel_sched_error *err);
int cel__sched_parse_at(const char *text, struct cel_sched_spec *out, struct cel_sched_error *err);
int cel__sched_parse_phrase(const char *text, struct cel_sched_spec *out,
                            struct cel_sched_error *err);

/* Dispatches on kind: "cron", "every", "at" or "when". */
int cel__sched_parse(const char *kind, const char *text, struct cel_sched_spec *out,
                     struct cel_sched_error *err);

/* Writes the spec as an English sentence that cel__sched_parse_phrase()
 * reads back to an equal spec ("every Monday at 08:00", "every 15 minutes
 * between 09:00 and 17:00 on weekdays"). Returns the length it needed
 * (snprintf rules: the text is cut when that is >= len). */
size_t cel__sched_render(const struct cel_sched_spec *s, char *buf, size_t len);

bool cel__sched_spec_equal(const struct cel_sched_spec *a, const struct cel_sched_spec *b);

/*
 * The first run strictly after `after_s` (UTC seconds), or 0 when there is
 * none (an AT in the past, REBOOT). `anchor_s` is when an INTERVAL entry
 * was created: its runs are anchor + k * every_s for k >= 1, so late runs
 * do not make the schedule drift. Other kinds ignore it.
 *
 * Cron fields are wall-clock times in `tz` (NULL: UTC). Across daylight
 * saving, as cronie does:
 *   - an entry with fixed hours (hours field not '*') whose time falls in
 *     a spring-forward gap runs once, at the instant the gap ends; on the
 *     fall-back day it runs once, at the first of the two instants;
 *   - an entry whose hours field is '*' follows elapsed time: times in a
 *     gap do not exist and are skipped, times in a fold run at both
 *     instants.
 * Two spec times that land on the same instant run once.
 */
int64_t cel__sched_next(const struct cel_sched_spec *s, const struct cel_tz *tz, int64_t anchor_s,
                        int64_t after_s);

/* The task id of an entry's run at `tick_s`: a UUID derived from both, the
 * same in every process, so a run sent twice is recognisably the same run. */
void cel__sched_tick_id(const char *entry_name, int64_t tick_s, char out[37]);

#endif
