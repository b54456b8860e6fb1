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

/* Parsing, with the limits untrusted text needs, is json_parse.h's
 * (cel__json_parse, cel__json_parse_limited). */
#include "core/json_parse.h"

/* Dumps with CEL_JSON_DUMP_FLAGS; caller frees with free(). */
char *cel__json_dump(const json_t *v);

/* The text of a string value that can be used as a C string (borrowed
 * from v), or NULL when v is not a string or holds a "\u0000": a name
 * with a NUL inside would silently end early. */
const char *cel__json_cstr(const json_t *v);

#endif
