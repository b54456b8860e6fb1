/*
 * memory.c - in-process transport: memory://name.
 *
 * All handles opened with the same name in one process share one store
 * (for tests and programs that embed a worker next to their client). The
 * semantics are the sqlite transport's: priority 9 first then FIFO, due
 * times, leases with redelivery, dead letters. Each handle has an eventfd
 * that every publish or requeue on the store signals.
 *
 * Messages live in one array in id (publish) order; operations scan it.
 * That is plenty for tests and embedding, not meant for millions of
 * queued messages. The store is freed with its last handle or
 * subscription.
 *
 * Fan-out: a store keeps its live subscriptions; a fanout_publish()
 * copies the envelope into the inbox of every subscription on that
 * exchange whose pattern matches (fanout.h), under the store lock, so
 * publishers and subscribers may be on any threads.
 *
 * Mailboxes: a store keeps its open mailboxes; mailbox_send() appends a
 * copy to the first one of that name and signals its condition variable,
 * on which mailbox_take() waits (store lock), so a reply wakes its
 * reader at once. A send to a name nobody opened is dropped. Paused
 * queues are a list of names in the store.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/dead_letter.h"
#include "broker/fanout.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/rate.h"

#define DEFAULT_LEASE_MS (120 * 1000) /* broker_visibility_timeout 0 */

struct mem_msg {
    int64_t id;
    char *queue;
    char *task_id;
    char *body;
    size_t len;
    int priority;
    int64_t visible_at;
    bool reserved;
    int delivery_count;
    char *reason;    /* dead letters only */
    int64_t dead_at; /* dead letters only: wall µs */
};

struct mem_list {
    struct mem_msg *v;
    size_t n, cap;
};

struct mem_broker;
struct cel_fanout_sub;
struct cel_mailbox;

struct mem_store {
    char *name;
    int refs; /* handles and subscriptions; under stores_mu */
    pthread_mutex_t mu;
    struct mem_list msgs; /* ascending id */
    struct mem_list dead;
    int64_t next_id;
    struct mem_broker *handles;       /* to signal on publish */
    struct cel_fanout_sub *subs;      /* live fan-out subscriptions */
    struct cel_revoke_entry *revoked; /* unordered; expired ones dropped on add */
    size_t nrevoked, caprevoked;
    struct mem_rate *rates;        /* rate-limit buckets */
    struct cel_mailbox *mailboxes; /* open ones */
    char **paused;                 /* paused queue names, unordered */
    size_t npaused;
    struct mem_store *next;
};

/* One shared rate-limit bucket, under the store lock. */
struct mem_rate {
    char *name;
    struct cel_token_bucket tb;
    struct mem_rate *next;
};

struct cel_fanout_sub {
    struct cel_fanout_inbox inbox;
    struct mem_store *store; /* holds a reference */
    char *exchange;
    char *pattern;
    char what[160];              /* for the inbox's log lines */
    struct cel_fanout_sub *next; /* in store->subs */
};

/* One envelope waiting in a mailbox. */
struct mem_reply {
    char *env;
    size_t len;
    struct mem_reply *next;
};

struct cel_mailbox {
    struct mem_store *store; /* holds a reference */
    char *name;
    struct mem_reply *head, **tail; /* FIFO, under the store lock */
    pthread_cond_t arrived;         /* signalled by send, CLOCK_MONOTONIC */
    struct cel_mailbox *next;       /* in store->mailboxes */
};

struct mem_broker {
    struct cel_broker base;
    struct mem_store *store;
    int efd;
    struct mem_broker *next; /* in store->handles */
};

static pthread_mutex_t stores_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mem_store *stores;

static void msg_free(struct mem_msg *m)
{
    free(m->queue);
    free(m->task_id);
    free(m->body);
    free(m->reason);
}

static int list_push(struct mem_list *l, const struct mem_msg *m)
{
    struct mem_msg *v = cel__array_grow(l->v, &l->cap, l->n, sizeof *v, 64);
    if (!v)
        return CEL_ENOMEM;
    l->v = v;
    l->v[l->n++] = *m;
    return CEL_OK;
}

