/* daemon.c - see daemon.h. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The daemon's end of the pipe to the waiting process; -1 when not
 * detached or once it has spoken. */
static int notify_fd = -1;

/* One write(): a message below PIPE_BUF goes whole or not at all, and
 * the waiting process treats nothing as a failure anyway. */
static void say(const char *text, size_t n)
{
    ssize_t w;
    do
        w = write(notify_fd, text, n);
    while (w < 0 && errno == EINTR);
    close(notify_fd);
    notify_fd = -1;
}

/* The waiting process: "+" means started; "-" and a message, failed; an
 * empty pipe, that the daemon died before saying anything. */
static void wait_for_daemon(int fd) __attribute__((noreturn));
static void wait_for_daemon(int fd)
{
    char msg[2048];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, msg + n, sizeof msg - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof msg - 1)
            break;
    }
    msg[n] = '\0';
    if (n > 0 && msg[0] == '+')
        _exit(0);
    if (n > 0 && msg[0] == '-')
        fprintf(stderr, "celeriac worker: error: %s\n", msg + 1);
    else
        fprintf(stderr, "celeriac worker: error: the detached worker exited while starting "
                        "(see its log file)\n");
    fflush(stderr);
    _exit(1);
}

int daemon_detach(char *why, size_t len)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(why, len, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, len, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        /* The first child exits as soon as it forked the daemon; reaping
         * it keeps no zombie while this process waits. */
        waitpid(pid, NULL, 0);
        wait_for_daemon(p[0]);
    }
    close(p[0]);
    notify_fd = p[1];
    if (setsid() < 0) {
        daemon_failed("setsid failed");
        _exit(1);
    }
    pid = fork();
    if (pid < 0) {
        daemon_failed("fork failed");
        _exit(1);
    }
    if (pid > 0)
        _exit(0);
    umask(022);
    return 0;
}

void daemon_ready(void)
{
    if (notify_fd < 0)
        return;
    say("+", 1);
}

void daemon_failed(const char *msg)
{
    if (notify_fd < 0)
        return;
    char text[1024];
    int n = snprintf(text, sizeof text, "-%s", msg);
    say(text, n < 0 ? 0 : n >= (int)sizeof text ? sizeof text - 1 : (size_t)n);
}

int daemon_log_to(const char *path, bool detached, char *why, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, len, "cannot open log file '%s': %s", path, strerror(errno));
        return -1;
    }
    fflush(NULL);
    int rc = 0;
    if (detached) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            close(null);
        }
    }
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
        rc = -1;
    if (rc != 0)
        snprintf(why, len, "cannot redirect output to '%s': %s", path, strerror(errno));
    close(fd);
    return rc;
}
