/*
 * url.c - parsing of broker and backend URLs.
 *
 * The grammar is the common subset of what Celery/kombu accept:
 *
 *   scheme "://" [user [":" password] "@"] host [":" port] [path] ["?" query]
 *
 * with two exceptions: sqlite URLs have no authority (everything between
 * "://" and "?" is the path, so "sqlite:////abs.db" works), and IPv6 hosts
 * are written in brackets. The parser is strict on purpose: a typo in a
 * broker URL should fail at start-up with a message that says where, not
 * later as a connection to the wrong host. Error messages never contain
 * the URL itself, so a password cannot leak through them; callers that
 * want to show the URL run it through cel__url_redact() first.
 */
#include "core/url.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/errbuf.h"

static const char *const known_schemes[] = {
    "sqlite", "memory", "redis", "rediss", "redis+socket", "amqp", "amqps", NULL,
};

int cel__hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Checks that every '%' starts a valid escape and that none decodes to NUL
 * (a NUL would silently truncate a password or a path). */
static bool escapes_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%')
            continue;
        if (i + 2 >= n || cel__hex_digit((unsigned char)s[i + 1]) < 0 ||
            cel__hex_digit((unsigned char)s[i + 2]) < 0)
            return false;
        if (s[i + 1] == '0' && s[i + 2] == '0')
            return false;
        i += 2;
    }
    return true;
}

/* Decodes s[0..n) into a new string; '+' becomes a space when plus_space
 * (query strings are form-encoded, userinfo and paths are not). The input
 * must have passed escapes_valid(). NULL on out of memory. */
