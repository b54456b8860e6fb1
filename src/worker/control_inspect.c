/*
 * control_inspect.c - inspection commands: what the worker runs, holds
 * and is (control_cmds.h). Reply shapes are Celery 5.2's
 * (reference/celery-protocol.md 9.5), so Python's `celery inspect` reads
 * them as it reads its own workers'.
 *
 * Loop thread only. A request dict needs the message's args and kwargs:
 * the parent otherwise never decodes a body, so it does here, once per
 * listed message and at most CEL_CONTROL_LIST_MAX of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "celeriac/error.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/config_table.h"
#include "core/json_util.h"
#include "core/url.h"
#include "proto/message.h"
#include "worker/autoscale.h"
#include "worker/control_cmds.h"
#include "worker/events.h"
#include "worker/limits.h"
#include "worker/worker_internal.h"

#define MAX_PIDS 1024

struct cel_control_state *cel__control_state(cel_worker *w)
{
    if (!w->cstate)
        w->cstate = calloc(1, sizeof *w->cstate);
    return w->cstate;
}

void cel__control_state_free(cel_worker *w)
{
    struct cel_control_state *s = w->cstate;
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->totals[i].name);
    free(s->totals);
    for (size_t i = 0; i < s->nparked; i++) {
        json_decref(s->parked[i].request);
        free(s->parked[i].task_id);
    }
    free(s->parked);
    free(s);
    w->cstate = NULL;
}

/* ---- stats' totals, noted as tasks finish --------------------------------- */

static uint64_t hash_name(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static struct cel_task_total *total_slot(struct cel_task_total *v, size_t cap, const char *name,
                                         size_t n)
{
    for (size_t i = hash_name(name, n) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!v[i].name || (strlen(v[i].name) == n && memcmp(v[i].name, name, n) == 0))
            return &v[i];
}

static void count_task(struct cel_control_state *s, const char *name, size_t n)
{
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct cel_task_total *v = calloc(cap, sizeof *v);
        if (!v)
            return;
        for (size_t i = 0; i < s->cap; i++)
            if (s->totals[i].name)
                *total_slot(v, cap, s->totals[i].name, strlen(s->totals[i].name)) = s->totals[i];
        free(s->totals);
        s->totals = v;
        s->cap = cap;
    }
    struct cel_task_total *t = total_slot(s->totals, s->cap, name, n);
    if (!t->name) {
        if (!(t->name = strndup(name, n)))
            return;
        s->count++;
    }
    t->n++;
}

/*
 * The task name straight from the envelope text, without parsing it: the
 * body of a kombu envelope is an encoded string, so the only `"task": "`
 * in the text is the header's key (any such text inside a string value
 * has its quotes escaped). A name with an escape in it is left to the
 * parser.
 */
static bool scan_task_name(const struct cel_inflight *f, const char **name, size_t *n)
{
    static const char key[] = "\"task\": \"";
    const char *p = memmem(f->d.body, f->d.len, key, sizeof key - 1);
    if (!p)
        return false;
    p += sizeof key - 1;
    const char *end = memchr(p, '"', f->d.len - (size_t)(p - f->d.body));
    if (!end || memchr(p, '\\', (size_t)(end - p)))
        return false;
    *name = p;
    *n = (size_t)(end - p);
    return true;
}

void cel__control_note_done(cel_worker *w, struct cel_inflight *f)
{
    struct cel_control_state *s = cel__control_state(w);
    if (!s)
        return;
    const char *name;
    size_t n;
    if (f->ids_known || !scan_task_name(f, &name, &n)) {
        cel__inflight_learn_ids(f);
        if (!f->task_name)
            return;
        name = f->task_name;
        n = strlen(name);
    }
    count_task(s, name, n);
}

/* ---- request dicts -------------------------------------------------------- */

