/*
 * json_parse.c - recursive descent over a byte span into jansson values.
 *
 * Strings are handled in two passes: scan_string() validates the whole
 * literal (escapes, surrogates, UTF-8, control characters) and notes
 * whether it holds escapes; only then is the value made, straight from
 * the input span when there are none (the common case: envelope bodies
 * are one long base64 string) or through unescape(), which can trust its
 * input. Keeping the unescape buffer in a leaf function, not in the
 * recursive frames, keeps deep nesting cheap on the stack.
 *
 * Accepted language = json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL), which
 * the differential fuzzer (fuzz/fuzz_json.c) checks; the error messages
 * are our own and carry the byte offset instead of line/column.
 */
#include "core/json_parse.h"

#include <errno.h>
#include <limits.h>
#include <langinfo.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/errbuf.h"

#define NOINLINE __attribute__((noinline))

/* The integer range check below is written for JSON_INTEGER_IS_LONG_LONG. */
_Static_assert(sizeof(json_int_t) == sizeof(long long), "json_int_t is long long");

/* Strings up to this many input bytes are unescaped on the stack. */
#define UNESCAPE_STACK 256
/* Reals up to this many characters are NUL-terminated on the stack. */
#define NUMBER_STACK 64

struct parser {
    const unsigned char *start, *p, *end;
    int depth, max_depth;
    size_t values_left, values_limit; /* values that may still be made, of how many */
    int code;                         /* CEL_E* of the failure: EJSON unless set otherwise */
    char *err;
    size_t errlen;
};

/* 1 for string bytes that need no attention: printable ASCII except
 * '"' and '\\'. Control characters, quote, backslash and every byte of
 * a multi-byte UTF-8 sequence stop the fast scan. */
static const unsigned char plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70: DEL is fine */
};

/* True when none of the 8 bytes at p is a control character, '"', '\\'
 * or >= 0x80 (the classic "has zero / has less than" bit tricks; each
 * may flag a false byte above a true one, never a byte when none is). */
static inline bool word_is_plain(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t w;
    memcpy(&w, p, sizeof w);
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t hit = ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w;
    return (hit & high) == 0;
}

/* Flags scan_string() reports about a valid string literal. */
#define STR_ESCAPED 1u /* holds at least one backslash escape */
#define STR_NUL     2u /* one of them is \u0000 */

