/*
 * config.c - the configuration table and the cel_config object.
 *
 * Every option is one row of `options[]` below: key, type, default,
 * bounds, flags and help. The setter, the file and environment loaders,
 * the dump, the reference printer, the public iterator (config_info.c, for
 * the CLI) and the shipped docs all read this one table, so they cannot
 * disagree.
 *
 * Values are validated and stored in canonical text form ("86400" for
 * "1d", "true" for "yes", "a,b" for " a , b "), so every reader sees one
 * spelling and cel_config_get() can hand out a borrowed string.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "celeriac/config.h"
#include "celeriac/error.h"
#include "core/config_section.h"
#include "core/config_table.h"
#include "core/errbuf.h"
#include "core/suggest.h"
#include "core/url.h"

static const char *const pool_choices[] = {"prefork", "solo", NULL};
static const char *const level_choices[] = {"debug", "info", "warning", "error", "critical", NULL};
static const char *const rate_scope_choices[] = {"local", "global", NULL};   /* rate limits */
static const char *const catch_up_choices[] = {"skip", "once", "all", NULL}; /* beat */

/* 100 years: large enough for "never in practice", small enough that
 * milliseconds fit an int64_t and a double holds them exactly. */
#define DURATION_MAX INT64_C(3153600000)

static const struct cel__config_option options[] = {
    {"broker_url", CEL__CFG_URL, "sqlite:///celeriac.db", 0, 0, NULL, 0, 'b', "broker",
     "Where tasks are sent and consumed: sqlite:///path.db (embedded, the default), memory://, "
     "redis://[:password@]host[:port][/db] or redis+socket:///path.sock?db=N. (rediss:// "
     "and amqp:// parse but have no transport yet.)"},
    {"result_backend", CEL__CFG_URL, "", 0, 0, NULL, CEL__CFG_EMPTY_OK, 0, "result-backend",
     "Where task states and results are stored; same URL forms as broker_url. Empty means the "
     "same as broker_url."},
    {"task_default_queue", CEL__CFG_STRING, "celery", 0, 0, NULL, 0, 0, NULL,
     "Queue that tasks go to when no queue is given; \"celery\" matches Python Celery."},
    {"worker_concurrency", CEL__CFG_INT, "0", 0, 1024, NULL, 0, 'c', "concurrency",
     "Number of child processes (prefork) executing tasks. 0 means the number of CPUs."},
    {"worker_pool", CEL__CFG_ENUM, "prefork", 0, 0, pool_choices, 0, 'P', "pool",
     "Execution pool: prefork (tasks run in forked children, a crash cannot take the worker "
     "down) or solo (tasks run inline in the worker process, one at a time)."},
    {"log_level", CEL__CFG_ENUM, "warning", 0, 0, level_choices, 0, 'l', "loglevel",
     "Lowest level of log messages that are written: debug, info, warning, error or "
     "critical."},
    {"worker_prefetch_multiplier", CEL__CFG_INT, "4", 1, 10000, NULL, 0, 0, "prefetch-multiplier",
     "Messages reserved per child process: the worker holds at most "
     "concurrency x multiplier unacknowledged messages (16 times more while tasks take under "
     "1 ms, to keep its children busy)."},
    {"result_expires", CEL__CFG_DURATION, "86400", 0, DURATION_MAX, NULL, 0, 0, NULL,
     "How long stored results are kept (30s, 5m, 2h, 1d, ...). 0 means they never expire."},
    {"broker_visibility_timeout", CEL__CFG_DURATION, "0", 0, DURATION_MAX, NULL, 0, 0, NULL,
     "Seconds an unacknowledged message stays reserved by a worker before another worker may "
     "take it. The worker extends the lease of tasks that are still running, so long tasks do "
     "not need a long timeout. 0 means the transport's default: 120 s on sqlite and memory, "
     "3600 s on Redis (kombu's default: a shorter one would restore the running tasks of "
     "Python workers sharing the queue)."},
    {"worker_queues", CEL__CFG_LIST, "", 0, 0, NULL, CEL__CFG_EMPTY_OK, 'Q', "queues",
     "Comma-separated queues the worker consumes from. Empty means task_default_queue."},
    {"worker_hostname", CEL__CFG_STRING, "", 0, 0, NULL, CEL__CFG_EMPTY_OK, 'n', "hostname",
     "Node name the worker reports in events and to inspect/control; %h (host name), %n (host "
     "name without domain), %d (domain) expand as in Celery (-n w1@%h). A name without '@' is "
     "the host part. Empty means celeriac@<host name>."},
    /* ---- the worker process: shutdown, pid file, log file ---- */
    {"worker_soft_shutdown_timeout", CEL__CFG_DURATION, "0", 0, DURATION_MAX, NULL, 0, 0,
     "soft-shutdown-timeout",
     "Celery 5.5's soft shutdown: on a cold shutdown (SIGQUIT, a second SIGINT) the running "
     "tasks first get this many seconds to finish (the worker takes nothing new meanwhile); "
     "those still running then are killed and their messages go back to the queue (acks_late "
     "tasks; early-acked ones are lost, as in Celery). A further SIGQUIT or SIGINT kills them "
     "at once. 0 means a cold shutdown kills at once."},
    {"worker_pidfile", CEL__CFG_STRING, "", 0, 0, NULL, CEL__CFG_EMPTY_OK, 0, "pidfile",
     "File the worker writes its pid to, created exclusively: it refuses to start while a live "
     "process holds the file, replaces a stale one, and removes it at exit (a SIGHUP restart "
     "keeps it: the pid stays the same). %n, %h, %d, %p expand as in Celery (the node name's "
     "parts). Empty means none."},
    {"worker_logfile", CEL__CFG_STRING, "", 0, 0, NULL, CEL__CFG_EMPTY_OK, 0, "logfile",
     "File the worker and its children log to (appended; standard error stays the terminal's "
     "until the file is open). %n, %h, %d, %p expand as for worker_pidfile. A SIGHUP restart "
     "opens it again, so a rotated file is picked up. Empty means standard error (with "
     "--detach: %n.log)."},
    {"task_acks_late", CEL__CFG_BOOL, "true", 0, 0, NULL, 0, 0, NULL,
     "Acknowledge a message after its task finished (true) rather than before it starts "
     "(false), so a task whose worker dies is delivered again."},
    {"worker_max_tasks_per_child", CEL__CFG_INT, "0", 0, INT32_MAX, NULL, 0, 0,
     "max-tasks-per-child",
     "Replace a child process after it ran this many tasks (limits leaks in task code). 0 means "
     "unlimited."},
    {"task_track_started", CEL__CFG_BOOL, "true", 0, 0, NULL, 0, 0, NULL,
     "Store the STARTED state when a task begins running. Python Celery defaults to false; "
     "celeriac defaults to true because the embedded store makes it cheap."},
    {"task_delivery_limit", CEL__CFG_INT, "5", 0, 1000000, NULL, 0, 0, NULL,
     "A message delivered more times than this (its worker died running it each time, e.g. a "
     "task that crashes a -P solo worker) is kept in the dead-letter store and fails with "
     "WorkerLostError instead of running again; 0 means no limit."},
    /* Revokes (celeriac revoke, cel_client_revoke, app.control.revoke). */
    {"worker_revoke_expires", CEL__CFG_DURATION, "10800", 1, 365 * 86400, NULL, 0, 0, NULL,
     "How long a revoke lasts when the revoking call names no expiry (Celery's REVOKE_EXPIRES). "
     "Revokes are kept on the broker side, so workers started later honour them too."},
    {"worker_revokes_max", CEL__CFG_INT, "50000", 0, 10000000, NULL, 0, 0, NULL,
     "Most revokes kept (Celery's REVOKES_MAX); beyond it the ones expiring first are dropped. "
     "0 means no bound."},
    /* ---- monitoring events (docs/events.md) ---- */
    {"worker_send_task_events", CEL__CFG_BOOL, "false", 0, 0, NULL, 0, 0, NULL,
     "Send task events (task-received, -started, -succeeded, -failed, ...) on the celeryev "
     "fan-out for monitors (celery events, flower, celeriac events); switchable at run time "
     "with enable_events/disable_events. Worker online/heartbeat/offline events are sent "
     "either way. Flag -E, --events."},
    {"task_send_sent_event", CEL__CFG_BOOL, "false", 0, 0, NULL, 0, 0, NULL,
     "Clients send a task-sent event for each task they send, as Celery's "
     "task_send_sent_event."},
    /* ---- rate limits ---- */
    {"worker_rate_limit_scope", CEL__CFG_ENUM, "local", 0, 0, rate_scope_choices, 0, 0,
     "rate-limit-scope",
     "Where a task's rate_limit (\"10/s\", \"100/m\", \"1000/h\") holds: local, per worker as in "
     "Celery (two workers run twice the rate), or global, one limit across every worker of the "
     "broker, kept by the broker (a SQLite row, a Redis script); global costs a broker round trip "
     "per rate-limited task."},
    /* ---- time limits, worker failures, recycling ---- */
    {"task_time_limit", CEL__CFG_DURATION, "0", 0, DURATION_MAX, NULL, 0, 0, "time-limit",
     "Hard time limit of every task, seconds (a task's definition or a call's timelimit "
     "overrides it): the child process running a task past it is killed and replaced, and the "
     "task fails with TimeLimitExceeded. 0 means none. Not enforced under -P solo (as in "
     "Celery), where only the soft limit applies."},
    {"task_soft_time_limit", CEL__CFG_DURATION, "0", 0, DURATION_MAX, NULL, 0, 0, "soft-time-limit",
     "Soft time limit of every task, seconds: past it cel_task_soft_limit_reached() is true, so "
     "the task can clean up and return; a failure it then returns is SoftTimeLimitExceeded. 0 "
     "means none."},
    {"task_poison_limit", CEL__CFG_INT, "3", 0, 1000000, NULL, 0, 0, NULL,
     "A task with reject_on_worker_lost whose child process dies goes back to its queue, until "
     "its message has been delivered this many times: then it is kept in the dead-letter store "
     "and fails with WorkerLostError, so a poison message cannot kill children forever. "
     "Separate from task_delivery_limit, which bounds every redelivery. 0 means no limit."},
    {"worker_max_memory_per_child", CEL__CFG_INT, "0", 0, INT32_MAX, NULL, 0, 0,
     "max-memory-per-child",
     "Replace a child process once its resident memory exceeds this many KiB after a task (the "
     "task finishes first, as in Celery). 0 means unlimited."},
    /* ---- pool size at run time (autoscale) ---- */
    {"worker_autoscale", CEL__CFG_STRING, "", 0, 0, NULL, CEL__CFG_EMPTY_OK, 0, "autoscale",
     "MAX,MIN: the prefork pool starts with MIN processes (at least 1), grows toward MAX at once "
     "while tasks wait for a process, and retires processes no task needed for "
     "worker_autoscale_keepalive, down to MIN. The prefetch window is MAX x "
     "worker_prefetch_multiplier. Empty means a fixed pool of worker_concurrency processes."},
    {"worker_autoscale_keepalive", CEL__CFG_DURATION, "30", 0, 86400, NULL, 0, 0, NULL,
     "With worker_autoscale, how long a process must go unneeded before the pool shrinks "
     "(Celery's AUTOSCALE_KEEPALIVE), and how soon after growing; also the period of that check. "
     "Must be above 0."},
    /* ---- periodic tasks (beat, celeriac schedule; docs/scheduling.md) ---- */
    {"timezone", CEL__CFG_STRING, "UTC", 0, 0, NULL, 0, 0, NULL,
     "IANA time zone (Europe/London, America/New_York) in which schedule entries without their "
     "own tz read their times: \"every day at 08:00\" is 08:00 on that zone's wall clock."},
    {"beat_lease_ttl", CEL__CFG_DURATION, "10", 1, 3600, NULL, 0, 0, NULL,
     "How long beat's leadership lease lasts without renewal (renewed every third of it): any "
     "number of beats may run, one sends; when it dies a standby takes over within this time."},
    {"beat_grace", CEL__CFG_DURATION, "15", 0, 86400, NULL, 0, 0, NULL,
     "A run sent at most this late is on time; a later one was missed and the entry's catch-up "
     "policy decides what happens to it. Above beat_lease_ttl (the default is), a standby taking "
     "over from a dead leader sends the runs it missed."},
    {"beat_catch_up", CEL__CFG_ENUM, "once", 0, 0, catch_up_choices, 0, 0, NULL,
     "What beat does with the runs an entry missed (beat down, clock jump) unless the entry says "
     "otherwise: skip (send none), once (send the latest) or all (send each, oldest first, up to "
     "beat_catch_up_max)."},
    {"beat_catch_up_max", CEL__CFG_INT, "100", 1, 1000000, NULL, 0, 0, NULL,
     "With catch-up all, the most missed runs of one entry sent at once; older ones are recorded "
     "as skipped."},
};

