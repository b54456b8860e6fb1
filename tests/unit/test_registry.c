/*
 * test_registry.c - task definitions that can grow (task.h): what the
 * registry accepts from modules built against older and newer headers,
 * and the message a celeriac 0.1 module gets at load.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <celeriac.h>

#include "core/sized_struct.h"
#include "testing.h"

static int noop(cel_task *t, void *userdata)
{
    (void)userdata;
    return cel_task_return_null(t);
}

/* The celeriac 0.1 layout, as compiled into old modules. */
struct task_def_v1 {
    int abi;
    const char *name;
    cel_task_fn fn;
    void *userdata;
    const char *queue;
    int ignore_result;
};

/* A definition from a later header: today's fields, then new ones. */
struct task_def_next {
    cel_task_def known;
    double time_limit;
    const char *rate_limit;
};

static struct task_def_next next_def(const char *name)
{
    struct task_def_next d = {.known = CEL_TASK_DEF_INIT(.name = name, .fn = noop)};
    d.known.struct_size = sizeof d;
    return d;
}

static void test_current_layout(void)
{
    cel_registry *reg = cel_registry_new();
    static const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "t.b", .fn = noop, .queue = "images"),
        CEL_TASK_DEF_INIT(.name = "t.a", .fn = noop, .ignore_result = 1),
    };
    ASSERT_OK(cel_registry_add_many(reg, defs, 2));
    ASSERT_EQ(cel_registry_count(reg), 2);
    const cel_task_def *a = cel_registry_find(reg, "t.a");
    ASSERT(a && a->ignore_result && a->fn == noop && !a->queue);
    ASSERT_STREQ(cel_registry_find(reg, "t.b")->queue, "images");
    ASSERT_STREQ(cel_registry_at(reg, 0)->name, "t.a"); /* name order */

    /* The usual mistakes say what they are. */
    ASSERT_EQ(cel_registry_add(reg, &defs[0]), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "registered twice");
    cel_task_def unnamed = CEL_TASK_DEF_INIT(.fn = noop);
    ASSERT_EQ(cel_registry_add(reg, &unnamed), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "no name");
    cel_task_def nofn = CEL_TASK_DEF_INIT(.name = "t.c");
    ASSERT_EQ(cel_registry_add(reg, &nofn), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "no function");
    ASSERT_OK(cel_registry_add(reg, &(cel_task_def)CEL_TASK_DEF_INIT(.name = "t.c", .fn = noop)));
    ASSERT_STREQ(cel_registry_errmsg(reg), "");
    cel_registry_free(reg);
}

static void test_sizes_not_made_by_the_initialiser(void)
{
    cel_registry *reg = cel_registry_new();
    cel_task_def d = {0}; /* zero-initialised: no struct_size */
    d.name = "t.zero";
    d.fn = noop;
    ASSERT_EQ(cel_registry_add(reg, &d), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "CEL_TASK_DEF_INIT");
    d.struct_size = offsetof(cel_task_def, queue); /* below the first layout */
    ASSERT_EQ(cel_registry_add(reg, &d), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "struct_size");
    d.struct_size = 1u << 20; /* garbage, not a layout: never read past the object */
    ASSERT_EQ(cel_registry_add(reg, &d), CEL_EINVAL);
    ASSERT_EQ(cel_registry_count(reg), 0);
    cel_registry_free(reg);
}

static void test_old_layout_refused(void)
{
    cel_registry *reg = cel_registry_new();
    struct task_def_v1 old = {1, "old.add", noop, NULL, NULL, 0};
    ASSERT_EQ(cel_registry_add(reg, (const cel_task_def *)(const void *)&old), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "'old.add'");
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "celeriac 0.1");
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "rebuild its module against celeriac >= 0.2");
    ASSERT_EQ(cel_registry_count(reg), 0);
    cel_registry_free(reg);
}

static void test_old_module_refused_at_load(void)
{
    const char *path = cel_test_env("CEL_TEST_MODULE_V1");
    cel_registry *reg = cel_registry_new();
    char *msg = NULL;
    /* Its init ignores the error and returns 0: the load fails anyway. */
    ASSERT_EQ(cel_registry_load_module(reg, path, &msg), CEL_EMODULE);
    ASSERT_CONTAINS(msg, path);
    ASSERT_CONTAINS(msg, "built against celeriac 0.1");
    ASSERT_CONTAINS(msg, "rebuild it against celeriac >= 0.2");
    ASSERT_EQ(cel_registry_count(reg), 0);
    cel_free(msg);
    cel_registry_free(reg);
}

