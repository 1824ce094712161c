/* Inference entry points (see inference.h). Each validates its arguments
 * and makes sure of the workspace in one shared prologue, then runs the
 * network in evaluation mode (z = mu) batch by batch in the workspace. */
#include "model/inference.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/dataset.h"
#include "model/loss.h"
#include "model/vae_head.h"

cvae_status cvae__check_dataset(const cvae_model *model, const cvae_dataset *data,
                                int64_t *count)
{
    int c, h, w;
    cvae_status st = cvae_dataset_shape(data, count, &c, &h, &w);
    if (st)
        return st;
    if (c != model->cfg.in_c || h != model->cfg.in_h || w != model->cfg.in_w)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "data set images are %dx%dx%d, the model expects %dx%dx%d", c, h, w,
                          model->cfg.in_c, model->cfg.in_h, model->cfg.in_w);
    return CVAE_OK;
}

/* Where inference reads its images: a data set (uint8 kept until here) or
 * a caller's float buffer of count images. */
typedef struct source {
    const cvae_dataset *ds;
    const float *x;
    int64_t count;
} source;

/* The prologue every entry point shares, so each checks the same things in
 * the same order: the model; the input (a data set of the model's image
 * shape, or a buffer of n >= 1 finite images in [0,1]); the output buffer
 * out, named out_name, unless out_name is NULL; then the workspace. fn names
 * the entry point in messages. On success src holds the input and its
 * image count. */
static cvae_status prologue(const char *fn, cvae_model *model, const cvae_dataset *data,
                            const float *images, int64_t n, const void *out,
                            const char *out_name, source *src)
{
    if (!model)
        return cvae__fail(CVAE_E_INVALID_ARG, "%s: model is NULL", fn);
    src->ds = data;
    src->x = images;
    cvae_status st;
    if (data) {
        if ((st = cvae__check_dataset(model, data, &src->count)))
            return st;
    } else {
        if (!images)
            return cvae__fail(CVAE_E_INVALID_ARG, "%s: images is NULL", fn);
        if (n < 1)
            return cvae__fail(CVAE_E_INVALID_ARG, "image count must be >= 1, got %lld",
                              (long long)n);
        size_t total;
        if (cvae__mul_overflows((size_t)n, (size_t)model->P, &total) ||
            total > SIZE_MAX / sizeof(float))
            return cvae__fail(CVAE_E_INVALID_ARG, "%lld images overflow the address space",
                              (long long)n);
        if ((st = cvae__check_images(images, (int64_t)total)))
            return st;
        src->count = n;
    }
    if (out_name && !out)
        return cvae__fail(CVAE_E_INVALID_ARG, "%s: %s is NULL", fn, out_name);
    return cvae__model_ensure_workspace(model);
}

static void load_chunk(cvae_model *model, const source *src, int64_t start, int n)
{
    if (src->ds) {
        /* bounds were checked by the prologue, so this cannot fail */
        (void)cvae_dataset_images_f32(src->ds, start, n, model->x);
    } else {
        memcpy(model->x, src->x + (size_t)start * model->P, (size_t)n * model->P * sizeof(float));
    }
}

enum what { W_MU_LV, W_PROBA, W_CLUSTERS, W_RECON };

static void run_inference(cvae_model *model, const source *src, enum what what, float *o1,
                          float *o2, int32_t *clusters)
{
    const int rows = model->ws_rows; /* per image: any chunk size gives the same result */
    for (int64_t start = 0; start < src->count; start += rows) {
        int n = (int)(src->count - start < rows ? src->count - start : rows);
        load_chunk(model, src, start, n);
        cvae__forward(model, n, 0, what == W_RECON);
        size_t ns = (size_t)n * model->s, nk = (size_t)n * model->k;
        switch (what) {
        case W_MU_LV:
            if (o1)
                memcpy(o1 + (size_t)start * model->s, model->mu, ns * sizeof(float));
            if (o2)
                memcpy(o2 + (size_t)start * model->s, model->lv, ns * sizeof(float));
            break;
        case W_PROBA:
        case W_CLUSTERS:
            if (o1)
                memcpy(o1 + (size_t)start * model->k, model->q, nk * sizeof(float));
            if (clusters)
                for (int i = 0; i < n; i++) {
                    const float *qi = model->q + (size_t)i * model->k;
                    int best = 0;
                    for (int y = 1; y < model->k; y++)
                        if (qi[y] > qi[best])
                            best = y;
                    clusters[start + i] = best;
                }
            break;
        case W_RECON:
            memcpy(o1 + (size_t)start * model->P, cvae__xhat(model),
                   (size_t)n * model->P * sizeof(float));
            break;
        }
    }
}

