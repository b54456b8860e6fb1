/* base64.h - standard alphabet with '=' padding, as kombu writes bodies. */
#ifndef CEL_CORE_BASE64_H
#define CEL_CORE_BASE64_H

#include <stddef.h>

/* Encoded length, excluding the NUL. */
size_t cel__base64_encoded_len(size_t n);
/* Writes the encoding and a NUL; out needs encoded_len(n) + 1 bytes. */
void cel__base64_encode(const unsigned char *in, size_t n, char *out);
/* Decodes into a new buffer (NUL-terminated, caller frees with free()).
 * Whitespace is not accepted. Returns NULL on malformed input or OOM. */
unsigned char *cel__base64_decode(const char *in, size_t n, size_t *outlen);

#endif
