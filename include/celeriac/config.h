/*
 * celeriac/config.h - configuration object.
 *
 * One declarative table of options feeds the config file, CELERIAC_*
 * environment variables, command-line flags and `--check-config`. Keys are
 * Celery's names where Celery has the option (broker_url, result_backend,
 * worker_concurrency, ...). Values are always given as text and validated
 * against the option's type: "4", "30s", "info", "redis://...".
 *
 * Precedence, lowest first: built-in default < file < environment < set().
 * Later calls simply override earlier ones; call them in that order.
 *
 * Thread safety: a cel_config is not internally locked. Once built it may
 * be read (and passed to cel_client_new/cel_worker_new) from any thread.
 */
#ifndef CELERIAC_CONFIG_H
#define CELERIAC_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cel_config cel_config;

/* A new configuration holding every default. NULL only when out of memory. */
CEL_API cel_config *cel_config_new(void);
CEL_API void cel_config_free(cel_config *cfg);
/* Deep copy; NULL when out of memory. */
CEL_API cel_config *cel_config_dup(const cel_config *cfg);

/*
 * Sets `key` from its text form. Returns CEL_EUNKNOWNKEY for a key not in
 * the table, CEL_ECONFIG for a value of the wrong shape; the detail
 * (including the closest known key) is in cel_config_errmsg().
 * `origin` says where the value came from ("file:3", "env", "cli"); it may
 * be NULL and is copied.
 */
CEL_API int cel_config_set(cel_config *cfg, const char *key, const char *value, const char *origin);

/* Reads a `key value` / `key = value` file; `#` starts a comment. All
 * lines are validated; the first error is returned with file:line. */
CEL_API int cel_config_load_file(cel_config *cfg, const char *path);
/* Applies every CELERIAC_<KEY> variable (key upper-cased) found in the
 * environment. An unknown CELERIAC_* variable is an error, so typos show. */
CEL_API int cel_config_load_env(cel_config *cfg);

/* Current value as canonical text (borrowed, valid until the next set on
 * that key); NULL for unknown keys. */
CEL_API const char *cel_config_get(const cel_config *cfg, const char *key);
CEL_API int64_t cel_config_get_int(const cel_config *cfg, const char *key);
CEL_API double cel_config_get_double(const cel_config *cfg, const char *key);
/* Where the current value came from: "default", "file:LINE", "env", "cli". */
CEL_API const char *cel_config_origin(const cel_config *cfg, const char *key);

/* Detail of the last failed call on this handle; "" when none. */
CEL_API const char *cel_config_errmsg(const cel_config *cfg);

/* Writes every option as `key value  # origin` lines, secrets redacted. */
CEL_API void cel_config_dump(const cel_config *cfg, FILE *out);
/* Writes the option reference (key, type, default, env name, help). */
CEL_API void cel_config_describe(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
