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
#include "model/loss.h"
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
static void fill_eps(const cvae_model *model, const int64_t *idx, int n, float *eps)
{
    for (int i = 0; i < n; i++) {
        cvae__rng r;
        cvae__item_rng(&r, model->cfg.seed, CVAE__STREAM_EPS, (uint64_t)model->epochs_done,
                       (uint64_t)idx[i]);
        cvae__rng_normal_fill(&r, eps + (size_t)i * model->s, model->s);
    }
}

/* The gather of a batch's images (unless data is NULL) and, with eps, their
 * sampling noise: both per image, so the rows are split into the parts of
 * one job (the noise, a Box-Muller pair of log, sqrt, sin and cos per two
 * values, takes about as long as a small layer, and would run on one
 * thread). The values do not depend on the split. */
typedef struct rows_job {
    const cvae_model *model;
    const cvae_dataset *data;
    const int64_t *idx;
    int n, eps;
} rows_job;

static void rows_part(void *ctx, int part, int parts)
{
    const rows_job *j = ctx;
    int64_t lo, hi;
    cvae__shard(j->n, part, parts, &lo, &hi);
    const int rows = (int)(hi - lo);
    if (j->data)
        cvae__dataset_gather_f32(j->data, j->idx + lo, rows,
                                 j->model->x + (size_t)lo * j->model->P);
    if (j->eps)
        fill_eps(j->model, j->idx + lo, rows, j->model->eps + (size_t)lo * j->model->s);
}

static void gather_rows(const cvae_model *model, const cvae_dataset *data, const int64_t *idx,
                        int n, int eps)
{
    rows_job j = {model, data, idx, n, eps};
    int parts = cvae__parallel_threads();
    parts = parts < n ? parts : n;
    if (parts > 1)
        cvae__parallel(parts, rows_part, &j);
    else
        rows_part(&j, 0, 1);
}

/* What a training step reads besides the model: the data, the recipe's
 * per-image work for this epoch and the batch buffers. */
typedef struct batch_ctx {
    const cvae_dataset *data;
    int augment, consistency, contrast, finetune;
    cvae__augment_params aug;
    uint64_t aug_seed;
    float *xaug, *ref, *mu_aug; /* mu_aug: the transformed images' codes */
    /* The contrastive form (see contrast_solve): the global batch's
     * transformed codes then its clean codes (B x s each, the second at
     * B x s), their gradients in the same layout, and the term's
     * workspace (2 B^2 doubles). */
    float *gcodes, *gdcodes;
    double *cwork;
    int32_t *plb;
    int64_t batch; /* 1-based, for messages */
    int64_t lo;    /* this process's slice starts at row lo of the batch */
} batch_ctx;

static void free_batch_buffers(cvae_model *model, batch_ctx *bc, int64_t *perm, float *scratch)
{
    model->par.scratch = NULL;
    model->cons_dmu = NULL;
    model->cons_dclean = NULL;
    free(perm);
    free(bc->xaug);
    free(bc->ref);
    free(bc->mu_aug);
    free(bc->gcodes);
    free(bc->gdcodes);
    free(bc->cwork);
    free(bc->plb);
    cvae__aligned_free(scratch);
    cvae__model_alt_free(model);
}

/* Load n images (their data-set indices idx) into the workspace as the
 * training pass sees them: gathered, augmented, with their sampling noise;
 * with targets, also the recipe's per-image targets of this step (the clean
 * images' codes for the consistency term, the pseudo-labels). With keep,
 * the clean images' pass stays in the second activation set for
 * consistency_clean_side. */
