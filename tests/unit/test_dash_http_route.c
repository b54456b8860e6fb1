/*
 * test_dash_http_route.c - the dashboard's pure HTTP functions: route
 * matching, percent-decoding, the static path sanitiser and the
 * constant-time comparison.
 */
#include "dashboard/http.h"
#include "testing.h"

static void test_match(void)
{
    struct cel_dash_http_params p;
    ASSERT_EQ(cel__dash_http_match("/api/workers", "/api/workers", &p), 1);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(cel__dash_http_match("/api/workers", "/api/workers/", &p), 0);
    ASSERT_EQ(cel__dash_http_match("/api/workers", "/api/worker", &p), 0);
    ASSERT_EQ(cel__dash_http_match("/api/workers", "/api/%77orkers", &p), 0);
    ASSERT_EQ(cel__dash_http_match("/", "/", &p), 1);

    ASSERT_EQ(cel__dash_http_match("/api/task/{op}/{id}", "/api/task/revoke/ab%2Fc", &p), 1);
    ASSERT_EQ(p.n, 2);
    ASSERT_EQ(p.name_lens[0], 2);
    ASSERT(strncmp(p.names[0], "op", 2) == 0);
    ASSERT_STREQ(p.values[0], "revoke");
    ASSERT_STREQ(p.values[1], "ab/c");
    cel__dash_http_params_release(&p);
    ASSERT_EQ(p.n, 0);

    /* no empty parameter, no bad escape, no NUL */
    ASSERT_EQ(cel__dash_http_match("/a/{id}", "/a/", &p), 0);
    ASSERT_EQ(cel__dash_http_match("/a/{id}", "/a/%zz", &p), 0);
    ASSERT_EQ(cel__dash_http_match("/a/{id}", "/a/x%00", &p), 0);
    ASSERT_EQ(cel__dash_http_match("/a/{id}/b", "/a/x/c", &p), 0);
    ASSERT_EQ(p.n, 0); /* released on a late mismatch */
}

static void test_decode(void)
{
    char *s = cel__dash_http_decode("a%20b+c%2B", 10, true);
    ASSERT_STREQ(s, "a b c+");
    free(s);
    s = cel__dash_http_decode("a+b", 3, false);
    ASSERT_STREQ(s, "a+b");
    free(s);
    ASSERT(cel__dash_http_decode("%", 1, false) == NULL);
    ASSERT(cel__dash_http_decode("%4", 2, false) == NULL);
    ASSERT(cel__dash_http_decode("%g0", 3, false) == NULL);
    ASSERT(cel__dash_http_decode("%00", 3, false) == NULL);
    /* n bounds the input: a '%' cut off at n is incomplete */
    ASSERT(cel__dash_http_decode("ab%41", 4, false) == NULL);
}

static void test_static_path(void)
{
    char out[64];
    ASSERT_OK(cel__dash_http_static_path("css/app.css", out, sizeof out));
    ASSERT_STREQ(out, "css/app.css");
    ASSERT_OK(cel__dash_http_static_path("a%20b.js", out, sizeof out));
    ASSERT_STREQ(out, "a b.js");
    static const char *const bad[] = {
        "",          "/etc/passwd", "%2fetc", "..",      "../x", "a/../../x",
        "%2e%2e/x",  "a/%2E%2E",    "./x",    "a/./b",   "a//b", "a/",
        ".git/HEAD", "a\\..\\b",    "a%5c..", "a%00.js", "%zz",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cel__dash_http_static_path(bad[i], out, sizeof out) != CEL_EINVAL)
            cel_test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
    /* a double-encoded dot is a literal "%2e" file name, not a dot */
    ASSERT_OK(cel__dash_http_static_path("%252e%252e", out, sizeof out));
    ASSERT_STREQ(out, "%2e%2e");
    /* too long for out */
    char longp[100];
    memset(longp, 'a', 99);
    longp[99] = '\0';
    ASSERT_EQ(cel__dash_http_static_path(longp, out, sizeof out), CEL_EINVAL);
}

static void test_consttime_eq(void)
{
    ASSERT(cel__dash_http_consttime_eq("secret", "secret"));
    ASSERT(!cel__dash_http_consttime_eq("secreT", "secret"));
    ASSERT(!cel__dash_http_consttime_eq("secret!", "secret"));
    ASSERT(!cel__dash_http_consttime_eq("secre", "secret"));
    ASSERT(!cel__dash_http_consttime_eq("", "secret"));
    ASSERT(cel__dash_http_consttime_eq("", ""));
}

int main(void)
{
    TEST_RUN(test_match);
    TEST_RUN(test_decode);
    TEST_RUN(test_static_path);
    TEST_RUN(test_consttime_eq);
    return 0;
}
