/* cvae__sgemm against a naive double-precision triple loop: every
 * transpose combination, sizes around the register and cache block edges of
 * each micro-kernel (ours and BLIS's own), sub-matrices with padded leading
 * dimensions, alpha/beta, beta = 0 over NaN, operands that end at a page
 * boundary, degenerate sizes, and products split across two threads.
 * The kernels themselves are tested in test_gemm_kernels.c, the thread-count
 * API in test_threads.c. */
#define _DEFAULT_SOURCE /* mmap's MAP_ANONYMOUS */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"

#define SENTINEL 12345.0f

static const cvae__gemm_kernel all_kernels[] = {CVAE__GEMM_KERNEL_BLIS, CVAE__GEMM_KERNEL_AVX2,
                                                CVAE__GEMM_KERNEL_AVX512};
#define N_KERNELS (sizeof all_kernels / sizeof all_kernels[0])

/* A stored matrix of rows x cols inside a larger buffer: `pad` extra
 * columns per row hold NaN (for inputs) or a sentinel (for C), so reading
 * past a row poisons the result and writing past it is detected. */
typedef struct mat {
    float *buf; /* allocation */
    float *p;   /* first element (offset into buf) */
    int rows, cols, ld;
} mat;

static mat mat_new(int rows, int cols, int pad, float fill, cvae__rng *r)
{
    mat m;
    m.rows = rows;
    m.cols = cols;
    m.ld = cols + pad;
    size_t n = (size_t)(rows > 0 ? rows : 1) * (size_t)(m.ld > 0 ? m.ld : 1) + 5;
    m.buf = malloc(n * sizeof *m.buf);
    assert_non_null(m.buf);
    for (size_t i = 0; i < n; i++)
        m.buf[i] = fill;
    m.p = m.buf + 5; /* not at the start of the allocation either */
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            m.p[(size_t)i * m.ld + j] = r ? 2.0f * cvae__rng_uniform(r) - 1.0f : fill;
    return m;
}

static void mat_free(mat *m) { free(m->buf); }

/* op(X)(i, j) for a stored matrix, transposed or not. */
static double at(const mat *m, int trans, int i, int j)
{
    return trans ? m->p[(size_t)j * m->ld + i] : m->p[(size_t)i * m->ld + j];
}

/* |got - want| within the worst-case float error of a k-term dot product
 * (about k ulps of the sum of magnitudes), plus one rounding of beta*C. */
static int close_enough(double got, double want, double magnitude, int k)
{
    return fabs(got - want) <= (double)(k + 4) * FLT_EPSILON * magnitude + 1e-30;
}

static void check_case_with(cvae__gemm_kernel kern, int ta, int tb, int m, int n, int k,
                            float alpha, float beta, cvae__rng *r)
{
    /* Stored shapes: A is m x k, or k x m when transposed; likewise B. */
    mat A = ta ? mat_new(k, m, 3, NAN, r) : mat_new(m, k, 2, NAN, r);
    mat B = tb ? mat_new(n, k, 1, NAN, r) : mat_new(k, n, 4, NAN, r);
    mat C = mat_new(m, n, 3, SENTINEL, r);
    /* beta = 0 must not read C: make any read of it poison the result. */
    if (beta == 0.0f)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                C.p[(size_t)i * C.ld + j] = NAN;
    size_t mn = (size_t)(m > 0 ? m : 1) * (size_t)(n > 0 ? n : 1);
    double *want = malloc(mn * sizeof *want), *mag = malloc(mn * sizeof *mag);
    assert_non_null(want);
    assert_non_null(mag);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0, abs_acc = 0.0;
            for (int p = 0; p < k; p++) {
                double t = at(&A, ta, i, p) * at(&B, tb, p, j);
                acc += t;
                abs_acc += fabs(t);
            }
            double c0 = beta == 0.0f ? 0.0 : (double)C.p[(size_t)i * C.ld + j];
            want[(size_t)i * n + j] = alpha * acc + beta * c0;
            mag[(size_t)i * n + j] = fabs(alpha) * abs_acc + fabs(beta * c0);
        }
    cvae__sgemm_with(kern, ta, tb, m, n, k, alpha, A.p, A.ld, B.p, B.ld, beta, C.p, C.ld);
    int bad = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            size_t q = (size_t)i * n + j;
            bad += !close_enough(C.p[(size_t)i * C.ld + j], want[q], mag[q], k);
        }
        /* Padding columns of C are never written. */
        for (int j = n; j < C.ld; j++)
            bad += C.p[(size_t)i * C.ld + j] != SENTINEL;
    }
    bad += C.buf[0] != SENTINEL;
    if (bad)
        fail_msg("%s: ta %d tb %d m %d n %d k %d alpha %g beta %g: %d wrong elements",
                 cvae__gemm_kernel_name(kern), ta, tb, m, n, k, (double)alpha, (double)beta,
                 bad);
    free(want);
    free(mag);
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
}

