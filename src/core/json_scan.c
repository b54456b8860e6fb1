/* json_scan.c - see json_scan.h. */
#include "core/json_scan.h"

#include <string.h>

#include "celeriac/error.h"
#include "core/json_parse.h"

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is the opening quote: the index after the closing one, or 0. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        const char *q = memchr(s + i, '"', n - i);
        if (!q)
            return 0;
        /* The quote ends the string unless an odd run of backslashes
         * precedes it. */
        size_t at = (size_t)(q - s), bs = 0;
        while (at - bs > i && s[at - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return at + 1;
        i = at;
    }
    return 0;
}

/* The index after the value starting at s[i], or 0. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
    if (i >= n)
        return 0;
    if (s[i] == '"')
        return skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                if (!(i = skip_string(s, i, n)))
                    return 0;
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return 0;
    }
    size_t start = i;
    while (i < n && !strchr(",}] \t\r\n", s[i]))
        i++;
    return i > start ? i : 0;
}

int cel__json_members(const char *text, size_t len, cel_json_member_fn fn, void *ud)
{
    size_t i = skip_ws(text, 0, len);
    if (i >= len || text[i] != '{')
        return CEL_EJSON;
    i = skip_ws(text, i + 1, len);
    if (i < len && text[i] == '}')
        return CEL_OK;
    while (i < len) {
        if (text[i] != '"')
            return CEL_EJSON;
        size_t kend = skip_string(text, i, len);
        if (!kend)
            return CEL_EJSON;
        struct cel_json_member m = {.key = text + i + 1, .key_len = kend - i - 2};
        i = skip_ws(text, kend, len);
        if (i >= len || text[i] != ':')
            return CEL_EJSON;
        i = skip_ws(text, i + 1, len);
        size_t vend = skip_value(text, i, len);
        if (!vend)
            return CEL_EJSON;
        m.value = text + i;
        m.value_len = vend - i;
        if (!fn(&m, ud))
            return CEL_OK;
        i = skip_ws(text, vend, len);
        if (i < len && text[i] == '}')
            return CEL_OK;
        if (i >= len || text[i] != ',')
            return CEL_EJSON;
        i = skip_ws(text, i + 1, len);
    }
    return CEL_EJSON;
}

struct find {
    const char *key;
    size_t key_len;
    struct cel_json_member *out;
    bool found;
};

static bool match(const struct cel_json_member *m, void *ud)
{
    struct find *f = ud;
    if (m->key_len != f->key_len || memcmp(m->key, f->key, f->key_len) != 0)
        return true;
    *f->out = *m;
    f->found = true;
    return false;
}

int cel__json_member(const char *text, size_t len, const char *key, struct cel_json_member *m)
{
    struct find f = {.key = key, .key_len = strlen(key), .out = m};
    int rc = cel__json_members(text, len, match, &f);
    if (rc != CEL_OK)
        return rc;
    return f.found ? CEL_OK : CEL_ENOTFOUND;
}

struct picks {
    const char *const *keys;
    size_t n;
    struct cel_json_member *out;
};

static bool pick(const struct cel_json_member *m, void *ud)
{
    struct picks *p = ud;
    for (size_t i = 0; i < p->n; i++)
        if (m->key_len == strlen(p->keys[i]) && memcmp(m->key, p->keys[i], m->key_len) == 0)
            p->out[i] = *m;
    return true;
}

int cel__json_pick(const char *text, size_t len, const char *const *keys, size_t n,
                   struct cel_json_member *out)
{
    memset(out, 0, n * sizeof *out);
    struct picks p = {keys, n, out};
    return cel__json_members(text, len, pick, &p);
}

json_t *cel__json_member_parse(const struct cel_json_member *m)
{
    return m->value ? cel__json_parse(m->value, m->value_len, CEL_JSON_MAX_DEPTH, NULL, 0) : NULL;
}
