/*
 * kombu_envelope.h - a fan-out message as Python's kombu publishes it,
 * for tests that play a Python peer (an event, a broadcast).
 */
#ifndef CEL_TEST_KOMBU_ENVELOPE_H
#define CEL_TEST_KOMBU_ENVELOPE_H

/* The envelope around `body` (JSON text, sent base64) on `exchange`
 * with routing key `rk` and headers {"hostname": hostname}; caller frees. */
char *cel_test_kombu_envelope(const char *body, const char *exchange, const char *rk,
                              const char *hostname);

#endif
