/*
 * registry.c - picks a transport by URL scheme.
 *
 * Adding a transport: one file with its ops table, one line in `table`
 * per scheme it serves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "core/schemes.h"

static const struct cel_scheme table[] = {
    {"sqlite", &cel__broker_sqlite},
    {"memory", &cel__broker_memory},
    {"redis", &cel__broker_redis},
    {"redis+socket", &cel__broker_redis}, /* the same transport over a unix socket */
};

#define NTRANSPORTS (sizeof table / sizeof table[0])

/* The scheme as typed (up to ':'), for messages about URLs that do not
 * parse because of it. */
static void scheme_of(const char *url, char *buf, size_t len)
{
    size_t n = strcspn(url, ":");
    snprintf(buf, len, "%.*s", (int)(n < 64 ? n : 64), url);
}

int cel__broker_open(const char *url, const cel_config *cfg, struct cel_broker **out,
                     struct cel_errbuf *err)
{
    *out = NULL;
    if (!url)
        url = cfg ? cel_config_get(cfg, "broker_url") : NULL;
    if (!url || !*url)
        url = "sqlite:///celeriac.db";

    char redacted[CEL_URL_MAX + 1], known[128], scheme[80];
    cel__url_redact(url, redacted, sizeof redacted);
    cel__scheme_list(table, NTRANSPORTS, known, sizeof known);

    struct cel_url u;
    char perr[256];
    int rc = cel__url_parse(url, &u, perr, sizeof perr);
    if (rc == CEL_ESCHEME) {
        cel__url_release(&u);
        scheme_of(url, scheme, sizeof scheme);
        return cel__err(err, CEL_ESCHEME, "unsupported broker scheme '%s' in '%s' (known: %s)",
                        scheme, redacted, known);
    }
    if (rc != CEL_OK) {
        cel__url_release(&u);
        return cel__err(err, rc, "invalid broker URL '%s': %s", redacted, perr);
    }
    const struct cel_broker_ops *ops = cel__scheme_find(table, NTRANSPORTS, u.scheme);
    if (!ops) {
        rc = cel__err(err, CEL_ESCHEME, "unsupported broker scheme '%s' in '%s' (known: %s)",
                      u.scheme, redacted, known);
        cel__url_release(&u);
        return rc;
    }
    rc = ops->open(&u, cfg, out, err);
    cel__url_release(&u);
    if (rc != CEL_OK)
        *out = NULL;
    return rc;
}

void cel__broker_close(struct cel_broker *b)
{
    if (b)
        b->ops->close(b);
}

const char *cel__broker_errmsg(const struct cel_broker *b)
{
    return b ? b->err.msg : "";
}

void cel__delivery_release(struct cel_delivery *d)
{
    if (!d)
        return;
    free(d->body);
    free(d->queue);
    free(d->tag_str);
    memset(d, 0, sizeof *d);
}

void cel__fanout_msg_release(struct cel_fanout_msg *m)
{
    if (!m)
        return;
    free(m->exchange);
    free(m->routing_key);
    free(m->body);
    memset(m, 0, sizeof *m);
}
