/* test_url.c - broker/backend URL parsing, sqlite paths, query and redaction. */
#include "testing.h"

#include "celeriac/error.h"
#include "core/schemes.h"
#include "core/url.h"

struct good_case {
    const char *text;
    const char *scheme, *user, *password, *host;
    int port;
    const char *path, *query;
};

static void expect_str(const char *what, const char *text, const char *got, const char *want)
{
    if (!want && !got)
        return;
    if (!want || !got || strcmp(want, got) != 0)
        cel_test_fail(__FILE__, __LINE__, "%s: %s: got \"%s\", want \"%s\"", text, what,
                      got ? got : "(null)", want ? want : "(null)");
}

static void test_good_urls(void)
{
    static const struct good_case cases[] = {
        {"sqlite:///celeriac.db", "sqlite", NULL, NULL, NULL, 0, "/celeriac.db", NULL},
        {"sqlite:////var/lib/x.db", "sqlite", NULL, NULL, NULL, 0, "//var/lib/x.db", NULL},
        {"sqlite://", "sqlite", NULL, NULL, NULL, 0, NULL, NULL},
        {"sqlite://./x.db", "sqlite", NULL, NULL, NULL, 0, "./x.db", NULL},
        {"SQLite:///a.db?mode=wal", "sqlite", NULL, NULL, NULL, 0, "/a.db", "mode=wal"},
        {"memory://", "memory", NULL, NULL, NULL, 0, NULL, NULL},
        {"memory://bus1", "memory", NULL, NULL, "bus1", 0, NULL, NULL},
        {"redis://localhost", "redis", NULL, NULL, "localhost", 0, NULL, NULL},
        {"redis://localhost:6379/0", "redis", NULL, NULL, "localhost", 6379, "/0", NULL},
        {"redis://:s3cret@redis.example.com:6380/2", "redis", NULL, "s3cret", "redis.example.com",
         6380, "/2", NULL},
        {"redis://alice:p%40ss%3Aw@h/", "redis", "alice", "p@ss:w", "h", 0, "/", NULL},
        {"redis://u:p@ss@h:1", "redis", "u", "p@ss", "h", 1, NULL, NULL},
        {"rediss://h:65535/15?ssl_cert_reqs=required", "rediss", NULL, NULL, "h", 65535, "/15",
         "ssl_cert_reqs=required"},
        {"redis://[::1]:6379/0", "redis", NULL, NULL, "::1", 6379, "/0", NULL},
        {"redis://[fe80::1:2]", "redis", NULL, NULL, "fe80::1:2", 0, NULL, NULL},
        {"redis://", "redis", NULL, NULL, NULL, 0, NULL, NULL},
        {"redis+socket:///run/redis.sock?db=3", "redis+socket", NULL, NULL, NULL, 0,
         "/run/redis.sock", "db=3"},
        {"redis+socket://:pw@/tmp/r.sock", "redis+socket", NULL, "pw", NULL, 0, "/tmp/r.sock",
         NULL},
        {"amqp://guest:guest@localhost:5672//", "amqp", "guest", "guest", "localhost", 5672, "//",
         NULL},
        {"amqp://guest@rabbit/%2Fprod", "amqp", "guest", NULL, "rabbit", 0, "/%2Fprod", NULL},
        {"amqps://u:p@10.0.0.1:5671/v?heartbeat=30", "amqps", "u", "p", "10.0.0.1", 5671, "/v",
         "heartbeat=30"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct good_case *c = &cases[i];
        struct cel_url u;
        char err[256];
        int rc = cel__url_parse(c->text, &u, err, sizeof err);
        if (rc != 0)
            cel_test_fail(__FILE__, __LINE__, "%s: rc %d: %s", c->text, rc, err);
        expect_str("scheme", c->text, u.scheme, c->scheme);
        expect_str("user", c->text, u.user, c->user);
        expect_str("password", c->text, u.password, c->password);
        expect_str("host", c->text, u.host, c->host);
        expect_str("path", c->text, u.path, c->path);
        expect_str("query", c->text, u.query, c->query);
        if (u.port != c->port)
            cel_test_fail(__FILE__, __LINE__, "%s: port %d, want %d", c->text, u.port, c->port);
        cel__url_release(&u);
        ASSERT(u.scheme == NULL);
    }
}

struct bad_case {
    const char *text;
    int code;
    const char *msg;
};

static void test_bad_urls(void)
{
    static const struct bad_case cases[] = {
        {"", CEL_EURL, "empty URL"},
        {"localhost:6379", CEL_EURL, "missing scheme"},
        {"redis:localhost", CEL_EURL, "missing '//' after 'redis:'"},
        {"http://example.com", CEL_ESCHEME, "unsupported scheme 'http'"},
        {"redis://h:0", CEL_EURL, "out of range"},
        {"redis://h:65536", CEL_EURL, "out of range"},
        {"redis://h:99999999999999999999", CEL_EURL, "out of range"},
        {"redis://h:", CEL_EURL, "missing port"},
        {"redis://h:63x", CEL_EURL, "port must be a number"},
        {"redis://::1:6379", CEL_EURL, "brackets"},
        {"redis://[::1", CEL_EURL, "missing ']'"},
        {"redis://[::1]x", CEL_EURL, "after ']'"},
        {"redis://[zz::1]", CEL_EURL, "IPv6"},
        {"redis://[]", CEL_EURL, "IPv6"},
        {"redis://h o st", CEL_EURL, "space"},
        {"redis://h\n", CEL_EURL, "control"},
        {"redis://:pa#ss@h", CEL_EURL, "%23"},
        {"redis://:p%zz@h", CEL_EURL, "percent-escape"},
        {"redis://:p%0@h", CEL_EURL, "percent-escape"},
        {"redis://:p%00x@h", CEL_EURL, "percent-escape"},
        {"redis://h/abc", CEL_EURL, "database must be a number"},
        {"redis://ho$t", CEL_EURL, "invalid character '$' in host"},
        {"redis+socket://host/x.sock", CEL_EURL, "no host"},
        {"redis+socket://", CEL_EURL, "missing socket path"},
        {"memory://a/b", CEL_EURL, "only a name"},
        {"memory://u@a", CEL_EURL, "only a name"},
        {"sqlite:///a%zz.db", CEL_EURL, "percent-escape in path"},
        {"amqp://h/?x=%", CEL_EURL, "percent-escape in query"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        struct cel_url u;
        char err[256];
        int rc = cel__url_parse(c->text, &u, err, sizeof err);
        if (rc != c->code)
            cel_test_fail(__FILE__, __LINE__, "%s: rc %d, want %d (%s)", c->text, rc, c->code, err);
        if (!strstr(err, c->msg))
            cel_test_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", c->text, err,
                          c->msg);
        cel__url_release(&u);
    }
}

static void test_error_never_shows_password(void)
{
    struct cel_url u;
    char err[256];
    ASSERT_EQ(cel__url_parse("redis://:topsecret@h:0", &u, err, sizeof err), CEL_EURL);
    ASSERT(strstr(err, "topsecret") == NULL);
    cel__url_release(&u);
}

static void test_length_limit(void)
{
    size_t n = CEL_URL_MAX + 1;
    char *text = malloc(n + 1);
    ASSERT(text);
    memset(text, 'a', n);
    memcpy(text, "sqlite:///", 10);
    text[n] = '\0';
    struct cel_url u;
    char err[256];
    ASSERT_EQ(cel__url_parse(text, &u, err, sizeof err), CEL_EURL);
    ASSERT_CONTAINS(err, "longer than 4096");
    cel__url_release(&u);
    text[CEL_URL_MAX] = '\0'; /* exactly at the limit: accepted */
    ASSERT_OK(cel__url_parse(text, &u, err, sizeof err));
    cel__url_release(&u);
    free(text);
}

static void test_sqlite_path(void)
{
    static const char *const cases[][2] = {
        {"sqlite:///celeriac.db", "celeriac.db"},
        {"sqlite:////abs/x.db", "/abs/x.db"},
        {"sqlite://", "celeriac.db"},
        {"sqlite:///", "celeriac.db"},
        {"sqlite://./x.db", "./x.db"},
        {"sqlite:///data/q.db?timeout=5", "data/q.db"},
        {"sqlite:///my%20file.db", "my file.db"},
        {"sqlite:///:memory:", ":memory:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cel_url u;
        char err[256];
        ASSERT_OK(cel__url_parse(cases[i][0], &u, err, sizeof err));
        char *p = cel__url_sqlite_path(&u);
        expect_str("sqlite path", cases[i][0], p, cases[i][1]);
        free(p);
        cel__url_release(&u);
    }
    struct cel_url u;
    char err[256];
    ASSERT_OK(cel__url_parse("redis://h", &u, err, sizeof err));
    ASSERT(cel__url_sqlite_path(&u) == NULL);
    cel__url_release(&u);
}

static void test_query_get(void)
{
    struct cel_url u;
    char err[256];
    ASSERT_OK(
        cel__url_parse("redis+socket:///s.sock?db=3&name=a+b%21&flag&db=9", &u, err, sizeof err));
    char *v = cel__url_query_get(&u, "db");
    ASSERT_STREQ(v, "3"); /* first one wins */
    free(v);
    v = cel__url_query_get(&u, "name");
    ASSERT_STREQ(v, "a b!");
    free(v);
    v = cel__url_query_get(&u, "flag");
    ASSERT_STREQ(v, "");
    free(v);
    ASSERT(cel__url_query_get(&u, "missing") == NULL);
    ASSERT(cel__url_query_get(&u, "d") == NULL);
    cel__url_release(&u);

    ASSERT_OK(cel__url_parse("redis://h", &u, err, sizeof err));
    ASSERT(cel__url_query_get(&u, "db") == NULL);
    cel__url_release(&u);
}

static void test_redact(void)
{
    static const char *const cases[][2] = {
        {"redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"},
        {"redis://user:s3cret@h", "redis://user:***@h"},
        {"amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"},
        {"redis://u:p@ss@h/1", "redis://u:***@h/1"},
        {"amqp://guest@rabbit//", "amqp://guest@rabbit//"},
        {"redis://h:6379/0", "redis://h:6379/0"},
        {"redis://u:@h", "redis://u:@h"},
        {"sqlite:///celeriac.db", "sqlite:///celeriac.db"},
        {"sqlite:///a:b@c.db", "sqlite:///a:b@c.db"},
        {"not a url", "not a url"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        cel__url_redact(cases[i][0], buf, sizeof buf);
        expect_str("redacted", cases[i][0], buf, cases[i][1]);
    }
    /* Truncation keeps the buffer terminated and never leaks the secret. */
    char small[12];
    cel__url_redact("redis://:s3cret@hostname:6379", small, sizeof small);
    ASSERT_STREQ(small, "redis://:**");
    char tiny[1];
    cel__url_redact("redis://:s@h", tiny, sizeof tiny);
    ASSERT_STREQ(tiny, "");
}

static void test_scheme_list(void)
{
    const struct cel_scheme schemes[] = {
        {"sqlite", NULL}, {"memory", NULL}, {"redis+socket", NULL}};
    char buf[64];
    cel__scheme_list(schemes, 3, buf, sizeof buf);
    ASSERT_STREQ(buf, "sqlite, memory, redis+socket");
    cel__scheme_list(schemes, 0, buf, sizeof buf);
    ASSERT_STREQ(buf, "");
    /* too small: cut, terminated, and nothing written past the end */
    char small[12];
    memset(small, 'X', sizeof small);
    cel__scheme_list(schemes, 3, small, 10);
    ASSERT_STREQ(small, "sqlite, m");
    ASSERT(small[10] == 'X' && small[11] == 'X');
}

int main(void)
{
    TEST_RUN(test_good_urls);
    TEST_RUN(test_bad_urls);
    TEST_RUN(test_error_never_shows_password);
    TEST_RUN(test_length_limit);
    TEST_RUN(test_sqlite_path);
    TEST_RUN(test_query_get);
    TEST_RUN(test_redact);
    TEST_RUN(test_scheme_list);
    return 0;
}
