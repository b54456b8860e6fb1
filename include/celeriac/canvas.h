/*
 * celeriac/canvas.h - workflows: signatures, chains, groups, chords,
 * chunks, map and starmap, sent with one call.
 *
 *     cel_sig *steps[] = {cel_sig_new("tasks.add", "[4, 4]", NULL),
 *                         cel_sig_new("tasks.add", "[5]", NULL)};
 *     cel_sig *wf = cel_chain(steps, 2);            // takes steps[0..1]
 *     cel_result *r;
 *     if (wf && cel_client_apply(c, wf, &r) == CEL_OK) {
 *         if (cel_result_wait(r, 10000) == CEL_OK)
 *             printf("%s\n", cel_result_value_json(r));   // "13"
 *         cel_result_free(r);
 *     }
 *     cel_sig_free(wf);
 *
 * A signature is Celery's signature dict, held as JSON:
 *
 *   {"task": "tasks.add", "args": [5], "kwargs": {}, "options": {...},
 *    "subtask_type": null, "immutable": false}
 *
 * and a workflow is a signature too ("celery.chain" with kwargs.tasks,
 * "celery.group" with kwargs.tasks, "celery.chord" with kwargs.header and
 * kwargs.body), exactly as Python's canvas serialises them. So
 * cel_sig_to_json() gives text that Python's `signature(json.loads(t))`
 * and `celeriac call --workflow` accept, and cel_sig_from_json() reads
 * what Python's `dict(sig)` gives.
 *
 * Ownership:
 *  - A cel_sig belongs to its creator until it is handed to a builder
 *    (cel_chain, cel_group, cel_chord) or to cel_sig_link /
 *    cel_sig_link_error. Those TAKE the signatures they are given, on
 *    success AND on failure: never use or free a signature after passing
 *    it to one. They accept NULL elements (and then fail, freeing the
 *    others), so a constructor's failure may be passed straight through:
 *
 *        cel_sig *wf = cel_chord(cel_group(sigs, n), cel_sig_new("tasks.tsum", NULL, NULL));
 *
 *    is safe even when any call in it fails (wf is then NULL).
 *  - cel_client_apply() only reads the signature: the caller still frees it.
 *  - cel_sig_to_json() returns caller-owned text (cel_free()).
 *  - Functions returning a cel_sig return NULL on bad input or when out of
 *    memory; those returning int give CEL_OK or a negative CEL_E* code.
 *    The detail of the last failure of a cel_sig function on the calling
 *    thread is in cel_sig_errmsg().
 *
 * Thread safety: a cel_sig is used by one thread at a time.
 */
#ifndef CELERIAC_CANVAS_H
#define CELERIAC_CANVAS_H

#include <stdbool.h>
#include <stddef.h>

#include "celeriac/client.h"
#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_sig cel_sig;

/* --- signatures ------------------------------------------------- */

/* One task call: `args_json` a JSON array (NULL: "[]"), `kwargs_json` a
 * JSON object (NULL: "{}"). NULL for an empty name or bad JSON. */
CEL_API cel_sig *cel_sig_new(const char *task, const char *args_json, const char *kwargs_json);
/* A deep copy; NULL when `s` is NULL or out of memory. */
CEL_API cel_sig *cel_sig_dup(const cel_sig *s);
CEL_API void cel_sig_free(cel_sig *s);
/* Why the last cel_sig function that failed on this thread failed ("" if
 * none has); success leaves it as it was. A builder handed a NULL keeps
 * the reason of the failure that produced the NULL. */
CEL_API const char *cel_sig_errmsg(void);

/*
 * Options (Celery's signature options; the last setting wins). On a
 * workflow they apply where Celery applies them: queue, priority and
 * countdown/eta to the messages it sends, task_id to its result (a
 * chain's id is its last task's, a group's is the group id).
 */
