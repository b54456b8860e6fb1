/*
 * task_query.h - what the dashboard's task list asks the history store
 * for: filters, sort and page, from the search box's syntax or from
 * Flower's /api/tasks query parameters. Both land in the same struct, so
 * the store runs one query whichever way a request came in.
 *
 * Search syntax: space-separated terms, each `key:value` or a bare word,
 * a value or a bare word in double quotes when it holds spaces.
 *
 *   state:FAILURE name:tasks.add worker:w1@host queue:images
 *   after:2026-12-01T10:00 before:2026-12-02 "some args text"
 *   sort:-runtime limit:50 offset:100
 *
 * - state: one of Celery's states (PENDING RECEIVED STARTED SUCCESS
 *   FAILURE RETRY REVOKED REJECTED, any case); repeated or comma-separated
 *   values are OR'd.
 * - name, worker, queue: exact match.
 * - after, before: first-seen time, ISO 8601 in UTC (date, minutes or
 *   seconds, optional trailing Z) or Unix seconds; after is inclusive,
 *   before exclusive.
 * - bare words: each must occur in the task's args, kwargs, result or
 *   exception text (case-sensitive substring); all of them must.
 * - sort: a field, `-field` or `field:asc|desc`; limit and offset: numbers.
 *
 * Pure functions, no I/O; safe from any thread.
 */
#ifndef CEL_DASHBOARD_TASK_QUERY_H
#define CEL_DASHBOARD_TASK_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Celery's task states, as bits of cel_dash_task_query.states. */
enum cel_dash_task_state {
    CEL_DASH_PENDING = 1 << 0,
    CEL_DASH_RECEIVED = 1 << 1,
    CEL_DASH_STARTED = 1 << 2,
    CEL_DASH_SUCCESS = 1 << 3,
    CEL_DASH_FAILURE = 1 << 4,
    CEL_DASH_RETRY = 1 << 5,
    CEL_DASH_REVOKED = 1 << 6,
    CEL_DASH_REJECTED = 1 << 7,
};

/* Sort keys; the default sorts by the last event's time, newest first. */
enum cel_dash_task_sort {
    CEL_DASH_SORT_TIMESTAMP = 0,
    CEL_DASH_SORT_RECEIVED,
    CEL_DASH_SORT_STARTED,
    CEL_DASH_SORT_SUCCEEDED,
    CEL_DASH_SORT_FAILED,
    CEL_DASH_SORT_NAME,
    CEL_DASH_SORT_STATE,
    CEL_DASH_SORT_WORKER,
    CEL_DASH_SORT_RUNTIME,
    CEL_DASH_SORT_RETRIES,
};

#define CEL_DASH_QUERY_VALUE_MAX     256 /* bytes of a name, worker or queue, with the NUL */
#define CEL_DASH_QUERY_WORDS_MAX     8   /* bare words */
#define CEL_DASH_QUERY_LIMIT_MAX     10000
#define CEL_DASH_QUERY_LIMIT_DEFAULT 100

struct cel_dash_task_query {
    unsigned states;                       /* CEL_DASH_* bits; 0: any state */
    char name[CEL_DASH_QUERY_VALUE_MAX];   /* "": any */
    char worker[CEL_DASH_QUERY_VALUE_MAX]; /* "": any */
    char queue[CEL_DASH_QUERY_VALUE_MAX];  /* "": any */
    double after, before;                  /* Unix seconds; 0: unbounded */
    char words[CEL_DASH_QUERY_WORDS_MAX][CEL_DASH_QUERY_VALUE_MAX];
    size_t nwords;
    enum cel_dash_task_sort sort;
    bool ascending;
    size_t limit; /* 1 .. CEL_DASH_QUERY_LIMIT_MAX */
    size_t offset;
};

/* Every task, newest first, CEL_DASH_QUERY_LIMIT_DEFAULT of them. */
void cel__dash_task_query_init(struct cel_dash_task_query *q);

/*
 * Parses the search syntax into *q (initialized first). CEL_OK, or
 * CEL_EINVAL with a message in why naming the bad key or value and its
 * byte offset ("unknown key 'foo' at 12").
 */
int cel__dash_task_query_parse(const char *text, struct cel_dash_task_query *q, char *why,
                               size_t whylen);

/*
 * Flower's /api/tasks parameters: state, taskname, workername, limit,
 * offset, sort_by (a field, '-' first for descending), received_start
 * and received_end ('YYYY-MM-DD HH:MM', or any time `after:` takes), and
 * search (this file's syntax, merged in). Other keys are ignored, as
 * Flower ignores them. *q is initialized first. CEL_OK or CEL_EINVAL
 * (message in why).
 */
int cel__dash_task_query_from_flower(const char *const *keys, const char *const *values, size_t n,
                                     struct cel_dash_task_query *q, char *why, size_t whylen);

/* A state's bit from its name, any case; 0 when unknown. */
unsigned cel__dash_task_state_bit(const char *name, size_t len);
/* The name of a single state bit ("FAILURE"); NULL when not one. */
const char *cel__dash_task_state_name(unsigned bit);

/* Time text as `after:` takes it, to Unix seconds; false when malformed. */
bool cel__dash_parse_time(const char *text, size_t len, double *out);

#endif
