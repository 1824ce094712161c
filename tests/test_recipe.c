/* The training recipes on tiny data: the shape-dependent defaults, the
 * manifold recipe's phases (no pseudo-labels during pretraining; after it,
 * pseudo-labels for every image, class means moved, the mixture prior on),
 * pseudo-labels redone for training data of another size, exact resumption
 * across a save and load with pseudo-labels in the file, checkpoints
 * without the recipe key loading as the paper's recipe, and the paper's
 * recipe computing no pseudo-labels. Seconds in all. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convvae.h"
#include "core/rng.h"
#include "model/model.h"

#define N 60

/* Three prototype 8x8 patterns (a bar, a column, a corner block) with
 * noise: clusters an encoder separates easily. */
static cvae_dataset *blobs(int n, uint64_t seed)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    float *x = calloc((size_t)n * 64, sizeof *x);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < 64; p++) {
            int y = p / 8, c = p % 8, k = i % 3;
            float on = k == 0 ? (y >= 3 && y <= 4) : k == 1 ? (c >= 3 && c <= 4) : (y < 4 && c < 4);
            float v = 0.8f * on + 0.2f * cvae__rng_uniform(&r);
            x[(size_t)i * 64 + p] = v;
        }
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, n, 1, 8, 8, NULL, &d), CVAE_OK);
    free(x);
    return d;
}

static cvae_config *tiny_config(void)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 8, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_conv_branch(c, 1, 1, 4, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_pretrain_epochs(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_manifold_neighbors(c, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_consistency_weight(c, 0.5), CVAE_OK);
    return c;
}

static cvae_model *tiny_model(void)
{
    cvae_config *c = tiny_config();
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_config_destroy(c);
    return m;
}

static void expect_shape(int ch, int h, int w, int branches, int latent, double lambda)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, ch, h, w), CVAE_OK);
    int b, s;
    double l;
    assert_int_equal(cvae_config_get_branches(c, &b), CVAE_OK);
    assert_int_equal(cvae_config_get_latent_dim(c, &s), CVAE_OK);
    assert_int_equal(cvae_config_get_lambda(c, &l), CVAE_OK);
    print_message("%dx%dx%d: branches %d latent %d lambda %g\n", ch, h, w, b, s, l);
    assert_int_equal(b, branches);
    assert_int_equal(s, latent);
    assert_true(fabs(l - lambda) < 1e-12 * lambda);
    /* the network it picks builds and trains */
    assert_int_equal(cvae_config_set_batch_size(c, 4), CVAE_OK);
    assert_int_equal(cvae_config_set_pretrain_epochs(c, 1), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    float *x = malloc((size_t)12 * ch * h * w * sizeof *x);
    cvae__rng r;
    cvae__rng_seed(&r, 2);
    for (size_t i = 0; i < (size_t)12 * ch * h * w; i++)
        x[i] = cvae__rng_uniform(&r);
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, 12, ch, h, w, NULL, &d), CVAE_OK);
    assert_int_equal(cvae_model_train(m, d, 2, NULL, NULL, NULL), CVAE_OK);
    int32_t cl[12];
    assert_int_equal(cvae_model_predict(m, x, 12, cl), CVAE_OK);
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
    free(x);
    cvae_config_destroy(c);
}

static void test_shape_defaults(void **state)
{
    (void)state;
    expect_shape(1, 8, 8, 1, 10, 2.5 * 784 / 64);
    expect_shape(1, 16, 16, 2, 17, 2.5 * 784 / 256);
    expect_shape(1, 28, 28, 2, 50, 2.5);
    expect_shape(3, 32, 32, 2, 50, 2.5 * 784 / 1024); /* per pixel, not per value */
    expect_shape(1, 6, 6, 0, 10, 2.5 * 784 / 36);
    /* explicit settings win, before or after the shape */
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 7), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 8, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_branches(c, 2), CVAE_OK);
    assert_int_equal(cvae_config_set(c, "input_height", "16"), CVAE_OK);
    assert_int_equal(cvae_config_set_lambda(c, 4.0), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 32, 32), CVAE_OK);
    int b, s;
    double l;
    assert_int_equal(cvae_config_get_branches(c, &b), CVAE_OK);
    assert_int_equal(cvae_config_get_latent_dim(c, &s), CVAE_OK);
    assert_int_equal(cvae_config_get_lambda(c, &l), CVAE_OK);
    assert_int_equal(b, 2);
    assert_int_equal(s, 7);
    assert_true(l == 4.0);
    cvae_config_destroy(c);
}

