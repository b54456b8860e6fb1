/* tz_rule.c - see tz_rule.h. */
#include "schedule/tz_rule.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "schedule/tz.h"

/* A cursor over the string, and the first complaint. */
struct rule_parser {
    const char *p;
    char *why;
    size_t whylen;
};

static int fail(struct rule_parser *rp, const char *what)
{
    if (rp->why && rp->whylen)
        snprintf(rp->why, rp->whylen, "TZ rule: %s at '%.20s'", what, rp->p);
    return -1;
}

/* std/dst names: three or more letters, or <...> with letters, digits
 * and signs ("<+0530>"), stored without the brackets. */
static int parse_abbr(struct rule_parser *rp, char out[16])
{
    size_t n = 0;
    if (*rp->p == '<') {
        const char *s = ++rp->p;
        while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-')
            n++;
        if (s[n] != '>')
            return fail(rp, "unterminated <name>");
        rp->p = s + n + 1;
        if (n < 3 || n > 15)
            return fail(rp, "bad zone name length");
        memcpy(out, s, n);
    } else {
        const char *s = rp->p;
        while (isalpha((unsigned char)s[n]))
            n++;
        if (n < 3 || n > 15)
            return fail(rp, "expected a zone name");
        memcpy(out, s, n);
        rp->p = s + n;
    }
    out[n] = '\0';
    return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours, as seconds. */
static int parse_hms(struct rule_parser *rp, int max_hours, int32_t *out)
{
    int sign = 1;
    if (*rp->p == '+' || *rp->p == '-')
        sign = *rp->p++ == '-' ? -1 : 1;
    int32_t parts[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*rp->p != ':')
                break;
            rp->p++;
        }
        if (!isdigit((unsigned char)*rp->p))
            return fail(rp, "expected a number");
        int v = 0, digits = 0;
        while (isdigit((unsigned char)*rp->p) && digits < 3) {
            v = v * 10 + (*rp->p++ - '0');
            digits++;
        }
        if (isdigit((unsigned char)*rp->p) || (i == 0 && v > max_hours) || (i > 0 && v > 59))
            return fail(rp, "time out of range");
        parts[i] = v;
    }
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return 0;
}

/* Consumes `c`, never stepping past the terminator. */
static int expect(struct rule_parser *rp, char c)
{
    if (*rp->p != c) {
        char what[16];
        snprintf(what, sizeof what, "expected '%c'", c);
        return fail(rp, what);
    }
    rp->p++;
    return 0;
}

static int parse_int(struct rule_parser *rp, int lo, int hi, int *out)
{
    if (!isdigit((unsigned char)*rp->p))
        return fail(rp, "expected a number");
    int v = 0;
    while (isdigit((unsigned char)*rp->p)) {
        v = v * 10 + (*rp->p++ - '0');
        if (v > hi)
            return fail(rp, "number out of range");
    }
    if (v < lo)
        return fail(rp, "number out of range");
    *out = v;
    return 0;
}

static int parse_date(struct rule_parser *rp, struct cel_tz_rule_date *d)
{
    memset(d, 0, sizeof *d);
    if (*rp->p == 'J') {
        rp->p++;
        d->kind = 'J';
        if (parse_int(rp, 1, 365, &d->day))
            return -1;
    } else if (*rp->p == 'M') {
        rp->p++;
        d->kind = 'M';
        if (parse_int(rp, 1, 12, &d->month) || expect(rp, '.') || parse_int(rp, 1, 5, &d->week) ||
            expect(rp, '.') || parse_int(rp, 0, 6, &d->wday))
            return -1;
    } else {
        d->kind = 'n';
        if (parse_int(rp, 0, 365, &d->day))
            return -1;
    }
    d->time_s = 2 * 3600;
    if (*rp->p == '/') {
        rp->p++;
        return parse_hms(rp, 167, &d->time_s);
    }
    return 0;
}

