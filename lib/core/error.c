#define _POSIX_C_SOURCE 200809L

#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One buffer per thread, so concurrent handles never see each other's
 * messages; 512 bytes holds any message we format (file paths are cut). */
static _Thread_local char last_error[512];

cvae_status cvae__fail(cvae_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void cvae__errno_text(int e, char *buf, size_t n)
{
    if (strerror_r(e, buf, n) != 0)
        snprintf(buf, n, "errno %d", e);
}

const char *cvae_last_error(void) { return last_error; }

const char *cvae_strerror(cvae_status status)
{
    switch (status) {
    case CVAE_OK: return "success";
    case CVAE_E_INVALID_ARG: return "invalid argument";
    case CVAE_E_NOMEM: return "out of memory";
    case CVAE_E_IO: return "input/output error";
    case CVAE_E_FORMAT: return "invalid or corrupt data format";
    case CVAE_E_NUMERIC: return "non-finite numeric value";
    case CVAE_E_STATE: return "invalid state for this call";
    case CVAE_E_CANCELLED: return "cancelled by callback";
    case CVAE_E_UNSUPPORTED: return "unsupported";
    case CVAE_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}
