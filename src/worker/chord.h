/*
 * chord.h - what a completed chord becomes (reference/celery-protocol.md
 * 7.4): the messages of its body, sent with the header's results in
 * group_index order as the first argument, or, when a member failed or
 * was revoked, a FAILURE stored on the body's task id with Celery's
 * ChordError ("Dependency <id> raised ValueError('x')") and the body's
 * errbacks (its options.link_error) sent as one group called with the
 * body's id, as Celery's chord_error_from_stack does.
 *
 * Pure: the store thread (settle.c) does the I/O.
 */
#ifndef CEL_WORKER_CHORD_H
#define CEL_WORKER_CHORD_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/canvas.h"

struct cel_chord_outcome {
    bool failed;
    /* failed: the meta to store on body_id (free()) */
    char body_id[64];
    char *meta;
    size_t meta_len;
    /* failed: why the body's errbacks could not be planned ("" when they
     * were, or there are none); the failure is stored all the same */
    char errbacks_dropped[256];
    /* What to send (chord sizes first, then messages): the body when
     * !failed, its errbacks when failed (published with the failure) */
    struct cel_canvas_plan plan;
};

/*
 * `body` is the chord body signature (JSON), `entries` the join's
 * entries ordered by index (backend.h chord_join), `header` (NULL: none)
 * the header's saved group document, {"result": <group tuple>}, which
 * Celery saves when the header nests groups: the body then gets the
 * results in that structure ([[a, b], c], as GroupResult.join() gives
 * them) instead of the flat list in entry order. `parent_id` the
 * member that completed the chord, `root_id` its root (may be NULL).
 * Returns 0, or CEL_EINVAL / CEL_EJSON / CEL_ENOMEM with why in err;
 * release *out with cel__chord_outcome_release either way.
 */
int cel__chord_outcome(const char *body, size_t body_len, const char *entries, const char *header,
                       const char *parent_id, const char *root_id, struct cel_chord_outcome *out,
                       char *err, size_t errlen);
void cel__chord_outcome_release(struct cel_chord_outcome *out);

#endif
