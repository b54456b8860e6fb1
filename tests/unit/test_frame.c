/* test_frame.c - parent/child frames: STATE, PUBLISH, BEGIN and CRASH
 * payloads, and a non-blocking flush that never waits for a peer that
 * does not read. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing.h"
#include "worker/execute.h"
#include "worker/frame.h"

/* The next frame in b, which must be of `type` for task `seq`. */
static struct cel_frame next_frame(struct cel_buf *b, uint8_t type, uint64_t seq)
{
    struct cel_frame f;
    ASSERT_EQ(cel__framebuf_next(b, &f), 1);
    ASSERT_EQ(f.type, type);
    ASSERT_EQ(f.seq, seq);
    return f;
}

static void test_state_round_trip(void)
{
    struct cel_buf b = {0};
    const char meta[] = "{\"status\": \"PROGRESS\", \"result\": {\"done\": 3}}";
    ASSERT_EQ(cel__frame_append_state(&b, 7, "PROGRESS", meta, strlen(meta)), 0);
    struct cel_frame f = next_frame(&b, CEL_FRAME_STATE, 7);
    struct cel_frame_state st;
    ASSERT_EQ(cel__frame_parse_state(&f, &st), 0);
    ASSERT_STREQ(st.state, "PROGRESS");
    ASSERT_EQ(st.meta_len, strlen(meta));
    ASSERT(memcmp(st.meta, meta, st.meta_len) == 0);
    cel__framebuf_release(&b);
}

static void test_publish_round_trip(void)
{
    struct cel_buf b = {0};
    const char env[] = "{\"body\": \"W10=\"}";
    struct cel_frame_publish in = {.queue = "images",
                                   .priority = 9,
                                   .due_us = 1700000000123456,
                                   .task_id = "abc-1",
                                   .body = env,
                                   .len = strlen(env)};
    ASSERT_EQ(cel__frame_append_publish(&b, 3, &in), 0);
    struct cel_frame f;
    ASSERT_EQ(cel__framebuf_next(&b, &f), 1);
    struct cel_frame_publish out;
    ASSERT_EQ(cel__frame_parse_publish(&f, &out), 0);
    ASSERT_STREQ(out.queue, "images");
    ASSERT_EQ(out.priority, 9);
    ASSERT_EQ(out.due_us, 1700000000123456);
    ASSERT_STREQ(out.task_id, "abc-1");
    ASSERT_EQ(out.len, strlen(env));
    ASSERT(memcmp(out.body, env, out.len) == 0);
    cel__framebuf_release(&b);
}

/* Payloads a confused or hostile child could send are refused, never
 * read past their end. */
static void test_malformed_payloads(void)
{
    static const struct {
        uint8_t type;
        const char *payload;
        size_t len;
    } bad[] = {
        {CEL_FRAME_STATE, "", 0},         /* no state name */
        {CEL_FRAME_STATE, "PROGRESS", 8}, /* unterminated */
        {CEL_FRAME_PUBLISH,
         "q\0"
         "1\0"
         "0",
         5}, /* missing fields */
        {CEL_FRAME_PUBLISH,
         "\0"
         "1\0"
         "0\0"
         "id\0{}",
         10}, /* empty queue */
        {CEL_FRAME_PUBLISH,
         "q\0"
         "-1\0"
         "0\0"
         "id\0{}",
         11},
        {CEL_FRAME_PUBLISH,
         "q\0"
         "x\0"
         "0\0"
         "id\0{}",
         10},
        {CEL_FRAME_PUBLISH,
         "q\0"
         "1\0"
         "-5\0"
         "id\0{}",
         11},
        {CEL_FRAME_PUBLISH,
         "q\0"
         "1\0"
         "9z\0"
         "id\0{}",
         11},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cel_frame f = {
            .type = bad[i].type, .payload = bad[i].payload, .len = (uint32_t)bad[i].len};
        struct cel_frame_state st;
        struct cel_frame_publish pub;
        int rc = f.type == CEL_FRAME_STATE ? cel__frame_parse_state(&f, &st)
                                           : cel__frame_parse_publish(&f, &pub);
        if (rc != -1)
            cel_test_fail(__FILE__, __LINE__, "bad payload %zu was accepted", i);
    }
    /* A frame of the wrong type is not read as either. */
    struct cel_frame task = {.type = CEL_FRAME_TASK, .payload = "x\0", .len = 2};
    struct cel_frame_state st;
    ASSERT_EQ(cel__frame_parse_state(&task, &st), -1);
}

