/*
 * client.c - the producer side of celeriac/client.h: connect, send,
 * batch, purge.
 *
 * A send is one cel__envelope_write() (the same Celery v2 envelope every
 * transport carries) into the client's reused buffer, and one publish().
 * Every transport copies the bytes before publish() returns (Redis into
 * its command buffer, batched or not; SQLite into the row; memory into
 * its own message), so the buffer is free for the next send even inside
 * a batch.
 *
 * A countdown or eta is Celery's `eta` header, so whichever Celery worker
 * takes the message honours it. Only on a transport that celeriac alone
 * reads (CEL_BROKER_CAP_PRIVATE_DELAY: SQLite, memory) is it also
 * published with a due time, which saves the worker a round trip; on
 * Redis it goes straight to its queue, where a Python worker finds it
 * too, and a celeriac worker that receives it early parks it in the
 * broker's delayed set (DESIGN.md 4). Either way no worker holds future
 * tasks in memory.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "core/sized_struct.h"
#include "core/url.h"
#include "core/uuid.h"
#include "proto/envelope_writer.h"
#include "proto/message.h"

#define DEFAULT_QUEUE "celery"

/* Largest send buffer kept between sends; envelopes are a few KiB. */
#define SEND_BUF_KEEP (1024 * 1024)

/* The first layout with struct_size (celeriac 0.2). Frozen: options from
 * later headers are larger, never smaller. */
#define SEND_OPTIONS_MIN_SIZE (offsetof(cel_send_options, ignore_result) + sizeof(int))

_Static_assert(offsetof(cel_send_options, struct_size) == 0, "struct_size comes first");
_Static_assert(CEL_NO_PADDING(cel_send_options, sizeof(unsigned) + sizeof(int) +
                                                    2 * sizeof(const char *) + 7 * sizeof(double) +
                                                    4 * sizeof(int)),
               "cel_send_options must have no padding (sized_struct.h)");

cel_client *cel_client_new(const cel_config *cfg)
{
    cel_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = cfg ? cel_config_dup(cfg) : cel_config_new();
    if (!c->cfg) {
        free(c);
        return NULL;
    }
    /* An envelope no worker would accept fails here, not on the worker. */
    cel__buf_init(&c->send_buf, CEL_MESSAGE_MAX_BYTES);
    return c;
}

void cel_client_free(cel_client *c)
{
    if (!c)
        return;
    if (c->broker)
        cel__broker_close(c->broker);
    if (c->backend)
        cel__backend_close(c->backend);
    cel__buf_release(&c->send_buf);
    cel_config_free(c->cfg);
    free(c);
}

const char *cel_client_errmsg(const cel_client *c)
{
    return c ? c->err.msg : "";
}

/* The configured URL for messages, with any password hidden. */
static void redacted(const cel_client *c, const char *key, char *buf, size_t len)
{
    const char *url = cel_config_get(c->cfg, key);
    if ((!url || !*url) && strcmp(key, "result_backend") == 0)
        url = cel_config_get(c->cfg, "broker_url"); /* results share the broker's store */
    cel__url_redact(url ? url : "", buf, len);
}

static const char *default_queue(const cel_client *c)
{
    if (c->default_queue)
        return c->default_queue;
    const char *q = cel_config_get(c->cfg, "task_default_queue");
    return q && *q ? q : DEFAULT_QUEUE;
}

