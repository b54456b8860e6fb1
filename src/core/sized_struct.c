/* sized_struct.c - see sized_struct.h. */
#include "core/sized_struct.h"

#include <string.h>

#include "celeriac/common.h"
#include "core/errbuf.h"

int cel__sized_struct_read(void *dst, size_t dst_size, const void *src, size_t min_size,
                           const char *what, const char *init, char *err, size_t errlen)
{
    unsigned size;
    memcpy(&size, src, sizeof size);
    if (size < min_size || size > CEL_SIZED_STRUCT_MAX)
        return cel__errf(err, errlen, CEL_EINVAL,
                         "%s has struct_size %u, which is no celeriac layout (expected %zu or "
                         "more): initialise it with %s",
                         what, size, min_size, init);
    if (size > dst_size) {
        const unsigned char *extra = (const unsigned char *)src + dst_size;
        for (size_t i = 0; i < size - dst_size; i++)
            if (extra[i])
                return cel__errf(err, errlen, CEL_EINVAL,
                                 "%s sets a field at byte %zu that libceleriac %s does not know "
                                 "(its layout ends at %zu, the caller's at %u): run it with the "
                                 "libceleriac it was built against, or a newer one",
                                 what, dst_size + i, cel_version_string(), dst_size, size);
    }
    memcpy(dst, src, size < dst_size ? size : dst_size);
    unsigned own = (unsigned)dst_size;
    memcpy(dst, &own, sizeof own);
    return CEL_OK;
}
