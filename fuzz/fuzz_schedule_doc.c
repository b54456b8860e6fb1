/*
 * fuzz_schedule_doc.c - a periodic entry's stored document, as beat and
 * `celeriac schedule` read it back from the store. Anything that can
 * write the store (a Redis client, an old version, a hand edit of the
 * SQLite file) can put any bytes there, and beat must refuse them with a
 * reason rather than crash.
 *
 * Besides "no crash": a refusal says why; an accepted document writes
 * back to a document that reads back to the same schedule.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/schedule_doc.h"
#include "core/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *doc = malloc(size + 1);
    if (!doc)
        return 0;
    memcpy(doc, data, size);
    doc[size] = '\0';
    struct cel_schedule_def d;
    char why[256] = "";
    int rc = cel__schedule_def_parse(doc, size, "UTC", &d, why, sizeof why);
    if (rc != 0 && !why[0])
        abort();
    if (rc == 0) {
        struct cel_buf out = {0};
        char why2[256] = "";
        /* An `at` already past is refused on write, not on read. */
        int wrc =
            cel__schedule_doc_write(&d.e, d.origin, d.created_s, "UTC", &out, why2, sizeof why2);
        if (wrc == 0) {
            struct cel_schedule_def back;
            if (cel__schedule_def_parse(cel__buf_bytes(&out), cel__buf_size(&out), "UTC", &back,
                                        why2, sizeof why2) != 0 ||
                !cel__sched_spec_equal(&d.spec, &back.spec) || strcmp(d.e.task, back.e.task) != 0)
                abort();
            cel__schedule_def_clear(&back);
        } else if (!why2[0]) {
            abort();
        }
        cel__buf_release(&out);
    }
    cel__schedule_def_clear(&d);
    free(doc);
    return 0;
}
