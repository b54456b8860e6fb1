/* fuzz_frame.c - the parent/child frame decoder must survive any bytes. */
#include <stdint.h>
#include <string.h>

#include "worker/execute.h"
#include "worker/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cel_framebuf b = {0};
    if (size && cel__framebuf_append(&b, CEL_FRAME_TASK, 0, 1, NULL, 0) != 0)
        return 0;
    b.off = b.len = 0;
    /* Feed the input in two halves, as reads from a socket would arrive. */
    size_t half = size / 2;
    const uint8_t *parts[2] = {data, data + half};
    size_t lens[2] = {half, size - half};
    for (int p = 0; p < 2; p++) {
        if (b.len + lens[p] > b.cap)
            break;
        memcpy(b.data + b.len, parts[p], lens[p]);
        b.len += lens[p];
        struct cel_frame f;
        int r;
        while ((r = cel__framebuf_next(&b, &f)) == 1) {
            struct cel_execution ex;
            if (f.type == CEL_FRAME_RESULT && cel__execution_from_frame(&f, &ex) == 0)
                cel__execution_release(&ex);
        }
        if (r < 0)
            break;
    }
    cel__framebuf_release(&b);
    return 0;
}
