/* The tool across MPI processes (see cli_mpi.h). MPI (OpenMPI or MPICH from
 * the distribution) does all communication; the library never sees it. */
#define _POSIX_C_SOURCE 200809L

#include "cli_mpi.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

#ifdef CVAE_WITH_MPI
#include <limits.h>
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;

int cli_mpi_rank(void) { return g_rank; }
int cli_mpi_size(void) { return g_size; }

#ifdef CVAE_WITH_MPI
static int g_mpi = 0;      /* MPI_Init was called */
static int g_provided = 0; /* the thread support MPI granted */

/* Started by a launcher? (OpenMPI's mpirun, MPICH's Hydra, PMIx / Slurm.)
 * A plain `convvae` stays a plain process: no MPI start-up cost or
 * messages. */
static int launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

/* The library's reduce hook: an in-place sum over MPI_COMM_WORLD, in
 * pieces of at most INT_MAX elements (MPI counts are int). MPI's default
 * error handler ends the job on a communication failure. */
static int allreduce(float *buf, size_t n, void *user)
{
    (void)user;
    while (n > 0) {
        int c = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        if (MPI_Allreduce(MPI_IN_PLACE, buf, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return 1;
        buf += c;
        n -= (size_t)c;
    }
    return 0;
}

/* Every process's part (counts and offsets in units of `unit` elements of
 * the gathered array) of count items. */
static int part_layout(int64_t count, int unit, int *counts, int *displs)
{
    for (int r = 0; r < g_size; r++) {
        int64_t b, n;
        if (cvae_shard(count, r, g_size, &b, &n) || b * unit > INT_MAX || (b + n) * unit > INT_MAX)
            return -1;
        counts[r] = (int)(n * unit);
        displs[r] = (int)(b * unit);
    }
    return 0;
}
#endif

void cli_mpi_init(int *argc, char ***argv)
{
#ifdef CVAE_WITH_MPI
    if (!launched_by_mpi())
        return;
    /* Serialized calls from any thread: the library's overlapped reduction
     * calls the hook from a helper thread, never two calls at once. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &g_provided) != MPI_SUCCESS) {
        fprintf(stderr, "convvae: MPI_Init_thread failed\n");
        exit(CLI_EXIT_RUNTIME);
    }
    g_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_rank != 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "convvae: rank %d cannot silence its standard output\n", g_rank);
#else
    (void)argc;
    (void)argv;
#endif
}

int cli_mpi_finish(int rc)
{
#ifdef CVAE_WITH_MPI
    if (!g_mpi)
        return rc;
    if (rc != CLI_EXIT_OK && rc != CLI_EXIT_INTERRUPTED && rc != 128 + SIGTERM && g_size > 1) {
        fprintf(stderr, "convvae: process %d of %d failed (exit status %d); ending the job\n",
                g_rank, g_size, rc);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
#endif
    return rc;
}

int cli_mpi_attach(cvae_model *model)
{
#ifdef CVAE_WITH_MPI
    if (g_size > 1) {
        cvae_status st = cvae_model_set_data_parallel(model, g_rank, g_size, allreduce, NULL);
        if (st)
            return cli_lib_error(st);
    }
#else
    (void)model;
#endif
    return CLI_EXIT_OK;
}

int cli_mpi_overlap(cvae_model *model)
{
#ifdef CVAE_WITH_MPI
    if (g_size > 1) {
        if (g_provided < MPI_THREAD_SERIALIZED)
            return cli_usage_error("train", "--overlap-reduction needs an MPI library with "
                                            "MPI_THREAD_SERIALIZED support; this one grants "
                                            "level %d", g_provided);
        cvae_status st = cvae_model_set_reduce_overlap(model, 1);
        if (st)
            return cli_lib_error(st);
    }
#else
    (void)model;
#endif
    return CLI_EXIT_OK;
}

cvae_status cli_mpi_predict_dataset(cvae_model *model, const cvae_dataset *data,
                                    int32_t *clusters, float *proba)
{
#ifdef CVAE_WITH_MPI
    if (g_size > 1) {
        int64_t count = 0, begin = 0, n = 0;
        int k = 0;
        cvae_config *cfg = NULL;
        cvae_status st = cvae_dataset_shape(data, &count, NULL, NULL, NULL);
        if (!st)
            st = cvae_shard(count, g_rank, g_size, &begin, &n);
        if (!st && !(st = cvae_model_get_config(model, &cfg)))
            st = cvae_config_get_clusters(cfg, &k);
        cvae_config_destroy(cfg);
        int *counts = malloc((size_t)g_size * sizeof *counts);
        int *displs = malloc((size_t)g_size * sizeof *displs);
        int64_t *idx = n > 0 ? malloc((size_t)n * sizeof *idx) : NULL;
        cvae_dataset *part = NULL;
        if (!st && (!counts || !displs || (n > 0 && !idx)))
            st = CVAE_E_NOMEM;
        if (!st && part_layout(count, proba ? k : 1, counts, displs))
            st = CVAE_E_INVALID_ARG; /* beyond what one MPI gather can count */
        if (!st && n > 0) {
            for (int64_t i = 0; i < n; i++)
                idx[i] = begin + i;
            st = cvae_dataset_subset_indices(data, idx, n, &part);
            if (!st)
                st = cvae_model_predict_dataset(model, part, clusters + begin,
                                                proba ? proba + (size_t)begin * (size_t)k : NULL);
        }
        cvae_dataset_destroy(part);
        free(idx);
        /* A process that failed cannot take part in the gather: it ends the
         * job (cli_mpi_finish) and MPI_Abort stops the others waiting here. */
        if (st) {
            free(counts);
            free(displs);
            return st;
        }
        if (proba)
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, proba, counts, displs, MPI_FLOAT,
                           MPI_COMM_WORLD);
        part_layout(count, 1, counts, displs);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, clusters, counts, displs, MPI_INT32_T,
                       MPI_COMM_WORLD);
        free(counts);
        free(displs);
        return CVAE_OK;
    }
#endif
    return cvae_model_predict_dataset(model, data, clusters, proba);
}

cvae_status cli_mpi_evaluate(cvae_model *model, const cvae_dataset *data, double *acc,
                             double *purity, double *nmi, double *ari)
{
    if (g_size == 1)
        return cvae_model_evaluate(model, data, acc, purity, nmi, ari);
    int64_t count = 0;
    int has = 0;
    cvae_status st = cvae_dataset_shape(data, &count, NULL, NULL, NULL);
    if (!st)
        st = cvae_dataset_has_labels(data, &has);
    if (!st && !has)
        return cvae_model_evaluate(model, data, acc, purity, nmi, ari); /* its CVAE_E_STATE */
    int32_t *labels = malloc((size_t)count * sizeof *labels);
    int32_t *pred = malloc((size_t)count * sizeof *pred);
    if (!st && (!labels || !pred))
        st = CVAE_E_NOMEM;
    if (!st)
        st = cvae_dataset_labels(data, labels, count);
    if (!st)
        st = cli_mpi_predict_dataset(model, data, pred, NULL);
    if (!st)
        st = cvae_cluster_metrics(labels, pred, count, acc, purity, nmi, ari);
    free(labels);
    free(pred);
    return st;
}