#define OPTION_COUNT (sizeof options / sizeof options[0])
#define KEY_MAX      64

_Static_assert(OPTION_COUNT <= CEL__CONFIG_OPTION_MAX, "raise CEL__CONFIG_OPTION_MAX");

struct cel_config {
    char *values[OPTION_COUNT];  /* canonical text; NULL: the default */
    char *origins[OPTION_COUNT]; /* NULL: "default" */
    struct cel__config_sections sections;
    struct cel_errbuf err;
};

/* ---- table access ---------------------------------------------------- */

size_t cel__config_option_count(void)
{
    return OPTION_COUNT;
}

const struct cel__config_option *cel__config_option_at(size_t i)
{
    return i < OPTION_COUNT ? &options[i] : NULL;
}

const char *cel__config_option_key(size_t i)
{
    return i < OPTION_COUNT ? options[i].key : NULL;
}

const char *cel__config_option_help(size_t i)
{
    return i < OPTION_COUNT ? options[i].help : NULL;
}

const char *cel__config_type_name(enum cel__config_type type)
{
    switch (type) {
    case CEL__CFG_STRING:
        return "string";
    case CEL__CFG_URL:
        return "url";
    case CEL__CFG_INT:
        return "int";
    case CEL__CFG_BOOL:
        return "bool";
    case CEL__CFG_DURATION:
        return "duration";
    case CEL__CFG_ENUM:
        return "enum";
    case CEL__CFG_LIST:
        return "list";
    }
    return "?";
}

