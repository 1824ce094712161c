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

/* 64-byte aligned allocation (size rounded up); NULL on failure or bytes 0.
 * From 8 MiB on, the buffer starts on a 2 MiB boundary, its size is rounded
 * up to whole 2 MiB pages, and Linux is asked to back it with such pages
 * when it is first written (advice: a kernel or system that declines it,
 * transparent huge pages set to "never", leaves 4 KiB pages). The large
 * buffers are read end to end every training step (parameters, gradients,
 * Adam's moments) or at random places (a data set's pixels, gathered image
 * by image): with 4 KiB pages nearly every image read missed the TLB, and
 * on a virtual machine each miss is a two-level page walk; gathering a
 * batch of 100 MNIST images took 4.5 us an image in a training step, 1.5 us
 * from 2 MiB pages, and the whole 1-thread step of the MNIST model about 2%
 * less time with its parameters and moments on them too. */
void *cvae__aligned_alloc(size_t bytes);
void cvae__aligned_free(void *p);

/* The same advice for a buffer that is already written (a data set read
 * into memory another way), which is also collapsed into 2 MiB pages at
 * once where the kernel can (Linux 6.1 and later). It covers the whole 2
 * MiB pages inside the buffer, and nothing under 8 MiB. */
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
