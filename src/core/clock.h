/*
 * clock.h - monotonic time for timeouts, wall time for timestamps.
 *
 * Timeouts and leases use the monotonic clock so that a clock step never
 * fires or starves them; anything serialised (ETA, date_done, visibility
 * deadlines shared between processes) uses wall time in microseconds
 * since the Unix epoch, UTC.
 */
#ifndef CEL_CORE_CLOCK_H
#define CEL_CORE_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int64_t cel__mono_ms(void);
int64_t cel__mono_us(void);
int64_t cel__wall_us(void);

/* "2026-11-27T18:09:14.392338" (naive UTC, Celery 5.2's date_done) when
 * with_offset is false, "...+00:00" when true. buf needs 40 bytes. */
void cel__iso8601(int64_t wall_us, bool with_offset, char *buf, size_t len);
/* Accepts what Python clients send: with or without fraction, "Z",
 * "+HH:MM"/"-HH:MM" or naive (taken as UTC). Returns 0 or CEL_EINVAL. */
int cel__iso8601_parse(const char *s, int64_t *wall_us);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t cel__days_from_civil(int year, int month, int mday);
/* The inverse: the date `days` after 1970-01-01. */
void cel__civil_from_days(int64_t days, int *year, int *month, int *mday);

#endif
