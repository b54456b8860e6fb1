/* schemes.c - see schemes.h. */
#include "core/schemes.h"

#include <stdio.h>
#include <string.h>

const void *cel__scheme_find(const struct cel_scheme *t, size_t n, const char *scheme)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].scheme, scheme) == 0)
            return t[i].impl;
    return NULL;
}

void cel__scheme_list(const struct cel_scheme *t, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int k = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", t[i].scheme);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}
