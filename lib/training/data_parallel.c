/* Data-parallel support (see parallel.h). */
#include "training/data_parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
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

/* The helper thread that calls the hook while the backward pass goes on: a
 * first-in first-out queue of buffers, each reduced in turn. Every process
 * asks for the same reductions in the same order, so the hook sees the
 * same sequence of calls everywhere, as it must. */
#define COMM_QUEUE (CVAE_MAX_BRANCHES + 8)

struct cvae__dp_comm {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    struct {
        float *buf;
        size_t n;
    } q[COMM_QUEUE];
    unsigned long asked, finished; /* reductions queued and done since start */
    int quit;
};

static void *comm_main(void *arg)
{
    cvae__dp *p = arg;
    struct cvae__dp_comm *c = p->comm;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->finished == c->asked && !c->quit)
            pthread_cond_wait(&c->work, &c->mu);
        if (c->finished == c->asked)
            break; /* quit, and nothing left */
        float *buf = c->q[c->finished % COMM_QUEUE].buf;
        size_t n = c->q[c->finished % COMM_QUEUE].n;
        int failed = p->failed;
        pthread_mutex_unlock(&c->mu);
        /* after a failure the rest are skipped: the step fails anyway */
        int bad = !failed && p->reduce(buf, n, p->user) != 0;
        pthread_mutex_lock(&c->mu);
        if (bad)
            p->failed = 1;
        c->finished++;
        pthread_cond_broadcast(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Queue one reduction; returns its ticket. The queue never holds more than
 * a step's buckets plus one synchronous call, well within COMM_QUEUE, but
 * a full queue waits rather than overwrite. */
static unsigned long comm_push(struct cvae__dp_comm *c, float *buf, size_t n)
{
    pthread_mutex_lock(&c->mu);
    while (c->asked - c->finished >= COMM_QUEUE)
        pthread_cond_wait(&c->done, &c->mu);
    c->q[c->asked % COMM_QUEUE].buf = buf;
    c->q[c->asked % COMM_QUEUE].n = n;
    unsigned long ticket = ++c->asked;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    return ticket;
}

static int comm_wait(cvae__dp *p, unsigned long ticket)
{
    struct cvae__dp_comm *c = p->comm;
    pthread_mutex_lock(&c->mu);
    while (c->finished < ticket)
        pthread_cond_wait(&c->done, &c->mu);
    int failed = p->failed;
    pthread_mutex_unlock(&c->mu);
    return failed;
}

cvae_status cvae__dp_comm_start(cvae__dp *p)
{
    if (!p->overlap || !p->reduce || p->comm)
        return CVAE_OK;
    struct cvae__dp_comm *c = calloc(1, sizeof *c);
    if (!c)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate the reduction thread's state");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->done, NULL);
    p->comm = c;
    if (pthread_create(&c->thread, NULL, comm_main, p) != 0) {
        p->comm = NULL;
        pthread_cond_destroy(&c->done);
        pthread_cond_destroy(&c->work);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return cvae__fail(CVAE_E_INTERNAL, "cannot start the thread that overlaps the "
                                           "gradient's reduction with the backward pass");
    }
    return CVAE_OK;
}

void cvae__dp_comm_stop(cvae__dp *p)
{
    struct cvae__dp_comm *c = p->comm;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->done);
    pthread_cond_destroy(&c->work);
    pthread_mutex_destroy(&c->mu);
    free(c);
    p->comm = NULL;
}

int cvae__dp_reduce_terms(cvae__dp *p, double *v, size_t n)
{
    float buf[CVAE__DP_TERMS];
    if (n > CVAE__DP_TERMS)
        n = CVAE__DP_TERMS; /* callers pass at most k + 4 */
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)v[i];
    const int rc = cvae__dp_reduce(p, buf, n);
    for (size_t i = 0; i < n; i++)
        v[i] = buf[i];
    return rc;
}

int cvae__dp_reduce(cvae__dp *p, float *buf, size_t n)
{
    if (!p->reduce)
        return p->failed;
    /* With the helper thread running, failed is its to write (under its
     * lock), possibly right now for a bucket still on the way: only
     * comm_wait reads it. */
    if (p->comm)
        return comm_wait(p, comm_push(p->comm, buf, n));
    if (p->failed)
        return 1;
    if (p->reduce(buf, n, p->user))
        p->failed = 1;
    return p->failed;
}

int cvae__dp_buckets(const cvae_model *model) { return CVAE__BUCKET_BRANCH_LAST + model->nb; }

