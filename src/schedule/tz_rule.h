/*
 * tz_rule.h - POSIX TZ strings ("GMT0BST,M3.5.0/1,M10.5.0"), the rule a
 * TZif footer gives for instants after the file's last transition.
 *
 * Internal to the tz module. Offsets are stored as UTC offsets (east
 * positive), the opposite sign of the string's.
 */
#ifndef CEL_SCHEDULE_TZ_RULE_H
#define CEL_SCHEDULE_TZ_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One end of daylight saving time: a day of the year and a local time. */
struct cel_tz_rule_date {
    char kind;      /* 'J' (Jn, 1..365, Feb 29 never counted), 'n' (0..365), 'M' */
    int day;        /* J and n forms */
    int month;      /* M form: 1..12 */
    int week;       /* M form: 1..5, 5 being the month's last */
    int wday;       /* M form: 0..6, Sunday 0 */
    int32_t time_s; /* local time of the change, -167h..167h (RFC 8536 v3) */
};

struct cel_tz_rule {
    int32_t std_off;
    char std_abbr[16];
    bool has_dst;
    int32_t dst_off;
    char dst_abbr[16];
    struct cel_tz_rule_date start; /* into DST, in standard time */
    struct cel_tz_rule_date end;   /* out of DST, in DST time */
};

/* A stretch of time with one offset: [start, end), `prev_off` being the
 * offset just before `start` (== off when nothing changes there). The
 * ends are INT64_MIN / INT64_MAX when unbounded. */
struct cel_tz_span {
    int64_t start;
    int64_t end;
    int32_t off;
    int32_t prev_off;
    bool dst;
    const char *abbr;
};

/* Parses a whole TZ string. Returns 0, or -1 with `why` filled. */
int cel__tz_rule_parse(const char *text, struct cel_tz_rule *out, char *why, size_t whylen);

/* The span of the rule's time line that holds instant t. */
void cel__tz_rule_span(const struct cel_tz_rule *r, int64_t t, struct cel_tz_span *out);

#endif