/* finetune_prior mixture: the mixture prior (with the means the manifold
 * step set) is in force once pretraining and the step are done. */
static void test_mixture_finetune(void **state)
{
    (void)state;
    cvae_config *c = tiny_config();
    assert_int_equal(cvae_config_set_finetune_prior(c, CVAE_PRIOR_MIXTURE), CVAE_OK);
    cvae_prior p = CVAE_PRIOR_STANDARD;
    assert_int_equal(cvae_config_get_finetune_prior(c, &p), CVAE_OK);
    assert_int_equal(p, CVAE_PRIOR_MIXTURE);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_dataset *d = blobs(N, 1);
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_false(cvae__mixture_active(m));
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_true(cvae__mixture_active(m));
    /* a standard "prior" option keeps it off whatever finetune_prior says */
    assert_int_equal(cvae_config_set_prior(c, CVAE_PRIOR_STANDARD), CVAE_OK);
    cvae_model *m2;
    assert_int_equal(cvae_model_create(c, &m2), CVAE_OK);
    assert_int_equal(cvae_model_train(m2, d, 2, NULL, NULL, NULL), CVAE_OK);
    assert_non_null(m2->pl);
    assert_false(cvae__mixture_active(m2));
    cvae_model_destroy(m2);
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

static void test_phases(void **state)
{
    (void)state;
    cvae_model *m = tiny_model();
    cvae_dataset *d = blobs(N, 1);
    float means0[9];
    memcpy(means0, m->params + m->means, sizeof means0);
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_null(m->pl); /* pretraining */
    assert_false(cvae__mixture_active(m));
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_non_null(m->pl);
    assert_int_equal(m->pl_n, N);
    assert_int_equal(m->pl_epoch, 1);
    /* fine-tuning keeps the standard prior by default */
    assert_false(cvae__mixture_active(m));
    int labelled = 0;
    for (int i = 0; i < N; i++) {
        assert_true(m->pl[i] >= -1 && m->pl[i] < 3);
        labelled += m->pl[i] >= 0;
    }
    assert_true(labelled > N / 2);
    assert_true(memcmp(means0, m->params + m->means, sizeof means0) != 0);
    /* on data of another size the step is redone before the next epoch */
    cvae_dataset *d2 = blobs(45, 2);
    assert_int_equal(cvae_model_train(m, d2, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(m->pl_n, 45);
    assert_int_equal(m->pl_epoch, 2);
    cvae_dataset_destroy(d2);
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
}

/* cvae_model_manifold_step_due says what cvae_model_train then does, and
 * the spectral start (the ARPACK path) reaches the same kind of result as
 * the random one on these well separated blobs. */
static void test_step_due_and_spectral_start(void **state)
{
    (void)state;
    cvae_config *c = tiny_config();
    assert_int_equal(cvae_config_set_manifold_start(c, CVAE_MANIFOLD_START_SPECTRAL), CVAE_OK);
    cvae_manifold_start got = CVAE_MANIFOLD_START_RANDOM;
    assert_int_equal(cvae_config_get_manifold_start(c, &got), CVAE_OK);
    assert_int_equal(got, CVAE_MANIFOLD_START_SPECTRAL);
    assert_int_equal(cvae_config_set_manifold_start(c, (cvae_manifold_start)2),
                     CVAE_E_INVALID_ARG);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_dataset *d = blobs(N, 1), *d2 = blobs(45, 2);
    int due = -1;
    assert_int_equal(cvae_model_manifold_step_due(m, d, &due), CVAE_OK);
    assert_int_equal(due, 0); /* pretraining */
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_manifold_step_due(m, d, &due), CVAE_OK);
    assert_int_equal(due, 1);
    assert_null(m->pl);
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_non_null(m->pl);
    assert_int_equal(cvae_model_manifold_step_due(m, d, &due), CVAE_OK);
    assert_int_equal(due, 0);
    assert_int_equal(cvae_model_manifold_step_due(m, d2, &due), CVAE_OK);
    assert_int_equal(due, 1); /* another size: redone */
    /* the spectral start's pseudo-labels follow the three patterns */
    int agree = 0, labelled = 0;
    for (int i = 0; i < N; i++)
        if (m->pl[i] >= 0) {
            labelled++;
            for (int j = 0; j < N; j++)
                if (j != i && m->pl[j] >= 0)
                    agree += (m->pl[i] == m->pl[j]) == (i % 3 == j % 3);
        }
    print_message("spectral start: %d of %d labelled, pair agreement %.3f\n", labelled, N,
                  (double)agree / ((double)labelled * (labelled - 1)));
    assert_true(labelled > N / 2);
    assert_true(agree * 10 >= 9 * labelled * (labelled - 1));
    assert_int_equal(cvae_model_manifold_step_due(NULL, d, &due), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_manifold_step_due(m, d, NULL), CVAE_E_INVALID_ARG);
    cvae_dataset_destroy(d2);
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

static void test_manifold_every(void **state)
{
    (void)state;
    cvae_config *c = tiny_config();
    assert_int_equal(cvae_config_set_manifold_every(c, 2), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_dataset *d = blobs(N, 1);
    assert_int_equal(cvae_model_train(m, d, 3, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(m->pl_epoch, 1);
    int32_t before[N];
    memcpy(before, m->pl, sizeof before);
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(m->pl_epoch, 3);
    /* the repeated step keeps the names: on these well separated blobs
     * nearly every image labelled both times keeps its label */
    int both = 0, same = 0;
    for (int i = 0; i < N; i++)
        if (before[i] >= 0 && m->pl[i] >= 0) {
            both++;
            same += before[i] == m->pl[i];
        }
    print_message("repeated manifold step: %d of %d labels kept\n", same, both);
    assert_true(both > N / 2);
    assert_true(same * 10 >= both * 9);
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

/* consistency_finetune 0: the term shapes pretraining only. Pretraining is
 * the same as with it on; the fine-tuning epoch is the one a model whose
 * term is switched off after pretraining takes, bit for bit, and differs
 * from the one that keeps the term. */
static void test_consistency_pretraining_only(void **state)
{
    (void)state;
    cvae_model *m[3];
    for (int i = 0; i < 3; i++) {
        cvae_config *c = tiny_config();
        assert_int_equal(cvae_config_set_consistency_finetune(c, i == 0 ? 0 : 1), CVAE_OK);
        assert_int_equal(cvae_model_create(c, &m[i]), CVAE_OK);
        cvae_config_destroy(c);
    }
    cvae_config *got;
    assert_int_equal(cvae_model_get_config(m[0], &got), CVAE_OK);
    int on = -1;
    assert_int_equal(cvae_config_get_consistency_finetune(got, &on), CVAE_OK);
    assert_int_equal(on, 0);
    cvae_config_destroy(got);
    cvae_dataset *d = blobs(N, 1);
    const size_t bytes = m[0]->nparams * sizeof(float);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cvae_model_train(m[i], d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_memory_equal(m[0]->params, m[1]->params, bytes);
    assert_memory_equal(m[0]->params, m[2]->params, bytes);
    m[1]->cfg.consistency_weight = 0.0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(cvae_model_train(m[i], d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_non_null(m[0]->pl);
    assert_memory_equal(m[0]->params, m[1]->params, bytes);
    assert_memory_not_equal(m[0]->params, m[2]->params, bytes);
    cvae_dataset_destroy(d);
    for (int i = 0; i < 3; i++)
        cvae_model_destroy(m[i]);
}

static char dir[64];

static void test_resume_exact(void **state)
{
    (void)state;
    cvae_dataset *d = blobs(N, 1);
    cvae_model *a = tiny_model(), *b = tiny_model(), *b2 = NULL;
    assert_int_equal(cvae_model_train(a, d, 4, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_train(b, d, 3, NULL, NULL, NULL), CVAE_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/resume.safetensors", dir);
    assert_int_equal(cvae_model_save(b, path), CVAE_OK);
    assert_int_equal(cvae_model_load(path, &b2), CVAE_OK);
    assert_int_equal(b2->pl_n, N);
    assert_int_equal(memcmp(b2->pl, b->pl, N * sizeof *b->pl), 0);
    assert_int_equal(cvae_model_train(b2, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(memcmp(a->params, b2->params, a->nparams * sizeof(float)), 0);
    assert_int_equal(memcmp(a->pl, b2->pl, N * sizeof *a->pl), 0);
    cvae_recipe rc;
    cvae_config *cfg;
    assert_int_equal(cvae_model_get_config(b2, &cfg), CVAE_OK);
    assert_int_equal(cvae_config_get_recipe(cfg, &rc), CVAE_OK);
    assert_int_equal(rc, CVAE_RECIPE_MANIFOLD);
    cvae_config_destroy(cfg);
    cvae_model_destroy(a);
    cvae_model_destroy(b);
    cvae_model_destroy(b2);
    cvae_dataset_destroy(d);
    unlink(path);
}

/* A file written before recipes existed has no "recipe" key in its config:
 * made here by blanking the key out of a fresh file's JSON (whitespace is
 * valid JSON and the checksums cover the tensors only). */
static void test_old_checkpoint_is_paper(void **state)
{
    (void)state;
    cvae_config *c = tiny_config();
    assert_int_equal(cvae_config_set_recipe(c, CVAE_RECIPE_PAPER), CVAE_OK);
    /* known values for the keys blanked out below, whatever the defaults */
    assert_int_equal(cvae_config_set_manifold_every(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_contrast_temperature(c, 0.0), CVAE_OK);
    assert_int_equal(cvae_config_set_consistency_finetune(c, 1), CVAE_OK);
    cvae_model *m, *l = NULL;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/old.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    const char *keys[] = {",\\\"recipe\\\":\\\"paper\\\"",
                          ",\\\"finetune_prior\\\":\\\"standard\\\"",
                          ",\\\"manifold_every\\\":3", ",\\\"contrast_temperature\\\":0",
                          ",\\\"consistency_finetune\\\":1"};
    for (int i = 0; i < 5; i++) {
        char *p = strstr(buf + 8, keys[i]);
        assert_non_null(p);
        memset(p, ' ', strlen(keys[i]));
    }
    rewind(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
    assert_int_equal(cvae_model_load(path, &l), CVAE_OK);
    assert_int_equal(l->cfg.recipe, CVAE_RECIPE_PAPER);
    /* fine-tuned, if it was, with the mixture prior */
    assert_int_equal(l->cfg.finetune_prior, CVAE_PRIOR_MIXTURE);
    /* and ran its manifold step once */
    assert_int_equal(l->cfg.manifold_every, 0);
    /* with the plain consistency term (if any) in every epoch */
    assert_true(l->cfg.contrast_temperature == 0.0);
    assert_int_equal(l->cfg.consistency_finetune, 1);
    /* and a fresh config defaults to the manifold recipe */
    cvae_config *fresh;
    cvae_recipe rc;
    assert_int_equal(cvae_config_create(&fresh), CVAE_OK);
    assert_int_equal(cvae_config_get_recipe(fresh, &rc), CVAE_OK);
    assert_int_equal(rc, CVAE_RECIPE_MANIFOLD);
    int every = 0;
    assert_int_equal(cvae_config_get_manifold_every(fresh, &every), CVAE_OK);
    assert_int_equal(every, 0);
    cvae_config_destroy(fresh);
    cvae_model_destroy(m);
    cvae_model_destroy(l);
    cvae_config_destroy(c);
    unlink(path);
}

static void test_paper_recipe_has_no_pseudo_labels(void **state)
{
    (void)state;
    cvae_config *c = tiny_config();
    assert_int_equal(cvae_config_set(c, "recipe", "paper"), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_dataset *d = blobs(N, 1);
    assert_int_equal(cvae_model_train(m, d, 3, NULL, NULL, NULL), CVAE_OK);
    assert_null(m->pl);
    assert_true(cvae__mixture_active(m)); /* warm-up 0: from the start */
    cvae_dataset_destroy(d);
    cvae_model_destroy(m);
    cvae_config_destroy(c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cvae_recipe_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_defaults),
        cmocka_unit_test(test_phases),
        cmocka_unit_test(test_manifold_every),
        cmocka_unit_test(test_consistency_pretraining_only),
        cmocka_unit_test(test_mixture_finetune),
        cmocka_unit_test(test_step_due_and_spectral_start),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_old_checkpoint_is_paper),
        cmocka_unit_test(test_paper_recipe_has_no_pseudo_labels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
