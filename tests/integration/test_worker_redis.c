/*
 * test_worker_redis.c - a real worker process on a real redis-server:
 * started before its broker, it waits and then serves; killed broker
 * connections are not what this file covers (test_redis_broker.c does).
 */
#include <signal.h>
#include <unistd.h>

#include <celeriac.h>

#include "redis_server.h"
#include "testing.h"

#define WAIT_MS  30000
#define LOG_PATH "worker.log"

static pid_t worker_pid;

static void stop_worker(void)
{
    if (worker_pid > 0) {
        kill(worker_pid, SIGKILL);
        cel_test_wait(worker_pid, 5000);
    }
    worker_pid = 0;
}

/* Started while Redis is down, the worker retries with backoff (as
 * Celery's broker_connection_retry_on_startup) and serves once it is up. */
static void test_worker_waits_for_its_broker(void)
{
    struct cel_test_redis srv = {0};
    srv.port = cel_test_free_port();
    snprintf(srv.url, sizeof srv.url, "redis://127.0.0.1:%d/0", srv.port);

    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-A",
                    (char *)cel_test_env("CEL_TEST_TASKS"),
                    (char *)"-b",
                    srv.url,
                    (char *)"-c",
                    (char *)"1",
                    (char *)"-l",
                    (char *)"info",
                    NULL};
    worker_pid = cel_test_spawn(argv, LOG_PATH);
    ASSERT(cel_test_wait_log(LOG_PATH, "cannot connect", WAIT_MS));
    cel_test_sleep_ms(300);
    ASSERT(cel_test_wait(worker_pid, 0) == -1); /* still running, still trying */

    cel_test_redis_start(&srv);
    ASSERT(cel_test_wait_log(LOG_PATH, "ready.", WAIT_MS));

    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "broker_url", srv.url, NULL));
    cel_client *c = cel_client_new(cfg);
    ASSERT_OK(cel_client_connect(c));
    cel_result *r;
    ASSERT_OK(cel_client_send(c, "tasks.add", "[2, 3]", NULL, NULL, &r));
    ASSERT_OK(cel_result_wait(r, WAIT_MS));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_SUCCESS);
    ASSERT_STREQ(cel_result_value_json(r), "5");
    cel_result_free(r);
    cel_client_free(c);
    cel_config_free(cfg);

    kill(worker_pid, SIGTERM);
    ASSERT_EQ(cel_test_wait(worker_pid, WAIT_MS), 0);
    worker_pid = 0;
    cel_test_redis_stop(&srv);
}

/* SIGTERM while it is still waiting for the broker is a clean stop. */
static void test_stop_while_waiting_for_broker(void)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", cel_test_free_port());
    char *argv[] = {(char *)cel_test_env("CEL_TEST_CLI"),
                    (char *)"worker",
                    (char *)"-b",
                    url,
                    (char *)"-c",
                    (char *)"1",
                    NULL};
    worker_pid = cel_test_spawn(argv, LOG_PATH);
    ASSERT(cel_test_wait_log(LOG_PATH, "cannot connect", WAIT_MS));
    kill(worker_pid, SIGTERM);
    ASSERT_EQ(cel_test_wait(worker_pid, 5000), 0);
    worker_pid = 0;
}

int main(void)
{
    atexit(stop_worker);
    TEST_RUN(test_worker_waits_for_its_broker);
    TEST_RUN(test_stop_while_waiting_for_broker);
    return 0;
}
