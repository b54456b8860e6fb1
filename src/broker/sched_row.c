/* sched_row.c - releasing the periodic entries the transports' sched_get
 * and sched_list hand out (broker.h). */
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

void cel__sched_row_release(struct cel_sched_row *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->doc);
    memset(r, 0, sizeof *r);
}

void cel__sched_rows_free(struct cel_sched_row *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        cel__sched_row_release(&v[i]);
    free(v);
}
