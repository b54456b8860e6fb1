/*
 * test_proto.c - the Celery protocol v2 codec against captured messages
 * (tests/data/golden/), build/parse round trips and a table of malformed
 * input. Byte-level: re-encoding a captured message must give back the
 * exact bytes Python wrote.
 */
#include <dirent.h>

#include "celeriac/error.h"
#include "core/base64.h"
#include "core/json_util.h"
#include "proto/envelope_writer.h"
#include "proto/message.h"
#include "proto/resend.h"

#include "testing.h"

#define ADD_ID        "46596344-2e3f-40d6-ab7e-68beb10933d7"
#define KW_ID         "0c4e1b0e-8a6f-4d56-9b7e-3f2a51c0d9a4"
#define DEFAULT_EMBED "{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}"

static char *golden(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s", cel_test_env("CEL_TEST_DATA"), name);
    size_t n = 0;
    char *s = cel_test_read_file(path, &n);
    if (!s)
        cel_test_fail(__FILE__, __LINE__, "cannot read %s", path);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (len)
        *len = n;
    return s;
}

static int parse_str(const char *s, struct cel_message *m, char *err, size_t errlen)
{
    return cel__message_parse(s, strlen(s), NULL, m, err, errlen);
}

/* Decodes the envelope's body member back to the JSON text that was sent. */
static char *body_text(const struct cel_message *m)
{
    const char *b64 = json_string_value(json_object_get(m->root, "body"));
    ASSERT(b64 != NULL);
    size_t n;
    char *text = (char *)cel__base64_decode(b64, strlen(b64), &n);
    ASSERT(text != NULL);
    return text;
}

static const char *hdr_str(const struct cel_message *m, const char *key)
{
    return json_string_value(json_object_get(json_object_get(m->root, "headers"), key));
}

/* --- golden ---------------------------------------------------------------- */

static void test_golden_add_delay_fields(void)
{
    size_t len;
    char *text = golden("add_delay.json", &len);
    struct cel_message m;
    char err[256];
    ASSERT_OK(cel__message_parse(text, len, NULL, &m, err, sizeof err));

    ASSERT_STREQ(m.task, "app.add");
    ASSERT_STREQ(m.id, ADD_ID);
    ASSERT_STREQ(m.root_id, ADD_ID);
    ASSERT(m.parent_id == NULL);
    ASSERT(m.group_id == NULL);
    ASSERT(m.shadow == NULL);
    ASSERT_STREQ(m.origin, "gen5675@vm");
    ASSERT_EQ(m.retries, 0);
    ASSERT_EQ(m.eta_us, 0);
    ASSERT_EQ(m.expires_us, 0);
    ASSERT(m.time_limit == 0.0);
    ASSERT(m.soft_time_limit == 0.0);
    ASSERT(!m.ignore_result);
    ASSERT_STREQ(m.content_type, "application/json");
    ASSERT_STREQ(m.correlation_id, ADD_ID);
    ASSERT_STREQ(m.reply_to, "5c97a11c-f574-3bcd-b3c9-92e74dee6970");
    ASSERT_STREQ(m.exchange, "");
    ASSERT_STREQ(m.routing_key, "celery");
    ASSERT_EQ(m.priority, 0);
    ASSERT(!m.redelivered);

    ASSERT(json_is_array(m.args));
    ASSERT_EQ(json_array_size(m.args), 2);
    ASSERT(json_is_integer(json_array_get(m.args, 0)));
    ASSERT_EQ(json_integer_value(json_array_get(m.args, 0)), 2);
    ASSERT_EQ(json_integer_value(json_array_get(m.args, 1)), 3);
    ASSERT(json_is_object(m.kwargs));
    ASSERT_EQ(json_object_size(m.kwargs), 0);
    ASSERT(json_is_object(m.embed));
    ASSERT_EQ(json_object_size(m.embed), 4);
    ASSERT(json_is_null(json_object_get(m.embed, "chord")));

    /* the base64 body is exactly what Python encoded */
    char *body = body_text(&m);
    ASSERT_STREQ(body, "[[2, 3], {}, " DEFAULT_EMBED "]");
    free(body);
    char *dumped = cel__json_dump(m.body);
    ASSERT_STREQ(dumped, "[[2, 3], {}, " DEFAULT_EMBED "]");
    free(dumped);

    cel__message_release(&m);
    ASSERT(m.root == NULL && m.task == NULL);
    cel__message_release(&m); /* twice is harmless */
    free(text);
}

static void test_golden_reencode_same_bytes(void)
{
    static const char *files[] = {"add_delay.json", "add_kwargs.json"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *text = golden(files[i], &len);
        struct cel_message m;
        char err[256];
        ASSERT_OK(cel__message_parse(text, len, NULL, &m, err, sizeof err));
        char *again = cel__message_encode(&m);
        ASSERT_STREQ(again, text);
        free(again);
        cel__message_release(&m);
        free(text);
    }
}

