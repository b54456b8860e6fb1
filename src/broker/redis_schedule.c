/*
 * redis_schedule.c - periodic entries and leases on Redis (broker.h,
 * beat). Keys (redis_keys.h): the hashes celeriac.schedule (name ->
 * document) and celeriac.schedule.state (name -> enabled, last run,
 * total, updated), the counter celeriac.schedule.version and one string
 * celeriac.lease.<name> per lease.
 *
 * Every write is one Lua script (redis_scripts.h), so an edit and its
 * version bump, or a run's message and its record, land together or not
 * at all. Reads of an entry use MULTI/EXEC so document and state are from
 * the same moment. Lease expiry is the server's (PX), so beat clocks do
 * not matter.
 *
 * These ops run at once on the caller's connection, also between begin()
 * and commit(): a run must be recorded when its message is, not with a
 * batch that may come later.
 *
 * A script resent after a lost connection (store/redis_conn.h) may run
 * twice. The checks make that harmless: a fire that already landed is
 * refused the second time ("ran already"), so the caller reads the entry
 * again and finds the run recorded, never a second message.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/redis_internal.h"

static struct redis_broker *rb(struct cel_broker *base)
{
    return (struct redis_broker *)base;
}

static int oom(struct redis_broker *b)
{
    return cel__err(&b->base.err, CEL_ENOMEM, "out of memory");
}

/* Runs the script `s` with `nkeys` keys then the rest of args[0..n) as
 * ARGV; lens[i] is the length of args[i] (NULL: all NUL-terminated).
 * *reply receives the script's reply (free with cel__redis_replies_free(
 * *reply, 1)). */
static int eval(struct redis_broker *b, enum cel_redis_script s, int nkeys, int n,
                const char *const *args, const size_t *lens, redisReply ***reply)
{
    enum { MAX_ARGS = 16 };
    const char *argv[MAX_ARGS + 3];
    size_t argl[MAX_ARGS + 3];
    if (n > MAX_ARGS)
        return cel__err(&b->base.err, CEL_EINVAL, "too many script arguments");
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = b->main_shas[s];
    argv[2] = nk;
    for (int i = 0; i < n; i++) {
        argv[3 + i] = args[i];
        argl[3 + i] = lens ? lens[i] : strlen(args[i]);
    }
    for (int i = 0; i < 3; i++)
        argl[i] = strlen(argv[i]);
    struct cel_redis_cmds q = {0};
    int rc = cel__redis_cmds_add(&q, 3 + n, argv, argl) == CEL_OK
                 ? cel__redis_broker_run(b, &q, reply)
                 : oom(b);
    cel__redis_cmds_release(&q);
    return rc;
}

/* A script's integer reply as *v; CEL_EBROKER when it is something else. */
static int eval_int(struct redis_broker *b, enum cel_redis_script s, int nkeys, int n,
                    const char *const *args, const size_t *lens, long long *v)
{
    redisReply **rs = NULL;
    int rc = eval(b, s, nkeys, n, args, lens, &rs);
    if (rc != CEL_OK)
        return rc;
    if (rs[0]->type == REDIS_REPLY_INTEGER)
        *v = rs[0]->integer;
    else
        rc = cel__err(&b->base.err, CEL_EBROKER, "redis %s: unexpected reply to a schedule script",
                      b->target.display);
    cel__redis_replies_free(rs, 1);
    return rc;
}

/* ---- editing entries ---------------------------------------------------- */

/* KEYS[1..3] of the entry scripts (redis_scripts.h). */
#define ENTRY_KEYS                                                                                 \
    CEL_REDIS_KEY_SCHEDULE, CEL_REDIS_KEY_SCHEDULE_STATE, CEL_REDIS_KEY_SCHEDULE_VERSION

/* Times travel to the scripts as decimal µs. */
static void us_text(int64_t us, char *buf, size_t len)
{
    snprintf(buf, len, "%lld", (long long)us);
}

