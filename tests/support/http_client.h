/*
 * http_client.h - a minimal HTTP/1.1 client for tests: one request per
 * connection (Connection: close), the whole response read to EOF.
 */
#ifndef CEL_TEST_HTTP_CLIENT_H
#define CEL_TEST_HTTP_CLIENT_H

#include <stddef.h>

struct cel_test_http_resp {
    int status;    /* 0 when no status line came back */
    char *headers; /* the header lines, "Name: value\r\n" each */
    char *body;    /* NUL-terminated */
    size_t body_len;
};

/* Sends raw bytes as they are to 127.0.0.1:port and reads the response.
 * Returns 0, or -1 when the connection failed. */
int cel_test_http_raw(int port, const char *raw, size_t len, struct cel_test_http_resp *out);

/* METHOD path HTTP/1.1 with Host, Connection: close, extra_headers (each
 * line ending in "\r\n"; may be NULL) and a body with its Content-Length
 * (body may be NULL). */
int cel_test_http(int port, const char *method, const char *path, const char *extra_headers,
                  const char *body, struct cel_test_http_resp *out);

/* A response header's value (case-insensitive name); caller frees; NULL
 * when absent. */
char *cel_test_http_header(const struct cel_test_http_resp *r, const char *name);

/* A connected socket to 127.0.0.1:port, or -1. */
int cel_test_http_connect(int port);

void cel_test_http_release(struct cel_test_http_resp *r);

#endif