CEL_API int cel_sig_set_queue(cel_sig *s, const char *queue);
/* Seconds from the send; 0 removes it. Not with an eta. */
CEL_API int cel_sig_set_countdown(cel_sig *s, double seconds);
/* Wall-clock Unix seconds (UTC), sent as an ISO 8601 time; 0 removes it. */
CEL_API int cel_sig_set_eta(cel_sig *s, double unix_seconds);
/* 0..9; -1 removes it. */
CEL_API int cel_sig_set_priority(cel_sig *s, int priority);
/* NULL: a fresh UUID4 at each apply. */
CEL_API int cel_sig_set_task_id(cel_sig *s, const char *task_id);
/* An immutable signature gets no parent result prepended to its args
 * when it runs as a callback, a chain link or a chord body (Celery's .si()). */
CEL_API int cel_sig_set_immutable(cel_sig *s, bool immutable);
/* Any other option Celery knows (expires, time_limit, soft_time_limit,
 * routing_key...), as JSON text; NULL removes it. */
CEL_API int cel_sig_set_option(cel_sig *s, const char *key, const char *value_json);
/* Runs `callback` after `s` succeeds, with its result as the first
 * argument unless `callback` is immutable (Celery's link). Repeatable.
 * Takes `callback`, also on failure. */
CEL_API int cel_sig_link(cel_sig *s, cel_sig *callback);
/* Runs `errback` when `s` fails, with the failed task's id as the first
 * argument unless immutable (Celery's link_error). Takes `errback`. */
CEL_API int cel_sig_link_error(cel_sig *s, cel_sig *errback);

/* Borrowed from `s` until its next change. */
CEL_API const char *cel_sig_task(const cel_sig *s);
/* options.task_id, or NULL when none was set. */
CEL_API const char *cel_sig_task_id(const cel_sig *s);

/* --- workflows (each TAKES its input signatures) ----------------- */

/* sigs[0] runs first; each next one gets the previous result prepended
 * (unless immutable). A group followed by a task becomes a chord, as in
 * Celery. NULL for n == 0 or a NULL element. */
CEL_API cel_sig *cel_chain(cel_sig **sigs, size_t n);
/* The members run in parallel; the value is the list of their results in
 * order. NULL for n == 0 or a NULL element. */
CEL_API cel_sig *cel_group(cel_sig **sigs, size_t n);
/* `body` runs once every member of `header` has succeeded, with the list
 * of their results prepended. A header that is not a group is made a
 * group of one. Takes both. */
CEL_API cel_sig *cel_chord(cel_sig *header, cel_sig *body);
/* `items_json` is a JSON array of argument arrays; a group of
 * ceil(n / chunk_size) "celery.starmap" tasks, each calling `task` on
 * chunk_size items. The value is the list of chunk result lists. */
CEL_API cel_sig *cel_chunks(const char *task, const char *items_json, size_t chunk_size);
/* One "celery.map" task calling `task(item)` for each item of the JSON
 * array `items_json`; the value is the list of results. */
CEL_API cel_sig *cel_map(const char *task, const char *items_json);
/* The same with "celery.starmap": `task(*item)`, each item an array. */
CEL_API cel_sig *cel_starmap(const char *task, const char *items_json);

/* --- JSON ---------------------------------------------------------- */

/* Celery's signature dict as compact JSON; NULL when out of memory. */
CEL_API char *cel_sig_to_json(const cel_sig *s);
/*
 * Reads a signature dict, nested workflows included. Missing args,
 * kwargs, options and immutable get Celery's defaults; a missing
 * subtask_type is taken from the task name ("celery.chain", "celery.group",
 * "celery.chord"). CEL_EJSON / CEL_EINVAL with the reason in errbuf
 * (errlen bytes, may be 0) and *out NULL.
 */
CEL_API int cel_sig_from_json(const char *json, cel_sig **out, char *errbuf, size_t errlen);

/* --- sending and results ------------------------------------------- */

/*
 * Sends the whole workflow: records the sizes of its chords in the result
 * store, then publishes its first messages in one batch (inside the
 * caller's batch when cel_client_begin() is open). `out` (may be NULL)
 * receives a handle for the workflow's value:
 *  - a task, a chain, a chord, map/starmap: the result of the task whose
 *    result is the value (a chain's last task, a chord's body);
 *  - a group or chunks: a group result (below).
 * CEL_EINVAL for a malformed workflow; detail in cel_client_errmsg().
 */
