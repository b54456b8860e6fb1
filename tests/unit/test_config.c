/* test_config.c - the option table, setters, file and environment loaders. */
#include "testing.h"

#include <unistd.h>

#include "celeriac/config.h"
#include "celeriac/error.h"
#include "core/config_table.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f);
    fputs(text, f);
    fclose(f);
}

/* Dumps into a malloc'd string (caller frees). */
static char *dump_to_string(const cel_config *cfg, bool redact)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    if (redact)
        cel_config_dump(cfg, f);
    else
        cel__config_write(cfg, f, false);
    fclose(f);
    return buf;
}

static void test_defaults(void)
{
    cel_config *cfg = cel_config_new();
    ASSERT(cfg);
    ASSERT_STREQ(cel_config_get(cfg, "broker_url"), "sqlite:///celeriac.db");
    ASSERT_STREQ(cel_config_get(cfg, "result_backend"), "");
    ASSERT_STREQ(cel_config_get(cfg, "task_default_queue"), "celery");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 0);
    ASSERT_STREQ(cel_config_get(cfg, "worker_pool"), "prefork");
    ASSERT_STREQ(cel_config_get(cfg, "log_level"), "warning");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_prefetch_multiplier"), 4);
    ASSERT_EQ(cel_config_get_int(cfg, "result_expires"), 86400);
    ASSERT_EQ(cel_config_get_int(cfg, "broker_visibility_timeout"), 0); /* transport default */
    ASSERT_STREQ(cel_config_get(cfg, "worker_queues"), "");
    ASSERT_STREQ(cel_config_get(cfg, "worker_hostname"), "");
    ASSERT_EQ(cel_config_get_int(cfg, "task_acks_late"), 1);
    ASSERT_EQ(cel_config_get_int(cfg, "worker_max_tasks_per_child"), 0);
    ASSERT_EQ(cel_config_get_int(cfg, "task_track_started"), 1);
    ASSERT_STREQ(cel_config_origin(cfg, "broker_url"), "default");
    ASSERT_STREQ(cel_config_errmsg(cfg), "");
    ASSERT(cel_config_get(cfg, "nope") == NULL);
    ASSERT(cel_config_origin(cfg, "nope") == NULL);
    cel_config_free(cfg);
    cel_config_free(NULL);
}

/* Every default in the table must pass its own validation and already be
 * in canonical form, or cel_config_get() would hand out two spellings. */
static void test_table_defaults_are_canonical(void)
{
    ASSERT(cel__config_option_count() >= 14);
    cel_config *cfg = cel_config_new();
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        const struct cel__config_option *o = cel__config_option_at(i);
        ASSERT(o && o->help && *o->help);
        ASSERT_STREQ(cel__config_option_key(i), o->key);
        ASSERT_STREQ(cel__config_option_help(i), o->help);
        if (cel_config_set(cfg, o->key, o->def, "test") != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "default of %s rejected: %s", o->key,
                          cel_config_errmsg(cfg));
        ASSERT_STREQ(cel_config_get(cfg, o->key), o->def);
        ASSERT_EQ(cel__config_find(o->key), (long long)i);
    }
    ASSERT(cel__config_option_at(cel__config_option_count()) == NULL);
    cel_config_free(cfg);
}

static void test_set_each_type(void)
{
    cel_config *cfg = cel_config_new();
    /* url */
    ASSERT_OK(cel_config_set(cfg, "broker_url", "redis://localhost:6379/0", "cli"));
    ASSERT_STREQ(cel_config_get(cfg, "broker_url"), "redis://localhost:6379/0");
    ASSERT_STREQ(cel_config_origin(cfg, "broker_url"), "cli");
    /* string, with surrounding blanks ignored */
    ASSERT_OK(cel_config_set(cfg, "task_default_queue", "  images ", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "task_default_queue"), "images");
    ASSERT_STREQ(cel_config_origin(cfg, "task_default_queue"), "api");
    /* int */
    ASSERT_OK(cel_config_set(cfg, "worker_concurrency", "8", NULL));
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 8);
    ASSERT(cel_config_get_double(cfg, "worker_concurrency") == 8.0);
    ASSERT_OK(cel_config_set(cfg, "worker_concurrency", "+16", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "worker_concurrency"), "16");
    /* bool, every spelling */
    static const char *const yes[] = {"1", "true", "YES", "On"};
    static const char *const no[] = {"0", "False", "no", "OFF"};
    for (size_t i = 0; i < 4; i++) {
        ASSERT_OK(cel_config_set(cfg, "task_acks_late", no[i], NULL));
        ASSERT_STREQ(cel_config_get(cfg, "task_acks_late"), "false");
        ASSERT_EQ(cel_config_get_int(cfg, "task_acks_late"), 0);
        ASSERT_OK(cel_config_set(cfg, "task_acks_late", yes[i], NULL));
        ASSERT_STREQ(cel_config_get(cfg, "task_acks_late"), "true");
        ASSERT(cel_config_get_double(cfg, "task_acks_late") == 1.0);
    }
    /* enum: any case in, lower case out */
    ASSERT_OK(cel_config_set(cfg, "log_level", "INFO", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "log_level"), "info");
    ASSERT_OK(cel_config_set(cfg, "worker_pool", "solo", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "worker_pool"), "solo");
    /* list: trimmed, empty items dropped, duplicates removed */
    ASSERT_OK(cel_config_set(cfg, "worker_queues", " a , b,,a, c ", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "worker_queues"), "a,b,c");
    ASSERT_OK(cel_config_set(cfg, "worker_queues", "", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "worker_queues"), "");
    /* keys are case-insensitive and accept '-' for '_' (CLI --set) */
    ASSERT_OK(cel_config_set(cfg, "Worker-Prefetch-Multiplier", "10", NULL));
    ASSERT_EQ(cel_config_get_int(cfg, "worker_prefetch_multiplier"), 10);
    cel_config_free(cfg);
}

