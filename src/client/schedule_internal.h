/*
 * schedule_internal.h - what the schedule API's files share: schedule.c
 * (the entry calls) and schedule_sync.c (config sections into the store).
 */
#ifndef CEL_CLIENT_SCHEDULE_INTERNAL_H
#define CEL_CLIENT_SCHEDULE_INTERNAL_H

#include <stdbool.h>

#include "celeriac/schedule.h"
#include "client/schedule_doc.h"
#include "core/buf.h"

/* Longest document written: an entry's args are the bulk of it. */
#define CEL__SCHEDULE_DOC_MAX (1u << 20)

/* Connected, and to a broker that keeps a schedule (else CEL_ENOTSUP). */
int cel__schedule_ready(cel_client *c);

/* The configured `timezone`. */
const char *cel__schedule_default_tz(const cel_client *c);

/*
 * Writes e's store document into *doc, anchored at the creation time of
 * `old` (the entry it replaces, may be NULL) while its schedule stays the
 * same, else at now; with refuse_past, a one-off whose time has passed is
 * CEL_EINVAL. Errors go to the client's errbuf.
 */
int cel__schedule_build_doc(cel_client *c, const cel_schedule_entry *e, const char *origin,
                            const struct cel_schedule_def *old, bool refuse_past,
                            struct cel_buf *doc);

/* sched_put of a built document, the errors explained. */
int cel__schedule_put(cel_client *c, const char *name, const struct cel_buf *doc, bool enabled,
                      bool replace);

#endif