static void list_free(struct mem_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        msg_free(&l->v[i]);
    free(l->v);
}

/* Index of message `id`, or -1 (binary search: ids only grow). */
static ptrdiff_t find_msg(const struct mem_store *s, int64_t id)
{
    size_t lo = 0, hi = s->msgs.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->msgs.v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->msgs.n && s->msgs.v[lo].id == id ? (ptrdiff_t)lo : -1;
}

static void remove_at(struct mem_list *l, size_t i)
{
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof l->v[0]);
    l->n--;
}

/* Store lock held. */
static void signal_all(struct mem_store *s)
{
    for (struct mem_broker *h = s->handles; h; h = h->next) {
        uint64_t one = 1;
        ssize_t w = write(h->efd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is already non-zero, the fd readable */
    }
}

static int mb_open(const struct cel_url *url, const cel_config *cfg, struct cel_broker **out,
                   struct cel_errbuf *err)
{
    (void)cfg;
    *out = NULL;
    const char *name = url && url->host ? url->host : "";
    struct mem_broker *h = calloc(1, sizeof *h);
    if (!h)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    h->base.ops = &cel__broker_memory;
    h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->efd < 0) {
        int e = errno;
        free(h);
        return cel__err(err, CEL_EIO, "eventfd: %s", strerror(e));
    }
    pthread_mutex_lock(&stores_mu);
    struct mem_store *s = stores;
    while (s && strcmp(s->name, name) != 0)
        s = s->next;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || !(s->name = strdup(name))) {
            free(s);
            pthread_mutex_unlock(&stores_mu);
            close(h->efd);
            free(h);
            return cel__err(err, CEL_ENOMEM, "out of memory");
        }
        pthread_mutex_init(&s->mu, NULL);
        s->next_id = 1;
        s->next = stores;
        stores = s;
    }
    s->refs++;
    pthread_mutex_lock(&s->mu);
    h->store = s;
    h->next = s->handles;
    s->handles = h;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&stores_mu);
    *out = &h->base;
    return CEL_OK;
}

/* stores_mu held: drops one reference, freeing the store with the last. */
static void store_unref(struct mem_store *s)
{
    if (--s->refs == 0) {
        for (struct mem_store **p = &stores; *p; p = &(*p)->next) {
            if (*p == s) {
                *p = s->next;
                break;
            }
        }
        list_free(&s->msgs);
        list_free(&s->dead);
        cel__revoke_entries_free(s->revoked, s->nrevoked);
        cel__strv_free(s->paused, s->npaused);
        while (s->rates) {
            struct mem_rate *r = s->rates;
            s->rates = r->next;
            free(r->name);
            free(r);
        }
        pthread_mutex_destroy(&s->mu);
        free(s->name);
        free(s);
    }
}

