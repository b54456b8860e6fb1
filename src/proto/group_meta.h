/*
 * group_meta.h - Celery's result tuples and saved group documents
 * (reference/celery-protocol.md 6.5, 6.7).
 *
 * A result tuple is [[id, parent], null] for a task and
 * [[group_id, parent], [member tuples]] for a group; GroupResult.save()
 * stores {"result": <group tuple>} under celery-taskset-meta-<gid>.
 *
 * Ownership: json_t arguments are borrowed; returned strings are
 * borrowed from the tuple they were read from.
 */
#ifndef CEL_PROTO_GROUP_META_H
#define CEL_PROTO_GROUP_META_H

#include <jansson.h>
#include <stddef.h>

/* {"result": [[gid, null], [[[ids[0], null], null], ...]]}, the document
 * Python's GroupResult.restore() reads; NULL when out of memory. */
json_t *cel__group_meta_new(const char *group_id, const char *const *ids, size_t n);

/* The id of a result tuple; NULL when `t` is not one. */
const char *cel__result_tuple_id(const json_t *t);

/* The member tuples of a group tuple (borrowed); NULL when `t` is a
 * task's tuple or not a tuple. */
json_t *cel__result_tuple_members(const json_t *t);

#endif
