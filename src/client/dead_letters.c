/*
 * dead_letters.c - celeriac/dead_letters.h over the broker's dead-letter
 * ops (broker.h). The task name is read from each kept envelope's
 * headers here, once, so listings can show it.
 */
#include "celeriac/dead_letters.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "client/client_internal.h"
#include "core/json_parse.h"

struct cel_dead_letters {
    struct cel_dead_letter *v;
    char **names; /* task names, NULL where unreadable */
    size_t n;
};

static int ready(cel_client *c, bool (*has)(const struct cel_broker_ops *))
{
    if (!c)
        return CEL_EINVAL;
    cel__err_clear(&c->err);
    if (!c->connected)
        return cel__err(&c->err, CEL_ESTATE, "client is not connected (call cel_client_connect)");
    if (!has(c->broker->ops))
        return cel__err(&c->err, CEL_ENOTSUP, "the %s broker keeps no dead letters",
                        c->broker->ops->scheme);
    return CEL_OK;
}

static bool has_dead(const struct cel_broker_ops *o)
{
    return o->dead_list && o->dead_get && o->dead_requeue && o->dead_purge;
}

static char *task_name_of(const struct cel_dead_letter *d)
{
    json_t *root = cel__json_parse(d->body, d->len, 0, NULL, 0);
    const char *t = json_string_value(json_object_get(json_object_get(root, "headers"), "task"));
    char *name = t ? strdup(t) : NULL;
    json_decref(root);
    return name;
}

static int wrap(cel_client *c, struct cel_dead_letter *v, size_t n, cel_dead_letters **out)
{
    cel_dead_letters *l = calloc(1, sizeof *l);
    char **names = n ? calloc(n, sizeof *names) : NULL;
    if (!l || (n && !names)) {
        free(l);
        free(names);
        cel__dead_letters_free(v, n);
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        names[i] = task_name_of(&v[i]);
    l->v = v;
    l->n = n;
    l->names = names;
    *out = l;
    return CEL_OK;
}

static int broker_fail(cel_client *c, int rc)
{
    return cel__err(&c->err, rc, "%s", cel__broker_errmsg(c->broker));
}

int cel_dead_letters_list(cel_client *c, const char *queue, size_t offset, size_t max,
                          cel_dead_letters **out)
{
    if (out)
        *out = NULL;
    int rc = ready(c, has_dead);
    if (rc != CEL_OK)
        return rc;
    if (!out)
        return cel__err(&c->err, CEL_EINVAL, "no place for the list");
    struct cel_dead_letter *v = NULL;
    size_t n = 0;
    rc = c->broker->ops->dead_list(c->broker, queue, offset, max, &v, &n);
    if (rc != CEL_OK)
        return broker_fail(c, rc);
    return wrap(c, v, n, out);
}

int cel_dead_letters_get(cel_client *c, const char *id, cel_dead_letters **out)
{
    if (out)
        *out = NULL;
    int rc = ready(c, has_dead);
    if (rc != CEL_OK)
        return rc;
    if (!out || !id || !*id)
        return cel__err(&c->err, CEL_EINVAL, "no dead-letter id");
    struct cel_dead_letter *d = calloc(1, sizeof *d);
    if (!d)
        return cel__err(&c->err, CEL_ENOMEM, "out of memory");
    rc = c->broker->ops->dead_get(c->broker, id, d);
    if (rc != CEL_OK) {
        free(d);
        return broker_fail(c, rc);
    }
    return wrap(c, d, 1, out);
}

int cel_dead_letters_requeue(cel_client *c, const char *id)
{
    int rc = ready(c, has_dead);
    if (rc != CEL_OK)
        return rc;
    if (!id || !*id)
        return cel__err(&c->err, CEL_EINVAL, "no dead-letter id");
    rc = c->broker->ops->dead_requeue(c->broker, id);
    return rc == CEL_OK ? CEL_OK : broker_fail(c, rc);
}

int cel_dead_letters_purge(cel_client *c, const char *queue, const char *id, size_t *removed)
{
    if (removed)
        *removed = 0;
    int rc = ready(c, has_dead);
    if (rc != CEL_OK)
        return rc;
    rc = c->broker->ops->dead_purge(c->broker, queue, id, removed);
    return rc == CEL_OK ? CEL_OK : broker_fail(c, rc);
}

size_t cel_dead_letters_count(const cel_dead_letters *l)
{
    return l ? l->n : 0;
}

static const struct cel_dead_letter *at(const cel_dead_letters *l, size_t i)
{
    return l && i < l->n ? &l->v[i] : NULL;
}

const char *cel_dead_letter_id(const cel_dead_letters *l, size_t i)
{
    const struct cel_dead_letter *d = at(l, i);
    return d ? d->id : NULL;
}

const char *cel_dead_letter_queue(const cel_dead_letters *l, size_t i)
{
    const struct cel_dead_letter *d = at(l, i);
    return d ? d->queue : NULL;
}

const char *cel_dead_letter_task_id(const cel_dead_letters *l, size_t i)
{
    const struct cel_dead_letter *d = at(l, i);
    return d ? d->task_id : NULL;
}

const char *cel_dead_letter_task_name(const cel_dead_letters *l, size_t i)
{
    return at(l, i) ? l->names[i] : NULL;
}

const char *cel_dead_letter_reason(const cel_dead_letters *l, size_t i)
{
    const struct cel_dead_letter *d = at(l, i);
    return d ? d->reason : NULL;
}

const char *cel_dead_letter_body(const cel_dead_letters *l, size_t i, size_t *len)
{
    const struct cel_dead_letter *d = at(l, i);
    if (len)
        *len = d ? d->len : 0;
    return d ? d->body : NULL;
}

unsigned cel_dead_letter_delivery_count(const cel_dead_letters *l, size_t i)
{
    const struct cel_dead_letter *d = at(l, i);
    return d ? d->delivery_count : 0;
}

double cel_dead_letter_time(const cel_dead_letters *l, size_t i)
{
    const struct cel_dead_letter *d = at(l, i);
    return d ? (double)d->created_us / 1e6 : 0;
}

void cel_dead_letters_free(cel_dead_letters *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    cel__dead_letters_free(l->v, l->n);
    free(l);
}
