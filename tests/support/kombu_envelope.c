/* kombu_envelope.c - see kombu_envelope.h. */
#include "kombu_envelope.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/base64.h"
#include "testing.h"

char *cel_test_kombu_envelope(const char *body, const char *exchange, const char *rk,
                              const char *hostname)
{
    size_t n = strlen(body);
    char *b64 = malloc(cel__base64_encoded_len(n) + 1);
    ASSERT(b64);
    cel__base64_encode((const unsigned char *)body, n, b64);
    json_t *env =
        json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:i, s:{s:s, s:s}, s:i, s:s, s:s}}", "body", b64,
                  "content-encoding", "utf-8", "content-type", "application/json", "headers",
                  "hostname", hostname, "properties", "delivery_mode", 1, "delivery_info",
                  "exchange", exchange, "routing_key", rk, "priority", 0, "body_encoding", "base64",
                  "delivery_tag", "7a4e3b7c-0f6e-4b8e-9a61-2f3c1d5e6a7b");
    free(b64);
    char *text = json_dumps(env, 0);
    json_decref(env);
    ASSERT(text);
    return text;
}
