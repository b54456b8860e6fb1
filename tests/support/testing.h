/*
 * testing.h - the small assertion and process toolkit every test uses.
 *
 * A test file defines `static void test_x(void)` functions and a main()
 * that calls TEST_RUN(test_x) for each. A failed assertion prints both
 * sides with file and line and exits non-zero, so ctest reports it.
 */
#ifndef CEL_TESTING_H
#define CEL_TESTING_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

void cel_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            cel_test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                      \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            cel_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);           \
    } while (0)

#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        long long r_ = (long long)(expr);                                                          \
        if (r_ != 0)                                                                               \
            cel_test_fail(__FILE__, __LINE__, "%s returned %lld", #expr, r_);                      \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            cel_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                \
                          a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                 \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            cel_test_fail(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #hay, n_,      \
                          h_ ? h_ : "(null)");                                                     \
    } while (0)

#define TEST_RUN(fn)                                                                               \
    do {                                                                                           \
        if (!cel_test_selected(#fn))                                                               \
            break;                                                                                 \
        fprintf(stderr, "-- %s\n", #fn);                                                           \
        cel_test_begin(#fn);                                                                       \
        fn();                                                                                      \
        cel_test_end();                                                                            \
        fprintf(stderr, "ok %s\n", #fn);                                                           \
    } while (0)

/* False when $CEL_TEST_ONLY is set and `name` does not contain it, so one
 * case of a file can be run alone: CEL_TEST_ONLY=matrix ctest -R payloads. */
bool cel_test_selected(const char *name);

/* Each test gets a fresh private directory as its working directory,
 * removed after the test passes (kept on failure for inspection). */
void cel_test_begin(const char *name);
void cel_test_end(void);
const char *cel_test_dir(void);

/* Reads a whole file; caller frees. NULL when missing. */
char *cel_test_read_file(const char *path, size_t *len);

/* Environment paths set by tests/CMakeLists.txt. Fails the test when unset. */
const char *cel_test_env(const char *name);

/* Runs argv (argv[0] a path) to completion with a timeout; captures
 * stdout and stderr (caller frees; either may be NULL). Returns the exit
 * status, or 128+signal, or -1 on timeout (the child is killed). */
int cel_test_run(char *const argv[], int timeout_ms, char **out, char **err);

/* Runs the CLI under test (CEL_TEST_CLI) with the arguments up to a NULL,
 * then the NULL-terminated `tail` (may be NULL: none), for up to a
 * minute. Returns its exit status as cel_test_run(); *out and *err get
 * its output, never NULL (caller frees; either pointer may be NULL: the
 * output is dropped). */
int cel_test_cli_va(char **out, char **err, const char *const *tail, va_list ap);
int cel_test_cli(char **out, char **err, ...);

/* Starts argv in the background with stdout/stderr sent to `log_path`, in
 * a process group of its own. Every spawned process is remembered until
 * cel_test_wait() reaps it; at exit (a failed assertion included) the
 * groups of those still running get SIGKILL, and a spawned process also
 * dies with the test (PR_SET_PDEATHSIG), so nothing outlives a test run. */
pid_t cel_test_spawn(char *const argv[], const char *log_path);
/* Waits for pid up to timeout_ms; returns exit status, 128+sig, or -1. */
int cel_test_wait(pid_t pid, int timeout_ms);
/* SIGKILL to pid's process group, then reaps pid; returns as cel_test_wait. */
int cel_test_kill(pid_t pid);
/* Polls until `log_path` contains `needle` or timeout; true when found. */
bool cel_test_wait_log(const char *log_path, const char *needle, int timeout_ms);
/* Counts occurrences of needle in a string, and in a file. */
int cel_test_count(const char *hay, const char *needle);
int cel_test_count_in_file(const char *path, const char *needle);
/* Prints the last `lines` lines of a file to stderr under a title, for
 * failure diagnostics ("(missing)" when there is no such file). */
void cel_test_print_tail(const char *title, const char *path, int lines);
/* Prints the first `max` lines of a file that contain `needle`, and how
 * many there are in all. */
void cel_test_print_matching(const char *title, const char *path, const char *needle, int max);

/* head, then `depth` nested empty arrays ("[[...]]"), then tail: JSON
 * past a depth limit. Caller frees. */
char *cel_test_nested_json(const char *head, int depth, const char *tail);

void cel_test_sleep_ms(int ms);
int64_t cel_test_now_ms(void);

/* Installs a log handler that keeps every line the library logs at
 * min_level (a cel_log_level) or above, from any thread, as
 * "<level> <component>: <message>" (echoed to stderr when
 * CEL_TEST_VERBOSE is set). */
void cel_test_capture_logs(int min_level);
/* How many captured lines contain `needle`. */
int cel_test_logged(const char *needle);

#endif
