/* test_fork_guard.c - fork() waits for the library's background threads
 * to finish a round of work, never for their waits, and the child can
 * use the guard at once. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fork_guard.h"
#include "testing.h"

static atomic_int phase; /* 1: working (guard held), 2: waiting (guard let go), 3: stop */

static void *background(void *arg)
{
    (void)arg;
    cel__fork_guard_enter();
    atomic_store(&phase, 1);
    cel_test_sleep_ms(300); /* a round of work: fork() must wait for it */
    cel__fork_guard_wait_begin();
    atomic_store(&phase, 2);
    while (atomic_load(&phase) != 3)
        cel_test_sleep_ms(5); /* a wait: fork() must not wait for it */
    cel__fork_guard_wait_end();
    cel__fork_guard_leave();
    return NULL;
}

/* Forks a child that takes the guard itself and exits; returns how long
 * fork() took in the parent. */
static int64_t fork_and_reap(void)
{
    int64_t t0 = cel_test_now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        cel__fork_guard_enter(); /* would hang on a lock copied held */
        cel__fork_guard_leave();
        _exit(7);
    }
    int64_t took = cel_test_now_ms() - t0;
    ASSERT(pid > 0);
    ASSERT_EQ(cel_test_wait(pid, 5000), 7);
    return took;
}

static void test_fork_waits_for_work_not_for_waits(void)
{
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, background, NULL), 0);
    while (atomic_load(&phase) != 1)
        cel_test_sleep_ms(1);
    int64_t during_work = fork_and_reap();
    ASSERT(during_work >= 150); /* it waited for the round of work to end */
    while (atomic_load(&phase) != 2)
        cel_test_sleep_ms(1);
    int64_t during_wait = fork_and_reap();
    ASSERT(during_wait < 100);
    atomic_store(&phase, 3);
    pthread_join(t, NULL);
}

/* A thread that never entered may call the wait brackets (shared code
 * such as a reconnect's sleep) without effect. */
static void test_wait_brackets_outside_are_harmless(void)
{
    cel__fork_guard_wait_begin();
    cel__fork_guard_wait_end();
    ASSERT(fork_and_reap() < 100);
}

int main(void)
{
    TEST_RUN(test_fork_waits_for_work_not_for_waits);
    TEST_RUN(test_wait_brackets_outside_are_harmless);
    return 0;
}
