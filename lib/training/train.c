/* Training epochs and inference over data sets and caller buffers. All
 * per-batch work runs in the model's workspace, which every entry point that
 * runs the network makes sure of first (a loaded model gets it on first
 * use); the only allocations are per call (the workspace once, the shuffle
 * permutation, k-means scratch), never per batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "core/error.h"
#include "core/gemm.h"
#include "cluster/kmeans.h"
#include "model/model.h"
#include "training/optimizer.h"

static cvae_status check_data(const cvae_model *m, const cvae_dataset *ds, int64_t *count)
{
    int c, h, w;
    cvae_status st = cvae_dataset_shape(ds, count, &c, &h, &w);
    if (st)
        return st;
    if (c != m->cfg.in_c || h != m->cfg.in_h || w != m->cfg.in_w)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "data set images are %dx%dx%d, the model expects %dx%dx%d", c, h, w,
                          m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    return CVAE_OK;
}

static int mixture_active(const cvae_model *m)
{
    return m->cfg.prior == CVAE_PRIOR_MIXTURE && m->epochs_done >= m->cfg.warmup;
}

/* Where inference reads its images: a data set (uint8 kept until here) or
 * a caller's float buffer. */
typedef struct source {
    const cvae_dataset *ds;
    const float *x;
} source;

static void load_chunk(cvae_model *m, source src, int64_t start, int n)
{
    if (src.ds) {
        /* bounds were checked by the caller, so this cannot fail */
        (void)cvae_dataset_images_f32(src.ds, start, n, m->x);
    } else {
        memcpy(m->x, src.x + (size_t)start * m->P, (size_t)n * m->P * sizeof(float));
    }
}

enum what { W_MU_LV, W_PROBA, W_CLUSTERS, W_RECON };

static void run_inference(cvae_model *m, source src, int64_t count, enum what what, float *o1,
                          float *o2, int32_t *clusters)
{
    for (int64_t start = 0; start < count; start += m->B) {
        int n = (int)(count - start < m->B ? count - start : m->B);
        load_chunk(m, src, start, n);
        cvae__forward(m, n, 0, what == W_RECON);
        size_t ns = (size_t)n * m->s, nk = (size_t)n * m->k;
        switch (what) {
        case W_MU_LV:
            if (o1)
                memcpy(o1 + (size_t)start * m->s, m->mu, ns * sizeof(float));
            if (o2)
                memcpy(o2 + (size_t)start * m->s, m->lv, ns * sizeof(float));
            break;
        case W_PROBA:
        case W_CLUSTERS:
            if (o1)
                memcpy(o1 + (size_t)start * m->k, m->q, nk * sizeof(float));
            if (clusters)
                for (int i = 0; i < n; i++) {
                    const float *qi = m->q + (size_t)i * m->k;
                    int best = 0;
                    for (int y = 1; y < m->k; y++)
                        if (qi[y] > qi[best])
                            best = y;
                    clusters[start + i] = best;
                }
            break;
        case W_RECON:
            memcpy(o1 + (size_t)start * m->P, cvae__xhat(m), (size_t)n * m->P * sizeof(float));
            break;
        }
    }
}

/* Class means from k-means++ on the training set's mu. */
static cvae_status kmeans_init(cvae_model *m, const cvae_dataset *ds, int64_t count)
{
    size_t bytes;
    if (cvae__mul_overflows((size_t)count, (size_t)m->s * sizeof(float), &bytes))
        return cvae__fail(CVAE_E_INVALID_ARG, "data set too large for k-means");
    float *mu = malloc(bytes);
    if (!mu)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes for k-means", bytes);
    source src = {ds, NULL};
    run_inference(m, src, count, W_MU_LV, mu, NULL, NULL);
    cvae_status st = CVAE_OK;
    if (count < m->k)
        st = cvae__fail(CVAE_E_INVALID_ARG, "k-means needs at least k = %d images, got %lld",
                        m->k, (long long)count);
    else
        st = cvae__kmeans(mu, count, m->s, m->k, 100, &m->rng, m->params + m->means, NULL, NULL);
    free(mu);
    return st;
}