static void check_case(int ta, int tb, int m, int n, int k, float alpha, float beta,
                       cvae__rng *r)
{
    check_case_with(CVAE__GEMM_KERNEL_AUTO, ta, tb, m, n, k, alpha, beta, r);
}

static const float alpha_beta[][2] = {
    {1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, -0.75f}, {1.5f, 0.0f}, {1.0f, 1.0f}};
#define N_AB (sizeof alpha_beta / sizeof alpha_beta[0])

static void test_gemm_transposes_and_strides(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 41);
    const int sizes[][3] = {
        {1, 1, 1}, {1, 7, 3}, {5, 1, 4}, {3, 4, 1}, {7, 5, 3},
        {16, 16, 16}, {33, 17, 65}, {64, 100, 9}, {100, 3, 257},
    };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t q = 0; q < 3; q++)
                    check_case(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], alpha_beta[q][0],
                               alpha_beta[q][1], &r);
}

/* The kernel API: the default is a concrete kernel that can run here, and
 * an environment override (CVAE_GEMM_KERNEL, read once) is honoured. */
static void test_gemm_kernel_selection(void **state)
{
    (void)state;
    cvae__gemm_kernel d = cvae__gemm_default_kernel();
    assert_int_not_equal(d, CVAE__GEMM_KERNEL_AUTO);
    assert_true(cvae__gemm_kernel_available(d));
    assert_true(cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AUTO));
    assert_true(cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_BLIS));
    /* AVX-512 implies AVX2 here, and the widest available one is the
     * default unless overridden. */
    if (cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AVX512))
        assert_true(cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AVX2));
    /* Only the instruction sets the kernels may use (CVAE_ISA lowers them;
     * ctest runs this test with it too). */
    if (cvae__cpu_isa() < CVAE__ISA_AVX512)
        assert_false(cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AVX512));
    if (cvae__cpu_isa() < CVAE__ISA_AVX2)
        assert_false(cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AVX2));
    const char *env = getenv("CVAE_GEMM_KERNEL");
    if (env && strcmp(env, "blis") == 0) {
        assert_int_equal(d, CVAE__GEMM_KERNEL_BLIS);
    } else if (!env) {
        cvae__gemm_kernel widest = cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AVX512)
                                       ? CVAE__GEMM_KERNEL_AVX512
                                   : cvae__gemm_kernel_available(CVAE__GEMM_KERNEL_AVX2)
                                       ? CVAE__GEMM_KERNEL_AVX2
                                       : CVAE__GEMM_KERNEL_BLIS;
        assert_int_equal(d, widest);
    }
    assert_string_equal(cvae__gemm_kernel_name(CVAE__GEMM_KERNEL_BLIS), "blis");
    assert_string_equal(cvae__gemm_kernel_name(CVAE__GEMM_KERNEL_AVX2), "avx2");
    assert_string_equal(cvae__gemm_kernel_name(CVAE__GEMM_KERNEL_AVX512), "avx512");
    assert_string_equal(cvae__gemm_kernel_name(CVAE__GEMM_KERNEL_AUTO), "auto");
    /* An unavailable kernel runs as BLIS's own rather than faulting. */
    cvae__rng r;
    cvae__rng_seed(&r, 45);
    for (size_t i = 0; i < N_KERNELS; i++)
        check_case_with(all_kernels[i], 0, 1, 19, 21, 23, 1.0f, 0.0f, &r);
}

