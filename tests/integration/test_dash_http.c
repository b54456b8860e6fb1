/*
 * test_dash_http.c - the dashboard's HTTP layer over real sockets: routes
 * and parameters, errors, the body cap, authentication, CSRF, read-only
 * mode, static files, /healthz, concurrency and stopping.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base64.h"
#include "dashboard/http.h"
#include "http_client.h"
#include "testing.h"

/* GET /api/task/info/{id}: the parameter, two query values and a header
 * back as JSON. */
static int echo_info(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp, void *user)
{
    (void)user;
    const char *limit = cel__dash_http_query(req, "limit");
    const char *name = cel__dash_http_query(req, "name");
    const char *hdr = cel__dash_http_header(req, "X-Test");
    json_t *obj = json_pack("{s:s?, s:s?, s:s?, s:s?}", "id", cel__dash_http_param(req, "id"),
                            "limit", limit, "name", name, "header", hdr);
    int rc = cel__dash_http_json(resp, 200, obj);
    json_decref(obj);
    return rc;
}

/* POST /api/echo (MUTATING): the body back as text. */
static int echo_body(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp, void *user)
{
    (void)user;
    size_t len;
    const char *body = cel__dash_http_body(req, &len);
    cel__dash_http_status(resp, 201);
    return cel__dash_http_set_body(resp, "text/plain", body, len);
}

static int failing(struct cel_dash_http_req *req, struct cel_dash_http_resp *resp, void *user)
{
    (void)req;
    (void)user;
    cel__dash_http_set_body(resp, "text/plain", "half", 4);
    return CEL_EIO;
}

static const struct cel_dash_http_route routes[] = {
    {"GET", "/api/task/info/{id}", echo_info, NULL, 0},
    {"POST", "/api/echo", echo_body, NULL, CEL_DASH_HTTP_MUTATING},
    {"DELETE", "/api/echo", echo_body, NULL, CEL_DASH_HTTP_MUTATING},
    {"GET", "/api/fail", failing, NULL, 0},
    {"GET", "/api/public/{a}/{b}", echo_info, NULL, CEL_DASH_HTTP_PUBLIC},
};

static struct cel_dash_http *start(struct cel_dash_http_config *cfg)
{
    cfg->listen = cfg->listen ? cfg->listen : "127.0.0.1:0";
    cfg->routes = routes;
    cfg->n_routes = sizeof routes / sizeof routes[0];
    struct cel_dash_http *s;
    struct cel_errbuf err = {{0}};
    int rc = cel__dash_http_start(cfg, &s, &err);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "start: %d %s", rc, err.msg);
    ASSERT(cel__dash_http_port(s) > 0);
    return s;
}

static int status_of(int port, const char *method, const char *path, const char *headers,
                     const char *body)
{
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, method, path, headers, body, &r));
    int status = r.status;
    cel_test_http_release(&r);
    return status;
}

static void test_routing_and_params(void)
{
    struct cel_dash_http_config cfg = {0};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, "GET", "/api/task/info/a%2Fb%20c?limit=5&name=x+y%26z",
                            "X-Test: hello\r\n", NULL, &r));
    ASSERT_EQ(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    ASSERT(j);
    ASSERT_STREQ(json_string_value(json_object_get(j, "id")), "a/b c");
    ASSERT_STREQ(json_string_value(json_object_get(j, "limit")), "5");
    ASSERT_STREQ(json_string_value(json_object_get(j, "name")), "x y&z");
    ASSERT_STREQ(json_string_value(json_object_get(j, "header")), "hello");
    json_decref(j);
    char *ct = cel_test_http_header(&r, "Content-Type");
    ASSERT_STREQ(ct, "application/json");
    free(ct);
    char *nosniff = cel_test_http_header(&r, "X-Content-Type-Options");
    char *frame = cel_test_http_header(&r, "X-Frame-Options");
    char *csp = cel_test_http_header(&r, "Content-Security-Policy");
    ASSERT_STREQ(nosniff, "nosniff");
    ASSERT_STREQ(frame, "DENY");
    ASSERT_STREQ(csp, "default-src 'self'");
    free(nosniff);
    free(frame);
    free(csp);
    cel_test_http_release(&r);

    /* two parameters, a public route */
    ASSERT_OK(cel_test_http(port, "GET", "/api/public/one/two", NULL, NULL, &r));
    ASSERT_EQ(r.status, 200);
    cel_test_http_release(&r);

    /* a segment more or less, or an empty parameter, is no match */
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/", NULL, NULL), 404);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/a/b", NULL, NULL), 404);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info", NULL, NULL), 404);
    /* a bad escape in the query is a client error */
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/x?limit=%zz", NULL, NULL), 400);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/x?limit=a%00b", NULL, NULL), 400);
    char many[512] = "/api/task/info/x?";
    for (int i = 0; i < 40; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "k%d=v&", i);
    ASSERT_OK(cel_test_http(port, "GET", many, NULL, NULL, &r));
    ASSERT_EQ(r.status, 400);
    ASSERT_CONTAINS(r.body, "too many query parameters");
    cel_test_http_release(&r);
    /* HEAD answers like GET, without a body */
    ASSERT_OK(cel_test_http(port, "HEAD", "/api/task/info/x", NULL, NULL, &r));
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body_len, 0);
    cel_test_http_release(&r);
    cel__dash_http_stop(s);
}

