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

void cvae__category_backward(cvae_model *model, int n)
{
    cvae__softmax_backward(n, model->k, model->q, model->dq, model->dlogit);
    cvae__dense_backward(n, model->cat_units, model->k, model->c1, PRM(model->c2_w), model->dlogit,
                         model->dc1, GRD(model->c2_w), GRD(model->c2_b));
    cvae__relu_backward((int64_t)n * model->cat_units, model->c1, model->dc1, model->dc1);
    if (reads_features(model)) {
        const float *blk[CVAE_MAX_BRANCHES];
        int size[CVAE_MAX_BRANCHES], off[CVAE_MAX_BRANCHES];
        const int nblk = cvae__feature_blocks(model, blk, size, off);
        cvae__dense_blocks_backward(n, model->cat_units, nblk, blk, size, off, model->dc1,
                                    GRD(model->c1_w), model->D, GRD(model->c1_b));
    } else {
        cvae__dense_backward(n, model->s, model->cat_units, model->z, PRM(model->c1_w), model->dc1, NULL,
                             GRD(model->c1_w), GRD(model->c1_b));
        cvae__sgemm(0, 0, n, model->s, model->cat_units, 1.0f, model->dc1, model->cat_units, PRM(model->c1_w),
                    model->s, 1.0f, model->dz, model->s);
    }
}
