/*
 * celeriac/error.h - error codes shared by every part of libceleriac.
 *
 * Every fallible function returns CEL_OK (0) or a negative CEL_E* code.
 * The code says what kind of failure it was; the handle the call was made
 * on (cel_client_errmsg(), cel_config_errmsg(), ...) keeps a detailed
 * message. Codes are never renumbered or removed.
 *
 * Thread safety: all functions here are pure and thread-safe.
 */
#ifndef CELERIAC_ERROR_H
#define CELERIAC_ERROR_H

#include "celeriac/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, "message"); ranges: general -1.., config -100..,
 * broker -200.., backend -300.., protocol -400.., task -500.. */
#define CEL_ERRNO_MAP(X)                                                                           \
    X(OK, 0, "success")                                                                            \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(EINVAL, -2, "invalid argument")                                                              \
    X(EIO, -3, "input/output error")                                                               \
    X(ETIMEDOUT, -4, "timed out")                                                                  \
    X(ENOTFOUND, -5, "not found")                                                                  \
    X(ENOTSUP, -6, "operation not supported")                                                      \
    X(ESTATE, -7, "operation not valid in the current state")                                      \
    X(ETOOBIG, -8, "value exceeds a size limit")                                                   \
    X(EINTR, -9, "interrupted")                                                                    \
    X(ECONFIG, -100, "invalid configuration")                                                      \
    X(EUNKNOWNKEY, -101, "unknown configuration key")                                              \
    X(EURL, -102, "malformed URL")                                                                 \
    X(ESCHEME, -103, "unsupported URL scheme")                                                     \
    X(EBROKER, -200, "broker error")                                                               \
    X(ECONNECT, -201, "cannot connect to the broker")                                              \
    X(EDISCONNECTED, -202, "connection to the broker was lost")                                    \
    X(EBUSY, -203, "broker is busy")                                                               \
    X(EBACKEND, -300, "result backend error")                                                      \
    X(ENORESULT, -301, "result backend is disabled")                                               \
    X(EPROTO, -400, "malformed message")                                                           \
    X(EJSON, -401, "malformed JSON")                                                               \
    X(EDEPTH, -402, "JSON nesting too deep")                                                       \
    X(ECONTENTTYPE, -403, "unsupported content type")                                              \
    X(ETASK, -500, "task failed")                                                                  \
    X(ENOTREGISTERED, -501, "task is not registered")                                              \
    X(ETYPE, -502, "argument has a different type")                                                \
    X(ERANGE, -503, "argument out of range")                                                       \
    X(EMISSING, -504, "argument is missing")                                                       \
    X(EWORKERLOST, -505, "worker process lost")                                                    \
    X(EMODULE, -506, "cannot load task module")

typedef enum {
#define CEL_ERRNO_ENUM_(name, value, msg) CEL_##name = (value),
    CEL_ERRNO_MAP(CEL_ERRNO_ENUM_)
#undef CEL_ERRNO_ENUM_
} cel_errno;

/* Static message for a code ("out of memory"); never NULL. */
CEL_API const char *cel_strerror(int code);
/* Static name of a code ("CEL_ENOMEM"); "CEL_EUNKNOWN" for unknown codes. */
CEL_API const char *cel_err_name(int code);

#ifdef __cplusplus
}
#endif
#endif
