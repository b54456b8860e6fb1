/*
 * test_json_escape.c - the one JSON string escaper, against Python.
 *
 * Every expected string below is what Python 3's json.dumps(s) prints for
 * the same text (computed with /usr/bin/python3 when the test was
 * written); invalid UTF-8 is what bytes.decode() rejects, at the offset
 * where it rejects it.
 */
#include <jansson.h>
#include <stdlib.h>

#include "core/json_escape.h"
#include "core/json_util.h"
#include "proto/message.h"
#include "testing.h"

struct good_case {
    const char *in;
    size_t len;
    const char *want; /* json.dumps(in.decode()) */
};

static const struct good_case good[] = {
    {"", 0, "\"\""},
    {"hello, world", 12, "\"hello, world\""},
    {"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
     "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f",
     33,
     "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e"
     "\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a"
     "\\u001b\\u001c\\u001d\\u001e\\u001f\\u007f\""},
    {"say \"hi\" \\ C:\\path\\ \"\" \\\\", 25,
     "\"say \\\"hi\\\" \\\\ C:\\\\path\\\\ \\\"\\\" \\\\\\\\\""},
    {"tab\x09here\x0anew\x0d"
     "cr\x08"
     "bs\x0c"
     "ff/slash ~ DEL\x7f!",
     35, "\"tab\\there\\nnew\\rcr\\bbs\\fff/slash ~ DEL\\u007f!\""},
    {"h\xc3\xa9llo \xc2\xa0\xc2\x80\xdf\xbf", 13, "\"h\\u00e9llo \\u00a0\\u0080\\u07ff\""},
    {"\xe0\xa0\x80 \xe2\x9c\x93 \xe2\x82\xac \xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbd \xef\xbf\xbf",
     27, "\"\\u0800 \\u2713 \\u20ac \\ud7ff \\ue000 \\ufffd \\uffff\""},
    {"\xf0\x9f\x98\x80 \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf \xf0\x9d\x84\x9e", 19,
     "\"\\ud83d\\ude00 \\ud800\\udc00 \\udbff\\udfff \\ud834\\udd1e\""},
    {"mixed: \xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\"\\\x0a\x01\x7f end", 25,
     "\"mixed: \\u00e9\\u2713\\ud83d\\ude00\\\"\\\\\\n\\u0001\\u007f end\""},
    {"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 72,
     "\"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\""},
    {"0123456\x0a"
     "89abcdef\"hijklmno\xc3\xa9qrstuvw\xf0\x9f\x98\x80"
     "ABCDEFG\x7fIJKLMNOP",
     54, "\"0123456\\n89abcdef\\\"hijklmno\\u00e9qrstuvw\\ud83d\\ude00ABCDEFG\\u007fIJKLMNOP\""},
    {"abcdefg\xc3\xa9", 9, "\"abcdefg\\u00e9\""},
    {"abcdefgh\xc3\xa9ijklmnop", 18, "\"abcdefgh\\u00e9ijklmnop\""},
    {"\xc3\xa9"
     "abcdefghijklmnopqrstuvwx",
     26, "\"\\u00e9abcdefghijklmnopqrstuvwx\""},
};

struct bad_case {
    const char *in;
    size_t len;
    size_t at;          /* where Python's decode() fails */
    const char *prefix; /* json.dumps(in[:at].decode()) without quotes */
    const char *replaced;
};

static const struct bad_case bad[] = {
    /* overlong forms */
    {"ab\xc0\x80"
     "cd",
     6, 2, "ab", "ab\\ufffd\\ufffdcd"},
    {"\xe0\x80\xaf", 3, 0, "", "\\ufffd\\ufffd\\ufffd"},
    {"\xf0\x82\x82\xac", 4, 0, "", "\\ufffd\\ufffd\\ufffd\\ufffd"},
    /* lone continuation bytes, bytes that never start a sequence */
    {"x\x80y", 3, 1, "x", "x\\ufffdy"},
    {"\xbf", 1, 0, "", "\\ufffd"},
    {"\xff", 1, 0, "", "\\ufffd"},
    {"\xfe\xfe", 2, 0, "", "\\ufffd\\ufffd"},
    /* truncated at the end, or by an ASCII byte */
    {"ok\xc3", 3, 2, "ok", "ok\\ufffd"},
    {"ok\xe2\x9c", 4, 2, "ok", "ok\\ufffd\\ufffd"},
    {"ok\xf0\x9f\x98", 5, 2, "ok", "ok\\ufffd\\ufffd\\ufffd"},
    {"ok\xe2\x9cX", 5, 2, "ok", "ok\\ufffd\\ufffdX"},
    /* above U+10FFFF */
    {"\xf4\x90\x80\x80", 4, 0, "", "\\ufffd\\ufffd\\ufffd\\ufffd"},
    {"\xf5\x80\x80\x80", 4, 0, "", "\\ufffd\\ufffd\\ufffd\\ufffd"},
    /* UTF-16 surrogates encoded as UTF-8 (alone, and as a CESU-8 pair) */
    {"\xed\xa0\x80", 3, 0, "", "\\ufffd\\ufffd\\ufffd"},
    {"\xed\xbf\xbf", 3, 0, "", "\\ufffd\\ufffd\\ufffd"},
    {"\xed\xa0\xbd\xed\xb8\x80", 6, 0, "", "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"},
    /* escapes before the bad byte are written */
    {"\xc3\xa9\"\xff", 4, 3, "\\u00e9\\\"", "\\u00e9\\\"\\ufffd"},
};

