/*
 * celeriac/value.h - typed JSON values: read a task's list and object
 * arguments, build a result, without a JSON library of your own.
 *
 *     // tasks.total(items=[{"price": 2.5, "qty": 2}, ...]) -> {"sum": 5.0, "n": 1}
 *     static int total(cel_task *t, void *userdata)
 *     {
 *         const cel_value *items = cel_task_kwarg_value(t, "items");
 *         if (cel_value_type_of(items) != CEL_VALUE_ARRAY)
 *             return cel_task_fail(t, "TypeError", NULL, "items must be a list");
 *         double sum = 0;
 *         for (size_t i = 0; i < cel_value_len(items); i++) {
 *             const cel_value *it = cel_value_at(items, i);
 *             double price;
 *             int64_t qty;
 *             if (cel_value_get_double(cel_value_get(it, "price"), &price) ||
 *                 cel_value_get_int(cel_value_get(it, "qty"), &qty))
 *                 return cel_task_failf(t, "TypeError", "items[%zu]: price and qty", i);
 *             sum += price * (double)qty;
 *         }
 *         cel_value *r = cel_value_new_object();
 *         cel_value_set(r, "sum", cel_value_new_double(sum));
 *         cel_value_set(r, "n", cel_value_new_int((int64_t)cel_value_len(items)));
 *         return cel_task_return_value(t, r);
 *     }
 *
 * Ownership:
 *  - A `const cel_value *` is borrowed. One read from a task (the
 *    cel_task_*_value() functions) lives until the task function returns;
 *    one read from another value (cel_value_at, cel_value_get, ...) lives
 *    as long as that value. Never free or modify a borrowed value: make a
 *    cel_value_copy() to keep or change it.
 *  - A `cel_value *` from cel_value_new_*(), cel_value_parse() or
 *    cel_value_copy() belongs to the caller until it is given away or
 *    released with cel_value_free().
 *  - cel_value_append(), cel_value_set() and cel_task_return_value() TAKE
 *    the value passed to them, on success and on failure alike (a failed
 *    call frees it), so a new value can be built inline:
 *    `cel_value_append(a, cel_value_new_int(5))`. After the call the
 *    pointer is not yours: do not use or free it. The one exception is
 *    giving a container to itself: refused with CEL_EINVAL, nothing taken.
 *  - Strings returned by getters are borrowed from the value;
 *    cel_value_to_json() returns caller-owned text (cel_free).
 *
 * Missing values: lookups return NULL for what is not there, and the
 * typed getters treat a NULL value as a missing one (CEL_EMISSING), so
 * lookups chain: `cel_value_get_int(cel_value_get(obj, "n"), &n)`.
 * Every other NULL pointer argument is CEL_EINVAL.
 *
 * Numbers: JSON keeps 5 and 5.0 apart, as Python and Celery do. An
 * integer is accepted by cel_value_get_double(); a double is not accepted
 * by cel_value_get_int() (CEL_ETYPE).
 *
 * Thread safety: a value is used by one thread at a time.
 */
#ifndef CELERIAC_VALUE_H
#define CELERIAC_VALUE_H

#include <stdbool.h>

#include "celeriac/common.h"
#include "celeriac/task.h" /* cel_task */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_value cel_value;

typedef enum {
    CEL_VALUE_NULL = 0,
    CEL_VALUE_BOOL,
    CEL_VALUE_INT,
    CEL_VALUE_DOUBLE,
    CEL_VALUE_STRING,
    CEL_VALUE_ARRAY,
    CEL_VALUE_OBJECT,
} cel_value_type;

/* --- a task's arguments (borrowed until the task function returns) ------- */

/* The positional arguments (an array) and keyword arguments (an object). */
CEL_API const cel_value *cel_task_args_value(const cel_task *t);
CEL_API const cel_value *cel_task_kwargs_value(const cel_task *t);
/* One argument; NULL when there is no such argument. */
CEL_API const cel_value *cel_task_arg_value(const cel_task *t, size_t i);
CEL_API const cel_value *cel_task_kwarg_value(const cel_task *t, const char *name);

/* --- reading ----------------------------------------------------------- */

/* The value's type; CEL_VALUE_NULL for a NULL pointer too (test the
 * pointer to tell a missing value from a JSON null). */
