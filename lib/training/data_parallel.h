/* Data-parallel training across processes, without any transport of our
 * own: the caller owns the communication and hands the library a reduction
 * hook (cvae_model_set_data_parallel). Every process holds the same data
 * set and the same model, walks the same global batches in the same order,
 * and computes its contiguous slice of each (cvae__shard); whatever depends
 * on the whole batch (gradients, the balance term's batch mean of q, the
 * loss values) is summed through the hook before it is used, so every
 * process applies the same update. Randomness that is per image (sampling
 * noise, augmentation) comes from a stream keyed by the image's index in
 * the data set, never from a position in a process's slice, so N processes
 * follow one process up to float summation order. */
#ifndef CVAE_DATA_PARALLEL_H
#define CVAE_DATA_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"
#include "core/rng.h"

struct cvae__dp_comm;

typedef struct cvae__dp {
    int rank, size;        /* size 1 and no hook: a single process */
    cvae_reduce_fn reduce; /* sums a float buffer over all processes, in place */
    void *user;
    int64_t total; /* images in the current global batch: the loss's denominator */
    int active;    /* set by the entry points that follow the protocol */
    int failed;    /* the hook returned non-zero during the current call */

    int micro;   /* most images computed at once (cvae_model_set_micro_batch; 0: all) */
    int overlap; /* the gradient is reduced part by part from a helper thread */
    struct cvae__dp_comm *comm; /* that thread, while a training call runs */

    /* The step being computed. In parts (a slice larger than micro), the
     * balance term uses the global column sums of q gathered by a first
     * pass (colsum), every part after the first writes its gradient to
     * scratch and each finished bucket of it is added into sum (the
     * gradient the optimizer reads). push: this is the step's last part,
     * so a finished bucket is final and may go to the reduction. */
    int parts;
    int adding;
    int push;
    int next_bucket; /* buckets below this one are added / pushed already */
    float *sum, *scratch;
    double colsum[CVAE_MAX_CLUSTERS];
} cvae__dp;

/* The slice [*begin, *end) of count items that process rank of size
 * computes: contiguous, sizes differing by at most one, earlier ranks the
 * larger. Every item belongs to exactly one rank; a rank may get none. */
void cvae__shard(int64_t count, int rank, int size, int64_t *begin, int64_t *end);

/* Keyed random streams, one per purpose, so adding a use of randomness
 * never shifts another: per image (sampling noise, augmentation) and per
 * epoch (the data order, index 0). Append only. */
enum { CVAE__STREAM_EPS = 1, CVAE__STREAM_AUGMENT = 2, CVAE__STREAM_ORDER = 3 };

/* Seed r for one image in one epoch: a function of (seed, stream, epoch,
 * index) only, where index is the image's index in the data set. Anything
 * random in training that every process must agree on comes from here,
 * never from the model's sequential RNG. */
void cvae__item_rng(cvae__rng *r, uint64_t seed, uint64_t stream, uint64_t epoch, uint64_t index);

/* Whether data-parallel training is in force (a hook, size > 1 or set). */
static inline int cvae__dp_on(const cvae__dp *p) { return p->reduce != NULL; }

/* Sum buf over all processes through the hook; a no-op without one. Returns
 * 0, or non-zero (and records it in p->failed) if the hook failed. */
int cvae__dp_reduce(cvae__dp *p, float *buf, size_t n);

/* The batch-level numbers a step or a loss evaluation sums over the
 * processes (the column sums of q, the loss terms' shares: at most
 * CVAE__DP_TERMS of them), as floats through the hook, in place. Same
 * return as cvae__dp_reduce. */
#define CVAE__DP_TERMS (CVAE_MAX_CLUSTERS + 4)
int cvae__dp_reduce_terms(cvae__dp *p, double *v, size_t n);

/* Gradient buckets: ranges of the flat gradient that the backward pass
 * finishes one after the other, in this order: the decoder, the category
 * head with the class means, the encoder, then the convolution branches
 * from the last to the first. Together they cover the whole buffer, so
 * reducing every bucket reduces the gradient. */
enum { CVAE__BUCKET_DECODER = 0, CVAE__BUCKET_CATEGORY = 1, CVAE__BUCKET_ENCODER = 2,
       CVAE__BUCKET_BRANCH_LAST = 3 };
struct cvae_model;
int cvae__dp_buckets(const struct cvae_model *model);
void cvae__dp_bucket_range(const struct cvae_model *model, int id, size_t *lo, size_t *hi);

/* The backward pass calls this when bucket id of the gradient is final for
 * the current part: adds it into the step's sum when the part is computed
 * into scratch, and on the step's last part with overlap on, hands it (and
 * any skipped bucket before it) to the helper thread to reduce while the
 * backward pass goes on. A no-op for a step in one piece without overlap. */
void cvae__dp_bucket_done(struct cvae_model *model, int id);

/* After the step's backward pass: the gradient in model->grads summed over
 * the processes (the buckets not yet handed over, then waiting for all of
 * them; or the whole buffer in one call without overlap). Returns 0, or
 * non-zero if a reduction failed. */
int cvae__dp_grads_done(struct cvae_model *model);

/* The helper thread of the overlapped reduction, for one training call:
 * while it runs every reduction (the synchronous ones too) goes through it,
 * in the order asked, so the hook is never entered twice at once. Start
 * returns CVAE_E_NOMEM (or CVAE_E_INTERNAL) if the thread cannot start;
 * stop waits for it. Both are no-ops unless overlap is on. */
cvae_status cvae__dp_comm_start(cvae__dp *p);
void cvae__dp_comm_stop(cvae__dp *p);

/* Check, collectively, that every process starts a data-parallel call
 * (`what`, for the message) with the same model, parameters, optimizer step
 * count and data set size: CVAE_OK on all of them, or the same
 * CVAE_E_INVALID_ARG on all naming the first process that differs
 * (CVAE_E_IO if the hook fails). One reduction of 4 floats per process. */
cvae_status cvae__dp_agree(cvae_model *model, int64_t count, int64_t steps, const char *what);

#endif
