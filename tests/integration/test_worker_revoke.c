/*
 * test_worker_revoke.c - revokes with real workers, on SQLite and on
 * Redis (issue 7, "Revoke"):
 *  - a revoke made while no worker runs is honoured by a worker started
 *    afterwards (the task never runs: the record file says so);
 *  - a revoke of a task waiting in a busy worker: it never runs;
 *  - a revoke with terminate of a running task: REVOKED (terminated), not
 *    WorkerLostError, and the next task runs on a new child;
 *  - a revoke with a 1 s expiry no longer applies after it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>

#include "record_file.h"
#include "redis_server.h"
#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

static char record[4200];

static void revoke_id(cel_client *c, const char *id, int terminate, double expires)
{
    cel_revoke_options o = CEL_REVOKE_OPTIONS_INIT(.terminate = terminate, .expires = expires);
    const char *ids[] = {id};
    if (cel_client_revoke(c, ids, 1, &o) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "revoke %s: %s", id, cel_client_errmsg(c));
}

#define send_as cel_test_send_as

static cel_state wait_state(cel_client *c, const char *id, char *exc, size_t len)
{
    return cel_test_wait_state(c, id, WAIT_MS, exc, len);
}

static size_t runs_of(const char *id)
{
    char *ids[] = {(char *)id};
    return cel_test_count_runs(record, ids, 1).max_runs;
}

/* The pid test.record/test.sleep ran `id` in, or 0. */
static long run_pid(const char *id)
{
    char *text = cel_test_read_file(record, NULL);
    const char *p = text ? strstr(text, id) : NULL;
    long pid = p ? strtol(p + strlen(id), NULL, 10) : 0;
    free(text);
    return pid;
}

static void expect_revoked(cel_client *c, const char *id, const char *reason)
{
    char exc[256], want[128];
    ASSERT_EQ(wait_state(c, id, exc, sizeof exc), CEL_STATE_REVOKED);
    snprintf(want, sizeof want, "TaskRevokedError:%s", reason);
    ASSERT_STREQ(exc, want);
}

static void run_all(const char *url, const char *tag)
{
    snprintf(record, sizeof record, "%s/record-%s.txt", cel_test_dir(), tag);
    ASSERT_OK(setenv("CEL_TEST_RECORD_FILE", record, 1));
    cel_client *c = cel_test_client(url, NULL);
    const char *const sqlite_extra[] = {"-c", "1", NULL};
    const char *const redis_extra[] = {"-c", "1", "-b", url, NULL};
    const char *const *extra = url ? redis_extra : sqlite_extra;
    char exc[256];

    /* 1. Revoked while no worker runs, honoured by one started later. */
    revoke_id(c, "early-revoked", 0, 0);
    send_as(c, "test.record", "[\"x\"]", "early-revoked");
    send_as(c, "test.record", "[\"x\"]", "early-kept");
    pid_t pid = cel_test_worker_start(LOG_PATH, (const char *const *)extra);
    ASSERT_EQ(wait_state(c, "early-kept", exc, sizeof exc), CEL_STATE_SUCCESS);
    expect_revoked(c, "early-revoked", "revoked");
    ASSERT_EQ(runs_of("early-revoked"), 0);
    ASSERT(cel_test_wait_log(LOG_PATH, "Discarding revoked task: test.record[early-revoked]",
                             WAIT_MS));

    /* 2. A task waiting behind a busy child, revoked while it waits. */
    send_as(c, "test.sleep", "[2]", "busy");
    send_as(c, "test.record", "[\"x\"]", "queued-revoked");
    ASSERT(cel_test_wait_log(LOG_PATH, "Task test.record[queued-revoked] received", WAIT_MS));
    revoke_id(c, "queued-revoked", 0, 0);
    expect_revoked(c, "queued-revoked", "revoked");
    ASSERT_EQ(wait_state(c, "busy", exc, sizeof exc), CEL_STATE_SUCCESS);
    ASSERT_EQ(runs_of("queued-revoked"), 0);

    /* 3. Terminate a running task: REVOKED, and a new child for the next. */
    send_as(c, "test.sleep", "[60]", "long");
    int64_t deadline = cel_test_now_ms() + WAIT_MS;
    while (!run_pid("long") && cel_test_now_ms() < deadline)
        cel_test_sleep_ms(20);
    long long_pid = run_pid("long");
    ASSERT(long_pid > 0);
    int64_t t0 = cel_test_now_ms();
    revoke_id(c, "long", 1, 0);
    expect_revoked(c, "long", "terminated");
    ASSERT(cel_test_now_ms() - t0 < 10000); /* not the 60 s the task would take */
    ASSERT(kill((pid_t)long_pid, 0) != 0);  /* the child running it is gone */
    send_as(c, "test.record", "[\"x\"]", "after-terminate");
    ASSERT_EQ(wait_state(c, "after-terminate", exc, sizeof exc), CEL_STATE_SUCCESS);
    ASSERT(run_pid("after-terminate") != long_pid);
    ASSERT_EQ(cel_test_count_in_file(LOG_PATH, "WorkerLostError"), 0);

    /* 4. A revoke that expired no longer applies. */
    revoke_id(c, "expired-revoke", 0, 1.0);
    cel_test_sleep_ms(1200); /* the expiry itself is what is tested */
    send_as(c, "test.record", "[\"x\"]", "expired-revoke");
    ASSERT_EQ(wait_state(c, "expired-revoke", exc, sizeof exc), CEL_STATE_SUCCESS);
    ASSERT_EQ(runs_of("expired-revoke"), 1);

    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
    cel_client_free(c);
}

static void test_revokes_sqlite(void)
{
    run_all(NULL, "sqlite");
}

static void test_revokes_redis(void)
{
    struct cel_test_redis srv = {0};
    cel_test_redis_setup(&srv);
    run_all(srv.url, "redis");
    cel_test_redis_stop(&srv);
}

int main(void)
{
    TEST_RUN(test_revokes_sqlite);
    TEST_RUN(test_revokes_redis);
    return 0;
}
