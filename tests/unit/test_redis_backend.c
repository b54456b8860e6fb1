/*
 * test_redis_backend.c - the Redis result store against a real
 * redis-server: Celery's celery-task-meta-<id> keys, SETEX + PUBLISH,
 * the SUCCESS / ready-state guard, batching and pub/sub waiting
 * (reference/celery-protocol.md section 6).
 */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <celeriac.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "proto/message.h"
#include "redis_server.h"
#include "store_open.h"
#include "testing.h"

/* Band list names; the split literal stops \x16 from eating the digit. */
#define CELERY3                                                                                    \
    "celery\x06\x16"                                                                               \
    "3"
#define HIPRI3                                                                                     \
    "hipri\x06\x16"                                                                                \
    "3"
#define HIPRI6                                                                                     \
    "hipri\x06\x16"                                                                                \
    "6"
#define HIPRI9                                                                                     \
    "hipri\x06\x16"                                                                                \
    "9"

static struct cel_test_redis srv;

static redisContext *raw(void)
{
    return cel_test_redis_connect(&srv);
}

static void setup(void)
{
    cel_test_redis_setup(&srv);
}

static struct cel_backend *open_backend(void)
{
    struct cel_backend *bk = cel_test_open_backend(srv.url);
    ASSERT(bk->ops->wait);
    return bk;
}

/* A meta document built the way the worker builds it. */
static char *meta(const char *id, const char *status, json_t *result)
{
    json_t *m = cel__result_meta_new(id, status, result, NULL, NULL, NULL, cel__wall_us());
    char *text = cel__json_dump(m);
    json_decref(m);
    ASSERT(text);
    return text;
}

static void store(struct cel_backend *bk, const char *id, cel_state st, const char *m, int64_t ttl)
{
    ASSERT_OK(bk->ops->store(bk, id, st, m, strlen(m), ttl));
}

static char *get_status(struct cel_backend *bk, const char *id)
{
    char *m = NULL;
    ASSERT_OK(bk->ops->get(bk, id, &m));
    json_t *v = json_loads(m, 0, NULL);
    char *s = strdup(json_string_value(json_object_get(v, "status")));
    json_decref(v);
    free(m);
    return s;
}

#define ID "46596344-2e3f-40d6-ab7e-68beb10933d7"

static void test_store_get_layout(void)
{
    setup();
    struct cel_backend *bk = open_backend();
    char *m = meta(ID, "SUCCESS", json_integer(5));
    /* Celery 5.2's exact bytes and key order. */
    static const char prefix[] = "{\"status\": \"SUCCESS\", \"result\": 5, \"traceback\": null, "
                                 "\"children\": [], \"date_done\": \"";
    ASSERT(strncmp(m, prefix, sizeof prefix - 1) == 0);
    ASSERT_CONTAINS(m, "\", \"task_id\": \"" ID "\"}");

    redisContext *sub = raw();
    freeReplyObject(cel_test_redis_cmd(sub, "SUBSCRIBE celery-task-meta-" ID));
    store(bk, ID, CEL_STATE_SUCCESS, m, 86400);

    redisContext *c = raw();
    redisReply *r = cel_test_redis_cmd(c, "GET celery-task-meta-" ID);
    ASSERT_EQ(r->type, REDIS_REPLY_STRING);
    ASSERT_STREQ(r->str, m);
    freeReplyObject(r);
    long long ttl = cel_test_redis_int(c, "TTL celery-task-meta-" ID);
    ASSERT(ttl > 86000 && ttl <= 86400);
    /* The same bytes were published on the channel of the same name. */
    void *rep = NULL;
    ASSERT_EQ(redisGetReply(sub, &rep), REDIS_OK);
    r = rep;
    ASSERT_EQ(r->elements, 3);
    ASSERT_STREQ(r->element[0]->str, "message");
    ASSERT_STREQ(r->element[1]->str, "celery-task-meta-" ID);
    ASSERT_STREQ(r->element[2]->str, m);
    freeReplyObject(r);
    redisFree(sub);

    char *got = NULL;
    ASSERT_OK(bk->ops->get(bk, ID, &got));
    ASSERT_STREQ(got, m);
    free(got);
    ASSERT_EQ(bk->ops->get(bk, "no-such-task", &got), CEL_ENOTFOUND);
    ASSERT(!got);

    /* ttl 0: SET, no expiry. */
    char *m2 = meta("t2", "FAILURE", NULL);
    store(bk, "t2", CEL_STATE_FAILURE, m2, 0);
    ASSERT_EQ(cel_test_redis_int(c, "TTL celery-task-meta-t2"), -1);
    ASSERT_OK(bk->ops->forget(bk, "t2"));
    ASSERT_EQ(cel_test_redis_int(c, "EXISTS celery-task-meta-t2"), 0);

    free(m);
    free(m2);
    redisFree(c);
    cel__backend_close(bk);
    cel_test_redis_stop(&srv);
}