/* Every m, n in 1..20 (all register-block edges of 6x16 and 16x16 tiles and
 * of BLIS's 4x16) with a few k, for each kernel; transposes and
 * alpha/beta rotate. */
static void test_gemm_register_edges(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 46);
    const int ks[] = {1, 2, 7, 16, 17};
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        if (!cvae__gemm_kernel_available(all_kernels[kk]))
            continue;
        int q = 0;
        for (int m = 1; m <= 20; m++)
            for (int n = 1; n <= 20; n++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++, q++)
                    check_case_with(all_kernels[kk], q & 1, (q >> 1) & 1, m, n, ks[ki],
                                    alpha_beta[q % N_AB][0], alpha_beta[q % N_AB][1], &r);
    }
}

/* Sizes around the cache blocks: MC (128 and 168 for our kernels, 256 for
 * BLIS's generic), KC (384 / 256), and a second NC block (4080). */
static void test_gemm_block_edges(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 47);
    const int ms[] = {1, 6, 15, 63, 64, 65, 127, 129, 169, 257, 300};
    const int ns[] = {2, 16, 17, 33, 63, 65, 255, 257};
    const int ks[] = {1, 9, 255, 257, 383, 385, 400, 769};
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        if (!cvae__gemm_kernel_available(all_kernels[kk]))
            continue;
        int q = (int)kk;
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++, q++) {
                /* k cycles through its list; large k only with small m*n
                 * so that the naive reference stays fast. */
                int k = ks[(size_t)q % (sizeof ks / sizeof ks[0])];
                if (ms[mi] * ns[ni] > 20000 && k > 257)
                    k = 257;
                check_case_with(all_kernels[kk], q & 1, (q >> 1) & 1, ms[mi], ns[ni], k,
                                alpha_beta[q % N_AB][0], alpha_beta[q % N_AB][1], &r);
            }
        check_case_with(all_kernels[kk], 0, 0, 17, 4100, 3, 1.0f, 0.0f, &r);
        check_case_with(all_kernels[kk], 1, 1, 9, 4097, 5, 0.5f, 1.0f, &r);
        check_case_with(all_kernels[kk], 1, 0, 130, 33, 770, -1.0f, 0.0f, &r);
        check_case_with(all_kernels[kk], 0, 1, 300, 20, 400, 1.0f, 1.0f, &r);
    }
}

/* The model's own shapes (batch 100, MNIST): per-image conv GEMMs and the
 * dense layers, with their transposes, for each kernel. */
static void test_gemm_model_shapes(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 48);
    const int shapes[][5] = {
        {16, 784, 9, 0, 0},   {16, 9, 784, 0, 1},  {32, 196, 400, 0, 0}, {32, 400, 196, 0, 1},
        {400, 196, 32, 1, 0}, {4, 196, 16, 1, 0},  {16, 196, 4, 0, 0},   {16, 4, 196, 0, 1},
        {100, 50, 512, 0, 1}, {100, 512, 50, 0, 0}, {50, 512, 100, 1, 0}, {100, 10, 512, 0, 1},
    };
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        if (!cvae__gemm_kernel_available(all_kernels[kk]))
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_case_with(all_kernels[kk], shapes[s][3], shapes[s][4], shapes[s][0],
                            shapes[s][1], shapes[s][2], 1.0f, s % 3 == 2 ? 1.0f : 0.0f, &r);
    }
}

/* beta = 0 overwrites C without reading it (NaN in C does not leak), which
 * the layers rely on to skip zeroing gradient buffers. */
static void test_gemm_beta_zero_ignores_c(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 42);
    const int m = 9, n = 11, k = 6;
    float a[9 * 6], b[6 * 11], c[9 * 11];
    for (int i = 0; i < m * k; i++)
        a[i] = cvae__rng_uniform(&r);
    for (int i = 0; i < k * n; i++)
        b[i] = cvae__rng_uniform(&r);
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        for (int i = 0; i < m * n; i++)
            c[i] = NAN;
        cvae__sgemm_with(all_kernels[kk], 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0.0;
                for (int p = 0; p < k; p++)
                    acc += (double)a[i * k + p] * b[p * n + j];
                assert_true(fabs(c[i * n + j] - acc) < 1e-5);
            }
    }
}

