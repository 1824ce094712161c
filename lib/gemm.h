/* Single-precision GEMM over BLIS. The only module that sees blis.h. */
#ifndef CVAE_GEMM_H
#define CVAE_GEMM_H

/* C = alpha * op(A) * op(B) + beta * C, all row-major.
 * op(A) is m x k: A is m x k with row stride lda (trans_a == 0) or k x m
 * with row stride lda (trans_a != 0); likewise op(B) is k x n. C is m x n
 * with row stride ldc. Transposes are expressed as BLIS strides, never
 * copied. m, n, k >= 0 (zero sizes are a no-op apart from beta scaling).
 * beta == 0 overwrites C without reading it. */
void cvae__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Process-wide BLIS thread count. */
void cvae__gemm_set_threads(int n);
int cvae__gemm_get_threads(void);

/* The micro-kernels BLIS can be run with. BLIS 0.9 has no optimised kernels
 * for CPUs newer than it (its "generic" reference kernel runs instead), so
 * lib/gemm.c registers its own in a private copy of BLIS's context. */
typedef enum cvae__gemm_kernel {
    CVAE__GEMM_KERNEL_AUTO = 0, /* the process default, see below */
    CVAE__GEMM_KERNEL_BLIS,     /* BLIS's own context for this CPU */
    CVAE__GEMM_KERNEL_AVX2,     /* 6x16 AVX2+FMA micro-kernel */
    CVAE__GEMM_KERNEL_AVX512    /* 16x16 AVX-512F micro-kernel */
} cvae__gemm_kernel;

/* Whether a kernel can run on this CPU (AUTO and BLIS always can). */
int cvae__gemm_kernel_available(cvae__gemm_kernel kernel);

/* The kernel cvae__sgemm uses: the widest available one, unless the
 * environment variable CVAE_GEMM_KERNEL (read once) names another available
 * one: "blis", "avx2" or "avx512". Never returns AUTO. */
cvae__gemm_kernel cvae__gemm_default_kernel(void);

/* "auto", "blis", "avx2", "avx512". */
const char *cvae__gemm_kernel_name(cvae__gemm_kernel kernel);

/* cvae__sgemm with an explicit kernel, for tests and benchmarks; a kernel
 * this CPU cannot run falls back to BLIS's own. */
void cvae__sgemm_with(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc);

#endif