CEL_API cel_value_type cel_value_type_of(const cel_value *v);
/* Elements of an array, members of an object, bytes of a string (without
 * the NUL); 0 for anything else. */
CEL_API size_t cel_value_len(const cel_value *v);
/* The i-th element of an array; NULL when v is not an array or i is out
 * of range. */
CEL_API const cel_value *cel_value_at(const cel_value *v, size_t i);
/* The member `key` of an object; NULL when v is not an object or has no
 * such member. */
CEL_API const cel_value *cel_value_get(const cel_value *v, const char *key);
/* The i-th member of an object in insertion (wire) order, 0 <= i <
 * cel_value_len(v); NULL when v is not an object or i is out of range.
 * Each call walks from the first member, so walking an object this way
 * costs O(n^2): fine for the few members of a keyword dict. */
CEL_API const char *cel_value_key_at(const cel_value *v, size_t i);
CEL_API const cel_value *cel_value_value_at(const cel_value *v, size_t i);

/* Typed reads: CEL_OK, CEL_EMISSING (v is NULL), CEL_ETYPE (another
 * type), CEL_EINVAL (out is NULL). *out is unchanged on failure. Every
 * JSON integer fits: text with one outside int64 does not parse (as in
 * the argument accessors, whose CEL_ERANGE therefore never occurs here). */
CEL_API int cel_value_get_int(const cel_value *v, int64_t *out);
CEL_API int cel_value_get_double(const cel_value *v, double *out);
CEL_API int cel_value_get_bool(const cel_value *v, bool *out);
/* *out is borrowed from v; *len (may be NULL) excludes the NUL (a string
 * may hold "\u0000": use len to see all of it). */
CEL_API int cel_value_get_string(const cel_value *v, const char **out, size_t *len);

/* JSON text of v (Python's json.dumps spacing, ASCII-only); caller frees
 * with cel_free. NULL when v is NULL or out of memory. */
CEL_API char *cel_value_to_json(const cel_value *v);

/* --- building (caller-owned until given away) ---------------------------
 * Each returns NULL when out of memory, and new_double also for NaN and
 * the infinities, new_string for NULL or text that is not UTF-8 (JSON
 * carries neither). */
CEL_API cel_value *cel_value_new_null(void);
CEL_API cel_value *cel_value_new_bool(bool b);
CEL_API cel_value *cel_value_new_int(int64_t i);
CEL_API cel_value *cel_value_new_double(double d);
CEL_API cel_value *cel_value_new_string(const char *s);
CEL_API cel_value *cel_value_new_array(void);
CEL_API cel_value *cel_value_new_object(void);

/* Parses one JSON value. CEL_OK with a new value in *out; otherwise *out
 * is NULL and the code says why: CEL_EJSON (not one JSON value),
 * CEL_EDEPTH (arrays and objects nested deeper than 64, the limit task
 * messages have too), CEL_ETOOBIG, CEL_ENOMEM; CEL_EINVAL for a NULL
 * argument. */
CEL_API int cel_value_parse(const char *json_text, cel_value **out);

/* Appends `item` to the array `arr`; sets `obj[key]` to `item` (replacing
 * an existing member in place, keeping its position). Both TAKE item,
 * also on failure. CEL_EINVAL for a NULL argument, a key that is not
 * UTF-8 or item == the container (then item is not taken), CEL_ETYPE
 * when the container has another type, CEL_ENOMEM. */
CEL_API int cel_value_append(cel_value *arr, cel_value *item);
CEL_API int cel_value_set(cel_value *obj, const char *key, cel_value *item);

/* A deep copy, caller-owned; NULL when v is NULL or out of memory. */
CEL_API cel_value *cel_value_copy(const cel_value *v);
/* Releases a caller-owned value and everything in it; NULL is fine. */
CEL_API void cel_value_free(cel_value *v);

/* --- a task's result ------------------------------------------------------
 * Sets the task's result to v, which it TAKES (also on failure). Like
 * the cel_task_return_*() functions, the last outcome call wins.
 * CEL_EINVAL for a NULL argument, CEL_EDEPTH (nothing set) for a value
 * nested deeper than 64 levels, which no client would read back. */
CEL_API int cel_task_return_value(cel_task *t, cel_value *v);

#ifdef __cplusplus
}
#endif
#endif
