/*
 * http.h - the dashboard's HTTP layer over libmicrohttpd: a route table,
 * request and response accessors, authentication (bearer token or basic
 * with a crypt(3) hash), CSRF and Origin checks, read-only mode, static
 * files and the built-in /healthz.
 *
 * Security model:
 *  - The server listens on loopback unless told otherwise, and refuses a
 *    non-loopback address when no authentication is configured.
 *  - With authentication configured, every route but PUBLIC ones needs it
 *    (MUTATING ones included). Without it (loopback only) MUTATING routes
 *    are allowed: whoever can reach a loopback port already runs code on
 *    the machine; read-only mode turns them off.
 *  - Read-only mode answers 403 on every MUTATING route.
 *  - A MUTATING request must carry X-Celeriac-CSRF equal to the server's
 *    token (cel__dash_http_csrf_token(), served to pages) unless it has a
 *    valid bearer token, or valid basic credentials and no Origin header
 *    (a script: browsers send Origin on every POST, and they replay
 *    cached basic credentials on their own, bearer tokens never). Every MUTATING
 *    request with an Origin header must come from the Host it names, and
 *    on loopback the Host must be a loopback name (DNS rebinding).
 *  - Static files need no authentication: they are the front end as
 *    installed (code, styles), never data; pages and the API are routes.
 *  - Secrets (token, passwords, hashes) are never logged nor echoed.
 *
 * Handlers run on libmicrohttpd's threads, several at once: they must be
 * thread-safe with respect to their user data.
 */
#ifndef CEL_DASHBOARD_HTTP_H
#define CEL_DASHBOARD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/errbuf.h"

#define CEL_DASH_HTTP_DEFAULT_LISTEN    "127.0.0.1:5555"
#define CEL_DASH_HTTP_DEFAULT_MAX_BODY  (1024u * 1024u)
#define CEL_DASH_HTTP_DEFAULT_TIMEOUT_S 30u
#define CEL_DASH_HTTP_CSRF_HEADER       "X-Celeriac-CSRF"
#define CEL_DASH_HTTP_MAX_PARAMS        8

/* Route flags. */
#define CEL_DASH_HTTP_MUTATING 1u /* changes state: auth, CSRF, read-only */
#define CEL_DASH_HTTP_PUBLIC   2u /* no authentication needed */

struct cel_dash_http;      /* a running server */
struct cel_dash_http_req;  /* one request, valid during the handler */
struct cel_dash_http_resp; /* its response, filled by the handler */

/* Fills resp (status 200 and an empty body when untouched). Returns
 * CEL_OK, or a negative code: the client then gets a 500 JSON error. */
typedef int (*cel_dash_http_handler)(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp,
                                     void *user);

struct cel_dash_http_route {
    const char *method;  /* "GET", "POST", ...; GET also answers HEAD */
    const char *pattern; /* "/api/task/info/{id}": {name} is one segment */
    cel_dash_http_handler handler;
    void *user;
    unsigned flags; /* CEL_DASH_HTTP_MUTATING | CEL_DASH_HTTP_PUBLIC */
};

struct cel_dash_http_config {
    const char *listen;     /* "host:port", "[::1]:port"; NULL: default */
    const char *auth_token; /* bearer token; NULL: none */
    const char *basic_user; /* basic auth user, with basic_hash */
    const char *basic_hash; /* crypt(3) hash (cel__dash_http_hash_password) */
    bool read_only;
    const char *static_dir;                   /* NULL: no static files */
    const char *static_prefix;                /* URL prefix of static files; NULL: "/static/" */
    size_t max_body;                          /* 0: CEL_DASH_HTTP_DEFAULT_MAX_BODY */
    unsigned timeout_s;                       /* idle connection timeout; 0: default */
    const struct cel_dash_http_route *routes; /* copied; strings must outlive the server */
    size_t n_routes;
};

