/*
 * fanout.h - what every transport's fan-out (broker.h) shares: the
 * routing-key pattern rule, and a subscriber's inbox.
 *
 * Pattern rule: '#' and '*' match any run of characters (kombu binds
 * fanout queues on Redis by PSUBSCRIBE with '#' rewritten to '*', a glob
 * that also crosses dots); every other character matches itself. So "#"
 * and "*" match every routing key including "", "worker.#" every key
 * that starts with "worker.", and "task.sent" only itself.
 *
 * Inbox: a bounded FIFO of received messages behind an eventfd, filled by
 * publishers or a transport's I/O thread and drained by fanout_poll() on
 * the subscriber's thread. All functions are thread-safe. A subscriber
 * that stops polling loses the oldest messages once the inbox holds
 * CEL_FANOUT_INBOX_MAX messages or CEL_FANOUT_INBOX_BYTES bytes (fan-out
 * is lossy by contract: events and broadcasts, never tasks); the loss is
 * logged once per episode, with the total when polling resumes.
 */
#ifndef CEL_BROKER_FANOUT_H
#define CEL_BROKER_FANOUT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker/broker.h"

#define CEL_FANOUT_INBOX_MAX   10000
#define CEL_FANOUT_INBOX_BYTES (64u * 1024 * 1024)

/* Whether routing key rk[0..rklen) matches `pattern` (the rule above). */
bool cel__fanout_match(const char *pattern, const char *rk, size_t rklen);

struct cel_fanout_inbox {
    pthread_mutex_t mu;
    struct cel_fanout_msg *v; /* ring: v[(head + i) % cap], i < n */
    size_t head, n, cap;
    size_t bytes;     /* body bytes held */
    size_t dropped;   /* lost in the current overflow episode */
    const char *what; /* for log lines: "fan-out subscription to 'celeryev'" */
    const char *comp; /* log component */
    int efd;          /* readable while messages may be waiting */
};

/* `what` and `comp` are borrowed for the inbox's life. */
int cel__fanout_inbox_init(struct cel_fanout_inbox *in, const char *comp, const char *what,
                           struct cel_errbuf *err);
void cel__fanout_inbox_release(struct cel_fanout_inbox *in);

/* Copies one message in and signals the eventfd. CEL_ENOMEM (the message
 * is lost). */
int cel__fanout_inbox_push(struct cel_fanout_inbox *in, const char *exchange, const char *rk,
                           size_t rklen, const char *body, size_t len);

/* Moves up to `max` messages, oldest first, to out (caller releases each
 * with cel__fanout_msg_release()); *n gets the count. The eventfd stays
 * readable while messages remain. Never blocks beyond the inbox lock. */
void cel__fanout_inbox_take(struct cel_fanout_inbox *in, struct cel_fanout_msg *out, size_t max,
                            size_t *n);

#endif
