/*
 * cmd_schedule.c - `celeriac schedule`: the periodic entries beat sends
 * (celeriac/schedule.h), edited while beat runs.
 *
 *   celeriac schedule add NAME --task TASK [ARG...] (--cron EXPR | --every DUR |
 *                         --at DATETIME | --when PHRASE) [options]
 *   celeriac schedule list [--json]
 *   celeriac schedule show NAME [--json]
 *   celeriac schedule enable|disable|remove|run-now NAME
 *
 * An entry is checked here before anything is connected, so a schedule
 * that does not parse is shown with a caret under the word that stopped
 * it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli_args.h"
#include "cli_common.h"

#define SHOW_RUNS 5

enum {
    OPT_TASK = CLI_OPT_LOCAL,
    OPT_KW,
    OPT_CRON,
    OPT_EVERY,
    OPT_AT,
    OPT_WHEN,
    OPT_TZ,
    OPT_PRIORITY,
    OPT_EXPIRES,
    OPT_CATCH_UP,
    OPT_DISABLED,
    OPT_REPLACE,
    OPT_JSON,
};

static const struct cli_opt schedule_opts[] = {
    {"task", required_argument, OPT_TASK, "TASK",
     "add: the task to send (required); the ARGs after it are its arguments, each JSON when "
     "it parses as JSON and else a string, as in celeriac call (-- before one that starts "
     "with -)"},
    {"args", required_argument, 'a', "JSON",
     "add: positional arguments as a JSON array (instead of ARG...)"},
    {"kwargs", required_argument, 'k', "JSON", "add: keyword arguments as a JSON object"},
    {"kw", required_argument, OPT_KW, "KEY=VALUE",
     "add: one keyword argument, VALUE as JSON or else a string (repeatable)"},
    {"cron", required_argument, OPT_CRON, "EXPR",
     "add: a cron expression, \"*/15 * * * *\", with an optional leading seconds field, or "
     "@hourly, @daily, @weekly, @monthly, @yearly, @reboot"},
    {"every", required_argument, OPT_EVERY, "DUR", "add: an interval: 30s, 15m, 2h, 1h30m"},
    {"at", required_argument, OPT_AT, "DATETIME",
     "add: once, at 2026-12-24T18:00 (the entry's zone unless it carries Z or +HH:MM); a time "
     "in the past is refused"},
    {"when", required_argument, OPT_WHEN, "PHRASE",
     "add: English: \"every monday at 8am\", \"twice a day\", \"every 15 minutes between 9am "
     "and 5pm on weekdays\""},
    {"tz", required_argument, OPT_TZ, "ZONE",
     "add: the IANA zone its times are read in (default: the timezone option)"},
    {"queue", required_argument, 'q', "NAME",
     "add: queue to send to (default: task_default_queue)"},
    {"priority", required_argument, OPT_PRIORITY, "N", "add: message priority 0..9"},
    {"expires", required_argument, OPT_EXPIRES, "SECONDS",
     "add: a run not started this long after its scheduled time is not run (REVOKED)"},
    {"catch-up", required_argument, OPT_CATCH_UP, "skip|once|all",
     "add: what beat does with runs it missed (default: the beat_catch_up option)"},
    {"disabled", no_argument, OPT_DISABLED, NULL, "add: store the entry without running it yet"},
    {"replace", no_argument, OPT_REPLACE, NULL,
     "add: replace an entry of that name (its last run is kept)"},
    {"json", no_argument, OPT_JSON, NULL, "list, show: print JSON, one object per entry"},
};

const struct cli_cmd cli_schedule_cmd = {
    "schedule",
    "Add, list, show, enable, disable, remove or run now the periodic entries celeriac beat "
    "sends.",
    "add NAME --task TASK [ARG...] [-a JSON] [-k JSON]\n"
    "           (--cron EXPR | --every DUR | --at DATETIME | --when PHRASE) [--tz ZONE]\n"
    "           [--queue Q] [--priority N] [--expires S] [--catch-up skip|once|all]\n"
    "           [--disabled] [--replace]\n"
    "       celeriac schedule list [--json] | show NAME [--json]\n"
    "       celeriac schedule enable NAME | disable NAME | remove NAME | run-now NAME",
    false,
    schedule_opts,
    sizeof schedule_opts / sizeof schedule_opts[0],
};

