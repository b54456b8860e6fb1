/*
 * test_group_save.c - saved group results (Celery's GroupResult.save() /
 * restore(), reference/celery-protocol.md 6.7) on memory, SQLite and a
 * real redis-server: the store ops round-trip and forget, the client API
 * saves a group handle and restores one that waits like the original,
 * and on Redis the key and bytes are the ones Python's
 * GroupResult.restore() reads.
 */
#include <celeriac.h>
#include <hiredis/hiredis.h>
#include <string.h>

#include "backend/backend.h"
#include "client/client_internal.h"
#include "redis_server.h"
#include "store_open.h"
#include "testing.h"

static struct cel_test_redis srv;
static bool redis_up;

#define CELERY_DOC                                                                                 \
    "{\"result\": [[\"g-doc\", null], [[[\"t1\", null], null], [[\"t2\", null], null]]]}"

static void check_ops(struct cel_backend *bk)
{
    ASSERT(bk->ops->group_save && bk->ops->group_get && bk->ops->group_forget);
    char *meta = (char *)"unset";
    ASSERT_EQ(bk->ops->group_get(bk, "g-doc", &meta), CEL_ENOTFOUND);
    ASSERT(meta == NULL);
    ASSERT_OK(bk->ops->group_save(bk, "g-doc", CELERY_DOC, strlen(CELERY_DOC), 3600));
    ASSERT_OK(bk->ops->group_get(bk, "g-doc", &meta));
    ASSERT_STREQ(meta, CELERY_DOC);
    free(meta);
    /* A task result with the group's id is another thing. */
    ASSERT_EQ(bk->ops->get(bk, "g-doc", &meta), CEL_ENOTFOUND);
    free(meta);
    /* Saving again replaces. */
    const char *again = "{\"result\": [[\"g-doc\", null], []]}";
    ASSERT_OK(bk->ops->group_save(bk, "g-doc", again, strlen(again), 0));
    ASSERT_OK(bk->ops->group_get(bk, "g-doc", &meta));
    ASSERT_STREQ(meta, again);
    free(meta);
    ASSERT_OK(bk->ops->group_forget(bk, "g-doc"));
    ASSERT_EQ(bk->ops->group_get(bk, "g-doc", &meta), CEL_ENOTFOUND);
    ASSERT_OK(bk->ops->group_forget(bk, "g-doc")); /* none saved: fine */
}

static cel_client *connected(const char *url)
{
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "broker_url", url, "test"));
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg);
    ASSERT(c);
    ASSERT_OK(cel_client_connect(c));
    return c;
}

static void store(struct cel_backend *bk, const char *id, int value)
{
    char meta[128];
    snprintf(meta, sizeof meta, "{\"status\": \"SUCCESS\", \"result\": %d, \"task_id\": \"%s\"}",
             value, id);
    ASSERT_OK(bk->ops->store(bk, id, CEL_STATE_SUCCESS, meta, strlen(meta), 0));
}

static void check_client(const char *url)
{
    cel_client *c = connected(url);
    struct cel_backend *bk = cel_test_open_backend(url);
    const char *ids[] = {"m0", "m1"};
    cel_result *g = cel__result_new_group(c, "g-api", ids, 2);
    ASSERT(g);
    ASSERT_OK(cel_result_save(g));
    cel_result_free(g);

    cel_result *r = NULL;
    ASSERT_OK(cel_client_restore_group(c, "g-api", &r));
    ASSERT_STREQ(cel_result_id(r), "g-api");
    ASSERT_EQ(cel_result_member_count(r), 2);
    ASSERT_STREQ(cel_result_member_id(r, 0), "m0");
    ASSERT_STREQ(cel_result_member_id(r, 1), "m1");
    ASSERT_OK(cel_result_refresh(r));
    ASSERT_EQ(cel_result_state(r), CEL_STATE_PENDING);
    store(bk, "m1", 2);
    store(bk, "m0", 1);
    ASSERT_OK(cel_result_wait(r, 5000));
    ASSERT_STREQ(cel_result_value_json(r), "[1, 2]");
    cel_result_free(r);

    /* Only groups are saved; a task's result is not one. */
    cel_result *task = NULL;
    ASSERT_OK(cel_client_result(c, "m0", &task));
    ASSERT_EQ(cel_result_save(task), CEL_EINVAL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "not a group result");
    cel_result_free(task);

    /* A group of groups does not fit a handle: said, not flattened. */
    const char *nested = "{\"result\": [[\"g-nest\", null], [[[\"g-in\", null], [[[\"a\", null], "
                         "null]]], [[\"b\", null], null]]]}";
    ASSERT_OK(bk->ops->group_save(bk, "g-nest", nested, strlen(nested), 60));
    ASSERT_EQ(cel_client_restore_group(c, "g-nest", &r), CEL_ENOTSUP);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(cel_client_errmsg(c), "nested groups");

    ASSERT_OK(cel_client_forget_group(c, "g-api"));
    ASSERT_EQ(cel_client_restore_group(c, "g-api", &r), CEL_ENOTFOUND);
    ASSERT_CONTAINS(cel_client_errmsg(c), "no group 'g-api' is saved");
    cel__backend_close(bk);
    cel_client_free(c);
}

static void check_all(const char *url)
{
    struct cel_backend *bk = cel_test_open_backend(url);
    check_ops(bk);
    cel__backend_close(bk);
    check_client(url);
}

static void test_memory(void)
{
    check_all("memory://groups");
}

static void test_sqlite(void)
{
    check_all("sqlite:///groups.db");
}

static void test_redis(void)
{
    cel_test_redis_setup(&srv);
    redis_up = true;
    check_all(srv.url);
}

/* The key, bytes and TTL Celery's _save_group writes. */
static void test_redis_key(void)
{
    cel_client *c = connected(srv.url);
    const char *ids[] = {"t1", "t2"};
    cel_result *g = cel__result_new_group(c, "g-doc", ids, 2);
    ASSERT_OK(cel_result_save(g));
    cel_result_free(g);
    redisContext *rc = cel_test_redis_connect(&srv);
    redisReply *r = cel_test_redis_cmd(rc, "GET celery-taskset-meta-g-doc");
    ASSERT_STREQ(r->str, CELERY_DOC);
    freeReplyObject(r);
    /* result_expires: one day by default, as Celery's SETEX. */
    long long ttl = cel_test_redis_int(rc, "TTL celery-taskset-meta-g-doc");
    ASSERT(ttl > 86000 && ttl <= 86400);
    redisFree(rc);
    cel_client_free(c);
}

int main(void)
{
    TEST_RUN(test_memory);
    TEST_RUN(test_sqlite);
    TEST_RUN(test_redis);
    if (redis_up) {
        TEST_RUN(test_redis_key);
        cel_test_redis_stop(&srv);
    }
    return 0;
}
