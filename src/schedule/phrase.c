/*
 * phrase.c - schedules written in English.
 *
 * Case-insensitive; commas, "and", "or" and "the" between clauses are
 * optional; clauses come in any order. A phrase is:
 *
 *   "@daily" ...                     a cron alias (see cron.c)
 *   "when beat starts"               REBOOT
 *   "once at 2026-12-24 18:00"       AT (the rest as in at.c)
 *   "every <interval>"               alone: INTERVAL ("every 15 minutes",
 *                                    "every 1 hour 30 minutes", "every day",
 *                                    any form every.c reads after "every")
 *   clauses...                       CRON, the clauses being:
 *
 *   every <interval>     with other clauses, a clock-aligned step: N
 *                        seconds or minutes with N dividing 60, N hours
 *                        with N dividing 24, or "every day"
 *   every <days>         "every monday and friday", "every weekday",
 *   on <days>            "every weekend", "every 1st and 15th of the
 *                        month", "every last day of the month", "every
 *                        january 1st", "on mondays", "on the 1st to 5th",
 *                        "on monday to friday"; "every month" and "every
 *                        year" are allowed before a day of the month
 *   in <months>          "in january and july", "in march to may"
 *   at <times>           "at 9am and 5pm", "at 09:30", "at 9:30:15",
 *                        "at noon", "at midnight": runs at each time
 *                        (their hours, minutes and seconds must form a
 *                        full grid, as cron can only say that)
 *   at :MM[:SS] ...      minutes past each hour: "every hour at :15",
 *                        "at :00 and :30", "at :00 to :10"
 *   at second(s) <list>  "at seconds 0 and 30", "at second 5"
 *   at minute(s) <list>  "at minutes 0 to 10 and 30"
 *   during hour(s) <list>  "during hours 9, 12 and 15"
 *   between T and T      a half-open window of whole hours: "between 9am
 *   from T to T          and 5pm" is hours 9 to 16; "midnight" ends a day
 *   of every <interval>  another step, as "every": "every 10 seconds of
 *                        every 5 minutes"; "every 15 minutes of every hour"
 *                        is the cron schedule, not the interval
 *   twice a day          00:00 and 12:00
 *
 * Lists are items joined by ",", "and" or "or"; "to" makes a range.
 * Times: 9am, 9:30am, 12pm (noon), 12am (midnight), 09:30, 18:00:15,
 * noon, midnight. Of the time fields (seconds, minutes, hours) those
 * finer than the finest one given are 0 and the coarser ones not given
 * are every value, so "every monday" is 00:00 on Mondays and "at :15" is
 * 15 minutes past every hour. A field given twice keeps the values both
 * allow ("every 2 hours between 9am and 5pm": 10, 12, 14, 16). Days
 * given both by weekday and by day of the month match either (cron).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "celeriac/error.h"
#include "core/suggest.h"
#include "schedule/lex.h"
#include "schedule/names.h"
#include "schedule/spec.h"

enum { FS, FM, FH, NFIELDS };
static const int field_max[NFIELDS] = {59, 59, 23};
static const char *const field_word[NFIELDS] = {"second", "minute", "hour"};

#define TIME_ITEMS_MAX 128

struct phrase {
    const char *text;
    const struct cel_sched_tok *t;
    size_t i;
    struct cel_sched_error *err;
    uint64_t bits[NFIELDS];
    bool set[NFIELDS];
    uint32_t mdays;
    bool last_mday, mdays_set;
    uint8_t wdays;
    bool wdays_set;
    uint16_t months;
    bool months_set;
    int nevery;
    struct cel_sched_duration every[NFIELDS + 1];
    int clauses; /* clauses besides the interval */
    bool want_date;
    size_t want_pos, want_len;
};

struct time_item {
    int h, m, s;
};

