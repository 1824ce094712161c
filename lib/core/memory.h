/* Tensor core: float32 tensors up to 4-D (NCHW), 64-byte aligned storage,
 * views without copies, overflow-checked sizes, and a bump arena for
 * per-batch temporaries so the training loop never calls malloc. */
#ifndef CVAE_MEMORY_H
#define CVAE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

#define CVAE__ALIGN 64
#define CVAE__MAX_DIMS 4

typedef struct cvae__tensor {
    float *data;
    int ndim;
    int64_t dim[CVAE__MAX_DIMS]; /* unused trailing dims are 1 */
    int64_t size;                /* number of elements */
    int owns;                    /* 1: data was allocated by cvae__tensor_alloc */
} cvae__tensor;

/* a*b into *out and 0, or 1 (out untouched) if the product overflows size_t. */
int cvae__mul_overflows(size_t a, size_t b, size_t *out);

/* Element and byte count of a shape: every dim >= 1, bytes must fit size_t.
 * elems/bytes may be NULL. */
cvae_status cvae__shape_size(int ndim, const int64_t *dims, int64_t *elems, size_t *bytes);

/* 64-byte aligned allocation (size rounded up); NULL on failure or bytes 0. */
void *cvae__aligned_alloc(size_t bytes);
void cvae__aligned_free(void *p);

/* Allocate a zeroed tensor. On failure t is left empty (data NULL). */
cvae_status cvae__tensor_alloc(cvae__tensor *t, int ndim, const int64_t *dims);
void cvae__tensor_free(cvae__tensor *t);

/* A view of `src` starting `offset` elements in, with a new shape, sharing
 * storage. Fails if the view would run past the end of src. */
cvae_status cvae__tensor_view(const cvae__tensor *src, int64_t offset, int ndim,
                              const int64_t *dims, cvae__tensor *out);

/* Wrap caller storage (not owned). */
cvae_status cvae__tensor_wrap(float *data, int ndim, const int64_t *dims, cvae__tensor *out);

/* Bump arena: one aligned block sized once; per-batch temporaries are carved
 * out of it and released all at once by resetting to a mark. */
typedef struct cvae__arena {
    unsigned char *base;
    size_t cap;
    size_t used;
    size_t peak;
} cvae__arena;

cvae_status cvae__arena_init(cvae__arena *a, size_t cap_bytes);
void cvae__arena_free(cvae__arena *a);
/* n floats, 64-byte aligned, not zeroed; NULL if the arena is too small
 * (a sizing bug: callers turn it into CVAE_E_INTERNAL). */
float *cvae__arena_floats(cvae__arena *a, size_t n);
/* Bytes an arena needs for a list of float allocations of these counts. */
size_t cvae__arena_bytes_for(size_t nfloats);
static inline size_t cvae__arena_mark(const cvae__arena *a) { return a->used; }
static inline void cvae__arena_reset(cvae__arena *a, size_t mark) { a->used = mark; }

#endif
