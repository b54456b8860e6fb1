/*
 * client.c - sending a task and waiting for its result with the C API.
 *
 * Start a worker first (same directory, so both use ./celeriac.db):
 *
 *     celeriac worker -A build/examples/libtasks.so &
 *     build/examples/client          # prints: tasks.add(2, 3) = 5
 *
 * The configuration comes from the defaults plus CELERIAC_* variables,
 * e.g. CELERIAC_BROKER_URL=sqlite:///other.db.
 */
#include <stdio.h>

#include <celeriac.h>

int main(void)
{
    int status = 1;
    cel_config *cfg = cel_config_new();
    cel_client *client = NULL;
    cel_result *res = NULL;
    if (!cfg)
        goto out;
    if (cel_config_load_env(cfg) != CEL_OK) {
        fprintf(stderr, "bad configuration: %s\n", cel_config_errmsg(cfg));
        goto out;
    }
    client = cel_client_new(cfg);
    if (!client)
        goto out;
    /* Options are made with CEL_SEND_OPTIONS_INIT: it records the size of
     * the struct this program was built with, so a newer libceleriac with
     * more options still reads it right. NULL options mean all defaults. */
    cel_send_options opts = CEL_SEND_OPTIONS_INIT(.priority = 5, .has_priority = 1);
    if (cel_client_connect(client) != CEL_OK ||
        cel_client_send(client, "tasks.add", "[2, 3]", NULL, &opts, &res) != CEL_OK) {
        fprintf(stderr, "%s\n", cel_client_errmsg(client));
        goto out;
    }
    int rc = cel_result_wait(res, 10000);
    if (rc == CEL_ETIMEDOUT) {
        fprintf(stderr, "no result after 10 s: is a worker running?\n");
        goto out;
    }
    if (rc != CEL_OK) {
        fprintf(stderr, "%s\n", cel_client_errmsg(client));
        goto out;
    }
    if (cel_result_state(res) == CEL_STATE_SUCCESS) {
        printf("tasks.add(2, 3) = %s\n", cel_result_value_json(res));
        status = 0;
    } else {
        fprintf(stderr, "task %s: %s: %s\n", cel_result_state_name(res),
                cel_result_exc_type(res) ? cel_result_exc_type(res) : "?",
                cel_result_exc_message(res) ? cel_result_exc_message(res) : "");
    }
out:
    cel_result_free(res);
    cel_client_free(client);
    cel_config_free(cfg);
    return status;
}
