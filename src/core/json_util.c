/*
 * json_util.c - depth-limited parsing and Python-compatible dumping.
 *
 * jansson's own dumper differs from Python's json.dumps in three visible
 * ways: it writes \u escapes in upper case, it leaves DEL (0x7f) raw, and
 * it prints reals with 17 significant digits ("0.10000000000000001").
 * Celery tooling compares and hashes messages as text, and golden tests
 * are easiest to review when we write what Python writes, so the dumper
 * here is our own: a short recursive walk over jansson values.
 */
#include "core/json_util.h"

#include "core/json_parse.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Dumping recursion guard; parsed input is far shallower (max_depth). */
#define DUMP_MAX_DEPTH 4096

int cel__json_depth(const char *text, size_t len, int max_depth)
{
    int depth = 0, max_seen = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            /* Jump to the next quote (memchr is vectorised; envelopes are
             * mostly one long base64 string) and see whether it is escaped:
             * an odd run of backslashes before it escapes it. */
            const char *q = memchr(text + i, '"', len - i);
            if (!q)
                break;
            size_t at = (size_t)(q - text), slashes = 0;
            while (at - slashes > i && text[at - slashes - 1] == '\\')
                slashes++;
            i = at;
            if (slashes % 2 == 0)
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '[':
        case '{':
            if (++depth > max_seen) {
                max_seen = depth;
                if (max_seen > max_depth)
                    return max_depth + 1;
            }
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return max_seen;
}

json_t *cel__json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen)
{
    if (max_depth <= 0)
        max_depth = CEL_JSON_MAX_DEPTH;
    if (cel__json_depth(text, len, max_depth) > max_depth) {
        if (err && errlen)
            snprintf(err, errlen, "JSON nesting deeper than %d levels", max_depth);
        return NULL;
    }
    return cel__json_parse_prechecked(text, len, err, errlen);
}

json_t *cel__json_parse_prechecked(const char *text, size_t len, char *err, size_t errlen)
{
    /* Our own parser into jansson values: jansson's reads one character at
     * a time through a stream and was most of a worker child's time. The
     * caller checked the depth against its own limit; 2048 (jansson's
     * limit) is only a backstop here. */
    return cel__json_parse_fast(text, len, 2048, err, errlen);
}

/* --- dumping ------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static bool sb_grow(struct sbuf *b, size_t n)
{
    if (b->oom)
        return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

/* Room for n more bytes and the final NUL (written once, at the end). */
static inline bool sb_reserve(struct sbuf *b, size_t n)
{
    if (b->len + n < b->cap && !b->oom)
        return true;
    return sb_grow(b, n);
}