static void test_durations(void)
{
    static const struct {
        const char *in;
        const char *canon;
        double secs;
    } cases[] = {
        {"30", "30", 30},           {"30s", "30", 30},
        {"5m", "300", 300},         {"2h", "7200", 7200},
        {"1d", "86400", 86400},     {"1.5s", "1.5", 1.5},
        {"1.5m", "90", 90},         {"250ms", "0.25", 0.25},
        {"2w", "1209600", 1209600}, {"0", "0", 0},
        {".5h", "1800", 1800},      {"10S", "10", 10},
        {" 7d ", "604800", 604800},
    };
    cel_config *cfg = cel_config_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cel_config_set(cfg, "result_expires", cases[i].in, NULL) != CEL_OK)
            cel_test_fail(__FILE__, __LINE__, "'%s' rejected: %s", cases[i].in,
                          cel_config_errmsg(cfg));
        ASSERT_STREQ(cel_config_get(cfg, "result_expires"), cases[i].canon);
        ASSERT(cel_config_get_double(cfg, "result_expires") == cases[i].secs);
    }
    ASSERT_OK(cel_config_set(cfg, "result_expires", "1.5s", NULL));
    ASSERT_EQ(cel_config_get_int(cfg, "result_expires"), 1);

    static const char *const bad[] = {"",    "abc",  "-5",   "5 m", "5x", "1e3",        "inf",
                                      "nan", "0x10", "1..5", ".",   "s",  "5000000000d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cel_config_set(cfg, "result_expires", bad[i], NULL) != CEL_ECONFIG)
            cel_test_fail(__FILE__, __LINE__, "'%s' accepted", bad[i]);
        ASSERT_CONTAINS(cel_config_errmsg(cfg), "expected a duration");
    }
    /* The visibility timeout cannot be zero: a message would be handed to
     * another worker while the first one still runs it. */
    ASSERT_OK(cel_config_set(cfg, "broker_visibility_timeout", "0", NULL));
    ASSERT_EQ(cel_config_set(cfg, "broker_visibility_timeout", "-1", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "broker_visibility_timeout", "soon", NULL), CEL_ECONFIG);
    ASSERT_OK(cel_config_set(cfg, "broker_visibility_timeout", "1h", NULL));
    ASSERT_EQ(cel_config_get_int(cfg, "broker_visibility_timeout"), 3600);
    cel_config_free(cfg);
}

static void test_bounds_and_bad_values(void)
{
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "worker_concurrency", "1024", NULL));
    ASSERT_OK(cel_config_set(cfg, "worker_concurrency", "0", NULL));
    ASSERT_EQ(cel_config_set(cfg, "worker_concurrency", "1025", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "worker_concurrency", "-1", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "worker_concurrency", "abc", NULL), CEL_ECONFIG);
    ASSERT_STREQ(cel_config_errmsg(cfg), "invalid value 'abc' for worker_concurrency: expected "
                                         "an integer between 0 and 1024");
    /* a failed set leaves the old value */
    ASSERT_STREQ(cel_config_get(cfg, "worker_concurrency"), "0");
    ASSERT_EQ(cel_config_set(cfg, "worker_concurrency", "4.5", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "worker_concurrency", "99999999999999999999", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "worker_concurrency", "", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "worker_prefetch_multiplier", "0", NULL), CEL_ECONFIG);
    ASSERT_OK(cel_config_set(cfg, "worker_max_tasks_per_child", "100000", NULL));
    ASSERT_EQ(cel_config_set(cfg, "worker_max_tasks_per_child", "-3", NULL), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "expected an integer >= 0");

    ASSERT_EQ(cel_config_set(cfg, "task_acks_late", "maybe", NULL), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "expected true or false");
    ASSERT_EQ(cel_config_set(cfg, "worker_pool", "gevent", NULL), CEL_ECONFIG);
    ASSERT_STREQ(cel_config_errmsg(cfg),
                 "invalid value 'gevent' for worker_pool: expected one of prefork, solo");
    ASSERT_EQ(cel_config_set(cfg, "log_level", "verbose", NULL), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "debug, info, warning, error, critical");
    ASSERT_EQ(cel_config_set(cfg, "worker_queues", "a b,c", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "task_default_queue", "", NULL), CEL_ECONFIG);
    ASSERT_EQ(cel_config_set(cfg, "task_default_queue", "a\nb", NULL), CEL_ECONFIG);
    ASSERT_OK(cel_config_set(cfg, "worker_hostname", "", NULL));

    /* URLs: empty only for result_backend; the password never shows. */
    ASSERT_EQ(cel_config_set(cfg, "broker_url", "", NULL), CEL_ECONFIG);
    ASSERT_OK(cel_config_set(cfg, "result_backend", "", NULL));
    ASSERT_EQ(cel_config_set(cfg, "broker_url", "redis://:hunter2@h:70000/0", NULL), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "invalid value 'redis://:***@h:70000/0' for "
                                            "broker_url: port is out of range");
    ASSERT(strstr(cel_config_errmsg(cfg), "hunter2") == NULL);
    ASSERT_EQ(cel_config_set(cfg, "result_backend", "mongodb://h", NULL), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "unsupported scheme 'mongodb'");

    ASSERT_EQ(cel_config_set(cfg, NULL, "x", NULL), CEL_EINVAL);
    ASSERT_EQ(cel_config_set(cfg, "broker_url", NULL, NULL), CEL_EINVAL);
    ASSERT_EQ(cel_config_set(NULL, "broker_url", "memory://", NULL), CEL_EINVAL);
    cel_config_free(cfg);
}

