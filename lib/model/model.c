/* Model construction: validates a configuration, lays out parameters in one
 * flat buffer (so optimizers and checkpoints treat them uniformly), sizes the
 * activation workspace for the configured batch size (allocated once, on
 * first use by a loaded model), and initialises the weights from the
 * config's seed. Also the read-only accessors. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "layers/tconv.h"
#include "training/optimizer.h"

static cvae_status add_param(cvae_model *model, size_t *off, const char *name, int ndim, int64_t d0,
                             int64_t d1, int64_t d2, int64_t d3, int trainable)
{
    if (model->nparam >= CVAE__MAX_PARAMS)
        return cvae__fail(CVAE_E_INVALID_ARG, "model has more than %d parameter tensors",
                          CVAE__MAX_PARAMS);
    cvae__param *p = &model->ptab[model->nparam++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    size_t count = 1;
    for (int i = 0; i < 4; i++) {
        p->shape[i] = i < ndim ? d[i] : 1;
        if (cvae__mul_overflows(count, (size_t)p->shape[i], &count))
            return cvae__fail(CVAE_E_INVALID_ARG, "parameter %s is too large", name);
    }
    p->count = count;
    /* Keep every tensor 64-byte aligned inside the flat buffer. */
    p->offset = model->nparams;
    size_t padded = (count + 15) / 16 * 16;
    if (model->nparams > SIZE_MAX / 8 - padded)
        return cvae__fail(CVAE_E_INVALID_ARG, "model parameters overflow");
    model->nparams += padded;
    p->trainable = trainable;
    *off = p->offset;
    return CVAE_OK;
}

