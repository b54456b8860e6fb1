/*
 * nodename.c - Celery's node-name abbreviations (celery.utils.nodenames),
 * for `-n` and for the paths of --pidfile and --logfile.
 *
 * Only '%' followed by a letter, a digit or '_' is an abbreviation (as
 * Celery's `%(\w)`); an unknown one is an error rather than text kept
 * as is, so a typo in a unit file is seen at start. A '%' before anything
 * else ("100%", "%%") stays as it is, as in Celery.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "celeriac/error.h"
#include "celeriac/worker.h"

#define DEFAULT_NAME "celeriac"

struct abbrev {
    char key;
    const char *value;
};

static int expand(const char *pattern, const struct abbrev *keys, size_t nkeys, char *out,
                  size_t len)
{
    if (!pattern || !out || len == 0)
        return CEL_EINVAL;
    size_t n = 0;
    for (const char *p = pattern; *p; p++) {
        const char *piece = p;
        size_t plen = 1;
        if (*p == '%' && (isalnum((unsigned char)p[1]) || p[1] == '_')) {
            piece = NULL;
            for (size_t i = 0; i < nkeys && !piece; i++)
                if (keys[i].key == p[1])
                    piece = keys[i].value;
            if (!piece)
                return CEL_EINVAL;
            plen = strlen(piece);
            p++;
        }
        if (n + plen >= len)
            return CEL_ETOOBIG;
        memcpy(out + n, piece, plen);
        n += plen;
    }
    out[n] = '\0';
    return CEL_OK;
}

/* This machine's host name, as socket.gethostname() gives it. */
static void local_host(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0 || !buf[0])
        snprintf(buf, len, "localhost");
    buf[len - 1] = '\0';
}

int cel_nodename_expand(const char *pattern, const char *host, char *out, size_t len)
{
    char local[256];
    if (!host || !*host) {
        local_host(local, sizeof local);
        host = local;
    }
    if (!pattern)
        pattern = "";
    /* Celery's default_nodename(): "" is "celery@<host>"; a name without
     * '@' is the host part. */
    char full[1024];
    const char *at = strchr(pattern, '@');
    int fn;
    if (!*pattern)
        fn = snprintf(full, sizeof full, DEFAULT_NAME "@%s", host);
    else if (!at)
        fn = snprintf(full, sizeof full, DEFAULT_NAME "@%s", pattern);
    else if (at == pattern) /* "@host": the default name part */
        fn = snprintf(full, sizeof full, DEFAULT_NAME "%s", pattern);
    else
        fn = snprintf(full, sizeof full, "%s", pattern);
    if (fn < 0 || (size_t)fn >= sizeof full)
        return CEL_ETOOBIG;
    /* %h the host name, %n its first label, %d the rest (its domain). */
    char shortname[256];
    const char *dot = strchr(host, '.');
    snprintf(shortname, sizeof shortname, "%.*s", (int)(dot ? (size_t)(dot - host) : strlen(host)),
             host);
    const struct abbrev keys[] = {
        {'h', host}, {'n', shortname}, {'d', dot ? dot + 1 : ""},
        {'i', "0"},  {'I', ""}, /* the main process's index: Celery's for its MainProcess */
    };
    return expand(full, keys, sizeof keys / sizeof keys[0], out, len);
}

int cel_node_format(const char *pattern, const char *nodename, char *out, size_t len)
{
    if (!pattern || !nodename)
        return CEL_EINVAL;
    /* Celery's node_format(): %n the name part, %h the host part, %d the
     * host part's domain, %p the whole node name. */
    char name[256], host[512];
    const char *at = strchr(nodename, '@');
    if (at) {
        snprintf(name, sizeof name, "%.*s", (int)(at - nodename), nodename);
        snprintf(host, sizeof host, "%s", at + 1);
    } else {
        snprintf(name, sizeof name, DEFAULT_NAME);
        snprintf(host, sizeof host, "%s", nodename);
    }
    const char *dot = strchr(host, '.');
    const struct abbrev keys[] = {
        {'n', name[0] ? name : DEFAULT_NAME},
        {'h', host},
        {'d', dot ? dot + 1 : ""},
        {'p', nodename},
        {'i', "0"},
        {'I', ""},
    };
    return expand(pattern, keys, sizeof keys / sizeof keys[0], out, len);
}
