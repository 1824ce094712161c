/* Data-parallel training over MPI: every process loads the same data set
 * and builds the same model; the library calls back for each sum over the
 * processes, and this program answers with MPI_Allreduce. batch_size stays
 * the global batch, so 4 processes train the model 1 process would.
 *
 *   mpicc train_mpi.c $(pkg-config --cflags --libs convvae) -o train_mpi
 *   mpirun -np 4 ./train_mpi data/mnist 2 model.safetensors
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

#include <convvae.h>

#define CHECK(call)                                                                            \
    do {                                                                                       \
        cvae_status st_ = (call);                                                              \
        if (st_ != CVAE_OK) {                                                                  \
            fprintf(stderr, "%s failed: %s: %s\n", #call, cvae_strerror(st_),                  \
                    cvae_last_error());                                                        \
            MPI_Abort(MPI_COMM_WORLD, 1); /* the others would wait for this one forever */    \
        }                                                                                      \
    } while (0)

/* The library's reduce hook: sum in place over all processes. MPI counts
 * are int, so very long buffers go in pieces. */
static int allreduce(float *buf, size_t n, void *user)
{
    MPI_Comm comm = *(MPI_Comm *)user;
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        if (MPI_Allreduce(MPI_IN_PLACE, buf, c, MPI_FLOAT, MPI_SUM, comm) != MPI_SUCCESS)
            return 1;
        buf += c;
        n -= (size_t)c;
    }
    return 0;
}

/* Progress from rank 0 only; every process gets the same (global) losses. */
static int on_progress(void *user, int epoch, int64_t batch, int64_t batches,
                       const double *losses, int num_losses)
{
    (void)num_losses;
    if (*(int *)user == 0 && batch == batches)
        printf("epoch %d  loss %.2f\n", epoch + 1, losses[CVAE_LOSS_TOTAL]);
    return 0;
}

int main(int argc, char **argv)
{
    /* SERIALIZED: with the overlapped reduction below, the library calls
     * allreduce from a helper thread (one call at a time). */
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    int rank, size;
    MPI_Comm comm = MPI_COMM_WORLD;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const char *dir = argc > 1 ? argv[1] : "data/mnist";
    int epochs = argc > 2 ? atoi(argv[2]) : 1;
    const char *out = argc > 3 ? argv[3] : "mnist-mpi.safetensors";

    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte", dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte", dir);
    cvae_dataset *train;
    CHECK(cvae_dataset_load_idx(img, lab, &train));

    cvae_config *cfg;
    cvae_model *model;
    CHECK(cvae_config_create(&cfg));
    CHECK(cvae_config_set_seed(cfg, 42)); /* the same on every process */
    CHECK(cvae_model_create(cfg, &model));
    CHECK(cvae_model_set_data_parallel(model, rank, size, allreduce, &comm));
    /* When the network is the bottleneck: sum the gradient while the
     * backward pass runs; and a larger global batch (cvae_config_set_
     * batch_size, with a learning rate to match) computed in parts of at
     * most 100 images per process, so memory stays that of 100 images. */
    if (provided >= MPI_THREAD_SERIALIZED)
        CHECK(cvae_model_set_reduce_overlap(model, 1));
    CHECK(cvae_model_set_micro_batch(model, 100));
    CHECK(cvae_model_train(model, train, epochs, NULL, on_progress, &rank));

    /* Inference is local: each process predicts its part, rank 0 gathers. */
    int64_t count, begin, n;
    CHECK(cvae_dataset_shape(train, &count, NULL, NULL, NULL));
    CHECK(cvae_shard(count, rank, size, &begin, &n));
    int32_t *clusters = malloc((size_t)count * sizeof *clusters);
    int *counts = malloc((size_t)size * sizeof *counts), *displs = malloc((size_t)size * sizeof *displs);
    if (!clusters || !counts || !displs)
        MPI_Abort(comm, 1);
    for (int r = 0; r < size; r++) {
        int64_t b, c;
        CHECK(cvae_shard(count, r, size, &b, &c));
        counts[r] = (int)c;
        displs[r] = (int)b;
    }
    int64_t *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    if (!idx)
        MPI_Abort(comm, 1);
    for (int64_t i = 0; i < n; i++)
        idx[i] = begin + i;
    if (n > 0) {
        cvae_dataset *part;
        CHECK(cvae_dataset_subset_indices(train, idx, n, &part));
        CHECK(cvae_model_predict_dataset(model, part, clusters + begin, NULL));
        cvae_dataset_destroy(part);
    }
    MPI_Gatherv(rank == 0 ? MPI_IN_PLACE : clusters + begin, (int)n, MPI_INT32_T, clusters, counts,
                displs, MPI_INT32_T, 0, comm);
    if (rank == 0) {
        int32_t *labels = malloc((size_t)count * sizeof *labels);
        double acc;
        if (!labels)
            MPI_Abort(comm, 1);
        CHECK(cvae_dataset_labels(train, labels, count));
        CHECK(cvae_cluster_metrics(labels, clusters, count, &acc, NULL, NULL, NULL));
        printf("%d processes: training ACC %.4f\n", size, acc);
        CHECK(cvae_model_save(model, out)); /* every process holds the same model */
        free(labels);
    }
    free(idx);
    free(counts);
    free(displs);
    free(clusters);
    cvae_model_destroy(model);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(train);
    MPI_Finalize();
    return 0;
}