static void load_rows(cvae_model *model, const batch_ctx *bc, const int64_t *idx, int n,
                      int targets, int clean, int keep)
{
    const struct cvae_config *c = &model->cfg;
    /* The clean pass below sets eps to zero, so with it the noise is drawn
     * after it. */
    gather_rows(model, bc->data, idx, n, !clean);
    if (clean) {
        /* The clean images' codes, the targets of the term: an inference
         * pass, run before the noise of the training pass is drawn. */
        if (keep) {
            memcpy(model->alt.x, model->x, (size_t)n * model->P * sizeof *model->x);
            cvae__model_swap_encoder(model);
        }
        cvae__forward_codes(model, n, 0);
        memcpy(bc->ref, model->mu, (size_t)n * model->s * sizeof *bc->ref);
        if (keep)
            cvae__model_swap_encoder(model);
        if (!bc->contrast) {
            model->cons_ref = bc->ref;
            model->cons_weight = (float)c->consistency_weight;
        }
    }
    if (bc->augment) {
        /* Keyed by the global image index, so the same image gets the same
         * transform on any number of processes and in any part. */
        (void)cvae__augment_f32(&bc->aug, bc->aug_seed, (uint64_t)model->epochs_done, idx, n,
                                c->in_c, c->in_h, c->in_w, model->x, bc->xaug);
        memcpy(model->x, bc->xaug, (size_t)n * model->P * sizeof *bc->xaug);
    }
    if (targets && bc->finetune && c->pseudo_weight > 0.0) {
        for (int i = 0; i < n; i++)
            bc->plb[i] = model->pl[idx[i]];
        model->pl_batch = bc->plb;
        model->pl_weight = (float)c->pseudo_weight;
    }
    if (clean)
        gather_rows(model, NULL, idx, n, 1); /* the noise alone */
}

static cvae_status reduce_failed(const cvae_model *model, const batch_ctx *bc)
{
    return cvae__fail(CVAE_E_IO, "the reduce callback failed at epoch %d, batch %lld; the "
                                 "weights are those before this batch",
                      model->epochs_done, (long long)bc->batch);
}

/* The contrastive term couples every image of a batch with the others, so
 * it is computed on the global batch, whatever part of it a process or a
 * part of a step trains: each puts its rows' transformed and clean codes
 * at their place in the batch (row off), the sum over the processes
 * gathers them (the other rows are zero), and every process computes the
 * same term and gradients, then trains its rows with their share. */
static void contrast_clear(const cvae_model *model, const batch_ctx *bc)
{
    memset(bc->gcodes, 0, 2 * (size_t)model->B * model->s * sizeof *bc->gcodes);
}

static void contrast_put(const cvae_model *model, const batch_ctx *bc, int64_t off, int n,
                         const float *tcodes, const float *ccodes)
{
    const size_t s = (size_t)model->s, half = (size_t)model->B * s;
    memcpy(bc->gcodes + (size_t)off * s, tcodes, (size_t)n * s * sizeof *tcodes);
    memcpy(bc->gcodes + half + (size_t)off * s, ccodes, (size_t)n * s * sizeof *ccodes);
}

static int contrast_solve(cvae_model *model, const batch_ctx *bc)
{
    const size_t s = (size_t)model->s, half = (size_t)model->B * s;
    const int total = (int)model->par.total;
    if (cvae__dp_on(&model->par) && cvae__dp_reduce(&model->par, bc->gcodes, 2 * half))
        return -1;
    memset(bc->gdcodes, 0, 2 * half * sizeof *bc->gdcodes);
    model->cons_value = cvae__loss_contrast(total, model->s, bc->gcodes, bc->gcodes + half,
                                            (float)model->cfg.contrast_temperature,
                                            (float)model->cfg.consistency_weight,
                                            1.0f / (float)total, bc->cwork, bc->gdcodes,
                                            bc->gdcodes + half);
    return 0;
}

/* Point the model at the term's gradients for the n rows from row off. */
static void contrast_rows(cvae_model *model, const batch_ctx *bc, int64_t off)
{
    const size_t s = (size_t)model->s, half = (size_t)model->B * s;
    model->cons_dmu = bc->gdcodes + (size_t)off * s;
    model->cons_dclean = bc->gdcodes + half + (size_t)off * s;
}