void cel__config_option_expected(size_t i, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    if (i >= OPTION_COUNT)
        return;
    const struct cel__config_option *o = &options[i];
    switch (o->type) {
    case CEL__CFG_STRING:
        snprintf(buf, len, "%s",
                 (o->flags & CEL__CFG_EMPTY_OK) ? "text without control characters"
                                                : "non-empty text without control "
                                                  "characters");
        break;
    case CEL__CFG_URL:
        snprintf(buf, len, "a URL such as redis://localhost:6379/0");
        break;
    case CEL__CFG_INT:
        if (o->max == INT32_MAX)
            snprintf(buf, len, "an integer >= %lld", (long long)o->min);
        else
            snprintf(buf, len, "an integer between %lld and %lld", (long long)o->min,
                     (long long)o->max);
        break;
    case CEL__CFG_BOOL:
        snprintf(buf, len, "true or false; also 1/0, yes/no, on/off");
        break;
    case CEL__CFG_DURATION:
        if (o->min > 0)
            snprintf(buf, len, "a duration >= %llds, such as 30, 30s, 5m, 2h or 1d",
                     (long long)o->min);
        else
            snprintf(buf, len, "a duration such as 30, 30s, 5m, 2h or 1d");
        break;
    case CEL__CFG_ENUM: {
        size_t used = (size_t)snprintf(buf, len, "one of ");
        for (size_t c = 0; o->choices[c] && used < len; c++)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", c ? ", " : "", o->choices[c]);
        break;
    }
    case CEL__CFG_LIST:
        snprintf(buf, len, "comma-separated names without spaces, such as celery,images");
        break;
    }
}

void cel__config_env_name(const char *key, char *buf, size_t len)
{
    if (len == 0)
        return;
    size_t n = (size_t)snprintf(buf, len, "CELERIAC_%s", key);
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

/* Lower-cases and maps '-' to '_' so "Broker-URL" (from --set) finds
 * broker_url. False when the key is too long to be one of ours. */
static bool normalize_key(const char *key, char *out)
{
    size_t n = strlen(key);
    if (n >= KEY_MAX)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = key[i] == '-' ? '_' : (char)tolower((unsigned char)key[i]);
    return true;
}

int cel__config_find(const char *key)
{
    char norm[KEY_MAX];
    if (!key || !normalize_key(key, norm))
        return -1;
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strcmp(options[i].key, norm) == 0)
            return (int)i;
    return -1;
}

