/*
 * test_task_tree.c - a three-level task tree, sent as one workflow with
 * the C API (celeriac/canvas.h) to a real worker on SQLite (issue 8,
 * "Task trees"), as examples/tree.c builds it:
 *
 *     chain(A, group(chain(B1, group(C1a, C1b)), chain(B2, group(C2a, C2b))))
 *
 * Every node is test.stamp(label, 0.3) (immutable), which appends its
 * wall-clock start and end to $CEL_TEST_TREE_FILE. From those stamps:
 *  - every node ran exactly once;
 *  - every node started after its parent ended (children start only
 *    after their parent finishes);
 *  - the siblings B1 and B2 overlapped in time (-c 4: siblings run in
 *    parallel, not one after the other);
 * and the node results (waited for by their pre-assigned ids) are the
 * labels, so each node's own result was stored too.
 *
 * cel_result_wait_tree() on the root of the same tree returns only once
 * every node has ended (all seven stamps are written, each before the
 * return), returns at once for a chain cut short by a failure (its
 * continuation never appears), and gives CEL_ETIMEDOUT on time while a
 * deep node still runs.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <celeriac.h>

#include "task_batch.h"
#include "testing.h"
#include "worker_proc.h"

#define WAIT_MS   30000
#define STAMP_S   "0.3"
#define TREE_FILE "tree.txt"

struct node {
    const char *label;
    int parent; /* index, -1 for the root */
    char id[37];
    long long start_us, end_us;
    int runs;
};

static struct node N[] = {
    {"A", -1, "", 0, 0, 0},  {"B1", 0, "", 0, 0, 0},  {"B2", 0, "", 0, 0, 0},
    {"C1a", 1, "", 0, 0, 0}, {"C1b", 1, "", 0, 0, 0}, {"C2a", 2, "", 0, 0, 0},
    {"C2b", 2, "", 0, 0, 0},
};
#define NN (sizeof N / sizeof N[0])

/* node(i) = test.stamp(label), immutable, with a fixed id; a node with
 * children is chain(node, group(children)). */
static cel_sig *subtree(size_t i)
{
    char args[64];
    snprintf(args, sizeof args, "[\"%s\", " STAMP_S "]", N[i].label);
    snprintf(N[i].id, sizeof N[i].id, "7ee00000-0000-4000-8000-%012zu", i);
    cel_sig *self = cel_sig_new("test.stamp", args, NULL);
    ASSERT(self != NULL);
    ASSERT_OK(cel_sig_set_immutable(self, true));
    ASSERT_OK(cel_sig_set_task_id(self, N[i].id));
    cel_sig *kids[NN];
    size_t nkids = 0;
    for (size_t k = 0; k < NN; k++)
        if (N[k].parent == (int)i)
            kids[nkids++] = subtree(k);
    if (nkids == 0)
        return self;
    cel_sig *steps[2] = {self, cel_group(kids, nkids)};
    cel_sig *chain = cel_chain(steps, 2);
    ASSERT(chain != NULL);
    return chain;
}

/* Reads the stamps into N; fails on a line naming no node. */
static void read_stamps(const char *path)
{
    char *text = cel_test_read_file(path, NULL);
    ASSERT(text != NULL);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char label[16];
        long long s, e;
        ASSERT_EQ(sscanf(line, "%15s %lld %lld", label, &s, &e), 3);
        size_t i = 0;
        while (i < NN && strcmp(N[i].label, label) != 0)
            i++;
        ASSERT(i < NN);
        N[i].start_us = s;
        N[i].end_us = e;
        N[i].runs++;
    }
    free(text);
}

/* A worker (-c 4) on SQLite in the test directory, the stamps going to
 * `tree_file`, and a client for it (*c, caller-owned). */
static pid_t start_worker(char *tree_file, size_t size, cel_client **c)
{
    char url[4200];
    snprintf(url, sizeof url, "sqlite:///%s/celeriac.db", cel_test_dir());
    snprintf(tree_file, size, "%s/" TREE_FILE, cel_test_dir());
    ASSERT_OK(setenv("CEL_TEST_TREE_FILE", tree_file, 1));
    const char *args[] = {"-b", url, "-c", "4", NULL};
    pid_t pid = cel_test_worker_start("w.log", args);
    *c = cel_test_client(url, NULL);
    return pid;
}