/* issue 8: a chord's size and a header member's join reach the parent
 * whole, and the decoder refuses what the encoder never writes. */
static void test_chord_round_trip(void)
{
    struct cel_buf b = {0};
    ASSERT_EQ(cel__frame_append_chord_size(&b, 4, "g-1", 1000), 0);
    const char body[] = "{\"task\": \"tsum\", \"args\": []}";
    const char entry[] = "[1, \"t-2\", \"SUCCESS\", 4]";
    struct cel_chord_join in = {.group_id = "g-1",
                                .group_index = 2,
                                .task_id = "t-2",
                                .root_id = "r-0",
                                .body = body,
                                .body_len = strlen(body),
                                .entry = entry,
                                .entry_len = strlen(entry)};
    ASSERT_EQ(cel__frame_append_chord_join(&b, 4, &in), 0);
    in.group_index = -1;
    in.root_id = NULL;
    ASSERT_EQ(cel__frame_append_chord_join(&b, 4, &in), 0);

    struct cel_frame f;
    const char *gid;
    int size;
    ASSERT_EQ(cel__framebuf_next(&b, &f), 1);
    ASSERT_EQ(f.type, CEL_FRAME_CHORD_SIZE);
    ASSERT_EQ(cel__frame_parse_chord_size(&f, &gid, &size), 0);
    ASSERT_STREQ(gid, "g-1");
    ASSERT_EQ(size, 1000);
    struct cel_chord_join out;
    ASSERT_EQ(cel__framebuf_next(&b, &f), 1);
    ASSERT_EQ(f.seq, 4);
    ASSERT_EQ(cel__frame_parse_chord_join(&f, &out), 0);
    ASSERT_STREQ(out.group_id, "g-1");
    ASSERT_EQ(out.group_index, 2);
    ASSERT_STREQ(out.task_id, "t-2");
    ASSERT_STREQ(out.root_id, "r-0");
    ASSERT(out.body_len == strlen(body) && memcmp(out.body, body, out.body_len) == 0);
    ASSERT(out.entry_len == strlen(entry) && memcmp(out.entry, entry, out.entry_len) == 0);
    ASSERT_EQ(cel__frame_parse_chord_size(&f, &gid, &size), -1); /* wrong type */
    ASSERT_EQ(cel__framebuf_next(&b, &f), 1);
    ASSERT_EQ(cel__frame_parse_chord_join(&f, &out), 0);
    ASSERT_EQ(out.group_index, -1);
    ASSERT(out.root_id == NULL);
    cel__framebuf_release(&b);

    /* Not sent: no group, a negative size, an empty body or entry. */
    ASSERT_EQ(cel__frame_append_chord_size(&b, 1, "", 3), -1);
    ASSERT_EQ(cel__frame_append_chord_size(&b, 1, "g", -1), -1);
    in.entry_len = 0;
    ASSERT_EQ(cel__frame_append_chord_join(&b, 1, &in), -1);
    cel__framebuf_release(&b);

    static const struct {
        uint8_t type;
        const char *payload;
        size_t len;
    } bad[] = {
        {CEL_FRAME_CHORD_SIZE,
         "g\0"
         "3",
         3}, /* size unterminated */
        {CEL_FRAME_CHORD_SIZE,
         "\0"
         "3\0",
         3},                                  /* no group */
        {CEL_FRAME_CHORD_SIZE, "g\0-3\0", 5}, /* negative */
        {CEL_FRAME_CHORD_SIZE,
         "g\0"
         "03\0",
         5}, /* leading zero */
        {CEL_FRAME_CHORD_SIZE,
         "g\0"
         "3\0x",
         5}, /* trailing bytes */
        {CEL_FRAME_CHORD_JOIN,
         "g\0"
         "0\0t\0r\0"
         "2\0{}",
         12}, /* no entry after the body */
        {CEL_FRAME_CHORD_JOIN,
         "g\0"
         "-2\0t\0r\0"
         "2\0{}[1]",
         16}, /* index below -1 */
        {CEL_FRAME_CHORD_JOIN,
         "g\0"
         "-0\0t\0r\0"
         "2\0{}[1]",
         16}, /* -0 */
        {CEL_FRAME_CHORD_JOIN,
         "g\0"
         "0\0\0r\0"
         "2\0{}[1]",
         14}, /* no task id */
        {CEL_FRAME_CHORD_JOIN,
         "g\0"
         "0\0t\0r\0"
         "99\0{}[1]",
         16}, /* body past the end */
        {CEL_FRAME_CHORD_JOIN,
         "g\0"
         "0\0t\0r\0"
         "2\0{}[\0]",
         16}, /* NUL in the entry */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cel_frame g = {
            .type = bad[i].type, .payload = bad[i].payload, .len = (uint32_t)bad[i].len};
        int rc = g.type == CEL_FRAME_CHORD_SIZE ? cel__frame_parse_chord_size(&g, &gid, &size)
                                                : cel__frame_parse_chord_join(&g, &out);
        if (rc != -1)
            cel_test_fail(__FILE__, __LINE__, "bad chord payload %zu was accepted", i);
    }
}

