/*
 * json_escape.h - the inside of a JSON string literal, written the way
 * Python's json.dumps (ensure_ascii=True) writes it.
 *
 * Both writers of JSON text use this: the generic dumper in json_util.c
 * and the producer's envelope writer (proto/envelope_writer.c). The rules:
 * '"' and '\\' and \b \f \n \r \t get their short escapes, other controls
 * and DEL become \u00XX, everything non-ASCII becomes lower-case \uXXXX
 * (a surrogate pair above U+FFFF), and the rest is copied as it is.
 * Strings are UTF-8 by jansson's rules: no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF.
 */
#ifndef CEL_CORE_JSON_ESCAPE_H
#define CEL_CORE_JSON_ESCAPE_H

#include <stddef.h>

#include "celeriac/error.h" /* CEL_OK, CEL_EINVAL */

/* On a sequence that is not UTF-8, write \ufffd for its first byte and go
 * on with the next one, instead of failing. */
#define CEL_JSON_ESCAPE_REPLACE 1u

/* The most cel__json_escape() writes for n input bytes: 6 per byte (a
 * control character becomes \u00XX, a 4-byte sequence a 12-byte surrogate
 * pair). n must be at most SIZE_MAX / 6. */
size_t cel__json_escape_bound(size_t n);

/* Copies the leading run of s[0..n) that needs no escaping to out (room
 * for n bytes) and returns its length; n when nothing needs escaping.
 * Plain ASCII goes 8 bytes at a time, so a caller can start with room
 * for n and reserve cel__json_escape_bound() only for what is left. */
size_t cel__json_escape_plain(char *out, const char *s, size_t n);

/*
 * Writes s[0..n) escaped, without the surrounding quotes, to out, which
 * needs room for cel__json_escape_bound(n) bytes; no NUL is added.
 * *written receives the bytes written. Returns CEL_OK, or CEL_EINVAL at
 * the first sequence that is not UTF-8 (then *written covers what came
 * before it), unless flags has CEL_JSON_ESCAPE_REPLACE.
 */
int cel__json_escape(char *out, const char *s, size_t n, size_t *written, unsigned flags);

#endif
