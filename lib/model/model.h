/* The model: parameter layout, activation workspace and the graph.
 * model.c builds it (create/destroy, parameter table, workspace sizing),
 * network.c wires the branches, the VAE head (vae_head.c) and the category
 * head (category_head.c) into the forward and backward pass over a batch,
 * training/train.c runs the epochs and inference.c the entry points that
 * only read the model. */
#ifndef CVAE_MODEL_H
#define CVAE_MODEL_H

#include <stdint.h>

#include "core/memory.h"
#include "core/rng.h"
#include "core/threads.h"
#include "layers/conv.h"
#include "layers/pool.h"
#include "model/config.h"
#include "training/data_parallel.h"

#define CVAE__MAX_LAYERS 16
#define CVAE__MAX_PARAMS 128

typedef struct cvae__param {
    char name[64];
    int ndim;
    int64_t shape[4];
    size_t offset; /* into model->params / model->grads */
    size_t count;
    int trainable; /* frozen conv filters (conv_trainable = 0) are not */
} cvae__param;

typedef struct cvae__branch {
    int layers;
    cvae__conv_geom conv[CVAE__MAX_LAYERS];
    size_t w[CVAE__MAX_LAYERS], b[CVAE__MAX_LAYERS]; /* parameter offsets */
    cvae__pool_geom pool;
    int out_size;   /* pooled F*H*W per image */
    int feat_off;   /* offset of this branch in the concatenated features */
    /* activations (B images) and their gradients */
    float *act[CVAE__MAX_LAYERS], *dact[CVAE__MAX_LAYERS];
    float *pooled, *dpooled;
    int32_t *argmax;
} cvae__branch;

struct cvae_model {
    struct cvae_config cfg;
    int nb;       /* branches */
    int P;        /* pixels per image C*H*W */
    int D;        /* concatenated feature size */
    int D0;       /* decoder output width: Dimg, or D for recon_target = features */
    int Dimg;     /* what the image decoder reads: branch 1's pooled size (or P) */
    int enc_units;  /* encoder width (m in the paper) */
    int s, k;       /* latent size and clusters (the paper's s and k) */
    int dec_units;  /* decoder hidden width */
    int cat_units;  /* category head hidden width */
    cvae__branch br[CVAE_MAX_BRANCHES];

    /* image decoder: ndec transposed convs mirroring branch 1 */
    int ndec;
    cvae__conv_geom dec[CVAE__MAX_LAYERS];
    size_t dec_w[CVAE__MAX_LAYERS], dec_b[CVAE__MAX_LAYERS];

    size_t enc_w, enc_b, mu_w, mu_b, lv_w, lv_b, d1_w, d1_b, d2_w, d2_b, c1_w, c1_b, c2_w, c2_b,
        means;

    cvae__param ptab[CVAE__MAX_PARAMS];
    int nparam;
    size_t nparams; /* scalars */
    float *params, *grads;

    cvae__rng rng;
    int epochs_done;
    int phase_mixture; /* 1 once the mixture prior is active */

    /* An epoch stopped part way (callback or non-finite step), which the
     * next cvae_model_train call finishes before starting another: the
     * batches done (0 = none pending), the image count it ran over, the
     * model RNG's state when it began (saved for compatibility: the order
     * is keyed by the seed and the epoch number), and the images seen and
     * loss sums so far (the running means go on). */
    struct {
        int64_t batches, count, seen;
        uint64_t rng[4];
        double sums[CVAE_LOSS_COUNT];
    } part;

    /* Activation workspace for ws_rows images: every pointer below points
     * into ws, and is NULL until cvae__model_ensure_workspace allocated it.
     * ws_rows is the batch B, or in data-parallel training over N
     * processes the largest slice of a batch, ceil(B / N) (each process
     * computes only its slice). */
    int B;
    int ws_rows;
    cvae__arena ws;
    float *x, *col;
    float *h, *dh, *mu, *dmu, *lv, *dlv, *z, *dz, *eps;
    float *dz2; /* z's gradient from the prior and the category head, while
                 * the decoder's first layer writes dz beside them */
    float *dh2; /* h's gradient through the log-variance, while mu's layer
                 * writes its share to dh beside it */
    float *g, *dg, *dslice, *ddslice;
    float *featcat, *imgin; /* recon_target = features: target rows, image decoder input */
    float *decact[CVAE__MAX_LAYERS], *ddecact[CVAE__MAX_LAYERS]; /* last = x_hat */
    float *c1, *dc1, *q, *dq, *dlogit;
    /* A second set of the encoder's forward activations for ws_rows images
     * (what its backward reads: the input, the branches' activations, pooled
     * outputs and argmax, h, mu, lv, z, eps), which cvae__model_swap_encoder
     * exchanges with the ones above. The consistency term keeps its clean
     * images' pass there while the transformed images go forward and back,
     * so that the clean side's backward needs no second forward pass.
     * Allocated for a training call (cvae__model_alt_workspace); empty
     * otherwise. */
    cvae__arena ws_alt;
    struct {
        float *x, *act[CVAE_MAX_BRANCHES][CVAE__MAX_LAYERS], *pooled[CVAE_MAX_BRANCHES];
        int32_t *argmax[CVAE_MAX_BRANCHES];
        float *h, *mu, *lv, *z, *eps;
    } alt;

