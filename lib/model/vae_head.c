/* The VAE head (see vae_head.h). */
#include "model/vae_head.h"

#include <math.h>
#include <string.h>

#include "core/gemm.h"
#include "layers/activation.h"
#include "layers/dense.h"
#include "layers/tconv.h"

#define PRM(off) (model->params + (off))
#define GRD(off) (model->grads + (off))

/* The mu and log-variance layers read the same h and write separate
 * outputs and gradients: two independent pieces of the pass
 * (cvae__model_pair). */
static void mu_lv_forward(void *ctx, int part, int parts)
{
    (void)parts;
    const cvae__model_rows *j = ctx;
    cvae_model *model = j->model;
    const int mu = part == 0;
    cvae__dense_forward(j->n, model->enc_units, model->s, model->h,
                        PRM(mu ? model->mu_w : model->lv_w), PRM(mu ? model->mu_b : model->lv_b),
                        mu ? model->mu : model->lv);
}

/* Part 0: z's gradient into mu's, then mu's weight and bias gradients and
 * its share of dh; part 1: z's gradient into the log-variance's through the
 * reparameterisation z = mu + exp(lv/2) eps (eps = 0 in eval mode, where
 * z = mu was used), then its weight and bias gradients and its share of dh
 * in dh2. That share is added after both, onto mu's, so dh does not depend
 * on which part ends first (and is the float sum a product accumulating
 * onto dh would give). */
static void mu_lv_backward(void *ctx, int part, int parts)
{
    (void)parts;
    const cvae__model_rows *j = ctx;
    cvae_model *model = j->model;
    const size_t ns = (size_t)j->n * model->s;
    if (part == 0) {
        for (size_t i = 0; i < ns; i++)
            model->dmu[i] += model->dz[i];
        cvae__dense_backward(j->n, model->enc_units, model->s, model->h, PRM(model->mu_w),
                             model->dmu, model->dh, GRD(model->mu_w), GRD(model->mu_b));
    } else {
        for (size_t i = 0; i < ns; i++)
            model->dlv[i] += model->dz[i] * model->eps[i] * 0.5f * expf(0.5f * model->lv[i]);
        cvae__dense_backward(j->n, model->enc_units, model->s, model->h, PRM(model->lv_w),
                             model->dlv, model->dh2, GRD(model->lv_w), GRD(model->lv_b));
    }
}

void cvae__vae_encode(cvae_model *model, int n, int train)
{
    const float *blk[CVAE_MAX_BRANCHES];
    int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
    const int nblk = cvae__feature_blocks(model, blk, size, off);
    cvae__dense_blocks_forward(n, model->enc_units, nblk, blk, size, off, PRM(model->enc_w), model->D,
                               PRM(model->enc_b), model->h);
    if (model->cfg.enc_act == CVAE_ACT_RELU)
        cvae__relu_forward((int64_t)n * model->enc_units, model->h, model->h);
    cvae__model_pair(model, n, (double)n * model->enc_units * model->s, mu_lv_forward);

    const size_t ns = (size_t)n * model->s;
    if (train) {
        if (train != CVAE__TRAIN_REUSE_EPS)
            cvae__rng_normal_fill(&model->rng, model->eps, (int64_t)ns);
        for (size_t i = 0; i < ns; i++)
            model->z[i] = model->mu[i] + expf(0.5f * model->lv[i]) * model->eps[i];
    } else {
        /* eps = 0 keeps the backward pass valid for z = mu */
        memset(model->eps, 0, ns * sizeof(float));
        memcpy(model->z, model->mu, ns * sizeof(float));
    }
}

void cvae__vae_decode_first(cvae_model *model, int n)
{
    cvae__dense_forward(n, model->s, model->dec_units, model->z, PRM(model->d1_w), PRM(model->d1_b),
                        model->g);
    cvae__relu_forward((int64_t)n * model->dec_units, model->g, model->g);
}

void cvae__vae_decode(cvae_model *model, int n)
{
    cvae__vae_decode_first(model, n);
    cvae__vae_decode_rest(model, n);
}

