/*
 * test_sqlite_open_race.c - many processes opening one fresh database at
 * the same moment all succeed.
 *
 * The regression: `make demo` on a fresh machine started a worker and a
 * client together on a new celeriac.db; the worker died with "cannot
 * switch the database to WAL: database is locked". Here half the
 * processes open the store the way the worker does (broker, result
 * store, one fetch) and half the way a client does (the public API, one
 * send), all released at once from a barrier, on a fresh file each
 * round.
 */
#include <errno.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "broker/broker.h"
#include "celeriac.h"
#include "core/clock.h"
#include "store/sqlite_db.h"
#include "sql_query.h"
#include "testing.h"

enum { NPROC = 50, ROUNDS = 20 };

/* One per child, written to the report pipe in one write (< PIPE_BUF). */
struct report {
    int role; /* 0 worker, 1 client */
    int rc;   /* CEL_OK or the failing code */
    int64_t open_us;
    char msg[600];
};

static void send_report(int fd, struct report *r)
{
    ssize_t n = write(fd, r, sizeof *r);
    _exit(n == (ssize_t)sizeof *r && r->rc == CEL_OK ? 0 : 1);
}

/* What `celeriac worker` does first: open the broker and the result store
 * (one shared connection), then fetch. */
static void as_worker(const char *url, struct report *r)
{
    struct cel_errbuf err = {{0}};
    struct cel_broker *b = NULL;
    struct cel_backend *bk = NULL;
    r->rc = cel__broker_open(url, NULL, &b, &err);
    if (r->rc == CEL_OK)
        r->rc = cel__backend_open(url, NULL, &bk, &err);
    if (r->rc != CEL_OK) {
        snprintf(r->msg, sizeof r->msg, "worker open: %s", err.msg);
        cel__broker_close(b);
        return;
    }
    const char *queues[] = {"celery"};
    struct cel_delivery d[4];
    size_t n = 0;
    r->rc = b->ops->fetch(b, queues, 1, 4, 60000, d, &n, NULL);
    if (r->rc != CEL_OK)
        snprintf(r->msg, sizeof r->msg, "worker fetch: %s", cel__broker_errmsg(b));
    for (size_t i = 0; i < n; i++)
        cel__delivery_release(&d[i]);
    cel__backend_close(bk);
    cel__broker_close(b);
}

/* What `celeriac call` does: the public client API and one send. */
static void as_client(const char *url, struct report *r)
{
    cel_config *cfg = cel_config_new();
    cel_client *c = NULL;
    r->rc = cfg ? cel_config_set(cfg, "broker_url", url, "test") : CEL_ENOMEM;
    if (r->rc == CEL_OK) {
        c = cel_client_new(cfg);
        r->rc = c ? cel_client_connect(c) : CEL_ENOMEM;
    }
    if (r->rc == CEL_OK)
        r->rc = cel_client_send(c, "tasks.add", "[2, 3]", NULL, NULL, NULL);
    if (r->rc != CEL_OK)
        snprintf(r->msg, sizeof r->msg, "client: %s", c ? cel_client_errmsg(c) : "no client");
    cel_client_free(c);
    cel_config_free(cfg);
}

static void child(int role, const char *url, int ready_fd, int start_fd, int report_fd)
{
    struct report r = {.role = role};
    char byte = 'r';
    if (write(ready_fd, &byte, 1) != 1)
        _exit(2);
    while (read(start_fd, &byte, 1) < 0 && errno == EINTR)
        ; /* EOF: the parent released everyone */
    int64_t t0 = cel__mono_us();
    if (role == 0)
        as_worker(url, &r);
    else
        as_client(url, &r);
    r.open_us = cel__mono_us() - t0;
    send_report(report_fd, &r);
}

/* One round on a fresh file; returns the number of failed processes and
 * adds the slowest open to *worst_us. */
