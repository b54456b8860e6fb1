/*
 * fuzz_phrase.c - English schedules ("every monday at 8am"), typed by
 * people into config files and the CLI.
 *
 * Besides "no crash": a refusal explains itself and points inside the
 * text, and an accepted phrase renders to English that parses back to
 * an equal spec (and renders the same again).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schedule/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    char text[513];
    memcpy(text, data, size);
    text[size] = '\0';
    struct cel_sched_spec s;
    struct cel_sched_error e = {{0}, 0, 0};
    if (cel__sched_parse_phrase(text, &s, &e) != 0) {
        if (!e.msg[0] || e.pos > strlen(text) || e.pos + e.len > strlen(text))
            abort();
        return 0;
    }
    char english[4096], again[4096];
    size_t n = cel__sched_render(&s, english, sizeof english);
    if (n == 0 || n >= sizeof english)
        abort();
    struct cel_sched_spec back;
    if (cel__sched_parse_phrase(english, &back, &e) != 0 || !cel__sched_spec_equal(&s, &back))
        abort();
    cel__sched_render(&back, again, sizeof again);
    if (strcmp(english, again) != 0)
        abort();
    return 0;
}