/* The known key closest to an unknown one, or NULL when nothing is close:
 * a small edit distance, or a known key that ends in "_<key>"
 * ("concurrency" -> worker_concurrency). */
static const char *suggest_key(const char *key)
{
    char norm[KEY_MAX];
    if (!normalize_key(key, norm) || norm[0] == '\0')
        return NULL;
    size_t n = strlen(norm);
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        size_t d = cel__word_distance(norm, n, options[i].key);
        if (d < best_d) {
            best_d = d;
            best = options[i].key;
        }
    }
    size_t limit = n / 3 > 2 ? n / 3 : 2;
    if (best && best_d <= limit && best_d < n)
        return best;
    if (n >= 4) {
        for (size_t i = 0; i < OPTION_COUNT; i++) {
            size_t kl = strlen(options[i].key);
            if (kl > n && options[i].key[kl - n - 1] == '_' &&
                strcmp(options[i].key + kl - n, norm) == 0)
                return options[i].key;
        }
    }
    return NULL;
}

/* ---- value validation ------------------------------------------------ */

/* How a value is quoted in an error message: never a secret, never a
 * password inside a URL, never unbounded. */
static void display_value(const struct cel__config_option *o, const char *value, char *buf,
                          size_t len)
{
    if (o->flags & CEL__CFG_SECRET)
        snprintf(buf, len, "***");
    else if (o->type == CEL__CFG_URL)
        cel__url_redact(value, buf, len);
    else
        snprintf(buf, len, "%s", value);
}

static int bad_value(const struct cel__config_option *o, const char *value, const char *why,
                     char *err, size_t errlen)
{
    char shown[160];
    char expected[160];
    display_value(o, value, shown, sizeof shown);
    if (!why) {
        cel__config_option_expected((size_t)(o - options), expected, sizeof expected);
        return cel__errf(err, errlen, CEL_ECONFIG, "invalid value '%s' for %s: expected %s", shown,
                         o->key, expected);
    }
    return cel__errf(err, errlen, CEL_ECONFIG, "invalid value '%s' for %s: %s", shown, o->key, why);
}

static bool parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || p[digits] != '\0' || digits > 18)
        return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return false;
    *out = v;
    return true;
}

/* "1.5m" -> 90000 ms. Only plain decimal numbers: strtod would also take
 * "inf", "nan", hex and exponents, none of which belong in a config file. */
static bool parse_duration_ms(const char *s, int64_t max_s, int64_t *ms)
{
    size_t ip = strspn(s, "0123456789");
    size_t fp = 0;
    size_t n = ip;
    if (s[n] == '.') {
        fp = strspn(s + n + 1, "0123456789");
        n += 1 + fp;
    }
    if (ip + fp == 0 || n > 32)
        return false;
    const char *unit = s + n;
    double mult;
    if (*unit == '\0' || strcasecmp(unit, "s") == 0)
        mult = 1;
    else if (strcasecmp(unit, "ms") == 0)
        mult = 0.001;
    else if (strcasecmp(unit, "m") == 0)
        mult = 60;
    else if (strcasecmp(unit, "h") == 0)
        mult = 3600;
    else if (strcasecmp(unit, "d") == 0)
        mult = 86400;
    else if (strcasecmp(unit, "w") == 0)
        mult = 604800;
    else
        return false;
    char num[40];
    memcpy(num, s, n);
    num[n] = '\0';
    double secs = strtod(num, NULL) * mult;
    if (!(secs <= (double)max_s))
        return false;
    *ms = (int64_t)(secs * 1000.0 + 0.5);
    return true;
}