/* Celery's request dict for f; running ones have time_start and pid. */
static json_t *request_dict(cel_worker *w, struct cel_inflight *f)
{
    struct cel_message m;
    char err[128];
    if (cel__message_parse(f->d.body, f->d.len, NULL, &m, err, sizeof err) != CEL_OK)
        return NULL;
    bool running = f->pid != 0 && f->started_us;
    json_t *time_start = json_null(), *pid = json_null();
    if (running) {
        int64_t wall = cel__wall_us() - (cel__mono_us() - f->started_us);
        time_start = json_real((double)wall / 1e6);
        pid = json_integer(f->pid);
    }
    json_t *a = m.args ? json_incref(m.args) : json_array();
    json_t *k = m.kwargs ? json_incref(m.kwargs) : json_object();
    json_t *d = json_pack(
        "{s:s, s:s, s:o, s:o, s:s, s:s, s:o, s:b, s:{s:s, s:s, s:i, s:b}, s:o}", "id", m.id, "name",
        m.task, "args", a, "kwargs", k, "type", m.task, "hostname", w->hostname, "time_start",
        time_start, "acknowledged", f->acked, "delivery_info", "exchange",
        m.exchange ? m.exchange : "", "routing_key",
        m.routing_key && *m.routing_key ? m.routing_key : (f->d.queue ? f->d.queue : ""),
        "priority", m.priority, "redelivered", f->d.delivery_count > 1, "worker_pid", pid);
    cel__message_release(&m);
    return d;
}

static bool is_running(const struct cel_inflight *f)
{
    return f->pid != 0 && f->started_us;
}

static json_t *list_held(cel_worker *w, bool running)
{
    json_t *out = json_array();
    size_t n = 0;
    for (struct cel_inflight *f = w->held.head; f && n < CEL_CONTROL_LIST_MAX; f = f->next) {
        if (f->settling || is_running(f) != running)
            continue;
        json_t *d = request_dict(w, f);
        if (d && json_array_append_new(out, d) == 0)
            n++;
    }
    return out;
}

json_t *cel__inspect_active(cel_worker *w, const json_t *args)
{
    (void)args;
    return list_held(w, true);
}

json_t *cel__inspect_reserved(cel_worker *w, const json_t *args)
{
    (void)args;
    return list_held(w, false);
}

/* Forgets parked tasks whose ETA has passed: some worker has them now. */
static void expire_parked(struct cel_control_state *s)
{
    int64_t now = cel__wall_us();
    size_t k = 0;
    for (size_t i = 0; i < s->nparked; i++) {
        if (s->parked[i].eta_us > now) {
            s->parked[k++] = s->parked[i];
        } else {
            json_decref(s->parked[i].request);
            free(s->parked[i].task_id);
        }
    }
    s->nparked = k;
}

void cel__control_note_parked(cel_worker *w, struct cel_inflight *f, int64_t eta_us, int priority)
{
    struct cel_control_state *s = cel__control_state(w);
    if (!s)
        return;
    expire_parked(s);
    if (s->nparked == CEL_CONTROL_LIST_MAX) { /* the oldest goes */
        json_decref(s->parked[0].request);
        free(s->parked[0].task_id);
        memmove(s->parked, s->parked + 1, --s->nparked * sizeof *s->parked);
    }
    struct cel_parked_task *v =
        cel__array_grow(s->parked, &s->capparked, s->nparked, sizeof *v, 16);
    json_t *d = v ? request_dict(w, f) : NULL;
    const char *id = cel__json_cstr(json_object_get(d, "id"));
    char *tid = id ? strdup(id) : NULL;
    if (!tid) {
        json_decref(d);
        return;
    }
    s->parked = v;
    s->parked[s->nparked++] = (struct cel_parked_task){
        .request = d, .task_id = tid, .eta_us = eta_us, .priority = priority};
}

static json_t *scheduled_entry(const struct cel_parked_task *p)
{
    char eta[48];
    cel__iso8601(p->eta_us, true, eta, sizeof eta);
    /* Celery's timer-entry priority, always 6; the task's is in the
     * request's delivery_info. */
    return json_pack("{s:s, s:i, s:O}", "eta", eta, "priority", 6, "request", p->request);
}

