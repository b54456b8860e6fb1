/*
 * http_client.c - see http_client.h.
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int cel_test_http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void parse(char *data, size_t len, struct cel_test_http_resp *out)
{
    char *end = strstr(data, "\r\n\r\n");
    if (strncmp(data, "HTTP/1.", 7) != 0 || !end)
        return;
    out->status = atoi(data + 9);
    char *first = strstr(data, "\r\n") + 2;
    size_t hl = (size_t)(end + 2 - first);
    out->headers = malloc(hl + 1);
    memcpy(out->headers, first, hl);
    out->headers[hl] = '\0';
    size_t off = (size_t)(end + 4 - data);
    out->body_len = len - off;
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, end + 4, out->body_len);
    out->body[out->body_len] = '\0';
}

int cel_test_http_raw(int port, const char *raw, size_t len, struct cel_test_http_resp *out)
{
    memset(out, 0, sizeof *out);
    int fd = cel_test_http_connect(port);
    if (fd < 0)
        return -1;
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(fd, raw + sent, len - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer early (413) and stop reading */
        sent += (size_t)w;
    }
    size_t cap = 4096, n = 0;
    char *data = malloc(cap);
    for (;;) {
        if (cap - n < 2048)
            data = realloc(data, cap *= 2);
        ssize_t r = recv(fd, data + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    data[n] = '\0';
    close(fd);
    parse(data, n, out);
    free(data);
    if (!out->body) {
        out->body = calloc(1, 1);
        out->headers = calloc(1, 1);
    }
    return 0;
}

int cel_test_http(int port, const char *method, const char *path, const char *extra_headers,
                  const char *body, struct cel_test_http_resp *out)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(path) + (extra_headers ? strlen(extra_headers) : 0) + blen + 256;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s",
                     method, path, port, extra_headers ? extra_headers : "");
    if (body)
        n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) {
        memcpy(req + n, body, blen);
        n += (int)blen;
    }
    int rc = cel_test_http_raw(port, req, (size_t)n, out);
    free(req);
    return rc;
}

char *cel_test_http_header(const struct cel_test_http_resp *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(eol - v));
        }
        line = eol + 2;
    }
    return NULL;
}

void cel_test_http_release(struct cel_test_http_resp *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}