int cel__redis_sched_put(struct cel_broker *base, const char *name, const char *doc, size_t len,
                         bool enabled, bool replace)
{
    struct redis_broker *b = rb(base);
    char now[32];
    us_text(cel__wall_us(), now, sizeof now);
    const char *args[] = {ENTRY_KEYS, name, doc, enabled ? "1" : "0", replace ? "1" : "0", now};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = i == 4 ? len : strlen(args[i]);
    long long stored = 0;
    int rc = eval_int(b, CEL_REDIS_SCRIPT_SCHED_PUT, 3, 8, args, lens, &stored);
    if (rc == CEL_OK && !stored)
        return cel__err(&base->err, CEL_ESTATE, "entry '%s' exists", name);
    return rc;
}

/* how: "-" removes, "0"/"1" disables/enables. */
static int edit(struct redis_broker *b, const char *name, const char *how)
{
    char now[32];
    us_text(cel__wall_us(), now, sizeof now);
    const char *args[] = {ENTRY_KEYS, name, how, now};
    long long found = 0;
    int rc = eval_int(b, CEL_REDIS_SCRIPT_SCHED_EDIT, 3, 6, args, NULL, &found);
    if (rc == CEL_OK && !found)
        return cel__err(&b->base.err, CEL_ENOTFOUND, "no entry '%s'", name);
    return rc;
}

int cel__redis_sched_remove(struct cel_broker *base, const char *name)
{
    return edit(rb(base), name, "-");
}

int cel__redis_sched_enable(struct cel_broker *base, const char *name, bool enabled)
{
    return edit(rb(base), name, enabled ? "1" : "0");
}

/* ---- reading entries ---------------------------------------------------- */

/* Fills r from a document and its state text (NULL: never written). */
static int fill_row(struct redis_broker *b, const char *name, const redisReply *doc,
                    const char *state, struct cel_sched_row *r)
{
    memset(r, 0, sizeof *r);
    r->name = strdup(name);
    r->doc = malloc(doc->len + 1);
    if (!r->name || !r->doc) {
        cel__sched_row_release(r);
        return oom(b);
    }
    memcpy(r->doc, doc->str, doc->len);
    r->doc[doc->len] = '\0';
    r->len = doc->len;
    int enabled = 1;
    long long last = 0, total = 0, updated = 0;
    if (state && sscanf(state, "%d %lld %lld %lld", &enabled, &last, &total, &updated) != 4)
        enabled = 1, last = total = updated = 0;
    r->enabled = enabled != 0;
    r->last_run_us = last;
    r->total_runs = total;
    r->updated_us = updated;
    return CEL_OK;
}

/* Runs MULTI, the two commands, EXEC; *exec receives EXEC's two replies
 * (*rs to free with cel__redis_replies_free(*rs, 4)). */
static int read_pair(struct redis_broker *b, int argc, const char *const *a1, const char *const *a2,
                     redisReply ***rs, redisReply **exec)
{
    static const char *const multi[] = {"MULTI"}, *const ex[] = {"EXEC"};
    struct cel_redis_cmds q = {0};
    int rc = CEL_OK;
    if (cel__redis_cmds_addv(&q, 1, multi) != CEL_OK || cel__redis_cmds_addv(&q, argc, a1) ||
        cel__redis_cmds_addv(&q, argc, a2) || cel__redis_cmds_addv(&q, 1, ex))
        rc = oom(b);
    if (rc == CEL_OK)
        rc = cel__redis_broker_run(b, &q, rs);
    cel__redis_cmds_release(&q);
    if (rc != CEL_OK)
        return rc;
    *exec = (*rs)[3];
    if ((*exec)->type != REDIS_REPLY_ARRAY || (*exec)->elements != 2) {
        cel__redis_replies_free(*rs, 4);
        return cel__err(&b->base.err, CEL_EBROKER, "redis %s: schedule read was aborted",
                        b->target.display);
    }
    return CEL_OK;
}

int cel__redis_sched_get(struct cel_broker *base, const char *name, struct cel_sched_row *out)
{
    struct redis_broker *b = rb(base);
    memset(out, 0, sizeof *out);
    const char *doc[] = {"HGET", CEL_REDIS_KEY_SCHEDULE, name};
    const char *state[] = {"HGET", CEL_REDIS_KEY_SCHEDULE_STATE, name};
    redisReply **rs, *ex;
    int rc = read_pair(b, 3, doc, state, &rs, &ex);
    if (rc != CEL_OK)
        return rc;
    const redisReply *d = ex->element[0], *s = ex->element[1];
    if (d->type != REDIS_REPLY_STRING)
        rc = cel__err(&base->err, CEL_ENOTFOUND, "no entry '%s'", name);
    else
        rc = fill_row(b, name, d, s->type == REDIS_REPLY_STRING ? s->str : NULL, out);
    cel__redis_replies_free(rs, 4);
    return rc;
}

