/* The graph of the model over one mini-batch, wired from its parts: the
 * convolution branches (here), whose pooled outputs are the features; the
 * VAE head (vae_head.c: encoder, sampling, decoder) and the category head
 * (category_head.c), both reading the features as column blocks that are
 * never concatenated; then the loss terms (loss.c) of the clustering
 * objective and the backward pass in the reverse order. Everything works in
 * the model's preallocated workspace. */
#include <string.h>

#include "core/gemm.h"
#include "layers/activation.h"
#include "model/category_head.h"
#include "model/loss.h"
#include "model/model.h"
#include "model/vae_head.h"

#define PRM(off) (model->params + (off))
#define GRD(off) (model->grads + (off))

/* The heads' layers are 0.5-2.6M multiply-adds each at batch 100 (the
 * default model), under what a product is split at: a second thread takes
 * one of two such independent pieces instead. */
void cvae__model_pair(cvae_model *model, int n, double macs,
                      void (*fn)(void *ctx, int part, int parts))
{
    cvae__model_rows rows = {model, n};
    cvae__gemm_pair(macs, fn, &rows);
}

/* The largest product of the category head and the decoder's first layer
 * over n rows (multiply-adds): what decides whether the pieces that run
 * them go beside each other (cvae__gemm_pair). */
static double head_macs(const cvae_model *model, int n)
{
    const double rows = n, s = model->s;
    const double c1 = model->cfg.cat_input == CVAE_CATEGORY_INPUT_FEATURES ? model->D : s;
    double macs = rows * c1 * model->cat_units;
    if (rows * model->cat_units * model->k > macs)
        macs = rows * model->cat_units * model->k;
    if (rows * s * model->dec_units > macs)
        macs = rows * s * model->dec_units;
    return macs;
}

static void category_or_decoder(void *ctx, int part, int parts)
{
    (void)parts;
    const cvae__model_rows *r = ctx;
    if (part == 0)
        cvae__category_forward(r->model, r->n);
    else
        cvae__vae_decode_first(r->model, r->n);
}

void cvae__forward_codes(cvae_model *model, int n, int train)
{
    const float *in = model->x;
    for (int b = 0; b < model->nb; b++) {
        cvae__branch *br = &model->br[b];
        for (int l = 0; l < br->layers; l++) {
            const cvae__conv_geom *g = &br->conv[l];
            cvae__conv2d_relu_forward(g, n, in, PRM(br->w[l]), PRM(br->b[l]), br->act[l],
                                      model->col, cvae__conv_parts(model));
            in = br->act[l];
        }
        cvae__maxpool_forward(&br->pool, n, in, br->pooled, br->argmax);
        in = br->pooled;
    }

    cvae__vae_encode(model, n, train);
}

void cvae__forward(cvae_model *model, int n, int train, int need_decoder)
{
    cvae__forward_codes(model, n, train);
    if (!need_decoder) {
        cvae__category_forward(model, n);
        return;
    }
    /* The category head and the decoder's first layer both read z alone
     * (the head may read the features instead: a larger product). */
    cvae__model_pair(model, n, head_macs(model, n), category_or_decoder);
    cvae__vae_decode_rest(model, n);
}

static void backward_branches(cvae_model *model, int n)
{
    const int cat_feat = model->cfg.cat_input == CVAE_CATEGORY_INPUT_FEATURES;
    for (int b = model->nb - 1; b >= 0; b--) {
        cvae__branch *br = &model->br[b];
        /* dpooled = (branch b+1's input gradient, already written) + encoder
         * (+ category head) contributions of this feature block. */
        float beta = b == model->nb - 1 ? 0.0f : 1.0f;
        cvae__sgemm(0, 0, n, br->out_size, model->enc_units, 1.0f, model->dh, model->enc_units,
                    PRM(model->enc_w) + br->feat_off, model->D, beta, br->dpooled, br->out_size);
        if (cat_feat)
            cvae__sgemm(0, 0, n, br->out_size, model->cat_units, 1.0f, model->dc1, model->cat_units,
                        PRM(model->c1_w) + br->feat_off, model->D, 1.0f, br->dpooled, br->out_size);
        int last = br->layers - 1;
        cvae__maxpool_backward(&br->pool, n, br->dpooled, br->argmax, br->dact[last]);
        for (int l = last; l >= 0; l--) {
            const cvae__conv_geom *g = &br->conv[l];
            const float *in = l ? br->act[l - 1] : (b ? model->br[b - 1].pooled : model->x);
            float *dx = l ? br->dact[l - 1] : (b ? model->br[b - 1].dpooled : NULL);
            cvae__conv2d_relu_backward(g, n, in, PRM(br->w[l]), br->act[l], br->dact[l], dx,
                                       GRD(br->w[l]), GRD(br->b[l]), model->col, cvae__conv_parts(model));
        }
        cvae__dp_bucket_done(model, CVAE__BUCKET_BRANCH_LAST + (model->nb - 1 - b));
    }
}

