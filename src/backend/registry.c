/*
 * registry.c - picks a result store by URL scheme, and the generic wait.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/schemes.h"

static const struct cel_scheme table[] = {
    {"sqlite", &cel__backend_sqlite},
    {"memory", &cel__backend_memory},
    {"redis", &cel__backend_redis},
    {"redis+socket", &cel__backend_redis}, /* the same store over a unix socket */
};

#define NSTORES (sizeof table / sizeof table[0])

/* Longest sleep on the wakeup fd: a safety net should a wakeup be lost. */
#define WAIT_SLICE_MS 100

int cel__backend_open(const char *url, const cel_config *cfg, struct cel_backend **out,
                      struct cel_errbuf *err)
{
    *out = NULL;
    if (!url && cfg) {
        url = cel_config_get(cfg, "result_backend");
        if (!url || !*url)
            url = cel_config_get(cfg, "broker_url");
    }
    if (!url || !*url)
        url = "sqlite:///celeriac.db";

    char redacted[CEL_URL_MAX + 1], known[128];
    cel__url_redact(url, redacted, sizeof redacted);
    cel__scheme_list(table, NSTORES, known, sizeof known);

    struct cel_url u;
    char perr[256];
    int rc = cel__url_parse(url, &u, perr, sizeof perr);
    if (rc == CEL_ESCHEME) {
        cel__url_release(&u);
        size_t n = strcspn(url, ":");
        return cel__err(err, CEL_ESCHEME,
                        "unsupported result backend scheme '%.*s' in '%s' (known: %s)",
                        (int)(n < 64 ? n : 64), url, redacted, known);
    }
    if (rc != CEL_OK) {
        cel__url_release(&u);
        return cel__err(err, rc, "invalid result backend URL '%s': %s", redacted, perr);
    }
    const struct cel_backend_ops *ops = cel__scheme_find(table, NSTORES, u.scheme);
    if (!ops) {
        rc =
            cel__err(err, CEL_ESCHEME, "unsupported result backend scheme '%s' in '%s' (known: %s)",
                     u.scheme, redacted, known);
        cel__url_release(&u);
        return rc;
    }
    rc = ops->open(&u, cfg, out, err);
    cel__url_release(&u);
    if (rc != CEL_OK)
        *out = NULL;
    return rc;
}

void cel__backend_close(struct cel_backend *bk)
{
    if (bk)
        bk->ops->close(bk);
}

const char *cel__backend_errmsg(const struct cel_backend *bk)
{
    return bk ? bk->err.msg : "";
}

bool cel__meta_is_ready(const char *meta, size_t len)
{
    json_t *root;
    int rc = cel__json_parse_limited(meta, len, NULL, &root, NULL, 0);
    /* Past the parser's limits the meta cannot be read by any waiter
     * either (the client parses with the same limits): end the wait, so
     * the reader reports why now instead of a timeout later. */
    if (rc == CEL_EDEPTH || rc == CEL_ETOOBIG)
        return true;
    const char *s = cel__json_cstr(json_object_get(root, "status"));
    bool ready = s && cel_state_is_ready(cel_state_parse(s));
    json_decref(root);
    return ready;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int cel__backend_wait(struct cel_backend *bk, const char *task_id, int64_t timeout_ms,
                      char **meta_json)
{
    *meta_json = NULL;
    if (bk->ops->wait)
        return bk->ops->wait(bk, task_id, timeout_ms, meta_json);
    int64_t deadline = timeout_ms >= 0 ? cel__mono_ms() + timeout_ms : -1;
    int64_t backoff = 1;
    for (;;) {
        /* Drain before reading, so a store that lands after the read
         * leaves the fd readable for the poll below. */
        int fd = bk->ops->wakeup_fd ? bk->ops->wakeup_fd(bk) : -1;
        if (fd >= 0 && bk->ops->drain_wakeup)
            bk->ops->drain_wakeup(bk);
        char *meta = NULL;
        int rc = bk->ops->get(bk, task_id, &meta);
        if (rc != CEL_OK && rc != CEL_ENOTFOUND) {
            free(*meta_json);
            *meta_json = NULL;
            return rc;
        }
        if (meta) {
            free(*meta_json);
            *meta_json = meta;
            if (cel__meta_is_ready(meta, strlen(meta)))
                return CEL_OK;
        }
        int64_t left = deadline < 0 ? WAIT_SLICE_MS : deadline - cel__mono_ms();
        if (left <= 0)
            return cel__err(&bk->err, CEL_ETIMEDOUT, "timed out waiting for task %s", task_id);
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int n = poll(&p, 1, (int)(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS));
            if (n < 0 && errno != EINTR)
                return cel__err(&bk->err, CEL_EIO, "poll: %s", strerror(errno));
        } else {
            sleep_ms(left < backoff ? left : backoff);
            backoff = backoff * 2 > 50 ? 50 : backoff * 2;
        }
    }
}
