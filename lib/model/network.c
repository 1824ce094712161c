/* The graph of the model over one mini-batch: convolution branches,
 * concatenation (never materialised: the encoder and a feature-reading
 * category head multiply each branch's block against the matching column
 * block of their weights via GEMM strides), encoder, sampling, decoder, image
 * decoder and category head; then the losses of SPEC section 4 and the
 * backward pass. Everything works in the model's preallocated workspace. */
#include <math.h>
#include <string.h>

#include "layers/activation.h"
#include "layers/dense.h"
#include "core/gemm.h"
#include "model/loss.h"
#include "model/model.h"

#define PRM(off) (mdl->params + (off))
#define GRD(off) (mdl->grads + (off))

static void add_bias_rows(int n, int cols, const float *b, float *y)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cols; j++)
            y[(size_t)i * cols + j] += b[j];
}

static void col_sums(int n, int cols, const float *dy, float *db)
{
    memset(db, 0, (size_t)cols * sizeof *db);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cols; j++)
            db[j] += dy[(size_t)i * cols + j];
}

/* Feature blocks: branch outputs, or the raw pixels for a plain VAE. */
static int feature_blocks(const cvae_model *mdl, const float **blk, int *size, int *off)
{
    if (mdl->nb == 0) {
        blk[0] = mdl->x;
        size[0] = mdl->P;
        off[0] = 0;
        return 1;
    }
    for (int b = 0; b < mdl->nb; b++) {
        blk[b] = mdl->br[b].pooled;
        size[b] = mdl->br[b].out_size;
        off[b] = mdl->br[b].feat_off;
    }
    return mdl->nb;
}

/* y[n][out] = concat(features) W^T + bias, W [out][D]. */
static void features_dense(const cvae_model *mdl, int n, int out, const float *w,
                           const float *bias, float *y)
{
    const float *blk[CVAE_MAX_BRANCHES];
    int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
    int nblk = feature_blocks(mdl, blk, size, off);
    for (int b = 0; b < nblk; b++)
        cvae__sgemm(0, 1, n, out, size[b], 1.0f, blk[b], size[b], w + off[b], mdl->D,
                    b ? 1.0f : 0.0f, y, out);
    add_bias_rows(n, out, bias, y);
}

/* Weight gradient of features_dense: dW[out][D] = dy^T features. */
static void features_dense_dw(const cvae_model *mdl, int n, int out, const float *dy, float *dw)
{
    const float *blk[CVAE_MAX_BRANCHES];
    int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
    int nblk = feature_blocks(mdl, blk, size, off);
    for (int b = 0; b < nblk; b++)
        cvae__sgemm(1, 0, out, size[b], n, 1.0f, dy, out, blk[b], size[b], 0.0f, dw + off[b],
                    mdl->D);
}

/* Parts the conv layers split a batch into: the thread count, within what
 * the workspace was sized for (model.c: the configured threads). */
static int conv_parts(const cvae_model *mdl)
{
    const int t = cvae__parallel_threads();
    return t < mdl->cfg.threads ? t : mdl->cfg.threads;
}

