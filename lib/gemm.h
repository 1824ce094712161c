/* Single-precision GEMM over BLIS. The only module that sees blis.h. */
#ifndef CVAE_GEMM_H
#define CVAE_GEMM_H

/* C = alpha * op(A) * op(B) + beta * C, all row-major.
 * op(A) is m x k: A is m x k with row stride lda (trans_a == 0) or k x m
 * with row stride lda (trans_a != 0); likewise op(B) is k x n. C is m x n
 * with row stride ldc. Transposes are expressed as BLIS strides, never
 * copied. m, n, k >= 0 (zero sizes are a no-op apart from beta scaling). */
void cvae__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Process-wide BLIS thread count. */
void cvae__gemm_set_threads(int n);
int cvae__gemm_get_threads(void);

#endif