static const char *const vocabulary[] = {
    "every",    "at",      "on",        "in",        "between",  "from",     "to",
    "and",      "or",      "the",       "of",        "month",    "year",     "day",
    "days",     "weekday", "weekdays",  "weekend",   "weekends", "last",     "noon",
    "midnight", "am",      "pm",        "twice",     "once",     "hour",     "hours",
    "minute",   "minutes", "second",    "seconds",   "during",   "when",     "beat",
    "starts",   "monday",  "tuesday",   "wednesday", "thursday", "friday",   "saturday",
    "sunday",   "january", "february",  "march",     "april",    "may",      "june",
    "july",     "august",  "september", "october",   "november", "december", "daily",
};

static const struct cel_sched_tok *tok(const struct phrase *p, size_t k)
{
    return &p->t[k];
}

static bool is(const struct phrase *p, size_t k, const char *w)
{
    return cel__sched_tok_is(p->text, tok(p, k), w);
}

static bool accept(struct phrase *p, const char *w)
{
    if (!is(p, p->i, w))
        return false;
    p->i++;
    return true;
}

static bool punct(const struct phrase *p, size_t k, char c)
{
    return cel__sched_tok_punct(p->text, tok(p, k), c);
}

/* Text span from token a to token b (inclusive). */
static size_t span(const struct phrase *p, size_t a, size_t b)
{
    return tok(p, b)->pos + tok(p, b)->len - tok(p, a)->pos;
}

static int unknown(struct phrase *p, size_t k, const char *expected)
{
    const struct cel_sched_tok *t = tok(p, k);
    if (t->kind == CEL_TOK_END)
        return cel__sched_fail(p->err, t->pos, 0, "the phrase ends where %s was expected",
                               expected);
    const char *w = p->text + t->pos;
    const char *hint =
        t->kind == CEL_TOK_WORD
            ? cel__closest_word(w, t->len, vocabulary, sizeof vocabulary / sizeof vocabulary[0])
            : NULL;
    if (hint && cel__word_distance(w, t->len, hint) > 0)
        return cel__sched_fail(p->err, t->pos, t->len,
                               "unknown word '%.*s' (did you mean '%s'?); expected %s", (int)t->len,
                               w, hint, expected);
    return cel__sched_fail(p->err, t->pos, t->len, "'%.*s' is not understood here; expected %s",
                           (int)t->len, w, expected);
}

static uint64_t full_bits(int f)
{
    return (2ull << field_max[f]) - 1;
}

static int set_field(struct phrase *p, int f, uint64_t bits, size_t a, size_t b)
{
    if (p->set[f])
        bits &= p->bits[f];
    if (!bits)
        return cel__sched_fail(p->err, tok(p, a)->pos, span(p, a, b),
                               "'%.*s' leaves no %s to run at", (int)span(p, a, b),
                               p->text + tok(p, a)->pos, field_word[f]);
    p->bits[f] = bits;
    p->set[f] = true;
    return CEL_OK;
}

static bool separator(const struct phrase *p, size_t k)
{
    return punct(p, k, ',') || is(p, k, "and") || is(p, k, "or");
}

static size_t skip_separators(const struct phrase *p, size_t k)
{
    while (separator(p, k))
        k++;
    return k;
}

/* ---- words ------------------------------------------------------------ */

static int name_index(const struct phrase *p, size_t k, const char *const *shorts,
                      const char *const *longs, int n, bool plural)
{
    const struct cel_sched_tok *t = tok(p, k);
    if (t->kind != CEL_TOK_WORD)
        return -1;
    const char *w = p->text + t->pos;
    for (int i = 0; i < n; i++) {
        size_t ll = strlen(longs[i]);
        if (cel__sched_tok_is(p->text, t, shorts[i]) || cel__sched_tok_is(p->text, t, longs[i]))
            return i;
        if (plural && t->len == ll + 1 && strncasecmp(w, longs[i], ll) == 0 &&
            tolower((unsigned char)w[ll]) == 's')
            return i;
    }
    return -1;
}

static int wday_at(const struct phrase *p, size_t k)
{
    return name_index(p, k, cel__sched_wday_short, cel__sched_wday_long, 7, true);
}

static int month_at(const struct phrase *p, size_t k)
{
    int m = name_index(p, k, cel__sched_month_short, cel__sched_month_long, 12, false);
    return m < 0 ? -1 : m + 1;
}

