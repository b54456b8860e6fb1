/*
 * repr.c - see repr.h.
 *
 * Kept apart from message.c, which parses and validates envelopes: this
 * only formats values for display.
 */
#include "proto/repr.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "core/buf.h"
#include "proto/message.h" /* CEL_MESSAGE_MAX_DEPTH */

/*
 * repr() of a str: single quotes unless the text has a ' and no ", the
 * usual backslash escapes, \xNN for control characters. Non-ASCII text
 * stays as it is except the few invisible code points we can name
 * cheaply (C1 controls, NBSP, soft hyphen, line/paragraph separators);
 * Python's full isprintable() table is not worth carrying for a header
 * that is only ever displayed.
 */
static void repr_string(struct cel_buf *b, const char *s, size_t n)
{
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char q = has_single && !has_double ? '"' : '\'';
    char esc[16];

    cel__buf_append(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != (unsigned char)q && c != '\\') {
            /* a run of printable ASCII goes in one piece */
            size_t j = i + 1;
            while (j < n && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] < 0x7f &&
                   s[j] != q && s[j] != '\\')
                j++;
            cel__buf_append(b, s + i, j - i);
            i = j - 1;
            continue;
        }
        if (c == (unsigned char)q || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            cel__buf_append(b, esc, 2);
        } else if (c == '\n') {
            cel__buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            cel__buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            cel__buf_append(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            cel__buf_appends(b, esc);
        } else if (c == 0xc2 && i + 1 < n &&
                   (((unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0xa0) ||
                    (unsigned char)s[i + 1] == 0xad)) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i + 1]);
            cel__buf_appends(b, esc);
            i++;
        } else if (c == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                   ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
            snprintf(esc, sizeof esc, "\\u%04x", 0x2000 + ((unsigned char)s[i + 2] - 0x80));
            cel__buf_appends(b, esc);
            i += 2;
        } else {
            cel__buf_append(b, (const char *)&s[i], 1);
        }
    }
    cel__buf_append(b, &q, 1);
}

static void repr_value(struct cel_buf *b, const json_t *v, bool top, int depth)
{
    if (depth > CEL_MESSAGE_MAX_DEPTH * 4) {
        cel__buf_appends(b, "...");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
        cel__buf_appends(b, "None");
        break;
    case JSON_TRUE:
        cel__buf_appends(b, "True");
        break;
    case JSON_FALSE:
        cel__buf_appends(b, "False");
        break;
    case JSON_INTEGER:
        cel__buf_append_int(b, json_integer_value(v));
        break;
    case JSON_REAL: {
        /* JSON's float text is Python's float repr (see json_util.c). */
        char *s = cel__json_dump(v);
        cel__buf_appends(b, s ? s : "0.0");
        free(s);
        break;
    }
    case JSON_STRING:
        repr_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        /* Celery reprs the args tuple: the top level is "(2, 3)" or "(2,)",
         * nested arrays are lists. */
        size_t n = json_array_size(v);
        cel__buf_appends(b, top ? "(" : "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                cel__buf_appends(b, ", ");
            repr_value(b, json_array_get(v, i), false, depth + 1);
        }
        cel__buf_appends(b, top ? (n == 1 ? ",)" : ")") : "]");
        break;
    }
    case JSON_OBJECT: {
        bool first = true;
        cel__buf_appends(b, "{");
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                cel__buf_appends(b, ", ");
            first = false;
            repr_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            cel__buf_appends(b, ": ");
            repr_value(b, json_object_iter_value(it), false, depth + 1);
        }
        cel__buf_appends(b, "}");
        break;
    }
    }
}

char *cel__json_pyrepr(const json_t *v, size_t max_len)
{
    struct cel_buf b = {0};
    if (!v)
        cel__buf_appends(&b, "None");
    else
        repr_value(&b, v, true, 0);
    if (b.err == CEL_OK && max_len && b.len > max_len) {
        size_t cut = max_len;
        /* never split a UTF-8 sequence: the header must stay valid text */
        while (cut > 0 && ((unsigned char)b.data[cut] & 0xc0) == 0x80)
            cut--;
        cel__buf_truncate(&b, cut);
        cel__buf_appends(&b, "...");
    }
    return cel__buf_take(&b, NULL);
}
