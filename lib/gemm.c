#include "gemm.h"

#include <stddef.h>

#include <blis.h>

#include "error.h"

static int gemm_threads = 1;
static int threads_applied = 0;

/* BLIS reads BLIS_NUM_THREADS at its first use; we pin our own count instead
 * so that results depend on cvae_set_num_threads() alone. */
static void apply_threads(void)
{
    if (!threads_applied) {
        bli_thread_set_num_threads((dim_t)gemm_threads);
        threads_applied = 1;
    }
}

/* Vector-shaped products (m == 1 or n == 1) in plain C. BLIS 0.9.0 handles
 * them on a path that reads a few floats past the end of A or B (valgrind:
 * "Invalid read" for e.g. m = 1, k = 9, n >= 16, trans_b; results are
 * right, but an operand ending at a page boundary would fault). They are
 * memory-bound dot products, so BLIS has nothing to gain on them. */
static void sgemm_vector(int m, int n, int k, float alpha, const float *a, inc_t rsa, inc_t csa,
                         const float *b, inc_t rsb, inc_t csb, float beta, float *c, int ldc)
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

void cvae__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    /* op(A)(i,p): row-major untransposed A has strides (lda, 1); a stored
     * k x m matrix read as its transpose has strides (1, lda). */
    inc_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
    inc_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    if (m == 1 || n == 1) {
        sgemm_vector(m, n, k < 0 ? 0 : k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        return;
    }
    apply_threads();
    if (k <= 0) {
        /* BLIS handles k == 0 as C = beta*C, which is what we want. */
        k = 0;
    }
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
              (float *)a, rsa, csa, (float *)b, rsb, csb, &beta, c, (inc_t)ldc, 1);
}

void cvae__gemm_set_threads(int n)
{
    gemm_threads = n;
    bli_thread_set_num_threads((dim_t)n);
    threads_applied = 1;
}

int cvae__gemm_get_threads(void) { return gemm_threads; }

cvae_status cvae_set_num_threads(int n)
{
    if (n < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "thread count %d must be >= 1", n);
    cvae__gemm_set_threads(n);
    return CVAE_OK;
}

int cvae_get_num_threads(void) { return cvae__gemm_get_threads(); }
