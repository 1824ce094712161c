/* Optimizers: Adam and SGD with momentum against double-precision
 * transcriptions of the textbook updates, the vector paths and the thread
 * split against the scalar loop (bit for bit), partial (frozen) ranges,
 * binding, hyper-parameter validation, convergence on a quadratic, and the
 * non-finite check of the gradients. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "model/config.h"
#include "training/optimizer.h"

#define NP 37
#define STEPS 50

/* Float results against the double reference. A step moves a parameter by
 * at most ~lr; float rounding of p, m, v and the update adds ~1e-7 per step,
 * so after 50 steps the difference is ~1e-6 (seen: <= 1.3e-6). Forming
 * 1 - beta2 in float instead (1.0f - 0.999f) biased v by 1.3e-5 and gave
 * 3e-5 here, 3e-4 for beta2 = 0.9999, which this tolerance catches.
 * Parameters near zero are compared against REL_FLOOR. */
#define REL_TOL 1e-5
#define REL_FLOOR 1e-2

/* A deterministic, sign-changing gradient that differs per entry and step,
 * with some exact zeros and a wide range of magnitudes. */
static float grad_at(int i, int t)
{
    if ((i * 7 + t) % 23 == 0)
        return 0.0f;
    double mag = pow(10.0, (double)(i % 5) - 2.0); /* 1e-2 .. 1e2 */
    return (float)(mag * sin(0.7 * i + 0.31 * t + 0.1 * i * t) * (1.0 + 0.02 * t));
}

static float init_at(int i) { return (float)(0.9 * cos(1.3 * i + 0.2)); }

/* Textbook Adam (Kingma & Ba 2015, Algorithm 1) with L2 weight decay added to
 * the gradient, in double. */
typedef struct ref_adam {
    double lr, b1, b2, eps, wd;
    double p[NP], m[NP], v[NP];
    int t[NP]; /* per-entry step count: frozen entries take no step */
} ref_adam;

static void ref_adam_step(ref_adam *r, int i, int step, double g)
{
    g += r->wd * r->p[i];
    r->m[i] = r->b1 * r->m[i] + (1 - r->b1) * g;
    r->v[i] = r->b2 * r->v[i] + (1 - r->b2) * g * g;
    double mhat = r->m[i] / (1 - pow(r->b1, step));
    double vhat = r->v[i] / (1 - pow(r->b2, step));
    r->p[i] -= r->lr * mhat / (sqrt(vhat) + r->eps);
}

static double max_rel(const float *got, const double *want, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double den = fmax(fabs(want[i]), REL_FLOOR);
        double e = fabs((double)got[i] - want[i]) / den;
        if (!(e == e))
            return INFINITY;
        worst = fmax(worst, e);
    }
    return worst;
}

static const double adam_settings[][5] = {
    /* lr, beta1, beta2, eps, weight decay */
    {1e-3, 0.9, 0.999, 1e-8, 0},
    {1e-2, 0.9, 0.999, 1e-8, 0},
    {5e-2, 0.5, 0.99, 1e-3, 0.05},
    {1e-2, 0.0, 0.0, 1e-8, 0},   /* sign-like steps */
    {2e-2, 0.95, 0.9999, 1e-1, 0.2}, /* eps dominating small gradients */
};

static void test_adam_matches_reference(void **state)
{
    (void)state;
    double worst_all = 0;
    for (size_t s = 0; s < sizeof adam_settings / sizeof adam_settings[0]; s++) {
        const double *h = adam_settings[s];
        cvae_optimizer *opt = NULL;
        assert_int_equal(cvae_optimizer_create_adam(h[0], h[1], h[2], h[3], h[4], &opt), CVAE_OK);
        assert_non_null(opt);
        assert_int_equal(cvae__optimizer_bind(opt, NP, 42), CVAE_OK);
        ref_adam r = {h[0], h[1], h[2], h[3], h[4], {0}, {0}, {0}, {0}};
        float p[NP], g[NP];
        for (int i = 0; i < NP; i++)
            p[i] = init_at(i), r.p[i] = p[i];
        for (int t = 1; t <= STEPS; t++) {
            for (int i = 0; i < NP; i++) {
                g[i] = grad_at(i, t);
                ref_adam_step(&r, i, t, g[i]);
            }
            cvae__optimizer_begin_step(opt);
            cvae__optimizer_update(opt, p, g, 0, NP);
        }
        double e = max_rel(p, r.p, NP);
        print_message("adam setting %zu: max rel error %.3e\n", s, e);
        worst_all = fmax(worst_all, e);
        assert_true(e < REL_TOL);
        /* The parameters did move (a no-op optimizer would fail above only
         * if the reference also stood still). */
        assert_true(fabs(r.p[1] - init_at(1)) > 1e-3);
        cvae_optimizer_destroy(opt);
    }
    print_message("adam: max rel error over all settings %.3e (tol %.0e)\n", worst_all, REL_TOL);
}

