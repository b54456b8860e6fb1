/*
 * message.c - Celery message protocol v2 codec (see message.h and
 * docs/protocol.md).
 *
 * The parser is the first thing untrusted bytes meet, so it reads them
 * with core/json_parse's limits on size, nesting and value count (checked
 * in the one pass that parses), validates every field it reads, and never
 * trusts a type. It is lenient where Python Celery is
 * (missing optional headers, unknown fields, integer delivery tags) and
 * strict where a Python worker would crash or loop (a body that is not
 * [args, kwargs, embed], a content type that is not JSON).
 */
#include "proto/message.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/json_parse.h"
#include "core/json_util.h"
#include "proto/envelope_writer.h"
#include "proto/state.h"

/* --- parsing ------------------------------------------------------------- */

void cel__message_release(struct cel_message *m)
{
    if (!m)
        return;
    json_decref(m->root);
    json_decref(m->body);
    memset(m, 0, sizeof *m);
}

/* The exception a Python worker raises for each kind of refusal. */
static const struct {
    const char *type, *module;
} fault_names[] = {
    [CEL_FAULT_DECODE] = {"DecodeError", "kombu.exceptions"},
    [CEL_FAULT_CONTENT] = {"ContentDisallowed", "kombu.exceptions"},
    [CEL_FAULT_INVALID_TASK] = {"InvalidTaskError", "celery.exceptions"},
    [CEL_FAULT_NOT_REGISTERED] = {"NotRegistered", "celery.exceptions"},
    [CEL_FAULT_VALUE] = {"ValueError", "builtins"},
    [CEL_FAULT_TYPE] = {"TypeError", "builtins"},
};

void cel__message_fault_release(struct cel_message_fault *f)
{
    if (!f)
        return;
    free(f->task_id);
    free(f->task);
    f->task_id = f->task = NULL;
}

/* One parse: its limits, where its reason goes, and the kind of the
 * refusal (set together with the reason by fail()). */
struct parse {
    size_t max_bytes;
    int max_depth;
    char *err;
    size_t errlen;
    enum cel_fault_kind kind;
};

static int fail(struct parse *ps, enum cel_fault_kind kind, int code, const char *fmt, ...)
    CEL_PRINTF(4, 5);