#define NGOOD (sizeof good / sizeof good[0])
#define NBAD  (sizeof bad / sizeof bad[0])

/* Escapes into a buffer of exactly cel__json_escape_bound(n) bytes (ASan
 * sees any write past it) and returns "\"...\"" (caller frees). */
static char *quoted(const char *s, size_t n, unsigned flags, int *rc)
{
    size_t bound = cel__json_escape_bound(n);
    char *out = malloc(bound ? bound : 1);
    ASSERT(out != NULL);
    size_t k = 12345;
    *rc = cel__json_escape(out, s, n, &k, flags);
    ASSERT(k <= bound);
    char *q = malloc(k + 3);
    ASSERT(q != NULL);
    q[0] = '"';
    memcpy(q + 1, out, k);
    q[k + 1] = '"';
    q[k + 2] = '\0';
    free(out);
    return q;
}

static void test_matches_python(void)
{
    for (size_t i = 0; i < NGOOD; i++) {
        for (unsigned flags = 0; flags <= CEL_JSON_ESCAPE_REPLACE; flags++) {
            int rc;
            char *q = quoted(good[i].in, good[i].len, flags, &rc);
            ASSERT_EQ(rc, CEL_OK);
            ASSERT_STREQ(q, good[i].want);
            free(q);
        }
    }
}

static void test_invalid_utf8_fails_where_python_does(void)
{
    for (size_t i = 0; i < NBAD; i++) {
        size_t bound = cel__json_escape_bound(bad[i].len);
        char *out = malloc(bound);
        ASSERT(out != NULL);
        size_t k = 12345;
        ASSERT_EQ(cel__json_escape(out, bad[i].in, bad[i].len, &k, 0), CEL_EINVAL);
        /* what came before the bad sequence was written, and only that */
        ASSERT_EQ(k, strlen(bad[i].prefix));
        ASSERT(memcmp(out, bad[i].prefix, k) == 0);
        free(out);
    }
}

static void test_replace_writes_fffd_per_bad_byte(void)
{
    for (size_t i = 0; i < NBAD; i++) {
        int rc;
        char *q = quoted(bad[i].in, bad[i].len, CEL_JSON_ESCAPE_REPLACE, &rc);
        ASSERT_EQ(rc, CEL_OK);
        ASSERT_EQ(strlen(q), strlen(bad[i].replaced) + 2);
        ASSERT(memcmp(q + 1, bad[i].replaced, strlen(bad[i].replaced)) == 0);
        free(q);
    }
}

/* The worst cases fill the bound exactly: a control byte is 6 bytes, and
 * a replaced byte too; a 4-byte sequence is 12 (3 per byte). */
static void test_bound_is_tight(void)
{
    char ctl[64], junk[64];
    memset(ctl, 0x01, sizeof ctl);
    memset(junk, 0xff, sizeof junk);
    for (size_t n = 0; n <= sizeof ctl; n++) {
        int rc;
        char *q = quoted(ctl, n, 0, &rc);
        ASSERT_EQ(rc, CEL_OK);
        ASSERT_EQ(strlen(q), cel__json_escape_bound(n) + 2);
        free(q);
        q = quoted(junk, n, CEL_JSON_ESCAPE_REPLACE, &rc);
        ASSERT_EQ(rc, CEL_OK);
        ASSERT_EQ(strlen(q), cel__json_escape_bound(n) + 2);
        free(q);
    }
}

/*
 * The 8-byte fast path: one special character at every position of plain
 * strings of every length up to 40, so runs start and end on and off
 * 8-byte boundaries. The expected text is the plain parts around the
 * escape (each escape's form is checked against Python above).
 */
