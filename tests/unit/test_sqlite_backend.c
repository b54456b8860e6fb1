/* test_sqlite_backend.c - the SQLite result store and the generic wait. */
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "core/json_parse.h"
#include "store_open.h"
#include "testing.h"

#define URL "sqlite:///results.db"

static struct cel_backend *open_backend(void)
{
    return cel_test_open_backend(URL);
}

static int store(struct cel_backend *bk, const char *id, cel_state st, const char *status,
                 int64_t ttl)
{
    char meta[256];
    int n = snprintf(meta, sizeof meta,
                     "{\"status\": \"%s\", \"result\": null, \"traceback\": null, "
                     "\"children\": [], \"date_done\": null, \"task_id\": \"%s\"}",
                     status, id);
    return bk->ops->store(bk, id, st, meta, (size_t)n, ttl);
}

/* The stored status of `id`, or "PENDING" when there is none. */
static char *status_of(struct cel_backend *bk, const char *id)
{
    char *meta = NULL;
    int rc = bk->ops->get(bk, id, &meta);
    if (rc == CEL_ENOTFOUND) {
        ASSERT(meta == NULL);
        return strdup("PENDING");
    }
    ASSERT_OK(rc);
    json_t *root = json_loads(meta, JSON_ALLOW_NUL, NULL);
    ASSERT(root != NULL);
    char *s = strdup(json_string_value(json_object_get(root, "status")));
    json_decref(root);
    free(meta);
    return s;
}

#define ASSERT_STATUS(bk, id, want)                                                                \
    do {                                                                                           \
        char *s_ = status_of((bk), (id));                                                          \
        ASSERT_STREQ(s_, (want));                                                                  \
        free(s_);                                                                                  \
    } while (0)

