/*
 * limits.h - what bounds a prefork child: the hard time limit of the task
 * it runs, and its resident memory (worker_max_memory_per_child).
 *
 * Pure helpers for the deadline arithmetic (unit-tested) and one /proc
 * read; the pool (pool_prefork.c) owns the timer and the kills.
 */
#ifndef CEL_WORKER_LIMITS_H
#define CEL_WORKER_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* When a task that started at `started_us` (monotonic) must be stopped
 * under a hard limit of `limit_s` seconds; 0 when there is none (no
 * limit, or the task has not started). */
int64_t cel__limit_deadline_us(int64_t started_us, double limit_s);

/* The earliest of n deadlines (0 entries mean none); 0 when all are 0. */
int64_t cel__limit_earliest(const int64_t *deadlines, size_t n);

/* Milliseconds from now_us until deadline_us for a timer, rounded up so
 * it never fires before the deadline; 0 when it has passed. */
uint64_t cel__limit_timeout_ms(int64_t deadline_us, int64_t now_us);

/* Resident set size of process `pid` in KiB (from /proc/<pid>/statm), or
 * -1 when it cannot be read (the process is gone). */
long cel__limit_rss_kib(pid_t pid);

#endif
