/*
 * http_server.c - the libmicrohttpd daemon: listening, reading a request
 * (with a body cap), dispatching it to a route, the built-in /healthz,
 * and writing the response with the security headers.
 *
 * Threading: one thread per connection (MHD_USE_THREAD_PER_CONNECTION)
 * behind an internal polling thread. Handlers block on SQLite and the
 * broker; with a small pool one slow handler would stall every other
 * connection of its thread, while a thread each keeps them independent.
 * MHD_OPTION_CONNECTION_LIMIT bounds the threads.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard/http_internal.h"

#define CONNECTION_LIMIT 128u

/* ---- request accessors ---- */

const char *cel__dash_http_method(const struct cel_dash_http_req *r)
{
    return r->method;
}

const char *cel__dash_http_path(const struct cel_dash_http_req *r)
{
    return r->path;
}

const char *cel__dash_http_param(const struct cel_dash_http_req *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->params.n; i++)
        if (r->params.name_lens[i] == n && memcmp(r->params.names[i], name, n) == 0)
            return r->params.values[i];
    return NULL;
}

const char *cel__dash_http_query(const struct cel_dash_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->n_query; i++)
        if (strcmp(r->query_names[i], name) == 0)
            return r->query_values[i];
    return NULL;
}

const char *cel__dash_http_header(const struct cel_dash_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *cel__dash_http_body(const struct cel_dash_http_req *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

/* ---- request lifetime ---- */

static void req_free(struct cel_dash_http_req *req)
{
    cel__buf_release(&req->body);
    cel__dash_http_params_release(&req->params);
    for (size_t i = 0; i < req->n_query; i++) {
        free(req->query_names[i]);
        free(req->query_values[i]);
    }
    free(req);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    if (*con_cls)
        req_free(*con_cls);
    *con_cls = NULL;
}

/* Keeps the path and query undecoded: http_route.c decodes each piece
 * once, where it knows what the piece is. (libmicrohttpd has already
 * turned '+' in the query into spaces.) */
static size_t keep_escaped(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct cel_dash_http_req *req = cls;
    if (req->n_query == CEL_DASH_HTTP_MAX_QUERY) {
        req->query_error = "too many query parameters";
        return MHD_NO;
    }
    char *k = cel__dash_http_decode(key, strlen(key), true);
    char *v = cel__dash_http_decode(value ? value : "", value ? strlen(value) : 0, true);
    if (!k || !v) {
        free(k);
        free(v);
        req->query_error = "malformed query string";
        return MHD_NO;
    }
    req->query_names[req->n_query] = k;
    req->query_values[req->n_query++] = v;
    return MHD_YES;
}

/* ---- responses ---- */

static enum MHD_Result send_response(struct MHD_Connection *conn, struct cel_dash_http_resp *resp)
{
    size_t len = resp->body ? resp->len : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, resp->body ? resp->body : (void *)"",
        resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    resp->body = NULL; /* the response owns it now */
    if (resp->content_type)
        MHD_add_response_header(r, "Content-Type", resp->content_type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Content-Security-Policy", "default-src 'self'");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    for (size_t i = 0; i < resp->n_headers; i++)
        MHD_add_response_header(r, resp->names[i], resp->values[i]);
    enum MHD_Result ok = MHD_queue_response(conn, resp->status ? resp->status : 200, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    struct cel_dash_http_resp resp = {0};
    if (cel__dash_http_error(&resp, status, msg) != CEL_OK)
        return MHD_NO;
    enum MHD_Result ok = send_response(conn, &resp);
    cel__dash_http_resp_release(&resp);
    return ok;
}

/* ---- dispatch ---- */

static bool method_is(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

static void dispatch(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp)
{
    struct cel_dash_http *s = req->server;
    if (strcmp(req->path, "/healthz") == 0) {
        if (method_is("GET", req->method)) {
            static const char ok[] = "{\"status\":\"ok\"}";
            cel__dash_http_set_body(resp, "application/json", ok, sizeof ok - 1);
        } else {
            cel__dash_http_add_header(resp, "Allow", "GET, HEAD");
            cel__dash_http_error(resp, 405, "method not allowed");
        }
        return;
    }
    char allow[128] = "";
    const struct cel_dash_http_route *route = NULL;
    for (size_t i = 0; i < s->n_routes && !route; i++) {
        const struct cel_dash_http_route *r = &s->routes[i];
        if (cel__dash_http_match(r->pattern, req->path, &req->params) != 1)
            continue;
        if (method_is(r->method, req->method)) {
            route = r;
        } else {
            cel__dash_http_params_release(&req->params);
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", r->method);
        }
    }
    if (!route) {
        if (cel__dash_http_serve_static(req, resp))
            return;
        if (allow[0]) {
            cel__dash_http_add_header(resp, "Allow", allow);
            cel__dash_http_error(resp, 405, "method not allowed");
        } else {
            cel__dash_http_error(resp, 404, "not found");
        }
        return;
    }
    if (cel__dash_http_authorize(req, route->flags, resp) != 0)
        return;
    int rc = route->handler(req, resp, route->user);
    if (rc != CEL_OK) {
        /* the handler's half-built response goes: only the code is told */
        cel__dash_http_resp_release(resp);
        cel__dash_http_error(resp, 500, cel_strerror(rc));
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct cel_dash_http *s = cls;
    struct cel_dash_http_req *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->server = s;
        req->conn = conn;
        req->method = method;
        req->path = url;
        cel__buf_init(&req->body, s->max_body);
        *con_cls = req;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->max_body) {
            req->answered = true;
            return reply_error(conn, 413, "request body too large");
        }
        return MHD_YES;
    }
    if (req->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* past the cap the rest is dropped, then answered with 413 */
        if (!req->too_big && cel__buf_append(&req->body, upload_data, *upload_data_size) != CEL_OK)
            req->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->too_big)
        return reply_error(conn, 413, "request body too large");
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, req);
    if (req->query_error)
        return reply_error(conn, 400, req->query_error);
    if (!req->body.data)
        cel__buf_append(&req->body, "", 0);
    struct cel_dash_http_resp resp = {0};
    dispatch(req, &resp);
    enum MHD_Result ok = send_response(conn, &resp);
    cel__dash_http_resp_release(&resp);
    return ok;
}

/* ---- start and stop ---- */

static int parse_listen(const char *listen, struct sockaddr_storage *ss, bool *loopback,
                        struct cel_errbuf *err)
{
    char host[256];
    const char *port_text;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof host)
            goto bad;
        memcpy(host, listen + 1, (size_t)(end - listen - 1));
        host[end - listen - 1] = '\0';
        port_text = end + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof host)
            goto bad;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port_text = colon + 1;
    }
    char *end;
    unsigned long port = strtoul(port_text, &end, 10);
    if (!*port_text || *end || port > 65535)
        goto bad;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
    } else {
        goto bad;
    }
    return CEL_OK;
