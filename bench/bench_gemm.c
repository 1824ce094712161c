/* GFLOP/s of cvae__sgemm with each micro-kernel (BLIS's own and ours) on a
 * large square product and on every GEMM shape of one training step of the
 * default MNIST model (batch 100), with 1 and 2 threads.
 *
 *   bench_gemm [repeats [max_threads [min_sample_ms [wall|cpu]]]]
 *                                          (defaults: 5 2 20 wall)
 *
 * Each number is the best (and in brackets the median) of `repeats`
 * samples, a sample being enough back-to-back calls to last min_sample_ms.
 * The machine may be shared, so the load average is printed before and
 * after; "cpu" times with the process's CPU clock instead of the wall
 * clock, which on a busy machine gives the single-thread speed of the code
 * rather than of the share of a core it got (with 2 threads it counts both
 * threads, including their waiting, so it is for 1 thread only). The per-batch total weights each shape by how often one
 * training step calls it (per-image conv products 100 times). */
#define _POSIX_C_SOURCE 200112L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"

#define MAX_REPEATS 64
#define N_KERNELS 3

typedef struct shape {
    const char *name;
    int m, n, k, ta, tb;
    int lda, ldb, ldc; /* 0: tight */
    float beta;
    int per_batch; /* calls per training step; 0: not a model shape */
} shape;

/* The model's products, from lib/layers/conv.c, lib/layers/dense.c and lib/model/network.c with
 * the default configuration: branch 1 = 16 3x3 filters on 1x28x28, branch 2
 * = 32 5x5 filters on 16x14x14, D = 3136 + 1568 = 4704 concatenated
 * features (the encoder multiplies each branch's block against a column
 * block of its 512 x 4704 weights, hence ld 4704), m = 512, s = 50, 512
 * category units, 10 clusters, one 2x2 stride-2 transposed conv back to the
 * image. */
static const shape shapes[] = {
    {"square", 2000, 2000, 2000, 0, 0, 0, 0, 0, 0.0f, 0},
    {"conv1 fwd (per image)", 16, 784, 9, 0, 0, 0, 0, 0, 0.0f, 100},
    {"conv1 dW (per image)", 16, 9, 784, 0, 1, 0, 0, 0, 1.0f, 100},
    {"conv2 fwd (per image)", 32, 196, 400, 0, 0, 0, 0, 0, 0.0f, 100},
    {"conv2 dW (per image)", 32, 400, 196, 0, 1, 0, 0, 0, 1.0f, 100},
    {"conv2 dX (per image)", 400, 196, 32, 1, 0, 0, 0, 0, 0.0f, 100},
    {"deconv fwd (per image)", 4, 196, 16, 1, 0, 0, 0, 0, 0.0f, 100},
    {"deconv dX (per image)", 16, 196, 4, 0, 0, 0, 0, 0, 0.0f, 100},
    {"deconv dW (per image)", 16, 4, 196, 0, 1, 0, 0, 0, 1.0f, 100},
    {"encoder fwd, branch 1 block", 100, 512, 3136, 0, 1, 0, 4704, 0, 0.0f, 1},
    {"encoder fwd, branch 2 block", 100, 512, 1568, 0, 1, 0, 4704, 0, 1.0f, 1},
    {"encoder dW, branch 1 block", 512, 3136, 100, 1, 0, 0, 0, 4704, 0.0f, 1},
    {"encoder dW, branch 2 block", 512, 1568, 100, 1, 0, 0, 0, 4704, 0.0f, 1},
    {"encoder dX, branch 1 block", 100, 3136, 512, 0, 0, 0, 4704, 0, 1.0f, 1},
    {"encoder dX, branch 2 block", 100, 1568, 512, 0, 0, 0, 4704, 0, 0.0f, 1},
    {"mu/logvar fwd", 100, 50, 512, 0, 1, 0, 0, 0, 0.0f, 2},
    {"mu/logvar dX", 100, 512, 50, 0, 0, 0, 0, 0, 1.0f, 2},
    {"mu/logvar dW", 50, 512, 100, 1, 0, 0, 0, 0, 0.0f, 2},
    {"category1 fwd", 100, 512, 50, 0, 1, 0, 0, 0, 0.0f, 1},
    {"category1 dW", 512, 50, 100, 1, 0, 0, 0, 0, 0.0f, 1},
    {"category1 dz", 100, 50, 512, 0, 0, 0, 0, 0, 1.0f, 1},
    {"category2 fwd", 100, 10, 512, 0, 1, 0, 0, 0, 0.0f, 1},
    {"category2 dX", 100, 512, 10, 0, 0, 0, 0, 0, 0.0f, 1},
    {"category2 dW", 10, 512, 100, 1, 0, 0, 0, 0, 0.0f, 1},
    {"decoder1 fwd", 100, 512, 50, 0, 1, 0, 0, 0, 0.0f, 1},
    {"decoder1 dX", 100, 50, 512, 0, 0, 0, 0, 0, 0.0f, 1},
    {"decoder1 dW", 512, 50, 100, 1, 0, 0, 0, 0, 0.0f, 1},
    {"decoder2 fwd", 100, 3136, 512, 0, 1, 0, 0, 0, 0.0f, 1},
    {"decoder2 dX", 100, 512, 3136, 0, 0, 0, 0, 0, 0.0f, 1},
    {"decoder2 dW", 3136, 512, 100, 1, 0, 0, 0, 0, 0.0f, 1},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static const cvae__gemm_kernel kernels[N_KERNELS] = {
    CVAE__GEMM_KERNEL_BLIS, CVAE__GEMM_KERNEL_AVX2, CVAE__GEMM_KERNEL_AVX512};

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_load(const char *when)
{
    char buf[128] = "unavailable";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            strcpy(buf, "unavailable");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    printf("# load average %s: %s\n", when, buf);
}

static float *alloc_filled(size_t n, cvae__rng *r)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_gemm: cannot allocate %zu floats\n", n);
        exit(1);
    }
    cvae__rng_uniform_fill(r, p, (int64_t)n, 1.0f);
    return p;
}