void cvae__encode_dataset(cvae_model *model, const cvae_dataset *data, int64_t count,
                          float *mu)
{
    const source src = {data, NULL, count};
    run_inference(model, &src, W_MU_LV, mu, NULL, NULL);
}

cvae_status cvae_model_encode(cvae_model *model, const float *images, int64_t n, float *mu,
                              float *logvar)
{
    source src;
    cvae_status st = prologue(__func__, model, NULL, images, n, NULL, NULL, &src);
    if (st)
        return st;
    run_inference(model, &src, W_MU_LV, mu, logvar, NULL);
    return CVAE_OK;
}

cvae_status cvae_model_predict(cvae_model *model, const float *images, int64_t n,
                               int32_t *clusters)
{
    source src;
    cvae_status st = prologue(__func__, model, NULL, images, n, clusters, "clusters", &src);
    if (st)
        return st;
    run_inference(model, &src, W_CLUSTERS, NULL, NULL, clusters);
    return CVAE_OK;
}

cvae_status cvae_model_predict_proba(cvae_model *model, const float *images, int64_t n,
                                     float *proba)
{
    source src;
    cvae_status st = prologue(__func__, model, NULL, images, n, proba, "proba", &src);
    if (st)
        return st;
    run_inference(model, &src, W_PROBA, proba, NULL, NULL);
    return CVAE_OK;
}

cvae_status cvae_model_reconstruct(cvae_model *model, const float *images, int64_t n,
                                   float *out)
{
    source src;
    cvae_status st = prologue(__func__, model, NULL, images, n, out, "out", &src);
    if (st)
        return st;
    run_inference(model, &src, W_RECON, out, NULL, NULL);
    return CVAE_OK;
}

cvae_status cvae_model_predict_dataset(cvae_model *model, const cvae_dataset *data,
                                       int32_t *clusters, float *proba)
{
    CVAE__CHECK_PTR(data);
    source src;
    cvae_status st = prologue(__func__, model, data, NULL, 0, clusters, "clusters", &src);
    if (st)
        return st;
    run_inference(model, &src, W_CLUSTERS, proba, NULL, clusters);
    return CVAE_OK;
}

cvae_status cvae_model_evaluate(cvae_model *model, const cvae_dataset *data, double *acc,
                                double *purity, double *nmi, double *ari)
{
    CVAE__CHECK_PTR(data);
    source src;
    cvae_status st = prologue(__func__, model, data, NULL, 0, NULL, NULL, &src);
    if (st)
        return st;
    const int32_t *labels = cvae__dataset_labels_ptr(data);
    if (!labels)
        return cvae__fail(CVAE_E_STATE, "the data set has no labels to evaluate against");
    int32_t *pred = malloc((size_t)src.count * sizeof *pred);
    if (!pred)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %lld predictions",
                          (long long)src.count);
    run_inference(model, &src, W_CLUSTERS, NULL, NULL, pred);
    st = cvae_cluster_metrics(labels, pred, src.count, acc, purity, nmi, ari);
    free(pred);
    return st;
}

/* The loss of one batch whose n images (this process's slice) are more
 * than the workspace holds (cvae_model_set_micro_batch): computed in parts
 * of ws_rows as shares of the batch's means, the balance term from the
 * column sums of q over all parts; data-parallel, the column sums and the
 * shares go through the hook in the one call the single-piece path makes. */
static void loss_in_parts(cvae_model *model, const source *src, int64_t first, int n, int mixture,
                          double *losses)
{
    const int k = model->k, m = model->ws_rows;
    double share[4] = {0};
    /* the balance term of each part's loss_and_backward reads them */
    double *colsum = model->par.colsum;
    for (int y = 0; y < k; y++)
        colsum[y] = 0;
    model->par.parts = 1;
    for (int r0 = 0; r0 < n; r0 += m) {
        const int rows = n - r0 < m ? n - r0 : m;
        load_chunk(model, src, first + r0, rows);
        cvae__forward(model, rows, 0, 1);
        for (int i = 0; i < rows; i++)
            for (int y = 0; y < k; y++)
                colsum[y] += model->q[(size_t)i * k + y];
        double l[CVAE_LOSS_COUNT];
        cvae__loss_and_backward(model, rows, mixture, 0, l);
        share[0] += l[CVAE_LOSS_RECON];
        share[1] += l[CVAE_LOSS_KL];
        share[2] += l[CVAE_LOSS_CATEGORY];
    }
    model->par.parts = 0;
    if (cvae__dp_on(&model->par)) {
        double v[CVAE__DP_TERMS]; /* column sums of q, then the terms */
        memcpy(v, colsum, (size_t)k * sizeof *v);
        memcpy(v + k, share, sizeof share);
        cvae__dp_reduce_terms(&model->par, v, (size_t)k + 4);
        memcpy(colsum, v, (size_t)k * sizeof *v);
        memcpy(share, v + k, sizeof share);
    }
    const double bal = cvae__loss_balance_from_sums(0, k, colsum, model->par.total,
                                                    (float)model->cfg.balance_weight, NULL);
    losses[CVAE_LOSS_RECON] = share[0];
    losses[CVAE_LOSS_KL] = share[1];
    losses[CVAE_LOSS_CATEGORY] = share[2];
    losses[CVAE_LOSS_BALANCE] = bal;
    losses[CVAE_LOSS_TOTAL] = model->cfg.lambda * share[0] + share[1] + share[2] + bal;
}

