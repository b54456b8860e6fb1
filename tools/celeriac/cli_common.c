/* cli_common.c - see cli_common.h. */
#include "cli_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Option values: common ones, then one per config-table row. */
enum {
    OPT_CONFIG = 0x100,
    OPT_SET,
    OPT_CHECK_CONFIG,
    OPT_TABLE = 0x200,
};

#define DEFAULT_CONFIG_FILE "celeriac.conf"

/* Row i of the option table; false past its end. */
static bool table_option(size_t i, cel_config_option_info *o)
{
    *o = (cel_config_option_info)CEL_CONFIG_OPTION_INFO_INIT;
    return cel_config_option_at(i, o) == CEL_OK;
}

static bool local_uses_short(const struct cli_cmd *cmd, char c)
{
    for (size_t i = 0; i < cmd->nopts; i++)
        if (cmd->opts[i].val == c)
            return true;
    return false;
}

static bool local_uses_long(const struct cli_cmd *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->nopts; i++)
        if (strcmp(cmd->opts[i].name, name) == 0)
            return true;
    return false;
}

static bool offers(const struct cli_cmd *cmd, const cel_config_option_info *o)
{
    if (!o->short_flag && !o->long_flag)
        return false;
    /* A command's own flag of the same name wins (call --time-limit is
     * the call's limit, not the worker's): the row is not offered. */
    if ((!o->long_flag || local_uses_long(cmd, o->long_flag)) &&
        (!o->short_flag || local_uses_short(cmd, (char)o->short_flag)))
        return false;
    /* Worker tuning flags mean nothing to `call`; the log level and the
     * broker/backend URLs mean something to every command. */
    if (cmd->worker_flags)
        return true;
    if (strncmp(o->key, "worker_", 7) != 0)
        return true;
    return o->short_flag == 'l';
}

#define HELP_INDENT 33
#define HELP_WIDTH  100

/* One help entry: the flags, then the text word-wrapped beside them. */
static void help_line(FILE *out, const char *left, const char *text, const char *key)
{
    int col = fprintf(out, "  %-30s", left);
    if (col >= HELP_INDENT) {
        fprintf(out, "\n%*s", HELP_INDENT, "");
        col = HELP_INDENT;
    } else {
        fputc(' ', out);
        col++;
    }
    char tail[64] = "";
    if (key)
        snprintf(tail, sizeof tail, "(%s)", key);
    const char *p = text;
    bool tail_done = !key;
    while (*p || !tail_done) {
        const char *word = p;
        size_t len;
        if (*p) {
            len = strcspn(p, " ");
            p += len;
            while (*p == ' ')
                p++;
        } else {
            word = tail;
            len = strlen(tail);
            tail_done = true;
        }
        if (col > HELP_INDENT && col + 1 + (int)len > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
        } else if (col > HELP_INDENT) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)len, word);
        col += (int)len;
    }
    fputc('\n', out);
}

void cli_print_help(const struct cli_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: celeriac %s %s\n\n%s\n\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->nopts)
        fprintf(out, "options:\n");
    for (size_t i = 0; i < cmd->nopts; i++) {
        const struct cli_opt *o = &cmd->opts[i];
        char left[64];
        if (o->val < CLI_OPT_LOCAL)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->val, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        help_line(out, left, o->help, NULL);
    }
    fprintf(out, "\nconfiguration (defaults < config file < CELERIAC_* environment < flags):\n");
    cel_config_option_info o;
    for (size_t i = 0; table_option(i, &o); i++) {
        if (!offers(cmd, &o))
            continue;
        char left[64], shortpart[8] = "    ";
        if (o.short_flag && !local_uses_short(cmd, (char)o.short_flag))
            snprintf(shortpart, sizeof shortpart, "-%c, ", o.short_flag);
        if (o.long_flag && !local_uses_long(cmd, o.long_flag))
            snprintf(left, sizeof left, "%s--%s VALUE", shortpart, o.long_flag);
        else
            snprintf(left, sizeof left, "%sVALUE", shortpart);
        help_line(out, left, o.help, o.key);
    }
    fprintf(out, "  %-30s %s\n", "    --config FILE",
            "config file (default: $CELERIAC_CONFIG, else ./celeriac.conf if present)");
    fprintf(out, "  %-30s %s\n", "    --set KEY=VALUE",
            "set any configuration option (repeatable)");
    fprintf(out, "  %-30s %s\n", "    --check-config",
            "validate and print the effective configuration, then exit");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help and exit");
}