static void test_errors_are_json(void)
{
    struct cel_dash_http_config cfg = {0};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, "GET", "/nope", NULL, NULL, &r));
    ASSERT_EQ(r.status, 404);
    ASSERT_STREQ(r.body, "{\"error\":\"not found\"}");
    cel_test_http_release(&r);

    ASSERT_OK(cel_test_http(port, "PUT", "/api/echo", NULL, "x", &r));
    ASSERT_EQ(r.status, 405);
    ASSERT_CONTAINS(r.body, "method not allowed");
    char *allow = cel_test_http_header(&r, "Allow");
    ASSERT_STREQ(allow, "POST, DELETE");
    free(allow);
    cel_test_http_release(&r);

    /* a failing handler: 500 with the code's text, not its half body */
    ASSERT_OK(cel_test_http(port, "GET", "/api/fail", NULL, NULL, &r));
    ASSERT_EQ(r.status, 500);
    ASSERT_CONTAINS(r.body, "input/output error");
    ASSERT(!strstr(r.body, "half"));
    cel_test_http_release(&r);
    cel__dash_http_stop(s);
}

static void test_healthz(void)
{
    struct cel_dash_http_config cfg = {.auth_token = "sekrit-token"};
    struct cel_dash_http *s = start(&cfg);
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(cel__dash_http_port(s), "GET", "/healthz", NULL, NULL, &r));
    ASSERT_EQ(r.status, 200); /* public even with auth on */
    ASSERT_STREQ(r.body, "{\"status\":\"ok\"}");
    cel_test_http_release(&r);
    ASSERT_EQ(status_of(cel__dash_http_port(s), "POST", "/healthz", NULL, ""), 405);
    cel__dash_http_stop(s);
}

static void test_body_limit(void)
{
    struct cel_dash_http_config cfg = {.max_body = 1024};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "X-Celeriac-CSRF: %s\r\n", cel__dash_http_csrf_token(s));

    char small[1001], big[2001];
    memset(small, 'a', 1000);
    small[1000] = '\0';
    memset(big, 'b', 2000);
    big[2000] = '\0';
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, "POST", "/api/echo", hdr, small, &r));
    ASSERT_EQ(r.status, 201);
    ASSERT_EQ(r.body_len, 1000);
    cel_test_http_release(&r);

    /* announced too big: refused before the body is read */
    ASSERT_OK(cel_test_http(port, "POST", "/api/echo", hdr, big, &r));
    ASSERT_EQ(r.status, 413);
    ASSERT_CONTAINS(r.body, "too large");
    cel_test_http_release(&r);

    /* chunked, so the size shows only while reading */
    char raw[4096];
    int n =
        snprintf(raw, sizeof raw,
                 "POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                 "Transfer-Encoding: chunked\r\n\r\n320\r\n%.800s\r\n320\r\n%.800s\r\n0\r\n\r\n",
                 hdr, big, big);
    ASSERT_OK(cel_test_http_raw(port, raw, (size_t)n, &r));
    ASSERT_EQ(r.status, 413);
    cel_test_http_release(&r);
    cel__dash_http_stop(s);
}

