/* testing.c - see testing.h. */
#include "testing.h"

#include <celeriac.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char test_dir[4096];
static char start_dir[4096];

void cel_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (test_dir[0])
        fprintf(stderr, "     test directory kept: %s\n", test_dir);
    fflush(stderr);
    exit(1);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

bool cel_test_selected(const char *name)
{
    const char *only = getenv("CEL_TEST_ONLY");
    if (!only || !*only || strstr(name, only))
        return true;
    fprintf(stderr, "-- %s: not selected (CEL_TEST_ONLY=%s)\n", name, only);
    return false;
}

void cel_test_begin(const char *name)
{
    if (!getcwd(start_dir, sizeof start_dir))
        cel_test_fail(__FILE__, __LINE__, "getcwd: %s", strerror(errno));
    const char *tmp = getenv("TMPDIR");
    snprintf(test_dir, sizeof test_dir, "%s/celeriac-%s-XXXXXX", tmp ? tmp : "/tmp", name);
    if (!mkdtemp(test_dir))
        cel_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    if (chdir(test_dir) != 0)
        cel_test_fail(__FILE__, __LINE__, "chdir: %s", strerror(errno));
}

void cel_test_end(void)
{
    if (chdir(start_dir) != 0)
        cel_test_fail(__FILE__, __LINE__, "chdir: %s", strerror(errno));
    if (!getenv("CEL_TEST_KEEP"))
        nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    test_dir[0] = '\0';
}

const char *cel_test_dir(void)
{
    return test_dir;
}

char *cel_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

const char *cel_test_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        cel_test_fail(__FILE__, __LINE__, "environment variable %s is not set (run via ctest)",
                      name);
    return v;
}

void cel_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int64_t cel_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* Processes cel_test_spawn() started and nobody has reaped yet. */
static pid_t spawned[64];

static void track_spawned(pid_t pid, bool add)
{
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++) {
        if (add ? spawned[i] == 0 : spawned[i] == pid) {
            spawned[i] = add ? pid : 0;
            return;
        }
    }
}

/* atexit: a failed assertion exits with workers or servers still up. */
static void kill_spawned(void)
{
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++)
        if (spawned[i] > 0)
            cel_test_kill(spawned[i]);
}

int cel_test_kill(pid_t pid)
{
    if (pid <= 0)
        return -1;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL); /* in case it left its group */
    int status;
    pid_t r = waitpid(pid, &status, 0);
    track_spawned(pid, false);
    return r == pid ? decode_status(status) : -1;
}

int cel_test_wait(pid_t pid, int timeout_ms)
{
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            track_spawned(pid, false);
            return decode_status(status);
        }
        if (r < 0) {
            track_spawned(pid, false);
            return -1;
        }
        if (cel_test_now_ms() >= deadline)
            return -1;
        cel_test_sleep_ms(5);
    }
}

