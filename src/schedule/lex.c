/* lex.c - see lex.h. */
#include "schedule/lex.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "celeriac/error.h"

int cel__sched_fail(struct cel_sched_error *err, size_t pos, size_t len, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->pos = pos;
        err->len = len;
    }
    return CEL_EINVAL;
}

int cel__sched_clamp_error(const char *text, struct cel_sched_error *err, int rc)
{
    if (rc && err) {
        size_t n = strlen(text);
        if (err->pos > n)
            err->pos = n;
        if (err->len > n - err->pos)
            err->len = n - err->pos;
    }
    return rc;
}

void cel__sched_trim(const char *text, size_t *start, size_t *end)
{
    size_t s = 0, e = strlen(text);
    while (s < e && isspace((unsigned char)text[s]))
        s++;
    while (e > s && isspace((unsigned char)text[e - 1]))
        e--;
    *start = s;
    *end = e;
}

int cel__sched_lex(const char *text, struct cel_sched_tok *toks, size_t max, size_t *count,
                   struct cel_sched_error *err)
{
    size_t n = 0, i = 0;
    bool glued = false;
    for (;;) {
        while (isspace((unsigned char)text[i])) {
            i++;
            glued = false;
        }
        if (n + 1 >= max)
            return cel__sched_fail(err, i, strlen(text + i), "text is too long");
        struct cel_sched_tok *t = &toks[n++];
        memset(t, 0, sizeof *t);
        t->pos = i;
        t->glued = glued;
        glued = true;
        unsigned char c = (unsigned char)text[i];
        if (c == '\0') {
            t->kind = CEL_TOK_END;
            break;
        }
        if (isdigit(c)) {
            t->kind = CEL_TOK_NUM;
            size_t digits = 0;
            while (isdigit((unsigned char)text[i])) {
                if (++digits > 9)
                    return cel__sched_fail(err, t->pos, i + 1 - t->pos,
                                           "number '%.*s' is too large", (int)(i + 1 - t->pos),
                                           text + t->pos);
                t->num = t->num * 10 + (text[i++] - '0');
            }
            if (text[i] == '.' && isdigit((unsigned char)text[i + 1])) {
                i++;
                while (isdigit((unsigned char)text[i])) {
                    if (++t->frac_digits > 9)
                        return cel__sched_fail(err, t->pos, i + 1 - t->pos,
                                               "number '%.*s' has too many digits",
                                               (int)(i + 1 - t->pos), text + t->pos);
                    t->frac = t->frac * 10 + (text[i++] - '0');
                }
            }
        } else if (isalpha(c)) {
            t->kind = CEL_TOK_WORD;
            while (isalpha((unsigned char)text[i]))
                i++;
        } else {
            t->kind = CEL_TOK_PUNCT;
            i++;
        }
        t->len = i - t->pos;
    }
    *count = n;
    return CEL_OK;
}

bool cel__sched_tok_is(const char *text, const struct cel_sched_tok *t, const char *w)
{
    return t->kind == CEL_TOK_WORD && strlen(w) == t->len &&
           strncasecmp(text + t->pos, w, t->len) == 0;
}

bool cel__sched_tok_punct(const char *text, const struct cel_sched_tok *t, char c)
{
    return t->kind == CEL_TOK_PUNCT && text[t->pos] == c;
}
