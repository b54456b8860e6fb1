/*
 * render.c - a schedule as the English phrase.c reads back.
 *
 * Cron specs take one of two shapes:
 *   - a few times a day (at most RENDER_TIMES_MAX times): "every Monday
 *     and Friday at 08:30", "every weekday at 08:00 in January";
 *   - otherwise the repeating fields, finest first: "every 15 minutes
 *     between 09:00 and 17:00 on weekdays", "every hour at :15",
 *     "at seconds 0 and 30 of every minute during hours 9 and 17".
 * The first shape is checked by parsing it back and falls back to the
 * second, which says every field explicitly.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "schedule/names.h"
#include "schedule/spec.h"

#define RENDER_TIMES_MAX 6
#define RENDER_BUF       2048

enum { FS, FM, FH, NFIELDS };
static const int field_max[NFIELDS] = {59, 59, 23};
static const char *const field_word[NFIELDS] = {"second", "minute", "hour"};

struct out {
    char buf[RENDER_BUF];
    size_t len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->len >= sizeof o->buf)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
    if (o->len >= sizeof o->buf)
        o->len = sizeof o->buf - 1;
}

static uint64_t full_bits(int f)
{
    return (2ull << field_max[f]) - 1;
}

static int count(uint64_t v)
{
    return __builtin_popcountll(v);
}

/* How one list item is written. */
enum item_kind { ITEM_NUMBER, ITEM_OFFSET, ITEM_ORDINAL, ITEM_WDAY, ITEM_MONTH };

static void put_item(struct out *o, enum item_kind kind, int v)
{
    switch (kind) {
    case ITEM_NUMBER:
        put(o, "%d", v);
        break;
    case ITEM_OFFSET:
        put(o, ":%02d", v);
        break;
    case ITEM_ORDINAL: {
        const char *suf = "th";
        if (v % 10 == 1 && v != 11)
            suf = "st";
        else if (v % 10 == 2 && v != 12)
            suf = "nd";
        else if (v % 10 == 3 && v != 13)
            suf = "rd";
        put(o, "%d%s", v, suf);
        break;
    }
    case ITEM_WDAY:
        put(o, "%c%s", toupper((unsigned char)cel__sched_wday_long[v][0]),
            cel__sched_wday_long[v] + 1);
        break;
    case ITEM_MONTH:
        put(o, "%c%s", toupper((unsigned char)cel__sched_month_long[v - 1][0]),
            cel__sched_month_long[v - 1] + 1);
        break;
    }
}

/* The values of `order` (n of them) present in bits, as "a, b to c and d":
 * runs of three or more become ranges. */
static void put_list(struct out *o, uint64_t bits, const int *order, int n, enum item_kind kind)
{
    int runs[64][2], nruns = 0;
    for (int i = 0; i < n; i++) {
        if (!(bits >> order[i] & 1))
            continue;
        if (nruns && runs[nruns - 1][1] == i - 1)
            runs[nruns - 1][1] = i;
        else {
            runs[nruns][0] = runs[nruns][1] = i;
            nruns++;
        }
    }
    /* A run of one or two values is written value by value, a longer one
     * as a range, and the last item is joined with "and". */
    int items = 0, total = 0;
    for (int r = 0; r < nruns; r++)
        total += runs[r][1] - runs[r][0] >= 2 ? 1 : runs[r][1] - runs[r][0] + 1;
    for (int r = 0; r < nruns; r++) {
        int a = runs[r][0], b = runs[r][1];
        bool range = b - a >= 2;
        for (int i = a; i <= (range ? a : b); i++) {
            if (items)
                put(o, items == total - 1 ? " and " : ", ");
            items++;
            put_item(o, kind, order[i]);
            if (range) {
                put(o, " to ");
                put_item(o, kind, order[b]);
            }
        }
    }
}

static void put_bits(struct out *o, uint64_t bits, int lo, int hi, enum item_kind kind)
{
    int order[64];
    for (int v = lo; v <= hi; v++)
        order[v - lo] = v;
    put_list(o, bits, order, hi - lo + 1, kind);
}

static const int monday_first[7] = {1, 2, 3, 4, 5, 6, 0};

/* Weekdays: "weekday(s)", "weekend(s)", or names Monday first. */
static void put_wdays(struct out *o, uint8_t wdays, bool plural)
{
    if (wdays == 0x3e)
        put(o, plural ? "weekdays" : "weekday");
    else if (wdays == 0x41)
        put(o, plural ? "weekends" : "weekend");
    else
        put_list(o, wdays, monday_first, 7, ITEM_WDAY);
}

/* "the 1st, 15th and last day of the month". */
static void put_mdays(struct out *o, const struct cel_sched_cron *c, bool article)
{
    if (article)
        put(o, "the ");
    uint32_t days = c->mdays & 0xfffffffeu;
    if (days) {
        put_bits(o, days, 1, 31, ITEM_ORDINAL);
        if (c->last_mday)
            put(o, " and last day");
    } else {
        put(o, "last day");
    }
    put(o, " of the month");
}