static char *format_ms(int64_t ms)
{
    char buf[48];
    if (ms % 1000 == 0) {
        snprintf(buf, sizeof buf, "%lld", (long long)(ms / 1000));
    } else {
        snprintf(buf, sizeof buf, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
        size_t n = strlen(buf);
        while (buf[n - 1] == '0')
            buf[--n] = '\0';
    }
    return strdup(buf);
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int canon_list(const struct cel__config_option *o, const char *value, char **out, char *err,
                      size_t errlen)
{
    size_t vlen = strlen(value);
    char *res = malloc(vlen + 1);
    if (!res)
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    size_t used = 0;
    const char *p = value;
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *s = p, *e = p + n;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        for (const char *c = s; c < e; c++) {
            if (isspace((unsigned char)*c) || (unsigned char)*c < 0x20 || *c == 0x7f || *c == '"' ||
                *c == '#' || *c == '\\') {
                free(res);
                return bad_value(o, value, NULL, err, errlen);
            }
        }
        size_t item = (size_t)(e - s);
        bool dup = false;
        for (const char *q = res; item && q < res + used;) {
            size_t qn = strcspn(q, ",");
            if (qn == item && memcmp(q, s, item) == 0)
                dup = true;
            q += qn + 1;
        }
        if (item && !dup) {
            if (used)
                res[used++] = ',';
            memcpy(res + used, s, item);
            used += item;
        }
        res[used] = '\0';
        p += n;
        if (*p == ',')
            p++;
    }
    res[used] = '\0';
    if (used == 0 && !(o->flags & CEL__CFG_EMPTY_OK)) {
        free(res);
        return bad_value(o, value, NULL, err, errlen);
    }
    *out = res;
    return CEL_OK;
}

/* Validates `raw` for option `o` and returns its canonical text in *out
 * (caller frees). Surrounding whitespace is ignored for every type. */
static int canonicalize(const struct cel__config_option *o, const char *raw, char **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    while (isspace((unsigned char)*raw))
        raw++;
    size_t n = strlen(raw);
    while (n > 0 && isspace((unsigned char)raw[n - 1]))
        n--;
    char *value = strndup(raw, n);
    if (!value)
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");

    int rc = CEL_OK;
    char *canon = NULL;
    bool empty_ok = (o->flags & CEL__CFG_EMPTY_OK) != 0;
    switch (o->type) {
    case CEL__CFG_STRING:
        if ((!empty_ok && n == 0) || has_control(value))
            rc = bad_value(o, value, NULL, err, errlen);
        else
            canon = strdup(value);
        break;
    case CEL__CFG_URL:
        if (n == 0) {
            if (empty_ok)
                canon = strdup(value);
            else
                rc = bad_value(o, value, "a URL is required", err, errlen);
        } else {
            struct cel_url u;
            char why[256];
            if (cel__url_parse(value, &u, why, sizeof why) != 0)
                rc = bad_value(o, value, why, err, errlen);
            else
                canon = strdup(value);
            cel__url_release(&u);
        }
        break;
    case CEL__CFG_INT: {
        int64_t v;
        if (!parse_i64(value, &v) || v < o->min || v > o->max) {
            rc = bad_value(o, value, NULL, err, errlen);
        } else {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", (long long)v);
            canon = strdup(buf);
        }
        break;
    }
    case CEL__CFG_BOOL: {
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off"};
        for (size_t i = 0; i < 4 && !canon; i++) {
            if (strcasecmp(value, yes[i]) == 0)
                canon = strdup("true");
            else if (strcasecmp(value, no[i]) == 0)
                canon = strdup("false");
        }
        if (!canon)
            rc = bad_value(o, value, NULL, err, errlen);
        break;
    }
    case CEL__CFG_DURATION: {
        int64_t ms;
        if (!parse_duration_ms(value, o->max, &ms) || ms < o->min * 1000)
            rc = bad_value(o, value, NULL, err, errlen);
        else
            canon = format_ms(ms);
        break;
    }
    case CEL__CFG_ENUM:
        for (size_t i = 0; o->choices[i] && !canon; i++)
            if (strcasecmp(value, o->choices[i]) == 0)
                canon = strdup(o->choices[i]);
        if (!canon)
            rc = bad_value(o, value, NULL, err, errlen);
        break;
    case CEL__CFG_LIST:
        rc = canon_list(o, value, &canon, err, errlen);
        break;
    }
    free(value);
    if (rc == CEL_OK && !canon)
        rc = cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    *out = canon;
    return rc;
}

static int unknown_key(const char *key, bool want_hint, char *err, size_t errlen)
{
    const char *hint = want_hint ? suggest_key(key) : NULL;
    if (hint)
        return cel__errf(err, errlen, CEL_EUNKNOWNKEY,
                         "unknown configuration key '%.64s' (did you mean '%s'?)", key, hint);
    return cel__errf(err, errlen, CEL_EUNKNOWNKEY, "unknown configuration key '%.64s'", key);
}

int cel_config_check(const char *key, const char *value, char *err, size_t errlen)
{
    if (!key || !value)
        return cel__errf(err, errlen, CEL_EINVAL, "key and value are required");
    int idx = cel__config_find(key);
    if (idx < 0)
        return unknown_key(key, true, err, errlen);
    char *canon;
    int rc = canonicalize(&options[idx], value, &canon, err, errlen);
    free(canon);
    if (rc == CEL_OK && err && errlen)
        err[0] = '\0';
    return rc;
}

/* ---- the cel_config object ------------------------------------------ */

cel_config *cel_config_new(void)
{
    return calloc(1, sizeof(cel_config));
}

void cel_config_free(cel_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        free(cfg->values[i]);
        free(cfg->origins[i]);
    }
    cel__config_sections_clear(&cfg->sections);
    free(cfg);
}

cel_config *cel_config_dup(const cel_config *cfg)
{
    if (!cfg)
        return NULL;
    cel_config *copy = cel_config_new();
    if (!copy)
        return NULL;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if ((cfg->values[i] && !(copy->values[i] = strdup(cfg->values[i]))) ||
            (cfg->origins[i] && !(copy->origins[i] = strdup(cfg->origins[i])))) {
            cel_config_free(copy);
            return NULL;
        }
    }
    if (cel__config_sections_copy(&copy->sections, &cfg->sections) != CEL_OK) {
        cel_config_free(copy);
        return NULL;
    }
    return copy;
}

/* Moves every value and origin of `from` into `to` and frees `from`; used
 * to commit a load that was validated on a copy. */
static void config_commit(cel_config *to, cel_config *from)
{
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        free(to->values[i]);
        free(to->origins[i]);
        to->values[i] = from->values[i];
        to->origins[i] = from->origins[i];
        from->values[i] = from->origins[i] = NULL;
    }
    cel__config_sections_clear(&to->sections);
    to->sections = from->sections;
    memset(&from->sections, 0, sizeof from->sections);
    cel_config_free(from);
    cel__err_clear(&to->err);
}

/* cel_config_set() with a switch for the "did you mean" search: loaders
 * report only their first error, so they skip it for later lines (a
 * garbage file would otherwise pay for it on every line). */
