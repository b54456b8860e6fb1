/* uuid.h - random (version 4) UUIDs for task ids and delivery tags. */
#ifndef CEL_CORE_UUID_H
#define CEL_CORE_UUID_H

#define CEL_UUID_STRLEN 36

/* Writes a canonical lower-case UUID4 and a NUL into out[37]. */
void cel__uuid4(char out[CEL_UUID_STRLEN + 1]);

#endif