typedef struct result {
    double best, median; /* seconds per call */
} result;

static result measure(cvae__gemm_kernel kern, const shape *s, const float *a, int lda,
                      const float *b, int ldb, float *c, int ldc, int reps, double min_sample)
{
    /* Warm-up (BLIS's first call allocates its packing buffers), then as
     * many calls per sample as fill min_sample. */
    double t0 = now();
    cvae__sgemm_with(kern, s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, s->beta, c, ldc);
    double once = now() - t0;
    long inner = once > 0 ? (long)(min_sample / once) + 1 : 1000;
    double t[MAX_REPEATS];
    for (int r = 0; r < reps; r++) {
        t0 = now();
        for (long q = 0; q < inner; q++)
            cvae__sgemm_with(kern, s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb,
                             s->beta, c, ldc);
        t[r] = (now() - t0) / (double)inner;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    result res = {t[0], t[reps / 2]};
    return res;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int max_threads = argc > 2 ? atoi(argv[2]) : 2;
    double min_sample = (argc > 3 ? atof(argv[3]) : 20.0) * 1e-3;
    const char *clock_name = argc > 4 ? argv[4] : "wall";
    if (strcmp(clock_name, "cpu") == 0)
        clock_id = CLOCK_PROCESS_CPUTIME_ID;
    if (reps < 1 || reps > MAX_REPEATS || max_threads < 1 || min_sample <= 0 ||
        (strcmp(clock_name, "cpu") != 0 && strcmp(clock_name, "wall") != 0)) {
        fprintf(stderr,
                "usage: bench_gemm [repeats (1..%d) [max_threads [min_sample_ms [wall|cpu]]]]\n",
                MAX_REPEATS);
        return 2;
    }
    int avail[N_KERNELS];
    printf("# bench_gemm: GFLOP/s, best (median) of %d samples of >= %.0f ms, %s clock\n", reps,
           min_sample * 1e3, clock_name);
    printf("# default kernel: %s; available:",
           cvae__gemm_kernel_name(cvae__gemm_default_kernel()));
    for (int q = 0; q < N_KERNELS; q++) {
        avail[q] = cvae__gemm_kernel_available(kernels[q]);
        if (avail[q])
            printf(" %s", cvae__gemm_kernel_name(kernels[q]));
    }
    printf("\n");
    print_load("at start");

    cvae__rng rng;
    cvae__rng_seed(&rng, 7);
    static result res[2][N_SHAPES][N_KERNELS];
    for (int threads = 1; threads <= max_threads && threads <= 2; threads++) {
        cvae__threads_set(threads);
        printf("\n## %d thread%s\n", threads, threads > 1 ? "s" : "");
        printf("%-28s %5s %5s %5s %2s %5s |", "shape", "m", "n", "k", "op", "calls");
        for (int q = 0; q < N_KERNELS; q++)
            if (avail[q])
                printf(" %16s", cvae__gemm_kernel_name(kernels[q]));
        printf("\n");
        for (size_t si = 0; si < N_SHAPES; si++) {
            const shape *s = &shapes[si];
            int lda = s->lda ? s->lda : (s->ta ? s->m : s->k);
            int ldb = s->ldb ? s->ldb : (s->tb ? s->k : s->n);
            int ldc = s->ldc ? s->ldc : s->n;
            size_t a_rows = (size_t)(s->ta ? s->k : s->m);
            size_t b_rows = (size_t)(s->tb ? s->n : s->k);
            float *a = alloc_filled(a_rows * (size_t)lda, &rng);
            float *b = alloc_filled(b_rows * (size_t)ldb, &rng);
            float *c = alloc_filled((size_t)s->m * (size_t)ldc, &rng);
            double flops = 2.0 * s->m * s->n * s->k;
            printf("%-28s %5d %5d %5d %c%c ", s->name, s->m, s->n, s->k, s->ta ? 'T' : 'N',
                   s->tb ? 'T' : 'N');
            if (s->per_batch)
                printf("%5d |", s->per_batch);
            else
                printf("%5s |", "-");
            for (int q = 0; q < N_KERNELS; q++) {
                if (!avail[q])
                    continue;
                res[threads - 1][si][q] =
                    measure(kernels[q], s, a, lda, b, ldb, c, ldc, reps, min_sample);
                printf(" %7.1f (%6.1f)", flops / res[threads - 1][si][q].best * 1e-9,
                       flops / res[threads - 1][si][q].median * 1e-9);
                fflush(stdout);
            }
            printf("\n");
            free(a);
            free(b);
            free(c);
        }
        /* One training step's GEMMs: calls x best time per shape. */
        printf("%-28s %23s |", "model GEMMs per batch", "ms (GFLOP/s)");
        for (int q = 0; q < N_KERNELS; q++) {
            if (!avail[q])
                continue;
            double secs = 0.0, flops = 0.0;
            for (size_t si = 0; si < N_SHAPES; si++) {
                const shape *s = &shapes[si];
                secs += s->per_batch * res[threads - 1][si][q].best;
                flops += s->per_batch * 2.0 * s->m * s->n * s->k;
            }
            printf(" %7.2f (%6.1f)", secs * 1e3, flops / secs * 1e-9);
        }
        printf("\n");
    }
    cvae__threads_set(1);
    printf("\n");
    print_load("at end");
    return 0;
}