static void fail_at(struct parser *ps, const unsigned char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(struct parser *ps, const unsigned char *at, const char *fmt, ...)
{
    if (!ps->err || !ps->errlen)
        return;
    int n = snprintf(ps->err, ps->errlen, "invalid JSON at byte %zu: ", (size_t)(at - ps->start));
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* "unexpected end of input" or "unexpected '<c>'" for the byte at p. */
static void fail_unexpected(struct parser *ps, const unsigned char *p, const char *expected)
{
    if (p >= ps->end)
        fail_at(ps, p, "unexpected end of input, expected %s", expected);
    else if (*p >= 0x21 && *p < 0x7f)
        fail_at(ps, p, "expected %s, got '%c'", expected, *p);
    else
        fail_at(ps, p, "expected %s, got byte 0x%02x", expected, *p);
}

static void fail_oom(struct parser *ps)
{
    ps->code = CEL_ENOMEM;
    if (ps->err && ps->errlen)
        snprintf(ps->err, ps->errlen, "out of memory");
}

static inline void skip_ws(struct parser *ps)
{
    const unsigned char *p = ps->p, *end = ps->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The code unit of "\uXXXX" at p (p points at the backslash), or -1. The
 * caller has checked that 6 bytes are there. */
static int32_t read_u_escape(const unsigned char *p)
{
    int32_t v = 0;
    for (int i = 2; i < 6; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence starting at p (first byte >= 0x80),
 * or 0 when it is invalid or truncated: Unicode's table 3-7 exactly, so
 * overlong forms, UTF-16 surrogates and code points past U+10FFFF fail. */
static size_t utf8_valid(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Validates the string literal whose opening quote is at ps->p. On
 * success sets *s and *n to its contents (between the quotes, still escaped),
 * *flags to STR_*, leaves ps->p after the closing quote and returns 0. */
static int scan_string(struct parser *ps, const unsigned char **s, size_t *n, unsigned *flags)
{
    const unsigned char *p = ps->p + 1, *end = ps->end;
    unsigned f = 0;

    for (;;) {
        /* The hot loop: eight bytes at a time while none needs a look. */
        while (end - p >= 8 && word_is_plain(p))
            p += 8;
        while (p < end && plain[*p])
            p++;
        if (p >= end) {
            fail_at(ps, p, "unterminated string");
            return -1;
        }
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c == '\\') {
            if (end - p < 2) {
                fail_at(ps, end, "unterminated string");
                return -1;
            }
            f |= STR_ESCAPED;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;
            case 'u':
                break;
            default:
                fail_at(ps, p, "invalid escape '\\%c'", p[1] >= 0x20 && p[1] < 0x7f ? p[1] : '?');
                return -1;
            }
            int32_t u = end - p >= 6 ? read_u_escape(p) : -1;
            if (u < 0) {
                fail_at(ps, p, "invalid \\u escape");
                return -1;
            }
            if (u >= 0xd800 && u <= 0xdbff) {
                /* A high surrogate must be followed by an escaped low one. */
                int32_t lo = -1;
                if (end - p >= 12 && p[6] == '\\' && p[7] == 'u')
                    lo = read_u_escape(p + 6);
                if (lo < 0xdc00 || lo > 0xdfff) {
                    fail_at(ps, p, "invalid UTF-16 surrogate pair");
                    return -1;
                }
                p += 12;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                fail_at(ps, p, "lone UTF-16 low surrogate");
                return -1;
            } else {
                if (u == 0)
                    f |= STR_NUL;
                p += 6;
            }
            continue;
        }
        if (c < 0x20) {
            fail_at(ps, p, "control character 0x%02x in string", c);
            return -1;
        }
        size_t k = utf8_valid(p, end);
        if (!k) {
            fail_at(ps, p, "invalid UTF-8 byte 0x%02x", c);
            return -1;
        }
        p += k;
    }
    *s = ps->p + 1;
    *n = (size_t)(p - *s);
    *flags = f;
    ps->p = p + 1;
    return 0;
}

static char *put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* Decodes a literal that scan_string() accepted into out, which has room
 * for n bytes (decoding never grows: "\uXXXX" is 6 bytes for at most 3,
 * a surrogate pair 12 for 4). Returns the decoded length. */
static size_t unescape(const unsigned char *s, size_t n, char *out)
{
    const unsigned char *end = s + n;
    char *o = out;
    while (s < end) {
        const unsigned char *bs = memchr(s, '\\', (size_t)(end - s));
        size_t run = (size_t)((bs ? bs : end) - s);
        memcpy(o, s, run);
        o += run;
        if (!bs)
            break;
        s = bs + 2;
        switch (bs[1]) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            uint32_t cp = (uint32_t)read_u_escape(bs);
            s = bs + 6;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo = (uint32_t)read_u_escape(bs + 6);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s = bs + 12;
            }
            o = put_utf8(o, cp);
            break;
        }
        default: /* '"', '\\', '/' stand for themselves */
            *o++ = (char)bs[1];
            break;
        }
    }
    return (size_t)(o - out);
}

/* Returns the buffer to unescape n bytes into: stack when it is enough,
 * else the heap (*heap set, caller frees). NULL on OOM. */
static char *unescape_buffer(char *stack, size_t n, char **heap)
{
    *heap = NULL;
    if (n <= UNESCAPE_STACK)
        return stack;
    *heap = malloc(n);
    return *heap;
}

static NOINLINE json_t *parse_string(struct parser *ps)
{
    const unsigned char *s;
    size_t n;
    unsigned flags;
    if (scan_string(ps, &s, &n, &flags) != 0)
        return NULL;

    json_t *v;
    if (!(flags & STR_ESCAPED)) {
        v = json_stringn_nocheck((const char *)s, n);
    } else {
        char stack[UNESCAPE_STACK], *heap;
        char *buf = unescape_buffer(stack, n, &heap);
        if (!buf) {
            fail_oom(ps);
            return NULL;
        }
        v = json_stringn_nocheck(buf, unescape(s, n, buf));
        free(heap);
    }
    if (!v)
        fail_oom(ps);
    return v;
}

/* Stores value under the key literal s/n (still escaped); steals value. */
static NOINLINE int set_member(struct parser *ps, json_t *obj, const unsigned char *s, size_t n,
                               unsigned flags, json_t *value)
{
    int rc;
    if (!(flags & STR_ESCAPED)) {
        rc = json_object_setn_new_nocheck(obj, (const char *)s, n, value);
    } else {
        char stack[UNESCAPE_STACK], *heap;
        char *buf = unescape_buffer(stack, n, &heap);
        if (!buf) {
            json_decref(value);
            fail_oom(ps);
            return -1;
        }
        rc = json_object_setn_new_nocheck(obj, buf, unescape(s, n, buf), value);
        free(heap);
    }
    if (rc != 0)
        fail_oom(ps);
    return rc;
}

/* Names the number, as jansson does ("near '...'"): a worker reports
 * this to the client, and 2**64 in a Python message is the usual cause. */
static void fail_number(struct parser *ps, const unsigned char *start, const unsigned char *end,
                        const char *what)
{
    int n = (int)(end - start);
    if (n > 40)
        fail_at(ps, start, "%s near '%.40s...'", what, (const char *)start);
    else
        fail_at(ps, start, "%s near '%.*s'", what, n, (const char *)start);
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static NOINLINE json_t *parse_number(struct parser *ps)
{
    const unsigned char *start = ps->p, *p = start, *end = ps->end;
    bool neg = false, real = false;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!is_digit(p, end)) {
        fail_unexpected(ps, p, "a digit");
        return NULL;
    }
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
        if (is_digit(p, end)) {
            fail_at(ps, digits, "leading zero in number");
            return NULL;
        }
    } else {
        while (is_digit(p, end))
            p++;
    }
    size_t ndigits = (size_t)(p - digits);
    if (p < end && *p == '.') {
        real = true;
        p++;
        if (!is_digit(p, end)) {
            fail_unexpected(ps, p, "a digit after '.'");
            return NULL;
        }
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end)) {
            fail_unexpected(ps, p, "a digit in exponent");
            return NULL;
        }
        while (is_digit(p, end))
            p++;
    }

    json_t *v;
    if (!real) {
        /* 19 digits always fit in uint64; compare against the limit of
         * json_int_t for the sign (LLONG_MIN's magnitude is MAX + 1). */
        uint64_t mag = 0, limit = neg ? (uint64_t)LLONG_MAX + 1 : (uint64_t)LLONG_MAX;
        bool big = ndigits > 19;
        for (size_t i = 0; i < ndigits && !big; i++)
            mag = mag * 10 + (uint64_t)(digits[i] - '0');
        if (big || mag > limit) {
            fail_number(ps, start, p, neg ? "too big negative integer" : "too big integer");
            return NULL;
        }
        json_int_t iv = neg ? (mag == limit ? LLONG_MIN : -(json_int_t)mag) : (json_int_t)mag;
        v = json_integer(iv);
    } else {
        /* strtod needs a NUL-terminated copy, and the locale's decimal
         * point, as jansson does, so results match it under any locale. */
        size_t n = (size_t)(p - start);
        char stack[NUMBER_STACK], *heap = NULL, *buf = stack;
        if (n >= sizeof stack) {
            buf = heap = malloc(n + 1);
            if (!buf) {
                fail_oom(ps);
                return NULL;
            }
        }
        memcpy(buf, start, n);
        buf[n] = '\0';
        char point = *nl_langinfo(RADIXCHAR); /* thread-safe, unlike localeconv() */
        if (point != '.' && point != '\0') {
            char *dot = memchr(buf, '.', n);
            if (dot)
                *dot = point;
        }
        errno = 0;
        double d = strtod(buf, NULL);
        int e = errno;
        free(heap);
        if (e == ERANGE && isinf(d)) {
            fail_number(ps, start, p, "real number overflow");
            return NULL;
        }
        v = json_real(d);
    }
    if (!v) {
        fail_oom(ps);
        return NULL;
    }
    ps->p = p;
    return v;
}

