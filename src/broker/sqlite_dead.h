/* sqlite_dead.h - the SQLite transport's dead-letter ops (broker.h), on
 * its database handle; sqlite.c wraps them into its ops table. Errors go
 * to `err` (the handle's). */
#ifndef CEL_BROKER_SQLITE_DEAD_H
#define CEL_BROKER_SQLITE_DEAD_H

#include "broker/broker.h"
#include "store/sqlite_db.h"

int cel__sqlite_dead_list(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *queue,
                          size_t offset, size_t max, struct cel_dead_letter **out, size_t *n);
int cel__sqlite_dead_get(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *id,
                         struct cel_dead_letter *out);
int cel__sqlite_dead_requeue(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *id);
int cel__sqlite_dead_purge(struct cel_sqldb **dbp, struct cel_errbuf *err, const char *queue,
                           const char *id, size_t *removed);

#endif