/* SGD with momentum, PyTorch convention: v = mu v + (g + wd p); p -= lr v. */
static void test_sgd_matches_reference(void **state)
{
    (void)state;
    static const double settings[][3] = {
        /* lr, momentum, weight decay */
        {1e-2, 0.9, 0},
        {5e-3, 0.9, 0.01},
        {1e-3, 0.0, 0.0}, /* plain gradient descent */
        {2e-3, 0.5, 0.3},
    };
    for (size_t s = 0; s < sizeof settings / sizeof settings[0]; s++) {
        const double lr = settings[s][0], mom = settings[s][1], wd = settings[s][2];
        cvae_optimizer *opt = NULL;
        assert_int_equal(cvae_optimizer_create_sgd(lr, mom, wd, &opt), CVAE_OK);
        assert_int_equal(cvae__optimizer_bind(opt, NP, 7), CVAE_OK);
        double rp[NP], rv[NP] = {0};
        float p[NP], g[NP];
        for (int i = 0; i < NP; i++)
            p[i] = init_at(i), rp[i] = p[i];
        for (int t = 1; t <= STEPS; t++) {
            for (int i = 0; i < NP; i++) {
                g[i] = grad_at(i, t) * 0.01f; /* keep lr*g moderate */
                double gi = g[i] + wd * rp[i];
                rv[i] = mom * rv[i] + gi;
                rp[i] -= lr * rv[i];
            }
            cvae__optimizer_begin_step(opt);
            cvae__optimizer_update(opt, p, g, 0, NP);
        }
        double e = max_rel(p, rp, NP);
        print_message("sgd setting %zu: max rel error %.3e\n", s, e);
        assert_true(e < REL_TOL);
        cvae_optimizer_destroy(opt);
    }
}

/* Only [offset, offset+count) changes; frozen entries keep values and
 * state, and when they are updated later they take Adam's step for the
 * global step count (bias corrections follow the optimizer's step, as the
 * moments of a frozen entry simply stay zero). */
static void test_update_subrange(void **state)
{
    (void)state;
    enum { N = 20, OFF = 5, CNT = 7 };
    cvae_optimizer *opt = NULL;
    assert_int_equal(cvae_optimizer_create_adam(1e-2, 0.9, 0.999, 1e-8, 0.01, &opt), CVAE_OK);
    assert_int_equal(cvae__optimizer_bind(opt, N, 1), CVAE_OK);
    ref_adam r = {1e-2, 0.9, 0.999, 1e-8, 0.01, {0}, {0}, {0}, {0}};
    float p[N], g[N], before[N];
    for (int i = 0; i < N; i++)
        p[i] = init_at(i), r.p[i] = p[i];

    for (int t = 1; t <= 3; t++) {
        memcpy(before, p, sizeof p);
        for (int i = 0; i < N; i++)
            g[i] = grad_at(i, t);
        cvae__optimizer_begin_step(opt);
        cvae__optimizer_update(opt, p, g, OFF, CNT);
        for (int i = OFF; i < OFF + CNT; i++)
            ref_adam_step(&r, i, t, g[i]);
        for (int i = 0; i < N; i++) {
            if (i >= OFF && i < OFF + CNT) {
                assert_true(p[i] != before[i]);
            } else {
                assert_memory_equal(&p[i], &before[i], sizeof(float));
                assert_true(opt->m[i] == 0.0f && opt->v[i] == 0.0f);
            }
        }
    }
    /* Step 4 over everything, step 5 over two disjoint ranges. */
    for (int t = 4; t <= 5; t++) {
        for (int i = 0; i < N; i++) {
            g[i] = grad_at(i, t);
            ref_adam_step(&r, i, t, g[i]);
        }
        cvae__optimizer_begin_step(opt);
        if (t == 4) {
            cvae__optimizer_update(opt, p, g, 0, N);
        } else {
            cvae__optimizer_update(opt, p, g, 0, 11);
            cvae__optimizer_update(opt, p, g, 11, N - 11);
        }
    }
    double e = max_rel(p, r.p, N);
    print_message("subrange: max rel error %.3e\n", e);
    assert_true(e < REL_TOL);
    cvae_optimizer_destroy(opt);
}

