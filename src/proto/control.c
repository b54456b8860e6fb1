/* control.c - see control.h. */
#include "proto/control.h"

#include <fnmatch.h>
#include <jansson.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "core/clock.h"
#include "core/json_util.h"
#include "core/uuid.h"

/* Control bodies are small; deeper nesting is not a request. */
#define CONTROL_MAX_DEPTH 16
/* Replies carry lists of requests (active, reserved) and can be large;
 * past this an envelope is not one of ours. */
#define CONTROL_MAX_BYTES (16u * 1024u * 1024u)
/* A selection pattern longer than a node name could ever need is refused
 * before it reaches the regex compiler. */
#define CONTROL_MAX_PATTERN 1024

static const struct {
    const char *name;
    int signum;
} signals[] = {
    {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},
    {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT},
};

int cel__signal_parse(const char *name)
{
    if (!name || !*name)
        return 0;
    char *end;
    long v = strtol(name, &end, 10);
    if (*end == '\0')
        return v > 0 && v < NSIG ? (int)v : 0;
    if (strncasecmp(name, "SIG", 3) == 0)
        name += 3;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (strcasecmp(name, signals[i].name) == 0)
            return signals[i].signum;
    return 0;
}

const char *cel__signal_name(int signum, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (signals[i].signum == signum) {
            snprintf(buf, len, "SIG%s", signals[i].name);
            return buf;
        }
    snprintf(buf, len, "%d", signum);
    return buf;
}

/* Base64 of the dumped body, as kombu sends JSON bodies. */
static char *encode_body(const json_t *body)
{
    char *text = cel__json_dump(body);
    if (!text)
        return NULL;
    size_t tlen = strlen(text);
    char *b64 = malloc(cel__base64_encoded_len(tlen) + 1);
    if (b64)
        cel__base64_encode((const unsigned char *)text, tlen, b64);
    free(text);
    return b64;
}

/*
 * The kombu envelope around `body` (borrowed) with `headers` (stolen),
 * published on `exchange` with `routing_key`; key order as kombu writes
 * it. *out is the caller's.
 */
static int wrap(const json_t *body, json_t *headers, const char *exchange, const char *routing_key,
                int delivery_mode, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char *b64 = headers ? encode_body(body) : NULL;
    char tag[CEL_UUID_STRLEN + 1];
    cel__uuid4(tag);
    json_t *env =
        b64 ? json_pack("{s:s, s:s, s:s, s:O, s:{s:i, s:{s:s, s:s}, s:i, s:s, s:s}}", "body", b64,
                        "content-encoding", "utf-8", "content-type", "application/json", "headers",
                        headers, "properties", "delivery_mode", delivery_mode, "delivery_info",
                        "exchange", exchange, "routing_key", routing_key, "priority", 0,
                        "body_encoding", "base64", "delivery_tag", tag)
            : NULL;
    free(b64);
    json_decref(headers);
    *out = env ? cel__json_dump(env) : NULL;
    json_decref(env);
    if (!*out)
        return CEL_ENOMEM;
    *len = strlen(*out);
    return CEL_OK;
}

int cel__control_revoke_envelope(const char *const *ids, size_t n, bool terminate, int signum,
                                 int64_t expires_us, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (n == 0)
        return CEL_EINVAL;
    char sig[32];
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        if (json_array_append_new(list, json_string(ids[i])) != 0) {
            json_decref(list);
            return CEL_EINVAL; /* not UTF-8 */
        }
    /* Key order as Celery's Mailbox._broadcast writes it. */
    json_t *body =
        json_pack("{s:s, s:{s:o, s:b, s:s, s:f}, s:n, s:n, s:n}", "method", "revoke", "arguments",
                  "task_id", list, "terminate", terminate, "signal",
                  cel__signal_name(signum ? signum : SIGTERM, sig, sizeof sig), "celeriac_expires",
                  (double)expires_us / 1e6, "destination", "pattern", "matcher");
    if (!body)
        return CEL_ENOMEM;
    int rc = wrap(body, json_pack("{s:i, s:i}", "clock", 1, "expires", 0), CEL_CONTROL_EXCHANGE, "",
                  2, out, len);
    json_decref(body);
    return rc;
}

