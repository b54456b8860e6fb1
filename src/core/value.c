/*
 * value.c - typed JSON values for task authors (celeriac/value.h).
 *
 * A cel_value is a jansson value (core/value.h): reading is a type check
 * and a field access, building is jansson's constructors. What this file
 * adds is the contract of the public header: NULL-safe calls with CEL_E*
 * codes, item-taking containers that never leak on failure, and a parser
 * with the limits text from outside the process needs.
 */
#include "core/value.h"

#include <stdint.h>
#include <string.h>

#include "celeriac/error.h"
#include "core/json_util.h"

/* cel_value_get_int() hands json_int_t out as int64_t unchanged: jansson
 * is built with long long integers, so no value is out of range. */
_Static_assert(sizeof(json_int_t) == sizeof(int64_t), "json_int_t is 64 bits");

/* --- reading --------------------------------------------------------------- */

cel_value_type cel_value_type_of(const cel_value *v)
{
    switch (v ? json_typeof(cel__value_json(v)) : JSON_NULL) {
    case JSON_OBJECT:
        return CEL_VALUE_OBJECT;
    case JSON_ARRAY:
        return CEL_VALUE_ARRAY;
    case JSON_STRING:
        return CEL_VALUE_STRING;
    case JSON_INTEGER:
        return CEL_VALUE_INT;
    case JSON_REAL:
        return CEL_VALUE_DOUBLE;
    case JSON_TRUE:
    case JSON_FALSE:
        return CEL_VALUE_BOOL;
    case JSON_NULL:
        break;
    }
    return CEL_VALUE_NULL;
}

size_t cel_value_len(const cel_value *v)
{
    const json_t *j = cel__value_json(v);
    if (json_is_array(j))
        return json_array_size(j);
    if (json_is_object(j))
        return json_object_size(j);
    if (json_is_string(j))
        return json_string_length(j);
    return 0; /* also for NULL: json_is_* are NULL-safe */
}

const cel_value *cel_value_at(const cel_value *v, size_t i)
{
    return cel__value_of(json_array_get(cel__value_json(v), i));
}

const cel_value *cel_value_get(const cel_value *v, const char *key)
{
    return key ? cel__value_of(json_object_get(cel__value_json(v), key)) : NULL;
}

/* The iterator of the i-th member; jansson keeps members in insertion
 * order but has no index, so this walks. */
static void *member_at(const cel_value *v, size_t i)
{
    json_t *o = (json_t *)cel__value_json(v); /* jansson's iterators are not const */
    if (!json_is_object(o) || i >= json_object_size(o))
        return NULL;
    void *it = json_object_iter(o);
    while (it && i-- > 0)
        it = json_object_iter_next(o, it);
    return it;
}

const char *cel_value_key_at(const cel_value *v, size_t i)
{
    void *it = member_at(v, i);
    return it ? json_object_iter_key(it) : NULL;
}

const cel_value *cel_value_value_at(const cel_value *v, size_t i)
{
    void *it = member_at(v, i);
    return it ? cel__value_of(json_object_iter_value(it)) : NULL;
}

/* The checks every typed getter starts with. */
static int check_get(const cel_value *v, const void *out)
{
    if (!out)
        return CEL_EINVAL;
    return v ? CEL_OK : CEL_EMISSING;
}

int cel_value_get_int(const cel_value *v, int64_t *out)
{
    int rc = check_get(v, out);
    if (rc != CEL_OK)
        return rc;
    if (!json_is_integer(cel__value_json(v))) /* 5.0 is not 5 */
        return CEL_ETYPE;
    *out = (int64_t)json_integer_value(cel__value_json(v));
    return CEL_OK;
}

int cel_value_get_double(const cel_value *v, double *out)
{
    int rc = check_get(v, out);
    if (rc != CEL_OK)
        return rc;
    if (!json_is_number(cel__value_json(v))) /* an integer is a number, as float(5) */
        return CEL_ETYPE;
    *out = json_number_value(cel__value_json(v));
    return CEL_OK;
}

int cel_value_get_bool(const cel_value *v, bool *out)
{
    int rc = check_get(v, out);
    if (rc != CEL_OK)
        return rc;
    if (!json_is_boolean(cel__value_json(v)))
        return CEL_ETYPE;
    *out = json_is_true(cel__value_json(v));
    return CEL_OK;
}

int cel_value_get_string(const cel_value *v, const char **out, size_t *len)
{
    int rc = check_get(v, out);
    if (rc != CEL_OK)
        return rc;
    if (!json_is_string(cel__value_json(v)))
        return CEL_ETYPE;
    *out = json_string_value(cel__value_json(v));
    if (len)
        *len = json_string_length(cel__value_json(v));
    return CEL_OK;
}