static void test_unknown_key_suggestion(void)
{
    cel_config *cfg = cel_config_new();
    ASSERT_EQ(cel_config_set(cfg, "brokr_url", "memory://", NULL), CEL_EUNKNOWNKEY);
    ASSERT_STREQ(cel_config_errmsg(cfg),
                 "unknown configuration key 'brokr_url' (did you mean 'broker_url'?)");
    ASSERT_EQ(cel_config_set(cfg, "borker_url", "memory://", NULL), CEL_EUNKNOWNKEY);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "did you mean 'broker_url'?");
    ASSERT_EQ(cel_config_set(cfg, "concurrency", "2", NULL), CEL_EUNKNOWNKEY);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "did you mean 'worker_concurrency'?");
    ASSERT_EQ(cel_config_set(cfg, "result_backed", "", NULL), CEL_EUNKNOWNKEY);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "did you mean 'result_backend'?");
    ASSERT_EQ(cel_config_set(cfg, "xyz", "1", NULL), CEL_EUNKNOWNKEY);
    ASSERT_STREQ(cel_config_errmsg(cfg), "unknown configuration key 'xyz'");
    char longkey[200];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    ASSERT_EQ(cel_config_set(cfg, longkey, "1", NULL), CEL_EUNKNOWNKEY);
    ASSERT(cel_config_get(cfg, longkey) == NULL);

    char err[256];
    ASSERT_EQ(cel_config_check("worker_concurency", "4", err, sizeof err), CEL_EUNKNOWNKEY);
    ASSERT_CONTAINS(err, "worker_concurrency");
    ASSERT_OK(cel_config_check("worker_concurrency", "4", err, sizeof err));
    ASSERT_STREQ(err, "");
    ASSERT_EQ(cel_config_check("worker_concurrency", "x", err, sizeof err), CEL_ECONFIG);
    ASSERT_CONTAINS(err, "an integer between 0 and 1024");
    ASSERT_EQ(cel_config_check("log_level", "loud", NULL, 0), CEL_ECONFIG);
    ASSERT_EQ(cel_config_check(NULL, "x", err, sizeof err), CEL_EINVAL);
    cel_config_free(cfg);
}

static void test_file(void)
{
    write_file("celeriac.conf", "# celeriac test config\n"
                                "\n"
                                "broker_url redis://localhost:6379/1\n"
                                "   worker_concurrency = 3   # inline comment\n"
                                "worker_hostname \"my worker # 1\"\n"
                                "task_default_queue=\"q\\\"x\\\\\"\r\n"
                                "worker_queues = a, b\n"
                                "result_backend =\n"
                                "result_expires 2h\n"
                                "log_level \"DEBUG\"  # quoted then comment\n"
                                "worker_pool solo");
    cel_config *cfg = cel_config_new();
    if (cel_config_load_file(cfg, "celeriac.conf") != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "load: %s", cel_config_errmsg(cfg));
    ASSERT_STREQ(cel_config_get(cfg, "broker_url"), "redis://localhost:6379/1");
    ASSERT_STREQ(cel_config_origin(cfg, "broker_url"), "file:3");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 3);
    ASSERT_STREQ(cel_config_origin(cfg, "worker_concurrency"), "file:4");
    ASSERT_STREQ(cel_config_get(cfg, "worker_hostname"), "my worker # 1");
    ASSERT_STREQ(cel_config_get(cfg, "task_default_queue"), "q\"x\\");
    ASSERT_STREQ(cel_config_get(cfg, "worker_queues"), "a,b");
    ASSERT_STREQ(cel_config_get(cfg, "result_backend"), "");
    ASSERT_EQ(cel_config_get_int(cfg, "result_expires"), 7200);
    ASSERT_STREQ(cel_config_get(cfg, "log_level"), "debug");
    ASSERT_STREQ(cel_config_get(cfg, "worker_pool"), "solo");
    ASSERT_STREQ(cel_config_origin(cfg, "task_acks_late"), "default");
    cel_config_free(cfg);
}

