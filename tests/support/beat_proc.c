/* beat_proc.c - see beat_proc.h. */
#include "beat_proc.h"

#include <time.h>

#include "broker/broker.h"
#include "proto/message.h"
#include "schedule/spec.h"
#include "store_open.h"
#include "task_batch.h"
#include "testing.h"

#define MAX_EXTRA 16
#define FETCH_MAX 256

void cel_test_store_setup(struct cel_test_store *s, bool redis)
{
    *s = (struct cel_test_store){.redis = redis};
    if (redis) {
        cel_test_redis_setup(&s->srv);
        snprintf(s->url, sizeof s->url, "%s", s->srv.url);
    } else {
        snprintf(s->url, sizeof s->url, "sqlite:///%s/celeriac.db", cel_test_dir());
    }
}

void cel_test_store_teardown(struct cel_test_store *s)
{
    if (s->redis)
        cel_test_redis_stop(&s->srv);
}

pid_t cel_test_beat_spawn(const char *url, const char *log_path, const char *const extra[])
{
    char *argv[8 + MAX_EXTRA];
    int n = 0;
    argv[n++] = (char *)cel_test_env("CEL_TEST_CLI");
    argv[n++] = (char *)"beat";
    argv[n++] = (char *)"-b";
    argv[n++] = (char *)url;
    argv[n++] = (char *)"-l";
    argv[n++] = (char *)"info";
    for (int i = 0; extra && extra[i]; i++) {
        ASSERT(i < MAX_EXTRA);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    return cel_test_spawn(argv, log_path);
}

pid_t cel_test_beat_start(const char *url, const char *log_path, const char *const extra[])
{
    pid_t pid = cel_test_beat_spawn(url, log_path, extra);
    if (!cel_test_wait_log(log_path, "beat: started", 15000)) {
        cel_test_print_tail("beat log", log_path, 30);
        cel_test_fail(__FILE__, __LINE__, "beat did not start");
    }
    return pid;
}

void cel_test_schedule_every(const char *url, const char *name, const char *every,
                             cel_catch_up policy)
{
    cel_client *c = cel_test_client(url, NULL);
    char args[256];
    snprintf(args, sizeof args, "[\"%s\"]", name);
    cel_schedule_entry e =
        CEL_SCHEDULE_ENTRY_INIT(.name = name, .task = "test.record", .args_json = args,
                                .every = every, .catch_up = policy);
    if (cel_schedule_add(c, &e, 0) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "schedule add %s: %s", name, cel_client_errmsg(c));
    cel_client_free(c);
}

size_t cel_test_drain_ids(const char *url, const char *queue, const char *entry, char ***ids)
{
    struct cel_broker *b = cel_test_open_broker(url);
    const char *queues[] = {queue};
    size_t n = 0, cap = 64;
    char **v = malloc(cap * sizeof *v);
    ASSERT(v);
    struct cel_delivery *d = calloc(FETCH_MAX, sizeof *d);
    ASSERT(d);
    /* Redis hands messages over from a thread of its own: a fetch may
     * come back empty while some wait, so fetch until the queue's length
     * (read first) has arrived. */
    size_t want = 0;
    ASSERT_OK(b->ops->length(b, queue, &want));
    int64_t deadline = cel_test_now_ms() + 5000;
    while (n < want) {
        if (cel_test_now_ms() > deadline)
            cel_test_fail(__FILE__, __LINE__, "only %zu of the %zu messages on '%s' arrived", n,
                          want, queue);
        size_t got = 0;
        ASSERT_OK(b->ops->fetch(b, queues, 1, FETCH_MAX, 60000, d, &got, NULL));
        if (got == 0)
            cel_test_sleep_ms(10);
        for (size_t i = 0; i < got; i++) {
            struct cel_message m;
            struct cel_message_limits lim = {.headers_only = true};
            char why[256];
            if (cel__message_parse(d[i].body, d[i].len, &lim, &m, why, sizeof why) != 0)
                cel_test_fail(__FILE__, __LINE__, "a message beat sent does not parse: %s", why);
            if (n == cap) {
                cap *= 2;
                v = realloc(v, cap * sizeof *v);
                ASSERT(v);
            }
            if (entry) {
                json_t *h = json_object_get(m.root, "headers");
                ASSERT_STREQ(json_string_value(json_object_get(h, "periodic_task_name")), entry);
            }
            v[n++] = strdup(m.id);
            cel__message_release(&m);
            ASSERT_OK(b->ops->ack(b, &d[i]));
            cel__delivery_release(&d[i]);
        }
    }
    free(d);
    cel__broker_close(b);
    *ids = v;
    return n;
}

size_t cel_test_check_runs(const char *name, char **ids, size_t n, int64_t from_s, int64_t to_s,
                           int64_t *first_s, int64_t *last_s)
{
    ASSERT(to_s >= from_s && to_s - from_s < 3600);
    size_t span = (size_t)(to_s - from_s + 1);
    int *count = calloc(span, sizeof *count);
    ASSERT(count);
    char tick_id[37];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        for (; k < span; k++) {
            cel__sched_tick_id(name, from_s + (int64_t)k, tick_id);
            if (strcmp(tick_id, ids[i]) == 0)
                break;
        }
        if (k == span)
            cel_test_fail(__FILE__, __LINE__, "task id %s is no run of '%s' between %lld and %lld",
                          ids[i], name, (long long)from_s, (long long)to_s);
        count[k]++;
    }
    size_t first = 0, last = span;
    while (first < span && count[first] == 0)
        first++;
    while (last > first && count[last - 1] == 0)
        last--;
    for (size_t k = first; k < last; k++)
        if (count[k] != 1)
            cel_test_fail(__FILE__, __LINE__, "run %lld of '%s' (run %zu of %zu) was sent %d times",
                          (long long)(from_s + (int64_t)k), name, k - first + 1, last - first,
                          count[k]);
    if (first_s)
        *first_s = from_s + (int64_t)first;
    if (last_s)
        *last_s = from_s + (int64_t)last - 1;
    free(count);
    return last - first;
}

size_t cel_test_queue_runs(const char *url, const char *queue, const char *name, int64_t from_s,
                           int64_t to_s, int64_t *first_s, int64_t *last_s)
{
    char **ids;
    size_t n = cel_test_drain_ids(url, queue, name, &ids);
    size_t runs = cel_test_check_runs(name, ids, n, from_s, to_s, first_s, last_s);
    ASSERT_EQ(runs, n); /* contiguous, each once */
    cel_test_ids_free(ids, n);
    return runs;
}

int64_t cel_test_wall_s(void)
{
    return (int64_t)time(NULL);
}