void cli_error(const struct cli *cli, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cli && cli->cmd)
        fprintf(stderr, "celeriac %s: error: %s\n", cli->cmd->name, msg);
    else
        fprintf(stderr, "celeriac: error: %s\n", msg);
}

int cli_add_set(struct cli *cli, const char *key, const char *value)
{
    struct cli_set *grown = realloc(cli->sets, (cli->nsets + 1) * sizeof *grown);
    if (!grown)
        return -1;
    cli->sets = grown;
    grown[cli->nsets].key = strdup(key);
    grown[cli->nsets].value = strdup(value);
    if (!grown[cli->nsets].key || !grown[cli->nsets].value) {
        free(grown[cli->nsets].key);
        free(grown[cli->nsets].value);
        return -1;
    }
    cli->nsets++;
    return 0;
}

int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, cli_opt_fn fn,
              void *ctx)
{
    cli->cmd = cmd;
    size_t ntable = cel_config_option_count();
    size_t cap = cmd->nopts + ntable + 8;
    struct option *longs = calloc(cap, sizeof *longs);
    char *shorts = calloc(3 * cap + 4, 1);
    if (!longs || !shorts) {
        free(longs);
        free(shorts);
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    size_t nl = 0, ns = 0;
    shorts[ns++] = ':'; /* first: getopt reports a missing argument as ':' */
    shorts[ns++] = 'h';

    /* The subcommand's own options come first, so they win a clash. */
    for (size_t i = 0; i < cmd->nopts; i++) {
        const struct cli_opt *o = &cmd->opts[i];
        longs[nl++] = (struct option){o->name, o->has_arg, NULL, o->val};
        if (o->val < CLI_OPT_LOCAL) {
            shorts[ns++] = (char)o->val;
            if (o->has_arg == required_argument)
                shorts[ns++] = ':';
        }
    }
    longs[nl++] = (struct option){"help", no_argument, NULL, 'h'};
    longs[nl++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    longs[nl++] = (struct option){"set", required_argument, NULL, OPT_SET};
    longs[nl++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK_CONFIG};
    cel_config_option_info o;
    for (size_t i = 0; i < ntable && table_option(i, &o); i++) {
        if (!offers(cmd, &o))
            continue;
        int val = OPT_TABLE + (int)i;
        if (o.long_flag && !local_uses_long(cmd, o.long_flag))
            longs[nl++] = (struct option){o.long_flag, required_argument, NULL, val};
        if (o.short_flag && !local_uses_short(cmd, (char)o.short_flag)) {
            shorts[ns++] = (char)o.short_flag;
            shorts[ns++] = ':';
        }
    }
    longs[nl] = (struct option){NULL, 0, NULL, 0};

    int rc = -1, c;
    optind = 1;
    opterr = 0;
    while (rc < 0 && (c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        switch (c) {
        case 'h':
            cli_print_help(cmd, stdout);
            rc = CLI_EXIT_OK;
            break;
        case OPT_CONFIG:
            cli->config_path = optarg;
            break;
        case OPT_SET: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                cli_error(cli, "--set expects KEY=VALUE, got '%s'", optarg);
                rc = CLI_EXIT_USAGE;
                break;
            }
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(eq - optarg), optarg);
            if (cli_add_set(cli, key, eq + 1) != 0) {
                cli_error(cli, "out of memory");
                rc = CLI_EXIT_USAGE;
            }
            break;
        }
        case OPT_CHECK_CONFIG:
            cli->check_config = true;
            break;
        case '?':
            if (optopt && optopt < 128)
                cli_error(cli, "unknown option '-%c' (see 'celeriac %s --help')", optopt,
                          cmd->name);
            else
                cli_error(cli, "unknown option '%s' (see 'celeriac %s --help')", argv[optind - 1],
                          cmd->name);
            rc = CLI_EXIT_USAGE;
            break;
        case ':':
            cli_error(cli, "option '%s' needs a value", argv[optind - 1]);
            rc = CLI_EXIT_USAGE;
            break;
        default: {
            /* A table option, by long or short name? */
            int row = -1;
            if (c >= OPT_TABLE && c < OPT_TABLE + (int)ntable) {
                row = c - OPT_TABLE;
            } else if (c > 0 && c < 128 && !local_uses_short(cmd, (char)c)) {
                for (size_t i = 0; i < ntable && row < 0 && table_option(i, &o); i++)
                    if (o.short_flag == c && offers(cmd, &o))
                        row = (int)i;
            }
            if (row >= 0 && table_option((size_t)row, &o)) {
                if (cli_add_set(cli, o.key, optarg) != 0) {
                    cli_error(cli, "out of memory");
                    rc = CLI_EXIT_USAGE;
                }
            } else {
                rc = fn ? fn(cli, c, optarg, ctx) : CLI_EXIT_USAGE;
                if (rc == 0)
                    rc = -1;
            }
            break;
        }
        }
    }
    free(longs);
    free(shorts);
    if (rc >= 0)
        return rc;
    cli->pos = argv + optind;
    cli->npos = argc - optind;
    return -1;
}

