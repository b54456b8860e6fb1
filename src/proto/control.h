/*
 * control.h - Celery's broadcast control messages ("pidbox",
 * reference/celery-protocol.md section 9), as far as revokes need them:
 * building a `revoke` request and reading one.
 *
 * A request is a kombu envelope published on the celery.pidbox fan-out
 * exchange with an empty routing key; its body (base64) is
 * {"method", "arguments", "destination", "pattern", "matcher"} and, when
 * a reply is wanted, "ticket" and "reply_to". A revoke from
 * app.control.revoke() wants none, and celeriac never replies here (the
 * rest of remote control is another part).
 */
#ifndef CEL_PROTO_CONTROL_H
#define CEL_PROTO_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CEL_CONTROL_EXCHANGE "celery.pidbox"

/* A revoke request as read from the wire. */
struct cel_control_revoke {
    char **ids; /* owned */
    size_t n;
    bool terminate;
    int signum;         /* with terminate: SIGTERM unless the request names another */
    int64_t expires_us; /* wall µs; 0 when the sender named none (Celery's) */
};

/*
 * Writes the envelope of a revoke broadcast for ids[0..n) to *out
 * (caller frees) and its length to *len. signum is sent by name
 * ("SIGTERM") as Celery's client does. The expiry travels as the extra
 * argument "celeriac_expires" (epoch seconds), which Celery's revoke
 * handler ignores (it takes **kwargs): a celeriac worker then knows the
 * revoke's own expiry, and that the sender stored it durably already.
 * CEL_ENOMEM, CEL_EINVAL.
 */
int cel__control_revoke_envelope(const char *const *ids, size_t n, bool terminate, int signum,
                                 int64_t expires_us, char **out, size_t *len);

/*
 * Reads a broadcast envelope. CEL_OK with *r filled (release it) when it
 * is a revoke addressed to `node` (no destination, or node among them,
 * or a glob/pcre pattern that matches it); CEL_ENOTFOUND when it is
 * another method or for other nodes; CEL_EPROTO when it cannot be read.
 */
int cel__control_parse_revoke(const char *env, size_t len, const char *node,
                              struct cel_control_revoke *r);
void cel__control_revoke_release(struct cel_control_revoke *r);

/* A signal by Celery's names: "SIGTERM", "TERM", "term" or "15"; 0 when
 * it names none. */
int cel__signal_parse(const char *name);
/* "SIGTERM" for 15; "SIG<n>" text in buf for one without a name here. */
const char *cel__signal_name(int signum, char *buf, size_t len);

#endif
