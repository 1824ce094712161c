/* Aligned allocation and the bump arena (see memory.h). */
#include "core/memory.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int cvae__mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

void *cvae__aligned_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - CVAE__ALIGN)
        return NULL;
    size_t rounded = (bytes + CVAE__ALIGN - 1) / CVAE__ALIGN * CVAE__ALIGN;
    return aligned_alloc(CVAE__ALIGN, rounded);
}

void cvae__aligned_free(void *p) { free(p); }

size_t cvae__arena_bytes_for(size_t nfloats)
{
    size_t b;
    if (cvae__mul_overflows(nfloats, sizeof(float), &b) || b > SIZE_MAX - CVAE__ALIGN)
        return SIZE_MAX;
    return (b + CVAE__ALIGN - 1) / CVAE__ALIGN * CVAE__ALIGN;
}

cvae_status cvae__arena_init(cvae__arena *a, size_t cap_bytes)
{
    CVAE__CHECK_PTR(a);
    memset(a, 0, sizeof *a);
    if (cap_bytes == 0)
        return CVAE_OK;
    a->base = cvae__aligned_alloc(cap_bytes);
    if (!a->base)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a %zu-byte workspace", cap_bytes);
    a->cap = cap_bytes;
    return CVAE_OK;
}

void cvae__arena_free(cvae__arena *a)
{
    if (!a)
        return;
    cvae__aligned_free(a->base);
    memset(a, 0, sizeof *a);
}

float *cvae__arena_floats(cvae__arena *a, size_t n)
{
    size_t need = cvae__arena_bytes_for(n);
    if (need == SIZE_MAX || need > a->cap - a->used)
        return NULL;
    float *p = (float *)(void *)(a->base + a->used);
    a->used += need;
    if (a->used > a->peak)
        a->peak = a->used;
    return p;
}
