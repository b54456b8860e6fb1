/*
 * fuzz_dash_path.c - the dashboard's route matcher and static path
 * sanitiser (a trust boundary: paths come from any HTTP client).
 *
 * Input: a pattern, a NUL, then a path. Besides "no crash" it checks that
 * a match hands back one value per {name}, none empty, and that a path
 * the sanitiser accepts is relative and holds no "." or ".." segment, no
 * empty or hidden one, no backslash and no NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_sanitised(const char *rel)
{
    if (rel[0] == '/' || rel[0] == '\0' || strchr(rel, '\\'))
        abort();
    for (const char *seg = rel; *seg;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || seg[0] == '.')
            abort();
        seg += n;
        if (*seg == '/')
            seg++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 2);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *pattern = text;
    const char *path = text + strlen(text) + (strlen(text) < size ? 1 : 0);

    struct cel_dash_http_params p;
    int m = cel__dash_http_match(pattern, path, &p);
    if (m == 1) {
        size_t braces = 0;
        for (const char *c = pattern; *c; c++)
            braces += *c == '{';
        if (p.n > braces)
            abort();
        for (size_t i = 0; i < p.n; i++)
            if (!p.values[i] || !p.values[i][0])
                abort();
        cel__dash_http_params_release(&p);
    } else if (m != 0 || p.n != 0) {
        abort();
    }

    char rel[4096];
    if (cel__dash_http_static_path(path, rel, sizeof rel) == CEL_OK)
        check_sanitised(rel);
    if (cel__dash_http_static_path(pattern, rel, sizeof rel) == CEL_OK)
        check_sanitised(rel);

    char *dec = cel__dash_http_decode(path, strlen(path), true);
    if (dec && strlen(dec) > strlen(path))
        abort();
    free(dec);
    if (cel__dash_http_consttime_eq(pattern, path) != (strcmp(pattern, path) == 0))
        abort();
    free(text);
    return 0;
}
