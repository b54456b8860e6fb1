/*
 * config_section.c - [schedule.NAME] blocks of a config file (see
 * config_section.h and the section API in celeriac/config.h).
 */
#include "core/config_section.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "celeriac/error.h"
#include "core/errbuf.h"
#include "core/suggest.h"

#define NAME_MAX_BYTES 200

/* The keys a [schedule.NAME] section may hold (celeriac/schedule.h). */
static const char *const schedule_keys[] = {
    "task", "args",  "kwargs",   "cron",    "every",    "at",      "when",
    "tz",   "queue", "priority", "expires", "catch_up", "enabled",
};
#define SCHEDULE_KEY_COUNT (sizeof schedule_keys / sizeof schedule_keys[0])
#define SECTION_KEY_MAX    32

bool cel__config_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > NAME_MAX_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != ':' && c != '-')
            return false;
    }
    return true;
}

int cel__config_section_header(struct cel__config_sections *s, const char *line, size_t n,
                               const char *origin, char *err, size_t errlen)
{
    const char *p = line, *e = line + n;
    while (p < e && isspace((unsigned char)*p))
        p++;
    if (p == e || *p != '[')
        return 0;
    const char *close = memchr(p, ']', (size_t)(e - p));
    if (!close)
        return cel__errf(err, errlen, CEL_ECONFIG, "missing ']' in section header");
    for (const char *t = close + 1; t < e; t++) {
        if (*t == '#')
            break;
        if (!isspace((unsigned char)*t))
            return cel__errf(err, errlen, CEL_ECONFIG, "unexpected text after ']'");
    }
    const char *h = p + 1, *he = close;
    while (h < he && isspace((unsigned char)*h))
        h++;
    while (he > h && isspace((unsigned char)he[-1]))
        he--;
    const char *dot = memchr(h, '.', (size_t)(he - h));
    size_t kind_len = dot ? (size_t)(dot - h) : (size_t)(he - h);
    if (kind_len != 8 || strncasecmp(h, "schedule", 8) != 0)
        return cel__errf(err, errlen, CEL_ECONFIG,
                         "unknown section kind '%.*s' (the only kind is [schedule.NAME])",
                         (int)(kind_len > 64 ? 64 : kind_len), h);
    const char *name = dot ? dot + 1 : he;
    size_t name_len = (size_t)(he - name);
    if (!cel__config_name_ok(name, name_len))
        return cel__errf(err, errlen, CEL_ECONFIG,
                         "invalid schedule name '%.*s': 1 to %d letters, digits, '_', '.', ':' "
                         "or '-'",
                         (int)(name_len > 64 ? 64 : name_len), name, NAME_MAX_BYTES);
    for (size_t i = 0; i < s->n; i++) {
        const char *other = s->v[i].name + 9; /* past "schedule." */
        if (strlen(other) == name_len && memcmp(other, name, name_len) == 0)
            return cel__errf(err, errlen, CEL_ECONFIG,
                             "section [schedule.%s] repeated (first at %s)", other, s->v[i].origin);
    }
    struct cel__config_section *grown = realloc(s->v, (s->n + 1) * sizeof *grown);
    if (!grown)
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    s->v = grown;
    struct cel__config_section *sec = &s->v[s->n];
    memset(sec, 0, sizeof *sec);
    sec->name = malloc(9 + name_len + 1);
    sec->origin = strdup(origin);
    if (!sec->name || !sec->origin) {
        free(sec->name);
        free(sec->origin);
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    }
    memcpy(sec->name, "schedule.", 9);
    memcpy(sec->name + 9, name, name_len);
    sec->name[9 + name_len] = '\0';
    s->n++;
    return 1;
}

int cel__config_section_set(struct cel__config_sections *s, const char *key, const char *value,
                            char *err, size_t errlen)
{
    if (s->n == 0)
        return cel__errf(err, errlen, CEL_EINVAL, "no section");
    struct cel__config_section *sec = &s->v[s->n - 1];
    char norm[SECTION_KEY_MAX] = "";
    size_t klen = strlen(key);
    const char *known = NULL;
    if (klen < sizeof norm) {
        for (size_t i = 0; i <= klen; i++)
            norm[i] = key[i] == '-' ? '_' : (char)tolower((unsigned char)key[i]);
        for (size_t i = 0; i < SCHEDULE_KEY_COUNT && !known; i++)
            if (strcmp(norm, schedule_keys[i]) == 0)
                known = schedule_keys[i];
    }
    if (!known) {
        const char *hint = klen < sizeof norm
                               ? cel__closest_word(norm, klen, schedule_keys, SCHEDULE_KEY_COUNT)
                               : NULL;
        if (hint)
            return cel__errf(err, errlen, CEL_EUNKNOWNKEY,
                             "unknown key '%.64s' in [%s] (did you mean '%s'?)", key, sec->name,
                             hint);
        return cel__errf(err, errlen, CEL_EUNKNOWNKEY, "unknown key '%.64s' in [%s]", key,
                         sec->name);
    }
    if (cel__config_section_value(sec, known))
        return cel__errf(err, errlen, CEL_ECONFIG, "key '%s' repeated in [%s]", known, sec->name);
    char **keys = realloc(sec->keys, (sec->n + 1) * sizeof *keys);
    if (keys)
        sec->keys = keys;
    char **values = realloc(sec->values, (sec->n + 1) * sizeof *values);
    if (values)
        sec->values = values;
    char *k = keys && values ? strdup(known) : NULL;
    char *v = k ? strdup(value) : NULL;
    if (!v) {
        free(k);
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    }
    sec->keys[sec->n] = k;
    sec->values[sec->n] = v;
    sec->n++;
    return CEL_OK;
}

const char *cel__config_section_value(const struct cel__config_section *sec, const char *key)
{
    for (size_t i = 0; i < sec->n; i++)
        if (strcmp(sec->keys[i], key) == 0)
            return sec->values[i];
    return NULL;
}

static void section_clear(struct cel__config_section *sec)
{
    for (size_t i = 0; i < sec->n; i++) {
        free(sec->keys[i]);
        free(sec->values[i]);
    }
    free(sec->keys);
    free(sec->values);
    free(sec->name);
    free(sec->origin);
}

void cel__config_sections_clear(struct cel__config_sections *s)
{
    for (size_t i = 0; i < s->n; i++)
        section_clear(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

int cel__config_sections_copy(struct cel__config_sections *dst,
                              const struct cel__config_sections *src)
{
    memset(dst, 0, sizeof *dst);
    if (src->n == 0)
        return CEL_OK;
    dst->v = calloc(src->n, sizeof *dst->v);
    if (!dst->v)
        return CEL_ENOMEM;
    for (size_t i = 0; i < src->n; i++, dst->n++) {
        const struct cel__config_section *from = &src->v[i];
        struct cel__config_section *to = &dst->v[i];
        to->name = strdup(from->name);
        to->origin = strdup(from->origin);
        to->keys = calloc(from->n ? from->n : 1, sizeof *to->keys);
        to->values = calloc(from->n ? from->n : 1, sizeof *to->values);
        if (!to->name || !to->origin || !to->keys || !to->values) {
            dst->n++;
            cel__config_sections_clear(dst);
            return CEL_ENOMEM;
        }
        for (; to->n < from->n; to->n++) {
            to->keys[to->n] = strdup(from->keys[to->n]);
            to->values[to->n] = strdup(from->values[to->n]);
            if (!to->keys[to->n] || !to->values[to->n]) {
                to->n++;
                dst->n++;
                cel__config_sections_clear(dst);
                return CEL_ENOMEM;
            }
        }
    }
    return CEL_OK;
}