int cel_client_connect(cel_client *c)
{
    if (!c)
        return CEL_EINVAL;
    if (c->connected)
        return CEL_OK;
    cel__err_clear(&c->err);

    char url[CEL_ERRBUF_SIZE / 2];
    struct cel_errbuf detail = {{0}};
    int rc = cel__broker_open(NULL, c->cfg, &c->broker, &detail);
    if (rc != CEL_OK) {
        redacted(c, "broker_url", url, sizeof url);
        c->broker = NULL;
        return cel__err(&c->err, rc, "cannot open broker '%s': %s", url,
                        detail.msg[0] ? detail.msg : cel_strerror(rc));
    }

    cel__err_clear(&detail);
    rc = cel__backend_open(NULL, c->cfg, &c->backend, &detail);
    if (rc == CEL_ENORESULT) {
        /* Results disabled by configuration: sending still works, and
         * result calls say why they cannot. */
        c->backend = NULL;
        c->backend_rc = rc;
    } else if (rc != CEL_OK) {
        redacted(c, "result_backend", url, sizeof url);
        c->backend = NULL;
        cel__broker_close(c->broker);
        c->broker = NULL;
        return cel__err(&c->err, rc, "cannot open result backend '%s': %s", url,
                        detail.msg[0] ? detail.msg : cel_strerror(rc));
    }
    /* The client's config is its own copy and never changes: look the
     * queue up once instead of on every send. */
    c->default_queue = default_queue(c);
    cel__client_sent_event_configure(c);
    c->connected = true;
    return CEL_OK;
}

static int need_connection(cel_client *c)
{
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    return CEL_OK;
}

/* Each time is a finite number >= 0, and each is given one way only. */
static int check_times(cel_client *c, const cel_send_options *o)
{
    const struct {
        double v;
        const char *name;
    } t[] = {{o->countdown, "countdown"},
             {o->eta, "eta"},
             {o->expires, "expires"},
             {o->expires_at, "expires_at"},
             {o->time_limit, "time_limit"},
             {o->soft_time_limit, "soft_time_limit"},
             {o->retry_backoff, "retry_backoff"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!(t[i].v >= 0 && t[i].v < 1e12)) /* also NaN */
            return cel__err(&c->err, CEL_EINVAL, "%s must be a number of seconds >= 0", t[i].name);
    if (o->countdown > 0 && o->eta > 0)
        return cel__err(&c->err, CEL_EINVAL, "give countdown or eta, not both");
    if (o->expires > 0 && o->expires_at > 0)
        return cel__err(&c->err, CEL_EINVAL, "give expires or expires_at, not both");
    if (o->has_max_retries && o->max_retries < 0)
        return cel__err(&c->err, CEL_EINVAL, "max_retries must not be negative");
    return CEL_OK;
}

/* Wall-clock µs of the eta and expiry headers, as Celery's apply_async
 * computes them from countdown/eta and expires. */
static void set_times(struct cel_task_spec *spec, const cel_send_options *o, int64_t now_us)
{
    if (o->countdown > 0)
        spec->eta_us = now_us + (int64_t)(o->countdown * 1e6);
    else if (o->eta > 0)
        spec->eta_us = (int64_t)(o->eta * 1e6);
    if (o->expires > 0)
        spec->expires_us = now_us + (int64_t)(o->expires * 1e6);
    else if (o->expires_at > 0)
        spec->expires_us = (int64_t)(o->expires_at * 1e6);
}

int cel_client_send(cel_client *c, const char *task_name, const char *args_json,
                    const char *kwargs_json, const cel_send_options *opts, cel_result **out)
{
    if (out)
        *out = NULL;
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!task_name || !*task_name)
        return cel__err(&c->err, CEL_EINVAL, "task name is empty");
    int rc = need_connection(c);
    if (rc != CEL_OK)
        return rc;

    /* Read into our own layout: the caller may have been built against
     * another version of this header (sized_struct.h). */
    cel_send_options o = CEL_SEND_OPTIONS_INIT();
    if (opts) {
        char why[CEL_ERRBUF_SIZE];
        rc = cel__sized_struct_read(&o, sizeof o, opts, SEND_OPTIONS_MIN_SIZE, "send options",
                                    "CEL_SEND_OPTIONS_INIT()", why, sizeof why);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "%s", why);
    }
    opts = &o;
    if (opts->has_priority && (opts->priority < 0 || opts->priority > 9))
        return cel__err(&c->err, CEL_EINVAL, "priority %d is out of range 0..9", opts->priority);
    rc = check_times(c, opts);
    if (rc != CEL_OK)
        return rc;

    struct cel_task_spec spec = {0};
    spec.task = task_name;
    spec.id = opts->task_id;
    spec.args_json = args_json;
    spec.kwargs_json = kwargs_json;
    spec.queue = opts->queue && *opts->queue ? opts->queue : default_queue(c);
    spec.priority = opts->has_priority ? opts->priority : 0;
    spec.ignore_result = opts->ignore_result;
    set_times(&spec, opts, cel__wall_us());
    spec.time_limit = opts->time_limit;
    spec.soft_time_limit = opts->soft_time_limit;
    spec.has_max_retries = opts->has_max_retries != 0;
    spec.max_retries = opts->max_retries;
    spec.retry_backoff = opts->retry_backoff;
    /* See the top of the file: the due time only where celeriac alone
     * consumes; elsewhere the eta header is the whole story. */
    int64_t due_us = c->broker->ops->caps & CEL_BROKER_CAP_PRIVATE_DELAY ? spec.eta_us : 0;

    /* One buffer per client, reused: a send allocates nothing once the
     * buffer has grown to the size of its messages. */
    char id[CEL_UUID_STRLEN + 1] = "";
    char why[256] = "";
    rc = cel__envelope_write(&spec, &c->send_buf, opts->task_id ? NULL : id, why, sizeof why);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot build message for '%s': %s", task_name,
                        why[0] ? why : cel_strerror(rc));
    const char *task_id = opts->task_id ? opts->task_id : id;

    rc = c->broker->ops->publish(c->broker, spec.queue, spec.priority, due_us, task_id,
                                 cel__buf_bytes(&c->send_buf), cel__buf_size(&c->send_buf));
    if (rc == CEL_OK && c->sent_events)
        cel__client_sent_event(c, cel__buf_bytes(&c->send_buf), cel__buf_size(&c->send_buf),
                               spec.queue);
    /* A rare huge message should not pin its memory for the client's life. */
    if (c->send_buf.cap > SEND_BUF_KEEP)
        cel__buf_release(&c->send_buf);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot publish '%s' to queue '%s': %s", task_name, spec.queue,
                        cel__broker_errmsg(c->broker));
    CEL_DEBUG("client", "sent %s[%s] to %s", task_name, task_id, spec.queue);

    if (out) {
        *out = cel__result_new(c, task_id);
        if (!*out)
            return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    return CEL_OK;
}

