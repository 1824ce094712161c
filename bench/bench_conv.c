/* GFLOP/s of the convolution layers on the model's MNIST shapes and of the
 * underlying SGEMM.
 *
 *   bench_conv [threads [repeats]]     (defaults: 1 thread, 7 repeats)
 *
 * Each measurement is repeated and the best and median times are reported;
 * the median is the fairer number on a shared machine. Convolution FLOPs
 * count the multiply-adds of the GEMMs only, 2*c_out*c_in*kh*kw*h_out*w_out
 * per image forward and twice that backward (dW and dx); im2col/col2im and
 * the bias add are overhead inside the measured time.
 *
 * Then the weight gradient alone, computed both ways the library can (an
 * im2col matrix + cvae__sgemm, and the implicit im2col product), in
 * alternated rounds within one process so that a busy machine slows both
 * alike: their ratio is the number to read. */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layers/conv.h"
#include "layers/im2col.h"
#include "convvae.h"
#include "core/gemm.h"
#include "core/memory.h"
#include "core/rng.h"

#define MAX_REPEATS 100

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double flops, double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double best = t[0], median = t[reps / 2];
    printf("%-44s best %8.2f GFLOP/s (%8.3f ms)  median %8.2f GFLOP/s (%8.3f ms)\n", name,
           flops / best * 1e-9, best * 1e3, flops / median * 1e-9, median * 1e3);
    fflush(stdout);
}

static float *alloc_floats(size_t n, cvae__rng *r)
{
    float *p = cvae__aligned_alloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_conv: cannot allocate %zu floats\n", n);
        exit(1);
    }
    cvae__rng_uniform_fill(r, p, (int64_t)n, 1.0f);
    return p;
}

static int bench_conv(const char *label, int n, int c_in, int h, int w, int c_out, int k,
                      int reps, cvae__rng *r)
{
    cvae__conv_geom g;
    if (cvae__conv_geom_init(&g, c_in, h, w, c_out, k, k, 1, CVAE__PAD_SAME) != CVAE_OK) {
        fprintf(stderr, "bench_conv: %s\n", cvae_last_error());
        return 1;
    }
    size_t nx = (size_t)n * c_in * h * w;
    size_t ny = (size_t)n * c_out * g.h_out * g.w_out;
    size_t nw = (size_t)c_out * c_in * k * k;
    float *x = alloc_floats(nx, r), *wt = alloc_floats(nw, r), *b = alloc_floats((size_t)c_out, r);
    float *y = alloc_floats(ny, r), *dy = alloc_floats(ny, r), *dx = alloc_floats(nx, r);
    float *dw = alloc_floats(nw, r), *db = alloc_floats((size_t)c_out, r);
    float *col = alloc_floats(cvae__conv_work_floats(&g), r);
    double flops = 2.0 * c_out * c_in * k * k * g.h_out * g.w_out * (double)n;
    double t[MAX_REPEATS];
    char name[128];

    cvae__conv2d_forward(&g, n, x, wt, b, y, col); /* warm-up: BLIS init, page faults */
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        cvae__conv2d_forward(&g, n, x, wt, b, y, col);
        t[i] = now() - t0;
    }
    snprintf(name, sizeof name, "%s forward", label);
    report(name, flops, t, reps);

    cvae__conv2d_backward(&g, n, x, wt, dy, dx, dw, db, col);
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        cvae__conv2d_backward(&g, n, x, wt, dy, dx, dw, db, col);
        t[i] = now() - t0;
    }
    snprintf(name, sizeof name, "%s backward (dx,dW,db)", label);
    report(name, 2.0 * flops, t, reps);

    float *bufs[] = {x, wt, b, y, dy, dx, dw, db, col};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        cvae__aligned_free(bufs[i]);
    return 0;
}

/* dW of n images, the explicit way (im2col + GEMM) and the implicit way,
 * alternated round by round. */