/* Starts serving. Fails with CEL_ECONFIG (non-loopback without auth, a
 * bad address or route) or CEL_EIO (cannot bind). */
int cel__dash_http_start(const struct cel_dash_http_config *cfg, struct cel_dash_http **out,
                         struct cel_errbuf *err);
/* The bound port (useful after listening on port 0). */
int cel__dash_http_port(const struct cel_dash_http *s);
/* The per-server CSRF token pages send back in X-Celeriac-CSRF. */
const char *cel__dash_http_csrf_token(const struct cel_dash_http *s);
/* Stops accepting, closes connections, waits for handlers; frees s. */
void cel__dash_http_stop(struct cel_dash_http *s);

/* Request accessors; strings live until the handler returns. */
const char *cel__dash_http_method(const struct cel_dash_http_req *r);
const char *cel__dash_http_path(const struct cel_dash_http_req *r); /* undecoded */
/* A {name} of the route, percent-decoded; NULL when absent. */
const char *cel__dash_http_param(const struct cel_dash_http_req *r, const char *name);
/* A query parameter, percent-decoded ('+' is a space); NULL when absent. */
const char *cel__dash_http_query(const struct cel_dash_http_req *r, const char *name);
const char *cel__dash_http_header(const struct cel_dash_http_req *r, const char *name);
/* The body (NUL-terminated, "" when none). */
const char *cel__dash_http_body(const struct cel_dash_http_req *r, size_t *len);

/* Building the response; each returns CEL_OK or CEL_ENOMEM. */
void cel__dash_http_status(struct cel_dash_http_resp *resp, unsigned status);
int cel__dash_http_set_body(struct cel_dash_http_resp *resp, const char *content_type,
                            const void *body, size_t len);
/* Dumps json (not stolen) as the body, application/json; CEL_EINVAL when
 * json is NULL. */
int cel__dash_http_json(struct cel_dash_http_resp *resp, unsigned status, const json_t *json);
/* {"error": message} with the status. */
int cel__dash_http_error(struct cel_dash_http_resp *resp, unsigned status, const char *message);
int cel__dash_http_add_header(struct cel_dash_http_resp *resp, const char *name, const char *value);

/* Writes a yescrypt hash of password to out (room for CRYPT_OUTPUT_SIZE,
 * 384 bytes), for the basic_hash setting. */
int cel__dash_http_hash_password(const char *password, char *out, size_t outlen,
                                 struct cel_errbuf *err);

/* Pure functions, exposed for tests and fuzzing. */

struct cel_dash_http_params {
    size_t n;
    char *names[CEL_DASH_HTTP_MAX_PARAMS]; /* point into the pattern */
    size_t name_lens[CEL_DASH_HTTP_MAX_PARAMS];
    char *values[CEL_DASH_HTTP_MAX_PARAMS]; /* decoded, owned */
};
/* Whether path (no query) matches pattern; params get the decoded
 * {name} segments (release them with cel__dash_http_params_release()).
 * Returns 1 on a match, 0 on none, CEL_ENOMEM. */
int cel__dash_http_match(const char *pattern, const char *path, struct cel_dash_http_params *p);
void cel__dash_http_params_release(struct cel_dash_http_params *p);
/* Percent-decodes s[0..n) ('+' a space when plus_space); NULL when it
 * holds a bad escape or an encoded NUL, or on OOM. Caller frees. */
char *cel__dash_http_decode(const char *s, size_t n, bool plus_space);
/* Turns the undecoded path below the static prefix into a relative file
 * path safe to open under the root: decoded, no "..", ".", empty or
 * hidden segments, no backslash, no leading '/'. CEL_EINVAL otherwise. */
int cel__dash_http_static_path(const char *raw, char *out, size_t outlen);
/* Whether a equals b, in a time that depends on b's length only (b is
 * the secret). */
bool cel__dash_http_consttime_eq(const char *a, const char *b);

#endif
