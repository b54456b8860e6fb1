/* tmpfs.c - see tmpfs.h. */
#include "tmpfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "testing.h"

static char mounted[4][4096];

static void unmount_all(void)
{
    for (size_t i = 0; i < sizeof mounted / sizeof mounted[0]; i++)
        if (mounted[i][0])
            cel_test_tmpfs_unmount(mounted[i]);
}

/* A private mount namespace, once per process; false when not allowed
 * (then the mount lands in the shared namespace and atexit removes it). */
static bool private_namespace(void)
{
    static int done = -1;
    if (done >= 0)
        return done;
    done = unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    return done;
}

void cel_test_tmpfs_mount(const char *dir, size_t bytes)
{
    static bool registered;
    if (!registered) {
        atexit(unmount_all);
        registered = true;
    }
    if (!private_namespace())
        fprintf(stderr, "   note: no private mount namespace (%s); mounting in the shared one\n",
                strerror(errno));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        cel_test_fail(__FILE__, __LINE__, "mkdir %s: %s", dir, strerror(errno));
    char opts[64];
    snprintf(opts, sizeof opts, "size=%zu,mode=0755", bytes);
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
        cel_test_fail(__FILE__, __LINE__,
                      "mount -t tmpfs -o %s tmpfs %s: %s (this test needs root; it does not "
                      "skip)",
                      opts, dir, strerror(errno));
    for (size_t i = 0; i < sizeof mounted / sizeof mounted[0]; i++) {
        if (!mounted[i][0]) {
            snprintf(mounted[i], sizeof mounted[i], "%s", dir);
            return;
        }
    }
    cel_test_fail(__FILE__, __LINE__, "too many tmpfs mounts in one test");
}

void cel_test_tmpfs_unmount(const char *dir)
{
    for (size_t i = 0; i < sizeof mounted / sizeof mounted[0]; i++) {
        if (mounted[i][0] && strcmp(mounted[i], dir) == 0) {
            /* A process killed a moment ago may still hold a file open. */
            if (umount(dir) != 0 && umount2(dir, MNT_DETACH) != 0)
                fprintf(stderr, "   warning: cannot unmount %s: %s\n", dir, strerror(errno));
            mounted[i][0] = '\0';
            return;
        }
    }
}

size_t cel_test_fs_free(const char *dir)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        cel_test_fail(__FILE__, __LINE__, "statvfs %s: %s", dir, strerror(errno));
    return (size_t)st.f_bavail * st.f_frsize;
}

size_t cel_test_fill_disk(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        cel_test_fail(__FILE__, __LINE__, "open %s: %s", path, strerror(errno));
    static const char zeros[4096];
    size_t total = 0;
    for (;;) {
        ssize_t w = write(fd, zeros, sizeof zeros);
        if (w > 0) {
            total += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != ENOSPC)
            cel_test_fail(__FILE__, __LINE__, "write %s: %s", path, strerror(errno));
        break;
    }
    close(fd);
    return total;
}
