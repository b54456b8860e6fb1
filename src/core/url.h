/*
 * url.h - broker and backend URLs.
 *
 *   sqlite:///relative/or/absolute.db   sqlite://./celeriac.db   sqlite:///:memory:?
 *   memory://[name]
 *   redis://[[user]:password@]host[:port][/db]   redis+socket:///path/to.sock[?db=N]
 *   amqp://user:pass@host:port/vhost
 *
 * Parsing is a pure function with a length limit; it has a fuzz target.
 */
#ifndef CEL_CORE_URL_H
#define CEL_CORE_URL_H

#include <stddef.h>

#define CEL_URL_MAX 4096

struct cel_url {
    char *scheme;   /* lower-cased: "sqlite", "memory", "redis", "redis+socket", "amqp" */
    char *user;     /* NULL when absent; percent-decoded */
    char *password; /* NULL when absent; percent-decoded */
    char *host;     /* NULL when absent; IPv6 without brackets */
    int port;       /* 0 when absent */
    char *path;     /* after the authority, leading '/' removed for sqlite:/// relative
                       paths is NOT done: see cel__url_sqlite_path(); NULL when empty */
    char *query;    /* text after '?', NULL when absent */
};

/* Returns 0, or CEL_EURL with a message in err. `out` is zeroed first and
 * must be released with cel__url_release() even after a failure. */
int cel__url_parse(const char *text, struct cel_url *out, char *err, size_t errlen);
void cel__url_release(struct cel_url *u);

/* Value of `name` in the query string (percent-decoded, caller frees with
 * free()), NULL when absent. */
char *cel__url_query_get(const struct cel_url *u, const char *name);

/*
 * Filesystem path of a sqlite URL, Celery/SQLAlchemy style:
 * "sqlite:///celeriac.db" -> "celeriac.db" (relative),
 * "sqlite:////var/lib/x.db" -> "/var/lib/x.db" (absolute),
 * "sqlite://" -> "celeriac.db". Caller frees with free().
 */
char *cel__url_sqlite_path(const struct cel_url *u);

/* Copies `text` into buf with any password replaced by "***". */
void cel__url_redact(const char *text, char *buf, size_t len);

/* The value of hex digit c (either case), or -1: percent-decoding here
 * and in the dashboard's request paths. */
int cel__hex_digit(int c);

#endif