static void mb_close(struct cel_broker *base)
{
    struct mem_broker *h = (struct mem_broker *)base;
    if (!h)
        return;
    struct mem_store *s = h->store;
    pthread_mutex_lock(&stores_mu);
    pthread_mutex_lock(&s->mu);
    for (struct mem_broker **p = &s->handles; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    store_unref(s);
    pthread_mutex_unlock(&stores_mu);
    close(h->efd);
    free(h);
}

static int mb_publish(struct cel_broker *base, const char *queue, int priority, int64_t due_us,
                      const char *task_id, const char *body, size_t len)
{
    struct mem_broker *h = (struct mem_broker *)base;
    struct mem_store *s = h->store;
    int64_t now = cel__wall_us();
    struct mem_msg m = {0};
    m.queue = strdup(queue);
    m.task_id = task_id ? strdup(task_id) : NULL;
    m.body = malloc(len + 1);
    if (!m.queue || (task_id && !m.task_id) || !m.body) {
        msg_free(&m);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    memcpy(m.body, body, len);
    m.body[len] = '\0';
    m.len = len;
    m.priority = priority < 0 ? 0 : priority > 9 ? 9 : priority;
    m.visible_at = due_us > now ? due_us : now;
    pthread_mutex_lock(&s->mu);
    m.id = s->next_id++;
    int rc = list_push(&s->msgs, &m);
    if (rc == CEL_OK)
        signal_all(s);
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        msg_free(&m);
        return cel__err(&base->err, rc, "out of memory");
    }
    return CEL_OK;
}

static bool queue_wanted(const char *q, const char *const *queues, size_t nqueues)
{
    for (size_t i = 0; i < nqueues; i++)
        if (strcmp(q, queues[i]) == 0)
            return true;
    return false;
}

/* Better candidate: higher priority, then lower id. */
static bool better(const struct mem_msg *a, const struct mem_msg *b)
{
    return a->priority != b->priority ? a->priority > b->priority : a->id < b->id;
}

static int mb_fetch(struct cel_broker *base, const char *const *queues, size_t nqueues, size_t max,
                    int64_t lease_ms, struct cel_delivery *out, size_t *n, int64_t *next_due_us)
{
    struct mem_broker *h = (struct mem_broker *)base;
    struct mem_store *s = h->store;
    *n = 0;
    if (next_due_us)
        *next_due_us = 0;
    int64_t now = cel__wall_us();
    int64_t until = now + (lease_ms > 0 ? lease_ms : DEFAULT_LEASE_MS) * 1000;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    /* Selection by repeated best-pick: max is a prefetch window (small). */
    while (*n < max) {
        struct mem_msg *best = NULL;
        for (size_t i = 0; i < s->msgs.n; i++) {
            struct mem_msg *m = &s->msgs.v[i];
            if (m->visible_at <= now && queue_wanted(m->queue, queues, nqueues) &&
                (!best || better(m, best)))
                best = m;
        }
        if (!best)
            break;
        struct cel_delivery *d = &out[*n];
        memset(d, 0, sizeof *d);
        d->body = malloc(best->len + 1);
        d->queue = strdup(best->queue);
        if (!d->body || !d->queue) {
            cel__delivery_release(d);
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
            break;
        }
        memcpy(d->body, best->body, best->len + 1);
        d->len = best->len;
        d->tag = best->id;
        best->reserved = true;
        best->visible_at = until;
        d->delivery_count = ++best->delivery_count;
        (*n)++;
    }
    if (next_due_us) {
        for (size_t i = 0; i < s->msgs.n; i++) {
            const struct mem_msg *m = &s->msgs.v[i];
            if (m->visible_at > now && queue_wanted(m->queue, queues, nqueues) &&
                (*next_due_us == 0 || m->visible_at < *next_due_us))
                *next_due_us = m->visible_at;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int mb_ack(struct cel_broker *base, const struct cel_delivery *d)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    pthread_mutex_lock(&s->mu);
    ptrdiff_t i = find_msg(s, d->tag);
    if (i >= 0) {
        msg_free(&s->msgs.v[i]);
        remove_at(&s->msgs, (size_t)i);
    }
    pthread_mutex_unlock(&s->mu);
    return CEL_OK;
}

static int reject_at(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason, int64_t due_us)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    ptrdiff_t i = find_msg(s, d->tag);
    if (i >= 0 && requeue) {
        int64_t now = cel__wall_us();
        s->msgs.v[i].reserved = false;
        s->msgs.v[i].visible_at = due_us > now ? due_us : now;
        signal_all(s);
    } else if (i >= 0) {
        struct mem_msg m = s->msgs.v[i];
        m.reason = strdup(reason ? reason : "rejected");
        m.dead_at = cel__wall_us();
        if (!m.reason || list_push(&s->dead, &m) != CEL_OK) {
            free(m.reason);
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
        } else {
            remove_at(&s->msgs, (size_t)i);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int mb_reject(struct cel_broker *base, const struct cel_delivery *d, bool requeue,
                     const char *reason)
{
    return reject_at(base, d, requeue, reason, 0);
}

static int mb_requeue_at(struct cel_broker *base, const struct cel_delivery *d, int64_t due_us)
{
    return reject_at(base, d, true, NULL, due_us);
}

static int mb_extend(struct cel_broker *base, const struct cel_delivery *const *ds, size_t n,
                     int64_t lease_ms)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    int64_t until = cel__wall_us() + (lease_ms > 0 ? lease_ms : DEFAULT_LEASE_MS) * 1000;
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < n; k++) {
        ptrdiff_t i = find_msg(s, ds[k]->tag);
        if (i >= 0 && s->msgs.v[i].reserved)
            s->msgs.v[i].visible_at = until;
    }
    pthread_mutex_unlock(&s->mu);
    return CEL_OK;
}

static int mb_purge(struct cel_broker *base, const char *queue, size_t *removed)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    size_t kept = 0, gone = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->msgs.n; i++) {
        struct mem_msg *m = &s->msgs.v[i];
        if (!m->reserved && strcmp(m->queue, queue) == 0) {
            msg_free(m);
            gone++;
        } else {
            s->msgs.v[kept++] = *m;
        }
    }
    s->msgs.n = kept;
    pthread_mutex_unlock(&s->mu);
    if (removed)
        *removed = gone;
    return CEL_OK;
}

static int mb_length(struct cel_broker *base, const char *queue, size_t *len)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->msgs.n; i++)
        n += strcmp(s->msgs.v[i].queue, queue) == 0;
    pthread_mutex_unlock(&s->mu);
    *len = n;
    return CEL_OK;
}

