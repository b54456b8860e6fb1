/* task_batch.c - see task_batch.h. */
#include "task_batch.h"

#include "testing.h"

/* Sends are buffered until the flush; big payloads flush sooner so the
 * buffer stays around this size. */
#define FLUSH_BYTES (32u << 20)
#define FLUSH_COUNT 500

cel_client *cel_test_client(const char *broker_url, const char *result_url)
{
    cel_config *cfg = cel_config_new();
    ASSERT(cfg);
    if (broker_url)
        ASSERT_OK(cel_config_set(cfg, "broker_url", broker_url, NULL));
    if (result_url)
        ASSERT_OK(cel_config_set(cfg, "result_backend", result_url, NULL));
    cel_client *c = cel_client_new(cfg);
    cel_config_free(cfg);
    ASSERT(c);
    if (cel_client_connect(c) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "client connect: %s", cel_client_errmsg(c));
    return c;
}

char **cel_test_send_many(cel_client *c, const char *task, const char *args_json, size_t n)
{
    char **ids = calloc(n ? n : 1, sizeof *ids);
    ASSERT(ids);
    size_t per = (args_json ? strlen(args_json) : 2) + 1024;
    size_t batch = FLUSH_BYTES / per;
    if (batch < 1)
        batch = 1;
    if (batch > FLUSH_COUNT)
        batch = FLUSH_COUNT;
    for (size_t i = 0; i < n; i++) {
        if (i % batch == 0)
            ASSERT_OK(cel_client_begin(c));
        cel_result *r = NULL;
        if (cel_client_send(c, task, args_json, NULL, NULL, &r) != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "send %s #%zu: %s", task, i, cel_client_errmsg(c));
        ids[i] = strdup(cel_result_id(r));
        ASSERT(ids[i]);
        cel_result_free(r);
        if ((i + 1) % batch == 0 || i + 1 == n)
            if (cel_client_flush(c) != CEL_OK)
                cel_test_fail(__FILE__, __LINE__, "flush: %s", cel_client_errmsg(c));
    }
    return ids;
}

void cel_test_ids_free(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
}

char *cel_test_string_args(size_t len)
{
    char *s = malloc(len + 5);
    ASSERT(s);
    s[0] = '[';
    s[1] = '"';
    for (size_t i = 0; i < len; i++)
        s[2 + i] = (char)('a' + i % 26);
    memcpy(s + 2 + len, "\"]", 3);
    return s;
}

struct cel_test_tally cel_test_tally(cel_client *c, char **ids, size_t n, const char *want_value)
{
    struct cel_test_tally t = {0};
    for (size_t i = 0; i < n; i++) {
        cel_result *r = NULL;
        if (cel_client_result(c, ids[i], &r) != CEL_OK || cel_result_refresh(r) != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "result %s: %s", ids[i], cel_client_errmsg(c));
        bool good = false;
        switch (cel_result_state(r)) {
        case CEL_STATE_SUCCESS:
            good = !want_value || strcmp(cel_result_value_json(r), want_value) == 0;
            if (good)
                t.success++;
            else
                t.wrong++;
            break;
        case CEL_STATE_FAILURE:
        case CEL_STATE_REVOKED:
            t.failure++;
            break;
        case CEL_STATE_PENDING:
            t.pending++;
            break;
        default:
            t.other++;
            break;
        }
        if (!good && !t.first_bad)
            t.first_bad = ids[i];
        cel_result_free(r);
    }
    return t;
}

struct cel_test_tally cel_test_wait_all(cel_client *c, char **ids, size_t n, const char *want_value,
                                        int timeout_ms, int stall_ms)
{
    int64_t now = cel_test_now_ms();
    int64_t deadline = now + timeout_ms, last_progress = now;
    size_t ready = 0;
    for (;;) {
        struct cel_test_tally t = cel_test_tally(c, ids, n, want_value);
        now = cel_test_now_ms();
        if (t.success + t.wrong + t.failure > ready) {
            ready = t.success + t.wrong + t.failure;
            last_progress = now;
        }
        if (t.success == n || now >= deadline || now - last_progress >= stall_ms)
            return t;
        cel_test_sleep_ms(100);
    }
}

void cel_test_tally_print(const char *title, const struct cel_test_tally *t)
{
    fprintf(stderr,
            "   %s: success %zu, wrong value %zu, failure %zu, pending %zu, other %zu%s%s\n", title,
            t->success, t->wrong, t->failure, t->pending, t->other,
            t->first_bad ? "; first not done: " : "", t->first_bad ? t->first_bad : "");
}

void cel_test_send_as(cel_client *c, const char *task, const char *args_json, const char *id)
{
    cel_send_options o = CEL_SEND_OPTIONS_INIT(.task_id = id);
    ASSERT_OK(cel_client_send(c, task, args_json, NULL, &o, NULL));
}

cel_state cel_test_wait_state(cel_client *c, const char *id, int timeout_ms, char *exc, size_t len)
{
    cel_result *r;
    ASSERT_OK(cel_client_result(c, id, &r));
    if (cel_result_wait(r, timeout_ms) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "task %s not ready: %s", id, cel_client_errmsg(c));
    cel_state st = cel_result_state(r);
    if (exc) {
        const char *t = cel_result_exc_type(r), *m = cel_result_exc_message(r);
        snprintf(exc, len, "%s:%s", t ? t : "", m ? m : "");
    }
    cel_result_free(r);
    return st;
}
