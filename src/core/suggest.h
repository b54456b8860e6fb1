/*
 * suggest.h - "did you mean" for words typed by people.
 *
 * Pure and allocation free, so any layer can use it for its own
 * vocabulary (schedule phrases, cron month and day names ...).
 */
#ifndef CEL_CORE_SUGGEST_H
#define CEL_CORE_SUGGEST_H

#include <stddef.h>

/* Optimal string alignment distance (edits plus adjacent transpositions,
 * the usual typo model), case-insensitive, over at most the first 63 bytes
 * of each word. */
size_t cel__word_distance(const char *a, size_t alen, const char *b);

/* The word of `words` (n of them) closest to `word` (wlen bytes), or NULL
 * when none is close enough to be a plausible typo: a distance of at most
 * 1 for words up to 4 bytes, 2 up to 8, 3 beyond. */
const char *cel__closest_word(const char *word, size_t wlen, const char *const *words, size_t n);

#endif