static char *decode(const char *s, size_t n, bool plus_space)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && cel__hex_digit((unsigned char)s[i + 1]) >= 0 &&
            cel__hex_digit((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(cel__hex_digit((unsigned char)s[i + 1]) * 16 +
                              cel__hex_digit((unsigned char)s[i + 2]));
            i += 2;
        } else if (plus_space && s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static char *dup_n(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

static bool is_host_char(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

static int parse_port(const char *s, size_t n, int *port, char *err, size_t errlen)
{
    if (n == 0)
        return cel__errf(err, errlen, CEL_EURL, "missing port number after ':'");
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return cel__errf(err, errlen, CEL_EURL, "port must be a number");
        if (v <= 65535)
            v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return cel__errf(err, errlen, CEL_EURL, "port is out of range 1..65535");
    *port = (int)v;
    return 0;
}

/* host[:port] or [v6]:port into out->host / out->port. */
static int parse_hostport(const char *s, size_t n, struct cel_url *out, char *err, size_t errlen)
{
    const char *host = s;
    size_t hostlen = n;
    const char *port = NULL;
    size_t portlen = 0;

    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return cel__errf(err, errlen, CEL_EURL, "missing ']' after IPv6 address");
        host = s + 1;
        hostlen = (size_t)(close - host);
        size_t after = n - (size_t)(close + 1 - s);
        if (after > 0) {
            if (close[1] != ':')
                return cel__errf(err, errlen, CEL_EURL, "unexpected text after ']'");
            port = close + 2;
            portlen = after - 1;
        } else if (hostlen == 0) {
            return cel__errf(err, errlen, CEL_EURL, "empty IPv6 address");
        }
        bool colon = false;
        for (size_t i = 0; i < hostlen; i++) {
            int c = (unsigned char)host[i];
            if (c == ':')
                colon = true;
            else if (!isxdigit(c) && c != '.')
                return cel__errf(err, errlen, CEL_EURL, "invalid character in IPv6 address");
        }
        if (!colon)
            return cel__errf(err, errlen, CEL_EURL, "invalid IPv6 address");
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon) {
            if (memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)))
                return cel__errf(err, errlen, CEL_EURL,
                                 "too many ':' in host (write IPv6 addresses in brackets)");
            hostlen = (size_t)(colon - s);
            port = colon + 1;
            portlen = n - hostlen - 1;
        }
        for (size_t i = 0; i < hostlen; i++) {
            if (!is_host_char((unsigned char)host[i]))
                return cel__errf(err, errlen, CEL_EURL, "invalid character '%c' in host", host[i]);
        }
    }
    if (port) {
        int rc = parse_port(port, portlen, &out->port, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (hostlen > 0 && !(out->host = dup_n(host, hostlen)))
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    return 0;
}

static int parse_userinfo(const char *s, size_t n, struct cel_url *out, char *err, size_t errlen)
{
    if (!escapes_valid(s, n))
        return cel__errf(err, errlen, CEL_EURL, "invalid percent-escape in user or password");
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    if (ulen > 0 && !(out->user = decode(s, ulen, false)))
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    if (colon && n - ulen - 1 > 0 && !(out->password = decode(colon + 1, n - ulen - 1, false)))
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    return 0;
}

/* Rules that depend on the scheme, checked once the generic parse is done. */
static int check_scheme_rules(const struct cel_url *u, bool has_userinfo, char *err, size_t errlen)
{
    const char *s = u->scheme;
    if (strcmp(s, "memory") == 0) {
        if (has_userinfo || u->port || (u->path && strcmp(u->path, "/") != 0))
            return cel__errf(err, errlen, CEL_EURL,
                             "a memory URL takes only a name: memory://[name]");
    } else if (strcmp(s, "redis") == 0 || strcmp(s, "rediss") == 0) {
        if (u->path && u->path[1] != '\0') {
            const char *db = u->path + 1;
            size_t n = strlen(db);
            if (n > 5 || strspn(db, "0123456789") != n)
                return cel__errf(err, errlen, CEL_EURL,
                                 "redis database must be a number, as in redis://host:6379/0");
        }
    } else if (strcmp(s, "redis+socket") == 0) {
        if (u->host || u->port)
            return cel__errf(err, errlen, CEL_EURL,
                             "a redis+socket URL has no host: redis+socket:///path/to.sock");
        if (!u->path || strcmp(u->path, "/") == 0)
            return cel__errf(err, errlen, CEL_EURL, "missing socket path in redis+socket URL");
    }
    return 0;
}

static int parse(const char *text, struct cel_url *out, char *err, size_t errlen)
{
    if (!text)
        return cel__errf(err, errlen, CEL_EURL, "no URL given");
    size_t len = strnlen(text, CEL_URL_MAX + 1);
    if (len > CEL_URL_MAX)
        return cel__errf(err, errlen, CEL_EURL, "URL is longer than %d bytes", CEL_URL_MAX);
    if (len == 0)
        return cel__errf(err, errlen, CEL_EURL, "empty URL");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c == 0x7f)
            return cel__errf(err, errlen, CEL_EURL,
                             "space or control character at offset %zu (percent-encode it)", i);
        if (c == '#')
            return cel__errf(err, errlen, CEL_EURL, "'#' at offset %zu: percent-encode it as %%23",
                             i);
    }

    /* scheme */
    size_t slen = 0;
    while (slen < len && (isalnum((unsigned char)text[slen]) || text[slen] == '+' ||
                          text[slen] == '-' || text[slen] == '.'))
        slen++;
    if (slen == 0 || slen >= len || text[slen] != ':' || !isalpha((unsigned char)text[0]))
        return cel__errf(err, errlen, CEL_EURL, "missing scheme, as in redis://host:6379/0");
    if (!(out->scheme = dup_n(text, slen)))
        return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    for (char *p = out->scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    bool known = false;
    for (size_t i = 0; known_schemes[i]; i++)
        known = known || strcmp(known_schemes[i], out->scheme) == 0;
    if (strncmp(text + slen, "://", 3) != 0) {
        /* "localhost:6379" has no scheme at all; "redis:host" lost its slashes */
        if (!known)
            return cel__errf(err, errlen, CEL_EURL, "missing scheme, as in redis://host:6379/0");
        return cel__errf(err, errlen, CEL_EURL, "missing '//' after '%s:'", out->scheme);
    }
    if (!known)
        return cel__errf(err, errlen, CEL_ESCHEME,
                         "unsupported scheme '%s' (expected sqlite, memory, redis, rediss, "
                         "redis+socket, amqp or amqps)",
                         out->scheme);

    const char *rest = text + slen + 3;
    const char *end = text + len;
    const char *q = memchr(rest, '?', (size_t)(end - rest));
    const char *main_end = q ? q : end;
    if (q && q + 1 < end) {
        if (!escapes_valid(q + 1, (size_t)(end - q - 1)))
            return cel__errf(err, errlen, CEL_EURL, "invalid percent-escape in query");
        if (!(out->query = dup_n(q + 1, (size_t)(end - q - 1))))
            return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    }

    const char *path = rest;
    bool has_userinfo = false;
    if (strcmp(out->scheme, "sqlite") != 0) {
        const char *slash = memchr(rest, '/', (size_t)(main_end - rest));
        const char *auth_end = slash ? slash : main_end;
        const char *at = NULL;
        for (const char *p = rest; p < auth_end; p++)
            if (*p == '@')
                at = p; /* the last '@': an unencoded '@' in a password still works */
        const char *hp = rest;
        if (at) {
            has_userinfo = true;
            int rc = parse_userinfo(rest, (size_t)(at - rest), out, err, errlen);
            if (rc != 0)
                return rc;
            hp = at + 1;
        }
        int rc = parse_hostport(hp, (size_t)(auth_end - hp), out, err, errlen);
        if (rc != 0)
            return rc;
        path = auth_end;
    }
    if (path < main_end) {
        if (!escapes_valid(path, (size_t)(main_end - path)))
            return cel__errf(err, errlen, CEL_EURL, "invalid percent-escape in path");
        if (!(out->path = dup_n(path, (size_t)(main_end - path))))
            return cel__errf(err, errlen, CEL_ENOMEM, "out of memory");
    }
    return check_scheme_rules(out, has_userinfo, err, errlen);
}

int cel__url_parse(const char *text, struct cel_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    return parse(text, out, err, errlen);
}

void cel__url_release(struct cel_url *u)
{
    if (!u)
        return;
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof *u);
}

