/* redis_server.c - see redis_server.h. */
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testing.h"

#define REDIS_SERVER "/usr/bin/redis-server"

int cel_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    socklen_t len = sizeof a;
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    close(fd);
    return ntohs(a.sin_port);
}

redisContext *cel_test_redis_connect(const struct cel_test_redis *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    ASSERT(c);
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

void cel_test_redis_start(struct cel_test_redis *r)
{
    if (access(REDIS_SERVER, X_OK) != 0)
        cel_test_fail(__FILE__, __LINE__,
                      "redis-server is not installed (%s); run scripts/install-deps.sh",
                      REDIS_SERVER);
    char p[16], dir[512];
    snprintf(p, sizeof p, "%d", r->port);
    snprintf(dir, sizeof dir, "%s/redis-%d", cel_test_dir(), r->port);
    if (r->persist && mkdir(dir, 0755) != 0 && errno != EEXIST)
        cel_test_fail(__FILE__, __LINE__, "mkdir %s: %s", dir, strerror(errno));
    char *argv[] = {(char *)REDIS_SERVER, (char *)"--port", p, (char *)"--bind",
                    (char *)"127.0.0.1", (char *)"--save", (char *)"", (char *)"--daemonize",
                    (char *)"no", (char *)"--appendonly", (char *)(r->persist ? "yes" : "no"),
                    /* without persistence the list ends here */
                    r->persist ? (char *)"--appendfsync" : NULL, (char *)"always", (char *)"--dir",
                    dir, NULL};
    char log[512];
    snprintf(log, sizeof log, "%s/redis-%d.log", cel_test_dir(), r->port);
    r->pid = cel_test_spawn(argv, log);
    ASSERT(r->pid > 0);
    for (int i = 0; i < 200; i++) {
        redisContext *c = cel_test_redis_connect(r);
        if (c) {
            redisReply *reply = redisCommand(c, "PING");
            bool ok = reply && reply->type == REDIS_REPLY_STATUS;
            if (reply)
                freeReplyObject(reply);
            redisFree(c);
            if (ok)
                return;
        }
        cel_test_sleep_ms(25);
    }
    cel_test_fail(__FILE__, __LINE__, "redis-server did not answer PING on port %d", r->port);
}

void cel_test_redis_stop(struct cel_test_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        cel_test_wait(r->pid, 5000);
    }
    r->pid = 0;
}

void cel_test_redis_setup(struct cel_test_redis *r)
{
    r->port = cel_test_free_port();
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    cel_test_redis_start(r);
}

redisReply *cel_test_redis_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ASSERT(r);
    return r;
}

long long cel_test_redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ASSERT(r && r->type == REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}
