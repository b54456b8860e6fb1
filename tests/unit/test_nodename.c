/*
 * test_nodename.c - node names as Celery's `-n` gives them
 * (celery.utils.nodenames: default_nodename, host_format, node_format),
 * and the worker's own name resolved from worker_hostname.
 */
#include <string.h>
#include <unistd.h>

#include <celeriac.h>

#include "testing.h"

#define HOST "george.example.com"

static char out[512];

/* The result of a call that must succeed. */
static const char *done(int rc, const char *pattern)
{
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "'%s': %s", pattern, cel_strerror(rc));
    return out;
}

#define expand(pattern, host)    done(cel_nodename_expand(pattern, host, out, sizeof out), pattern)
#define node_format(pattern, nn) done(cel_node_format(pattern, nn, out, sizeof out), pattern)

/* The examples of Celery's workers guide, and its default_nodename(). */
static void test_hostname_abbreviations(void)
{
    ASSERT_STREQ(expand("worker1@%h", HOST), "worker1@george.example.com");
    ASSERT_STREQ(expand("worker1@%n", HOST), "worker1@george");
    ASSERT_STREQ(expand("worker1@%d", HOST), "worker1@example.com");
    ASSERT_STREQ(expand("%n-%i%I@%h", HOST), "george-0@george.example.com");
    ASSERT_STREQ(expand("w1@%h", "plain"), "w1@plain"); /* no domain */
    ASSERT_STREQ(expand("w1@%n.%d", "plain"), "w1@plain.");
    ASSERT_STREQ(expand("", HOST), "celeriac@george.example.com");
    ASSERT_STREQ(expand(NULL, HOST), "celeriac@george.example.com");
    ASSERT_STREQ(expand("box7", HOST), "celeriac@box7"); /* no '@': the host part */
    ASSERT_STREQ(expand("%h", HOST), "celeriac@george.example.com");
    ASSERT_STREQ(expand("@%n", HOST), "celeriac@george");
    /* Only '%' before a word character is an abbreviation, as in Celery. */
    ASSERT_STREQ(expand("a%%@100%", HOST), "a%%@100%");
    ASSERT_STREQ(expand("a@%-x", HOST), "a@%-x");
}

static void test_hostname_errors(void)
{
    ASSERT_EQ(cel_nodename_expand("w1@%x", HOST, out, sizeof out), CEL_EINVAL);
    ASSERT_EQ(cel_nodename_expand("w1@%p", HOST, out, sizeof out), CEL_EINVAL);
    char tiny[8];
    ASSERT_EQ(cel_nodename_expand("worker1@%h", HOST, tiny, sizeof tiny), CEL_ETOOBIG);
}

/* This machine's name when no host is given. */
static void test_local_host(void)
{
    char host[256] = "";
    ASSERT_OK(gethostname(host, sizeof host));
    char want[300];
    snprintf(want, sizeof want, "w@%s", host);
    ASSERT_STREQ(expand("w@%h", NULL), want);
    snprintf(want, sizeof want, "celeriac@%s", host);
    ASSERT_STREQ(expand("", ""), want);
}

/* --pidfile / --logfile: the parts of the node name. */
static void test_node_format(void)
{
    ASSERT_STREQ(node_format("/run/%n.pid", "w1@george.example.com"), "/run/w1.pid");
    ASSERT_STREQ(node_format("%h.log", "w1@george.example.com"), "george.example.com.log");
    ASSERT_STREQ(node_format("%d", "w1@george.example.com"), "example.com");
    ASSERT_STREQ(node_format("%p%I-%i.log", "w1@george"), "w1@george-0.log");
    ASSERT_STREQ(node_format("%n.log", "george"), "celeriac.log");
    ASSERT_EQ(cel_node_format("%q.log", "w1@h", out, sizeof out), CEL_EINVAL);
}

/* The worker's name is worker_hostname expanded; a bad abbreviation is
 * a configuration error, seen before anything starts. */
static void test_worker_nodename(void)
{
    cel_registry *reg = cel_registry_new();
    cel_config *cfg = cel_config_new();
    ASSERT_OK(cel_config_set(cfg, "worker_hostname", "alpha@%h", NULL));
    cel_worker *w = cel_worker_new(cfg, reg);
    char host[256] = "", want[300];
    ASSERT_OK(gethostname(host, sizeof host));
    snprintf(want, sizeof want, "alpha@%s", host);
    ASSERT_STREQ(cel_worker_nodename(w), want);
    char *banner = cel_worker_banner(w);
    ASSERT_CONTAINS(banner, want);
    cel_free(banner);
    cel_worker_free(w);

    ASSERT_OK(cel_config_set(cfg, "worker_hostname", "alpha@%z", NULL));
    w = cel_worker_new(cfg, reg);
    ASSERT(cel_worker_nodename(w) == NULL);
    ASSERT_EQ(cel_worker_run(w), CEL_ECONFIG);
    ASSERT_CONTAINS(cel_worker_errmsg(w), "alpha@%z");
    ASSERT_EQ(cel_worker_restart_requested(w), 0);
    cel_worker_free(w);
    cel_config_free(cfg);
    cel_registry_free(reg);
}

int main(void)
{
    TEST_RUN(test_hostname_abbreviations);
    TEST_RUN(test_hostname_errors);
    TEST_RUN(test_local_host);
    TEST_RUN(test_node_format);
    TEST_RUN(test_worker_nodename);
    return 0;
}
