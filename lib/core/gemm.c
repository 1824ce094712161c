/* SGEMM over BLIS 0.9, with micro-kernels of our own (gemm_kernels.c).
 *
 * Debian 12's BLIS 0.9.0 only knows the CPUs that predate it: on anything
 * newer bli_arch_query_id() answers "generic" and every product runs the
 * portable C reference micro-kernel, several times slower than an
 * optimised one. Its optimised
 * kernels are not exported and BLIS_ARCH_TYPE cannot pick them. What is
 * exported is the framework (blocking, packing, threading) and the context
 * it reads its kernels and block sizes from, so gemm_kernels.c copies BLIS's
 * context once and registers kernels of its own in the copy, which this
 * file passes to the expert API bli_sgemm_ex(). This file picks the kernel,
 * splits large products across the library's threads and routes vector-
 * shaped and thin products around BLIS. */

/* blis.h needs POSIX (pthread_barrier_t) and sets it only if no system
 * header came first. */
#define _POSIX_C_SOURCE 200809L

#include "core/gemm.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "core/gemm_kernels.h"
#include "core/threads.h"

/* The kernel of CVAE__GEMM_KERNEL_AUTO; written once, under pthread_once. */
static cvae__gemm_kernel default_kernel;
static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;

static void gemm_init(void)
{
    /* Initialises BLIS and returns the context it chose for this CPU. */
    cvae__gemm_kernels_init(bli_gks_query_cntx());
    default_kernel = cvae__gemm_kernels_runs(CVAE__GEMM_KERNEL_AVX512) ? CVAE__GEMM_KERNEL_AVX512
                     : cvae__gemm_kernels_runs(CVAE__GEMM_KERNEL_AVX2) ? CVAE__GEMM_KERNEL_AVX2
                                                                        : CVAE__GEMM_KERNEL_BLIS;
    /* For comparisons: run BLIS's own kernel, or a narrower one of ours.
     * Unknown or unavailable names keep the default. */
    const char *env = getenv("CVAE_GEMM_KERNEL");
    if (env) {
        static const cvae__gemm_kernel named[] = {CVAE__GEMM_KERNEL_BLIS, CVAE__GEMM_KERNEL_AVX2,
                                                  CVAE__GEMM_KERNEL_AVX512};
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (strcmp(env, cvae__gemm_kernel_name(named[i])) == 0 &&
                cvae__gemm_kernels_runs(named[i]))
                default_kernel = named[i];
    }
}

static void gemm_init_once(void) { pthread_once(&gemm_once, gemm_init); }

int cvae__gemm_kernel_available(cvae__gemm_kernel kernel)
{
    gemm_init_once();
    return cvae__gemm_kernels_runs(kernel);
}

cvae__gemm_kernel cvae__gemm_default_kernel(void)
{
    gemm_init_once();
    return default_kernel;
}

const char *cvae__gemm_kernel_name(cvae__gemm_kernel kernel)
{
    switch (kernel) {
    case CVAE__GEMM_KERNEL_AUTO:
        return "auto";
    case CVAE__GEMM_KERNEL_BLIS:
        return "blis";
    case CVAE__GEMM_KERNEL_AVX2:
        return "avx2";
    case CVAE__GEMM_KERNEL_AVX512:
        return "avx512";
    }
    return "unknown";
}

/* NULL selects BLIS's own context. */
static cntx_t *kernel_context(cvae__gemm_kernel kernel)
{
    if (kernel == CVAE__GEMM_KERNEL_AUTO)
        kernel = default_kernel;
    return cvae__gemm_kernels_context(kernel);
}

/* Vector-shaped products (m == 1 or n == 1) in plain C. BLIS 0.9.0 handles
 * them on a path that reads a few floats past the end of A or B (valgrind:
 * "Invalid read" for e.g. m = 1, k = 9, n >= 16, trans_b; results are
 * right, but an operand ending at a page boundary would fault). They are
 * memory-bound dot products, so BLIS has nothing to gain on them. */
static void sgemm_vector_naive(int m, int n, int k, float alpha, const float *a, inc_t rsa,
                               inc_t csa, const float *b, inc_t rsb, inc_t csb, float beta,
                               float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            const float *ai = a + (ptrdiff_t)i * rsa;
            const float *bj = b + (ptrdiff_t)j * csb;
            double acc = 0.0;
            for (int p = 0; p < k; p++)
                acc += (double)ai[(ptrdiff_t)p * csa] * (double)bj[(ptrdiff_t)p * rsb];
            float *cij = c + (ptrdiff_t)i * ldc + j;
            /* beta == 0 overwrites without reading C, as BLIS does, so
             * callers may pass uninitialised output buffers. */
            *cij = (float)(alpha * acc) + (beta == 0.0f ? 0.0f : beta * *cij);
        }
    }
}

