/*
 * test_task_value.c - typed values (celeriac/value.h): reading a task's
 * arguments, building values, the item-taking containers, the parser's
 * limits and cel_task_return_value().
 *
 * "Taken even on failure" is checked by ASan's leak check (make
 * test-sanitize): a failed append or set that kept its item would leak.
 */
#include "celeriac/error.h"
#include "celeriac/task.h"
#include "celeriac/value.h"
#include "proto/message.h"
#include "worker/task_context.h"

#include <math.h>

#include "task_fixture.h"
#include "testing.h"

static const char *ARGS = "[7, 2.5, \"a\\u0000b\", [1, [2, 3]], {\"zeta\": 1, \"alpha\": 2}, "
                          "null, true]";
static const char *KWARGS =
    "{\"items\": [{\"price\": 2.5, \"qty\": 2}, {\"price\": 1, \"qty\": 3}], "
    "\"n\": 3}";

static void setup(struct cel_test_task *f)
{
    struct cel_task_spec s = {0};
    s.task = "tasks.values";
    s.id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    s.args_json = ARGS;
    s.kwargs_json = KWARGS;
    cel_test_task_setup(f, &s, NULL);
}

/* JSON text of v, for comparing whole values; a static copy. */
static const char *json_of(const cel_value *v)
{
    static char buf[512];
    char *s = cel_value_to_json(v);
    ASSERT(s);
    snprintf(buf, sizeof buf, "%s", s);
    cel_free(s);
    return buf;
}

/* --- reading a task's arguments -------------------------------------------- */

static void test_task_argument_values(void)
{
    struct cel_test_task f;
    setup(&f);
    const cel_task *t = &f.task;

    const cel_value *args = cel_task_args_value(t);
    ASSERT_EQ(cel_value_type_of(args), CEL_VALUE_ARRAY);
    ASSERT_EQ(cel_value_len(args), 7);
    ASSERT_STREQ(json_of(args), ARGS);
    ASSERT_EQ(cel_value_type_of(cel_task_kwargs_value(t)), CEL_VALUE_OBJECT);
    ASSERT_EQ(cel_value_len(cel_task_kwargs_value(t)), 2);

    static const cel_value_type types[] = {CEL_VALUE_INT,   CEL_VALUE_DOUBLE, CEL_VALUE_STRING,
                                           CEL_VALUE_ARRAY, CEL_VALUE_OBJECT, CEL_VALUE_NULL,
                                           CEL_VALUE_BOOL};
    for (size_t i = 0; i < 7; i++) {
        ASSERT_EQ(cel_value_type_of(cel_task_arg_value(t, i)), types[i]);
        ASSERT(cel_task_arg_value(t, i) == cel_value_at(args, i)); /* the same value */
    }
    ASSERT(cel_task_arg_value(t, 7) == NULL);
    ASSERT(cel_task_arg_value(t, (size_t)-1) == NULL);
    ASSERT(cel_task_kwarg_value(t, "n") != NULL);
    ASSERT(cel_task_kwarg_value(t, "missing") == NULL);
    ASSERT(cel_task_kwarg_value(t, NULL) == NULL);
    ASSERT(cel_task_args_value(NULL) == NULL);
    ASSERT(cel_task_kwargs_value(NULL) == NULL);
    ASSERT(cel_task_arg_value(NULL, 0) == NULL);
    ASSERT(cel_task_kwarg_value(NULL, "n") == NULL);

    /* nested access, the way a task walks a list of records */
    const cel_value *items = cel_task_kwarg_value(t, "items");
    double sum = 0;
    for (size_t i = 0; i < cel_value_len(items); i++) {
        const cel_value *it = cel_value_at(items, i);
        double price = 0;
        int64_t qty = 0;
        ASSERT_OK(cel_value_get_double(cel_value_get(it, "price"), &price));
        ASSERT_OK(cel_value_get_int(cel_value_get(it, "qty"), &qty));
        sum += price * (double)qty;
    }
    ASSERT(sum == 8.0);
    cel_test_task_teardown(&f);
}