static void test_token_auth(void)
{
    struct cel_dash_http_config cfg = {.auth_token = "t0ken-value"};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, "GET", "/api/task/info/1", NULL, NULL, &r));
    ASSERT_EQ(r.status, 401);
    ASSERT_CONTAINS(r.body, "authentication required");
    cel_test_http_release(&r);
    ASSERT_OK(cel_test_http(port, "GET", "/api/task/info/1",
                            "Authorization: Bearer t0ken-valuX\r\n", NULL, &r));
    ASSERT_EQ(r.status, 401);
    ASSERT(!strstr(r.body, "t0ken")); /* never echoed */
    cel_test_http_release(&r);
    ASSERT_EQ(
        status_of(port, "GET", "/api/task/info/1", "Authorization: Bearer t0ken-val\r\n", NULL),
        401);
    ASSERT_EQ(
        status_of(port, "GET", "/api/task/info/1", "Authorization: Bearer t0ken-value\r\n", NULL),
        200);
    /* mutating: a bearer token needs no CSRF token; no token is refused */
    ASSERT_EQ(status_of(port, "POST", "/api/echo", "Authorization: Bearer t0ken-value\r\n", "x"),
              201);
    ASSERT_EQ(status_of(port, "POST", "/api/echo", NULL, "x"), 401);
    /* public routes stay open */
    ASSERT_EQ(status_of(port, "GET", "/api/public/a/b", NULL, NULL), 200);
    cel__dash_http_stop(s);
}

static char *basic_header(const char *user_pass)
{
    size_t n = strlen(user_pass);
    char *out = malloc(64 + cel__base64_encoded_len(n));
    size_t at = (size_t)sprintf(out, "Authorization: Basic ");
    cel__base64_encode((const unsigned char *)user_pass, n, out + at);
    strcat(out, "\r\n");
    return out;
}

static void test_basic_auth(void)
{
    char hash[384];
    struct cel_errbuf err = {{0}};
    ASSERT_OK(cel__dash_http_hash_password("correct horse", hash, sizeof hash, &err));
    ASSERT(strncmp(hash, "$y$", 3) == 0);
    ASSERT(!strstr(hash, "correct"));
    char again[384];
    ASSERT_OK(cel__dash_http_hash_password("correct horse", again, sizeof again, &err));
    ASSERT(strcmp(hash, again) != 0); /* salted */

    struct cel_dash_http_config cfg = {.basic_user = "admin", .basic_hash = hash};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    char *good = basic_header("admin:correct horse");
    char *wrong = basic_header("admin:correct hors");
    char *user = basic_header("root:correct horse");
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, "GET", "/api/task/info/1", NULL, NULL, &r));
    ASSERT_EQ(r.status, 401);
    char *www = cel_test_http_header(&r, "WWW-Authenticate");
    ASSERT_CONTAINS(www, "Basic");
    free(www);
    cel_test_http_release(&r);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/1", good, NULL), 200);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/1", wrong, NULL), 401);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/1", user, NULL), 401);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/1", "Authorization: Basic !!!\r\n", NULL),
              401);
    /* a script (no Origin) may mutate with basic credentials; a browser
     * (Origin) must also send the CSRF token */
    ASSERT_EQ(status_of(port, "POST", "/api/echo", good, "x"), 201);
    char hdrs[512];
    snprintf(hdrs, sizeof hdrs, "%sOrigin: http://127.0.0.1:%d\r\n", good, port);
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdrs, "x"), 403);
    snprintf(hdrs, sizeof hdrs, "%sOrigin: http://127.0.0.1:%d\r\nX-Celeriac-CSRF: %s\r\n", good,
             port, cel__dash_http_csrf_token(s));
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdrs, "x"), 201);
    free(good);
    free(wrong);
    free(user);
    cel__dash_http_stop(s);

    /* a plain password where a hash belongs is refused */
    struct cel_dash_http *bad;
    cfg.basic_hash = "correct horse";
    cfg.routes = routes;
    ASSERT_EQ(cel__dash_http_start(&cfg, &bad, &err), CEL_ECONFIG);
    ASSERT(!strstr(err.msg, "correct horse"));
}