/* "1st", "22nd", "3rd", "15th": a number glued to its suffix. */
static int ordinal_at(const struct phrase *p, size_t k)
{
    const struct cel_sched_tok *t = tok(p, k), *s = tok(p, k + 1);
    if (t->kind != CEL_TOK_NUM || t->frac_digits || !s->glued)
        return -1;
    if (!is(p, k + 1, "st") && !is(p, k + 1, "nd") && !is(p, k + 1, "rd") && !is(p, k + 1, "th"))
        return -1;
    return (int)(t->num > 99 ? 99 : t->num);
}

static bool day_item_at(const struct phrase *p, size_t k)
{
    if (is(p, k, "the"))
        k++;
    return wday_at(p, k) >= 0 || month_at(p, k) >= 0 || ordinal_at(p, k) >= 0 ||
           is(p, k, "weekday") || is(p, k, "weekdays") || is(p, k, "weekend") ||
           is(p, k, "weekends") || is(p, k, "last");
}

/* ---- days ------------------------------------------------------------- */

/* Bits from..to, wrapping around past the last of the `count` values that
 * start at `first` ("friday to monday", "november to february"). */
static uint32_t cyclic_range(int from, int to, int first, int count)
{
    uint32_t bits = 0;
    for (int v = from;; v = (v - first + 1) % count + first) {
        bits |= 1u << v;
        if (v == to)
            return bits;
    }
}

/* "january", "march to may". */
static int month_item(struct phrase *p)
{
    int a = month_at(p, p->i), b = a;
    p->i++;
    if (is(p, p->i, "to")) {
        b = month_at(p, p->i + 1);
        if (b < 0)
            return unknown(p, p->i + 1, "a month after 'to'");
        p->i += 2;
    }
    p->months |= (uint16_t)cyclic_range(a, b, 1, 12);
    p->months_set = true;
    return CEL_OK;
}

static int read_ordinal(struct phrase *p, int *out)
{
    size_t k = p->i;
    int v = ordinal_at(p, k);
    if (v < 1 || v > 31)
        return cel__sched_fail(p->err, tok(p, k)->pos, span(p, k, k + 1),
                               "'%.*s' is not a day of the month (1st to 31st)",
                               (int)span(p, k, k + 1), p->text + tok(p, k)->pos);
    p->i += 2;
    *out = v;
    return CEL_OK;
}

/* "of the month", "of every month", "day", "days" after a day of the month. */
static void skip_month_tail(struct phrase *p)
{
    if (is(p, p->i, "day") || is(p, p->i, "days"))
        p->i++;
    if (is(p, p->i, "of") && (is(p, p->i + 1, "the") || is(p, p->i + 1, "every")) &&
        is(p, p->i + 2, "month"))
        p->i += 3;
}

static int day_item(struct phrase *p, bool after_every)
{
    size_t k = p->i;
    int w = wday_at(p, k), m = month_at(p, k);
    if (w >= 0) {
        p->i++;
        int to = w;
        if (is(p, p->i, "to") && wday_at(p, p->i + 1) >= 0) {
            to = wday_at(p, p->i + 1);
            p->i += 2;
        }
        p->wdays |= (uint8_t)cyclic_range(w, to, 0, 7);
        p->wdays_set = true;
        return CEL_OK;
    }
    if (accept(p, "weekday") || accept(p, "weekdays")) {
        p->wdays |= 0x3e;
        p->wdays_set = true;
        return CEL_OK;
    }
    if (accept(p, "weekend") || accept(p, "weekends")) {
        if (!accept(p, "day"))
            accept(p, "days");
        p->wdays |= 0x41;
        p->wdays_set = true;
        return CEL_OK;
    }
    if (ordinal_at(p, k) >= 0) {
        int a, b;
        int rc = read_ordinal(p, &a);
        if (rc)
            return rc;
        b = a;
        if (is(p, p->i, "to") && ordinal_at(p, p->i + 1) >= 0) {
            size_t r = p->i++;
            if ((rc = read_ordinal(p, &b)))
                return rc;
            if (b < a)
                return cel__sched_fail(p->err, tok(p, k)->pos, span(p, k, r + 2),
                                       "'%.*s' runs backwards", (int)span(p, k, r + 2),
                                       p->text + tok(p, k)->pos);
        }
        for (int d = a; d <= b; d++)
            p->mdays |= 1u << d;
        p->mdays_set = true;
        skip_month_tail(p);
        return CEL_OK;
    }
    if (accept(p, "last")) {
        p->last_mday = true;
        p->mdays_set = true;
        skip_month_tail(p);
        return CEL_OK;
    }
    if (m > 0)
        return month_item(p);
    if (after_every && (is(p, k, "month") || is(p, k, "year"))) {
        if (!p->want_date) {
            p->want_date = true;
            p->want_pos = tok(p, k)->pos;
            p->want_len = tok(p, k)->len;
        }
        p->i++;
        accept(p, "on");
        return CEL_OK;
    }
    return unknown(p, k, "a day such as 'monday', 'weekday', '1st' or 'last day of the month'");
}

