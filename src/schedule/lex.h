/*
 * lex.h - the words, numbers and signs schedule texts are made of.
 *
 * Shared by the interval and phrase parsers so both read "1h30m",
 * "9:30am" and "1st" the same way, and report positions the same way.
 */
#ifndef CEL_SCHEDULE_LEX_H
#define CEL_SCHEDULE_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "celeriac/common.h"
#include "schedule/spec.h"

enum cel_sched_tok_kind {
    CEL_TOK_END = 0,
    CEL_TOK_NUM,   /* digits, maybe with a fraction: "15", "1.5" */
    CEL_TOK_WORD,  /* letters */
    CEL_TOK_PUNCT, /* any other single character */
};

struct cel_sched_tok {
    enum cel_sched_tok_kind kind;
    size_t pos, len;
    int64_t num;     /* CEL_TOK_NUM: the whole part */
    int64_t frac;    /* CEL_TOK_NUM: the digits after '.', as an integer */
    int frac_digits; /* how many there were (0: no fraction) */
    bool glued;      /* no blank between this token and the previous one */
};

#define CEL_SCHED_TOK_MAX 400

/* Splits text into tokens; the array ends with a CEL_TOK_END token at the
 * text's end. Fails on a number of more than 9 digits or too many tokens. */
int cel__sched_lex(const char *text, struct cel_sched_tok *toks, size_t max, size_t *count,
                   struct cel_sched_error *err);

/* Whether token t is the word w (case-insensitive; w lower-case). */
bool cel__sched_tok_is(const char *text, const struct cel_sched_tok *t, const char *w);
/* Whether token t is the punctuation c. */
bool cel__sched_tok_punct(const char *text, const struct cel_sched_tok *t, char c);

/* A length of time: "15 minutes", "1h30m", "1.5h", "every minute". */
struct cel_sched_duration {
    int parts; /* "N unit" groups read; 0: the tokens are not a duration */
    int64_t seconds;
    int64_t n;       /* with one part: its N (1 for a bare unit) ... */
    int64_t unit_s;  /* ... and its unit in seconds */
    bool whole_n;    /* N had no fraction */
    size_t pos, len; /* where it was written */
};

/* Reads a duration at toks[*i] and moves *i past it. A bare unit ("minute")
 * counts as 1 of it when allow_bare_unit; a number without a unit is
 * seconds when it is the last token. Sets d->parts = 0 and leaves *i when
 * the tokens there do not start a duration; fails on a malformed one. */
int cel__sched_read_duration(const char *text, const struct cel_sched_tok *toks, size_t *i,
                             bool allow_bare_unit, struct cel_sched_duration *d,
                             struct cel_sched_error *err);

/* Fills *err (when not NULL) and returns CEL_EINVAL. */
int cel__sched_fail(struct cel_sched_error *err, size_t pos, size_t len, const char *fmt, ...)
    CEL_PRINTF(4, 5);

/* Keeps err->pos and err->len inside text (a message about "the end"
 * points just past the last byte, with length 0); returns rc. */
int cel__sched_clamp_error(const char *text, struct cel_sched_error *err, int rc);

/* Leading and trailing blanks of text: [*start, *end). */
void cel__sched_trim(const char *text, size_t *start, size_t *end);

#endif
