/*
 * dead_letter.h - helpers the transports' dead-letter ops share
 * (broker.h: dead_list, dead_get, dead_requeue, dead_purge).
 */
#ifndef CEL_BROKER_DEAD_LETTER_H
#define CEL_BROKER_DEAD_LETTER_H

#include <stddef.h>

#include "broker/broker.h"

/* From a kept envelope: its headers.id (caller frees; NULL when it has
 * none or does not parse) and properties.priority (0 when absent), so a
 * requeued message goes back to the priority it was sent with. Either
 * pointer may be NULL. */
void cel__dead_envelope_fields(const char *env, size_t len, char **task_id, int *priority);

#endif
