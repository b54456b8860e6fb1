/*
 * exec_backend.h - a result-store handle for the process that runs tasks.
 *
 * Task results travel to the worker parent, whose store thread writes
 * them: a running task never needs the store. A few built-ins must read
 * other tasks' results while they run (celery.chord_unlock polls its
 * header), so that process opens its own handle the first time one is
 * asked for and keeps it until it exits (cel__exec_backend_close()).
 *
 * Fork safety: the handle is opened lazily, so in a prefork child it is
 * opened after the fork and never shared. A handle found to belong to
 * another process (opened before a fork) is abandoned, not closed: its
 * socket or SQLite connection belongs to the process that opened it.
 *
 * One thread per process runs tasks, so the handle needs no lock.
 */
#ifndef CEL_WORKER_EXEC_BACKEND_H
#define CEL_WORKER_EXEC_BACKEND_H

#include "backend/backend.h"
#include "worker/execute.h"

/* The handle (borrowed: valid until cel__exec_backend_close()), opened
 * from env->cfg's result_backend on first use; NULL with the reason in
 * err when the worker has no configuration or the store cannot open. */
struct cel_backend *cel__exec_backend(const struct cel_exec_env *env, struct cel_errbuf *err);
void cel__exec_backend_close(void);

#endif
