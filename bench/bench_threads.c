/* 2 threads against 1 on the same model, measured in one process; and,
 * with --vs, one build of the library against another in the same way.
 *
 *   bench_threads [--data DIR] [--dataset NAME] [--threads T] [--rounds R]
 *                 [--steps K] [--layers N] [--lib PATH] [--vs PATH] [--ceiling]
 *                 [--recipe paper|manifold] [--consistency W]
 *
 * Two models with the default options (n conv layers per branch, --layers,
 * default 1) are trained on the same data, with the paper's recipe
 * (--recipe paper, the default: mixture prior, no augmentation) or the
 * library's default recipe (--recipe manifold: its pretraining step, which
 * augments every image and runs the clean images through the encoder too,
 * forward and back, for the consistency term; --consistency W sets that
 * term's weight, and 0 leaves the augmented step the fine-tuning epochs
 * run, less their cheap pseudo-label term). One model is
 * configured for 1 thread and one for T (default 2), in R rounds (default
 * 12): each round runs K (default 20) training steps of the 1-thread model,
 * then K of the T-thread one, through the public cvae_model_train
 * (stopped by the progress callback). Each step is timed from one
 * progress call to the next (gather, forward, backward, non-finite check,
 * Adam); the first two steps of every call are left out (the call's own
 * setup). Prints the median, the mean and the 90th percentile step of each
 * thread count over all rounds, the ratio of the medians and of the means,
 * and the median of the rounds' own ratios.
 *
 * The library is loaded at run time from --lib (default: the one built
 * beside this program). --vs loads a second build too (a checkout of an
 * older commit, say): every round then runs the four models, the two
 * builds' in turn and in the other order every other round, and the
 * output adds the second build's numbers (keys prefixed "vs_") and the
 * ratios of the first build's steps to the second's at each thread count
 * (below 1: the first is faster). Each build keeps its own thread pool and
 * state; they share nothing but the process.
 *
 * --ceiling (first build only) also runs, each round, the 1-thread model
 * pinned to each of the first T CPUs the process may use in turn. Their
 * median steps c_i give what T threads could reach on those CPUs at their
 * present speeds if nothing were lost: the round's 1-thread step times
 * the sum of 1 / c_i (2.0 when two vCPUs run at one speed, less when one
 * is slower). The output adds its median over the rounds and the median
 * of each round's speedup over it (the efficiency of the T threads).
 * Before the rounds it also times a cache line passed back and forth
 * between the first two of those CPUs (RESULT cache_line_round_trip_ns):
 * what every value one thread writes and the other reads costs. Two cores
 * that share a last-level cache take well under 200 ns; cores of
 * different core complexes, or of different sockets, several times that.
 *
 * Why not two processes one after the other (bench_train, bench/run.sh):
 * on a shared virtual machine the speed of the second vCPU drifts by 10-20%
 * over tens of seconds, and two runs a minute apart see different
 * machines. Alternating every few hundred milliseconds puts both thread
 * counts, and both builds, in the same conditions, so their ratio is the
 * code's. The mean includes the steps a stall of either vCPU lengthened;
 * the median leaves them out.
 *
 * Results are printed as "RESULT key value" lines. */
#define _GNU_SOURCE /* pthread_setaffinity_np */

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convvae.h"

#ifndef CVAE_BENCH_LIB
#define CVAE_BENCH_LIB "libconvvae.so.0"
#endif

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

/* The value at fraction q of the sorted times (0.5: the median). */
static double quantile(double *t, int n, double q)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    const double at = q * (double)(n - 1);
    const int i = (int)at;
    return i + 1 < n ? t[i] + (at - (double)i) * (t[i + 1] - t[i]) : t[n - 1];
}

static double median(double *t, int n) { return quantile(t, n, 0.5); }

static double mean(const double *t, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += t[i];
    return s / n;
}