pid_t cel_test_spawn(char *const argv[], const char *log_path)
{
    static bool registered;
    if (!registered) {
        atexit(kill_spawned);
        registered = true;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        cel_test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setpgid(0, 0);
        /* ctest kills a test that overruns its timeout with SIGKILL, and
         * no atexit handler runs then: the kernel stops what it spawned. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid); /* so kill(-pid) works even before the child ran */
    track_spawned(pid, true);
    return pid;
}

int cel_test_run(char *const argv[], int timeout_ms, char **out, char **err)
{
    char out_path[4200], err_path[4200];
    static int seq;
    snprintf(out_path, sizeof out_path, "%s/.run-%d-%d.out", test_dir[0] ? test_dir : "/tmp",
             (int)getpid(), seq);
    snprintf(err_path, sizeof err_path, "%s/.run-%d-%d.err", test_dir[0] ? test_dir : "/tmp",
             (int)getpid(), seq++);
    pid_t pid = fork();
    if (pid < 0)
        cel_test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0)
            _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        execv(argv[0], argv);
        _exit(127);
    }
    int rc = cel_test_wait(pid, timeout_ms);
    if (rc == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (out)
        *out = cel_test_read_file(out_path, NULL);
    if (err)
        *err = cel_test_read_file(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
    return rc;
}

bool cel_test_wait_log(const char *log_path, const char *needle, int timeout_ms)
{
    int64_t deadline = cel_test_now_ms() + timeout_ms;
    do {
        char *text = cel_test_read_file(log_path, NULL);
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        cel_test_sleep_ms(10);
    } while (cel_test_now_ms() < deadline);
    return false;
}

/* memmem with the length left, not strstr: ASan's strstr measures the
 * whole rest of the text at each call, which is quadratic on a log of
 * tens of megabytes. */
static int count_in(const char *text, size_t len, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    const char *end = text + len;
    for (const char *p = text; nl && (p = memmem(p, (size_t)(end - p), needle, nl)) != NULL;
         p += nl)
        n++;
    return n;
}

int cel_test_count(const char *hay, const char *needle)
{
    return count_in(hay, strlen(hay), needle);
}

int cel_test_count_in_file(const char *path, const char *needle)
{
    size_t len = 0;
    char *text = cel_test_read_file(path, &len);
    if (!text)
        return 0;
    int n = count_in(text, len, needle);
    free(text);
    return n;
}

char *cel_test_nested_json(const char *head, int depth, const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = malloc(hl + 2 * (size_t)depth + tl + 1);
    ASSERT(s != NULL);
    memcpy(s, head, hl);
    memset(s + hl, '[', (size_t)depth);
    memset(s + hl + depth, ']', (size_t)depth);
    memcpy(s + hl + 2 * (size_t)depth, tail, tl + 1);
    return s;
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[256 * 1024];

static void keep_log(cel_log_level level, const char *component, const char *msg, void *ud)
{
    (void)ud;
    if (getenv("CEL_TEST_VERBOSE"))
        fprintf(stderr, "  log %d %s: %s\n", (int)level, component, msg);
    pthread_mutex_lock(&log_mu);
    size_t used = strlen(log_text);
    if (used + 512 < sizeof log_text)
        snprintf(log_text + used, sizeof log_text - used, "%d %s: %.400s\n", (int)level, component,
                 msg);
    pthread_mutex_unlock(&log_mu);
}

void cel_test_capture_logs(int min_level)
{
    cel_set_log_handler(keep_log, NULL, (cel_log_level)min_level);
}

int cel_test_logged(const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (const char *p = log_text; (p = strstr(p, needle)); p++)
        n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

void cel_test_print_tail(const char *title, const char *path, int lines)
{
    size_t len = 0;
    char *text = cel_test_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "---- %s (%s): missing\n", title, path);
        return;
    }
    const char *start = text + len;
    int seen = 0;
    while (start > text) {
        if (start[-1] == '\n' && start != text + len && ++seen >= lines)
            break;
        start--;
    }
    fprintf(stderr, "---- %s (%s), last %d lines of %zu bytes:\n%s", title, path, lines, len,
            start);
    if (len && text[len - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "---- end of %s\n", title);
    free(text);
}

void cel_test_print_matching(const char *title, const char *path, const char *needle, int max)
{
    char *text = cel_test_read_file(path, NULL);
    if (!text)
        return;
    int shown = 0, total = 0;
    fprintf(stderr, "---- %s: lines of %s with \"%s\":\n", title, path, needle);
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char saved = line[len];
        line[len] = '\0';
        if (strstr(line, needle) && total++ < max) {
            fprintf(stderr, "%.300s\n", line);
            shown++;
        }
        line[len] = saved;
        line = end ? end + 1 : line + len;
    }
    fprintf(stderr, "---- %d shown of %d\n", shown, total);
    free(text);
}

#define CLI_MAX_ARGS 48

int cel_test_cli_va(char **out, char **err, const char *const *tail, va_list ap)
{
    char *argv[CLI_MAX_ARGS];
    int n = 0;
    argv[n++] = (char *)cel_test_env("CEL_TEST_CLI");
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        ASSERT(n < CLI_MAX_ARGS - 1);
        argv[n++] = (char *)a;
    }
    for (size_t i = 0; tail && tail[i]; i++) {
        ASSERT(n < CLI_MAX_ARGS - 1);
        argv[n++] = (char *)tail[i];
    }
    argv[n] = NULL;
    char *o = NULL, *e = NULL;
    int rc = cel_test_run(argv, 60000, &o, &e);
    if (out)
        *out = o ? o : strdup("");
    else
        free(o);
    if (err)
        *err = e ? e : strdup("");
    else
        free(e);
    return rc;
}

int cel_test_cli(char **out, char **err, ...)
{
    va_list ap;
    va_start(ap, err);
    int rc = cel_test_cli_va(out, err, NULL, ap);
    va_end(ap);
    return rc;
}
