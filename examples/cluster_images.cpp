// Cluster images from C++ with libconvvae: RAII handles, exceptions for
// failed calls, a progress callback, prediction, save and reload.
//
//   c++ -std=c++17 cluster_images.cpp $(pkg-config --cflags --libs convvae) -o cluster_images
//   ./cluster_images                               # generated shapes, 3 clusters
//   ./cluster_images IMAGES.idx LABELS.idx [EPOCHS [CLUSTERS]]   # e.g. MNIST
//
// Copy the `convvae` namespace into your code: it is the whole wrapper.
#include <convvae.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace convvae {

// A failed call: the status and the library's message for this thread.
class Error : public std::runtime_error {
public:
    Error(cvae_status status, const std::string &what)
        : std::runtime_error(what + ": " + cvae_strerror(status) + ": " + cvae_last_error()),
          status_(status)
    {
    }
    cvae_status status() const noexcept { return status_; }

private:
    cvae_status status_;
};

inline void check(cvae_status status, const char *what)
{
    if (status != CVAE_OK)
        throw Error(status, what);
}

// unique_ptr with the library's destroy function as deleter: every handle is
// freed exactly once, on every path, including exceptions.
template <typename T, void (*Destroy)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Destroy(p); }
};
using Dataset = std::unique_ptr<cvae_dataset, Deleter<cvae_dataset, cvae_dataset_destroy>>;
using Config = std::unique_ptr<cvae_config, Deleter<cvae_config, cvae_config_destroy>>;
using Model = std::unique_ptr<cvae_model, Deleter<cvae_model, cvae_model_destroy>>;

// Wrap a constructor call `f(args..., &out)` so it returns the owning handle.
template <typename Handle, typename F, typename... Args>
Handle make(const char *what, F f, Args... args)
{
    typename Handle::pointer raw = nullptr;
    check(f(args..., &raw), what);
    return Handle(raw);
}

} // namespace convvae

namespace {

// 3 shapes of 8x8 (horizontal bar, vertical bar, hollow square), noisy.
convvae::Dataset generated_shapes(int per_class)
{
    const int side = 8, classes = 3, count = classes * per_class;
    std::vector<uint8_t> pixels(static_cast<size_t>(count) * side * side);
    std::vector<int32_t> labels(static_cast<size_t>(count));
    std::mt19937 rng(7);
    for (int i = 0; i < count; i++) {
        const int cls = i % classes;
        labels[static_cast<size_t>(i)] = cls;
        uint8_t *img = &pixels[static_cast<size_t>(i) * side * side];
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++) {
                const bool on = cls == 0   ? (r == 3 || r == 4)
                                : cls == 1 ? (c == 3 || c == 4)
                                           : ((r == 1 || r == 6) && c >= 1 && c <= 6) ||
                                                 ((c == 1 || c == 6) && r >= 1 && r <= 6);
                img[r * side + c] = static_cast<uint8_t>(on ? 200 + rng() % 56 : rng() % 40);
            }
    }
    return convvae::make<convvae::Dataset>("generate data", cvae_dataset_from_u8, pixels.data(),
                                           int64_t{count}, 1, side, side, labels.data());
}

// Progress callback: C calls it, so no exception may leave it.
struct Progress {
    int last_epoch = -1;
};
int on_progress(void *user, int epoch, int64_t batch, int64_t batches, const double *losses,
                int /*num_losses*/)
{
    auto *p = static_cast<Progress *>(user);
    if (batch == batches && epoch != p->last_epoch) {
        p->last_epoch = epoch;
        std::fprintf(stderr, "epoch %3d  loss %.3f\n", epoch + 1, losses[CVAE_LOSS_TOTAL]);
    }
    return 0; // non-zero stops training after this batch
}

} // namespace

