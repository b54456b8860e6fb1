/* names.h - month and weekday names, shared by the parsers and the renderer. */
#ifndef CEL_SCHEDULE_NAMES_H
#define CEL_SCHEDULE_NAMES_H

/* Index 0 is January / Sunday; lower-case. */
extern const char *const cel__sched_month_short[12];
extern const char *const cel__sched_month_long[12];
extern const char *const cel__sched_wday_short[7];
extern const char *const cel__sched_wday_long[7];

#endif