int cel_client_begin(cel_client *c)
{
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    int rc = need_connection(c);
    if (rc != CEL_OK)
        return rc;
    if (c->batching)
        return cel__err(&c->err, CEL_ESTATE, "a batch is already open (batches do not nest)");
    if (c->broker->ops->begin) {
        rc = c->broker->ops->begin(c->broker);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "cannot begin a batch: %s", cel__broker_errmsg(c->broker));
        c->broker_batched = true;
    }
    /* Without transport support each send is published at once: still
     * correct, only not atomic. */
    c->batching = true;
    return CEL_OK;
}

int cel_client_flush(cel_client *c)
{
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!c->batching)
        return CEL_OK;
    c->batching = false;
    if (!c->broker_batched)
        return CEL_OK;
    c->broker_batched = false;
    int rc = c->broker->ops->commit(c->broker);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot flush the batch: %s", cel__broker_errmsg(c->broker));
    return CEL_OK;
}

int cel_client_result(cel_client *c, const char *task_id, cel_result **out)
{
    if (!out)
        return CEL_EINVAL;
    *out = NULL;
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!task_id || !*task_id)
        return cel__err(&c->err, CEL_EINVAL, "task id is empty");
    *out = cel__result_new(c, task_id);
    if (!*out)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    return CEL_OK;
}

int cel_client_purge(cel_client *c, const char *queue, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    int rc = need_connection(c);
    if (rc != CEL_OK)
        return rc;
    if (!queue || !*queue)
        queue = default_queue(c);
    size_t n = 0;
    rc = c->broker->ops->purge(c->broker, queue, &n);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot purge queue '%s': %s", queue,
                        cel__broker_errmsg(c->broker));
    if (removed)
        *removed = n;
    return CEL_OK;
}