static int mb_length_bands(struct cel_broker *base, const char *queue, int *prios, size_t *lens,
                           size_t max, size_t *n)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    size_t per[10] = {0};
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->msgs.n; i++) {
        const struct mem_msg *m = &s->msgs.v[i];
        if (!m->reserved && strcmp(m->queue, queue) == 0 && m->priority >= 0 && m->priority <= 9)
            per[m->priority]++;
    }
    pthread_mutex_unlock(&s->mu);
    *n = 0;
    for (int p = 0; p <= 9; p++) {
        if (!per[p])
            continue;
        if (*n < max) {
            prios[*n] = p;
            lens[*n] = per[p];
        }
        (*n)++;
    }
    return CEL_OK;
}

static int mb_wakeup_fd(struct cel_broker *base)
{
    return ((struct mem_broker *)base)->efd;
}

static void mb_drain_wakeup(struct cel_broker *base)
{
    uint64_t v;
    ssize_t r = read(((struct mem_broker *)base)->efd, &v, sizeof v);
    (void)r;
}

/* ---- fan-out ------------------------------------------------------------ */

static int mb_fanout_publish(struct cel_broker *base, const char *exchange, const char *routing_key,
                             const char *envelope, size_t len)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    size_t rklen = routing_key ? strlen(routing_key) : 0;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    for (struct cel_fanout_sub *sub = s->subs; sub; sub = sub->next) {
        if (strcmp(sub->exchange, exchange) != 0 ||
            !cel__fanout_match(sub->pattern, routing_key ? routing_key : "", rklen))
            continue;
        if (cel__fanout_inbox_push(&sub->inbox, exchange, routing_key ? routing_key : "", rklen,
                                   envelope, len) != CEL_OK)
            rc = CEL_ENOMEM;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != CEL_OK)
        return cel__err(&base->err, rc, "out of memory: a subscriber of '%s' missed a message",
                        exchange);
    return CEL_OK;
}

static void sub_free(struct cel_fanout_sub *sub)
{
    cel__fanout_inbox_release(&sub->inbox);
    free(sub->exchange);
    free(sub->pattern);
    free(sub);
}

static int mb_fanout_subscribe(struct cel_broker *base, const char *exchange, const char *pattern,
                               struct cel_fanout_sub **out)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    *out = NULL;
    struct cel_fanout_sub *sub = calloc(1, sizeof *sub);
    if (!sub)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    sub->inbox.efd = -1;
    sub->exchange = strdup(exchange);
    sub->pattern = strdup(pattern ? pattern : "#");
    if (!sub->exchange || !sub->pattern) {
        sub_free(sub);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    snprintf(sub->what, sizeof sub->what, "fan-out subscription to '%.60s' ('%.60s')", exchange,
             sub->pattern);
    int rc = cel__fanout_inbox_init(&sub->inbox, "broker.memory", sub->what, &base->err);
    if (rc != CEL_OK) {
        sub_free(sub);
        return rc;
    }
    pthread_mutex_lock(&stores_mu);
    s->refs++;
    pthread_mutex_lock(&s->mu);
    sub->store = s;
    sub->next = s->subs;
    s->subs = sub;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&stores_mu);
    *out = sub;
    return CEL_OK;
}