/* A cheap stand-in for grad_at and init_at on long buffers (the libm calls
 * dominated the run time under valgrind): hashed mantissas in [-1, 1)
 * times 1e-2 .. 1e2, some exact zeros. */
static float hashed(size_t i, int t)
{
    static const float mag[5] = {1e-2f, 1e-1f, 1.0f, 1e1f, 1e2f};
    uint64_t h = (uint64_t)i * 0x9E3779B97F4A7C15u + (uint64_t)t * 0xBF58476D1CE4E5B9u;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBu;
    h ^= h >> 29;
    if (h % 23 == 0)
        return 0.0f;
    return ((float)(h >> 40) / (float)(1u << 23) - 1.0f) * mag[i % 5];
}

/* Runs `steps` updates of n parameters from a fixed start with the given
 * path and thread count, the range [off, off + n) of a buffer of off + n,
 * cut into pieces of `piece` parameters (0: one call). */
typedef struct run_out {
    float *p, *m, *v;
} run_out;

static run_out run_updates(int adam, const double *h, cvae__optimizer_simd simd, int threads,
                           size_t off, size_t n, size_t piece, int steps)
{
    cvae_optimizer *opt = NULL;
    if (adam)
        assert_int_equal(cvae_optimizer_create_adam(h[0], h[1], h[2], h[3], h[4], &opt), CVAE_OK);
    else
        assert_int_equal(cvae_optimizer_create_sgd(h[0], h[1], h[4], &opt), CVAE_OK);
    const size_t total = off + n;
    assert_int_equal(cvae__optimizer_bind(opt, total, 5), CVAE_OK);
    float *p = malloc(total * sizeof *p), *g = malloc(total * sizeof *g);
    assert_non_null(p);
    assert_non_null(g);
    for (size_t i = 0; i < total; i++)
        p[i] = hashed(i, 0) * 0.01f;
    const int before = cvae__threads_get();
    cvae__threads_set(threads);
    for (int t = 1; t <= steps; t++) {
        for (size_t i = 0; i < total; i++)
            g[i] = hashed(i, t);
        cvae__optimizer_begin_step(opt);
        if (!piece) {
            cvae__optimizer_update_with(opt, simd, p, g, off, n);
        } else {
            for (size_t a = off; a < total; a += piece) {
                const size_t len = total - a < piece ? total - a : piece;
                cvae__optimizer_update_with(opt, simd, p, g, a, len);
            }
        }
    }
    cvae__threads_set(before);
    run_out r = {p, malloc(total * sizeof(float)), malloc(total * sizeof(float))};
    assert_non_null(r.m);
    assert_non_null(r.v);
    memcpy(r.m, opt->m, total * sizeof(float));
    if (adam)
        memcpy(r.v, opt->v, total * sizeof(float));
    else
        memset(r.v, 0, total * sizeof(float));
    free(g);
    cvae_optimizer_destroy(opt);
    return r;
}

static void free_run(run_out *r)
{
    free(r->p);
    free(r->m);
    free(r->v);
}

static void expect_same_bits(const run_out *a, const run_out *b, size_t total)
{
    assert_memory_equal(a->p, b->p, total * sizeof(float));
    assert_memory_equal(a->m, b->m, total * sizeof(float));
    assert_memory_equal(a->v, b->v, total * sizeof(float));
}

/* The vector paths do the scalar loop's float operations in its order, so
 * every path, and any cut of the range into calls (whose ends run in the
 * scalar loop), gives the same bits. A path the CPU lacks falls back to a
 * narrower one, which this still checks. */
