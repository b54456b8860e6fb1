/* store_open.c - see store_open.h. */
#include "store_open.h"

#include "testing.h"

struct cel_broker *cel_test_open_broker(const char *url)
{
    struct cel_errbuf err = {{0}};
    struct cel_broker *b = NULL;
    int rc = cel__broker_open(url, NULL, &b, &err);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "open broker %s: %s (%s)", url, err.msg,
                      cel_err_name(rc));
    return b;
}

struct cel_backend *cel_test_open_backend(const char *url)
{
    struct cel_errbuf err = {{0}};
    struct cel_backend *bk = NULL;
    int rc = cel__backend_open(url, NULL, &bk, &err);
    if (rc != CEL_OK)
        cel_test_fail(__FILE__, __LINE__, "open result store %s: %s (%s)", url, err.msg,
                      cel_err_name(rc));
    return bk;
}
