/* test_time_limit_table.c - the run-time time limits the worker shares
 * with its children: set, replace, bounds, and what a process forked
 * before a change sees (the change, never half of it). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "worker/time_limit_table.h"

static void test_set_get_replace(void)
{
    cel_time_limit_table *t = cel__time_limit_table_new();
    ASSERT(t != NULL);
    double soft = -1, hard = -1;
    ASSERT(!cel__time_limit_table_get(t, "a", &soft, &hard));
    ASSERT(!cel__time_limit_table_get(NULL, "a", &soft, &hard));
    const char *why = NULL;
    ASSERT_EQ(cel__time_limit_table_set(t, "a", 0.5, 3, &why), 0);
    ASSERT(cel__time_limit_table_get(t, "a", &soft, &hard));
    ASSERT(soft == 0.5 && hard == 3);
    ASSERT(!cel__time_limit_table_get(t, "b", &soft, &hard));
    /* Replaced, and "none" is an entry too: it overrides the task's own. */
    ASSERT_EQ(cel__time_limit_table_set(t, "a", 0, 0, &why), 0);
    ASSERT(cel__time_limit_table_get(t, "a", &soft, &hard));
    ASSERT(soft == 0 && hard == 0);
    cel__time_limit_table_free(t);
}

static void test_bounds(void)
{
    cel_time_limit_table *t = cel__time_limit_table_new();
    ASSERT(t != NULL);
    const char *why = NULL;
    char name[CEL_TIME_LIMIT_NAME_MAX + 2];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    ASSERT_EQ(cel__time_limit_table_set(t, name, 1, 2, &why), -1);
    ASSERT_STREQ(why, "task name too long");
    name[CEL_TIME_LIMIT_NAME_MAX] = '\0'; /* the longest kept */
    ASSERT_EQ(cel__time_limit_table_set(t, name, 1, 2, &why), 0);
    for (int i = 1; i < CEL_TIME_LIMIT_TABLE_MAX; i++) {
        char n[32];
        snprintf(n, sizeof n, "task.%d", i);
        ASSERT_EQ(cel__time_limit_table_set(t, n, i, 0, &why), 0);
    }
    why = NULL;
    ASSERT_EQ(cel__time_limit_table_set(t, "one.more", 1, 1, &why), -1);
    ASSERT_STREQ(why, "too many tasks with time limits");
    /* Full, a known name can still change. */
    ASSERT_EQ(cel__time_limit_table_set(t, "task.7", 9, 9, &why), 0);
    double soft = 0, hard = 0;
    ASSERT(cel__time_limit_table_get(t, "task.7", &soft, &hard));
    ASSERT(soft == 9 && hard == 9);
    ASSERT(cel__time_limit_table_get(t, name, &soft, &hard));
    ASSERT(soft == 1 && hard == 2);
    cel__time_limit_table_free(t);
}

/* A child forked before any limit was set sees every later change, and
 * never a soft limit of one change with the hard limit of another (each
 * change keeps hard == 2 * soft). */
static void test_forked_reader_sees_whole_changes(void)
{
    cel_time_limit_table *t = cel__time_limit_table_new();
    ASSERT(t != NULL);
    enum { CHANGES = 200000 };
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        double soft = 0, hard = 0, last = 0;
        int64_t deadline = cel_test_now_ms() + 20000;
        while (last < CHANGES && cel_test_now_ms() < deadline) {
            if (!cel__time_limit_table_get(t, "t", &soft, &hard))
                continue;
            if (hard != 2 * soft || soft < last)
                _exit(1); /* torn, or went backwards */
            last = soft;
        }
        _exit(last == CHANGES ? 0 : 2);
    }
    const char *why = NULL;
    for (int i = 1; i <= CHANGES; i++)
        ASSERT_EQ(cel__time_limit_table_set(t, "t", i, 2.0 * i, &why), 0);
    int status = -1;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    cel__time_limit_table_free(t);
}

int main(void)
{
    TEST_RUN(test_set_get_replace);
    TEST_RUN(test_bounds);
    TEST_RUN(test_forked_reader_sees_whole_changes);
    return 0;
}
