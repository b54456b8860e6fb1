/*
 * task_batch.h - many tasks queued at once and their outcomes counted,
 * through the public client API, for tests that drive a worker process.
 */
#ifndef CEL_TEST_TASK_BATCH_H
#define CEL_TEST_TASK_BATCH_H

#include <stddef.h>

#include <celeriac.h>

/* A connected client; broker_url NULL means the default (./celeriac.db),
 * result_url NULL the broker. Fails the test when it cannot connect. */
cel_client *cel_test_client(const char *broker_url, const char *result_url);

/* Queues n calls of task(args_json; NULL: no arguments) in batches
 * (cel_client_begin/flush)
 * and returns their ids; caller frees with cel_test_ids_free. */
char **cel_test_send_many(cel_client *c, const char *task, const char *args_json, size_t n);
void cel_test_ids_free(char **ids, size_t n);

/* A JSON argument list holding one string of `len` bytes ("[\"abc...\"]");
 * caller frees. */
char *cel_test_string_args(size_t len);

/* What the result store says about a set of tasks right now. */
struct cel_test_tally {
    size_t success;        /* SUCCESS whose value is `want_value` */
    size_t wrong;          /* SUCCESS with another value */
    size_t failure;        /* FAILURE, REVOKED */
    size_t pending;        /* PENDING: nothing stored */
    size_t other;          /* RECEIVED, STARTED, RETRY */
    const char *first_bad; /* id of the first task not in `success`; borrowed */
};
/* Refreshes every id; want_value is the expected JSON text of the result
 * ("61440"), NULL to accept any SUCCESS. */
struct cel_test_tally cel_test_tally(cel_client *c, char **ids, size_t n, const char *want_value);
/* Polls cel_test_tally until every task is SUCCESS, timeout_ms passes, or
 * no task became ready for stall_ms (a hung worker is told apart from a
 * slow one early); returns the last tally. */
struct cel_test_tally cel_test_wait_all(cel_client *c, char **ids, size_t n, const char *want_value,
                                        int timeout_ms, int stall_ms);
/* One line: "success 390, wrong 0, failure 0, pending 10, other 0". */
void cel_test_tally_print(const char *title, const struct cel_test_tally *t);

/* Sends one call of task(args_json) with the given task id. */
void cel_test_send_as(cel_client *c, const char *task, const char *args_json, const char *id);
/* Waits up to timeout_ms for id's ready state (fails the test past it)
 * and returns it; with exc, "ExcType:message" goes there too. */
cel_state cel_test_wait_state(cel_client *c, const char *id, int timeout_ms, char *exc, size_t len);

#endif
