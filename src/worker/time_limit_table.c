/*
 * time_limit_table.c - run-time time limits shared with the pool's
 * children (see time_limit_table.h for why a shared mapping and the
 * concurrency rules).
 */
#include "time_limit_table.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

struct time_limit_entry {
    char name[CEL_TIME_LIMIT_NAME_MAX + 1]; /* immutable once published by `count` */
    atomic_uint seq;                        /* odd while the writer changes the limits */
    /* Atomic so that a read racing the writer is defined behaviour; the
     * seqlock decides whether the pair read is kept. */
    _Atomic double soft, hard;
};

struct cel_time_limit_table {
    atomic_uint count; /* entries [0, count) are published */
    struct time_limit_entry entries[CEL_TIME_LIMIT_TABLE_MAX];
};

cel_time_limit_table *cel__time_limit_table_new(void)
{
    /* Anonymous shared memory is zero-filled: an empty table. */
    void *p = mmap(NULL, sizeof(cel_time_limit_table), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void cel__time_limit_table_free(cel_time_limit_table *t)
{
    if (t)
        munmap(t, sizeof *t);
}

static struct time_limit_entry *find(const cel_time_limit_table *t, unsigned n, const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(t->entries[i].name, name) == 0)
            return (struct time_limit_entry *)&t->entries[i];
    return NULL;
}

int cel__time_limit_table_set(cel_time_limit_table *t, const char *name, double soft, double hard,
                              const char **why)
{
    size_t len = strlen(name);
    if (len > CEL_TIME_LIMIT_NAME_MAX) {
        *why = "task name too long";
        return -1;
    }
    unsigned n = atomic_load_explicit(&t->count, memory_order_relaxed); /* we are the writer */
    struct time_limit_entry *e = find(t, n, name);
    if (e) {
        unsigned s = atomic_load_explicit(&e->seq, memory_order_relaxed);
        atomic_store_explicit(&e->seq, s + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release); /* odd seq before the new values */
        atomic_store_explicit(&e->soft, soft, memory_order_relaxed);
        atomic_store_explicit(&e->hard, hard, memory_order_relaxed);
        atomic_store_explicit(&e->seq, s + 2, memory_order_release);
        return 0;
    }
    if (n >= CEL_TIME_LIMIT_TABLE_MAX) {
        *why = "too many tasks with time limits";
        return -1;
    }
    /* Not yet visible to readers: plain writes, then publish. */
    e = &t->entries[n];
    memcpy(e->name, name, len + 1);
    atomic_store_explicit(&e->soft, soft, memory_order_relaxed);
    atomic_store_explicit(&e->hard, hard, memory_order_relaxed);
    atomic_store_explicit(&t->count, n + 1, memory_order_release);
    return 0;
}

bool cel__time_limit_table_get(const cel_time_limit_table *t, const char *name, double *soft,
                               double *hard)
{
    if (!t)
        return false;
    /* The per-task cost when nothing was ever set. */
    unsigned n = atomic_load_explicit(&t->count, memory_order_relaxed);
    if (n == 0)
        return false;
    atomic_thread_fence(memory_order_acquire); /* the names published with count */
    struct time_limit_entry *e = find(t, n, name);
    if (!e)
        return false;
    for (;;) {
        unsigned before = atomic_load_explicit(&e->seq, memory_order_acquire);
        double s = atomic_load_explicit(&e->soft, memory_order_relaxed);
        double h = atomic_load_explicit(&e->hard, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire); /* the values before the re-read */
        unsigned after = atomic_load_explicit(&e->seq, memory_order_relaxed);
        if (before == after && !(before & 1)) {
            *soft = s;
            *hard = h;
            return true;
        }
    }
}
