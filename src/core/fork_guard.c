/* fork_guard.c - see fork_guard.h. */
#include "core/fork_guard.h"

#include <pthread.h>

static pthread_rwlock_t guard;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Whether this thread holds the guard now, and whether it is one that
 * works under it at all (between enter() and leave()). */
static _Thread_local int holding, member;

static void init_lock(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* fork() must not starve behind threads that re-enter at once. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&guard, &a);
    pthread_rwlockattr_destroy(&a);
}

static void before_fork(void)
{
    pthread_rwlock_wrlock(&guard);
}

static void after_fork_parent(void)
{
    pthread_rwlock_unlock(&guard);
}

static void after_fork_child(void)
{
    /* The child has only the forking thread: start the guard afresh. */
    init_lock();
    holding = 0;
}

static void setup(void)
{
    init_lock();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void cel__fork_guard_enter(void)
{
    pthread_once(&once, setup);
    member = 1;
    if (!holding) {
        pthread_rwlock_rdlock(&guard);
        holding = 1;
    }
}

void cel__fork_guard_leave(void)
{
    if (holding) {
        pthread_rwlock_unlock(&guard);
        holding = 0;
    }
    member = 0;
}

void cel__fork_guard_wait_begin(void)
{
    if (member && holding) {
        pthread_rwlock_unlock(&guard);
        holding = 0;
    }
}

void cel__fork_guard_wait_end(void)
{
    if (member && !holding) {
        pthread_rwlock_rdlock(&guard);
        holding = 1;
    }
}
