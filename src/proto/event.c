/* event.c - see event.h. */
#include "proto/event.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/json_escape.h"
#include "core/json_scan.h"
#include "core/json_util.h"
#include "core/uuid.h"

/* An event is a flat object; a batch one level more. Deeper text is
 * not an event and is refused before it costs anything. */
#define EVENT_MAX_DEPTH 8
/* A task.multi of 24 events with long reprs stays far below this. */
#define EVENT_MAX_BYTES (8u * 1024u * 1024u)

int64_t cel__lamport_forward(struct cel_lamport *c)
{
    return ++c->value;
}

void cel__lamport_adjust(struct cel_lamport *c, int64_t seen)
{
    c->value = (seen > c->value ? seen : c->value) + 1;
}

/* Hours west of UTC, as Celery's utcoffset(): the zone's offset in
 * daylight saving time when it is in force. Python floors the division. */
static int utcoffset_hours(int64_t wall_us)
{
    time_t t = (time_t)(wall_us / 1000000);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0;
    long west = -tm.tm_gmtoff;
    return (int)(west >= 0 ? west / 3600 : -((-west + 3599) / 3600));
}

/* The offset changes at most on the hour (zones move by whole quarter
 * hours at daylight saving), so a sender of many events asks the zone
 * once a quarter hour per thread. */
static int utcoffset_cached(int64_t wall_us)
{
    static _Thread_local int64_t slot = -1;
    static _Thread_local int hours;
    int64_t now_slot = wall_us / (900 * 1000000LL);
    if (now_slot != slot) {
        hours = utcoffset_hours(wall_us);
        slot = now_slot;
    }
    return hours;
}

json_t *cel__event_new(const char *type, const char *hostname, int pid, int64_t clock,
                       int64_t wall_us)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:I, s:f}", "type", type, "hostname", hostname,
                     "utcoffset", utcoffset_hours(wall_us), "pid", pid, "clock", (json_int_t)clock,
                     "timestamp", (double)wall_us / 1e6);
}

void cel__event_routing_key(const char *type, char *buf, size_t len)
{
    if (len == 0)
        return;
    size_t i = 0;
    for (; type[i] && i + 1 < len; i++)
        buf[i] = type[i] == '-' ? '.' : type[i];
    buf[i] = '\0';
}

/* Appends s as a JSON string literal; invalid UTF-8 becomes U+FFFD (a
 * hostname is ours, but need not be clean). */
static void append_string(struct cel_buf *b, const char *s)
{
    size_t n = strlen(s), w = 0;
    cel__buf_append(b, "\"", 1);
    if (cel__buf_reserve(b, cel__json_escape_bound(n)) == CEL_OK) {
        cel__json_escape(b->data + b->len, s, n, &w, CEL_JSON_ESCAPE_REPLACE);
        b->len += w;
    }
    cel__buf_append(b, "\"", 1);
}