void cvae__vae_decode_rest(cvae_model *model, int n)
{
    cvae__dense_forward(n, model->dec_units, model->D0, model->g, PRM(model->d2_w), PRM(model->d2_b),
                        model->dslice);
    if (model->ndec == 0) {
        cvae__sigmoid_forward((int64_t)n * model->P, model->dslice, model->decact[0]);
        return;
    }
    const float *in = model->dslice;
    if (model->D0 != model->Dimg) {
        /* recon_target = features: the image decoder reads branch 1's slice
         * of each row of the wider decoder output. */
        for (int i = 0; i < n; i++)
            memcpy(model->imgin + (size_t)i * model->Dimg, model->dslice + (size_t)i * model->D0,
                   (size_t)model->Dimg * sizeof(float));
        in = model->imgin;
    }
    for (int l = 0; l < model->ndec; l++) {
        const cvae__conv_geom *g = &model->dec[l];
        int64_t cnt = (int64_t)n * g->c_in * g->h_in * g->w_in;
        cvae__tconv2d_forward_par(g, n, in, PRM(model->dec_w[l]), PRM(model->dec_b[l]),
                                  model->decact[l], model->col, cvae__conv_parts(model));
        if (l + 1 < model->ndec)
            cvae__relu_forward(cnt, model->decact[l], model->decact[l]);
        else
            cvae__sigmoid_forward(cnt, model->decact[l], model->decact[l]);
        in = model->decact[l];
    }
}

const float *cvae__xhat(const cvae_model *model)
{
    return model->decact[model->ndec ? model->ndec - 1 : 0];
}

void cvae__vae_decoder_backward(cvae_model *model, int n, float *dpre_image)
{
    cvae__vae_decoder_backward_wide(model, n, dpre_image);
    cvae__vae_decoder_backward_first(model, n);
}

void cvae__vae_decoder_backward_wide(cvae_model *model, int n, float *dpre_image)
{
    /* dpre_image: gradient w.r.t. the pre-sigmoid image, in ddecact[last]
     * (or ddslice directly for a plain VAE). */
    if (model->ndec > 0 && model->D0 == model->Dimg) {
        for (int l = model->ndec - 1; l >= 0; l--) {
            const cvae__conv_geom *g = &model->dec[l];
            const float *in = l ? model->decact[l - 1] : model->dslice;
            float *dx = l ? model->ddecact[l - 1] : model->ddslice;
            cvae__tconv2d_backward_par(g, n, in, PRM(model->dec_w[l]),
                                       l == model->ndec - 1 ? dpre_image : model->ddecact[l], dx,
                                       GRD(model->dec_w[l]), GRD(model->dec_b[l]), model->col,
                                       cvae__conv_parts(model));
            if (l > 0)
                cvae__relu_backward((int64_t)n * g->c_out * g->h_out * g->w_out,
                                    model->decact[l - 1], dx, dx);
        }
    }
    cvae__dense_backward(n, model->dec_units, model->D0, model->g, PRM(model->d2_w), model->ddslice,
                         model->dg, GRD(model->d2_w), GRD(model->d2_b));
    cvae__relu_backward((int64_t)n * model->dec_units, model->g, model->dg, model->dg);
}

void cvae__vae_decoder_backward_first(cvae_model *model, int n)
{
    cvae__dense_backward(n, model->s, model->dec_units, model->z, PRM(model->d1_w), model->dg, model->dz,
                         GRD(model->d1_w), GRD(model->d1_b));
}

void cvae__vae_encoder_backward(cvae_model *model, int n)
{
    cvae__model_pair(model, n, (double)n * model->enc_units * model->s, mu_lv_backward);
    const size_t nh = (size_t)n * model->enc_units;
    if (model->cfg.enc_act == CVAE_ACT_RELU)
        cvae__relu_backward_sum((int64_t)nh, model->h, model->dh, model->dh2, model->dh);
    else
        for (size_t i = 0; i < nh; i++)
            model->dh[i] += model->dh2[i];
    const float *blk[CVAE_MAX_BRANCHES];
    int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
    const int nblk = cvae__feature_blocks(model, blk, size, off);
    cvae__dense_blocks_backward(n, model->enc_units, nblk, blk, size, off, model->dh, GRD(model->enc_w),
                                model->D, GRD(model->enc_b));
}