/* issue 7: the BEGIN frame carries a task's limits and policy flags to
 * the parent; the limits survive the trip exactly. */
static void test_begin_round_trip(void)
{
    struct cel_buf b = {0};
    const struct cel_frame_begin in = {
        .time_limit = 1.25,
        .soft_time_limit = 0.1,
        .flags = CEL_BEGIN_ACKS_LATE | CEL_BEGIN_REJECT_ON_WORKER_LOST | CEL_BEGIN_TRACK_STARTED};
    ASSERT_EQ(cel__frame_append_begin(&b, 42, &in), 0);
    struct cel_frame f = next_frame(&b, CEL_FRAME_BEGIN, 42);
    struct cel_frame_begin out;
    ASSERT_EQ(cel__frame_parse_begin(&f, &out), 0);
    ASSERT(out.time_limit == 1.25);
    ASSERT(out.soft_time_limit == 0.1);
    ASSERT_EQ(out.flags, in.flags);
    /* No limits, no flags. */
    const struct cel_frame_begin none = {0};
    ASSERT_EQ(cel__frame_append_begin(&b, 43, &none), 0);
    f = next_frame(&b, CEL_FRAME_BEGIN, 43);
    ASSERT_EQ(cel__frame_parse_begin(&f, &out), 0);
    ASSERT(out.time_limit == 0 && out.soft_time_limit == 0 && out.flags == 0);
    cel__framebuf_release(&b);
}

static void test_begin_malformed(void)
{
    static const struct {
        const char *payload;
        size_t len;
    } bad[] = {
        {"", 0},
        {"1\0"
         "2\0",
         4}, /* no flags */
        {"1\0"
         "2\0"
         "1",
         5}, /* unterminated */
        {"1\0"
         "2\0"
         "1\0"
         "x\0",
         8}, /* a field too many */
        {"-1\0"
         "0\0"
         "0\0",
         7}, /* negative limit */
        {"nan\0"
         "0\0"
         "0\0",
         8},
        {"inf\0"
         "0\0"
         "0\0",
         8},
        {"1e99\0"
         "0\0"
         "0\0",
         9}, /* beyond a year */
        {"1x\0"
         "0\0"
         "0\0",
         7},
        {"1\0"
         "0\0"
         "8\0",
         6}, /* unknown flag */
        {"1\0"
         "0\0"
         "-1\0",
         7},
        {"\0"
         "0\0"
         "0\0",
         5}, /* empty limit */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cel_frame f = {
            .type = CEL_FRAME_BEGIN, .payload = bad[i].payload, .len = (uint32_t)bad[i].len};
        struct cel_frame_begin out;
        if (cel__frame_parse_begin(&f, &out) != -1)
            cel_test_fail(__FILE__, __LINE__, "bad BEGIN payload %zu was accepted", i);
    }
    /* A well-formed payload in a frame of another type is refused. */
    struct cel_frame state = {.type = CEL_FRAME_STATE,
                              .payload = "1\0"
                                         "0\0"
                                         "0\0",
                              .len = 6};
    struct cel_frame_begin out;
    ASSERT_EQ(cel__frame_parse_begin(&state, &out), -1);
    /* The decoder knows the type, and no type past it. */
    unsigned char hdr[CEL_FRAME_HEADER + 6] = {6, 0, 0, 0, CEL_FRAME_BEGIN};
    memcpy(hdr + CEL_FRAME_HEADER,
           "1\0"
           "0\0"
           "0\0",
           6);
    struct cel_frame g;
    ASSERT(cel__frame_decode(hdr, sizeof hdr, &g) > 0);
    hdr[4] = CEL_FRAME_TYPE_LAST + 1;
    ASSERT_EQ(cel__frame_decode(hdr, sizeof hdr, &g), -1);
}

