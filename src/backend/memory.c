/*
 * memory.c - in-process result store: memory://name.
 *
 * Handles with the same name in one process share one table (a jansson
 * object used as a hash map: task_id -> [status, meta, expires_at]). It
 * applies the same guard as the sqlite store and signals every handle's
 * eventfd on each store. It does not see the memory broker's queue, so a
 * reserved task reads as PENDING, not RECEIVED.
 *
 * Chords live in a second table: group id -> {"s": size, "exp": expiry,
 * "j": {entry text: index}}; keying the joins by their text counts a
 * repeated join once, as Redis' ZADD does. Saved group results
 * (GroupResult.save()) live in a third.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/clock.h"
#include "core/json_util.h"

struct mem_backend;

struct mem_results {
    char *name;
    int refs;
    pthread_mutex_t mu;
    json_t *table;
    json_t *chords;
    json_t *groups; /* group id -> [null, meta, expires_at] (GroupResult.save()) */
    struct mem_backend *handles;
    struct mem_results *next;
};

struct mem_backend {
    struct cel_backend base;
    struct mem_results *res;
    int efd;
    struct mem_backend *next;
};

static pthread_mutex_t results_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mem_results *all_results;

static int mk_open(const struct cel_url *url, const cel_config *cfg, struct cel_backend **out,
                   struct cel_errbuf *err)
{
    (void)cfg;
    *out = NULL;
    const char *name = url && url->host ? url->host : "";
    struct mem_backend *h = calloc(1, sizeof *h);
    if (!h)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    h->base.ops = &cel__backend_memory;
    h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->efd < 0) {
        int e = errno;
        free(h);
        return cel__err(err, CEL_EIO, "eventfd: %s", strerror(e));
    }
    pthread_mutex_lock(&results_mu);
    struct mem_results *r = all_results;
    while (r && strcmp(r->name, name) != 0)
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || !(r->name = strdup(name)) || !(r->table = json_object()) ||
            !(r->chords = json_object()) || !(r->groups = json_object())) {
            if (r) {
                free(r->name);
                json_decref(r->table);
                json_decref(r->chords);
            }
            free(r);
            pthread_mutex_unlock(&results_mu);
            close(h->efd);
            free(h);
            return cel__err(err, CEL_ENOMEM, "out of memory");
        }
        pthread_mutex_init(&r->mu, NULL);
        r->next = all_results;
        all_results = r;
    }
    r->refs++;
    pthread_mutex_lock(&r->mu);
    h->res = r;
    h->next = r->handles;
    r->handles = h;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_unlock(&results_mu);
    *out = &h->base;
    return CEL_OK;
}

