/*
 * next_run.c - cel__sched_next: the first run of a schedule after an
 * instant (see spec.h for the rules).
 *
 * Cron fields are matched against wall-clock times written as "naive"
 * seconds (the calendar arithmetic of UTC, without any zone). The zone's
 * time line is walked span by span (a span has one UTC offset), and in
 * each the next matching naive time is found by skipping whole fields:
 * month, then day, hour, minute, second. A daily entry thus costs a few
 * steps per span, a year's search a few hundred.
 */
#include "schedule/spec.h"

#include "core/clock.h"
#include "schedule/tzif.h"

/* Beyond this a spec is taken never to match (Feb 30). Every date cron
 * can name comes round within it: eight years always hold a Feb 29 (even
 * around 2100, which has none), and two restricted day fields are
 * alternatives, never both required. */
static const int64_t SEARCH_SPAN_S = 8 * 366 * 86400LL;
/* No schedule runs past the year 9999. */
static const int64_t LAST_INSTANT_S = 253402300799LL;

static const uint32_t ALL_HOURS = (1u << 24) - 1;

/* The lowest set bit of `set` at or above `from`, or -1. */
static int next_bit(uint64_t set, int from)
{
    if (from > 63)
        return -1;
    set &= ~0ULL << from;
    return set ? __builtin_ctzll(set) : -1;
}

static bool day_matches(const struct cel_sched_cron *c, int year, int month, int mday)
{
    int64_t days = cel__days_from_civil(year, month, mday);
    int wday = (int)(((days + 4) % 7 + 7) % 7);
    bool by_mday =
        (c->mdays >> mday & 1) || (c->last_mday && mday == cel__days_in_month(year, month));
    bool by_wday = c->wdays >> wday & 1;
    /* Vixie cron: two restricted day fields are alternatives. */
    if (!c->mday_star && !c->wday_star)
        return by_mday || by_wday;
    return by_mday && by_wday;
}

/* The first naive time >= from whose fields all match, if it is < limit. */
static bool next_match(const struct cel_sched_cron *c, int64_t from, int64_t limit, int64_t *out)
{
    int64_t days = from / 86400 - (from % 86400 < 0);
    int64_t sod = from - days * 86400; /* second of the day */
    int year, month, mday;
    cel__civil_from_days(days, &year, &month, &mday);
    int hour = (int)(sod / 3600), min = (int)(sod / 60 % 60), sec = (int)(sod % 60);
    for (;;) {
        int64_t day_start = cel__days_from_civil(year, month, mday) * 86400;
        if (day_start >= limit)
            return false;
        if (!(c->months >> month & 1)) {
            int m = next_bit(c->months, month + 1);
            if (m < 0 || m > 12) {
                year++;
                m = next_bit(c->months, 1);
                if (m < 0 || m > 12)
                    return false;
            }
            month = m;
            mday = 1;
            hour = min = sec = 0;
            continue;
        }
        if (hour > 23 || !day_matches(c, year, month, mday)) {
            if (++mday > cel__days_in_month(year, month)) {
                mday = 1;
                if (++month > 12) {
                    month = 1;
                    year++;
                }
            }
            hour = min = sec = 0;
            continue;
        }
        int h = next_bit(c->hours, hour);
        if (h != hour) {
            hour = h < 0 || h > 23 ? 24 : h; /* 24: no hour left today */
            min = sec = 0;
            continue;
        }
        int m = next_bit(c->minutes, min);
        if (m != min) {
            if (m < 0 || m > 59) {
                hour++;
                min = 0;
            } else {
                min = m;
            }
            sec = 0;
            continue;
        }
        int s = next_bit(c->seconds, sec);
        if (s != sec) {
            if (s < 0 || s > 59) {
                min++;
                sec = 0;
                if (min > 59) {
                    hour++;
                    min = 0;
                }
            } else {
                sec = s;
            }
            continue;
        }
        int64_t t = day_start + hour * 3600 + min * 60 + sec;
        if (t >= limit)
            return false;
        *out = t;
        return true;
    }
}

