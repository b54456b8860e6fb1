/*
 * cmd_events.c - `celeriac events`: watch the workers and their tasks
 * through Celery's monitoring events (celeriac and Python workers).
 *
 *   celeriac events            live view, redrawn in place every second
 *   celeriac events --dump     one event per line, as JSON
 *
 * The live view keeps what the events say: each worker (online until its
 * worker-offline or until heartbeats stop for twice their interval, the
 * age of its last heartbeat, active and processed counts) and the most
 * recently changed tasks. On a terminal it redraws in place with ANSI
 * escapes (no curses needed); when stdout is not a terminal it prints a
 * plain snapshot each interval instead. Ctrl-C (or --duration) ends it
 * cleanly. Task events need workers started with -E (or a
 * `celeriac control enable_events`); worker events always flow.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "celeriac/control.h"
#include "cli_common.h"

#define MAX_WORKERS  128
#define MAX_TASKS    512 /* remembered; the view shows the latest */
#define SHOWN_TASKS  15
#define SLICE_MS     100 /* how often Ctrl-C is looked at */
#define DEFAULT_FREQ 2.0 /* Celery's heartbeat interval */
#define NAME_WIDTH   24
#define WORKER_WIDTH 24

enum {
    OPT_DUMP = CLI_OPT_LOCAL,
    OPT_INTERVAL,
    OPT_DURATION,
};

static const struct cli_opt events_opts[] = {
    {"dump", no_argument, OPT_DUMP, NULL, "print every event as one JSON line instead of the view"},
    {"interval", required_argument, OPT_INTERVAL, "SECONDS",
     "how often the view is redrawn (default 1)"},
    {"duration", required_argument, OPT_DURATION, "SECONDS",
     "stop after this long (default: until Ctrl-C)"},
};

const struct cli_cmd cli_events_cmd = {
    "events",
    "Watch workers and tasks live through their events (--dump: one JSON event per line).",
    "[--dump] [--interval SECONDS] [--duration SECONDS]",
    false,
    events_opts,
    sizeof events_opts / sizeof events_opts[0],
};

struct events_args {
    bool dump;
    double interval, duration;
};

struct worker_view {
    char name[128];
    char software[64];
    double last_seen; /* local_received of its last event */
    double freq;
    long long active, processed;
    bool offline;
};

struct task_view {
    char uuid[64];
    char name[128];
    char state[16];
    char worker[128];
    char info[160];
    double updated;
};

struct view {
    struct worker_view workers[MAX_WORKERS];
    size_t nworkers;
    struct task_view tasks[MAX_TASKS];
    size_t ntasks;
    unsigned long long events;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static const char *str_of(const json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s ? s : "";
}

static struct worker_view *worker_for(struct view *v, const char *name)
{
    for (size_t i = 0; i < v->nworkers; i++)
        if (strcmp(v->workers[i].name, name) == 0)
            return &v->workers[i];
    if (v->nworkers == MAX_WORKERS)
        return NULL;
    struct worker_view *w = &v->workers[v->nworkers++];
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->freq = DEFAULT_FREQ;
    return w;
}

/* The task's record, created when new; the oldest is reused when full. */
static struct task_view *task_for(struct view *v, const char *uuid)
{
    for (size_t i = 0; i < v->ntasks; i++)
        if (strcmp(v->tasks[i].uuid, uuid) == 0)
            return &v->tasks[i];
    struct task_view *t;
    if (v->ntasks < MAX_TASKS) {
        t = &v->tasks[v->ntasks++];
    } else {
        t = &v->tasks[0];
        for (size_t i = 1; i < v->ntasks; i++)
            if (v->tasks[i].updated < t->updated)
                t = &v->tasks[i];
    }
    memset(t, 0, sizeof *t);
    snprintf(t->uuid, sizeof t->uuid, "%s", uuid);
    return t;
}

/* "task-succeeded" -> "SUCCESS": Celery's state names. */
static const char *task_state(const char *type)
{
    static const struct {
        const char *type, *state;
    } map[] = {{"task-sent", "PENDING"},    {"task-received", "RECEIVED"},
               {"task-started", "STARTED"}, {"task-succeeded", "SUCCESS"},
               {"task-failed", "FAILURE"},  {"task-retried", "RETRY"},
               {"task-revoked", "REVOKED"}, {"task-rejected", "REJECTED"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].type, type) == 0)
            return map[i].state;
    return NULL;
}