char *cel_value_to_json(const cel_value *v)
{
    return v ? cel__json_dump(cel__value_json(v)) : NULL;
}

/* --- building ------------------------------------------------------------ */

cel_value *cel_value_new_null(void)
{
    return cel__value_owned(json_null());
}

cel_value *cel_value_new_bool(bool b)
{
    return cel__value_owned(json_boolean(b));
}

cel_value *cel_value_new_int(int64_t i)
{
    return cel__value_owned(json_integer((json_int_t)i));
}

cel_value *cel_value_new_double(double d)
{
    return cel__value_owned(json_real(d)); /* NULL for NaN and infinities */
}

cel_value *cel_value_new_string(const char *s)
{
    return s ? cel__value_owned(json_string(s)) : NULL; /* NULL: not UTF-8 */
}

cel_value *cel_value_new_array(void)
{
    return cel__value_owned(json_array());
}

cel_value *cel_value_new_object(void)
{
    return cel__value_owned(json_object());
}

int cel_value_parse(const char *json_text, cel_value **out)
{
    if (!out)
        return CEL_EINVAL;
    *out = NULL;
    if (!json_text)
        return CEL_EINVAL;
    /* The limits of task messages: a value a task received always parses,
     * and hostile text cannot recurse deep or balloon. */
    const struct cel_json_limits lim = {.max_depth = CEL_JSON_MAX_DEPTH};
    json_t *j = NULL;
    char err[160];
    int rc = cel__json_parse_limited(json_text, strlen(json_text), &lim, &j, err, sizeof err);
    if (rc == CEL_OK)
        *out = cel__value_owned(j);
    return rc;
}

/*
 * What append and set share before they hand `item` to jansson: CEL_OK,
 * or the code to return after item has been released (taken, as the
 * header promises). A container given to itself is refused without
 * taking it: releasing it would free the container under the caller.
 */
static int check_insert(cel_value *container, cel_value *item, bool is_type_ok)
{
    if (container && container == item)
        return CEL_EINVAL;
    int rc = !container || !item ? CEL_EINVAL : !is_type_ok ? CEL_ETYPE : CEL_OK;
    if (rc != CEL_OK)
        cel_value_free(item);
    return rc;
}

int cel_value_append(cel_value *arr, cel_value *item)
{
    json_t *a = cel__value_json_owned(arr);
    int rc = check_insert(arr, item, json_is_array(a));
    if (rc != CEL_OK)
        return rc;
    /* _new: jansson takes item, and releases it on failure (only OOM here) */
    return json_array_append_new(a, cel__value_json_owned(item)) == 0 ? CEL_OK : CEL_ENOMEM;
}

int cel_value_set(cel_value *obj, const char *key, cel_value *item)
{
    json_t *o = cel__value_json_owned(obj);
    int rc = check_insert(obj, item, json_is_object(o));
    if (rc == CEL_OK && !key) {
        cel_value_free(item);
        rc = CEL_EINVAL;
    }
    if (rc != CEL_OK)
        return rc;
    if (json_object_set_new(o, key, cel__value_json_owned(item)) == 0)
        return CEL_OK;
    /* jansson released item. It fails for a key that is not UTF-8, or
     * out of memory: only the failure path pays to tell them apart. */
    json_t *probe = json_string(key);
    bool key_ok = probe != NULL;
    json_decref(probe);
    return key_ok ? CEL_ENOMEM : CEL_EINVAL;
}

cel_value *cel_value_copy(const cel_value *v)
{
    return v ? cel__value_owned(json_deep_copy(cel__value_json(v))) : NULL;
}

void cel_value_free(cel_value *v)
{
    json_decref(cel__value_json_owned(v));
}

int cel__value_depth(const json_t *v, int limit)
{
    if (!json_is_array(v) && !json_is_object(v))
        return 0;
    if (limit <= 0)
        return 1; /* one container already past the limit: stop descending */
    int inner = 0;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    for (size_t i = 0; i < n && inner < limit; i++) {
        int d = cel__value_depth(json_array_get(v, i), limit - 1);
        inner = d > inner ? d : inner;
    }
    json_t *o = json_is_object(v) ? (json_t *)v : NULL; /* iterators are not const */
    for (void *it = json_object_iter(o); it && inner < limit; it = json_object_iter_next(o, it)) {
        int d = cel__value_depth(json_object_iter_value(it), limit - 1);
        inner = d > inner ? d : inner;
    }
    return inner + 1;
}