static void test_containers_and_iteration(void)
{
    struct cel_test_task f;
    setup(&f);
    const cel_value *nested = cel_task_arg_value(&f.task, 3); /* [1, [2, 3]] */
    ASSERT_EQ(cel_value_len(nested), 2);
    int64_t v = 0;
    ASSERT_OK(cel_value_get_int(cel_value_at(cel_value_at(nested, 1), 1), &v));
    ASSERT_EQ(v, 3);
    ASSERT(cel_value_at(nested, 2) == NULL);
    ASSERT(cel_value_get(nested, "x") == NULL); /* not an object */

    /* members in the order they were sent, not sorted */
    const cel_value *obj = cel_task_arg_value(&f.task, 4); /* {"zeta": 1, "alpha": 2} */
    ASSERT_EQ(cel_value_len(obj), 2);
    ASSERT_STREQ(cel_value_key_at(obj, 0), "zeta");
    ASSERT_STREQ(cel_value_key_at(obj, 1), "alpha");
    ASSERT_OK(cel_value_get_int(cel_value_value_at(obj, 1), &v));
    ASSERT_EQ(v, 2);
    ASSERT(cel_value_value_at(obj, 1) == cel_value_get(obj, "alpha"));
    ASSERT(cel_value_key_at(obj, 2) == NULL);
    ASSERT(cel_value_value_at(obj, 2) == NULL);
    ASSERT(cel_value_key_at(nested, 0) == NULL); /* not an object */
    ASSERT(cel_value_at(obj, 0) == NULL);        /* not an array */
    ASSERT(cel_value_get(obj, NULL) == NULL);

    /* len of a string is its bytes, NUL included; scalars and NULL are 0 */
    ASSERT_EQ(cel_value_len(cel_task_arg_value(&f.task, 2)), 3);
    ASSERT_EQ(cel_value_len(cel_task_arg_value(&f.task, 0)), 0);
    ASSERT_EQ(cel_value_len(NULL), 0);
    ASSERT(cel_value_at(NULL, 0) == NULL);
    ASSERT(cel_value_get(NULL, "a") == NULL);
    ASSERT(cel_value_key_at(NULL, 0) == NULL);
    ASSERT_EQ(cel_value_type_of(NULL), CEL_VALUE_NULL);
    cel_test_task_teardown(&f);
}

static void test_typed_getters(void)
{
    struct cel_test_task f;
    setup(&f);
    const cel_task *t = &f.task;
    int64_t i = -1;
    double d = -1;
    bool b = false;
    const char *s = NULL;
    size_t len = 0;

    ASSERT_OK(cel_value_get_int(cel_task_arg_value(t, 0), &i));
    ASSERT_EQ(i, 7);
    /* an int is accepted as double, a double is not an int */
    ASSERT_OK(cel_value_get_double(cel_task_arg_value(t, 0), &d));
    ASSERT(d == 7.0);
    ASSERT_OK(cel_value_get_double(cel_task_arg_value(t, 1), &d));
    ASSERT(d == 2.5);
    i = 99;
    ASSERT_EQ(cel_value_get_int(cel_task_arg_value(t, 1), &i), CEL_ETYPE);
    ASSERT_EQ(i, 99); /* unchanged on failure */
    ASSERT_OK(cel_value_get_bool(cel_task_arg_value(t, 6), &b));
    ASSERT(b);
    ASSERT_EQ(cel_value_get_bool(cel_task_arg_value(t, 0), &b), CEL_ETYPE);
    ASSERT_OK(cel_value_get_string(cel_task_arg_value(t, 2), &s, &len));
    ASSERT_EQ(len, 3);
    ASSERT(memcmp(s, "a\0b", 4) == 0);
    ASSERT_OK(cel_value_get_string(cel_task_arg_value(t, 2), &s, NULL));
    ASSERT_EQ(cel_value_get_string(cel_task_arg_value(t, 5), &s, NULL), CEL_ETYPE); /* null */
    ASSERT_EQ(cel_value_get_double(cel_task_arg_value(t, 2), &d), CEL_ETYPE);

    /* a missing value chains into CEL_EMISSING; a NULL out is CEL_EINVAL */
    ASSERT_EQ(cel_value_get_int(cel_task_arg_value(t, 42), &i), CEL_EMISSING);
    ASSERT_EQ(cel_value_get_double(cel_value_get(cel_task_kwargs_value(t), "nope"), &d),
              CEL_EMISSING);
    ASSERT_EQ(cel_value_get_bool(NULL, &b), CEL_EMISSING);
    ASSERT_EQ(cel_value_get_string(NULL, &s, &len), CEL_EMISSING);
    ASSERT_EQ(cel_value_get_int(cel_task_arg_value(t, 0), NULL), CEL_EINVAL);
    ASSERT_EQ(cel_value_get_double(cel_task_arg_value(t, 0), NULL), CEL_EINVAL);
    ASSERT_EQ(cel_value_get_bool(cel_task_arg_value(t, 6), NULL), CEL_EINVAL);
    ASSERT_EQ(cel_value_get_string(cel_task_arg_value(t, 2), NULL, &len), CEL_EINVAL);

    ASSERT(cel_value_to_json(NULL) == NULL);
    cel_test_task_teardown(&f);
}