static void test_paths_identical(void **state)
{
    (void)state;
    enum { N = 1003, OFF = 3 };
    static const cvae__optimizer_simd paths[] = {CVAE__OPTIMIZER_SIMD_SSE2,
                                                 CVAE__OPTIMIZER_SIMD_AVX,
                                                 CVAE__OPTIMIZER_SIMD_AUTO};
    for (size_t s = 0; s < sizeof adam_settings / sizeof adam_settings[0]; s++) {
        run_out ref = run_updates(1, adam_settings[s], CVAE__OPTIMIZER_SIMD_SCALAR, 1, OFF, N, 0,
                                  20);
        /* the reference itself moved, and is finite */
        assert_true(ref.p[OFF + 1] != hashed(OFF + 1, 0) * 0.01f);
        assert_true(isfinite(ref.p[OFF + N - 1]) && isfinite(ref.v[OFF + N - 1]));
        for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
            run_out r = run_updates(1, adam_settings[s], paths[k], 1, OFF, N, 0, 20);
            expect_same_bits(&ref, &r, OFF + N);
            free_run(&r);
        }
        /* odd pieces: vector bodies and scalar tails everywhere */
        run_out r = run_updates(1, adam_settings[s], CVAE__OPTIMIZER_SIMD_AUTO, 1, OFF, N, 13, 20);
        expect_same_bits(&ref, &r, OFF + N);
        free_run(&r);
        free_run(&ref);
    }
}

/* Long ranges are split across threads at multiples of 16 parameters; the
 * result must not depend on it. */
static void test_thread_split_identical(void **state)
{
    (void)state;
    const size_t n = ((size_t)1 << 18) + 21, off = 5; /* 4 parts of >= 2^16 */
    static const double sgd_h[5] = {1e-2, 0.9, 0, 0, 0.01};
    for (int adam = 0; adam < 2; adam++) {
        const double *h = adam ? adam_settings[2] : sgd_h;
        run_out one = run_updates(adam, h, CVAE__OPTIMIZER_SIMD_AUTO, 1, off, n, 0, 3);
        for (int threads = 2; threads <= 4; threads += 2) {
            run_out r = run_updates(adam, h, CVAE__OPTIMIZER_SIMD_AUTO, threads, off, n, 0, 3);
            expect_same_bits(&one, &r, off + n);
            free_run(&r);
        }
        /* and against the scalar loop */
        run_out s = run_updates(adam, h, CVAE__OPTIMIZER_SIMD_SCALAR, 1, off, n, 0, 3);
        expect_same_bits(&one, &s, off + n);
        free_run(&s);
        free_run(&one);
    }
}

/* Several ranges with gaps (frozen tensors) in one call: the same bits as
 * updating each range in its own call, at any thread count, and the gaps
 * untouched. The ranges are of every kind the cut must handle: shorter
 * than a vector, odd offsets and lengths, one long enough that parts of
 * 2^16 fall inside it, and consecutive short ones that a cut between them
 * can land on. */
