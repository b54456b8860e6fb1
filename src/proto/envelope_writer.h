/*
 * envelope_writer.h - the producer's fast path: a Celery v2 envelope
 * written straight into one growing buffer.
 *
 * cel__message_build() used to assemble ~40 jansson values and dump them;
 * the allocations and the generic dumper cost most of a send. This writer
 * emits the fixed parts as constant text and escapes only the strings a
 * caller supplies, so the bytes are the same (Python json.dumps style,
 * Python's key order) at a fraction of the cost. Only args/kwargs/embed
 * still go through jansson, and only when a caller gives them.
 */
#ifndef CEL_PROTO_ENVELOPE_WRITER_H
#define CEL_PROTO_ENVELOPE_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "proto/message.h"

/*
 * Writes the envelope for `spec` into `out` (replacing its contents),
 * exactly as cel__message_build() documents it, NUL-terminated. A
 * producer that reuses one buffer allocates only while its messages
 * grow. Returns 0, or CEL_EINVAL/CEL_EJSON/CEL_ENOMEM with a reason in
 * err, or CEL_ETOOBIG when the envelope would pass the buffer's cap; on
 * failure the buffer is empty and stays usable.
 */
int cel__envelope_write(const struct cel_task_spec *spec, struct cel_buf *out, char id_out[37],
                        char *err, size_t errlen);

#endif