void cvae__dp_bucket_range(const cvae_model *model, int id, size_t *lo, size_t *hi)
{
    /* The parameter layout is branches, encoder (with mu and log-variance),
     * decoder, category head, class means; a bucket runs to where the next
     * part of the layout starts, padding included. */
    const size_t enc = model->nb ? model->enc_w : 0;
    if (id == CVAE__BUCKET_DECODER) {
        *lo = model->d1_w;
        *hi = model->c1_w;
    } else if (id == CVAE__BUCKET_CATEGORY) {
        *lo = model->c1_w;
        *hi = model->nparams;
    } else if (id == CVAE__BUCKET_ENCODER) {
        *lo = enc;
        *hi = model->d1_w;
    } else {
        const int b = model->nb - 1 - (id - CVAE__BUCKET_BRANCH_LAST);
        *lo = b ? model->br[b].w[0] : 0;
        *hi = b + 1 < model->nb ? model->br[b + 1].w[0] : enc;
    }
}

static void push_bucket(cvae_model *model, int id)
{
    size_t lo, hi;
    cvae__dp_bucket_range(model, id, &lo, &hi);
    if (hi > lo)
        (void)comm_push(model->par.comm, model->par.sum + lo, hi - lo);
}

/* Adding a part's bucket into the step's sum is one pass over up to a few
 * MB (the default model's encoder bucket is 2.5 million floats) that the
 * caller would otherwise make alone between two jobs of the pool: cut into
 * the threads' parts, at the learned share with two, on multiples of 16
 * floats. Element-wise, so the cut does not change a float. Buckets under
 * ADD_SPLIT_MIN floats a part are added by the caller. */
#define ADD_SPLIT_MIN ((size_t)1 << 16)

typedef struct add_job {
    float *dst;
    const float *src;
    size_t lo, n;
    double share;
} add_job;

static void add_run(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

static void add_part(void *ctx, int part, int parts)
{
    const add_job *j = ctx;
    const size_t a = cvae__parallel_part_start_on(j->n, part, parts, j->share, 16),
                 b = cvae__parallel_part_start_on(j->n, part + 1, parts, j->share, 16);
    add_run(j->dst + j->lo + a, j->src + j->lo + a, b - a);
}

static void add_range(float *dst, const float *src, size_t lo, size_t hi)
{
    const size_t n = hi - lo;
    int parts = cvae__parallel_threads();
    if ((size_t)parts > n / ADD_SPLIT_MIN)
        parts = (int)(n / ADD_SPLIT_MIN);
    if (parts < 2) {
        add_run(dst + lo, src + lo, n);
        return;
    }
    add_job j = {dst, src, lo, n, cvae__parallel_share(CVAE__SHARE_SUM)};
    cvae__parallel_cut(CVAE__SHARE_SUM, parts, j.share, add_part, &j);
}

void cvae__dp_bucket_done(cvae_model *model, int id)
{
    cvae__dp *p = &model->par;
    if (p->adding) {
        size_t lo, hi;
        cvae__dp_bucket_range(model, id, &lo, &hi);
        if (hi > lo)
            add_range(p->sum, p->scratch, lo, hi);
    }
    if (p->push && p->comm) {
        for (int b = p->next_bucket; b <= id; b++)
            push_bucket(model, b);
        p->next_bucket = id + 1;
    }
}

int cvae__dp_grads_done(cvae_model *model)
{
    cvae__dp *p = &model->par;
    if (!p->reduce)
        return 0;
    if (!p->comm)
        return cvae__dp_reduce(p, model->grads, model->nparams);
    /* buckets the backward pass did not reach (an empty slice, frozen
     * filters) go now, in the same order as on every other process */
    const int nbk = cvae__dp_buckets(model);
    for (int b = p->next_bucket; b < nbk; b++)
        push_bucket(model, b);
    p->next_bucket = nbk;
    pthread_mutex_lock(&p->comm->mu);
    unsigned long last = p->comm->asked;
    pthread_mutex_unlock(&p->comm->mu);
    return comm_wait(p, last);
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

cvae_status cvae_model_set_micro_batch(cvae_model *model, int rows)
{
    CVAE__CHECK_PTR(model);
    if (rows < 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "the micro-batch must be >= 0 images (0: the "
                                              "whole batch at once), got %d", rows);
    model->par.micro = rows;
    if (model->ws.base && model->ws_rows != cvae__model_workspace_rows(model))
        cvae__arena_free(&model->ws);
    return CVAE_OK;
}

cvae_status cvae_model_get_micro_batch(const cvae_model *model, int *rows)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(rows);
    *rows = model->par.micro;
    return CVAE_OK;
}

cvae_status cvae_model_set_reduce_overlap(cvae_model *model, int on)
{
    CVAE__CHECK_PTR(model);
    if (on != 0 && on != 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "reduce overlap is 0 or 1, got %d", on);
    model->par.overlap = on;
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
