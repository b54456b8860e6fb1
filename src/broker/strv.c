/* strv.c - cel__strv_free() (broker.h): frees a vector of strings a
 * broker op handed out, such as queue_paused_list()'s names. */
#include <stdlib.h>

#include "broker/broker.h"

void cel__strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