static void test_ranges_identical(void **state)
{
    (void)state;
    static const size_t off[] = {3, 40, 45, 70000, 70001 + 7, 70100, 400000};
    static const size_t cnt[] = {5, 5, 20000, 1, 80, 300000, 33};
    enum { R = sizeof off / sizeof off[0] };
    const size_t total = off[R - 1] + cnt[R - 1] + 9;
    float *p0 = malloc(total * sizeof *p0), *g = malloc(total * sizeof *g);
    assert_non_null(p0);
    assert_non_null(g);
    for (size_t i = 0; i < total; i++)
        p0[i] = hashed(i, 0) * 0.01f;
    /* per run: p, m, v; run 0 range by range, runs 1-3 at that many
     * threads, runs 4 and 5 at 2 threads cut at a quarter and at three */
    float *res[6][3];
    for (int run = 0; run < 6; run++) {
        cvae_optimizer *opt = NULL;
        assert_int_equal(cvae_optimizer_create_adam(1e-2, 0.9, 0.999, 1e-8, 0.01, &opt), CVAE_OK);
        assert_int_equal(cvae__optimizer_bind(opt, total, 5), CVAE_OK);
        float *p = malloc(total * sizeof *p);
        assert_non_null(p);
        memcpy(p, p0, total * sizeof *p);
        const int before = cvae__threads_get();
        cvae__threads_set(run == 0 ? 1 : run > 3 ? 2 : run);
        cvae__parallel_fix_share(run == 4 ? 0.25 : run == 5 ? 0.75 : 0.0);
        for (int t = 1; t <= 3; t++) {
            for (size_t i = 0; i < total; i++)
                g[i] = hashed(i, t);
            cvae__optimizer_begin_step(opt);
            if (run == 0)
                for (int r = 0; r < R; r++)
                    cvae__optimizer_update(opt, p, g, off[r], cnt[r]);
            else
                cvae__optimizer_update_ranges(opt, p, g, off, cnt, R);
        }
        cvae__threads_set(before);
        cvae__parallel_fix_share(0.0);
        res[run][0] = p;
        res[run][1] = malloc(total * sizeof(float));
        res[run][2] = malloc(total * sizeof(float));
        assert_non_null(res[run][1]);
        assert_non_null(res[run][2]);
        memcpy(res[run][1], opt->m, total * sizeof(float));
        memcpy(res[run][2], opt->v, total * sizeof(float));
        cvae_optimizer_destroy(opt);
    }
    /* the per-range run moved the ranges (all but the rare entry whose
     * start and gradients were all zero) and nothing else */
    size_t inside_n = 0, moved = 0;
    for (size_t i = 0, r = 0; i < total; i++) {
        while (r < R && i >= off[r] + cnt[r])
            r++;
        if (r < R && i >= off[r]) {
            inside_n++;
            moved += res[0][0][i] != p0[i];
        } else {
            assert_true(res[0][0][i] == p0[i]);
            assert_true(res[0][1][i] == 0.0f && res[0][2][i] == 0.0f);
        }
    }
    assert_true(moved + 10 >= inside_n);
    for (int run = 1; run < 6; run++)
        for (int a = 0; a < 3; a++)
            assert_memory_equal(res[0][a], res[run][a], total * sizeof(float));
    for (int run = 0; run < 6; run++)
        for (int a = 0; a < 3; a++)
            free(res[run][a]);
    free(p0);
    free(g);
}

static void test_all_finite(void **state)
{
    (void)state;
    enum { N = 140000 }; /* two parts of >= 2^16 with 2 threads */
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    static const size_t sizes[] = {1, 15, 16, 17, 33, 1000, N};
    static const float finite[] = {0.0f, -0.0f, 1.0f, -3.5f, FLT_MAX, -FLT_MAX, FLT_MIN,
                                   1e-45f /* denormal */};
    const float bad[] = {INFINITY, -INFINITY, NAN, -NAN};
    const int before = cvae__threads_get();
    /* 1 thread; 2, cut in halves, at a quarter and at three quarters */
    static const double shares[] = {0.0, 0.0, 0.25, 0.75};
    for (int run = 0; run < 4; run++) {
        cvae__threads_set(run ? 2 : 1);
        cvae__parallel_fix_share(shares[run]);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const size_t n = sizes[s];
            for (size_t i = 0; i < n; i++)
                x[i] = finite[i % (sizeof finite / sizeof finite[0])];
            assert_int_equal(cvae__all_finite(x, n), 1);
            /* the ends, the middle, the first 16, and both sides of a cut
             * at a quarter or three quarters */
            const size_t q1 = n / 4 + 1 < n ? n / 4 + 1 : n - 1;
            const size_t q3 = 3 * n / 4 + 1 < n ? 3 * n / 4 + 1 : n - 1;
            const size_t where[] = {0,     n / 2, n - 1,     n > 16 ? 15 : 0, n > 17 ? 16 : 0,
                                    n / 4, q1,    3 * n / 4, q3};
            for (size_t w = 0; w < sizeof where / sizeof where[0]; w++)
                for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
                    const float keep = x[where[w]];
                    x[where[w]] = bad[b];
                    assert_int_equal(cvae__all_finite(x, n), 0);
                    x[where[w]] = keep;
                }
            /* a bad value just past the range is not looked at */
            if (n < N) {
                x[n] = NAN;
                assert_int_equal(cvae__all_finite(x, n), 1);
            }
        }
    }
    cvae__threads_set(before);
    cvae__parallel_fix_share(0.0);
    assert_int_equal(cvae__all_finite(x, 0), 1);
    free(x);
}