/* Fixed-point seconds: exact to the µs, and no float printing. */
static void append_seconds(struct cel_buf *b, int64_t us)
{
    if (us < 0) {
        cel__buf_append(b, "-", 1);
        us = -us;
    }
    char frac[8];
    int64_t f = us % 1000000;
    for (int i = 5; i >= 0; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    frac[6] = '\0';
    cel__buf_append_int(b, us / 1000000);
    cel__buf_append(b, ".", 1);
    cel__buf_append(b, frac, 6);
}

static void append_key(struct cel_buf *b, const char *key)
{
    cel__buf_append(b, ", ", 2);
    append_string(b, key);
    cel__buf_append(b, ": ", 2);
}

void cel__event_begin(struct cel_buf *b, const char *type, const char *hostname, int pid,
                      int64_t clock, int64_t wall_us)
{
    cel__buf_append(b, "{\"hostname\": ", 13);
    append_string(b, hostname);
    cel__event_add_int(b, "utcoffset", utcoffset_cached(wall_us));
    cel__event_add_int(b, "pid", pid);
    cel__event_add_int(b, "clock", clock);
    append_key(b, "timestamp");
    append_seconds(b, wall_us);
    cel__event_add_str(b, "type", type);
}

void cel__event_add_str(struct cel_buf *b, const char *key, const char *value)
{
    append_key(b, key);
    if (value)
        append_string(b, value);
    else
        cel__buf_append(b, "null", 4);
}

void cel__event_add_int(struct cel_buf *b, const char *key, int64_t value)
{
    append_key(b, key);
    cel__buf_append_int(b, value);
}

void cel__event_add_bool(struct cel_buf *b, const char *key, bool value)
{
    append_key(b, key);
    cel__buf_appends(b, value ? "true" : "false");
}

void cel__event_add_seconds(struct cel_buf *b, const char *key, int64_t us)
{
    append_key(b, key);
    append_seconds(b, us);
}

void cel__event_add_raw(struct cel_buf *b, const char *key, const char *json, size_t len)
{
    append_key(b, key);
    cel__buf_append(b, json, len);
}

void cel__event_end(struct cel_buf *b)
{
    cel__buf_append(b, "}", 1);
}

int cel__event_envelope(const json_t *event_or_batch, const char *hostname, char **out, size_t *len,
                        const char **rk)
{
    *out = NULL;
    *len = 0;
    /* Routing keys are static: the caller publishes after this returns,
     * and a batch may be long gone by then. */
    static _Thread_local char key[64];
    if (json_is_array(event_or_batch)) {
        *rk = "task.multi";
    } else if (json_is_object(event_or_batch)) {
        const char *type = cel__json_cstr(json_object_get(event_or_batch, "type"));
        if (!type)
            return CEL_EINVAL;
        cel__event_routing_key(type, key, sizeof key);
        *rk = key;
    } else {
        return CEL_EINVAL;
    }
    char *text = cel__json_dump(event_or_batch);
    if (!text)
        return CEL_ENOMEM;
    int rc = cel__event_envelope_text(text, strlen(text), *rk, hostname, out, len);
    free(text);
    return rc;
}

int cel__event_envelope_text(const char *json, size_t json_len, const char *rk,
                             const char *hostname, char **out, size_t *len)
{
    char tag[CEL_UUID_STRLEN + 1];
    cel__uuid4(tag);
    /* kombu's envelope, key order as Python writes it (section 8.1). */
    struct cel_buf b = {0};
    cel__buf_appends(&b, "{\"body\": \"");
    size_t b64 = cel__base64_encoded_len(json_len);
    if (cel__buf_reserve(&b, b64) == CEL_OK) {
        cel__base64_encode((const unsigned char *)json, json_len, b.data + b.len);
        b.len += b64;
    }
    cel__buf_appends(&b, "\", \"content-encoding\": \"utf-8\", \"content-type\": "
                         "\"application/json\", \"headers\": {\"hostname\": ");
    append_string(&b, hostname);
    cel__buf_appends(&b, "}, \"properties\": {\"delivery_mode\": 1, \"delivery_info\": "
                         "{\"exchange\": \"" CEL_EVENT_EXCHANGE "\", \"routing_key\": ");
    append_string(&b, rk);
    cel__buf_appends(&b, "}, \"priority\": 0, \"body_encoding\": \"base64\", \"delivery_tag\": ");
    append_string(&b, tag);
    cel__buf_appends(&b, "}}");
    *out = cel__buf_take(&b, len);
    return *out ? CEL_OK : CEL_ENOMEM;
}

enum {
    H_ID,
    H_TASK,
    H_SHADOW,
    H_ARGSREPR,
    H_KWARGSREPR,
    H_ROOT_ID,
    H_PARENT_ID,
    H_RETRIES,
    H_ETA,
    H_EXPIRES
};
static const char *const task_headers[CEL_EVENT_TASK_HEADERS] = {
    "id",      "task",      "shadow",  "argsrepr", "kwargsrepr",
    "root_id", "parent_id", "retries", "eta",      "expires"};

int cel__event_task_read(const char *env, size_t len, struct cel_event_task *t)
{
    memset(t, 0, sizeof *t);
    struct cel_json_member headers, h[CEL_EVENT_TASK_HEADERS];
    if (cel__json_member(env, len, "headers", &headers) != CEL_OK ||
        cel__json_pick(headers.value, headers.value_len, task_headers, CEL_EVENT_TASK_HEADERS, h) !=
            CEL_OK)
        return CEL_EPROTO;
    for (size_t i = 0; i < CEL_EVENT_TASK_HEADERS; i++)
        t->v[i] = cel__json_member_parse(&h[i]);
    t->id = cel__json_cstr(t->v[H_ID]);
    t->task = cel__json_cstr(t->v[H_TASK]);
    if (!t->id || !t->task) {
        cel__event_task_release(t);
        return CEL_EPROTO;
    }
    return CEL_OK;
}

void cel__event_add_task(struct cel_buf *b, const struct cel_event_task *t)
{
    const char *shadow = cel__json_cstr(t->v[H_SHADOW]);
    const char *argsrepr = cel__json_cstr(t->v[H_ARGSREPR]);
    const char *kwargsrepr = cel__json_cstr(t->v[H_KWARGSREPR]);
    const json_t *retries = t->v[H_RETRIES];
    cel__event_add_str(b, "uuid", t->id);
    cel__event_add_str(b, "name", shadow ? shadow : t->task);
    cel__event_add_str(b, "args", argsrepr ? argsrepr : "");
    cel__event_add_str(b, "kwargs", kwargsrepr ? kwargsrepr : "");
    cel__event_add_str(b, "root_id", cel__json_cstr(t->v[H_ROOT_ID]));
    cel__event_add_str(b, "parent_id", cel__json_cstr(t->v[H_PARENT_ID]));
    cel__event_add_int(b, "retries", json_is_integer(retries) ? json_integer_value(retries) : 0);
    /* as the sender wrote them: ISO text or null */
    cel__event_add_str(b, "eta", cel__json_cstr(t->v[H_ETA]));
    cel__event_add_str(b, "expires", cel__json_cstr(t->v[H_EXPIRES]));
}

void cel__event_task_release(struct cel_event_task *t)
{
    for (size_t i = 0; i < CEL_EVENT_TASK_HEADERS; i++)
        json_decref(t->v[i]);
    memset(t, 0, sizeof *t);
}

/* The body of an envelope as JSON: base64 as kombu sends it, or the text
 * itself when body_encoding says nothing else. */
static json_t *decoded_body(const json_t *env)
{
    const json_t *body = json_object_get(env, "body");
    const char *enc =
        cel__json_cstr(json_object_get(json_object_get(env, "properties"), "body_encoding"));
    const struct cel_json_limits lim = {.max_bytes = EVENT_MAX_BYTES, .max_depth = EVENT_MAX_DEPTH};
    json_t *out = NULL;
    char err[8];
    if (json_is_object(body) || json_is_array(body))
        return json_incref((json_t *)body);
    const char *text = cel__json_cstr(body);
    if (!text)
        return NULL;
    if (enc && strcmp(enc, "base64") == 0) {
        size_t n;
        unsigned char *raw = cel__base64_decode(text, strlen(text), &n);
        if (raw)
            cel__json_parse_limited((const char *)raw, n, &lim, &out, err, sizeof err);
        free(raw);
    } else {
        cel__json_parse_limited(text, strlen(text), &lim, &out, err, sizeof err);
    }
    return out;
}

/* An event must at least say what it is. */
static bool is_event(const json_t *v)
{
    return json_is_object(v) && cel__json_cstr(json_object_get(v, "type"));
}

int cel__event_parse(const char *env, size_t len, json_t **events)
{
    *events = NULL;
    const struct cel_json_limits lim = {.max_bytes = EVENT_MAX_BYTES, .max_depth = EVENT_MAX_DEPTH};
    json_t *e = NULL;
    char err[8];
    if (cel__json_parse_limited(env, len, &lim, &e, err, sizeof err) != CEL_OK)
        return CEL_EPROTO;
    json_t *body = json_is_object(e) ? decoded_body(e) : NULL;
    json_decref(e);
    json_t *list = json_array();
    int rc = list ? CEL_OK : CEL_ENOMEM;
    if (rc == CEL_OK && is_event(body)) {
        json_array_append(list, body);
    } else if (rc == CEL_OK && json_is_array(body)) {
        /* task.multi: what is not an event in it is skipped, the rest
         * still counts. */
        for (size_t i = 0; i < json_array_size(body); i++)
            if (is_event(json_array_get(body, i)))
                json_array_append(list, json_array_get(body, i));
    } else {
        rc = CEL_EPROTO;
    }
    json_decref(body);
    if (rc != CEL_OK) {
        json_decref(list);
        return rc;
    }
    *events = list;
    return CEL_OK;
}
