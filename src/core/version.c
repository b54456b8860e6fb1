/* version.c - runtime version and the caller-facing free(). */
#include <stdlib.h>

#include "celeriac/common.h"

#define CEL_STR_(x) #x
#define CEL_STR(x)  CEL_STR_(x)

const char *cel_version_string(void)
{
    return CEL_STR(CEL_VERSION_MAJOR) "." CEL_STR(CEL_VERSION_MINOR) "." CEL_STR(CEL_VERSION_PATCH);
}

unsigned cel_version(void)
{
    return CEL_VERSION_NUM;
}

void cel_free(void *p)
{
    free(p);
}