static int mb_fanout_poll(struct cel_fanout_sub *sub, struct cel_fanout_msg *out, size_t max,
                          size_t *n)
{
    cel__fanout_inbox_take(&sub->inbox, out, max, n);
    return CEL_OK;
}

static int mb_fanout_fd(struct cel_fanout_sub *sub)
{
    return sub->inbox.efd;
}

static void mb_fanout_close(struct cel_fanout_sub *sub)
{
    if (!sub)
        return;
    struct mem_store *s = sub->store;
    pthread_mutex_lock(&stores_mu);
    pthread_mutex_lock(&s->mu);
    for (struct cel_fanout_sub **p = &s->subs; *p; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    store_unref(s);
    pthread_mutex_unlock(&stores_mu);
    sub_free(sub);
}

/* ---- revokes ------------------------------------------------------------ */

/* Store lock held: drops expired entries, then the ones expiring first
 * while more than keep_max remain. */
static void revokes_trim(struct mem_store *s, int64_t now, size_t keep_max)
{
    size_t keep = 0;
    for (size_t i = 0; i < s->nrevoked; i++) {
        if (s->revoked[i].expires_us > now)
            s->revoked[keep++] = s->revoked[i];
        else
            free(s->revoked[i].task_id);
    }
    s->nrevoked = keep;
    while (keep_max && s->nrevoked > keep_max) {
        size_t first = 0;
        for (size_t i = 1; i < s->nrevoked; i++)
            if (s->revoked[i].expires_us < s->revoked[first].expires_us)
                first = i;
        free(s->revoked[first].task_id);
        s->revoked[first] = s->revoked[--s->nrevoked];
    }
}

/* Store lock held: stores or refreshes one id. */
static int revoke_put(struct mem_store *s, const char *id, int64_t expires_us, bool terminate,
                      int signum)
{
    struct cel_revoke_entry *e = NULL;
    for (size_t i = 0; i < s->nrevoked && !e; i++)
        if (strcmp(s->revoked[i].task_id, id) == 0)
            e = &s->revoked[i];
    if (!e) {
        struct cel_revoke_entry *v =
            cel__array_grow(s->revoked, &s->caprevoked, s->nrevoked, sizeof *v, 16);
        if (!v)
            return CEL_ENOMEM;
        s->revoked = v;
        char *copy = strdup(id);
        if (!copy)
            return CEL_ENOMEM;
        e = &s->revoked[s->nrevoked++];
        *e = (struct cel_revoke_entry){.task_id = copy};
    }
    if (expires_us > e->expires_us)
        e->expires_us = expires_us;
    e->terminate = terminate;
    e->signum = terminate ? signum : 0;
    return CEL_OK;
}

static int mb_revoke_add(struct cel_broker *base, const char *const *ids, size_t n,
                         int64_t expires_us, bool terminate, int signum, size_t keep_max)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; rc == CEL_OK && i < n; i++)
        rc = revoke_put(s, ids[i], expires_us, terminate, signum);
    revokes_trim(s, cel__wall_us(), keep_max);
    pthread_mutex_unlock(&s->mu);
    return rc == CEL_OK ? CEL_OK : cel__err(&base->err, rc, "out of memory");
}

static int mb_revoke_list(struct cel_broker *base, struct cel_revoke_entry **out, size_t *n)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    *out = NULL;
    *n = 0;
    int64_t now = cel__wall_us();
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    struct cel_revoke_entry *v = s->nrevoked ? calloc(s->nrevoked, sizeof *v) : NULL;
    if (s->nrevoked && !v)
        rc = CEL_ENOMEM;
    for (size_t i = 0; rc == CEL_OK && i < s->nrevoked; i++) {
        if (s->revoked[i].expires_us <= now)
            continue;
        v[*n] = s->revoked[i];
        v[*n].task_id = strdup(s->revoked[i].task_id);
        if (!v[*n].task_id)
            rc = CEL_ENOMEM;
        else
            (*n)++;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != CEL_OK) {
        cel__revoke_entries_free(v, *n);
        *n = 0;
        return cel__err(&base->err, rc, "out of memory");
    }
    if (*n)
        *out = v;
    else
        free(v);
    return CEL_OK;
}

