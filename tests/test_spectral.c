/* ARPACK's leading eigenpairs of D^-1/2 W D^-1/2 against a dense Jacobi
 * eigen-decomposition in double, on random connected weighted graphs;
 * residuals of the returned vectors; argument checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/spectral.h"
#include "core/rng.h"

/* Cyclic Jacobi rotations on a symmetric m x m matrix (destroyed); the
 * eigenvalues are left in ev, unsorted. */
static void jacobi_eigenvalues(double *a, int m, double *ev)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++)
                off += a[p * m + q] * a[p * m + q];
        if (off < 1e-26)
            break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                if (fabs(a[p * m + q]) < 1e-300)
                    continue;
                const double th = (a[q * m + q] - a[p * m + p]) / (2 * a[p * m + q]);
                const double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                const double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int r = 0; r < m; r++) {
                    const double arp = a[r * m + p], arq = a[r * m + q];
                    a[r * m + p] = c * arp - s * arq;
                    a[r * m + q] = s * arp + c * arq;
                }
                for (int r = 0; r < m; r++) {
                    const double apr = a[p * m + r], aqr = a[q * m + r];
                    a[p * m + r] = c * apr - s * aqr;
                    a[q * m + r] = s * apr + c * aqr;
                }
            }
    }
    for (int i = 0; i < m; i++)
        ev[i] = a[i * m + i];
}

static int desc(const void *pa, const void *pb)
{
    const double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

/* A ring (so connected) plus random chords, random weights in (0.05, 1],
 * three loose communities so the leading eigenvalues are distinct. */
static void make_graph(int n, uint64_t seed, double *dense, int64_t *rowptr, int32_t *col,
                       float *w)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    memset(dense, 0, (size_t)n * n * sizeof *dense);
    for (int i = 0; i < n; i++) {
        const int j = (i + 1) % n;
        const float x = 0.05f + 0.95f * cvae__rng_uniform(&r);
        dense[i * n + j] = dense[j * n + i] = x;
    }
    for (int t = 0; t < 4 * n; t++) {
        const int i = (int)cvae__rng_below(&r, (uint64_t)n);
        int j = (int)cvae__rng_below(&r, (uint64_t)n);
        if ((i % 3 != j % 3 && cvae__rng_uniform(&r) < 0.8f) || i == j)
            continue;
        const float x = 0.05f + 0.95f * cvae__rng_uniform(&r);
        dense[i * n + j] = dense[j * n + i] = x;
    }
    int64_t e = 0;
    for (int i = 0; i < n; i++) {
        rowptr[i] = e;
        for (int j = 0; j < n; j++)
            if (dense[i * n + j] != 0)
                col[e] = j, w[e] = (float)dense[i * n + j], e++;
    }
    rowptr[n] = e;
}

static void test_against_dense(void **state)
{
    (void)state;
    for (int trial = 0; trial < 3; trial++) {
        const int n = trial == 0 ? 40 : (trial == 1 ? 90 : 300), nev = 5;
        double *dense = malloc((size_t)n * n * sizeof *dense);
        double *m = malloc((size_t)n * n * sizeof *m), *ref = malloc((size_t)n * sizeof *ref);
        int64_t *rowptr = malloc((size_t)(n + 1) * sizeof *rowptr);
        int32_t *col = malloc((size_t)n * n * sizeof *col);
        float *w = malloc((size_t)n * n * sizeof *w), *vec = malloc((size_t)n * nev * sizeof *vec);
        double ev[5], deg[300];
        assert_true(dense && m && ref && rowptr && col && w && vec);
        make_graph(n, 100 + (uint64_t)trial, dense, rowptr, col, w);
        for (int i = 0; i < n; i++) {
            deg[i] = 0;
            for (int j = 0; j < n; j++)
                deg[i] += (float)dense[i * n + j];
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                m[i * n + j] = (float)dense[i * n + j] / sqrt(deg[i] * deg[j]);
        double *mcopy = malloc((size_t)n * n * sizeof *mcopy);
        assert_non_null(mcopy);
        memcpy(mcopy, m, (size_t)n * n * sizeof *m);
        jacobi_eigenvalues(mcopy, n, ref);
        qsort(ref, (size_t)n, sizeof *ref, desc);
        int iters = -1;
        assert_int_equal(cvae__spectral(n, rowptr, col, w, nev, 1e-10, ev, vec, &iters), CVAE_OK);
        assert_true(iters >= 1);
        for (int j = 0; j < nev; j++) {
            assert_true(fabs(ev[j] - ref[j]) < 1e-8);
            double nrm = 0, res = 0;
            for (int i = 0; i < n; i++) {
                double mv = 0;
                for (int t = 0; t < n; t++)
                    mv += m[i * n + t] * vec[t * nev + j];
                res += (mv - ev[j] * vec[i * nev + j]) * (mv - ev[j] * vec[i * nev + j]);
                nrm += (double)vec[i * nev + j] * vec[i * nev + j];
            }
            assert_true(fabs(nrm - 1) < 1e-5);
            assert_true(sqrt(res) < 1e-5); /* float storage of the vector */
        }
        assert_true(fabs(ev[0] - 1) < 1e-8); /* D^1/2 1 is always an eigenvector */
        free(dense), free(m), free(mcopy), free(ref), free(rowptr), free(col), free(w), free(vec);
    }
}

static void test_bad_args(void **state)
{
    (void)state;
    const int64_t rowptr[5] = {0, 1, 2, 3, 3}; /* row 3 has no edge */
    const int32_t col[3] = {1, 0, 0};
    const float w[3] = {1, 1, 1};
    double ev[2];
    float vec[8];
    assert_int_equal(cvae__spectral(4, rowptr, col, w, 1, 1e-6, ev, vec, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__spectral(4, rowptr, col, w, 3, 1e-6, ev, vec, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__spectral(4, NULL, col, w, 1, 1e-6, ev, vec, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__spectral(4, rowptr, col, w, 1, -1, ev, vec, NULL),
                     CVAE_E_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_dense),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
