/*
 * celeriac/control.h - remote control, inspection and monitoring events:
 * what `celeriac inspect|control|status|events` are built on.
 *
 *     cel_control_replies *r;
 *     cel_control_options o = CEL_CONTROL_OPTIONS_INIT(.timeout = 1.0);
 *     if (cel_control_call(client, "ping", NULL, &o, &r) == CEL_OK)
 *         for (size_t i = 0; i < cel_control_replies_count(r); i++)
 *             printf("%s: %s\n", cel_control_reply_node(r, i),
 *                    cel_control_reply_json(r, i));       // w1@host: {"ok": "pong"}
 *     cel_control_replies_free(r);
 *
 * Requests go out on Celery's broadcast mailbox (celery.pidbox) and
 * replies come back in Celery's shapes, so Python Celery workers answer
 * these calls too and `celery inspect` reaches celeriac workers. On the
 * SQLite default the same messages travel through the database file.
 *
 * Ownership: replies and the event receiver belong to the caller and are
 * freed before their client; strings they return are borrowed from them
 * until freed. Thread safety: as cel_client (one thread at a time).
 */
#ifndef CELERIAC_CONTROL_H
#define CELERIAC_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "celeriac/client.h"
#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_control_replies cel_control_replies;
typedef struct cel_event_receiver cel_event_receiver;

/* Options for one call; CEL_CONTROL_OPTIONS_INIT records the struct size
 * (the rules of cel_send_options). */
typedef struct cel_control_options {
    unsigned struct_size;
    int cast;                       /* non-zero: send without waiting for replies */
    double timeout;                 /* seconds to collect replies; 0: 1.0 (Celery's CLI) */
    const char *const *destination; /* node names; NULL: every worker */
    size_t ndestination;
    size_t limit; /* stop after this many replies; 0: ndestination or none */
} cel_control_options;

#define CEL_CONTROL_OPTIONS_INIT(...)                                                              \
    {                                                                                              \
        .struct_size = sizeof(cel_control_options), __VA_ARGS__                                    \
    }

/*
 * Broadcasts `method` with `arguments_json` (a JSON object; NULL: {}) and
 * collects replies until opts->timeout or opts->limit. *out receives the
 * replies (possibly none: CEL_OK with a count of 0, as Celery's "No nodes
 * replied"). CEL_EINVAL for bad JSON or options; CEL_ENOTSUP when the
 * broker has no broadcast; broker errors as cel_client_send.
 */
CEL_API int cel_control_call(cel_client *c, const char *method, const char *arguments_json,
                             const cel_control_options *opts, cel_control_replies **out);

CEL_API size_t cel_control_replies_count(const cel_control_replies *r);
/* The replying node ("w1@host") and its reply as JSON text, in arrival
 * order. */
CEL_API const char *cel_control_reply_node(const cel_control_replies *r, size_t i);
CEL_API const char *cel_control_reply_json(const cel_control_replies *r, size_t i);
CEL_API void cel_control_replies_free(cel_control_replies *r);

/*
 * Events: a receiver subscribed to the celeryev exchange (Celery's
 * worker-* and task-* events, from celeriac and Python workers alike).
 * `pattern` selects routing keys ("#" or NULL: all, "worker.#", ...).
 * cel_event_next waits up to timeout_ms (0: just looks) for the next
 * event and points *event_json at it (one JSON object with Celery's
 * fields plus "local_received"), borrowed until the next call;
 * CEL_ETIMEDOUT when none came.
 */
/*
 * Queues as the broker holds them (what `celeriac queues` shows).
 *
 * cel_client_queue_bands fills up to `max` bands of `queue`, lowest
 * priority value first, and says how many there are in *n: on Redis
 * kombu's four lists (priority 0, 3, 6, 9: each holds its value and the
 * two above it), on SQLite one band per priority value that has
 * messages. A band counts the messages waiting in it; messages parked
 * until an ETA are in no band on Redis, so the bands may sum to less
 * than cel_client_queue_length(), which counts everything.
 */
typedef struct cel_queue_band {
    int priority; /* the band's lowest priority value */
    size_t length;
} cel_queue_band;

CEL_API int cel_client_queue_length(cel_client *c, const char *queue, size_t *length);
CEL_API int cel_client_queue_bands(cel_client *c, const char *queue, cel_queue_band *out,
                                   size_t max, size_t *n);

/*
 * Pauses (paused non-zero) or resumes `queue` on every celeriac worker:
 * the flag is stored on the broker side, so workers started later honour
 * it too, and a broadcast `celeriac_queue_pause` {"queue", "paused"}
 * tells the running ones, which reply once they fetch no more from the
 * queue and gave back the messages they held from it. The call waits 1 s
 * for those replies, so a task sent after it returns does not run on a
 * running worker while the queue is paused. Messages sent meanwhile wait
 * on the queue.
 * Python workers know nothing of it (use cancel_consumer for them).
 * CEL_ENOTSUP when the transport keeps no such flag.
 */
CEL_API int cel_client_queue_pause(cel_client *c, const char *queue, int paused);
/* The paused queues: *names (NULL when none) and *n; free the array and
 * its strings with cel_client_names_free(). */
CEL_API int cel_client_paused_queues(cel_client *c, char ***names, size_t *n);
CEL_API void cel_client_names_free(char **names, size_t n);

CEL_API int cel_event_receiver_open(cel_client *c, const char *pattern, cel_event_receiver **out);
CEL_API int cel_event_next(cel_event_receiver *r, int64_t timeout_ms, const char **event_json);
CEL_API void cel_event_receiver_free(cel_event_receiver *r);

#ifdef __cplusplus
}
#endif
#endif
