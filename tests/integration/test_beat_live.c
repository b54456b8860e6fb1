/*
 * test_beat_live.c - a running beat follows `celeriac schedule` at once:
 * an entry added starts within about two seconds, a disabled one stops,
 * enabled it resumes, removed it stops for good. On SQLite and on Redis.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "beat_proc.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define NAME    "live"
#define STOP_MS 10000

/* The CLI with the arguments up to NULL, then `tail`. */
static int cli_with_tail(char **out, char **err, const char *const *tail, ...)
{
    va_list ap;
    va_start(ap, tail);
    int rc = cel_test_cli_va(out, err, tail, ap);
    va_end(ap);
    return rc;
}

/* `celeriac schedule VERB NAME REST... -b URL`, which must succeed. */
static void schedule(const char *url, const char *verb, const char *const *rest)
{
    const char *tail[16];
    size_t n = 0;
    for (; rest && rest[n]; n++)
        tail[n] = rest[n];
    tail[n++] = "-b";
    tail[n++] = url;
    tail[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = cli_with_tail(&out, &err, tail, "schedule", verb, NAME, NULL);
    if (rc != 0)
        cel_test_fail(__FILE__, __LINE__, "schedule %s: exit %d: %s%s", verb, rc, out, err);
    free(out);
    free(err);
}

/* Messages sent since the last call. */
static size_t sent(const char *url)
{
    char **ids;
    size_t n = cel_test_drain_ids(url, "celery", NAME, &ids);
    cel_test_ids_free(ids, n);
    return n;
}

static void live(bool redis)
{
    struct cel_test_store s;
    cel_test_store_setup(&s, redis);
    pid_t beat = cel_test_beat_start(s.url, "beat.log", NULL);
    ASSERT(cel_test_wait_log("beat.log", "leadership gained", 10000));

    const char *add[] = {"--task", "test.record", "--every", "1s", NULL};
    schedule(s.url, "add", add);
    int64_t t0 = cel_test_now_ms();
    while (sent(s.url) == 0 && cel_test_now_ms() - t0 < 2500)
        cel_test_sleep_ms(50);
    ASSERT(cel_test_now_ms() - t0 < 2500); /* the first run came within ~2 s */
    cel_test_sleep_ms(1200);
    ASSERT(sent(s.url) >= 1);

    schedule(s.url, "disable", NULL);
    cel_test_sleep_ms(300); /* a run being sent as the command ran */
    sent(s.url);
    cel_test_sleep_ms(1500);
    ASSERT_EQ(sent(s.url), 0);

    schedule(s.url, "enable", NULL);
    cel_test_sleep_ms(2000);
    ASSERT(sent(s.url) >= 1);

    schedule(s.url, "remove", NULL);
    cel_test_sleep_ms(300);
    sent(s.url);
    cel_test_sleep_ms(1500);
    ASSERT_EQ(sent(s.url), 0);

    ASSERT_EQ(cel_test_worker_stop(beat, SIGTERM, STOP_MS), 0);
    cel_test_store_teardown(&s);
}

static void test_live_sqlite(void)
{
    live(false);
}

static void test_live_redis(void)
{
    live(true);
}

int main(void)
{
    TEST_RUN(test_live_sqlite);
    TEST_RUN(test_live_redis);
    return 0;
}