cvae_status cvae_model_loss(cvae_model *model, const cvae_dataset *data, double *losses,
                            int num_losses)
{
    CVAE__CHECK_PTR(data);
    source src;
    cvae_status st = prologue(__func__, model, data, NULL, 0, losses, "losses", &src);
    if (st)
        return st;
    if (num_losses < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "num_losses must be >= 1");
    double sums[CVAE_LOSS_COUNT] = {0};
    const int mixture = cvae__mixture_active(model);
    /* Data-parallel, each process computes its slice of every batch and
     * the batch's terms are summed through the hook, as in training. */
    const int par = cvae__dp_on(&model->par);
    model->par.active = par;
    model->par.failed = 0;
    for (int64_t start = 0; start < src.count; start += model->B) {
        const int total = (int)(src.count - start < model->B ? src.count - start : model->B);
        int64_t lo = 0, hi = total;
        if (par)
            cvae__shard(total, model->par.rank, model->par.size, &lo, &hi);
        const int n = (int)(hi - lo);
        model->par.total = total;
        double l[CVAE_LOSS_COUNT];
        if (n > model->ws_rows) {
            loss_in_parts(model, &src, start + lo, n, mixture, l);
        } else {
            if (n > 0) {
                load_chunk(model, &src, start + lo, n);
                cvae__forward(model, n, 0, 1);
            }
            cvae__loss_and_backward(model, n, mixture, 0, l);
        }
        for (int t = 0; t < CVAE_LOSS_COUNT; t++)
            sums[t] += l[t] * total;
    }
    model->par.active = 0;
    if (model->par.failed)
        return cvae__fail(CVAE_E_IO, "the reduce callback failed");
    for (int t = 0; t < num_losses; t++)
        losses[t] = t < CVAE_LOSS_COUNT ? sums[t] / (double)src.count : 0.0;
    return CVAE_OK;
}

cvae_status cvae_model_generate(cvae_model *model, int cluster, int64_t count, uint64_t seed,
                                float *out)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(out);
    if (cluster < 0 || cluster >= model->k)
        return cvae__fail(CVAE_E_INVALID_ARG, "cluster %d is outside [0, %d)", cluster, model->k);
    if (count < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "count must be >= 1, got %lld", (long long)count);
    size_t total;
    if (cvae__mul_overflows((size_t)count, (size_t)model->P, &total) ||
        total > SIZE_MAX / sizeof(float))
        return cvae__fail(CVAE_E_INVALID_ARG, "%lld images overflow the address space",
                          (long long)count);
    cvae_status st = cvae__model_ensure_workspace(model);
    if (st)
        return st;
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    const int means = model->cfg.recipe == CVAE_RECIPE_MANIFOLD
                          ? model->pl != NULL
                          : model->cfg.prior == CVAE_PRIOR_MIXTURE;
    const float *mean = means ? model->params + model->means +
                                                                 (size_t)cluster * model->s
                                                           : NULL;
    const int rows = model->ws_rows;
    for (int64_t start = 0; start < count; start += rows) {
        int n = (int)(count - start < rows ? count - start : rows);
        for (int i = 0; i < n; i++)
            for (int d = 0; d < model->s; d++)
                model->z[(size_t)i * model->s + d] = (mean ? mean[d] : 0.0f) + cvae__rng_normal(&r);
        cvae__vae_decode(model, n);
        memcpy(out + (size_t)start * model->P, cvae__xhat(model), (size_t)n * model->P * sizeof(float));
    }
    return CVAE_OK;
}
