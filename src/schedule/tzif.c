/* tzif.c - reads TZif files (RFC 8536, versions 1 to 4); see tzif.h. */
#include "schedule/tzif.h"

#include <stdlib.h>
#include <string.h>

#include "core/errbuf.h"

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

enum { HEADER_LEN = 44 };

struct tzif_header {
    char version; /* 0, '2', '3', '4' */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static int read_header(const unsigned char *p, size_t len, struct tzif_header *h, char *why,
                       size_t whylen)
{
    if (len < HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return cel__errf(why, whylen, CEL_EPROTO, "not a TZif file");
    h->version = (char)p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->charcnt == 0 ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return cel__errf(why, whylen, CEL_EPROTO, "TZif header counts are inconsistent");
    return CEL_OK;
}

/* Bytes of the data block after a header, with `tsize`-byte times. */
static uint64_t block_len(const struct tzif_header *h, unsigned tsize)
{
    return (uint64_t)h->timecnt * (tsize + 1) + (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static int read_block(const unsigned char *p, const struct tzif_header *h, unsigned tsize,
                      struct cel_tz *tz, char *why, size_t whylen)
{
    if (h->leapcnt)
        return cel__errf(why, whylen, CEL_EPROTO, "zones with leap seconds are not supported");
    tz->ntimes = h->timecnt;
    tz->ntypes = h->typecnt;
    tz->times = calloc(h->timecnt ? h->timecnt : 1, sizeof *tz->times);
    tz->type_of = calloc(h->timecnt ? h->timecnt : 1, 1);
    tz->types = calloc(h->typecnt, sizeof *tz->types);
    if (!tz->times || !tz->type_of || !tz->types)
        return CEL_ENOMEM;
    for (uint32_t i = 0; i < h->timecnt; i++, p += tsize) {
        tz->times[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
        if (i > 0 && tz->times[i] <= tz->times[i - 1])
            return cel__errf(why, whylen, CEL_EPROTO, "TZif transitions are not ascending");
    }
    for (uint32_t i = 0; i < h->timecnt; i++, p++) {
        if (*p >= h->typecnt)
            return cel__errf(why, whylen, CEL_EPROTO, "TZif transition names no type");
        tz->type_of[i] = *p;
    }
    const unsigned char *chars = p + (size_t)h->typecnt * 6;
    for (uint32_t i = 0; i < h->typecnt; i++, p += 6) {
        int32_t off = (int32_t)be32(p);
        unsigned idx = p[5];
        if (off == INT32_MIN || off < -25 * 3600 || off > 26 * 3600 || p[4] > 1 ||
            idx >= h->charcnt || !memchr(chars + idx, '\0', h->charcnt - idx))
            return cel__errf(why, whylen, CEL_EPROTO, "TZif local time type %u is invalid", i);
        tz->types[i].off = off;
        tz->types[i].dst = p[4];
        size_t n = strlen((const char *)chars + idx);
        if (n >= sizeof tz->types[i].abbr)
            n = sizeof tz->types[i].abbr - 1;
        memcpy(tz->types[i].abbr, chars + idx, n);
    }
    return CEL_OK;
}

/* The footer: "\n" TZ-string "\n" at the very end of a v2+ file. */
static int read_footer(const unsigned char *p, size_t len, struct cel_tz *tz, char *why,
                       size_t whylen)
{
    if (len < 2 || p[0] != '\n' || p[len - 1] != '\n')
        return cel__errf(why, whylen, CEL_EPROTO, "TZif footer is missing");
    char text[128];
    size_t n = len - 2;
    if (n >= sizeof text || memchr(p + 1, '\0', n) || memchr(p + 1, '\n', n))
        return cel__errf(why, whylen, CEL_EPROTO, "TZif footer is malformed");
    if (n == 0)
        return CEL_OK;
    memcpy(text, p + 1, n);
    text[n] = '\0';
    if (cel__tz_rule_parse(text, &tz->rule, why, whylen) != 0)
        return CEL_EPROTO;
    tz->has_rule = true;
    return CEL_OK;
}

static int parse(const unsigned char *data, size_t len, struct cel_tz *tz, char *why, size_t whylen)
{
    struct tzif_header h;
    int rc = read_header(data, len, &h, why, whylen);
    if (rc)
        return rc;
    uint64_t v1_len = block_len(&h, 4);
    if (v1_len > len - HEADER_LEN)
        return cel__errf(why, whylen, CEL_EPROTO, "TZif file is truncated");
    if (h.version == '\0')
        return read_block(data + HEADER_LEN, &h, 4, tz, why, whylen);
    /* Version 2 and later repeat everything with 64-bit times, which is
     * what counts; the 32-bit block cannot say anything past 2038. */
    const unsigned char *p = data + HEADER_LEN + v1_len;
    size_t left = len - HEADER_LEN - (size_t)v1_len;
    rc = read_header(p, left, &h, why, whylen);
    if (rc)
        return rc;
    uint64_t v2_len = block_len(&h, 8);
    if (v2_len > left - HEADER_LEN)
        return cel__errf(why, whylen, CEL_EPROTO, "TZif file is truncated");
    rc = read_block(p + HEADER_LEN, &h, 8, tz, why, whylen);
    if (rc)
        return rc;
    p += HEADER_LEN + v2_len;
    return read_footer(p, left - HEADER_LEN - (size_t)v2_len, tz, why, whylen);
}

int cel__tz_parse(const unsigned char *data, size_t len, const char *name, struct cel_tz **out,
                  char *why, size_t whylen)
{
    *out = NULL;
    struct cel_tz *tz = calloc(1, sizeof *tz);
    if (!tz || !(tz->name = strdup(name ? name : ""))) {
        free(tz);
        return CEL_ENOMEM;
    }
    int rc = parse(data, len, tz, why, whylen);
    if (rc) {
        cel__tz_free(tz);
        return rc;
    }
    *out = tz;
    return CEL_OK;
}

void cel__tz_span(const struct cel_tz *tz, int64_t t, struct cel_tz_span *out)
{
    if (!tz) {
        *out = (struct cel_tz_span){INT64_MIN, INT64_MAX, 0, 0, false, "UTC"};
        return;
    }
    /* i: how many transitions are at or before t. */
    size_t lo = 0, hi = tz->ntimes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t i = lo;
    if (tz->has_rule && i == tz->ntimes) {
        cel__tz_rule_span(&tz->rule, t, out);
        if (i > 0 && out->start <= tz->times[i - 1]) {
            /* The rule's span began before the file's last transition,
             * which is then where this one starts. */
            out->start = tz->times[i - 1];
            out->prev_off = i > 1 ? tz->types[tz->type_of[i - 2]].off : tz->types[0].off;
        }
        return;
    }
    const struct cel_tz_type *ty = &tz->types[i ? tz->type_of[i - 1] : 0];
    out->start = i ? tz->times[i - 1] : INT64_MIN;
    out->end = i < tz->ntimes ? tz->times[i] : INT64_MAX;
    out->off = ty->off;
    out->dst = ty->dst;
    out->abbr = ty->abbr;
    out->prev_off = i > 1 ? tz->types[tz->type_of[i - 2]].off : tz->types[0].off;
}
