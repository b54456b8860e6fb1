/* base64.c - RFC 4648 base64, standard alphabet, '=' padding. */
#include "core/base64.h"

#include <stdint.h>
#include <stdlib.h>

static const char enc_table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t cel__base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void cel__base64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    char *p = out;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = enc_table[v >> 18 & 63];
        *p++ = enc_table[v >> 12 & 63];
        *p++ = enc_table[v >> 6 & 63];
        *p++ = enc_table[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = enc_table[v >> 18 & 63];
        *p++ = enc_table[v >> 12 & 63];
        *p++ = '=';
        *p++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = enc_table[v >> 18 & 63];
        *p++ = enc_table[v >> 12 & 63];
        *p++ = enc_table[v >> 6 & 63];
        *p++ = '=';
    }
    *p = '\0';
}

/* -1 for anything outside the alphabet, '=' included. */
static int dec_char(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

unsigned char *cel__base64_decode(const char *in, size_t n, size_t *outlen)
{
    /* Padding is required, as Python's b64decode requires it: a body that
     * only we could read would be no use to a Python worker. */
    if (n % 4 != 0)
        return NULL;
    size_t pad = 0;
    if (n >= 1 && in[n - 1] == '=')
        pad++;
    if (pad == 1 && n >= 2 && in[n - 2] == '=')
        pad++;

    size_t len = n / 4 * 3 - pad;
    unsigned char *out = malloc(len + 1);
    if (!out)
        return NULL;

    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int c[4];
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (last && ch == '=' && k >= 4 - (int)pad) {
                c[k] = 0;
                continue;
            }
            c[k] = dec_char(ch);
            if (c[k] < 0) {
                free(out);
                return NULL;
            }
        }
        uint32_t v =
            (uint32_t)c[0] << 18 | (uint32_t)c[1] << 12 | (uint32_t)c[2] << 6 | (uint32_t)c[3];
        out[o++] = (unsigned char)(v >> 16);
        if (o < len)
            out[o++] = (unsigned char)(v >> 8 & 0xff);
        if (o < len)
            out[o++] = (unsigned char)(v & 0xff);
    }
    out[len] = '\0';
    if (outlen)
        *outlen = len;
    return out;
}