int cel__tz_rule_parse(const char *text, struct cel_tz_rule *out, char *why, size_t whylen)
{
    struct rule_parser rp = {text, why, whylen};
    memset(out, 0, sizeof *out);
    int32_t west;
    if (parse_abbr(&rp, out->std_abbr) || parse_hms(&rp, 24, &west))
        return -1;
    out->std_off = -west;
    if (*rp.p == '\0')
        return 0;
    if (parse_abbr(&rp, out->dst_abbr))
        return -1;
    out->has_dst = true;
    out->dst_off = out->std_off + 3600;
    if (*rp.p != ',' && *rp.p != '\0') {
        if (parse_hms(&rp, 24, &west))
            return -1;
        out->dst_off = -west;
    }
    if (*rp.p == '\0') {
        /* No dates: POSIX leaves them to the implementation; glibc and
         * tzcode use the US rules. */
        out->start = (struct cel_tz_rule_date){'M', 0, 3, 2, 0, 7200};
        out->end = (struct cel_tz_rule_date){'M', 0, 11, 1, 0, 7200};
        return 0;
    }
    if (expect(&rp, ',') || parse_date(&rp, &out->start) || expect(&rp, ',') ||
        parse_date(&rp, &out->end))
        return -1;
    if (*rp.p != '\0')
        return fail(&rp, "trailing text");
    return 0;
}

/* Day of the year (0-based) the rule date names in `year`. */
static int rule_yday(const struct cel_tz_rule_date *d, int year)
{
    bool leap = cel__days_in_month(year, 2) == 29;
    if (d->kind == 'J')
        return d->day - 1 + (leap && d->day >= 60);
    if (d->kind == 'n')
        return d->day;
    int64_t first = cel__days_from_civil(year, d->month, 1);
    int first_wday = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    int mday = 1 + (d->wday - first_wday + 7) % 7 + (d->week - 1) * 7;
    while (mday > cel__days_in_month(year, d->month))
        mday -= 7;
    return (int)(first + mday - 1 - cel__days_from_civil(year, 1, 1));
}

/* The instant of a change in `year`, whose local time is read with the
 * offset in force before it. */
static int64_t change_at(const struct cel_tz_rule_date *d, int year, int32_t off_before)
{
    int64_t day = cel__days_from_civil(year, 1, 1) + rule_yday(d, year);
    return day * 86400 + d->time_s - off_before;
}

struct change {
    int64_t at;
    bool to_dst;
};

void cel__tz_rule_span(const struct cel_tz_rule *r, int64_t t, struct cel_tz_span *out)
{
    *out = (struct cel_tz_span){INT64_MIN, INT64_MAX, r->std_off, r->std_off, false, r->std_abbr};
    if (!r->has_dst)
        return;
    /* The changes of the years around t, in time order (a stable
     * insertion sort keeps an end before the next year's start when a
     * rule such as "J1/0,J365/25" makes them meet). */
    int year, month, mday;
    cel__civil_from_days((t + r->std_off) / 86400 - ((t + r->std_off) % 86400 < 0), &year, &month,
                         &mday);
    struct change ch[6];
    int n = 0;
    for (int y = year - 1; y <= year + 1; y++) {
        ch[n++] = (struct change){change_at(&r->start, y, r->std_off), true};
        ch[n++] = (struct change){change_at(&r->end, y, r->dst_off), false};
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ch[j - 1].at > ch[j].at; j--) {
            struct change tmp = ch[j];
            ch[j] = ch[j - 1];
            ch[j - 1] = tmp;
        }
    int last = -1; /* the last change at or before t */
    for (int i = 0; i < n && ch[i].at <= t; i++)
        last = i;
    bool dst = last >= 0 ? ch[last].to_dst : !ch[0].to_dst;
    bool before = dst;
    if (last >= 0) {
        out->start = ch[last].at;
        int prev = last - 1;
        while (prev >= 0 && ch[prev].at == ch[last].at)
            prev--;
        before = prev >= 0 ? ch[prev].to_dst : !ch[0].to_dst;
    }
    if (last + 1 < n)
        out->end = ch[last + 1].at;
    out->dst = dst;
    out->off = dst ? r->dst_off : r->std_off;
    out->abbr = dst ? r->dst_abbr : r->std_abbr;
    out->prev_off = before ? r->dst_off : r->std_off;
}
