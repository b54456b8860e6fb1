/*
 * bench_payload.c - large-message throughput of a worker, in MB/s.
 *
 *   bench_payload CLI TASKS_SO BROKER_URL SIZE_BYTES N [CONCURRENCY]
 *
 * Queues N `tasks.echo` calls whose argument is a SIZE_BYTES string (one
 * C client, no worker running), then starts `celeriac worker -c
 * CONCURRENCY` and times it from start until the last result is stored
 * (each result is the argument again, so SIZE bytes go in and come out
 * of the worker per task). Prints one JSON object with tasks/s and the
 * payload MB/s. On sqlite:// it runs in a fresh directory; any other URL
 * is used as both broker and result store, and its queue is purged first.
 * A benchmark, not a test: it asserts nothing about speed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <celeriac.h>

#define BENCH_NAME "bench_payload"
#include "bench_common.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s CLI TASKS_SO BROKER_URL SIZE_BYTES N [CONCURRENCY]\n", argv[0]);
        return 2;
    }
    char *cli = realpath(argv[1], NULL), *tasks = realpath(argv[2], NULL);
    if (!cli || !tasks)
        die("no such file", !cli ? argv[1] : argv[2]);
    const char *url = argv[3];
    size_t size = (size_t)atol(argv[4]);
    long n = atol(argv[5]);
    const char *conc = argc > 6 ? argv[6] : "2";
    if (strncmp(url, "sqlite:", 7) == 0) {
        char dir[] = "/tmp/celeriac-bench-XXXXXX";
        if (!mkdtemp(dir) || chdir(dir) != 0)
            die("mkdtemp", dir);
    }
    setenv("CELERIAC_BROKER_URL", url, 1);
    setenv("CELERIAC_RESULT_BACKEND", url, 1);

    /* The client reads no environment by itself: give it the URL, as the
     * worker gets it from CELERIAC_* above. */
    cel_config *cfg = cel_config_new();
    if (!cfg || cel_config_set(cfg, "broker_url", url, "bench") != CEL_OK ||
        cel_config_set(cfg, "result_backend", url, "bench") != CEL_OK)
        die("config", url);
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg);
    if (!c || cel_client_connect(c) != CEL_OK)
        die("connect", c ? cel_client_errmsg(c) : "out of memory");
    size_t removed;
    cel_client_purge(c, NULL, &removed);

    /* ["xxxx..."]: a JSON list with one string of `size` bytes. */
    char *args = malloc(size + 5);
    if (!args)
        die("malloc", "args");
    args[0] = '[';
    args[1] = '"';
    memset(args + 2, 'x', size);
    memcpy(args + 2 + size, "\"]", 3);

    cel_result **results = calloc((size_t)n, sizeof *results);
    if (!results)
        die("malloc", "results");
    for (long i = 0; i < n; i++)
        if (cel_client_send(c, "tasks.echo", args, NULL, NULL, &results[i]) != CEL_OK)
            die("send", cel_client_errmsg(c));

    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        FILE *log = freopen("/dev/null", "w", stderr);
        FILE *out = freopen("/dev/null", "w", stdout);
        (void)log, (void)out;
        execl(cli, cli, "worker", "-A", tasks, "-c", conc, "-l", "warning", (char *)NULL);
        _exit(127);
    }
    for (long i = 0; i < n; i++) {
        if (cel_result_wait(results[i], 600000) != CEL_OK)
            die("wait", cel_client_errmsg(c));
        if (cel_result_state(results[i]) != CEL_STATE_SUCCESS)
            die("task failed", cel_result_state_name(results[i]));
    }
    double secs = now_s() - t0;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    double mb = (double)size * (double)n / 1e6;
    printf("{\"url\": \"%s\", \"size\": %zu, \"n\": %ld, \"concurrency\": %s, \"seconds\": %.3f, "
           "\"tasks_per_s\": %.1f, \"payload_mb_per_s\": %.1f}\n",
           strncmp(url, "sqlite:", 7) == 0 ? "sqlite" : url, size, n, conc, secs, (double)n / secs,
           mb / secs);
    for (long i = 0; i < n; i++)
        cel_result_free(results[i]);
    free(results);
    free(args);
    cel_client_free(c);
    return 0;
}