/* One build of the library, reached only through its public functions. */
typedef struct lib {
    const char *path;
    const char *(*last_error)(void);
    cvae_status (*config_create)(cvae_config **);
    cvae_status (*config_set_recipe)(cvae_config *, cvae_recipe);
    cvae_status (*config_set_threads)(cvae_config *, int);
    cvae_status (*config_set_consistency_weight)(cvae_config *, double);
    cvae_status (*config_get_branches)(const cvae_config *, int *);
    cvae_status (*config_get_conv_branch)(const cvae_config *, int, int *, int *, int *);
    cvae_status (*config_set_conv_branch)(cvae_config *, int, int, int, int);
    void (*config_destroy)(cvae_config *);
    cvae_status (*model_create)(const cvae_config *, cvae_model **);
    void (*model_destroy)(cvae_model *);
    cvae_status (*dataset_load_idx)(const char *, const char *, cvae_dataset **);
    void (*dataset_destroy)(cvae_dataset *);
    cvae_status (*model_train)(cvae_model *, const cvae_dataset *, int, const cvae_dataset *,
                               cvae_progress_fn, void *);
    cvae_dataset *ds;
    cvae_model *m[2]; /* 1 thread, T threads */
    double *all[2];   /* every timed step of each */
    int n[2];
    double *ratio; /* each round's median 1-thread step over its T-thread one */
    double *ceiling; /* --ceiling: each round's speedup with nothing lost */
} lib;

static void die(const lib *l, const char *what)
{
    fprintf(stderr, "bench_threads: %s: %s: %s\n", l->path, what, l->last_error());
    exit(1);
}

#define CHECK(l, call)                                                                         \
    do {                                                                                       \
        if ((call) != CVAE_OK)                                                                 \
            die(l, #call);                                                                     \
    } while (0)

/* dlsym gives an object pointer; POSIX guarantees it holds a function's
 * address, which ISO C cannot convert by a cast. */
static void sym(void *h, const char *path, const char *name, void *fn, size_t size)
{
    void *p = dlsym(h, name);
    if (!p || size != sizeof p) {
        fprintf(stderr, "bench_threads: %s: no %s\n", path, name);
        exit(1);
    }
    memcpy(fn, &p, size);
}

/* The functions used, by name without the "cvae_" prefix. */
#define LIB_FUNCTIONS(X)                                                                       \
    X(last_error) X(config_create) X(config_set_recipe) X(config_set_threads)                  \
    X(config_get_branches) X(config_get_conv_branch) X(config_set_conv_branch)                 \
    X(config_destroy) X(model_create) X(model_destroy) X(model_train) X(dataset_load_idx)      \
    X(dataset_destroy) X(config_set_consistency_weight)

static void load(lib *l, const char *path)
{
    memset(l, 0, sizeof *l);
    l->path = path;
    /* RTLD_LOCAL: two builds' symbols stay apart */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "bench_threads: %s\n", dlerror());
        exit(1);
    }
#define LOAD(f) sym(h, path, "cvae_" #f, &l->f, sizeof l->f);
    LIB_FUNCTIONS(LOAD)
#undef LOAD
}

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

/* The recipe's step that is timed: --recipe and --consistency. */
typedef struct step_kind {
    int manifold;       /* the default recipe's pretraining step, not the paper's */
    double consistency; /* its consistency weight; < 0: the recipe's own */
} step_kind;