static inline void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_adds(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/*
 * Python's float repr: the shortest digit string that reads back to the
 * same double, in fixed notation when the decimal point lands within
 * (-4, 16], scientific ("1e+16", "1e-05") otherwise; always with a '.'
 * or an exponent so it stays a float.
 */
static void format_real(double d, char *out, size_t outlen)
{
    if (!isfinite(d)) {
        /* jansson cannot hold these; Python would write NaN/Infinity. */
        snprintf(out, outlen, "%s", isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp is "[-]d[.ddd]e[+-]XX": split into digits and exponent. */
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *p;
    int exp10 = (*p == 'e') ? (int)strtol(p + 1, NULL, 10) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';

    int decpt = exp10 + 1; /* digits before the decimal point */
    size_t o = 0;
    char buf[64];
    if (neg)
        buf[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                buf[o++] = '0';
            memcpy(buf + o, digits, nd);
            o += nd;
        } else if ((size_t)decpt >= nd) {
            memcpy(buf + o, digits, nd);
            o += nd;
            for (size_t i = nd; i < (size_t)decpt; i++)
                buf[o++] = '0';
            buf[o++] = '.';
            buf[o++] = '0';
        } else {
            memcpy(buf + o, digits, (size_t)decpt);
            o += (size_t)decpt;
            buf[o++] = '.';
            memcpy(buf + o, digits + decpt, nd - (size_t)decpt);
            o += nd - (size_t)decpt;
        }
        buf[o] = '\0';
    } else {
        buf[o++] = digits[0];
        if (nd > 1) {
            buf[o++] = '.';
            memcpy(buf + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        snprintf(buf + o, sizeof buf - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(out, outlen, "%s", buf);
}

/* Decodes one UTF-8 sequence; returns its length, or 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t c;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        c = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        c = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    *cp = c;
    return len;
}

/* 1 for bytes dump_string() cannot copy as they are: controls, '"',
 * '\\', DEL and everything non-ASCII (ensure_ascii). */
static const unsigned char special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50: '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* 0x70: DEL */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0 */
};

static char *put_u(char *o, uint32_t cp)
{
    static const char hex[] = "0123456789abcdef";
    o[0] = '\\';
    o[1] = 'u';
    o[2] = hex[cp >> 12 & 15];
    o[3] = hex[cp >> 8 & 15];
    o[4] = hex[cp >> 4 & 15];
    o[5] = hex[cp & 15];
    return o + 6;
}

#define ONES  (~(uint64_t)0 / 255) /* 0x0101...01 */
#define HIGHS (ONES * 0x80)

/* True when none of the 8 bytes in v is special: the usual bit tricks
 * for "some byte is zero" / "some byte is below n", exact for "any". */
static inline bool plain8(uint64_t v)
{
    uint64_t ctl = (v - ONES * 0x20) & ~v;
    uint64_t quote = ((v ^ (ONES * '"')) - ONES) & ~(v ^ (ONES * '"'));
    uint64_t bslash = ((v ^ (ONES * '\\')) - ONES) & ~(v ^ (ONES * '\\'));
    uint64_t del = ((v ^ (ONES * 0x7f)) - ONES) & ~(v ^ (ONES * 0x7f));
    return ((ctl | quote | bslash | del | v) & HIGHS) == 0;
}

/* Plain ASCII (names, ids, base64 bodies) is copied 8 bytes at a time.
 * An escape is at most 6 output bytes per input byte (a control
 * character; a 4-byte sequence becomes a 12-byte surrogate pair): the
 * first special byte reserves that much for the rest of the string, so
 * a long plain string never reserves more than it needs. */
static void dump_string(struct sbuf *b, const char *str, size_t n)
{
    if (n > SIZE_MAX / 8) {
        b->oom = true;
        return;
    }
    if (!sb_reserve(b, n + 2))
        return;
    const unsigned char *s = (const unsigned char *)str;
    char *o = b->p + b->len;
    bool roomy = false;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!plain8(v))
                break;
            memcpy(o, &v, 8);
            o += 8;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = s[i];
        if (!special[c]) {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (!roomy) {
            b->len = (size_t)(o - b->p);
            if (!sb_reserve(b, (n - i) * 6 + 1))
                return;
            o = b->p + b->len;
            roomy = true;
        }
        char e = 0;
        switch (c) {
        case '"':
            e = '"';
            break;
        case '\\':
            e = '\\';
            break;
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        case '\t':
            e = 't';
            break;
        case '\b':
            e = 'b';
            break;
        case '\f':
            e = 'f';
            break;
        default:
            break;
        }
        if (e) {
            *o++ = '\\';
            *o++ = e;
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            /* jansson validates UTF-8, so this is unreachable for parsed
             * values; keep going with U+FFFD rather than emit bad JSON. */
            cp = 0xfffd;
            len = 1;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            o = put_u(o, 0xd800 + (cp >> 10));
            o = put_u(o, 0xdc00 + (cp & 0x3ff));
        } else {
            o = put_u(o, cp);
        }
        i += len;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* %lld without printf's machinery: integers are most of what args hold. */
static void dump_int(struct sbuf *b, json_int_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    sb_add(b, tmp + i, sizeof tmp - i);
}

static bool dump_value(struct sbuf *b, const json_t *v, int depth)
{
    char num[64];

    if (depth > DUMP_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_NULL:
        sb_add(b, "null", 4);
        return true;
    case JSON_TRUE:
        sb_add(b, "true", 4);
        return true;
    case JSON_FALSE:
        sb_add(b, "false", 5);
        return true;
    case JSON_INTEGER:
        dump_int(b, json_integer_value(v));
        return true;
    case JSON_REAL:
        format_real(json_real_value(v), num, sizeof num);
        sb_adds(b, num);
        return true;
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        return true;
    case JSON_ARRAY: {
        sb_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                sb_add(b, ", ", 2);
            if (!dump_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        sb_add(b, "]", 1);
        return true;
    }
    case JSON_OBJECT: {
        sb_add(b, "{", 1);
        bool first = true;
        /* jansson >= 2.8 iterates in insertion order, which is what makes
         * a parsed envelope re-encode to the same bytes. */
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                sb_add(b, ", ", 2);
            first = false;
            dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            sb_add(b, ": ", 2);
            if (!dump_value(b, json_object_iter_value(it), depth + 1))
                return false;
        }
        sb_add(b, "}", 1);
        return true;
    }
    }
    return false;
}

char *cel__json_dump(const json_t *v)
{
    if (!v)
        return NULL;
    struct sbuf b = {0};
    if (!sb_reserve(&b, 64) || !dump_value(&b, v, 0) || b.oom) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0';
    return b.p;
}
