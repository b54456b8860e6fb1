/* pidfile.c - see pidfile.h. */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rounds of "stale: remove it, try again" before giving up (another
 * starter racing for the same file). */
#define ATTEMPTS 5

/* The pid the file names; 0 when it names none (empty, garbage), -1
 * when it cannot be read (errno set; ENOENT: it is gone). */
static long read_pid(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

static bool alive(long pid)
{
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Writes our pid to a private name next to path; 0 or -1 (errno). */
static int write_temp(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    int rc = write(fd, text, (size_t)n) == n ? 0 : -1;
    int saved = errno;
    if (close(fd) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

int pidfile_acquire(const char *path, char *why, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    unlink(tmp); /* a leftover of this pid's previous life */
    if (write_temp(tmp) != 0) {
        snprintf(why, len, "cannot write pid file '%s': %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int rc = -1;
    for (int i = 0; i < ATTEMPTS; i++) {
        if (link(tmp, path) == 0) {
            rc = 0;
            break;
        }
        if (errno != EEXIST) {
            snprintf(why, len, "cannot create pid file '%s': %s", path, strerror(errno));
            break;
        }
        long pid = read_pid(path);
        if (pid < 0 && errno == ENOENT)
            continue; /* removed meanwhile: try again */
        if (pid == (long)getpid()) {
            rc = 0; /* ours: this process restarted itself with exec */
            break;
        }
        if (pid > 0 && alive(pid)) {
            snprintf(why, len,
                     "pid file '%s' names pid %ld, which is running (another worker? stop it, "
                     "or use another --pidfile)",
                     path, pid);
            break;
        }
        fprintf(stderr, "celeriac worker: removing stale pid file '%s' (%s)\n", path,
                pid > 0 ? "its process is gone" : "it holds no pid");
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(why, len, "cannot remove stale pid file '%s': %s", path, strerror(errno));
            break;
        }
        if (i == ATTEMPTS - 1)
            snprintf(why, len, "pid file '%s' keeps coming back: another worker is starting", path);
    }
    unlink(tmp);
    return rc;
}

void pidfile_release(const char *path)
{
    if (path && *path && read_pid(path) == (long)getpid())
        unlink(path);
}
