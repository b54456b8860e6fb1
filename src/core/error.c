/* error.c - names and messages of the error table in celeriac/error.h. */
#include "celeriac/error.h"

const char *cel_strerror(int code)
{
    switch (code) {
#define CEL_ERRNO_MSG_(name, value, msg)                                                           \
    case (value):                                                                                  \
        return msg;
        CEL_ERRNO_MAP(CEL_ERRNO_MSG_)
#undef CEL_ERRNO_MSG_
    }
    return "unknown error";
}

const char *cel_err_name(int code)
{
    switch (code) {
#define CEL_ERRNO_NAME_(name, value, msg)                                                          \
    case (value):                                                                                  \
        return "CEL_" #name;
        CEL_ERRNO_MAP(CEL_ERRNO_NAME_)
#undef CEL_ERRNO_NAME_
    }
    return "CEL_EUNKNOWN";
}