static int fail(struct parse *ps, enum cel_fault_kind kind, int code, const char *fmt, ...)
{
    ps->kind = kind;
    if (ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Quotes at most 40 bytes of a value in an error message, so a hostile
 * message cannot fill the log with itself. */
static const char *clip(const char *s, char *buf, size_t len)
{
    snprintf(buf, len, "%.40s%s", s, strlen(s) > 40 ? "..." : "");
    return buf;
}

/* A string header that may be absent or null. Anything else is an error:
 * ids that are numbers would break every key built from them. */
static int opt_string(struct parse *ps, const json_t *obj, const char *where, const char *key,
                      const char **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return CEL_OK;
    if (!json_is_string(v))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "%s.%s must be a string or null", where, key);
    *out = json_string_value(v);
    return CEL_OK;
}

/* A non-empty string without NUL bytes (it becomes part of C strings and
 * store keys): the task name or the id. NULL otherwise. */
static const char *name_string(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

static int req_name(struct parse *ps, const json_t *headers, const char *key,
                    enum cel_fault_kind kind, const char **out)
{
    const json_t *v = json_object_get(headers, key);
    if (!v)
        return fail(ps, kind, CEL_EPROTO, "missing headers.%s", key);
    if (!(*out = name_string(v)))
        return fail(ps, kind, CEL_EPROTO, "headers.%s must be a non-empty string without NUL bytes",
                    key);
    return CEL_OK;
}

/* Celery raises InvalidTaskError for an eta or expires it cannot read. */
static int opt_time(struct parse *ps, const json_t *headers, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(headers, key);
    char clipbuf[48];
    *out = 0;
    if (!v || json_is_null(v))
        return CEL_OK;
    if (!json_is_string(v))
        return fail(ps, CEL_FAULT_INVALID_TASK, CEL_EPROTO,
                    "headers.%s must be an ISO 8601 string or null", key);
    if (cel__iso8601_parse(json_string_value(v), out) != CEL_OK)
        return fail(ps, CEL_FAULT_INVALID_TASK, CEL_EPROTO,
                    "headers.%s is not an ISO 8601 time: '%s'", key,
                    clip(json_string_value(v), clipbuf, sizeof clipbuf));
    if (*out == 0)
        *out = 1; /* the epoch itself is a real time, not "none" */
    return CEL_OK;
}

/* Celery unpacks timelimit into (hard, soft) when it runs the task:
 * TypeError for what cannot be unpacked or compared, ValueError for the
 * wrong number of values or a negative one. */
static int parse_timelimit(struct parse *ps, const json_t *headers, struct cel_message *m)
{
    static const char shape[] = "headers.timelimit must be [hard, soft] (numbers >= 0 or null)";
    const json_t *v = json_object_get(headers, "timelimit");
    if (!v || json_is_null(v))
        return CEL_OK;
    if (!json_is_array(v))
        return fail(ps, json_is_string(v) || json_is_object(v) ? CEL_FAULT_VALUE : CEL_FAULT_TYPE,
                    CEL_EPROTO, "%s", shape);
    if (json_array_size(v) != 2)
        return fail(ps, CEL_FAULT_VALUE, CEL_EPROTO, "%s", shape);
    double *slots[2] = {&m->time_limit, &m->soft_time_limit};
    for (size_t i = 0; i < 2; i++) {
        const json_t *x = json_array_get(v, i);
        if (json_is_null(x))
            continue;
        if (!json_is_number(x))
            return fail(ps, CEL_FAULT_TYPE, CEL_EPROTO, "%s", shape);
        if (json_number_value(x) < 0)
            return fail(ps, CEL_FAULT_VALUE, CEL_EPROTO, "%s", shape);
        *slots[i] = json_number_value(x);
    }
    return CEL_OK;
}

/* Headers past task and id, which parse_envelope() reads first. */
static int parse_headers(struct parse *ps, const json_t *h, struct cel_message *m)
{
    int rc;
    if ((rc = opt_string(ps, h, "headers", "root_id", &m->root_id)) ||
        (rc = opt_string(ps, h, "headers", "parent_id", &m->parent_id)) ||
        (rc = opt_string(ps, h, "headers", "group", &m->group_id)) ||
        (rc = opt_string(ps, h, "headers", "shadow", &m->shadow)) ||
        (rc = opt_string(ps, h, "headers", "origin", &m->origin)) ||
        (rc = opt_time(ps, h, "eta", &m->eta_us)) ||
        (rc = opt_time(ps, h, "expires", &m->expires_us)) || (rc = parse_timelimit(ps, h, m)))
        return rc;

    const json_t *v = json_object_get(h, "retries");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v))
            return fail(ps, CEL_FAULT_TYPE, CEL_EPROTO, "headers.retries must be an integer >= 0");
        if (json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
            return fail(ps, CEL_FAULT_VALUE, CEL_EPROTO, "headers.retries must be an integer >= 0");
        m->retries = (int)json_integer_value(v);
    }
    v = json_object_get(h, "ignore_result");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return fail(ps, CEL_FAULT_TYPE, CEL_EPROTO, "headers.ignore_result must be a boolean");
        m->ignore_result = json_is_true(v);
    }
    if (json_is_true(json_object_get(h, "redelivered")))
        m->redelivered = true;
    return CEL_OK;
}

/* Properties are advisory for us: a Python worker needs delivery_info and
 * delivery_tag, but we only read them, so missing ones get defaults. */
static int parse_properties(struct parse *ps, const json_t *p, struct cel_message *m)
{
    int rc;
    m->exchange = "";
    m->routing_key = "";
    if (!p)
        return CEL_OK;
    if ((rc = opt_string(ps, p, "properties", "correlation_id", &m->correlation_id)) ||
        (rc = opt_string(ps, p, "properties", "reply_to", &m->reply_to)))
        return rc;

    const json_t *di = json_object_get(p, "delivery_info");
    if (di && json_is_object(di)) {
        const char *s;
        if ((rc = opt_string(ps, di, "properties.delivery_info", "exchange", &s)))
            return rc;
        if (s)
            m->exchange = s;
        if ((rc = opt_string(ps, di, "properties.delivery_info", "routing_key", &s)))
            return rc;
        if (s)
            m->routing_key = s;
        if (json_is_true(json_object_get(di, "redelivered")))
            m->redelivered = true;
    } else if (di && !json_is_null(di)) {
        /* kombu indexes it (delivery_info['exchange']): a TypeError. */
        return fail(ps, CEL_FAULT_TYPE, CEL_EPROTO, "properties.delivery_info must be an object");
    }

    /* kombu treats an invalid priority as 0 and clamps to 0..255 on AMQP;
     * we keep the raw value when it is a small integer. */
    const json_t *pr = json_object_get(p, "priority");
    if (json_is_integer(pr) && json_integer_value(pr) >= 0 && json_integer_value(pr) <= 255)
        m->priority = (int)json_integer_value(pr);
    return CEL_OK;
}