/* A file that fails to load: its code, and a message containing msg (a
 * msg ending in a newline must be the whole message after its start). */
struct file_error_case {
    const char *text;
    int code;
    const char *msg;
};

static void check_file_errors(const struct file_error_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        write_file("celeriac.conf", cases[i].text);
        cel_config *cfg = cel_config_new();
        int rc = cel_config_load_file(cfg, "celeriac.conf");
        if (rc != cases[i].code)
            cel_test_fail(__FILE__, __LINE__, "case %zu: rc %d want %d (%s)", i, rc, cases[i].code,
                          cel_config_errmsg(cfg));
        size_t ml = strlen(cases[i].msg);
        if (ml && cases[i].msg[ml - 1] == '\n') {
            const char *at = strstr(cel_config_errmsg(cfg), "celeriac.conf:");
            ASSERT(at && strlen(at) == ml - 1 && strncmp(at, cases[i].msg, ml - 1) == 0);
        } else {
            ASSERT_CONTAINS(cel_config_errmsg(cfg), cases[i].msg);
        }
        ASSERT_EQ(cel_config_section_count(cfg), 0);
        cel_config_free(cfg);
    }
}

static void test_file_errors(void)
{
    static const struct file_error_case cases[] = {
        {"# ok\nbroker_url memory://\nbrokr_url memory://\n", CEL_EUNKNOWNKEY,
         "celeriac.conf:3: unknown configuration key 'brokr_url' (did you mean 'broker_url'?)"},
        {"worker_concurrency abc\n", CEL_ECONFIG,
         "celeriac.conf:1: invalid value 'abc' for worker_concurrency: expected an integer "
         "between 0 and 1024"},
        {"\n\nworker_pool\n", CEL_ECONFIG, "celeriac.conf:3: missing value for 'worker_pool'"},
        {"worker_hostname \"abc\n", CEL_ECONFIG, "celeriac.conf:1: missing closing '\"'"},
        {"worker_hostname \"a\" b\n", CEL_ECONFIG, "celeriac.conf:1: unexpected text after"},
        {"worker_hostname \"a\\n\"\n", CEL_ECONFIG, "celeriac.conf:1: invalid escape"},
        {"= 3\n", CEL_ECONFIG, "celeriac.conf:1: missing key"},
        {"worker_pool # solo\n", CEL_ECONFIG, "missing value for 'worker_pool'"},
        {"a 1\nb 2\nc 3\n", CEL_EUNKNOWNKEY,
         "celeriac.conf:1: unknown configuration key 'a' (and 2 more errors)"},
    };
    check_file_errors(cases, sizeof cases / sizeof cases[0]);

    /* All or nothing: a bad line anywhere leaves every value untouched. */
    write_file("celeriac.conf", "worker_concurrency 7\nworker_pool threads\n");
    cel_config *cfg = cel_config_new();
    ASSERT_EQ(cel_config_load_file(cfg, "celeriac.conf"), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "celeriac.conf:2:");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 0);
    ASSERT_STREQ(cel_config_origin(cfg, "worker_concurrency"), "default");

    ASSERT_EQ(cel_config_load_file(cfg, "does-not-exist.conf"), CEL_ENOTFOUND);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "cannot open 'does-not-exist.conf'");

    /* NUL bytes and a BOM through the buffer entry point. */
    static const char nul[] = "worker_pool solo\0\n";
    ASSERT_EQ(cel__config_load_buffer(cfg, nul, sizeof nul - 1, "buf"), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg), "buf:1: NUL byte");
    static const char bom[] = "\xEF\xBB\xBFworker_pool solo\n";
    ASSERT_OK(cel__config_load_buffer(cfg, bom, sizeof bom - 1, "buf"));
    ASSERT_STREQ(cel_config_get(cfg, "worker_pool"), "solo");
    ASSERT_OK(cel__config_load_buffer(cfg, "", 0, "empty"));
    cel_config_free(cfg);
}