    struct cvae_optimizer *own_opt;

    /* Data-parallel training (training/data_parallel.h); not saved. */
    cvae__dp par;
    /* Manifold recipe: the pseudo-label of every training image (-1: none)
     * from the last manifold step, the image count it ran over and the
     * epoch count when it ran (NULL / 0 before the first step). */
    int32_t *pl;
    int64_t pl_n;
    int pl_epoch;
    /* Extra loss terms of the batch being trained, set by the training loop
     * for one step (NULL / 0 otherwise): the fixed codes of the clean images
     * the consistency term pulls mu towards (n x s), and the batch's
     * pseudo-labels (n, -1 = none) for the category head's cross-entropy. */
    const float *cons_ref;
    float cons_weight;
    /* The contrastive form of the consistency term (cfg.contrast_temperature
     * > 0) couples the images of a batch, so the training loop computes it
     * over the whole global batch before the backward pass and sets, for
     * the n rows being trained: its gradient for their transformed codes
     * (cons_dmu, added to dmu), for their clean codes (cons_dclean, read by
     * cvae__consistency_backward) and the term's value for the whole batch
     * (cons_value; the step's loss sums take each part's share of it). */
    const float *cons_dmu;
    const float *cons_dclean;
    double cons_value;
    const int32_t *pl_batch;
    float pl_weight;
};

/* The encoder's input as column blocks of one row per image, never
 * concatenated (layers/dense.h's block form): the pooled output of every
 * branch, or the raw pixels for a plain VAE. Returns the block count. */
static inline int cvae__feature_blocks(const cvae_model *model, const float **blk, int *size,
                                       int *off)
{
    if (model->nb == 0) {
        blk[0] = model->x;
        size[0] = model->P;
        off[0] = 0;
        return 1;
    }
    for (int b = 0; b < model->nb; b++) {
        blk[b] = model->br[b].pooled;
        size[b] = model->br[b].out_size;
        off[b] = model->br[b].feat_off;
    }
    return model->nb;
}

/* Parts the conv layers split a batch into: the thread count, within what
 * the workspace was sized for (the configured threads). */
static inline int cvae__conv_parts(const cvae_model *model)
{
    const int t = cvae__parallel_threads();
    return t < model->cfg.threads ? t : model->cfg.threads;
}

/* Whether the mixture prior is in force: configured, and warm-up (paper
 * recipe) or pretraining and the manifold step (manifold recipe, whose
 * fine-tuning prior must be the mixture too) over. */
static inline int cvae__mixture_active(const cvae_model *model)
{
    if (model->cfg.prior != CVAE_PRIOR_MIXTURE)
        return 0;
    if (model->cfg.recipe == CVAE_RECIPE_MANIFOLD)
        return model->cfg.finetune_prior == CVAE_PRIOR_MIXTURE && model->pl != NULL &&
               model->epochs_done >= model->cfg.pretrain;
    return model->epochs_done >= model->cfg.warmup;
}

/* The context of a job over n rows of the model's workspace. */
typedef struct cvae__model_rows {
    cvae_model *model;
    int n;
} cvae__model_rows;

/* Runs fn's parts 0 and 1 (ctx: a cvae__model_rows), two independent
 * pieces of a pass: as the two parts of one job when the largest product
 * in them (macs multiply-adds) is too small to be split across the threads
 * by itself, else one after the other with each product split. Either
 * way every value is computed by the same code, so the result does not
 * depend on the thread count. */
void cvae__model_pair(cvae_model *model, int n, double macs,
                      void (*fn)(void *ctx, int part, int parts));

/* Forward pass over n <= B images already in model->x. train == 1 samples
 * z = mu + sigma*eps (eps from the model RNG) and feeds z to the category
 * head; CVAE__TRAIN_REUSE_EPS reuses the previous eps (gradient checks);
 * train == 0 uses z = mu. need_decoder == 0 skips the decoder. */
