/* uuid.c - see uuid.h. */
#include "core/uuid.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Fallback when getrandom() is unavailable: splitmix64 seeded from time
 * and pid. Ids only need to be unique, not secret. */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Random bytes are fetched 4 KiB at a time: a producer makes two UUIDs
 * per message (task id, delivery tag), and a getrandom() call each was a
 * measurable share of its time. The pool is per thread and emptied in a
 * fork child, so parent and child never hand out the same bytes. */
#define POOL_SIZE 4096
static __thread unsigned char pool[POOL_SIZE];
static __thread size_t pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_pool(void)
{
    pool_left = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_pool);
}

static int take_random(unsigned char *b, size_t n)
{
    pthread_once(&atfork_once, register_atfork);
    if (pool_left < n) {
        ssize_t got = getrandom(pool, POOL_SIZE, GRND_NONBLOCK);
        if (got != POOL_SIZE)
            return -1;
        pool_left = POOL_SIZE;
    }
    memcpy(b, pool + POOL_SIZE - pool_left, n);
    memset(pool + POOL_SIZE - pool_left, 0, n);
    pool_left -= n;
    return 0;
}

void cel__uuid4(char out[CEL_UUID_STRLEN + 1])
{
    unsigned char b[16];
    if (take_random(b, sizeof b) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        static __thread uint64_t state;
        state ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
        uint64_t a = splitmix(&state), c = splitmix(&state);
        for (int i = 0; i < 8; i++) {
            b[i] = (unsigned char)(a >> (8 * i));
            b[8 + i] = (unsigned char)(c >> (8 * i));
        }
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
