/* Memory: overflow-checked sizes, 64-byte aligned allocation (what the GEMM
 * kernels and the safetensors reader hand out), and a bump arena for
 * per-batch temporaries so the training loop never calls malloc. Layers
 * take plain float pointers with explicit sizes; there is no tensor type. */
#ifndef CVAE_MEMORY_H
#define CVAE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

#define CVAE__ALIGN 64

/* a*b into *out and 0, or 1 (out untouched) if the product overflows size_t. */
int cvae__mul_overflows(size_t a, size_t b, size_t *out);

/* 64-byte aligned allocation (size rounded up); NULL on failure or bytes 0. */
void *cvae__aligned_alloc(size_t bytes);
void cvae__aligned_free(void *p);

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
