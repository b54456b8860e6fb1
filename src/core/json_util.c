/*
 * json_util.c - Python-compatible dumping.
 *
 * jansson's own dumper differs from Python's json.dumps in three visible
 * ways: it writes \u escapes in upper case, it leaves DEL (0x7f) raw, and
 * it prints reals with 17 significant digits ("0.10000000000000001").
 * Celery tooling compares and hashes messages as text, and golden tests
 * are easiest to review when we write what Python writes, so the dumper
 * here is our own: a short recursive walk over jansson values.
 */
#include "core/json_util.h"

#include "core/strbuf.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_escape.h"

/* Dumping recursion guard; parsed input is far shallower (max_depth). */
#define DUMP_MAX_DEPTH 4096

/* --- dumping ------------------------------------------------------------- */

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

/* Plain text is copied with room for itself only; the first byte that
 * needs an escape reserves the worst case for the rest, so a long plain
 * string (a base64 result) never reserves six times its size. jansson
 * strings are UTF-8, so REPLACE never changes a parsed or built value;
 * if one were not, U+FFFD keeps the output valid JSON. */
static void dump_string(struct cel_strbuf *b, const char *s, size_t n)
{
    size_t plain, k = 0;
    if (n > SIZE_MAX / 8) {
        b->oom = true;
        return;
    }
    if (!cel__strbuf_reserve(b, n + 2))
        return;
    b->p[b->len++] = '"';
    b->len += plain = cel__json_escape_plain(b->p + b->len, s, n);
    if (plain < n && cel__strbuf_reserve(b, cel__json_escape_bound(n - plain) + 1))
        cel__json_escape(b->p + b->len, s + plain, n - plain, &k, CEL_JSON_ESCAPE_REPLACE);
    b->len += k;
    b->p[b->len++] = '"';
}

/* %lld without printf's machinery: integers are most of what args hold. */
static void dump_int(struct cel_strbuf *b, json_int_t v)
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
    cel__strbuf_add(b, tmp + i, sizeof tmp - i);
}

static bool dump_value(struct cel_strbuf *b, const json_t *v, int depth)
{
    char num[64];

    if (depth > DUMP_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_NULL:
        cel__strbuf_add(b, "null", 4);
        return true;
    case JSON_TRUE:
        cel__strbuf_add(b, "true", 4);
        return true;
    case JSON_FALSE:
        cel__strbuf_add(b, "false", 5);
        return true;
    case JSON_INTEGER:
        dump_int(b, json_integer_value(v));
        return true;
    case JSON_REAL:
        format_real(json_real_value(v), num, sizeof num);
        cel__strbuf_adds(b, num);
        return true;
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        return true;
    case JSON_ARRAY: {
        cel__strbuf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                cel__strbuf_add(b, ", ", 2);
            if (!dump_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        cel__strbuf_add(b, "]", 1);
        return true;
    }
    case JSON_OBJECT: {
        cel__strbuf_add(b, "{", 1);
        bool first = true;
        /* jansson >= 2.8 iterates in insertion order, which is what makes
         * a parsed envelope re-encode to the same bytes. */
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                cel__strbuf_add(b, ", ", 2);
            first = false;
            dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            cel__strbuf_add(b, ": ", 2);
            if (!dump_value(b, json_object_iter_value(it), depth + 1))
                return false;
        }
        cel__strbuf_add(b, "}", 1);
        return true;
    }
    }
    return false;
}

char *cel__json_dump(const json_t *v)
{
    if (!v)
        return NULL;
    struct cel_strbuf b = {0};
    if (!cel__strbuf_reserve(&b, 64) || !dump_value(&b, v, 0)) {
        free(b.p);
        return NULL;
    }
    return cel__strbuf_finish(&b);
}
