/*
 * every.c - intervals: "15m", "30s", "1h30m", "1.5h", "90" (seconds),
 * "every 15 minutes", "every minute", "every 1 hour and 30 minutes".
 */
#include <string.h>

#include "celeriac/error.h"
#include "schedule/lex.h"
#include "schedule/spec.h"

/* Longer intervals are surely a typo, and the cap keeps the arithmetic
 * far from overflow. */
#define EVERY_MAX_S (100ll * 366 * 86400)

static const struct {
    const char *word;
    int64_t seconds;
} units[] = {
    {"s", 1},          {"sec", 1},     {"secs", 1},     {"second", 1},  {"seconds", 1},
    {"m", 60},         {"min", 60},    {"mins", 60},    {"minute", 60}, {"minutes", 60},
    {"h", 3600},       {"hr", 3600},   {"hrs", 3600},   {"hour", 3600}, {"hours", 3600},
    {"d", 86400},      {"day", 86400}, {"days", 86400}, {"w", 604800},  {"week", 604800},
    {"weeks", 604800},
};

static int64_t unit_of(const char *text, const struct cel_sched_tok *t)
{
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++)
        if (cel__sched_tok_is(text, t, units[k].word))
            return units[k].seconds;
    return 0;
}

int cel__sched_read_duration(const char *text, const struct cel_sched_tok *toks, size_t *i,
                             bool allow_bare_unit, struct cel_sched_duration *d,
                             struct cel_sched_error *err)
{
    memset(d, 0, sizeof *d);
    size_t k = *i;
    d->pos = toks[k].pos;
    if (allow_bare_unit && toks[k].kind == CEL_TOK_WORD && unit_of(text, &toks[k])) {
        d->parts = 1;
        d->n = 1;
        d->whole_n = true;
        d->unit_s = d->seconds = unit_of(text, &toks[k]);
        d->len = toks[k].len;
        *i = k + 1;
        return CEL_OK;
    }
    for (;;) {
        if (d->parts > 0 && cel__sched_tok_is(text, &toks[k], "and") &&
            toks[k + 1].kind == CEL_TOK_NUM && unit_of(text, &toks[k + 2]))
            ++k;
        const struct cel_sched_tok *num = &toks[k];
        if (num->kind != CEL_TOK_NUM)
            break;
        int64_t unit = unit_of(text, &toks[k + 1]);
        size_t next = k + 2;
        if (!unit) {
            if (d->parts == 0 && toks[k + 1].kind == CEL_TOK_END) {
                unit = 1; /* a bare number is seconds */
                next = k + 1;
            } else if (d->parts == 0) {
                return CEL_OK; /* not a duration ("1st") */
            } else {
                return cel__sched_fail(err, num->pos, num->len,
                                       "'%.*s' needs a unit (s, m, h, d or w)", (int)num->len,
                                       text + num->pos);
            }
        }
        size_t end = toks[next - 1].pos + toks[next - 1].len;
        if (num->frac_digits > 6)
            return cel__sched_fail(err, num->pos, num->len, "'%.*s' has too many decimals",
                                   (int)num->len, text + num->pos);
        if (num->num > EVERY_MAX_S / unit)
            return cel__sched_fail(err, num->pos, end - num->pos, "'%.*s' is too long",
                                   (int)(end - num->pos), text + num->pos);
        int64_t scale = 1;
        for (int f = 0; f < num->frac_digits; f++)
            scale *= 10;
        int64_t scaled = (num->num * scale + num->frac) * unit;
        if (scaled % scale != 0)
            return cel__sched_fail(err, num->pos, end - num->pos,
                                   "'%.*s' is not a whole number of seconds", (int)(end - num->pos),
                                   text + num->pos);
        d->seconds += scaled / scale;
        if (d->seconds > EVERY_MAX_S)
            return cel__sched_fail(err, d->pos, end - d->pos, "'%.*s' is too long",
                                   (int)(end - d->pos), text + d->pos);
        d->parts++;
        d->n = num->num;
        d->whole_n = num->frac_digits == 0;
        d->unit_s = unit;
        d->len = end - d->pos;
        k = next;
    }
    *i = k;
    return CEL_OK;
}

static int parse_every_text(const char *text, struct cel_sched_spec *out,
                            struct cel_sched_error *err)
{
    struct cel_sched_tok toks[CEL_SCHED_TOK_MAX];
    size_t count, i = 0;
    int rc = cel__sched_lex(text, toks, CEL_SCHED_TOK_MAX, &count, err);
    if (rc)
        return rc;
    bool every = cel__sched_tok_is(text, &toks[0], "every");
    if (every)
        i++;
    if (toks[i].kind == CEL_TOK_END)
        return cel__sched_fail(err, toks[i].pos, 0, "an interval such as '15m' is missing");
    struct cel_sched_duration d;
    if ((rc = cel__sched_read_duration(text, toks, &i, every, &d, err)))
        return rc;
    if (d.parts == 0 || toks[i].kind != CEL_TOK_END) {
        const struct cel_sched_tok *t = &toks[i];
        if (d.parts == 0 && t->kind == CEL_TOK_NUM)
            t = &toks[i + 1];
        return cel__sched_fail(err, t->pos, t->len ? t->len : 1,
                               "'%.*s' is not understood in an interval (expected e.g. '15m', "
                               "'1h30m' or 'every 2 hours')",
                               (int)(t->len ? t->len : 1), text + t->pos);
    }
    if (d.seconds <= 0)
        return cel__sched_fail(err, d.pos, d.len, "'%.*s' is not a positive interval", (int)d.len,
                               text + d.pos);
    memset(out, 0, sizeof *out);
    out->kind = CEL_SCHED_INTERVAL;
    out->every_s = d.seconds;
    return CEL_OK;
}

int cel__sched_parse_every(const char *text, struct cel_sched_spec *out,
                           struct cel_sched_error *err)
{
    return cel__sched_clamp_error(text, err, parse_every_text(text, out, err));
}