/* Parses untrusted JSON text with the message's limits; `what` names it
 * in the reason. */
static int parse_json(struct parse *ps, const char *text, size_t len, const char *what,
                      json_t **out)
{
    const struct cel_json_limits lim = {.max_bytes = ps->max_bytes, .max_depth = ps->max_depth};
    char jerr[160];
    int rc = cel__json_parse_limited(text, len, &lim, out, jerr, sizeof jerr);
    if (rc == CEL_EDEPTH)
        return fail(ps, CEL_FAULT_DECODE, rc, "%s nesting deeper than %d levels", what,
                    ps->max_depth);
    if (rc != CEL_OK)
        return fail(ps, CEL_FAULT_DECODE, rc, "%s: %s", what, jerr);
    return CEL_OK;
}

static bool content_type_is_json(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    /* "application/json; charset=utf-8" is the same serializer */
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* kombu's name for a content type, for its ContentDisallowed message. */
static const char *serializer_alias(const char *ct)
{
    static const char *const aliases[][2] = {
        {"application/x-python-serialize", "pickle"},
        {"application/x-yaml", "yaml"},
        {"application/x-msgpack", "msgpack"},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(ct, aliases[i][0]) == 0)
            return aliases[i][1];
    return ct;
}

/*
 * Only JSON is read. kombu refuses another serializer with
 * ContentDisallowed (its words are kept); with no content type at all it
 * hands Celery the raw text, which fails to unpack as (args, kwargs,
 * embed): a ValueError.
 */
static int check_content(struct parse *ps, struct cel_message *m)
{
    char clipbuf[48], clipbuf2[48];
    const json_t *ct = json_object_get(m->root, "content-type");
    if (!ct || json_is_null(ct))
        return fail(ps, CEL_FAULT_VALUE, CEL_ECONTENTTYPE,
                    "missing content-type: the body cannot be decoded (only application/json "
                    "is accepted)");
    if (!json_is_string(ct))
        return fail(ps, CEL_FAULT_CONTENT, CEL_ECONTENTTYPE,
                    "Refusing to deserialize untrusted content: content-type is not a string");
    const char *type = json_string_value(ct);
    if (!content_type_is_json(type))
        return fail(ps, CEL_FAULT_CONTENT, CEL_ECONTENTTYPE,
                    "Refusing to deserialize untrusted content of type %s (%s)",
                    clip(serializer_alias(type), clipbuf, sizeof clipbuf),
                    clip(type, clipbuf2, sizeof clipbuf2));
    m->content_type = type;
    const json_t *ce = json_object_get(m->root, "content-encoding");
    if (ce && !json_is_null(ce) &&
        (!json_is_string(ce) || (strcasecmp(json_string_value(ce), "utf-8") != 0 &&
                                 strcasecmp(json_string_value(ce), "utf8") != 0)))
        return fail(ps, CEL_FAULT_DECODE, CEL_ECONTENTTYPE,
                    "unsupported content-encoding (only utf-8 is accepted)");
    return CEL_OK;
}

/* The body's JSON value, whatever its shape, into *out. */
static int body_json(struct parse *ps, const json_t *root, const json_t *props, json_t **out)
{
    const json_t *body = json_object_get(root, "body");
    if (!body)
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "missing body");
    if (!json_is_string(body))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "body must be a string");

    const char *text = json_string_value(body);
    size_t len = json_string_length(body);
    unsigned char *decoded = NULL;
    const json_t *enc = props ? json_object_get(props, "body_encoding") : NULL;
    if (enc && !json_is_null(enc)) {
        char clipbuf[48];
        if (!json_is_string(enc))
            return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO,
                        "properties.body_encoding must be a string");
        if (strcmp(json_string_value(enc), "base64") != 0)
            return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "unsupported body_encoding '%s'",
                        clip(json_string_value(enc), clipbuf, sizeof clipbuf));
        decoded = cel__base64_decode(text, len, &len);
        if (!decoded)
            return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "body is not valid base64");
        text = (const char *)decoded;
    }
    int rc = parse_json(ps, text, len, "body", out);
    free(decoded);
    return rc;
}

