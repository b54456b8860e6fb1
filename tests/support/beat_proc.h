/*
 * beat_proc.h - `celeriac beat` processes, the store they share, and
 * what they sent, for the beat integration tests. Each test runs on
 * SQLite and on a private redis-server (redis_server.h).
 */
#ifndef CEL_TEST_BEAT_PROC_H
#define CEL_TEST_BEAT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <celeriac.h>
#include <celeriac/beat.h>
#include <celeriac/schedule.h>

#include "redis_server.h"

struct cel_test_store {
    bool redis;
    char url[256];
    struct cel_test_redis srv; /* with redis */
};

/* SQLite: a file in the test directory; Redis: a server of its own. */
void cel_test_store_setup(struct cel_test_store *s, bool redis);
void cel_test_store_teardown(struct cel_test_store *s);

/* `celeriac beat -b URL -l info` plus `extra` (NULL-terminated), its
 * output appended to log_path; start() also waits for "beat: started". */
pid_t cel_test_beat_spawn(const char *url, const char *log_path, const char *const extra[]);
pid_t cel_test_beat_start(const char *url, const char *log_path, const char *const extra[]);

/* Stores entry `name`: test.record("<name>") every `every`, with the
 * catch-up policy given, through the public API. */
void cel_test_schedule_every(const char *url, const char *name, const char *every,
                             cel_catch_up policy);

/* Takes every message waiting on `queue` and returns their task ids
 * (caller frees with cel_test_ids_free from task_batch.h). With `entry`,
 * each must carry the header periodic_task_name naming it. */
size_t cel_test_drain_ids(const char *url, const char *queue, const char *entry, char ***ids);

/*
 * Checks that ids[0..n) are runs of entry `name` scheduled in
 * [from_s, to_s] (UTC seconds), each run at most once, and that no run
 * between the first and the last one sent is missing: fails the test
 * naming the run otherwise. Returns how many runs there are; *first_s
 * and *last_s (may be NULL) receive the first and the last.
 */
size_t cel_test_check_runs(const char *name, char **ids, size_t n, int64_t from_s, int64_t to_s,
                           int64_t *first_s, int64_t *last_s);

/* Drains `queue` and checks what was on it with cel_test_check_runs(),
 * also that each message is a run (the count of runs equals the count
 * of messages): the number of runs. */
size_t cel_test_queue_runs(const char *url, const char *queue, const char *name, int64_t from_s,
                           int64_t to_s, int64_t *first_s, int64_t *last_s);

/* Wall clock, UTC seconds. */
int64_t cel_test_wall_s(void);

#endif
