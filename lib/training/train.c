/* Training epochs (cvae_model_train). All per-batch work runs in the
 * model's workspace, made sure of first (a loaded model gets it on first
 * use); the only allocations are per call (the workspace once, the shuffle
 * permutation, the manifold recipe's batch buffers, k-means and manifold
 * scratch), never per batch. Inference is in model/inference.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/kmeans.h"
#include "core/error.h"
#include "core/threads.h"
#include "io/dataset.h"
#include "model/inference.h"
#include "model/model.h"
#include "training/augment.h"
#include "training/optimizer.h"
#include "training/recipe.h"

/* Class means from k-means++ on the training set's mu. */
static cvae_status kmeans_init(cvae_model *model, const cvae_dataset *ds, int64_t count)
{
    size_t bytes;
    if (cvae__mul_overflows((size_t)count, (size_t)model->s * sizeof(float), &bytes))
        return cvae__fail(CVAE_E_INVALID_ARG, "data set too large for k-means");
    float *mu = malloc(bytes);
    if (!mu)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes for k-means", bytes);
    cvae__encode_dataset(model, ds, count, mu);
    cvae_status st = CVAE_OK;
    if (count < model->k)
        st = cvae__fail(CVAE_E_INVALID_ARG, "k-means needs at least k = %d images, got %lld",
                        model->k, (long long)count);
    else
        st = cvae__kmeans(mu, count, model->s, model->k, 100, &model->rng, model->params + model->means, NULL, NULL);
    free(mu);
    return st;
}