static void test_golden_kwargs_variant(void)
{
    char *text = golden("add_kwargs.json", NULL);
    struct cel_message m;
    char err[256];
    ASSERT_OK(parse_str(text, &m, err, sizeof err));
    ASSERT_STREQ(m.id, KW_ID);
    ASSERT_STREQ(m.shadow, "custom-name");
    ASSERT_EQ(m.eta_us, 1795803032528757LL);     /* ...18:10:32.528757+00:00 */
    ASSERT_EQ(m.expires_us, 1795803087635405LL); /* naive, taken as UTC */
    ASSERT(m.time_limit == 30.0);
    ASSERT(m.soft_time_limit == 20.0);
    ASSERT_STREQ(m.routing_key, "hipri");
    ASSERT_EQ(json_array_size(m.args), 0);
    ASSERT_EQ(json_integer_value(json_object_get(m.kwargs, "x")), 1);
    ASSERT_EQ(json_integer_value(json_object_get(m.kwargs, "y")), 2);
    ASSERT_STREQ(hdr_str(&m, "kwargsrepr"), "{'x': 1, 'y': 2}");
    cel__message_release(&m);
    free(text);
}

/* --- build --------------------------------------------------------------- */

/* Keys of an object in order, joined with ','. */
static void key_order(const json_t *obj, char *out, size_t len)
{
    out[0] = '\0';
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        (void)v;
        strncat(out, key, len - strlen(out) - 2);
        strcat(out, ",");
    }
}

static void test_build_parse_round_trip(void)
{
    struct cel_task_spec s = {0};
    s.task = "tasks.add";
    s.id = "11111111-2222-4333-8444-555555555555";
    s.args_json = "[2, 3]";
    s.kwargs_json = "{\"z\": 1, \"a\": \"x\"}";
    s.queue = "hipri";
    s.priority = 5;
    s.eta_us = 1795803032528757LL;
    s.expires_us = 1795803087000000LL;
    s.time_limit = 30;
    s.soft_time_limit = 2.5;
    s.parent_id = "p-1";
    s.group_id = "g-1";
    s.shadow = "shadowed";
    s.retries = 3;
    s.ignore_result = true;
    s.origin = "gen1@host";
    s.reply_to = "r-1";

    char *out = NULL;
    size_t outlen = 0;
    char id[37];
    char err[256];
    ASSERT_OK(cel__message_build(&s, &out, &outlen, id, err, sizeof err));
    ASSERT_EQ(outlen, strlen(out));
    ASSERT_STREQ(id, s.id);

    struct cel_message m;
    ASSERT_OK(cel__message_parse(out, outlen, NULL, &m, err, sizeof err));
    ASSERT_STREQ(m.task, "tasks.add");
    ASSERT_STREQ(m.id, s.id);
    ASSERT_STREQ(m.root_id, s.id);
    ASSERT_STREQ(m.parent_id, "p-1");
    ASSERT_STREQ(m.group_id, "g-1");
    ASSERT_STREQ(m.shadow, "shadowed");
    ASSERT_STREQ(m.origin, "gen1@host");
    ASSERT_EQ(m.retries, 3);
    ASSERT_EQ(m.eta_us, s.eta_us);
    ASSERT_EQ(m.expires_us, s.expires_us);
    ASSERT(m.time_limit == 30.0);
    ASSERT(m.soft_time_limit == 2.5);
    ASSERT(m.ignore_result);
    ASSERT_STREQ(m.correlation_id, s.id);
    ASSERT_STREQ(m.reply_to, "r-1");
    ASSERT_STREQ(m.exchange, "");
    ASSERT_STREQ(m.routing_key, "hipri");
    ASSERT_EQ(m.priority, 5);

    /* Python's orders and byte conventions */
    char order[512];
    key_order(m.root, order, sizeof order);
    ASSERT_STREQ(order, "body,content-encoding,content-type,headers,properties,");
    key_order(json_object_get(m.root, "headers"), order, sizeof order);
    ASSERT_STREQ(order, "lang,task,id,shadow,eta,expires,group,group_index,retries,timelimit,"
                        "root_id,parent_id,argsrepr,kwargsrepr,origin,ignore_result,");
    json_t *props = json_object_get(m.root, "properties");
    key_order(props, order, sizeof order);
    ASSERT_STREQ(order, "correlation_id,reply_to,delivery_mode,delivery_info,priority,"
                        "body_encoding,delivery_tag,");
    ASSERT_EQ(json_integer_value(json_object_get(props, "delivery_mode")), 2);
    ASSERT_STREQ(json_string_value(json_object_get(props, "body_encoding")), "base64");
    const char *tag = json_string_value(json_object_get(props, "delivery_tag"));
    ASSERT(tag && strlen(tag) == 36 && tag[14] == '4');
    ASSERT_STREQ(hdr_str(&m, "lang"), "c");
    ASSERT_STREQ(hdr_str(&m, "eta"), "2026-11-27T18:10:32.528757+00:00");
    ASSERT_STREQ(hdr_str(&m, "expires"), "2026-11-27T18:11:27.000000+00:00");
    ASSERT_STREQ(hdr_str(&m, "argsrepr"), "(2, 3)");
    ASSERT_STREQ(hdr_str(&m, "kwargsrepr"), "{'z': 1, 'a': 'x'}");
    ASSERT_CONTAINS(out, "\"timelimit\": [30, 2.5]");
    ASSERT_CONTAINS(out, "\"group_index\": null");
    ASSERT_CONTAINS(out, "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"hipri\"}");

    char *body = body_text(&m);
    ASSERT_STREQ(body, "[[2, 3], {\"z\": 1, \"a\": \"x\"}, " DEFAULT_EMBED "]");
    free(body);

    /* re-encoding what we built gives the same bytes */
    char *again = cel__message_encode(&m);
    ASSERT_STREQ(again, out);
    free(again);
    cel__message_release(&m);
    free(out);
}