/* [schedule.NAME] sections: kept as written, in order, with their line. */
static void test_sections(void)
{
    write_file("celeriac.conf", "worker_concurrency 2\n"
                                "\n"
                                "[schedule.nightly]   # the report\n"
                                "task tasks.report\n"
                                "args [1, \"two words\"]\n"
                                "kwargs = \"{\\\"k\\\": \\\"v # w\\\"}\"\n"
                                "when every weekday at 18:00\n"
                                "Catch-Up all\n"
                                "\n"
                                "[ schedule.every_5:m-x ]\n"
                                "task t2\n"
                                "every 5m\n"
                                "enabled false\n");
    cel_config *cfg = cel_config_new();
    if (cel_config_load_file(cfg, "celeriac.conf") != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "load: %s", cel_config_errmsg(cfg));
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 2);
    ASSERT_EQ(cel_config_section_count(cfg), 2);
    ASSERT_STREQ(cel_config_section_name(cfg, 0), "schedule.nightly");
    ASSERT_STREQ(cel_config_section_origin(cfg, 0), "file:3");
    ASSERT_STREQ(cel_config_section_get(cfg, 0, "task"), "tasks.report");
    ASSERT_STREQ(cel_config_section_get(cfg, 0, "args"), "[1, \"two words\"]");
    ASSERT_STREQ(cel_config_section_get(cfg, 0, "kwargs"), "{\"k\": \"v # w\"}");
    ASSERT_STREQ(cel_config_section_get(cfg, 0, "when"), "every weekday at 18:00");
    ASSERT_STREQ(cel_config_section_get(cfg, 0, "catch_up"), "all");
    ASSERT(cel_config_section_get(cfg, 0, "every") == NULL);
    ASSERT_STREQ(cel_config_section_name(cfg, 1), "schedule.every_5:m-x");
    ASSERT_STREQ(cel_config_section_origin(cfg, 1), "file:10");
    ASSERT_STREQ(cel_config_section_get(cfg, 1, "enabled"), "false");
    ASSERT(cel_config_section_name(cfg, 2) == NULL);
    ASSERT(cel_config_section_get(cfg, 2, "task") == NULL);

    /* A copy owns its own sections. */
    cel_config *copy = cel_config_dup(cfg);
    ASSERT(copy);
    cel_config_free(cfg);
    ASSERT_EQ(cel_config_section_count(copy), 2);
    ASSERT_STREQ(cel_config_section_get(copy, 1, "every"), "5m");
    ASSERT_STREQ(cel_config_section_origin(copy, 0), "file:3");

    /* The dump reads back to the same sections. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f);
    cel__config_write(copy, f, false);
    fclose(f);
    cel_config *back = cel_config_new();
    if (cel__config_load_buffer(back, text, len, "dump") != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "reload: %s", cel_config_errmsg(back));
    ASSERT_EQ(cel_config_section_count(back), 2);
    ASSERT_STREQ(cel_config_section_get(back, 0, "kwargs"), "{\"k\": \"v # w\"}");
    ASSERT_STREQ(cel_config_section_get(back, 1, "task"), "t2");
    free(text);
    cel_config_free(back);
    cel_config_free(copy);
}

static void test_section_errors(void)
{
    static const struct file_error_case cases[] = {
        {"[schedule.a]\ntask t\ncorn * * * * *\n", CEL_EUNKNOWNKEY,
         "celeriac.conf:3: unknown key 'corn' in [schedule.a] (did you mean 'cron'?)"},
        {"[schedule.a]\nxyzzy_plugh 1\n", CEL_EUNKNOWNKEY,
         "celeriac.conf:2: unknown key 'xyzzy_plugh' in [schedule.a]"},
        {"\n[worker.a]\ntask t\n", CEL_ECONFIG,
         "celeriac.conf:2: unknown section kind 'worker' (the only kind is [schedule.NAME])"},
        {"[schedule.a]\ntask t\ntask u\n", CEL_ECONFIG,
         "celeriac.conf:3: key 'task' repeated in [schedule.a]"},
        {"[schedule.a]\ntask t\n[schedule.b]\n[schedule.a]\n", CEL_ECONFIG,
         "celeriac.conf:4: section [schedule.a] repeated (first at file:1)"},
        {"[schedule.bad name]\n", CEL_ECONFIG, "celeriac.conf:1: invalid schedule name 'bad name'"},
        {"[schedule.]\n", CEL_ECONFIG, "celeriac.conf:1: invalid schedule name ''"},
        {"[schedule.a\n", CEL_ECONFIG, "celeriac.conf:1: missing ']'"},
        {"[schedule.a] x\n", CEL_ECONFIG, "celeriac.conf:1: unexpected text after ']'"},
        /* the lines of a refused section are not reported again */
        {"[jobs.a]\ntask t\nargs []\n", CEL_ECONFIG,
         "celeriac.conf:1: unknown section kind 'jobs' (the only kind is [schedule.NAME])\n"},
        /* no way back to the global options after a header */
        {"[schedule.a]\nworker_pool solo\n", CEL_EUNKNOWNKEY,
         "celeriac.conf:2: unknown key 'worker_pool' in [schedule.a]"},
    };
    check_file_errors(cases, sizeof cases / sizeof cases[0]);
    /* A 201-byte name is refused, 200 bytes are fine. */
    char text[300];
    snprintf(text, sizeof text, "[schedule.%0200d]\n", 0);
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel__config_load_buffer(cfg, text, strlen(text), "buf"));
    snprintf(text, sizeof text, "[schedule.%0201d]\n", 0);
    cel_config *cfg2 = cel_config_new();
    ASSERT_EQ(cel__config_load_buffer(cfg2, text, strlen(text), "buf"), CEL_ECONFIG);
    /* Loading a second file keeps the first's sections and refuses a repeat. */
    ASSERT_EQ(cel__config_load_buffer(cfg, text + 0, 0, "empty"), CEL_OK);
    ASSERT_EQ(cel_config_section_count(cfg), 1);
    snprintf(text, sizeof text, "[schedule.%0200d]\n", 0);
    ASSERT_EQ(cel__config_load_buffer(cfg, text, strlen(text), "again"), CEL_ECONFIG);
    ASSERT_EQ(cel_config_section_count(cfg), 1);
    cel_config_free(cfg);
    cel_config_free(cfg2);
}