static int decode_body(struct parse *ps, const json_t *props, struct cel_message *m)
{
    int rc = body_json(ps, m->root, props, &m->body);
    if (rc != CEL_OK)
        return rc;

    /* A 2-element body crashes a Python worker and, being unacked, comes
     * back forever: refuse it here so it is dead-lettered instead. */
    if (!json_is_array(m->body) || json_array_size(m->body) != 3)
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO,
                    "body must be a 3-element array [args, kwargs, embed]");
    m->args = json_array_get(m->body, 0);
    m->kwargs = json_array_get(m->body, 1);
    m->embed = json_array_get(m->body, 2);
    if (!json_is_array(m->args))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "body args must be an array");
    if (!json_is_object(m->kwargs))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "body kwargs must be an object");
    if (json_is_null(m->embed)) {
        /* Readers may count on an object; the envelope's own body text is
         * untouched, so a re-encode still reproduces the input. */
        json_t *empty = json_object();
        if (!empty || json_array_set_new(m->body, 2, empty) != 0)
            return fail(ps, CEL_FAULT_DECODE, CEL_ENOMEM, "out of memory");
        m->embed = json_array_get(m->body, 2);
    } else if (!json_is_object(m->embed)) {
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "body embed must be an object or null");
    }
    return CEL_OK;
}

/*
 * A message without headers.task: protocol 1 named the task, its id and
 * its arguments in the body. Celery 5 still runs those; we do not, but
 * when the body is one, it is kept in m->body so that its id can be read
 * and its client told (InvalidTaskError).
 */
static int refuse_protocol_v1(struct parse *ps, const json_t *headers, const json_t *props,
                              struct cel_message *m)
{
    struct parse quiet = *ps;
    quiet.err = NULL;
    json_t *body = NULL;
    if (check_content(&quiet, m) == CEL_OK && body_json(&quiet, m->root, props, &body) == CEL_OK &&
        json_is_object(body) && json_object_get(body, "task")) {
        m->body = body;
        return fail(ps, CEL_FAULT_INVALID_TASK, CEL_EPROTO,
                    "missing headers.task: task message protocol 1 (the task named in the "
                    "body) is not supported, send protocol 2");
    }
    json_decref(body);
    return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "%s",
                headers ? "missing headers.task (protocol v1 is not supported)"
                        : "missing headers");
}

/*
 * The order follows a Python worker's, so a message with several faults
 * gets the exception Celery would raise: the task name (NotRegistered),
 * then the serializer (ContentDisallowed), then the other headers.
 */
static int parse_envelope(struct parse *ps, const char *data, size_t len, bool headers_only,
                          struct cel_message *m)
{
    if (!data)
        return fail(ps, CEL_FAULT_DECODE, CEL_EINVAL, "no message data");
    if (len > ps->max_bytes)
        return fail(ps, CEL_FAULT_DECODE, CEL_ETOOBIG, "message is %zu bytes, limit is %zu", len,
                    ps->max_bytes);
    int rc = parse_json(ps, data, len, "message", &m->root);
    if (rc != CEL_OK)
        return rc;
    if (!json_is_object(m->root))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "message is not a JSON object");

    const json_t *props = json_object_get(m->root, "properties");
    if (props && json_is_null(props))
        props = NULL;
    if (props && !json_is_object(props))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "properties must be an object");
    const json_t *headers = json_object_get(m->root, "headers");
    if (headers && !json_is_null(headers) && !json_is_object(headers))
        return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO, "headers must be an object");
    if (!json_object_get(headers, "task"))
        return refuse_protocol_v1(ps, json_is_object(headers) ? headers : NULL, props, m);

    if ((rc = req_name(ps, headers, "task", CEL_FAULT_NOT_REGISTERED, &m->task)) ||
        (rc = req_name(ps, headers, "id", CEL_FAULT_DECODE, &m->id)) ||
        (rc = check_content(ps, m)) || (rc = parse_headers(ps, headers, m)) ||
        (rc = parse_properties(ps, props, m)))
        return rc;
    if (headers_only) {
        const json_t *body = json_object_get(m->root, "body");
        if (!body || !json_is_string(body))
            return fail(ps, CEL_FAULT_DECODE, CEL_EPROTO,
                        body ? "body must be a string" : "missing body");
        return CEL_OK;
    }
    return decode_body(ps, props, m);
}

/* The task id and name of a refused message, when they can be read: from
 * the headers, or from the body of a protocol 1 message. */
