/*
 * json_escape.c - see json_escape.h.
 *
 * Most strings we write are plain ASCII (task names, UUIDs, base64), so
 * the common case is a copy, 8 bytes at a time; only a byte that needs
 * an escape leaves that loop.
 */
#include "core/json_escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* What each byte becomes: 0 copied as it is, a letter for the short
 * escapes (\" \\ \b \f \n \r \t), 'u' for \u00XX (other controls, DEL);
 * 'u' too for every non-ASCII byte, which starts a UTF-8 sequence. */
static const char escape[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f',  'r', 'u', 'u', /* 0x00 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0x10 */
    0,   0,   '"', 0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x20 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x30 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x40 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   '\\', 0,   0,   0,   /* 0x50 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   0,   /* 0x60 */
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,   'u', /* 0x70 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0x80 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0x90 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0xa0 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0xb0 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0xc0 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0xd0 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0xe0 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',  'u', 'u', 'u', /* 0xf0 */
};

#define ONES  (~(uint64_t)0 / 255) /* 0x0101...01 */
#define HIGHS (ONES * 0x80)

/* True when none of the 8 bytes in v needs escaping: the usual bit tricks
 * for "some byte is zero" and "some byte is less than n", which can give
 * false positives only above a true one, so are exact for "is there any". */
static inline bool plain8(uint64_t v)
{
    uint64_t ctl = (v - ONES * 0x20) & ~v;
    uint64_t quote = ((v ^ (ONES * '"')) - ONES) & ~(v ^ (ONES * '"'));
    uint64_t bslash = ((v ^ (ONES * '\\')) - ONES) & ~(v ^ (ONES * '\\'));
    uint64_t del = ((v ^ (ONES * 0x7f)) - ONES) & ~(v ^ (ONES * 0x7f));
    return ((ctl | quote | bslash | del | v) & HIGHS) == 0;
}

/* One UTF-8 sequence by jansson's rules (utf8_check_full), s[0] >= 0x80:
 * no overlong forms, no surrogates, nothing above U+10FFFF. Returns its
 * length, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || (len == 3 && c < 0x800) ||
        (len == 4 && c < 0x10000))
        return 0;
    *cp = c;
    return len;
}

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

size_t cel__json_escape_bound(size_t n)
{
    return n * 6;
}

size_t cel__json_escape_plain(char *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        if (!plain8(v))
            break;
        memcpy(out + i, &v, 8);
        i += 8;
    }
    /* The tail, or the bytes before the one that stopped the loop above. */
    while (i < n && !escape[s[i]]) {
        out[i] = (char)s[i];
        i++;
    }
    return i;
}

int cel__json_escape(char *out, const char *str, size_t n, size_t *written, unsigned flags)
{
    const unsigned char *s = (const unsigned char *)str;
    char *o = out;
    size_t i = 0;
    int rc = CEL_OK;
    for (;;) {
        size_t k = cel__json_escape_plain(o, str + i, n - i);
        o += k;
        i += k;
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            if (escape[c] == 'u') {
                o = put_u(o, c);
            } else {
                *o++ = '\\';
                *o++ = escape[c];
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_seq(s + i, n - i, &cp);
        if (len == 0) {
            if (!(flags & CEL_JSON_ESCAPE_REPLACE)) {
                rc = CEL_EINVAL;
                break;
            }
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
    *written = (size_t)(o - out);
    return rc;
}