void cvae__forward(cvae_model *mdl, int n, int train, int need_decoder)
{
    const float *in = mdl->x;
    for (int b = 0; b < mdl->nb; b++) {
        cvae__branch *br = &mdl->br[b];
        for (int l = 0; l < br->layers; l++) {
            const cvae__conv_geom *g = &br->conv[l];
            cvae__conv2d_relu_forward(g, n, in, PRM(br->w[l]), PRM(br->b[l]), br->act[l],
                                      mdl->col, conv_parts(mdl));
            in = br->act[l];
        }
        cvae__maxpool_forward(&br->pool, n, in, br->pooled, br->argmax);
        in = br->pooled;
    }

    features_dense(mdl, n, mdl->m, PRM(mdl->enc_w), PRM(mdl->enc_b), mdl->h);
    if (mdl->cfg.enc_act == CVAE_ACT_RELU)
        cvae__relu_forward((int64_t)n * mdl->m, mdl->h, mdl->h);
    cvae__dense_forward(n, mdl->m, mdl->s, mdl->h, PRM(mdl->mu_w), PRM(mdl->mu_b), mdl->mu);
    cvae__dense_forward(n, mdl->m, mdl->s, mdl->h, PRM(mdl->lv_w), PRM(mdl->lv_b), mdl->lv);

    size_t ns = (size_t)n * mdl->s;
    if (train) {
        if (train != CVAE__TRAIN_REUSE_EPS)
            cvae__rng_normal_fill(&mdl->rng, mdl->eps, (int64_t)ns);
        for (size_t i = 0; i < ns; i++)
            mdl->z[i] = mdl->mu[i] + expf(0.5f * mdl->lv[i]) * mdl->eps[i];
    } else {
        /* eps = 0 keeps the backward pass valid for z = mu */
        memset(mdl->eps, 0, ns * sizeof(float));
        memcpy(mdl->z, mdl->mu, ns * sizeof(float));
    }

    if (mdl->cfg.cat_input == CVAE_CATEGORY_INPUT_FEATURES)
        features_dense(mdl, n, mdl->cu, PRM(mdl->c1_w), PRM(mdl->c1_b), mdl->c1);
    else
        cvae__dense_forward(n, mdl->s, mdl->cu, mdl->z, PRM(mdl->c1_w), PRM(mdl->c1_b), mdl->c1);
    cvae__relu_forward((int64_t)n * mdl->cu, mdl->c1, mdl->c1);
    cvae__dense_forward(n, mdl->cu, mdl->k, mdl->c1, PRM(mdl->c2_w), PRM(mdl->c2_b), mdl->q);
    cvae__softmax_forward(n, mdl->k, mdl->q, mdl->q);

    if (need_decoder)
        cvae__decode(mdl, n);
}

void cvae__decode(cvae_model *mdl, int n)
{
    cvae__dense_forward(n, mdl->s, mdl->du, mdl->z, PRM(mdl->d1_w), PRM(mdl->d1_b), mdl->g);
    cvae__relu_forward((int64_t)n * mdl->du, mdl->g, mdl->g);
    cvae__dense_forward(n, mdl->du, mdl->D0, mdl->g, PRM(mdl->d2_w), PRM(mdl->d2_b), mdl->dslice);
    if (mdl->ndec == 0) {
        cvae__sigmoid_forward((int64_t)n * mdl->P, mdl->dslice, mdl->decact[0]);
        return;
    }
    const float *in = mdl->dslice;
    if (mdl->D0 != mdl->Dimg) {
        /* recon_target = features: the image decoder reads branch 1's slice
         * of each row of the wider decoder output. */
        for (int i = 0; i < n; i++)
            memcpy(mdl->imgin + (size_t)i * mdl->Dimg, mdl->dslice + (size_t)i * mdl->D0,
                   (size_t)mdl->Dimg * sizeof(float));
        in = mdl->imgin;
    }
    for (int l = 0; l < mdl->ndec; l++) {
        const cvae__conv_geom *g = &mdl->dec[l];
        int64_t cnt = (int64_t)n * g->c_in * g->h_in * g->w_in;
        cvae__deconv2d_forward_par(g, n, in, PRM(mdl->dec_w[l]), PRM(mdl->dec_b[l]),
                                   mdl->decact[l], mdl->col, conv_parts(mdl));
        if (l + 1 < mdl->ndec)
            cvae__relu_forward(cnt, mdl->decact[l], mdl->decact[l]);
        else
            cvae__sigmoid_forward(cnt, mdl->decact[l], mdl->decact[l]);
        in = mdl->decact[l];
    }
}

const float *cvae__xhat(const cvae_model *mdl)
{
    return mdl->decact[mdl->ndec ? mdl->ndec - 1 : 0];
}