static void apply_task_event(struct view *v, const json_t *ev, const char *type)
{
    const char *state = task_state(type);
    const char *uuid = str_of(ev, "uuid");
    if (!state || !*uuid)
        return;
    struct task_view *t = task_for(v, uuid);
    snprintf(t->state, sizeof t->state, "%s", state);
    t->updated = json_number_value(json_object_get(ev, "local_received"));
    if (*str_of(ev, "name"))
        snprintf(t->name, sizeof t->name, "%s", str_of(ev, "name"));
    if (strcmp(type, "task-sent") != 0)
        snprintf(t->worker, sizeof t->worker, "%s", str_of(ev, "hostname"));
    if (strcmp(type, "task-received") == 0)
        snprintf(t->info, sizeof t->info, "args=%s", str_of(ev, "args"));
    else if (strcmp(type, "task-succeeded") == 0)
        snprintf(t->info, sizeof t->info, "%s in %.3fs", str_of(ev, "result"),
                 json_number_value(json_object_get(ev, "runtime")));
    else if (strcmp(type, "task-failed") == 0 || strcmp(type, "task-retried") == 0)
        snprintf(t->info, sizeof t->info, "%s", str_of(ev, "exception"));
    else if (strcmp(type, "task-started") == 0)
        t->info[0] = '\0';
}

static void apply_worker_event(struct view *v, const json_t *ev, const char *type)
{
    struct worker_view *w = worker_for(v, str_of(ev, "hostname"));
    if (!w)
        return;
    w->last_seen = json_number_value(json_object_get(ev, "local_received"));
    w->offline = strcmp(type, "worker-offline") == 0;
    const json_t *freq = json_object_get(ev, "freq");
    if (json_is_number(freq) && json_number_value(freq) > 0)
        w->freq = json_number_value(freq);
    if (json_is_integer(json_object_get(ev, "active")))
        w->active = json_integer_value(json_object_get(ev, "active"));
    if (json_is_integer(json_object_get(ev, "processed")))
        w->processed = json_integer_value(json_object_get(ev, "processed"));
    if (*str_of(ev, "sw_ident"))
        snprintf(w->software, sizeof w->software, "%s %s", str_of(ev, "sw_ident"),
                 str_of(ev, "sw_ver"));
}

static void apply(struct view *v, const char *text)
{
    json_t *ev = json_loads(text, 0, NULL);
    if (!ev)
        return;
    v->events++;
    const char *type = str_of(ev, "type");
    if (strncmp(type, "worker-", 7) == 0) {
        apply_worker_event(v, ev, type);
    } else if (strncmp(type, "task-", 5) == 0) {
        apply_task_event(v, ev, type);
        /* A task event is a sign of life of its worker too. */
        struct worker_view *w = worker_for(v, str_of(ev, "hostname"));
        if (w && strcmp(type, "task-sent") != 0)
            w->last_seen = json_number_value(json_object_get(ev, "local_received"));
    }
    json_decref(ev);
}

static int by_recent(const void *a, const void *b)
{
    double x = (*(const struct task_view *const *)a)->updated;
    double y = (*(const struct task_view *const *)b)->updated;
    return (x < y) - (x > y);
}

