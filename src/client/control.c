/*
 * control.c - cel_control_call(): Celery's broadcast remote control from
 * the client side (reference/celery-protocol.md 9.4).
 *
 * A call opens a reply mailbox under a fresh name (Celery's `oid`),
 * publishes the request on the celery.pidbox fan-out exchange with a
 * fresh ticket, and reads the mailbox until the timeout or the reply
 * limit. Replies carrying another ticket are dropped: the mailbox is
 * private to this call, so they can only be late replies to nothing.
 * The mailbox is opened before the request goes out, or a fast worker's
 * reply would find no binding and be dropped (kombu's rule, which the
 * transports follow).
 *
 * A cast publishes the request without ticket or reply_to: workers act
 * and answer nothing.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "celeriac/control.h"
#include "client/client_internal.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "core/sized_struct.h"
#include "core/uuid.h"
#include "proto/control.h"

#define DEFAULT_TIMEOUT_S 1.0 /* Celery's CLI default */
/* A timeout above this is a mistake, not a wish (a day). */
#define MAX_TIMEOUT_S 86400.0

/* The first layout. Frozen: later headers only grow it. */
#define CONTROL_OPTIONS_MIN_SIZE (offsetof(cel_control_options, limit) + sizeof(size_t))

_Static_assert(offsetof(cel_control_options, struct_size) == 0, "struct_size comes first");
_Static_assert(CEL_NO_PADDING(cel_control_options, sizeof(unsigned) + sizeof(int) + sizeof(double) +
                                                       sizeof(const char *) + 2 * sizeof(size_t)),
               "cel_control_options must have no padding (sized_struct.h)");

struct cel_control_replies {
    char **nodes; /* owned */
    char **json;  /* owned, compact JSON text */
    size_t n, cap;
};

size_t cel_control_replies_count(const cel_control_replies *r)
{
    return r ? r->n : 0;
}

const char *cel_control_reply_node(const cel_control_replies *r, size_t i)
{
    return r && i < r->n ? r->nodes[i] : NULL;
}

const char *cel_control_reply_json(const cel_control_replies *r, size_t i)
{
    return r && i < r->n ? r->json[i] : NULL;
}

void cel_control_replies_free(cel_control_replies *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->nodes[i]);
        free(r->json[i]);
    }
    free(r->nodes);
    free(r->json);
    free(r);
}

/* Takes `node` (stolen) and `value` (borrowed, dumped). */
static int replies_add(struct cel_control_replies *r, char *node, const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        free(node);
        return CEL_ENOMEM;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        char **nodes = realloc(r->nodes, cap * sizeof *nodes);
        if (nodes)
            r->nodes = nodes;
        char **json = nodes ? realloc(r->json, cap * sizeof *json) : NULL;
        if (!json) {
            free(node);
            free(text);
            return CEL_ENOMEM;
        }
        r->json = json;
        r->cap = cap;
    }
    r->nodes[r->n] = node;
    r->json[r->n] = text;
    r->n++;
    return CEL_OK;
}

static int read_options(cel_client *c, const cel_control_options *opts, cel_control_options *o)
{
    *o = (cel_control_options)CEL_CONTROL_OPTIONS_INIT();
    if (opts) {
        char why[CEL_ERRBUF_SIZE];
        int rc =
            cel__sized_struct_read(o, sizeof *o, opts, CONTROL_OPTIONS_MIN_SIZE, "control options",
                                   "CEL_CONTROL_OPTIONS_INIT()", why, sizeof why);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "%s", why);
    }
    if (!(o->timeout >= 0 && o->timeout <= MAX_TIMEOUT_S)) /* also NaN */
        return cel__err(&c->err, CEL_EINVAL, "timeout must be between 0 and %.0f seconds",
                        MAX_TIMEOUT_S);
    if (o->timeout == 0)
        o->timeout = DEFAULT_TIMEOUT_S;
    if (o->ndestination && !o->destination)
        return cel__err(&c->err, CEL_EINVAL, "ndestination without destination");
    for (size_t i = 0; i < o->ndestination; i++)
        if (!o->destination[i] || !*o->destination[i])
            return cel__err(&c->err, CEL_EINVAL, "destination %zu is empty", i + 1);
    /* With named nodes, stop once each has answered (Celery's rule). */
    if (o->limit == 0)
        o->limit = o->ndestination;
    return CEL_OK;
}

