/*
 * bench_beat_entries - stores N periodic entries for the beat benchmark
 * (bench/beat_bench.py), through the public schedule API, as a user with
 * a large schedule would.
 *
 *   bench_beat_entries BROKER_URL N [CRON]
 *
 * Entries are named bench.<i>, send bench.noop with args [i], and run on
 * CRON (default every minute). Existing entries of those names are
 * replaced.
 */
#include <stdio.h>
#include <stdlib.h>

#include "celeriac.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_beat_entries BROKER_URL N [CRON]\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    const char *cron = argc > 3 ? argv[3] : "* * * * *";
    cel_config *cfg = cel_config_new();
    if (!cfg || cel_config_set(cfg, "broker_url", argv[1], "argv") != CEL_OK) {
        fprintf(stderr, "bench_beat_entries: bad broker URL %s\n", argv[1]);
        return 2;
    }
    cel_client *c = cel_client_new(cfg);
    if (!c || cel_client_connect(c) != CEL_OK) {
        fprintf(stderr, "bench_beat_entries: %s\n", c ? cel_client_errmsg(c) : "out of memory");
        return 1;
    }
    int rc = CEL_OK;
    for (long i = 0; i < n && rc == CEL_OK; i++) {
        char name[32], args[32];
        snprintf(name, sizeof name, "bench.%ld", i);
        snprintf(args, sizeof args, "[%ld]", i);
        cel_schedule_entry e = CEL_SCHEDULE_ENTRY_INIT(.name = name, .task = "bench.noop",
                                                       .args_json = args, .cron = cron);
        rc = cel_schedule_add(c, &e, 1);
        if (rc != CEL_OK)
            fprintf(stderr, "bench_beat_entries: %s: %s\n", name, cel_client_errmsg(c));
    }
    cel_client_free(c);
    cel_config_free(cfg);
    return rc == CEL_OK ? 0 : 1;
}
