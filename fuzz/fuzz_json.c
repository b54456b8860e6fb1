/*
 * fuzz_json.c - differential target: cel__json_parse() against
 * json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL) on the same bytes.
 *
 * Both must accept or both refuse, and accepted values must be identical:
 * same types (1 vs 1.0), same bits for reals (-0.0), same key order. Our
 * depth limit is set to jansson's (2047 containers, see DIFF_DEPTH; at
 * 2048 jansson accepts only an empty innermost one), and further parses
 * check the limits: a small depth limit cuts exactly where the accepted
 * value nests too deep, and a value-count limit exactly where it has too
 * many values, each with its own error code. abort() on a mismatch.
 *
 * One deliberate difference: jansson's lexer loses a NUL byte that
 * directly follows a number or a true/false/null (it "ungets" the byte
 * into a buffer where NUL means empty), so it accepts "1\0" and
 * "[true\0]". Such bytes are not JSON and we refuse them; the check below
 * allows exactly that case by comparing against the text without them.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_parse.h"

#define JANSSON_MAX_DEPTH 2048 /* JSON_PARSER_MAX_DEPTH in jansson's load.c */
/* jansson counts the scalar inside the innermost container as a level
 * too: 2047 containers always pass, 2048 only when the innermost is empty. */
#define DIFF_DEPTH  (JANSSON_MAX_DEPTH - 1)
#define SMALL_DEPTH 4

/* Containers on the deepest path of a parsed value: what the depth limit
 * counts, worked out from the value instead of the text. */
static int value_depth(const json_t *v)
{
    int inner = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = value_depth(json_array_get(v, i));
            inner = d > inner ? d : inner;
        }
        return inner + 1;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x)
        {
            int d = value_depth(x);
            inner = d > inner ? d : inner;
        }
        return inner + 1;
    }
    return 0;
}

/* Every value, containers included: what the value-count limit counts. */
static size_t value_count(const json_t *v)
{
    size_t n = 1;
    if (json_is_array(v))
        for (size_t i = 0; i < json_array_size(v); i++)
            n += value_count(json_array_get(v, i));
    if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x) n += value_count(x);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool identical(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!identical(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia),
                         ib = json_object_iter_next((json_t *)b, ib)) {
            size_t la = json_object_iter_key_len(ia), lb = json_object_iter_key_len(ib);
            if (la != lb || memcmp(json_object_iter_key(ia), json_object_iter_key(ib), la) != 0)
                return false;
            if (!identical(json_object_iter_value(ia), json_object_iter_value(ib)))
                return false;
        }
        return !ia && !ib;
    }
    default: /* true, false, null */
        return true;
    }
}

/* True when jansson accepted text only because it skipped NUL bytes that
 * each follow the last character of a number or literal: then the text
 * without them must parse for us to the same value. */
static bool jansson_nul_quirk(const uint8_t *data, size_t size, const json_t *ref)
{
    if (!memchr(data, '\0', size))
        return false;
    char *clean = malloc(size);
    if (!clean)
        abort();
    size_t n = 0;
    bool quirk = true;
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '\0') {
            clean[n++] = (char)data[i];
            continue;
        }
        unsigned char prev = i ? data[i - 1] : 0;
        bool after_token = (prev >= '0' && prev <= '9') || (prev >= 'a' && prev <= 'z');
        if (!after_token)
            quirk = false;
    }
    char err[256];
    json_t *v = quirk ? cel__json_parse(clean, n, DIFF_DEPTH, err, sizeof err) : NULL;
    quirk = v && identical(v, ref);
    json_decref(v);
    free(clean);
    return quirk;
}

static void mismatch(const char *what, const uint8_t *data, size_t size, const char *detail)
{
    fprintf(stderr, "fuzz_json mismatch: %s (%s) on %zu bytes: %.*s\n", what, detail, size,
            (int)(size < 200 ? size : 200), (const char *)data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[256];
    json_error_t jerr;

    json_t *ref = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    json_t *got = cel__json_parse(text, size, DIFF_DEPTH, err, sizeof err);

    if (!ref && got)
        mismatch("jansson refused, we accepted", data, size, jerr.text);
    /* Refused at 2047 but read at 2048: exactly as deep as jansson allows. */
    bool depth_quirk = false;
    if (ref && !got && strstr(err, "JSON nesting deeper than")) {
        char err2[256];
        json_t *at = cel__json_parse(text, size, JANSSON_MAX_DEPTH, err2, sizeof err2);
        depth_quirk = at && value_depth(at) == JANSSON_MAX_DEPTH;
        json_decref(at);
    }
    if (ref && !got && !jansson_nul_quirk(data, size, ref) && !depth_quirk)
        mismatch("jansson accepted, we refused", data, size, err);
    if (ref && got && !identical(ref, got))
        mismatch("values differ", data, size, "");
    if (!got && strncmp(err, "invalid JSON at byte ", 21) != 0 &&
        strncmp(err, "JSON nesting deeper than", 24) != 0)
        mismatch("bad error message", data, size, err);

    /* The depth limit refuses exactly the valid texts nested too deep,
     * and says so. */
    if (got) {
        json_t *small;
        const struct cel_json_limits shallow = {.max_depth = SMALL_DEPTH};
        int rc = cel__json_parse_limited(text, size, &shallow, &small, err, sizeof err);
        bool deep = value_depth(got) > SMALL_DEPTH;
        if (deep ? rc != CEL_EDEPTH : rc != CEL_OK)
            mismatch("depth limit", data, size, err);
        if (small && !identical(small, got))
            mismatch("values differ under a depth limit", data, size, "");
        json_decref(small);

        /* The value limit: one value per byte always passes; fewer than
         * the value holds never does (the text may hold more than the
         * value when a key repeats). */
        size_t n = value_count(got);
        struct cel_json_limits few = {.max_depth = DIFF_DEPTH, .max_values = size};
        json_t *v;
        if (cel__json_parse_limited(text, size, &few, &v, err, sizeof err) != CEL_OK)
            mismatch("value limit: enough refused", data, size, err);
        json_decref(v);
        few.max_values = n - 1;
        if (n > 1 && cel__json_parse_limited(text, size, &few, &v, err, sizeof err) != CEL_ETOOBIG)
            mismatch("value limit: too many accepted", data, size, err);
    }

    json_decref(got);
    json_decref(ref);
    return 0;
}
