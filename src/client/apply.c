/*
 * apply.c - cel_client_apply(): a whole workflow onto the broker.
 *
 * cel__canvas_plan() decides the messages, exactly as a Python client
 * would send them; this file only does the I/O in the order Celery does
 * it: chord sizes first (a header member that finishes before its
 * chord's size is known could not tell that it completes the chord),
 * then every message of the plan in one batch, so workers see all of a
 * group or none of it.
 */
#include <stdlib.h>
#include <string.h>

#include "client/canvas_internal.h"
#include "client/client_internal.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "proto/canvas.h"

/* Records the sizes of the plan's chords before any header member runs. */
static int record_chords(cel_client *c, const struct cel_canvas_plan *p)
{
    if (p->nchords == 0)
        return CEL_OK;
    if (!c->backend)
        return cel__err(&c->err, c->backend_rc ? c->backend_rc : CEL_ENORESULT,
                        "a chord needs a result backend to join its header");
    struct cel_backend *bk = c->backend;
    if (!bk->ops->chord_size)
        return cel__err(&c->err, CEL_ENOTSUP, "the result backend '%s' cannot join chords",
                        bk->ops->scheme);
    /* The keys live as long as results do, as Celery's SETEX .s does. */
    int64_t ttl_s = (int64_t)cel_config_get_double(c->cfg, "result_expires");
    for (size_t i = 0; i < p->nchords; i++) {
        const struct cel_canvas_chord *ch = &p->chords[i];
        /* A complex header is saved before anything can join it. Stores
         * without saved groups join it flat. */
        if (ch->saved_header && bk->ops->group_save) {
            int rc =
                bk->ops->group_save(bk, ch->id, ch->saved_header, strlen(ch->saved_header), ttl_s);
            if (rc != CEL_OK)
                return cel__err(&c->err, rc, "cannot save the header of chord '%s': %s", ch->id,
                                cel__backend_errmsg(bk));
        }
        int rc = bk->ops->chord_size(bk, p->chords[i].id, p->chords[i].size, ttl_s);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "cannot record the size of chord '%s': %s",
                            p->chords[i].id, cel__backend_errmsg(bk));
    }
    return CEL_OK;
}

/* Publishes the plan's messages; the caller holds the batch open. */
static int publish_all(cel_client *c, const struct cel_canvas_plan *p)
{
    bool private_delay = c->broker->ops->caps & CEL_BROKER_CAP_PRIVATE_DELAY;
    for (size_t i = 0; i < p->nmsgs; i++) {
        const struct cel_canvas_msg *m = &p->msgs[i];
        /* As in cel_client_send(): the due time only where celeriac alone
         * consumes; elsewhere the eta header says it. */
        int64_t due = private_delay ? m->due_us : 0;
        int rc =
            c->broker->ops->publish(c->broker, m->queue, m->priority, due, m->id, m->body, m->len);
        if (rc != CEL_OK)
            return cel__err(&c->err, rc, "cannot publish task '%s' to queue '%s': %s", m->id,
                            m->queue, cel__broker_errmsg(c->broker));
        if (c->sent_events)
            cel__client_sent_event(c, m->body, m->len, m->queue);
        CEL_DEBUG("client", "sent workflow message [%s] to %s", m->id, m->queue);
    }
    return CEL_OK;
}

static int send_plan(cel_client *c, const struct cel_canvas_plan *p)
{
    int rc = record_chords(c, p);
    if (rc != CEL_OK)
        return rc;
    if (c->batching) /* the caller's batch: it flushes */
        return publish_all(c, p);
    rc = cel_client_begin(c);
    if (rc != CEL_OK)
        return rc;
    rc = publish_all(c, p);
    /* Flushed even after a failure: the batch must not stay open, and
     * what was published cannot be taken back on every transport. */
    char why[CEL_ERRBUF_SIZE];
    memcpy(why, c->err.msg, sizeof why);
    int frc = cel_client_flush(c);
    if (rc != CEL_OK) {
        cel__err_copy(&c->err, why);
        return rc;
    }
    return frc;
}

static int make_result(cel_client *c, const struct cel_canvas_plan *p, cel_result **out)
{
    if (!p->is_group)
        *out = cel__result_new(c, p->result_id);
    else {
        const char **ids = calloc(p->nmembers ? p->nmembers : 1, sizeof *ids);
        for (size_t i = 0; ids && i < p->nmembers; i++)
            ids[i] = p->member_ids[i];
        *out = ids ? cel__result_new_group(c, p->result_id, ids, p->nmembers) : NULL;
        free(ids);
    }
    return *out ? CEL_OK : cel__err(&c->err, CEL_ENOMEM, "out of memory");
}

int cel_client_apply(cel_client *c, const cel_sig *sig, cel_result **out)
{
    if (out)
        *out = NULL;
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!sig)
        return cel__err(&c->err, CEL_EINVAL, "no signature to apply");
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");

    struct cel_canvas_ctx ctx = {.default_queue = c->default_queue, .group_index = -1};
    struct cel_canvas_plan plan = {0};
    char why[CEL_ERRBUF_SIZE / 2] = "";
    int rc = cel__canvas_plan(sig->j, NULL, &ctx, &plan, why, sizeof why);
    if (rc != CEL_OK)
        return cel__err(&c->err, rc, "cannot plan workflow '%s': %s", cel_sig_task(sig),
                        why[0] ? why : cel_strerror(rc));
    rc = send_plan(c, &plan);
    if (rc == CEL_OK && out)
        rc = make_result(c, &plan, out);
    cel__canvas_plan_release(&plan);
    return rc;
}
