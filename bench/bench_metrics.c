/* Time of the clustering metrics: the Hungarian matching on a dense
 * D x D weight matrix (the worst case ACC meets when a model has as many
 * clusters as D) and all four metrics of a 70,000-image labelling.
 *
 *   bench_metrics [repeats]     (default 5; best and median are printed)
 *
 * Unit tests check the answers; how long they take is measured here. */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cluster/metrics.h"
#include "convvae.h"

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

static uint64_t state = 2024;
static uint64_t next_u64(void)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 11;
}

static void report(const char *name, double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("%-34s best %8.2f ms   median %8.2f ms\n", name, t[0] * 1e3, t[reps / 2] * 1e3);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1 || reps > 100)
        reps = 5;
    double t[100];

    for (int d = 64; d <= 256; d *= 2) {
        int64_t *w = malloc((size_t)d * d * sizeof *w);
        int *a = malloc((size_t)d * sizeof *a);
        if (!w || !a)
            return 1;
        for (int i = 0; i < d * d; i++)
            w[i] = (int64_t)(next_u64() % 1000000);
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            if (cvae__hungarian_max(w, d, d, a) != CVAE_OK)
                return 1;
            t[r] = now() - t0;
        }
        char name[64];
        snprintf(name, sizeof name, "hungarian %dx%d", d, d);
        report(name, t, reps);
        free(w);
        free(a);
    }

    enum { N = 70000 };
    int32_t *labels = malloc(N * sizeof *labels), *clusters = malloc(N * sizeof *clusters);
    if (!labels || !clusters)
        return 1;
    for (int i = 0; i < N; i++) {
        labels[i] = (int32_t)(next_u64() % 10);
        clusters[i] = next_u64() % 4 ? labels[i] : (int32_t)(next_u64() % 10);
    }
    for (int r = 0; r < reps; r++) {
        double acc, purity, nmi, ari, t0 = now();
        if (cvae_cluster_metrics(labels, clusters, N, &acc, &purity, &nmi, &ari) != CVAE_OK)
            return 1;
        t[r] = now() - t0;
    }
    report("acc+purity+nmi+ari, 70000 images", t, reps);
    free(labels);
    free(clusters);
    return 0;
}