static json_t *parse_value(struct parser *ps);

static bool enter(struct parser *ps)
{
    if (++ps->depth > ps->max_depth) {
        ps->code = CEL_EDEPTH;
        if (ps->err && ps->errlen)
            snprintf(ps->err, ps->errlen, "JSON nesting deeper than %d levels", ps->max_depth);
        return false;
    }
    return true;
}

static json_t *parse_array(struct parser *ps)
{
    if (!enter(ps))
        return NULL;
    json_t *arr = json_array();
    if (!arr) {
        fail_oom(ps);
        return NULL;
    }
    ps->p++; /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        ps->depth--;
        return arr;
    }
    for (;;) {
        json_t *item = parse_value(ps);
        if (!item)
            goto fail;
        if (json_array_append_new(arr, item) != 0) {
            fail_oom(ps);
            goto fail;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            ps->depth--;
            return arr;
        }
        fail_unexpected(ps, ps->p, "',' or ']'");
        goto fail;
    }
fail:
    json_decref(arr);
    return NULL;
}

static json_t *parse_object(struct parser *ps)
{
    if (!enter(ps))
        return NULL;
    json_t *obj = json_object();
    if (!obj) {
        fail_oom(ps);
        return NULL;
    }
    ps->p++; /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        ps->depth--;
        return obj;
    }
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') {
            fail_unexpected(ps, ps->p, "a string key");
            goto fail;
        }
        const unsigned char *key_at = ps->p, *key;
        size_t keylen;
        unsigned flags;
        if (scan_string(ps, &key, &keylen, &flags) != 0)
            goto fail;
        /* jansson refuses these even with JSON_ALLOW_NUL, and code that
         * reads keys as C strings would see "a\u0000b" as "a". */
        if (flags & STR_NUL) {
            fail_at(ps, key_at, "NUL byte in object key not supported");
            goto fail;
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            fail_unexpected(ps, ps->p, "':'");
            goto fail;
        }
        ps->p++;
        skip_ws(ps);
        json_t *value = parse_value(ps);
        if (!value || set_member(ps, obj, key, keylen, flags, value) != 0)
            goto fail;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            ps->depth--;
            return obj;
        }
        fail_unexpected(ps, ps->p, "',' or '}'");
        goto fail;
    }
