/* tz.c - zones by name, and wall-clock lookups; see tz.h. The file
 * format lives in tzif.c, footer rules in tz_rule.c. */
#include "schedule/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/errbuf.h"
#include "schedule/tzif.h"

enum { MAX_TZIF_BYTES = 1 << 20 };

static bool is_utc_name(const char *name)
{
    return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0 || strcmp(name, "Z") == 0;
}

/* The name becomes a path under the zoneinfo directory: nothing that
 * could step out of it, nor anything exotic. */
static bool valid_name(const char *name)
{
    if (!name[0] || name[0] == '/' || strstr(name, "..") || strlen(name) > 255)
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+/-") ==
           strlen(name);
}

static int utc_zone(const char *name, struct cel_tz **out)
{
    struct cel_tz *tz = calloc(1, sizeof *tz);
    if (!tz || !(tz->name = strdup(name)) || !(tz->types = calloc(1, sizeof *tz->types))) {
        cel__tz_free(tz);
        return CEL_ENOMEM;
    }
    tz->ntypes = 1;
    memcpy(tz->types[0].abbr, "UTC", 4);
    *out = tz;
    return CEL_OK;
}

/* Reads the whole zone file into *data (caller frees). */
static int read_zone_file(const char *name, unsigned char **data, size_t *len, char *why,
                          size_t whylen)
{
    const char *dir = getenv("TZDIR");
    if (!dir || !dir[0])
        dir = "/usr/share/zoneinfo";
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = fd < 0 ? errno : ENOENT; /* a directory is no zone either */
        if (fd >= 0)
            close(fd);
        if (err == ENOENT || err == ENOTDIR)
            return cel__errf(why, whylen, CEL_ENOTFOUND, "unknown time zone '%s'", name);
        return cel__errf(why, whylen, CEL_EIO, "cannot read time zone file '%s': %s", path,
                         strerror(err));
    }
    if (st.st_size > MAX_TZIF_BYTES) {
        close(fd);
        return cel__errf(why, whylen, CEL_EPROTO, "time zone file '%s' is too large", name);
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len ? *len : 1);
    if (!*data) {
        close(fd);
        return CEL_ENOMEM;
    }
    size_t got = 0;
    while (got < *len) {
        ssize_t n = read(fd, *data + got, *len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *len = got; /* a file that shrank while read is then refused as truncated */
    return CEL_OK;
}

int cel__tz_load(const char *name, struct cel_tz **out, char *why, size_t whylen)
{
    *out = NULL;
    if (!name || !valid_name(name))
        return cel__errf(why, whylen, CEL_EINVAL, "invalid time zone name '%s'",
                         name ? name : "(null)");
    if (is_utc_name(name))
        return utc_zone(name, out);
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = read_zone_file(name, &data, &len, why, whylen);
    if (rc)
        return rc;
    char reason[200] = "";
    rc = cel__tz_parse(data, len, name, out, reason, sizeof reason);
    free(data);
    if (rc == CEL_EPROTO)
        cel__errf(why, whylen, rc, "time zone '%s': %s", name, reason);
    return rc;
}

void cel__tz_free(struct cel_tz *tz)
{
    if (!tz)
        return;
    free(tz->name);
    free(tz->times);
    free(tz->type_of);
    free(tz->types);
    free(tz);
}

const char *cel__tz_name(const struct cel_tz *tz)
{
    return tz ? tz->name : "UTC";
}

int cel__days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void cel__tz_to_local(const struct cel_tz *tz, int64_t utc_s, struct cel_local_time *out)
{
    struct cel_tz_span sp;
    cel__tz_span(tz, utc_s, &sp);
    int64_t local = utc_s + sp.off;
    int64_t days = floor_div(local, 86400);
    int64_t secs = local - days * 86400;
    memset(out, 0, sizeof *out);
    cel__civil_from_days(days, &out->year, &out->month, &out->mday);
    out->hour = (int)(secs / 3600);
    out->min = (int)(secs / 60 % 60);
    out->sec = (int)(secs % 60);
    out->wday = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    out->yday = (int)(days - cel__days_from_civil(out->year, 1, 1));
    out->utc_offset_s = sp.off;
    out->dst = sp.dst;
    snprintf(out->abbr, sizeof out->abbr, "%s", sp.abbr);
}

int cel__tz_from_local(const struct cel_tz *tz, int year, int month, int mday, int hour, int min,
                       int sec, int64_t *first, int64_t *second)
{
    int64_t local = cel__days_from_civil(year, month, mday) * 86400 + hour * 3600 + min * 60 + sec;
    /* Offsets stay within +-26 h, so every instant reading `local` lies
     * in this window; walk its spans and keep those that show it. */
    const int64_t reach = 27 * 3600;
    int64_t found[2];
    int n = 0;
    int64_t gap_end = local;
    bool gap_seen = false;
    struct cel_tz_span sp;
    cel__tz_span(tz, local - reach, &sp);
    for (int guard = 0; guard < 64; guard++) {
        int64_t t = local - sp.off;
        if (t >= sp.start && t < sp.end && n < 2)
            found[n++] = t;
        if (!gap_seen && sp.start != INT64_MIN && sp.start + sp.off > local &&
            sp.start + sp.prev_off <= local) {
            gap_end = sp.start;
            gap_seen = true;
        }
        if (sp.end == INT64_MAX || sp.end > local + reach)
            break;
        cel__tz_span(tz, sp.end, &sp);
    }
    if (n == 0) {
        *first = *second = gap_seen ? gap_end : local - sp.off;
        return 0;
    }
    *first = found[0];
    *second = found[n - 1];
    return n;
}