static void test_three_level_tree_sqlite(void)
{
    char tree_file[4200];
    cel_client *c;
    pid_t pid = start_worker(tree_file, sizeof tree_file, &c);

    cel_sig *tree = subtree(0);
    if (cel_client_apply(c, tree, NULL) != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "apply: %s", cel_client_errmsg(c));
    cel_sig_free(tree);

    for (size_t i = 0; i < NN; i++) {
        cel_result *r = NULL;
        ASSERT_OK(cel_client_result(c, N[i].id, &r));
        if (cel_result_wait(r, WAIT_MS) != CEL_OK) {
            cel_test_worker_postmortem(pid, "w.log");
            cel_test_fail(__FILE__, __LINE__, "node %s (%s) never finished", N[i].label, N[i].id);
        }
        ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
        char want[32];
        snprintf(want, sizeof want, "\"%s\"", N[i].label);
        ASSERT_STREQ(cel_result_value_json(r), want);
        cel_result_free(r);
    }

    read_stamps(tree_file);
    for (size_t i = 0; i < NN; i++) {
        ASSERT_EQ(N[i].runs, 1);
        if (N[i].parent < 0)
            continue;
        const struct node *p = &N[N[i].parent];
        fprintf(stderr, "   %-3s started %6.1f ms after %s ended\n", N[i].label,
                (double)(N[i].start_us - p->end_us) / 1000.0, p->label);
        if (N[i].start_us < p->end_us)
            cel_test_fail(__FILE__, __LINE__, "%s started %lld us before its parent %s ended",
                          N[i].label, p->end_us - N[i].start_us, p->label);
    }
    /* Siblings in parallel: each of B1, B2 started before the other ended. */
    ASSERT(N[1].start_us < N[2].end_us && N[2].start_us < N[1].end_us);

    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

static int64_t wall_us_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* chain(first, fail (immutable), last): the failure ends the tree. */
static void check_failed_branch(cel_client *c)
{
    cel_sig *steps[3] = {cel_sig_new("test.stamp", "[\"F0\", 0.05]", NULL),
                         cel_sig_new("tasks.fail", "[\"boom\"]", NULL),
                         cel_sig_new("test.stamp", "[\"F2\", 0.05]", NULL)};
    ASSERT(steps[0] && steps[1] && steps[2]);
    ASSERT_OK(cel_sig_set_task_id(steps[0], "7ee0f000-0000-4000-8000-000000000000"));
    ASSERT_OK(cel_sig_set_task_id(steps[1], "7ee0f000-0000-4000-8000-000000000001"));
    ASSERT_OK(cel_sig_set_immutable(steps[1], true));
    cel_sig *chain = cel_chain(steps, 3);
    ASSERT(chain != NULL);
    ASSERT_OK(cel_client_apply(c, chain, NULL));
    cel_sig_free(chain);
    cel_result *root = NULL;
    ASSERT_OK(cel_client_result(c, "7ee0f000-0000-4000-8000-000000000000", &root));
    ASSERT_OK(cel_result_wait_tree(root, WAIT_MS));
    ASSERT_STREQ(cel_result_state_name(root), "SUCCESS");
    ASSERT_EQ(cel_result_child_count(root), 1);
    cel_result *failed = NULL;
    ASSERT_OK(cel_result_child(root, 0, &failed));
    ASSERT_OK(cel_result_refresh(failed));
    ASSERT_STREQ(cel_result_state_name(failed), "FAILURE");
    ASSERT_EQ(cel_result_child_count(failed), 0);
    cel_result_free(failed);
    cel_result_free(root);
}

/* chain(T1, T2 sleeping 3 s): a 400 ms wait for the tree ends near
 * 400 ms with CEL_ETIMEDOUT, naming what it waited for. */
static void check_tree_timeout(cel_client *c)
{
    cel_sig *steps[2] = {cel_sig_new("test.stamp", "[\"T1\", 0.01]", NULL),
                         cel_sig_new("test.stamp", "[\"T2\", 3]", NULL)};
    ASSERT(steps[0] && steps[1]);
    ASSERT_OK(cel_sig_set_task_id(steps[0], "7ee07000-0000-4000-8000-000000000000"));
    ASSERT_OK(cel_sig_set_immutable(steps[1], true));
    cel_sig *chain = cel_chain(steps, 2);
    ASSERT(chain != NULL);
    ASSERT_OK(cel_client_apply(c, chain, NULL));
    cel_sig_free(chain);
    cel_result *root = NULL;
    ASSERT_OK(cel_client_result(c, "7ee07000-0000-4000-8000-000000000000", &root));
    int64_t t0 = cel_test_now_ms();
    ASSERT_EQ(cel_result_wait_tree(root, 400), CEL_ETIMEDOUT);
    int64_t took = cel_test_now_ms() - t0;
    fprintf(stderr, "   timed out after %lld ms: %s\n", (long long)took, cel_client_errmsg(c));
    ASSERT(took >= 390 && took < 1500);
    ASSERT_CONTAINS(cel_client_errmsg(c), "timed out");
    cel_result_free(root);
}

static void test_wait_tree_sqlite(void)
{
    char tree_file[4200];
    cel_client *c;
    pid_t pid = start_worker(tree_file, sizeof tree_file, &c);
    for (size_t i = 0; i < NN; i++)
        N[i].runs = 0;

    cel_sig *tree = subtree(0);
    ASSERT_OK(cel_client_apply(c, tree, NULL));
    cel_sig_free(tree);
    cel_result *root = NULL;
    ASSERT_OK(cel_client_result(c, N[0].id, &root));
    if (cel_result_wait_tree(root, WAIT_MS) != CEL_OK) {
        cel_test_worker_postmortem(pid, "w.log");
        cel_test_fail(__FILE__, __LINE__, "wait_tree: %s", cel_client_errmsg(c));
    }
    int64_t returned_us = wall_us_now();
    ASSERT_STREQ(cel_result_state_name(root), "SUCCESS");
    cel_result_free(root);

    /* Every node, the deepest included, ended before the wait returned:
     * read the stamps now, without waiting any further. */
    read_stamps(tree_file);
    for (size_t i = 0; i < NN; i++) {
        ASSERT_EQ(N[i].runs, 1);
        ASSERT(N[i].end_us <= returned_us);
        cel_result *r = NULL;
        ASSERT_OK(cel_client_result(c, N[i].id, &r));
        ASSERT_OK(cel_result_refresh(r));
        ASSERT_STREQ(cel_result_state_name(r), "SUCCESS");
        cel_result_free(r);
    }
    fprintf(stderr, "   returned %.1f ms after the last leaf C2b ended\n",
            (double)(returned_us - N[6].end_us) / 1000.0);

    check_failed_branch(c);
    check_tree_timeout(c);

    cel_client_free(c);
    ASSERT_EQ(cel_test_worker_stop(pid, SIGTERM, WAIT_MS), 0);
}

int main(void)
{
    TEST_RUN(test_three_level_tree_sqlite);
    TEST_RUN(test_wait_tree_sqlite);
    return 0;
}
