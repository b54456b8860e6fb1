/* spec.c - the parser dispatch, spec equality and per-run task ids. */
#include <stdio.h>
#include <string.h>

#include "celeriac/error.h"
#include "schedule/lex.h"
#include "schedule/spec.h"

int cel__sched_parse(const char *kind, const char *text, struct cel_sched_spec *out,
                     struct cel_sched_error *err)
{
    if (!kind || !text)
        return cel__sched_fail(err, 0, 0, "no schedule given");
    if (strcmp(kind, "cron") == 0)
        return cel__sched_parse_cron(text, out, err);
    if (strcmp(kind, "every") == 0)
        return cel__sched_parse_every(text, out, err);
    if (strcmp(kind, "at") == 0)
        return cel__sched_parse_at(text, out, err);
    if (strcmp(kind, "when") == 0)
        return cel__sched_parse_phrase(text, out, err);
    return cel__sched_fail(err, 0, 0,
                           "unknown schedule kind '%.32s' (expected cron, every, at "
                           "or when)",
                           kind);
}

bool cel__sched_spec_equal(const struct cel_sched_spec *a, const struct cel_sched_spec *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case CEL_SCHED_CRON: {
        const struct cel_sched_cron *x = &a->cron, *y = &b->cron;
        return x->seconds == y->seconds && x->minutes == y->minutes && x->hours == y->hours &&
               x->mdays == y->mdays && x->months == y->months && x->wdays == y->wdays &&
               x->last_mday == y->last_mday && x->mday_star == y->mday_star &&
               x->wday_star == y->wday_star;
    }
    case CEL_SCHED_INTERVAL:
        return a->every_s == b->every_s;
    case CEL_SCHED_AT: {
        const struct cel_sched_at *x = &a->at, *y = &b->at;
        return x->year == y->year && x->month == y->month && x->mday == y->mday &&
               x->hour == y->hour && x->min == y->min && x->sec == y->sec &&
               x->has_offset == y->has_offset &&
               (!x->has_offset || x->utc_offset_s == y->utc_offset_s);
    }
    case CEL_SCHED_REBOOT:
        return true;
    }
    return false;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* splitmix64's finaliser: spreads every input bit over the output. */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cel__sched_tick_id(const char *entry_name, int64_t tick_s, char out[37])
{
    unsigned char tick[8];
    for (int i = 0; i < 8; i++)
        tick[i] = (unsigned char)((uint64_t)tick_s >> (8 * i));
    const char *name = entry_name ? entry_name : "";
    /* Two passes with different seeds; the name's length goes in first so
     * ("ab", t) and ("a", t') cannot meet by concatenation. */
    uint64_t len = strlen(name);
    uint64_t h1 = fnv1a(14695981039346656037ull, &len, sizeof len);
    h1 = fnv1a(fnv1a(h1, name, len), tick, sizeof tick);
    uint64_t h2 = fnv1a(0x6a09e667f3bcc908ull, tick, sizeof tick);
    h2 = fnv1a(fnv1a(h2, name, len), &len, sizeof len);
    uint64_t hi = mix(h1 ^ mix(h2)), lo = mix(h2 + 0x9e3779b97f4a7c15ull * h1);
    unsigned char b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x80); /* version 8: custom */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}