static cvae_status build_layout(cvae_model *model)
{
    const struct cvae_config *c = &model->cfg;
    cvae_status st;
    char name[64];
    model->nb = c->branches;
    model->enc_units = c->enc_units;
    model->s = c->latent;
    model->k = c->clusters;
    model->dec_units = c->dec_units;
    model->cat_units = c->cat_units;
    model->B = c->batch;
    int64_t P = (int64_t)c->in_c * c->in_h * c->in_w;
    if (P > (1 << 26))
        return cvae__fail(CVAE_E_INVALID_ARG, "input of %lld values per image is too large",
                          (long long)P);
    model->P = (int)P;
    if (model->nb > 0) {
        int div = 1 << model->nb;
        if (c->in_h % div || c->in_w % div)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "input %dx%d must be divisible by 2^branches = %d", c->in_h,
                              c->in_w, div);
    }
    int cin = c->in_c, h = c->in_h, w = c->in_w;
    int64_t D = 0;
    for (int b = 0; b < model->nb; b++) {
        cvae__branch *br = &model->br[b];
        int f = c->br_filters[b], kk = c->br_kernel[b];
        if (kk % 2 == 0)
            return cvae__fail(CVAE_E_INVALID_ARG, "branch %d kernel %d must be odd", b + 1, kk);
        br->layers = c->br_layers[b];
        for (int l = 0; l < br->layers; l++) {
            if ((st = cvae__conv_geom_init(&br->conv[l], l ? f : cin, h, w, f, kk, kk, 1,
                                           CVAE__PAD_SAME)))
                return st;
            snprintf(name, sizeof name, "branch%d.conv%d.weight", b + 1, l + 1);
            if ((st = add_param(model, &br->w[l], name, 4, f, l ? f : cin, kk, kk,
                                c->conv_trainable)))
                return st;
            snprintf(name, sizeof name, "branch%d.conv%d.bias", b + 1, l + 1);
            if ((st = add_param(model, &br->b[l], name, 1, f, 1, 1, 1, c->conv_trainable)))
                return st;
        }
        if ((st = cvae__pool_geom_init(&br->pool, f, h, w, 2, 2)))
            return st;
        h /= 2;
        w /= 2;
        cin = f;
        br->out_size = f * h * w;
        br->feat_off = (int)D;
        D += br->out_size;
        if (D > (1 << 26))
            return cvae__fail(CVAE_E_INVALID_ARG, "concatenated features are too large");
    }
    model->D = model->nb ? (int)D : model->P;
    model->Dimg = model->nb ? model->br[0].out_size : model->P;
    model->D0 = model->Dimg;
    if (c->recon_target == CVAE_RECON_FEATURES) {
        if (model->nb == 0)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "recon_target = features needs at least one conv branch");
        model->D0 = model->D;
    }

    if ((st = add_param(model, &model->enc_w, "encoder.weight", 2, model->enc_units, model->D, 1, 1, 1)) ||
        (st = add_param(model, &model->enc_b, "encoder.bias", 1, model->enc_units, 1, 1, 1, 1)) ||
        (st = add_param(model, &model->mu_w, "mu.weight", 2, model->s, model->enc_units, 1, 1, 1)) ||
        (st = add_param(model, &model->mu_b, "mu.bias", 1, model->s, 1, 1, 1, 1)) ||
        (st = add_param(model, &model->lv_w, "logvar.weight", 2, model->s, model->enc_units, 1, 1, 1)) ||
        (st = add_param(model, &model->lv_b, "logvar.bias", 1, model->s, 1, 1, 1, 1)) ||
        (st = add_param(model, &model->d1_w, "decoder1.weight", 2, model->dec_units, model->s, 1, 1, 1)) ||
        (st = add_param(model, &model->d1_b, "decoder1.bias", 1, model->dec_units, 1, 1, 1, 1)) ||
        (st = add_param(model, &model->d2_w, "decoder2.weight", 2, model->D0, model->dec_units, 1, 1, 1)) ||
        (st = add_param(model, &model->d2_b, "decoder2.bias", 1, model->D0, 1, 1, 1, 1)))
        return st;

    /* Image decoder mirroring branch 1: (n-1) same-size transposed convs with
     * ReLU, then the 2x2 stride-2 one that undoes the pool. */
    model->ndec = 0;
    /* With recon_target = features no loss reaches the image decoder. */
    const int img_trained = c->recon_target == CVAE_RECON_IMAGE;
    if (model->nb > 0) {
        const cvae__branch *b0 = &model->br[0];
        int f = c->br_filters[0], kk = c->br_kernel[0];
        int hh = c->in_h / 2, ww = c->in_w / 2;
        for (int l = 0; l + 1 < b0->layers; l++) {
            if ((st = cvae__tconv_geom_init(&model->dec[model->ndec], f, hh, ww, f, kk, kk, 1,
                                             (kk - 1) / 2)))
                return st;
            snprintf(name, sizeof name, "deconv%d.weight", model->ndec + 1);
            if ((st = add_param(model, &model->dec_w[model->ndec], name, 4, f, f, kk, kk, img_trained)))
                return st;
            snprintf(name, sizeof name, "deconv%d.bias", model->ndec + 1);
            if ((st = add_param(model, &model->dec_b[model->ndec], name, 1, f, 1, 1, 1, img_trained)))
                return st;
            model->ndec++;
        }
        if ((st = cvae__tconv_geom_init(&model->dec[model->ndec], f, hh, ww, c->in_c, 2, 2, 2, 0)))
            return st;
        snprintf(name, sizeof name, "deconv%d.weight", model->ndec + 1);
        if ((st = add_param(model, &model->dec_w[model->ndec], name, 4, f, c->in_c, 2, 2, img_trained)))
            return st;
        snprintf(name, sizeof name, "deconv%d.bias", model->ndec + 1);
        if ((st = add_param(model, &model->dec_b[model->ndec], name, 1, c->in_c, 1, 1, 1, img_trained)))
            return st;
        model->ndec++;
    }
    int cat_in = c->cat_input == CVAE_CATEGORY_INPUT_FEATURES ? model->D : model->s;
    if ((st = add_param(model, &model->c1_w, "category1.weight", 2, model->cat_units, cat_in, 1, 1, 1)) ||
        (st = add_param(model, &model->c1_b, "category1.bias", 1, model->cat_units, 1, 1, 1, 1)) ||
        (st = add_param(model, &model->c2_w, "category2.weight", 2, model->k, model->cat_units, 1, 1, 1)) ||
        (st = add_param(model, &model->c2_b, "category2.bias", 1, model->k, 1, 1, 1, 1)) ||
        (st = add_param(model, &model->means, "means", 2, model->k, model->s, 1, 1, 1)))
        return st;
    return CVAE_OK;
}