static cvae_model *make_model(const lib *l, int threads, int layers, const step_kind *sk)
{
    cvae_config *cfg;
    CHECK(l, l->config_create(&cfg));
    CHECK(l, l->config_set_recipe(cfg, sk->manifold ? CVAE_RECIPE_MANIFOLD : CVAE_RECIPE_PAPER));
    if (sk->manifold && sk->consistency >= 0)
        CHECK(l, l->config_set_consistency_weight(cfg, sk->consistency));
    CHECK(l, l->config_set_threads(cfg, threads));
    int branches;
    CHECK(l, l->config_get_branches(cfg, &branches));
    for (int b = 1; b <= branches; b++) {
        int n, filters, kernel;
        CHECK(l, l->config_get_conv_branch(cfg, b, &n, &filters, &kernel));
        CHECK(l, l->config_set_conv_branch(cfg, b, layers, filters, kernel));
    }
    cvae_model *m;
    CHECK(l, l->model_create(cfg, &m));
    l->config_destroy(cfg);
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

/* Runs k steps of model t of l, adds their times to l's (when keep), and
 * returns their median. */
static double run_steps(lib *l, int t, int k, double *buf, int keep)
{
    steps s = {k, 0, 0, 0.0, buf};
    /* each call continues the model's epoch; a new one starts when it
     * ends, whose first steps are as timed as any */
    cvae_status st = l->model_train(l->m[t], l->ds, 1, NULL, on_progress, &s);
    if (st != CVAE_E_CANCELLED && st != CVAE_OK)
        die(l, "cvae_model_train");
    if (keep) {
        memcpy(l->all[t] + l->n[t], buf, (size_t)s.n * sizeof *buf);
        l->n[t] += s.n;
    }
    return s.n ? median(buf, s.n) : 0.0;
}

/* The first `want` CPUs of the calling thread's affinity mask, into cpu;
 * returns how many there are. */
static int usable_cpus(const cpu_set_t *mask, int want, int *cpu)
{
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < want; c++)
        if (CPU_ISSET(c, mask))
            cpu[n++] = c;
    return n;
}

/* The cache-line round trip: the calling thread (pinned to cpu a) sets a
 * flag, a thread pinned to cpu b clears it, ROUND_TRIPS times; the median
 * of 5 such runs, in nanoseconds per trip (0 if a thread cannot start). */
#define ROUND_TRIPS 100000

typedef struct bounce {
    _Atomic int flag;
    int cpu;
} bounce;

static void pin_self(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
}

static void *bounce_back(void *arg)
{
    bounce *b = arg;
    pin_self(b->cpu);
    for (int i = 0; i < ROUND_TRIPS; i++) {
        while (atomic_load_explicit(&b->flag, memory_order_acquire) != 1)
            ;
        atomic_store_explicit(&b->flag, 0, memory_order_release);
    }
    return NULL;
}

static double round_trip_ns(const cpu_set_t *mask, int a, int b)
{
    double t[5];
    int r = 0;
    pin_self(a);
    for (; r < 5; r++) {
        bounce bn = {0, b};
        pthread_t th;
        if (pthread_create(&th, NULL, bounce_back, &bn) != 0)
            break;
        const double t0 = now_ms();
        for (int i = 0; i < ROUND_TRIPS; i++) {
            atomic_store_explicit(&bn.flag, 1, memory_order_release);
            while (atomic_load_explicit(&bn.flag, memory_order_acquire) != 0)
                ;
        }
        t[r] = (now_ms() - t0) * 1e6 / ROUND_TRIPS;
        pthread_join(th, NULL);
    }
    pthread_setaffinity_np(pthread_self(), sizeof *mask, mask);
    return r == 5 ? median(t, 5) : 0.0;
}

/* The round's ceiling: the 1-thread model pinned to each CPU in turn (the
 * thread's mask is restored after), med1 times the sum of 1 / their
 * median steps. */
static double ceiling_of(lib *l, const cpu_set_t *mask, const int *cpu, int ncpu, int k,
                         double *buf, double med1)
{
    double speed = 0;
    for (int i = 0; i < ncpu; i++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu[i], &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
        /* steps pinned are not the model's 1-thread steps: not kept */
        const double c = run_steps(l, 0, k, buf, 0);
        speed += c > 0 ? 1.0 / c : 0.0;
    }
    pthread_setaffinity_np(pthread_self(), sizeof *mask, mask);
    return med1 * speed;
}

