/* Manifold clustering (kNN graph -> UMAP-style embedding -> Gaussian
 * mixture) on an IDX image file or on a raw float32 codes file: time and
 * peak memory of every stage and ACC / NMI / ARI against the labels, for
 * one or several seeds; optionally k-means baselines on the input and on
 * the embedding, and a check that cvae__manifold_cluster gives the staged
 * result.
 *
 *   bench_manifold --images data/mnist/t10k-images-idx3-ubyte.gz \
 *                  --labels data/mnist/t10k-labels-idx1-ubyte.gz [options]
 *   bench_manifold --codes mu.f32 --dim 50 --labels labels.idx [options]
 *
 * Options: --k K (10) --neighbors N (19, the point itself excluded)
 * --embed-dim D (0: K) --init spectral|random --epochs E (0: UMAP's rule)
 * --min-dist X (0) --starts S (GMM starts, 4) --seed S (1) --seeds R (1)
 * --threads T (1) --limit N --baseline --check-driver
 * --save-embedding FILE (float32, last seed) --save-assign FILE (int32, every
 * seed's clusters one after the other) --runs R (also report, for each R
 * consecutive seeds, the ACC of the one whose partition has the highest
 * modularity: what the manifold step's manifold_runs = R keeps) --extra E
 * (fit K + E components and merge them to K by modularity, as the manifold
 * step's extra clusters do; the embedding's dimension 0 then means K + E)
 * --driver R (instead of the stages: time cvae__manifold_cluster with R
 * runs, as the training's manifold step calls it, with responsibilities;
 * at T threads the runs are shared out to the threads). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/embed.h"
#include "cluster/gmm.h"
#include "cluster/kmeans.h"
#include "cluster/knn.h"
#include "cluster/manifold.h"
#include "convvae.h"
#include "core/rng.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the whole process (all threads): on a loaded machine the
 * wall times above vary, the CPU time much less. */
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Peak resident memory so far, MiB (VmHWM). */
static double peak_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atof(line + 6);
    if (f)
        fclose(f);
    return kb / 1024.0;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_manifold: %s: %s\n", what, cvae_last_error());
    exit(1);
}