/* Repeated beta = 1 calls accumulate, as the conv layers use across a batch. */
static void test_gemm_accumulate(void **state)
{
    (void)state;
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        float c[4] = {0, 0, 0, 0};
        for (int rep = 0; rep < 3; rep++)
            cvae__sgemm_with(all_kernels[kk], 0, 0, 2, 2, 2, 1.0f, a, 2, b, 2,
                             rep == 0 ? 0.0f : 1.0f, c, 2);
        /* a*b = [[19,22],[43,50]] */
        assert_true(c[0] == 57.0f && c[1] == 66.0f && c[2] == 129.0f && c[3] == 150.0f);
    }
    /* The same over full and edge tiles: 3 x (A B) with exact small-integer
     * data, so the float result is exact whatever the summation order. */
    const int m = 37, n = 35, k = 29;
    float *A = malloc((size_t)m * k * sizeof *A), *B = malloc((size_t)k * n * sizeof *B);
    float *C = malloc((size_t)m * n * sizeof *C);
    assert_non_null(A);
    assert_non_null(B);
    assert_non_null(C);
    for (int i = 0; i < m * k; i++)
        A[i] = (float)(i % 7 - 3);
    for (int i = 0; i < k * n; i++)
        B[i] = (float)(i % 5 - 2);
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        for (int rep = 0; rep < 3; rep++)
            cvae__sgemm_with(all_kernels[kk], 0, 0, m, n, k, 1.0f, A, k, B, n,
                             rep == 0 ? 0.0f : 1.0f, C, n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0.0;
                for (int p = 0; p < k; p++)
                    acc += (double)A[i * k + p] * B[p * n + j];
                assert_true(C[i * n + j] == (float)(3.0 * acc));
            }
    }
    free(A);
    free(B);
    free(C);
}

static void test_gemm_degenerate(void **state)
{
    (void)state;
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        const cvae__gemm_kernel kern = all_kernels[kk];
        float a[4] = {1, 2, 3, 4}, b[4] = {1, 1, 1, 1};
        float c[6] = {1, 2, 3, 4, 5, 6};
        /* k == 0: C = beta * C. */
        cvae__sgemm_with(kern, 0, 0, 2, 3, 0, 1.0f, a, 1, b, 3, 2.0f, c, 3);
        for (int i = 0; i < 6; i++)
            assert_true(c[i] == 2.0f * (float)(i + 1));
        cvae__sgemm_with(kern, 1, 1, 2, 3, 0, 1.0f, a, 2, b, 1, 1.0f, c, 3);
        for (int i = 0; i < 6; i++)
            assert_true(c[i] == 2.0f * (float)(i + 1));
        cvae__sgemm_with(kern, 0, 1, 2, 3, 0, 1.0f, a, 1, b, 1, 0.0f, c, 3);
        for (int i = 0; i < 6; i++)
            assert_true(c[i] == 0.0f);
        /* m == 0 or n == 0: nothing is touched (pointers may be anything
         * valid). */
        float keep[2] = {7.0f, 8.0f};
        cvae__sgemm_with(kern, 0, 0, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, keep, 2);
        cvae__sgemm_with(kern, 0, 0, 1, 0, 2, 1.0f, a, 2, b, 2, 0.0f, keep, 1);
        assert_true(keep[0] == 7.0f && keep[1] == 8.0f);
    }
}

/* Vector-shaped products with operands allocated to their exact size, so
 * that a read past the end (which BLIS 0.9's own path for these shapes
 * does) shows up under valgrind; values against the naive loop. */
static void test_gemm_vector_shapes_exact(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 44);
    const int shapes[][3] = {{1, 17, 9}, {17, 1, 9}, {1, 1, 9}, {1, 100, 3},
                             {100, 1, 3}, {1, 2, 9}, {1, 33, 1}, {1, 16, 4704}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                float *a = malloc((size_t)m * k * sizeof *a);
                float *b = malloc((size_t)k * n * sizeof *b);
                float *c = malloc((size_t)m * n * sizeof *c);
                assert_non_null(a);
                assert_non_null(b);
                assert_non_null(c);
                for (int i = 0; i < m * k; i++)
                    a[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
                for (int i = 0; i < k * n; i++)
                    b[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
                for (int i = 0; i < m * n; i++)
                    c[i] = NAN;
                cvae__sgemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = 0.0;
                        for (int p = 0; p < k; p++)
                            acc += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                                   (tb ? b[j * k + p] : b[p * n + j]);
                        assert_true(fabs(c[i * n + j] - acc) <= 1e-5 * (fabs(acc) + k));
                    }
                free(a);
                free(b);
                free(c);
            }
}