static int64_t local_of(int64_t utc, int32_t off)
{
    return utc == INT64_MAX ? INT64_MAX : utc + off;
}

static int64_t next_cron(const struct cel_sched_cron *c, const struct cel_tz *tz, int64_t after)
{
    if (!c->seconds || !c->minutes || !c->hours || !c->months)
        return 0;
    bool fixed_hours = (c->hours & ALL_HOURS) != ALL_HOURS;
    int64_t give_up = after + SEARCH_SPAN_S;
    int64_t t = after + 1;
    struct cel_tz_span sp;
    cel__tz_span(tz, t, &sp);
    while (t < give_up) {
        int64_t from = t + sp.off;
        int64_t limit = local_of(sp.end, sp.off);
        if (limit > give_up + sp.off)
            limit = give_up + sp.off;
        if (fixed_hours && sp.off > sp.prev_off && sp.start > after) {
            /* A spring-forward gap opens this span: a time inside it
             * runs once, now. */
            int64_t m;
            if (next_match(c, sp.start + sp.prev_off, sp.start + sp.off, &m))
                return sp.start;
        }
        if (fixed_hours && sp.off < sp.prev_off && from < sp.start + sp.prev_off) {
            /* A fall-back fold opens this span: its times ran at their
             * first instant, in the span before. */
            from = sp.start + sp.prev_off;
        }
        int64_t m;
        if (from < limit && next_match(c, from, limit, &m))
            return m - sp.off;
        if (sp.end == INT64_MAX)
            return 0;
        t = sp.end;
        cel__tz_span(tz, t, &sp);
    }
    return 0;
}

static int64_t next_interval(int64_t every, int64_t anchor, int64_t after)
{
    if (every <= 0 || anchor < -LAST_INSTANT_S || anchor > LAST_INSTANT_S)
        return 0;
    int64_t k = after < anchor ? 1 : (after - anchor) / every + 1;
    if (k > (LAST_INSTANT_S - anchor) / every)
        return 0;
    return anchor + k * every;
}

static int64_t next_at(const struct cel_sched_at *at, const struct cel_tz *tz, int64_t after)
{
    if (at->month < 1 || at->month > 12 || at->mday < 1 ||
        at->mday > cel__days_in_month(at->year, at->month) || at->hour < 0 || at->hour > 23 ||
        at->min < 0 || at->min > 59 || at->sec < 0 || at->sec > 59)
        return 0;
    int64_t t;
    if (at->has_offset || !tz) {
        int64_t naive = cel__days_from_civil(at->year, at->month, at->mday) * 86400 +
                        at->hour * 3600 + at->min * 60 + at->sec;
        t = naive - (at->has_offset ? at->utc_offset_s : 0);
    } else {
        /* A gap gives its end, a fold its first instant: both in *first. */
        int64_t second;
        cel__tz_from_local(tz, at->year, at->month, at->mday, at->hour, at->min, at->sec, &t,
                           &second);
    }
    return t > after ? t : 0;
}

int64_t cel__sched_next(const struct cel_sched_spec *s, const struct cel_tz *tz, int64_t anchor_s,
                        int64_t after_s)
{
    if (!s || after_s >= LAST_INSTANT_S || after_s < -LAST_INSTANT_S)
        return 0;
    int64_t next = 0;
    switch (s->kind) {
    case CEL_SCHED_CRON:
        next = next_cron(&s->cron, tz, after_s);
        break;
    case CEL_SCHED_INTERVAL:
        next = next_interval(s->every_s, anchor_s, after_s);
        break;
    case CEL_SCHED_AT:
        next = next_at(&s->at, tz, after_s);
        break;
    case CEL_SCHED_REBOOT:
        break;
    }
    return next > 0 && next <= LAST_INSTANT_S ? next : 0;
}
