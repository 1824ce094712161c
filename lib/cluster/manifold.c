#include "cluster/manifold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/knn.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"

void cvae__manifold_defaults(cvae__manifold_options *o)
{
    o->neighbors = 19;
    cvae__embed_defaults(&o->embed);
    o->embed.dim = 0;
    cvae__gmm_defaults(&o->gmm);
    o->seed = 1;
    o->runs = 1;
    o->extra = 0;
}

uint64_t cvae__manifold_run_seed(uint64_t seed, int run)
{
    if (run == 0)
        return seed;
    /* splitmix64 of (seed, run): unrelated streams for the runs */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(run + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double cvae__graph_modularity(const cvae__graph *g, const int32_t *assign, int k)
{
    double total = 0, inside = 0;
    double *deg = calloc((size_t)k, sizeof *deg);
    if (!deg)
        return -INFINITY; /* never kept over a scored run */
    for (int64_t i = 0; i < g->n; i++) {
        const int ci = assign[i];
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            const double w = g->w[e];
            total += w;
            deg[ci] += w;
            if (assign[g->col[e]] == ci)
                inside += w;
        }
    }
    double q = 0;
    if (total > 0) {
        q = inside / total;
        for (int c = 0; c < k; c++)
            q -= (deg[c] / total) * (deg[c] / total);
    }
    free(deg);
    return q;
}

cvae_status cvae__merge_by_modularity(const cvae__graph *g, const int32_t *assign, int k_from,
                                      int k_to, int *group)
{
    CVAE__CHECK_PTR(g);
    CVAE__CHECK_PTR(assign);
    CVAE__CHECK_PTR(group);
    if (k_to < 1 || k_from < k_to)
        return cvae__fail(CVAE_E_INVALID_ARG, "merge: cannot join %d clusters into %d", k_from,
                          k_to);
    const size_t kf = (size_t)k_from;
    /* between-group weights (both directions, as the graph stores them),
     * degrees, and each cluster's group representative: a merge folds b
     * into a < b, so a group is named by its smallest cluster */
    double *e = calloc(kf * kf, sizeof *e), *deg = calloc(kf, sizeof *deg);
    int *rep = malloc(kf * sizeof *rep);
    if (!e || !deg || !rep) {
        free(e), free(deg), free(rep);
        return cvae__fail(CVAE_E_NOMEM, "merge: out of memory for %d clusters", k_from);
    }
    double total = 0;
    for (int64_t i = 0; i < g->n; i++) {
        const size_t ci = (size_t)assign[i];
        for (int64_t t = g->rowptr[i]; t < g->rowptr[i + 1]; t++) {
            e[ci * kf + (size_t)assign[g->col[t]]] += g->w[t];
            deg[ci] += g->w[t];
            total += g->w[t];
        }
    }
    for (int c = 0; c < k_from; c++)
        rep[c] = c;
    for (int groups = k_from; groups > k_to; groups--) {
        int ba = -1, bb = -1;
        double best = -INFINITY;
        for (int a = 0; a < k_from; a++) {
            if (rep[a] != a)
                continue;
            for (int b = a + 1; b < k_from; b++) {
                if (rep[b] != b)
                    continue;
                /* the modularity gain times W; W = 0 (no edges) gains 0 */
                const double gain = e[(size_t)a * kf + (size_t)b] + e[(size_t)b * kf + (size_t)a] -
                                    (total > 0 ? 2 * deg[a] * deg[b] / total : 0);
                if (gain > best)
                    best = gain, ba = a, bb = b;
            }
        }
        for (int c = 0; c < k_from; c++) {
            e[(size_t)ba * kf + (size_t)c] += e[(size_t)bb * kf + (size_t)c];
            e[(size_t)bb * kf + (size_t)c] = 0;
        }
        for (int c = 0; c < k_from; c++) {
            e[(size_t)c * kf + (size_t)ba] += e[(size_t)c * kf + (size_t)bb];
            e[(size_t)c * kf + (size_t)bb] = 0;
        }
        deg[ba] += deg[bb];
        for (int c = 0; c < k_from; c++)
            if (rep[c] == bb)
                rep[c] = ba;
    }
    /* number the groups in the order of their representatives */
    int next = 0;
    for (int c = 0; c < k_from; c++)
        if (rep[c] == c)
            group[c] = next++;
    for (int c = 0; c < k_from; c++)
        group[c] = group[rep[c]];
    free(e), free(deg), free(rep);
    return CVAE_OK;
}

/* The runs are independent draws (each from its own seed) of a layout, a
 * mixture and a merge, and the layout's stochastic descent runs on one
 * thread (about 30 s for 70,000 codes): with several threads the runs
 * themselves are shared out, run r to part r % parts, each part keeping its
 * best run; then the parts' best are compared. Inside a part the mixture
 * runs on that part's thread; its sums are taken block by block in a fixed
 * order, so a run's result is the same on any thread, and so is the run
 * kept. */

/* Whether run a (score qa) is kept over run b (qb), as a scan of the runs
 * in order that keeps run 0 and then any strictly better one decides:
 * the higher score, ties to the earlier run; a NaN score never wins, except
 * run 0's, which a scan never replaces. */
static int run_beats(double qa, int ra, double qb, int rb)
{
    if (rb == 0 && isnan(qb))
        return 0;
    if (ra == 0 && isnan(qa))
        return 1;
    if (isnan(qa))
        return 0;
    if (isnan(qb))
        return 1;
    return qa > qb || (qa == qb && ra < rb);
}

#define RUN_MSG 256

/* One part's runs: its buffers, its best run so far, its first failure. */
typedef struct run_part {
    float *y, *r_run, *resp; /* resp: the best run's responsibilities, merged to k */
    int32_t *a_run, *assign; /* assign: the best run's partition */
    int *group;
    double best;
    int best_run; /* -1: none yet */
    cvae_status st;
    int failed_run;
    char msg[RUN_MSG];
} run_part;

typedef struct runs_job {
    const cvae__graph *g;
    const cvae__manifold_options *o;
    const cvae__embed_options *eo;
    int64_t n;
    int k, kk;
    run_part *part;
} runs_job;

static cvae_status one_run(const runs_job *j, run_part *p, int r)
{
    const cvae__manifold_options *o = j->o;
    const int64_t n = j->n;
    const int k = j->k, kk = j->kk;
    cvae__rng rng;
    cvae__rng_seed(&rng, cvae__manifold_run_seed(o->seed, r));
    cvae_status st;
    if ((st = cvae__embed(j->g, j->eo, &rng, p->y, NULL)) != CVAE_OK)
        return st;
    if ((st = cvae__gmm_fit(p->y, n, j->eo->dim, kk, &o->gmm, &rng, NULL, NULL, NULL, p->r_run,
                            p->a_run, NULL)) != CVAE_OK)
        return st;
    for (int c = 0; c < kk; c++)
        p->group[c] = c;
    if (o->extra > 0) {
        if ((st = cvae__merge_by_modularity(j->g, p->a_run, kk, k, p->group)) != CVAE_OK)
            return st;
        for (int64_t i = 0; i < n; i++)
            p->a_run[i] = p->group[p->a_run[i]];
    }
    const double q = cvae__graph_modularity(j->g, p->a_run, k);
    if (p->best_run >= 0 && !run_beats(q, r, p->best, p->best_run))
        return CVAE_OK;
    p->best = q;
    p->best_run = r;
    if (p->assign)
        memcpy(p->assign, p->a_run, (size_t)n * sizeof *p->a_run);
    if (p->resp && p->resp != p->r_run)
        for (int64_t i = 0; i < n; i++) {
            float *out = p->resp + (size_t)i * k;
            const float *in = p->r_run + (size_t)i * kk;
            memset(out, 0, (size_t)k * sizeof *out);
            for (int c = 0; c < kk; c++)
                out[p->group[c]] += in[c];
        }
    return CVAE_OK;
}

static void runs_part(void *ctx, int part, int parts)
{
    const runs_job *j = ctx;
    run_part *p = &j->part[part];
    for (int r = part; r < j->o->runs; r += parts) {
        const cvae_status st = one_run(j, p, r);
        if (st != CVAE_OK) {
            /* the message is this thread's; the caller reports it */
            p->st = st;
            p->failed_run = r;
            snprintf(p->msg, sizeof p->msg, "%s", cvae_last_error());
            return;
        }
    }
}

/* Frees what the part allocated: not the caller's outputs, which part 0
 * writes into. */
static void free_part(run_part *p, const float *resp, const int32_t *assign)
{
    free(p->y), free(p->a_run), free(p->group);
    if (p->r_run != resp)
        free(p->r_run);
    if (p->resp != resp)
        free(p->resp);
    if (p->assign != assign)
        free(p->assign);
}

/* Parts the runs are shared out to at most (a bound for the array below). */
#define MAX_PARTS 16

cvae_status cvae__manifold_cluster(const float *codes, int64_t n, int d, int k,
                                   const cvae__manifold_options *o, int32_t *assignments,
                                   float *responsibilities, double *modularity)
{
    cvae__manifold_options def;
    if (!o) {
        cvae__manifold_defaults(&def);
        o = &def;
    }
    CVAE__CHECK_PTR(codes);
    if (n < 2 || d < 1 || k < 1 || o->extra < 0 || k > n - o->extra ||
        o->neighbors < 1 || o->neighbors >= n || o->embed.dim < 0 || o->runs < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "manifold: bad arguments (n %lld, d %d, k %d, extra %d, neighbors %d, "
                          "runs %d)",
                          (long long)n, d, k, o->extra, o->neighbors, o->runs);
    const int nb = o->neighbors, kk = k + o->extra;
    cvae__embed_options eo = o->embed;
    if (eo.dim == 0)
        eo.dim = kk;
    int parts = cvae__parallel_threads();
    if (parts > o->runs)
        parts = o->runs;
    if (parts > MAX_PARTS)
        parts = MAX_PARTS;
    /* Part 0 writes its best run straight into the caller's outputs (with
     * one run and nothing to merge, the mixture writes the
     * responsibilities there itself); the other parts into their own. */
    run_part part[MAX_PARTS];
    memset(part, 0, sizeof part);
    int32_t *idx = malloc((size_t)n * nb * sizeof *idx);
    float *dist = malloc((size_t)n * nb * sizeof *dist);
    cvae__graph g = {0};
    runs_job j = {&g, o, &eo, n, k, kk, part};
    cvae_status st = CVAE_OK;
    int ok = idx && dist, failed = -1, win = 0;
    for (int p = 0; p < parts && ok; p++) {
        run_part *q = &part[p];
        const int direct = p == 0 && o->runs == 1 && o->extra == 0;
        q->best_run = -1;
        q->y = malloc((size_t)n * eo.dim * sizeof *q->y);
        q->a_run = malloc((size_t)n * sizeof *q->a_run);
        q->group = malloc((size_t)kk * sizeof *q->group);
        q->r_run = !responsibilities ? NULL
                   : direct          ? responsibilities
                                     : malloc((size_t)n * kk * sizeof *q->r_run);
        q->resp = !responsibilities ? NULL
                  : p == 0          ? responsibilities
                                    : malloc((size_t)n * k * sizeof *q->resp);
        q->assign = p == 0 || !assignments ? assignments : malloc((size_t)n * sizeof *q->assign);
        ok = q->y && q->a_run && q->group && (!responsibilities || (q->r_run && q->resp)) &&
             (!assignments || q->assign);
    }
    if (!ok) {
        st = cvae__fail(CVAE_E_NOMEM, "manifold: out of memory for %lld points", (long long)n);
        goto done;
    }
    if ((st = cvae__knn(codes, n, d, nb, idx, dist)) != CVAE_OK)
        goto done;
    st = cvae__fuzzy_graph(idx, dist, n, nb, &g);
    free(idx), free(dist);
    idx = NULL, dist = NULL;
    if (st != CVAE_OK)
        goto done;
    cvae__parallel(parts, runs_part, &j);
    /* the first failing run's error, as a scan of the runs would report */
    for (int p = 0; p < parts; p++)
        if (part[p].st != CVAE_OK && (failed < 0 || part[p].failed_run < part[failed].failed_run))
            failed = p;
    if (failed >= 0) {
        st = cvae__fail(part[failed].st, "%s", part[failed].msg);
        goto done;
    }
    for (int p = 1; p < parts; p++)
        if (run_beats(part[p].best, part[p].best_run, part[win].best, part[win].best_run))
            win = p;
    if (win > 0) {
        if (assignments)
            memcpy(assignments, part[win].assign, (size_t)n * sizeof *assignments);
        if (responsibilities)
            memcpy(responsibilities, part[win].resp, (size_t)n * k * sizeof *responsibilities);
    }
    if (modularity)
        *modularity = part[win].best;
done:
    free(idx), free(dist);
    for (int p = 0; p < parts; p++)
        free_part(&part[p], responsibilities, assignments);
    cvae__graph_free(&g);
    return st;
}