static void test_plain_runs_around_one_escape(void)
{
    static const struct {
        const char *in, *out;
    } specials[] = {
        {"\"", "\\\""},
        {"\\", "\\\\"},
        {"\n", "\\n"},
        {"\x7f", "\\u007f"},
        {"\x01", "\\u0001"},
        {"\xc3\xa9", "\\u00e9"},
        {"\xe2\x9c\x93", "\\u2713"},
        {"\xf0\x9f\x98\x80", "\\ud83d\\ude00"},
    };
    char in[64], want[128], plain_out[64];
    for (size_t s = 0; s < sizeof specials / sizeof specials[0]; s++) {
        size_t sl = strlen(specials[s].in), ol = strlen(specials[s].out);
        for (size_t len = 0; len <= 40; len++) {
            for (size_t at = 0; at <= len; at++) {
                for (size_t i = 0; i < len; i++)
                    in[i] = (char)('a' + i % 26);
                /* at == len: no special at all */
                size_t n = len, wn = len;
                memcpy(want, in, len);
                if (at < len) {
                    memmove(in + at + sl, in + at, len - at);
                    memcpy(in + at, specials[s].in, sl);
                    n = len + sl;
                    memmove(want + at + ol, want + at, len - at);
                    memcpy(want + at, specials[s].out, ol);
                    wn = len + ol;
                }
                ASSERT_EQ(cel__json_escape_plain(plain_out, in, n), at);
                ASSERT(memcmp(plain_out, in, at) == 0);
                int rc;
                char *q = quoted(in, n, 0, &rc);
                ASSERT_EQ(rc, CEL_OK);
                ASSERT_EQ(strlen(q), wn + 2);
                ASSERT(memcmp(q + 1, want, wn) == 0);
                free(q);
            }
        }
    }
}

/* A long base64-like run with a few escapes far apart. */
static void test_long_plain_text(void)
{
    size_t n = 100000;
    char *in = malloc(n);
    ASSERT(in != NULL);
    for (size_t i = 0; i < n; i++)
        in[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
    char *out = malloc(n);
    ASSERT(out != NULL);
    ASSERT_EQ(cel__json_escape_plain(out, in, n), n);
    ASSERT(memcmp(out, in, n) == 0);
    free(out);

    in[4097] = '\n';
    in[n - 1] = '"';
    int rc;
    char *q = quoted(in, n, 0, &rc);
    ASSERT_EQ(rc, CEL_OK);
    ASSERT_EQ(strlen(q), n + 2 + 2);
    ASSERT(memcmp(q + 1, in, 4097) == 0);
    ASSERT(memcmp(q + 1 + 4097, "\\n", 2) == 0);
    ASSERT(memcmp(q + 1 + 4099, in + 4098, n - 4099) == 0);
    ASSERT_STREQ(q + n + 1, "\\\"\"");
    free(q);
    free(in);
}

/* Both writers of JSON text use the escaper: the dumper for jansson
 * values, and the envelope writer, which refuses what is not UTF-8 with
 * the message it always gave. */
static void test_dumper_and_envelope_writer_agree(void)
{
    for (size_t i = 0; i < NGOOD; i++) {
        json_t *v = json_stringn(good[i].in, good[i].len);
        ASSERT(v != NULL);
        char *text = cel__json_dump(v);
        ASSERT_STREQ(text, good[i].want);
        free(text);
        json_decref(v);

        if (good[i].len == 0 || memchr(good[i].in, '\0', good[i].len))
            continue; /* task names are C strings and not empty */
        struct cel_task_spec spec = {.task = good[i].in};
        char *env = NULL, err[256] = "";
        ASSERT_OK(cel__message_build(&spec, &env, NULL, NULL, err, sizeof err));
        char needle[512];
        snprintf(needle, sizeof needle, "\"task\": %s, \"id\"", good[i].want);
        ASSERT_CONTAINS(env, needle);
        free(env);
    }
    for (size_t i = 0; i < NBAD; i++) {
        char name[16];
        memcpy(name, bad[i].in, bad[i].len);
        name[bad[i].len] = '\0';
        struct cel_task_spec spec = {.task = name};
        char *env = (char *)"sentinel", err[256] = "";
        ASSERT_EQ(cel__message_build(&spec, &env, NULL, NULL, err, sizeof err), CEL_EINVAL);
        ASSERT(env == NULL);
        ASSERT_STREQ(err, "cannot build message (out of memory or a string that is not valid "
                          "UTF-8)");
    }
}

int main(void)
{
    TEST_RUN(test_matches_python);
    TEST_RUN(test_invalid_utf8_fails_where_python_does);
    TEST_RUN(test_replace_writes_fffd_per_bad_byte);
    TEST_RUN(test_bound_is_tight);
    TEST_RUN(test_plain_runs_around_one_escape);
    TEST_RUN(test_long_plain_text);
    TEST_RUN(test_dumper_and_envelope_writer_agree);
    return 0;
}
