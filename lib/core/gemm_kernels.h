/* The compute kernels of our own under the BLIS wrapper (gemm.c): x86
 * AVX2 / AVX-512 GEMM micro-kernels and a packing kernel, registered in
 * private copies of BLIS's context, and the vectorised dot / axpy loops of
 * vector-shaped products. BLIS 0.9 has no optimised kernels for CPUs newer
 * than it (its portable reference kernel runs there instead), and its
 * optimised ones are not exported, hence these. The CPU is probed at run
 * time and the kernels carry per-function target attributes, so the library
 * needs no -mavx flags and runs on any x86-64, or any other architecture
 * (where only BLIS's own context exists). */
#ifndef CVAE_GEMM_KERNELS_H
#define CVAE_GEMM_KERNELS_H

#include <stddef.h>

#include "core/gemm.h"

/* Probe the CPU and build the BLIS contexts of the kernels it can run, from
 * blis_cntx (BLIS's cntx_t for this CPU). Called once, before anything
 * below, under gemm.c's initialisation. */
void cvae__gemm_kernels_init(const void *blis_cntx);

/* Whether this CPU runs the kernel (AUTO and BLIS: always). */
int cvae__gemm_kernels_runs(cvae__gemm_kernel kernel);

/* The BLIS context (cntx_t *) that runs our kernel, or NULL for BLIS's
 * own or for a kernel this CPU cannot run. */
void *cvae__gemm_kernels_context(cvae__gemm_kernel kernel);

/* The tile micro-kernel of cvae__gemm_tile (see gemm.h) for kernel: its MR,
 * or 0 if kernel has none here (BLIS, or not runnable). */
int cvae__gemm_kernels_tile_mr(cvae__gemm_kernel kernel);
void cvae__gemm_kernels_tile(cvae__gemm_kernel kernel, int m, int n, int k, const float *ap,
                             const float *bp, float beta, float *c, int ldc);

/* out[r * os] = alpha * <rows + r * rs, x> + beta * out[r * os], r < nr;
 * rows and x contiguous along k. beta == 0 does not read out. */
void cvae__gemm_vec_dots(int nr, int k, float alpha, const float *rows, ptrdiff_t rs,
                         const float *x, float beta, float *out, ptrdiff_t os);

/* out[j * os] = alpha * sum_p x[p * xs] * mat[p * ms + j] + beta * out[j * os],
 * j < nc; mat contiguous along j. beta == 0 does not read out. */
void cvae__gemm_vec_axpys(int nc, int k, float alpha, const float *mat, ptrdiff_t ms,
                          const float *x, ptrdiff_t xs, float beta, float *out, ptrdiff_t os);

#endif