static int cmp_row(const void *x, const void *y)
{
    return strcmp(((const struct cel_sched_row *)x)->name, ((const struct cel_sched_row *)y)->name);
}

/* The value of `field` in an HGETALL reply, or NULL. */
static const char *hash_field(const redisReply *h, const char *field)
{
    for (size_t i = 0; h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, field) == 0)
            return h->element[i + 1]->type == REDIS_REPLY_STRING ? h->element[i + 1]->str : NULL;
    return NULL;
}

int cel__redis_sched_list(struct cel_broker *base, struct cel_sched_row **out, size_t *n)
{
    struct redis_broker *b = rb(base);
    *out = NULL;
    *n = 0;
    const char *docs[] = {"HGETALL", CEL_REDIS_KEY_SCHEDULE};
    const char *states[] = {"HGETALL", CEL_REDIS_KEY_SCHEDULE_STATE};
    redisReply **rs, *ex;
    int rc = read_pair(b, 2, docs, states, &rs, &ex);
    if (rc != CEL_OK)
        return rc;
    const redisReply *d = ex->element[0];
    size_t count = d->type == REDIS_REPLY_ARRAY ? d->elements / 2 : 0;
    struct cel_sched_row *v = count ? calloc(count, sizeof *v) : NULL;
    if (count && !v)
        rc = oom(b);
    for (size_t i = 0; rc == CEL_OK && i < count; i++) {
        const redisReply *k = d->element[2 * i], *doc = d->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || doc->type != REDIS_REPLY_STRING)
            continue;
        rc = fill_row(b, k->str, doc, hash_field(ex->element[1], k->str), &v[*n]);
        if (rc == CEL_OK)
            (*n)++;
    }
    cel__redis_replies_free(rs, 4);
    if (rc != CEL_OK) {
        cel__sched_rows_free(v, *n);
        *n = 0;
        return rc;
    }
    if (*n == 0) {
        free(v);
        return CEL_OK;
    }
    qsort(v, *n, sizeof *v, cmp_row);
    *out = v;
    return CEL_OK;
}

int cel__redis_sched_version(struct cel_broker *base, int64_t *version)
{
    struct redis_broker *b = rb(base);
    *version = 0;
    const char *argv[] = {"GET", CEL_REDIS_KEY_SCHEDULE_VERSION};
    struct cel_redis_cmds q = {0};
    redisReply **rs = NULL;
    int rc =
        cel__redis_cmds_addv(&q, 2, argv) == CEL_OK ? cel__redis_broker_run(b, &q, &rs) : oom(b);
    if (rc == CEL_OK) {
        if (rs[0]->type == REDIS_REPLY_STRING)
            *version = strtoll(rs[0]->str, NULL, 10);
        cel__redis_replies_free(rs, 1);
    }
    cel__redis_cmds_release(&q);
    return rc;
}

/* ---- leases ------------------------------------------------------------- */

static int lease_key(struct redis_broker *b, const char *lease, char *key, size_t len)
{
    int n = snprintf(key, len, CEL_REDIS_KEY_LEASE_PREFIX "%s", lease);
    if (n < 0 || (size_t)n >= len)
        return cel__err(&b->base.err, CEL_EINVAL, "lease name too long");
    return CEL_OK;
}

int cel__redis_lease_acquire(struct cel_broker *base, const char *lease, const char *holder,
                             int64_t ttl_ms, bool *held)
{
    struct redis_broker *b = rb(base);
    *held = false;
    char key[CEL_REDIS_KEY_MAX], ttl[32];
    int rc = lease_key(b, lease, key, sizeof key);
    if (rc)
        return rc;
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *args[] = {key, holder, ttl};
    long long got = 0;
    rc = eval_int(b, CEL_REDIS_SCRIPT_LEASE, 1, 3, args, NULL, &got);
    *held = rc == CEL_OK && got == 1;
    return rc;
}