static int day_list(struct phrase *p, bool after_every)
{
    for (;;) {
        accept(p, "the");
        int rc = day_item(p, after_every);
        if (rc)
            return rc;
        size_t next = skip_separators(p, p->i);
        if (!day_item_at(p, next) &&
            !(after_every && (is(p, next, "month") || is(p, next, "year"))))
            return CEL_OK;
        p->i = next;
    }
}

static int month_list(struct phrase *p)
{
    for (;;) {
        if (month_at(p, p->i) < 0)
            return unknown(p, p->i, "a month such as 'january'");
        int rc = month_item(p);
        if (rc)
            return rc;
        size_t next = skip_separators(p, p->i);
        if (month_at(p, next) < 0)
            return CEL_OK;
        p->i = next;
    }
}

/* ---- times ------------------------------------------------------------ */

static bool time_start(const struct phrase *p, size_t k)
{
    return (tok(p, k)->kind == CEL_TOK_NUM && ordinal_at(p, k) < 0) || is(p, k, "noon") ||
           is(p, k, "midnight");
}

/* A time of day; *end24 allows "midnight" / "24:00" as the end of a day. */
static int read_time(struct phrase *p, struct time_item *out, bool end24)
{
    size_t k = p->i;
    memset(out, 0, sizeof *out);
    if (accept(p, "noon")) {
        out->h = 12;
        return CEL_OK;
    }
    if (accept(p, "midnight")) {
        out->h = end24 ? 24 : 0;
        return CEL_OK;
    }
    const struct cel_sched_tok *t = tok(p, k);
    if (t->kind != CEL_TOK_NUM || t->frac_digits)
        return unknown(p, k, "a time such as '9am', '09:30' or 'noon'");
    int64_t h = t->num, m = 0, s = 0;
    p->i++;
    bool colon = false;
    if (punct(p, p->i, ':') && tok(p, p->i)->glued && tok(p, p->i + 1)->kind == CEL_TOK_NUM &&
        tok(p, p->i + 1)->glued) {
        m = tok(p, p->i + 1)->num;
        colon = true;
        p->i += 2;
        if (punct(p, p->i, ':') && tok(p, p->i)->glued && tok(p, p->i + 1)->kind == CEL_TOK_NUM &&
            tok(p, p->i + 1)->glued) {
            s = tok(p, p->i + 1)->num;
            p->i += 2;
        }
    }
    bool am = is(p, p->i, "am"), pm = is(p, p->i, "pm");
    if (am || pm)
        p->i++;
    size_t len = span(p, k, p->i - 1);
    const char *w = p->text + t->pos;
    bool frac = false;
    for (size_t j = k; j < p->i; j++)
        frac = frac || tok(p, j)->frac_digits;
    if (frac || m > 59 || s > 59 || ((am || pm) && (h < 1 || h > 12)) || (!(am || pm) && h > 24) ||
        (h == 24 && (!end24 || m || s)) || (colon && tok(p, k + 2)->len != 2))
        return cel__sched_fail(p->err, t->pos, len, "'%.*s' is not a time of day", (int)len, w);
    if (am || pm)
        h = h % 12 + (pm ? 12 : 0);
    out->h = (int)h;
    out->m = (int)m;
    out->s = (int)s;
    return CEL_OK;
}