json_t *cel__inspect_scheduled(cel_worker *w, const json_t *args)
{
    (void)args;
    json_t *out = json_array();
    struct cel_control_state *s = cel__control_state(w);
    if (!s)
        return out;
    expire_parked(s);
    for (size_t i = 0; i < s->nparked; i++)
        json_array_append_new(out, scheduled_entry(&s->parked[i]));
    return out;
}

json_t *cel__inspect_query_task(cel_worker *w, const json_t *args)
{
    json_t *ids = json_object_get(args, "ids");
    json_t *out = json_object();
    if (json_is_string(ids)) { /* one id given bare */
        json_t *one = json_pack("{s:[O]}", "ids", ids);
        json_t *r = one ? cel__inspect_query_task(w, one) : out;
        json_decref(one);
        if (r != out)
            json_decref(out);
        return r;
    }
    size_t n = json_array_size(ids);
    for (size_t i = 0; i < n && i < CEL_CONTROL_LIST_MAX; i++) {
        const char *id = cel__json_cstr(json_array_get(ids, i));
        if (!id || json_object_get(out, id))
            continue;
        for (struct cel_inflight *f = w->held.head; f; f = f->next) {
            cel__inflight_learn_ids(f);
            if (f->settling || !f->task_id || strcmp(f->task_id, id) != 0)
                continue;
            json_t *d = request_dict(w, f);
            if (d)
                json_object_set_new(out, id,
                                    json_pack("[s, o]", is_running(f) ? "active" : "reserved", d));
            break;
        }
        struct cel_control_state *s = json_object_get(out, id) ? NULL : cel__control_state(w);
        for (size_t k = 0; s && k < s->nparked; k++)
            if (strcmp(s->parked[k].task_id, id) == 0) {
                json_object_set_new(out, id,
                                    json_pack("[s, O]", "scheduled", s->parked[k].request));
                break;
            }
    }
    return out;
}

/* ---- the worker itself ------------------------------------------------------ */

/* The live pool processes (the worker itself under solo). */
static size_t pool_pids(cel_worker *w, int *out, size_t max)
{
    if (w->pool && w->pool->ops->pids) {
        size_t n = w->pool->ops->pids(w->pool, out, max);
        return n < max ? n : max;
    }
    if (w->pool_ops == &cel__pool_solo) {
        out[0] = (int)getpid();
        return 1;
    }
    /* Without the op: the processes seen running a task. */
    size_t n = 0;
    for (struct cel_inflight *f = w->held.head; f && n < max; f = f->next) {
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = out[i] == f->pid;
        if (f->pid && !seen)
            out[n++] = f->pid;
    }
    return n;
}

/* kombu's Connection.info() for the broker URL, password left out. */
static json_t *broker_info(cel_worker *w)
{
    const char *url = cel_config_get(w->cfg, "broker_url");
    struct cel_url u;
    char err[128];
    json_t *out = NULL;
    if (cel__url_parse(url ? url : "", &u, err, sizeof err) == CEL_OK) {
        bool redis = strncmp(u.scheme, "redis", 5) == 0;
        out = json_pack("{s:s?, s:s?, s:s?, s:o, s:b, s:b, s:s, s:i, s:{}, s:n, s:n, s:f, s:s, "
                        "s:[]}",
                        "hostname", u.host ? u.host : (redis ? "localhost" : NULL), "userid",
                        u.user, "virtual_host", u.path ? u.path : (redis ? "0" : NULL), "port",
                        u.port  ? json_integer(u.port)
                        : redis ? json_integer(6379)
                                : json_null(),
                        "insist", 0, "ssl", 0, "transport", u.scheme, "connect_timeout", 4,
                        "transport_options", "login_method", "uri_prefix", "heartbeat", 120.0,
                        "failover_strategy", "round-robin", "alternates");
    }
    cel__url_release(&u);
    return out ? out : json_object();
}

