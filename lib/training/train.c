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
#include "training/data_parallel.h"
#include "training/recipe.h"

/* Class means from k-means++ on the training set's mu. Data-parallel,
 * each process encodes its part of the set and the codes are gathered
 * through the reduce hook (a sum where every other process contributes
 * zeros, so it is exact); every process then runs the same k-means from
 * the same RNG state and gets the same means. */
static cvae_status kmeans_init(cvae_model *model, const cvae_dataset *ds, int64_t count)
{
    if (count < model->k)
        return cvae__fail(CVAE_E_INVALID_ARG, "k-means needs at least k = %d images, got %lld",
                          model->k, (long long)count);
    size_t bytes;
    if (cvae__mul_overflows((size_t)count, (size_t)model->s * sizeof(float), &bytes))
        return cvae__fail(CVAE_E_INVALID_ARG, "data set too large for k-means");
    float *mu = malloc(bytes);
    if (!mu)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes for k-means", bytes);
    cvae_status st = CVAE_OK;
    if (cvae__dp_on(&model->par)) {
        int64_t begin, end;
        cvae__shard(count, model->par.rank, model->par.size, &begin, &end);
        memset(mu, 0, bytes);
        if (end > begin) {
            int64_t *idx = malloc((size_t)(end - begin) * sizeof *idx);
            cvae_dataset *part = NULL;
            if (!idx) {
                st = cvae__fail(CVAE_E_NOMEM, "cannot allocate k-means indices");
            } else {
                for (int64_t i = begin; i < end; i++)
                    idx[i - begin] = i;
                st = cvae_dataset_subset_indices(ds, idx, end - begin, &part);
                free(idx);
            }
            if (!st)
                cvae__encode_dataset(model, part, end - begin, mu + (size_t)begin * model->s);
            cvae_dataset_destroy(part);
        }
        /* every process reduces, even one that failed above, or the others
         * would wait for it */
        if (cvae__dp_reduce(&model->par, mu, (size_t)count * model->s) && !st)
            st = cvae__fail(CVAE_E_IO, "the reduce callback failed while gathering codes for "
                                       "k-means");
    } else {
        cvae__encode_dataset(model, ds, count, mu);
    }
    if (!st)
        st = cvae__kmeans(mu, count, model->s, model->k, 100, &model->rng,
                          model->params + model->means, NULL, NULL);
    free(mu);
    return st;
}

/* Sampling noise of n images (their indices in the data set) for one
 * epoch, from per-image streams: an image gets the same eps whichever
 * process computes it and wherever it falls in a batch. */
static void fill_eps(cvae_model *model, const int64_t *idx, int n)
{
    for (int i = 0; i < n; i++) {
        cvae__rng r;
        cvae__item_rng(&r, model->cfg.seed, CVAE__STREAM_EPS, (uint64_t)model->epochs_done,
                       (uint64_t)idx[i]);
        cvae__rng_normal_fill(&r, model->eps + (size_t)i * model->s, model->s);
    }
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
    /* Data-parallel: every process runs this same loop over the same
     * global batches (training/data_parallel.h). */
    const int par = cvae__dp_on(&model->par);
    model->par.active = par;
    model->par.failed = 0;
    if (par && (st = cvae__dp_agree(model, count, opt->steps, "training"))) {
        model->par.active = 0;
        free(perm);
        free(xaug);
        free(ref);
        free(plb);
        return st;
    }

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
        /* Each epoch's order is a shuffle of 0..count-1 keyed by the seed
         * and the epoch number alone (not drawn from the model's RNG, nor
         * from the previous order), so training in one call or in several,
         * across a save and load, on any number of processes, visits the
         * same batches, whatever else draws random numbers. An epoch
         * stopped part way is finished first, in its own order, unless the
         * data set's size changed. */
        for (int64_t i = 0; i < count; i++)
            perm[i] = i;
        int64_t b0 = 0, seen = 0;
        double sums[CVAE_LOSS_COUNT] = {0}, running[CVAE_LOSS_COUNT];
        uint64_t start_rng[4];
        if (resume) {
            memcpy(start_rng, model->part.rng, sizeof start_rng);
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
        }
        cvae__rng order;
        cvae__item_rng(&order, model->cfg.seed, CVAE__STREAM_ORDER, (uint64_t)model->epochs_done, 0);
        cvae__rng_shuffle(&order, perm, count);
        model->part.batches = 0;
        int64_t b = b0;
        for (; b < batches; b++) {
            /* The global batch b; this process computes [lo, hi) of it. */
            const int64_t start = b * model->B;
            const int total = (int)(count - start < model->B ? count - start : model->B);
            int64_t lo = 0, hi = total;
            if (par)
                cvae__shard(total, model->par.rank, model->par.size, &lo, &hi);
            const int n = (int)(hi - lo);
            model->par.total = total;
            const int64_t *idx = perm + start + lo;
            if (n > 0) {
                cvae__dataset_gather_f32(data, idx, n, model->x);
                if (consistency) {
                    /* The clean images' codes, the fixed targets of the
                     * term: an inference pass, run before the noise of
                     * the training pass is drawn. */
                    cvae__forward(model, n, 0, 0);
                    memcpy(ref, model->mu, (size_t)n * model->s * sizeof *ref);
                    model->cons_ref = ref;
                    model->cons_weight = (float)c->consistency_weight;
                }
                if (augment) {
                    /* Keyed by the global image index, so the same image
                     * gets the same transform on any number of processes. */
                    (void)cvae__augment_f32(&aug, aug_seed, (uint64_t)model->epochs_done, idx, n,
                                            c->in_c, c->in_h, c->in_w, model->x, xaug);
                    memcpy(model->x, xaug, (size_t)n * model->P * sizeof *xaug);
                }
                if (finetune && c->pseudo_weight > 0.0) {
                    for (int i = 0; i < n; i++)
                        plb[i] = model->pl[idx[i]];
                    model->pl_batch = plb;
                    model->pl_weight = (float)c->pseudo_weight;
                }
                fill_eps(model, idx, n);
                cvae__forward(model, n, CVAE__TRAIN_REUSE_EPS, 1);
            }
            double losses[CVAE_LOSS_COUNT];
            cvae__loss_and_backward(model, n, mixture, 1, losses);
            model->cons_ref = NULL;
            model->pl_batch = NULL;
            if (par && cvae__dp_reduce(&model->par, model->grads, model->nparams)) {
                st = cvae__fail(CVAE_E_IO, "the reduce callback failed at epoch %d, batch %lld; "
                                           "the weights are those before this batch",
                                model->epochs_done, (long long)b + 1);
                break;
            }
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
            seen += total;
            for (int t = 0; t < CVAE_LOSS_COUNT; t++) {
                sums[t] += losses[t] * total;
                running[t] = sums[t] / (double)seen;
            }
            int stop = progress && progress(user, model->epochs_done, b + 1, batches, running,
                                            CVAE_LOSS_COUNT);
            if (par) {
                /* A stop asked on any process stops all of them after the
                 * same batch, so none waits in a reduction forever. */
                float flag = stop ? 1.0f : 0.0f;
                if (cvae__dp_reduce(&model->par, &flag, 1)) {
                    st = cvae__fail(CVAE_E_IO, "the reduce callback failed at epoch %d, batch "
                                               "%lld, after the update",
                                    model->epochs_done, (long long)b + 1);
                    b++;
                    break;
                }
                stop = flag > 0.0f;
            }
            if (stop) {
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
    model->par.active = 0;
    free(perm);
    free(xaug);
    free(ref);
    free(plb);
    return st;
}