static int cmp_items(const void *a, const void *b)
{
    const struct time_item *x = a, *y = b;
    int kx = (x->h * 60 + x->m) * 60 + x->s, ky = (y->h * 60 + y->m) * 60 + y->s;
    return (kx > ky) - (kx < ky);
}

/* Sets the fields of a list of times, which must be all the combinations
 * of their hours, minutes and seconds; with_hours false: minutes past
 * every hour. */
static int set_times(struct phrase *p, struct time_item *items, size_t n, bool with_hours,
                     bool with_seconds, size_t a, size_t b)
{
    qsort(items, n, sizeof *items, cmp_items);
    uint64_t bits[NFIELDS] = {0};
    size_t distinct = 0;
    for (size_t j = 0; j < n; j++) {
        if (j == 0 || cmp_items(&items[j], &items[j - 1]) != 0)
            distinct++;
        bits[FH] |= 1ull << items[j].h;
        bits[FM] |= 1ull << items[j].m;
        bits[FS] |= 1ull << items[j].s;
    }
    size_t grid = (size_t)__builtin_popcountll(bits[FH]) * (size_t)__builtin_popcountll(bits[FM]) *
                  (size_t)__builtin_popcountll(bits[FS]);
    if (grid != distinct)
        return cel__sched_fail(p->err, tok(p, a)->pos, span(p, a, b),
                               "'%.*s' cannot be one schedule: it runs at every combination of "
                               "the hours, minutes and seconds given (split it in two entries)",
                               (int)span(p, a, b), p->text + tok(p, a)->pos);
    int rc = CEL_OK;
    if (with_hours)
        rc = set_field(p, FH, bits[FH], a, b);
    if (!rc)
        rc = set_field(p, FM, bits[FM], a, b);
    if (!rc && (with_seconds || with_hours))
        rc = set_field(p, FS, bits[FS], a, b);
    return rc;
}

static int time_list(struct phrase *p)
{
    struct time_item items[TIME_ITEMS_MAX];
    size_t n = 0, a = p->i;
    for (;;) {
        if (n == TIME_ITEMS_MAX)
            return unknown(p, p->i, "fewer times");
        int rc = read_time(p, &items[n++], false);
        if (rc)
            return rc;
        size_t next = skip_separators(p, p->i);
        if (!time_start(p, next))
            break;
        p->i = next;
    }
    return set_times(p, items, n, true, true, a, p->i - 1);
}

/* ":15", ":15:30", ":00 to :10": minutes (and seconds) past the hour. */
static int offset_list(struct phrase *p)
{
    struct time_item items[TIME_ITEMS_MAX];
    size_t n = 0, a = p->i;
    bool with_seconds = false;
    for (;;) {
        size_t k = p->i;
        if (!punct(p, k, ':') || tok(p, k + 1)->kind != CEL_TOK_NUM || !tok(p, k + 1)->glued ||
            tok(p, k + 1)->len != 2 || tok(p, k + 1)->num > 59)
            return unknown(p, k + (punct(p, k, ':') ? 1 : 0), "minutes past the hour like ':15'");
        struct time_item it = {0, (int)tok(p, k + 1)->num, 0};
        p->i += 2;
        if (punct(p, p->i, ':') && tok(p, p->i)->glued) {
            const struct cel_sched_tok *s = tok(p, p->i + 1);
            if (s->kind != CEL_TOK_NUM || !s->glued || s->len != 2 || s->num > 59)
                return unknown(p, p->i + 1, "seconds like ':15:30'");
            it.s = (int)s->num;
            with_seconds = true;
            p->i += 2;
        }
        int last = it.m;
        if (is(p, p->i, "to") && punct(p, p->i + 1, ':')) {
            const struct cel_sched_tok *e = tok(p, p->i + 2);
            if (e->kind != CEL_TOK_NUM || !e->glued || e->len != 2 || e->num > 59 ||
                e->num < it.m || it.s)
                return unknown(p, p->i + 2, "a later minute like ':30' after 'to'");
            last = (int)e->num;
            p->i += 3;
        }
        for (int m = it.m; m <= last; m++) {
            if (n == TIME_ITEMS_MAX)
                return unknown(p, k, "fewer times");
            items[n++] = (struct time_item){0, m, it.s};
        }
        size_t next = skip_separators(p, p->i);
        if (!punct(p, next, ':'))
            break;
        p->i = next;
    }
    return set_times(p, items, n, false, with_seconds, a, p->i - 1);
}

