/*
 * test_redis_envelope.c - what the Redis transport reads back from and
 * writes about a delivered message, without a server: the unacked
 * record split (cel__redis_split_record) and the restore command with
 * the redelivered flags (cel__redis_add_restore).
 */
#include <jansson.h>

#include "broker/redis_internal.h"
#include "core/json_util.h"
#include "testing.h"

/* Splits `rec`; on success *env_out is a copy of the envelope text. */
static int split(const char *rec, char **env_out, char **ex, char **rk)
{
    const char *env = NULL;
    size_t envlen = 0;
    int rc = cel__redis_split_record(rec, strlen(rec), &env, &envlen, ex, rk);
    *env_out = rc == CEL_OK ? strndup(env, envlen) : NULL;
    return rc;
}

static void test_split_record(void)
{
    char *env, *ex, *rk;
    ASSERT_OK(split("[\"{\\\"a\\\": 1}\", \"\", \"celery\"]", &env, &ex, &rk));
    ASSERT_STREQ(env, "\"{\\\"a\\\": 1}\"");
    ASSERT_STREQ(ex, "");
    ASSERT_STREQ(rk, "celery");
    free(env);
    free(ex);
    free(rk);

    /* Escapes in the names are decoded. */
    ASSERT_OK(split("[{\"body\": 1}, \"ex\\\"1\", \"h\\u00e9\"]", &env, &ex, &rk));
    ASSERT_STREQ(env, "{\"body\": 1}");
    ASSERT_STREQ(ex, "ex\"1");
    ASSERT_STREQ(rk, "h\xc3\xa9");
    free(env);
    free(ex);
    free(rk);

    /* A name with a NUL inside is no name (it would end early as a C
     * string); neither is a name that does not decode. */
    ASSERT_EQ(split("[{}, \"ex\", \"a\\u0000b\"]", &env, &ex, &rk), CEL_EPROTO);
    ASSERT(ex == NULL && rk == NULL);
    ASSERT_EQ(split("[{}, \"e\\u0000x\", \"celery\"]", &env, &ex, &rk), CEL_EPROTO);
    ASSERT_EQ(split("[{}, \"ex\", \"bad\\x\"]", &env, &ex, &rk), CEL_EPROTO);
    ASSERT_EQ(split("[{}, \"celery\"]", &env, &ex, &rk), CEL_EPROTO);
    ASSERT_EQ(split("{}", &env, &ex, &rk), CEL_EPROTO);
}

/* The restore command for `env`; returns its RESP text (caller frees). */
static char *restore_of(const char *env, size_t len)
{
    struct cel_redis_cmds q = {0};
    ASSERT_OK(cel__redis_add_restore(&q, "sha", "tag-1", "celery", env, len, "1e300"));
    ASSERT_EQ(q.n, 1);
    char *text = strndup(q.buf, q.len);
    cel__redis_cmds_release(&q);
    return text;
}

static void test_restore_marks_redelivered(void)
{
    const char *env = "{\"body\": \"W10=\", \"headers\": {\"id\": \"x\"}, \"properties\": "
                      "{\"priority\": 0, \"delivery_info\": {\"routing_key\": \"celery\"}}}";
    char *cmd = restore_of(env, strlen(env));
    ASSERT_EQ(cel_test_count(cmd, "\"redelivered\": true"), 2);
    free(cmd);

    /* Strings with a NUL inside are valid JSON (Celery writes them for a
     * result or argsrepr with a NUL): the envelope is still marked, and
     * the NUL kept. */
    const char *nul = "{\"body\": \"W10=\", \"headers\": {\"argsrepr\": \"a\\u0000b\"}, "
                      "\"properties\": {\"delivery_info\": {}}}";
    cmd = restore_of(nul, strlen(nul));
    ASSERT_EQ(cel_test_count(cmd, "\"redelivered\": true"), 2);
    ASSERT_CONTAINS(cmd, "\"argsrepr\": \"a\\u0000b\"");
    free(cmd);

    /* Not JSON, or past the parser's limits: restored byte for byte. */
    const char *junk = "not json {";
    cmd = restore_of(junk, strlen(junk));
    ASSERT_CONTAINS(cmd, junk);
    ASSERT(strstr(cmd, "redelivered") == NULL);
    free(cmd);
    char *deep = cel_test_nested_json("{\"headers\": {}, \"x\": ", CEL_JSON_MAX_DEPTH, "}");
    cmd = restore_of(deep, strlen(deep));
    ASSERT_CONTAINS(cmd, deep);
    ASSERT(strstr(cmd, "redelivered") == NULL);
    free(cmd);
    free(deep);
}

int main(void)
{
    TEST_RUN(test_split_record);
    TEST_RUN(test_restore_marks_redelivered);
    return 0;
}
