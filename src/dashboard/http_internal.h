/*
 * http_internal.h - what the files of the HTTP layer share: the server,
 * request and response structs, and the steps the dispatcher runs.
 */
#ifndef CEL_DASHBOARD_HTTP_INTERNAL_H
#define CEL_DASHBOARD_HTTP_INTERNAL_H

#include <microhttpd.h>

#include "core/buf.h"
#include "dashboard/http.h"

#define CEL_DASH_HTTP_MAX_HEADERS 8
#define CEL_DASH_HTTP_MAX_QUERY   32

struct cel_dash_http {
    struct MHD_Daemon *daemon;
    struct cel_dash_http_route *routes;
    size_t n_routes;
    char *auth_token;
    char *basic_user;
    char *basic_hash;
    char *static_root; /* realpath of static_dir; NULL: none */
    char *static_prefix;
    size_t max_body;
    bool read_only;
    bool loopback;
    int port;
    char csrf[65]; /* 32 random bytes, hex */
};

struct cel_dash_http_req {
    struct cel_dash_http *server;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    struct cel_buf body;
    bool too_big;
    bool answered; /* a response is queued; ignore what follows */
    struct cel_dash_http_params params;
    size_t n_query;          /* decoded query parameters */
    const char *query_error; /* why the query string was refused */
    char *query_names[CEL_DASH_HTTP_MAX_QUERY];
    char *query_values[CEL_DASH_HTTP_MAX_QUERY];
};

struct cel_dash_http_resp {
    unsigned status;
    char *content_type;
    char *body;
    size_t len;
    size_t n_headers;
    char *names[CEL_DASH_HTTP_MAX_HEADERS];
    char *values[CEL_DASH_HTTP_MAX_HEADERS];
};

void cel__dash_http_resp_release(struct cel_dash_http_resp *resp);

/* Authorization for a route: 0 to go on, else the status already written
 * to resp (401, 403). */
unsigned cel__dash_http_authorize(struct cel_dash_http_req *req, unsigned flags,
                                  struct cel_dash_http_resp *resp);

/* Serves a static file when path is below the prefix: true when handled. */
bool cel__dash_http_serve_static(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp);

/* Fills buf with n random bytes as hex (2n + 1 bytes). */
int cel__dash_http_random_hex(char *buf, size_t n);

#endif
