/*
 * envelope_writer.c - see envelope_writer.h.
 *
 * The output must stay byte-identical to what jansson values dumped by
 * core/json_util.c gave (tests/unit/test_proto.c and the interop suite
 * hold us to it): strings go through the same escaper
 * (core/json_escape.c), and the separators are ", " and ": " as there.
 * The one rule jansson added on its own is kept too: a string that is
 * not valid UTF-8 (by jansson's definition) makes the build fail with
 * CEL_EINVAL, as json_string() did.
 */
#include "proto/envelope_writer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/json_escape.h"
#include "core/json_util.h"
#include "core/uuid.h"
#include "proto/repr.h"

/* Celery's Task.argsrepr_maxsize / kwargsrepr_maxsize. */
#define REPR_MAX_LEN 1024

#define DEFAULT_EMBED "{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}"

#define BAD_STRING_MSG "cannot build message (out of memory or a string that is not valid UTF-8)"

/* --- the buffer ------------------------------------------------------------ */

/* Appends go straight to the core buffer, whose first failure (cap or
 * memory) is sticky: everything after it is dropped and reported once at
 * the end. */
struct writer {
    struct cel_buf *b;
    bool bad; /* a value jansson refuses: a string that is not UTF-8, NaN */
};

static inline void put(struct writer *w, const char *s, size_t n)
{
    cel__buf_append(w->b, s, n);
}

/* Constant text: the length is known at compile time. */
#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

/* --- strings --------------------------------------------------------------- */

/* A JSON string literal, escaped by core/json_escape.c like the dumper
 * does it. Names and ids are plain: they are copied with room for
 * themselves, and only a string with something to escape reserves the
 * worst case for its rest. A string that is not UTF-8 marks the write
 * bad, as json_string() refused it. */
static void put_str(struct writer *w, const char *s, size_t n)
{
    struct cel_buf *b = w->b;
    size_t plain, k = 0;
    if (n > SIZE_MAX / 8) {
        cel__buf_fail(b, CEL_ETOOBIG);
        return;
    }
    if (cel__buf_reserve(b, n + 2) != CEL_OK)
        return;
    b->data[b->len++] = '"';
    b->len += plain = cel__json_escape_plain(b->data + b->len, s, n);
    if (plain < n && cel__buf_reserve(b, cel__json_escape_bound(n - plain) + 1) == CEL_OK &&
        cel__json_escape(b->data + b->len, s + plain, n - plain, &k, 0) != CEL_OK)
        w->bad = true;
    b->len += k;
    b->data[b->len++] = '"';
}

static void put_cstr(struct writer *w, const char *s)
{
    put_str(w, s, strlen(s));
}

/* The task id appears three times (id, root_id, correlation_id): escape
 * it once and copy the escaped text, found by offset (the buffer may
 * move). */
struct span {
    size_t at, len;
};

static struct span put_str_span(struct writer *w, const char *s)
{
    struct span sp = {w->b->len, 0};
    put_cstr(w, s);
    sp.len = w->b->err != CEL_OK ? 0 : w->b->len - sp.at;
    return sp;
}

static void put_span(struct writer *w, struct span sp)
{
    struct cel_buf *b = w->b;
    if (cel__buf_reserve(b, sp.len) != CEL_OK)
        return;
    memcpy(b->data + b->len, b->data + sp.at, sp.len);
    b->len += sp.len;
}

static void put_str_or_null(struct writer *w, const char *s)
{
    if (s)
        put_cstr(w, s);
    else
        PUT_LIT(w, "null");
}

static void put_time_or_null(struct writer *w, int64_t us)
{
    if (us == 0) {
        PUT_LIT(w, "null");
        return;
    }
    char buf[40];
    cel__iso8601(us, true, buf, sizeof buf);
    put_cstr(w, buf);
}

/* 30.0 goes out as 30, the way a Python caller's time_limit=30 does.
 * Fractions are rare: let json_util.c's float repr handle them. */
static void put_limit_or_null(struct writer *w, double s)
{
    if (s <= 0) {
        PUT_LIT(w, "null");
        return;
    }
    if (s < 9.0e18 && s == (double)(json_int_t)s) {
        cel__buf_append_int(w->b, (int64_t)s);
        return;
    }
    json_t *r = json_real(s);
    if (!r) {
        w->bad = true; /* NaN or infinity */
        return;
    }
    char *text = cel__json_dump(r);
    json_decref(r);
    if (!text) {
        cel__buf_fail(w->b, CEL_ENOMEM);
        return;
    }
    put(w, text, strlen(text));
    free(text);
}