int cel__redis_lease_release(struct cel_broker *base, const char *lease, const char *holder)
{
    struct redis_broker *b = rb(base);
    char key[CEL_REDIS_KEY_MAX];
    int rc = lease_key(b, lease, key, sizeof key);
    if (rc)
        return rc;
    const char *args[] = {key, holder};
    long long dropped;
    return eval_int(b, CEL_REDIS_SCRIPT_UNLOCK, 1, 2, args, NULL, &dropped);
}

/* ---- firing ------------------------------------------------------------- */

/* The script's refusal {why, detail} as CEL_ESTATE with a message. */
static int refusal(struct redis_broker *b, const struct cel_sched_fire *f, const char *why,
                   const char *detail)
{
    if (strcmp(why, "lease") == 0 && !*detail)
        return cel__err(&b->base.err, CEL_ESTATE, "lease '%s' is not held", f->lease);
    if (strcmp(why, "lease") == 0)
        return cel__err(&b->base.err, CEL_ESTATE, "lease '%s' is held by %s", f->lease, detail);
    if (strcmp(why, "missing") == 0)
        return cel__err(&b->base.err, CEL_ESTATE, "no entry '%s'", f->name);
    if (strcmp(why, "disabled") == 0)
        return cel__err(&b->base.err, CEL_ESTATE, "entry '%s' is disabled", f->name);
    if (strcmp(why, "ran") == 0)
        return cel__err(&b->base.err, CEL_ESTATE,
                        "entry '%s' ran already (last run %s µs, expected %lld)", f->name, detail,
                        (long long)f->expect_last_run_us);
    return cel__err(&b->base.err, CEL_EBROKER, "redis %s: unexpected reply to the fire script",
                    b->target.display);
}

int cel__redis_sched_fire(struct cel_broker *base, const struct cel_sched_fire *f)
{
    struct redis_broker *b = rb(base);
    char key[CEL_REDIS_KEY_MAX], expect[32], tick[32];
    int rc = lease_key(b, f->lease, key, sizeof key);
    if (rc)
        return rc;
    struct cel_redis_push p;
    memset(&p, 0, sizeof p);
    if (f->send) {
        rc = cel__redis_push_plan(b, f->queue, f->priority, f->due_us, f->body, f->len, &p);
        if (rc) {
            cel__redis_push_release(&p);
            return rc;
        }
    }
    us_text(f->expect_last_run_us, expect, sizeof expect);
    us_text(f->tick_us, tick, sizeof tick);
    /* Without a message the push keys are not touched; any key will do. */
    const char *args[] = {CEL_REDIS_KEY_SCHEDULE,
                          CEL_REDIS_KEY_SCHEDULE_STATE,
                          key,
                          !f->send   ? CEL_REDIS_KEY_SCHEDULE
                          : p.parked ? CEL_REDIS_KEY_DELAYED
                                     : p.list,
                          f->send ? p.binding : CEL_REDIS_KEY_SCHEDULE,
                          f->name,
                          f->holder,
                          expect,
                          tick,
                          f->send ? "1" : "0",
                          !f->send   ? ""
                          : p.parked ? p.parked
                                     : f->body,
                          p.parked ? p.score : "",
                          p.binding_member};
    enum { NARGS = sizeof args / sizeof *args };
    size_t lens[NARGS];
    for (size_t i = 0; i < NARGS; i++)
        lens[i] = strlen(args[i]);
    if (f->send && !p.parked)
        lens[10] = f->len; /* the envelope as publish() pushes it, byte for byte */
    redisReply **rs = NULL;
    rc = eval(b, CEL_REDIS_SCRIPT_SCHED_FIRE, 5, NARGS, args, lens, &rs);
    if (rc == CEL_OK) {
        const redisReply *r = rs[0];
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
            rc = refusal(b, f, "", "");
        else if (strcmp(r->element[0]->str, "ok") != 0)
            rc = refusal(b, f, r->element[0]->str, r->element[1]->str);
        cel__redis_replies_free(rs, 1);
    }
    if (rc == CEL_OK && p.park_ms)
        cel__redis_wake_for(b, p.park_ms);
    cel__redis_push_release(&p);
    return rc;
}
