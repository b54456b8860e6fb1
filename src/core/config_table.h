/*
 * config_table.h - the option table behind cel_config, for the library,
 * the fuzz target and tests.
 *
 * src/core/config.c holds the one static table. Everything that lists
 * options (`cel_config_describe`, the public iterator of config_info.c
 * that the CLI builds its flags and help from, packaging/celeriac.conf,
 * docs/configuration.md) reads it, so a new option is one table row.
 */
#ifndef CEL_CORE_CONFIG_TABLE_H
#define CEL_CORE_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "celeriac/config.h"

enum cel__config_type {
    CEL__CFG_STRING,
    CEL__CFG_URL,      /* validated with cel__url_parse() */
    CEL__CFG_INT,      /* decimal, within [min, max] */
    CEL__CFG_BOOL,     /* 1/0/true/false/yes/no/on/off; canonical "true"/"false" */
    CEL__CFG_DURATION, /* "30", "30s", "500ms", "5m", "2h", "1d", "1.5s"; canonical seconds */
    CEL__CFG_ENUM,     /* one of `choices`, any case; canonical lower case */
    CEL__CFG_LIST,     /* comma-separated names; canonical "a,b" (trimmed, deduplicated) */
};

#define CEL__CFG_SECRET   0x1u /* the whole value is hidden in dumps and messages */
#define CEL__CFG_EMPTY_OK 0x2u /* "" is a valid value (string, url, list) */

struct cel__config_option {
    const char *key;
    enum cel__config_type type;
    const char *def;            /* canonical text of the default */
    int64_t min, max;           /* int: bounds; duration: bounds in whole seconds */
    const char *const *choices; /* enum: NULL-terminated allowed values */
    unsigned flags;             /* CEL__CFG_* */
    char cli_short;             /* Celery's short flag ('c' for -c), 0 when none */
    const char *cli_long;       /* Celery's long flag without "--", NULL when none */
    const char *help;           /* one or two sentences, no trailing newline */
};

/* The table never holds more rows than this (config.c asserts it), so
 * text derived from it can live in fixed static arrays (config_info.c). */
#define CEL__CONFIG_OPTION_MAX 64

size_t cel__config_option_count(void);
/* NULL when i is out of range. */
const struct cel__config_option *cel__config_option_at(size_t i);
const char *cel__config_option_key(size_t i);
const char *cel__config_option_help(size_t i);
/* "string", "url", "int", "bool", "duration", "enum", "list". */
const char *cel__config_type_name(enum cel__config_type type);
/* What a valid value looks like, as used in error messages: "an integer
 * between 0 and 1024", "one of prefork, solo", ... */
void cel__config_option_expected(size_t i, char *buf, size_t len);
/* "CELERIAC_BROKER_URL" for "broker_url". */
void cel__config_env_name(const char *key, char *buf, size_t len);

/* Index of `key` (case-insensitive, '-' taken as '_'), or -1. */
int cel__config_find(const char *key);

/* The config-file parser over a buffer (cel_config_load_file reads the
 * file and calls this; the fuzz target calls it directly). `name` prefixes
 * error messages ("celeriac.conf:3: ..."). All or nothing: on error `cfg`
 * is unchanged. */
int cel__config_load_buffer(cel_config *cfg, const char *text, size_t len, const char *name);

/* Writes `key = value  # origin` lines that cel__config_load_buffer can read
 * back. cel_config_dump() is this with redact = true. */
void cel__config_write(const cel_config *cfg, FILE *out, bool redact);

/*
 * The value a component should use, with the "empty/zero means ..." rules
 * applied: result_backend "" -> broker_url; worker_queues "" ->
 * task_default_queue; worker_hostname "" -> "celeriac@<gethostname()>";
 * worker_concurrency 0 -> number of online CPUs. Other keys are returned as
 * cel_config_get() does. Returns CEL_OK, CEL_EUNKNOWNKEY, or CEL_ETOOBIG
 * when buf is too small.
 */
int cel__config_effective(const cel_config *cfg, const char *key, char *buf, size_t len);

#endif
