/*
 * record_file.h - how many times each task really ran, from the file the
 * test.record task appends "<task id> <pid>" lines to
 * (tests/support/test_tasks.c, $CEL_TEST_RECORD_FILE).
 */
#ifndef CEL_TEST_RECORD_FILE_H
#define CEL_TEST_RECORD_FILE_H

#include <stddef.h>

struct cel_test_runs {
    size_t lines;    /* runs recorded in all */
    size_t never;    /* of the given ids: not run */
    size_t once;     /* run exactly once */
    size_t repeated; /* run more than once */
    size_t foreign;  /* lines for ids not given */
    size_t max_runs; /* most runs of one id */
    char worst[64];  /* an id run max_runs times */
};

/* Counts the runs of each of ids[0..n) in `path` (a missing file is no
 * runs). */
struct cel_test_runs cel_test_count_runs(const char *path, char **ids, size_t n);
/* One line: "1200 runs: 200 once, 0 never, 0 more than once (...)". */
void cel_test_runs_print(const char *title, const struct cel_test_runs *r);

#endif
