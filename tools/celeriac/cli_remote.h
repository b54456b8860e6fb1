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

/* How one reply is shown under its `->  node: OK` line; NULL: generic. */
typedef void (*cli_reply_fn)(FILE *out, const json_t *reply);

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