cvae_status cvae_model_train(cvae_model *m, const cvae_dataset *data, int epochs,
                             cvae_optimizer *opt, cvae_progress_fn progress, void *user)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(data);
    if (epochs < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "epochs must be >= 1, got %d", epochs);
    int64_t count;
    cvae_status st = check_data(m, data, &count);
    if (st)
        return st;
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    if (!opt) {
        if (!m->own_opt && (st = cvae_optimizer_create_from_config(&m->cfg, &m->own_opt)))
            return st;
        opt = m->own_opt;
    }
    if ((st = cvae__optimizer_bind(opt, m->nparams, cvae__layout_id(m))))
        return st;
    /* The thread count is process-wide: write it only when it changes, so
     * models with the same setting can train concurrently. */
    if (cvae__gemm_get_threads() != m->cfg.threads)
        cvae__gemm_set_threads(m->cfg.threads);

    int64_t *perm = malloc((size_t)count * sizeof *perm);
    if (!perm)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a permutation of %lld", (long long)count);
    const int64_t batches = (count + m->B - 1) / m->B;

    for (int e = 0; e < epochs && !st; e++) {
        int mixture = mixture_active(m);
        /* Each epoch's order is a shuffle of 0..count-1 drawn from the RNG
         * alone (not of the previous order), so training in one call or in
         * several, across a save and load, visits the same batches. An
         * epoch stopped part way is finished first, in its own order
         * (redrawn from the RNG state it started with), unless the data
         * set's size changed. */
        for (int64_t i = 0; i < count; i++)
            perm[i] = i;
        int64_t b0 = 0, seen = 0;
        double sums[CVAE_LOSS_COUNT] = {0}, running[CVAE_LOSS_COUNT];
        uint64_t start_rng[4];
        if (e == 0 && m->part.batches > 0 && m->part.count == count) {
            cvae__rng r = {{0}, 0, 0.0f};
            memcpy(r.s, m->part.rng, sizeof r.s);
            memcpy(start_rng, m->part.rng, sizeof start_rng);
            cvae__rng_shuffle(&r, perm, count);
            b0 = m->part.batches;
            seen = m->part.seen;
            memcpy(sums, m->part.sums, sizeof sums);
        } else {
            if (mixture && !m->phase_mixture) {
                if (m->cfg.kmeans && (st = kmeans_init(m, data, count)))
                    break;
                m->phase_mixture = 1;
            }
            memcpy(start_rng, m->rng.s, sizeof start_rng);
            cvae__rng_shuffle(&m->rng, perm, count);
        }
        m->part.batches = 0;
        int64_t b = b0;
        for (; b < batches; b++) {
            int64_t start = b * m->B;
            int n = (int)(count - start < m->B ? count - start : m->B);
            cvae__dataset_gather_f32(data, perm + start, n, m->x);
            cvae__forward(m, n, 1, 1);
            double losses[CVAE_LOSS_COUNT];
            cvae__loss_and_backward(m, n, mixture, 1, losses);
            /* The whole gradient is checked before any of it is applied, so a
             * non-finite value leaves the weights and the optimizer state untouched. */
            if (!isfinite(losses[CVAE_LOSS_TOTAL]) || !cvae__all_finite(m->grads, m->nparams)) {
                st = cvae__fail(CVAE_E_NUMERIC,
                                "non-finite loss or gradient at epoch %d, batch %lld; the "
                                "weights are those before this batch",
                                m->epochs_done, (long long)b + 1);
                break;
            }
            cvae__optimizer_begin_step(opt);
            for (int i = 0; i < m->nparam; i++)
                if (m->ptab[i].trainable)
                    cvae__optimizer_update(opt, m->params, m->grads, m->ptab[i].offset,
                                           m->ptab[i].count);
            seen += n;
            for (int t = 0; t < CVAE_LOSS_COUNT; t++) {
                sums[t] += losses[t] * n;
                running[t] = sums[t] / (double)seen;
            }
            if (progress && progress(user, m->epochs_done, b + 1, batches, running,
                                     CVAE_LOSS_COUNT)) {
                st = cvae__fail(CVAE_E_CANCELLED, "training stopped by the progress callback");
                b++; /* this batch is done */
                break;
            }
        }
        if (b >= batches) {
            m->epochs_done++; /* complete, even if stopped after its last batch */
        } else if (b > 0) {
            m->part.batches = b;
            m->part.count = count;
            m->part.seen = seen;
            memcpy(m->part.rng, start_rng, sizeof start_rng);
            memcpy(m->part.sums, sums, sizeof sums);
        }
    }
    free(perm);
    return st;
}

static cvae_status check_buffer_call(cvae_model *m, const float *images, int64_t n)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(images);
    if (n < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "image count must be >= 1, got %lld", (long long)n);
    size_t total;
    if (cvae__mul_overflows((size_t)n, (size_t)m->P, &total) || total > SIZE_MAX / sizeof(float))
        return cvae__fail(CVAE_E_INVALID_ARG, "%lld images overflow the address space",
                          (long long)n);
    return cvae__check_images(images, (int64_t)total);
}

cvae_status cvae_model_encode(cvae_model *m, const float *images, int64_t n, float *mu,
                              float *logvar)
{
    cvae_status st = check_buffer_call(m, images, n);
    if (st)
        return st;
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    source src = {NULL, images};
    run_inference(m, src, n, W_MU_LV, mu, logvar, NULL);
    return CVAE_OK;
}

