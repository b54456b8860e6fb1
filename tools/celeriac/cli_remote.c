/* cli_remote.c - see cli_remote.h. */
#include "cli_remote.h"

#include <stdlib.h>
#include <string.h>

#define INDENT 4

int cli_remote_opt(struct cli *cli, struct cli_remote *ro, int val, const char *arg)
{
    switch (val) {
    case CLI_OPT_DESTINATION:
        ro->nnodes = cli_split_list(arg, ro->nodes_buf, sizeof ro->nodes_buf, ro->nodes,
                                    CLI_REMOTE_MAX_NODES);
        if (ro->nnodes == 0) {
            cli_error(cli, "--destination expects node names, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case CLI_OPT_TIMEOUT:
        if (!cli_parse_seconds(arg, &ro->timeout) || ro->timeout <= 0) {
            cli_error(cli, "--timeout expects a positive number of seconds, got '%s'", arg);
            return CLI_EXIT_USAGE;
        }
        return 0;
    case CLI_OPT_JSON:
        ro->json = true;
        return 0;
    }
    return -1;
}

int cli_remote_call(const struct cli *cli, cel_client *c, const struct cli_remote *ro,
                    const char *method, const json_t *args, bool cast, cel_control_replies **out)
{
    *out = NULL;
    char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;
    if (args && !text) {
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    cel_control_options o =
        CEL_CONTROL_OPTIONS_INIT(.cast = cast, .timeout = ro->timeout,
                                 .destination = ro->nnodes ? (const char *const *)ro->nodes : NULL,
                                 .ndestination = ro->nnodes);
    int rc = cel_control_call(c, method, text, &o, cast ? NULL : out);
    free(text);
    if (rc != CEL_OK) {
        cli_error(cli, "%s", cel_client_errmsg(c));
        return cli_exit_for(rc);
    }
    return -1;
}

json_t *cli_reply_value(const cel_control_replies *r, size_t i)
{
    const char *text = cel_control_reply_json(r, i);
    return text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
}

void cli_print_indented(FILE *out, const char *text, int indent)
{
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "\n");
        fprintf(out, "%*s%.*s\n", indent, "", (int)len, p);
        p += len;
        if (*p == '\n')
            p++;
    }
}

static void print_json_indented(FILE *out, const json_t *v, int indent)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (text)
        cli_print_indented(out, text, indent);
    free(text);
}

void cli_reply_generic(FILE *out, const json_t *reply)
{
    const json_t *ok = json_object_get(reply, "ok");
    const json_t *err = json_object_get(reply, "error");
    if (json_object_size(reply) == 1 && json_is_string(ok)) {
        cli_print_indented(out, json_string_value(ok), INDENT);
    } else if (json_object_size(reply) == 1 && json_is_string(err)) {
        cli_print_indented(out, json_string_value(err), INDENT);
    } else if (json_is_array(reply)) {
        if (json_array_size(reply) == 0)
            fprintf(out, "%*s- empty -\n", INDENT, "");
        size_t i;
        const json_t *item;
        json_array_foreach(reply, i, item)
        {
            if (json_is_string(item)) {
                fprintf(out, "%*s* %s\n", INDENT, "", json_string_value(item));
            } else {
                char *text = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
                fprintf(out, "%*s* %s\n", INDENT, "", text ? text : "?");
                free(text);
            }
        }
    } else if (!json_is_null(reply)) {
        print_json_indented(out, reply, INDENT);
    }
}

int cli_remote_print(const struct cli_remote *ro, const cel_control_replies *r, cli_reply_fn show)
{
    size_t n = cel_control_replies_count(r);
    if (ro->json) {
        json_t *all = json_object();
        for (size_t i = 0; i < n; i++) {
            json_t *v = cli_reply_value(r, i);
            json_object_set_new(all, cel_control_reply_node(r, i), v ? v : json_null());
        }
        char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(all);
    } else {
        for (size_t i = 0; i < n; i++) {
            json_t *v = cli_reply_value(r, i);
            bool failed = json_is_object(v) && json_object_size(v) == 1 &&
                          json_object_get(v, "error") != NULL;
            printf("->  %s: %s\n", cel_control_reply_node(r, i), failed ? "ERROR" : "OK");
            if (v)
                (failed || !show ? cli_reply_generic : show)(stdout, v);
            json_decref(v);
        }
    }
    fflush(stdout);
    if (n == 0) {
        fprintf(stderr, "Error: No nodes replied within time constraint.\n");
        return CLI_EXIT_TIMEOUT;
    }
    return CLI_EXIT_OK;
}
