/*
 * fork_guard.h - the library's background threads and fork().
 *
 * fork() copies only the calling thread. A lock that another thread holds
 * at that moment (the allocator's, a stdio lock inside a log line, one of
 * ours) stays held in the child for good, and the child hangs the first
 * time it needs it. The worker forks its prefork children while such
 * threads run (the Redis consumer, fan-out subscriptions), so each of
 * them holds this guard while it works and lets go only while it waits
 * (poll, sleep), and fork() waits, through pthread_atfork, until none of
 * them is working. A wait is short: threads hold the guard for one round
 * of work, never across a blocking wait.
 *
 * The worker's store thread is parked instead (settle.h): its round trips
 * can take seconds, and the loop must not block on them.
 *
 * enter()/leave() pair on one thread; wait_begin()/wait_end() bracket a
 * blocking wait inside a held section and do nothing on a thread that
 * does not hold the guard, so shared code (a reconnect's backoff sleep)
 * can call them from any thread.
 */
#ifndef CEL_CORE_FORK_GUARD_H
#define CEL_CORE_FORK_GUARD_H

void cel__fork_guard_enter(void);
void cel__fork_guard_leave(void);
void cel__fork_guard_wait_begin(void);
void cel__fork_guard_wait_end(void);

#endif
