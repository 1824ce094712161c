/* Data-parallel support (see parallel.h). */
#include "training/data_parallel.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

void cvae__shard(int64_t count, int rank, int size, int64_t *begin, int64_t *end)
{
    const int64_t q = count / size, r = count % size;
    *begin = rank * q + (rank < r ? rank : r);
    *end = *begin + q + (rank < r ? 1 : 0);
}

/* splitmix64's finaliser: a bijective mix, so distinct inputs chained
 * through it give unrelated seeds. */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void cvae__item_rng(cvae__rng *r, uint64_t seed, uint64_t stream, uint64_t epoch, uint64_t index)
{
    uint64_t h = mix(seed);
    h = mix(h ^ stream);
    h = mix(h ^ epoch);
    h = mix(h ^ index);
    cvae__rng_seed(r, h);
}

int cvae__dp_reduce(cvae__dp *p, float *buf, size_t n)
{
    if (!p->reduce || p->failed)
        return p->failed;
    if (p->reduce(buf, n, p->user))
        p->failed = 1;
    return p->failed;
}

cvae_status cvae_shard(int64_t count, int rank, int size, int64_t *begin, int64_t *n)
{
    CVAE__CHECK_PTR(begin);
    CVAE__CHECK_PTR(n);
    if (count < 0 || size < 1 || rank < 0 || rank >= size)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "cvae_shard needs count >= 0 and 0 <= rank < size, got count %lld, "
                          "rank %d, size %d",
                          (long long)count, rank, size);
    int64_t end;
    cvae__shard(count, rank, size, begin, &end);
    *n = end - *begin;
    return CVAE_OK;
}

cvae_status cvae_model_set_data_parallel(cvae_model *model, int rank, int size,
                                         cvae_reduce_fn reduce, void *user)
{
    CVAE__CHECK_PTR(model);
    if (size < 1 || rank < 0 || rank >= size)
        return cvae__fail(CVAE_E_INVALID_ARG, "data-parallel rank %d of size %d is out of range",
                          rank, size);
    if (size > 1 && !reduce)
        return cvae__fail(CVAE_E_INVALID_ARG, "data-parallel training over %d processes needs "
                                              "a reduce callback", size);
    model->par.rank = rank;
    model->par.size = size;
    model->par.reduce = reduce;
    model->par.user = user;
    /* A process computes only its slice of each batch: the workspace is
     * sized for that (allocated again on the next call that needs it). */
    if (model->ws.base && model->ws_rows != cvae__model_workspace_rows(model))
        cvae__arena_free(&model->ws);
    return CVAE_OK;
}

/* A hash of what must be equal on every process before a data-parallel
 * call: the data set's size, the model's shape and training position, its
 * seed, the optimizer's step count and every parameter bit. */
static uint64_t fingerprint(const cvae_model *model, int64_t count, int64_t steps)
{
    const uint64_t fields[] = {(uint64_t)count, (uint64_t)model->B, (uint64_t)model->nparams,
                               cvae__layout_id(model), (uint64_t)model->epochs_done,
                               (uint64_t)model->phase_mixture, (uint64_t)model->part.batches,
                               (uint64_t)model->part.count, model->cfg.seed, (uint64_t)steps};
    uint64_t h = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        h = mix(h ^ fields[i]);
    for (size_t i = 0; i < model->nparams; i++) {
        uint32_t bits;
        memcpy(&bits, &model->params[i], sizeof bits);
        h = mix(h ^ bits);
    }
    return h;
}

cvae_status cvae__dp_agree(cvae_model *model, int64_t count, int64_t steps, const char *what)
{
    cvae__dp *p = &model->par;
    /* Each process writes its fingerprint, as four 16-bit pieces (exact in
     * float), into its own slot; the sum hands every process all slots, so
     * all reach the same verdict and none waits in a later call. */
    const size_t n = (size_t)p->size * 4;
    float *buf = calloc(n, sizeof *buf);
    if (!buf)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu floats to compare processes", n);
    const uint64_t h = fingerprint(model, count, steps);
    for (int i = 0; i < 4; i++)
        buf[(size_t)p->rank * 4 + i] = (float)((h >> (16 * i)) & 0xFFFF);
    cvae_status st = CVAE_OK;
    if (cvae__dp_reduce(p, buf, n)) {
        st = cvae__fail(CVAE_E_IO, "the reduce callback failed before %s", what);
    } else {
        for (int r = 1; r < p->size && !st; r++)
            if (memcmp(buf + (size_t)r * 4, buf, 4 * sizeof *buf) != 0)
                st = cvae__fail(CVAE_E_INVALID_ARG,
                                "process %d of %d differs from process 0 before %s: every "
                                "process needs the same model (configuration and seed, or "
                                "checkpoint), optimizer and data set size",
                                r, p->size, what);
    }
    free(buf);
    return st;
}