static int config_set(cel_config *cfg, const char *key, const char *value, const char *origin,
                      bool want_hint)
{
    if (!cfg)
        return CEL_EINVAL;
    if (!key || !value)
        return cel__err(&cfg->err, CEL_EINVAL, "key and value are required");
    int idx = cel__config_find(key);
    if (idx < 0)
        return unknown_key(key, want_hint, cfg->err.msg, sizeof cfg->err.msg);
    char *canon;
    int rc = canonicalize(&options[idx], value, &canon, cfg->err.msg, sizeof cfg->err.msg);
    if (rc != CEL_OK)
        return rc;
    char *org = NULL;
    if (origin && !(org = strdup(origin))) {
        free(canon);
        return cel__err(&cfg->err, CEL_ENOMEM, "out of memory");
    }
    free(cfg->values[idx]);
    free(cfg->origins[idx]);
    cfg->values[idx] = canon;
    cfg->origins[idx] = org;
    cel__err_clear(&cfg->err);
    return CEL_OK;
}

int cel_config_set(cel_config *cfg, const char *key, const char *value, const char *origin)
{
    return config_set(cfg, key, value, origin, true);
}

const char *cel_config_get(const cel_config *cfg, const char *key)
{
    int idx = cel__config_find(key);
    if (!cfg || idx < 0)
        return NULL;
    return cfg->values[idx] ? cfg->values[idx] : options[idx].def;
}

int64_t cel_config_get_int(const cel_config *cfg, const char *key)
{
    int idx = cel__config_find(key);
    const char *v = cel_config_get(cfg, key);
    if (!v)
        return 0;
    switch (options[idx].type) {
    case CEL__CFG_BOOL:
        return strcmp(v, "true") == 0;
    case CEL__CFG_DURATION:
        return (int64_t)strtod(v, NULL);
    default:
        return strtoll(v, NULL, 10);
    }
}

double cel_config_get_double(const cel_config *cfg, const char *key)
{
    int idx = cel__config_find(key);
    const char *v = cel_config_get(cfg, key);
    if (!v)
        return 0;
    switch (options[idx].type) {
    case CEL__CFG_BOOL:
        return strcmp(v, "true") == 0;
    case CEL__CFG_DURATION:
    case CEL__CFG_INT:
        return strtod(v, NULL);
    default:
        return 0;
    }
}

const char *cel_config_origin(const cel_config *cfg, const char *key)
{
    int idx = cel__config_find(key);
    if (!cfg || idx < 0)
        return NULL;
    if (!cfg->origins[idx])
        return cfg->values[idx] ? "api" : "default";
    return cfg->origins[idx];
}

const char *cel_config_errmsg(const cel_config *cfg)
{
    return cfg ? cfg->err.msg : "";
}

/* ---- config file ----------------------------------------------------- */

/* Splits one line (without its newline) into key and value. Returns 0 and
 * sets *key and *value (caller frees) for a setting, 1 for a blank or comment
 * line, or CEL_ECONFIG with the reason in err. */
static int parse_line(const char *s, size_t n, char **key, char **value, char *err, size_t errlen)
{
    *key = *value = NULL;
    if (memchr(s, '\0', n))
        return cel__errf(err, errlen, CEL_ECONFIG, "NUL byte in line");
    const char *e = s + n;
    if (e > s && e[-1] == '\r')
        e--;
    while (s < e && isspace((unsigned char)*s))
        s++;
    if (s == e || *s == '#')
        return 1;
    const char *k = s;
    while (s < e && !isspace((unsigned char)*s) && *s != '=')
        s++;
    size_t klen = (size_t)(s - k);
    if (klen == 0)
        return cel__errf(err, errlen, CEL_ECONFIG, "missing key before '='");
    while (s < e && isspace((unsigned char)*s))
        s++;
    bool had_eq = false;
    if (s < e && *s == '=') {
        had_eq = true;
        s++;
        while (s < e && isspace((unsigned char)*s))
            s++;
    }

    char *v = NULL;
    if (s < e && *s == '"') {
        /* Quoted: \" and \\ are the only escapes; nothing but a comment
         * may follow the closing quote. */
        v = malloc((size_t)(e - s));
        if (!v)
            return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
        size_t o = 0;
        bool closed = false;
        for (s++; s < e; s++) {
            if (*s == '"') {
                closed = true;
                s++;
                break;
            }
            if (*s == '\\') {
                if (s + 1 >= e || (s[1] != '"' && s[1] != '\\')) {
                    free(v);
                    return cel__errf(err, errlen, CEL_ECONFIG,
                                     "invalid escape in quoted value (only \\\" and \\\\)");
                }
                s++;
            }
            v[o++] = *s;
        }
        v[o] = '\0';
        if (!closed) {
            free(v);
            return cel__errf(err, errlen, CEL_ECONFIG, "missing closing '\"'");
        }
        while (s < e && isspace((unsigned char)*s))
            s++;
        if (s < e && *s != '#') {
            free(v);
            return cel__errf(err, errlen, CEL_ECONFIG, "unexpected text after closing '\"'");
        }
    } else {
        /* Unquoted: a '#' after whitespace starts a comment, so a '#'
         * inside a value needs quotes. */
        const char *vs = s;
        const char *ve = s;
        if (s < e && *s == '#')
            ve = s;
        else
            for (ve = s; ve < e; ve++)
                if (*ve == '#' && isspace((unsigned char)ve[-1]))
                    break;
        while (ve > vs && isspace((unsigned char)ve[-1]))
            ve--;
        if (ve == vs && !had_eq)
            return cel__errf(err, errlen, CEL_ECONFIG, "missing value for '%.*s'",
                             (int)(klen > 64 ? 64 : klen), k);
        v = strndup(vs, (size_t)(ve - vs));
        if (!v)
            return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    }
    *key = strndup(k, klen);
    if (!*key) {
        free(v);
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    }
    *value = v;
    return 0;
}

