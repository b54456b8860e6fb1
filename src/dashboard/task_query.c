/* task_query.c - see task_query.h. */
#include "dashboard/task_query.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/errbuf.h"

static const struct {
    const char *name;
    unsigned bit;
} state_names[] = {
    {"PENDING", CEL_DASH_PENDING}, {"RECEIVED", CEL_DASH_RECEIVED}, {"STARTED", CEL_DASH_STARTED},
    {"SUCCESS", CEL_DASH_SUCCESS}, {"FAILURE", CEL_DASH_FAILURE},   {"RETRY", CEL_DASH_RETRY},
    {"REVOKED", CEL_DASH_REVOKED}, {"REJECTED", CEL_DASH_REJECTED},
};

static const struct {
    const char *name;
    enum cel_dash_task_sort sort;
} sort_names[] = {
    {"timestamp", CEL_DASH_SORT_TIMESTAMP}, {"received", CEL_DASH_SORT_RECEIVED},
    {"started", CEL_DASH_SORT_STARTED},     {"succeeded", CEL_DASH_SORT_SUCCEEDED},
    {"failed", CEL_DASH_SORT_FAILED},       {"name", CEL_DASH_SORT_NAME},
    {"state", CEL_DASH_SORT_STATE},         {"worker", CEL_DASH_SORT_WORKER},
    {"runtime", CEL_DASH_SORT_RUNTIME},     {"retries", CEL_DASH_SORT_RETRIES},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

void cel__dash_task_query_init(struct cel_dash_task_query *q)
{
    memset(q, 0, sizeof *q);
    q->limit = CEL_DASH_QUERY_LIMIT_DEFAULT;
}

unsigned cel__dash_task_state_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < COUNT(state_names); i++)
        if (strlen(state_names[i].name) == len && strncasecmp(state_names[i].name, name, len) == 0)
            return state_names[i].bit;
    return 0;
}

const char *cel__dash_task_state_name(unsigned bit)
{
    for (size_t i = 0; i < COUNT(state_names); i++)
        if (state_names[i].bit == bit)
            return state_names[i].name;
    return NULL;
}

