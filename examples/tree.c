/*
 * tree.c - a task tree with the C workflow API: a node's children start
 * only after it finishes, siblings run in parallel.
 *
 *                 A  add(1, 1)                 = 2
 *          +------+------+
 *         B1  mul(_, 10)   B2  mul(_, 100)     = 20, 200
 *        +--+--+         +--+--+
 *      C1a    C1b      C2a    C2b  add(_, k)   = 21, 22, 203, 204
 *
 * Each node gets its parent's result as its first argument. A node with
 * children is the chain (node, group(children...)), applied recursively,
 * so the whole tree is one workflow sent with one cel_client_apply():
 *
 *     chain(A, group(chain(B1, group(C1a, C1b)), chain(B2, group(C2a, C2b))))
 *
 * Every node gets a task id chosen here, so the program can wait for each
 * one and print the tree with its values. Start a worker first (same
 * directory, so both use ./celeriac.db), with at least two processes so
 * siblings really run side by side:
 *
 *     celeriac worker -A build/examples/libtasks.so -c 2 &
 *     build/examples/tree
 *
 * The configuration comes from the defaults plus CELERIAC_* variables,
 * e.g. CELERIAC_BROKER_URL=redis://localhost:6379/0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <celeriac.h>

struct node {
    const char *label;
    const char *task;
    const char *args; /* JSON: the parent's result is prepended */
    int parent;       /* index in TREE, -1 for the root */
    char id[37];
};

static struct node TREE[] = {
    {"A", "tasks.add", "[1, 1]", -1, ""}, {"B1", "tasks.mul", "[10]", 0, ""},
    {"B2", "tasks.mul", "[100]", 0, ""},  {"C1a", "tasks.add", "[1]", 1, ""},
    {"C1b", "tasks.add", "[2]", 1, ""},   {"C2a", "tasks.add", "[3]", 2, ""},
    {"C2b", "tasks.add", "[4]", 2, ""},
};
#define NNODES (sizeof TREE / sizeof TREE[0])

/* A random UUID4 text (Celery's task id shape). 0, or -1 without
 * /dev/urandom. */
static int make_id(char out[37])
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f)
        return -1;
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    if (got != sizeof b)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

/* The subtree under node i as one signature: the node alone, or
 * chain(node, group(subtrees of its children)). NULL on failure (the
 * builders take what they are given, so nothing leaks). */
static cel_sig *subtree(size_t i)
{
    cel_sig *self = cel_sig_new(TREE[i].task, TREE[i].args, NULL);
    if (self && cel_sig_set_task_id(self, TREE[i].id) != CEL_OK) {
        cel_sig_free(self);
        return NULL;
    }
    cel_sig *kids[NNODES];
    size_t nkids = 0;
    for (size_t k = 0; k < NNODES; k++)
        if (TREE[k].parent == (int)i)
            kids[nkids++] = subtree(k);
    if (nkids == 0)
        return self;
    cel_sig *steps[2] = {self, cel_group(kids, nkids)};
    return cel_chain(steps, 2);
}

static int depth(size_t i)
{
    return TREE[i].parent < 0 ? 0 : 1 + depth((size_t)TREE[i].parent);
}

/* Waits for node i (up to timeout_ms) and prints it, then its children.
 * 0 when the whole subtree succeeded. */
static int print_subtree(cel_client *c, size_t i, int64_t timeout_ms)
{
    cel_result *r = NULL;
    int failed = 0;
    if (cel_client_result(c, TREE[i].id, &r) != CEL_OK ||
        cel_result_wait(r, timeout_ms) != CEL_OK) {
        printf("%*s%s  %s: no result (is a worker running?)\n", 4 * depth(i), "", TREE[i].label,
               TREE[i].id);
        failed = 1;
    } else if (cel_result_state(r) != CEL_STATE_SUCCESS) {
        printf("%*s%s  %s %s: %s %s\n", 4 * depth(i), "", TREE[i].label, TREE[i].task,
               cel_result_state_name(r), cel_result_exc_type(r) ? cel_result_exc_type(r) : "",
               cel_result_exc_message(r) ? cel_result_exc_message(r) : "");
        failed = 1;
    } else {
        printf("%*s%s  %s %s%s = %s\n", 4 * depth(i), "", TREE[i].label, TREE[i].task,
               TREE[i].parent < 0 ? "" : "parent's result + ", TREE[i].args,
               cel_result_value_json(r));
    }
    cel_result_free(r);
    for (size_t k = 0; k < NNODES; k++)
        if (TREE[k].parent == (int)i)
            failed |= print_subtree(c, k, timeout_ms);
    return failed;
}

int main(void)
{
    int status = 1;
    cel_config *cfg = cel_config_new();
    cel_client *client = NULL;
    cel_sig *tree = NULL;
    if (!cfg)
        goto out;
    if (cel_config_load_env(cfg) != CEL_OK) {
        fprintf(stderr, "bad configuration: %s\n", cel_config_errmsg(cfg));
        goto out;
    }
    for (size_t i = 0; i < NNODES; i++)
        if (make_id(TREE[i].id) != 0) {
            fprintf(stderr, "cannot read /dev/urandom\n");
            goto out;
        }
    tree = subtree(0);
    if (!tree) {
        fprintf(stderr, "cannot build the tree: %s\n", cel_sig_errmsg());
        goto out;
    }
    client = cel_client_new(cfg);
    if (!client)
        goto out;
    /* The whole tree leaves in one message (A, carrying the rest in its
     * chain): no handle is needed, each node is waited for by its id. */
    if (cel_client_connect(client) != CEL_OK || cel_client_apply(client, tree, NULL) != CEL_OK) {
        fprintf(stderr, "%s\n", cel_client_errmsg(client));
        goto out;
    }
    status = print_subtree(client, 0, 10000);
out:
    cel_sig_free(tree);
    cel_client_free(client);
    cel_config_free(cfg);
    return status;
}