#define CVAE__TRAIN_REUSE_EPS 2
void cvae__forward(cvae_model *model, int n, int train, int need_decoder);
/* The part of cvae__forward up to the codes (mu, log-variance and z): no
 * category head, no decoder. */
void cvae__forward_codes(cvae_model *model, int n, int train);

/* Allocate a model with its layout, parameters and workspace but
 * uninitialised weights (cvae_model_create initialises them). */
cvae_status cvae__model_alloc(const struct cvae_config *cfg, cvae_model **out);
/* The steps of a model, for loading: the layout only (parameter table,
 * nothing sized by the model), then parameters and gradients. Loading
 * checks a file's tensors against the shell before allocating these, so
 * they are bounded by the file's size; on failure of the second step the
 * caller still owns m (cvae_model_destroy frees it). */
cvae_status cvae__model_shell(const struct cvae_config *cfg, cvae_model **out);
cvae_status cvae__model_alloc_params(cvae_model *model);
/* The activation workspace, sized by the configured batch and layer shapes
 * (a small checkpoint can ask for a huge one), so it is allocated on first
 * use: every entry point that runs the network calls this after validating
 * its arguments. Allocates once; CVAE_E_NOMEM (with the size) if the
 * allocation fails or the size overflows, leaving the model as it was
 * (usable; a later call retries). */
cvae_status cvae__model_ensure_workspace(cvae_model *model);
/* The second set of encoder activations (see ws_alt), for the current
 * ws_rows: CVAE_E_NOMEM if it cannot be allocated. Freed by
 * cvae__model_alt_free and by cvae_model_destroy. */
cvae_status cvae__model_alt_workspace(cvae_model *model);
void cvae__model_alt_free(cvae_model *model);
/* Exchange the encoder's activations with the second set; twice restores
 * them. */
void cvae__model_swap_encoder(cvae_model *model);
/* Bytes the workspace needs (SIZE_MAX if that overflows size_t). */
size_t cvae__model_workspace_bytes(const cvae_model *model);
/* The rows the workspace needs for the model's batch size and
 * data-parallel setting (see ws_rows). */
int cvae__model_workspace_rows(const cvae_model *model);
/* A hash of the parameter layout, so optimizer state is never applied to a
 * differently shaped model. */
uint64_t cvae__layout_id(const cvae_model *model);
/* The trainable tensors' places in the parameter buffer (offset[i],
 * count[i], at most CVAE__MAX_PARAMS of each), which a training step
 * updates; returns how many. */
int cvae__model_trainable_ranges(const cvae_model *model, size_t *offset, size_t *count);

/* Loss terms of the last forward pass (losses[CVAE_LOSS_COUNT], per-image
 * means) and, if backward != 0, all parameter gradients into model->grads.
 * mixture selects the prior actually used (warm-up uses the standard one). */
void cvae__loss_and_backward(cvae_model *model, int n, int mixture, int backward, double *losses);

/* Clears the gradients cvae__loss_and_backward's backward pass of n rows
 * does not write (it overwrites the rest): the class means, the frozen
 * tensors, and on an empty slice (n == 0) the whole buffer. */
void cvae__grads_clear_unwritten(cvae_model *model, int n);

/* What every per-image gradient of a step is divided by: the global batch
 * in a data-parallel step or a step in parts (so the processes' and the
 * parts' gradients add up), else the n rows at hand. */
static inline float cvae__grad_scale(const cvae_model *model, int n)
{
    const int shared = model->par.active || model->par.parts;
    return 1.0f / (float)(shared ? model->par.total : n);
}

/* The clean images' side of the consistency term w |mu(T x) - mu(x)|^2 (or,
 * with contrast_temperature > 0, of its contrastive form, whose gradient for the clean
 * codes the transformed pass left in cons_dclean): with
 * the last forward pass on the clean images x, the gradient of
 * weight * scale * |mu - target|^2 summed over the n rows (target: the
 * transformed images' codes) into model->grads, which it overwrites, through
 * the encoder and the branches. The transformed side is
 * cvae__loss_and_backward's term with cons_ref = mu(x); the two add up to
 * the gradient of the term with both codes moving. Holding mu(x) fixed
 * instead lets the network grow without bound when a transform shrinks the
 * features (a shift that pushes content out of the frame): scaling every
 * code up then brings mu(T x) nearer the fixed, larger mu(x). */
void cvae__consistency_backward(cvae_model *model, int n, const float *target, float weight,
                                float scale);

/* Validate caller images (finite, in [0,1]); CVAE_E_NUMERIC names the index. */
cvae_status cvae__check_images(const float *x, int64_t count);

#endif
