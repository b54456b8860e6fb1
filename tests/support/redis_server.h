/*
 * redis_server.h - a throw-away redis-server for tests that need one.
 *
 * It listens on a free loopback port, keeps nothing on disk, logs into the
 * test's directory and is killed by stop(). A missing redis-server fails
 * the test loudly (CI installs it); it is never a skip.
 */
#ifndef CEL_TEST_REDIS_SERVER_H
#define CEL_TEST_REDIS_SERVER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <sys/types.h>

struct cel_test_redis {
    int port;
    pid_t pid;
    char url[128]; /* redis://127.0.0.1:<port>/0 */
    /* Set before setup/start: the server keeps an append-only file (fsync
     * on every write) in <test dir>/redis-<port>/, so a server killed and
     * started again on the same port has every acknowledged write back. */
    bool persist;
};

/* A loopback TCP port nobody listens on right now. */
int cel_test_free_port(void);
/* Picks a free port and starts the server; returns when it answers PING. */
void cel_test_redis_setup(struct cel_test_redis *r);
/* (Re)starts the server on r->port. */
void cel_test_redis_start(struct cel_test_redis *r);
/* Kills it (SIGKILL: tests use this to simulate a crash as well). */
void cel_test_redis_stop(struct cel_test_redis *r);

/* A plain hiredis connection to it, or NULL when it does not answer. */
redisContext *cel_test_redis_connect(const struct cel_test_redis *r);
/* Runs a command; fails the test when there is no reply. Caller frees. */
redisReply *cel_test_redis_cmd(redisContext *c, const char *fmt, ...);
/* Runs a command that must answer an integer. */
long long cel_test_redis_int(redisContext *c, const char *fmt, ...);

#endif