/* ---- issue 7: the CRASH frame a dying child sends (crash.h) ---- */

static void test_crash_round_trip(void)
{
    static char buf[CEL_CRASH_FRAME_MAX];
    const char text[] = "  File \"libx.so\", offset 0x11c5, in task_fn+0xe\n";
    size_t n = cel__frame_encode_crash(buf, sizeof buf, 9, 11, text, strlen(text));
    ASSERT_EQ(n, CEL_FRAME_HEADER + 3 + strlen(text));
    struct cel_frame f;
    ASSERT_EQ(cel__frame_decode((const unsigned char *)buf, n, &f), (long)n);
    ASSERT_EQ(f.type, CEL_FRAME_CRASH);
    ASSERT_EQ(f.seq, 9u);
    struct cel_frame_crash cr;
    ASSERT_EQ(cel__frame_parse_crash(&f, &cr), 0);
    ASSERT_EQ(cr.signo, 11);
    ASSERT_EQ(cr.len, strlen(text));
    ASSERT(memcmp(cr.text, text, cr.len) == 0);
    /* A one-digit signal, no frames. */
    n = cel__frame_encode_crash(buf, sizeof buf, 10, 6, "", 0);
    ASSERT_EQ(cel__frame_decode((const unsigned char *)buf, n, &f), (long)n);
    ASSERT_EQ(cel__frame_parse_crash(&f, &cr), 0);
    ASSERT(cr.signo == 6 && cr.len == 0);
    /* Built in place, as the handler does: the text already sits in the
     * buffer past the header, and the whole bound fits. */
    memset(buf + CEL_FRAME_HEADER + 3, 'x', CEL_CRASH_TEXT_MAX);
    n = cel__frame_encode_crash(buf, sizeof buf, 11, 7, buf + CEL_FRAME_HEADER + 3,
                                CEL_CRASH_TEXT_MAX);
    ASSERT_EQ(n, sizeof buf - 1);
    ASSERT_EQ(cel__frame_decode((const unsigned char *)buf, n, &f), (long)n);
    ASSERT_EQ(cel__frame_parse_crash(&f, &cr), 0);
    ASSERT(cr.signo == 7 && cr.len == CEL_CRASH_TEXT_MAX);
    ASSERT(cr.text[0] == 'x' && cr.text[cr.len - 1] == 'x');
}

