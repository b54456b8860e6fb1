/* suggest.c - see suggest.h. */
#include "worker/suggest.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Names longer than this are compared by their first bytes only: a task
 * name is a dotted path, rarely more than a few dozen bytes. */
#define NAME_MAX_CMP 128

size_t cel__edit_distance(const char *a, const char *b, size_t limit)
{
    size_t n = strnlen(a, NAME_MAX_CMP), m = strnlen(b, NAME_MAX_CMP);
    if ((n > m ? n - m : m - n) > limit)
        return limit + 1;
    size_t row[NAME_MAX_CMP + 1];
    for (size_t j = 0; j <= m; j++)
        row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0], best = row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v)
                v = up + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
            if (v < best)
                best = v;
        }
        if (best > limit) /* every later row is at least this */
            return limit + 1;
    }
    return row[m] > limit ? limit + 1 : row[m];
}

static bool ends_with_dotted(const char *full, const char *name)
{
    size_t f = strlen(full), n = strlen(name);
    return n > 0 && f > n && full[f - n - 1] == '.' && strcmp(full + f - n, name) == 0;
}

const char *cel__suggest_task(const cel_registry *reg, const char *name)
{
    if (!reg || !name || !*name)
        return NULL;
    size_t len = strlen(name);
    size_t limit = len / 3 < 1 ? 1 : len / 3 > 3 ? 3 : len / 3;
    const char *best = NULL;
    size_t best_d = limit + 1;
    size_t count = cel_registry_count(reg);
    for (size_t i = 0; i < count; i++) {
        const cel_task_def *def = cel_registry_at(reg, i);
        if (!def || !def->name)
            continue;
        if (ends_with_dotted(def->name, name))
            return def->name;
        size_t d = cel__edit_distance(name, def->name, best_d - 1 < limit ? best_d - 1 : limit);
        if (d < best_d) {
            best_d = d;
            best = def->name;
        }
    }
    return best_d <= limit ? best : NULL;
}

/* A small open-addressing set of name hashes: a collision only costs a
 * log line that is not repeated, so the names themselves are not kept. */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long seen[2 * CEL_SUGGEST_SEEN_MAX];
static size_t nseen;

static unsigned long long hash_name(const char *s)
{
    unsigned long long h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1; /* 0 marks an empty slot */
}

bool cel__unregistered_first_seen(const char *name)
{
    unsigned long long h = hash_name(name ? name : "");
    size_t cap = sizeof seen / sizeof seen[0];
    bool first = false;
    pthread_mutex_lock(&seen_mu);
    size_t i = (size_t)(h % cap);
    while (seen[i] && seen[i] != h)
        i = (i + 1) % cap;
    if (!seen[i] && nseen < CEL_SUGGEST_SEEN_MAX) {
        seen[i] = h;
        nseen++;
        first = true;
    }
    pthread_mutex_unlock(&seen_mu);
    return first;
}