int cel__config_load_buffer(cel_config *cfg, const char *text, size_t len, const char *name)
{
    if (!cfg)
        return CEL_EINVAL;
    if (!text && len)
        return cel__err(&cfg->err, CEL_EINVAL, "no text given");
    if (!name)
        name = "config";
    cel_config *tmp = cel_config_dup(cfg);
    if (!tmp)
        return cel__err(&cfg->err, CEL_ENOMEM, "out of memory");

    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* UTF-8 byte-order mark written by some editors */
    int first_rc = CEL_OK, nerr = 0;
    bool in_section = false;   /* after a [section] header: its lines until the next */
    bool skip_section = false; /* that header was refused */
    char first[2 * CEL_ERRBUF_SIZE] = "";
    for (int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *key = NULL, *value = NULL, why[CEL_ERRBUF_SIZE];
        char origin[32];
        snprintf(origin, sizeof origin, "file:%d", line);
        /* A NUL byte is parse_line's error to report. */
        int rc = memchr(p, '\0', n)
                     ? 0
                     : cel__config_section_header(&tmp->sections, p, n, origin, why, sizeof why);
        if (rc == 1 || rc < 0) {
            /* The lines of a refused section are not global options:
             * skip them rather than report each. */
            skip_section = rc < 0;
            in_section = true;
            rc = rc < 0 ? rc : CEL_OK;
        } else if (skip_section) {
            rc = CEL_OK;
        } else if (rc == 0 && (rc = parse_line(p, n, &key, &value, why, sizeof why)) == 0) {
            if (in_section) {
                rc = cel__config_section_set(&tmp->sections, key, value, why, sizeof why);
            } else {
                rc = config_set(tmp, key, value, origin, nerr == 0);
                if (rc != CEL_OK)
                    snprintf(why, sizeof why, "%s", cel_config_errmsg(tmp));
            }
            free(key);
            free(value);
        }
        if (rc < 0) {
            if (nerr++ == 0) {
                first_rc = rc;
                snprintf(first, sizeof first, "%s:%d: %s", name, line, why);
            }
            if (rc == CEL_ENOMEM)
                break;
        }
        p += n + (nl ? 1 : 0);
    }
    if (nerr) {
        cel_config_free(tmp);
        if (nerr > 1)
            return cel__err(&cfg->err, first_rc, "%s (and %d more error%s)", first, nerr - 1,
                            nerr > 2 ? "s" : "");
        return cel__err(&cfg->err, first_rc, "%s", first);
    }
    config_commit(cfg, tmp);
    return CEL_OK;
}

/* Config files are small; the cap only stops an accidental multi-gigabyte
 * path from being slurped. */
#define CONFIG_FILE_MAX (1 << 20)

int cel_config_load_file(cel_config *cfg, const char *path)
{
    if (!cfg)
        return CEL_EINVAL;
    if (!path)
        return cel__err(&cfg->err, CEL_EINVAL, "no configuration file given");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cel__err(&cfg->err, errno == ENOENT ? CEL_ENOTFOUND : CEL_EIO,
                        "cannot open '%s': %s", path, strerror(errno));
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return cel__err(&cfg->err, CEL_ENOMEM, "out of memory");
    }
    size_t len = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int failed = ferror(f);
    fclose(f);
    int rc;
    if (failed)
        rc = cel__err(&cfg->err, CEL_EIO, "cannot read '%s'", path);
    else if (len > CONFIG_FILE_MAX)
        rc =
            cel__err(&cfg->err, CEL_ETOOBIG, "'%s' is larger than %d bytes", path, CONFIG_FILE_MAX);
    else
        rc = cel__config_load_buffer(cfg, buf, len, path);
    free(buf);
    return rc;
}

/* ---- environment ----------------------------------------------------- */

#define ENV_PREFIX "CELERIAC_"

int cel_config_load_env(cel_config *cfg)
{
    if (!cfg)
        return CEL_EINVAL;
    cel_config *tmp = cel_config_dup(cfg);
    if (!tmp)
        return cel__err(&cfg->err, CEL_ENOMEM, "out of memory");
    int first_rc = CEL_OK, nerr = 0;
    char first[2 * CEL_ERRBUF_SIZE] = "";
    for (char **ep = environ; ep && *ep; ep++) {
        const char *var = *ep;
        if (strncmp(var, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        const char *name = var + strlen(ENV_PREFIX);
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - name);
        /* CELERIAC_CONFIG names the file (read by the CLI); CELERIAC_TEST*
         * belong to the test suite. Neither is an option. */
        if ((nlen == 6 && strncmp(name, "CONFIG", 6) == 0) || strncmp(name, "TEST", 4) == 0)
            continue;
        char key[KEY_MAX] = "";
        int idx = -1;
        if (nlen < KEY_MAX) {
            memcpy(key, name, nlen);
            key[nlen] = '\0';
            idx = cel__config_find(key);
        }
        int rc;
        char why[CEL_ERRBUF_SIZE + 128];
        if (idx < 0) {
            const char *hint = nlen < KEY_MAX && nerr == 0 ? suggest_key(key) : NULL;
            char hint_env[KEY_MAX + 16] = "";
            if (hint)
                cel__config_env_name(hint, hint_env, sizeof hint_env);
            rc = CEL_EUNKNOWNKEY;
            snprintf(why, sizeof why, "unknown environment variable %.*s%s%s%s",
                     (int)(nlen > 64 ? 64 : nlen) + 9, var, hint ? " (did you mean " : "", hint_env,
                     hint ? "?)" : "");
        } else {
            rc = cel_config_set(tmp, options[idx].key, eq + 1, "env");
            if (rc != CEL_OK)
                snprintf(why, sizeof why, "%.*s: %s", (int)nlen + 9, var, cel_config_errmsg(tmp));
        }
        if (rc < 0 && nerr++ == 0) {
            first_rc = rc;
            snprintf(first, sizeof first, "%s", why);
        }
    }
    if (nerr) {
        cel_config_free(tmp);
        if (nerr > 1)
            return cel__err(&cfg->err, first_rc, "%s (and %d more error%s)", first, nerr - 1,
                            nerr > 2 ? "s" : "");
        return cel__err(&cfg->err, first_rc, "%s", first);
    }
    config_commit(cfg, tmp);
    return CEL_OK;
}

/* ---- output ---------------------------------------------------------- */

/* Writes a value so that the file parser reads it back unchanged. */
static void write_value(FILE *out, const char *v)
{
    if (*v && !strpbrk(v, " \t#\"\\")) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            fputc('\\', out);
        fputc(*v, out);
    }
    fputc('"', out);
}

