/* Accuracy regression of the default recipe on small image sets made from
 * the real data: 2,000 MNIST training images downsampled to 8x8, 2,000
 * Fashion-MNIST images at 16x16 and 2,000 MNIST images padded to 32x32 and
 * tinted (RGB, a random colour per image; the same made from Fashion-MNIST
 * on request, CVAE_ACCURACY_MORE=1), each model configured with its input
 * shape only (everything else default: recipe, epochs, the network the
 * shape picks), then cvae_model_predict on 1,000 test images it never saw.
 * CVAE_ACCURACY_QUICK=1 runs the 8x8 case alone: the sanitizer run, where
 * it takes the default recipe's whole path and the other cases would add
 * minutes running the same code on other shapes. The
 * baseline is k-means (k-means++ and Lloyd, best of 4 starts) on the raw
 * pixels of the same training images, its centres assigning the same test
 * images. The default recipe must beat it by at least 5 points of ACC: a
 * broken augmentation, manifold step, pseudo-label term or shape rule
 * loses that margin. Needs the data from scripts/fetch-data.sh
 * ($CONVVAE_DATA or <source>/data); skipped without it unless
 * CVAE_REQUIRE_DATA is set (CI). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/kmeans.h"
#include "convvae.h"
#include "core/rng.h"

#define NTRAIN 2000
#define NTEST 1000

/* The first n images of a split, box-averaged to side x side after padding
 * (pad > 0) or cropping (pad < 0) the 28x28 original by |pad| on every
 * side, so the side divides the padded size. */
static float *load_small(const char *dir, const char *set, const char *split, int64_t n, int side,
                         int pad, int32_t *labels)
{
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/%s/%s-images-idx3-ubyte", dir, set, split);
    snprintf(lab, sizeof lab, "%s/%s/%s-labels-idx1-ubyte", dir, set, split);
    cvae_dataset *all = NULL;
    if (cvae_dataset_load_idx(img, lab, &all) != CVAE_OK) {
        /* Fashion-MNIST ships gzipped */
        char img2[1100], lab2[1100];
        snprintf(img2, sizeof img2, "%s.gz", img);
        snprintf(lab2, sizeof lab2, "%s.gz", lab);
        if (cvae_dataset_load_idx(img2, lab2, &all) != CVAE_OK)
            return NULL;
    }
    float *full = malloc((size_t)n * 784 * sizeof *full);
    int32_t *lall = malloc(60000 * sizeof *lall);
    int64_t count;
    assert_int_equal(cvae_dataset_shape(all, &count, NULL, NULL, NULL), CVAE_OK);
    assert_true(count >= n);
    assert_int_equal(cvae_dataset_images_f32(all, 0, n, full), CVAE_OK);
    assert_int_equal(cvae_dataset_labels(all, lall, count), CVAE_OK);
    memcpy(labels, lall, (size_t)n * sizeof *labels);
    cvae_dataset_destroy(all);
    free(lall);
    const int big = 28 + 2 * pad, f = big / side;
    assert_int_equal(f * side, big);
    float *out = calloc((size_t)n * side * side, sizeof *out);
    for (int64_t i = 0; i < n; i++)
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                double s = 0;
                for (int dy = 0; dy < f; dy++)
                    for (int dx = 0; dx < f; dx++) {
                        int sy = y * f + dy - pad, sx = x * f + dx - pad;
                        if (sy >= 0 && sy < 28 && sx >= 0 && sx < 28)
                            s += full[(size_t)i * 784 + sy * 28 + sx];
                    }
                float v = (float)(s / (f * f));
                out[((size_t)i * side + y) * side + x] = v > 1.0f ? 1.0f : v;
            }
    free(full);
    return out;
}

static double kmeans_acc(const float *train, const float *test, const int32_t *test_labels,
                         int d)
{
    cvae__rng rng;
    cvae__rng_seed(&rng, 3);
    float *centers = malloc((size_t)10 * d * sizeof *centers), *best = NULL;
    double best_inertia = DBL_MAX;
    for (int start = 0; start < 4; start++) {
        double inertia;
        assert_int_equal(cvae__kmeans(train, NTRAIN, d, 10, 100, &rng, centers, NULL, &inertia),
                         CVAE_OK);
        if (inertia < best_inertia) {
            best_inertia = inertia;
            free(best);
            best = malloc((size_t)10 * d * sizeof *best);
            memcpy(best, centers, (size_t)10 * d * sizeof *best);
        }
    }
    int32_t pred[NTEST];
    for (int i = 0; i < NTEST; i++) {
        double bd = DBL_MAX;
        for (int c = 0; c < 10; c++) {
            double dist = 0;
            for (int j = 0; j < d; j++) {
                double t = (double)test[(size_t)i * d + j] - best[(size_t)c * d + j];
                dist += t * t;
            }
            if (dist < bd) {
                bd = dist;
                pred[i] = c;
            }
        }
    }
    double acc;
    assert_int_equal(cvae_cluster_metrics(test_labels, pred, NTEST, &acc, NULL, NULL, NULL),
                     CVAE_OK);
    free(centers);
    free(best);
    return acc;
}

