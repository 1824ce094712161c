/* A short training run on a real slice of MNIST: the first 2,000 training
 * images, 4 epochs (1 warm-up epoch, k-means init of the class means, 3 with
 * the mixture prior), fixed seed, evaluated on the first 1,000 test images.
 *
 * Floor: test ACC >= 0.28. The untrained model's ACC is measured too and must
 * stay below 0.25 (seen: 0.23; a random clustering scores ~0.11-0.15 with
 * Hungarian matching on 10 classes, an untrained network a little more because
 * random conv features already separate some digits). Seen after training,
 * on these 1,000 test images over seeds 1-8 (this run's seed 7 among them):
 * 0.30-0.41, median 0.33, so the floor sits below every seed and well above
 * the untrained model. Needs the data from scripts/fetch-data.sh ($CONVVAE_DATA or
 * <source>/data); skipped without it unless CVAE_REQUIRE_DATA is set (CI). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "convvae.h"

static cvae_dataset *load(const char *dir, const char *split, int64_t n)
{
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/mnist/%s-images-idx3-ubyte", dir, split);
    snprintf(lab, sizeof lab, "%s/mnist/%s-labels-idx1-ubyte", dir, split);
    cvae_dataset *all = NULL, *part = NULL;
    if (cvae_dataset_load_idx(img, lab, &all) != CVAE_OK)
        return NULL;
    assert_int_equal(cvae_dataset_subset_first(all, n, &part), CVAE_OK);
    cvae_dataset_destroy(all);
    return part;
}

static void test_short_training_run(void **state)
{
    (void)state;
    const char *dir = getenv("CONVVAE_DATA") ? getenv("CONVVAE_DATA") : CVAE_SOURCE_DIR "/data";
    cvae_dataset *train = load(dir, "train", 2000), *test = load(dir, "t10k", 1000);
    if (!train || !test) {
        cvae_dataset_destroy(train);
        cvae_dataset_destroy(test);
        if (getenv("CVAE_REQUIRE_DATA"))
            fail_msg("MNIST not found under %s (run scripts/fetch-data.sh)", dir);
        skip();
        return;
    }
    cvae_config *cfg;
    cvae_model *model;
    assert_int_equal(cvae_config_create(&cfg), CVAE_OK);
    assert_int_equal(cvae_config_set_seed(cfg, 7), CVAE_OK);
    /* the paper's recipe, whose warm-up and k-means options this exercises */
    assert_int_equal(cvae_config_set_recipe(cfg, CVAE_RECIPE_PAPER), CVAE_OK);
    assert_int_equal(cvae_config_set_warmup_epochs(cfg, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_kmeans_init(cfg, 1), CVAE_OK);
    assert_int_equal(cvae_model_create(cfg, &model), CVAE_OK);

    double acc0, acc, purity, nmi, ari;
    assert_int_equal(cvae_model_evaluate(model, test, &acc0, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_train(model, train, 4, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_evaluate(model, test, &acc, &purity, &nmi, &ari), CVAE_OK);
    print_message("untrained ACC %.4f; after 4 epochs on 2000 images: ACC %.4f purity %.4f "
                  "NMI %.4f ARI %.4f\n",
                  acc0, acc, purity, nmi, ari);
    assert_true(acc0 < 0.25);
    assert_true(acc >= 0.28);
    assert_true(purity >= acc);

    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(train);
    cvae_dataset_destroy(test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_short_training_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