void cel__config_write(const cel_config *cfg, FILE *out, bool redact)
{
    if (!cfg || !out)
        return;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct cel__config_option *o = &options[i];
        const char *v = cfg->values[i] ? cfg->values[i] : o->def;
        char redacted[CEL_URL_MAX + 8];
        const char *shown = v;
        if (redact && (o->flags & CEL__CFG_SECRET) && *v) {
            shown = "***";
        } else if (redact && o->type == CEL__CFG_URL) {
            cel__url_redact(v, redacted, sizeof redacted);
            shown = redacted;
        }
        fprintf(out, "%s = ", o->key);
        write_value(out, shown);
        fprintf(out, "  # %s\n", cel_config_origin(cfg, o->key));
    }
    for (size_t i = 0; i < cfg->sections.n; i++) {
        const struct cel__config_section *sec = &cfg->sections.v[i];
        fprintf(out, "\n[%s]  # %s\n", sec->name, sec->origin);
        for (size_t k = 0; k < sec->n; k++) {
            fprintf(out, "%s = ", sec->keys[k]);
            write_value(out, sec->values[k]);
            fputc('\n', out);
        }
    }
}

/* ---- sections -------------------------------------------------------- */

size_t cel_config_section_count(const cel_config *cfg)
{
    return cfg ? cfg->sections.n : 0;
}

const char *cel_config_section_name(const cel_config *cfg, size_t i)
{
    return cfg && i < cfg->sections.n ? cfg->sections.v[i].name : NULL;
}

const char *cel_config_section_get(const cel_config *cfg, size_t i, const char *key)
{
    if (!cfg || i >= cfg->sections.n || !key)
        return NULL;
    return cel__config_section_value(&cfg->sections.v[i], key);
}

const char *cel_config_section_origin(const cel_config *cfg, size_t i)
{
    return cfg && i < cfg->sections.n ? cfg->sections.v[i].origin : NULL;
}

void cel_config_dump(const cel_config *cfg, FILE *out)
{
    cel__config_write(cfg, out, true);
}

/* Writes text as lines of at most `width` columns, each indented. */
static void write_wrapped(FILE *out, const char *text, int indent, int width)
{
    const char *p = text;
    while (*p) {
        int room = width - indent;
        size_t n = strlen(p);
        size_t cut = n;
        if (n > (size_t)room) {
            cut = (size_t)room;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = strcspn(p, " ");
        }
        fprintf(out, "%*s%.*s\n", indent, "", (int)cut, p);
        p += cut;
        while (*p == ' ')
            p++;
    }
}

void cel_config_describe(FILE *out)
{
    if (!out)
        return;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct cel__config_option *o = &options[i];
        char env[KEY_MAX + 16], expected[160];
        cel__config_env_name(o->key, env, sizeof env);
        cel__config_option_expected(i, expected, sizeof expected);
        fprintf(out, "%s\n", o->key);
        fprintf(out, "    type:     %s (%s)\n", cel__config_type_name(o->type), expected);
        fprintf(out, "    default:  %s\n", *o->def ? o->def : "\"\"");
        fprintf(out, "    env:      %s\n", env);
        if (o->cli_short && o->cli_long)
            fprintf(out, "    flag:     -%c, --%s\n", o->cli_short, o->cli_long);
        else if (o->cli_long)
            fprintf(out, "    flag:     --%s\n", o->cli_long);
        write_wrapped(out, o->help, 4, 80);
        fputc('\n', out);
    }
}

/* ---- effective values ------------------------------------------------ */

static int put(char *buf, size_t len, const char *v)
{
    int n = snprintf(buf, len, "%s", v);
    return n < 0 || (size_t)n >= len ? CEL_ETOOBIG : CEL_OK;
}

int cel__config_effective(const cel_config *cfg, const char *key, char *buf, size_t len)
{
    const char *v = cel_config_get(cfg, key);
    if (!v)
        return CEL_EUNKNOWNKEY;
    int idx = cel__config_find(key);
    const char *name = options[idx].key;
    if (*v == '\0' && strcmp(name, "result_backend") == 0)
        return put(buf, len, cel_config_get(cfg, "broker_url"));
    if (*v == '\0' && strcmp(name, "worker_queues") == 0)
        return put(buf, len, cel_config_get(cfg, "task_default_queue"));
    if (*v == '\0' && strcmp(name, "worker_hostname") == 0) {
        char host[256];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        int n = snprintf(buf, len, "celeriac@%s", host);
        return n < 0 || (size_t)n >= len ? CEL_ETOOBIG : CEL_OK;
    }
    if (strcmp(v, "0") == 0 && strcmp(name, "worker_concurrency") == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        char num[32];
        snprintf(num, sizeof num, "%ld", cpus > 0 ? cpus : 1);
        return put(buf, len, num);
    }
    return put(buf, len, v);
}
