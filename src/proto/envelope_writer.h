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

#include "proto/message.h"

/* A growable text buffer. Zero-initialise it; it keeps its memory between
 * writes (len is reset), so a producer that reuses one allocates only
 * while its messages grow. p is NUL-terminated after a successful write. */
struct cel_envbuf {
    char *p;
    size_t len, cap;
};

void cel__envbuf_free(struct cel_envbuf *b);

/*
 * Writes the envelope for `spec` into `out` (replacing its contents),
 * exactly as cel__message_build() documents it. Returns 0, or
 * CEL_EINVAL/CEL_EJSON/CEL_ENOMEM with a reason in err; on failure
 * out->len is 0 and the buffer stays usable.
 */
int cel__envelope_write(const struct cel_task_spec *spec, struct cel_envbuf *out, char id_out[37],
                        char *err, size_t errlen);

#endif
