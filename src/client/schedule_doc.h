/*
 * schedule_doc.h - a periodic entry as the store keeps it: one JSON
 * object per entry, written by cel_schedule_add() and read back by
 * `celeriac schedule`, the dashboard and beat.
 *
 *   {"name":"reports","task":"tasks.report","args":[1],"kwargs":{},
 *    "when":"every weekday at 18:00","tz":"Europe/London","queue":null,
 *    "priority":null,"expires":0,"catch_up":"default","origin":"api",
 *    "created":1764000000}
 *
 * Exactly one of "cron", "every", "at", "when" is present. "created" (UTC
 * seconds) anchors an interval's runs (spec.h, cel__sched_next).
 */
#ifndef CEL_CLIENT_SCHEDULE_DOC_H
#define CEL_CLIENT_SCHEDULE_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "celeriac/schedule.h"
#include "core/buf.h"
#include "schedule/spec.h"
#include "schedule/tz.h"

/* An entry read back and checked. Every string is owned by the def. */
struct cel_schedule_def {
    cel_schedule_entry e;  /* pointers into the def's own strings */
    const char *kind;      /* "cron", "every", "at" or "when" */
    const char *when_text; /* the schedule as written, under `kind` */
    struct cel_sched_spec spec;
    struct cel_tz *tz; /* loaded: e.tz, else the default zone */
    char *text;        /* cel__sched_render() of spec */
    char *origin;      /* "api" or "config" */
    int64_t created_s;
    char *strings; /* storage behind e's pointers */
};

/* Writes the store document of `e` into `out` (appending), checking it
 * all first: CEL_EINVAL with why[whylen] naming the field and word.
 * origin: "api" or "config"; created_s: the interval anchor. */
int cel__schedule_doc_write(const cel_schedule_entry *e, const char *origin, int64_t created_s,
                            const char *default_tz, struct cel_buf *out, char *why, size_t whylen);

/* Reads a store document into *out (zeroed first; cleared with
 * cel__schedule_def_clear() also on failure). default_tz: the zone for an
 * entry without one (NULL: UTC). */
int cel__schedule_def_parse(const char *doc, size_t len, const char *default_tz,
                            struct cel_schedule_def *out, char *why, size_t whylen);
void cel__schedule_def_clear(struct cel_schedule_def *d);

#endif