/* --- building --------------------------------------------------------------- */

static void test_build_values(void)
{
    cel_value *r = cel_value_new_object();
    ASSERT(r);
    ASSERT_OK(cel_value_set(r, "none", cel_value_new_null()));
    ASSERT_OK(cel_value_set(r, "ok", cel_value_new_bool(true)));
    ASSERT_OK(cel_value_set(r, "n", cel_value_new_int(INT64_MIN)));
    ASSERT_OK(cel_value_set(r, "x", cel_value_new_double(0.1)));
    ASSERT_OK(cel_value_set(r, "s", cel_value_new_string("h\xc3\xa9\"")));
    cel_value *list = cel_value_new_array();
    ASSERT_OK(cel_value_append(list, cel_value_new_int(1)));
    ASSERT_OK(cel_value_append(list, cel_value_new_array()));
    ASSERT_OK(cel_value_set(r, "list", list));
    /* Python's json.dumps text: ", "/": ", ensure_ascii, shortest floats */
    ASSERT_STREQ(json_of(r), "{\"none\": null, \"ok\": true, \"n\": -9223372036854775808, "
                             "\"x\": 0.1, \"s\": \"h\\u00e9\\\"\", \"list\": [1, []]}");

    /* replacing a member keeps its place */
    ASSERT_OK(cel_value_set(r, "ok", cel_value_new_bool(false)));
    ASSERT_STREQ(cel_value_key_at(r, 1), "ok");
    ASSERT_EQ(cel_value_type_of(cel_value_get(r, "ok")), CEL_VALUE_BOOL);
    ASSERT_EQ(cel_value_len(r), 6);

    /* a copy is deep: changing it leaves the original alone */
    cel_value *c = cel_value_copy(r);
    ASSERT(c && c != r);
    ASSERT_OK(cel_value_set(c, "n", cel_value_new_int(5)));
    int64_t n = 0;
    ASSERT_OK(cel_value_get_int(cel_value_get(r, "n"), &n));
    ASSERT_EQ(n, INT64_MIN);
    ASSERT(cel_value_copy(NULL) == NULL);
    cel_value_free(c);
    cel_value_free(r);
    cel_value_free(NULL);

    /* what JSON cannot carry is refused at construction */
    ASSERT(cel_value_new_double(NAN) == NULL);
    ASSERT(cel_value_new_double(INFINITY) == NULL);
    ASSERT(cel_value_new_string("\xff\xfe") == NULL);
    ASSERT(cel_value_new_string(NULL) == NULL);
}

