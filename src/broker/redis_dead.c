/*
 * redis_dead.c - dead letters on Redis (broker.h): the celeriac.dead_letters
 * list, newest first, each element a JSON record {"queue", "reason",
 * "dead_at", "delivery_tag"?, "message" | "message_base64"} (redis_keys.h).
 *
 * A list element has no identity of its own, so an entry's id is a hash
 * of its exact text (FNV-1a 64, 16 hex digits): stable while the entry
 * lives, and enough to find it again. Requeue and removal then name the
 * element by its text (LREM), so an entry another process removed in the
 * meantime is simply not found, and a requeue is one Lua script: the
 * element leaves the list and the message enters its queue together, or
 * neither happens.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "broker/dead_letter.h"
#include "broker/redis_internal.h"
#include "core/base64.h"
#include "core/json_parse.h"

/* Entries read per LRANGE while searching. */
#define PAGE 500

static const char requeue_lua[] = "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then\n"
                                  "  redis.call('LPUSH', KEYS[2], ARGV[2])\n"
                                  "  return 1\n"
                                  "end\n"
                                  "return 0\n";

static void entry_id(const char *text, size_t len, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

/* Fills d from one list element. CEL_EPROTO for an element that is not a
 * record (left alone by listings), CEL_ENOMEM. */
static int parse_entry(const char *text, size_t len, struct cel_dead_letter *d)
{
    memset(d, 0, sizeof *d);
    json_t *rec = cel__json_parse(text, len, 0, NULL, 0);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return CEL_EPROTO;
    }
    char id[17];
    entry_id(text, len, id);
    const char *q = json_string_value(json_object_get(rec, "queue"));
    const char *why = json_string_value(json_object_get(rec, "reason"));
    const char *at = json_string_value(json_object_get(rec, "dead_at"));
    json_t *msg = json_object_get(rec, "message");
    const char *b64 = json_string_value(json_object_get(rec, "message_base64"));
    d->id = strdup(id);
    d->queue = strdup(q ? q : "");
    d->reason = strdup(why ? why : "");
    d->created_us = at ? (int64_t)(strtod(at, NULL) * 1e6) : 0;
    if (json_is_string(msg)) {
        d->len = json_string_length(msg);
        d->body = malloc(d->len + 1);
        if (d->body) {
            memcpy(d->body, json_string_value(msg), d->len);
            d->body[d->len] = '\0';
        }
    } else if (b64) {
        size_t n = 0;
        unsigned char *raw = cel__base64_decode(b64, strlen(b64), &n);
        d->body = raw ? realloc(raw, n + 1) : NULL;
        if (d->body) {
            d->body[n] = '\0';
            d->len = n;
        } else {
            free(raw);
        }
    } else {
        d->body = strdup("");
    }
    json_decref(rec);
    if (!d->id || !d->queue || !d->reason || !d->body) {
        cel__dead_letter_release(d);
        return CEL_ENOMEM;
    }
    cel__dead_envelope_fields(d->body, d->len, &d->task_id, NULL);
    return CEL_OK;
}

static int lrange(struct redis_broker *b, long from, long to, redisReply ***rs, size_t *nq)
{
    char f[24], t[24];
    snprintf(f, sizeof f, "%ld", from);
    snprintf(t, sizeof t, "%ld", to);
    const char *argv[] = {"LRANGE", CEL_REDIS_KEY_DEAD, f, t};
    struct cel_redis_cmds q = {0};
    int rc = cel__redis_cmds_addv(&q, 4, argv);
    if (rc != CEL_OK)
        rc = cel__err(&b->base.err, rc, "out of memory");
    else
        rc = cel__redis_broker_run(b, &q, rs);
    *nq = q.n;
    cel__redis_cmds_release(&q);
    return rc;
}

/* Calls visit(element) for every list element, newest first, until it
 * returns non-zero (then that value) or the list ends (CEL_OK). */