static void test_guard(void)
{
    setup();
    struct cel_backend *bk = open_backend();
    char *started = meta("g1", "STARTED", NULL);
    char *success = meta("g1", "SUCCESS", json_integer(1));
    char *failure = meta("g1", "FAILURE", NULL);
    char *progress = meta("g1", "PROGRESS", NULL);
    char *s;

    store(bk, "g1", CEL_STATE_STARTED, started, 60);
    store(bk, "g1", CEL_STATE_CUSTOM, progress, 60); /* non-ready over non-ready: replaced */
    ASSERT_STREQ(s = get_status(bk, "g1"), "PROGRESS");
    free(s);
    store(bk, "g1", CEL_STATE_FAILURE, failure, 60);
    store(bk, "g1", CEL_STATE_STARTED, started, 60); /* ready kept against non-ready */
    ASSERT_STREQ(s = get_status(bk, "g1"), "FAILURE");
    free(s);
    store(bk, "g1", CEL_STATE_SUCCESS, success, 60); /* ready over ready: replaced */
    ASSERT_STREQ(s = get_status(bk, "g1"), "SUCCESS");
    free(s);
    store(bk, "g1", CEL_STATE_FAILURE, failure, 60); /* SUCCESS is never replaced */
    store(bk, "g1", CEL_STATE_STARTED, started, 60);
    ASSERT_STREQ(s = get_status(bk, "g1"), "SUCCESS");
    free(s);

    /* A batch: one script call; order inside the batch is respected. */
    ASSERT_OK(bk->ops->begin(bk));
    char *st2 = meta("g2", "STARTED", NULL), *ok2 = meta("g2", "SUCCESS", json_integer(2));
    char *ok3 = meta("g3", "SUCCESS", json_integer(3)), *st3 = meta("g3", "STARTED", NULL);
    store(bk, "g2", CEL_STATE_STARTED, st2, 60);
    store(bk, "g2", CEL_STATE_SUCCESS, ok2, 60);
    store(bk, "g3", CEL_STATE_SUCCESS, ok3, 60);
    store(bk, "g3", CEL_STATE_STARTED, st3, 60); /* guarded within the batch too */
    char *none = NULL;
    ASSERT_EQ(bk->ops->get(bk, "g2", &none), CEL_ENOTFOUND); /* not sent before commit */
    ASSERT_OK(bk->ops->commit(bk));
    ASSERT_STREQ(s = get_status(bk, "g2"), "SUCCESS");
    free(s);
    ASSERT_STREQ(s = get_status(bk, "g3"), "SUCCESS");
    free(s);

    free(st2), free(ok2), free(ok3), free(st3);
    free(started), free(success), free(failure), free(progress);
    cel__backend_close(bk);
    cel_test_redis_stop(&srv);
}

static void test_wait(void)
{
    setup();
    struct cel_backend *bk = open_backend();
    char *m = NULL;

    /* Times out, on time, keeping the last non-ready meta. */
    char *st = meta("w1", "STARTED", NULL);
    store(bk, "w1", CEL_STATE_STARTED, st, 60);
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cel__backend_wait(bk, "w1", 300, &m), CEL_ETIMEDOUT);
    int64_t took = cel_test_now_ms() - t0;
    ASSERT(took >= 290 && took < 900);
    ASSERT(m);
    ASSERT_CONTAINS(m, "STARTED");
    free(m);
    m = NULL;

    /* Another process stores the result: the wait returns at once. */
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        struct cel_backend *other = NULL;
        struct cel_errbuf err;
        usleep(1200 * 1000);
        if (cel__backend_open(srv.url, NULL, &other, &err) != CEL_OK)
            _exit(2);
        char *done = meta("w1", "SUCCESS", json_integer(5));
        int rc = other->ops->store(other, "w1", CEL_STATE_SUCCESS, done, strlen(done), 60);
        free(done);
        cel__backend_close(other);
        _exit(rc == CEL_OK ? 0 : 3);
    }
    t0 = cel_test_now_ms();
    ASSERT_OK(cel__backend_wait(bk, "w1", 10000, &m));
    took = cel_test_now_ms() - t0;
    ASSERT_CONTAINS(m, "\"result\": 5");
    /* Pub/sub: the periodic GET would only see it at 1500 ms. */
    ASSERT(took >= 1150 && took < 1450);
    free(m);
    m = NULL;
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Already ready: immediate; and the subscription connection is reused. */
    t0 = cel_test_now_ms();
    ASSERT_OK(cel__backend_wait(bk, "w1", 5000, &m));
    ASSERT(cel_test_now_ms() - t0 < 200);
    free(m);
    m = NULL;

    /* A writer that does not PUBLISH is still seen by the periodic GET. */
    redisContext *c = raw();
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        usleep(200 * 1000);
        redisContext *w = raw();
        redisReply *r =
            redisCommand(w, "SET celery-task-meta-w3 %s",
                         "{\"status\": \"FAILURE\", \"result\": null, \"task_id\": \"w3\"}");
        _exit(r ? 0 : 1);
    }
    ASSERT_OK(cel__backend_wait(bk, "w3", 5000, &m));
    ASSERT_CONTAINS(m, "FAILURE");
    free(m);
    waitpid(pid, NULL, 0);
    redisFree(c);

    free(st);
    cel__backend_close(bk);
    cel_test_redis_stop(&srv);
}