static bool days_restricted(const struct cel_sched_cron *c)
{
    return !c->mday_star || !c->wday_star;
}

/* " on Mondays or on the 1st of the month", " in January". */
static void put_day_clauses(struct out *o, const struct cel_sched_cron *c)
{
    if (!c->wday_star) {
        put(o, " on ");
        put_wdays(o, c->wdays, true);
    }
    if (!c->mday_star) {
        put(o, c->wday_star ? " on " : " or on ");
        put_mdays(o, c, true);
    }
}

static void put_months(struct out *o, uint16_t months)
{
    if ((months & 0x1ffe) == 0x1ffe)
        return;
    put(o, " in ");
    put_bits(o, months, 1, 12, ITEM_MONTH);
}

/* "every Monday at 08:00 and 17:00" and friends. */
static void render_times(struct out *o, const struct cel_sched_cron *c)
{
    bool secs = c->seconds != 1;
    bool month_named = false;
    put(o, "every ");
    if (!days_restricted(c)) {
        put(o, "day");
    } else if (c->wday_star && !c->last_mday && count(c->months & 0x1ffe) == 1) {
        /* "every January 1st and 15th" */
        int m = __builtin_ctz(c->months);
        put_item(o, ITEM_MONTH, m);
        put(o, " ");
        put_bits(o, c->mdays, 1, 31, ITEM_ORDINAL);
        month_named = true;
    } else {
        if (!c->wday_star)
            put_wdays(o, c->wdays, false);
        if (!c->mday_star) {
            if (!c->wday_star)
                put(o, " or the ");
            put_mdays(o, c, false);
        }
    }
    put(o, " at ");
    int n = count(c->hours) * count(c->minutes) * count(c->seconds), k = 0;
    for (int h = 0; h < 24; h++)
        for (int m = 0; m < 60; m++)
            for (int s = 0; s < 60; s++) {
                if (!(c->hours >> h & 1) || !(c->minutes >> m & 1) || !(c->seconds >> s & 1))
                    continue;
                if (k)
                    put(o, k == n - 1 ? " and " : ", ");
                k++;
                put(o, "%02d:%02d", h, m);
                if (secs)
                    put(o, ":%02d", s);
            }
    if (!month_named)
        put_months(o, c->months);
}

/* The step n when bits are exactly 0, n, 2n ... with n dividing the
 * field's cycle; 0 otherwise. */
static int clock_step(uint64_t bits, int f)
{
    int cycle = field_max[f] + 1;
    for (int n = 1; n < cycle; n++) {
        if (cycle % n)
            continue;
        uint64_t want = 0;
        for (int v = 0; v < cycle; v += n)
            want |= 1ull << v;
        if (want == bits)
            return n;
    }
    return 0;
}

/* A single run of hours a..b (not every hour): "between 09:00 and 17:00". */
static bool hour_window(uint32_t hours, int *a, int *b)
{
    if (!hours || hours == full_bits(FH))
        return false;
    int lo = __builtin_ctz(hours), hi = 31 - __builtin_clz(hours);
    if (count(hours) != hi - lo + 1)
        return false;
    *a = lo;
    *b = hi;
    return true;
}

/* Whether the seconds are one value said with the minutes as ":MM:SS". */
static bool seconds_with_offsets(const uint64_t *v, int finest)
{
    return finest == FS && count(v[FS]) == 1 && v[FM] != full_bits(FM) && !clock_step(v[FM], FM);
}

