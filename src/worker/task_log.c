/*
 * task_log.c - cel_task_log(): a task's lines in the worker's log.
 *
 * Celery's task logger prefixes every record with "<name>[<id>]: ", so a
 * line can be traced to the run that wrote it; we write the same prefix
 * through the library's log handler under the component "task". The
 * level is tested before anything is formatted, as CEL_LOG does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "worker/task_context.h"

/* Below cel__log's own line size, so the prefix fits after the text. */
#define TASK_LOG_TEXT_MAX 1536

void cel_task_log(const cel_task *t, cel_log_level level, const char *fmt, ...)
{
    if (!t || !fmt || (int)level < cel__log_min_level)
        return;
    char text[TASK_LOG_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* A handler gets one line without its newline: authors used to
     * printf() often end with one. */
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    cel__log(level, "task", "%s[%s]: %s", cel_task_name(t), cel_task_id(t), text);
}