static void test_non_loopback_needs_auth(void)
{
    struct cel_dash_http_config cfg = {.listen = "0.0.0.0:0"};
    struct cel_dash_http *s = NULL;
    struct cel_errbuf err = {{0}};
    ASSERT_EQ(cel__dash_http_start(&cfg, &s, &err), CEL_ECONFIG);
    ASSERT(s == NULL);
    ASSERT_CONTAINS(err.msg, "without authentication");
    ASSERT_EQ(cel__dash_http_start(&(struct cel_dash_http_config){.listen = "nonsense"}, &s, &err),
              CEL_ECONFIG);
    ASSERT_CONTAINS(err.msg, "bad listen address");
    ASSERT_EQ(
        cel__dash_http_start(&(struct cel_dash_http_config){.listen = "127.0.0.1:99999"}, &s, &err),
        CEL_ECONFIG);
    ASSERT_EQ(cel__dash_http_start(&(struct cel_dash_http_config){.listen = "[::]:0"}, &s, &err),
              CEL_ECONFIG);
    ASSERT_CONTAINS(err.msg, "without authentication");
    /* IPv6 loopback needs none, and answers */
    struct cel_dash_http *v6 = start(&(struct cel_dash_http_config){.listen = "[::1]:0"});
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                              .sin6_port = htons((uint16_t)cel__dash_http_port(v6)),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
    const char *get = "GET /healthz HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n";
    ASSERT(send(fd, get, strlen(get), MSG_NOSIGNAL) > 0);
    char reply[512] = "";
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(fd);
    ASSERT_CONTAINS(reply, "HTTP/1.1 200");
    ASSERT_CONTAINS(reply, "{\"status\":\"ok\"}");
    cel__dash_http_stop(v6);
    /* a port in use */
    struct cel_dash_http *first = start(&(struct cel_dash_http_config){0});
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", cel__dash_http_port(first));
    ASSERT_EQ(cel__dash_http_start(&(struct cel_dash_http_config){.listen = taken}, &s, &err),
              CEL_EIO);
    ASSERT_CONTAINS(err.msg, "cannot listen");
    cel__dash_http_stop(first);
    /* with a token it starts */
    cfg.auth_token = "tok";
    s = start(&cfg);
    ASSERT_EQ(status_of(cel__dash_http_port(s), "GET", "/api/task/info/1",
                        "Authorization: Bearer tok\r\n", NULL),
              200);
    cel__dash_http_stop(s);
}

static void test_read_only(void)
{
    struct cel_dash_http_config cfg = {.read_only = true};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "X-Celeriac-CSRF: %s\r\n", cel__dash_http_csrf_token(s));
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http(port, "POST", "/api/echo", hdr, "x", &r));
    ASSERT_EQ(r.status, 403);
    ASSERT_CONTAINS(r.body, "read-only");
    cel_test_http_release(&r);
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/1", NULL, NULL), 200);
    cel__dash_http_stop(s);

    /* read-only holds with auth too */
    cfg.auth_token = "tok";
    s = start(&cfg);
    ASSERT_EQ(status_of(cel__dash_http_port(s), "DELETE", "/api/echo",
                        "Authorization: Bearer tok\r\n", NULL),
              403);
    cel__dash_http_stop(s);
}