/* Add the arena bytes of n floats to *total; past SIZE_MAX, *overflow is
 * set and *total stays 0. */
static void count_floats(size_t *total, int *overflow, size_t n)
{
    const size_t b = cvae__arena_bytes_for(n);
    *overflow |= b == SIZE_MAX || *total > SIZE_MAX - b;
    *total = *overflow ? 0 : *total + b;
}

/* One pass computes the workspace size (dry), the next hands out pointers,
 * so the two can never disagree. The dry pass returns SIZE_MAX if the size
 * overflows size_t (a batch of large images on a 32-bit target). */
static size_t layout_workspace(cvae_model *model, int dry)
{
    size_t total = 0;
    int overflow = 0;
    const size_t B = (size_t)cvae__model_workspace_rows(model);
    /* count floats; per-image sizes are ints (the geometry checks them) */
#define WSN(ptr, count)                                                                        \
    do {                                                                                       \
        size_t n_ = (count);                                                                   \
        if (dry) {                                                                             \
            count_floats(&total, &overflow, n_);                                               \
        } else {                                                                               \
            (ptr) = (void *)cvae__arena_floats(&model->ws, n_);                                    \
        }                                                                                      \
    } while (0)
    /* B images of per_image floats each */
#define WS(ptr, per_image)                                                                     \
    do {                                                                                       \
        size_t c_;                                                                             \
        if (cvae__mul_overflows(B, (size_t)(per_image), &c_)) {                                \
            overflow = 1;                                                                      \
            c_ = 0;                                                                            \
        }                                                                                      \
        WSN(ptr, c_);                                                                          \
    } while (0)
    /* The conv layers split a batch across the configured thread count
     * (network.c never asks for more parts than this). */
    const int parts = model->cfg.threads;
    size_t col = 1;
    for (int b = 0; b < model->nb; b++)
        for (int l = 0; l < model->br[b].layers; l++) {
            size_t cf = cvae__conv_par_floats(&model->br[b].conv[l], parts);
            col = cf > col ? cf : col;
        }
    for (int l = 0; l < model->ndec; l++) {
        size_t cf = cvae__conv_par_floats(&model->dec[l], parts);
        col = cf > col ? cf : col;
    }
    WS(model->x, model->P);
    WSN(model->col, col);
    for (int b = 0; b < model->nb; b++) {
        cvae__branch *br = &model->br[b];
        for (int l = 0; l < br->layers; l++) {
            const cvae__conv_geom *g = &br->conv[l];
            const int n = g->c_out * g->h_out * g->w_out;
            WS(br->act[l], n);
            WS(br->dact[l], n);
        }
        WS(br->pooled, br->out_size);
        WS(br->dpooled, br->out_size);
        WS(br->argmax, br->out_size);
    }
    WS(model->h, model->enc_units);
    WS(model->dh, model->enc_units);
    WS(model->dh2, model->enc_units);
    WS(model->mu, model->s);
    WS(model->dmu, model->s);
    WS(model->lv, model->s);
    WS(model->dlv, model->s);
    WS(model->z, model->s);
    WS(model->dz, model->s);
    WS(model->dz2, model->s);
    WS(model->eps, model->s);
    WS(model->g, model->dec_units);
    WS(model->dg, model->dec_units);
    WS(model->dslice, model->D0);
    WS(model->ddslice, model->D0);
    if (model->D0 != model->Dimg) {
        WS(model->featcat, model->D);
        WS(model->imgin, model->Dimg);
    }
    for (int l = 0; l < model->ndec; l++) {
        const cvae__conv_geom *g = &model->dec[l];
        const int n = g->c_in * g->h_in * g->w_in;
        WS(model->decact[l], n);
        WS(model->ddecact[l], n);
    }
    if (model->ndec == 0) {
        /* plain VAE: the decoder output itself is the image pre-activation */
        WS(model->decact[0], model->P);
        WS(model->ddecact[0], model->P);
    }
    WS(model->c1, model->cat_units);
    WS(model->dc1, model->cat_units);
    WS(model->q, model->k);
    WS(model->dq, model->k);
    WS(model->dlogit, model->k);
#undef WS
#undef WSN
    return overflow ? SIZE_MAX : total;
}

