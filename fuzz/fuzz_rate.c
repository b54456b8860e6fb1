/*
 * fuzz_rate.c - rate-limit strings (they come from task modules and, with
 * the per-call option, from clients).
 *
 * Besides "no crash": an accepted rate is finite and not negative, every
 * refusal explains itself, and a bucket at any accepted positive rate
 * grants its first token and then asks for a wait of at most 1/rate.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char text[257];
    memcpy(text, data, size);
    text[size] = '\0';
    double r = -1;
    char why[128] = "";
    if (cel__rate_parse(text, &r, why, sizeof why) != 0) {
        if (!why[0])
            abort();
        return 0;
    }
    if (!isfinite(r) || r < 0)
        abort();
    if (r > 0) {
        struct cel_token_bucket b;
        cel__bucket_init(&b, r, 0);
        if (cel__bucket_take(&b, 0) != 0)
            abort();
        int64_t wait = cel__bucket_take(&b, 0);
        if (wait <= 0 || (double)wait > 1e6 / r + 2)
            abort();
    }
    return 0;
}