static void render_fields(struct out *o, const struct cel_sched_cron *c)
{
    uint64_t v[NFIELDS] = {c->seconds, c->minutes, c->hours};
    int finest = FH;
    for (int f = FS; f < FH; f++)
        if (v[f] != 1) {
            finest = f;
            break;
        }
    /* Pieces in reading order: repeats ("every ...", finest first, joined
     * by "of"), then positions ("at :15", "at seconds ..."), then the
     * hours ("between ...", "during ..."). */
    struct out every = {.len = 0}, at_m = {.len = 0}, at_s = {.len = 0}, hours = {.len = 0};
    every.buf[0] = at_m.buf[0] = at_s.buf[0] = hours.buf[0] = '\0';
    int nevery = 0;
    bool merged = seconds_with_offsets(v, finest);
    for (int f = finest; f < NFIELDS; f++) {
        if (f != finest && v[f] == full_bits(f))
            continue;
        int step = clock_step(v[f], f);
        int a, b;
        if (step) {
            put(&every, "%severy ", nevery ? " of " : "");
            if (step == 1)
                put(&every, "%s", field_word[f]);
            else
                put(&every, "%d %ss", step, field_word[f]);
            nevery++;
        } else if (f == FH && hour_window(c->hours, &a, &b)) {
            put(&hours, "between %02d:00 and ", a);
            if (b == 23)
                put(&hours, "midnight");
            else
                put(&hours, "%02d:00", b + 1);
        } else if (f == FH) {
            put(&hours, "during %s ", count(v[f]) > 1 ? "hours" : "hour");
            put_bits(&hours, v[f], 0, 23, ITEM_NUMBER);
        } else if (f == FM && merged) {
            int sec = __builtin_ctzll(v[FS]), k = 0, n = count(v[FM]);
            put(&at_m, "at ");
            for (int m = 0; m < 60; m++)
                if (v[FM] >> m & 1) {
                    if (k)
                        put(&at_m, k == n - 1 ? " and " : ", ");
                    k++;
                    put(&at_m, ":%02d:%02d", m, sec);
                }
        } else if (f == FM) {
            put(&at_m, "at ");
            put_bits(&at_m, v[FM], 0, 59, ITEM_OFFSET);
        } else if (!merged) {
            put(&at_s, "at %s ", count(v[f]) > 1 ? "seconds" : "second");
            put_bits(&at_s, v[f], 0, 59, ITEM_NUMBER);
        }
    }
    if (at_m.len && !nevery && v[FH] == full_bits(FH)) {
        put(&every, "every hour"); /* "every hour at :15" */
        nevery++;
    }
    if (finest == FH && nevery)
        put(&at_m, "at :00"); /* "every 2 hours" alone would be an interval */
    if (finest == FH && !nevery) {
        put(&every, "every hour"); /* "every hour between 09:00 and 17:00" */
        nevery++;
    }
    /* One repeat and nothing else reads as an interval: say it is cron. */
    bool lone = nevery == 1 && !at_m.len && !at_s.len && !hours.len && !days_restricted(c) &&
                (c->months & 0x1ffe) == 0x1ffe;
    const char *pieces[] = {every.buf, at_m.buf, at_s.buf, hours.buf};
    size_t start = o->len;
    for (size_t i = 0; i < 4; i++)
        if (pieces[i][0])
            put(o, "%s%s", o->len > start ? (i == 2 && at_m.len ? ", " : " ") : "", pieces[i]);
    if (lone)
        put(o, " of every %s", finest == FS ? "minute" : finest == FM ? "hour" : "day");
    put_day_clauses(o, c);
    put_months(o, c->months);
}

static void render_cron(struct out *o, const struct cel_sched_cron *c)
{
    if (count(c->hours) * count(c->minutes) * count(c->seconds) <= RENDER_TIMES_MAX && c->hours &&
        c->minutes && c->seconds) {
        render_times(o, c);
        struct cel_sched_spec back, want = {.kind = CEL_SCHED_CRON, .cron = *c};
        if (cel__sched_parse_phrase(o->buf, &back, NULL) == 0 &&
            cel__sched_spec_equal(&back, &want))
            return;
        o->len = 0;
        o->buf[0] = '\0';
    }
    render_fields(o, c);
}

/* In the largest unit that divides it: "every 15 minutes", "every 90
 * seconds", "every 2 days", "every hour"; a count too long for the
 * parser's numbers is split: "every 36599 days 86399 seconds". */
static void render_interval(struct out *o, int64_t every_s)
{
    static const struct {
        int64_t seconds;
        const char *word;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    size_t u = 0;
    while (u < 3 && (every_s <= 0 || every_s % units[u].seconds != 0))
        u++;
    int64_t n = every_s / units[u].seconds;
    if (n == 1) {
        put(o, "every %s", units[u].word);
        return;
    }
    if (n < 1000000000) {
        put(o, "every %lld %ss", (long long)n, units[u].word);
        return;
    }
    put(o, "every");
    for (u = 0; u < 4; u++) {
        n = every_s / units[u].seconds;
        every_s %= units[u].seconds;
        if (n)
            put(o, " %lld %s%s", (long long)n, units[u].word, n == 1 ? "" : "s");
    }
}

static void render_at(struct out *o, const struct cel_sched_at *a)
{
    put(o, "once at %04d-%02d-%02d %02d:%02d", a->year, a->month, a->mday, a->hour, a->min);
    if (a->sec)
        put(o, ":%02d", a->sec);
    if (a->has_offset) {
        int32_t off = a->utc_offset_s;
        if (off == 0)
            put(o, "Z");
        else
            put(o, "%c%02d:%02d", off < 0 ? '-' : '+', (off < 0 ? -off : off) / 3600,
                (off < 0 ? -off : off) / 60 % 60);
    }
}

size_t cel__sched_render(const struct cel_sched_spec *s, char *buf, size_t len)
{
    struct out o = {.len = 0};
    o.buf[0] = '\0';
    switch (s->kind) {
    case CEL_SCHED_CRON:
        render_cron(&o, &s->cron);
        break;
    case CEL_SCHED_INTERVAL:
        render_interval(&o, s->every_s);
        break;
    case CEL_SCHED_AT:
        render_at(&o, &s->at);
        break;
    case CEL_SCHED_REBOOT:
        put(&o, "when beat starts");
        break;
    default:
        put(&o, "never");
        break;
    }
    if (len)
        snprintf(buf, len, "%s", o.buf);
    return o.len;
}