static void test_containers_take_items(void)
{
    cel_value *arr = cel_value_new_array();
    cel_value *obj = cel_value_new_object();

    /* every failure below releases the item (ASan sees a leak otherwise) */
    ASSERT_EQ(cel_value_append(obj, cel_value_new_int(1)), CEL_ETYPE);
    ASSERT_EQ(cel_value_set(arr, "k", cel_value_new_int(1)), CEL_ETYPE);
    ASSERT_EQ(cel_value_append(NULL, cel_value_new_string("lost")), CEL_EINVAL);
    ASSERT_EQ(cel_value_set(NULL, "k", cel_value_new_string("lost")), CEL_EINVAL);
    ASSERT_EQ(cel_value_set(obj, NULL, cel_value_new_string("lost")), CEL_EINVAL);
    ASSERT_EQ(cel_value_set(obj, "\xff", cel_value_new_string("bad key")), CEL_EINVAL);
    ASSERT_EQ(cel_value_append(arr, NULL), CEL_EINVAL);
    ASSERT_EQ(cel_value_set(obj, "k", NULL), CEL_EINVAL);
    ASSERT_EQ(cel_value_len(arr), 0);
    ASSERT_EQ(cel_value_len(obj), 0);

    /* a container given to itself is refused and NOT taken: it is still
     * the caller's, usable and freed below */
    ASSERT_EQ(cel_value_append(arr, arr), CEL_EINVAL);
    ASSERT_EQ(cel_value_set(obj, "me", obj), CEL_EINVAL);
    ASSERT_OK(cel_value_append(arr, cel_value_new_int(2)));
    ASSERT_OK(cel_value_set(obj, "k", cel_value_new_int(3)));
    ASSERT_STREQ(json_of(arr), "[2]");
    ASSERT_STREQ(json_of(obj), "{\"k\": 3}");
    cel_value_free(arr);
    cel_value_free(obj);
}

/* --- parsing ------------------------------------------------------------------ */

static void test_parse(void)
{
    cel_value *v = NULL;
    ASSERT_OK(cel_value_parse(" {\"a\": [1, 2.0, \"x\"], \"b\": null} ", &v));
    ASSERT_EQ(cel_value_type_of(cel_value_at(cel_value_get(v, "a"), 1)), CEL_VALUE_DOUBLE);
    ASSERT_STREQ(json_of(v), "{\"a\": [1, 2.0, \"x\"], \"b\": null}");
    cel_value_free(v);
    ASSERT_OK(cel_value_parse("42", &v)); /* any value at the top */
    ASSERT_EQ(cel_value_type_of(v), CEL_VALUE_INT);
    cel_value_free(v);

    /* bad text: the code, and no output */
    static const char *bad[] = {"",         "[1,", "{\"a\" 1}", "1 2", "nul",      "[1,]",
                                "\"\xff\"", "NaN", "{1: 2}",    "'x'", "[\"\\x\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = (cel_value *)&v; /* anything but NULL: must come back NULL */
        ASSERT_EQ(cel_value_parse(bad[i], &v), CEL_EJSON);
        ASSERT(v == NULL);
    }
    ASSERT_EQ(cel_value_parse(NULL, &v), CEL_EINVAL);
    ASSERT(v == NULL);
    ASSERT_EQ(cel_value_parse("1", NULL), CEL_EINVAL);
}

static void test_parse_refuses_deep_nesting(void)
{
    cel_value *v = NULL;
    /* 64 levels, as a task message may carry, parse; 65 do not */
    char *ok = cel_test_nested_json("", 64, "");
    ASSERT_OK(cel_value_parse(ok, &v));
    cel_value_free(v);
    free(ok);
    char *deep = cel_test_nested_json("", 65, "");
    ASSERT_EQ(cel_value_parse(deep, &v), CEL_EDEPTH);
    ASSERT(v == NULL);
    free(deep);
    /* far past any stack: refused at the limit, not recursed into */
    char *hostile = cel_test_nested_json("{\"a\": ", 200000, "}");
    ASSERT_EQ(cel_value_parse(hostile, &v), CEL_EDEPTH);
    ASSERT(v == NULL);
    free(hostile);
}

