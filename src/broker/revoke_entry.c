/* revoke_entry.c - what every transport's revoke_list() hands out (broker.h). */
#include <stdlib.h>

#include "broker/broker.h"

void cel__revoke_entries_free(struct cel_revoke_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].task_id);
    free(v);
}