cvae_status cvae_model_train(cvae_model *model, const cvae_dataset *data, int epochs,
                             cvae_optimizer *opt, cvae_progress_fn progress, void *user)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(data);
    if (epochs < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "epochs must be >= 1, got %d", epochs);
    int64_t count;
    cvae_status st = cvae__check_dataset(model, data, &count);
    if (st)
        return st;
    if ((st = cvae__model_ensure_workspace(model)))
        return st;
    if (!opt) {
        if (!model->own_opt && (st = cvae_optimizer_create_from_config(&model->cfg, &model->own_opt)))
            return st;
        opt = model->own_opt;
    }
    if ((st = cvae__optimizer_bind(opt, model->nparams, cvae__layout_id(model))))
        return st;
    /* The thread count is process-wide: write it only when it changes, so
     * models with the same setting can train concurrently. */
    if (cvae__threads_get() != model->cfg.threads)
        cvae__threads_set(model->cfg.threads);

    const struct cvae_config *c = &model->cfg;
    const int manifold = c->recipe == CVAE_RECIPE_MANIFOLD;
    const int augment = manifold && c->augment;
    const int consistency = manifold && c->consistency_weight > 0.0;
    cvae__augment_params aug;
    cvae__augment_defaults(&aug);
    aug.max_rotation = (float)c->aug_rotation;
    aug.max_shift = (float)c->aug_shift;
    aug.max_scale = (float)c->aug_scale;
    const uint64_t aug_seed = cvae__recipe_augment_seed(model);
    const size_t bp = (size_t)model->B * (size_t)model->P;
    int64_t *perm = malloc((size_t)count * sizeof *perm);
    float *xaug = augment ? malloc(bp * sizeof *xaug) : NULL;
    float *ref = consistency ? malloc((size_t)model->B * model->s * sizeof *ref) : NULL;
    int32_t *plb = manifold ? malloc((size_t)model->B * sizeof *plb) : NULL;
    if (!perm || (augment && !xaug) || (consistency && !ref) || (manifold && !plb)) {
        free(perm);
        free(xaug);
        free(ref);
        free(plb);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a permutation of %lld and batch buffers",
                          (long long)count);
    }
    const int64_t batches = (count + model->B - 1) / model->B;

    for (int e = 0; e < epochs && !st; e++) {
        /* The manifold step runs between epochs, never inside one: a
         * stopped epoch is finished with the pseudo-labels it started with. */
        int resume = e == 0 && model->part.batches > 0 && model->part.count == count;
        if (!resume && cvae__recipe_step_due(model, count) &&
            (st = cvae__recipe_manifold_step(model, data, count)))
            break;
        int mixture = cvae__mixture_active(model);
        const int finetune = manifold && model->pl && model->pl_n == count &&
                             model->epochs_done >= c->pretrain;
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
        if (resume) {
            cvae__rng r = {{0}, 0, 0.0f};
            memcpy(r.s, model->part.rng, sizeof r.s);
            memcpy(start_rng, model->part.rng, sizeof start_rng);
            cvae__rng_shuffle(&r, perm, count);
            b0 = model->part.batches;
            seen = model->part.seen;
            memcpy(sums, model->part.sums, sizeof sums);
        } else {
            if (!manifold && mixture && !model->phase_mixture) {
                if (model->cfg.kmeans && (st = kmeans_init(model, data, count)))
                    break;
                model->phase_mixture = 1;
            }
            memcpy(start_rng, model->rng.s, sizeof start_rng);
            cvae__rng_shuffle(&model->rng, perm, count);
        }
        model->part.batches = 0;
        int64_t b = b0;
        for (; b < batches; b++) {
            int64_t start = b * model->B;
            int n = (int)(count - start < model->B ? count - start : model->B);
            cvae__dataset_gather_f32(data, perm + start, n, model->x);
            if (consistency) {
                /* the clean images' codes, the fixed targets of the term */
                cvae__forward(model, n, 0, 0);
                memcpy(ref, model->mu, (size_t)n * model->s * sizeof *ref);
                model->cons_ref = ref;
                model->cons_weight = (float)c->consistency_weight;
            }
            if (augment) {
                (void)cvae__augment_f32(&aug, aug_seed, (uint64_t)model->epochs_done, perm + start,
                                        n, c->in_c, c->in_h, c->in_w, model->x, xaug);
                memcpy(model->x, xaug, (size_t)n * model->P * sizeof *xaug);
            }
            if (finetune && c->pseudo_weight > 0.0) {
                for (int i = 0; i < n; i++)
                    plb[i] = model->pl[perm[start + i]];
                model->pl_batch = plb;
                model->pl_weight = (float)c->pseudo_weight;
            }
            cvae__forward(model, n, 1, 1);
            double losses[CVAE_LOSS_COUNT];
            cvae__loss_and_backward(model, n, mixture, 1, losses);
            model->cons_ref = NULL;
            model->pl_batch = NULL;
            /* The whole gradient is checked before any of it is applied, so a
             * non-finite value leaves the weights and the optimizer state untouched. */
            if (!isfinite(losses[CVAE_LOSS_TOTAL]) || !cvae__all_finite(model->grads, model->nparams)) {
                st = cvae__fail(CVAE_E_NUMERIC,
                                "non-finite loss or gradient at epoch %d, batch %lld; the "
                                "weights are those before this batch",
                                model->epochs_done, (long long)b + 1);
                break;
            }
            cvae__optimizer_begin_step(opt);
            for (int i = 0; i < model->nparam; i++)
                if (model->ptab[i].trainable)
                    cvae__optimizer_update(opt, model->params, model->grads, model->ptab[i].offset,
                                           model->ptab[i].count);
            seen += n;
            for (int t = 0; t < CVAE_LOSS_COUNT; t++) {
                sums[t] += losses[t] * n;
                running[t] = sums[t] / (double)seen;
            }
            if (progress && progress(user, model->epochs_done, b + 1, batches, running,
                                     CVAE_LOSS_COUNT)) {
                st = cvae__fail(CVAE_E_CANCELLED, "training stopped by the progress callback");
                b++; /* this batch is done */
                break;
            }
        }
        if (b >= batches) {
            model->epochs_done++; /* complete, even if stopped after its last batch */
        } else if (b > 0) {
            model->part.batches = b;
            model->part.count = count;
            model->part.seen = seen;
            memcpy(model->part.rng, start_rng, sizeof start_rng);
            memcpy(model->part.sums, sums, sizeof sums);
        }
    }
    free(perm);
    free(xaug);
    free(ref);
    free(plb);
    return st;
}

