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

/*
 * The value a component uses, with the "empty or zero means ..." rules
 * applied: result_backend "" -> broker_url, worker_queues "" ->
 * task_default_queue, worker_hostname "" -> "celeriac@<host name>",
 * worker_concurrency 0 -> the number of online CPUs; any other key as
 * cel_config_get() gives it. Writes NUL-terminated text into buf.
 * Returns CEL_OK, CEL_EUNKNOWNKEY, CEL_ETOOBIG when buf is too small, or
 * CEL_EINVAL when cfg or buf is NULL.
 */
CEL_API int cel_config_get_effective(const cel_config *cfg, const char *key, char *buf, size_t len);

/*
 * The option table, for programs that list or check options themselves
 * (the celeriac command line builds its flags and --help from it):
 *
 *     for (size_t i = 0; i < cel_config_option_count(); i++) {
 *         cel_config_option_info o = CEL_CONFIG_OPTION_INFO_INIT;
 *         if (cel_config_option_at(i, &o) == CEL_OK)
 *             printf("%s (%s), default %s\n", o.key, o.type, o.default_value);
 *     }
 *
 * Ownership: every string in a cel_config_option_info is static, valid
 * for the life of the process and never freed; the table does not change
 * while the process runs, so index i names the same option throughout.
 * Thread-safe.
 *
 * The struct grows at the end in later versions. The caller says which
 * layout it has in struct_size (CEL_CONFIG_OPTION_INFO_INIT sets it): an
 * older caller gets the fields it knows, a newer caller on an older
 * library keeps the initialiser's zero in the fields the library does not
 * know.
 */
typedef struct cel_config_option_info {
    unsigned struct_size;      /* in: sizeof the caller saw; CEL_CONFIG_OPTION_INFO_INIT */
    int short_flag;            /* Celery's short flag letter ('c' for -c); 0 when none */
    const char *key;           /* "worker_concurrency" */
    const char *type;          /* "string", "url", "int", "bool", "duration", "enum" or "list" */
    const char *default_value; /* canonical text of the default; "" when empty */
    const char *env;           /* environment variable: "CELERIAC_WORKER_CONCURRENCY" */
    const char *long_flag;     /* Celery's long flag without "--" ("concurrency"); NULL: none */
    const char *help;          /* one or two sentences, no trailing newline */
    const char *expected;      /* a valid value, for messages: "an integer between 0 and 1024" */
    int secret;                /* non-zero: the value is hidden in dumps and messages */
    int empty_ok;              /* non-zero: "" is a valid value */
} cel_config_option_info;

#define CEL_CONFIG_OPTION_INFO_INIT                                                                \
    {                                                                                              \
        .struct_size = sizeof(cel_config_option_info)                                              \
    }

/* Number of options in the table. */
CEL_API size_t cel_config_option_count(void);
/* Describes option i (0 <= i < cel_config_option_count()) in *out.
 * Returns CEL_OK; CEL_ENOTFOUND when i is out of range; CEL_EINVAL when
 * out is NULL or its struct_size is no layout (not initialised with
 * CEL_CONFIG_OPTION_INFO_INIT). *out is unchanged on failure. */
CEL_API int cel_config_option_at(size_t i, cel_config_option_info *out);
/* Index of `key` (any case, '-' taken as '_', as cel_config_set() reads
 * keys) in *index. Returns CEL_OK or CEL_EUNKNOWNKEY. */
CEL_API int cel_config_option_find(const char *key, size_t *index);

/*
 * Checks one value against its option without a cel_config handle (for
 * a flag checked before any configuration is built). Returns CEL_OK,
 * CEL_EUNKNOWNKEY (the closest known key suggested in errbuf) or
 * CEL_ECONFIG, with a one-line reason in errbuf (errlen bytes, may be 0).
 */
CEL_API int cel_config_check(const char *key, const char *value, char *errbuf, size_t errlen);

/*
 * Sections: a config file may hold [schedule.NAME] blocks, each a set of
 * `key value` lines kept as written until the next [section] header
 * (celeriac/schedule.h reads them: task, args, kwargs, cron, every, at,
 * when, tz, queue, priority, expires, catch_up, enabled). Loading refuses
 * a section of another kind, a key that is not one of those (naming the
 * closest), and a repeated key or section. Options before the first
 * section header are the global options above; there is no way back to
 * them after a header.
 */
CEL_API size_t cel_config_section_count(const cel_config *cfg);
/* "schedule.nightly"; NULL past the end. */
CEL_API const char *cel_config_section_name(const cel_config *cfg, size_t i);
/* The value of `key` in section i, or NULL when it is not set there. */
CEL_API const char *cel_config_section_get(const cel_config *cfg, size_t i, const char *key);
/* Where section i starts ("file:12"). */
CEL_API const char *cel_config_section_origin(const cel_config *cfg, size_t i);

#ifdef __cplusplus
}
#endif
#endif