static void test_csrf(void)
{
    struct cel_dash_http_config cfg = {0};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    const char *token = cel__dash_http_csrf_token(s);
    ASSERT_EQ(strlen(token), 64);
    char hdr[512];
    ASSERT_EQ(status_of(port, "POST", "/api/echo", NULL, "x"), 403);
    ASSERT_EQ(status_of(port, "POST", "/api/echo", "X-Celeriac-CSRF: nope\r\n", "x"), 403);
    snprintf(hdr, sizeof hdr, "X-Celeriac-CSRF: %.63s\r\n", token); /* one short */
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdr, "x"), 403);
    snprintf(hdr, sizeof hdr, "X-Celeriac-CSRF: %s\r\n", token);
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdr, "x"), 201);
    /* a forged Authorization header does not skip the check */
    snprintf(hdr, sizeof hdr, "Authorization: Bearer x\r\n");
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdr, "x"), 403);
    /* same origin passes, another origin does not */
    snprintf(hdr, sizeof hdr, "X-Celeriac-CSRF: %s\r\nOrigin: http://127.0.0.1:%d\r\n", token,
             port);
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdr, "x"), 201);
    snprintf(hdr, sizeof hdr, "X-Celeriac-CSRF: %s\r\nOrigin: http://evil.example\r\n", token);
    ASSERT_EQ(status_of(port, "POST", "/api/echo", hdr, "x"), 403);
    /* a rebinding name in Host is refused on loopback */
    char raw[512];
    int n = snprintf(raw, sizeof raw,
                     "POST /api/echo HTTP/1.1\r\nHost: evil.example:%d\r\nConnection: close\r\n"
                     "X-Celeriac-CSRF: %s\r\nContent-Length: 1\r\n\r\nx",
                     port, token);
    struct cel_test_http_resp r;
    ASSERT_OK(cel_test_http_raw(port, raw, (size_t)n, &r));
    ASSERT_EQ(r.status, 403);
    ASSERT_CONTAINS(r.body, "Host");
    cel_test_http_release(&r);
    /* reads need none of it */
    ASSERT_EQ(status_of(port, "GET", "/api/task/info/1", NULL, NULL), 200);
    cel__dash_http_stop(s);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static void test_static_files(void)
{
    ASSERT_OK(mkdir("www", 0755));
    ASSERT_OK(mkdir("www/sub", 0755));
    write_file("www/index.html", "<html>hi</html>");
    write_file("www/app.js", "console.log(1)");
    write_file("www/sub/data.json", "{}");
    write_file("www/.hidden", "hidden");
    write_file("secret.txt", "TOPSECRET");
    ASSERT_OK(symlink("../secret.txt", "www/link.txt"));
    struct cel_dash_http_config cfg = {.static_dir = "www"};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    struct cel_test_http_resp r;

    ASSERT_OK(cel_test_http(port, "GET", "/static/index.html", NULL, NULL, &r));
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body, "<html>hi</html>");
    char *ct = cel_test_http_header(&r, "Content-Type");
    ASSERT_STREQ(ct, "text/html; charset=utf-8");
    free(ct);
    char *etag = cel_test_http_header(&r, "ETag");
    ASSERT(etag && etag[0] == '"');
    cel_test_http_release(&r);

    char hdr[256];
    snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
    ASSERT_OK(cel_test_http(port, "GET", "/static/index.html", hdr, NULL, &r));
    ASSERT_EQ(r.status, 304);
    ASSERT_EQ(r.body_len, 0);
    cel_test_http_release(&r);
    ASSERT_EQ(status_of(port, "GET", "/static/index.html", "If-None-Match: \"other\"\r\n", NULL),
              200);
    free(etag);

    ASSERT_OK(cel_test_http(port, "GET", "/static/app.js", NULL, NULL, &r));
    ct = cel_test_http_header(&r, "Content-Type");
    ASSERT_STREQ(ct, "text/javascript; charset=utf-8");
    free(ct);
    cel_test_http_release(&r);
    ASSERT_OK(cel_test_http(port, "GET", "/static/sub/data.json", NULL, NULL, &r));
    ASSERT_EQ(r.status, 200);
    ct = cel_test_http_header(&r, "Content-Type");
    ASSERT_STREQ(ct, "application/json");
    free(ct);
    cel_test_http_release(&r);
    ASSERT_EQ(status_of(port, "GET", "/static/missing.css", NULL, NULL), 404);
    ASSERT_EQ(status_of(port, "POST", "/static/index.html", NULL, ""), 405);

    static const char *const attacks[] = {
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/sub/..%2f..%2fsecret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/link.txt",
        "/static/index.html%00.js",
        "/static/..%5csecret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/.hidden",
        "/static/sub/./data.json",
        "/static/sub/",
        "/static/..",
        "/static/sub/../../secret.txt",
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/sub%2f..%2f..%2fsecret.txt",
    };
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        ASSERT_OK(cel_test_http(port, "GET", attacks[i], NULL, NULL, &r));
        if (r.status != 403 && r.status != 404)
            cel_test_fail(__FILE__, __LINE__, "%s: status %d", attacks[i], r.status);
        ASSERT(!strstr(r.body, "TOPSECRET") && !strstr(r.body, "root:"));
        cel_test_http_release(&r);
    }
    cel__dash_http_stop(s);
}

