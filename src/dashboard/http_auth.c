/*
 * http_auth.c - who may call a route: bearer token or basic auth against
 * a crypt(3) hash, read-only mode, and the CSRF and Origin/Host checks of
 * MUTATING requests (the policy is described in http.h).
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/base64.h"
#include "dashboard/http_internal.h"

int cel__dash_http_random_hex(char *buf, size_t n)
{
    unsigned char bytes[64];
    if (n > sizeof bytes)
        return CEL_EINVAL;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(bytes + got, n - got, 0);
        if (r < 0)
            return CEL_EIO;
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(buf + 2 * i, 3, "%02x", bytes[i]);
    return CEL_OK;
}

int cel__dash_http_hash_password(const char *password, char *out, size_t outlen,
                                 struct cel_errbuf *err)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt))
        return cel__err(err, CEL_EIO, "cannot make a password salt");
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return cel__err(err, CEL_ENOMEM, "out of memory");
    const char *hash = crypt_r(password, salt, cd);
    int rc = CEL_OK;
    if (!hash || hash[0] == '*')
        rc = cel__err(err, CEL_EIO, "cannot hash the password");
    else if (strlen(hash) >= outlen)
        rc = cel__err(err, CEL_ETOOBIG, "password hash does not fit");
    else
        memcpy(out, hash, strlen(hash) + 1);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return rc;
}

static bool basic_ok(const struct cel_dash_http *s, const char *credentials)
{
    size_t len;
    unsigned char *plain = cel__base64_decode(credentials, strlen(credentials), &len);
    if (!plain)
        return false;
    bool ok = false;
    char *colon = memchr(plain, ':', len);
    if (colon && strlen((char *)plain) == len) {
        *colon = '\0';
        bool user_ok = cel__dash_http_consttime_eq((char *)plain, s->basic_user);
        struct crypt_data *cd = calloc(1, sizeof *cd);
        if (cd) {
            /* always hash, even for a wrong user: no timing hint */
            const char *hash = crypt_r(colon + 1, s->basic_hash, cd);
            ok = hash && hash[0] != '*' && cel__dash_http_consttime_eq(hash, s->basic_hash) &&
                 user_ok;
            explicit_bzero(cd, sizeof *cd);
            free(cd);
        }
    }
    explicit_bzero(plain, len);
    free(plain);
    return ok;
}

/* 1: valid credentials; 0: none given; -1: given but wrong. */
static int check_credentials(const struct cel_dash_http *s, const char *authz)
{
    if (!authz)
        return 0;
    if (s->auth_token && strncasecmp(authz, "Bearer ", 7) == 0)
        return cel__dash_http_consttime_eq(authz + 7, s->auth_token) ? 1 : -1;
    if (s->basic_user && strncasecmp(authz, "Basic ", 6) == 0)
        return basic_ok(s, authz + 6) ? 1 : -1;
    return -1;
}

/* The host part of "host:port" or "[v6]:port" in a Host header. */
static size_t host_len(const char *host)
{
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        return end ? (size_t)(end - host + 1) : strlen(host);
    }
    return strcspn(host, ":");
}

static bool loopback_host(const char *host)
{
    size_t n = host_len(host);
    return (n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
           (n >= 4 && strncmp(host, "127.", 4) == 0) || (n == 5 && strncmp(host, "[::1]", 5) == 0);
}

/* Origin "scheme://host[:port]" must name the Host the request went to. */
static bool same_origin(const char *origin, const char *host)
{
    const char *sep = strstr(origin, "://");
    return sep && strcasecmp(sep + 3, host) == 0;
}

static unsigned refuse(struct cel_dash_http_resp *resp, unsigned status, const char *why)
{
    cel__dash_http_error(resp, status, why);
    return status;
}

unsigned cel__dash_http_authorize(struct cel_dash_http_req *req, unsigned flags,
                                  struct cel_dash_http_resp *resp)
{
    const struct cel_dash_http *s = req->server;
    if (flags & CEL_DASH_HTTP_PUBLIC)
        return 0;
    bool auth_configured = s->auth_token || s->basic_user;
    const char *authz = cel__dash_http_header(req, "Authorization");
    int cred = auth_configured ? check_credentials(s, authz) : 0;
    if (auth_configured && cred != 1) {
        if (s->basic_user)
            cel__dash_http_add_header(resp, "WWW-Authenticate",
                                      "Basic realm=\"celeriac\", charset=\"UTF-8\"");
        return refuse(resp, 401, cred < 0 ? "invalid credentials" : "authentication required");
    }
    if (!(flags & CEL_DASH_HTTP_MUTATING))
        return 0;
    if (s->read_only)
        return refuse(resp, 403, "the dashboard is read-only");
    const char *host = cel__dash_http_header(req, "Host");
    const char *origin = cel__dash_http_header(req, "Origin");
    if (!host || (s->loopback && !loopback_host(host)))
        return refuse(resp, 403, "unexpected Host");
    if (origin && !same_origin(origin, host))
        return refuse(resp, 403, "cross-origin request refused");
    /* A bearer token is never sent by a browser on its own, so it proves
     * the request is not forged. Basic credentials are (a browser caches
     * them), so a browser's request (it sends Origin on every POST) needs
     * the CSRF token like a session without credentials does. */
    bool bearer = cred == 1 && strncasecmp(authz, "Bearer ", 7) == 0;
    bool script = cred == 1 && !origin;
    if (!bearer && !script) {
        const char *token = cel__dash_http_header(req, CEL_DASH_HTTP_CSRF_HEADER);
        if (!token || !cel__dash_http_consttime_eq(token, s->csrf))
            return refuse(resp, 403, "missing or invalid CSRF token");
    }
    return 0;
}
