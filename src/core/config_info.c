/*
 * config_info.c - the public view of the option table (celeriac/config.h:
 * cel_config_option_count, cel_config_option_at, cel_config_option_find,
 * cel_config_get_effective), so programs outside the library, the
 * `celeriac` CLI first, need none of config_table.h.
 *
 * The environment name and the "expected" text of a row are derived from
 * it, not stored in it; they are made once, on first use, into static
 * arrays, so every string handed out is static as the header promises.
 */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "celeriac/config.h"
#include "celeriac/error.h"
#include "core/config_table.h"
#include "core/sized_struct.h"

/* The first published layout ends with empty_ok; later fields are
 * appended after it, so this stays the minimum a caller may pass. */
#define INFO_MIN_SIZE (offsetof(cel_config_option_info, empty_ok) + sizeof(int))

/* Keys are under 64 bytes (config.c refuses longer ones), so the name is
 * under 64 + "CELERIAC_". The expected text of the longest enum fits in
 * 256 with room to spare; a longer one would be cut, never overflow. */
static char env_names[CEL__CONFIG_OPTION_MAX][80];
static char expected[CEL__CONFIG_OPTION_MAX][256];
static pthread_once_t derived_once = PTHREAD_ONCE_INIT;

static void make_derived(void)
{
    for (size_t i = 0; i < cel__config_option_count(); i++) {
        cel__config_env_name(cel__config_option_at(i)->key, env_names[i], sizeof env_names[i]);
        cel__config_option_expected(i, expected[i], sizeof expected[i]);
    }
}

size_t cel_config_option_count(void)
{
    return cel__config_option_count();
}

int cel_config_option_at(size_t i, cel_config_option_info *out)
{
    if (!out || out->struct_size < INFO_MIN_SIZE || out->struct_size > CEL_SIZED_STRUCT_MAX)
        return CEL_EINVAL;
    const struct cel__config_option *o = cel__config_option_at(i);
    if (!o)
        return CEL_ENOTFOUND;
    pthread_once(&derived_once, make_derived);
    cel_config_option_info info = {
        .struct_size = out->struct_size,
        .short_flag = (unsigned char)o->cli_short,
        .key = o->key,
        .type = cel__config_type_name(o->type),
        .default_value = o->def,
        .env = env_names[i],
        .long_flag = o->cli_long,
        .help = o->help,
        .expected = expected[i],
        .secret = (o->flags & CEL__CFG_SECRET) != 0,
        .empty_ok = (o->flags & CEL__CFG_EMPTY_OK) != 0,
    };
    /* Only the caller's layout is written: an older caller's struct ends
     * before ours, and a newer caller's fields past ours keep their
     * initialiser's zero. */
    memcpy(out, &info, out->struct_size < sizeof info ? out->struct_size : sizeof info);
    return CEL_OK;
}

int cel_config_option_find(const char *key, size_t *index)
{
    int i = cel__config_find(key);
    if (i < 0)
        return CEL_EUNKNOWNKEY;
    if (index)
        *index = (size_t)i;
    return CEL_OK;
}

int cel_config_get_effective(const cel_config *cfg, const char *key, char *buf, size_t len)
{
    if (!cfg || !buf)
        return CEL_EINVAL;
    return cel__config_effective(cfg, key, buf, len);
}
