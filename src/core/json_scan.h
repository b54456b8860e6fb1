/*
 * json_scan.h - walking the members of a JSON object without building it.
 *
 * A reader that needs a few fields of a big text (the monitoring events
 * take ten headers out of every task envelope) pays for a whole jansson
 * tree with the parser. This walks the text instead and hands back the
 * raw span of each member's value, so the caller parses only the spans
 * it wants.
 *
 * It checks structure only (quotes, escapes skipped, brackets balanced,
 * bounds): a span is not validated JSON. Parse it (cel__json_parse)
 * before trusting it. Nesting is counted, not recursed into, so hostile
 * text costs one pass and no stack.
 */
#ifndef CEL_CORE_JSON_SCAN_H
#define CEL_CORE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* One member: its key as written between the quotes (escapes left as
 * they are) and its value's text. */
struct cel_json_member {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

/* Called per member in order; return false to stop the walk. */
typedef bool (*cel_json_member_fn)(const struct cel_json_member *m, void *ud);

/* Walks the object text[0..len) (leading and trailing whitespace
 * allowed). CEL_OK when it walked to the end or fn stopped it; CEL_EJSON
 * when the text is not an object it can walk. */
int cel__json_members(const char *text, size_t len, cel_json_member_fn fn, void *ud);

/* The value of member `key` (a plain key, no escapes): CEL_OK with *m
 * set, CEL_ENOTFOUND, or CEL_EJSON. */
int cel__json_member(const char *text, size_t len, const char *key, struct cel_json_member *m);

/* The members named keys[0..n) (plain keys) in one walk: out[i] has a
 * NULL value when keys[i] is absent. CEL_OK or CEL_EJSON. */
int cel__json_pick(const char *text, size_t len, const char *const *keys, size_t n,
                   struct cel_json_member *out);

/* A member's value parsed (cel__json_parse, so validated), a new
 * reference; NULL when the member is absent or its text is not JSON. */
json_t *cel__json_member_parse(const struct cel_json_member *m);

#endif