static void metrics(const int32_t *labels, const int32_t *c, int64_t n, const char *name,
                    double *acc_out)
{
    double acc, purity, nmi, ari;
    if (cvae_cluster_metrics(labels, c, n, &acc, &purity, &nmi, &ari) != CVAE_OK)
        die("metrics");
    printf("  %-22s ACC %.4f  NMI %.4f  ARI %.4f\n", name, acc, nmi, ari);
    if (acc_out)
        *acc_out = acc;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *images = NULL, *labels_path = NULL, *codes = NULL, *save = NULL, *save_assign = NULL;
    int runs = 1, d = 0, k = 10, seeds = 1, threads = 1, baseline = 0, check = 0, driver = 0;
    int64_t limit = 0;
    cvae__manifold_options o;
    cvae__manifold_defaults(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--images"))
            images = v;
        else if (ARG("--labels"))
            labels_path = v;
        else if (ARG("--codes"))
            codes = v;
        else if (ARG("--dim"))
            d = atoi(v);
        else if (ARG("--k"))
            k = atoi(v);
        else if (ARG("--neighbors"))
            o.neighbors = atoi(v);
        else if (ARG("--extra"))
            o.extra = atoi(v);
        else if (ARG("--embed-dim"))
            o.embed.dim = atoi(v);
        else if (ARG("--init"))
            o.embed.init = strcmp(v, "random") == 0 ? CVAE__EMBED_INIT_RANDOM
                                                    : CVAE__EMBED_INIT_SPECTRAL;
        else if (ARG("--epochs"))
            o.embed.epochs = atoi(v);
        else if (ARG("--min-dist"))
            o.embed.min_dist = atof(v);
        else if (ARG("--starts"))
            o.gmm.starts = atoi(v);
        else if (ARG("--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (ARG("--seeds"))
            seeds = atoi(v);
        else if (ARG("--threads"))
            threads = atoi(v);
        else if (ARG("--limit"))
            limit = atoll(v);
        else if (ARG("--save-embedding"))
            save = v;
        else if (ARG("--runs"))
            runs = atoi(v);
        else if (ARG("--driver"))
            driver = atoi(v);
        else if (ARG("--save-assign"))
            save_assign = v;
        else if (strcmp(a, "--baseline") == 0)
            baseline = 1;
        else if (strcmp(a, "--check-driver") == 0)
            check = 1;
        else {
            fprintf(stderr, "bench_manifold: unknown or incomplete option %s (see the source's "
                            "header)\n", a);
            return 2;
        }
#undef ARG
    }
    if (!images == !codes || (codes && d < 1) || !labels_path) {
        fprintf(stderr, "bench_manifold: need --labels and either --images or --codes --dim\n");
        return 2;
    }
    if (cvae_set_num_threads(threads) != CVAE_OK)
        die("threads");

    /* ---- data ---- */
    int64_t n = 0;
    float *x = NULL;
    int32_t *labels = NULL;
    if (images) {
        cvae_dataset *ds;
        if (cvae_dataset_load_idx(images, labels_path, &ds) != CVAE_OK)
            die(images);
        int c, h, w;
        cvae_dataset_shape(ds, &n, &c, &h, &w);
        d = c * h * w;
        x = malloc((size_t)n * d * sizeof *x);
        labels = malloc((size_t)n * sizeof *labels);
        if (!x || !labels || cvae_dataset_images_f32(ds, 0, n, x) != CVAE_OK ||
            cvae_dataset_labels(ds, labels, n) != CVAE_OK)
            die("images");
        cvae_dataset_destroy(ds);
    } else {
        FILE *f = fopen(codes, "rb");
        if (!f) {
            perror(codes);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        const long bytes = ftell(f);
        fseek(f, 0, SEEK_SET);
        n = bytes / (long)(sizeof(float) * (size_t)d);
        x = malloc((size_t)n * d * sizeof *x);
        if (!x || fread(x, sizeof(float) * (size_t)d, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "bench_manifold: cannot read %s\n", codes);
            return 1;
        }
        fclose(f);
        /* an uncompressed IDX label file (magic 0x00000801, u8) */
        f = fopen(labels_path, "rb");
        unsigned char hdr[8];
        if (!f || fread(hdr, 1, 8, f) != 8 || hdr[2] != 8 || hdr[3] != 1) {
            fprintf(stderr, "bench_manifold: %s is not a raw IDX label file\n", labels_path);
            return 1;
        }
        const int64_t count = ((int64_t)hdr[4] << 24) | (hdr[5] << 16) | (hdr[6] << 8) | hdr[7];
        if (count < n) {
            fprintf(stderr, "bench_manifold: %lld labels for %lld codes\n", (long long)count,
                    (long long)n);
            return 1;
        }
        labels = malloc((size_t)n * sizeof *labels);
        for (int64_t i = 0; i < n; i++) {
            const int ch = fgetc(f);
            if (ch == EOF || !labels) {
                fprintf(stderr, "bench_manifold: short label file\n");
                return 1;
            }
            labels[i] = ch;
        }
        fclose(f);
    }
    if (limit > 0 && limit < n)
        n = limit;
    const int kk = k + o.extra;
    const int dim = o.embed.dim ? o.embed.dim : kk;
    printf("data: n %lld  d %d  k %d  extra %d  neighbors %d  embed dim %d  init %s  threads %d\n",
           (long long)n, d, k, o.extra, o.neighbors, dim,
           o.embed.init == CVAE__EMBED_INIT_RANDOM ? "random" : "spectral", threads);
    printf("  peak memory after loading: %.1f MiB\n", peak_mib());

    if (driver > 0) {
        cvae__manifold_options mo = o;
        mo.runs = driver;
        int32_t *da = malloc((size_t)n * sizeof *da);
        float *resp = malloc((size_t)n * k * sizeof *resp);
        double q = 0;
        const double t0 = now(), c0 = cpu();
        if (!da || !resp || cvae__manifold_cluster(x, n, d, k, &mo, da, resp, &q) != CVAE_OK)
            die("manifold_cluster");
        printf("cvae__manifold_cluster: %d runs, %.2f s (cpu %.2f s), modularity %.4f, peak %.1f "
               "MiB\n",
               driver, now() - t0, cpu() - c0, q, peak_mib());
        metrics(labels, da, n, "manifold step", NULL);
        free(da), free(resp), free(x), free(labels);
        return 0;
    }

    /* ---- kNN and graph, once ---- */
    const int nb = o.neighbors;
    int32_t *idx = malloc((size_t)n * nb * sizeof *idx);
    float *dist = malloc((size_t)n * nb * sizeof *dist);
    float *y = malloc((size_t)n * dim * sizeof *y);
    int32_t *assign = malloc((size_t)n * sizeof *assign);
    double *accs = malloc((size_t)seeds * sizeof *accs);
    double *accs_by_seed = malloc((size_t)seeds * sizeof *accs_by_seed);
    double *mods = malloc((size_t)seeds * sizeof *mods);
    if (!accs || !accs_by_seed || !mods)
        die("out of memory");
    int32_t *all = malloc((size_t)seeds * n * sizeof *all); /* every seed's clusters */
    if (!idx || !dist || !y || !assign || !accs || !all)
        die("memory");
    double t0 = now(), c0 = cpu();
    if (cvae__knn(x, n, d, nb, idx, dist) != CVAE_OK)
        die("knn");
    const double t_knn = now() - t0, c_knn = cpu() - c0;
    t0 = now();
    cvae__graph g;
    if (cvae__fuzzy_graph(idx, dist, n, nb, &g) != CVAE_OK)
        die("graph");
    const double t_graph = now() - t0;
    printf("knn: %.2f s (cpu %.2f s)  graph: %.2f s (%lld stored edges)  peak %.1f MiB\n", t_knn,
           c_knn, t_graph, (long long)g.rowptr[n], peak_mib());
    if (baseline) {
        cvae__rng r;
        cvae__rng_seed(&r, o.seed);
        float *cen = malloc((size_t)k * d * sizeof *cen);
        t0 = now();
        if (!cen || cvae__kmeans(x, n, d, k, 300, &r, cen, assign, NULL) != CVAE_OK)
            die("kmeans");
        printf("k-means on the input (1 start): %.2f s\n", now() - t0);
        metrics(labels, assign, n, "k-means input", NULL);
        free(cen);
    }

    /* ---- embedding and mixture, per seed ---- */
    cvae__embed_options eo = o.embed;
    eo.dim = dim;
    for (int s = 0; s < seeds; s++) {
        const uint64_t seed = o.seed + (uint64_t)s;
        cvae__rng rng;
        cvae__rng_seed(&rng, seed);
        cvae__embed_info info;
        t0 = now(), c0 = cpu();
        if (cvae__embed(&g, &eo, &rng, y, &info) != CVAE_OK)
            die("embed");
        const double t_embed = now() - t0, c_embed = cpu() - c0;
        cvae__gmm_info gi;
        t0 = now(), c0 = cpu();
        if (cvae__gmm_fit(y, n, dim, kk, &o.gmm, &rng, NULL, NULL, NULL, NULL, assign, &gi) !=
            CVAE_OK)
            die("gmm");
        if (o.extra > 0) {
            int group[2 * CVAE_MAX_CLUSTERS];
            if (kk > 2 * CVAE_MAX_CLUSTERS ||
                cvae__merge_by_modularity(&g, assign, kk, k, group) != CVAE_OK)
                die("merge");
            for (int64_t i = 0; i < n; i++)
                assign[i] = group[assign[i]];
        }
        const double t_gmm = now() - t0, c_gmm = cpu() - c0;
        printf("seed %llu: embed %.2f s (cpu %.2f s; init %s, %d components, %d epochs, %lld "
               "edges, a %.4f b %.4f)  gmm %.2f s (cpu %.2f s; loglik %.4f, %d iterations%s, "
               "start %d)  peak %.1f MiB\n",
               (unsigned long long)seed, t_embed, c_embed,
               info.init_used == CVAE__EMBED_INIT_RANDOM ? "random" : "spectral", info.components,
               info.epochs, (long long)info.edges, info.a, info.b, t_gmm, c_gmm, gi.loglik,
               gi.iterations, gi.converged ? "" : ", not converged", gi.best_start, peak_mib());
        mods[s] = cvae__graph_modularity(&g, assign, k);
        printf("  modularity of the partition on the neighbour graph: %.4f\n", mods[s]);
        metrics(labels, assign, n, "manifold + GMM", &accs[s]);
        accs_by_seed[s] = accs[s];
        memcpy(all + (size_t)s * n, assign, (size_t)n * sizeof *assign);
        if (baseline) {
            cvae__rng r;
            cvae__rng_seed(&r, seed);
            float cen[64 * 64];
            int32_t *ka = malloc((size_t)n * sizeof *ka);
            if (!ka || dim * k > 64 * 64 || cvae__kmeans(y, n, dim, k, 300, &r, cen, ka, NULL))
                die("kmeans on the embedding");
            metrics(labels, ka, n, "manifold + k-means", NULL);
            free(ka);
        }
        if (check && s == 0) {
            cvae__manifold_options mo = o;
            mo.seed = seed;
            int32_t *da = malloc((size_t)n * sizeof *da);
            t0 = now();
            mo.runs = 1;
            if (!da || cvae__manifold_cluster(x, n, d, k, &mo, da, NULL, NULL) != CVAE_OK)
                die("manifold_cluster");
            const int same = memcmp(da, assign, (size_t)n * sizeof *da) == 0;
            printf("  cvae__manifold_cluster: %.2f s, %s the staged assignments\n", now() - t0,
                   same ? "same as" : "DIFFERENT FROM");
            free(da);
            if (!same)
                return 1;
        }
    }
    if (save) {
        FILE *f = fopen(save, "wb");
        if (!f || fwrite(y, sizeof *y * (size_t)dim, (size_t)n, f) != (size_t)n) {
            perror(save);
            return 1;
        }
        fclose(f);
    }
    if (runs > 1) {
        /* What keeping the highest modularity of each run consecutive
         * seeds gives (the manifold step's manifold_runs). */
        printf("best of %d by modularity:", runs);
        for (int s0 = 0; s0 + runs <= seeds; s0 += runs) {
            int best = s0;
            for (int s = s0 + 1; s < s0 + runs; s++)
                if (mods[s] > mods[best])
                    best = s;
            printf(" %.4f", accs_by_seed[best]);
        }
        printf("\n");
    }
    qsort(accs, (size_t)seeds, sizeof *accs, cmp_double);
    double mean = 0;
    for (int s = 0; s < seeds; s++)
        mean += accs[s] / seeds;
    printf("ACC over %d seeds: median %.4f  mean %.4f  min %.4f  max %.4f\n", seeds,
           accs[seeds / 2], mean, accs[0], accs[seeds - 1]);
    if (seeds > 1) {
        /* stability: agreement of the seeds' partitions with each other */
        double sum = 0, lo = 1;
        int pairs = 0;
        for (int a = 0; a < seeds; a++)
            for (int b = a + 1; b < seeds; b++) {
                double ari;
                if (cvae_cluster_metrics(all + (size_t)a * n, all + (size_t)b * n, n, NULL, NULL,
                                         NULL, &ari) != CVAE_OK)
                    die("metrics");
                sum += ari, pairs++;
                lo = ari < lo ? ari : lo;
            }
        printf("ARI between seeds' partitions: mean %.4f  min %.4f (%d pairs)\n", sum / pairs, lo,
               pairs);
    }
    if (save_assign) {
        FILE *f = fopen(save_assign, "wb");
        if (!f || fwrite(all, sizeof *all, (size_t)seeds * n, f) != (size_t)seeds * n || fclose(f))
            die("cannot write the assignments");
    }
    printf("peak memory: %.1f MiB\n", peak_mib());
    free(all);
    cvae__graph_free(&g);
    free(x), free(labels), free(idx), free(dist), free(y), free(assign), free(accs);
    free(accs_by_seed), free(mods);
    return 0;
}
