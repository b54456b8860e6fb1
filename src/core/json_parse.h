/*
 * json_parse.h - a fast, strict JSON parser that builds jansson values.
 *
 * jansson's json_loadb() reads through a per-character stream with a
 * callback and a UTF-8 decoder per byte; on Celery envelopes it runs at
 * about 30 MB/s and dominated the worker's message decoding. This parser
 * works on the byte span directly and produces the same json_t tree, so
 * the rest of the code base keeps using jansson as its data model.
 *
 * It accepts exactly what json_loadb(text, len, JSON_DECODE_ANY |
 * JSON_ALLOW_NUL) accepts (RFC 8259, any value at the top, "\u0000"
 * allowed in strings but not in object keys), except for the limits below
 * (jansson's own depth limit is 2048, and it has no others).
 *
 * It is the one parser for text from outside the process (the broker, the
 * result store, a peer): its limits are checked as it reads, so hostile
 * text is neither scanned twice nor allowed to recurse deep or to turn a
 * few bytes into much memory ("[[],[],..." costs over 30 bytes of values
 * per byte of text).
 */
#ifndef CEL_CORE_JSON_PARSE_H
#define CEL_CORE_JSON_PARSE_H

#include <jansson.h>
#include <stddef.h>

#define CEL_JSON_MAX_DEPTH  64
#define CEL_JSON_MAX_BYTES  (64u * 1024u * 1024u) /* the largest message we take */
#define CEL_JSON_MAX_VALUES (4u * 1024u * 1024u)  /* at most a few hundred MB of values */

/* Zero fields take the defaults above. */
struct cel_json_limits {
    size_t max_bytes;  /* longest text */
    int max_depth;     /* nested arrays and objects */
    size_t max_values; /* values of any kind, containers included */
};

/*
 * Parses text[0..len) (need not be NUL-terminated; never read past len).
 * `lim` may be NULL (all defaults). Returns CEL_OK with a new reference in
 * *out, or with *out NULL and a one-line message in err: CEL_EJSON
 * ("invalid JSON at byte N: ..."), CEL_EDEPTH ("JSON nesting deeper than
 * N levels"), CEL_ETOOBIG (text or value count past its limit), CEL_ENOMEM.
 * Recursion is bounded by max_depth.
 */
int cel__json_parse_limited(const char *text, size_t len, const struct cel_json_limits *lim,
                            json_t **out, char *err, size_t errlen);

/* The same with only a depth limit given (max_depth <= 0: the default);
 * NULL on any failure. */
json_t *cel__json_parse(const char *text, size_t len, int max_depth, char *err, size_t errlen);

#endif
