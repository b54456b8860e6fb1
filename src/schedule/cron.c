/*
 * cron.c - cron expressions into bit sets.
 *
 * Five fields (minute hour day-of-month month day-of-week) or six with a
 * leading seconds field. Each field is '*', a number, a name (jan..dec,
 * sun..sat, full names too), a range a-b, a step *\/n, a-b/n or a/n (a up
 * to the field's maximum), or a comma list of those; '?' is '*' in the
 * day fields, 'L' in day-of-month is the month's last day, and 7 is
 * Sunday like 0. The @aliases stand for their usual five fields.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "celeriac/error.h"
#include "core/suggest.h"
#include "schedule/lex.h"
#include "schedule/names.h"
#include "schedule/spec.h"

enum field_id { F_SEC, F_MIN, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F_COUNT };

struct field_def {
    const char *name;
    int min, max; /* values accepted in the text */
    int star_max; /* the top of '*' (day-of-week: 6, as 7 is Sunday again) */
    const char *const *names, *const *long_names;
    int nnames, name_base;
};

static const struct field_def fields[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, 59, NULL, NULL, 0, 0},
    [F_MIN] = {"minute", 0, 59, 59, NULL, NULL, 0, 0},
    [F_HOUR] = {"hour", 0, 23, 23, NULL, NULL, 0, 0},
    [F_MDAY] = {"day-of-month", 1, 31, 31, NULL, NULL, 0, 0},
    [F_MONTH] = {"month", 1, 12, 12, cel__sched_month_short, cel__sched_month_long, 12, 1},
    [F_WDAY] = {"day-of-week", 0, 7, 6, cel__sched_wday_short, cel__sched_wday_long, 7, 0},
};

struct field_out {
    uint64_t bits;
    bool star, last;
};

static bool word_eq(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* One value of a field: a number or a name, [s, s+n). */
static int parse_value(const struct field_def *f, const char *text, size_t s, size_t n, int *out,
                       struct cel_sched_error *err)
{
    const char *p = text + s;
    bool digits = true, letters = true;
    for (size_t i = 0; i < n; i++) {
        digits = digits && isdigit((unsigned char)p[i]);
        letters = letters && isalpha((unsigned char)p[i]);
    }
    if (n == 0)
        return cel__sched_fail(err, s, 1, "%s field: a value is missing at '%.1s'", f->name,
                               p[0] ? p : " ");
    if (digits) {
        if (n > 4)
            return cel__sched_fail(err, s, n, "%s field: '%.*s' is out of range %d-%d", f->name,
                                   (int)n, p, f->min, f->max);
        int v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (p[i] - '0');
        if (v < f->min || v > f->max)
            return cel__sched_fail(err, s, n, "%s field: '%.*s' is out of range %d-%d", f->name,
                                   (int)n, p, f->min, f->max);
        *out = v;
        return CEL_OK;
    }
    if (letters && f->names) {
        for (int i = 0; i < f->nnames; i++)
            if (word_eq(p, n, f->names[i]) || word_eq(p, n, f->long_names[i])) {
                *out = i + f->name_base;
                return CEL_OK;
            }
        const char *hint = cel__closest_word(p, n, f->long_names, (size_t)f->nnames);
        if (!hint)
            hint = cel__closest_word(p, n, f->names, (size_t)f->nnames);
        if (hint) {
            int i = 0;
            while (i < f->nnames && f->long_names[i] != hint && f->names[i] != hint)
                i++;
            return cel__sched_fail(err, s, n,
                                   "unknown word '%.*s' in %s field (did you mean '%s'?)", (int)n,
                                   p, f->name, f->names[i]);
        }
        return cel__sched_fail(err, s, n, "unknown word '%.*s' in %s field", (int)n, p, f->name);
    }
    if (letters)
        return cel__sched_fail(err, s, n, "%s field: '%.*s' is not a number", f->name, (int)n, p);
    return cel__sched_fail(err, s, n, "%s field: '%.*s' is not a number%s", f->name, (int)n, p,
                           f->names ? " or a name" : "");
}

static size_t value_end(const char *text, size_t i, size_t end)
{
    while (i < end && isalnum((unsigned char)text[i]))
        i++;
    return i;
}

/* One comma-separated item [s, e) of a field. */
static int parse_item(const struct field_def *f, const char *text, size_t s, size_t e,
                      struct field_out *out, struct cel_sched_error *err)
{
    if (s == e)
        return cel__sched_fail(err, s, 1, "%s field: empty item in the list", f->name);
    if (f == &fields[F_MDAY] && e - s == 1 && (text[s] == 'L' || text[s] == 'l')) {
        out->last = true;
        return CEL_OK;
    }
    int lo, hi;
    bool ranged = false;
    size_t i = s;
    if (text[i] == '*') {
        lo = f->min;
        hi = f->star_max;
        ranged = true;
        i++;
    } else {
        size_t ve = value_end(text, i, e);
        int rc = parse_value(f, text, i, ve - i, &lo, err);
        if (rc)
            return rc;
        hi = lo;
        i = ve;
        if (i < e && text[i] == '-') {
            size_t hs = i + 1, he = value_end(text, hs, e);
            if ((rc = parse_value(f, text, hs, he - hs, &hi, err)))
                return rc;
            if (hi < lo)
                return cel__sched_fail(err, s, he - s, "%s field: range '%.*s' runs backwards",
                                       f->name, (int)(he - s), text + s);
            ranged = true;
            i = he;
        }
    }
    int step = 1;
    if (i < e && text[i] == '/') {
        size_t ss = i + 1, se = value_end(text, ss, e);
        bool ok = se > ss && se - ss <= 3;
        for (size_t k = ss; ok && k < se; k++)
            ok = isdigit((unsigned char)text[k]);
        step = 0;
        for (size_t k = ss; ok && k < se; k++)
            step = step * 10 + (text[k] - '0');
        if (!ok || step < 1 || step > f->max)
            return cel__sched_fail(err, ss, se > ss ? se - ss : 1,
                                   "%s field: step '%.*s' must be a number from 1 to %d", f->name,
                                   (int)(se - ss), text + ss, f->max);
        if (!ranged)
            hi = f != &fields[F_WDAY] ? f->max : lo == 7 ? 7 : 6; /* a/n: from a to the end */
        i = se;
    }
    if (i != e)
        return cel__sched_fail(err, i, e - i, "%s field: unexpected '%.*s'", f->name, (int)(e - i),
                               text + i);
    for (int v = lo; v <= hi; v += step)
        out->bits |= 1ull << (f == &fields[F_WDAY] ? v % 7 : v);
    return CEL_OK;
}

static int parse_field(const struct field_def *f, const char *text, size_t s, size_t e,
                       struct field_out *out, struct cel_sched_error *err)
{
    memset(out, 0, sizeof *out);
    bool day = f == &fields[F_MDAY] || f == &fields[F_WDAY];
    if (e - s == 1 && (text[s] == '*' || (day && text[s] == '?'))) {
        out->star = true;
        for (int v = f->min; v <= f->star_max; v++)
            out->bits |= 1ull << v;
        return CEL_OK;
    }
    for (size_t i = s; i <= e;) {
        size_t j = i;
        while (j < e && text[j] != ',')
            j++;
        int rc = parse_item(f, text, i, j, out, err);
        if (rc)
            return rc;
        i = j + 1;
    }
    return CEL_OK;
}

static const struct {
    const char *name, *fields;
} aliases[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"}, {"@reboot", NULL},
};

static int parse_alias(const char *text, size_t s, size_t e, struct cel_sched_spec *out,
                       struct cel_sched_error *err)
{
    const char *names[sizeof aliases / sizeof aliases[0]];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        names[i] = aliases[i].name;
        if (!word_eq(text + s, e - s, aliases[i].name))
            continue;
        if (!aliases[i].fields) {
            memset(out, 0, sizeof *out);
            out->kind = CEL_SCHED_REBOOT;
            return CEL_OK;
        }
        return cel__sched_parse_cron(aliases[i].fields, out, err);
    }
    const char *hint = cel__closest_word(text + s, e - s, names, sizeof names / sizeof names[0]);
    if (hint)
        return cel__sched_fail(err, s, e - s, "unknown word '%.*s' (did you mean '%s'?)",
                               (int)(e - s), text + s, hint);
    return cel__sched_fail(err, s, e - s,
                           "unknown word '%.*s' (expected @hourly, @daily, @midnight, @weekly, "
                           "@monthly, @yearly, @annually or @reboot)",
                           (int)(e - s), text + s);
}

