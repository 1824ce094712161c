/* The category head (see category_head.h). */
#include "model/category_head.h"

#include "core/gemm.h"
#include "layers/activation.h"
#include "layers/dense.h"

#define PRM(off) (model->params + (off))
#define GRD(off) (model->grads + (off))

static int reads_features(const cvae_model *model)
{
    return model->cfg.cat_input == CVAE_CATEGORY_INPUT_FEATURES;
}

void cvae__category_forward(cvae_model *model, int n)
{
    if (reads_features(model)) {
        const float *blk[CVAE_MAX_BRANCHES];
        int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
        const int nblk = cvae__feature_blocks(model, blk, size, off);
        cvae__dense_blocks_forward(n, model->cat_units, nblk, blk, size, off, PRM(model->c1_w),
                                   model->D, PRM(model->c1_b), model->c1);
    } else {
        cvae__dense_forward(n, model->s, model->cat_units, model->z, PRM(model->c1_w), PRM(model->c1_b),
                            model->c1);
    }
    cvae__relu_forward((int64_t)n * model->cat_units, model->c1, model->c1);
    cvae__dense_forward(n, model->cat_units, model->k, model->c1, PRM(model->c2_w), PRM(model->c2_b),
                        model->q);
    cvae__softmax_forward(n, model->k, model->q, model->q);
}

typedef struct first_layer {
    cvae_model *model;
    int n;
    float *dz;
} first_layer;

/* The first layer's backward pass when it reads z: part 0 adds its dx to
 * dz, part 1 writes its weight and bias gradients. */
static void first_layer_part(void *ctx, int part, int parts)
{
    (void)parts;
    const first_layer *j = ctx;
    cvae_model *model = j->model;
    if (part == 0)
        cvae__sgemm(0, 0, j->n, model->s, model->cat_units, 1.0f, model->dc1, model->cat_units,
                    PRM(model->c1_w), model->s, 1.0f, j->dz, model->s);
    else
        cvae__dense_backward(j->n, model->s, model->cat_units, model->z, PRM(model->c1_w),
                             model->dc1, NULL, GRD(model->c1_w), GRD(model->c1_b));
}

void cvae__category_backward(cvae_model *model, int n)
{
    cvae__category_backward_into(model, n, model->dz);
}

void cvae__category_backward_into(cvae_model *model, int n, float *dz)
{
    cvae__category_backward_top(model, n);
    cvae__category_backward_first(model, n, dz);
}

void cvae__category_backward_top(cvae_model *model, int n)
{
    cvae__softmax_backward(n, model->k, model->q, model->dq, model->dlogit);
    cvae__dense_backward(n, model->cat_units, model->k, model->c1, PRM(model->c2_w), model->dlogit,
                         model->dc1, GRD(model->c2_w), GRD(model->c2_b));
    cvae__relu_backward((int64_t)n * model->cat_units, model->c1, model->dc1, model->dc1);
}

void cvae__category_backward_first(cvae_model *model, int n, float *dz)
{
    if (reads_features(model)) {
        const float *blk[CVAE_MAX_BRANCHES];
        int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
        const int nblk = cvae__feature_blocks(model, blk, size, off);
        cvae__dense_blocks_backward(n, model->cat_units, nblk, blk, size, off, model->dc1,
                                    GRD(model->c1_w), model->D, GRD(model->c1_b));
    } else {
        /* dz gets the head's share added to what the decoder and the prior
         * wrote, so this layer's dx is a product of its own, independent
         * of the weight gradient (cvae__gemm_pair). */
        first_layer j = {model, n, dz};
        cvae__gemm_pair((double)n * model->s * model->cat_units, first_layer_part, &j);
    }
}
