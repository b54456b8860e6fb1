/* frame.c - see frame.h. */
#include "worker/frame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/execute.h"

void cel__frame_header(unsigned char out[CEL_FRAME_HEADER], uint8_t type, uint8_t status,
                       uint64_t seq, uint32_t len)
{
    uint16_t reserved = 0;
    memcpy(out, &len, 4);
    out[4] = type;
    out[5] = status;
    memcpy(out + 6, &reserved, 2);
    memcpy(out + 8, &seq, 8);
}

long cel__frame_decode(const unsigned char *buf, size_t n, struct cel_frame *f)
{
    if (n < CEL_FRAME_HEADER)
        return 0;
    uint32_t len;
    uint16_t reserved;
    memcpy(&len, buf, 4);
    memcpy(&reserved, buf + 6, 2);
    if (buf[4] < CEL_FRAME_TASK || buf[4] > CEL_FRAME_TYPE_LAST || reserved != 0 ||
        len > CEL_FRAME_MAX)
        return -1;
    if (n - CEL_FRAME_HEADER < len)
        return 0;
    f->type = buf[4];
    f->status = buf[5];
    memcpy(&f->seq, buf + 8, 8);
    f->payload = (const char *)buf + CEL_FRAME_HEADER;
    f->len = len;
    return (long)(CEL_FRAME_HEADER + len);
}

static int reserve(struct cel_buf *b, size_t extra)
{
    return cel__buf_reserve(b, extra) == CEL_OK ? 0 : -1;
}

long cel__framebuf_fill(struct cel_buf *b, int fd)
{
    if (reserve(b, 16384) != 0) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t got;
    do {
        got = read(fd, b->data + b->len, b->cap - b->len - 1);
    } while (got < 0 && errno == EINTR);
    if (got > 0)
        b->len += (size_t)got;
    return (long)got;
}

int cel__framebuf_next(struct cel_buf *b, struct cel_frame *f)
{
    long used = cel__frame_decode((const unsigned char *)b->data + b->off, b->len - b->off, f);
    if (used < 0)
        return -1;
    if (used == 0) {
        /* A frame larger than the buffer: make room so the next fill can
         * complete it. */
        if (b->len - b->off >= CEL_FRAME_HEADER) {
            uint32_t len;
            memcpy(&len, b->data + b->off, 4);
            if (reserve(b, CEL_FRAME_HEADER + len) != 0)
                return -1;
        }
        return 0;
    }
    cel__buf_consume(b, (size_t)used);
    return 1;
}

int cel__framebuf_append(struct cel_buf *b, uint8_t type, uint8_t status, uint64_t seq,
                         const char *payload, size_t len)
{
    if (len > CEL_FRAME_MAX || reserve(b, CEL_FRAME_HEADER + len) != 0)
        return -1;
    cel__frame_header((unsigned char *)b->data + b->len, type, status, seq, (uint32_t)len);
    if (len)
        memcpy(b->data + b->len + CEL_FRAME_HEADER, payload, len);
    b->len += CEL_FRAME_HEADER + len;
    return 0;
}

int cel__framebuf_flush(struct cel_buf *b, int fd)
{
    while (b->off < b->len) {
        ssize_t n = write(fd, b->data + b->off, b->len - b->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -1;
        }
        cel__buf_consume(b, (size_t)n);
    }
    cel__buf_reset(b);
    return 0;
}

size_t cel__framebuf_pending(const struct cel_buf *b)
{
    return b->len - b->off;
}

void cel__framebuf_release(struct cel_buf *b)
{
    cel__buf_release(b);
}

/* Next NUL-terminated field of [*p, end), or NULL. */
static const char *next_field(const char **p, const char *end)
{
    const char *start = *p;
    const char *nul = memchr(start, '\0', (size_t)(end - start));
    if (!nul)
        return NULL;
    *p = nul + 1;
    return start;
}

/* Appends fields (each NUL-terminated) and a tail of raw bytes as one
 * frame. */
static int append_fields(struct cel_buf *b, uint8_t type, uint64_t seq, const char *const *fields,
                         size_t nfields, const char *tail, size_t tail_len)
{
    size_t len = tail_len;
    for (size_t i = 0; i < nfields; i++)
        len += strlen(fields[i]) + 1;
    if (len > CEL_FRAME_MAX || reserve(b, CEL_FRAME_HEADER + len) != 0)
        return -1;
    cel__frame_header((unsigned char *)b->data + b->len, type, 0, seq, (uint32_t)len);
    char *p = b->data + b->len + CEL_FRAME_HEADER;
    for (size_t i = 0; i < nfields; i++) {
        size_t n = strlen(fields[i]) + 1;
        memcpy(p, fields[i], n);
        p += n;
    }
    if (tail_len)
        memcpy(p, tail, tail_len);
    b->len += CEL_FRAME_HEADER + len;
    return 0;
}

