/* Single-precision GEMM over BLIS. gemm.c and its kernels (gemm_kernels.c)
 * are the only files that see blis.h. Products large enough are split across
 * the library's threads (core/threads.h); BLIS never starts threads of its
 * own. */
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

/* cvae__sgemm, then after(ctx, r0, r1, c0, c1) over each block of C that
 * one part of the product wrote (rows [r0, r1), columns [c0, c1)), on the
 * thread that computed it, right after it; once over the whole of C when
 * the product is not split, and not at all when C is empty. The blocks of
 * a split product span either all of C's rows or all of its columns. For
 * work on C's elements, or on what its rows or columns index (a bias, a
 * bias gradient), that would otherwise be a pass on one thread after the
 * product. after may be NULL. */
typedef void (*cvae__gemm_after_fn)(void *ctx, int r0, int r1, int c0, int c1);
void cvae__sgemm_then(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc,
                      cvae__gemm_after_fn after, void *after_ctx);

/* Whether cvae__sgemm splits a product of this many multiply-adds
 * (m * n * k) across the threads when called outside a job with more than
 * one thread. Code that runs two small products as the parts of one job
 * asks this first: a product that would be split runs faster split than
 * alone in a part. */
int cvae__gemm_splits(double macs);

/* Runs fn(ctx, 0, 2) and fn(ctx, 1, 2), two independent pieces of work
 * whose largest product has macs multiply-adds: as the two parts of one
 * job (core/threads.h) when that product is too small to be split by
 * itself, else one after the other, each product split. */
void cvae__gemm_pair(double macs, void (*fn)(void *ctx, int part, int parts), void *ctx);

/* Benchmarks only (bench/bench_train.c): when a trace function is set, every
 * cvae__sgemm_with call with m, n >= 1 reports its arguments just before
 * (end == 0) and just after (end == 1) the product, so a benchmark can see
 * the GEMM shapes of a training step and how long each took. NULL (the
 * default) turns it off; the cost when off is one load and a branch per
 * call. Process-wide and unsynchronised: set it only while no other thread
 * runs GEMMs. */
typedef struct cvae__gemm_call {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc;
    float alpha, beta;
} cvae__gemm_call;
typedef void (*cvae__gemm_trace_fn)(void *user, const cvae__gemm_call *call, int end);
void cvae__gemm_set_trace(cvae__gemm_trace_fn fn, void *user);
/* For products computed without cvae__sgemm (lib/layers/im2col.c's implicit-im2col
 * convolution): report the equivalent call, before (end == 0) and after
 * (end == 1), to the trace function if one is set. */
int cvae__gemm_tracing(void);
void cvae__gemm_trace_report(const cvae__gemm_call *call, int end);

/* The micro-kernel behind cvae__sgemm, for callers that pack their own
 * operands (lib/layers/im2col.c builds B panels straight from an image instead of an
 * im2col matrix): C = Ap Bp + beta C for an m x n tile, m <= MR, n <= 16,
 * C with row stride ldc; Ap an MR x k panel (column p at Ap + p * MR), Bp a
 * k x 16 panel (row p at Bp + p * 16), both zero beyond m and n. beta == 0
 * does not read C. cvae__gemm_tile_mr() is MR, or 0 when cvae__sgemm's
 * kernel is BLIS's own (not on x86, or CVAE_GEMM_KERNEL=blis): then there is
 * no tile kernel and cvae__gemm_tile must not be called. */
int cvae__gemm_tile_mr(void);
void cvae__gemm_tile(int m, int n, int k, const float *ap, const float *bp, float beta, float *c,
                     int ldc);

/* The micro-kernels BLIS can be run with. BLIS 0.9 has no optimised kernels
 * for CPUs newer than it (its "generic" reference kernel runs instead), so
 * gemm_kernels.c registers its own in a private copy of BLIS's context. */
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
