/*
 * task_module_api.c - tasks that use the task API of issue 7 from a
 * dlopen'ed module in a real worker (test_task_api): typed values in and
 * out, cel_task_check_argc, cel_task_log and the request accessors. Like
 * every module it binds its cel_* calls to the worker executable, so it
 * also proves the CLI exports them.
 */
#include <celeriac.h>

/* api.total(items=[{"price": p, "qty": q}, ...]) -> {"sum": ..., "n": ...} */
static int total(cel_task *t, void *userdata)
{
    (void)userdata;
    const cel_value *items = cel_task_kwarg_value(t, "items");
    if (cel_value_type_of(items) != CEL_VALUE_ARRAY)
        return cel_task_fail(t, "TypeError", NULL, "items must be a list");
    double sum = 0;
    for (size_t i = 0; i < cel_value_len(items); i++) {
        const cel_value *it = cel_value_at(items, i);
        double price;
        int64_t qty;
        if (cel_value_get_double(cel_value_get(it, "price"), &price) ||
            cel_value_get_int(cel_value_get(it, "qty"), &qty))
            return cel_task_failf(t, "TypeError", "items[%zu]: price and qty", i);
        sum += price * (double)qty;
    }
    cel_value *r = cel_value_new_object();
    cel_value_set(r, "sum", cel_value_new_double(sum));
    cel_value_set(r, "n", cel_value_new_int((int64_t)cel_value_len(items)));
    return cel_task_return_value(t, r);
}

static int add(cel_task *t, void *userdata)
{
    (void)userdata;
    if (cel_task_check_argc(t, 2, 2) != CEL_OK)
        return CEL_OK;
    int64_t x, y;
    if (cel_task_arg_int(t, 0, &x) || cel_task_arg_int(t, 1, &y))
        return cel_task_fail_args(t);
    return cel_task_return_int(t, x + y);
}

static void put_string(cel_value *obj, const char *key, const char *s)
{
    cel_value_set(obj, key, s ? cel_value_new_string(s) : cel_value_new_null());
}

/* Logs one line and returns what the request says, as an object. */
static int request(cel_task *t, void *userdata)
{
    (void)userdata;
    cel_task_log(t, CEL_LOG_WARNING, "request seen, %zu args", cel_task_argc(t));
    cel_value *r = cel_value_new_object();
    put_string(r, "name", cel_task_name(t));
    put_string(r, "routing_key", cel_task_routing_key(t));
    put_string(r, "exchange", cel_task_exchange(t));
    put_string(r, "eta", cel_task_eta(t));
    put_string(r, "hostname", cel_task_hostname(t));
    cel_value_set(r, "priority", cel_value_new_int(cel_task_priority(t)));
    cel_value_set(r, "is_retry", cel_value_new_bool(cel_task_is_retry(t)));
    cel_value_set(r, "max_retries", cel_value_new_int(cel_task_max_retries(t)));
    cel_value *headers = NULL;
    if (cel_value_parse(cel_task_headers_json(t), &headers) == CEL_OK)
        cel_value_set(r, "header_id", cel_value_copy(cel_value_get(headers, "id")));
    cel_value_free(headers);
    return cel_task_return_value(t, r);
}

CEL_MODULE_INIT(reg)
{
    static const cel_task_def defs[] = {
        CEL_TASK_DEF_INIT(.name = "api.total", .fn = total),
        CEL_TASK_DEF_INIT(.name = "api.add", .fn = add),
        CEL_TASK_DEF_INIT(.name = "api.request", .fn = request, .max_retries = 5),
    };
    return cel_registry_add_many(reg, defs, 3);
}
