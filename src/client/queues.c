/*
 * queues.c - queues as the broker holds them: lengths per priority band,
 * and pausing a queue on every celeriac worker (celeriac/control.h).
 *
 * A pause is stored on the broker side first (queue_pause, broker.h), so
 * a worker started later, or one that misses the broadcast, still finds
 * it; then a broadcast tells the running workers, which would otherwise
 * notice only when they next read the stored flags, and the call waits
 * for their replies: a worker replies after it stopped fetching from the
 * queue and gave back what it held from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "celeriac/control.h"
#include "client/client_internal.h"
#include "core/errbuf.h"

/* The request the running celeriac workers act on (Python workers answer
 * it with an error: they know no such command). */
#define PAUSE_METHOD "celeriac_queue_pause"
/* How long a pause waits for the running workers to confirm it. */
#define PAUSE_WAIT_S 1.0
/* More bands than any transport has (SQLite: one per priority 0..9). */
#define MAX_BANDS 16

static int check_queue(cel_client *c, const char *queue)
{
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    if (!queue || !*queue)
        return cel__err(&c->err, CEL_EINVAL, "queue name is empty");
    return CEL_OK;
}

int cel_client_queue_length(cel_client *c, const char *queue, size_t *length)
{
    if (!c || !length)
        return CEL_EINVAL;
    *length = 0;
    cel__err_clear(&c->err);
    int rc = check_queue(c, queue);
    if (rc != CEL_OK)
        return rc;
    rc = c->broker->ops->length(c->broker, queue, length);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot read the length of queue '%s': %s", queue,
                        cel__broker_errmsg(c->broker));
    return CEL_OK;
}

int cel_client_queue_bands(cel_client *c, const char *queue, cel_queue_band *out, size_t max,
                           size_t *n)
{
    if (!c || !n || (max && !out))
        return CEL_EINVAL;
    *n = 0;
    cel__err_clear(&c->err);
    int rc = check_queue(c, queue);
    if (rc != CEL_OK)
        return rc;
    const struct cel_broker_ops *bo = c->broker->ops;
    if (!bo->length_bands) {
        /* One band holding everything: still a true answer. */
        size_t len;
        rc = cel_client_queue_length(c, queue, &len);
        if (rc == CEL_OK && max)
            out[0] = (cel_queue_band){0, len};
        if (rc == CEL_OK)
            *n = 1;
        return rc;
    }
    int prios[MAX_BANDS];
    size_t lens[MAX_BANDS], got = 0;
    rc = bo->length_bands(c->broker, queue, prios, lens, MAX_BANDS, &got);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot read the bands of queue '%s': %s", queue,
                        cel__broker_errmsg(c->broker));
    if (got > MAX_BANDS)
        got = MAX_BANDS;
    for (size_t i = 0; i < got && i < max; i++)
        out[i] = (cel_queue_band){prios[i], lens[i]};
    *n = got;
    return CEL_OK;
}

int cel_client_queue_pause(cel_client *c, const char *queue, int paused)
{
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    int rc = check_queue(c, queue);
    if (rc != CEL_OK)
        return rc;
    const struct cel_broker_ops *bo = c->broker->ops;
    if (!bo->queue_pause)
        return cel__err(&c->err, CEL_ENOTSUP, "the %s transport cannot pause queues", bo->scheme);
    rc = bo->queue_pause(c->broker, queue, paused != 0);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot %s queue '%s': %s", paused ? "pause" : "resume", queue,
                        cel__broker_errmsg(c->broker));
    if (!bo->fanout_publish)
        return CEL_OK; /* workers read the stored flags on their own */
    json_t *args = json_pack("{s:s, s:b}", "queue", queue, "paused", paused != 0);
    char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;
    json_decref(args);
    if (!text)
        return cel__err(&c->err, CEL_EINVAL, "queue name must be UTF-8");
    /* Not a cast: the workers reply once they have applied the pause, so
     * what the caller publishes next cannot reach a worker that has not.
     * Without a list of the workers the call waits the whole timeout. */
    cel_control_options o = CEL_CONTROL_OPTIONS_INIT(.timeout = PAUSE_WAIT_S);
    cel_control_replies *replies = NULL;
    rc = cel_control_call(c, PAUSE_METHOD, text, &o, &replies);
    cel_control_replies_free(replies);
    free(text);
    if (rc != CEL_OK) {
        char why[CEL_ERRBUF_SIZE];
        snprintf(why, sizeof why, "%s", cel_client_errmsg(c));
        return cel__err(&c->err, rc, "queue '%s' %s, but telling the workers failed: %s", queue,
                        paused ? "paused" : "resumed", why);
    }
    return CEL_OK;
}

int cel_client_paused_queues(cel_client *c, char ***names, size_t *n)
{
    if (!c || !names || !n)
        return CEL_EINVAL;
    *names = NULL;
    *n = 0;
    cel__err_clear(&c->err);
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    const struct cel_broker_ops *bo = c->broker->ops;
    if (!bo->queue_paused_list)
        return CEL_OK; /* a transport that cannot pause has nothing paused */
    int rc = bo->queue_paused_list(c->broker, names, n);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot read the paused queues: %s",
                        cel__broker_errmsg(c->broker));
    return CEL_OK;
}

void cel_client_names_free(char **names, size_t n)
{
    cel__strv_free(names, n);
}