/* Grey images (n x side x side) as RGB (n x 3 x side x side, planes): each
 * image's digit or garment in its own colour on black, a colour drawn per
 * image (every channel in [0.3, 1]), so colour carries no class. */
static float *tint(const float *grey, int64_t n, int side, uint64_t seed)
{
    const size_t hw = (size_t)side * side;
    float *rgb = malloc((size_t)n * 3 * hw * sizeof *rgb);
    assert_non_null(rgb);
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            const float k = 0.3f + 0.7f * cvae__rng_uniform(&r);
            for (size_t p = 0; p < hw; p++)
                rgb[((size_t)i * 3 + c) * hw + p] = k * grey[(size_t)i * hw + p];
        }
    return rgb;
}

static void run_case(const char *set, int side, int pad, int channels)
{
    const char *dir = getenv("CONVVAE_DATA") ? getenv("CONVVAE_DATA") : CVAE_SOURCE_DIR "/data";
    int32_t *ltrain = malloc(NTRAIN * sizeof *ltrain), *ltest = malloc(NTEST * sizeof *ltest);
    float *train = load_small(dir, set, "train", NTRAIN, side, pad, ltrain);
    float *test = load_small(dir, set, "t10k", NTEST, side, pad, ltest);
    if (!train || !test) {
        free(train);
        free(test);
        free(ltrain);
        free(ltest);
        if (getenv("CVAE_REQUIRE_DATA"))
            fail_msg("%s not found under %s (run scripts/fetch-data.sh)", set, dir);
        skip();
        return;
    }
    if (channels == 3) {
        float *t = tint(train, NTRAIN, side, 1);
        free(train);
        train = t;
        t = tint(test, NTEST, side, 2);
        free(test);
        test = t;
    }
    const int d = channels * side * side;
    double base = kmeans_acc(train, test, ltest, d);

    cvae_dataset *ds;
    assert_int_equal(cvae_dataset_from_f32(train, NTRAIN, channels, side, side, NULL, &ds),
                     CVAE_OK);
    cvae_config *cfg;
    assert_int_equal(cvae_config_create(&cfg), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(cfg, channels, side, side), CVAE_OK);
    int epochs;
    assert_int_equal(cvae_config_get_epochs(cfg, &epochs), CVAE_OK);
    cvae_model *model;
    assert_int_equal(cvae_model_create(cfg, &model), CVAE_OK);
    assert_int_equal(cvae_model_train(model, ds, epochs, NULL, NULL, NULL), CVAE_OK);
    int32_t pred[NTEST];
    assert_int_equal(cvae_model_predict(model, test, NTEST, pred), CVAE_OK);
    double acc, nmi;
    assert_int_equal(cvae_cluster_metrics(ltest, pred, NTEST, &acc, NULL, &nmi, NULL), CVAE_OK);
    print_message("%s %dx%dx%d: k-means on pixels ACC %.4f; default recipe (%d epochs) ACC "
                  "%.4f NMI %.4f\n",
                  set, channels, side, side, base, epochs, acc, nmi);
    assert_true(acc >= base + 0.05);

    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(ds);
    free(train);
    free(test);
    free(ltrain);
    free(ltest);
}

static void test_mnist_8x8(void **state)
{
    (void)state;
    run_case("mnist", 8, -2, 1); /* 24x24 centre, 3x3 boxes */
}

static int quick(void)
{
    const char *q = getenv("CVAE_ACCURACY_QUICK");
    return q && strcmp(q, "1") == 0;
}

/* The image-file default (32x32 RGB), the longest case. */
static void test_mnist_tinted_32x32(void **state)
{
    (void)state;
    if (quick())
        skip();
    run_case("mnist", 32, 2, 3); /* 32x32 padded, coloured */
}

static void test_fashion_tinted_32x32(void **state)
{
    (void)state;
    if (!getenv("CVAE_ACCURACY_MORE") || quick())
        skip();
    run_case("fashion-mnist", 32, 2, 3);
}

static void test_fashion_16x16(void **state)
{
    (void)state;
    if (quick())
        skip();
    run_case("fashion-mnist", 16, 2, 1); /* 32x32 padded, 2x2 boxes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mnist_8x8),
                                       cmocka_unit_test(test_fashion_16x16),
                                       cmocka_unit_test(test_mnist_tinted_32x32),
                                       cmocka_unit_test(test_fashion_tinted_32x32)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
