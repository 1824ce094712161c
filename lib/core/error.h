/* Internal error reporting: a thread-local message behind cvae_last_error(). */
#ifndef CVAE_ERROR_H
#define CVAE_ERROR_H

#include <stddef.h>

#include "convvae.h"

#if defined(__GNUC__)
#define CVAE__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CVAE__PRINTF(a, b)
#endif

/* Record a formatted message for this thread and return status, so that a
 * failing path reads `return cvae__fail(CVAE_E_INVALID_ARG, "...", ...);`. */
cvae_status cvae__fail(cvae_status status, const char *fmt, ...) CVAE__PRINTF(2, 3);

/* The text of errno value e into buf (strerror_r, thread-safe), or
 * "errno N" if there is none. */
void cvae__errno_text(int e, char *buf, size_t n);

/* Validation helper: fail with CVAE_E_INVALID_ARG naming the NULL argument. */
#define CVAE__CHECK_PTR(p)                                                     \
    do {                                                                       \
        if ((p) == NULL)                                                       \
            return cvae__fail(CVAE_E_INVALID_ARG, "%s: %s is NULL", __func__, #p); \
    } while (0)

#endif
