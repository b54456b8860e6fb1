/*
 * tmpfs.h - a small filesystem of a fixed size, for tests that fill a
 * disk.
 *
 * The tests run as root (CI and the dev machines do); a mount that fails
 * fails the test loudly, it is never a skip: a disk-full test that quietly
 * does not run proves nothing. The test process first moves to a mount
 * namespace of its own when it may, so the mount is invisible to the rest
 * of the machine and goes away with the test even when ctest kills it;
 * processes it spawns afterwards share the namespace and see the mount.
 */
#ifndef CEL_TEST_TMPFS_H
#define CEL_TEST_TMPFS_H

#include <stddef.h>

/* Creates `dir` and mounts a tmpfs of `bytes` there; unmounted at exit. */
void cel_test_tmpfs_mount(const char *dir, size_t bytes);
/* Unmounts it (lazily when busy); no-op when not mounted by us. */
void cel_test_tmpfs_unmount(const char *dir);
/* Bytes still free for an unprivileged writer on the filesystem of `dir`. */
size_t cel_test_fs_free(const char *dir);
/* Writes `path` until the filesystem says ENOSPC, so nothing is left;
 * returns the bytes written. Deleting the file gives the space back. */
size_t cel_test_fill_disk(const char *path);

#endif