static void draw(const struct view *v, bool tty)
{
    double now = now_s();
    if (tty)
        fputs("\033[H", stdout); /* home; each line clears its rest */
    const char *eol = tty ? "\033[K\n" : "\n";
    char stamp[16];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
    size_t online = 0;
    for (size_t i = 0; i < v->nworkers; i++)
        online +=
            !v->workers[i].offline && now - v->workers[i].last_seen <= 2 * v->workers[i].freq + 1;
    printf("celeriac events %s: %zu of %zu workers online, %llu events%s%s", stamp, online,
           v->nworkers, v->events, tty ? "  (Ctrl-C to quit)" : "", eol);
    printf("%s", eol);
    printf("%-*s  %-7s  %10s  %6s  %9s  %s%s", WORKER_WIDTH, "WORKER", "STATUS", "HEARTBEAT",
           "ACTIVE", "PROCESSED", "SOFTWARE", eol);
    for (size_t i = 0; i < v->nworkers; i++) {
        const struct worker_view *w = &v->workers[i];
        bool alive = !w->offline && now - w->last_seen <= 2 * w->freq + 1;
        printf("%-*s  %-7s  %8.1fs  %6lld  %9lld  %s%s", WORKER_WIDTH, w->name,
               alive ? "online" : "offline", now - w->last_seen, w->active, w->processed,
               w->software, eol);
    }
    if (!v->nworkers)
        printf("(no worker seen yet)%s", eol);
    printf("%s", eol);
    const struct task_view *recent[MAX_TASKS];
    for (size_t i = 0; i < v->ntasks; i++)
        recent[i] = &v->tasks[i];
    qsort(recent, v->ntasks, sizeof recent[0], by_recent);
    printf("%-36s  %-*s  %-8s  %-*s  %s%s", "TASK", NAME_WIDTH, "NAME", "STATE", WORKER_WIDTH,
           "WORKER", "INFO", eol);
    for (size_t i = 0; i < v->ntasks && i < SHOWN_TASKS; i++) {
        const struct task_view *tk = recent[i];
        printf("%-36.36s  %-*.*s  %-8s  %-*.*s  %.60s%s", tk->uuid, NAME_WIDTH, NAME_WIDTH,
               tk->name, tk->state, WORKER_WIDTH, WORKER_WIDTH, tk->worker, tk->info, eol);
    }
    if (!v->ntasks)
        printf("(no task event yet: workers send them with -E)%s", eol);
    if (tty)
        fputs("\033[J", stdout); /* whatever the last frame had below */
    else
        printf("\n");
    fflush(stdout);
}

static int on_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    struct events_args *ea = ctx;
    switch (val) {
    case OPT_DUMP:
        ea->dump = true;
        return 0;
    case OPT_INTERVAL:
    case OPT_DURATION: {
        double s;
        if (!cli_parse_seconds(arg, &s) || s <= 0) {
            cli_error(cli, "--%s expects a positive number of seconds, got '%s'",
                      val == OPT_INTERVAL ? "interval" : "duration", arg);
            return CLI_EXIT_USAGE;
        }
        *(val == OPT_INTERVAL ? &ea->interval : &ea->duration) = s;
        return 0;
    }
    }
    return CLI_EXIT_USAGE;
}

/* Reads events until Ctrl-C or the duration; dumps or draws them. */
static int run(const struct cli *cli, cel_client *client, const struct events_args *ea)
{
    cel_event_receiver *r = NULL;
    int rc = cel_event_receiver_open(client, "#", &r);
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(client));
        return cli_exit_for(rc);
    }
    struct view *v = ea->dump ? NULL : calloc(1, sizeof *v);
    if (!ea->dump && !v) {
        cel_event_receiver_free(r);
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    bool tty = !ea->dump && isatty(STDOUT_FILENO);
    if (tty)
        fputs("\033[2J\033[?25l", stdout); /* clear, hide the cursor */
    double start = now_s(), next_draw = start;
    int exit_code = CLI_EXIT_OK;
    while (!stop_requested) {
        double now = now_s();
        if (ea->duration > 0 && now - start >= ea->duration)
            break;
        if (v && now >= next_draw) {
            draw(v, tty);
            next_draw = now + (ea->interval > 0 ? ea->interval : 1.0);
        }
        const char *ev;
        rc = cel_event_next(r, SLICE_MS, &ev);
        if (rc == CEL_ETIMEDOUT)
            continue;
        if (rc != CEL_OK) {
            cli_error(cli, "%s", cel_client_errmsg(client));
            exit_code = cli_exit_for(rc);
            break;
        }
        if (v) {
            apply(v, ev);
        } else {
            printf("%s\n", ev);
            fflush(stdout);
        }
    }
    if (v && exit_code == CLI_EXIT_OK)
        draw(v, tty); /* the final state, left on the screen */
    if (tty)
        fputs("\033[?25h", stdout);
    fflush(stdout);
    free(v);
    cel_event_receiver_free(r);
    return exit_code;
}

int cli_cmd_events(int argc, char **argv)
{
    struct cli cli = {0};
    struct events_args ea = {0};
    cel_client *client = NULL;

    int rc = cli_begin(&cli, &cli_events_cmd, argc, argv, on_opt, &ea);
    if (rc < 0)
        rc = cli_refuse_args(&cli);
    if (rc >= 0)
        goto out;
    rc = cli_connect(&cli, &client);
    if (rc >= 0)
        goto out;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = run(&cli, client, &ea);

out:
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