static void test_store_get_forget(void)
{
    struct cel_backend *bk = open_backend();
    ASSERT(bk->ops->caps & CEL_BACKEND_CAP_CHEAP_STATES);
    ASSERT_STATUS(bk, "t1", "PENDING");
    ASSERT_OK(store(bk, "t1", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_STATUS(bk, "t1", "STARTED");
    ASSERT_OK(store(bk, "t1", CEL_STATE_CUSTOM, "PROGRESS", 0));
    ASSERT_STATUS(bk, "t1", "PROGRESS");
    char *meta = NULL;
    ASSERT_OK(bk->ops->get(bk, "t1", &meta));
    ASSERT_CONTAINS(meta, "\"task_id\": \"t1\"");
    free(meta);
    ASSERT_OK(bk->ops->forget(bk, "t1"));
    ASSERT_STATUS(bk, "t1", "PENDING");
    ASSERT_OK(bk->ops->forget(bk, "never-stored"));
    cel__backend_close(bk);
}

static void test_guard(void)
{
    struct cel_backend *bk = open_backend();
    /* SUCCESS is final. */
    ASSERT_OK(store(bk, "s", CEL_STATE_SUCCESS, "SUCCESS", 0));
    ASSERT_OK(store(bk, "s", CEL_STATE_FAILURE, "FAILURE", 0));
    ASSERT_OK(store(bk, "s", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_OK(store(bk, "s", CEL_STATE_REVOKED, "REVOKED", 0));
    ASSERT_STATUS(bk, "s", "SUCCESS");
    /* A ready state is not replaced by a non-ready one... */
    ASSERT_OK(store(bk, "f", CEL_STATE_FAILURE, "FAILURE", 0));
    ASSERT_OK(store(bk, "f", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_OK(store(bk, "f", CEL_STATE_RETRY, "RETRY", 0));
    ASSERT_OK(store(bk, "f", CEL_STATE_CUSTOM, "PROGRESS", 0));
    ASSERT_STATUS(bk, "f", "FAILURE");
    /* ...but may become another ready state. */
    ASSERT_OK(store(bk, "f", CEL_STATE_SUCCESS, "SUCCESS", 0));
    ASSERT_STATUS(bk, "f", "SUCCESS");
    ASSERT_OK(store(bk, "r", CEL_STATE_REVOKED, "REVOKED", 0));
    ASSERT_OK(store(bk, "r", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_STATUS(bk, "r", "REVOKED");
    /* Non-ready states replace each other freely. */
    ASSERT_OK(store(bk, "p", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_OK(store(bk, "p", CEL_STATE_RETRY, "RETRY", 0));
    ASSERT_STATUS(bk, "p", "RETRY");
    /* A custom state with no status in its meta is refused. */
    ASSERT_EQ(bk->ops->store(bk, "x", CEL_STATE_CUSTOM, "{}", 2, 0), CEL_EINVAL);
    cel__backend_close(bk);
}

static void test_expiry(void)
{
    struct cel_backend *bk = open_backend();
    ASSERT_OK(store(bk, "e", CEL_STATE_SUCCESS, "SUCCESS", 1));
    ASSERT_OK(store(bk, "keep", CEL_STATE_SUCCESS, "SUCCESS", 0));
    ASSERT_STATUS(bk, "e", "SUCCESS");
    cel_test_sleep_ms(1100);
    ASSERT_STATUS(bk, "e", "PENDING");
    ASSERT_STATUS(bk, "keep", "SUCCESS");
    /* An expired SUCCESS no longer guards its id. */
    ASSERT_OK(store(bk, "e", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_STATUS(bk, "e", "STARTED");
    cel__backend_close(bk);
}

static void test_received_for_reserved_message(void)
{
    struct cel_errbuf err = {{0}};
    struct cel_broker *b = NULL;
    ASSERT_OK(cel__broker_open(URL, NULL, &b, &err));
    struct cel_backend *bk = open_backend();
    const char body[] = "{\"x\": 1}";
    ASSERT_OK(b->ops->publish(b, "celery", 0, 0, "queued-id", body, strlen(body)));
    ASSERT_STATUS(bk, "queued-id", "PENDING"); /* waiting in the queue */
    const char *qs[] = {"celery"};
    struct cel_delivery d[1];
    size_t n = 0;
    ASSERT_OK(b->ops->fetch(b, qs, 1, 1, 30000, d, &n, NULL));
    ASSERT_EQ(n, 1);
    char *meta = NULL;
    ASSERT_OK(bk->ops->get(bk, "queued-id", &meta));
    ASSERT_STREQ(meta, "{\"status\": \"RECEIVED\", \"result\": null, \"traceback\": null, "
                       "\"children\": [], \"date_done\": null, \"task_id\": \"queued-id\"}");
    free(meta);
    /* A stored state wins over the synthesised one. */
    ASSERT_OK(store(bk, "queued-id", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_STATUS(bk, "queued-id", "STARTED");
    ASSERT_OK(b->ops->ack(b, &d[0]));
    cel__delivery_release(&d[0]);
    cel__backend_close(bk);
    cel__broker_close(b);
}

static void test_wait_for_other_process(void)
{
    struct cel_backend *bk = open_backend();
    ASSERT_OK(store(bk, "w", CEL_STATE_STARTED, "STARTED", 0));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        cel_test_sleep_ms(200);
        struct cel_backend *c = open_backend();
        int rc = store(c, "w", CEL_STATE_SUCCESS, "SUCCESS", 0);
        cel__backend_close(c);
        _exit(rc == 0 ? 0 : 1);
    }
    int64_t t0 = cel__mono_ms();
    char *meta = NULL;
    ASSERT_OK(cel__backend_wait(bk, "w", 10000, &meta));
    int64_t took = cel__mono_ms() - t0;
    ASSERT_CONTAINS(meta, "\"SUCCESS\"");
    free(meta);
    ASSERT(took >= 150 && took < 2000);
    ASSERT_EQ(cel_test_wait(pid, 5000), 0);

    /* Timeout: the last non-ready meta is handed back. */
    t0 = cel__mono_ms();
    ASSERT_OK(store(bk, "slow", CEL_STATE_STARTED, "STARTED", 0));
    ASSERT_EQ(cel__backend_wait(bk, "slow", 250, &meta), CEL_ETIMEDOUT);
    took = cel__mono_ms() - t0;
    ASSERT(took >= 240 && took < 1000);
    ASSERT_CONTAINS(meta, "\"STARTED\"");
    free(meta);
    /* Nothing at all: NULL meta. */
    ASSERT_EQ(cel__backend_wait(bk, "nothing", 50, &meta), CEL_ETIMEDOUT);
    ASSERT(meta == NULL);
    cel__backend_close(bk);
}

/* Which metas end a wait. They are read with our parser and its limits:
 * a string with a NUL inside is valid JSON (Python's json.dumps writes
 * "\u0000"), and a meta past the limits ends the wait so the reader can
 * say why instead of timing out. */
static void test_meta_readiness(void)
{
    static const struct {
        const char *meta;
        bool ready;
    } cases[] = {
        {"{\"status\": \"SUCCESS\", \"result\": 1}", true},
        {"{\"status\": \"FAILURE\"}", true},
        {"{\"status\": \"REVOKED\"}", true},
        {"{\"status\": \"STARTED\"}", false},
        {"{\"status\": \"PROGRESS\"}", false},
        {"{\"status\": \"SUCCESS\", \"result\": \"a\\u0000b\"}", true},
        {"{\"status\": \"SUCC\\u0000ESS\"}", false},
        {"{\"status\": 1}", false},
        {"{\"status\": \"SUCCESS\"", false},
        {"[\"SUCCESS\"]", false},
        {"\"SUCCESS\"", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (cel__meta_is_ready(cases[i].meta, strlen(cases[i].meta)) != cases[i].ready)
            cel_test_fail(__FILE__, __LINE__, "%s: expected %s", cases[i].meta,
                          cases[i].ready ? "ready" : "not ready");
    /* Only the given length is read. */
    ASSERT(!cel__meta_is_ready("{\"status\": \"SUCCESS\"}", 10));

    char *deep =
        cel_test_nested_json("{\"status\": \"STARTED\", \"result\": ", CEL_JSON_MAX_DEPTH, "}");
    ASSERT(cel__meta_is_ready(deep, strlen(deep)));
    free(deep);

    /* End to end: a result with a NUL in it is seen as ready at once. */
    struct cel_backend *bk = open_backend();
    const char *nul = "{\"status\": \"SUCCESS\", \"result\": \"a\\u0000b\", \"task_id\": \"n\"}";
    ASSERT_OK(bk->ops->store(bk, "n", CEL_STATE_SUCCESS, nul, strlen(nul), 0));
    int64_t t0 = cel__mono_ms();
    char *meta = NULL;
    ASSERT_OK(cel__backend_wait(bk, "n", 5000, &meta));
    ASSERT(cel__mono_ms() - t0 < 2000);
    ASSERT_STREQ(meta, nul);
    free(meta);

    /* A custom state's name comes from its meta: one with a NUL inside is
     * refused, a NUL elsewhere in the meta is not. */
    const char *bad = "{\"status\": \"PRO\\u0000GRESS\"}";
    ASSERT_EQ(bk->ops->store(bk, "c", CEL_STATE_CUSTOM, bad, strlen(bad), 0), CEL_EINVAL);
    const char *good = "{\"status\": \"PROGRESS\", \"result\": \"a\\u0000b\"}";
    ASSERT_OK(bk->ops->store(bk, "c", CEL_STATE_CUSTOM, good, strlen(good), 0));
    ASSERT_STATUS(bk, "c", "PROGRESS");
    cel__backend_close(bk);
}

static void test_open_defaults(void)
{
    struct cel_errbuf err = {{0}};
    struct cel_backend *bk = NULL;
    ASSERT_EQ(cel__backend_open("bogus://x", NULL, &bk, &err), CEL_ESCHEME);
    ASSERT(bk == NULL);
    ASSERT_CONTAINS(err.msg, "unsupported result backend scheme 'bogus'");

    cel_config *cfg = cel_config_new();
    ASSERT(cfg != NULL);
    /* result_backend empty: the broker URL is used. */
    ASSERT_OK(cel_config_set(cfg, "broker_url", "sqlite:///from-broker.db", NULL));
    ASSERT_OK(cel__backend_open(NULL, cfg, &bk, &err));
    ASSERT_EQ(access("from-broker.db", F_OK), 0);
    cel__backend_close(bk);
    ASSERT_OK(cel_config_set(cfg, "result_backend", "sqlite:///own.db", NULL));
    ASSERT_OK(cel__backend_open(NULL, cfg, &bk, &err));
    ASSERT_EQ(access("own.db", F_OK), 0);
    cel__backend_close(bk);
    cel_config_free(cfg);
}

int main(void)
{
    TEST_RUN(test_store_get_forget);
    TEST_RUN(test_guard);
    TEST_RUN(test_expiry);
    TEST_RUN(test_received_for_reserved_message);
    TEST_RUN(test_wait_for_other_process);
    TEST_RUN(test_meta_readiness);
    TEST_RUN(test_open_defaults);
    return 0;
}
