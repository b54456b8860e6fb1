/*
 * fuzz_cron.c - cron expressions, intervals and date-times (they come
 * from config files and from `celeriac schedule add`).
 *
 * Besides "no crash": a refusal explains itself and points inside the
 * text; an accepted cron sets no bit outside its fields' ranges; and
 * every accepted spec renders to English that parses back equal.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schedule/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *text, int rc, const struct cel_sched_spec *s,
                  const struct cel_sched_error *e)
{
    if (rc != 0) {
        if (!e->msg[0] || e->pos > strlen(text) || e->pos + e->len > strlen(text))
            abort();
        return;
    }
    if (s->kind == CEL_SCHED_CRON) {
        const struct cel_sched_cron *c = &s->cron;
        if (!c->seconds || c->seconds >> 60 || !c->minutes || c->minutes >> 60 || !c->hours ||
            c->hours >> 24 || (c->mdays & 1) || (!c->mdays && !c->last_mday) || !c->months ||
            (c->months & 1) || c->months >> 13 || !c->wdays || c->wdays >> 7)
            abort();
    }
    if (s->kind == CEL_SCHED_INTERVAL && s->every_s <= 0)
        abort();
    char english[4096];
    size_t n = cel__sched_render(s, english, sizeof english);
    if (n == 0 || n >= sizeof english)
        abort();
    struct cel_sched_spec back;
    struct cel_sched_error e2;
    if (cel__sched_parse_phrase(english, &back, &e2) != 0 || !cel__sched_spec_equal(s, &back))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    char text[513];
    memcpy(text, data, size);
    text[size] = '\0';
    static const char *const kinds[] = {"cron", "every", "at"};
    for (size_t k = 0; k < 3; k++) {
        struct cel_sched_spec s;
        struct cel_sched_error e = {{0}, 0, 0};
        int rc = cel__sched_parse(kinds[k], text, &s, &e);
        check(text, rc, &s, &e);
    }
    return 0;
}