static void sgemm_vector(int m, int n, int k, float alpha, const float *a, inc_t rsa, inc_t csa,
                         const float *b, inc_t rsb, inc_t csb, float beta, float *c, int ldc)
{
    gemm_init_once();
    if (m == 1 && rsb == 1 && csa == 1) /* c = a B, B's columns contiguous along k */
        cvae__gemm_vec_dots(n, k, alpha, b, csb, a, beta, c, 1);
    else if (m == 1 && csb == 1) /* B's rows contiguous along n */
        cvae__gemm_vec_axpys(n, k, alpha, b, rsb, a, csa, beta, c, 1);
    else if (n == 1 && csa == 1 && rsb == 1) /* c = A b, A's rows contiguous along k */
        cvae__gemm_vec_dots(m, k, alpha, a, rsa, b, beta, c, ldc);
    else if (n == 1 && rsa == 1) /* A's columns contiguous along m */
        cvae__gemm_vec_axpys(m, k, alpha, a, csa, b, rsb, beta, c, ldc);
    else
        sgemm_vector_naive(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
}

/* Products too thin for BLIS's packing to pay off, done as rows of the
 * vector forms above:
 *  - a short inner dimension (k <= 16: the 9 taps of a 3x3 single-channel
 *    conv, 16 x 784 x 9 per image) with B contiguous along n: each row of C
 *    is k axpys of B's rows, which sit in L1;
 *  - a tiny C (at most 256 values: that conv's 16 x 9 weight gradient, k =
 *    784) with both operands contiguous along k: each value is a dot
 *    product.
 * BLIS would pack k x n (or all of both operands) to run a handful of
 * micro-tiles, each a few multiply-adds deep. Returns 0 if the product is
 * not thin. */
static int sgemm_thin(int m, int n, int k, float alpha, const float *a, inc_t rsa, inc_t csa,
                      const float *b, inc_t rsb, inc_t csb, float beta, float *c, int ldc)
{
    if (k >= 1 && k <= 16 && csb == 1 && n >= 16) {
        gemm_init_once();
        for (int i = 0; i < m; i++)
            cvae__gemm_vec_axpys(n, k, alpha, b, rsb, a + (ptrdiff_t)i * rsa, csa, beta,
                                 c + (ptrdiff_t)i * ldc, 1);
        return 1;
    }
    if ((long long)m * n <= 256 && k >= 64 && csa == 1 && rsb == 1) {
        gemm_init_once();
        for (int i = 0; i < m; i++)
            cvae__gemm_vec_dots(n, k, alpha, b, csb, a + (ptrdiff_t)i * rsa, beta,
                                c + (ptrdiff_t)i * ldc, 1);
        return 1;
    }
    return 0;
}

static cvae__gemm_trace_fn trace_fn;
static void *trace_user;

void cvae__gemm_set_trace(cvae__gemm_trace_fn fn, void *user)
{
    trace_fn = fn;
    trace_user = user;
}

int cvae__gemm_tracing(void) { return trace_fn != NULL; }

void cvae__gemm_trace_report(const cvae__gemm_call *call, int end)
{
    if (trace_fn)
        trace_fn(trace_user, call, end);
}

static void sgemm_run(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc);

/* A product is split across threads when it has at least this many
 * multiply-adds: below it, waking a worker for a part (a few microseconds
 * to tens of them) costs more than the part. */
#define SPLIT_MIN_MACS (4.0 * 1024 * 1024)

int cvae__gemm_splits(double macs) { return macs >= SPLIT_MIN_MACS; }

void cvae__gemm_pair(double macs, void (*fn)(void *ctx, int part, int parts), void *ctx)
{
    if (cvae__gemm_splits(macs)) {
        fn(ctx, 0, 2);
        fn(ctx, 1, 2);
    } else {
        cvae__parallel(2, fn, ctx);
    }
}

typedef struct split_job {
    cvae__gemm_kernel kernel;
    int trans_a, trans_b, m, n, k, lda, ldb, ldc, by_rows;
    float alpha, beta;
    const float *a, *b;
    float *c;
    cvae__gemm_after_fn after;
    void *after_ctx;
    double share; /* two parts: part 0's share (cvae__parallel_share) */
} split_job;

/* Blocks of 16 rows or columns (the micro-tile) go to the parts as evenly
 * as possible, or with two parts, cut at the threads' share of the work
 * (cvae__parallel_share). Every element of C is computed by the same code
 * whichever part it falls in, so the result does not depend on the
 * split. */
static void split_part(void *ctx, int part, int parts)
{
    const split_job *j = ctx;
    const int len = j->by_rows ? j->m : j->n;
    const int blocks = (len + 15) / 16;
    const int b0 = (int)cvae__parallel_part_start((size_t)blocks, part, parts, j->share);
    const int b1 = (int)cvae__parallel_part_start((size_t)blocks, part + 1, parts, j->share);
    const int lo = 16 * b0, hi = 16 * b1 < len ? 16 * b1 : len;
    if (lo >= hi)
        return;
    if (j->by_rows) {
        /* rows lo..hi of op(A): row i of A, or column i of a transposed A */
        const float *a = j->a + (size_t)lo * (size_t)(j->trans_a ? 1 : j->lda);
        sgemm_run(j->kernel, j->trans_a, j->trans_b, hi - lo, j->n, j->k, j->alpha, a, j->lda,
                  j->b, j->ldb, j->beta, j->c + (size_t)lo * (size_t)j->ldc, j->ldc);
        if (j->after)
            j->after(j->after_ctx, lo, hi, 0, j->n);
    } else {
        const float *b = j->b + (size_t)lo * (size_t)(j->trans_b ? j->ldb : 1);
        sgemm_run(j->kernel, j->trans_a, j->trans_b, j->m, hi - lo, j->k, j->alpha, j->a, j->lda,
                  b, j->ldb, j->beta, j->c + lo, j->ldc);
        if (j->after)
            j->after(j->after_ctx, 0, j->m, lo, hi);
    }
}

static void sgemm_split(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc, cvae__gemm_after_fn after,
                        void *after_ctx)
{
    int parts = cvae__parallel_threads();
    const int by_rows = m > n;
    const int blocks = ((by_rows ? m : n) + 15) / 16;
    if (parts > blocks)
        parts = blocks;
    if (parts < 2 || (double)m * (double)n * (double)k < SPLIT_MIN_MACS) {
        sgemm_run(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (after)
            after(after_ctx, 0, m, 0, n);
        return;
    }
    split_job j = {kernel, trans_a, trans_b, m, n, k, lda, ldb, ldc, by_rows,
                   alpha, beta, a, b, c, after, after_ctx, cvae__parallel_share(CVAE__SHARE_PRODUCT)};
    /* the pool learns from the share the whole blocks give */
    cvae__parallel_cut(CVAE__SHARE_PRODUCT, parts,
                       (double)cvae__parallel_part_start((size_t)blocks, 1, 2, j.share) / blocks,
                       split_part, &j);
}

static void sgemm_traced(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc, cvae__gemm_after_fn after,
                         void *after_ctx)
{
    if (m <= 0 || n <= 0)
        return;
    if (!trace_fn) {
        sgemm_split(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, after,
                    after_ctx);
        return;
    }
    const cvae__gemm_call call = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta};
    trace_fn(trace_user, &call, 0);
    sgemm_split(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, after,
                after_ctx);
    trace_fn(trace_user, &call, 1);
}

void cvae__sgemm_with(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc)
{
    sgemm_traced(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL,
                 NULL);
}

void cvae__sgemm_then(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc,
                      cvae__gemm_after_fn after, void *after_ctx)
{
    sgemm_traced(CVAE__GEMM_KERNEL_AUTO, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                 c, ldc, after, after_ctx);
}

static void sgemm_run(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc)
{
    /* op(A)(i,p): row-major untransposed A has strides (lda, 1); a stored
     * k x m matrix read as its transpose has strides (1, lda). */
    inc_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
    inc_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    if (m == 1 || n == 1) {
        sgemm_vector(m, n, k < 0 ? 0 : k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        return;
    }
    if (kernel != CVAE__GEMM_KERNEL_BLIS && sgemm_thin(m, n, k, alpha, a, rsa, csa, b, rsb, csb,
                                                       beta, c, ldc))
        return;
    gemm_init_once();
    if (k <= 0) {
        /* BLIS handles k == 0 as C = beta*C, which is what we want. */
        k = 0;
    }
    /* One BLIS thread (the splitting is ours, above) and no "sup". */
    rntm_t rntm;
    bli_rntm_init_from_global(&rntm);
    bli_rntm_set_num_threads(1, &rntm);
    bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
                 (float *)a, rsa, csa, (float *)b, rsb, csb, &beta, c, (inc_t)ldc, 1,
                 kernel_context(kernel), &rntm);
}

void cvae__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cvae__sgemm_with(CVAE__GEMM_KERNEL_AUTO, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                     beta, c, ldc);
}

int cvae__gemm_tile_mr(void)
{
    gemm_init_once();
    return cvae__gemm_kernels_tile_mr(default_kernel);
}

void cvae__gemm_tile(int m, int n, int k, const float *ap, const float *bp, float beta, float *c,
                     int ldc)
{
    cvae__gemm_kernels_tile(default_kernel, m, n, k, ap, bp, beta, c, ldc);
}