static void backward_decoder(cvae_model *mdl, int n, float *dpre_image)
{
    /* dpre_image: gradient w.r.t. the pre-sigmoid image, in ddecact[last]
     * (or ddslice directly for a plain VAE). */
    if (mdl->ndec > 0 && mdl->D0 == mdl->Dimg) {
        for (int l = mdl->ndec - 1; l >= 0; l--) {
            const cvae__conv_geom *g = &mdl->dec[l];
            const float *in = l ? mdl->decact[l - 1] : mdl->dslice;
            float *dx = l ? mdl->ddecact[l - 1] : mdl->ddslice;
            cvae__deconv2d_backward_par(g, n, in, PRM(mdl->dec_w[l]),
                                        l == mdl->ndec - 1 ? dpre_image : mdl->ddecact[l], dx,
                                        GRD(mdl->dec_w[l]), GRD(mdl->dec_b[l]), mdl->col,
                                        conv_parts(mdl));
            if (l > 0)
                cvae__relu_backward((int64_t)n * g->c_out * g->h_out * g->w_out, mdl->decact[l - 1],
                                    dx, dx);
        }
    }
    cvae__dense_backward(n, mdl->du, mdl->D0, mdl->g, PRM(mdl->d2_w), mdl->ddslice, mdl->dg,
                         GRD(mdl->d2_w), GRD(mdl->d2_b));
    cvae__relu_backward((int64_t)n * mdl->du, mdl->g, mdl->dg, mdl->dg);
    cvae__dense_backward(n, mdl->s, mdl->du, mdl->z, PRM(mdl->d1_w), mdl->dg, mdl->dz,
                         GRD(mdl->d1_w), GRD(mdl->d1_b));
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
                                       GRD(br->w[l]), GRD(br->b[l]), mdl->col, conv_parts(mdl));
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
        backward_decoder(mdl, n, dpre_image);
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

    /* Category head. */
    cvae__softmax_backward(n, mdl->k, mdl->q, mdl->dq, mdl->dlogit);
    cvae__dense_backward(n, mdl->cu, mdl->k, mdl->c1, PRM(mdl->c2_w), mdl->dlogit, mdl->dc1,
                         GRD(mdl->c2_w), GRD(mdl->c2_b));
    cvae__relu_backward((int64_t)n * mdl->cu, mdl->c1, mdl->dc1, mdl->dc1);
    if (c->cat_input == CVAE_CATEGORY_INPUT_FEATURES) {
        features_dense_dw(mdl, n, mdl->cu, mdl->dc1, GRD(mdl->c1_w));
        col_sums(n, mdl->cu, mdl->dc1, GRD(mdl->c1_b));
    } else {
        cvae__dense_backward(n, mdl->s, mdl->cu, mdl->z, PRM(mdl->c1_w), mdl->dc1, NULL,
                             GRD(mdl->c1_w), GRD(mdl->c1_b));
        cvae__sgemm(0, 0, n, mdl->s, mdl->cu, 1.0f, mdl->dc1, mdl->cu, PRM(mdl->c1_w), mdl->s,
                    1.0f, mdl->dz, mdl->s);
    }

    /* Reparameterisation z = mu + exp(lv/2) eps (eps = 0 in eval mode, where
     * z = mu was used). */
    for (size_t i = 0; i < ns; i++) {
        mdl->dmu[i] += mdl->dz[i];
        mdl->dlv[i] += mdl->dz[i] * mdl->eps[i] * 0.5f * expf(0.5f * mdl->lv[i]);
    }

    cvae__dense_backward(n, mdl->m, mdl->s, mdl->h, PRM(mdl->mu_w), mdl->dmu, mdl->dh,
                         GRD(mdl->mu_w), GRD(mdl->mu_b));
    cvae__dense_backward(n, mdl->m, mdl->s, mdl->h, PRM(mdl->lv_w), mdl->dlv, NULL,
                         GRD(mdl->lv_w), GRD(mdl->lv_b));
    cvae__sgemm(0, 0, n, mdl->m, mdl->s, 1.0f, mdl->dlv, mdl->s, PRM(mdl->lv_w), mdl->m, 1.0f,
                mdl->dh, mdl->m);
    if (c->enc_act == CVAE_ACT_RELU)
        cvae__relu_backward((int64_t)n * mdl->m, mdl->h, mdl->dh, mdl->dh);
    features_dense_dw(mdl, n, mdl->m, mdl->dh, GRD(mdl->enc_w));
    col_sums(n, mdl->m, mdl->dh, GRD(mdl->enc_b));
    if (mdl->nb > 0 && c->conv_trainable)
        backward_branches(mdl, n);
}
