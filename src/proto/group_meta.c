/* group_meta.c - see group_meta.h. */
#include "proto/group_meta.h"

#include "core/json_util.h"

json_t *cel__group_meta_new(const char *group_id, const char *const *ids, size_t n)
{
    json_t *members = json_array();
    for (size_t i = 0; members && i < n; i++)
        if (json_array_append_new(members, json_pack("[[s, n], n]", ids[i])))
            json_decref(members), members = NULL;
    return members ? json_pack("{s:[[s, n], o]}", "result", group_id, members) : NULL;
}

const char *cel__result_tuple_id(const json_t *t)
{
    return cel__json_cstr(json_array_get(json_array_get(t, 0), 0));
}

json_t *cel__result_tuple_members(const json_t *t)
{
    json_t *m = json_array_get(t, 1);
    return json_is_array(m) ? m : NULL;
}