int cel__frame_append_state(struct cel_buf *b, uint64_t seq, const char *state, const char *meta,
                            size_t meta_len)
{
    const char *fields[] = {state};
    return append_fields(b, CEL_FRAME_STATE, seq, fields, 1, meta, meta_len);
}

int cel__frame_append_publish(struct cel_buf *b, uint64_t seq, const struct cel_frame_publish *p)
{
    char prio[16], due[24];
    snprintf(prio, sizeof prio, "%d", p->priority);
    snprintf(due, sizeof due, "%" PRId64, p->due_us);
    const char *fields[] = {p->queue, prio, due, p->task_id ? p->task_id : ""};
    return append_fields(b, CEL_FRAME_PUBLISH, seq, fields, 4, p->body, p->len);
}

int cel__frame_parse_state(const struct cel_frame *f, struct cel_frame_state *out)
{
    const char *p = f->payload, *end = f->payload + f->len;
    if (f->type != CEL_FRAME_STATE || !(out->state = next_field(&p, end)) || !*out->state)
        return -1;
    out->meta = p;
    out->meta_len = (size_t)(end - p);
    return 0;
}

int cel__frame_parse_publish(const struct cel_frame *f, struct cel_frame_publish *out)
{
    const char *p = f->payload, *end = f->payload + f->len;
    if (f->type != CEL_FRAME_PUBLISH)
        return -1;
    const char *queue = next_field(&p, end), *prio = next_field(&p, end);
    const char *due = next_field(&p, end), *id = next_field(&p, end);
    if (!queue || !prio || !due || !id || !*queue)
        return -1;
    char *e1, *e2;
    long pr = strtol(prio, &e1, 10);
    long long du = strtoll(due, &e2, 10);
    if (*e1 || *e2 || e1 == prio || e2 == due || pr < 0 || pr > 255 || du < 0)
        return -1;
    out->queue = queue;
    out->priority = (int)pr;
    out->due_us = (int64_t)du;
    out->task_id = id;
    out->body = p;
    out->len = (size_t)(end - p);
    return 0;
}

int cel__frame_append_begin(struct cel_buf *b, uint64_t seq, const struct cel_frame_begin *p)
{
    char hard[40], soft[40], flags[16];
    snprintf(hard, sizeof hard, "%.17g", p->time_limit);
    snprintf(soft, sizeof soft, "%.17g", p->soft_time_limit);
    snprintf(flags, sizeof flags, "%u", p->flags);
    const char *fields[] = {hard, soft, flags};
    return append_fields(b, CEL_FRAME_BEGIN, seq, fields, 3, NULL, 0);
}

/* A limit as the child wrote it: finite, not negative, below a year. */
static int parse_limit(const char *s, double *out)
{
    char *e;
    double v = strtod(s, &e);
    if (e == s || *e || !(v >= 0 && v < 366.0 * 86400))
        return -1;
    *out = v;
    return 0;
}

int cel__frame_parse_begin(const struct cel_frame *f, struct cel_frame_begin *out)
{
    const char *p = f->payload, *end = f->payload + f->len;
    if (f->type != CEL_FRAME_BEGIN)
        return -1;
    const char *hard = next_field(&p, end), *soft = next_field(&p, end);
    const char *flags = next_field(&p, end);
    if (!hard || !soft || !flags || p != end || parse_limit(hard, &out->time_limit) != 0 ||
        parse_limit(soft, &out->soft_time_limit) != 0)
        return -1;
    char *e;
    unsigned long fl = strtoul(flags, &e, 10);
    if (e == flags || *e || fl > 7)
        return -1;
    out->flags = (unsigned)fl;
    return 0;
}

/* ---- chords ---- */

/* A decimal as the encoder writes it: optional '-', digits, no leading
 * zero, within [lo, INT32_MAX]. */
