/* 2 threads against 1 on the same model, measured in one process.
 *
 *   bench_threads [--data DIR] [--dataset NAME] [--threads T] [--rounds R]
 *                 [--steps K] [--layers N]
 *
 * Two models of the paper's recipe with the default options (n conv layers
 * per branch, --layers, default 1) are trained on the same data, one
 * configured for 1 thread and one for T (default 2), in R rounds (default
 * 12): each round runs K (default 20) training steps of the 1-thread model,
 * then K of the T-thread one, through the public cvae_model_train
 * (stopped by the progress callback). Each step is timed from one
 * progress call to the next (gather, forward, backward, non-finite check,
 * Adam); the first two steps of every call are left out (the call's own
 * setup). Prints the median and the mean step of each thread count over
 * all rounds, the ratio of the medians and of the means, and the median of
 * the rounds' own ratios.
 *
 * Why not two processes one after the other (bench_train, bench/run.sh):
 * on a shared virtual machine the speed of the second vCPU drifts by 10-20%
 * over tens of seconds, and two runs a minute apart see different
 * machines. Alternating every few hundred milliseconds puts both thread
 * counts in the same conditions, so their ratio is the code's. The mean
 * includes the steps a stall of either vCPU lengthened; the median
 * leaves them out.
 *
 * Results are printed as "RESULT key value" lines. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convvae.h"

#define MAX_ROUNDS 1000
#define MAX_STEPS 1000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double mean(const double *t, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += t[i];
    return s / n;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_threads: %s: %s\n", what, cvae_last_error());
    exit(1);
}

#define CHECK(call)                                                                            \
    do {                                                                                       \
        if ((call) != CVAE_OK)                                                                 \
            die(#call);                                                                        \
    } while (0)

/* One training call's step times, from the third step on. */
typedef struct steps {
    int want, calls, n;
    double last, *ms;
} steps;

static int on_progress(void *user, int epoch, int64_t batch, int64_t batches,
                       const double *losses, int num_losses)
{
    (void)epoch;
    (void)batch;
    (void)batches;
    (void)losses;
    (void)num_losses;
    steps *s = user;
    const double t = now_ms();
    if (s->calls++ >= 2)
        s->ms[s->n++] = t - s->last;
    s->last = t;
    return s->calls >= s->want + 2;
}

static cvae_model *make_model(int threads, int layers)
{
    cvae_config *cfg;
    CHECK(cvae_config_create(&cfg));
    CHECK(cvae_config_set_recipe(cfg, CVAE_RECIPE_PAPER));
    CHECK(cvae_config_set_threads(cfg, threads));
    int branches;
    CHECK(cvae_config_get_branches(cfg, &branches));
    for (int b = 1; b <= branches; b++) {
        int l, filters, kernel;
        CHECK(cvae_config_get_conv_branch(cfg, b, &l, &filters, &kernel));
        CHECK(cvae_config_set_conv_branch(cfg, b, layers, filters, kernel));
    }
    cvae_model *m;
    CHECK(cvae_model_create(cfg, &m));
    cvae_config_destroy(cfg);
    return m;
}

static int int_arg(const char *flag, const char *v, int lo, int hi)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "bench_threads: %s must be in [%d, %d]\n", flag, lo, hi);
        exit(2);
    }
    return (int)x;
}