/* Worker-shaped cycle: fetch a batch, store results, ack - measured. */
static void test_cycle_rate(void)
{
    setup();
    struct cel_broker *b = NULL;
    struct cel_backend *bk = open_backend();
    struct cel_errbuf err = {{0}};
    ASSERT_OK(cel__broker_open(srv.url, NULL, &b, &err));
    const int total = 20000;
    char id[37];
    struct cel_task_spec spec = {.task = "tasks.add", .args_json = "[2, 3]"};
    char *body;
    size_t len;
    char e[64];
    ASSERT_OK(cel__message_build(&spec, &body, &len, id, e, sizeof e));
    ASSERT_OK(b->ops->begin(b));
    for (int i = 0; i < total; i++) {
        /* distinct delivery tags: rebuild the properties' tag cheaply */
        char *copy = strdup(body);
        char *tag = strstr(copy, "\"delivery_tag\": \"") + 17;
        snprintf(tag, 9, "%08d", i);
        tag[8] = '-';
        ASSERT_OK(b->ops->publish(b, "celery", 0, 0, id, copy, len));
        free(copy);
    }
    ASSERT_OK(b->ops->commit(b));
    free(body);

    redisContext *c = raw();
    freeReplyObject(cel_test_redis_cmd(c, "CONFIG RESETSTAT"));
    const char *qs[] = {"celery"};
    struct cel_delivery d[64];
    int done = 0;
    int64_t t0 = cel__mono_us();
    while (done < total) {
        size_t n = 0;
        ASSERT_OK(b->ops->fetch(b, qs, 1, 64, 60000, d, &n, NULL));
        if (n == 0) {
            b->ops->drain_wakeup(b);
            struct pollfd p = {.fd = b->ops->wakeup_fd(b), .events = POLLIN};
            poll(&p, 1, 100);
            continue;
        }
        ASSERT_OK(b->ops->begin(b));
        ASSERT_OK(bk->ops->begin(bk));
        for (size_t i = 0; i < n; i++) {
            char tid[32];
            snprintf(tid, sizeof tid, "cycle-%d", done + (int)i);
            char *m = meta(tid, "SUCCESS", json_integer(5));
            store(bk, tid, CEL_STATE_SUCCESS, m, 86400);
            free(m);
            ASSERT_OK(b->ops->ack(b, &d[i]));
            cel__delivery_release(&d[i]);
        }
        ASSERT_OK(bk->ops->commit(bk));
        ASSERT_OK(b->ops->commit(b));
        done += (int)n;
    }
    double s = (double)(cel__mono_us() - t0) / 1e6;
    fprintf(stderr, "redis: fetch+store+ack, batches of 64: %d in %.3f s = %.0f tasks/s\n", total,
            s, total / s);
    ASSERT_EQ(cel_test_redis_int(c, "HLEN unacked"), 0);
    ASSERT_EQ(cel_test_redis_int(c, "DBSIZE"), total + 1); /* results + the binding set */
    redisReply *r = cel_test_redis_cmd(c, "INFO commandstats");
    long long calls = 0;
    for (const char *p = r->str; (p = strstr(p, "calls=")); p += 6)
        calls += atoll(p + 6);
    freeReplyObject(r);
    fprintf(stderr, "redis: %.2f commands per task (INFO commandstats, incl. script calls)\n",
            (double)calls / total);
    ASSERT((double)calls / total < 8);
    redisFree(c);
    cel__broker_close(b);
    cel__backend_close(bk);
    cel_test_redis_stop(&srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_store_get_layout);
    TEST_RUN(test_guard);
    TEST_RUN(test_wait);
    TEST_RUN(test_cycle_rate);
    return 0;
}