struct client_arg {
    int port;
    int index;
    int status;
    bool id_ok;
};

static void *one_client(void *p)
{
    struct client_arg *a = p;
    char path[64], want[64];
    snprintf(path, sizeof path, "/api/task/info/task-%d", a->index);
    snprintf(want, sizeof want, "\"id\":\"task-%d\"", a->index);
    struct cel_test_http_resp r;
    if (cel_test_http(a->port, "GET", path, NULL, NULL, &r) == 0) {
        a->status = r.status;
        a->id_ok = strstr(r.body, want) != NULL;
        cel_test_http_release(&r);
    }
    return NULL;
}

static void test_concurrent_requests(void)
{
    struct cel_dash_http_config cfg = {0};
    struct cel_dash_http *s = start(&cfg);
    enum { N = 50 };
    pthread_t threads[N];
    struct client_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (struct client_arg){.port = cel__dash_http_port(s), .index = i};
        ASSERT_OK(pthread_create(&threads[i], NULL, one_client, &args[i]));
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        ASSERT_EQ(args[i].status, 200);
        ASSERT(args[i].id_ok);
    }
    cel__dash_http_stop(s);
}

static void test_idle_timeout(void)
{
    struct cel_dash_http_config cfg = {.timeout_s = 1};
    struct cel_dash_http *s = start(&cfg);
    int fd = cel_test_http_connect(cel__dash_http_port(s));
    ASSERT(fd >= 0);
    const char *half = "GET /healthz HTTP/1.1\r\n";
    ASSERT(send(fd, half, strlen(half), MSG_NOSIGNAL) > 0);
    int64_t t0 = cel_test_now_ms();
    char buf[256];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    int64_t waited = cel_test_now_ms() - t0;
    ASSERT(n == 0 || errno == ECONNRESET); /* closed by the server */
    ASSERT(waited >= 500 && waited < 10000);
    close(fd);
    cel__dash_http_stop(s);
}

static void test_stop_with_clients_connected(void)
{
    struct cel_dash_http_config cfg = {0};
    struct cel_dash_http *s = start(&cfg);
    int port = cel__dash_http_port(s);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = cel_test_http_connect(port);
        ASSERT(fds[i] >= 0);
    }
    /* two idle, one half a request, one a keep-alive that was answered */
    const char *half = "GET /api/task/info/1 HTTP/1.1\r\nHost: 127";
    ASSERT(send(fds[2], half, strlen(half), MSG_NOSIGNAL) > 0);
    const char *full = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ASSERT(send(fds[3], full, strlen(full), MSG_NOSIGNAL) > 0);
    char buf[512];
    ASSERT(recv(fds[3], buf, sizeof buf, 0) > 0);
    cel_test_sleep_ms(100);
    int64_t t0 = cel_test_now_ms();
    cel__dash_http_stop(s);
    ASSERT(cel_test_now_ms() - t0 < 5000);
    for (int i = 0; i < 4; i++) {
        ssize_t n;
        while ((n = recv(fds[i], buf, sizeof buf, 0)) > 0)
            ;
        ASSERT(n == 0 || (n < 0 && errno == ECONNRESET)); /* closed, not timed out */
        close(fds[i]);
    }
    /* the port is free again: nothing listens */
    ASSERT(cel_test_http_connect(port) < 0);
}

int main(void)
{
    TEST_RUN(test_routing_and_params);
    TEST_RUN(test_errors_are_json);
    TEST_RUN(test_healthz);
    TEST_RUN(test_body_limit);
    TEST_RUN(test_token_auth);
    TEST_RUN(test_basic_auth);
    TEST_RUN(test_non_loopback_needs_auth);
    TEST_RUN(test_read_only);
    TEST_RUN(test_csrf);
    TEST_RUN(test_static_files);
    TEST_RUN(test_concurrent_requests);
    TEST_RUN(test_idle_timeout);
    TEST_RUN(test_stop_with_clients_connected);
    return 0;
}