bad:
    return cel__err(err, CEL_ECONFIG,
                    "bad listen address '%s' (want an IP address and port, like 127.0.0.1:5555)",
                    listen);
}

static void server_free(struct cel_dash_http *s)
{
    if (!s)
        return;
    free(s->routes);
    if (s->auth_token)
        explicit_bzero(s->auth_token, strlen(s->auth_token));
    free(s->auth_token);
    free(s->basic_user);
    free(s->basic_hash);
    free(s->static_root);
    free(s->static_prefix);
    free(s);
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *oom = true;
    return d;
}

static int check_config(const struct cel_dash_http_config *cfg, struct cel_errbuf *err)
{
    if (cfg->auth_token && !cfg->auth_token[0])
        return cel__err(err, CEL_ECONFIG, "the auth token is empty");
    if (!cfg->basic_user != !cfg->basic_hash)
        return cel__err(err, CEL_ECONFIG, "basic auth needs both a user and a password hash");
    if (cfg->basic_hash && cfg->basic_hash[0] != '$')
        return cel__err(err, CEL_ECONFIG, "the basic auth password must be a crypt(3) hash");
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct cel_dash_http_route *r = &cfg->routes[i];
        if (!r->method || !r->pattern || r->pattern[0] != '/' || !r->handler)
            return cel__err(err, CEL_ECONFIG, "route %zu is incomplete", i);
    }
    return CEL_OK;
}

int cel__dash_http_start(const struct cel_dash_http_config *cfg, struct cel_dash_http **out,
                         struct cel_errbuf *err)
{
    *out = NULL;
    int rc = check_config(cfg, err);
    if (rc != CEL_OK)
        return rc;
    const char *listen = cfg->listen ? cfg->listen : CEL_DASH_HTTP_DEFAULT_LISTEN;
    struct sockaddr_storage ss;
    bool loopback = false;
    rc = parse_listen(listen, &ss, &loopback, err);
    if (rc != CEL_OK)
        return rc;
    if (!loopback && !cfg->auth_token && !cfg->basic_user)
        return cel__err(err, CEL_ECONFIG,
                        "refusing to listen on '%s' without authentication: set a token or "
                        "basic auth, or listen on a loopback address",
                        listen);

    struct cel_dash_http *s = calloc(1, sizeof *s);
    if (!s)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    bool oom = false;
    s->auth_token = dup_or_null(cfg->auth_token, &oom);
    s->basic_user = dup_or_null(cfg->basic_user, &oom);
    s->basic_hash = dup_or_null(cfg->basic_hash, &oom);
    s->static_prefix = dup_or_null(cfg->static_prefix ? cfg->static_prefix : "/static/", &oom);
    s->routes = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof *s->routes);
    if (oom || !s->routes) {
        server_free(s);
        return cel__err(err, CEL_ENOMEM, "out of memory");
    }
    if (cfg->n_routes)
        memcpy(s->routes, cfg->routes, cfg->n_routes * sizeof *s->routes);
    s->n_routes = cfg->n_routes;
    s->read_only = cfg->read_only;
    s->loopback = loopback;
    s->max_body = cfg->max_body ? cfg->max_body : CEL_DASH_HTTP_DEFAULT_MAX_BODY;
    if (cfg->static_dir) {
        s->static_root = realpath(cfg->static_dir, NULL);
        if (!s->static_root) {
            server_free(s);
            return cel__err(err, CEL_ECONFIG, "cannot open the static directory '%s'",
                            cfg->static_dir);
        }
    }
    if (cel__dash_http_random_hex(s->csrf, 32) != CEL_OK) {
        server_free(s);
        return cel__err(err, CEL_EIO, "cannot make a CSRF token");
    }

    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned timeout = cfg->timeout_s ? cfg->timeout_s : CEL_DASH_HTTP_DEFAULT_TIMEOUT_S;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                 MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                                 MHD_OPTION_NOTIFY_COMPLETED, request_completed, s,
                                 MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, s, MHD_OPTION_END);
    if (!s->daemon) {
        server_free(s);
        return cel__err(err, CEL_EIO, "cannot listen on '%s'", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return CEL_OK;
}

int cel__dash_http_port(const struct cel_dash_http *s)
{
    return s->port;
}

const char *cel__dash_http_csrf_token(const struct cel_dash_http *s)
{
    return s->csrf;
}

void cel__dash_http_stop(struct cel_dash_http *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    server_free(s);
}
