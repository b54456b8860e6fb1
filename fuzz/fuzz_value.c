/*
 * fuzz_value.c - cel_value_parse() (celeriac/value.h) on any bytes.
 *
 * It must refuse, with a code and no value, or return a value that the
 * read API walks without surprise: every element and member reachable by
 * index, the text it writes back parsing to the same text, and a deep
 * copy that writes the same. abort() otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "celeriac/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_value: %s\n", what);
        abort();
    }
}

/* Visits every value through the public accessors; returns how many. */
static size_t walk(const cel_value *v)
{
    size_t n = 1, len = cel_value_len(v);
    switch (cel_value_type_of(v)) {
    case CEL_VALUE_ARRAY:
        for (size_t i = 0; i < len; i++)
            n += walk(cel_value_at(v, i));
        check(cel_value_at(v, len) == NULL, "array index past the end");
        break;
    case CEL_VALUE_OBJECT:
        for (size_t i = 0; i < len && i < 64; i++) { /* key_at walks: keep it linear-ish */
            const char *key = cel_value_key_at(v, i);
            check(key != NULL, "object member without a key");
            check(cel_value_get(v, key) != NULL, "key_at names no member");
            n += walk(cel_value_value_at(v, i));
        }
        break;
    case CEL_VALUE_STRING: {
        const char *s = NULL;
        size_t slen = 0;
        check(cel_value_get_string(v, &s, &slen) == CEL_OK && slen == len, "string length");
        break;
    }
    default:
        check(len == 0, "scalar with a length");
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cel_value *v = (cel_value *)text; /* must be overwritten */
    int rc = cel_value_parse(text, &v);
    free(text);
    if (rc != CEL_OK) {
        check(v == NULL, "a refusal with a value");
        check(rc == CEL_EJSON || rc == CEL_EDEPTH || rc == CEL_ETOOBIG || rc == CEL_ENOMEM,
              "unexpected code");
        return 0;
    }
    check(v != NULL, "success without a value");
    walk(v);
    char *once = cel_value_to_json(v);
    check(once != NULL, "an accepted value cannot be written");
    cel_value *again = NULL;
    check(cel_value_parse(once, &again) == CEL_OK, "what we write does not parse");
    char *twice = cel_value_to_json(again);
    check(twice && strcmp(once, twice) == 0, "round trip changed the text");
    cel_value *copy = cel_value_copy(v);
    char *copied = cel_value_to_json(copy);
    check(copied && strcmp(once, copied) == 0, "a copy writes other text");
    cel_free(copied);
    cel_free(twice);
    cel_free(once);
    cel_value_free(copy);
    cel_value_free(again);
    cel_value_free(v);
    return 0;
}