int cel__control_request_envelope(const char *method, const json_t *arguments,
                                  const char *const *destination, size_t ndest, const char *ticket,
                                  const char *reply_to, double timeout_s, int64_t clock, char **out,
                                  size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!method || !*method || (arguments && !json_is_object(arguments)) || (ticket && !reply_to) ||
        (!ticket && reply_to))
        return CEL_EINVAL;
    json_t *dest = ndest ? json_array() : json_null();
    for (size_t i = 0; dest && i < ndest; i++)
        if (!destination[i] || json_array_append_new(dest, json_string(destination[i])) != 0) {
            json_decref(dest);
            return CEL_EINVAL;
        }
    /* Key order as Celery's Mailbox._broadcast writes it. */
    json_t *args = arguments ? json_incref((json_t *)arguments) : json_object();
    json_t *body = json_pack("{s:s, s:o, s:o, s:n, s:n}", "method", method, "arguments", args,
                             "destination", dest, "pattern", "matcher");
    if (body && ticket &&
        (json_object_set_new(body, "ticket", json_string(ticket)) != 0 ||
         json_object_set_new(body, "reply_to",
                             json_pack("{s:s, s:s}", "exchange", CEL_CONTROL_REPLY_EXCHANGE,
                                       "routing_key", reply_to)) != 0 ||
         !json_object_get(body, "reply_to"))) {
        json_decref(body);
        return CEL_EINVAL;
    }
    if (!body)
        return CEL_EINVAL;
    double expires = timeout_s > 0 ? (double)cel__wall_us() / 1e6 + timeout_s : 0;
    json_t *headers = json_pack("{s:I, s:f}", "clock", (json_int_t)clock, "expires", expires);
    if (headers && expires == 0) /* Celery sends an integer 0 for none */
        json_object_set_new(headers, "expires", json_integer(0));
    int rc = wrap(body, headers, CEL_CONTROL_EXCHANGE, "", 2, out, len);
    json_decref(body);
    return rc;
}

int cel__control_reply_envelope(const char *node, const json_t *value, const char *ticket,
                                const char *reply_to, int64_t clock, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!node || !ticket || !reply_to)
        return CEL_EINVAL;
    json_t *body = json_object();
    if (!body || json_object_set(body, node, value ? (json_t *)value : json_null()) != 0) {
        json_decref(body);
        return CEL_EINVAL;
    }
    json_t *headers = json_pack("{s:s, s:I}", "ticket", ticket, "clock", (json_int_t)clock);
    int rc = headers ? wrap(body, headers, CEL_CONTROL_REPLY_EXCHANGE, reply_to, 1, out, len)
                     : CEL_EINVAL;
    json_decref(body);
    return rc;
}

/* The decoded body of an envelope (base64 or plain JSON text), and a new
 * reference to its headers object in *headers when asked. */
static json_t *body_of(const char *env, size_t len, json_t **headers)
{
    if (headers)
        *headers = NULL;
    if (len > CONTROL_MAX_BYTES)
        return NULL;
    json_t *e = cel__json_parse(env, len, CONTROL_MAX_DEPTH, NULL, 0);
    if (headers && json_is_object(json_object_get(e, "headers")))
        *headers = json_incref(json_object_get(e, "headers"));
    const char *body = e ? cel__json_cstr(json_object_get(e, "body")) : NULL;
    const char *enc =
        e ? cel__json_cstr(json_object_get(json_object_get(e, "properties"), "body_encoding"))
          : NULL;
    json_t *out = NULL;
    if (body && enc && strcmp(enc, "base64") == 0) {
        size_t n;
        unsigned char *raw = cel__base64_decode(body, strlen(body), &n);
        if (raw)
            out = cel__json_parse((const char *)raw, n, CONTROL_MAX_DEPTH, NULL, 0);
        free(raw);
    } else if (body) {
        out = cel__json_parse(body, strlen(body), CONTROL_MAX_DEPTH, NULL, 0);
    }
    json_decref(e);
    return out;
}

/* Celery's selection rule (protocol.md 9.2). */
static bool addressed_to(const json_t *body, const char *node)
{
    const json_t *dest = json_object_get(body, "destination");
    if (json_is_array(dest) && json_array_size(dest) > 0) {
        for (size_t i = 0; i < json_array_size(dest); i++) {
            const char *d = cel__json_cstr(json_array_get(dest, i));
            if (d && strcmp(d, node) == 0)
                return true;
        }
        return false;
    }
    const char *pattern = cel__json_cstr(json_object_get(body, "pattern"));
    const char *matcher = cel__json_cstr(json_object_get(body, "matcher"));
    if (!pattern || !matcher)
        return true;
    if (strlen(pattern) > CONTROL_MAX_PATTERN)
        return false;
    if (strcmp(matcher, "glob") == 0)
        return fnmatch(pattern, node, 0) == 0;
    regex_t re; /* pcre: POSIX extended covers the patterns Celery's docs show */
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool hit = regexec(&re, node, 0, NULL, 0) == 0;
    regfree(&re);
    return hit;
}