/* The step statistics of thread count t: median, mean, 90th percentile. */
static void stats(lib *l, int t, double out[3])
{
    out[1] = mean(l->all[t], l->n[t]);
    out[0] = median(l->all[t], l->n[t]);
    out[2] = quantile(l->all[t], l->n[t], 0.9);
}

static void report(lib *l, const char *prefix, int threads, int rounds, double st[2][3])
{
    for (int t = 0; t < 2; t++) {
        stats(l, t, st[t]);
        const int tc = t ? threads : 1;
        printf("RESULT %sstep_ms_%d_median %.3f\nRESULT %sstep_ms_%d_mean %.3f\n"
               "RESULT %sstep_ms_%d_p90 %.3f\n",
               prefix, tc, st[t][0], prefix, tc, st[t][1], prefix, tc, st[t][2]);
    }
    printf("RESULT %sspeedup_medians %.3f\nRESULT %sspeedup_means %.3f\n", prefix,
           st[0][0] / st[1][0], prefix, st[0][1] / st[1][1]);
    if (l->ceiling) {
        /* per round, before the medians sort the rounds */
        double *eff = malloc((size_t)rounds * sizeof *eff);
        if (!eff) {
            fprintf(stderr, "bench_threads: out of memory\n");
            exit(1);
        }
        for (int r = 0; r < rounds; r++)
            eff[r] = l->ceiling[r] > 0 ? l->ratio[r] / l->ceiling[r] : 0.0;
        printf("RESULT %sceiling_round_median %.3f\n", prefix, median(l->ceiling, rounds));
        printf("RESULT %sefficiency_round_median %.3f\n", prefix, median(eff, rounds));
        free(eff);
    }
    printf("RESULT %sspeedup_round_median %.3f\n", prefix, median(l->ratio, rounds));
}