static int parse_arguments(cel_client *c, const char *arguments_json, json_t **out)
{
    *out = NULL;
    if (!arguments_json || !*arguments_json) {
        *out = json_object();
        return *out ? CEL_OK : cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    json_error_t jerr;
    json_t *v = json_loads(arguments_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return cel__err(&c->err, CEL_EINVAL, "arguments are not JSON: %s", jerr.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return cel__err(&c->err, CEL_EINVAL, "arguments must be a JSON object");
    }
    *out = v;
    return CEL_OK;
}

/* Reads the mailbox until the deadline or `limit` replies (0: none). */
static int collect(cel_client *c, struct cel_mailbox *m, const char *ticket, double timeout_s,
                   size_t limit, struct cel_control_replies *r)
{
    const struct cel_broker_ops *bo = c->broker->ops;
    int64_t deadline = cel__mono_ms() + (int64_t)(timeout_s * 1000.0 + 0.5);
    for (;;) {
        if (limit && r->n >= limit)
            return CEL_OK;
        int64_t left = deadline - cel__mono_ms();
        if (left <= 0)
            return CEL_OK;
        char *env = NULL;
        size_t len = 0;
        int rc = bo->mailbox_take(m, left, &env, &len);
        if (rc == CEL_ETIMEDOUT)
            return CEL_OK;
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "cannot read replies: %s", cel__broker_errmsg(c->broker));
        char *node = NULL;
        json_t *value = NULL;
        rc = cel__control_parse_reply(env, len, ticket, &node, &value);
        free(env);
        if (rc == CEL_ENOTFOUND)
            continue;
        if (rc != CEL_OK) {
            CEL_DEBUG("client", "dropping an unreadable control reply (%s)", cel_err_name(rc));
            continue;
        }
        rc = replies_add(r, node, value);
        json_decref(value);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "out of memory");
    }
}

int cel_control_call(cel_client *c, const char *method, const char *arguments_json,
                     const cel_control_options *opts, cel_control_replies **out)
{
    if (out)
        *out = NULL;
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    if (!method || !*method)
        return cel__err(&c->err, CEL_EINVAL, "no control method given");
    cel_control_options o;
    int rc = read_options(c, opts, &o);
    if (rc != CEL_OK)
        return rc;
    if (!o.cast && !out)
        return cel__err(&c->err, CEL_EINVAL, "a call that waits for replies needs `out`");
    const struct cel_broker_ops *bo = c->broker->ops;
    if (!bo->fanout_publish)
        return cel__err(&c->err, CEL_ENOTSUP, "the %s transport has no broadcast", bo->scheme);
    if (!o.cast && !(bo->mailbox_open && bo->mailbox_take && bo->mailbox_close))
        return cel__err(&c->err, CEL_ENOTSUP, "the %s transport cannot receive replies",
                        bo->scheme);

    json_t *args;
    rc = parse_arguments(c, arguments_json, &args);
    if (rc != CEL_OK)
        return rc;
    struct cel_control_replies *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(args);
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }

    char oid[CEL_UUID_STRLEN + 1], ticket[CEL_UUID_STRLEN + 1];
    cel__uuid4(oid);
    cel__uuid4(ticket);
    struct cel_mailbox *m = NULL;
    if (!o.cast) {
        rc = bo->mailbox_open(c->broker, oid, &m);
        if (rc != CEL_OK) {
            rc = cel__err(&c->err, rc, "cannot open a reply mailbox: %s",
                          cel__broker_errmsg(c->broker));
            goto out;
        }
    }
    char *env = NULL;
    size_t len = 0;
    rc = cel__control_request_envelope(method, args, o.destination, o.ndestination,
                                       o.cast ? NULL : ticket, o.cast ? NULL : oid, o.timeout,
                                       cel__lamport_forward(&c->clock), &env, &len);
    if (rc != CEL_OK) {
        rc = cel__err(&c->err, rc, "cannot build the '%s' request", method);
        goto out;
    }
    rc = bo->fanout_publish(c->broker, CEL_CONTROL_EXCHANGE, "", env, len);
    free(env);
    if (rc != CEL_OK) {
        rc = cel__err(&c->err, rc, "cannot broadcast '%s': %s", method,
                      cel__broker_errmsg(c->broker));
        goto out;
    }
    if (!o.cast)
        rc = collect(c, m, ticket, o.timeout, o.limit, r);

out:
    if (m)
        bo->mailbox_close(m);
    json_decref(args);
    if (rc == CEL_OK && out) {
        *out = r;
        return CEL_OK;
    }
    cel_control_replies_free(r);
    return rc;
}
