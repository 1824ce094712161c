/* The manifold recipe's clustering step (see recipe.h). */
#include "training/recipe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/kmeans.h"
#include "cluster/manifold.h"
#include "cluster/metrics.h"
#include "core/error.h"
#include "model/inference.h"

int cvae__recipe_step_due(const cvae_model *model, int64_t count)
{
    const struct cvae_config *c = &model->cfg;
    if (c->recipe != CVAE_RECIPE_MANIFOLD || model->epochs_done < c->pretrain)
        return 0;
    if (!model->pl || model->pl_n != count)
        return 1;
    return c->manifold_every > 0 && model->epochs_done - model->pl_epoch >= c->manifold_every;
}

uint64_t cvae__recipe_augment_seed(const cvae_model *model)
{
    /* splitmix64 of the seed: distinct from the model RNG's own stream */
    uint64_t z = model->cfg.seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void cvae__recipe_augment_params(const cvae_model *model, cvae__augment_params *p)
{
    const struct cvae_config *c = &model->cfg;
    cvae__augment_defaults(p);
    p->max_rotation = (float)c->aug_rotation;
    p->max_shift = (float)c->aug_shift;
    p->max_scale = (float)c->aug_scale;
    p->max_gain = (float)c->aug_gain;
}

cvae_status cvae__recipe_manifold_step(cvae_model *model, const cvae_dataset *data,
                                       int64_t count)
{
    const struct cvae_config *c = &model->cfg;
    const int s = model->s, k = model->k;
    size_t ns, nk;
    if (cvae__mul_overflows((size_t)count, (size_t)s * sizeof(float), &ns) ||
        cvae__mul_overflows((size_t)count, (size_t)k * sizeof(float), &nk))
        return cvae__fail(CVAE_E_INVALID_ARG, "data set too large for the manifold step");
    float *mu = malloc(ns), *resp = malloc(nk);
    int32_t *assign = malloc((size_t)count * sizeof *assign);
    int32_t *pl = malloc((size_t)count * sizeof *pl);
    float *centers = malloc((size_t)k * s * sizeof *centers);
    cvae_status st = CVAE_OK;
    if (!mu || !resp || !assign || !pl || !centers) {
        st = cvae__fail(CVAE_E_NOMEM, "cannot allocate the manifold step's %zu bytes",
                        ns + nk + 2 * (size_t)count * sizeof *pl);
        goto done;
    }
    cvae__encode_dataset(model, data, count, mu);
    float *means = model->params + model->means;
    if (count < k) {
        /* nothing to cluster into k groups: no pseudo-labels, means kept */
        for (int64_t i = 0; i < count; i++)
            pl[i] = -1;
    } else {
        int neighbors = c->manifold_neighbors - 1; /* the option counts the point */
        if (neighbors > count - 1)
            neighbors = (int)(count - 1);
        if (count >= 2 * (int64_t)k && neighbors >= 2) {
            cvae__manifold_options o;
            cvae__manifold_defaults(&o);
            o.neighbors = neighbors;
            o.embed.dim = c->embed_dim;
            o.embed.init = c->manifold_start == CVAE_MANIFOLD_START_SPECTRAL
                               ? CVAE__EMBED_INIT_SPECTRAL
                               : CVAE__EMBED_INIT_RANDOM;
            o.seed = cvae__rng_next(&model->rng);
            o.runs = c->manifold_runs;
            /* the components, rounded up (less a hair, so 1.3 x 10 is 13,
             * not 14), at most half the images, so each keeps a few */
            int64_t kk = (int64_t)ceil(c->manifold_overcluster * k - 1e-9);
            if (kk > count / 2)
                kk = count / 2;
            o.extra = kk > k ? (int)(kk - k) : 0;
            st = cvae__manifold_cluster(mu, count, s, k, &o, assign, resp, NULL);
        } else {
            st = cvae__kmeans(mu, count, s, k, 100, &model->rng, centers, assign, NULL);
            for (int64_t i = 0; !st && i < count; i++)
                for (int y = 0; y < k; y++)
                    resp[(size_t)i * k + y] = y == assign[i] ? 1.0f : 0.0f;
        }
        if (st)
            goto done;
        /* A repeated step names its clusters as the last one did (the
         * renaming that agrees on the most images), so the head and the
         * class means are not asked to learn a permutation. */
        int rename[CVAE_MAX_CLUSTERS];
        for (int y = 0; y < k; y++)
            rename[y] = y;
        if (model->pl && model->pl_n == count) {
            int64_t *w = calloc((size_t)k * k, sizeof *w);
            if (!w) {
                st = cvae__fail(CVAE_E_NOMEM, "cannot allocate the cluster renaming table");
                goto done;
            }
            for (int64_t i = 0; i < count; i++)
                if (model->pl[i] >= 0)
                    w[(size_t)assign[i] * k + model->pl[i]]++;
            st = cvae__hungarian_max(w, k, k, rename);
            free(w);
            if (st)
                goto done;
        }
        /* responsibility-weighted means, accumulated in double */
        double *acc = calloc((size_t)k * (s + 1), sizeof *acc);
        if (!acc) {
            st = cvae__fail(CVAE_E_NOMEM, "cannot allocate the class means' sums");
            goto done;
        }
        for (int64_t i = 0; i < count; i++)
            for (int y = 0; y < k; y++) {
                double r = resp[(size_t)i * k + y];
                if (r == 0.0)
                    continue;
                double *a = acc + (size_t)rename[y] * (s + 1);
                a[s] += r;
                for (int d = 0; d < s; d++)
                    a[d] += r * mu[(size_t)i * s + d];
            }
        for (int y = 0; y < k; y++) {
            const double *a = acc + (size_t)y * (s + 1);
            if (a[s] > 1e-6)
                for (int d = 0; d < s; d++)
                    means[(size_t)y * s + d] = (float)(a[d] / a[s]);
        }
        free(acc);
        for (int64_t i = 0; i < count; i++)
            pl[i] = resp[(size_t)i * k + assign[i]] >= (float)c->pseudo_threshold
                        ? rename[assign[i]]
                        : -1;
    }
    free(model->pl);
    model->pl = pl;
    pl = NULL;
    model->pl_n = count;
    model->pl_epoch = model->epochs_done;
done:
    free(mu);
    free(resp);
    free(assign);
    free(pl);
    free(centers);
    return st;
}

cvae_status cvae_model_manifold_step_due(const cvae_model *model, const cvae_dataset *data,
                                         int *due)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(data);
    CVAE__CHECK_PTR(due);
    int64_t count;
    cvae_status st = cvae__check_dataset(model, data, &count);
    if (st)
        return st;
    /* as cvae_model_train decides: an epoch stopped part way on data of
     * this size is finished first, without the step */
    int resume = model->part.batches > 0 && model->part.count == count;
    *due = !resume && cvae__recipe_step_due(model, count);
    return CVAE_OK;
}
