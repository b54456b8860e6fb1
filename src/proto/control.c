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
#include "core/json_util.h"
#include "core/uuid.h"

/* Control bodies are small; deeper nesting is not a request. */
#define CONTROL_MAX_DEPTH 16

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

int cel__control_revoke_envelope(const char *const *ids, size_t n, bool terminate, int signum,
                                 int64_t expires_us, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (n == 0)
        return CEL_EINVAL;
    char sig[32], tag[CEL_UUID_STRLEN + 1];
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
    char *text = body ? cel__json_dump(body) : NULL;
    json_decref(body);
    if (!text)
        return CEL_ENOMEM;
    size_t tlen = strlen(text);
    char *b64 = malloc(cel__base64_encoded_len(tlen) + 1);
    if (!b64) {
        free(text);
        return CEL_ENOMEM;
    }
    cel__base64_encode((const unsigned char *)text, tlen, b64);
    free(text);
    cel__uuid4(tag);
    json_t *env =
        json_pack("{s:s, s:s, s:s, s:{s:i, s:i}, s:{s:i, s:{s:s, s:s}, s:i, s:s, s:s}}", "body",
                  b64, "content-encoding", "utf-8", "content-type", "application/json", "headers",
                  "clock", 1, "expires", 0, "properties", "delivery_mode", 2, "delivery_info",
                  "exchange", CEL_CONTROL_EXCHANGE, "routing_key", "", "priority", 0,
                  "body_encoding", "base64", "delivery_tag", tag);
    free(b64);
    *out = env ? cel__json_dump(env) : NULL;
    json_decref(env);
    if (!*out)
        return CEL_ENOMEM;
    *len = strlen(*out);
    return CEL_OK;
}

/* The decoded body of an envelope (base64 or plain JSON text). */
static json_t *body_of(const char *env, size_t len)
{
    json_t *e = cel__json_parse(env, len, CONTROL_MAX_DEPTH, NULL, 0);
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
    json_t *body = body_of(env, len);
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
