/*
 * cli_remote.h - what `inspect`, `control`, `status` and `queues` share:
 * the --destination/--timeout/--json flags, one broadcast call through
 * celeriac/control.h, and printing the replies as Celery's CLI does
 * (`->  w1@host: OK` and the reply below it) or as one JSON object
 * {node: reply}.
 */
#ifndef CELERIAC_CLI_REMOTE_H
#define CELERIAC_CLI_REMOTE_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "celeriac/control.h"
#include "cli_common.h"

#define CLI_REMOTE_MAX_NODES 64

/* Option values of the shared flags (the commands' own start past them). */
enum {
    CLI_OPT_DESTINATION = 'd',
    CLI_OPT_TIMEOUT = 't',
    CLI_OPT_JSON = CLI_OPT_LOCAL + 0x80,
};

/* Help lines of the shared flags, to put in a command's option table. */
#define CLI_REMOTE_OPTS                                                                            \
    {"destination", required_argument, CLI_OPT_DESTINATION, "NODE[,NODE]",                         \
     "only these workers (default: every worker)"},                                                \
        {"timeout", required_argument, CLI_OPT_TIMEOUT, "SECONDS",                                 \
         "how long to wait for replies (default 1)"},                                              \
    {                                                                                              \
        "json", no_argument, CLI_OPT_JSON, NULL, "print the replies as one JSON object"            \
    }

struct cli_remote {
    double timeout; /* 0: the library's default (1 s) */
    bool json;
    const char *nodes[CLI_REMOTE_MAX_NODES];
    size_t nnodes;
    char nodes_buf[2048];
};

/* How one reply is shown under its `->  node: OK` line; NULL: generic. */
typedef void (*cli_reply_fn)(FILE *out, const json_t *reply);

/* A word after `inspect` or `control` and the arguments it takes. */
struct cli_verb {
    const char *name;
    int min_args, max_args; /* max -1: any number */
    const char *args_usage;
};

/*
 * The verb cli->pos[0] names among `verbs` (n entries `stride` bytes
 * apart, each beginning with a struct cli_verb), with its argument count
 * checked; NULL after printing why (no verb, unknown, wrong count).
 */
const struct cli_verb *cli_verb_find(const struct cli *cli, const void *verbs, size_t n,
                                     size_t stride);
/* "commands:" and one line per verb, for --help and errors. */
void cli_verbs_print(FILE *out, const void *verbs, size_t n, size_t stride);

/*
 * A command made of verbs (`inspect`, `control`): what differs between
 * them. cli_verb_main() does the rest: flags, verb lookup, connecting,
 * the call and printing the replies.
 */
struct cli_verb_spec {
    const struct cli_cmd *cmd;
    const void *verbs; /* see cli_verb_find() */
    size_t nverbs, stride;
    /* Celery's arguments of `v` from its words into *args (NULL: none):
     * -1 to go on, or an exit code after printing why. */
    int (*args)(const struct cli *cli, const struct cli_remote *ro, const struct cli_verb *v,
                char **words, int n, json_t **args);
    /* Optional: runs `v` in its own way and returns the exit code, or -1
     * for a plain call with replies. */
    int (*run)(const struct cli *cli, cel_client *c, const struct cli_remote *ro,
               const struct cli_verb *v, const json_t *args);
    /* How the replies of `v` are shown; NULL or returning NULL: generic. */
    cli_reply_fn (*show)(const struct cli_verb *v);
};

/* The whole of such a command; returns the exit code. */
int cli_verb_main(const struct cli_verb_spec *spec, int argc, char **argv);

/* Handles a shared flag: 0 when it was one and is fine, an exit code when
 * it is wrong, -1 when `val` is not a shared flag. */
int cli_remote_opt(struct cli *cli, struct cli_remote *ro, int val, const char *arg);

/*
 * Broadcasts `method` with `args` (borrowed; NULL for {}) and collects the
 * replies. cast: send only. Returns -1 with *out set (possibly no
 * replies), or an exit code after printing why.
 */
int cli_remote_call(const struct cli *cli, cel_client *c, const struct cli_remote *ro,
                    const char *method, const json_t *args, bool cast, cel_control_replies **out);

/*
 * Prints the replies (JSON object, or Celery's human form with `show` for
 * each reply). With none prints Celery's "No nodes replied" on stderr.
 * Returns the exit code: 0, or CLI_EXIT_TIMEOUT when nobody replied.
 */
int cli_remote_print(const struct cli_remote *ro, const cel_control_replies *r, cli_reply_fn show);

/* The generic human form of one reply: {"ok": text} as the text,
 * {"error": text} likewise, lists one item per line ("- empty -" when
 * empty), anything else as indented JSON. */
void cli_reply_generic(FILE *out, const json_t *reply);

/* A reply parsed back into a value (the library hands out JSON text);
 * NULL when unreadable. Caller decrefs. */
json_t *cli_reply_value(const cel_control_replies *r, size_t i);

/* Prints `text` with every line indented by `indent` spaces. */
void cli_print_indented(FILE *out, const char *text, int indent);

#endif