static void clear_celeriac_env(void)
{
    static const char *const vars[] = {"CELERIAC_BROKER_URL",    "CELERIAC_WORKER_CONCURRENCY",
                                       "CELERIAC_LOG_LEVEL",     "CELERIAC_BROKR_URL",
                                       "CELERIAC_CONFIG",        "CELERIAC_TEST_SOMETHING",
                                       "CELERIAC_TASK_ACKS_LATE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_env(void)
{
    clear_celeriac_env();
    cel_config *cfg = cel_config_new();
    setenv("CELERIAC_BROKER_URL", "memory://envbus", 1);
    setenv("CELERIAC_WORKER_CONCURRENCY", "5", 1);
    setenv("CELERIAC_CONFIG", "/etc/celeriac.conf", 1); /* the CLI's, ignored */
    setenv("CELERIAC_TEST_SOMETHING", "whatever", 1);   /* the tests', ignored */
    if (cel_config_load_env(cfg) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "env: %s", cel_config_errmsg(cfg));
    ASSERT_STREQ(cel_config_get(cfg, "broker_url"), "memory://envbus");
    ASSERT_STREQ(cel_config_origin(cfg, "broker_url"), "env");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 5);

    /* An unknown CELERIAC_ variable is an error, with a suggestion, and
     * nothing from this round is applied. */
    setenv("CELERIAC_WORKER_CONCURRENCY", "6", 1);
    setenv("CELERIAC_BROKR_URL", "memory://typo", 1);
    ASSERT_EQ(cel_config_load_env(cfg), CEL_EUNKNOWNKEY);
    ASSERT_STREQ(cel_config_errmsg(cfg), "unknown environment variable CELERIAC_BROKR_URL "
                                         "(did you mean CELERIAC_BROKER_URL?)");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 5);
    unsetenv("CELERIAC_BROKR_URL");

    setenv("CELERIAC_TASK_ACKS_LATE", "perhaps", 1);
    ASSERT_EQ(cel_config_load_env(cfg), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_config_errmsg(cfg),
                    "CELERIAC_TASK_ACKS_LATE: invalid value 'perhaps' for task_acks_late");
    clear_celeriac_env();
    cel_config_free(cfg);
}

static void test_precedence(void)
{
    clear_celeriac_env();
    write_file("celeriac.conf", "worker_concurrency 2\nlog_level info\nworker_pool solo\n");
    setenv("CELERIAC_WORKER_CONCURRENCY", "3", 1);
    setenv("CELERIAC_LOG_LEVEL", "error", 1);
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_load_file(cfg, "celeriac.conf"));
    ASSERT_OK(cel_config_load_env(cfg));
    ASSERT_OK(cel_config_set(cfg, "log_level", "debug", "cli"));
    ASSERT_STREQ(cel_config_get(cfg, "worker_pool"), "solo"); /* file only */
    ASSERT_STREQ(cel_config_origin(cfg, "worker_pool"), "file:3");
    ASSERT_EQ(cel_config_get_int(cfg, "worker_concurrency"), 3); /* env over file */
    ASSERT_STREQ(cel_config_origin(cfg, "worker_concurrency"), "env");
    ASSERT_STREQ(cel_config_get(cfg, "log_level"), "debug"); /* set over env */
    ASSERT_STREQ(cel_config_origin(cfg, "log_level"), "cli");
    clear_celeriac_env();
    cel_config_free(cfg);
}

static void test_dump_redacts(void)
{
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "broker_url", "redis://:hunter2@redis.local:6379/0", "cli"));
    ASSERT_OK(cel_config_set(cfg, "result_backend", "amqp://bob:pa%40ss@rabbit//", "cli"));
    ASSERT_OK(cel_config_set(cfg, "worker_hostname", "w 1", "cli"));
    char *out = dump_to_string(cfg, true);
    ASSERT(strstr(out, "hunter2") == NULL);
    ASSERT(strstr(out, "pa%40ss") == NULL);
    ASSERT_CONTAINS(out, "broker_url = redis://:***@redis.local:6379/0  # cli\n");
    ASSERT_CONTAINS(out, "result_backend = amqp://bob:***@rabbit//  # cli\n");
    ASSERT_CONTAINS(out, "worker_hostname = \"w 1\"  # cli\n");
    ASSERT_CONTAINS(out, "worker_queues = \"\"  # default\n");
    ASSERT_CONTAINS(out, "result_expires = 86400  # default\n");
    free(out);

    /* The unredacted dump is a config file that reads back identically. */
    ASSERT_OK(cel_config_set(cfg, "task_default_queue", "we\"ird\\q", "cli"));
    out = dump_to_string(cfg, false);
    cel_config *back = cel_config_new();
    if (cel__config_load_buffer(back, out, strlen(out), "dump") != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "reload: %s", cel_config_errmsg(back));
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        const char *k = cel__config_option_key(i);
        ASSERT_STREQ(cel_config_get(back, k), cel_config_get(cfg, k));
    }
    free(out);
    cel_config_free(back);

    cel_config *copy = cel_config_dup(cfg);
    ASSERT(copy);
    ASSERT_STREQ(cel_config_get(copy, "worker_hostname"), "w 1");
    ASSERT_STREQ(cel_config_origin(copy, "worker_hostname"), "cli");
    ASSERT_OK(cel_config_set(copy, "worker_hostname", "other", NULL));
    ASSERT_STREQ(cel_config_get(cfg, "worker_hostname"), "w 1");
    cel_config_free(copy);
    cel_config_free(cfg);
}

