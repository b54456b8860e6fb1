/*
 * http_response.c - what a handler fills in: status, content type, body
 * and extra headers; the server turns it into a libmicrohttpd response.
 */
#include <stdlib.h>
#include <string.h>

#include "dashboard/http_internal.h"

void cel__dash_http_status(struct cel_dash_http_resp *resp, unsigned status)
{
    resp->status = status;
}

int cel__dash_http_set_body(struct cel_dash_http_resp *resp, const char *content_type,
                            const void *body, size_t len)
{
    char *ct = strdup(content_type ? content_type : "application/octet-stream");
    char *copy = malloc(len + 1);
    if (!ct || !copy) {
        free(ct);
        free(copy);
        return CEL_ENOMEM;
    }
    if (len)
        memcpy(copy, body, len);
    copy[len] = '\0';
    free(resp->content_type);
    free(resp->body);
    resp->content_type = ct;
    resp->body = copy;
    resp->len = len;
    return CEL_OK;
}

int cel__dash_http_json(struct cel_dash_http_resp *resp, unsigned status, const json_t *json)
{
    if (!json)
        return CEL_EINVAL; /* a failed json_pack() upstream */
    char *text = json_dumps(json, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text)
        return CEL_ENOMEM;
    int rc = cel__dash_http_set_body(resp, "application/json", text, strlen(text));
    free(text);
    if (rc == CEL_OK)
        resp->status = status;
    return rc;
}

int cel__dash_http_error(struct cel_dash_http_resp *resp, unsigned status, const char *message)
{
    json_t *obj = json_pack("{s:s}", "error", message);
    if (!obj)
        return CEL_ENOMEM;
    int rc = cel__dash_http_json(resp, status, obj);
    json_decref(obj);
    return rc;
}

int cel__dash_http_add_header(struct cel_dash_http_resp *resp, const char *name, const char *value)
{
    if (resp->n_headers == CEL_DASH_HTTP_MAX_HEADERS)
        return CEL_ETOOBIG;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return CEL_ENOMEM;
    }
    resp->names[resp->n_headers] = n;
    resp->values[resp->n_headers++] = v;
    return CEL_OK;
}

void cel__dash_http_resp_release(struct cel_dash_http_resp *resp)
{
    free(resp->content_type);
    free(resp->body);
    for (size_t i = 0; i < resp->n_headers; i++) {
        free(resp->names[i]);
        free(resp->values[i]);
    }
    memset(resp, 0, sizeof *resp);
}
