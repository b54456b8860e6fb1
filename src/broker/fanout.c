/* fanout.c - see fanout.h. */
#include "broker/fanout.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"

static bool is_wild(char c)
{
    return c == '*' || c == '#';
}

bool cel__fanout_match(const char *p, const char *rk, size_t rklen)
{
    /* Greedy glob with one backtrack point: the last wildcard seen takes
     * one more character whenever the rest fails to match. Linear in
     * practice, O(len(p) * rklen) at worst, on short inputs. */
    const char *star = NULL;
    size_t i = 0, star_i = 0;
    while (i < rklen) {
        if (is_wild(*p)) {
            star = ++p;
            star_i = i;
        } else if (*p && *p == rk[i]) {
            p++;
            i++;
        } else if (star) {
            p = star;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (is_wild(*p))
        p++;
    return *p == '\0';
}

int cel__fanout_inbox_init(struct cel_fanout_inbox *in, const char *comp, const char *what,
                           struct cel_errbuf *err)
{
    memset(in, 0, sizeof *in);
    in->comp = comp;
    in->what = what;
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->efd < 0)
        return cel__err(err, CEL_EIO, "eventfd: %s", strerror(errno));
    pthread_mutex_init(&in->mu, NULL);
    return CEL_OK;
}

void cel__fanout_inbox_release(struct cel_fanout_inbox *in)
{
    if (in->efd < 0)
        return;
    for (size_t i = 0; i < in->n; i++)
        cel__fanout_msg_release(&in->v[(in->head + i) % in->cap]);
    free(in->v);
    close(in->efd);
    pthread_mutex_destroy(&in->mu);
    memset(in, 0, sizeof *in);
    in->efd = -1;
}

/* Lock held. Room for one more message, growing the ring. */
static int reserve(struct cel_fanout_inbox *in)
{
    if (in->n < in->cap)
        return CEL_OK;
    size_t cap = in->cap ? in->cap * 2 : 16;
    struct cel_fanout_msg *v = malloc(cap * sizeof *v);
    if (!v)
        return CEL_ENOMEM;
    for (size_t i = 0; i < in->n; i++)
        v[i] = in->v[(in->head + i) % in->cap];
    free(in->v);
    in->v = v;
    in->cap = cap;
    in->head = 0;
    return CEL_OK;
}

/* Lock held. */
static void drop_oldest(struct cel_fanout_inbox *in)
{
    struct cel_fanout_msg *m = &in->v[in->head];
    in->bytes -= m->len;
    cel__fanout_msg_release(m);
    in->head = (in->head + 1) % in->cap;
    in->n--;
    if (in->dropped++ == 0)
        CEL_WARN(in->comp, "%s: dropping the oldest messages, the subscriber does not poll",
                 in->what);
}

int cel__fanout_inbox_push(struct cel_fanout_inbox *in, const char *exchange, const char *rk,
                           size_t rklen, const char *body, size_t len)
{
    /* The body is copied by length: what was published, NULs and all. */
    struct cel_fanout_msg m = {.exchange = strdup(exchange),
                               .routing_key = strndup(rk, rklen),
                               .body = malloc(len + 1),
                               .len = len};
    if (!m.exchange || !m.routing_key || !m.body) {
        cel__fanout_msg_release(&m);
        return CEL_ENOMEM;
    }
    memcpy(m.body, body, len);
    m.body[len] = '\0';
    pthread_mutex_lock(&in->mu);
    while (in->n && (in->n >= CEL_FANOUT_INBOX_MAX || in->bytes + len > CEL_FANOUT_INBOX_BYTES))
        drop_oldest(in);
    int rc = reserve(in);
    if (rc == CEL_OK) {
        in->v[(in->head + in->n) % in->cap] = m;
        in->n++;
        in->bytes += len;
        uint64_t one = 1;
        ssize_t w = write(in->efd, &one, sizeof one);
        (void)w; /* EAGAIN: already readable */
    }
    pthread_mutex_unlock(&in->mu);
    if (rc != CEL_OK)
        cel__fanout_msg_release(&m);
    return rc;
}

void cel__fanout_inbox_take(struct cel_fanout_inbox *in, struct cel_fanout_msg *out, size_t max,
                            size_t *n)
{
    pthread_mutex_lock(&in->mu);
    size_t k = 0;
    for (; k < max && in->n; k++) {
        out[k] = in->v[in->head];
        in->bytes -= out[k].len;
        in->head = (in->head + 1) % in->cap;
        in->n--;
    }
    if (in->n == 0) {
        /* Drained under the lock: a push after this signals again. */
        uint64_t v;
        ssize_t r = read(in->efd, &v, sizeof v);
        (void)r;
    }
    if (in->dropped && k) {
        CEL_WARN(in->comp, "%s: %zu messages were dropped while the subscriber did not poll",
                 in->what, in->dropped);
        in->dropped = 0;
    }
    pthread_mutex_unlock(&in->mu);
    *n = k;
}