/* ---- rate limits ------------------------------------------------
 * Every handle of the store shares its buckets, so two workers embedded
 * in one process share a global limit as two processes do on a file. */
/* ---- dead letters: s->dead in the order kept, listed newest first; an
 * entry's id is its message id ---- */

static ptrdiff_t find_dead(const struct mem_store *s, const char *id)
{
    char *end = NULL;
    long long v = id ? strtoll(id, &end, 10) : -1;
    if (!id || !*id || *end)
        return -1;
    for (size_t i = 0; i < s->dead.n; i++)
        if (s->dead.v[i].id == v)
            return (ptrdiff_t)i;
    return -1;
}

static int dead_copy(const struct mem_msg *m, struct cel_dead_letter *d)
{
    memset(d, 0, sizeof *d);
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)m->id);
    d->id = strdup(id);
    d->queue = strdup(m->queue);
    d->task_id = m->task_id ? strdup(m->task_id) : NULL;
    d->reason = strdup(m->reason ? m->reason : "");
    d->body = malloc(m->len + 1);
    if (d->body) {
        memcpy(d->body, m->body, m->len);
        d->body[m->len] = '\0';
    }
    d->len = m->len;
    d->delivery_count = (unsigned)m->delivery_count;
    d->created_us = m->dead_at;
    if (!d->id || !d->queue || (m->task_id && !d->task_id) || !d->reason || !d->body) {
        cel__dead_letter_release(d);
        return CEL_ENOMEM;
    }
    return CEL_OK;
}

static int mb_dead_list(struct cel_broker *base, const char *queue, size_t offset, size_t max,
                        struct cel_dead_letter **out, size_t *n)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    struct cel_dead_letter *v = NULL;
    size_t cap = 0, got = 0;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t k = s->dead.n; k-- > 0 && got < max;) {
        const struct mem_msg *m = &s->dead.v[k];
        if (queue && strcmp(queue, m->queue) != 0)
            continue;
        if (offset) {
            offset--;
            continue;
        }
        struct cel_dead_letter *grown = cel__array_grow(v, &cap, got, sizeof *grown, 16);
        if (!grown) {
            rc = CEL_ENOMEM;
            break;
        }
        v = grown;
        if ((rc = dead_copy(m, &v[got])) != CEL_OK)
            break;
        got++;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != CEL_OK) {
        cel__dead_letters_free(v, got);
        *out = NULL;
        *n = 0;
        return cel__err(&base->err, rc, "out of memory");
    }
    *out = v;
    *n = got;
    return CEL_OK;
}

static int mb_dead_get(struct cel_broker *base, const char *id, struct cel_dead_letter *out)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    ptrdiff_t i = find_dead(s, id);
    int rc = i < 0 ? CEL_ENOTFOUND : dead_copy(&s->dead.v[i], out);
    pthread_mutex_unlock(&s->mu);
    if (rc == CEL_ENOTFOUND)
        return cel__err(&base->err, rc, "no dead letter %s", id ? id : "(null)");
    return rc ? cel__err(&base->err, rc, "out of memory") : CEL_OK;
}

static int mb_dead_requeue(struct cel_broker *base, const char *id)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    ptrdiff_t i = find_dead(s, id);
    if (i < 0) {
        rc = CEL_ENOTFOUND;
    } else {
        struct mem_msg m = s->dead.v[i];
        m.reason = NULL;
        m.id = s->next_id++; /* msgs stays in id order */
        m.reserved = false;
        m.delivery_count = 0;
        m.visible_at = cel__wall_us();
        rc = list_push(&s->msgs, &m);
        if (rc == CEL_OK) {
            free(s->dead.v[i].reason);
            remove_at(&s->dead, (size_t)i);
            signal_all(s);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == CEL_ENOTFOUND)
        return cel__err(&base->err, rc, "no dead letter %s", id ? id : "(null)");
    return rc ? cel__err(&base->err, rc, "out of memory") : CEL_OK;
}

