/*
 * celeriac/common.h - version, export macros, memory and logging hooks.
 *
 * Ownership rules for the whole library (repeated where they matter):
 *  - The library copies any input it needs to keep.
 *  - A returned `const` pointer is borrowed: it stays valid until the next
 *    mutating call on the same handle, or until the handle is freed.
 *  - A returned non-const pointer belongs to the caller, who releases it
 *    with the matching cel_*_free(), or cel_free() for strings.
 *  - Every cel_*_free() accepts NULL.
 *
 * Threading: a handle is used by one thread at a time; different handles
 * may be used on different threads. No global init call is needed.
 */
#ifndef CELERIAC_COMMON_H
#define CELERIAC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CEL_API               __attribute__((visibility("default")))
#define CEL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CEL_API
#define CEL_PRINTF(fmt, args)
#endif

#define CEL_VERSION_MAJOR 0
#define CEL_VERSION_MINOR 2
#define CEL_VERSION_PATCH 0
#define CEL_VERSION_NUM   ((CEL_VERSION_MAJOR << 16) | (CEL_VERSION_MINOR << 8) | CEL_VERSION_PATCH)

/* Runtime version of the linked library, "0.2.0". */
CEL_API const char *cel_version_string(void);
CEL_API unsigned cel_version(void);

/* Releases a string or buffer the library returned as caller-owned. */
CEL_API void cel_free(void *p);

typedef enum {
    CEL_LOG_DEBUG = 10,
    CEL_LOG_INFO = 20,
    CEL_LOG_WARNING = 30,
    CEL_LOG_ERROR = 40,
    CEL_LOG_CRITICAL = 50,
} cel_log_level;

/*
 * Log handler. `component` names the subsystem ("worker", "broker.sqlite",
 * ...); `msg` is one line without a trailing newline, borrowed for the call.
 * The library itself never writes to stdout or stderr.
 */
typedef void (*cel_log_fn)(cel_log_level level, const char *component, const char *msg,
                           void *userdata);

/* Installs the process-wide log handler (NULL: discard). Messages below
 * min_level are not even formatted. Not thread-safe against concurrent
 * logging: call it at start-up. */
CEL_API void cel_set_log_handler(cel_log_fn fn, void *userdata, cel_log_level min_level);

/* Parses "debug", "info", "warning", "error", "critical" (any case). */
CEL_API int cel_log_level_parse(const char *name, cel_log_level *out);
CEL_API const char *cel_log_level_name(cel_log_level level);

/* Name of the calling process for log lines, as Celery prints it:
 * "MainProcess" in a worker parent or client, "ForkPoolWorker-N" in the
 * N-th prefork child. */
CEL_API const char *cel_log_process_name(void);

#ifdef __cplusplus
}
#endif
#endif
