/*
 * daemon.h - `celeriac worker --detach` and `--logfile`.
 *
 * daemon_detach() forks, starts a new session (no controlling terminal,
 * so a terminal's hangup never reaches the worker) and forks again (a
 * session leader could acquire a terminal). The process that ran the
 * command waits on a pipe until the daemon says it started
 * (daemon_ready(), once its pid file is written) or failed
 * (daemon_failed(), whose message it prints on its own stderr), and
 * exits 0 or 1 accordingly: a worker that could not start is seen by the
 * shell or the init script that started it, not only in its log.
 *
 * The working directory is kept, as Celery does (the default broker is
 * the relative ./celeriac.db, and -A paths may be relative); --workdir
 * changes it, detached or not.
 */
#ifndef CELERIAC_DAEMON_H
#define CELERIAC_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

/* Returns 0 in the daemon; the calling process waits and exits in it.
 * -1 (why[len]) when the first fork or the pipe fails. */
int daemon_detach(char *why, size_t len);
/* In the daemon: the start went well / failed (the message is shown by
 * the waiting process). No-ops when not detached. */
void daemon_ready(void);
void daemon_failed(const char *msg);

/* Appends standard output and standard error (the banner, the log, the
 * children's backtraces) to path, created 0644 if missing; standard
 * input becomes /dev/null when detached. The file is opened again by a
 * SIGHUP restart, which is how a rotated log file is picked up (or let
 * logrotate use copytruncate: the file is appended to, O_APPEND).
 * 0, or -1 with why[len]. */
int daemon_log_to(const char *path, bool detached, char *why, size_t len);

#endif
