/*
 * resend.h - a received message sent again: a retry, or a task given back
 * to its queue by a worker that does not have it.
 *
 * The new envelope is the one received with some headers set, a fresh
 * delivery tag (kombu keys its unacked records by it) and the marks of
 * the old delivery ("redelivered") dropped. Every other header, property
 * and the body stay as they came, so any Celery worker, Python included,
 * can run it.
 */
#ifndef CEL_PROTO_RESEND_H
#define CEL_PROTO_RESEND_H

#include <jansson.h>
#include <stddef.h>

#include "proto/message.h"

/*
 * `set_headers` is an object of headers to set (stolen, even on failure;
 * NULL: none). Returns the envelope as JSON text (caller frees; *len set
 * when len is not NULL), or NULL when out of memory or `m` has no
 * envelope with a headers object.
 */
char *cel__message_resend(const struct cel_message *m, const char *delivery_tag,
                          json_t *set_headers, size_t *len);

#endif