int main(int argc, char **argv)
try {
    using namespace convvae;
    const bool idx = argc >= 3;
    Dataset data = idx ? make<Dataset>("load IDX", cvae_dataset_load_idx,
                                       static_cast<const char *>(argv[1]),
                                       static_cast<const char *>(argv[2]))
                       : generated_shapes(80);
    const int epochs = argc > 3 ? std::atoi(argv[3]) : (idx ? 5 : 30);
    const int clusters = argc > 4 ? std::atoi(argv[4]) : (idx ? 10 : 3);

    int64_t count = 0;
    int channels = 0, height = 0, width = 0;
    check(cvae_dataset_shape(data.get(), &count, &channels, &height, &width), "shape");

    // Defaults are the paper's MNIST model; the generated 8x8 shapes need far less.
    Config cfg = make<Config>("config", cvae_config_create);
    check(cvae_config_set_input_shape(cfg.get(), channels, height, width), "input shape");
    check(cvae_config_set_clusters(cfg.get(), clusters), "clusters");
    if (!idx) {
        check(cvae_config_set_conv_branch(cfg.get(), 1, 1, 4, 3), "branch 1");
        check(cvae_config_set_conv_branch(cfg.get(), 2, 1, 4, 5), "branch 2");
        check(cvae_config_set_encoder_units(cfg.get(), 32), "encoder units");
        check(cvae_config_set_decoder_units(cfg.get(), 32), "decoder units");
        check(cvae_config_set_category_units(cfg.get(), 16), "category units");
        check(cvae_config_set_latent_dim(cfg.get(), 8), "latent dim");
        check(cvae_config_set_batch_size(cfg.get(), 24), "batch size");
        check(cvae_config_set_learning_rate(cfg.get(), 3e-3), "learning rate");
        // The paper's recipe, whose warm-up fits the few epochs run here
        // (the default recipe clusters only after its pretraining epochs).
        check(cvae_config_set_recipe(cfg.get(), CVAE_RECIPE_PAPER), "recipe");
        check(cvae_config_set_branches(cfg.get(), 2), "branches");
        check(cvae_config_set_lambda(cfg.get(), 2.5), "lambda");
        check(cvae_config_set_warmup_epochs(cfg.get(), 5), "warm-up");
        check(cvae_config_set_kmeans_init(cfg.get(), 1), "k-means init");
    }

    Model model = make<Model>("create model", cvae_model_create,
                              static_cast<const cvae_config *>(cfg.get()));
    int64_t params = 0;
    check(cvae_model_num_params(model.get(), &params), "num params");
    std::printf("%lld images %dx%dx%d, %d clusters, %lld parameters, %d epochs\n",
                static_cast<long long>(count), channels, height, width, clusters,
                static_cast<long long>(params), epochs);

    Progress progress;
    check(cvae_model_train(model.get(), data.get(), epochs, nullptr, on_progress, &progress),
          "train");

    // One cluster per image; count the cluster sizes.
    std::vector<int32_t> assigned(static_cast<size_t>(count));
    check(cvae_model_predict_dataset(model.get(), data.get(), assigned.data(), nullptr),
          "predict");
    std::vector<int64_t> sizes(static_cast<size_t>(clusters));
    for (int32_t c : assigned)
        sizes[static_cast<size_t>(c)]++;
    std::printf("cluster sizes:");
    for (int64_t s : sizes)
        std::printf(" %lld", static_cast<long long>(s));
    std::printf("\n");

    int has_labels = 0;
    check(cvae_dataset_has_labels(data.get(), &has_labels), "has labels");
    double acc = 1.0;
    if (has_labels) {
        double nmi = 0, ari = 0;
        check(cvae_model_evaluate(model.get(), data.get(), &acc, nullptr, &nmi, &ari), "evaluate");
        std::printf("cluster_images: ACC %.3f NMI %.3f ARI %.3f\n", acc, nmi, ari);
    }

    // A saved and reloaded model predicts exactly the same clusters.
    const std::string file =
        (std::filesystem::temp_directory_path() /
         ("cluster_images_" + std::to_string(std::random_device{}()) + ".safetensors"))
            .string();
    check(cvae_model_save(model.get(), file.c_str()), "save");
    Model again = make<Model>("load", cvae_model_load, file.c_str());
    std::filesystem::remove(file);
    std::vector<int32_t> again_assigned(assigned.size());
    check(cvae_model_predict_dataset(again.get(), data.get(), again_assigned.data(), nullptr),
          "predict reloaded");
    const bool same = again_assigned == assigned;
    std::printf("reloaded model: %s\n", same ? "same clusters" : "DIFFERENT clusters");

    return same && acc >= 0.75 ? 0 : 1;
} catch (const convvae::Error &e) {
    std::fprintf(stderr, "cluster_images: %s\n", e.what());
    return 1;
} catch (const std::exception &e) {
    std::fprintf(stderr, "cluster_images: %s\n", e.what());
    return 1;
}
