/*
 * task_fixture.h - a cel_task on a parsed message, as the worker makes
 * it, for unit tests of the task API.
 */
#ifndef CEL_TEST_TASK_FIXTURE_H
#define CEL_TEST_TASK_FIXTURE_H

#include <jansson.h>

#include "proto/message.h"
#include "worker/task_context.h"

struct cel_test_task {
    struct cel_message msg;
    struct cel_task task; /* hostname "w1@host" */
};

/* Builds the envelope of `spec`, lets `edit` change it as a peer might
 * have sent it (NULL: as built), and parses it as the worker does; the
 * test fails if either step does. */
void cel_test_task_setup(struct cel_test_task *f, const struct cel_task_spec *spec,
                         void (*edit)(json_t *root));
void cel_test_task_teardown(struct cel_test_task *f);

#endif