/* Reads exactly `width` digits at *p; -1 when they are not there. */
static int digits(const char **p, const char *end, int width)
{
    int v = 0;
    for (int i = 0; i < width; i++, (*p)++) {
        if (*p >= end || !isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 12)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool cel__dash_parse_time(const char *s, size_t len, double *out)
{
    const char *p = s, *end = s + len;
    if (all_digits(s, len)) { /* Unix seconds */
        double v = 0;
        for (size_t i = 0; i < len; i++)
            v = v * 10 + (s[i] - '0');
        *out = v;
        return true;
    }
    struct tm tm = {0};
    int y = digits(&p, end, 4);
    if (y < 1970 || p >= end || *p++ != '-')
        return false;
    int mo = digits(&p, end, 2);
    if (mo < 1 || mo > 12 || p >= end || *p++ != '-')
        return false;
    int d = digits(&p, end, 2);
    if (d < 1 || d > 31)
        return false;
    int hh = 0, mm = 0, ss = 0;
    if (p < end && (*p == 'T' || *p == ' ')) { /* ' ': Flower's received_start */
        p++;
        hh = digits(&p, end, 2);
        if (hh < 0 || hh > 23 || p >= end || *p++ != ':')
            return false;
        mm = digits(&p, end, 2);
        if (mm < 0 || mm > 59)
            return false;
        if (p < end && *p == ':') {
            p++;
            ss = digits(&p, end, 2);
            if (ss < 0 || ss > 60)
                return false;
        }
    }
    if (p < end && *p == 'Z')
        p++;
    if (p != end)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out = (double)t;
    return true;
}

/* Copies a value into a fixed field; false when it does not fit. */
static bool copy_value(char *dst, const char *v, size_t len)
{
    if (len == 0 || len >= CEL_DASH_QUERY_VALUE_MAX || memchr(v, '\0', len))
        return false;
    memcpy(dst, v, len);
    dst[len] = '\0';
    return true;
}

static bool parse_size(const char *v, size_t len, size_t *out)
{
    if (!all_digits(v, len))
        return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n = n * 10 + (size_t)(v[i] - '0');
    *out = n;
    return true;
}

/* One or more comma-separated state names, OR'd into q->states. */
static bool add_states(struct cel_dash_task_query *q, const char *v, size_t len)
{
    const char *end = v + len;
    if (len == 0)
        return false;
    while (v <= end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *stop = comma ? comma : end;
        unsigned bit = cel__dash_task_state_bit(v, (size_t)(stop - v));
        if (!bit)
            return false;
        q->states |= bit;
        v = stop + 1;
    }
    return true;
}

/* `field`, `-field`, `field:asc` or `field:desc`. */
static bool set_sort(struct cel_dash_task_query *q, const char *v, size_t len)
{
    bool ascending = true;
    if (len > 0 && v[0] == '-') {
        ascending = false;
        v++;
        len--;
    }
    const char *colon = memchr(v, ':', len);
    size_t flen = colon ? (size_t)(colon - v) : len;
    if (colon) {
        const char *dir = colon + 1;
        size_t dlen = len - flen - 1;
        if (dlen == 3 && strncasecmp(dir, "asc", 3) == 0)
            ascending = true;
        else if (dlen == 4 && strncasecmp(dir, "desc", 4) == 0)
            ascending = false;
        else
            return false;
    }
    for (size_t i = 0; i < COUNT(sort_names); i++)
        if (strlen(sort_names[i].name) == flen && strncmp(sort_names[i].name, v, flen) == 0) {
            q->sort = sort_names[i].sort;
            q->ascending = ascending;
            return true;
        }
    return false;
}

static int bad_value(char *why, size_t whylen, const char *key, size_t klen, const char *v,
                     size_t vlen, size_t at)
{
    return cel__errf(why, whylen, CEL_EINVAL, "bad value '%.*s' for '%.*s' at %zu",
                     (int)(vlen > 64 ? 64 : vlen), v, (int)klen, key, at);
}

/* Applies key:value; `at` is the term's offset, for messages. */
static int apply(struct cel_dash_task_query *q, const char *key, size_t klen, const char *v,
                 size_t vlen, size_t at, char *why, size_t whylen)
{
#define KEY(s) (klen == sizeof(s) - 1 && strncasecmp(key, s, klen) == 0)
    bool ok;
    if (KEY("state"))
        ok = add_states(q, v, vlen);
    else if (KEY("name"))
        ok = copy_value(q->name, v, vlen);
    else if (KEY("worker"))
        ok = copy_value(q->worker, v, vlen);
    else if (KEY("queue"))
        ok = copy_value(q->queue, v, vlen);
    else if (KEY("after"))
        ok = cel__dash_parse_time(v, vlen, &q->after);
    else if (KEY("before"))
        ok = cel__dash_parse_time(v, vlen, &q->before);
    else if (KEY("sort"))
        ok = set_sort(q, v, vlen);
    else if (KEY("limit"))
        ok =
            parse_size(v, vlen, &q->limit) && q->limit >= 1 && q->limit <= CEL_DASH_QUERY_LIMIT_MAX;
    else if (KEY("offset"))
        ok = parse_size(v, vlen, &q->offset);
    else
        return cel__errf(why, whylen, CEL_EINVAL, "unknown key '%.*s' at %zu",
                         (int)(klen > 64 ? 64 : klen), key, at);
#undef KEY
    return ok ? CEL_OK : bad_value(why, whylen, key, klen, v, vlen, at);
}

static int add_word(struct cel_dash_task_query *q, const char *w, size_t len, size_t at, char *why,
                    size_t whylen)
{
    if (q->nwords == CEL_DASH_QUERY_WORDS_MAX)
        return cel__errf(why, whylen, CEL_EINVAL, "more than %d search words at %zu",
                         CEL_DASH_QUERY_WORDS_MAX, at);
    if (!copy_value(q->words[q->nwords], w, len))
        return cel__errf(why, whylen, CEL_EINVAL, "search word too long at %zu", at);
    q->nwords++;
    return CEL_OK;
}

/*
 * Reads one token at *p: a quoted string (no escapes: a query names
 * values, it does not need to spell a quote) or a run of non-space bytes
 * up to `stop` (':' for a key, or none). Sets [*s, *len) to its text.
 */
static int token(const char **p, char stop, const char **s, size_t *len, const char *text,
                 char *why, size_t whylen)
{
    if (**p == '"') {
        const char *close = strchr(*p + 1, '"');
        if (!close)
            return cel__errf(why, whylen, CEL_EINVAL, "unterminated quote at %zu",
                             (size_t)(*p - text));
        *s = *p + 1;
        *len = (size_t)(close - *s);
        *p = close + 1;
        return CEL_OK;
    }
    *s = *p;
    while (**p && !isspace((unsigned char)**p) && **p != stop)
        (*p)++;
    *len = (size_t)(*p - *s);
    return CEL_OK;
}

static int parse_into(const char *text, struct cel_dash_task_query *q, char *why, size_t whylen)
{
    const char *p = text;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return CEL_OK;
        size_t at = (size_t)(p - text);
        const char *s;
        size_t len;
        int rc = token(&p, ':', &s, &len, text, why, whylen);
        if (rc)
            return rc;
        if (*p != ':') { /* a bare word, or a quoted phrase */
            if (*p && !isspace((unsigned char)*p))
                return cel__errf(why, whylen, CEL_EINVAL, "unexpected '%c' at %zu", *p,
                                 (size_t)(p - text));
            if (len == 0)
                continue; /* "" */
            rc = add_word(q, s, len, at, why, whylen);
        } else {
            if (len == 0)
                return cel__errf(why, whylen, CEL_EINVAL, "missing key before ':' at %zu", at);
            p++;
            const char *v;
            size_t vlen;
            rc = token(&p, '\0', &v, &vlen, text, why, whylen);
            if (rc == CEL_OK && *p && !isspace((unsigned char)*p))
                rc = cel__errf(why, whylen, CEL_EINVAL, "unexpected '%c' at %zu", *p,
                               (size_t)(p - text));
            if (rc == CEL_OK)
                rc = apply(q, s, len, v, vlen, at, why, whylen);
        }
        if (rc)
            return rc;
    }
}

int cel__dash_task_query_parse(const char *text, struct cel_dash_task_query *q, char *why,
                               size_t whylen)
{
    cel__dash_task_query_init(q);
    return text ? parse_into(text, q, why, whylen) : CEL_OK;
}

int cel__dash_task_query_from_flower(const char *const *keys, const char *const *values, size_t n,
                                     struct cel_dash_task_query *q, char *why, size_t whylen)
{
    cel__dash_task_query_init(q);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i], *v = values[i] ? values[i] : "";
        size_t vlen = strlen(v);
        int rc = CEL_OK;
        if (vlen == 0)
            continue; /* Flower's forms send empty fields for "any" */
        if (strcmp(k, "state") == 0)
            rc = apply(q, "state", 5, v, vlen, 0, why, whylen);
        else if (strcmp(k, "taskname") == 0)
            rc = apply(q, "name", 4, v, vlen, 0, why, whylen);
        else if (strcmp(k, "workername") == 0)
            rc = apply(q, "worker", 6, v, vlen, 0, why, whylen);
        else if (strcmp(k, "limit") == 0 || strcmp(k, "offset") == 0)
            rc = apply(q, k, strlen(k), v, vlen, 0, why, whylen);
        else if (strcmp(k, "sort_by") == 0)
            rc = apply(q, "sort", 4, v, vlen, 0, why, whylen);
        else if (strcmp(k, "received_start") == 0)
            rc = apply(q, "after", 5, v, vlen, 0, why, whylen);
        else if (strcmp(k, "received_end") == 0)
            rc = apply(q, "before", 6, v, vlen, 0, why, whylen);
        else if (strcmp(k, "search") == 0 && parse_into(v, q, why, whylen) != CEL_OK)
            return CEL_EINVAL; /* its message names the search's own key */
        if (rc)                /* name the parameter the caller sent, not our key */
            return cel__errf(why, whylen, CEL_EINVAL, "bad value '%.64s' for '%s'", v, k);
    }
    return CEL_OK;
}
