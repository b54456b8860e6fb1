/*
 * bench_sqlite.c - speed and memory of celeriac on the embedded default.
 *
 *   bench_sqlite CLI TASKS_SO [N] [ROUND_TRIPS] [CONCURRENCY]
 *
 * Runs in a fresh directory on ./celeriac.db and prints one JSON object:
 *  - enqueue: tasks/s published by one C client (batches of 1000 per
 *    transaction, cel_client_begin/flush), no worker running;
 *  - drain: tasks/s a worker (`celeriac worker -c CONCURRENCY`) takes to run
 *    N tasks.noop that were already queued, results stored; timed from
 *    worker start to the last result, so start-up is included;
 *  - round trip: p50/p99 of send + wait for the result, one at a time;
 *  - RSS of the worker and its children, summed from /proc: a fresh
 *    idle worker, and the drain's worker after it has settled.
 * BENCH_REVOKED=N revokes N ids that match no task before the drain.
 * It is a benchmark, not a test: it asserts nothing about speed.
 */
#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <celeriac.h>

#define BENCH_NAME "bench_sqlite"
#include "bench_common.h"

static pid_t start_worker(const char *cli, const char *tasks, const char *conc)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *log = freopen("worker.log", "a", stderr);
        (void)log;
        /* BENCH_EXTRA_MODULE: a second task module, e.g. one that
         * registers a rate-limited task (the filter's cost, issue 7). */
        const char *extra = getenv("BENCH_EXTRA_MODULE");
        if (extra && *extra)
            execl(cli, cli, "worker", "-A", tasks, "-A", extra, "-c", conc, "-l", "warning",
                  (char *)NULL);
        else
            execl(cli, cli, "worker", "-A", tasks, "-c", conc, "-l", "warning", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_worker(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static long count_results(sqlite3 *db)
{
    sqlite3_stmt *st;
    long n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM results", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return n;
}

/* Sum of VmRSS (kB) of pid and its direct children. */
static long tree_rss_kb(pid_t pid)
{
    long total = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        long rss = 0, ppid = -1, self = atol(e->d_name);
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "VmRSS: %ld", &rss);
            sscanf(line, "PPid: %ld", &ppid);
        }
        fclose(f);
        if (self == pid || ppid == pid)
            total += rss;
    }
    if (d)
        closedir(d);
    return total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CLI TASKS_SO [N] [ROUND_TRIPS] [CONCURRENCY]\n", argv[0]);
        return 2;
    }
    /* Absolute paths: the benchmark runs in a directory of its own. */
    char *cli = realpath(argv[1], NULL), *tasks = realpath(argv[2], NULL);
    if (!cli || !tasks)
        die("no such file", !cli ? argv[1] : argv[2]);
    long n = argc > 3 ? atol(argv[3]) : 20000;
    long trips = argc > 4 ? atol(argv[4]) : 1000;
    const char *conc = argc > 5 ? argv[5] : "2";

    char dir[] = "/tmp/celeriac-bench-XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0)
        die("mkdtemp", dir);

    cel_client *c = cel_client_new(NULL);
    if (!c || cel_client_connect(c) != CEL_OK)
        die("connect", c ? cel_client_errmsg(c) : "out of memory");

    /* enqueue */
    double t0 = now_s();
    for (long i = 0; i < n; i += 1000) {
        cel_client_begin(c);
        for (long j = i; j < n && j < i + 1000; j++)
            if (cel_client_send(c, "tasks.noop", NULL, NULL, NULL, NULL) != CEL_OK)
                die("send", cel_client_errmsg(c));
        if (cel_client_flush(c) != CEL_OK)
            die("flush", cel_client_errmsg(c));
    }
    double enqueue_s = now_s() - t0;

    /* idle RSS of a fresh worker, on an empty queue */
    long fresh_rss_kb;
    {
        char fresh_dir[] = "fresh-XXXXXX";
        if (!mkdtemp(fresh_dir) || chdir(fresh_dir) != 0)
            die("mkdtemp", fresh_dir);
        pid_t idle = start_worker(cli, tasks, conc);
        usleep(700000);
        fresh_rss_kb = tree_rss_kb(idle);
        stop_worker(idle);
        if (system("rm -f celeriac.db* worker.log") != 0 || chdir("..") != 0 ||
            rmdir(fresh_dir) != 0)
            die("cleanup", fresh_dir);
    }

    /* BENCH_REVOKED=N: N revoked ids, none of them queued, present while
     * the worker drains (what the revoke filter costs on the hot path). */
    long nrevoked = getenv("BENCH_REVOKED") ? atol(getenv("BENCH_REVOKED")) : 0;
    for (long i = 0; i < nrevoked; i += 1000) {
        static char idbuf[1000][48];
        const char *ids[1000];
        long k = 0;
        for (; k < 1000 && i + k < nrevoked; k++) {
            snprintf(idbuf[k], sizeof idbuf[k], "revoked-%08ld", i + k);
            ids[k] = idbuf[k];
        }
        if (cel_client_revoke(c, ids, (size_t)k, NULL) != CEL_OK)
            die("revoke", cel_client_errmsg(c));
    }

    /* drain */
    sqlite3 *db;
    if (sqlite3_open("celeriac.db", &db) != SQLITE_OK)
        die("sqlite3_open", "celeriac.db");
    sqlite3_busy_timeout(db, 5000);
    t0 = now_s();
    pid_t worker = start_worker(cli, tasks, conc);
    while (count_results(db) < n) {
        if (now_s() - t0 > 300 || waitpid(worker, NULL, WNOHANG) == worker) {
            kill(worker, SIGKILL);
            die("drain", "the worker exited or took more than 300 s (see worker.log)");
        }
        usleep(2000);
    }
    double drain_s = now_s() - t0;

    /* RSS after the drain, once it settles */
    usleep(500000);
    long rss_kb = tree_rss_kb(worker);

    /* round trips */
    double *lat = calloc((size_t)trips, sizeof *lat);
    for (long i = 0; i < trips + 20; i++) {
        cel_result *r;
        double s = now_s();
        if (cel_client_send(c, "tasks.noop", NULL, NULL, NULL, &r) != CEL_OK)
            die("send", cel_client_errmsg(c));
        if (cel_result_wait(r, 10000) != CEL_OK)
            die("wait", "round trip timed out");
        if (i >= 20)
            lat[i - 20] = (now_s() - s) * 1e3;
        cel_result_free(r);
    }
    qsort(lat, (size_t)trips, sizeof *lat, cmp_double);
    double p50 = lat[trips / 2], p99 = lat[(trips * 99) / 100];

    stop_worker(worker);
    sqlite3_close(db);
    cel_client_free(c);
    free(lat);
    free(cli);
    free(tasks);

    printf("{\"n\": %ld, \"concurrency\": %s, \"enqueue_per_s\": %.0f, \"drain_per_s\": %.0f, "
           "\"round_trip_p50_ms\": %.3f, \"round_trip_p99_ms\": %.3f, \"idle_rss_kib\": %ld, "
           "\"after_drain_rss_kib\": %ld}\n",
           n, conc, (double)n / enqueue_s, (double)n / drain_s, p50, p99, fresh_rss_kb, rss_kb);
    if (!getenv("BENCH_KEEP")) {
        if (system("rm -f celeriac.db celeriac.db-wal celeriac.db-shm worker.log") != 0)
            fprintf(stderr, "bench_sqlite: cleanup of %s failed\n", dir);
        if (chdir("/") == 0)
            rmdir(dir);
    }
    return 0;
}