/* "5", "0 to 10", "1, 3 and 5": numbers of field f. */
static int number_list(struct phrase *p, int f)
{
    uint64_t bits = 0;
    size_t a = p->i;
    for (;;) {
        size_t k = p->i;
        const struct cel_sched_tok *t = tok(p, k);
        if (t->kind != CEL_TOK_NUM || t->frac_digits || t->num > field_max[f])
            return t->kind == CEL_TOK_NUM
                       ? cel__sched_fail(p->err, t->pos, t->len, "'%.*s' is not %s 0 to %d",
                                         (int)t->len, p->text + t->pos,
                                         f == FH   ? "an hour"
                                         : f == FM ? "a minute"
                                                   : "a second",
                                         field_max[f])
                       : unknown(p, k, "a number");
        int lo = (int)t->num, hi = lo;
        p->i++;
        if (is(p, p->i, "to")) {
            const struct cel_sched_tok *e = tok(p, p->i + 1);
            if (e->kind != CEL_TOK_NUM || e->frac_digits || e->num > field_max[f] || e->num < lo)
                return unknown(p, p->i + 1, "a larger number after 'to'");
            hi = (int)e->num;
            p->i += 2;
        }
        for (int v = lo; v <= hi; v++)
            bits |= 1ull << v;
        size_t next = skip_separators(p, p->i);
        if (tok(p, next)->kind != CEL_TOK_NUM)
            break;
        p->i = next;
    }
    return set_field(p, f, bits, a, p->i - 1);
}

static int field_word_at(const struct phrase *p, size_t k)
{
    for (int f = 0; f < NFIELDS; f++) {
        size_t n = strlen(field_word[f]);
        const struct cel_sched_tok *t = tok(p, k);
        if (t->kind == CEL_TOK_WORD &&
            (t->len == n ||
             (t->len == n + 1 && tolower((unsigned char)p->text[t->pos + n]) == 's')) &&
            strncasecmp(p->text + t->pos, field_word[f], n) == 0)
            return f;
    }
    return -1;
}

static int window(struct phrase *p, const char *joiner)
{
    size_t a = p->i - 1;
    struct time_item from, to;
    size_t fk = p->i;
    int rc = read_time(p, &from, false);
    if (rc)
        return rc;
    if (from.m || from.s)
        return cel__sched_fail(p->err, tok(p, fk)->pos, span(p, fk, p->i - 1),
                               "'%.*s' is not on the hour: a window starts and ends on the hour",
                               (int)span(p, fk, p->i - 1), p->text + tok(p, fk)->pos);
    if (!accept(p, joiner) && !accept(p, "and") && !accept(p, "to"))
        return unknown(p, p->i,
                       joiner[0] == 'a' ? "'and' and the end of the window"
                                        : "'to' and the end of the window");
    size_t tk = p->i;
    if ((rc = read_time(p, &to, true)))
        return rc;
    if (to.m || to.s)
        return cel__sched_fail(p->err, tok(p, tk)->pos, span(p, tk, p->i - 1),
                               "'%.*s' is not on the hour: a window starts and ends on the hour",
                               (int)span(p, tk, p->i - 1), p->text + tok(p, tk)->pos);
    if (to.h % 24 == from.h)
        return cel__sched_fail(p->err, tok(p, a)->pos, span(p, a, p->i - 1),
                               "'%.*s' is an empty window", (int)span(p, a, p->i - 1),
                               p->text + tok(p, a)->pos);
    uint64_t bits = 0;
    for (int h = from.h; h != to.h % 24; h = (h + 1) % 24)
        bits |= 1ull << h;
    return set_field(p, FH, bits, a, p->i - 1);
}