/* An allocation of `count` floats placed against an inaccessible page, at
 * its end (at_end) or its start, so that a kernel or packing routine that
 * reads or writes outside an operand faults. Valgrind cannot check this for
 * us: it hides AVX-512, so only the AVX2 and BLIS paths run under it. */
typedef struct guarded {
    void *map;
    size_t map_len;
    float *p;
} guarded;

static guarded guarded_new(size_t count, int at_end)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = count * sizeof(float);
    const size_t data_pages = (bytes + page - 1) / page;
    guarded g;
    g.map_len = (data_pages + 2) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    char *base = g.map;
    assert_int_equal(mprotect(base, page, PROT_NONE), 0);
    assert_int_equal(mprotect(base + (data_pages + 1) * page, page, PROT_NONE), 0);
    char *first = base + page, *end = base + (data_pages + 1) * page;
    g.p = at_end ? (float *)(void *)(end - bytes) : (float *)(void *)first;
    return g;
}

static void guarded_free(guarded *g) { munmap(g->map, g->map_len); }

static void test_gemm_no_access_outside_operands(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 49);
    const int shapes[][3] = {{7, 33, 2}, {17, 35, 9}, {33, 17, 400}, {100, 50, 31},
                             {16, 16, 16}, {6, 16, 5}, {130, 20, 390}};
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        if (!cvae__gemm_kernel_available(all_kernels[kk]))
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 8; t++) {
                const int ta = t & 1, tb = (t >> 1) & 1, at_end = t >> 2;
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                guarded ga = guarded_new((size_t)m * k, at_end);
                guarded gb = guarded_new((size_t)k * n, !at_end);
                guarded gc = guarded_new((size_t)m * n, at_end);
                float *a = ga.p, *b = gb.p, *c = gc.p;
                for (int i = 0; i < m * k; i++)
                    a[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
                for (int i = 0; i < k * n; i++)
                    b[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
                for (int i = 0; i < m * n; i++)
                    c[i] = NAN;
                cvae__sgemm_with(all_kernels[kk], ta, tb, m, n, k, 1.0f, a, ta ? m : k, b,
                                 tb ? k : n, 0.0f, c, n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = 0.0, mag = 0.0;
                        for (int p = 0; p < k; p++) {
                            double v = (double)(ta ? a[p * m + i] : a[i * k + p]) *
                                       (tb ? b[j * k + p] : b[p * n + j]);
                            acc += v;
                            mag += fabs(v);
                        }
                        assert_true(close_enough(c[i * n + j], acc, mag, k));
                    }
                guarded_free(&ga);
                guarded_free(&gb);
                guarded_free(&gc);
            }
    }
}

static void test_gemm_threads(void **state)
{
    (void)state;
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    /* Results with two threads still match the reference, on every kernel
     * and across several blocks of 16 rows or columns (the split unit). */
    cvae__rng r;
    cvae__rng_seed(&r, 43);
    check_case(0, 1, 150, 130, 140, 1.0f, 0.0f, &r);
    check_case(1, 0, 70, 190, 33, 1.0f, 1.0f, &r);
    for (size_t kk = 0; kk < N_KERNELS; kk++) {
        check_case_with(all_kernels[kk], 0, 0, 300, 257, 385, 1.0f, 0.0f, &r);
        check_case_with(all_kernels[kk], 1, 1, 65, 520, 100, 0.5f, 1.0f, &r);
    }
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_int_equal(cvae_get_num_threads(), 1);
    check_case(1, 1, 130, 33, 390, 1.0f, 0.0f, &r);
}

/* What cvae__sgemm_then's callback saw: how often each element of C was in
 * a block, and a copy of each block as it was when the callback ran. */
