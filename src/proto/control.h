/*
 * control.h - Celery's broadcast control messages ("pidbox",
 * reference/celery-protocol.md section 9): building and reading requests
 * (revoke has its own helpers) and replies.
 *
 * A request is a kombu envelope published on the celery.pidbox fan-out
 * exchange with an empty routing key; its body (base64) is
 * {"method", "arguments", "destination", "pattern", "matcher"} and, when
 * a reply is wanted, "ticket" and "reply_to". A revoke from
 * app.control.revoke() wants none. Replies go to the caller's mailbox
 * (broker.h mailbox_send) as {node: value} with the request's ticket.
 */
#ifndef CEL_PROTO_CONTROL_H
#define CEL_PROTO_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CEL_CONTROL_EXCHANGE       "celery.pidbox"
#define CEL_CONTROL_REPLY_EXCHANGE "reply.celery.pidbox"

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

/*
 * Any broadcast request, as read from the wire (section 9.2). Strings and
 * `arguments` are owned by the struct; release with
 * cel__control_request_release().
 */
struct cel_control_request {
    char *method;
    json_t *arguments;  /* object; {} when absent */
    char *ticket;       /* NULL: a cast, no reply wanted */
    char *reply_to;     /* reply_to.routing_key (the mailbox name); NULL with no ticket */
    int64_t clock;      /* the sender's Lamport clock header; 0 when absent */
    int64_t expires_us; /* wall µs from the expires header; 0: none */
};

/*
 * Reads a broadcast envelope. CEL_OK with *r filled when it is addressed
 * to `node` (the selection rule of section 9.2: destination list, else
 * pattern + matcher glob/pcre, else everyone); CEL_ENOTFOUND when it is
 * for other nodes; CEL_EPROTO when it cannot be read.
 */
int cel__control_parse_request(const char *env, size_t len, const char *node,
                               struct cel_control_request *r);
void cel__control_request_release(struct cel_control_request *r);

/*
 * Writes a request envelope for `method` with `arguments` (borrowed; NULL
 * for {}) to *out (caller frees). destination: node names (n = 0: all).
 * ticket/reply_to NULL make it a cast. timeout_s > 0 sets the expires
 * header to now + timeout_s, as Celery's client does.
 */
int cel__control_request_envelope(const char *method, const json_t *arguments,
                                  const char *const *destination, size_t ndest, const char *ticket,
                                  const char *reply_to, double timeout_s, int64_t clock, char **out,
                                  size_t *len);

/*
 * Writes the reply envelope {node: value} with headers {ticket, clock}
 * for mailbox `reply_to` (section 9.3) to *out (caller frees). value is
 * borrowed.
 */
int cel__control_reply_envelope(const char *node, const json_t *value, const char *ticket,
                                const char *reply_to, int64_t clock, char **out, size_t *len);

/* Reads a reply envelope: CEL_OK with *node (caller frees) and *value
 * (caller decrefs), when its ticket header equals `ticket`; CEL_ENOTFOUND
 * for another ticket; CEL_EPROTO when unreadable. */
int cel__control_parse_reply(const char *env, size_t len, const char *ticket, char **node,
                             json_t **value);

/* A signal by Celery's names: "SIGTERM", "TERM", "term" or "15"; 0 when
 * it names none. */
int cel__signal_parse(const char *name);
/* "SIGTERM" for 15; "SIG<n>" text in buf for one without a name here. */
const char *cel__signal_name(int signum, char *buf, size_t len);

#endif