static void test_bind(void **state)
{
    (void)state;
    cvae_optimizer *opt = NULL;
    assert_int_equal(cvae_optimizer_create_adam(1e-2, 0.9, 0.999, 1e-8, 0, &opt), CVAE_OK);
    assert_int_equal(cvae__optimizer_bind(opt, 10, 99), CVAE_OK);
    float p[10], g[10];
    for (int i = 0; i < 10; i++)
        p[i] = 1.0f, g[i] = 0.5f;
    cvae__optimizer_begin_step(opt);
    cvae__optimizer_update(opt, p, g, 0, 10);
    const float m0 = opt->m[3];
    assert_true(m0 != 0.0f);

    /* Same layout again: accepted, state kept (not reset). */
    assert_int_equal(cvae__optimizer_bind(opt, 10, 99), CVAE_OK);
    assert_true(opt->m[3] == m0);
    /* A different layout: refused, state untouched, still usable. */
    assert_int_equal(cvae__optimizer_bind(opt, 11, 99), CVAE_E_INVALID_ARG);
    assert_true(cvae_last_error()[0] != 0);
    assert_int_equal(cvae__optimizer_bind(opt, 10, 98), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__optimizer_bind(opt, 9, 99), CVAE_E_INVALID_ARG);
    assert_true(opt->n == 10 && opt->layout_id == 99 && opt->m[3] == m0);
    cvae__optimizer_begin_step(opt);
    cvae__optimizer_update(opt, p, g, 0, 10);
    assert_true(p[0] < 1.0f);
    cvae_optimizer_destroy(opt);

    /* Sizes: zero and overflowing counts are invalid arguments. */
    opt = NULL;
    assert_int_equal(cvae_optimizer_create_sgd(1e-2, 0.9, 0, &opt), CVAE_OK);
    assert_int_equal(cvae__optimizer_bind(opt, 0, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__optimizer_bind(opt, SIZE_MAX, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__optimizer_bind(opt, SIZE_MAX / 2 + 1, 1), CVAE_E_INVALID_ARG);
    /* Still unbound, so a real layout binds fine afterwards. */
    assert_int_equal(cvae__optimizer_bind(opt, 4, 1), CVAE_OK);
    assert_int_equal(cvae__optimizer_bind(opt, 4, 2), CVAE_E_INVALID_ARG);
    cvae_optimizer_destroy(opt);
    assert_int_equal(cvae__optimizer_bind(NULL, 4, 1), CVAE_E_INVALID_ARG);
}

static void expect_adam_rejected(double lr, double b1, double b2, double eps, double wd)
{
    cvae_optimizer *opt = (cvae_optimizer *)(uintptr_t)0x1; /* must be reset to NULL */
    cvae__fail(CVAE_OK, "%s", "");
    assert_int_equal(cvae_optimizer_create_adam(lr, b1, b2, eps, wd, &opt), CVAE_E_INVALID_ARG);
    assert_null(opt);
    assert_true(cvae_last_error()[0] != 0);
}

static void expect_sgd_rejected(double lr, double mom, double wd)
{
    cvae_optimizer *opt = (cvae_optimizer *)(uintptr_t)0x1;
    cvae__fail(CVAE_OK, "%s", "");
    assert_int_equal(cvae_optimizer_create_sgd(lr, mom, wd, &opt), CVAE_E_INVALID_ARG);
    assert_null(opt);
    assert_true(cvae_last_error()[0] != 0);
}

static void test_create_validation(void **state)
{
    (void)state;
    const double bad_lr[] = {0.0, -1e-3, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_lr / sizeof bad_lr[0]; i++) {
        expect_adam_rejected(bad_lr[i], 0.9, 0.999, 1e-8, 0);
        expect_sgd_rejected(bad_lr[i], 0.9, 0);
    }
    const double bad_beta[] = {-0.1, 1.0, 1.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_beta / sizeof bad_beta[0]; i++) {
        expect_adam_rejected(1e-3, bad_beta[i], 0.999, 1e-8, 0);
        expect_adam_rejected(1e-3, 0.9, bad_beta[i], 1e-8, 0);
        expect_sgd_rejected(1e-3, bad_beta[i], 0); /* momentum has the same range */
    }
    const double bad_eps[] = {0.0, -1e-8, NAN};
    for (size_t i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++)
        expect_adam_rejected(1e-3, 0.9, 0.999, bad_eps[i], 0);
    const double bad_wd[] = {-1e-4, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_wd / sizeof bad_wd[0]; i++) {
        expect_adam_rejected(1e-3, 0.9, 0.999, 1e-8, bad_wd[i]);
        expect_sgd_rejected(1e-3, 0.9, bad_wd[i]);
    }
    assert_int_equal(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_optimizer_create_sgd(1e-3, 0.9, 0, NULL), CVAE_E_INVALID_ARG);

    /* The edges of the documented ranges are accepted. */
    cvae_optimizer *opt = NULL;
    assert_int_equal(cvae_optimizer_create_adam(1e-6, 0.0, 0.0, 1e-12, 0.0, &opt), CVAE_OK);
    assert_non_null(opt);
    assert_int_equal(opt->kind, CVAE_OPTIMIZER_ADAM);
    cvae_optimizer_destroy(opt);
    assert_int_equal(cvae_optimizer_create_adam(1.0, 0.9999, 0.99999, 1.0, 0.5, &opt), CVAE_OK);
    cvae_optimizer_destroy(opt);
    assert_int_equal(cvae_optimizer_create_sgd(1e-6, 0.0, 0.0, &opt), CVAE_OK);
    assert_int_equal(opt->kind, CVAE_OPTIMIZER_SGD);
    cvae_optimizer_destroy(opt);
    assert_int_equal(cvae_optimizer_create_sgd(0.5, 0.9999, 0.1, &opt), CVAE_OK);
    cvae_optimizer_destroy(opt);
}

static void test_create_from_config(void **state)
{
    (void)state;
    cvae_optimizer *opt = (cvae_optimizer *)(uintptr_t)0x1;
    assert_int_equal(cvae_optimizer_create_from_config(NULL, &opt), CVAE_E_INVALID_ARG);
    assert_null(opt);
    cvae_config *cfg = NULL;
    assert_int_equal(cvae_config_create(&cfg), CVAE_OK);
    assert_int_equal(cvae_optimizer_create_from_config(cfg, NULL), CVAE_E_INVALID_ARG);

    /* Defaults: Adam, lr 1e-3, betas 0.9/0.999, eps 1e-8, no decay. */
    assert_int_equal(cvae_optimizer_create_from_config(cfg, &opt), CVAE_OK);
    assert_int_equal(opt->kind, CVAE_OPTIMIZER_ADAM);
    assert_true(opt->lr == 1e-3 && opt->beta1 == 0.9 && opt->beta2 == 0.999 && opt->eps == 1e-8 &&
                opt->weight_decay == 0.0);
    cvae_optimizer_destroy(opt);

    assert_int_equal(cvae_config_set_optimizer(cfg, CVAE_OPTIMIZER_SGD), CVAE_OK);
    assert_int_equal(cvae_config_set_learning_rate(cfg, 0.05), CVAE_OK);
    assert_int_equal(cvae_config_set_momentum(cfg, 0.8), CVAE_OK);
    assert_int_equal(cvae_config_set_weight_decay(cfg, 0.01), CVAE_OK);
    assert_int_equal(cvae_optimizer_create_from_config(cfg, &opt), CVAE_OK);
    assert_int_equal(opt->kind, CVAE_OPTIMIZER_SGD);
    assert_true(opt->lr == 0.05 && opt->momentum == 0.8 && opt->weight_decay == 0.01);
    /* It behaves as SGD: one step from zero velocity is p -= lr (g + wd p). */
    assert_int_equal(cvae__optimizer_bind(opt, 1, 0), CVAE_OK);
    float p = 2.0f, g = 1.0f;
    cvae__optimizer_begin_step(opt);
    cvae__optimizer_update(opt, &p, &g, 0, 1);
    assert_true(fabs(p - (2.0 - 0.05 * (1.0 + 0.01 * 2.0))) < 1e-6);
    cvae_optimizer_destroy(opt);
    cvae_config_destroy(cfg);
}

static void test_set_learning_rate(void **state)
{
    (void)state;
    cvae_optimizer *opt = NULL;
    assert_int_equal(cvae_optimizer_create_sgd(0.1, 0.0, 0.0, &opt), CVAE_OK);
    assert_int_equal(cvae__optimizer_bind(opt, 2, 0), CVAE_OK);
    float p[2] = {1.0f, -1.0f}, g[2] = {0.5f, -0.25f};

    assert_int_equal(cvae_optimizer_set_learning_rate(opt, 0.5), CVAE_OK);
    cvae__optimizer_begin_step(opt);
    cvae__optimizer_update(opt, p, g, 0, 2);
    assert_true(p[0] == 0.75f && p[1] == -0.875f); /* exact in binary */

    const double bad[] = {0.0, -0.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cvae_optimizer_set_learning_rate(opt, bad[i]), CVAE_E_INVALID_ARG);
        assert_true(opt->lr == 0.5);
    }
    assert_int_equal(cvae_optimizer_set_learning_rate(NULL, 0.1), CVAE_E_INVALID_ARG);
    cvae_optimizer_destroy(opt);

    /* Adam's step scales with lr: the first step of Adam is lr * sign(g)
     * (up to eps), whatever the gradient's magnitude. */
    assert_int_equal(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, &opt), CVAE_OK);
    assert_int_equal(cvae__optimizer_bind(opt, 2, 0), CVAE_OK);
    assert_int_equal(cvae_optimizer_set_learning_rate(opt, 0.25), CVAE_OK);
    float q[2] = {0.0f, 0.0f}, h[2] = {3.0f, -0.001f};
    cvae__optimizer_begin_step(opt);
    cvae__optimizer_update(opt, q, h, 0, 2);
    assert_true(fabs(q[0] + 0.25) < 1e-5 && fabs(q[1] - 0.25) < 1e-4);
    cvae_optimizer_destroy(opt);
}

