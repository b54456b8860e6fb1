/* record_file.c - see record_file.h. */
#include "record_file.h"

#include "testing.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct cel_test_runs cel_test_count_runs(const char *path, char **ids, size_t n)
{
    struct cel_test_runs r = {0};
    char *text = cel_test_read_file(path, NULL);
    /* Cut the file into ids in place, sort both lists, walk them together. */
    size_t cap = 1024, nrec = 0;
    char **rec = malloc(cap * sizeof *rec);
    ASSERT(rec);
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        line[strcspn(line, " ")] = '\0';
        if (nrec == cap) {
            cap *= 2;
            rec = realloc(rec, cap * sizeof *rec);
            ASSERT(rec);
        }
        rec[nrec++] = line;
        line = end ? end + 1 : line + strlen(line);
    }
    r.lines = nrec;
    char **want = malloc((n ? n : 1) * sizeof *want);
    ASSERT(want);
    memcpy(want, ids, n * sizeof *want);
    qsort(rec, nrec, sizeof *rec, cmp_str);
    qsort(want, n, sizeof *want, cmp_str);
    size_t i = 0;
    for (size_t k = 0; k < n; k++) {
        while (i < nrec && strcmp(rec[i], want[k]) < 0) {
            r.foreign++;
            i++;
        }
        size_t runs = 0;
        while (i < nrec && strcmp(rec[i], want[k]) == 0) {
            runs++;
            i++;
        }
        if (runs == 0)
            r.never++;
        else if (runs == 1)
            r.once++;
        else
            r.repeated++;
        if (runs > r.max_runs) {
            r.max_runs = runs;
            snprintf(r.worst, sizeof r.worst, "%s", want[k]);
        }
    }
    r.foreign += nrec - i;
    free(want);
    free(rec);
    free(text);
    return r;
}

void cel_test_runs_print(const char *title, const struct cel_test_runs *r)
{
    fprintf(stderr,
            "   %s: %zu runs recorded: %zu tasks ran once, %zu never, %zu more than once "
            "(at most %zu times%s%s), %zu runs of unknown ids\n",
            title, r->lines, r->once, r->never, r->repeated, r->max_runs, r->worst[0] ? ": " : "",
            r->worst, r->foreign);
}
