/*
 * tz.h - IANA time zones read from the system's zoneinfo files.
 *
 * A loaded zone answers two questions: what the wall clock shows at an
 * instant (to_local), and which instants a wall-clock time names
 * (from_local): none in a spring-forward gap, two in a fall-back fold.
 * Beat's next-run computation needs both, and libc offers neither without
 * switching the process-wide TZ, which a library may not do.
 *
 * Files are TZif (RFC 8536) versions 1 to 4 from $TZDIR, or
 * /usr/share/zoneinfo when TZDIR is unset; instants past the file's last
 * transition follow its footer rule (a POSIX TZ string), which is all a
 * "slim" file has. "UTC" (also "Etc/UTC", "Z") needs no file.
 *
 * Ownership: cel__tz_load() hands out a zone the caller frees with
 * cel__tz_free(); a zone is immutable, so threads may share it.
 */
#ifndef CEL_SCHEDULE_TZ_H
#define CEL_SCHEDULE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cel_tz;

/* A wall-clock reading. */
struct cel_local_time {
    int year;             /* e.g. 2026 */
    int month;            /* 1..12 */
    int mday;             /* 1..31 */
    int hour;             /* 0..23 */
    int min;              /* 0..59 */
    int sec;              /* 0..59 */
    int wday;             /* 0..6, Sunday 0 */
    int yday;             /* 0..365 */
    int32_t utc_offset_s; /* local = UTC + offset */
    bool dst;
    char abbr[16]; /* "BST", "EST", "+0530" */
};

/* Loads zone `name` (an IANA name such as "Europe/London", or "UTC").
 * Names with "..", a leading '/', or characters outside [A-Za-z0-9_+/-]
 * are refused (CEL_EINVAL); an unknown zone is CEL_ENOTFOUND; a file that
 * is not valid TZif is CEL_EPROTO. `why` receives the reason. */
int cel__tz_load(const char *name, struct cel_tz **out, char *why, size_t whylen);
void cel__tz_free(struct cel_tz *tz);

/* The name the zone was loaded by. */
const char *cel__tz_name(const struct cel_tz *tz);

/* The wall clock in `tz` at `utc_s` (seconds since the epoch). */
void cel__tz_to_local(const struct cel_tz *tz, int64_t utc_s, struct cel_local_time *out);

/*
 * The instants at which the wall clock in `tz` reads the given local time
 * (fields as in cel_local_time; out-of-range fields are not normalised:
 * callers pass real calendar values). Returns how many there are:
 *   1  the usual case: *first is it (and *second too);
 *   2  a fall-back fold: *first is the earlier, *second the later;
 *   0  a spring-forward gap: the time never shows; *first and *second are
 *      the instant the gap ends (the first valid time after it).
 */
int cel__tz_from_local(const struct cel_tz *tz, int year, int month, int mday, int hour, int min,
                       int sec, int64_t *first, int64_t *second);

/* Days in `month` (1..12) of `year`, leap years counted. */
int cel__days_in_month(int year, int month);

#endif
