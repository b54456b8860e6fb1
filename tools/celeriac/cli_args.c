/* cli_args.c - see cli_args.h. */
#include "cli_args.h"

#include <stdlib.h>
#include <string.h>

json_t *cli_json_or_string(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v)
        return v;
    return json_string(text); /* NULL for text that is not UTF-8 */
}

int cli_add_kw(const struct cli *cli, json_t **kw, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        cli_error(cli, "--kw expects KEY=VALUE, got '%s'", arg);
        return CLI_EXIT_USAGE;
    }
    if (!*kw)
        *kw = json_object();
    char *key = strndup(arg, (size_t)(eq - arg));
    json_t *v = cli_json_or_string(eq + 1);
    int bad = !*kw || !key || !v || json_object_set_new(*kw, key, v) != 0;
    free(key);
    if (bad) {
        cli_error(cli, "invalid --kw '%s' (not UTF-8?)", arg);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_call_arguments(const struct cli *cli, char *const *pos, int npos, const char *args_json,
                       const char *kwargs_json, const json_t *kw, char **args_out,
                       char **kwargs_out)
{
    json_error_t jerr;
    json_t *args = NULL, *kwargs = NULL;
    int rc = CLI_EXIT_USAGE;
    *args_out = *kwargs_out = NULL;

    if (args_json) {
        args = json_loads(args_json, 0, &jerr);
        if (!json_is_array(args)) {
            cli_error(cli, "--args must be a JSON array, got '%s'%s%s", args_json, args ? "" : ": ",
                      args ? "" : jerr.text);
            goto out;
        }
        if (npos > 0) {
            cli_error(cli, "give positional arguments either after the task name or with --args, "
                           "not both");
            goto out;
        }
    } else {
        args = json_array();
        for (int i = 0; i < npos; i++) {
            json_t *v = cli_json_or_string(pos[i]);
            if (!v || json_array_append_new(args, v) != 0) {
                cli_error(cli, "argument '%s' is neither JSON nor UTF-8 text", pos[i]);
                goto out;
            }
        }
    }
    if (kwargs_json) {
        kwargs = json_loads(kwargs_json, 0, &jerr);
        if (!json_is_object(kwargs)) {
            cli_error(cli, "--kwargs must be a JSON object, got '%s'%s%s", kwargs_json,
                      kwargs ? "" : ": ", kwargs ? "" : jerr.text);
            goto out;
        }
    } else {
        kwargs = json_object();
    }
    if (kw && json_object_update(kwargs, (json_t *)kw) != 0)
        goto out;
    *args_out = json_dumps(args, JSON_ENSURE_ASCII);
    *kwargs_out = json_dumps(kwargs, JSON_ENSURE_ASCII);
    rc = *args_out && *kwargs_out ? -1 : CLI_EXIT_USAGE;
out:
    json_decref(args);
    json_decref(kwargs);
    return rc;
}
