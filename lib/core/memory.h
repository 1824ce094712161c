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

/* Buffers read at random places, a few hundred bytes at a time (a data
 * set's pixels, gathered image by image for every batch). With 4 KiB pages
 * nearly every image read misses the TLB, and on a virtual machine each
 * miss is a two-level page walk: gathering a batch of 100 MNIST images
 * took 4.5 us an image in a training step, against 1.5 us from 2 MiB
 * pages.
 * cvae__alloc_random_access allocates (64-byte aligned; from 8 MiB on,
 * on a 2 MiB boundary) and asks Linux to back the buffer with 2 MiB pages
 * when it is first written; cvae__advise_random_access asks the same of a
 * buffer that is already written, and has it collapsed into such pages at
 * once where the kernel can (Linux 6.1 and later). Both are advice: a
 * kernel or system that declines it leaves the buffer as it is. Freed with
 * cvae__aligned_free. */
void *cvae__alloc_random_access(size_t bytes);
void cvae__advise_random_access(void *p, size_t bytes);

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
