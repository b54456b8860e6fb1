/*
 * json_util.h - JSON helpers on top of jansson.
 *
 * jansson keeps integers and reals apart (5 vs 5.0, as Python does) and
 * preserves object key order, so messages round-trip. Its default dump
 * separators are Python's (", " and ": "); with CEL_JSON_DUMP_FLAGS and
 * ensure_ascii the output matches json.dumps byte for byte except floats.
 */
#ifndef CEL_CORE_JSON_UTIL_H
#define CEL_CORE_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>

/* Python json.dumps defaults: ", " / ": " separators, ensure_ascii. */
#define CEL_JSON_DUMP_FLAGS (JSON_ENSURE_ASCII | JSON_ENCODE_ANY)

#define CEL_JSON_MAX_DEPTH 64

/* Maximum nesting depth of JSON text, ignoring brackets inside strings.
 * Stops counting (returns max_depth + 1) once the limit is passed. Pure,
 * linear, no allocation: run it before handing untrusted text to jansson,
 * whose own limit is far higher than we accept. */
int cel__json_depth(const char *text, size_t len, int max_depth);

/* Parses untrusted text with a depth limit. Returns NULL and writes a
 * message into err on failure. Accepts any JSON value at the top. */
json_t *cel__json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen);
/* The same without the depth scan, for a caller that just ran
 * cel__json_depth() on the same text (to report its own error). */
json_t *cel__json_parse_prechecked(const char *text, size_t len, char *err, size_t errlen);

/* Dumps with CEL_JSON_DUMP_FLAGS; caller frees with free(). */
char *cel__json_dump(const json_t *v);

#endif