static void test_build_defaults(void)
{
    struct cel_task_spec s = {0};
    s.task = "tasks.noop";
    char *out = NULL;
    char id[37];
    char err[256];
    ASSERT_OK(cel__message_build(&s, &out, NULL, id, err, sizeof err));
    ASSERT_EQ(strlen(id), 36);
    ASSERT_EQ(id[14], '4');

    struct cel_message m;
    ASSERT_OK(parse_str(out, &m, err, sizeof err));
    ASSERT_STREQ(m.id, id);
    ASSERT_STREQ(m.root_id, id);
    ASSERT_STREQ(m.routing_key, "celery");
    ASSERT_STREQ(m.exchange, "");
    ASSERT(strncmp(m.origin, "gen", 3) == 0 && strchr(m.origin, '@') != NULL);
    ASSERT(m.parent_id == NULL && m.group_id == NULL && m.shadow == NULL);
    ASSERT_EQ(m.eta_us, 0);
    ASSERT_STREQ(hdr_str(&m, "argsrepr"), "()");
    ASSERT_STREQ(hdr_str(&m, "kwargsrepr"), "{}");
    ASSERT_CONTAINS(out, "\"timelimit\": [null, null]");
    ASSERT_CONTAINS(out, "\"eta\": null, \"expires\": null");
    ASSERT_CONTAINS(out, "\"ignore_result\": false");
    char *body = body_text(&m);
    ASSERT_STREQ(body, "[[], {}, " DEFAULT_EMBED "]");
    free(body);
    cel__message_release(&m);
    free(out);

    /* a one-tuple, json_t args, and a custom embed */
    json_t *args = json_pack("[s]", "only");
    json_t *embed = json_pack("{s:n}", "chain");
    s.args = args;
    s.embed = embed;
    ASSERT_OK(cel__message_build(&s, &out, NULL, NULL, err, sizeof err));
    ASSERT_OK(parse_str(out, &m, err, sizeof err));
    ASSERT_STREQ(hdr_str(&m, "argsrepr"), "('only',)");
    body = body_text(&m);
    ASSERT_STREQ(body, "[[\"only\"], {}, {\"chain\": null}]");
    free(body);
    cel__message_release(&m);
    free(out);
    json_decref(args);
    json_decref(embed);
}