void cel__control_revoke_release(struct cel_control_revoke *r)
{
    for (size_t i = 0; r->ids && i < r->n; i++)
        free(r->ids[i]);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

int cel__control_parse_revoke(const char *env, size_t len, const char *node,
                              struct cel_control_revoke *r)
{
    memset(r, 0, sizeof *r);
    json_t *body = body_of(env, len, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return CEL_EPROTO;
    }
    const char *method = cel__json_cstr(json_object_get(body, "method"));
    int rc = CEL_OK;
    /* `terminate` is `revoke` with terminate (celery control terminate). */
    bool terminate_cmd = method && strcmp(method, "terminate") == 0;
    if (!method || (strcmp(method, "revoke") != 0 && !terminate_cmd) || !addressed_to(body, node))
        rc = CEL_ENOTFOUND;
    const json_t *args = json_object_get(body, "arguments");
    const json_t *ids = json_object_get(args, "task_id");
    size_t n = json_is_array(ids) ? json_array_size(ids) : json_is_string(ids) ? 1 : 0;
    if (rc == CEL_OK && n == 0)
        rc = CEL_EPROTO;
    if (rc == CEL_OK && !(r->ids = calloc(n, sizeof *r->ids)))
        rc = CEL_ENOMEM;
    for (size_t i = 0; rc == CEL_OK && i < n; i++) {
        const char *id = cel__json_cstr(json_is_array(ids) ? json_array_get(ids, i) : ids);
        if (!id)
            continue;
        if (!(r->ids[r->n] = strdup(id)))
            rc = CEL_ENOMEM;
        else
            r->n++;
    }
    if (rc == CEL_OK) {
        r->terminate = terminate_cmd || json_is_true(json_object_get(args, "terminate"));
        const json_t *sig = json_object_get(args, "signal");
        r->signum = json_is_integer(sig) ? (int)json_integer_value(sig)
                                         : cel__signal_parse(cel__json_cstr(sig));
        if (r->signum <= 0 || r->signum >= NSIG)
            r->signum = SIGTERM;
        const json_t *exp = json_object_get(args, "celeriac_expires");
        r->expires_us = json_is_number(exp) ? (int64_t)(json_number_value(exp) * 1e6) : 0;
    }
    json_decref(body);
    if (rc != CEL_OK)
        cel__control_revoke_release(r);
    return rc;
}

void cel__control_request_release(struct cel_control_request *r)
{
    free(r->method);
    free(r->ticket);
    free(r->reply_to);
    json_decref(r->arguments);
    memset(r, 0, sizeof *r);
}

/* A number header as int64, 0 when absent or not a number. */
static int64_t header_number(const json_t *headers, const char *key, double scale)
{
    const json_t *v = json_object_get(headers, key);
    if (!json_is_number(v))
        return 0;
    double x = json_number_value(v) * scale;
    return x > 0 && x < 9.2e18 ? (int64_t)(x + 0.5) : 0; /* 0.5: float seconds to whole µs */
}

int cel__control_parse_request(const char *env, size_t len, const char *node,
                               struct cel_control_request *r)
{
    memset(r, 0, sizeof *r);
    json_t *headers;
    json_t *body = body_of(env, len, &headers);
    int rc = CEL_OK;
    const char *method = cel__json_cstr(json_object_get(body, "method"));
    json_t *args = json_object_get(body, "arguments");
    if (!json_is_object(body) || !method || !*method ||
        (args && !json_is_object(args) && !json_is_null(args)))
        rc = CEL_EPROTO;
    else if (!addressed_to(body, node))
        rc = CEL_ENOTFOUND;
    /* reply_to is kombu's {"exchange", "routing_key"}; a bare name is
     * taken too. A ticket without somewhere to reply to is a cast. */
    const json_t *rt = json_object_get(body, "reply_to");
    const char *reply_to = json_is_object(rt) ? cel__json_cstr(json_object_get(rt, "routing_key"))
                                              : cel__json_cstr(rt);
    const char *ticket = cel__json_cstr(json_object_get(body, "ticket"));
    if (rc == CEL_OK) {
        r->method = strdup(method);
        r->arguments = json_is_object(args) ? json_incref(args) : json_object();
        if (ticket && reply_to && *reply_to) {
            r->ticket = strdup(ticket);
            r->reply_to = strdup(reply_to);
            if (!r->ticket || !r->reply_to)
                rc = CEL_ENOMEM;
        }
        if (!r->method || !r->arguments)
            rc = CEL_ENOMEM;
        r->clock = header_number(headers, "clock", 1);
        r->expires_us = header_number(headers, "expires", 1e6);
    }
    json_decref(headers);
    json_decref(body);
    if (rc != CEL_OK)
        cel__control_request_release(r);
    return rc;
}

int cel__control_parse_reply(const char *env, size_t len, const char *ticket, char **node,
                             json_t **value)
{
    *node = NULL;
    *value = NULL;
    json_t *headers;
    json_t *body = body_of(env, len, &headers);
    const char *got = cel__json_cstr(json_object_get(headers, "ticket"));
    int rc = CEL_OK;
    /* Always a one-key object {node: result} (section 9.3). */
    if (!json_is_object(body) || json_object_size(body) != 1 || !got)
        rc = CEL_EPROTO;
    else if (ticket && strcmp(got, ticket) != 0)
        rc = CEL_ENOTFOUND;
    if (rc == CEL_OK) {
        void *it = json_object_iter(body);
        const char *key = json_object_iter_key(it);
        if (strlen(key) != json_object_iter_key_len(it))
            rc = CEL_EPROTO; /* a NUL inside the node name */
        else if (!(*node = strdup(key)))
            rc = CEL_ENOMEM;
        else
            *value = json_incref(json_object_iter_value(it));
    }
    json_decref(headers);
    json_decref(body);
    return rc;
}
