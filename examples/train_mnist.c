/* The whole libconvvae flow in one file: load MNIST, configure, train with a
 * progress callback, evaluate, save, reload and cluster.
 *
 *   cc train_mnist.c $(pkg-config --cflags --libs convvae) -o train_mnist
 *   ./train_mnist data/mnist 5 [threads]
 */
#include <stdio.h>
#include <stdlib.h>

#include <convvae.h>

#define CHECK(call)                                                                            \
    do {                                                                                       \
        cvae_status st_ = (call);                                                              \
        if (st_ != CVAE_OK) {                                                                  \
            fprintf(stderr, "%s failed: %s: %s\n", #call, cvae_strerror(st_),                  \
                    cvae_last_error());                                                        \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static int on_progress(void *user, int epoch, int64_t batch, int64_t batches,
                       const double *losses, int num_losses)
{
    (void)user;
    (void)num_losses;
    if (batch % 100 == 0 || batch == batches)
        fprintf(stderr, "\repoch %d  batch %lld/%lld  loss %.2f", epoch + 1, (long long)batch,
                (long long)batches, losses[CVAE_LOSS_TOTAL]);
    return 0; /* non-zero would stop training after this batch */
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "data/mnist";
    int epochs = argc > 2 ? atoi(argv[2]) : 5;
    char img[512], lab[512];

    cvae_dataset *train, *test;
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte", dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte", dir);
    CHECK(cvae_dataset_load_idx(img, lab, &train));
    snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(lab, sizeof lab, "%s/t10k-labels-idx1-ubyte", dir);
    CHECK(cvae_dataset_load_idx(img, lab, &test));

    /* Defaults are the paper's best MNIST configuration; change what you need. */
    cvae_config *cfg;
    CHECK(cvae_config_create(&cfg));
    CHECK(cvae_config_set_seed(cfg, 1));
    CHECK(cvae_config_set_threads(cfg, argc > 3 ? atoi(argv[3]) : 1));

    cvae_model *model;
    CHECK(cvae_model_create(cfg, &model));
    for (int e = 0; e < epochs; e++) {
        CHECK(cvae_model_train(model, train, 1, NULL, on_progress, NULL));
        double acc, purity, nmi, ari;
        CHECK(cvae_model_evaluate(model, test, &acc, &purity, &nmi, &ari));
        fprintf(stderr, "\n");
        printf("epoch %d: test ACC %.4f  purity %.4f  NMI %.4f  ARI %.4f\n", e + 1, acc, purity,
               nmi, ari);
        fflush(stdout);
    }
    CHECK(cvae_model_save(model, "mnist.safetensors"));

    /* A reloaded model predicts exactly what the trained one does. */
    cvae_model *again;
    CHECK(cvae_model_load("mnist.safetensors", &again));
    int64_t n;
    CHECK(cvae_dataset_shape(test, &n, NULL, NULL, NULL));
    int32_t *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b)
        return 1;
    CHECK(cvae_model_predict_dataset(model, test, a, NULL));
    CHECK(cvae_model_predict_dataset(again, test, b, NULL));
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++)
        same += a[i] == b[i];
    printf("reloaded model agrees on %lld/%lld test images\n", (long long)same, (long long)n);

    free(a);
    free(b);
    cvae_model_destroy(again);
    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(test);
    cvae_dataset_destroy(train);
    return 0;
}