static void test_describe(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    cel_config_describe(f);
    fclose(f);
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        char env[96];
        cel__config_env_name(cel__config_option_key(i), env, sizeof env);
        ASSERT_CONTAINS(buf, env);
        /* help is wrapped at 80 columns; its first words stay on one line */
        char head[40];
        snprintf(head, sizeof head, "    %.20s", cel__config_option_help(i));
        ASSERT_CONTAINS(buf, head);
    }
    for (const char *line = buf; *line; line += strcspn(line, "\n") + 1) {
        if (strcspn(line, "\n") > 80)
            cel_test_fail(__FILE__, __LINE__, "line over 80 columns: %.90s", line);
        if (!line[strcspn(line, "\n")])
            break;
    }
    ASSERT_CONTAINS(buf, "CELERIAC_BROKER_URL");
    ASSERT_CONTAINS(buf, "flag:     -c, --concurrency");
    ASSERT_CONTAINS(buf, "an integer between 1 and 10000");
    free(buf);
}

/* "key value" where key is an option: a commented-out setting. */
static bool is_setting_line(const char *s, size_t n)
{
    size_t k = strcspn(s, " \n");
    if (k >= n || k >= 64)
        return false;
    char key[64];
    memcpy(key, s, k);
    key[k] = '\0';
    return cel__config_find(key) >= 0;
}

/* Keeps packaging/celeriac.conf and docs/configuration.md in step with the
 * table: every key must appear in both, and the example file must load. */
static void test_shipped_docs_list_every_option(void)
{
    const char *src = cel_test_env("CEL_TEST_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/packaging/celeriac.conf", src);
    char *conf = cel_test_read_file(path, NULL);
    ASSERT(conf);
    snprintf(path, sizeof path, "%s/docs/configuration.md", src);
    char *doc = cel_test_read_file(path, NULL);
    ASSERT(doc);
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        const struct cel__config_option *o = cel__config_option_at(i);
        char line[256], env[96];
        /* the example shows "# key default" for every option */
        snprintf(line, sizeof line, "# %s %s\n", o->key, *o->def ? o->def : "\"\"");
        ASSERT_CONTAINS(conf, line);
        cel__config_env_name(o->key, env, sizeof env);
        snprintf(line, sizeof line, "`%s`", o->key);
        ASSERT_CONTAINS(doc, line);
        ASSERT_CONTAINS(doc, env);
    }
    /* Uncommenting every setting gives a valid file with the defaults. */
    cel_config *cfg = cel_config_new();
    size_t n = strlen(conf);
    char *uncommented = malloc(n + 1);
    ASSERT(uncommented);
    size_t o = 0;
    for (const char *p = conf; *p;) {
        size_t ln = strcspn(p, "\n");
        bool is_setting = ln > 2 && p[0] == '#' && p[1] == ' ' && is_setting_line(p + 2, ln - 2);
        if (is_setting) {
            memcpy(uncommented + o, p + 2, ln - 2);
            o += ln - 2;
            uncommented[o++] = '\n';
        }
        p += ln + (p[ln] ? 1 : 0);
    }
    uncommented[o] = '\0';
    if (cel__config_load_buffer(cfg, uncommented, o, "celeriac.conf") != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "example: %s", cel_config_errmsg(cfg));
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        const struct cel__config_option *op = cel__config_option_at(i);
        ASSERT_STREQ(cel_config_get(cfg, op->key), op->def);
        ASSERT(strncmp(cel_config_origin(cfg, op->key), "file:", 5) == 0);
    }
    free(uncommented);
    cel_config_free(cfg);
    free(conf);
    free(doc);
}

static void test_effective(void)
{
    cel_config *cfg = cel_config_new();
    char buf[512];
    ASSERT_OK(cel_config_get_effective(cfg, "result_backend", buf, sizeof buf));
    ASSERT_STREQ(buf, "sqlite:///celeriac.db");
    ASSERT_OK(cel_config_set(cfg, "result_backend", "memory://", NULL));
    ASSERT_OK(cel_config_get_effective(cfg, "result_backend", buf, sizeof buf));
    ASSERT_STREQ(buf, "memory://");
    ASSERT_OK(cel_config_get_effective(cfg, "worker_queues", buf, sizeof buf));
    ASSERT_STREQ(buf, "celery");
    ASSERT_OK(cel_config_get_effective(cfg, "worker_hostname", buf, sizeof buf));
    ASSERT(strncmp(buf, "celeriac@", 9) == 0 && strlen(buf) > 9);
    ASSERT_OK(cel_config_get_effective(cfg, "worker_concurrency", buf, sizeof buf));
    ASSERT(atoi(buf) >= 1);
    ASSERT_OK(cel_config_get_effective(cfg, "log_level", buf, sizeof buf));
    ASSERT_STREQ(buf, "warning");
    ASSERT_EQ(cel_config_get_effective(cfg, "nope", buf, sizeof buf), CEL_EUNKNOWNKEY);
    char small[4];
    ASSERT_EQ(cel_config_get_effective(cfg, "broker_url", small, sizeof small), CEL_ETOOBIG);
    ASSERT_EQ(cel_config_get_effective(NULL, "broker_url", buf, sizeof buf), CEL_EINVAL);
    cel_config_free(cfg);
}