/* --- logging -------------------------------------------------------------- */

/* Celery's worker log format: [2026-11-27 18:09:14,392: INFO/MainProcess] msg
 * One write() per line, so lines of prefork children do not interleave. */
static void stderr_log(cel_log_level level, const char *component, const char *msg, void *ud)
{
    (void)component;
    (void)ud;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    char line[2300];
    int n = snprintf(line, sizeof line, "[%s,%03d: %s/%s] %s\n", stamp, (int)(tv.tv_usec / 1000),
                     cel_log_level_name(level), cel_log_process_name(), msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += w;
    }
}

/* --- configuration -------------------------------------------------------- */

static int config_fail(struct cli *cli, const char *what)
{
    cli_error(cli, "%s%s", what, cel_config_errmsg(cli->cfg));
    return CLI_EXIT_USAGE;
}

int cli_configure(struct cli *cli)
{
    cli->cfg = cel_config_new();
    if (!cli->cfg) {
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }

    /* CELERIAC_CONFIG names the file; it is not an option, so it must not
     * reach cel_config_load_env(), which rejects unknown CELERIAC_* names. */
    const char *path = cli->config_path;
    char *env_path = getenv("CELERIAC_CONFIG") ? strdup(getenv("CELERIAC_CONFIG")) : NULL;
    unsetenv("CELERIAC_CONFIG");
    if (!path && env_path && *env_path)
        path = env_path;
    if (!path && access(DEFAULT_CONFIG_FILE, F_OK) == 0)
        path = DEFAULT_CONFIG_FILE;
    int rc = CEL_OK;
    if (path) {
        if (access(path, R_OK) != 0) {
            cli_error(cli, "cannot read config file '%s': %s", path, strerror(errno));
            free(env_path);
            return CLI_EXIT_USAGE;
        }
        rc = cel_config_load_file(cli->cfg, path);
    }
    free(env_path);
    if (rc != CEL_OK)
        return config_fail(cli, "");
    if (cel_config_load_env(cli->cfg) != CEL_OK)
        return config_fail(cli, "");

    for (size_t i = 0; i < cli->nsets; i++) {
        if (cel_config_set(cli->cfg, cli->sets[i].key, cli->sets[i].value, "cli") != CEL_OK)
            return config_fail(cli, "");
    }

    if (cli->check_config) {
        cel_config_dump(cli->cfg, stdout);
        return CLI_EXIT_OK;
    }

    /* log_level (-l) is validated by the table; "warning" is a safe
     * fallback should the key ever be missing. */
    cel_log_level level = CEL_LOG_WARNING;
    const char *level_name = cel_config_get(cli->cfg, "log_level");
    if (level_name && cel_log_level_parse(level_name, &level) != 0)
        level = CEL_LOG_WARNING;
    cel_set_log_handler(stderr_log, NULL, level);
    return -1;
}

