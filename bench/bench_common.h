/* bench_common.h - the clock and the exit-on-error the benchmark
 * programs share. Each program defines BENCH_NAME before including it. */
#ifndef CEL_BENCH_COMMON_H
#define CEL_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void die(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, what, detail);
    exit(1);
}

#endif