/* A data-parallel step's batch-level terms: this process's loss values
 * (means over its n rows, turned into its share of the global means; extra
 * is the manifold recipe's consistency and pseudo-label terms) and its
 * column sums of q are summed over all processes in one call; the balance
 * term and its gradient then use the global batch mean of q. */
static double shared_batch_terms(cvae_model *model, int n, double *recon, double *kl, double *cat,
                                 double *extra, float *dq)
{
    const int k = model->k;
    const int64_t total = model->par.total;
    const double share = (double)n / (double)total;
    double v[CVAE__DP_TERMS]; /* column sums of q, then the four terms */
    for (int y = 0; y < k; y++) {
        float sum = 0;
        for (int i = 0; i < n; i++)
            sum += model->q[(size_t)i * k + y];
        v[y] = sum;
    }
    v[k] = *recon * share;
    v[k + 1] = *kl * share;
    v[k + 2] = *cat * share;
    v[k + 3] = *extra * share;
    cvae__dp_reduce_terms(&model->par, v, (size_t)k + 4);
    *recon = v[k];
    *kl = v[k + 1];
    *cat = v[k + 2];
    *extra = v[k + 3];
    return cvae__loss_balance_from_sums(n, k, v, total, (float)model->cfg.balance_weight, dq);
}

/* The backward pass below writes (rather than adds to) the gradient of
 * every trainable weight and bias: the products run with beta 0, the conv
 * layers' with beta 0 on their first image. Clearing the whole buffer, a
 * pass over every parameter's float each step, is then needed only on an
 * empty slice; otherwise only the class means (the mixture prior's KL adds
 * to them, and without it nothing writes them) and the frozen tensors
 * (frozen conv filters, an image decoder no loss reaches) are cleared.
 * Padding between tensors is never written and stays as allocated: zero. */
static void clear_unwritten_below(cvae_model *model, int n, size_t end)
{
    if (n == 0) {
        memset(model->grads, 0, end * sizeof(float));
        return;
    }
    for (int i = 0; i < model->nparam; i++) {
        const cvae__param *p = &model->ptab[i];
        if (p->offset < end && (!p->trainable || p->offset == model->means))
            memset(GRD(p->offset), 0, p->count * sizeof(float));
    }
}

void cvae__grads_clear_unwritten(cvae_model *model, int n)
{
    clear_unwritten_below(model, n, model->nparams);
}

void cvae__consistency_backward(cvae_model *model, int n, const float *target, float weight,
                                float scale)
{
    /* The pass below writes the gradients of the branches and the encoder
     * (the layout's first part, up to the decoder) as the full backward
     * pass does: only what that leaves unwritten is cleared. The decoder's
     * and the category head's buckets get nothing from this pass, so they
     * are neither cleared nor added to the sum (only handed on). */
    clear_unwritten_below(model, n, model->d1_w);
    const size_t ns = (size_t)n * model->s;
    for (size_t i = 0; i < ns; i++) {
        model->dmu[i] = model->cfg.contrast_temperature > 0.0
                            ? model->cons_dclean[i]
                            : 2.0f * weight * scale * (model->mu[i] - target[i]);
        model->dlv[i] = 0.0f;
        model->dz[i] = 0.0f;
    }
    /* Only mu carries a gradient: nothing reaches the decoder or the
     * category head (their buckets are left as they are, see above), nor
     * the branches through the head's feature input. */
    if (model->cfg.cat_input == CVAE_CATEGORY_INPUT_FEATURES)
        memset(model->dc1, 0, (size_t)n * model->cat_units * sizeof(float));
    const int adding = model->par.adding;
    model->par.adding = 0;
    cvae__dp_bucket_done(model, CVAE__BUCKET_DECODER);
    cvae__dp_bucket_done(model, CVAE__BUCKET_CATEGORY);
    model->par.adding = adding;
    cvae__vae_encoder_backward(model, n);
    cvae__dp_bucket_done(model, CVAE__BUCKET_ENCODER);
    if (model->nb > 0 && model->cfg.conv_trainable)
        backward_branches(model, n);
}