static void test_destroy(void **state)
{
    (void)state;
    cvae_optimizer_destroy(NULL);
    cvae_optimizer *opt = NULL;
    assert_int_equal(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, &opt), CVAE_OK);
    cvae_optimizer_destroy(opt); /* never bound: no state to free */
}

/* f(p) = 0.5 sum a_i (p_i - c_i)^2 with curvatures over a decade. */
#define QN 16
static double quad(const float *p, float *g)
{
    double f = 0;
    for (int i = 0; i < QN; i++) {
        double a = 0.5 + 0.3 * i, c = 2.0 * sin(1.7 * i) + 0.5;
        double d = p[i] - c;
        f += 0.5 * a * d * d;
        if (g)
            g[i] = (float)(a * d);
    }
    return f;
}

static void test_quadratic_convergence(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        cvae_optimizer *opt = NULL;
        if (kind == 0)
            assert_int_equal(cvae_optimizer_create_adam(0.1, 0.9, 0.999, 1e-8, 0, &opt), CVAE_OK);
        else
            assert_int_equal(cvae_optimizer_create_sgd(0.05, 0.9, 0, &opt), CVAE_OK);
        assert_int_equal(cvae__optimizer_bind(opt, QN, 3), CVAE_OK);
        float p[QN] = {0}, g[QN];
        const double f0 = quad(p, NULL);
        double lr = kind == 0 ? 0.1 : 0.05;
        for (int t = 1; t <= 1500; t++) {
            /* Adam with a fixed lr hovers ~lr around the minimum; a step
             * decay lets it settle. */
            if (kind == 0 && t % 250 == 0) {
                lr *= 0.3;
                assert_int_equal(cvae_optimizer_set_learning_rate(opt, lr), CVAE_OK);
            }
            quad(p, g);
            cvae__optimizer_begin_step(opt);
            cvae__optimizer_update(opt, p, g, 0, QN);
        }
        const double f = quad(p, NULL);
        double maxd = 0;
        for (int i = 0; i < QN; i++)
            maxd = fmax(maxd, fabs(p[i] - (2.0 * sin(1.7 * i) + 0.5)));
        print_message("%s: f %.3e -> %.3e, max |p - p*| %.3e\n", kind == 0 ? "adam" : "sgd", f0,
                      f, maxd);
        assert_true(f < 1e-8 * f0);
        assert_true(maxd < 1e-3);
        cvae_optimizer_destroy(opt);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_matches_reference),
        cmocka_unit_test(test_sgd_matches_reference),
        cmocka_unit_test(test_update_subrange),
        cmocka_unit_test(test_paths_identical),
        cmocka_unit_test(test_thread_split_identical),
        cmocka_unit_test(test_ranges_identical),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_create_from_config),
        cmocka_unit_test(test_set_learning_rate),
        cmocka_unit_test(test_destroy),
        cmocka_unit_test(test_quadratic_convergence),
        cmocka_unit_test(test_all_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