struct schedule_args {
    cel_schedule_entry e;
    const char *args_json, *kwargs_json;
    json_t *kw;
    int nkinds; /* of --cron/--every/--at/--when given */
    bool replace, json;
};

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct schedule_args *a = ctx;
    char *end;
    switch (val) {
    case OPT_TASK:
        a->e.task = arg;
        return 0;
    case 'a':
        a->args_json = arg;
        return 0;
    case 'k':
        a->kwargs_json = arg;
        return 0;
    case OPT_KW:
        return cli_add_kw(cli, &a->kw, arg);
    case OPT_CRON:
    case OPT_EVERY:
    case OPT_AT:
    case OPT_WHEN: {
        const char **slot[] = {&a->e.cron, &a->e.every, &a->e.at, &a->e.when};
        *slot[val - OPT_CRON] = arg;
        a->nkinds++;
        return 0;
    }
    case OPT_TZ:
        a->e.tz = arg;
        return 0;
    case 'q':
        a->e.queue = arg;
        return 0;
    case OPT_PRIORITY: {
        long p = strtol(arg, &end, 10);
        if (!*arg || *end || p < 0 || p > 9) {
            cli_error(cli, "--priority expects an integer 0..9, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        a->e.priority = (int)p;
        a->e.has_priority = 1;
        return 0;
    }
    case OPT_EXPIRES:
        if (!cli_parse_seconds(arg, &a->e.expires)) {
            cli_error(cli, "--expires expects seconds, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case OPT_CATCH_UP: {
        static const char *const names[] = {"skip", "once", "all"};
        for (int i = 0; i < 3; i++)
            if (strcasecmp(arg, names[i]) == 0) {
                a->e.catch_up = (cel_catch_up)(CEL_CATCH_UP_SKIP + i);
                return 0;
            }
        cli_error(cli, "--catch-up expects skip, once or all, got '%s'", arg);
        return CLI_EXIT_USAGE;
    }
    case OPT_DISABLED:
        a->e.disabled = 1;
        return 0;
    case OPT_REPLACE:
        a->replace = true;
        return 0;
    case OPT_JSON:
        a->json = true;
        return 0;
    }
    return CLI_EXIT_USAGE;
}

/* "not found" and "exists" are the caller's mistakes, not the broker's. */
static int exit_for(int rc)
{
    if (rc == CEL_ENOTFOUND || rc == CEL_ESTATE || rc == CEL_ENOTSUP)
        return CLI_EXIT_USAGE;
    return cli_exit_for(rc);
}

static int fail(const struct cli *cli, cel_client *c, int rc)
{
    cli_error(cli, "%s", cel_client_errmsg(c));
    return exit_for(rc);
}

/* ---- times ------------------------------------------------------------ */

static void utc_text(int64_t us, char *buf, size_t len)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The wall-clock time in `zone`. The CLI is a process of its own, so it
 * may point TZ at the zone for libc; the library never does. */
static void zone_text(int64_t us, const char *zone, char *buf, size_t len)
{
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZ", zone, 1);
    tzset();
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    localtime_r(&s, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z (%z)", &tm);
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    free(saved);
    tzset();
}

static const char *entry_zone(const struct cli *cli, const cel_schedule_entry *e)
{
    const char *tz = e->tz ? e->tz : cel_config_get(cli->cfg, "timezone");
    return tz && *tz ? tz : "UTC";
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- add -------------------------------------------------------------- */

/* Under a schedule that did not parse, a caret below the word the error
 * names in quotes ("unknown word 'mondey'"). */
static void show_bad_word(const char *text, const char *msg)
{
    const char *q = strchr(msg, '\'');
    const char *qe = q ? strchr(q + 1, '\'') : NULL;
    if (!q || !qe || qe == q + 1)
        return;
    size_t wlen = (size_t)(qe - q - 1);
    for (const char *p = text; *p; p++) {
        if (strncasecmp(p, q + 1, wlen) != 0)
            continue;
        fprintf(stderr, "    %s\n    %*s", text, (int)(p - text), "");
        for (size_t i = 0; i < wlen; i++)
            fputc('^', stderr);
        fputc('\n', stderr);
        return;
    }
}

static const char *schedule_text_of(const cel_schedule_entry *e)
{
    return e->cron ? e->cron : e->every ? e->every : e->at ? e->at : e->when;
}

static int do_add(struct cli *cli, struct schedule_args *a)
{
    if (cli->npos < 2 || !a->e.task) {
        cli_error(cli, "add needs %s", cli->npos < 2 ? "a NAME" : "--task TASK");
        return CLI_EXIT_USAGE;
    }
    if (a->nkinds != 1) {
        cli_error(cli, "add needs exactly one of --cron, --every, --at or --when");
        return CLI_EXIT_USAGE;
    }
    a->e.name = cli->pos[1];
    char *args = NULL, *kwargs = NULL;
    int rc = cli_call_arguments(cli, cli->pos + 2, cli->npos - 2, a->args_json, a->kwargs_json,
                                a->kw, &args, &kwargs);
    if (rc >= 0)
        return rc;
    a->e.args_json = args;
    a->e.kwargs_json = kwargs;
    cel_client *c = NULL;
    rc = cli_configure(cli);
    if (rc >= 0)
        goto out;
    char text[256], why[512];
    int64_t next = 0;
    size_t n = 0;
    int drc = cel_schedule_describe(&a->e, cel_config_get(cli->cfg, "timezone"), now_us(), text,
                                    sizeof text, &next, 1, &n, why, sizeof why);
    if (drc != CEL_OK) {
        cli_error(cli, "%s: %s", a->e.name, why);
        show_bad_word(schedule_text_of(&a->e), why);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = cli_client_open(cli, &c);
    if (rc >= 0)
        goto out;
    int arc = cel_schedule_add(c, &a->e, a->replace);
    if (arc != CEL_OK) {
        rc = fail(cli, c, arc);
        goto out;
    }
    char when[64] = "none";
    if (n)
        zone_text(next, entry_zone(cli, &a->e), when, sizeof when);
    printf("%s %s: %s (%s); next run %s%s\n", a->replace ? "stored" : "added", a->e.name, text,
           entry_zone(cli, &a->e), when, a->e.disabled ? " once enabled" : "");
    rc = CLI_EXIT_OK;
out:
    cel_client_free(c);
    free(args);
    free(kwargs);
    return rc;
}

/* ---- list and show ------------------------------------------------------ */

static void next_run_text(const cel_schedule_entries *l, size_t i, char *buf, size_t len)
{
    int64_t next = 0;
    if (cel_schedule_entries_next_runs(l, i, now_us(), &next, 1) == 0) {
        const cel_schedule_entry *e = cel_schedule_entries_entry(l, i);
        snprintf(buf, len, "%s", e->at && cel_schedule_entries_last_run(l, i) ? "done" : "-");
        return;
    }
    utc_text(next, buf, len);
}

static int do_list(struct cli *cli, cel_client *c, const struct schedule_args *a)
{
    cel_schedule_entries *l = NULL;
    int rc = cel_schedule_list(c, &l);
    if (rc != CEL_OK)
        return fail(cli, c, rc);
    size_t n = cel_schedule_entries_count(l);
    if (!a->json && n == 0)
        printf("no schedule entries\n");
    else if (!a->json)
        printf("%-20s %-7s %-34s %-20s %-20s %s\n", "NAME", "ENABLED", "SCHEDULE", "NEXT RUN (UTC)",
               "LAST RUN (UTC)", "TASK");
    for (size_t i = 0; i < n; i++) {
        if (a->json) {
            printf("%s\n", cel_schedule_entries_json(l, i));
            continue;
        }
        char next[32], last[32] = "-";
        next_run_text(l, i, next, sizeof next);
        if (cel_schedule_entries_last_run(l, i))
            utc_text(cel_schedule_entries_last_run(l, i), last, sizeof last);
        printf("%-20s %-7s %-34s %-20s %-20s %s\n", cel_schedule_entries_entry(l, i)->name,
               cel_schedule_entries_enabled(l, i) ? "yes" : "no", cel_schedule_entries_text(l, i),
               next, last, cel_schedule_entries_entry(l, i)->task);
    }
    cel_schedule_entries_free(l);
    return CLI_EXIT_OK;
}

static void show_json(const cel_schedule_entries *l, const int64_t *runs, size_t n)
{
    json_t *o = json_loads(cel_schedule_entries_json(l, 0), 0, NULL);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char t[32];
        utc_text(runs[i], t, sizeof t);
        json_array_append_new(list, json_string(t));
    }
    json_object_set_new(o, "next_runs", list);
    char *text = json_dumps(o, JSON_ENSURE_ASCII); /* the spacing of list --json */
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

static int do_show(struct cli *cli, cel_client *c, const struct schedule_args *a, const char *name)
{
    cel_schedule_entries *l = NULL;
    int rc = cel_schedule_get(c, name, &l);
    if (rc != CEL_OK)
        return fail(cli, c, rc);
    int64_t runs[SHOW_RUNS];
    size_t n = cel_schedule_entries_next_runs(l, 0, now_us(), runs, SHOW_RUNS);
    if (a->json) {
        show_json(l, runs, n);
        cel_schedule_entries_free(l);
        return CLI_EXIT_OK;
    }
    const cel_schedule_entry *e = cel_schedule_entries_entry(l, 0);
    const char *zone = entry_zone(cli, e);
    const char *kinds[] = {"cron", "every", "at", "when"};
    const char *texts[] = {e->cron, e->every, e->at, e->when};
    printf("name:       %s\n", e->name);
    printf("task:       %s\n", e->task);
    printf("args:       %s\n", e->args_json ? e->args_json : "[]");
    printf("kwargs:     %s\n", e->kwargs_json ? e->kwargs_json : "{}");
    for (int k = 0; k < 4; k++)
        if (texts[k])
            printf("%-11s %s\n", kinds[k], texts[k]);
    printf("schedule:   %s\n", cel_schedule_entries_text(l, 0));
    printf("zone:       %s%s\n", zone, e->tz ? "" : " (the timezone option)");
    printf("queue:      %s\n", e->queue ? e->queue : "(task_default_queue)");
    if (e->has_priority)
        printf("priority:   %d\n", e->priority);
    else
        printf("priority:   -\n");
    printf("expires:    %s", e->expires > 0 ? "" : "never\n");
    if (e->expires > 0)
        printf("%g s after each run's time\n", e->expires);
    const char *cu[] = {"default (beat_catch_up)", "skip", "once", "all"};
    printf("catch-up:   %s\n", cu[e->catch_up]);
    printf("enabled:    %s\n", cel_schedule_entries_enabled(l, 0) ? "yes" : "no");
    printf("origin:     %s\n", cel_schedule_entries_origin(l, 0));
    char t[64] = "never";
    if (cel_schedule_entries_last_run(l, 0))
        utc_text(cel_schedule_entries_last_run(l, 0), t, sizeof t);
    printf("last run:   %s\n", t);
    printf("runs sent:  %lld\n", (long long)cel_schedule_entries_total_runs(l, 0));
    if (n == 0) {
        next_run_text(l, 0, t, sizeof t);
        printf("next runs:  %s\n", strcmp(t, "done") == 0 ? "none (done)" : "none");
    } else {
        printf("next runs:  (%s, UTC)\n", zone);
    }
    for (size_t i = 0; i < n; i++) {
        char local[64], utc[32];
        zone_text(runs[i], zone, local, sizeof local);
        utc_text(runs[i], utc, sizeof utc);
        printf("  %s   %s\n", local, utc);
    }
    cel_schedule_entries_free(l);
    return CLI_EXIT_OK;
}

/* ---- the rest ----------------------------------------------------------- */

static int do_named(struct cli *cli, cel_client *c, const char *action, const char *name)
{
    int rc;
    if (strcmp(action, "run-now") == 0) {
        cel_result *r = NULL;
        rc = cel_schedule_run_now(c, name, &r);
        if (rc == CEL_OK)
            printf("%s\n", cel_result_id(r));
        cel_result_free(r);
    } else if (strcmp(action, "remove") == 0) {
        rc = cel_schedule_remove(c, name);
        if (rc == CEL_OK)
            printf("%s: removed\n", name);
    } else {
        bool on = strcmp(action, "enable") == 0;
        rc = cel_schedule_enable(c, name, on);
        if (rc == CEL_OK)
            printf("%s: %s\n", name, on ? "enabled" : "disabled");
    }
    return rc == CEL_OK ? CLI_EXIT_OK : fail(cli, c, rc);
}

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

int cli_cmd_schedule(int argc, char **argv)
{
    struct cli cli = {0};
    struct schedule_args a = {.e = CEL_SCHEDULE_ENTRY_INIT(.name = NULL)};
    cel_client *client = NULL;

    int rc = cli_begin(&cli, &cli_schedule_cmd, argc, argv, on_opt, &a);
    if (rc >= 0)
        goto out;
    rc = CLI_EXIT_USAGE;
    static const char *const named[] = {"show", "enable", "disable", "remove", "run-now", NULL};
    const char *action = cli.npos > 0 ? cli.pos[0] : "list";
    bool add_only = a.e.task || a.args_json || a.kwargs_json || a.kw || a.nkinds || a.e.tz ||
                    a.e.queue || a.e.has_priority || a.e.expires > 0 || a.e.catch_up ||
                    a.e.disabled || a.replace;
    if (strcmp(action, "add") == 0) {
        rc = do_add(&cli, &a);
        goto out;
    }
    if (add_only) {
        cli_error(&cli, "%s takes none of add's options", action);
        goto out;
    }
    if (strcmp(action, "list") == 0) {
        if (cli.npos > 1) {
            cli_error(&cli, "list takes no names (use show NAME)");
            goto out;
        }
    } else if (is_one_of(action, named)) {
        if (cli.npos != 2) {
            cli_error(&cli, "%s needs one NAME", action);
            goto out;
        }
        if (a.json && strcmp(action, "show") != 0) {
            cli_error(&cli, "--json applies to list and show");
            goto out;
        }
    } else {
        cli_error(&cli, "unknown action '%s' (add, list, show, enable, disable, remove or run-now)",
                  action);
        goto out;
    }
    rc = cli_connect(&cli, &client);
    if (rc >= 0)
        goto out;
    if (strcmp(action, "list") == 0)
        rc = do_list(&cli, client, &a);
    else if (strcmp(action, "show") == 0)
        rc = do_show(&cli, client, &a, cli.pos[1]);
    else
        rc = do_named(&cli, client, action, cli.pos[1]);
out:
    json_decref(a.kw);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