/* The loss terms after the reconstruction: the KL term of the mixture
 * prior (the standard prior's comes before the decoder's backward pass,
 * which overwrites dz), the category term and the manifold recipe's
 * terms, each adding its gradient (with backward) to dz (the mixture
 * prior's; NULL: none), dlv, dmu, dq and the class means. */
static void batch_terms(cvae_model *model, int n, int mixture, float scale, int backward,
                        float *dz, double *kl, double *cat, double *extra)
{
    const struct cvae_config *c = &model->cfg;
    const size_t ns = (size_t)n * model->s;
    float *dq = backward ? model->dq : NULL;
    if (mixture)
        *kl = cvae__loss_kl_mixture(n, model->s, model->k, model->z, model->lv, model->q,
                                    PRM(model->means), scale, dz, backward ? model->dlv : NULL,
                                    dq, backward ? GRD(model->means) : NULL);
    *cat = cvae__loss_category(n, model->k, model->q, (float)c->cat_weight, scale, dq);
    /* The manifold recipe's terms, when the training loop set them: per
     * image, so each process adds its slice's share of the gradient; their
     * value is summed with the other batch terms. */
    if (model->cons_dmu) {
        *extra += model->cons_value;
        for (size_t i = 0; backward && i < ns; i++)
            model->dmu[i] += model->cons_dmu[i];
    } else if (model->cons_ref && model->cons_weight > 0.0f)
        *extra += cvae__loss_consistency(n, model->s, model->mu, model->cons_ref,
                                         model->cons_weight, scale,
                                         backward ? model->dmu : NULL);
    if (model->pl_batch && model->pl_weight > 0.0f)
        *extra += cvae__loss_pseudo(n, model->k, model->q, model->pl_batch, model->pl_weight,
                                    scale, dq);
}

static void encoder_and_branches(cvae_model *model, int n)
{
    cvae__vae_encoder_backward(model, n);
    cvae__dp_bucket_done(model, CVAE__BUCKET_ENCODER);
    if (model->nb > 0 && model->cfg.conv_trainable)
        backward_branches(model, n);
}

/* A single-process step from the decoder's first layer to the category
 * head: the first layer's backward pass (part 1) writes dz and its own
 * gradients; the batch terms, the balance term and the category head's
 * backward pass (part 0) read none of that and write the rest, their
 * share of z's gradient into dz2, added to dz after both. Run one after
 * the other they are a run of small products and loops (0.5 ms a step of
 * the default model) that one thread would do alone. Part 0 stops at the
 * head's first layer, whose two products (its input and its weight
 * gradient) then run as a pair of their own: with them in part 0, the
 * worker waited 150 us a step of the default model for it. */
typedef struct tail_job {
    cvae_model *model;
    int n, mixture;
    float scale;
    double kl, cat, extra, bal;
} tail_job;

static void tail_part(void *ctx, int part, int parts)
{
    (void)parts;
    tail_job *t = ctx;
    cvae_model *model = t->model;
    if (part == 1) {
        cvae__vae_decoder_backward_first(model, t->n);
        return;
    }
    batch_terms(model, t->n, t->mixture, t->scale, 1, model->dz2, &t->kl, &t->cat, &t->extra);
    t->bal = cvae__loss_balance(t->n, model->k, model->q, (float)model->cfg.balance_weight,
                                model->dq);
    cvae__category_backward_top(model, t->n);
}

