/*
 * cli_mpi.h - the tool under mpirun: N processes train one model data-
 * parallel (the library's reduce hook on MPI_Allreduce), and eval / cluster
 * split the images between them. Without MPI at build time, or when not
 * started by an MPI launcher, everything here is the single process.
 */
#ifndef CONVVAE_CLI_MPI_H
#define CONVVAE_CLI_MPI_H

#include <stdint.h>

#include "convvae.h"

/* Join the MPI job if an MPI launcher started this process. Processes other
 * than rank 0 send their standard output to /dev/null, so only rank 0
 * prints results; errors still reach standard error from every rank. */
void cli_mpi_init(int *argc, char ***argv);
/* End of the program with exit code rc: a failure on any process ends the
 * whole job at once (MPI_Abort), so no process waits for a dead one. A
 * clean exit or an interruption (130, 143, taken collectively) finalizes.
 * Returns rc. */
int cli_mpi_finish(int rc);

int cli_mpi_rank(void);
int cli_mpi_size(void);

/* Make the model one of the job's data-parallel processes (nothing with a
 * single process). Returns an exit code (errors reported). */
int cli_mpi_attach(cvae_model *model);

/* Reduce the model's gradient in parts while the backward pass runs
 * (cvae_model_set_reduce_overlap): needs the MPI library's
 * MPI_THREAD_SERIALIZED, asked for at start-up; a usage error if MPI did
 * not grant it. Nothing with a single process. Returns an exit code. */
int cli_mpi_overlap(cvae_model *model);

/* cvae_model_predict_dataset and cvae_model_evaluate over the whole data
 * set, each process computing its part (cvae_shard) and the parts gathered
 * on every process, in input order. proba may be NULL. */
cvae_status cli_mpi_predict_dataset(cvae_model *model, const cvae_dataset *data,
                                    int32_t *clusters, float *proba);
cvae_status cli_mpi_evaluate(cvae_model *model, const cvae_dataset *data, double *acc,
                             double *purity, double *nmi, double *ari);

#endif /* CONVVAE_CLI_MPI_H */