static int bench_dw(const char *label, int n, int c_in, int h, int w, int c_out, int k, int reps,
                    cvae__rng *r)
{
    cvae__conv_geom g;
    if (cvae__conv_geom_init(&g, c_in, h, w, c_out, k, k, 1, CVAE__PAD_SAME) != CVAE_OK) {
        fprintf(stderr, "bench_conv: %s\n", cvae_last_error());
        return 1;
    }
    if (!cvae__implicit_ok(&g)) {
        printf("%s: no implicit weight gradient on this CPU\n", label);
        return 0;
    }
    const int ckk = c_in * k * k, hw = g.h_out * g.w_out;
    const size_t x_img = (size_t)c_in * h * w, y_img = (size_t)c_out * hw;
    float *x = alloc_floats(x_img * n, r), *dy = alloc_floats(y_img * n, r);
    float *dw = alloc_floats((size_t)c_out * ckk, r), *dw2 = alloc_floats((size_t)c_out * ckk, r);
    float *col = alloc_floats(cvae__conv_col_floats(&g), r);
    float *work = alloc_floats(cvae__implicit_dw_floats(&g), r);
    const double flops = 2.0 * c_out * ckk * hw * (double)n;
    double te[MAX_REPEATS], ti[MAX_REPEATS];
    for (int rep = -1; rep < reps; rep++) { /* round -1 warms up */
        double t0 = now();
        for (int i = 0; i < n; i++) {
            cvae__im2col(&g, x + (size_t)i * x_img, col);
            cvae__sgemm(0, 1, c_out, ckk, hw, 1.0f, dy + (size_t)i * y_img, hw, col, hw,
                        i ? 1.0f : 0.0f, dw, ckk);
        }
        double t1 = now();
        for (int i = 0; i < n; i++)
            cvae__implicit_dw(&g, x + (size_t)i * x_img, dy + (size_t)i * y_img, i ? 1.0f : 0.0f,
                              dw2, work);
        double t2 = now();
        if (rep >= 0) {
            te[rep] = t1 - t0;
            ti[rep] = t2 - t1;
        }
    }
    double worst = 0;
    for (size_t j = 0; j < (size_t)c_out * ckk; j++) {
        double d = dw[j] - dw2[j];
        d = d < 0 ? -d : d;
        worst = d > worst ? d : worst;
    }
    char name[160];
    snprintf(name, sizeof name, "%s dW im2col+sgemm", label);
    report(name, flops, te, reps);
    snprintf(name, sizeof name, "%s dW implicit", label);
    report(name, flops, ti, reps);
    printf("%-44s median time explicit / implicit %.2fx (max |difference| %.1e)\n", label,
           te[reps / 2] / ti[reps / 2], worst);
    float *bufs[] = {x, dy, dw, dw2, col, work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        cvae__aligned_free(bufs[i]);
    return 0;
}

static void bench_sgemm(int size, int reps, cvae__rng *r)
{
    size_t nn = (size_t)size * size;
    float *a = alloc_floats(nn, r), *b = alloc_floats(nn, r), *c = alloc_floats(nn, r);
    double t[MAX_REPEATS];
    cvae__sgemm(0, 0, size, size, size, 1.0f, a, size, b, size, 0.0f, c, size);
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        cvae__sgemm(0, 0, size, size, size, 1.0f, a, size, b, size, 0.0f, c, size);
        t[i] = now() - t0;
    }
    char name[64];
    snprintf(name, sizeof name, "sgemm %dx%dx%d", size, size, size);
    report(name, 2.0 * (double)size * size * size, t, reps);
    cvae__aligned_free(a);
    cvae__aligned_free(b);
    cvae__aligned_free(c);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    if (reps < 1 || reps > MAX_REPEATS) {
        fprintf(stderr, "usage: bench_conv [threads [repeats 1..%d]]\n", MAX_REPEATS);
        return 2;
    }
    if (cvae_set_num_threads(threads) != CVAE_OK) {
        fprintf(stderr, "bench_conv: %s\n", cvae_last_error());
        return 2;
    }
    printf("libconvvae %s, %d thread(s), %d repeats\n", cvae_version_string(),
           cvae_get_num_threads(), reps);
    cvae__rng r;
    cvae__rng_seed(&r, 1);
    if (bench_conv("conv 100x1x28x28 -> 16 3x3 same", 100, 1, 28, 28, 16, 3, reps, &r) ||
        bench_conv("conv 100x16x14x14 -> 32 5x5 same", 100, 16, 14, 14, 32, 5, reps, &r) ||
        bench_conv("conv 100x16x28x28 -> 16 3x3 same", 100, 16, 28, 28, 16, 3, reps, &r) ||
        bench_conv("conv 100x32x14x14 -> 32 5x5 same", 100, 32, 14, 14, 32, 5, reps, &r) ||
        bench_dw("100x16x28x28 -> 16 3x3", 100, 16, 28, 28, 16, 3, reps, &r) ||
        bench_dw("100x16x14x14 -> 32 5x5", 100, 16, 14, 14, 32, 5, reps, &r) ||
        bench_dw("100x32x14x14 -> 32 5x5", 100, 32, 14, 14, 32, 5, reps, &r))
        return 1;
    bench_sgemm(2000, reps, &r);
    return 0;
}
