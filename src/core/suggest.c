/* suggest.c - see suggest.h. */
#include "core/suggest.h"

#include <ctype.h>
#include <string.h>

#define WORD_CMP_MAX 63

size_t cel__word_distance(const char *a, size_t alen, const char *b)
{
    size_t la = alen < WORD_CMP_MAX ? alen : WORD_CMP_MAX;
    size_t lb = strnlen(b, WORD_CMP_MAX);
    size_t rows[3][WORD_CMP_MAX + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        int ai = tolower((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= lb; j++) {
            int bj = tolower((unsigned char)b[j - 1]);
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + (ai != bj) < best)
                best = prev[j - 1] + (ai != bj);
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *cel__closest_word(const char *word, size_t wlen, const char *const *words, size_t n)
{
    size_t limit = wlen <= 4 ? 1 : wlen <= 8 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        size_t d = cel__word_distance(word, wlen, words[i]);
        if (d < best_d) {
            best_d = d;
            best = words[i];
        }
    }
    return best;
}