static void test_build_rejects(void)
{
    struct {
        struct cel_task_spec s;
        int code;
        const char *needle;
    } cases[] = {
        {{.task = NULL}, CEL_EINVAL, "task name"},
        {{.task = ""}, CEL_EINVAL, "task name"},
        {{.task = "t", .args_json = "{}"}, CEL_EINVAL, "args must be a JSON array"},
        {{.task = "t", .kwargs_json = "[]"}, CEL_EINVAL, "kwargs must be a JSON object"},
        {{.task = "t", .args_json = "[1,"}, CEL_EJSON, "args_json"},
        {{.task = "t", .priority = 10}, CEL_EINVAL, "priority"},
        {{.task = "t", .retries = -1}, CEL_EINVAL, "retries"},
        {{.task = "t", .id = "0123456789012345678901234567890123456789"}, CEL_EINVAL, "task id"},
        {{.task = "t\xff"}, CEL_EINVAL, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = (char *)"sentinel";
        char err[256] = "";
        char id[37];
        int rc = cel__message_build(&cases[i].s, &out, NULL, id, err, sizeof err);
        if (rc != cases[i].code)
            cel_test_fail(__FILE__, __LINE__, "case %zu: rc %d, want %d (%s)", i, rc, cases[i].code,
                          err);
        ASSERT(out == NULL);
        ASSERT_CONTAINS(err, cases[i].needle);
    }
}

/* A buffer's cap bounds the envelope written into it: past it the write
 * fails with CEL_ETOOBIG, and the same buffer then takes one that fits. */
static void test_envelope_cap(void)
{
    char args[3000];
    size_t n = 0;
    args[n++] = '[';
    args[n++] = '"';
    while (n < sizeof args - 3)
        args[n++] = 'a';
    memcpy(args + n, "\"]", 3);
    struct cel_task_spec big = {.task = "tasks.echo", .args_json = args};
    struct cel_task_spec small = {.task = "tasks.add", .args_json = "[2, 3]"};
    struct cel_buf b;
    cel__buf_init(&b, 2500);
    char err[256] = "", id[37];
    ASSERT_EQ(cel__envelope_write(&big, &b, id, err, sizeof err), CEL_ETOOBIG);
    ASSERT_CONTAINS(err, "larger than 2500 bytes");
    ASSERT_EQ(cel__buf_size(&b), 0);
    ASSERT(b.cap <= 2501);
    ASSERT_OK(cel__envelope_write(&small, &b, id, err, sizeof err));
    struct cel_message m;
    ASSERT_OK(cel__message_parse(cel__buf_bytes(&b), cel__buf_size(&b), NULL, &m, err, sizeof err));
    ASSERT_STREQ(m.task, "tasks.add");
    ASSERT_STREQ(m.id, id);
    ASSERT_EQ(strlen(cel__buf_bytes(&b)), cel__buf_size(&b)); /* NUL-terminated */
    cel__message_release(&m);
    cel__buf_release(&b);
}

/* --- malformed input ----------------------------------------------------- */

/* A valid envelope around a body given as plain JSON text. */
static char *with_body(const char *body_json, const char *extra_headers)
{
    json_t *env = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:{s:s, s:s}}}", "body", body_json,
                            "content-encoding", "utf-8", "content-type", "application/json",
                            "headers", "task", "t", "id", "i", "properties", "delivery_info",
                            "exchange", "", "routing_key", "celery");
    ASSERT(env != NULL);
    if (extra_headers) {
        json_t *h = json_loads(extra_headers, 0, NULL);
        ASSERT(h != NULL);
        json_object_update(json_object_get(env, "headers"), h);
        json_decref(h);
    }
    char *s = cel__json_dump(env);
    json_decref(env);
    return s;
}

