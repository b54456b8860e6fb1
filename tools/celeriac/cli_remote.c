/* cli_remote.c - see cli_remote.h. */
#include "cli_remote.h"

#include <stdlib.h>
#include <string.h>

#define INDENT 4

static const struct cli_verb *verb_at(const void *verbs, size_t i, size_t stride)
{
    return (const struct cli_verb *)((const char *)verbs + i * stride);
}

void cli_verbs_print(FILE *out, const void *verbs, size_t n, size_t stride)
{
    fprintf(out, "commands:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %s%s%s\n", verb_at(verbs, i, stride)->name,
                *verb_at(verbs, i, stride)->args_usage ? " " : "",
                verb_at(verbs, i, stride)->args_usage);
}

const struct cli_verb *cli_verb_find(const struct cli *cli, const void *verbs, size_t n,
                                     size_t stride)
{
    if (cli->npos == 0) {
        cli_error(cli, "no command given (see 'celeriac %s --help')", cli->cmd->name);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cli_verb *v = verb_at(verbs, i, stride);
        if (strcmp(v->name, cli->pos[0]) != 0)
            continue;
        int nargs = cli->npos - 1;
        if (nargs < v->min_args || (v->max_args >= 0 && nargs > v->max_args)) {
            cli_error(cli, "usage: celeriac %s %s %s", cli->cmd->name, v->name, v->args_usage);
            return NULL;
        }
        return v;
    }
    cli_error(cli, "unknown %s command '%s'", cli->cmd->name, cli->pos[0]);
    cli_verbs_print(stderr, verbs, n, stride);
    return NULL;
}

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

static int on_remote_opt(struct cli *cli, int val, const char *arg, void *ctx)
{
    int rc = cli_remote_opt(cli, ctx, val, arg);
    return rc < 0 ? CLI_EXIT_USAGE : rc;
}

int cli_verb_main(const struct cli_verb_spec *spec, int argc, char **argv)
{
    struct cli cli = {0};
    struct cli_remote ro = {0};
    cel_client *client = NULL;
    cel_control_replies *replies = NULL;
    json_t *args = NULL;

    int rc = cli_begin(&cli, spec->cmd, argc, argv, on_remote_opt, &ro);
    if (rc == CLI_EXIT_OK && !cli.check_config) /* after --help */
        cli_verbs_print(stdout, spec->verbs, spec->nverbs, spec->stride);
    if (rc >= 0)
        goto out;
    rc = CLI_EXIT_USAGE;
    const struct cli_verb *v = cli_verb_find(&cli, spec->verbs, spec->nverbs, spec->stride);
    if (!v)
        goto out;
    rc = spec->args(&cli, &ro, v, cli.pos + 1, cli.npos - 1, &args);
    if (rc >= 0)
        goto out;
    rc = cli_connect(&cli, &client);
    if (rc >= 0)
        goto out;
    rc = spec->run ? spec->run(&cli, client, &ro, v, args) : -1;
    if (rc >= 0)
        goto out;
    rc = cli_remote_call(&cli, client, &ro, v->name, args, false, &replies);
    if (rc >= 0)
        goto out;
    rc = cli_remote_print(&ro, replies, spec->show ? spec->show(v) : NULL);

out:
    json_decref(args);
    cel_control_replies_free(replies);
    cel_client_free(client);
    cli_release(&cli);
    return rc;
}
