/*
 * result_tree.c - cel_result_wait_tree(): waiting for a task and every
 * task below it (celeriac/canvas.h).
 *
 * The tree is only known as it unfolds: a task's children are written
 * into its meta when its outcome is stored (a chain's next link, its
 * callbacks, a chord header it started), so a node's children can be
 * read only once the node is ready. The walk therefore waits for a node,
 * then pushes the children its stored meta lists, until nothing is left:
 * depth first, with one deadline for the whole walk. Nodes already ready
 * cost one read each; the waiting happens on the deepest pending ones.
 *
 * A failed or revoked node is ready (Celery's READY_STATES) and its
 * children are whatever it recorded before failing: a chain link that
 * failed never sent its continuation, so that continuation is not part of
 * the tree and is not waited for.
 */
#include <stdlib.h>
#include <string.h>

#include "celeriac/canvas.h"
#include "client/client_internal.h"
#include "core/clock.h"

/* A producer's cycle or a runaway tree must end the walk, not hang it. */
#define TREE_MAX_NODES 100000

struct walk {
    cel_client *c;
    struct cel_result **stack; /* owned handles still to visit */
    size_t n, cap;
    size_t visited;
};

static int push(struct walk *w, struct cel_result *node)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct cel_result **s = realloc(w->stack, cap * sizeof *s);
        if (!s) {
            cel_result_free(node);
            return cel__err(&w->c->err, CEL_ENOMEM, "out of memory");
        }
        w->stack = s;
        w->cap = cap;
    }
    w->stack[w->n++] = node;
    return CEL_OK;
}

/* Pushes what hangs below `node`: a group's members, a task's children. */
static int push_below(struct walk *w, const struct cel_result *node)
{
    size_t n = node->members ? node->nmembers : cel_result_child_count(node);
    for (size_t i = 0; i < n; i++) {
        struct cel_result *k = NULL;
        int rc;
        if (node->members)
            rc = (k = cel__result_new(w->c, node->members[i]))
                     ? CEL_OK
                     : cel__err(&w->c->err, CEL_ENOMEM, "out of memory");
        else
            rc = cel_result_child(node, i, &k);
        if (rc == CEL_OK)
            rc = push(w, k);
        if (rc != CEL_OK)
            return rc;
    }
    return CEL_OK;
}

/* Milliseconds left before `deadline_us` (0 once past); -1 for none. */
static int64_t left_ms(int64_t deadline_us)
{
    if (deadline_us < 0)
        return -1;
    int64_t left = (deadline_us - cel__mono_us()) / 1000;
    return left < 0 ? 0 : left;
}

/* Waits for one task node (not a group) and pushes its children. */
static int visit(struct walk *w, struct cel_result *node, int64_t deadline_us,
                 const struct cel_result *root, int64_t timeout_ms)
{
    if (++w->visited > TREE_MAX_NODES)
        return cel__err(&w->c->err, CEL_EPROTO,
                        "the tree under '%s' has more than %d tasks (a cycle in the children "
                        "recorded?)",
                        root->id, TREE_MAX_NODES);
    if (node->members)
        return push_below(w, node);
    int rc = cel_result_wait(node, left_ms(deadline_us));
    if (rc == CEL_ETIMEDOUT && node != root)
        return cel__err(&w->c->err, CEL_ETIMEDOUT,
                        "timed out after %lld ms waiting for the tree under '%s': task '%s' is "
                        "still %s",
                        (long long)timeout_ms, root->id, node->id, cel_result_state_name(node));
    if (rc != CEL_OK)
        return rc;
    return push_below(w, node);
}

int cel_result_wait_tree(cel_result *r, int64_t timeout_ms)
{
    if (!r)
        return CEL_EINVAL;
    struct walk w = {r->client, NULL, 0, 0, 0};
    int64_t deadline_us = timeout_ms >= 0 ? cel__mono_us() + timeout_ms * 1000 : -1;
    int rc = visit(&w, r, deadline_us, r, timeout_ms);
    while (rc == CEL_OK && w.n > 0) {
        struct cel_result *node = w.stack[--w.n];
        rc = visit(&w, node, deadline_us, r, timeout_ms);
        cel_result_free(node);
    }
    while (w.n > 0)
        cel_result_free(w.stack[--w.n]);
    free(w.stack);
    /* A group's own outcome comes from its members, all ready by now. */
    if (rc == CEL_OK && r->members)
        rc = cel_result_refresh(r);
    return rc;
}