fail:
    json_decref(obj);
    return NULL;
}

static json_t *parse_literal(struct parser *ps, const char *word, size_t n, json_t *value)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        fail_at(ps, ps->p, "invalid literal, expected '%s'", word);
        return NULL;
    }
    ps->p += n;
    return value;
}

/* Parses the value at ps->p (whitespace already skipped). */
static json_t *parse_value(struct parser *ps)
{
    if (ps->p >= ps->end) {
        fail_unexpected(ps, ps->p, "a value");
        return NULL;
    }
    /* Counted before it is made: a flood of small values is refused
     * before it has cost the memory. */
    if (ps->values_left == 0) {
        ps->code = CEL_ETOOBIG;
        if (ps->err && ps->errlen)
            snprintf(ps->err, ps->errlen, "JSON text has more than %zu values", ps->values_limit);
        return NULL;
    }
    ps->values_left--;
    switch (*ps->p) {
    case '{':
        return parse_object(ps);
    case '[':
        return parse_array(ps);
    case '"':
        return parse_string(ps);
    case 't':
        return parse_literal(ps, "true", 4, json_true());
    case 'f':
        return parse_literal(ps, "false", 5, json_false());
    case 'n':
        return parse_literal(ps, "null", 4, json_null());
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(ps);
    default:
        fail_unexpected(ps, ps->p, "a value");
        return NULL;
    }
}

int cel__json_parse_limited(const char *text, size_t len, const struct cel_json_limits *lim,
                            json_t **out, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)(text ? text : "");
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : CEL_JSON_MAX_BYTES;
    size_t max_values = lim && lim->max_values ? lim->max_values : CEL_JSON_MAX_VALUES;
    struct parser ps = {
        .start = s,
        .p = s,
        .end = s + (text ? len : 0),
        .depth = 0,
        .max_depth = lim && lim->max_depth > 0 ? lim->max_depth : CEL_JSON_MAX_DEPTH,
        .values_left = max_values,
        .values_limit = max_values,
        .code = CEL_EJSON,
        .err = err,
        .errlen = errlen,
    };
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (text && len > max_bytes)
        return cel__errf(err, errlen, CEL_ETOOBIG, "JSON text is %zu bytes, limit is %zu", len,
                         max_bytes);

    skip_ws(&ps);
    json_t *v = parse_value(&ps);
    if (!v)
        return ps.code;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail_at(&ps, ps.p, "unexpected data after the JSON value");
        json_decref(v);
        return CEL_EJSON;
    }
    *out = v;
    return CEL_OK;
}

json_t *cel__json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen)
{
    const struct cel_json_limits lim = {.max_depth = max_depth};
    json_t *v;
    cel__json_parse_limited(text, len, &lim, &v, err, errlen);
    return v;
}
