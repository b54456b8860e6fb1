/* uuid.c - see uuid.h. */
#include "core/uuid.h"

#include <errno.h>
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

void cel__uuid4(char out[CEL_UUID_STRLEN + 1])
{
    unsigned char b[16];
    ssize_t got = getrandom(b, sizeof b, GRND_NONBLOCK);
    if (got != (ssize_t)sizeof b) {
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