static void test_crash_refused(void)
{
    static char buf[CEL_CRASH_FRAME_MAX + 16];
    /* The encoder sends nothing the decoder would refuse. */
    ASSERT_EQ(cel__frame_encode_crash(buf, sizeof buf, 1, 0, "", 0), 0u);
    ASSERT_EQ(cel__frame_encode_crash(buf, sizeof buf, 1, 65, "", 0), 0u);
    ASSERT_EQ(cel__frame_encode_crash(buf, sizeof buf, 1, 11, "a\0b", 3), 0u);
    ASSERT_EQ(cel__frame_encode_crash(buf, sizeof buf, 1, 11, buf, CEL_CRASH_TEXT_MAX + 1), 0u);
    ASSERT_EQ(cel__frame_encode_crash(buf, CEL_FRAME_HEADER + 3, 1, 11, "ab", 2), 0u);

    static const struct {
        const char *payload;
        size_t len;
    } bad[] = {
        {"", 0},      /* no signal */
        {"11", 2},    /* unterminated */
        {"\0x", 2},   /* empty signal */
        {"0\0", 2},   /* not a signal */
        {"65\0", 3},  /* past the last one */
        {"011\0", 4}, /* not how the encoder writes it */
        {"+6\0", 3},  {"6 \0", 3}, {"123\0", 4}, {"11\0a\0b", 6}, /* a NUL in the text */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cel_frame f = {
            .type = CEL_FRAME_CRASH, .payload = bad[i].payload, .len = (uint32_t)bad[i].len};
        struct cel_frame_crash out;
        if (cel__frame_parse_crash(&f, &out) != -1)
            cel_test_fail(__FILE__, __LINE__, "bad CRASH payload %zu was accepted", i);
    }
    /* Text over the bound. */
    memcpy(buf, "11", 3);
    memset(buf + 3, 'x', CEL_CRASH_TEXT_MAX + 1);
    struct cel_frame big = {
        .type = CEL_FRAME_CRASH, .payload = buf, .len = (uint32_t)(3 + CEL_CRASH_TEXT_MAX + 1)};
    struct cel_frame_crash out;
    ASSERT_EQ(cel__frame_parse_crash(&big, &out), -1);
    /* A well-formed payload in a frame of another type. */
    struct cel_frame state = {.type = CEL_FRAME_STATE, .payload = "11\0x", .len = 4};
    ASSERT_EQ(cel__frame_parse_crash(&state, &out), -1);
}

/* The parent's end of a child socket is non-blocking: a flush of more
 * than the socket holds returns 1 with bytes pending instead of waiting
 * for a child that is itself busy writing (the large-payload deadlock). */
/* A retiring child's "did not run it" (child.c): header only. */
static void test_returned_round_trip(void)
{
    struct cel_buf b = {0};
    ASSERT_EQ(cel__framebuf_append(&b, CEL_FRAME_RETURNED, 0, 42, NULL, 0), 0);
    struct cel_frame f;
    ASSERT_EQ(cel__framebuf_next(&b, &f), 1);
    ASSERT_EQ(f.type, CEL_FRAME_RETURNED);
    ASSERT_EQ(f.seq, 42u);
    ASSERT_EQ(f.len, 0u);
    ASSERT_EQ(cel__framebuf_next(&b, &f), 0);
    cel__framebuf_release(&b);
}

static void test_flush_never_blocks(void)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ASSERT_EQ(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
    struct cel_buf out = {0};
    static char big[4 * 1024 * 1024];
    memset(big, 'x', sizeof big);
    ASSERT_EQ(cel__framebuf_append(&out, CEL_FRAME_TASK, 0, 1, big, sizeof big), 0);
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cel__framebuf_flush(&out, sv[0]), 1);
    ASSERT(cel_test_now_ms() - t0 < 1000);
    size_t pending = cel__framebuf_pending(&out);
    ASSERT(pending > 0 && pending < sizeof big + CEL_FRAME_HEADER);
    /* The peer reads; the rest goes out over further flushes, intact. */
    struct cel_buf in = {0};
    struct cel_frame f;
    int got = 0;
    for (int i = 0; i < 100000 && got == 0; i++) {
        if (cel__framebuf_pending(&out))
            ASSERT(cel__framebuf_flush(&out, sv[0]) >= 0);
        long n = cel__framebuf_fill(&in, sv[1]);
        ASSERT(n > 0);
        got = cel__framebuf_next(&in, &f);
        ASSERT(got >= 0);
    }
    ASSERT_EQ(got, 1);
    ASSERT_EQ(f.len, (uint32_t)sizeof big);
    ASSERT(memcmp(f.payload, big, sizeof big) == 0);
    ASSERT_EQ(cel__framebuf_pending(&out), 0u);
    cel__framebuf_release(&out);
    cel__framebuf_release(&in);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    TEST_RUN(test_state_round_trip);
    TEST_RUN(test_publish_round_trip);
    TEST_RUN(test_malformed_payloads);
    TEST_RUN(test_chord_round_trip);
    TEST_RUN(test_begin_round_trip);
    TEST_RUN(test_begin_malformed);
    TEST_RUN(test_crash_round_trip);
    TEST_RUN(test_crash_refused);
    TEST_RUN(test_returned_round_trip);
    TEST_RUN(test_flush_never_blocks);
    return 0;
}
