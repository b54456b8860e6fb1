/*
 * http_route.c - matching a request path against a route pattern, and
 * percent-decoding. Pure functions: the fuzz target drives them.
 *
 * Paths arrive undecoded (the server keeps libmicrohttpd from decoding
 * them) so that an encoded '/' inside a {param} stays part of it and a
 * literal segment never matches an encoded variant of itself.
 */
#include <stdlib.h>
#include <string.h>

#include "core/url.h"
#include "dashboard/http.h"

char *cel__dash_http_decode(const char *s, size_t n, bool plus_space)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\0')
            goto bad;
        if (c == '%') {
            if (n - i < 3)
                goto bad; /* fewer than two hex digits follow */
            int hi = cel__hex_digit((unsigned char)s[i + 1]);
            int lo = cel__hex_digit((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

void cel__dash_http_params_release(struct cel_dash_http_params *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->values[i]);
    p->n = 0;
}

int cel__dash_http_match(const char *pattern, const char *path, struct cel_dash_http_params *p)
{
    p->n = 0;
    const char *pat = pattern, *pth = path;
    while (*pat && *pth) {
        if (*pat != '/' || *pth != '/')
            goto no;
        pat++;
        pth++;
        size_t plen = strcspn(pat, "/");
        size_t slen = strcspn(pth, "/");
        if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}') {
            if (slen == 0 || p->n == CEL_DASH_HTTP_MAX_PARAMS)
                goto no;
            char *value = cel__dash_http_decode(pth, slen, false);
            if (!value)
                goto no; /* a bad escape matches nothing */
            p->names[p->n] = (char *)pat + 1;
            p->name_lens[p->n] = plen - 2;
            p->values[p->n++] = value;
        } else if (plen != slen || memcmp(pat, pth, plen) != 0) {
            goto no;
        }
        pat += plen;
        pth += slen;
    }
    if (*pat == '\0' && *pth == '\0')
        return 1;
no:
    cel__dash_http_params_release(p);
    return 0;
}

/* Whether seg[0..n) may name a file under the static root. */
static bool segment_ok(const char *seg, size_t n)
{
    /* ".", ".." and hidden files; an empty segment ("a//b") too */
    if (n == 0 || seg[0] == '.')
        return false;
    return memchr(seg, '\\', n) == NULL;
}

int cel__dash_http_static_path(const char *raw, char *out, size_t outlen)
{
    char *path = cel__dash_http_decode(raw, strlen(raw), false);
    if (!path)
        return CEL_EINVAL;
    int rc = CEL_EINVAL;
    size_t n = strlen(path);
    if (n == 0 || n >= outlen || path[0] == '/')
        goto out;
    for (const char *seg = path; *seg;) {
        size_t len = strcspn(seg, "/");
        if (!segment_ok(seg, len))
            goto out;
        seg += len;
        if (*seg == '/' && *++seg == '\0')
            goto out; /* a trailing '/' names a directory */
    }
    memcpy(out, path, n + 1);
    rc = CEL_OK;
out:
    free(path);
    return rc;
}

bool cel__dash_http_consttime_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    /* compare over b's length whatever a is, so the time depends only on
     * the secret's length (b is the expected value) */
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return diff == 0;
}
