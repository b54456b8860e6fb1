/*
 * fuzz_url.c - broker/backend URL parsing (a trust boundary: URLs come from
 * config files, the environment and the command line).
 *
 * Besides "no crash", it checks properties that must hold for every input:
 * a parsed URL has a known scheme and a port in range, the redactor hides
 * exactly the password the parser found, every failure has a message, and
 * the helpers work on whatever the parser produced.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CEL_URL_MAX + 16)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct cel_url u;
    char err[256];
    int rc = cel__url_parse(text, &u, err, sizeof err);
    if (rc == 0) {
        if (!u.scheme || u.port < 0 || u.port > 65535)
            abort();
        if (strcmp(u.scheme, "sqlite") == 0) {
            char *path = cel__url_sqlite_path(&u);
            if (!path)
                abort();
            free(path);
        }
        free(cel__url_query_get(&u, "db"));
        free(cel__url_query_get(&u, ""));
        /* The redactor must find the same password the parser found: the
         * redacted URL parses back with password "***" and the same user
         * and host. (sqlite URLs have no userinfo, so no password.) */
        if (u.password) {
            char red[CEL_URL_MAX + 8];
            cel__url_redact(text, red, sizeof red);
            if (strlen(red) <= CEL_URL_MAX) {
                struct cel_url r;
                char rerr[256];
                if (cel__url_parse(red, &r, rerr, sizeof rerr) != 0 || !r.password ||
                    strcmp(r.password, "***") != 0 || (!u.user != !r.user) ||
                    (u.user && strcmp(u.user, r.user) != 0) || (!u.host != !r.host) ||
                    (u.host && strcmp(u.host, r.host) != 0))
                    abort();
                cel__url_release(&r);
            }
        }
    } else if (err[0] == '\0') {
        abort(); /* every failure explains itself */
    }
    cel__url_release(&u);

    char small[16];
    cel__url_redact(text, small, sizeof small);
    if (strlen(small) >= sizeof small)
        abort();
    free(text);
    return 0;
}
