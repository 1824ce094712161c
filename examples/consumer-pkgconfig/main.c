/* A C program built against an installed libconvvae with pkg-config only:
 *
 *   cc main.c $(pkg-config --cflags --libs convvae) -o consumer_pkgconfig
 *
 * It clusters 240 generated 8x8 images of three shapes (horizontal bar,
 * vertical bar, hollow square, with noisy intensities) with a tiny model,
 * prints the cluster accuracy and exits non-zero if clustering failed
 * (ACC < 0.75: two shapes merged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <convvae.h>

#define SIDE 8
#define PER_CLASS 80
#define CLASSES 3
#define COUNT (PER_CLASS * CLASSES)

#define CHECK(call)                                                                            \
    do {                                                                                       \
        cvae_status st_ = (call);                                                              \
        if (st_ != CVAE_OK) {                                                                  \
            fprintf(stderr, "%s: %s: %s\n", #call, cvae_strerror(st_), cvae_last_error());     \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

/* A small LCG is enough for test data and keeps the output reproducible. */
static unsigned next_rand(unsigned long long *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(*s >> 33);
}

static void draw(uint8_t *img, int cls, unsigned long long *rng)
{
    for (int i = 0; i < SIDE * SIDE; i++)
        img[i] = (uint8_t)(next_rand(rng) % 40); /* background noise */
    for (int r = 0; r < SIDE; r++)
        for (int c = 0; c < SIDE; c++) {
            int on = 0;
            if (cls == 0)
                on = r == 3 || r == 4;
            else if (cls == 1)
                on = c == 3 || c == 4;
            else
                on = (r == 1 || r == 6 || c == 1 || c == 6) && r >= 1 && r <= 6 && c >= 1 &&
                     c <= 6;
            if (on)
                img[r * SIDE + c] = (uint8_t)(200 + next_rand(rng) % 56);
        }
}

int main(void)
{
    static uint8_t pixels[COUNT * SIDE * SIDE];
    static int32_t labels[COUNT];
    unsigned long long rng = 42;
    for (int i = 0; i < COUNT; i++) {
        labels[i] = i % CLASSES; /* interleaved, so every batch sees all shapes */
        draw(pixels + (size_t)i * SIDE * SIDE, labels[i], &rng);
    }

    printf("libconvvae %s (header %d.%d.%d)\n", cvae_version_string(), CVAE_VERSION_MAJOR,
           CVAE_VERSION_MINOR, CVAE_VERSION_PATCH);
    if (cvae_version_number() >> 16 != CVAE_VERSION_MAJOR) {
        fprintf(stderr, "run-time library major version differs from the header's\n");
        return 1;
    }

    cvae_dataset *data;
    CHECK(cvae_dataset_from_u8(pixels, COUNT, 1, SIDE, SIDE, labels, &data));

    cvae_config *cfg;
    CHECK(cvae_config_create(&cfg));
    CHECK(cvae_config_set_input_shape(cfg, 1, SIDE, SIDE));
    CHECK(cvae_config_set_conv_branch(cfg, 1, 1, 4, 3));
    CHECK(cvae_config_set_conv_branch(cfg, 2, 1, 4, 5));
    CHECK(cvae_config_set_encoder_units(cfg, 32));
    CHECK(cvae_config_set_decoder_units(cfg, 32));
    CHECK(cvae_config_set_category_units(cfg, 16));
    CHECK(cvae_config_set_latent_dim(cfg, 8));
    CHECK(cvae_config_set_clusters(cfg, CLASSES));
    CHECK(cvae_config_set_batch_size(cfg, 24));
    /* The paper's recipe with its warm-up schedule, on the network and
     * loss weight it was tuned with (not the ones the 8x8 shape picks). */
    CHECK(cvae_config_set_recipe(cfg, CVAE_RECIPE_PAPER));
    CHECK(cvae_config_set_branches(cfg, 2));
    CHECK(cvae_config_set_lambda(cfg, 2.5));
    CHECK(cvae_config_set_warmup_epochs(cfg, 5)); /* plain VAE first, */
    CHECK(cvae_config_set_kmeans_init(cfg, 1));    /* then k-means++ means */
    CHECK(cvae_config_set_learning_rate(cfg, 3e-3));
    CHECK(cvae_config_set_seed(cfg, 1));

    cvae_model *model;
    CHECK(cvae_model_create(cfg, &model));
    CHECK(cvae_model_train(model, data, 30, NULL, NULL, NULL));

    double acc, nmi;
    CHECK(cvae_model_evaluate(model, data, &acc, NULL, &nmi, NULL));
    printf("consumer-pkgconfig: %d images, %d clusters: ACC %.3f NMI %.3f\n", COUNT, CLASSES,
           acc, nmi);

    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(data);
    return acc >= 0.75 ? 0 : 1;
}