static int parse_int_field(const char *s, long lo, int *out)
{
    const char *d = *s == '-' ? s + 1 : s;
    if (!*d || (d[0] == '0' && (d[1] || d != s)) || strspn(d, "0123456789") != strlen(d) ||
        strlen(d) > 10)
        return -1;
    long long v = strtoll(s, NULL, 10);
    if (v < lo || v > INT32_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

int cel__frame_append_chord_size(struct cel_buf *b, uint64_t seq, const char *group_id, int size)
{
    char num[16];
    snprintf(num, sizeof num, "%d", size);
    if (!*group_id || size < 0)
        return -1;
    const char *fields[] = {group_id, num};
    return append_fields(b, CEL_FRAME_CHORD_SIZE, seq, fields, 2, NULL, 0);
}

int cel__frame_parse_chord_size(const struct cel_frame *f, const char **group_id, int *size)
{
    const char *p = f->payload, *end = f->payload + f->len;
    if (f->type != CEL_FRAME_CHORD_SIZE)
        return -1;
    const char *gid = next_field(&p, end), *num = next_field(&p, end);
    if (!gid || !num || p != end || !*gid || parse_int_field(num, 0, size) != 0)
        return -1;
    *group_id = gid;
    return 0;
}

int cel__frame_append_chord_join(struct cel_buf *b, uint64_t seq, const struct cel_chord_join *j)
{
    char index[16], blen[24];
    snprintf(index, sizeof index, "%d", j->group_index < 0 ? -1 : j->group_index);
    snprintf(blen, sizeof blen, "%zu", j->body_len);
    if (!j->group_id || !*j->group_id || !j->task_id || !*j->task_id || !j->entry_len ||
        !j->body_len || j->body_len > CEL_FRAME_MAX || j->body_len + j->entry_len > CEL_FRAME_MAX ||
        memchr(j->body, '\0', j->body_len) || memchr(j->entry, '\0', j->entry_len))
        return -1;
    const char *fields[] = {j->group_id, index, j->task_id, j->root_id ? j->root_id : "", blen};
    /* The body and the entry follow the fields back to back. */
    size_t start = b->len;
    if (append_fields(b, CEL_FRAME_CHORD_JOIN, seq, fields, 5, j->body, j->body_len) != 0)
        return -1;
    uint32_t len;
    memcpy(&len, b->data + start, 4);
    if (len + j->entry_len > CEL_FRAME_MAX || reserve(b, j->entry_len) != 0) {
        b->len = start;
        return -1;
    }
    memcpy(b->data + b->len, j->entry, j->entry_len);
    b->len += j->entry_len;
    len += (uint32_t)j->entry_len;
    memcpy(b->data + start, &len, 4);
    return 0;
}

int cel__frame_parse_chord_join(const struct cel_frame *f, struct cel_chord_join *out)
{
    const char *p = f->payload, *end = f->payload + f->len;
    if (f->type != CEL_FRAME_CHORD_JOIN)
        return -1;
    const char *gid = next_field(&p, end), *index = next_field(&p, end);
    const char *id = next_field(&p, end), *root = next_field(&p, end);
    const char *blen = next_field(&p, end);
    int body_len;
    if (!gid || !index || !id || !root || !blen || !*gid || !*id ||
        parse_int_field(index, -1, &out->group_index) != 0 ||
        parse_int_field(blen, 1, &body_len) != 0 || (size_t)body_len >= (size_t)(end - p) ||
        memchr(p, '\0', (size_t)(end - p)))
        return -1;
    out->group_id = gid;
    out->task_id = id;
    out->root_id = *root ? root : NULL;
    out->body = p;
    out->body_len = (size_t)body_len;
    out->entry = p + body_len;
    out->entry_len = (size_t)(end - p) - (size_t)body_len;
    return 0;
}

/* ---- the CRASH frame ---- */

size_t cel__frame_encode_crash(char *out, size_t cap, uint64_t seq, int signo, const char *text,
                               size_t len)
{
    if (signo < 1 || signo > 64 || len > CEL_CRASH_TEXT_MAX || (len && memchr(text, '\0', len)))
        return 0;
    char num[3];
    size_t digits = 0;
    if (signo >= 10)
        num[digits++] = (char)('0' + signo / 10);
    num[digits++] = (char)('0' + signo % 10);
    num[digits++] = '\0';
    size_t payload = digits + len;
    if (cap < CEL_FRAME_HEADER + payload)
        return 0;
    cel__frame_header((unsigned char *)out, CEL_FRAME_CRASH, 0, seq, (uint32_t)payload);
    memcpy(out + CEL_FRAME_HEADER, num, digits);
    /* memmove: the child's handler formats the text in place. */
    if (len)
        memmove(out + CEL_FRAME_HEADER + digits, text, len);
    return CEL_FRAME_HEADER + payload;
}

int cel__frame_parse_crash(const struct cel_frame *f, struct cel_frame_crash *out)
{
    const char *p = f->payload, *end = f->payload + f->len;
    if (f->type != CEL_FRAME_CRASH)
        return -1;
    const char *num = next_field(&p, end);
    size_t digits = num ? strlen(num) : 0;
    /* Exactly what the encoder writes: 1-2 digits, no sign, no leading 0. */
    if (!num || digits < 1 || digits > 2 || num[0] < '1' || num[0] > '9' ||
        (digits == 2 && (num[1] < '0' || num[1] > '9')))
        return -1;
    int signo = digits == 2 ? (num[0] - '0') * 10 + (num[1] - '0') : num[0] - '0';
    size_t len = (size_t)(end - p);
    if (signo > 64 || len > CEL_CRASH_TEXT_MAX || (len && memchr(p, '\0', len)))
        return -1;
    out->signo = signo;
    out->text = p;
    out->len = len;
    return 0;
}