/* The public iterator (what the CLI builds its flags and help from) shows
 * every row of the internal table, in order, exactly as the table has it. */
static void test_public_iterator(void)
{
    size_t n = cel__config_option_count();
    ASSERT_EQ(cel_config_option_count(), n);
    for (size_t i = 0; i < n; i++) {
        const struct cel__config_option *o = cel__config_option_at(i);
        cel_config_option_info info = CEL_CONFIG_OPTION_INFO_INIT;
        ASSERT_OK(cel_config_option_at(i, &info));
        ASSERT_EQ(info.struct_size, sizeof info);
        ASSERT_STREQ(info.key, o->key);
        ASSERT_STREQ(info.type, cel__config_type_name(o->type));
        ASSERT_STREQ(info.default_value, o->def);
        ASSERT_STREQ(info.help, o->help);
        ASSERT_EQ(info.short_flag, o->cli_short);
        if (o->cli_long)
            ASSERT_STREQ(info.long_flag, o->cli_long);
        else
            ASSERT(info.long_flag == NULL);
        ASSERT_EQ(info.secret, (o->flags & CEL__CFG_SECRET) != 0);
        ASSERT_EQ(info.empty_ok, (o->flags & CEL__CFG_EMPTY_OK) != 0);
        char want[256];
        cel__config_env_name(o->key, want, sizeof want);
        ASSERT_STREQ(info.env, want);
        cel__config_option_expected(i, want, sizeof want);
        ASSERT_STREQ(info.expected, want);
        size_t at = n;
        ASSERT_OK(cel_config_option_find(o->key, &at));
        ASSERT_EQ(at, i);
    }
    /* Spot checks against the documented spellings, not only the table. */
    size_t at;
    ASSERT_OK(cel_config_option_find("Worker-Concurrency", &at));
    cel_config_option_info c = CEL_CONFIG_OPTION_INFO_INIT;
    ASSERT_OK(cel_config_option_at(at, &c));
    ASSERT_STREQ(c.key, "worker_concurrency");
    ASSERT_EQ(c.short_flag, 'c');
    ASSERT_STREQ(c.long_flag, "concurrency");
    ASSERT_STREQ(c.type, "int");
    ASSERT_STREQ(c.env, "CELERIAC_WORKER_CONCURRENCY");
    ASSERT_STREQ(c.expected, "an integer between 0 and 1024");
    ASSERT_EQ(cel_config_option_find("worker_concurency", &at), CEL_EUNKNOWNKEY);
    ASSERT_EQ(cel_config_option_find(NULL, &at), CEL_EUNKNOWNKEY);

    /* Failures leave *out alone. */
    cel_config_option_info keep = CEL_CONFIG_OPTION_INFO_INIT;
    ASSERT_EQ(cel_config_option_at(n, &keep), CEL_ENOTFOUND);
    ASSERT(keep.key == NULL);
    ASSERT_EQ(cel_config_option_at(0, NULL), CEL_EINVAL);
    cel_config_option_info zero = {0};
    ASSERT_EQ(cel_config_option_at(0, &zero), CEL_EINVAL);
    ASSERT(zero.key == NULL);

    /* A caller built against a later header, with a field this library
     * does not know: the known fields are filled, the rest left alone. */
    struct {
        cel_config_option_info info;
        const char *later;
    } newer = {{.struct_size = sizeof newer}, "untouched"};
    ASSERT_OK(cel_config_option_at(0, &newer.info));
    ASSERT_EQ(newer.info.struct_size, sizeof newer);
    ASSERT_STREQ(newer.info.key, cel__config_option_at(0)->key);
    ASSERT_STREQ(newer.later, "untouched");

    /* Today's layout is the first published one: anything shorter is
     * garbage, not an older caller, and is refused. */
    cel_config_option_info shorter = CEL_CONFIG_OPTION_INFO_INIT;
    shorter.struct_size = sizeof shorter - 1;
    ASSERT_EQ(cel_config_option_at(0, &shorter), CEL_EINVAL);
    ASSERT(shorter.key == NULL);
}

int main(void)
{
    TEST_RUN(test_defaults);
    TEST_RUN(test_table_defaults_are_canonical);
    TEST_RUN(test_set_each_type);
    TEST_RUN(test_durations);
    TEST_RUN(test_bounds_and_bad_values);
    TEST_RUN(test_unknown_key_suggestion);
    TEST_RUN(test_file);
    TEST_RUN(test_file_errors);
    TEST_RUN(test_sections);
    TEST_RUN(test_section_errors);
    TEST_RUN(test_env);
    TEST_RUN(test_precedence);
    TEST_RUN(test_dump_redacts);
    TEST_RUN(test_describe);
    TEST_RUN(test_shipped_docs_list_every_option);
    TEST_RUN(test_effective);
    TEST_RUN(test_public_iterator);
    return 0;
}