/* The clean images' side of the consistency term (see
 * cvae__consistency_backward) for the n rows whose transformed pass was
 * just trained, their codes still in model->mu: the clean images' pass
 * (kept by load_rows, or with !kept run again) and the term's gradient
 * through the encoder goes to the scratch buffer, added to the step's
 * gradient bucket by bucket (and handed to the reduction as it goes when
 * push). */
static void consistency_clean_side(cvae_model *model, const batch_ctx *bc, const int64_t *idx,
                                   int n, int push, int kept)
{
    cvae__dp *p = &model->par;
    const float scale = cvae__grad_scale(model, n);
    memcpy(bc->mu_aug, model->mu, (size_t)n * model->s * sizeof *bc->mu_aug);
    if (kept) {
        cvae__model_swap_encoder(model);
    } else {
        cvae__dataset_gather_f32(bc->data, idx, n, model->x);
        cvae__forward_codes(model, n, 0);
    }
    float *grads = model->grads;
    const int adding = p->adding;
    model->grads = p->scratch;
    p->adding = 1;
    p->push = push;
    p->next_bucket = 0;
    cvae__consistency_backward(model, n, bc->mu_aug, (float)model->cfg.consistency_weight, scale);
    if (kept)
        cvae__model_swap_encoder(model);
    model->grads = grads;
    p->adding = adding;
    p->push = 0;
}

/* A step with this process's n images of the global batch in one pass. */
static cvae_status step_whole(cvae_model *model, const batch_ctx *bc, const int64_t *idx, int n,
                              int mixture, double *losses)
{
    cvae__dp *p = &model->par;
    p->sum = model->grads;
    /* With the term, the training call allocated the second activation
     * set: the clean pass is kept there for the clean side. */
    const int clean_side = bc->consistency && n > 0;
    p->push = !clean_side;
    p->next_bucket = 0;
    if (n > 0) {
        load_rows(model, bc, idx, n, 1, bc->consistency, clean_side);
        cvae__forward(model, n, CVAE__TRAIN_REUSE_EPS, 1);
    }
    if (bc->contrast) {
        contrast_clear(model, bc);
        contrast_put(model, bc, bc->lo, n, model->mu, bc->ref);
        if (contrast_solve(model, bc))
            return reduce_failed(model, bc);
        contrast_rows(model, bc, bc->lo);
    }
    cvae__loss_and_backward(model, n, mixture, 1, losses);
    model->cons_ref = NULL;
    model->cons_dmu = NULL;
    model->pl_batch = NULL;
    if (clean_side)
        consistency_clean_side(model, bc, idx, n, 1, 1);
    p->push = 0;
    if (cvae__dp_on(p) && cvae__dp_grads_done(model))
        return reduce_failed(model, bc);
    return CVAE_OK;
}

/* A step whose n images (this process's slice) are computed in parts of at
 * most micro rows, so the workspace holds a part, not the slice. The
 * balance term needs the whole global batch's mean of q before any
 * gradient, so a first pass computes q part by part (the encoder and the
 * category head, no decoder: the same images, noise and weights as the
 * second pass, so the same q); its column sums are reduced over the
 * processes. The second pass runs forward and backward per part and adds
 * the parts' gradients (the first part writes the sum, later ones a scratch
 * buffer added bucket by bucket); the loss values are summed over the
 * parts and then the processes. The update is the one-pass step's, up to
 * the order of float sums. */
