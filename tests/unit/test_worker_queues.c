/* test_worker_queues.c - which queues a worker consumes, in one process
 * on the memory transport (worker on a thread, client on the main one). */
#include <pthread.h>

#include "celeriac.h"
#include "testing.h"

static int echo_queue(cel_task *t, void *userdata)
{
    (void)userdata;
    return cel_task_return_string(t, cel_task_queue(t));
}

static void *run_worker(void *arg)
{
    return (void *)(intptr_t)cel_worker_run(arg);
}

/* Sends `task` to `queue` and waits up to timeout_ms for a ready state. */
static cel_state roundtrip(cel_client *c, const char *task, const char *queue, int timeout_ms)
{
    cel_send_options opts = CEL_SEND_OPTIONS_INIT(.queue = queue);
    cel_result *r;
    ASSERT_OK(cel_client_send(c, task, NULL, NULL, &opts, &r));
    int rc = cel_result_wait(r, timeout_ms);
    cel_state st = rc == CEL_OK ? cel_result_state(r) : CEL_STATE_PENDING;
    cel_result_free(r);
    return st;
}

static void check(const char *worker_queues, bool images_served, bool other_served)
{
    cel_registry *reg = cel_registry_new();
    static const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "t.resize", .fn = echo_queue, .queue = "images"),
        CEL_TASK_DEF_INIT(.name = "t.plain", .fn = echo_queue),
    };
    ASSERT_OK(cel_registry_add_many(reg, defs, 2));
    cel_config *cfg = cel_config_new();
    static int run;
    char url[64];
    snprintf(url, sizeof url, "memory://queues-%d", ++run); /* a fresh store per check */
    ASSERT_OK(cel_config_set(cfg, "broker_url", url, NULL));
    ASSERT_OK(cel_config_set(cfg, "worker_pool", "solo", NULL));
    if (worker_queues)
        ASSERT_OK(cel_config_set(cfg, "worker_queues", worker_queues, NULL));

    cel_worker *w = cel_worker_new(cfg, reg);
    pthread_t th;
    ASSERT_OK(pthread_create(&th, NULL, run_worker, w));
    cel_client *c = cel_client_new(cfg);
    ASSERT_OK(cel_client_connect(c));

    ASSERT_EQ(roundtrip(c, "t.plain", NULL, 5000), CEL_STATE_SUCCESS); /* default queue */
    ASSERT_EQ(roundtrip(c, "t.resize", "images", images_served ? 5000 : 300) == CEL_STATE_SUCCESS,
              images_served);
    ASSERT_EQ(roundtrip(c, "t.plain", "other", other_served ? 5000 : 300) == CEL_STATE_SUCCESS,
              other_served);

    cel_worker_stop(w, 0);
    void *ret;
    ASSERT_OK(pthread_join(th, &ret));
    ASSERT_EQ((intptr_t)ret, CEL_OK);
    cel_client_free(c);
    cel_worker_free(w);
    cel_config_free(cfg);
    cel_registry_free(reg);
}

/* Without -Q: the default queue plus the queues the task definitions name. */
static void test_default_queues_include_task_queues(void)
{
    check(NULL, true, false);
}

/* -Q replaces all of them. */
static void test_explicit_queues_replace_them(void)
{
    check("celery,other", false, true);
}

int main(void)
{
    TEST_RUN(test_default_queues_include_task_queues);
    TEST_RUN(test_explicit_queues_replace_them);
    return 0;
}
