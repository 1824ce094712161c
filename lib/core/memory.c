/* Aligned allocation and the bump arena (see memory.h). */
#define _DEFAULT_SOURCE /* madvise and its Linux advice values */

#include "core/memory.h"

#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "core/error.h"

int cvae__mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

void cvae__aligned_free(void *p) { free(p); }

/* The page size Linux's transparent huge pages use on x86-64 and (with 4
 * KiB base pages) arm64, and the size from which buffers get them. */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN (4 * HUGE_PAGE)

#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* Linux's value (part of its user-space ABI since 6.1); C library
 * headers older than that kernel do not define it, and a kernel that does
 * not know it refuses the advice with EINVAL. */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* The whole 2 MiB pages inside [p, p + bytes): the others would also
 * hold memory the advice is not meant for. */
static void advise(void *p, size_t bytes, int collapse)
{
    const uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    const uintptr_t hi = ((uintptr_t)p + bytes) / HUGE_PAGE * HUGE_PAGE;
    if (bytes < HUGE_MIN || hi <= lo)
        return;
    (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    if (collapse)
        (void)madvise((void *)lo, hi - lo, MADV_COLLAPSE);
}
#else
static void advise(void *p, size_t bytes, int collapse)
{
    (void)p;
    (void)bytes;
    (void)collapse;
}
#endif

/* From HUGE_MIN on, whole 2 MiB pages, so the advice covers the whole
 * buffer (memory.h says why). */
void *cvae__aligned_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    if (bytes < HUGE_MIN) {
        const size_t rounded = (bytes + CVAE__ALIGN - 1) / CVAE__ALIGN * CVAE__ALIGN;
        return aligned_alloc(CVAE__ALIGN, rounded);
    }
    const size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, rounded);
    if (p)
        advise(p, rounded, 0);
    return p;
}

void cvae__advise_random_access(void *p, size_t bytes)
{
    if (p)
        advise(p, bytes, 1);
}

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