static int parse_cron_text(const char *text, struct cel_sched_spec *out,
                           struct cel_sched_error *err)
{
    size_t s, e;
    cel__sched_trim(text, &s, &e);
    if (s == e)
        return cel__sched_fail(err, 0, 0, "the cron expression is empty");
    if (text[s] == '@')
        return parse_alias(text, s, e, out, err);
    size_t fs[7], fe[7];
    int n = 0;
    for (size_t i = s; i < e;) {
        if (n == 7)
            break;
        fs[n] = i;
        while (i < e && !isspace((unsigned char)text[i]))
            i++;
        fe[n++] = i;
        while (i < e && isspace((unsigned char)text[i]))
            i++;
    }
    if (n != 5 && n != 6)
        return cel__sched_fail(err, n == 7 ? fs[6] : s, n == 7 ? e - fs[6] : e - s,
                               "expected 5 fields (minute hour day-of-month month day-of-week) "
                               "or 6 with seconds first, got %s%d",
                               n == 7 ? "more than " : "", n == 7 ? 6 : n);
    struct field_out v[F_COUNT];
    memset(v, 0, sizeof v);
    int first = n == 6 ? F_SEC : F_MIN;
    if (n == 5)
        v[F_SEC].bits = 1;
    for (int k = 0; k < n; k++) {
        int rc = parse_field(&fields[first + k], text, fs[k], fe[k], &v[first + k], err);
        if (rc)
            return rc;
    }
    memset(out, 0, sizeof *out);
    out->kind = CEL_SCHED_CRON;
    out->cron.seconds = v[F_SEC].bits;
    out->cron.minutes = v[F_MIN].bits;
    out->cron.hours = (uint32_t)v[F_HOUR].bits;
    out->cron.mdays = (uint32_t)v[F_MDAY].bits;
    out->cron.months = (uint16_t)v[F_MONTH].bits;
    out->cron.wdays = (uint8_t)v[F_WDAY].bits;
    out->cron.last_mday = v[F_MDAY].last;
    out->cron.mday_star = v[F_MDAY].star;
    out->cron.wday_star = v[F_WDAY].star;
    return CEL_OK;
}

int cel__sched_parse_cron(const char *text, struct cel_sched_spec *out, struct cel_sched_error *err)
{
    return cel__sched_clamp_error(text, err, parse_cron_text(text, out, err));
}
