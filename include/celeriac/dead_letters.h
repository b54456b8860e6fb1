/*
 * celeriac/dead_letters.h - the messages a broker kept aside: what a
 * worker could not or would not run (a poison message that killed its
 * process too often, a message that cannot be read, a task no worker
 * registered within its delivery limit, a reject without requeue), each
 * with the reason. `celeriac dead-letters` is built on this.
 *
 *     cel_dead_letters *l;
 *     if (cel_dead_letters_list(client, NULL, 0, 50, &l) == CEL_OK) {
 *         for (size_t i = 0; i < cel_dead_letters_count(l); i++)
 *             printf("%s %s %s\n", cel_dead_letter_id(l, i),
 *                    cel_dead_letter_task_name(l, i), cel_dead_letter_reason(l, i));
 *         cel_dead_letters_free(l);
 *     }
 *
 * Entry ids are the store's (a row number on SQLite, a hash of the entry
 * on Redis), not task ids. A requeued entry goes back to the queue it
 * came from with its priority, its delivery count starting afresh.
 *
 * Ownership: a cel_dead_letters belongs to the caller; strings it returns
 * are borrowed from it until cel_dead_letters_free(). Thread safety: as
 * cel_client.
 */
#ifndef CELERIAC_DEAD_LETTERS_H
#define CELERIAC_DEAD_LETTERS_H

#include <stddef.h>
#include <stdint.h>

#include "celeriac/client.h"
#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_dead_letters cel_dead_letters;

/* Up to `max` entries, newest first, after skipping `offset`; `queue`
 * NULL for every queue. CEL_ENOTSUP when the broker keeps none. */
CEL_API int cel_dead_letters_list(cel_client *c, const char *queue, size_t offset, size_t max,
                                  cel_dead_letters **out);
/* One entry by id, as a list of one. CEL_ENOTFOUND. */
CEL_API int cel_dead_letters_get(cel_client *c, const char *id, cel_dead_letters **out);
/* Puts entry `id` back on its queue and removes it, atomically.
 * CEL_ENOTFOUND; CEL_EINVAL when it never had a queue. */
CEL_API int cel_dead_letters_requeue(cel_client *c, const char *id);
/* Removes entry `id`, or (id NULL) every entry of `queue`, or (both NULL)
 * every entry. *removed (may be NULL) gets the count. */
CEL_API int cel_dead_letters_purge(cel_client *c, const char *queue, const char *id,
                                   size_t *removed);

CEL_API size_t cel_dead_letters_count(const cel_dead_letters *l);
CEL_API const char *cel_dead_letter_id(const cel_dead_letters *l, size_t i);
CEL_API const char *cel_dead_letter_queue(const cel_dead_letters *l, size_t i);
/* NULL when the message could not be read. */
CEL_API const char *cel_dead_letter_task_id(const cel_dead_letters *l, size_t i);
CEL_API const char *cel_dead_letter_task_name(const cel_dead_letters *l, size_t i);
CEL_API const char *cel_dead_letter_reason(const cel_dead_letters *l, size_t i);
/* The envelope as it was published; *len (may be NULL) gets its size. */
CEL_API const char *cel_dead_letter_body(const cel_dead_letters *l, size_t i, size_t *len);
/* Deliveries before it was kept aside (0 where the store does not count:
 * Redis). */
CEL_API unsigned cel_dead_letter_delivery_count(const cel_dead_letters *l, size_t i);
/* When it was kept aside, Unix seconds (0 when unknown). */
CEL_API double cel_dead_letter_time(const cel_dead_letters *l, size_t i);
CEL_API void cel_dead_letters_free(cel_dead_letters *l);

#ifdef __cplusplus
}
#endif
#endif