static int mb_dead_purge(struct cel_broker *base, const char *queue, const char *id,
                         size_t *removed)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    ptrdiff_t one = id ? find_dead(s, id) : -1;
    for (size_t k = s->dead.n; k-- > 0;) {
        bool match = id ? (ptrdiff_t)k == one : !queue || strcmp(queue, s->dead.v[k].queue) == 0;
        if (match) {
            msg_free(&s->dead.v[k]);
            remove_at(&s->dead, k);
            n++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (removed)
        *removed = n;
    if (id && n == 0)
        return cel__err(&base->err, CEL_ENOTFOUND, "no dead letter %s", id);
    return CEL_OK;
}

static int mb_rate_acquire(struct cel_broker *base, const char *name, double per_sec,
                           int64_t *wait_us)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    *wait_us = 0;
    int64_t now = cel__mono_us();
    pthread_mutex_lock(&s->mu);
    struct mem_rate *r = s->rates;
    while (r && strcmp(r->name, name) != 0)
        r = r->next;
    if (!r && (r = calloc(1, sizeof *r)) && !(r->name = strdup(name))) {
        free(r);
        r = NULL;
    }
    if (r && !r->tb.per_sec) {
        cel__bucket_init(&r->tb, per_sec, now);
        r->next = s->rates;
        s->rates = r;
    }
    if (r) {
        r->tb.per_sec = per_sec; /* the caller's rate, as on the other transports */
        *wait_us = cel__bucket_take(&r->tb, now);
    }
    pthread_mutex_unlock(&s->mu);
    return r ? CEL_OK : cel__err(&base->err, CEL_ENOMEM, "out of memory");
}

/* ---- mailboxes ------------------------------------------------------------ */

static void replies_free(struct mem_reply *r)
{
    while (r) {
        struct mem_reply *next = r->next;
        free(r->env);
        free(r);
        r = next;
    }
}

static int mb_mailbox_open(struct cel_broker *base, const char *name, struct cel_mailbox **out)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    *out = NULL;
    struct cel_mailbox *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    m->tail = &m->head;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->arrived, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_lock(&stores_mu);
    s->refs++;
    pthread_mutex_lock(&s->mu);
    m->store = s;
    m->next = s->mailboxes;
    s->mailboxes = m;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&stores_mu);
    *out = m;
    return CEL_OK;
}

static int mb_mailbox_take(struct cel_mailbox *m, int64_t timeout_ms, char **env, size_t *len)
{
    *env = NULL;
    *len = 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = until.tv_nsec + (timeout_ms > 0 ? timeout_ms : 0) % 1000 * 1000000;
    until.tv_sec += (timeout_ms > 0 ? timeout_ms : 0) / 1000 + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    struct mem_store *s = m->store;
    pthread_mutex_lock(&s->mu);
    int wait = 0;
    while (!m->head && timeout_ms > 0 && wait != ETIMEDOUT)
        wait = pthread_cond_timedwait(&m->arrived, &s->mu, &until);
    struct mem_reply *r = m->head;
    if (r && !(m->head = r->next))
        m->tail = &m->head;
    pthread_mutex_unlock(&s->mu);
    if (!r)
        return CEL_ETIMEDOUT;
    *env = r->env;
    *len = r->len;
    free(r);
    return CEL_OK;
}

