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

#include "core/buf.h"
#include "core/json_parse.h"

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
static void dump_string(struct cel_buf *b, const char *s, size_t n)
{
    size_t plain, k = 0;
    if (n > SIZE_MAX / 8) {
        cel__buf_fail(b, CEL_ETOOBIG);
        return;
    }
    if (cel__buf_reserve(b, n + 2) != CEL_OK)
        return;
    b->data[b->len++] = '"';
    b->len += plain = cel__json_escape_plain(b->data + b->len, s, n);
    if (plain < n && cel__buf_reserve(b, cel__json_escape_bound(n - plain) + 1) == CEL_OK)
        cel__json_escape(b->data + b->len, s + plain, n - plain, &k, CEL_JSON_ESCAPE_REPLACE);
    b->len += k;
    b->data[b->len++] = '"';
}

static bool dump_value(struct cel_buf *b, const json_t *v, int depth)
{
    char num[64];

    if (depth > DUMP_MAX_DEPTH)
        return false;
    switch (json_typeof(v)) {
    case JSON_NULL:
        cel__buf_append(b, "null", 4);
        return true;
    case JSON_TRUE:
        cel__buf_append(b, "true", 4);
        return true;
    case JSON_FALSE:
        cel__buf_append(b, "false", 5);
        return true;
    case JSON_INTEGER:
        cel__buf_append_int(b, json_integer_value(v));
        return true;
    case JSON_REAL:
        format_real(json_real_value(v), num, sizeof num);
        cel__buf_appends(b, num);
        return true;
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        return true;
    case JSON_ARRAY: {
        cel__buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                cel__buf_append(b, ", ", 2);
            if (!dump_value(b, json_array_get(v, i), depth + 1))
                return false;
        }
        cel__buf_append(b, "]", 1);
        return true;
    }
    case JSON_OBJECT: {
        cel__buf_append(b, "{", 1);
        bool first = true;
        /* jansson >= 2.8 iterates in insertion order, which is what makes
         * a parsed envelope re-encode to the same bytes. */
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                cel__buf_append(b, ", ", 2);
            first = false;
            dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            cel__buf_append(b, ": ", 2);
            if (!dump_value(b, json_object_iter_value(it), depth + 1))
                return false;
        }
        cel__buf_append(b, "}", 1);
        return true;
    }
    }
    return false;
}

char *cel__json_dump(const json_t *v)
{
    if (!v)
        return NULL;
    struct cel_buf b = {0};
    if (cel__buf_reserve(&b, 64) != CEL_OK || !dump_value(&b, v, 0)) {
        cel__buf_release(&b);
        return NULL;
    }
    return cel__buf_take(&b, NULL);
}

const char *cel__json_cstr(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && strlen(s) == json_string_length(v) ? s : NULL;
}