int main(int argc, char **argv)
{
    const char *data = getenv("CONVVAE_DATA") ? getenv("CONVVAE_DATA") : "data";
    const char *dataset = "mnist";
    int threads = 2, rounds = 12, k = 20, layers = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "usage: bench_threads [--data DIR] [--dataset NAME] [--threads T] "
                            "[--rounds R] [--steps K] [--layers N]\n");
            return 2;
        }
        if (strcmp(a, "--data") == 0)
            data = v;
        else if (strcmp(a, "--dataset") == 0)
            dataset = v;
        else if (strcmp(a, "--threads") == 0)
            threads = int_arg(a, v, 2, 64);
        else if (strcmp(a, "--rounds") == 0)
            rounds = int_arg(a, v, 1, MAX_ROUNDS);
        else if (strcmp(a, "--steps") == 0)
            k = int_arg(a, v, 1, MAX_STEPS);
        else if (strcmp(a, "--layers") == 0)
            layers = int_arg(a, v, 1, 16);
        else {
            fprintf(stderr, "bench_threads: unknown option %s\n", a);
            return 2;
        }
    }
    char img[1024], lab[1024];
    /* as scripts/fetch-data.sh stores them: MNIST unpacked, Fashion-MNIST
     * gzipped */
    for (int gz = 0; gz < 2; gz++) {
        snprintf(img, sizeof img, "%s/%s/train-images-idx3-ubyte%s", data, dataset, gz ? ".gz" : "");
        snprintf(lab, sizeof lab, "%s/%s/train-labels-idx1-ubyte%s", data, dataset, gz ? ".gz" : "");
        FILE *f = fopen(img, "rb");
        if (f) {
            fclose(f);
            break;
        }
    }
    cvae_dataset *ds;
    if (cvae_dataset_load_idx(img, lab, &ds) != CVAE_OK)
        die(img);
    int64_t count;
    CHECK(cvae_dataset_shape(ds, &count, NULL, NULL, NULL));

    cvae_model *m[2] = {make_model(1, layers), make_model(threads, layers)};
    double *all[2], *round_ms = malloc((size_t)k * sizeof *round_ms),
                    *ratio = malloc((size_t)rounds * sizeof *ratio);
    for (int t = 0; t < 2; t++)
        all[t] = malloc((size_t)rounds * (size_t)k * sizeof *all[t]);
    if (!round_ms || !ratio || !all[0] || !all[1]) {
        fprintf(stderr, "bench_threads: out of memory\n");
        return 1;
    }
    int n[2] = {0, 0};
    printf("bench_threads: %s, paper recipe, n=%d, 1 thread against %d, %d rounds of %d steps\n",
           dataset, layers, threads, rounds, k);
    for (int r = 0; r < rounds; r++) {
        double med[2];
        for (int t = 0; t < 2; t++) {
            steps s = {k, 0, 0, 0.0, round_ms};
            /* each call continues the model's epoch; a new one starts when
             * it ends, whose first steps are as timed as any */
            cvae_status st = cvae_model_train(m[t], ds, 1, NULL, on_progress, &s);
            if (st != CVAE_E_CANCELLED && st != CVAE_OK)
                die("cvae_model_train");
            memcpy(all[t] + n[t], round_ms, (size_t)s.n * sizeof *round_ms);
            n[t] += s.n;
            med[t] = s.n ? median(round_ms, s.n) : 0.0;
        }
        ratio[r] = med[1] > 0 ? med[0] / med[1] : 0.0;
    }
    if (n[0] == 0 || n[1] == 0) {
        fprintf(stderr, "bench_threads: no steps timed (%lld images: fewer than a batch per "
                        "round?)\n",
                (long long)count);
        return 1;
    }
    const double mean1 = mean(all[0], n[0]), mean2 = mean(all[1], n[1]);
    const double med1 = median(all[0], n[0]), med2 = median(all[1], n[1]);
    printf("RESULT step_ms_1_median %.3f\nRESULT step_ms_1_mean %.3f\n", med1, mean1);
    printf("RESULT step_ms_%d_median %.3f\nRESULT step_ms_%d_mean %.3f\n", threads, med2, threads,
           mean2);
    printf("RESULT speedup_medians %.3f\nRESULT speedup_means %.3f\n", med1 / med2,
           mean1 / mean2);
    printf("RESULT speedup_round_median %.3f\n", median(ratio, rounds));
    for (int t = 0; t < 2; t++) {
        cvae_model_destroy(m[t]);
        free(all[t]);
    }
    free(round_ms);
    free(ratio);
    cvae_dataset_destroy(ds);
    return 0;
}
