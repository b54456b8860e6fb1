/*
 * cli_args.h - a task call's arguments on the command line, as `celeriac
 * call` and `celeriac schedule add` take them: positional words that are
 * JSON when they parse as JSON and strings otherwise (`2 3` is [2, 3],
 * `hello` is ["hello"], '"2"' is ["2"]), or --args JSON, plus --kwargs
 * JSON and --kw KEY=VALUE.
 */
#ifndef CELERIAC_CLI_ARGS_H
#define CELERIAC_CLI_ARGS_H

#include <jansson.h>

#include "cli_common.h"

/* JSON if `text` parses as a JSON value, else the text as a string; NULL
 * for text that is not UTF-8. */
json_t *cli_json_or_string(const char *text);

/* Adds --kw KEY=VALUE to *kw (created on first use): 0, or an exit code
 * after saying why. */
int cli_add_kw(const struct cli *cli, json_t **kw, const char *arg);

/*
 * The args array and kwargs object as JSON text (caller frees both):
 * from args_json, or else from the npos words at pos; kwargs_json (NULL:
 * {}) updated with kw (may be NULL). Returns -1, or an exit code after
 * saying why.
 */
int cli_call_arguments(const struct cli *cli, char *const *pos, int npos, const char *args_json,
                       const char *kwargs_json, const json_t *kw, char **args_out,
                       char **kwargs_out);

#endif
