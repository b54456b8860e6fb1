/*
 * celeriac/schedule.h - periodic entries: tasks sent on a schedule by
 * `celeriac beat`, kept in the broker's store so every beat process, the
 * `celeriac schedule` command and the dashboard see and edit the same
 * entries while beat runs (changes take effect within a second).
 *
 *     cel_schedule_entry e = CEL_SCHEDULE_ENTRY_INIT(
 *         .name = "reports", .task = "tasks.report", .args_json = "[1]",
 *         .when = "every weekday at 18:00", .tz = "Europe/London");
 *     if (cel_schedule_add(client, &e, 0) != CEL_OK)
 *         fprintf(stderr, "%s\n", cel_client_errmsg(client));
 *
 * An entry says when in exactly one of four ways:
 *   cron   "*\/15 * * * *", with an optional leading seconds field,
 *          names, ranges, steps, L, @hourly/@daily/@weekly/@monthly/
 *          @yearly/@reboot;
 *   every  an interval: "15m", "30s", "2h", "every 15 minutes";
 *   at     once, at a date-time: "2026-12-24T18:00";
 *   when   English: "every monday at 8am", "twice a day", "every 15
 *          minutes between 9am and 5pm on weekdays".
 * Times are wall-clock times in the entry's zone (an IANA name; NULL: the
 * configured `timezone`, UTC by default).
 *
 * Ownership: cel_schedule_entry fields are borrowed for the call. A
 * cel_schedule_entries belongs to the caller; everything it returns is
 * borrowed from it until cel_schedule_entries_free(). Thread safety: as
 * cel_client.
 */
#ifndef CELERIAC_SCHEDULE_H
#define CELERIAC_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "celeriac/client.h"
#include "celeriac/common.h"
#include "celeriac/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What beat does with runs it missed (beat was down, the leader died, the
 * clock jumped): runs late by more than `beat_grace` are missed. */
typedef enum cel_catch_up {
    CEL_CATCH_UP_DEFAULT = 0, /* the configured beat_catch_up */
    CEL_CATCH_UP_SKIP = 1,    /* send none of them */
    CEL_CATCH_UP_ONCE = 2,    /* send the latest one */
    CEL_CATCH_UP_ALL = 3,     /* send each, oldest first, up to beat_catch_up_max */
} cel_catch_up;

/* Initialise with CEL_SCHEDULE_ENTRY_INIT (the sizing rules of
 * cel_send_options in client.h). */
typedef struct cel_schedule_entry {
    unsigned struct_size;    /* sizeof(cel_schedule_entry); CEL_SCHEDULE_ENTRY_INIT */
    const char *name;        /* required: letters, digits and _ . : - ; at most 200 bytes */
    const char *task;        /* required: the task name */
    const char *args_json;   /* a JSON array; NULL: [] */
    const char *kwargs_json; /* a JSON object; NULL: {} */
    const char *cron;        /* exactly one of cron, every, at, when */
    const char *every;
    const char *at;
    const char *when;
    const char *tz;    /* IANA zone; NULL: the configured timezone */
    const char *queue; /* NULL: task_default_queue */
    int has_priority;  /* with priority 0..9 */
    int priority;
    double expires; /* seconds after the run's scheduled time; 0: never */
    cel_catch_up catch_up;
    int disabled; /* stored but not run until enabled */
} cel_schedule_entry;

#define CEL_SCHEDULE_ENTRY_INIT(...)                                                               \
    (cel_schedule_entry)                                                                           \
    {                                                                                              \
        .struct_size = sizeof(cel_schedule_entry), __VA_ARGS__                                     \
    }

typedef struct cel_schedule_entries cel_schedule_entries;

/* Checks the entry (its schedule parses, its zone exists, its JSON is
 * JSON) and stores it. An existing entry of that name is CEL_ESTATE
 * unless `replace`; a replaced entry keeps its last run, so changing a
 * schedule does not repeat or skip a run. CEL_EINVAL names the field and,
 * for a schedule, the word it could not read. CEL_ENOTSUP: the broker
 * keeps no schedule (memory://). */
CEL_API int cel_schedule_add(cel_client *c, const cel_schedule_entry *e, int replace);
CEL_API int cel_schedule_remove(cel_client *c, const char *name);
CEL_API int cel_schedule_enable(cel_client *c, const char *name, int enabled);

/* Sends the entry's task now, as its next run would be sent, without
 * touching its schedule; *out (may be NULL) receives the result handle. */
CEL_API int cel_schedule_run_now(cel_client *c, const char *name, cel_result **out);

/* Every entry, sorted by name, or the one named (CEL_ENOTFOUND). */
CEL_API int cel_schedule_list(cel_client *c, cel_schedule_entries **out);
CEL_API int cel_schedule_get(cel_client *c, const char *name, cel_schedule_entries **out);

CEL_API size_t cel_schedule_entries_count(const cel_schedule_entries *l);
/* The entry as stored: every field filled in (the defaults it was stored
 * with included); NULL past the end. */
CEL_API const cel_schedule_entry *cel_schedule_entries_entry(const cel_schedule_entries *l,
                                                             size_t i);
CEL_API int cel_schedule_entries_enabled(const cel_schedule_entries *l, size_t i);
/* "every Monday at 08:00" */
CEL_API const char *cel_schedule_entries_text(const cel_schedule_entries *l, size_t i);
/* Scheduled time (wall µs) of the last run sent or skipped; 0: never. */
CEL_API int64_t cel_schedule_entries_last_run(const cel_schedule_entries *l, size_t i);
CEL_API int64_t cel_schedule_entries_total_runs(const cel_schedule_entries *l, size_t i);
/* Where it came from: "api" (this API, the CLI, the dashboard) or
 * "config" (a [schedule.NAME] section, kept in step at beat start). */
CEL_API const char *cel_schedule_entries_origin(const cel_schedule_entries *l, size_t i);
/* Fills up to `max` upcoming run times (wall µs) after `after_us` and
 * says how many there are (fewer for a one-off; 0 for @reboot). */
CEL_API size_t cel_schedule_entries_next_runs(const cel_schedule_entries *l, size_t i,
                                              int64_t after_us, int64_t *out_us, size_t max);
/* The whole entry as one JSON object (fields above, plus "text",
 * "enabled", "last_run", "total_runs", "origin"). */
CEL_API const char *cel_schedule_entries_json(const cel_schedule_entries *l, size_t i);
CEL_API void cel_schedule_entries_free(cel_schedule_entries *l);

/*
 * Without a connection: checks `e` as cel_schedule_add() would and writes
 * its schedule as English into text[textlen] (cut to fit) and up to
 * `max` next run times after after_us into next_us (*n says how many).
 * default_tz: the zone for an entry without one (NULL: UTC). On error
 * errbuf[errlen] says why.
 */
CEL_API int cel_schedule_describe(const cel_schedule_entry *e, const char *default_tz,
                                  int64_t after_us, char *text, size_t textlen, int64_t *next_us,
                                  size_t max, size_t *n, char *errbuf, size_t errlen);

/* Makes the store's config-born entries those of cfg's [schedule.NAME]
 * sections: adds and replaces them (their last runs kept) and removes
 * config-born entries no longer there. Entries added through the API are
 * left alone. Beat calls this when it starts. */
CEL_API int cel_schedule_sync_config(cel_client *c, const cel_config *cfg);

#ifdef __cplusplus
}
#endif

#endif
