/*
 * config_section.h - the [schedule.NAME] blocks of a config file, kept
 * inside cel_config (config.c) as written: a name, where it starts, and
 * its key/value lines. What the keys mean is the schedule API's business;
 * here only the set of keys and the shape of the name are checked, so a
 * typo is reported with its file and line when the file is loaded.
 */
#ifndef CEL_CORE_CONFIG_SECTION_H
#define CEL_CORE_CONFIG_SECTION_H

#include <stdbool.h>
#include <stddef.h>

struct cel__config_section {
    char *name;   /* "schedule.nightly" */
    char *origin; /* "file:12" */
    char **keys;  /* canonical: lower case, '_' */
    char **values;
    size_t n;
};

struct cel__config_sections {
    struct cel__config_section *v;
    size_t n;
};

/* Reads a "[kind.NAME]" header line (s[n], no newline). Returns 0 when the
 * line is not a header, 1 after appending the section (origin copied), or
 * CEL_ECONFIG/CEL_ENOMEM with the reason in err. */
int cel__config_section_header(struct cel__config_sections *s, const char *line, size_t n,
                               const char *origin, char *err, size_t errlen);

/* Adds key = value to the last section: CEL_EUNKNOWNKEY (with the closest
 * key), CEL_ECONFIG for a repeated key, CEL_ENOMEM. */
int cel__config_section_set(struct cel__config_sections *s, const char *key, const char *value,
                            char *err, size_t errlen);

/* A section or entry name: 1..200 bytes of letters, digits and _ . : -
 * (the rule of cel_schedule_entry.name). */
bool cel__config_name_ok(const char *name, size_t len);

const char *cel__config_section_value(const struct cel__config_section *sec, const char *key);

/* Deep copy of src into *dst (empty first): CEL_OK or CEL_ENOMEM. */
int cel__config_sections_copy(struct cel__config_sections *dst,
                              const struct cel__config_sections *src);
void cel__config_sections_clear(struct cel__config_sections *s);

#endif