/* ---- clauses ---------------------------------------------------------- */

static int every_clause(struct phrase *p)
{
    struct cel_sched_duration d;
    int rc = cel__sched_read_duration(p->text, p->t, &p->i, true, &d, p->err);
    if (rc)
        return rc;
    if (d.parts == 0) {
        p->clauses++;
        return day_list(p, true);
    }
    if (p->nevery == NFIELDS + 1)
        return cel__sched_fail(p->err, d.pos, d.len, "'%.*s' is one interval too many", (int)d.len,
                               p->text + d.pos);
    p->every[p->nevery++] = d;
    return CEL_OK;
}

static int at_clause(struct phrase *p)
{
    int f = field_word_at(p, p->i);
    if (f >= 0) {
        p->i++;
        return number_list(p, f);
    }
    if (punct(p, p->i, ':'))
        return offset_list(p);
    if (time_start(p, p->i))
        return time_list(p);
    return unknown(p, p->i, "a time such as '9am', '09:30', ':15' or 'minute 5'");
}

static int clause(struct phrase *p)
{
    size_t k = p->i;
    if (accept(p, "every"))
        return every_clause(p);
    p->clauses++;
    if (accept(p, "on"))
        return day_list(p, false);
    if (accept(p, "in"))
        return month_list(p);
    if (accept(p, "at"))
        return at_clause(p);
    if (accept(p, "during")) {
        int f = field_word_at(p, p->i);
        if (f != FH)
            return unknown(p, p->i, "'hours' after 'during'");
        p->i++;
        return number_list(p, FH);
    }
    if (accept(p, "between"))
        return window(p, "and");
    if (accept(p, "from"))
        return window(p, "to");
    if (is(p, k, "of") && is(p, k + 1, "every")) {
        p->clauses--; /* "every 15 minutes of every hour" */
        p->i += 2;
        return every_clause(p);
    }
    if (accept(p, "twice")) {
        if (!accept(p, "daily")) {
            if (!accept(p, "a") && !accept(p, "per"))
                return unknown(p, p->i, "'a day' after 'twice'");
            if (!accept(p, "day"))
                return unknown(p, p->i, "'day' after 'twice a'");
        }
        int rc = set_field(p, FH, 1ull | 1ull << 12, k, p->i - 1);
        if (!rc)
            rc = set_field(p, FM, 1, k, p->i - 1);
        if (!rc)
            rc = set_field(p, FS, 1, k, p->i - 1);
        return rc;
    }
    return unknown(p, k, "'every', 'at', 'on', 'in' or 'between'");
}

/* "every 15 minutes" among other clauses: a step of the clock. */
static int every_as_step(struct phrase *p, const struct cel_sched_duration *d)
{
    if (d->parts == 1 && d->whole_n && d->unit_s == 86400 && d->n == 1)
        return CEL_OK; /* "every day" */
    int f = d->unit_s == 1 ? FS : d->unit_s == 60 ? FM : d->unit_s == 3600 ? FH : -1;
    if (d->parts != 1 || !d->whole_n || f < 0)
        return cel__sched_fail(p->err, d->pos, d->len,
                               "'%.*s' cannot be combined with times or days: only whole "
                               "seconds, minutes or hours (or 'every day') line up with the clock",
                               (int)d->len, p->text + d->pos);
    int64_t cycle = f == FH ? 24 : 60;
    if (d->n < 1 || cycle % d->n != 0)
        return cel__sched_fail(p->err, d->pos, d->len,
                               "'%.*s' cannot be lined up with the clock: %lld does not divide "
                               "%lld (the %ss in %s; drop the other clauses for a plain interval)",
                               (int)d->len, p->text + d->pos, (long long)d->n, (long long)cycle,
                               field_word[f],
                               f == FH   ? "a day"
                               : f == FM ? "an hour"
                                         : "a minute");
    uint64_t bits = 0;
    for (int v = 0; v <= field_max[f]; v += (int)d->n)
        bits |= 1ull << v;
    if (p->set[f])
        bits &= p->bits[f];
    if (!bits)
        return cel__sched_fail(p->err, d->pos, d->len, "'%.*s' leaves no %s to run at", (int)d->len,
                               p->text + d->pos, field_word[f]);
    p->bits[f] = bits;
    p->set[f] = true;
    return CEL_OK;
}