static json_t *rusage_dict(void)
{
    struct rusage r;
    if (getrusage(RUSAGE_SELF, &r) != 0)
        return json_object();
    return json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:I, s:I}",
                     "utime", (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6, "stime",
                     (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6, "maxrss",
                     (json_int_t)r.ru_maxrss, "ixrss", (json_int_t)r.ru_ixrss, "idrss",
                     (json_int_t)r.ru_idrss, "isrss", (json_int_t)r.ru_isrss, "minflt",
                     (json_int_t)r.ru_minflt, "majflt", (json_int_t)r.ru_majflt, "nswap",
                     (json_int_t)r.ru_nswap, "inblock", (json_int_t)r.ru_inblock, "oublock",
                     (json_int_t)r.ru_oublock, "msgsnd", (json_int_t)r.ru_msgsnd, "msgrcv",
                     (json_int_t)r.ru_msgrcv, "nsignals", (json_int_t)r.ru_nsignals, "nvcsw",
                     (json_int_t)r.ru_nvcsw, "nivcsw", (json_int_t)r.ru_nivcsw);
}

json_t *cel__inspect_stats(cel_worker *w, const json_t *args)
{
    (void)args;
    json_t *total = json_object();
    struct cel_control_state *s = cel__control_state(w);
    for (size_t i = 0; s && i < s->cap; i++)
        if (s->totals[i].name)
            json_object_set_new(total, s->totals[i].name, json_integer((json_int_t)s->totals[i].n));
    int pids[MAX_PIDS];
    size_t n = pool_pids(w, pids, MAX_PIDS);
    json_t *procs = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(procs, json_integer(pids[i]));
    int size = w->pool && w->pool->ops->size ? w->pool->ops->size(w->pool) : w->concurrency;
    char clock[32];
    snprintf(clock, sizeof clock, "%lld", (long long)cel__worker_clock_value(w));
    json_t *mtpc = w->max_tasks_per_child
                       ? json_integer(w->max_tasks_per_child)
                       : (w->pool_ops == &cel__pool_solo ? json_null() : json_string("N/A"));
    json_t *pool = json_pack("{s:i, s:o, s:o, s:b, s:[f, f], s:s}", "max-concurrency", size,
                             "processes", procs, "max-tasks-per-child", mtpc,
                             "put-guarded-by-semaphore", 1, "timeouts", w->exec_env.soft_time_limit,
                             w->exec_env.time_limit, "implementation", w->pool_ops->name);
    json_t *out = json_pack("{s:o, s:i, s:s, s:I, s:o, s:o, s:I, s:o}", "total", total, "pid",
                            (int)getpid(), "clock", clock, "uptime",
                            (json_int_t)((cel__mono_us() - w->run_started_us) / 1000000), "pool",
                            pool, "broker", broker_info(w), "prefetch_count",
                            (json_int_t)w->prefetch_limit, "rusage", rusage_dict());
    struct cel_autoscale_info as;
    if (out && cel__autoscale_info(w, &as)) /* Celery's Autoscaler.info() */
        json_object_set_new(out, "autoscaler",
                            json_pack("{s:i, s:i, s:i, s:i}", "max", as.max, "min", as.min,
                                      "current", as.current, "qty", as.qty));
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

json_t *cel__inspect_registered(cel_worker *w, const json_t *args)
{
    (void)args;
    size_t count = cel_registry_count(w->reg);
    json_t **v = calloc(count ? count : 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v && i < count; i++) {
        const cel_task_def *def = cel_registry_at(w->reg, i);
        if (strncmp(def->name, "celery.", 7) == 0)
            continue; /* Celery hides its built-ins */
        const char *rate = cel__rate_limit_text(w, def);
        v[n] = rate ? json_sprintf("%s [rate_limit=%s]", def->name, rate) : json_string(def->name);
        if (v[n])
            n++;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_str);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, v[i]);
    free(v);
    return out;
}

json_t *cel__inspect_queue_dict(const char *name)
{
    return json_pack("{s:s, s:{s:s, s:s, s:n, s:b, s:b, s:b, s:n, s:b}, s:s, s:n, s:n, s:n, s:b, "
                     "s:b, s:b, s:b, s:n, s:[], s:n, s:n, s:n, s:n, s:n, s:n}",
                     "name", name, "exchange", "name", name, "type", "direct", "arguments",
                     "durable", 1, "passive", 0, "auto_delete", 0, "delivery_mode", "no_declare", 0,
                     "routing_key", name, "queue_arguments", "binding_arguments",
                     "consumer_arguments", "durable", 1, "exclusive", 0, "auto_delete", 0, "no_ack",
                     0, "alias", "bindings", "no_declare", "expires", "message_ttl", "max_length",
                     "max_length_bytes", "max_priority");
}

