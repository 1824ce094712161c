// A C++17 program built against an installed libconvvae with
// find_package(ConvVAE) (see CMakeLists.txt). It clusters 240 generated 8x8
// float images of three shapes with a tiny model, prints the cluster
// accuracy and exits non-zero if clustering failed (ACC < 0.75).
#include <convvae.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(cvae_status st, const char *what)
{
    if (st != CVAE_OK)
        throw std::runtime_error(std::string(what) + ": " + cvae_strerror(st) + ": " +
                                 cvae_last_error());
}

constexpr int side = 8, classes = 3, per_class = 80, count = classes * per_class;

// Shape 0: horizontal bar, 1: vertical bar, 2: hollow square; noisy levels.
void make_images(std::vector<float> &pixels, std::vector<int32_t> &labels)
{
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> background(0.0f, 0.15f), ink(0.8f, 1.0f);
    pixels.resize(static_cast<size_t>(count) * side * side);
    labels.resize(count);
    for (int i = 0; i < count; i++) {
        const int cls = i % classes;
        labels[static_cast<size_t>(i)] = cls;
        float *img = &pixels[static_cast<size_t>(i) * side * side];
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++) {
                const bool square = (r == 1 || r == 6 || c == 1 || c == 6) && r >= 1 &&
                                    r <= 6 && c >= 1 && c <= 6;
                const bool on = cls == 0 ? (r == 3 || r == 4)
                                : cls == 1 ? (c == 3 || c == 4)
                                           : square;
                img[r * side + c] = on ? ink(rng) : background(rng);
            }
    }
}

} // namespace

int main()
try {
    std::vector<float> pixels;
    std::vector<int32_t> labels;
    make_images(pixels, labels);

    std::printf("libconvvae %s\n", cvae_version_string());
    cvae_dataset *data = nullptr;
    check(cvae_dataset_from_f32(pixels.data(), count, 1, side, side, labels.data(), &data),
          "dataset");

    cvae_config *cfg = nullptr;
    check(cvae_config_create(&cfg), "config");
    check(cvae_config_set_input_shape(cfg, 1, side, side), "input shape");
    // The text interface takes the CLI's option names.
    check(cvae_config_set(cfg, "clusters", "3"), "clusters");
    check(cvae_config_set(cfg, "latent-dim", "8"), "latent-dim");
    check(cvae_config_set_conv_branch(cfg, 1, 1, 4, 3), "branch 1");
    check(cvae_config_set_conv_branch(cfg, 2, 1, 4, 5), "branch 2");
    check(cvae_config_set_encoder_units(cfg, 32), "encoder units");
    check(cvae_config_set_decoder_units(cfg, 32), "decoder units");
    check(cvae_config_set_category_units(cfg, 16), "category units");
    check(cvae_config_set_batch_size(cfg, 24), "batch size");
    // The paper's recipe with its warm-up schedule, on the network and loss
    // weight it was tuned with (not the ones the image shape picks).
    check(cvae_config_set_recipe(cfg, CVAE_RECIPE_PAPER), "recipe");
    check(cvae_config_set_branches(cfg, 2), "branches");
    check(cvae_config_set_lambda(cfg, 2.5), "lambda");
    check(cvae_config_set_warmup_epochs(cfg, 5), "warmup");
    check(cvae_config_set_kmeans_init(cfg, 1), "kmeans init");
    check(cvae_config_set_learning_rate(cfg, 3e-3), "learning rate");

    cvae_model *model = nullptr;
    check(cvae_model_create(cfg, &model), "model");
    check(cvae_model_train(model, data, 30, nullptr, nullptr, nullptr), "train");
    double acc = 0, nmi = 0;
    check(cvae_model_evaluate(model, data, &acc, nullptr, &nmi, nullptr), "evaluate");
    std::printf("consumer-cmake: %d images, %d clusters: ACC %.3f NMI %.3f\n", count, classes,
                acc, nmi);

    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(data);
    return acc >= 0.75 ? 0 : 1;
} catch (const std::exception &e) {
    std::fprintf(stderr, "consumer-cmake: %s\n", e.what());
    return 1;
}