cvae_status cvae_model_predict(cvae_model *m, const float *images, int64_t n, int32_t *clusters)
{
    cvae_status st = check_buffer_call(m, images, n);
    if (st)
        return st;
    CVAE__CHECK_PTR(clusters);
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    source src = {NULL, images};
    run_inference(m, src, n, W_CLUSTERS, NULL, NULL, clusters);
    return CVAE_OK;
}

cvae_status cvae_model_predict_proba(cvae_model *m, const float *images, int64_t n, float *proba)
{
    cvae_status st = check_buffer_call(m, images, n);
    if (st)
        return st;
    CVAE__CHECK_PTR(proba);
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    source src = {NULL, images};
    run_inference(m, src, n, W_PROBA, proba, NULL, NULL);
    return CVAE_OK;
}

cvae_status cvae_model_reconstruct(cvae_model *m, const float *images, int64_t n, float *out)
{
    cvae_status st = check_buffer_call(m, images, n);
    if (st)
        return st;
    CVAE__CHECK_PTR(out);
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    source src = {NULL, images};
    run_inference(m, src, n, W_RECON, out, NULL, NULL);
    return CVAE_OK;
}

cvae_status cvae_model_predict_dataset(cvae_model *m, const cvae_dataset *data,
                                       int32_t *clusters, float *proba)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(data);
    CVAE__CHECK_PTR(clusters);
    int64_t count;
    cvae_status st = check_data(m, data, &count);
    if (st)
        return st;
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    source src = {data, NULL};
    run_inference(m, src, count, W_CLUSTERS, proba, NULL, clusters);
    return CVAE_OK;
}

cvae_status cvae_model_evaluate(cvae_model *m, const cvae_dataset *data, double *acc,
                                double *purity, double *nmi, double *ari)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(data);
    int64_t count;
    cvae_status st = check_data(m, data, &count);
    if (st)
        return st;
    const int32_t *labels = cvae__dataset_labels_ptr(data);
    if (!labels)
        return cvae__fail(CVAE_E_STATE, "the data set has no labels to evaluate against");
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    int32_t *pred = malloc((size_t)count * sizeof *pred);
    if (!pred)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %lld predictions", (long long)count);
    source src = {data, NULL};
    run_inference(m, src, count, W_CLUSTERS, NULL, NULL, pred);
    st = cvae_cluster_metrics(labels, pred, count, acc, purity, nmi, ari);
    free(pred);
    return st;
}

cvae_status cvae_model_loss(cvae_model *m, const cvae_dataset *data, double *losses,
                            int num_losses)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(data);
    CVAE__CHECK_PTR(losses);
    if (num_losses < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "num_losses must be >= 1");
    int64_t count;
    cvae_status st = check_data(m, data, &count);
    if (st)
        return st;
    if ((st = cvae__model_ensure_workspace(m)))
        return st;
    double sums[CVAE_LOSS_COUNT] = {0};
    int mixture = mixture_active(m);
    source src = {data, NULL};
    for (int64_t start = 0; start < count; start += m->B) {
        int n = (int)(count - start < m->B ? count - start : m->B);
        load_chunk(m, src, start, n);
        cvae__forward(m, n, 0, 1);
        double l[CVAE_LOSS_COUNT];
        cvae__loss_and_backward(m, n, mixture, 0, l);
        for (int t = 0; t < CVAE_LOSS_COUNT; t++)
            sums[t] += l[t] * n;
    }
    for (int t = 0; t < num_losses; t++)
        losses[t] = t < CVAE_LOSS_COUNT ? sums[t] / (double)count : 0.0;
    return CVAE_OK;
}

cvae_status cvae_model_generate(cvae_model *m, int cluster, int64_t count, uint64_t seed,
                                float *out)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(out);
    if (cluster < 0 || cluster >= m->k)
        return cvae__fail(CVAE_E_INVALID_ARG, "cluster %d is outside [0, %d)", cluster, m->k);
    if (count < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "count must be >= 1, got %lld", (long long)count);
    size_t total;
    if (cvae__mul_overflows((size_t)count, (size_t)m->P, &total) ||
        total > SIZE_MAX / sizeof(float))
        return cvae__fail(CVAE_E_INVALID_ARG, "%lld images overflow the address space",
                          (long long)count);
    cvae_status st = cvae__model_ensure_workspace(m);
    if (st)
        return st;
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    const float *mean = m->cfg.prior == CVAE_PRIOR_MIXTURE ? m->params + m->means +
                                                                 (size_t)cluster * m->s
                                                           : NULL;
    for (int64_t start = 0; start < count; start += m->B) {
        int n = (int)(count - start < m->B ? count - start : m->B);
        for (int i = 0; i < n; i++)
            for (int d = 0; d < m->s; d++)
                m->z[(size_t)i * m->s + d] = (mean ? mean[d] : 0.0f) + cvae__rng_normal(&r);
        cvae__decode(m, n);
        memcpy(out + (size_t)start * m->P, cvae__xhat(m), (size_t)n * m->P * sizeof(float));
    }
    return CVAE_OK;
}