static int walk(struct redis_broker *b, int (*visit)(const redisReply *e, void *arg), void *arg)
{
    for (long from = 0;; from += PAGE) {
        redisReply **rs = NULL;
        size_t nq = 0;
        int rc = lrange(b, from, from + PAGE - 1, &rs, &nq);
        if (rc != CEL_OK)
            return rc;
        const redisReply *r = rs[0];
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        int v = 0;
        for (size_t i = 0; v == 0 && i < n; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                v = visit(r->element[i], arg);
        cel__redis_replies_free(rs, nq);
        if (v != 0)
            return v;
        if (n < PAGE)
            return CEL_OK;
    }
}

struct list_args {
    const char *queue;
    size_t skip, max, n, cap;
    struct cel_dead_letter *v;
    int rc;
};

#define STOP 1

static int list_visit(const redisReply *e, void *arg)
{
    struct list_args *a = arg;
    if (a->n >= a->max)
        return STOP;
    struct cel_dead_letter d;
    int rc = parse_entry(e->str, e->len, &d);
    if (rc == CEL_EPROTO)
        return 0;
    if (rc != CEL_OK) {
        a->rc = rc;
        return STOP;
    }
    if (a->queue && strcmp(a->queue, d.queue) != 0) {
        cel__dead_letter_release(&d);
        return 0;
    }
    if (a->skip) {
        a->skip--;
        cel__dead_letter_release(&d);
        return 0;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        struct cel_dead_letter *grown = realloc(a->v, cap * sizeof *grown);
        if (!grown) {
            cel__dead_letter_release(&d);
            a->rc = CEL_ENOMEM;
            return STOP;
        }
        a->v = grown;
        a->cap = cap;
    }
    a->v[a->n++] = d;
    return 0;
}

int cel__redis_dead_list(struct cel_broker *base, const char *queue, size_t offset, size_t max,
                         struct cel_dead_letter **out, size_t *n)
{
    struct redis_broker *b = (struct redis_broker *)base;
    struct list_args a = {.queue = queue, .skip = offset, .max = max};
    *out = NULL;
    *n = 0;
    int rc = max ? walk(b, list_visit, &a) : CEL_OK;
    if (rc == STOP)
        rc = CEL_OK;
    if (rc == CEL_OK && a.rc != CEL_OK)
        rc = cel__err(&base->err, a.rc, "out of memory");
    if (rc != CEL_OK) {
        cel__dead_letters_free(a.v, a.n);
        return rc;
    }
    *out = a.v;
    *n = a.n;
    return CEL_OK;
}

struct find_args {
    const char *id;
    char *text; /* the element found */
    size_t len;
};

static int find_visit(const redisReply *e, void *arg)
{
    struct find_args *a = arg;
    char id[17];
    entry_id(e->str, e->len, id);
    if (strcmp(id, a->id) != 0)
        return 0;
    a->text = malloc(e->len + 1);
    if (!a->text)
        return CEL_ENOMEM;
    memcpy(a->text, e->str, e->len);
    a->text[e->len] = '\0';
    a->len = e->len;
    return STOP;
}

/* The element with id `id` (caller frees *text). CEL_ENOTFOUND. */
static int find(struct redis_broker *b, const char *id, char **text, size_t *len)
{
    struct find_args a = {.id = id};
    int rc = walk(b, find_visit, &a);
    if (rc == STOP) {
        *text = a.text;
        *len = a.len;
        return CEL_OK;
    }
    if (rc == CEL_OK)
        return cel__err(&b->base.err, CEL_ENOTFOUND, "no dead letter %s", id);
    if (rc == CEL_ENOMEM)
        return cel__err(&b->base.err, rc, "out of memory");
    return rc;
}

int cel__redis_dead_get(struct cel_broker *base, const char *id, struct cel_dead_letter *out)
{
    struct redis_broker *b = (struct redis_broker *)base;
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    int rc = find(b, id, &text, &len);
    if (rc == CEL_OK) {
        rc = parse_entry(text, len, out);
        if (rc != CEL_OK)
            rc = cel__err(&base->err, rc, "dead letter %s cannot be read", id);
    }
    free(text);
    return rc;
}

/* Runs one command; *integer gets an integer reply. */
static int run1(struct redis_broker *b, int argc, const char *const *argv, long long *integer)
{
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc = cel__redis_cmds_addv(&q, argc, argv);
    if (rc != CEL_OK)
        rc = cel__err(&b->base.err, rc, "out of memory");
    else
        rc = cel__redis_broker_run(b, &q, &rs);
    if (rc == CEL_OK && integer)
        *integer = rs[0]->type == REDIS_REPLY_INTEGER ? rs[0]->integer : 0;
    if (rs)
        cel__redis_replies_free(rs, q.n);
    cel__redis_cmds_release(&q);
    return rc;
}

int cel__redis_dead_requeue(struct cel_broker *base, const char *id)
{
    struct redis_broker *b = (struct redis_broker *)base;
    char *text = NULL;
    size_t len = 0;
    int rc = find(b, id, &text, &len);
    struct cel_dead_letter d = {0};
    if (rc == CEL_OK && (rc = parse_entry(text, len, &d)) != CEL_OK)
        rc = cel__err(&base->err, rc, "dead letter %s cannot be read", id);
    if (rc == CEL_OK && !d.queue[0])
        rc = cel__err(&base->err, CEL_EINVAL,
                      "dead letter %s has no queue to go back to (it was never delivered)", id);
    if (rc == CEL_OK) {
        int priority = 0;
        cel__dead_envelope_fields(d.body, d.len, NULL, &priority);
        char key[CEL_REDIS_KEY_MAX];
        if (!cel__redis_band_key(d.queue, cel__redis_band_of(priority), key, sizeof key)) {
            rc = cel__err(&base->err, CEL_EINVAL, "queue name too long");
        } else {
            const char *argv[] = {"EVAL", requeue_lua, "2", CEL_REDIS_KEY_DEAD, key, text, d.body};
            long long moved = 0;
            rc = run1(b, 7, argv, &moved);
            if (rc == CEL_OK && moved != 1)
                rc = cel__err(&base->err, CEL_ENOTFOUND, "no dead letter %s", id);
        }
    }
    cel__dead_letter_release(&d);
    free(text);
    return rc;
}

int cel__redis_dead_purge(struct cel_broker *base, const char *queue, const char *id,
                          size_t *removed)
{
    struct redis_broker *b = (struct redis_broker *)base;
    if (removed)
        *removed = 0;
    long long n = 0;
    int rc;
    if (id) {
        char *text = NULL;
        size_t len = 0;
        rc = find(b, id, &text, &len);
        if (rc == CEL_OK) {
            const char *argv[] = {"LREM", CEL_REDIS_KEY_DEAD, "1", text};
            rc = run1(b, 4, argv, &n);
        }
        free(text);
    } else if (!queue) {
        const char *llen[] = {"LLEN", CEL_REDIS_KEY_DEAD};
        const char *del[] = {"DEL", CEL_REDIS_KEY_DEAD};
        rc = run1(b, 2, llen, &n);
        if (rc == CEL_OK)
            rc = run1(b, 2, del, NULL);
    } else {
        /* Element by element: a purge of one queue must not drop entries
         * another process adds meanwhile. */
        rc = CEL_OK;
        for (long from = 0;;) {
            redisReply **rs = NULL;
            size_t nq = 0;
            rc = lrange(b, from, from + PAGE - 1, &rs, &nq);
            if (rc != CEL_OK)
                break;
            const redisReply *r = rs[0];
            size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0, dropped = 0;
            for (size_t i = 0; rc == CEL_OK && i < got; i++) {
                struct cel_dead_letter d;
                const redisReply *e = r->element[i];
                if (e->type != REDIS_REPLY_STRING || parse_entry(e->str, e->len, &d) != CEL_OK)
                    continue;
                bool match = strcmp(d.queue, queue) == 0;
                cel__dead_letter_release(&d);
                long long gone = 0;
                const char *argv[] = {"LREM", CEL_REDIS_KEY_DEAD, "1", e->str};
                if (match && (rc = run1(b, 4, argv, &gone)) == CEL_OK) {
                    n += gone;
                    dropped += (size_t)gone;
                }
            }
            cel__redis_replies_free(rs, nq);
            if (got < PAGE)
                break;
            from += PAGE - (long)dropped;
        }
    }
    if (rc == CEL_OK && removed)
        *removed = (size_t)n;
    return rc;
}