static void mk_close(struct cel_backend *base)
{
    struct mem_backend *h = (struct mem_backend *)base;
    if (!h)
        return;
    struct mem_results *r = h->res;
    pthread_mutex_lock(&results_mu);
    pthread_mutex_lock(&r->mu);
    for (struct mem_backend **p = &r->handles; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (--r->refs == 0) {
        for (struct mem_results **p = &all_results; *p; p = &(*p)->next) {
            if (*p == r) {
                *p = r->next;
                break;
            }
        }
        json_decref(r->table);
        json_decref(r->chords);
        json_decref(r->groups);
        pthread_mutex_destroy(&r->mu);
        free(r->name);
        free(r);
    }
    pthread_mutex_unlock(&results_mu);
    close(h->efd);
    free(h);
}

static bool expired(json_t *entry, int64_t now)
{
    json_t *exp = json_array_get(entry, 2);
    return json_is_integer(exp) && json_integer_value(exp) <= now;
}

static int mk_store(struct cel_backend *base, const char *task_id, cel_state state,
                    const char *meta_json, size_t len, int64_t ttl_s)
{
    struct mem_backend *h = (struct mem_backend *)base;
    struct mem_results *r = h->res;
    int64_t now = cel__wall_us();
    /* Custom states are named by the meta itself, as in the other stores. */
    const char *status = cel__state_std_name(state);
    json_t *meta = cel__json_parse(meta_json, len, 0, NULL, 0);
    if (!status)
        status = cel__json_cstr(json_object_get(meta, "status"));
    /* An object or an array, as jansson's parser (used here before, without
     * JSON_DECODE_ANY) took; ours also takes a scalar at the top. */
    if (!status || !(json_is_object(meta) || json_is_array(meta))) {
        json_decref(meta);
        return cel__err(&base->err, CEL_EINVAL, "result of task %s is not a meta document",
                        task_id);
    }
    json_t *entry = json_pack("[s, s%, o]", status, meta_json, len,
                              ttl_s > 0 ? json_integer(now + ttl_s * 1000000) : json_null());
    json_decref(meta);
    if (!entry)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    pthread_mutex_lock(&r->mu);
    json_t *old = json_object_get(r->table, task_id);
    bool replace = true;
    if (old && !expired(old, now)) {
        const char *os = json_string_value(json_array_get(old, 0));
        replace = strcmp(os, "SUCCESS") != 0 &&
                  !(cel__state_name_is_ready(os) && !cel__state_name_is_ready(status));
    }
    int rc = CEL_OK;
    if (replace) {
        if (json_object_set(r->table, task_id, entry) != 0)
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
        for (struct mem_backend *o = r->handles; o; o = o->next) {
            uint64_t one = 1;
            ssize_t w = write(o->efd, &one, sizeof one);
            (void)w;
        }
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(entry);
    return rc;
}

static int mk_get(struct cel_backend *base, const char *task_id, char **meta_json)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    *meta_json = NULL;
    int rc = CEL_OK;
    pthread_mutex_lock(&r->mu);
    json_t *entry = json_object_get(r->table, task_id);
    if (entry && expired(entry, cel__wall_us())) {
        json_object_del(r->table, task_id);
        entry = NULL;
    }
    if (!entry) {
        rc = cel__err(&base->err, CEL_ENOTFOUND, "no result for task %s", task_id);
    } else {
        *meta_json = strdup(json_string_value(json_array_get(entry, 1)));
        if (!*meta_json)
            rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int mk_forget(struct cel_backend *base, const char *task_id)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    pthread_mutex_lock(&r->mu);
    json_object_del(r->table, task_id);
    pthread_mutex_unlock(&r->mu);
    return CEL_OK;
}

static int mk_wakeup_fd(struct cel_backend *base)
{
    return ((struct mem_backend *)base)->efd;
}

static void mk_drain_wakeup(struct cel_backend *base)
{
    uint64_t v;
    ssize_t n = read(((struct mem_backend *)base)->efd, &v, sizeof v);
    (void)n;
}

/* ---- group results ---- */

static int mk_group_save(struct cel_backend *base, const char *gid, const char *meta_json,
                         size_t len, int64_t ttl_s)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    json_t *entry =
        json_pack("[n, s%, o]", meta_json, len,
                  ttl_s > 0 ? json_integer(cel__wall_us() + ttl_s * 1000000) : json_null());
    if (!entry)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    pthread_mutex_lock(&r->mu);
    int rc = json_object_set_new(r->groups, gid, entry) == 0
                 ? CEL_OK
                 : cel__err(&base->err, CEL_ENOMEM, "out of memory");
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int mk_group_get(struct cel_backend *base, const char *gid, char **meta_json)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    *meta_json = NULL;
    int rc = CEL_OK;
    pthread_mutex_lock(&r->mu);
    json_t *entry = json_object_get(r->groups, gid);
    if (entry && expired(entry, cel__wall_us())) {
        json_object_del(r->groups, gid);
        entry = NULL;
    }
    if (!entry)
        rc = cel__err(&base->err, CEL_ENOTFOUND, "no saved group %s", gid);
    else if (!(*meta_json = strdup(json_string_value(json_array_get(entry, 1)))))
        rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int mk_group_forget(struct cel_backend *base, const char *gid)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    pthread_mutex_lock(&r->mu);
    json_object_del(r->groups, gid);
    pthread_mutex_unlock(&r->mu);
    return CEL_OK;
}

/* ---- chords ---- */

/* The chord's record, created when absent or expired; NULL: no memory. */
static json_t *chord_record(struct mem_results *r, const char *gid, int64_t now)
{
    json_t *c = json_object_get(r->chords, gid);
    json_t *exp = json_object_get(c, "exp");
    if (c && !(json_is_integer(exp) && json_integer_value(exp) <= now))
        return c;
    c = json_pack("{s:n, s:n, s:{}}", "s", "exp", "j");
    if (!c || json_object_set_new(r->chords, gid, c) != 0)
        return NULL;
    return c;
}

static void chord_touch(json_t *c, int64_t now, int64_t ttl_s)
{
    json_object_set_new(c, "exp", ttl_s > 0 ? json_integer(now + ttl_s * 1000000) : json_null());
}

static int mk_chord_size(struct cel_backend *base, const char *gid, int size, int64_t ttl_s)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    int64_t now = cel__wall_us();
    pthread_mutex_lock(&r->mu);
    json_t *c = chord_record(r, gid, now);
    int rc = c && json_object_set_new(c, "s", json_integer(size)) == 0
                 ? CEL_OK
                 : cel__err(&base->err, CEL_ENOMEM, "out of memory");
    if (c)
        chord_touch(c, now, ttl_s);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

struct scored {
    long long score; /* -1: Celery's null index, last */
    const char *text;
};

static int by_score(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    unsigned long long sx = (unsigned long long)x->score, sy = (unsigned long long)y->score;
    if (sx != sy) /* -1 as unsigned is the largest: +inf */
        return sx < sy ? -1 : 1;
    return strcmp(x->text, y->text);
}

/* The joins of `j` as one JSON array ordered by index; NULL: no memory. */
static char *ordered_entries(json_t *j)
{
    size_t n = json_object_size(j), i = 0, total = 2;
    struct scored *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        v[i++] = (struct scored){json_integer_value(val), key};
        total += strlen(key) + 1;
    }
    qsort(v, n, sizeof *v, by_score);
    char *out = malloc(total);
    if (out) {
        char *p = out;
        *p++ = '[';
        for (i = 0; i < n; i++) {
            if (i)
                *p++ = ',';
            size_t k = strlen(v[i].text);
            memcpy(p, v[i].text, k);
            p += k;
        }
        *p++ = ']';
        *p = '\0';
    }
    free(v);
    return out;
}