static int run_round(int round, int64_t *worst_us, int64_t *wall_us)
{
    char path[64], url[96];
    snprintf(path, sizeof path, "race-%02d.db", round);
    snprintf(url, sizeof url, "sqlite:///%s", path);
    int ready[2], start[2], reports[2];
    ASSERT_OK(pipe(ready));
    ASSERT_OK(pipe(start));
    ASSERT_OK(pipe(reports));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            close(ready[0]);
            close(start[1]);
            close(reports[0]);
            child(i % 2, url, ready[1], start[0], reports[1]);
        }
    }
    close(ready[1]);
    close(start[0]);
    close(reports[1]);
    /* Release only once every child sits at the barrier. */
    for (int got = 0; got < NPROC;) {
        char buf[NPROC];
        ssize_t n = read(ready[0], buf, (size_t)(NPROC - got));
        ASSERT(n > 0);
        got += (int)n;
    }
    int64_t t0 = cel__mono_us();
    close(start[1]);

    int failed = 0, reported = 0, sends = 0;
    struct report r;
    while (read(reports[0], &r, sizeof r) == (ssize_t)sizeof r) {
        reported++;
        if (r.rc != CEL_OK) {
            failed++;
            fprintf(stderr, "   round %d: %s failed (%s): %s\n", round,
                    r.role ? "client" : "worker", cel_err_name(r.rc), r.msg);
        } else if (r.role == 1) {
            sends++;
        }
        if (r.open_us > *worst_us)
            *worst_us = r.open_us;
    }
    for (int i = 0; i < NPROC; i++) {
        int status = cel_test_wait(pids[i], 60000);
        if (status != 0 && status != 1)
            failed++, fprintf(stderr, "   round %d: child exited %d\n", round, status);
    }
    *wall_us = cel__mono_us() - t0;
    close(ready[0]);
    close(reports[0]);
    ASSERT_EQ(reported, NPROC);
    /* Every send that reported success is in the table, none twice. */
    if (failed == 0)
        ASSERT_EQ(cel_test_sql_int(path, "SELECT COUNT(*) FROM messages"), sends);
    return failed;
}

static void test_fifty_processes_open_a_fresh_database(void)
{
    int failed = 0;
    int64_t worst = 0, slowest_round = 0, total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int64_t wall = 0;
        failed += run_round(round, &worst, &wall);
        total += wall;
        if (wall > slowest_round)
            slowest_round = wall;
    }
    fprintf(stderr,
            "   %d rounds of %d processes: %d failures; all %d opened in %.1f ms on average"
            " (slowest round %.1f ms, slowest single open+fetch/send %.1f ms)\n",
            ROUNDS, NPROC, failed, NPROC, total / 1000.0 / ROUNDS, slowest_round / 1000.0,
            worst / 1000.0);
    ASSERT_EQ(failed, 0);
}

/* A file that another process keeps locked past the open budget gives a
 * clear CEL_EBUSY after CEL_SQLDB_OPEN_TIMEOUT_MS, not a hang or EIO. */
static void test_locked_for_good_fails_clearly(void)
{
    int ready[2], done[2];
    ASSERT_OK(pipe(ready));
    ASSERT_OK(pipe(done));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(done[1]);
        sqlite3 *db = NULL;
        if (sqlite3_open("held.db", &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN EXCLUSIVE; CREATE TABLE t (x)", NULL, NULL, NULL) != SQLITE_OK)
            _exit(2);
        char byte = 'r';
        if (write(ready[1], &byte, 1) != 1)
            _exit(3);
        while (read(done[0], &byte, 1) < 0 && errno == EINTR)
            ;
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char byte;
    ASSERT_EQ(read(ready[0], &byte, 1), 1);

    struct cel_errbuf err = {{0}};
    struct cel_broker *b = NULL;
    int64_t t0 = cel__mono_us();
    int rc = cel__broker_open("sqlite:///held.db", NULL, &b, &err);
    int64_t waited_ms = (cel__mono_us() - t0) / 1000;
    fprintf(stderr, "   gave up after %lld ms: %s\n", (long long)waited_ms, err.msg);
    ASSERT_EQ(rc, CEL_EBUSY);
    ASSERT(b == NULL);
    ASSERT_CONTAINS(err.msg, "still locked by another process");
    ASSERT(waited_ms >= CEL_SQLDB_OPEN_TIMEOUT_MS - 100);
    ASSERT(waited_ms < CEL_SQLDB_OPEN_TIMEOUT_MS + 3000);

    /* Once the lock is gone the same file opens. */
    close(done[1]);
    ASSERT_EQ(cel_test_wait(pid, 10000), 0);
    rc = cel__broker_open("sqlite:///held.db", NULL, &b, &err);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "open after the lock is gone: %d %s", rc, err.msg);
    cel__broker_close(b);
    close(ready[0]);
}

int main(void)
{
    TEST_RUN(test_fifty_processes_open_a_fresh_database);
    TEST_RUN(test_locked_for_good_fails_clearly);
    return 0;
}
