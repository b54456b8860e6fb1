/*
 * fuzz_json_scan.c - the member walk reads every task envelope a worker
 * with events takes, hostile ones too. Every span it hands back must lie
 * inside the input, and a walk that succeeds on valid JSON must agree
 * with the parser on the members it finds.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/json_parse.h"
#include "core/json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct check {
    const char *start;
    size_t size;
    size_t n;
};

static bool inside(const struct cel_json_member *m, void *ud)
{
    struct check *c = ud;
    if (m->key < c->start || m->key + m->key_len > c->start + c->size || m->value < c->start ||
        m->value + m->value_len > c->start + c->size || m->value_len == 0)
        abort();
    c->n++;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct check c = {(const char *)data, size, 0};
    int rc = cel__json_members((const char *)data, size, inside, &c);
    json_t *v = cel__json_parse((const char *)data, size, 0, NULL, 0);
    /* Valid JSON objects walk, with as many members as keys written
     * (the parser keeps the last of a repeated key). */
    if (json_is_object(v) && (rc != 0 || c.n < json_object_size(v)))
        abort();
    json_decref(v);
    return 0;
}