/* The floats of each encoder activation the second set holds, in one
 * order for its layout and for the swap. */
#define ALT_EACH(m, F)                                                                         \
    do {                                                                                       \
        F((m)->x, (m)->alt.x, (m)->P);                                                         \
        for (int b_ = 0; b_ < (m)->nb; b_++) {                                                 \
            cvae__branch *br_ = &(m)->br[b_];                                                  \
            for (int l_ = 0; l_ < br_->layers; l_++)                                           \
                F(br_->act[l_], (m)->alt.act[b_][l_],                                          \
                  br_->conv[l_].c_out * br_->conv[l_].h_out * br_->conv[l_].w_out);            \
            F(br_->pooled, (m)->alt.pooled[b_], br_->out_size);                                \
            F(br_->argmax, (m)->alt.argmax[b_], br_->out_size);                                \
        }                                                                                      \
        F((m)->h, (m)->alt.h, (m)->enc_units);                                                 \
        F((m)->mu, (m)->alt.mu, (m)->s);                                                       \
        F((m)->lv, (m)->alt.lv, (m)->s);                                                       \
        F((m)->z, (m)->alt.z, (m)->s);                                                         \
        F((m)->eps, (m)->alt.eps, (m)->s);                                                     \
    } while (0)

cvae_status cvae__model_alt_workspace(cvae_model *model)
{
    cvae__model_alt_free(model);
    const size_t rows = (size_t)model->ws_rows;
    size_t bytes = 0;
    int overflow = 0;
    /* the workspace's own sizes passed its overflow checks for these rows */
#define ALT_COUNT(cur, alt_ptr, per_image)                                                     \
    count_floats(&bytes, &overflow, rows * (size_t)(per_image))
    ALT_EACH(model, ALT_COUNT);
#undef ALT_COUNT
    if (overflow || cvae__arena_init(&model->ws_alt, bytes) != CVAE_OK)
        return cvae__fail(CVAE_E_NOMEM,
                          "cannot allocate the consistency term's second activation set (%zu bytes)",
                          bytes);
#define ALT_CARVE(cur, alt_ptr, per_image)                                                     \
    ((alt_ptr) = (void *)cvae__arena_floats(&model->ws_alt, rows * (size_t)(per_image)))
    ALT_EACH(model, ALT_CARVE);
#undef ALT_CARVE
    return CVAE_OK;
}

void cvae__model_alt_free(cvae_model *model)
{
    cvae__arena_free(&model->ws_alt);
    memset(&model->alt, 0, sizeof model->alt);
}

void cvae__model_swap_encoder(cvae_model *model)
{
#define ALT_SWAP(cur, alt_ptr, per_image)                                                      \
    do {                                                                                       \
        void *t_ = (void *)(cur);                                                              \
        (cur) = (void *)(alt_ptr);                                                             \
        (alt_ptr) = t_;                                                                        \
        (void)(per_image);                                                                     \
    } while (0)
    ALT_EACH(model, ALT_SWAP);
#undef ALT_SWAP
}

int cvae__model_workspace_rows(const cvae_model *model)
{
    const int size = model->par.reduce ? model->par.size : 1;
    const int slice = size > 1 ? (model->B + size - 1) / size : model->B;
    return model->par.micro > 0 && model->par.micro < slice ? model->par.micro : slice;
}

size_t cvae__model_workspace_bytes(const cvae_model *model)
{
    /* the dry pass only reads the model */
    return layout_workspace((cvae_model *)(uintptr_t)model, 1);
}