static int finish(struct phrase *p, struct cel_sched_spec *out)
{
    const struct cel_sched_tok *end = tok(p, p->i);
    if (!p->nevery && p->clauses == 0)
        return cel__sched_fail(
            p->err, end->pos, 0,
            "nothing to schedule (try 'every 15 minutes' or 'every day at 9am')");
    memset(out, 0, sizeof *out);
    if (p->nevery == 1 && p->clauses == 0) {
        const struct cel_sched_duration *d = &p->every[0];
        if (d->seconds <= 0)
            return cel__sched_fail(p->err, d->pos, d->len, "'%.*s' is not a positive interval",
                                   (int)d->len, p->text + d->pos);
        out->kind = CEL_SCHED_INTERVAL;
        out->every_s = d->seconds;
        return CEL_OK;
    }
    for (int k = 0; k < p->nevery; k++) {
        int rc = every_as_step(p, &p->every[k]);
        if (rc)
            return rc;
    }
    if (p->want_date && !p->mdays_set)
        return cel__sched_fail(p->err, p->want_pos, p->want_len,
                               "'%.*s' needs a day, e.g. 'every month on the 1st'",
                               (int)p->want_len, p->text + p->want_pos);
    int finest = NFIELDS;
    for (int f = 0; f < NFIELDS && finest == NFIELDS; f++)
        if (p->set[f])
            finest = f;
    for (int f = 0; f < NFIELDS; f++)
        if (!p->set[f])
            p->bits[f] = f < finest || finest == NFIELDS ? 1 : full_bits(f);
    struct cel_sched_cron *c = &out->cron;
    out->kind = CEL_SCHED_CRON;
    c->seconds = p->bits[FS];
    c->minutes = p->bits[FM];
    c->hours = (uint32_t)p->bits[FH];
    c->mday_star = !p->mdays_set;
    c->mdays = p->mdays_set ? p->mdays : 0xfffffffeu;
    c->last_mday = p->last_mday;
    c->wday_star = !p->wdays_set;
    c->wdays = p->wdays_set ? p->wdays : 0x7f;
    c->months = p->months_set ? p->months : 0x1ffe;
    return CEL_OK;
}

static int parse_phrase_text(const char *text, struct cel_sched_spec *out,
                             struct cel_sched_error *err)
{
    size_t s, e;
    cel__sched_trim(text, &s, &e);
    if (text[s] == '@')
        return cel__sched_parse_cron(text, out, err);
    struct cel_sched_tok toks[CEL_SCHED_TOK_MAX];
    size_t count;
    int rc = cel__sched_lex(text, toks, CEL_SCHED_TOK_MAX, &count, err);
    if (rc)
        return rc;
    struct phrase p = {.text = text, .t = toks, .err = err};
    if (is(&p, 0, "when") && is(&p, 1, "beat") && (is(&p, 2, "starts") || is(&p, 2, "start")) &&
        toks[3].kind == CEL_TOK_END) {
        memset(out, 0, sizeof *out);
        out->kind = CEL_SCHED_REBOOT;
        return CEL_OK;
    }
    if (accept(&p, "once")) {
        if (!accept(&p, "at"))
            accept(&p, "on");
        size_t at = toks[p.i].pos;
        rc = cel__sched_parse_at(text + at, out, err);
        if (rc && err)
            err->pos += at;
        return rc;
    }
    while (tok(&p, p.i)->kind != CEL_TOK_END) {
        p.i = skip_separators(&p, p.i);
        if (accept(&p, "the") || tok(&p, p.i)->kind == CEL_TOK_END)
            continue;
        if ((rc = clause(&p)))
            return rc;
    }
    return finish(&p, out);
}

int cel__sched_parse_phrase(const char *text, struct cel_sched_spec *out,
                            struct cel_sched_error *err)
{
    return cel__sched_clamp_error(text, err, parse_phrase_text(text, out, err));
}
