/* fuzz_frame.c - the parent/child frame decoder must survive any bytes. */
#include <stdint.h>
#include <string.h>

#include "worker/execute.h"
#include "worker/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cel_buf b = {0};
    if (cel__buf_reserve(&b, size) != CEL_OK)
        return 0;
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
            struct cel_frame_state st;
            struct cel_frame_publish pub;
            if (f.type == CEL_FRAME_RESULT && cel__execution_from_frame(&f, &ex) == 0)
                cel__execution_release(&ex);
            /* What parses must encode back to the same fields. */
            if (cel__frame_parse_state(&f, &st) == 0) {
                struct cel_buf o = {0}, *op = &o;
                struct cel_frame g;
                struct cel_frame_state st2;
                if (cel__frame_append_state(op, f.seq, st.state, st.meta, st.meta_len) == 0 &&
                    (cel__framebuf_next(op, &g) != 1 || cel__frame_parse_state(&g, &st2) != 0 ||
                     strcmp(st.state, st2.state) != 0 || st.meta_len != st2.meta_len))
                    __builtin_trap();
                cel__framebuf_release(op);
            }
            struct cel_frame_begin bg, bg2;
            if (cel__frame_parse_begin(&f, &bg) == 0) {
                struct cel_buf o = {0};
                struct cel_frame g;
                if (cel__frame_append_begin(&o, f.seq, &bg) == 0 &&
                    (cel__framebuf_next(&o, &g) != 1 || cel__frame_parse_begin(&g, &bg2) != 0 ||
                     bg.time_limit != bg2.time_limit || bg.soft_time_limit != bg2.soft_time_limit ||
                     bg.flags != bg2.flags))
                    __builtin_trap();
                cel__framebuf_release(&o);
            }
            /* issue 7: a CRASH frame re-encodes to the same bytes. */
            struct cel_frame_crash cr;
            if (cel__frame_parse_crash(&f, &cr) == 0) {
                static char o[CEL_CRASH_FRAME_MAX];
                size_t n = cel__frame_encode_crash(o, sizeof o, f.seq, cr.signo, cr.text, cr.len);
                if (n != CEL_FRAME_HEADER + f.len ||
                    memcmp(o + CEL_FRAME_HEADER, f.payload, f.len) != 0)
                    __builtin_trap();
            }
            /* issue 8: chord frames re-encode to the same bytes. */
            const char *gid;
            int csize;
            struct cel_chord_join cj;
            if (cel__frame_parse_chord_size(&f, &gid, &csize) == 0 ||
                cel__frame_parse_chord_join(&f, &cj) == 0) {
                struct cel_buf o = {0};
                int rc = f.type == CEL_FRAME_CHORD_SIZE
                             ? cel__frame_append_chord_size(&o, f.seq, gid, csize)
                             : cel__frame_append_chord_join(&o, f.seq, &cj);
                if (rc != 0 || o.len != CEL_FRAME_HEADER + f.len ||
                    memcmp(o.data + CEL_FRAME_HEADER, f.payload, f.len) != 0)
                    __builtin_trap();
                cel__framebuf_release(&o);
            }
            if (cel__frame_parse_publish(&f, &pub) == 0) {
                struct cel_buf o = {0};
                struct cel_frame g;
                struct cel_frame_publish p2;
                if (cel__frame_append_publish(&o, f.seq, &pub) == 0 &&
                    (cel__framebuf_next(&o, &g) != 1 || cel__frame_parse_publish(&g, &p2) != 0 ||
                     strcmp(pub.queue, p2.queue) != 0 || pub.priority != p2.priority ||
                     pub.due_us != p2.due_us || pub.len != p2.len))
                    __builtin_trap();
                cel__framebuf_release(&o);
            }
        }
        if (r < 0)
            break;
    }
    cel__framebuf_release(&b);
    return 0;
}