/* --- origin ---------------------------------------------------------------- */

/* "gen<pid>@<host>", as Celery's producers write it. The host name is a
 * system call away and does not change under a running producer, and the
 * pid changes only in a fork child: keep the text per thread and forget
 * it in the child. */
static char host_name[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static __thread char origin_text[300];
static __thread size_t origin_len;

static void forget_origin(void)
{
    origin_len = 0;
}

static void lookup_host(void)
{
    if (gethostname(host_name, sizeof host_name) != 0)
        snprintf(host_name, sizeof host_name, "localhost");
    host_name[sizeof host_name - 1] = '\0';
    pthread_atfork(NULL, NULL, forget_origin);
}

static const char *default_origin(size_t *len)
{
    if (origin_len == 0) {
        pthread_once(&host_once, lookup_host);
        int n = snprintf(origin_text, sizeof origin_text, "gen%ld@%s", (long)getpid(), host_name);
        origin_len = n > 0 ? strlen(origin_text) : 0;
    }
    *len = origin_len;
    return origin_text;
}

/* --- body ------------------------------------------------------------------ */

/* The body of a task without arguments never changes: encode it once. */
static const char default_body[] = "[[], {}, " DEFAULT_EMBED "]";
static char default_body_b64[(sizeof default_body + 2) / 3 * 4 + 1];
static pthread_once_t default_body_once = PTHREAD_ONCE_INIT;

static void encode_default_body(void)
{
    cel__base64_encode((const unsigned char *)default_body, sizeof default_body - 1,
                       default_body_b64);
}

/* --- args and kwargs ------------------------------------------------------ */

/*
 * Args given as text usually look like "[2, 3]" or {"x": 1}: numbers,
 * short strings, true/false/null. For those jansson's parse, dump and
 * repr walk cost more than the rest of the envelope, so a small
 * transcoder turns such text straight into the dumped JSON and the
 * Python repr. It accepts only a subset it gets exactly right (integers
 * of up to 18 digits, strings of printable ASCII without escapes,
 * objects without repeated keys, shallow nesting) and gives up on
 * anything else; jansson then parses the text as before, so invalid text
 * is always reported by jansson, with the same codes and messages.
 */
#define FAST_MAX_DEPTH 16
#define FAST_MAX_KEYS  16

struct xc {
    const char *p, *end;
    char *d; /* dumped JSON */
    char *r; /* Python repr */
    int depth;
};

static void xc_ws(struct xc *x)
{
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r'))
        x->p++;
}

/* A string of printable ASCII with no escapes; start and len receive its
 * text. */
static bool xc_string(struct xc *x, const char **start, size_t *len)
{
    const char *s = ++x->p;
    while (x->p < x->end && *x->p != '"') {
        unsigned char c = (unsigned char)*x->p;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            return false;
        x->p++;
    }
    if (x->p >= x->end)
        return false;
    size_t n = (size_t)(x->p - s);
    x->p++;
    /* repr() quotes with ' unless the text holds one (it holds no '"') */
    char q = memchr(s, '\'', n) ? '"' : '\'';
    *x->d++ = '"';
    memcpy(x->d, s, n);
    x->d += n;
    *x->d++ = '"';
    *x->r++ = q;
    memcpy(x->r, s, n);
    x->r += n;
    *x->r++ = q;
    *start = s;
    *len = n;
    return true;
}

static bool xc_number(struct xc *x)
{
    const char *s = x->p;
    if (*x->p == '-')
        x->p++;
    const char *digits = x->p;
    while (x->p < x->end && *x->p >= '0' && *x->p <= '9')
        x->p++;
    size_t n = (size_t)(x->p - digits);
    /* "-0" dumps as 0, leading zeros and reals go to jansson */
    if (n == 0 || n > 18 || (digits[0] == '0' && (n > 1 || digits != s)))
        return false;
    if (x->p < x->end && (*x->p == '.' || *x->p == 'e' || *x->p == 'E'))
        return false;
    n = (size_t)(x->p - s);
    memcpy(x->d, s, n);
    x->d += n;
    memcpy(x->r, s, n);
    x->r += n;
    return true;
}

static bool xc_literal(struct xc *x, const char *json, const char *py)
{
    size_t n = strlen(json);
    if ((size_t)(x->end - x->p) < n || memcmp(x->p, json, n) != 0)
        return false;
    x->p += n;
    memcpy(x->d, json, n);
    x->d += n;
    memcpy(x->r, py, n); /* True/False/None are as long as true/false/null */
    x->r += n;
    return true;
}

static bool xc_value(struct xc *x, bool top);

/* After an element: true and *more set when ',' follows, true and !*more
 * when `close` does. */
static bool xc_next(struct xc *x, char close, bool *more)
{
    xc_ws(x);
    if (x->p >= x->end)
        return false;
    if (*x->p == ',' || *x->p == close) {
        *more = *x->p == ',';
        x->p++;
        return true;
    }
    return false;
}

static bool xc_array(struct xc *x, bool top)
{
    x->p++;
    *x->d++ = '[';
    *x->r++ = top ? '(' : '['; /* Celery reprs the args tuple */
    size_t n = 0;
    xc_ws(x);
    if (x->p < x->end && *x->p == ']') {
        x->p++;
    } else {
        for (bool more = true; more; n++) {
            if (n) {
                memcpy(x->d, ", ", 2);
                x->d += 2;
                memcpy(x->r, ", ", 2);
                x->r += 2;
            }
            if (!xc_value(x, false) || !xc_next(x, ']', &more))
                return false;
        }
    }
    *x->d++ = ']';
    if (top && n == 1)
        *x->r++ = ',';
    *x->r++ = top ? ')' : ']';
    return true;
}

static bool xc_object(struct xc *x)
{
    const char *keys[FAST_MAX_KEYS];
    size_t key_len[FAST_MAX_KEYS];
    size_t n = 0;
    x->p++;
    *x->d++ = '{';
    *x->r++ = '{';
    xc_ws(x);
    if (x->p < x->end && *x->p == '}') {
        x->p++;
    } else {
        for (bool more = true; more; n++) {
            if (n == FAST_MAX_KEYS)
                return false;
            if (n) {
                memcpy(x->d, ", ", 2);
                x->d += 2;
                memcpy(x->r, ", ", 2);
                x->r += 2;
            }
            xc_ws(x);
            if (x->p >= x->end || *x->p != '"' || !xc_string(x, &keys[n], &key_len[n]))
                return false;
            /* jansson keeps the last of repeated keys: leave that to it */
            for (size_t i = 0; i < n; i++)
                if (key_len[i] == key_len[n] && memcmp(keys[i], keys[n], key_len[n]) == 0)
                    return false;
            xc_ws(x);
            if (x->p >= x->end || *x->p != ':')
                return false;
            x->p++;
            memcpy(x->d, ": ", 2);
            x->d += 2;
            memcpy(x->r, ": ", 2);
            x->r += 2;
            if (!xc_value(x, false) || !xc_next(x, '}', &more))
                return false;
        }
    }
    *x->d++ = '}';
    *x->r++ = '}';
    return true;
}

static bool xc_value(struct xc *x, bool top)
{
    xc_ws(x);
    if (x->p >= x->end)
        return false;
    const char *key;
    size_t len;
    bool ok;
    switch (*x->p) {
    case '[':
    case '{':
        if (++x->depth > FAST_MAX_DEPTH)
            return false;
        ok = *x->p == '[' ? xc_array(x, top) : xc_object(x);
        x->depth--;
        return ok;
    case '"':
        return xc_string(x, &key, &len);
    case 't':
        return xc_literal(x, "true", "True");
    case 'f':
        return xc_literal(x, "false", "False");
    case 'n':
        return xc_literal(x, "null", "None");
    default:
        return (*x->p == '-' || (*x->p >= '0' && *x->p <= '9')) && xc_number(x);
    }
}

/* args or kwargs: the empty default, transcoded text, or a jansson value. */
struct arg {
    bool given; /* false: the empty default */
    json_t *v;  /* owned reference when jansson had to parse (or was given) */
    const char *dump, *repr;
    size_t dump_len, repr_len;
    char *heap;
    char stack[1024];
};

/* Both outputs are at most twice the input plus one (", " for ',',
 * ": " for ':', "(x,)" for "[x]"), so they are sized up front. */
static bool transcode(struct arg *a, const char *text, size_t len, bool want_array)
{
    size_t room = 2 * len + 8;
    char *buf = 2 * room <= sizeof a->stack ? a->stack : malloc(2 * room);
    if (!buf)
        return false;
    struct xc x = {text, text + len, buf, buf + room, 0};
    xc_ws(&x);
    bool ok = x.p < x.end && *x.p == (want_array ? '[' : '{') && xc_value(&x, true);
    xc_ws(&x);
    if (!ok || x.p != x.end) {
        if (buf != a->stack)
            free(buf);
        return false;
    }
    if (buf != a->stack)
        a->heap = buf;
    a->dump = buf;
    a->dump_len = (size_t)(x.d - buf);
    a->repr = buf + room;
    a->repr_len = (size_t)(x.r - (buf + room));
    return true;
}

static void arg_release(struct arg *a)
{
    json_decref(a->v);
    free(a->heap);
}

/* What a caller gave as args or kwargs, validated. */
static int load_arg(struct arg *a, json_t *given, const char *text, bool want_array, char *err,
                    size_t errlen)
{
    const char *what = want_array ? "args" : "kwargs";
    a->v = NULL;
    a->heap = NULL;
    a->dump = want_array ? "[]" : "{}";
    a->repr = want_array ? "()" : "{}";
    a->dump_len = a->repr_len = 2;
    a->given = given || text;
    if (given) {
        a->v = json_incref(given);
    } else if (text) {
        size_t len = strlen(text);
        if (transcode(a, text, len, want_array))
            return CEL_OK;
        char jerr[160];
        a->v = cel__json_parse(text, len, CEL_MESSAGE_MAX_DEPTH, jerr, sizeof jerr);
        if (!a->v)
            return cel__errf(err, errlen, CEL_EJSON, "%s_json: %s", what, jerr);
    } else {
        return CEL_OK;
    }
    if (want_array ? !json_is_array(a->v) : !json_is_object(a->v)) {
        json_decref(a->v);
        a->v = NULL;
        return cel__errf(err, errlen, CEL_EINVAL, "%s must be a JSON %s", what,
                         want_array ? "array" : "object");
    }
    return CEL_OK;
}

/* Dumped text of one body part. */
struct part {
    const char *text;
    size_t len;
    char *owned;
};

static bool dump_part(struct part *p, const json_t *v, const char *text, size_t len)
{
    if (!v) {
        p->text = text;
        p->len = len;
        return true;
    }
    p->owned = cel__json_dump(v);
    if (!p->owned)
        return false;
    p->text = p->owned;
    p->len = strlen(p->owned);
    return true;
}

/* base64 of "[args, kwargs, embed]", written in place. Returns false when
 * a part could not be dumped (the caller reports it like jansson did). */
static bool put_body(struct writer *w, const struct arg *args, const struct arg *kwargs,
                     const json_t *embed)
{
    if (!args->given && !kwargs->given && !embed) {
        pthread_once(&default_body_once, encode_default_body);
        PUT_LIT(w, default_body_b64);
        return true;
    }
    struct part parts[3] = {{0}};
    bool ok = dump_part(&parts[0], args->v, args->dump, args->dump_len) &&
              dump_part(&parts[1], kwargs->v, kwargs->dump, kwargs->dump_len) &&
              dump_part(&parts[2], embed, DEFAULT_EMBED, sizeof DEFAULT_EMBED - 1);
    if (ok) {
        size_t n = parts[0].len + parts[1].len + parts[2].len + 6;
        char stackbuf[1024];
        char *text = n <= sizeof stackbuf ? stackbuf : malloc(n);
        if (!text) {
            cel__buf_fail(w->b, CEL_ENOMEM);
        } else {
            size_t o = 0;
            text[o++] = '[';
            for (int i = 0; i < 3; i++) {
                memcpy(text + o, parts[i].text, parts[i].len);
                o += parts[i].len;
                if (i < 2) {
                    text[o++] = ',';
                    text[o++] = ' ';
                }
            }
            text[o++] = ']';
            size_t enc = cel__base64_encoded_len(o);
            if (cel__buf_reserve(w->b, enc) == CEL_OK) {
                cel__base64_encode((const unsigned char *)text, o, w->b->data + w->b->len);
                w->b->len += enc;
            }
            if (text != stackbuf)
                free(text);
        }
    }
    for (int i = 0; i < 3; i++)
        free(parts[i].owned);
    return ok;
}

/* argsrepr/kwargsrepr: Python's repr, cut like cel__json_pyrepr() cuts it
 * (transcoded text is ASCII, so no UTF-8 sequence can be split). */
static bool put_repr(struct writer *w, const struct arg *a)
{
    if (!a->v) {
        if (a->repr_len <= REPR_MAX_LEN) {
            put_str(w, a->repr, a->repr_len);
        } else {
            char cut[REPR_MAX_LEN + 3];
            memcpy(cut, a->repr, REPR_MAX_LEN);
            memcpy(cut + REPR_MAX_LEN, "...", 3);
            put_str(w, cut, sizeof cut);
        }
        return true;
    }
    char *r = cel__json_pyrepr(a->v, REPR_MAX_LEN);
    if (!r)
        return false;
    put_cstr(w, r);
    free(r);
    return true;
}

/* --- the envelope ---------------------------------------------------------- */

static int check_spec(const struct cel_task_spec *spec, bool want_id, char *err, size_t errlen)
{
    if (!spec->task || !spec->task[0])
        return cel__errf(err, errlen, CEL_EINVAL, "task name is required");
    if (spec->id && (!spec->id[0] || (want_id && strlen(spec->id) > CEL_UUID_STRLEN)))
        return cel__errf(err, errlen, CEL_EINVAL, "task id must be 1..%d characters",
                         CEL_UUID_STRLEN);
    if (spec->priority < 0 || spec->priority > 9)
        return cel__errf(err, errlen, CEL_EINVAL, "priority %d is outside 0..9", spec->priority);
    if (spec->retries < 0)
        return cel__errf(err, errlen, CEL_EINVAL, "retries must be >= 0");
    if (spec->time_limit < 0 || spec->soft_time_limit < 0)
        return cel__errf(err, errlen, CEL_EINVAL, "time limits must be >= 0");
    if ((spec->has_max_retries && spec->max_retries < 0) || spec->retry_backoff < 0)
        return cel__errf(err, errlen, CEL_EINVAL, "max_retries and retry_backoff must be >= 0");
    if (spec->embed && !json_is_object(spec->embed))
        return cel__errf(err, errlen, CEL_EINVAL, "embed must be a JSON object");
    return CEL_OK;
}

/* Everything after the body, in Python's key order (tools that diff
 * messages appreciate it). Returns false when a repr could not be made. */
static bool put_rest(struct writer *w, const struct cel_task_spec *s, const char *id,
                     const struct arg *args, const struct arg *kwargs)
{
    PUT_LIT(w, "\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", "
               "\"headers\": {\"lang\": ");
    put_cstr(w, s->lang ? s->lang : "c");
    PUT_LIT(w, ", \"task\": ");
    put_cstr(w, s->task);
    PUT_LIT(w, ", \"id\": ");
    struct span id_text = put_str_span(w, id);
    PUT_LIT(w, ", \"shadow\": ");
    put_str_or_null(w, s->shadow);
    PUT_LIT(w, ", \"eta\": ");
    put_time_or_null(w, s->eta_us);
    PUT_LIT(w, ", \"expires\": ");
    put_time_or_null(w, s->expires_us);
    PUT_LIT(w, ", \"group\": ");
    put_str_or_null(w, s->group_id);
    PUT_LIT(w, ", \"group_index\": ");
    if (s->has_group_index)
        cel__buf_append_int(w->b, s->group_index);
    else
        PUT_LIT(w, "null");
    PUT_LIT(w, ", \"retries\": ");
    cel__buf_append_int(w->b, s->retries);
    PUT_LIT(w, ", \"timelimit\": [");
    put_limit_or_null(w, s->time_limit);
    PUT_LIT(w, ", ");
    put_limit_or_null(w, s->soft_time_limit);
    PUT_LIT(w, "], \"root_id\": ");
    if (s->root_id)
        put_cstr(w, s->root_id);
    else
        put_span(w, id_text);
    PUT_LIT(w, ", \"parent_id\": ");
    put_str_or_null(w, s->parent_id);
    PUT_LIT(w, ", \"argsrepr\": ");
    if (!put_repr(w, args))
        return false;
    PUT_LIT(w, ", \"kwargsrepr\": ");
    if (!put_repr(w, kwargs))
        return false;
    PUT_LIT(w, ", \"origin\": ");
    if (s->origin) {
        put_cstr(w, s->origin);
    } else {
        size_t n;
        const char *o = default_origin(&n);
        put_str(w, o, n);
    }
    if (s->ignore_result)
        PUT_LIT(w, ", \"ignore_result\": true");
    else
        PUT_LIT(w, ", \"ignore_result\": false");
    /* Ours come last, and only when set: a message without them is
     * byte-identical to what it always was. */
    if (s->has_max_retries) {
        PUT_LIT(w, ", \"celeriac_max_retries\": ");
        cel__buf_append_int(w->b, s->max_retries);
    }
    if (s->retry_backoff > 0) {
        PUT_LIT(w, ", \"celeriac_retry_backoff\": ");
        put_limit_or_null(w, s->retry_backoff);
    }
    if (s->periodic_task_name) {
        PUT_LIT(w, ", \"periodic_task_name\": ");
        put_cstr(w, s->periodic_task_name);
    }
    PUT_LIT(w, "}, ");

    char tag[CEL_UUID_STRLEN + 1];
    cel__uuid4(tag);
    PUT_LIT(w, "\"properties\": {\"correlation_id\": ");
    put_span(w, id_text);
    PUT_LIT(w, ", \"reply_to\": ");
    put_cstr(w, s->reply_to ? s->reply_to : "");
    PUT_LIT(w, ", \"delivery_mode\": 2, \"delivery_info\": {\"exchange\": ");
    put_cstr(w, s->exchange ? s->exchange : "");
    PUT_LIT(w, ", \"routing_key\": ");
    put_cstr(w, s->queue ? s->queue : "celery");
    PUT_LIT(w, "}, \"priority\": ");
    cel__buf_append_int(w->b, s->priority);
    PUT_LIT(w, ", \"body_encoding\": \"base64\", \"delivery_tag\": ");
    put_str(w, tag, CEL_UUID_STRLEN);
    PUT_LIT(w, "}}");
    return true;
}

int cel__envelope_write(const struct cel_task_spec *spec, struct cel_buf *out, char id_out[37],
                        char *err, size_t errlen)
{
    if (!spec || !out)
        return cel__errf(err, errlen, CEL_EINVAL, "no task spec or output");
    cel__buf_reset(out);
    int rc = check_spec(spec, id_out != NULL, err, errlen);
    if (rc != CEL_OK)
        return rc;

    char idbuf[CEL_UUID_STRLEN + 1];
    const char *id = spec->id;
    if (!id) {
        cel__uuid4(idbuf);
        id = idbuf;
    }

    /* Two 1 KiB scratch areas live here: most args fit, and then a send
     * allocates nothing but its output. */
    struct arg args, kwargs;
    if ((rc = load_arg(&args, spec->args, spec->args_json, true, err, errlen)))
        return rc;
    if ((rc = load_arg(&kwargs, spec->kwargs, spec->kwargs_json, false, err, errlen))) {
        arg_release(&args);
        return rc;
    }

    struct writer w = {.b = out};
    PUT_LIT(&w, "{\"body\": \"");
    bool ok = put_body(&w, &args, &kwargs, spec->embed) && put_rest(&w, spec, id, &args, &kwargs);
    arg_release(&args);
    arg_release(&kwargs);

    int full = out->err;
    if (!ok || w.bad || full != CEL_OK) {
        cel__buf_reset(out);
        /* Inputs were validated above; what is left is the size cap,
         * memory, or a string that is not UTF-8 (jansson refused those
         * too). */
        if (full == CEL_ETOOBIG && ok && !w.bad)
            return cel__errf(err, errlen, CEL_ETOOBIG, "message is larger than %zu bytes",
                             out->max ? out->max : SIZE_MAX / 2);
        if (full != CEL_OK && ok && !w.bad)
            return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
        return cel__errf(err, errlen, CEL_EINVAL, BAD_STRING_MSG);
    }
    cel__buf_cstr(out);
    if (id_out) {
        size_t n = strlen(id);
        memcpy(id_out, id, n + 1);
    }
    return CEL_OK;
}
