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

typedef struct cvae__dp {
    int rank, size;        /* size 1 and no hook: a single process */
    cvae_reduce_fn reduce; /* sums a float buffer over all processes, in place */
    void *user;
    int64_t total; /* images in the current global batch: the loss's denominator */
    int active;    /* set by the entry points that follow the protocol */
    int failed;    /* the hook returned non-zero during the current call */
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

/* Check, collectively, that every process starts a data-parallel call
 * (`what`, for the message) with the same model, parameters, optimizer step
 * count and data set size: CVAE_OK on all of them, or the same
 * CVAE_E_INVALID_ARG on all naming the first process that differs
 * (CVAE_E_IO if the hook fails). One reduction of 4 floats per process. */
cvae_status cvae__dp_agree(cvae_model *model, int64_t count, int64_t steps, const char *what);

#endif