void cvae__loss_and_backward(cvae_model *model, int n, int mixture, int backward, double *losses)
{
    const struct cvae_config *c = &model->cfg;
    /* In a data-parallel step n is this process's slice (possibly empty) of
     * a global batch of par.total images, and every per-image gradient is
     * divided by the global count, so the processes' gradients add up. */
    const int shared = model->par.active || model->par.parts;
    const float scale = cvae__grad_scale(model, n);
    const size_t ns = (size_t)n * model->s;
    float *dpre_image = model->ndec ? model->ddecact[model->ndec - 1] : model->ddslice;

    if (backward) {
        cvae__grads_clear_unwritten(model, n);
        memset(model->dq, 0, (size_t)n * model->k * sizeof(float));
        memset(model->dmu, 0, ns * sizeof(float));
        memset(model->dlv, 0, ns * sizeof(float));
    }
    float *dq = backward ? model->dq : NULL;

    double recon = 0, kl = 0, cat = 0, bal, extra = 0;
    if (n == 0) {
        /* an empty slice still takes part in the batch's reduction */
    } else if (model->D0 != model->Dimg) {
        /* recon_target = features: the decoder output against the
         * concatenated conv features, which this loss does not train. */
        for (int i = 0; i < n; i++)
            for (int b = 0; b < model->nb; b++)
                memcpy(model->featcat + (size_t)i * model->D + model->br[b].feat_off,
                       model->br[b].pooled + (size_t)i * model->br[b].out_size,
                       (size_t)model->br[b].out_size * sizeof(float));
        recon = cvae__loss_sq(n, model->D, model->featcat, model->dslice, (float)c->lambda * scale,
                              backward ? model->ddslice : NULL);
    } else {
        recon = cvae__loss_recon(n, model->P, model->x, cvae__xhat(model), (float)c->lambda * scale,
                                 backward ? dpre_image : NULL);
    }
    if (n > 0) {
        /* The decoder's backward overwrites dz, so the mixture prior's dz
         * is added after it. */
        if (!mixture)
            kl = cvae__loss_kl_standard(n, model->s, model->mu, model->lv, scale,
                                        backward ? model->dmu : NULL, backward ? model->dlv : NULL);
        if (backward && !shared) {
            /* The rest of the step in one piece (below), its serial parts
             * beside the decoder's first layer. */
            cvae__vae_decoder_backward_wide(model, n, dpre_image);
            tail_job t = {model, n, mixture, scale, kl, 0, 0, 0};
            memset(model->dz2, 0, ns * sizeof(float));
            cvae__gemm_pair(head_macs(model, n), tail_part, &t);
            cvae__category_backward_first(model, n, model->dz2);
            for (size_t i = 0; i < ns; i++)
                model->dz[i] += model->dz2[i];
            losses[CVAE_LOSS_RECON] = recon;
            losses[CVAE_LOSS_KL] = t.kl;
            losses[CVAE_LOSS_CATEGORY] = t.cat;
            losses[CVAE_LOSS_BALANCE] = t.bal;
            losses[CVAE_LOSS_TOTAL] = c->lambda * recon + t.kl + t.cat + t.bal + t.extra;
            cvae__dp_bucket_done(model, CVAE__BUCKET_DECODER);
            cvae__dp_bucket_done(model, CVAE__BUCKET_CATEGORY);
            encoder_and_branches(model, n);
            return;
        }
        if (backward)
            cvae__vae_decoder_backward(model, n, dpre_image);
        batch_terms(model, n, mixture, scale, backward, backward ? model->dz : NULL, &kl, &cat,
                    &extra);
    }
    if (model->par.parts) {
        /* One part of a slice: the balance term from the whole global
         * batch's column sums of q (gathered by the training loop's first
         * pass), the other terms as this part's share of the global means,
         * which the loop adds up over the parts and the processes. */
        const double share = (double)n / (double)model->par.total;
        recon *= share;
        kl *= share;
        cat *= share;
        extra *= share;
        bal = cvae__loss_balance_from_sums(n, model->k, model->par.colsum, model->par.total,
                                           (float)c->balance_weight, dq);
    } else if (shared)
        bal = shared_batch_terms(model, n, &recon, &kl, &cat, &extra, dq);
    else
        bal = cvae__loss_balance(n, model->k, model->q, (float)c->balance_weight, dq);

    losses[CVAE_LOSS_RECON] = recon;
    losses[CVAE_LOSS_KL] = kl;
    losses[CVAE_LOSS_CATEGORY] = cat;
    losses[CVAE_LOSS_BALANCE] = bal;
    losses[CVAE_LOSS_TOTAL] = c->lambda * recon + kl + cat + bal + extra;
    if (!backward || n == 0)
        return;

    /* The decoder's and the class means' gradients are final here; the
     * buckets let a reduction of them run while the rest goes backward. */
    cvae__dp_bucket_done(model, CVAE__BUCKET_DECODER);
    cvae__category_backward(model, n);
    cvae__dp_bucket_done(model, CVAE__BUCKET_CATEGORY);
    encoder_and_branches(model, n);
}