static void read_fault_ids(const struct cel_message *m, struct cel_message_fault *f)
{
    const json_t *from = json_object_get(m->root, "headers");
    if (!json_object_get(from, "task") && json_is_object(m->body))
        from = m->body;
    const char *id = name_string(json_object_get(from, "id"));
    const json_t *task = json_object_get(from, "task");
    f->task_id = id ? strdup(id) : NULL;
    f->task = json_is_string(task) ? strdup(json_string_value(task)) : NULL;
}

int cel__message_parse_fault(const char *data, size_t len, const struct cel_message_limits *lim,
                             struct cel_message *out, struct cel_message_fault *fault, char *err,
                             size_t errlen)
{
    struct parse ps = {
        .max_bytes = lim && lim->max_bytes ? lim->max_bytes : CEL_MESSAGE_MAX_BYTES,
        .max_depth = lim && lim->max_depth > 0 ? lim->max_depth : CEL_MESSAGE_MAX_DEPTH,
        .err = err,
        .errlen = errlen,
        .kind = CEL_FAULT_DECODE,
    };
    if (fault)
        *fault = (struct cel_message_fault){0};
    if (!out)
        return fail(&ps, CEL_FAULT_DECODE, CEL_EINVAL, "no output message");
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    int rc = parse_envelope(&ps, data, len, lim && lim->headers_only, out);
    if (rc != CEL_OK) {
        if (fault) {
            fault->kind = ps.kind;
            fault->exc_type = fault_names[ps.kind].type;
            fault->exc_module = fault_names[ps.kind].module;
            read_fault_ids(out, fault);
        }
        cel__message_release(out);
    }
    return rc;
}

int cel__message_parse(const char *data, size_t len, const struct cel_message_limits *lim,
                       struct cel_message *out, char *err, size_t errlen)
{
    return cel__message_parse_fault(data, len, lim, out, NULL, err, errlen);
}

char *cel__message_encode(const struct cel_message *m)
{
    return m && m->root ? cel__json_dump(m->root) : NULL;
}

/* --- building ------------------------------------------------------------ */

/* jansson's setters steal a NULL reference and fail; collect failures in
 * one flag instead of checking each call. */
static void put(json_t *obj, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(obj, key, v) != 0)
        *ok = false;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The envelope itself is written by envelope_writer.c, straight into one
 * buffer: building it from jansson values cost most of a send. */
int cel__message_build(const struct cel_task_spec *spec, char **out, size_t *outlen,
                       char id_out[37], char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!spec || !out)
        return cel__errf(err, errlen, CEL_EINVAL, "no task spec or output");
    struct cel_buf buf;
    cel__buf_init(&buf, CEL_MESSAGE_MAX_BYTES); /* no consumer would take a bigger one */
    int rc = cel__envelope_write(spec, &buf, id_out, err, errlen);
    if (rc == CEL_OK && !(*out = cel__buf_take(&buf, outlen)))
        rc = cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    cel__buf_release(&buf);
    return rc;
}

/* --- results ----------------------------------------------------------------- */

json_t *cel__exception_new(const char *exc_type, const char *exc_module, const char *message)
{
    /* Key order as Celery writes it; exc_message is always a list so a
     * Python client calls cls(*exc_message). */
    json_t *args = message ? json_pack("[s]", message) : json_array();
    if (!args)
        return NULL;
    return json_pack("{s:s, s:o, s:s}", "exc_type", exc_type ? exc_type : "Exception",
                     "exc_message", args, "exc_module", exc_module ? exc_module : "builtins");
}

json_t *cel__result_meta_new(const char *task_id, const char *status, json_t *result,
                             const char *traceback, const char *group_id, const char *parent_id,
                             int64_t date_done_us)
{
    json_t *meta = json_object();
    if (!meta || !task_id || !status) {
        json_decref(meta);
        json_decref(result);
        return NULL;
    }
    bool ok = true;
    put(meta, "status", json_string(status), &ok);
    put(meta, "result", result ? result : json_null(), &ok);
    put(meta, "traceback", str_or_null(traceback), &ok);
    put(meta, "children", json_array(), &ok);
    if (cel__state_name_is_ready(status)) {
        char buf[40];
        cel__iso8601(date_done_us ? date_done_us : cel__wall_us(), false, buf, sizeof buf);
        put(meta, "date_done", json_string(buf), &ok);
    } else {
        put(meta, "date_done", json_null(), &ok);
    }
    if (group_id)
        put(meta, "group_id", json_string(group_id), &ok);
    if (parent_id)
        put(meta, "parent_id", json_string(parent_id), &ok);
    put(meta, "task_id", json_string(task_id), &ok);
    if (!ok) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}
