/*
 * log.h - the library's logging facade.
 *
 * The library never prints; it hands lines to the handler installed with
 * cel_set_log_handler(). CEL_LOG tests the level before formatting, so a
 * disabled debug line costs one comparison.
 */
#ifndef CEL_CORE_LOG_H
#define CEL_CORE_LOG_H

#include "celeriac/common.h"

extern int cel__log_min_level;

void cel__log(cel_log_level level, const char *component, const char *fmt, ...) CEL_PRINTF(3, 4);

#define CEL_LOG(level, component, ...)                                                             \
    do {                                                                                           \
        if ((int)(level) >= cel__log_min_level)                                                    \
            cel__log((level), (component), __VA_ARGS__);                                           \
    } while (0)

#define CEL_DEBUG(comp, ...) CEL_LOG(CEL_LOG_DEBUG, comp, __VA_ARGS__)
#define CEL_INFO(comp, ...)  CEL_LOG(CEL_LOG_INFO, comp, __VA_ARGS__)
#define CEL_WARN(comp, ...)  CEL_LOG(CEL_LOG_WARNING, comp, __VA_ARGS__)
#define CEL_ERROR(comp, ...) CEL_LOG(CEL_LOG_ERROR, comp, __VA_ARGS__)

/* Sets what cel_log_process_name() returns in this process. */
void cel__log_set_process_name(const char *name);

#endif
