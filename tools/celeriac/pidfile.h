/*
 * pidfile.h - `celeriac worker --pidfile FILE`: one worker per file.
 *
 * The file is created with the pid already in it (written to a private
 * temporary name, then link()ed into place, which fails when the name
 * exists), so nobody ever reads it half written. A file that names a
 * live process stops the start; one whose process is gone, or that holds
 * no pid, is stale and replaced. A file naming this very process is
 * kept: a SIGHUP restart exec()s the same pid.
 */
#ifndef CELERIAC_PIDFILE_H
#define CELERIAC_PIDFILE_H

#include <stddef.h>

/* 0, or -1 with the reason in why[len]. */
int pidfile_acquire(const char *path, char *why, size_t len);
/* Removes the file if it still names this process. */
void pidfile_release(const char *path);

#endif