static cvae_status step_in_parts(cvae_model *model, const batch_ctx *bc, const int64_t *idx,
                                 int n, int mixture, double *losses)
{
    cvae__dp *p = &model->par;
    const int k = model->k, m = model->ws_rows;
    float *grads = model->grads;
    p->sum = grads;
    for (int y = 0; y < k; y++)
        p->colsum[y] = 0;
    if (bc->contrast)
        contrast_clear(model, bc);
    for (int r0 = 0; r0 < n; r0 += m) {
        const int rows = n - r0 < m ? n - r0 : m;
        load_rows(model, bc, idx + r0, rows, 0, bc->contrast, 0);
        cvae__forward(model, rows, CVAE__TRAIN_REUSE_EPS, 0);
        for (int i = 0; i < rows; i++)
            for (int y = 0; y < k; y++)
                p->colsum[y] += model->q[(size_t)i * k + y];
        if (bc->contrast)
            contrast_put(model, bc, bc->lo + r0, rows, model->mu, bc->ref);
    }
    if (cvae__dp_on(p) && cvae__dp_reduce_terms(p, p->colsum, (size_t)k))
        return reduce_failed(model, bc);
    if (bc->contrast && contrast_solve(model, bc))
        return reduce_failed(model, bc);

    double sums[CVAE_LOSS_COUNT] = {0}, part[CVAE_LOSS_COUNT];
    p->parts = 1;
    p->next_bucket = 0;
    if (n == 0)
        memset(grads, 0, model->nparams * sizeof *grads);
    for (int r0 = 0; r0 < n; r0 += m) {
        const int rows = n - r0 < m ? n - r0 : m;
        load_rows(model, bc, idx + r0, rows, 1, bc->consistency && !bc->contrast, 0);
        cvae__forward(model, rows, CVAE__TRAIN_REUSE_EPS, 1);
        if (bc->contrast)
            contrast_rows(model, bc, bc->lo + r0);
        const int last = r0 + rows >= n;
        p->adding = r0 > 0;
        p->push = last && !bc->consistency;
        p->next_bucket = 0;
        model->grads = r0 > 0 ? p->scratch : grads;
        cvae__loss_and_backward(model, rows, mixture, 1, part);
        model->grads = grads;
        model->cons_ref = NULL;
        model->cons_dmu = NULL;
        model->pl_batch = NULL;
        if (bc->consistency)
            consistency_clean_side(model, bc, idx + r0, rows, last, 0);
        for (int t = 0; t < CVAE_LOSS_COUNT; t++)
            sums[t] += part[t];
    }
    p->parts = 0;
    p->adding = 0;
    p->push = 0;
    /* the loss values: this process's shares, summed over the processes
     * (the balance term is the batch's already) */
    double t[4] = {sums[CVAE_LOSS_RECON], sums[CVAE_LOSS_KL], sums[CVAE_LOSS_CATEGORY],
                   sums[CVAE_LOSS_TOTAL] - model->cfg.lambda * sums[CVAE_LOSS_RECON] -
                       sums[CVAE_LOSS_KL] - sums[CVAE_LOSS_CATEGORY] - sums[CVAE_LOSS_BALANCE]};
    if (cvae__dp_on(p) && cvae__dp_reduce_terms(p, t, 4))
        return reduce_failed(model, bc);
    const double bal = cvae__loss_balance_from_sums(0, k, p->colsum, p->total,
                                                    (float)model->cfg.balance_weight, NULL);
    losses[CVAE_LOSS_RECON] = t[0];
    losses[CVAE_LOSS_KL] = t[1];
    losses[CVAE_LOSS_CATEGORY] = t[2];
    losses[CVAE_LOSS_BALANCE] = bal;
    losses[CVAE_LOSS_TOTAL] = model->cfg.lambda * t[0] + t[1] + t[2] + bal + t[3];
    if (cvae__dp_on(p) && cvae__dp_grads_done(model))
        return reduce_failed(model, bc);
    return CVAE_OK;
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
    batch_ctx bc = {.data = data};
    bc.augment = manifold && c->augment;
    /* cons: the term is used in some epoch of this call, so its buffers are
     * needed; bc.consistency says whether it is on in the current epoch. */
    const int cons = manifold && c->consistency_weight > 0.0;
    cvae__recipe_augment_params(model, &bc.aug);
    bc.aug_seed = cvae__recipe_augment_seed(model);
    const size_t bp = (size_t)model->B * (size_t)model->P;
    int64_t *perm = malloc((size_t)count * sizeof *perm);
    bc.xaug = bc.augment ? malloc(bp * sizeof *bc.xaug) : NULL;
    bc.ref = cons ? malloc((size_t)model->B * model->s * sizeof *bc.ref) : NULL;
    bc.mu_aug = cons ? malloc((size_t)model->B * model->s * sizeof *bc.mu_aug) : NULL;
    const int contrast = cons && c->contrast_temperature > 0.0;
    if (contrast) {
        bc.gcodes = malloc((size_t)2 * model->B * model->s * sizeof *bc.gcodes);
        bc.gdcodes = malloc((size_t)2 * model->B * model->s * sizeof *bc.gdcodes);
        bc.cwork = malloc(cvae__loss_contrast_work(model->B) * sizeof *bc.cwork);
    }
    bc.plb = manifold ? malloc((size_t)model->B * sizeof *bc.plb) : NULL;
    /* the gradient of a later part of a step computed in parts, and of the
     * consistency term's clean side */
    const int want_scratch = model->par.micro > 0 || cons;
    float *scratch = want_scratch ? cvae__aligned_alloc(model->nparams * sizeof(float)) : NULL;
    if (!perm || (bc.augment && !bc.xaug) || (cons && (!bc.ref || !bc.mu_aug)) ||
        (contrast && (!bc.gcodes || !bc.gdcodes || !bc.cwork)) || (manifold && !bc.plb) ||
        (want_scratch && !scratch)) {
        free_batch_buffers(model, &bc, perm, scratch);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a permutation of %lld and batch buffers",
                          (long long)count);
    }
    /* The consistency term's clean pass, kept for its backward (about 12 MB
     * for the default model's batch of 100) so that a step over the whole
     * slice does not run it twice; a step in parts runs it again. */
    if (cons && (st = cvae__model_alt_workspace(model)) != CVAE_OK) {
        free_batch_buffers(model, &bc, perm, scratch);
        return st;
    }
    /* zeroed once: the backward pass never writes the padding between
     * tensors, and the parts' buckets add it in */
    if (scratch)
        memset(scratch, 0, model->nparams * sizeof *scratch);
    model->par.scratch = scratch;
    const int64_t batches = (count + model->B - 1) / model->B;
    /* the trainable tensors, which each step updates */
    size_t upd_off[CVAE__MAX_PARAMS], upd_cnt[CVAE__MAX_PARAMS];
    const int upd_ranges = cvae__model_trainable_ranges(model, upd_off, upd_cnt);
    /* Data-parallel: every process runs this same loop over the same
     * global batches (training/data_parallel.h). */
    const int par = cvae__dp_on(&model->par);
    model->par.active = par;
    model->par.failed = 0;
    if (par)
        st = cvae__dp_comm_start(&model->par);
    if (par && !st)
        st = cvae__dp_agree(model, count, opt->steps, "training");
    if (st) {
        cvae__dp_comm_stop(&model->par);
        model->par.active = 0;
        free_batch_buffers(model, &bc, perm, scratch);
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
        bc.finetune = manifold && model->pl && model->pl_n == count &&
                      model->epochs_done >= c->pretrain;
        bc.consistency = cons && (c->consistency_finetune || model->epochs_done < c->pretrain);
        bc.contrast = bc.consistency && contrast;
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
            /* A slice larger than the micro-batch (decided from the global
             * batch alone, so every process agrees) runs in parts. */
            const int slice = par ? (int)((total + model->par.size - 1) / model->par.size) : total;
            const int parts = model->par.micro > 0 && slice > model->par.micro;
            double losses[CVAE_LOSS_COUNT];
            bc.batch = b + 1;
            bc.lo = lo;
            if (parts)
                st = step_in_parts(model, &bc, idx, n, mixture, losses);
            else
                st = step_whole(model, &bc, idx, n, mixture, losses);
            if (st)
                break;
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
            cvae__optimizer_update_ranges(opt, model->params, model->grads, upd_off, upd_cnt,
                                          upd_ranges);
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
    cvae__dp_comm_stop(&model->par);
    model->par.active = 0;
    free_batch_buffers(model, &bc, perm, scratch);
    return st;
}