/* Random bytes and mangled JSON: any answer but a crash or a value
 * with no code. Deterministic (a fixed xorshift seed). */
static void test_parse_garbage(void)
{
    static const char alphabet[] = "[]{}\":,0123456789.eE+-truefalsn \\u\x01\xc3\xa9\xff";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char text[256];
    int accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + round % (sizeof text - 1);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text[i] = alphabet[x % (sizeof alphabet - 1)];
        }
        text[n] = '\0';
        cel_value *v = NULL;
        int rc = cel_value_parse(text, &v);
        ASSERT(rc == CEL_OK ? v != NULL : v == NULL);
        ASSERT(rc == CEL_OK || rc == CEL_EJSON || rc == CEL_EDEPTH);
        if (rc == CEL_OK) {
            accepted++;
            char *again = cel_value_to_json(v); /* what we accept, we write back */
            cel_value *w = NULL;
            ASSERT_OK(cel_value_parse(again, &w));
            cel_value_free(w);
            cel_free(again);
        }
        cel_value_free(v);
    }
    ASSERT(accepted > 0); /* the alphabet does make JSON sometimes ("1", "[]") */
}

/* --- a value as the task's result --------------------------------------------- */

static void test_return_value(void)
{
    struct cel_test_task f;
    setup(&f);
    cel_task *t = &f.task;

    /* the last outcome call wins: a value after a failure clears it */
    cel_task_fail(t, "ValueError", NULL, "first");
    cel_value *r = cel_value_new_array();
    ASSERT_OK(cel_value_append(r, cel_value_copy(cel_task_arg_value(t, 4))));
    ASSERT_OK(cel_task_return_value(t, r));
    ASSERT(!t->failed);
    ASSERT(t->exc_type == NULL);
    char *text = json_dumps(t->result, JSON_COMPACT);
    ASSERT_STREQ(text, "[{\"zeta\":1,\"alpha\":2}]");
    free(text);

    /* too deep for any reader: refused, the earlier result stays */
    cel_value *deep = NULL;
    char *d64 = cel_test_nested_json("", 64, "");
    ASSERT_OK(cel_value_parse(d64, &deep));
    free(d64);
    cel_value *d65 = cel_value_new_array();
    ASSERT_OK(cel_value_append(d65, deep));
    ASSERT_EQ(cel_task_return_value(t, d65), CEL_EDEPTH);
    ASSERT(json_is_array(t->result) && json_array_size(t->result) == 1);

    /* exactly at the limit is fine */
    char *d64b = cel_test_nested_json("", 64, "");
    ASSERT_OK(cel_value_parse(d64b, &deep));
    free(d64b);
    ASSERT_OK(cel_task_return_value(t, deep));

    /* a task later failing wins over the value */
    ASSERT_OK(cel_task_return_value(t, cel_value_new_string("x")));
    cel_task_fail(t, "ValueError", NULL, "later");
    ASSERT(t->failed && t->result == NULL);

    ASSERT_EQ(cel_task_return_value(t, NULL), CEL_EINVAL);
    ASSERT_EQ(cel_task_return_value(NULL, cel_value_new_int(1)), CEL_EINVAL); /* taken */
    cel_test_task_teardown(&f);
}

int main(void)
{
    TEST_RUN(test_task_argument_values);
    TEST_RUN(test_containers_and_iteration);
    TEST_RUN(test_typed_getters);
    TEST_RUN(test_build_values);
    TEST_RUN(test_containers_take_items);
    TEST_RUN(test_parse);
    TEST_RUN(test_parse_refuses_deep_nesting);
    TEST_RUN(test_parse_garbage);
    TEST_RUN(test_return_value);
    return 0;
}