json_t *cel__inspect_active_queues(cel_worker *w, const json_t *args)
{
    (void)args;
    json_t *out = json_array();
    for (size_t i = 0; i < w->nqueues; i++)
        if (!cel__control_queue_paused(w, w->queues[i]))
            json_array_append_new(out, cel__inspect_queue_dict(w->queues[i]));
    return out;
}

/* A setting's value as Celery would show it: numbers and booleans as
 * such, secrets hidden, passwords in URLs masked. */
static json_t *setting_value(const struct cel__config_option *o, const char *value)
{
    if (o->flags & CEL__CFG_SECRET)
        return json_string("********");
    switch (o->type) {
    case CEL__CFG_URL: {
        char buf[CEL_URL_MAX];
        cel__url_redact(value, buf, sizeof buf);
        return json_string(buf);
    }
    case CEL__CFG_INT:
        return json_integer(strtoll(value, NULL, 10));
    case CEL__CFG_DURATION:
        return json_real(strtod(value, NULL));
    case CEL__CFG_BOOL:
        return json_boolean(strcmp(value, "true") == 0);
    default:
        return json_string(value);
    }
}

json_t *cel__inspect_conf(cel_worker *w, const json_t *args)
{
    bool with_defaults = json_is_true(json_object_get(args, "with_defaults"));
    json_t *out = json_object();
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        const struct cel__config_option *o = cel__config_option_at(i);
        const char *value = cel_config_get(w->cfg, o->key);
        if (!value || (!with_defaults && o->def && strcmp(value, o->def) == 0))
            continue;
        json_t *v = setting_value(o, value);
        if (v)
            json_object_set_new(out, o->key, v);
    }
    return out;
}

json_t *cel__inspect_report(cel_worker *w, const json_t *args)
{
    (void)args;
    struct utsname un;
    if (uname(&un) != 0)
        memset(&un, 0, sizeof un);
    char broker[512];
    const char *b = cel_config_get(w->cfg, "broker_url");
    cel__url_redact(b ? b : "", broker, sizeof broker);
    char text[2048];
    snprintf(text, sizeof text,
             "software -> celeriac:%s (C worker, Celery protocol 2)\n"
             "platform -> system:%s arch:%s kernel version:%s\n"
             "loader -> shared-object task modules\n"
             "settings -> transport:%s results:%s\n"
             "worker -> %s pool:%s concurrency:%d prefetch:%zu\n",
             cel_version_string(), un.sysname, un.machine, un.release, broker,
             cel_config_get(w->cfg, "result_backend") && *cel_config_get(w->cfg, "result_backend")
                 ? "configured"
                 : "broker",
             w->hostname, w->pool_ops->name, w->concurrency, w->prefetch_limit);
    return cel__control_ok(text);
}

json_t *cel__inspect_memsample(cel_worker *w, const json_t *args)
{
    (void)args;
    int pids[MAX_PIDS];
    size_t n = pool_pids(w, pids, MAX_PIDS);
    long self = cel__limit_rss_kib(getpid());
    long total = self > 0 ? self : 0;
    json_t *children = json_array();
    for (size_t i = 0; i < n; i++) {
        if (pids[i] == (int)getpid())
            continue;
        long kib = cel__limit_rss_kib(pids[i]);
        if (kib < 0)
            continue; /* gone meanwhile */
        total += kib;
        json_array_append_new(children,
                              json_pack("{s:i, s:I}", "pid", pids[i], "rss_kib", (json_int_t)kib));
    }
    return json_pack("{s:{s:i, s:I}, s:o, s:I}", "parent", "pid", (int)getpid(), "rss_kib",
                     (json_int_t)self, "children", children, "total_kib", (json_int_t)total);
}