static void mb_mailbox_close(struct cel_mailbox *m)
{
    if (!m)
        return;
    struct mem_store *s = m->store;
    pthread_mutex_lock(&stores_mu);
    pthread_mutex_lock(&s->mu);
    for (struct cel_mailbox **p = &s->mailboxes; *p; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    store_unref(s);
    pthread_mutex_unlock(&stores_mu);
    replies_free(m->head);
    pthread_cond_destroy(&m->arrived);
    free(m->name);
    free(m);
}

static int mb_mailbox_send(struct cel_broker *base, const char *name, const char *env, size_t len)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    struct mem_reply *r = malloc(sizeof *r);
    char *copy = malloc(len + 1);
    if (!r || !copy) {
        free(r);
        free(copy);
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    memcpy(copy, env, len);
    copy[len] = '\0';
    *r = (struct mem_reply){copy, len, NULL};
    pthread_mutex_lock(&s->mu);
    struct cel_mailbox *m = s->mailboxes;
    while (m && strcmp(m->name, name) != 0)
        m = m->next;
    if (m) {
        *m->tail = r;
        m->tail = &r->next;
        pthread_cond_signal(&m->arrived);
    }
    pthread_mutex_unlock(&s->mu);
    if (!m) /* nobody waits for it: dropped, as on the other transports */
        replies_free(r);
    return CEL_OK;
}

/* ---- paused queues ------------------------------------------------------- */

static int mb_queue_pause(struct cel_broker *base, const char *queue, bool paused)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    size_t i = 0;
    while (i < s->npaused && strcmp(s->paused[i], queue) != 0)
        i++;
    if (!paused && i < s->npaused) {
        free(s->paused[i]);
        s->paused[i] = s->paused[--s->npaused];
    } else if (paused && i == s->npaused) {
        char **v = realloc(s->paused, (s->npaused + 1) * sizeof *v);
        if (v)
            s->paused = v;
        if (!v || !(v[s->npaused] = strdup(queue)))
            rc = CEL_ENOMEM;
        else
            s->npaused++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc == CEL_OK ? CEL_OK : cel__err(&base->err, rc, "out of memory");
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int mb_queue_paused_list(struct cel_broker *base, char ***names, size_t *n)
{
    struct mem_store *s = ((struct mem_broker *)base)->store;
    *names = NULL;
    *n = 0;
    int rc = CEL_OK;
    pthread_mutex_lock(&s->mu);
    char **v = s->npaused ? calloc(s->npaused, sizeof *v) : NULL;
    if (s->npaused && !v)
        rc = CEL_ENOMEM;
    for (size_t i = 0; rc == CEL_OK && i < s->npaused; i++) {
        if (!(v[i] = strdup(s->paused[i])))
            rc = CEL_ENOMEM;
        else
            (*n)++;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != CEL_OK) {
        cel__strv_free(v, *n);
        *n = 0;
        return cel__err(&base->err, rc, "out of memory");
    }
    if (*n)
        qsort(v, *n, sizeof *v, cmp_name); /* the same order as the other transports */
    *names = v;
    return CEL_OK;
}

const struct cel_broker_ops cel__broker_memory = {
    .abi = CEL_BROKER_ABI,
    .default_lease_ms = DEFAULT_LEASE_MS,
    .scheme = "memory",
    .caps = CEL_BROKER_CAP_DELAYED | CEL_BROKER_CAP_PRIORITY | CEL_BROKER_CAP_VISIBILITY |
            CEL_BROKER_CAP_DEADLETTER | CEL_BROKER_CAP_PRIVATE_DELAY,
    .open = mb_open,
    .close = mb_close,
    .publish = mb_publish,
    .begin = NULL,
    .commit = NULL,
    .fetch = mb_fetch,
    .ack = mb_ack,
    .reject = mb_reject,
    .requeue_at = mb_requeue_at,
    .extend = mb_extend,
    .purge = mb_purge,
    .length = mb_length,
    .length_bands = mb_length_bands,
    .wakeup_fd = mb_wakeup_fd,
    .drain_wakeup = mb_drain_wakeup,
    .fanout_publish = mb_fanout_publish,
    .fanout_subscribe = mb_fanout_subscribe,
    .fanout_poll = mb_fanout_poll,
    .fanout_fd = mb_fanout_fd,
    .fanout_close = mb_fanout_close,
    .revoke_add = mb_revoke_add,
    .revoke_list = mb_revoke_list,
    .rate_acquire = mb_rate_acquire,
    .dead_list = mb_dead_list,
    .dead_get = mb_dead_get,
    .dead_requeue = mb_dead_requeue,
    .dead_purge = mb_dead_purge,
    .mailbox_open = mb_mailbox_open,
    .mailbox_take = mb_mailbox_take,
    .mailbox_close = mb_mailbox_close,
    .mailbox_send = mb_mailbox_send,
    .queue_pause = mb_queue_pause,
    .queue_paused_list = mb_queue_paused_list,
};