static int mk_chord_join(struct cel_backend *base, const char *gid, int index, const char *entry,
                         size_t len, int64_t ttl_s, bool *complete, char **entries_json)
{
    struct mem_results *r = ((struct mem_backend *)base)->res;
    *complete = false;
    *entries_json = NULL;
    char *text = strndup(entry, len);
    if (!text)
        return cel__err(&base->err, CEL_ENOMEM, "out of memory");
    int64_t now = cel__wall_us();
    int rc = CEL_OK;
    pthread_mutex_lock(&r->mu);
    json_t *c = chord_record(r, gid, now);
    json_t *j = json_object_get(c, "j");
    if (!c || json_object_set_new(j, text, json_integer(index < 0 ? -1 : index)) != 0) {
        rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
    } else {
        chord_touch(c, now, ttl_s);
        json_t *size = json_object_get(c, "s");
        if (json_is_integer(size) && (json_int_t)json_object_size(j) == json_integer_value(size)) {
            *entries_json = ordered_entries(j);
            if (!*entries_json) {
                rc = cel__err(&base->err, CEL_ENOMEM, "out of memory");
            } else {
                *complete = true;
                /* A failed chord's joins stay until they expire (Celery). */
                if (cel__chord_failed_entry(*entries_json, strlen(*entries_json)) == -1)
                    json_object_del(r->chords, gid);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    free(text);
    return rc;
}

const struct cel_backend_ops cel__backend_memory = {
    .abi = CEL_BACKEND_ABI,
    .scheme = "memory",
    .caps = CEL_BACKEND_CAP_CHEAP_STATES,
    .open = mk_open,
    .close = mk_close,
    .store = mk_store,
    .get = mk_get,
    .forget = mk_forget,
    .begin = NULL,
    .commit = NULL,
    .wakeup_fd = mk_wakeup_fd,
    .drain_wakeup = mk_drain_wakeup,
    .chord_size = mk_chord_size,
    .chord_join = mk_chord_join,
    .group_save = mk_group_save,
    .group_get = mk_group_get,
    .group_forget = mk_group_forget,
};
