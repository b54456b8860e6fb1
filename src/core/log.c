/* log.c - see log.h and cel_set_log_handler() in celeriac/common.h. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

int cel__log_min_level = CEL_LOG_CRITICAL + 1; /* nothing until a handler is set */
static cel_log_fn log_fn;
static void *log_userdata;

void cel_set_log_handler(cel_log_fn fn, void *userdata, cel_log_level min_level)
{
    log_fn = fn;
    log_userdata = userdata;
    cel__log_min_level = fn ? (int)min_level : CEL_LOG_CRITICAL + 1;
}

void cel__log(cel_log_level level, const char *component, const char *fmt, ...)
{
    if (!log_fn || (int)level < cel__log_min_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_fn(level, component, line, log_userdata);
}

static const struct {
    const char *name;
    cel_log_level level;
} level_names[] = {
    {"debug", CEL_LOG_DEBUG},    {"info", CEL_LOG_INFO},   {"warning", CEL_LOG_WARNING},
    {"warn", CEL_LOG_WARNING},   {"error", CEL_LOG_ERROR}, {"critical", CEL_LOG_CRITICAL},
    {"fatal", CEL_LOG_CRITICAL},
};

int cel_log_level_parse(const char *name, cel_log_level *out)
{
    for (size_t i = 0; name && i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i].name) == 0) {
            *out = level_names[i].level;
            return 0;
        }
    }
    return -2; /* CEL_EINVAL */
}

const char *cel_log_level_name(cel_log_level level)
{
    switch (level) {
    case CEL_LOG_DEBUG:
        return "DEBUG";
    case CEL_LOG_INFO:
        return "INFO";
    case CEL_LOG_WARNING:
        return "WARNING";
    case CEL_LOG_ERROR:
        return "ERROR";
    case CEL_LOG_CRITICAL:
        return "CRITICAL";
    }
    return "?";
}

static char process_name[64] = "MainProcess";

void cel__log_set_process_name(const char *name)
{
    snprintf(process_name, sizeof process_name, "%s", name);
}

const char *cel_log_process_name(void)
{
    return process_name;
}