cvae_status cvae__model_ensure_workspace(cvae_model *model)
{
    if (model->ws.base)
        return CVAE_OK;
    model->ws_rows = cvae__model_workspace_rows(model);
    size_t bytes = layout_workspace(model, 1);
    if (bytes == SIZE_MAX)
        return cvae__fail(CVAE_E_NOMEM,
                          "the activation workspace for batch size %d overflows the address "
                          "space; a smaller batch size needs less",
                          model->B);
    /* Into a local arena first: on failure the model stays as it was (no
     * workspace), usable for everything else, and a later call retries. */
    cvae__arena ws;
    if (cvae__arena_init(&ws, bytes) != CVAE_OK)
        return cvae__fail(CVAE_E_NOMEM,
                          "cannot allocate the model's %zu-byte activation workspace (batch "
                          "size %d); a smaller batch size needs less",
                          bytes, model->B);
    model->ws = ws;
    layout_workspace(model, 0);
    if (model->ws.used != bytes) {
        size_t used = model->ws.used;
        cvae__arena_free(&model->ws);
        return cvae__fail(CVAE_E_INTERNAL, "workspace layout used %zu of %zu bytes", used,
                          bytes);
    }
    return CVAE_OK;
}

static void init_weights(cvae_model *model)
{
    memset(model->params, 0, model->nparams * sizeof(float));
    cvae__rng *r = &model->rng;
    for (int i = 0; i < model->nparam; i++) {
        cvae__param *p = &model->ptab[i];
        float *w = model->params + p->offset;
        if (p->ndim == 1)
            continue; /* biases start at zero */
        if (strcmp(p->name, "means") == 0) {
            /* Small, not unit, spread: with N(0, I) means in s dimensions one
             * mean is nearest to every z at the start, the mixture term hands
             * it every image and q collapses to one cluster before the
             * balance term can act (on MNIST: ACC 0.11, against 0.32 after one
             * epoch on 10k images with a spread of 0.05). */
            cvae__rng_normal_fill(r, w, (int64_t)p->count);
            for (size_t j = 0; j < p->count; j++)
                w[j] *= 0.05f;
            continue;
        }
        int64_t fan_in = 1, fan_out = p->shape[0];
        for (int d = 1; d < p->ndim; d++)
            fan_in *= p->shape[d];
        if (p->ndim == 4)
            fan_out *= p->shape[2] * p->shape[3];
        /* Layers followed by ReLU get He; linear heads and sigmoid/softmax
         * outputs get Glorot. Transposed convs: fan_in is the input
         * channels times the kernel area, held in shape[0]. */
        int relu_after = strncmp(p->name, "branch", 6) == 0 ||
                         (strcmp(p->name, "encoder.weight") == 0 &&
                          model->cfg.enc_act == CVAE_ACT_RELU) ||
                         strcmp(p->name, "decoder1.weight") == 0 ||
                         strcmp(p->name, "category1.weight") == 0;
        if (strncmp(p->name, "deconv", 6) == 0) {
            fan_in = p->shape[0] * p->shape[2] * p->shape[3];
            fan_out = p->shape[1] * p->shape[2] * p->shape[3];
            relu_after = i + 2 < model->nparam && strncmp(model->ptab[i + 2].name, "deconv", 6) == 0;
        }
        float lim = relu_after ? cvae__he_limit(fan_in) : cvae__glorot_limit(fan_in, fan_out);
        cvae__rng_uniform_fill(r, w, (int64_t)p->count, lim);
    }
}

cvae_status cvae__model_shell(const struct cvae_config *cfg, cvae_model **out)
{
    cvae_model *model = calloc(1, sizeof *model);
    if (!model)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a model");
    model->cfg = *cfg;
    model->par.size = 1;
    cvae_status st = build_layout(model);
    if (st) {
        cvae_model_destroy(model);
        return st;
    }
    *out = model;
    return CVAE_OK;
}

