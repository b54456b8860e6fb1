/* names.c - see names.h. */
#include "schedule/names.h"

const char *const cel__sched_month_short[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                "jul", "aug", "sep", "oct", "nov", "dec"};
const char *const cel__sched_month_long[12] = {"january",   "february", "march",    "april",
                                               "may",       "june",     "july",     "august",
                                               "september", "october",  "november", "december"};
const char *const cel__sched_wday_short[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
const char *const cel__sched_wday_long[7] = {"sunday",   "monday", "tuesday", "wednesday",
                                             "thursday", "friday", "saturday"};
