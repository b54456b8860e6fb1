/*
 * chord_tool.c - the result store's chord ops from the command line, for
 * test_chord_interop.py (celeriac's join against Celery's own):
 *
 *   chord_tool URL size GID N TTL
 *   chord_tool URL join GID INDEX ENTRY TTL   prints "complete ENTRIES" or "waiting"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: chord_tool URL size GID N TTL | URL join GID INDEX ENTRY TTL\n");
        return 2;
    }
    struct cel_errbuf err = {{0}};
    struct cel_backend *bk = NULL;
    if (cel__backend_open(argv[1], NULL, &bk, &err) != CEL_OK) {
        fprintf(stderr, "chord_tool: %s\n", err.msg);
        return 1;
    }
    int rc;
    if (strcmp(argv[2], "size") == 0) {
        rc = bk->ops->chord_size(bk, argv[3], atoi(argv[4]), atoll(argv[5]));
    } else if (strcmp(argv[2], "join") == 0 && argc == 7) {
        bool complete = false;
        char *entries = NULL;
        rc = bk->ops->chord_join(bk, argv[3], atoi(argv[4]), argv[5], strlen(argv[5]),
                                 atoll(argv[6]), &complete, &entries);
        if (rc == CEL_OK)
            printf(complete ? "complete %s\n" : "waiting\n", entries);
        free(entries);
    } else {
        rc = CEL_EINVAL;
    }
    if (rc != CEL_OK)
        fprintf(stderr, "chord_tool: %s\n", cel__backend_errmsg(bk));
    cel__backend_close(bk);
    return rc == CEL_OK ? 0 : 1;
}
