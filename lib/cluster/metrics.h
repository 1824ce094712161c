/* Clustering metrics: contingency table, maximum-weight assignment
 * (Hungarian algorithm) and the ACC / purity / NMI / ARI scores behind
 * cvae_cluster_metrics(). */
#ifndef CVAE_METRICS_H
#define CVAE_METRICS_H

#include <stdint.h>

#include "convvae.h"

/* Largest label or cluster id the metrics accept. */
#define CVAE__METRICS_MAX_ID 65535

/* Hungarian weights must lie in [-CVAE__HUNGARIAN_MAX_WEIGHT,
 * +CVAE__HUNGARIAN_MAX_WEIGHT] so that the int64 potentials cannot overflow. */
#define CVAE__HUNGARIAN_MAX_WEIGHT ((int64_t)1 << 60)

/* Contingency table of a clustering against labels. Only ids that occur get a
 * row or column, in increasing id order, so sparse ids (e.g. {0, 65535}) cost
 * nothing and the table is directly the weight matrix of
 * cvae__hungarian_max (rows = clusters, cols = labels). When the ids are
 * exactly 0..k-1, row r is cluster r and column c is label c. */
typedef struct cvae__contingency {
    int64_t n;           /* number of items */
    int rows;            /* distinct cluster ids */
    int cols;            /* distinct label ids */
    int64_t *counts;     /* rows x cols, row-major: items with that cluster and label */
    int64_t *row_sum;    /* rows: items per cluster */
    int64_t *col_sum;    /* cols: items per label */
    int32_t *row_id;     /* rows: the cluster id of each row, ascending */
    int32_t *col_id;     /* cols: the label id of each column, ascending */
    void *block;         /* single allocation holding all of the above */
} cvae__contingency;

/* Build the table from n >= 1 pairs (labels[i], clusters[i]), ids in
 * [0, CVAE__METRICS_MAX_ID]. CVAE_E_INVALID_ARG (NULL, n < 1, an id out of
 * range: the message names the array and index), CVAE_E_NOMEM. On failure t
 * is left empty, so cvae__contingency_free is always safe. */
cvae_status cvae__contingency_build(const int32_t *labels, const int32_t *clusters, int64_t n,
                                    cvae__contingency *t);
void cvae__contingency_free(cvae__contingency *t);

/* The four scores of a built table (definitions at cvae_cluster_metrics and
 * in metrics.c); outputs may be NULL, and ACC's assignment is skipped when
 * acc is NULL. CVAE_E_INVALID_ARG, CVAE_E_NOMEM (ACC's workspace). */
cvae_status cvae__metrics_from_contingency(const cvae__contingency *t, double *acc,
                                           double *purity, double *nmi, double *ari);

/* Maximum-weight assignment on a rows x cols row-major integer matrix
 * (rows = clusters, cols = labels in the metrics). Every row is matched to a
 * distinct column when rows <= cols; otherwise every column gets a distinct
 * row and the rows left over get -1 (equivalent to padding the matrix to
 * square with zero-weight dummies, without the cost of the padding).
 * assign_row_to_col[rows] receives the column of each row or -1. O(min^2 *
 * max) time, O(max) memory. Weights outside +-CVAE__HUNGARIAN_MAX_WEIGHT or
 * rows * cols overflowing give CVAE_E_INVALID_ARG; CVAE_E_NOMEM. */
cvae_status cvae__hungarian_max(const int64_t *weights, int rows, int cols,
                                int *assign_row_to_col);

#endif
