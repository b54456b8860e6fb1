/* limits.c - see limits.h. */
#include "worker/limits.h"

#include <stdio.h>
#include <unistd.h>

int64_t cel__limit_deadline_us(int64_t started_us, double limit_s)
{
    if (started_us <= 0 || !(limit_s > 0))
        return 0;
    return started_us + (int64_t)(limit_s * 1e6);
}

int64_t cel__limit_earliest(const int64_t *deadlines, size_t n)
{
    int64_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (deadlines[i] > 0 && (best == 0 || deadlines[i] < best))
            best = deadlines[i];
    return best;
}

uint64_t cel__limit_timeout_ms(int64_t deadline_us, int64_t now_us)
{
    if (deadline_us <= now_us)
        return 0;
    return (uint64_t)((deadline_us - now_us + 999) / 1000);
}

long cel__limit_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -1;
    unsigned long size, resident;
    int n = fscanf(fp, "%lu %lu", &size, &resident);
    fclose(fp);
    if (n != 2)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    return (long)(resident * (unsigned long)(page > 0 ? page : 4096) / 1024);
}
