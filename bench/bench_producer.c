/*
 * bench_producer.c - the C producer for the shared Celery-on-Redis
 * harness (run_bench.py --producer-cmd '.../bench_producer {mode} {n}').
 *
 *   bench_producer MODE N
 *
 * MODE is one of the harness's producer modes: send_task and delay send
 * bench.noop (result expected), send_task_ir and delay_ir send bench.incr
 * with ignore_result, like producer.py. The tasks go out through the
 * client API in batches of 1000 (cel_client_begin/flush: one pipeline per
 * batch). Only the send loop is timed, connecting is not, as in
 * producer.py. Prints one JSON line: {"mode", "n", "elapsed_s", "rate",
 * "cpu_s"}.
 *
 * MODE `latency` instead runs N sequential bench.noop round trips (send,
 * wait for the result) and prints p50/p90/p99 in milliseconds: the C
 * client + C worker round trip, which latency.py (a Python client) cannot
 * show.
 *
 * Broker and backend: BENCH_REDIS (default redis://127.0.0.1:6391) with
 * BENCH_BROKER_DB (0) and BENCH_RESULT_DB (1), as benchapp.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <celeriac.h>

#define BATCH 1000

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int configure(cel_config *cfg)
{
    const char *base = getenv("BENCH_REDIS");
    const char *bdb = getenv("BENCH_BROKER_DB");
    const char *rdb = getenv("BENCH_RESULT_DB");
    char url[512];
    const char *whole = getenv("BENCH_BROKER_URL"); /* any transport, results in it too */
    if (whole)
        return cel_config_set(cfg, "broker_url", whole, "env") == CEL_OK ? 0 : -1;
    if (!base)
        base = "redis://127.0.0.1:6391";
    snprintf(url, sizeof url, "%s/%s", base, bdb ? bdb : "0");
    if (cel_config_set(cfg, "broker_url", url, "env") != CEL_OK)
        return -1;
    snprintf(url, sizeof url, "%s/%s", base, rdb ? rdb : "1");
    if (cel_config_set(cfg, "result_backend", url, "env") != CEL_OK)
        return -1;
    return 0;
}

static int enqueue(cel_client *c, const char *mode, long n)
{
    bool ir = strcmp(mode, "send_task_ir") == 0 || strcmp(mode, "delay_ir") == 0;
    const char *task = ir ? "bench.incr" : "bench.noop";
    cel_send_options opts = CEL_SEND_OPTIONS_INIT(.ignore_result = ir);
    const char *cd = getenv("BENCH_COUNTDOWN"); /* delayed tasks: bench/delayed_rss.sh */
    if (cd)
        opts.countdown = atof(cd);

    double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    double t0 = clock_s(CLOCK_MONOTONIC);
    for (long i = 0; i < n; i += BATCH) {
        if (cel_client_begin(c) != CEL_OK)
            return -1;
        for (long j = i; j < n && j < i + BATCH; j++)
            if (cel_client_send(c, task, NULL, NULL, &opts, NULL) != CEL_OK)
                return -1;
        if (cel_client_flush(c) != CEL_OK)
            return -1;
    }
    double elapsed = clock_s(CLOCK_MONOTONIC) - t0;
    double cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("{\"mode\": \"%s\", \"n\": %ld, \"elapsed_s\": %.6f, \"rate\": %.1f, \"cpu_s\": %.6f}\n",
           mode, n, elapsed, (double)n / elapsed, cpu);
    return 0;
}

static int latency(cel_client *c, long n)
{
    double *ms = malloc((size_t)n * sizeof *ms);
    if (!ms)
        return -1;
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        cel_result *r = NULL;
        double t0 = clock_s(CLOCK_MONOTONIC);
        if (cel_client_send(c, "bench.noop", NULL, NULL, NULL, &r) != CEL_OK ||
            cel_result_wait(r, 10000) != CEL_OK || cel_result_state(r) != CEL_STATE_SUCCESS)
            rc = -1;
        ms[i] = (clock_s(CLOCK_MONOTONIC) - t0) * 1e3;
        cel_result_free(r);
    }
    if (rc == 0) {
        qsort(ms, (size_t)n, sizeof *ms, cmp_double);
        printf("{\"mode\": \"latency\", \"n\": %ld, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
               "\"p99_ms\": %.4f, \"max_ms\": %.4f}\n",
               n, ms[n / 2], ms[n * 9 / 10], ms[n * 99 / 100], ms[n - 1]);
    }
    free(ms);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3 || atol(argv[2]) <= 0) {
        fprintf(stderr, "usage: bench_producer send_task|delay|send_task_ir|delay_ir|latency N\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    if (strcmp(mode, "send_task") && strcmp(mode, "delay") && strcmp(mode, "send_task_ir") &&
        strcmp(mode, "delay_ir") && strcmp(mode, "latency")) {
        fprintf(stderr, "bench_producer: unknown mode '%s'\n", mode);
        return 2;
    }

    int status = 1;
    cel_client *c = NULL;
    cel_config *cfg = cel_config_new();
    if (!cfg || configure(cfg) != 0) {
        fprintf(stderr, "bench_producer: bad configuration: %s\n",
                cfg ? cel_config_errmsg(cfg) : "out of memory");
        goto out;
    }
    c = cel_client_new(cfg);
    if (!c || cel_client_connect(c) != CEL_OK) {
        fprintf(stderr, "bench_producer: cannot connect: %s\n",
                c ? cel_client_errmsg(c) : "out of memory");
        goto out;
    }
    int rc = strcmp(mode, "latency") == 0 ? latency(c, n) : enqueue(c, mode, n);
    if (rc != 0)
        fprintf(stderr, "bench_producer: %s: %s\n", mode, cel_client_errmsg(c));
    else
        status = 0;
out:
    cel_client_free(c);
    cel_config_free(cfg);
    return status;
}
