/*
 * fuzz_config.c - the config-file parser (cel__config_load_buffer).
 *
 * Properties checked for every input: a rejected file leaves the handle at
 * its defaults and explains why; an accepted file dumps (unredacted) into
 * text that loads back to exactly the same values and sections.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celeriac/config.h"
#include "celeriac/error.h"
#include "core/config_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const section_keys[] = {
    "task", "args",  "kwargs",   "cron",    "every",    "at",      "when",
    "tz",   "queue", "priority", "expires", "catch_up", "enabled", NULL,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    cel_config *cfg = cel_config_new();
    if (!cfg)
        return 0;
    int rc = cel__config_load_buffer(cfg, (const char *)data, size, "fuzz.conf");
    if (rc != CEL_OK) {
        if (cel_config_errmsg(cfg)[0] == '\0')
            abort();
        for (size_t i = 0; i < cel__config_option_count(); i++)
            if (strcmp(cel_config_origin(cfg, cel__config_option_key(i)), "default") != 0)
                abort();
        if (cel_config_section_count(cfg) != 0)
            abort();
        cel_config_free(cfg);
        return 0;
    }

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        cel__config_write(cfg, f, false);
        fclose(f);
        cel_config *back = cel_config_new();
        if (back) {
            if (cel__config_load_buffer(back, text, len, "dump") != CEL_OK)
                abort();
            for (size_t i = 0; i < cel__config_option_count(); i++) {
                const char *k = cel__config_option_key(i);
                if (strcmp(cel_config_get(cfg, k), cel_config_get(back, k)) != 0)
                    abort();
                (void)cel_config_get_int(cfg, k);
                (void)cel_config_get_double(cfg, k);
            }
            if (cel_config_section_count(back) != cel_config_section_count(cfg))
                abort();
            for (size_t i = 0; i < cel_config_section_count(cfg); i++) {
                if (strcmp(cel_config_section_name(cfg, i), cel_config_section_name(back, i)) != 0)
                    abort();
                for (const char *const *k = section_keys; *k; k++) {
                    const char *a = cel_config_section_get(cfg, i, *k);
                    const char *b = cel_config_section_get(back, i, *k);
                    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
                        abort();
                }
            }
            cel_config_free(back);
        }
        free(text);
    }
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        cel_config_dump(cfg, null);
        fclose(null);
    }
    cel_config_free(cfg);
    return 0;
}
