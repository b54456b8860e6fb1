/*
 * fuzz_dash_query.c - the dashboard's search box takes any text a user
 * (or a link) puts there. Parse it; an accepted query must hold only
 * values the history store's SQL expects, and a refused one must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard/task_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct cel_dash_task_query *q)
{
    if (q->limit < 1 || q->limit > CEL_DASH_QUERY_LIMIT_MAX ||
        q->nwords > CEL_DASH_QUERY_WORDS_MAX || q->states > 0xff ||
        (unsigned)q->sort > CEL_DASH_SORT_RETRIES)
        abort();
    if (!memchr(q->name, '\0', sizeof q->name) || !memchr(q->worker, '\0', sizeof q->worker) ||
        !memchr(q->queue, '\0', sizeof q->queue))
        abort();
    for (size_t i = 0; i < q->nwords; i++)
        if (!q->words[i][0] || !memchr(q->words[i], '\0', sizeof q->words[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cel_dash_task_query q;
    char why[256] = "";
    if (cel__dash_task_query_parse(text, &q, why, sizeof why) == 0)
        check(&q);
    else if (!why[0])
        abort();
    /* The same text as Flower's parameters: key=value pairs split on '&'. */
    const char *keys[8], *values[8];
    size_t n = 0;
    for (char *save = NULL, *pair = strtok_r(text, "&", &save); pair && n < 8;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq)
            continue;
        *eq = '\0';
        keys[n] = pair;
        values[n++] = eq + 1;
    }
    if (cel__dash_task_query_from_flower(keys, values, n, &q, why, sizeof why) == 0)
        check(&q);
    free(text);
    return 0;
}
