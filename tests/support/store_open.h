/*
 * store_open.h - a transport or result store opened by URL for a test,
 * or the test fails saying which URL and why.
 */
#ifndef CEL_TEST_STORE_OPEN_H
#define CEL_TEST_STORE_OPEN_H

#include "backend/backend.h"
#include "broker/broker.h"

struct cel_broker *cel_test_open_broker(const char *url);
struct cel_backend *cel_test_open_backend(const char *url);

#endif
