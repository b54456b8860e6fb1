/*
 * revoke.c - cel_client_revoke(): the durable revoke on the broker side
 * first (revoke_add, broker.h), then Celery's broadcast on the pidbox
 * exchange, so Python workers and the celeriac workers running now learn
 * it at once (proto/control.h). A worker that misses the broadcast still
 * finds the revoke when it next reads the store (src/worker/revoke.c).
 */
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>

#include "client/client_internal.h"
#include "core/clock.h"
#include "core/sized_struct.h"
#include "proto/control.h"

#define DEFAULT_REVOKE_EXPIRES_S 10800 /* worker_revoke_expires, Celery's REVOKE_EXPIRES */

/* The first layout. Frozen: later headers only grow it. */
#define REVOKE_OPTIONS_MIN_SIZE (offsetof(cel_revoke_options, expires) + sizeof(double))

_Static_assert(offsetof(cel_revoke_options, struct_size) == 0, "struct_size comes first");
_Static_assert(CEL_NO_PADDING(cel_revoke_options, sizeof(unsigned) + sizeof(int) +
                                                      sizeof(const char *) + sizeof(double)),
               "cel_revoke_options must have no padding (sized_struct.h)");

int cel_client_revoke(cel_client *c, const char *const *ids, size_t n,
                      const cel_revoke_options *opts)
{
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    if (!ids || n == 0)
        return cel__err(&c->err, CEL_EINVAL, "no task id to revoke");
    for (size_t i = 0; i < n; i++)
        if (!ids[i] || !*ids[i])
            return cel__err(&c->err, CEL_EINVAL, "task id %zu is empty", i + 1);
    cel_revoke_options o = CEL_REVOKE_OPTIONS_INIT();
    if (opts) {
        char why[CEL_ERRBUF_SIZE];
        int rc =
            cel__sized_struct_read(&o, sizeof o, opts, REVOKE_OPTIONS_MIN_SIZE, "revoke options",
                                   "CEL_REVOKE_OPTIONS_INIT()", why, sizeof why);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "%s", why);
    }
    int signum = o.signal_name ? cel__signal_parse(o.signal_name) : SIGTERM;
    if (!signum)
        return cel__err(&c->err, CEL_EINVAL, "unknown signal '%s'", o.signal_name);
    if (o.expires < 0)
        return cel__err(&c->err, CEL_EINVAL, "revoke expiry must not be negative");
    double expires = o.expires;
    if (expires == 0) {
        expires = cel_config_get_double(c->cfg, "worker_revoke_expires");
        if (expires <= 0)
            expires = DEFAULT_REVOKE_EXPIRES_S;
    }
    int64_t keep = cel_config_get_int(c->cfg, "worker_revokes_max");
    int64_t until = cel__wall_us() + (int64_t)(expires * 1e6);

    const struct cel_broker_ops *bo = c->broker->ops;
    if (!bo->revoke_add && !bo->fanout_publish)
        return cel__err(&c->err, CEL_ENOTSUP, "the %s transport cannot revoke tasks", bo->scheme);
    if (bo->revoke_add) {
        int rc = bo->revoke_add(c->broker, ids, n, until, o.terminate != 0, signum,
                                keep > 0 ? (size_t)keep : 0);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "cannot store the revoke: %s",
                            cel__broker_errmsg(c->broker));
    }
    if (!bo->fanout_publish)
        return CEL_OK;
    char *env;
    size_t len;
    int rc = cel__control_revoke_envelope(ids, n, o.terminate != 0, signum, until, &env, &len);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot build the revoke broadcast (task ids must be UTF-8)");
    rc = bo->fanout_publish(c->broker, CEL_CONTROL_EXCHANGE, "", env, len);
    free(env);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "revoke stored, but its broadcast failed: %s",
                        cel__broker_errmsg(c->broker));
    return CEL_OK;
}
