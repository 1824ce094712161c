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

#define PRM(off) (mdl->params + (off))
#define GRD(off) (mdl->grads + (off))

void cvae__forward(cvae_model *mdl, int n, int train, int need_decoder)
{
    const float *in = mdl->x;
    for (int b = 0; b < mdl->nb; b++) {
        cvae__branch *br = &mdl->br[b];
        for (int l = 0; l < br->layers; l++) {
            const cvae__conv_geom *g = &br->conv[l];
            cvae__conv2d_relu_forward(g, n, in, PRM(br->w[l]), PRM(br->b[l]), br->act[l],
                                      mdl->col, cvae__conv_parts(mdl));
            in = br->act[l];
        }
        cvae__maxpool_forward(&br->pool, n, in, br->pooled, br->argmax);
        in = br->pooled;
    }

    cvae__vae_encode(mdl, n, train);
    cvae__category_forward(mdl, n);
    if (need_decoder)
        cvae__vae_decode(mdl, n);
}

static void backward_branches(cvae_model *mdl, int n)
{
    const int cat_feat = mdl->cfg.cat_input == CVAE_CATEGORY_INPUT_FEATURES;
    for (int b = mdl->nb - 1; b >= 0; b--) {
        cvae__branch *br = &mdl->br[b];
        /* dpooled = (branch b+1's input gradient, already written) + encoder
         * (+ category head) contributions of this feature block. */
        float beta = b == mdl->nb - 1 ? 0.0f : 1.0f;
        cvae__sgemm(0, 0, n, br->out_size, mdl->m, 1.0f, mdl->dh, mdl->m,
                    PRM(mdl->enc_w) + br->feat_off, mdl->D, beta, br->dpooled, br->out_size);
        if (cat_feat)
            cvae__sgemm(0, 0, n, br->out_size, mdl->cu, 1.0f, mdl->dc1, mdl->cu,
                        PRM(mdl->c1_w) + br->feat_off, mdl->D, 1.0f, br->dpooled, br->out_size);
        int last = br->layers - 1;
        cvae__maxpool_backward(&br->pool, n, br->dpooled, br->argmax, br->dact[last]);
        for (int l = last; l >= 0; l--) {
            const cvae__conv_geom *g = &br->conv[l];
            const float *in = l ? br->act[l - 1] : (b ? mdl->br[b - 1].pooled : mdl->x);
            float *dx = l ? br->dact[l - 1] : (b ? mdl->br[b - 1].dpooled : NULL);
            cvae__conv2d_relu_backward(g, n, in, PRM(br->w[l]), br->act[l], br->dact[l], dx,
                                       GRD(br->w[l]), GRD(br->b[l]), mdl->col, cvae__conv_parts(mdl));
        }
    }
}

void cvae__loss_and_backward(cvae_model *mdl, int n, int mixture, int backward, double *losses)
{
    const struct cvae_config *c = &mdl->cfg;
    const float scale = 1.0f / (float)n;
    const size_t ns = (size_t)n * mdl->s;
    float *dpre_image = mdl->ndec ? mdl->ddecact[mdl->ndec - 1] : mdl->ddslice;

    if (backward) {
        memset(mdl->grads, 0, mdl->nparams * sizeof(float));
        memset(mdl->dq, 0, (size_t)n * mdl->k * sizeof(float));
        memset(mdl->dmu, 0, ns * sizeof(float));
        memset(mdl->dlv, 0, ns * sizeof(float));
    }
    float *dq = backward ? mdl->dq : NULL;

    double recon;
    if (mdl->D0 != mdl->Dimg) {
        /* recon_target = features: the decoder output against the
         * concatenated conv features, which this loss does not train. */
        for (int i = 0; i < n; i++)
            for (int b = 0; b < mdl->nb; b++)
                memcpy(mdl->featcat + (size_t)i * mdl->D + mdl->br[b].feat_off,
                       mdl->br[b].pooled + (size_t)i * mdl->br[b].out_size,
                       (size_t)mdl->br[b].out_size * sizeof(float));
        recon = cvae__loss_sq(n, mdl->D, mdl->featcat, mdl->dslice, (float)c->lambda * scale,
                              backward ? mdl->ddslice : NULL);
    } else {
        recon = cvae__loss_recon(n, mdl->P, mdl->x, cvae__xhat(mdl), (float)c->lambda * scale,
                                 backward ? dpre_image : NULL);
    }
    /* The decoder's backward overwrites dz, so the mixture prior's dz is
     * added after it. */
    double kl = 0;
    if (!mixture)
        kl = cvae__loss_kl_standard(n, mdl->s, mdl->mu, mdl->lv, scale,
                                    backward ? mdl->dmu : NULL, backward ? mdl->dlv : NULL);
    if (backward)
        cvae__vae_decoder_backward(mdl, n, dpre_image);
    if (mixture)
        kl = cvae__loss_kl_mixture(n, mdl->s, mdl->k, mdl->z, mdl->lv, mdl->q, PRM(mdl->means),
                                   scale, backward ? mdl->dz : NULL, backward ? mdl->dlv : NULL,
                                   dq, backward ? GRD(mdl->means) : NULL);
    double cat = cvae__loss_category(n, mdl->k, mdl->q, (float)c->cat_weight, scale, dq);
    double bal = cvae__loss_balance(n, mdl->k, mdl->q, (float)c->beta, dq);

    losses[CVAE_LOSS_RECON] = recon;
    losses[CVAE_LOSS_KL] = kl;
    losses[CVAE_LOSS_CATEGORY] = cat;
    losses[CVAE_LOSS_BALANCE] = bal;
    losses[CVAE_LOSS_TOTAL] = c->lambda * recon + kl + cat + bal;
    if (!backward)
        return;

    cvae__category_backward(mdl, n);
    cvae__vae_encoder_backward(mdl, n);
    if (mdl->nb > 0 && c->conv_trainable)
        backward_branches(mdl, n);
}
