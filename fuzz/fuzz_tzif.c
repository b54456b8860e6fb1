/*
 * fuzz_tzif.c - TZif zone files (read from the system's zoneinfo, or a
 * $TZDIR the user points at), footer rule included.
 *
 * Besides "no crash": a refusal is CEL_EPROTO with a reason and no zone;
 * an accepted zone reads every instant as a real calendar time, and a
 * wall-clock time it says it shows reads back as that time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "schedule/tzif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_instant(const struct cel_tz *tz, int64_t t)
{
    struct cel_local_time lt;
    cel__tz_to_local(tz, t, &lt);
    if (lt.month < 1 || lt.month > 12 || lt.mday < 1 ||
        lt.mday > cel__days_in_month(lt.year, lt.month) || lt.hour < 0 || lt.hour > 23 ||
        lt.min < 0 || lt.min > 59 || lt.sec < 0 || lt.sec > 59 || lt.wday < 0 || lt.wday > 6 ||
        lt.yday < 0 || lt.yday > 365 || !memchr(lt.abbr, '\0', sizeof lt.abbr))
        abort();
    int64_t first, second;
    int n = cel__tz_from_local(tz, lt.year, lt.month, lt.mday, lt.hour, lt.min, lt.sec, &first,
                               &second);
    if (n < 0 || n > 2 || first > second)
        abort();
    if (n >= 1) {
        struct cel_local_time back;
        cel__tz_to_local(tz, first, &back);
        if (back.year != lt.year || back.month != lt.month || back.mday != lt.mday ||
            back.hour != lt.hour || back.min != lt.min || back.sec != lt.sec)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cel_tz *tz = NULL;
    char why[200] = "";
    int rc = cel__tz_parse(data, size, "Fuzz/Zone", &tz, why, sizeof why);
    if (rc != CEL_OK) {
        if ((rc != CEL_EPROTO && rc != CEL_ENOMEM) || tz || (rc == CEL_EPROTO && !why[0]))
            abort();
        return 0;
    }
    /* 1901 to 2200, through the table and into the footer rule. */
    for (int64_t t = -2208988800LL; t < 7258118400LL; t += 86400 * 97 + 3607)
        check_instant(tz, t);
    cel__tz_free(tz);
    return 0;
}