char *cel__url_query_get(const struct cel_url *u, const char *name)
{
    if (!u || !u->query || !name)
        return NULL;
    const char *p = u->query;
    while (*p) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        if (escapes_valid(p, n)) {
            char *k = decode(p, klen, true);
            if (!k)
                return NULL;
            bool match = strcmp(k, name) == 0;
            free(k);
            if (match)
                return eq ? decode(eq + 1, n - klen - 1, true) : dup_n("", 0);
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return NULL;
}

char *cel__url_sqlite_path(const struct cel_url *u)
{
    if (!u || !u->scheme || strcmp(u->scheme, "sqlite") != 0)
        return NULL;
    const char *p = u->path ? u->path : "";
    /* "sqlite:///x.db": the third slash separates the (empty) authority
     * from a relative path; "sqlite:////x.db" therefore is absolute. */
    if (*p == '/')
        p++;
    if (*p == '\0')
        return dup_n("celeriac.db", strlen("celeriac.db"));
    size_t n = strlen(p);
    return escapes_valid(p, n) ? decode(p, n, false) : dup_n(p, n);
}

struct outbuf {
    char *buf;
    size_t len, used;
};

static void out_put(struct outbuf *o, const char *s, size_t n)
{
    if (o->len == 0)
        return;
    size_t room = o->len - 1 - o->used;
    if (n > room)
        n = room;
    memcpy(o->buf + o->used, s, n);
    o->used += n;
    o->buf[o->used] = '\0';
}

void cel__url_redact(const char *text, char *buf, size_t len)
{
    struct outbuf o = {buf, len, 0};
    if (len == 0)
        return;
    buf[0] = '\0';
    if (!text)
        return;
    size_t n = strlen(text);
    const char *sep = strstr(text, "://");
    if (!sep) {
        out_put(&o, text, n);
        return;
    }
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon || colon + 1 == at) {
        out_put(&o, text, n);
        return;
    }
    out_put(&o, text, (size_t)(colon + 1 - text));
    out_put(&o, "***", 3);
    out_put(&o, at, strlen(at));
}