static char *deep(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    ASSERT(s != NULL);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

static void expect_fail(const char *what, const char *data, size_t len,
                        const struct cel_message_limits *lim, int code, const char *needle)
{
    struct cel_message m;
    memset(&m, 0xab, sizeof m);
    char err[256] = "";
    int rc = cel__message_parse(data, len, lim, &m, err, sizeof err);
    if (rc != code)
        cel_test_fail(__FILE__, __LINE__, "%s: rc %d (%s), want %d; err: %s", what, rc,
                      cel_err_name(rc), code, err);
    ASSERT(m.root == NULL && m.body == NULL && m.task == NULL);
    if (!strstr(err, needle))
        cel_test_fail(__FILE__, __LINE__, "%s: error \"%s\" lacks \"%s\"", what, err, needle);
    ASSERT(strchr(err, '\n') == NULL); /* one line */
    cel__message_release(&m);
}

static void test_malformed_table(void)
{
    char *add = golden("add_delay.json", NULL);
    struct {
        const char *what;
        const char *from; /* replace this in add_delay.json ... */
        const char *to;   /* ... with this */
        int code;
        const char *needle;
    } edits[] = {
        {"no task", "\"task\": \"app.add\", ", "", CEL_EPROTO, "missing headers.task"},
        {"task not string", "\"task\": \"app.add\"", "\"task\": 7", CEL_EPROTO, "headers.task"},
        {"no id", "\"id\": \"" ADD_ID "\", ", "", CEL_EPROTO, "missing headers.id"},
        {"wrong content-type", "\"application/json\"", "\"application/x-python-serialize\"",
         CEL_ECONTENTTYPE, "x-python-serialize"},
        {"no content-type", "\"content-type\": \"application/json\", ", "", CEL_ECONTENTTYPE,
         "missing content-type"},
        {"bad content-encoding", "\"utf-8\"", "\"binary\"", CEL_ECONTENTTYPE, "content-encoding"},
        {"bad base64", "\"W1sy", "\"W1s!", CEL_EPROTO, "base64"},
        {"unknown body_encoding", "\"base64\"", "\"rot13\"", CEL_EPROTO, "rot13"},
        {"headers not object", "\"headers\": {", "\"headers\": [], \"x\": {", CEL_EPROTO,
         "headers must be an object"},
        {"bad eta", "\"eta\": null", "\"eta\": \"tomorrow\"", CEL_EPROTO, "headers.eta"},
        {"eta not string", "\"eta\": null", "\"eta\": 5", CEL_EPROTO, "headers.eta"},
        {"bad timelimit", "[null, null]", "[1]", CEL_EPROTO, "timelimit"},
        {"negative timelimit", "[null, null]", "[-1, null]", CEL_EPROTO, "timelimit"},
        {"bad retries", "\"retries\": 0", "\"retries\": \"0\"", CEL_EPROTO, "retries"},
        {"root_id not string", "\"root_id\": \"" ADD_ID "\"", "\"root_id\": 1", CEL_EPROTO,
         "root_id"},
        {"bad ignore_result", "\"ignore_result\": false", "\"ignore_result\": 0", CEL_EPROTO,
         "ignore_result"},
        {"delivery_info not object",
         "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": "
         "\"celery\"}",
         "\"delivery_info\": 3", CEL_EPROTO, "delivery_info"},
        {"truncated", "}}", "}", CEL_EJSON, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(add, edits[i].from);
        if (!at)
            cel_test_fail(__FILE__, __LINE__, "%s: pattern not in golden", edits[i].what);
        size_t pre = (size_t)(at - add), flen = strlen(edits[i].from);
        char *msg = malloc(strlen(add) + strlen(edits[i].to) + 1);
        ASSERT(msg != NULL);
        memcpy(msg, add, pre);
        strcpy(msg + pre, edits[i].to);
        strcat(msg, at + flen);
        expect_fail(edits[i].what, msg, strlen(msg), NULL, edits[i].code, edits[i].needle);
        free(msg);
    }

    expect_fail("not JSON", "hello", 5, NULL, CEL_EJSON, "invalid JSON");
    expect_fail("empty", "", 0, NULL, CEL_EJSON, "invalid JSON");
    expect_fail("array envelope", "[1, 2]", 6, NULL, CEL_EPROTO, "not a JSON object");
    expect_fail("no headers", "{\"body\": \"\"}", 12, NULL, CEL_EPROTO, "missing headers");
    expect_fail("embedded NUL", "{\"a\"\0}", 6, NULL, CEL_EJSON, "invalid JSON");

    struct {
        const char *what;
        const char *body;
        int code;
        const char *needle;
    } bodies[] = {
        {"2-element body", "[[2, 3], {}]", CEL_EPROTO, "3-element"},
        {"4-element body", "[[], {}, {}, 1]", CEL_EPROTO, "3-element"},
        {"body object", "{\"args\": []}", CEL_EPROTO, "3-element"},
        {"args null", "[null, {}, {}]", CEL_EPROTO, "args must be an array"},
        {"kwargs array", "[[], [], {}]", CEL_EPROTO, "kwargs must be an object"},
        {"embed list", "[[], {}, []]", CEL_EPROTO, "embed"},
        {"body not JSON", "[[], {}, {}", CEL_EJSON, "body"},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char *msg = with_body(bodies[i].body, NULL);
        expect_fail(bodies[i].what, msg, strlen(msg), NULL, bodies[i].code, bodies[i].needle);
        free(msg);
    }

    /* depth 1000 in the envelope and inside the decoded body */
    char *d = deep(1000);
    expect_fail("deep envelope", d, strlen(d), NULL, CEL_EDEPTH, "nesting");
    char *body = malloc(strlen(d) + 32);
    ASSERT(body != NULL);
    sprintf(body, "[%s, {}, {}]", d);
    char *msg = with_body(body, NULL);
    expect_fail("deep body", msg, strlen(msg), NULL, CEL_EDEPTH, "nesting");
    free(msg);
    free(body);
    free(d);
    /* brackets inside strings do not count */
    msg = with_body(
        "[[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"], {}, "
        "{}]",
        NULL);
    struct cel_message m;
    char err[256];
    ASSERT_OK(parse_str(msg, &m, err, sizeof err));
    cel__message_release(&m);
    free(msg);

    /* size limit, both the default and a caller's */
    struct cel_message_limits lim = {.max_bytes = 100, .max_depth = 0};
    expect_fail("oversized", add, strlen(add), &lim, CEL_ETOOBIG, "limit is 100");
    size_t big = (size_t)CEL_MESSAGE_MAX_BYTES + 1;
    char *huge = malloc(big);
    ASSERT(huge != NULL);
    memset(huge, ' ', big);
    expect_fail("over default limit", huge, big, NULL, CEL_ETOOBIG, "bytes");
    free(huge);
    lim.max_bytes = 0;
    lim.max_depth = 2;
    expect_fail("caller depth", add, strlen(add), &lim, CEL_EDEPTH, "2 levels");

    free(add);
}

/* --- tolerance ------------------------------------------------------------ */

static void test_tolerates_what_python_tolerates(void)
{
    struct cel_message m;
    char err[256];

    /* plain JSON body, no body_encoding; embed null; minimal headers */
    char *msg = with_body("[[1], {\"k\": \"v\"}, null]", NULL);
    ASSERT_OK(parse_str(msg, &m, err, sizeof err));
    ASSERT_EQ(json_integer_value(json_array_get(m.args, 0)), 1);
    ASSERT_STREQ(json_string_value(json_object_get(m.kwargs, "k")), "v");
    ASSERT(json_is_object(m.embed));
    ASSERT(m.root_id == NULL && m.origin == NULL);
    ASSERT_EQ(m.retries, 0);
    cel__message_release(&m);
    free(msg);

    /* eta spellings, unknown headers kept on re-encode, redelivered */
    static const struct {
        const char *eta;
        long long us;
    } etas[] = {
        {"2026-11-27T18:10:32.528757Z", 1795803032528757LL},
        {"2026-11-27T18:10:32.528757", 1795803032528757LL},
        {"2026-11-27T20:10:32.528757+02:00", 1795803032528757LL},
        {"2026-11-27T18:10:32+00:00", 1795803032000000LL},
        {"2026-11-27T18:10:32", 1795803032000000LL},
    };
    for (size_t i = 0; i < sizeof etas / sizeof etas[0]; i++) {
        char hdrs[256];
        snprintf(hdrs, sizeof hdrs,
                 "{\"eta\": \"%s\", \"stamps\": {\"a\": 1}, \"redelivered\": true, "
                 "\"timelimit\": [null, 5.5]}",
                 etas[i].eta);
        msg = with_body("[[], {}, {}]", hdrs);
        ASSERT_OK(parse_str(msg, &m, err, sizeof err));
        ASSERT_EQ(m.eta_us, etas[i].us);
        ASSERT(m.redelivered);
        ASSERT(m.time_limit == 0.0 && m.soft_time_limit == 5.5);
        char *again = cel__message_encode(&m);
        ASSERT_STREQ(again, msg);
        ASSERT_CONTAINS(again, "\"stamps\": {\"a\": 1}");
        free(again);
        cel__message_release(&m);
        free(msg);
    }

    /* integer delivery_tag, unknown properties, no properties at all */
    char *add = golden("add_delay.json", NULL);
    char *p = strstr(add, "\"ec0b81ee");
    ASSERT(p != NULL);
    strcpy(p, "12345}}"); /* "delivery_tag": 12345 */
    ASSERT_OK(parse_str(add, &m, err, sizeof err));
    ASSERT_STREQ(m.task, "app.add");
    cel__message_release(&m);
    free(add);

    ASSERT_OK(parse_str("{\"body\": \"[[], {}, {}]\", \"content-type\": \"application/json; "
                        "charset=utf-8\", \"headers\": {\"task\": \"t\", \"id\": \"i\"}}",
                        &m, err, sizeof err));
    ASSERT_STREQ(m.exchange, "");
    ASSERT_STREQ(m.routing_key, "");
    ASSERT(m.correlation_id == NULL);
    cel__message_release(&m);
}

/* --- JSON conventions --------------------------------------------------- */

static void test_unicode_round_trip(void)
{
    /* "héllo ✓ 😀" as UTF-8 */
    const char *word = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80";
    json_t *args = json_pack("[s]", word);
    struct cel_task_spec s = {.task = "t", .args = args, .kwargs_json = "{\"w\": \"\\u00e9\"}"};
    char *out = NULL;
    char err[256];
    ASSERT_OK(cel__message_build(&s, &out, NULL, NULL, err, sizeof err));
    for (const char *c = out; *c; c++)
        ASSERT((unsigned char)*c < 0x80); /* ensure_ascii */
    /* argsrepr is Python's repr, then JSON-escaped in lower-case hex */
    ASSERT_CONTAINS(out, "\"argsrepr\": \"('h\\u00e9llo \\u2713 \\ud83d\\ude00',)\"");

    struct cel_message m;
    ASSERT_OK(parse_str(out, &m, err, sizeof err));
    ASSERT_STREQ(json_string_value(json_array_get(m.args, 0)), word);
    ASSERT_STREQ(json_string_value(json_object_get(m.kwargs, "w")), "\xc3\xa9");
    char *body = body_text(&m);
    ASSERT_STREQ(body,
                 "[[\"h\\u00e9llo \\u2713 \\ud83d\\ude00\"], {\"w\": \"\\u00e9\"}, " DEFAULT_EMBED
                 "]");
    free(body);
    cel__message_release(&m);
    free(out);
    json_decref(args);
}

static void test_int_and_real_kept_apart(void)
{
    struct cel_task_spec s = {.task = "t", .args_json = "[5, 5.0, 0.1, 1e300, -0.0, 2]"};
    char *out = NULL;
    char err[256];
    ASSERT_OK(cel__message_build(&s, &out, NULL, NULL, err, sizeof err));
    struct cel_message m;
    ASSERT_OK(parse_str(out, &m, err, sizeof err));
    ASSERT(json_is_integer(json_array_get(m.args, 0)));
    ASSERT(json_is_real(json_array_get(m.args, 1)));
    ASSERT(json_real_value(json_array_get(m.args, 1)) == 5.0);
    ASSERT(json_is_integer(json_array_get(m.args, 5)));
    char *body = body_text(&m);
    ASSERT_STREQ(body, "[[5, 5.0, 0.1, 1e+300, -0.0, 2], {}, " DEFAULT_EMBED "]");
    free(body);
    ASSERT_STREQ(hdr_str(&m, "argsrepr"), "(5, 5.0, 0.1, 1e+300, -0.0, 2)");
    cel__message_release(&m);
    free(out);
}

static void test_json_dump_matches_python(void)
{
    /* Expected strings produced by Python's json.dumps. */
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"[5, 5.0, 0.1, 1e300, -0.0, 2.5, 1e16, 123456789.125, 1e-7, 3.0e-5, -1.5, 1e22, "
         "9007199254740993.0, 0.3, 0.6666666666666666, 1e15, 0.0001, 0.00001]",
         "[5, 5.0, 0.1, 1e+300, -0.0, 2.5, 1e+16, 123456789.125, 1e-07, 3e-05, -1.5, 1e+22, "
         "9007199254740992.0, 0.3, 0.6666666666666666, 1000000000000000.0, 0.0001, 1e-05]"},
        {"[\"\\u00e9\\u2713\\ud83d\\ude00\\u001b\\u007f/\\\"\\\\\\n\\t\\r\\b\\f\"]",
         "[\"\\u00e9\\u2713\\ud83d\\ude00\\u001b\\u007f/\\\"\\\\\\n\\t\\r\\b\\f\"]"},
        {"{\"b\":1,\"a\":[true,false,null,{}],\"\\u00e9\":[]}",
         "{\"b\": 1, \"a\": [true, false, null, {}], \"\\u00e9\": []}"},
        {"\"a\\u0000b\"", "\"a\\u0000b\""},
        {"-9223372036854775808", "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[200];
        json_t *v = cel__json_parse(cases[i].in, strlen(cases[i].in), 64, err, sizeof err);
        if (!v)
            cel_test_fail(__FILE__, __LINE__, "case %zu: %s", i, err);
        char *s = cel__json_dump(v);
        ASSERT_STREQ(s, cases[i].want);
        free(s);
        json_decref(v);
    }
    char err[200];
    ASSERT(cel__json_parse("[1", 2, 64, err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "invalid JSON");
}

/* The parser itself enforces the depth limit (no scan before it): only
 * real containers count, not brackets in strings or after escapes. */
static void test_json_depth(void)
{
    char err[128];
    const char *s = "[\"[[[\\\"[[[\", \"\\\\\", {\"k\": \"}}}\"}]";
    json_t *v = cel__json_parse(s, strlen(s), 2, err, sizeof err);
    ASSERT(v != NULL);
    json_decref(v);
    ASSERT(cel__json_parse(s, strlen(s), 1, err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "deeper than 1");
    char *d = deep(1000);
    ASSERT(cel__json_parse(d, strlen(d), 64, err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "deeper than 64");
    ASSERT((v = cel__json_parse(d, strlen(d), 1000, err, sizeof err)) != NULL);
    json_decref(v);
    free(d);
}

static void test_exception_and_result_meta(void)
{
    json_t *exc = cel__exception_new("ValueError", NULL, "boom");
    char *s = cel__json_dump(exc);
    ASSERT_STREQ(s, "{\"exc_type\": \"ValueError\", \"exc_message\": [\"boom\"], \"exc_module\": "
                    "\"builtins\"}");
    free(s);

    /* byte-identical to the captured FAILURE meta */
    char *want = golden("result_failure.json", NULL);
    json_t *cap = json_loads(want, 0, NULL);
    ASSERT(cap != NULL);
    const char *tb = json_string_value(json_object_get(cap, "traceback"));
    json_t *meta = cel__result_meta_new("75893be9-a428-44be-a88c-64d0987779ac", "FAILURE", exc, tb,
                                        NULL, NULL, 1795803025254496LL);
    ASSERT(meta != NULL);
    s = cel__json_dump(meta);
    ASSERT_STREQ(s, want);
    free(s);
    json_decref(meta);
    json_decref(cap);
    free(want);

    /* and to the captured SUCCESS meta */
    want = golden("result_success.json", NULL);
    meta = cel__result_meta_new(ADD_ID, "SUCCESS", json_integer(5), NULL, NULL, NULL,
                                1795802954392338LL);
    s = cel__json_dump(meta);
    ASSERT_STREQ(s, want);
    free(s);
    json_decref(meta);
    free(want);

    /* not ready: date_done null; optional ids in Celery's place */
    meta = cel__result_meta_new("t1", "PROGRESS", json_pack("{s:i}", "done", 1), NULL, "g1", "p1",
                                1795802954392338LL);
    s = cel__json_dump(meta);
    ASSERT_STREQ(s, "{\"status\": \"PROGRESS\", \"result\": {\"done\": 1}, \"traceback\": null, "
                    "\"children\": [], \"date_done\": null, \"group_id\": \"g1\", \"parent_id\": "
                    "\"p1\", \"task_id\": \"t1\"}");
    free(s);
    json_decref(meta);

    /* ready with no time given: now, naive */
    meta = cel__result_meta_new("t2", "REVOKED", NULL, NULL, NULL, NULL, 0);
    const char *dd = json_string_value(json_object_get(meta, "date_done"));
    ASSERT(dd != NULL && strlen(dd) == 26 && dd[10] == 'T');
    ASSERT(json_is_null(json_object_get(meta, "result")));
    json_decref(meta);
}

/* The message corpus says in each file's name what it is: a broken_*
 * envelope is refused with a reason, any other one parses. */
static void test_message_corpus(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/message", cel_test_env("CEL_TEST_SOURCE_DIR"));
    DIR *d = opendir(dir);
    ASSERT(d != NULL);
    struct dirent *e;
    int broken = 0, valid = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096 + 256];
        int pn = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ASSERT(pn > 0 && (size_t)pn < sizeof path);
        size_t len;
        char *text = cel_test_read_file(path, &len);
        ASSERT(text != NULL);
        struct cel_message m;
        char err[256] = "";
        int rc = cel__message_parse(text, len, NULL, &m, err, sizeof err);
        bool want_broken = strncmp(e->d_name, "broken_", 7) == 0;
        if (want_broken ? rc == CEL_OK : rc != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "%s: rc %s (%s)", e->d_name, cel_err_name(rc), err);
        if (want_broken)
            ASSERT(err[0] != '\0');
        broken += want_broken;
        valid += !want_broken;
        cel__message_release(&m);
        free(text);
    }
    closedir(d);
    ASSERT(broken >= 10 && valid >= 5);
}

/* A message sent again keeps everything but the headers it is told to
 * set, its delivery tag and the marks of the old delivery. */
static void test_resend(void)
{
    struct cel_task_spec s = {.task = "tasks.add", .id = "id-r", .args_json = "[1]", .retries = 2};
    char *out = NULL, err[256];
    size_t outlen = 0;
    ASSERT_OK(cel__message_build(&s, &out, &outlen, NULL, err, sizeof err));
    json_t *root = json_loads(out, 0, NULL);
    json_object_set_new(json_object_get(root, "headers"), "redelivered", json_true());
    json_object_set_new(json_object_get(json_object_get(root, "properties"), "delivery_info"),
                        "redelivered", json_true());
    char *marked = cel__json_dump(root);
    json_decref(root);
    struct cel_message m;
    ASSERT_OK(cel__message_parse(marked, strlen(marked), NULL, &m, err, sizeof err));
    size_t len = 0;
    char *again = cel__message_resend(&m, "tag-2", json_pack("{s:i}", "celeriac_passes", 4), &len);
    ASSERT(again != NULL);
    ASSERT_EQ(len, strlen(again));
    struct cel_message n;
    ASSERT_OK(cel__message_parse(again, len, NULL, &n, err, sizeof err));
    json_t *h = json_object_get(n.root, "headers");
    json_t *p = json_object_get(n.root, "properties");
    ASSERT_EQ(json_integer_value(json_object_get(h, "celeriac_passes")), 4);
    ASSERT(json_object_get(h, "redelivered") == NULL);
    ASSERT(json_object_get(json_object_get(p, "delivery_info"), "redelivered") == NULL);
    ASSERT_STREQ(json_string_value(json_object_get(p, "delivery_tag")), "tag-2");
    ASSERT_STREQ(n.id, "id-r");
    ASSERT_EQ(n.retries, 2);
    ASSERT_STREQ(json_string_value(json_object_get(n.root, "body")),
                 json_string_value(json_object_get(m.root, "body")));
    cel__message_release(&n);
    free(again);
    /* no headers object: refused, and the headers given are not leaked */
    json_object_del(m.root, "headers");
    ASSERT(cel__message_resend(&m, "t", json_pack("{s:i}", "x", 1), NULL) == NULL);
    cel__message_release(&m);
    free(marked);
    free(out);
}

int main(void)
{
    TEST_RUN(test_golden_add_delay_fields);
    TEST_RUN(test_golden_reencode_same_bytes);
    TEST_RUN(test_golden_kwargs_variant);
    TEST_RUN(test_build_parse_round_trip);
    TEST_RUN(test_build_defaults);
    TEST_RUN(test_build_rejects);
    TEST_RUN(test_envelope_cap);
    TEST_RUN(test_malformed_table);
    TEST_RUN(test_tolerates_what_python_tolerates);
    TEST_RUN(test_unicode_round_trip);
    TEST_RUN(test_int_and_real_kept_apart);
    TEST_RUN(test_json_dump_matches_python);
    TEST_RUN(test_json_depth);
    TEST_RUN(test_message_corpus);
    TEST_RUN(test_exception_and_result_meta);
    TEST_RUN(test_resend);
    return 0;
}
