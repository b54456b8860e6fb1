/*
 * tzif.h - the tz module's insides: a zone's in-memory form, the TZif
 * (RFC 8536) parser that builds it from a file's bytes, and the offset
 * spans the lookups and the next-run computation walk.
 */
#ifndef CEL_SCHEDULE_TZIF_H
#define CEL_SCHEDULE_TZIF_H

#include <stddef.h>
#include <stdint.h>

#include "schedule/tz.h"
#include "schedule/tz_rule.h"

struct cel_tz_type {
    int32_t off;
    bool dst;
    char abbr[16];
};

struct cel_tz {
    char *name;
    int64_t *times;   /* transitions, strictly ascending */
    uint8_t *type_of; /* the type each transition switches to */
    size_t ntimes;
    struct cel_tz_type *types; /* types[0] also holds before the first transition */
    size_t ntypes;
    bool has_rule; /* the footer's rule holds from the last transition on */
    struct cel_tz_rule rule;
};

/* Builds a zone from a TZif file's bytes. CEL_OK, CEL_ENOMEM, or
 * CEL_EPROTO with `why` filled when the bytes are not valid TZif. */
int cel__tz_parse(const unsigned char *data, size_t len, const char *name, struct cel_tz **out,
                  char *why, size_t whylen);

/* The span of the zone's time line that holds instant t (tz NULL: UTC,
 * one endless span). */
void cel__tz_span(const struct cel_tz *tz, int64_t t, struct cel_tz_span *out);

#endif
