/* Data-parallel support (see parallel.h). */
#include "training/data_parallel.h"

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
    return CVAE_OK;
}