int main(int argc, char **argv)
{
    const char *data = getenv("CONVVAE_DATA") ? getenv("CONVVAE_DATA") : "data";
    const char *dataset = "mnist", *path[2] = {CVAE_BENCH_LIB, NULL};
    int threads = 2, rounds = 12, k = 20, layers = 1;
    int ceiling = 0;
    step_kind sk = {0, -1.0};
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ceiling") == 0) {
            ceiling = 1;
            i--;
            continue;
        }
        if (!v) {
            fprintf(stderr, "usage: bench_threads [--data DIR] [--dataset NAME] [--threads T] "
                            "[--rounds R] [--steps K] [--layers N] [--lib PATH] [--vs PATH] "
                            "[--ceiling] [--recipe paper|manifold] [--consistency W]\n");
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
        else if (strcmp(a, "--lib") == 0)
            path[0] = v;
        else if (strcmp(a, "--recipe") == 0) {
            if (strcmp(v, "paper") != 0 && strcmp(v, "manifold") != 0) {
                fprintf(stderr, "bench_threads: --recipe must be paper or manifold\n");
                return 2;
            }
            sk.manifold = strcmp(v, "manifold") == 0;
        }
        else if (strcmp(a, "--consistency") == 0)
            sk.consistency = int_arg(a, v, 0, 1000000);
        else if (strcmp(a, "--vs") == 0)
            path[1] = v;
        else {
            fprintf(stderr, "bench_threads: unknown option %s\n", a);
            return 2;
        }
    }
    if (sk.consistency >= 0 && !sk.manifold) {
        fprintf(stderr, "bench_threads: --consistency needs --recipe manifold\n");
        return 2;
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
    const int nlibs = path[1] ? 2 : 1;
    lib libs[2];
    double *buf = malloc((size_t)k * sizeof *buf);
    for (int b = 0; b < nlibs; b++) {
        lib *l = &libs[b];
        load(l, path[b]);
        if (l->dataset_load_idx(img, lab, &l->ds) != CVAE_OK)
            die(l, img);
        l->m[0] = make_model(l, 1, layers, &sk);
        l->m[1] = make_model(l, threads, layers, &sk);
        l->ratio = malloc((size_t)rounds * sizeof *l->ratio);
        l->ceiling = ceiling && b == 0 ? malloc((size_t)rounds * sizeof *l->ceiling) : NULL;
        for (int t = 0; t < 2; t++)
            l->all[t] = malloc((size_t)rounds * (size_t)k * sizeof *l->all[t]);
        if (!buf || !l->ratio || !l->all[0] || !l->all[1] || (ceiling && !b && !l->ceiling)) {
            fprintf(stderr, "bench_threads: out of memory\n");
            return 1;
        }
    }
    if (nlibs == 2 && libs[0].model_train == libs[1].model_train) {
        /* the dynamic loader gave the first build again (the same file) */
        fprintf(stderr, "bench_threads: %s and %s are one library\n", path[0], path[1]);
        return 2;
    }
    cpu_set_t mask;
    int cpu[64], ncpu = 0;
    if (ceiling) {
        if (pthread_getaffinity_np(pthread_self(), sizeof mask, &mask) != 0 ||
            (ncpu = usable_cpus(&mask, threads, cpu)) < threads) {
            fprintf(stderr, "bench_threads: --ceiling needs %d CPUs to pin to\n", threads);
            return 2;
        }
        printf("cache line passed between cpu %d and cpu %d\n", cpu[0], cpu[1]);
        printf("RESULT cache_line_round_trip_ns %.0f\n", round_trip_ns(&mask, cpu[0], cpu[1]));
    }
    char what[96];
    if (!sk.manifold)
        snprintf(what, sizeof what, "the paper's recipe");
    else if (sk.consistency == 0)
        snprintf(what, sizeof what, "the default recipe's augmented step, no consistency term");
    else if (sk.consistency > 0)
        snprintf(what, sizeof what, "the default recipe's pretraining step, consistency weight %g",
                 sk.consistency);
    else
        snprintf(what, sizeof what, "the default recipe's pretraining step");
    printf("bench_threads: %s, %s, n=%d, 1 thread against %d, %d rounds of %d steps\n", dataset,
           what, layers, threads, rounds, k);
    printf("lib %s\n", path[0]);
    if (path[1])
        printf("vs  %s\n", path[1]);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < nlibs; i++) {
            /* the builds take turns at going first */
            lib *l = &libs[r % 2 ? nlibs - 1 - i : i];
            const double med1 = run_steps(l, 0, k, buf, 1);
            if (l->ceiling)
                l->ceiling[r] = ceiling_of(l, &mask, cpu, ncpu, k, buf, med1);
            const double med2 = run_steps(l, 1, k, buf, 1);
            l->ratio[r] = med2 > 0 ? med1 / med2 : 0.0;
        }
    for (int b = 0; b < nlibs; b++)
        if (libs[b].n[0] == 0 || libs[b].n[1] == 0) {
            fprintf(stderr, "bench_threads: no steps timed (fewer images than a batch per "
                            "round?)\n");
            return 1;
        }
    double st[2][2][3];
    report(&libs[0], "", threads, rounds, st[0]);
    if (nlibs == 2) {
        report(&libs[1], "vs_", threads, rounds, st[1]);
        for (int t = 0; t < 2; t++)
            printf("RESULT lib_over_vs_step_%d_median %.4f\nRESULT lib_over_vs_step_%d_mean %.4f\n",
                   t ? threads : 1, st[0][t][0] / st[1][t][0], t ? threads : 1,
                   st[0][t][1] / st[1][t][1]);
    }
    for (int b = 0; b < nlibs; b++) {
        for (int t = 0; t < 2; t++) {
            libs[b].model_destroy(libs[b].m[t]);
            free(libs[b].all[t]);
        }
        free(libs[b].ratio);
        free(libs[b].ceiling);
        libs[b].dataset_destroy(libs[b].ds);
    }
    free(buf);
    return 0;
}
