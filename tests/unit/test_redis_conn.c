/*
 * test_redis_conn.c - the Redis connection layer (src/store/redis_conn.c)
 * that both the broker and the result store build on: URL targets, RESP
 * pipelines, and a connection that comes back after the server restarts.
 */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <celeriac.h>

#include "backend/backend.h"
#include "broker/broker.h"
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

/* A throw-away server and one connection to it. */
static void server_and_connection(struct cel_test_redis *srv, struct cel_redis_target *t,
                                  struct cel_redis *r)
{
    struct cel_errbuf err = {{0}};
    cel_test_redis_setup(srv);
    ASSERT_OK(target_of(srv->url, t, &err));
    cel__redis_init(r, t, "test", NULL, NULL);
    ASSERT_OK(cel__redis_connect(r, &err));
}

/* A pipeline runs whole, and runs again whole on a fresh connection after
 * the server restarted; once down for longer than a budget, a call fails
 * without waiting another budget. */
static void test_exec_reconnects(void)
{
    struct cel_test_redis srv = {0};
    struct cel_redis_target t;
    struct cel_redis r;
    struct cel_errbuf err = {{0}};
    server_and_connection(&srv, &t, &r);
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

/* A loopback listener that never accepts: the kernel completes the TCP
 * handshake into its backlog, so clients connect and then hear nothing. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    ASSERT_OK(listen(fd, 16));
    socklen_t len = sizeof a;
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    *port = ntohs(a.sin_port);
    return fd;
}

struct attempt {
    const char *url;
    int kind; /* 0: broker open, 1: backend open, 2: a command on a stalled server */
    struct cel_redis *conn;
    int rc;
    int64_t took_ms;
    struct cel_errbuf err;
};

static void *run_attempt(void *arg)
{
    struct attempt *a = arg;
    int64_t t0 = cel_test_now_ms();
    if (a->kind == 0) {
        struct cel_broker *b = NULL;
        a->rc = cel__broker_open(a->url, NULL, &b, &a->err);
        cel__broker_close(b);
    } else if (a->kind == 1) {
        struct cel_backend *bk = NULL;
        a->rc = cel__backend_open(a->url, NULL, &bk, &a->err);
        cel__backend_close(bk);
    } else {
        struct cel_redis_cmds q = {0};
        const char *argv[] = {"GET", "k"};
        ASSERT_OK(cel__redis_cmds_addv(&q, 2, argv));
        redisReply **rs = NULL;
        a->rc = cel__redis_exec(a->conn, &q, &rs, 100, &a->err);
        cel__redis_replies_free(rs, q.n);
        cel__redis_cmds_release(&q);
    }
    a->took_ms = cel_test_now_ms() - t0;
    return NULL;
}

/* A server that accepts but never answers fails an open after the 5 s
 * command timeout with a message that says what timed out and where, not
 * hiredis' "Resource temporarily unavailable"; so does a command on a
 * server that stops answering. The three run side by side. */
static void test_server_that_does_not_answer(void)
{
    int port;
    int lfd = silent_listener(&port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);

    struct cel_test_redis srv = {0};
    struct cel_redis_target t;
    struct cel_redis r;
    server_and_connection(&srv, &t, &r);
    ASSERT_OK(kill(srv.pid, SIGSTOP));

    struct attempt at[3] = {
        {.url = url, .kind = 0}, {.url = url, .kind = 1}, {.kind = 2, .conn = &r}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        ASSERT_OK(pthread_create(&th[i], NULL, run_attempt, &at[i]));
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    kill(srv.pid, SIGCONT);

    char want[256];
    snprintf(want, sizeof want,
             "cannot connect to %s: no reply within 5.0 s to PING (the server accepted the "
             "connection but does not answer)",
             url);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(at[i].rc, CEL_ECONNECT);
        ASSERT_STREQ(at[i].err.msg, want);
        ASSERT(at[i].took_ms >= 4900 && at[i].took_ms < 8000);
    }
    ASSERT_EQ(at[2].rc, CEL_ECONNECT);
    ASSERT_CONTAINS(at[2].err.msg, "no reply within 5.0 s to GET (the server does not answer)");
    ASSERT_CONTAINS(at[2].err.msg, srv.url);
    ASSERT(strstr(at[2].err.msg, "Resource temporarily unavailable") == NULL);

    cel__redis_close(&r);
    cel__redis_target_release(&t);
    cel_test_redis_stop(&srv);
    close(lfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_targets);
    TEST_RUN(test_pipeline_wire_format);
    TEST_RUN(test_exec_reconnects);
    TEST_RUN(test_server_that_does_not_answer);
    return 0;
}