typedef struct then_seen {
    const float *c;
    int ldc, n;
    int *count;
    float *copy;
    int calls;
} then_seen;

static void then_record(void *ctx, int r0, int r1, int c0, int c1)
{
    then_seen *t = ctx;
    __atomic_fetch_add(&t->calls, 1, __ATOMIC_RELAXED);
    for (int i = r0; i < r1; i++)
        for (int j = c0; j < c1; j++) {
            t->count[i * t->n + j]++;
            t->copy[i * t->n + j] = t->c[i * t->ldc + j];
        }
}

static void test_gemm_then(void **state)
{
    (void)state;
    /* Split by rows (m > n), by columns, too small to split, and empty: at
     * 1-3 threads the blocks cover C exactly once, each already holds its
     * product when the callback sees it, and C is the plain product's. */
    static const int cases[][3] = {{600, 100, 120}, {100, 530, 90}, {20, 30, 40}, {0, 50, 50}};
    cvae__rng r;
    cvae__rng_seed(&r, 77);
    const int before = cvae__threads_get();
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int m = cases[ci][0], n = cases[ci][1], k = cases[ci][2];
        mat a = mat_new(m, k, 0, 0.0f, &r), b = mat_new(k, n, 0, 0.0f, &r);
        const size_t mn = (size_t)m * n + 1;
        float *want = calloc(mn, sizeof *want), *c = calloc(mn, sizeof *c);
        float *copy = calloc(mn, sizeof *copy);
        int *count = calloc(mn, sizeof *count);
        assert_true(want && c && copy && count);
        cvae__threads_set(1);
        cvae__sgemm(0, 0, m, n, k, 1.0f, a.p, a.ld, b.p, b.ld, 0.0f, want, n);
        /* 1-3 threads, then 2 cut at a quarter and at three quarters of
         * the work (where a split falls must not change a bit) */
        for (int t = 1; t <= 5; t++) {
            cvae__threads_set(t > 3 ? 2 : t);
            cvae__parallel_fix_share(t == 4 ? 0.25 : t == 5 ? 0.75 : 0.0);
            memset(count, 0, mn * sizeof *count);
            then_seen seen = {c, n, n, count, copy, 0};
            cvae__sgemm_then(0, 0, m, n, k, 1.0f, a.p, a.ld, b.p, b.ld, 0.0f, c, n, then_record,
                             &seen);
            if (m == 0) {
                assert_int_equal(seen.calls, 0);
                continue;
            }
            const int split = t > 1 && cvae__gemm_splits((double)m * n * k);
            assert_int_equal(seen.calls, split ? (t > 3 ? 2 : t) : 1);
            for (size_t i = 0; i + 1 < mn; i++)
                assert_int_equal(count[i], 1);
            assert_memory_equal(copy, c, (mn - 1) * sizeof *c);
            assert_memory_equal(c, want, (mn - 1) * sizeof *c);
        }
        cvae__parallel_fix_share(0.0);
        /* a NULL callback is the plain product */
        cvae__threads_set(2);
        cvae__sgemm_then(0, 0, m, n, k, 1.0f, a.p, a.ld, b.p, b.ld, 0.0f, c, n, NULL, NULL);
        if (m > 0)
            assert_memory_equal(c, want, (mn - 1) * sizeof *c);
        mat_free(&a);
        mat_free(&b);
        free(want);
        free(c);
        free(copy);
        free(count);
    }
    cvae__threads_set(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_then),
        cmocka_unit_test(test_gemm_threads),
        cmocka_unit_test(test_gemm_transposes_and_strides),
        cmocka_unit_test(test_gemm_kernel_selection),
        cmocka_unit_test(test_gemm_register_edges),
        cmocka_unit_test(test_gemm_block_edges),
        cmocka_unit_test(test_gemm_model_shapes),
        cmocka_unit_test(test_gemm_beta_zero_ignores_c),
        cmocka_unit_test(test_gemm_accumulate),
        cmocka_unit_test(test_gemm_degenerate),
        cmocka_unit_test(test_gemm_vector_shapes_exact),
        cmocka_unit_test(test_gemm_no_access_outside_operands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