cvae_status cvae__model_alloc_params(cvae_model *model)
{
    size_t bytes;
    if (cvae__mul_overflows(model->nparams, sizeof(float), &bytes))
        return cvae__fail(CVAE_E_INVALID_ARG, "model parameters overflow");
    model->params = cvae__aligned_alloc(bytes);
    model->grads = cvae__aligned_alloc(bytes);
    if (!model->params || !model->grads)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes of parameters", 2 * bytes);
    /* Zero both, so the alignment padding between tensors is defined too. */
    memset(model->params, 0, bytes);
    memset(model->grads, 0, bytes);
    cvae__rng_seed(&model->rng, model->cfg.seed);
    return CVAE_OK;
}

cvae_status cvae__model_alloc(const struct cvae_config *cfg, cvae_model **out)
{
    cvae_model *model = NULL;
    cvae_status st = cvae__model_shell(cfg, &model);
    if (st)
        return st;
    /* Eager here, unlike loading: the caller chose this config, so a
     * workspace too large for the machine is reported now rather than at
     * the first training call (and internal code may use a created model's
     * workspace directly). */
    if ((st = cvae__model_alloc_params(model)) || (st = cvae__model_ensure_workspace(model))) {
        cvae_model_destroy(model);
        return st;
    }
    *out = model;
    return CVAE_OK;
}

cvae_status cvae_model_create(const cvae_config *cfg, cvae_model **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(cfg);
    cvae_model *model;
    cvae_status st = cvae__model_alloc(cfg, &model);
    if (st)
        return st;
    init_weights(model);
    *out = model;
    return CVAE_OK;
}

void cvae_model_destroy(cvae_model *model)
{
    if (!model)
        return;
    cvae__aligned_free(model->params);
    cvae__aligned_free(model->grads);
    cvae__arena_free(&model->ws);
    cvae__arena_free(&model->ws_alt);
    cvae_optimizer_destroy(model->own_opt);
    free(model->pl);
    free(model);
}

cvae_status cvae_model_get_config(const cvae_model *model, cvae_config **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(model);
    return cvae_config_clone(&model->cfg, out);
}

cvae_status cvae_model_num_params(const cvae_model *model, int64_t *count)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(count);
    int64_t n = 0;
    for (int i = 0; i < model->nparam; i++)
        n += (int64_t)model->ptab[i].count;
    *count = n;
    return CVAE_OK;
}

cvae_status cvae_model_epochs_done(const cvae_model *model, int *epochs)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(epochs);
    *epochs = model->epochs_done;
    return CVAE_OK;
}

cvae_status cvae_model_optimizer_steps(const cvae_model *model, int64_t *steps)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(steps);
    *steps = model->own_opt ? model->own_opt->steps : 0;
    return CVAE_OK;
}

cvae_status cvae_model_clear_optimizer(cvae_model *model)
{
    CVAE__CHECK_PTR(model);
    cvae_optimizer_destroy(model->own_opt);
    model->own_opt = NULL;
    return CVAE_OK;
}

uint64_t cvae__layout_id(const cvae_model *model)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over names and shapes */
    for (int i = 0; i < model->nparam; i++) {
        const cvae__param *p = &model->ptab[i];
        for (const char *c = p->name; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
        for (int d = 0; d < 4; d++)
            h = (h ^ (uint64_t)p->shape[d]) * 1099511628211ULL;
    }
    return h;
}

cvae_status cvae__check_images(const float *x, int64_t count)
{
    for (int64_t i = 0; i < count; i++) {
        if (!isfinite(x[i]))
            return cvae__fail(CVAE_E_NUMERIC, "image value %lld is not finite", (long long)i);
        if (x[i] < 0.0f || x[i] > 1.0f)
            return cvae__fail(CVAE_E_INVALID_ARG, "image value %lld = %g is outside [0, 1]",
                              (long long)i, (double)x[i]);
    }
    return CVAE_OK;
}

int cvae__model_trainable_ranges(const cvae_model *model, size_t *offset, size_t *count)
{
    int ranges = 0;
    for (int i = 0; i < model->nparam; i++)
        if (model->ptab[i].trainable) {
            offset[ranges] = model->ptab[i].offset;
            count[ranges++] = model->ptab[i].count;
        }
    return ranges;
}