void cli_release(struct cli *cli)
{
    for (size_t i = 0; i < cli->nsets; i++) {
        free(cli->sets[i].key);
        free(cli->sets[i].value);
    }
    free(cli->sets);
    cel_config_free(cli->cfg);
    memset(cli, 0, sizeof *cli);
}

int cli_begin(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, cli_opt_fn fn,
              void *ctx)
{
    int rc = cli_parse(cli, cmd, argc, argv, fn, ctx);
    if (rc < 0 && cli->check_config)
        rc = cli_configure(cli);
    return rc;
}

int cli_refuse_args(const struct cli *cli)
{
    if (cli->npos == 0)
        return -1;
    cli_error(cli, "unexpected argument '%s' (see 'celeriac %s --help')", cli->pos[0],
              cli->cmd->name);
    return CLI_EXIT_USAGE;
}

int cli_connect(struct cli *cli, cel_client **out)
{
    *out = NULL;
    int rc = cli_configure(cli);
    return rc >= 0 ? rc : cli_client_open(cli, out);
}

int cli_client_open(const struct cli *cli, cel_client **out)
{
    *out = cel_client_new(cli->cfg);
    if (!*out) {
        cli_error(cli, "out of memory");
        return CLI_EXIT_USAGE;
    }
    int rc = cel_client_connect(*out);
    if (rc == CEL_OK)
        return -1;
    cli_error(cli, "%s", cel_client_errmsg(*out));
    cel_client_free(*out);
    *out = NULL;
    return cli_exit_for(rc);
}

int cli_exit_for(int rc)
{
    switch (rc) {
    case CEL_OK:
        return CLI_EXIT_OK;
    case CEL_ETIMEDOUT:
        return CLI_EXIT_TIMEOUT;
    case CEL_ECONFIG:
    case CEL_EUNKNOWNKEY:
    case CEL_EURL:
    case CEL_ESCHEME:
    case CEL_EINVAL:
    case CEL_EJSON:
        return CLI_EXIT_USAGE;
    case CEL_ETASK:
        return CLI_EXIT_TASK_FAILED;
    default:
        return CLI_EXIT_BROKER;
    }
}

bool cli_parse_seconds(const char *text, double *out)
{
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !isfinite(v) || v < 0)
        return false;
    *out = v;
    return true;
}

bool cli_parse_time(const char *text, double *out)
{
    if (!text || !*text)
        return false;
    struct tm tm = {0};
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(text, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return false;
    double frac = 0;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end); /* ".25" reads as 0.25 */
        if (end == p + 1)
            return false;
        p = end;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm, used = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &used) != 2 || used != 5 || hh > 23 || mm > 59)
            return false;
        offset = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
        p += 6;
    }
    if (*p)
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out = (double)t + frac - (double)offset;
    return *out >= 0;
}

size_t cli_split_list(const char *list, char *buf, size_t buflen, const char **names, size_t max)
{
    size_t n = 0, at = 0;
    const char *p = list ? list : "";
    while (*p && n < max) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && end[-1] == ' ')
            end--;
        size_t len = (size_t)(end - start);
        if (len && at + len + 1 <= buflen) {
            memcpy(buf + at, start, len);
            buf[at + len] = '\0';
            names[n++] = buf + at;
            at += len + 1;
        }
    }
    return n;
}
