/*
 * at.c - one-off times in ISO 8601: "2026-12-24T18:00", "2026-12-24 18:00",
 * optional ":SS", optional "Z" or "+HH:MM" / "-HH:MM" (or "+HHMM").
 * Whether the time is in the past is for the caller to decide.
 */
#include <ctype.h>
#include <string.h>

#include "celeriac/error.h"
#include "schedule/lex.h"
#include "schedule/spec.h"

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Exactly `width` digits at text[*i]; *i moves past them. */
static bool digits(const char *text, size_t *i, int width, int *out)
{
    int v = 0;
    for (int k = 0; k < width; k++) {
        if (!isdigit((unsigned char)text[*i + (size_t)k]))
            return false;
        v = v * 10 + (text[*i + (size_t)k] - '0');
    }
    *i += (size_t)width;
    *out = v;
    return true;
}

static int expect(const char *text, size_t *i, int width, int *out, const char *what,
                  struct cel_sched_error *err)
{
    size_t at = *i;
    if (digits(text, i, width, out))
        return CEL_OK;
    size_t n = 0;
    while (text[at + n] && !isspace((unsigned char)text[at + n]) && n < (size_t)width)
        n++;
    return cel__sched_fail(err, at, n ? n : 1,
                           "expected the %s (%d digits) at '%.*s' in a date-time like "
                           "'2026-12-24 18:00'",
                           what, width, (int)(n ? n : 1), text[at] ? text + at : " ");
}

static int range(int v, int lo, int hi, size_t pos, size_t len, const char *what, const char *text,
                 struct cel_sched_error *err)
{
    if (v >= lo && v <= hi)
        return CEL_OK;
    return cel__sched_fail(err, pos, len, "%s '%.*s' is out of range %d-%d", what, (int)len,
                           text + pos, lo, hi);
}

static int sep(const char *text, size_t *i, char c, struct cel_sched_error *err)
{
    if (text[*i] == c) {
        (*i)++;
        return CEL_OK;
    }
    return cel__sched_fail(err, *i, text[*i] ? 1 : 0, "expected '%c' at '%.1s'", c,
                           text[*i] ? text + *i : "");
}

static int parse_at_text(const char *text, struct cel_sched_spec *out, struct cel_sched_error *err)
{
    size_t s, e;
    cel__sched_trim(text, &s, &e);
    if (s == e)
        return cel__sched_fail(err, 0, 0, "the date-time is empty");
    struct cel_sched_at at = {0};
    size_t i = s;
    int rc;
    if ((rc = expect(text, &i, 4, &at.year, "year", err)) || (rc = sep(text, &i, '-', err)) ||
        (rc = expect(text, &i, 2, &at.month, "month", err)) || (rc = sep(text, &i, '-', err)) ||
        (rc = expect(text, &i, 2, &at.mday, "day", err)))
        return rc;
    if ((rc = range(at.month, 1, 12, s + 5, 2, "month", text, err)))
        return rc;
    if (at.year < 1970)
        return cel__sched_fail(err, s, 4, "year '%.4s' is before 1970", text + s);
    if ((rc = range(at.mday, 1, month_days(at.year, at.month), s + 8, 2, "day", text, err)))
        return rc;
    if (text[i] == 'T' || text[i] == 't')
        i++;
    else if (text[i] == ' ')
        while (text[i] == ' ')
            i++;
    else
        return cel__sched_fail(err, i, i < e ? 1 : 0,
                               "expected 'T' or a blank and a time after the date");
    size_t tpos = i;
    if ((rc = expect(text, &i, 2, &at.hour, "hour", err)) || (rc = sep(text, &i, ':', err)) ||
        (rc = expect(text, &i, 2, &at.min, "minute", err)))
        return rc;
    if (text[i] == ':' && (rc = (i++, expect(text, &i, 2, &at.sec, "second", err))))
        return rc;
    if ((rc = range(at.hour, 0, 23, tpos, 2, "hour", text, err)) ||
        (rc = range(at.min, 0, 59, tpos + 3, 2, "minute", text, err)) ||
        (rc = range(at.sec, 0, 59, tpos + 6, 2, "second", text, err)))
        return rc;
    if (text[i] == 'Z' || text[i] == 'z') {
        at.has_offset = true;
        i++;
    } else if (text[i] == '+' || text[i] == '-') {
        size_t opos = i;
        int sign = text[i++] == '-' ? -1 : 1, oh, om = 0;
        if ((rc = expect(text, &i, 2, &oh, "offset hours", err)))
            return rc;
        if (text[i] == ':')
            i++;
        if ((rc = expect(text, &i, 2, &om, "offset minutes", err)))
            return rc;
        if (oh > 14 || om > 59 || (oh == 14 && om > 0))
            return cel__sched_fail(err, opos, i - opos, "offset '%.*s' is out of range",
                                   (int)(i - opos), text + opos);
        at.has_offset = true;
        at.utc_offset_s = sign * (oh * 3600 + om * 60);
    }
    while (i < e && isspace((unsigned char)text[i]))
        i++;
    if (i != e)
        return cel__sched_fail(err, i, e - i, "unexpected '%.*s' after the date-time", (int)(e - i),
                               text + i);
    memset(out, 0, sizeof *out);
    out->kind = CEL_SCHED_AT;
    out->at = at;
    return CEL_OK;
}

int cel__sched_parse_at(const char *text, struct cel_sched_spec *out, struct cel_sched_error *err)
{
    return cel__sched_clamp_error(text, err, parse_at_text(text, out, err));
}