static void test_newer_layout(void)
{
    cel_registry *reg = cel_registry_new();

    /* Fields this library does not know, left at zero: accepted, and kept
     * in this library's layout. */
    struct task_def_next d = next_def("t.next");
    ASSERT_OK(cel_registry_add(reg, &d.known));
    const cel_task_def *got = cel_registry_find(reg, "t.next");
    ASSERT(got && got->fn == noop);
    ASSERT_EQ(got->struct_size, sizeof(cel_task_def));

    /* A field it does not know, set: refused, naming the task, rather
     * than run without the limit the module asked for. */
    d = next_def("t.limited");
    d.time_limit = 30;
    ASSERT_EQ(cel_registry_add(reg, &d.known), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "'t.limited'");
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "does not know");
    d = next_def("t.limited");
    d.rate_limit = "10/m";
    ASSERT_EQ(cel_registry_add(reg, &d.known), CEL_EINVAL);
    ASSERT(!cel_registry_find(reg, "t.limited"));

    /* An array from a newer header is walked with its own stride. */
    struct task_def_next arr[3] = {next_def("t.x"), next_def("t.y"), next_def("t.z")};
    ASSERT_OK(cel_registry_add_many(reg, &arr[0].known, 3));
    ASSERT(cel_registry_find(reg, "t.x") && cel_registry_find(reg, "t.y") &&
           cel_registry_find(reg, "t.z"));
    ASSERT_EQ(cel_registry_count(reg), 4);

    /* Elements of one array have one size. */
    struct task_def_next mixed[2] = {next_def("t.m1"), next_def("t.m2")};
    mixed[1].known.struct_size = sizeof(cel_task_def);
    ASSERT_EQ(cel_registry_add_many(reg, &mixed[0].known, 2), CEL_EINVAL);
    ASSERT_CONTAINS(cel_registry_errmsg(reg), "definition 2 of 2");
    cel_registry_free(reg);
}

/*
 * The other direction, a caller older than the library, cannot happen
 * through the public structs yet (today's layouts are the first ones), so
 * it is checked on the reader they share: a library whose definition has
 * gained a field reads today's definition with that field's default.
 */
struct lib_def_next {
    cel_task_def known;
    double time_limit;
};

static void test_older_caller_gets_defaults(void)
{
    struct lib_def_next lib = {.time_limit = 300}; /* the default */
    cel_task_def old = CEL_TASK_DEF_INIT(.name = "t.old", .fn = noop, .ignore_result = 1);
    char err[256];
    ASSERT_OK(cel__sized_struct_read(&lib, sizeof lib, &old, sizeof old, "task definition",
                                     "CEL_TASK_DEF_INIT(...)", err, sizeof err));
    ASSERT_STREQ(lib.known.name, "t.old");
    ASSERT(lib.known.fn == noop && lib.known.ignore_result == 1);
    ASSERT(lib.time_limit == 300);
    ASSERT_EQ(lib.known.struct_size, sizeof lib); /* the library's own size now */

    /* Below the first layout: refused, destination untouched. */
    old.struct_size = 8;
    ASSERT_EQ(cel__sized_struct_read(&lib, sizeof lib, &old, sizeof old, "task definition",
                                     "CEL_TASK_DEF_INIT(...)", err, sizeof err),
              CEL_EINVAL);
    ASSERT_CONTAINS(err, "CEL_TASK_DEF_INIT(...)");
    ASSERT_EQ(lib.known.struct_size, sizeof lib);
}

/* Options point into the module's memory; the registry keeps its own
 * copies, so a definition built on the stack or freed stays valid. */
