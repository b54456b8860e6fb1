/*
 * test_redis_conn.c - the Redis connection layer (src/store/redis_conn.c)
 * that both the broker and the result store build on: URL targets, RESP
 * pipelines, and a connection that comes back after the server restarts.
 */
#include <hiredis/hiredis.h>
#include <signal.h>

#include <celeriac.h>

#include "core/url.h"
#include "redis_server.h"
#include "store/redis_conn.h"
#include "testing.h"

static int target_of(const char *text, struct cel_redis_target *t, struct cel_errbuf *err)
{
    struct cel_url u;
    char perr[128];
    ASSERT_OK(cel__url_parse(text, &u, perr, sizeof perr));
    int rc = cel__redis_target_init(t, &u, err);
    cel__url_release(&u);
    return rc;
}

static void test_targets(void)
{
    struct cel_redis_target t;
    struct cel_errbuf err = {{0}};
    ASSERT_OK(target_of("redis://user:s3cret@10.0.0.2:6380/3", &t, &err));
    ASSERT_STREQ(t.host, "10.0.0.2");
    ASSERT_EQ(t.port, 6380);
    ASSERT_EQ(t.db, 3);
    ASSERT_STREQ(t.user, "user");
    ASSERT_STREQ(t.password, "s3cret");
    ASSERT_STREQ(t.display, "redis://***@10.0.0.2:6380/3");
    cel__redis_target_release(&t);

    ASSERT_OK(target_of("redis://", &t, &err));
    ASSERT_STREQ(t.display, "redis://127.0.0.1:6379/0");
    cel__redis_target_release(&t);

    ASSERT_OK(target_of("redis+socket:///run/redis.sock?db=2", &t, &err));
    ASSERT(!t.host);
    ASSERT_STREQ(t.socket_path, "/run/redis.sock");
    ASSERT_EQ(t.db, 2);
    ASSERT_STREQ(t.display, "redis+socket:///run/redis.sock?db=2");
    cel__redis_target_release(&t);

    ASSERT_EQ(target_of("redis+socket:///run/redis.sock?db=x", &t, &err), CEL_EURL);
    ASSERT_CONTAINS(err.msg, "invalid database number");
    cel__redis_target_release(&t);
}

static void test_pipeline_wire_format(void)
{
    struct cel_redis_cmds q = {0};
    const char *argv[] = {"SET", "k", "a\r\nb"};
    ASSERT_OK(cel__redis_cmds_addv(&q, 3, argv));
    const char *argv2[] = {"GET", "k"};
    ASSERT_OK(cel__redis_cmds_addv(&q, 2, argv2));
    ASSERT_EQ(q.n, 2);
    const char want[] =
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    ASSERT_EQ(q.len, sizeof want - 1);
    ASSERT(memcmp(q.buf, want, q.len) == 0);
    cel__redis_cmds_reset(&q);
    ASSERT_EQ(q.n, 0);
    cel__redis_cmds_release(&q);
}

/* A pipeline runs whole, and runs again whole on a fresh connection after
 * the server restarted; once down for longer than a budget, a call fails
 * without waiting another budget. */
static void test_exec_reconnects(void)
{
    struct cel_test_redis srv;
    cel_test_redis_setup(&srv);
    struct cel_redis_target t;
    struct cel_errbuf err = {{0}};
    ASSERT_OK(target_of(srv.url, &t, &err));
    struct cel_redis r;
    cel__redis_init(&r, &t, "test", NULL, NULL);
    ASSERT_OK(cel__redis_connect(&r, &err));
    ASSERT_EQ(r.generation, 1);

    struct cel_redis_cmds q = {0};
    const char *incr[] = {"INCR", "n"};
    ASSERT_OK(cel__redis_cmds_addv(&q, 2, incr));
    ASSERT_OK(cel__redis_cmds_addv(&q, 2, incr));
    redisReply **rs = NULL;
    ASSERT_OK(cel__redis_exec(&r, &q, &rs, 1000, &err));
    ASSERT_EQ(rs[0]->integer, 1);
    ASSERT_EQ(rs[1]->integer, 2);
    cel__redis_replies_free(rs, q.n);

    cel_test_redis_stop(&srv);
    cel_test_redis_start(&srv); /* empty again: no persistence */
    ASSERT_OK(cel__redis_exec(&r, &q, &rs, 3000, &err));
    ASSERT_EQ(rs[1]->integer, 2);
    cel__redis_replies_free(rs, q.n);
    ASSERT_EQ(r.generation, 2);

    cel_test_redis_stop(&srv);
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cel__redis_exec(&r, &q, &rs, 600, &err), CEL_ECONNECT);
    ASSERT(!rs);
    int64_t took = cel_test_now_ms() - t0;
    ASSERT(took >= 100 && took <= 900); /* retried with backoff, within the budget */
    ASSERT_CONTAINS(err.msg, srv.url);
    /* Down for longer than this budget already: at most one attempt. */
    t0 = cel_test_now_ms();
    ASSERT_EQ(cel__redis_exec(&r, &q, &rs, 50, &err), CEL_ECONNECT);
    ASSERT(cel_test_now_ms() - t0 < 40);

    cel__redis_cmds_release(&q);
    cel__redis_close(&r);
    cel__redis_target_release(&t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_targets);
    TEST_RUN(test_pipeline_wire_format);
    TEST_RUN(test_exec_reconnects);
    return 0;
}
