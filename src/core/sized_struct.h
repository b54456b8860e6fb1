/*
 * sized_struct.h - reading public structs that grow.
 *
 * Structs that users fill (cel_task_def, cel_send_options) begin with
 * `unsigned struct_size`, set by their *_INIT macro to the sizeof the
 * caller was compiled with. Fields are only ever appended, so a caller's
 * struct is a prefix of the library's (an older caller) or the library's
 * is a prefix of the caller's (a newer caller on an older library).
 *
 * The rule for the second case: fields the library does not know are
 * accepted only when all their bytes are zero, i.e. the caller left them
 * at their defaults. A module that asks for a time limit the library
 * cannot enforce is refused instead of silently run without one. For that
 * to work the structs have no padding (asserted where they are read), so
 * every byte past a known field belongs to a later field.
 */
#ifndef CEL_CORE_SIZED_STRUCT_H
#define CEL_CORE_SIZED_STRUCT_H

#include <stddef.h>

/* A struct_size above this is garbage, not a future layout: refusing it
 * keeps a wild value from making us read far past the caller's object. */
#define CEL_SIZED_STRUCT_MAX 4096

/*
 * Reads the caller's struct `src` into `dst` (dst_size bytes, already
 * holding the defaults): copies the fields both know, leaves the defaults
 * in fields the caller's layout lacks, and sets dst's struct_size to
 * dst_size. `what` names the struct in messages ("send options"), `init`
 * its initialiser ("CEL_SEND_OPTIONS_INIT").
 *
 * Returns CEL_OK, or CEL_EINVAL with a one-line reason in err when the
 * size is below min_size (the first published layout) or implausible, or
 * when a field past dst_size is not zero. dst is unchanged on failure.
 */
int cel__sized_struct_read(void *dst, size_t dst_size, const void *src, size_t min_size,
                           const char *what, const char *init, char *err, size_t errlen);

/* The sum of the sizes of a struct's members equals its sizeof: no
 * padding (see above). Used in _Static_assert next to each reader. */
#define CEL_NO_PADDING(type, members_size) (sizeof(type) == (members_size))

#endif