static void test_options_copied(void)
{
    cel_registry *reg = cel_registry_new();
    char rate[16], t1[16], t2[16];
    snprintf(rate, sizeof rate, "%s", "10/s");
    snprintf(t1, sizeof t1, "%s", "IOError");
    snprintf(t2, sizeof t2, "%s", "KeyError");
    const char *types[] = {t1, t2, NULL};
    cel_task_def d =
        CEL_TASK_DEF_INIT(.name = "t.flaky", .fn = noop, .rate_limit = rate, .autoretry_for = types,
                          .max_retries = 5, .retry_backoff = 1.5);
    ASSERT_OK(cel_registry_add(reg, &d));
    memset(rate, 'x', sizeof rate - 1);
    memset(t1, 'x', sizeof t1 - 1);
    types[1] = NULL;
    const cel_task_def *got = cel_registry_find(reg, "t.flaky");
    ASSERT(got && got->rate_limit != rate && got->autoretry_for != types);
    ASSERT_STREQ(got->rate_limit, "10/s");
    ASSERT_STREQ(got->autoretry_for[0], "IOError");
    ASSERT_STREQ(got->autoretry_for[1], "KeyError");
    ASSERT(got->autoretry_for[2] == NULL);
    ASSERT_EQ(got->max_retries, 5);
    ASSERT(got->retry_backoff == 1.5);

    /* None of them: NULLs stay NULL. */
    cel_task_def plain = CEL_TASK_DEF_INIT(.name = "t.plain", .fn = noop);
    ASSERT_OK(cel_registry_add(reg, &plain));
    ASSERT(!cel_registry_find(reg, "t.plain")->autoretry_for);
    ASSERT(!cel_registry_find(reg, "t.plain")->rate_limit);
    cel_registry_free(reg); /* ASan: every copy freed */
}

/* Values no default can mean are refused, naming the task. */
static void test_bad_options_refused(void)
{
    cel_registry *reg = cel_registry_new();
    const char *empty[] = {"", NULL};
    cel_task_def bad[] = {
        CEL_TASK_DEF_INIT(.name = "t.r", .fn = noop, .reserved = 1),
        CEL_TASK_DEF_INIT(.name = "t.d", .fn = noop, .default_retry_delay = -1),
        CEL_TASK_DEF_INIT(.name = "t.b", .fn = noop, .retry_backoff = -0.5),
        CEL_TASK_DEF_INIT(.name = "t.bm", .fn = noop, .retry_backoff_max = -1),
        CEL_TASK_DEF_INIT(.name = "t.tl", .fn = noop, .time_limit = -1),
        CEL_TASK_DEF_INIT(.name = "t.sl", .fn = noop, .soft_time_limit = -1),
        CEL_TASK_DEF_INIT(.name = "t.nan", .fn = noop, .time_limit = __builtin_nan("")),
        CEL_TASK_DEF_INIT(.name = "t.mr", .fn = noop, .max_retries = CEL_RETRIES_NONE - 1),
        CEL_TASK_DEF_INIT(.name = "t.al", .fn = noop, .acks_late = 2),
        CEL_TASK_DEF_INIT(.name = "t.rw", .fn = noop, .reject_on_worker_lost = -2),
        CEL_TASK_DEF_INIT(.name = "t.ts", .fn = noop, .track_started = 5),
        CEL_TASK_DEF_INIT(.name = "t.rj", .fn = noop, .retry_jitter = 3),
        CEL_TASK_DEF_INIT(.name = "t.ar", .fn = noop, .autoretry_for = empty),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_EQ(cel_registry_add(reg, &bad[i]), CEL_EINVAL);
        ASSERT_CONTAINS(cel_registry_errmsg(reg), bad[i].name);
    }
    ASSERT_EQ(cel_registry_count(reg), 0);

    /* The edges that are meaningful pass. */
    cel_task_def good[] = {
        CEL_TASK_DEF_INIT(.name = "t.none", .fn = noop, .max_retries = CEL_RETRIES_NONE,
                          .acks_late = CEL_TRI_OFF, .track_started = CEL_TRI_ON),
        CEL_TASK_DEF_INIT(.name = "t.unl", .fn = noop, .max_retries = CEL_RETRIES_UNLIMITED,
                          .retry_jitter = CEL_TRI_OFF, .reject_on_worker_lost = CEL_TRI_ON),
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ASSERT_OK(cel_registry_add(reg, &good[i]));
    cel_registry_free(reg);
}

int main(void)
{
    TEST_RUN(test_current_layout);
    TEST_RUN(test_sizes_not_made_by_the_initialiser);
    TEST_RUN(test_old_layout_refused);
    TEST_RUN(test_old_module_refused_at_load);
    TEST_RUN(test_newer_layout);
    TEST_RUN(test_older_caller_gets_defaults);
    TEST_RUN(test_options_copied);
    TEST_RUN(test_bad_options_refused);
    return 0;
}