CEL_API int cel_client_apply(cel_client *c, const cel_sig *sig, cel_result **out);

/*
 * Group results. cel_result_id() is the group id. cel_result_wait() waits
 * for the members in order, within one timeout for all, and ends:
 *  - when all succeeded: state SUCCESS, value the JSON list of their
 *    results in member order;
 *  - at the first member (in order) found FAILURE or REVOKED: that
 *    member's state, exception and value, without waiting for the rest
 *    (Celery's GroupResult.get(propagate=True));
 *  - CEL_ETIMEDOUT: the state is PENDING (or the state of the member it
 *    was waiting for).
 * cel_result_refresh() looks at every member without waiting: SUCCESS
 * with the list when all succeeded, the first failed member's outcome,
 * else PENDING. A group has no stored meta: cel_result_meta_json() is
 * NULL. cel_result_forget() forgets every member.
 */
/* Members of a group result; 0 for a task's result. */
CEL_API size_t cel_result_member_count(const cel_result *r);
/* Borrowed; NULL when i is out of range. */
CEL_API const char *cel_result_member_id(const cel_result *r, size_t i);

/*
 * Saved group results (Celery's GroupResult.save() / restore() /
 * delete()): the group's id and its members' ids, kept in the result
 * store for result_expires seconds (Redis: celery-taskset-meta-<gid>, so
 * Python's app.GroupResult.restore(gid) reads what cel_result_save()
 * wrote, and cel_client_restore_group() reads what Python saved). Only
 * the ids are saved: members' results stay where they are.
 *
 * cel_result_save() only reads `r`, which must be a group result
 * (CEL_EINVAL otherwise). cel_client_restore_group() gives *out a new
 * caller-owned group handle (cel_result_free()), not yet refreshed,
 * that works with cel_result_wait / refresh / member_* like the one
 * cel_client_apply() gives; CEL_ENOTFOUND when nothing is saved under
 * `group_id`, CEL_ENOTSUP for a group whose members are groups
 * themselves (a handle holds one level). cel_client_forget_group()
 * deletes the saved group, not its members' results; none saved is not
 * an error. All give CEL_ENOTSUP when the result store keeps no groups.
 */
CEL_API int cel_result_save(const cel_result *r);
CEL_API int cel_client_restore_group(cel_client *c, const char *group_id, cel_result **out);
CEL_API int cel_client_forget_group(cel_client *c, const char *group_id);

/*
 * Children: the tasks a task sent (its meta's `children`: the next link
 * of a chain, callbacks, a chord header it started), as of the last
 * refresh or wait. cel_result_child() gives a new caller-owned handle,
 * not yet refreshed; a child that is a group is a group result.
 */
CEL_API size_t cel_result_child_count(const cel_result *r);
CEL_API int cel_result_child(const cel_result *r, size_t i, cel_result **out);

/*
 * Waits until `r` and every task below it are ready, within one timeout
 * (milliseconds, negative: forever) for the whole tree. "Below" is what
 * cel_result_child() and the members of a group reach, recursively: the
 * next links of a chain, callbacks, chord headers and bodies a task
 * recorded as children, group members. Ready is Celery's: SUCCESS,
 * FAILURE or REVOKED. A failed node is ready and ends its branch: a chain
 * link that failed never sent the rest of its chain, so the rest is not
 * part of the tree and is not waited for.
 *
 * CEL_OK when the whole tree is ready, also when nodes in it failed: `r`
 * then holds its own outcome (a group's as cel_result_refresh() gives
 * it), and walking the tree with cel_result_child() / cel_client_result()
 * and cel_result_refresh() reads final states only. CEL_ETIMEDOUT when
 * some node was not ready in time; cel_client_errmsg() names it. Another
 * code for a store error or a malformed children list. `r` stays the
 * caller's; the walk keeps no handle after it returns.
 */
CEL_API int cel_result_wait_tree(cel_result *r, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
