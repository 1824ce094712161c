/* The library's threads (lib/core/threads.c): the thread-count API, the
 * pool (every part of a job runs exactly once, nested and concurrent jobs
 * run in the caller), and what they promise a user.
 *
 * Handles are independent: models trained at the same time in separate
 * threads, on one shared read-only data set, end bit-identical to the same
 * models trained one after the other (the saved checkpoints are compared
 * byte for byte), and inference on them agrees too. Each thread's
 * cvae_last_error() is its own. Determinism: the same seed and the same
 * thread count give bit-identical weights after an epoch (1 thread, and 2
 * threads against 2 threads); different seeds give different weights.
 *
 * BLIS never starts threads of its own: products are split by the library
 * and run on its pthread pool, so ThreadSanitizer (scripts/check-tsan.sh)
 * sees every synchronisation. The concurrent part runs with a thread count
 * of 1 because the count is process-wide: models trained at the same time
 * share it. Setting CVAE_TEST_SINGLE_GEMM_THREAD in the environment skips
 * the 2-thread determinism test, which is slow under a sanitizer. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testfile.h"

#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "convvae.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "model/model.h"

enum { NTHREADS = 3, NPRED = 16 };

static char dir[64];

typedef struct shape {
    int size, filters, units, latent, batch, images;
} shape;

/* Tiny for the concurrency test; larger for the 2-thread GEMM test so that
 * BLIS has products worth splitting. */
static const shape TINY = {8, 3, 12, 4, 6, 48};
static const shape WIDE = {16, 4, 48, 8, 24, 48};

static cvae_config *make_config(const shape *s, uint64_t seed, int threads)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, s->size, s->size), CVAE_OK);
    assert_int_equal(cvae_config_set_branches(c, 2), CVAE_OK);
    assert_int_equal(cvae_config_set_conv_branch(c, 1, 1, s->filters, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_conv_branch(c, 2, 1, s->filters, 5), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, s->units), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, s->units), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, s->units), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, s->latent), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, s->batch), CVAE_OK);
    assert_int_equal(cvae_config_set_warmup_epochs(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_kmeans_init(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_seed(c, seed), CVAE_OK);
    assert_int_equal(cvae_config_set_threads(c, threads), CVAE_OK);
    return c;
}

static float *random_images(const shape *s, int n, uint64_t seed)
{
    size_t cnt = (size_t)n * s->size * s->size;
    float *x = malloc(cnt * sizeof *x);
    assert_non_null(x);
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (size_t i = 0; i < cnt; i++)
        x[i] = cvae__rng_uniform(&r);
    return x;
}

static cvae_dataset *random_dataset(const shape *s, uint64_t seed)
{
    float *x = random_images(s, s->images, seed);
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, s->images, 1, s->size, s->size, NULL, &d),
                     CVAE_OK);
    free(x);
    return d;
}

/* Bit-identical weights, tensor by tensor (the buffer's padding is not
 * part of the model). */
static int same_weights(const cvae_model *a, const cvae_model *b)
{
    if (a->nparam != b->nparam)
        return 0;
    for (int t = 0; t < a->nparam; t++)
        if (a->ptab[t].count != b->ptab[t].count ||
            memcmp(a->params + a->ptab[t].offset, b->params + b->ptab[t].offset,
                   a->ptab[t].count * sizeof(float)) != 0)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Work done per thread                                                     */
/* ------------------------------------------------------------------------ */

typedef struct job {
    /* in */
    const shape *shp;
    uint64_t seed;
    int epochs;
    const cvae_config *cfg;
    const cvae_dataset *data;   /* shared, read-only */
    const float *probe;         /* shared, read-only: NPRED images */
    const char *idx_path;       /* shared IDX file to load */
    char save_path[256];
    /* out (no CMocka assertions off the main thread) */
    cvae_model *model;
    cvae_status st_create, st_train, st_predict, st_encode, st_save, st_load, st_bad;
    float proba[NPRED * 3];
    float mu[NPRED * 16];
    int64_t loaded_count;
    char bad_msg[256];
    char expect_bad[64];
} job;

/* Create, train, predict, encode, save; load the shared IDX file; and make
 * a failing call whose message only this thread may see. */
static void *run_job(void *arg)
{
    job *j = arg;
    j->st_create = cvae_model_create(j->cfg, &j->model);
    if (j->st_create)
        return NULL;
    j->st_train = cvae_model_train(j->model, j->data, j->epochs, NULL, NULL, NULL);
    j->st_predict = cvae_model_predict_proba(j->model, j->probe, NPRED, j->proba);
    j->st_encode = cvae_model_encode(j->model, j->probe, NPRED, j->mu, NULL);
    j->st_save = cvae_model_save(j->model, j->save_path);
    cvae_dataset *d = NULL;
    j->st_load = cvae_dataset_load_idx(j->idx_path, NULL, &d);
    j->loaded_count = -1;
    if (d)
        cvae_dataset_shape(d, &j->loaded_count, NULL, NULL, NULL);
    cvae_dataset_destroy(d);
    /* A failure naming this job's seed; another thread's failure must not
     * replace the message this thread reads back. */
    snprintf(j->expect_bad, sizeof j->expect_bad, "subset of %lld",
             (long long)(1000 + j->seed));
    for (int rep = 0; rep < 50; rep++) {
        cvae_dataset *sub;
        j->st_bad = cvae_dataset_subset_first(j->data, 1000 + (int64_t)j->seed, &sub);
        snprintf(j->bad_msg, sizeof j->bad_msg, "%s", cvae_last_error());
        if (strstr(j->bad_msg, j->expect_bad) == NULL)
            break;
        sched_yield();
    }
    return NULL;
}

static void check_job(const job *j)
{
    assert_int_equal(j->st_create, CVAE_OK);
    assert_int_equal(j->st_train, CVAE_OK);
    assert_int_equal(j->st_predict, CVAE_OK);
    assert_int_equal(j->st_encode, CVAE_OK);
    assert_int_equal(j->st_save, CVAE_OK);
    assert_int_equal(j->st_load, CVAE_OK);
    assert_int_equal(j->loaded_count, 5);
    assert_int_equal(j->st_bad, CVAE_E_INVALID_ARG);
    if (strstr(j->bad_msg, j->expect_bad) == NULL)
        fail_msg("thread with seed %llu read another thread's error: '%s'",
                 (unsigned long long)j->seed, j->bad_msg);
}

/* ------------------------------------------------------------------------ */
/* Concurrent == sequential                                                 */
/* ------------------------------------------------------------------------ */

static void write_idx(const char *path)
{
    uint8_t b[16 + 5 * 64] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0, 8};
    for (size_t i = 16; i < sizeof b; i++)
        b[i] = (uint8_t)(i * 37);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, sizeof b, f), sizeof b);
    assert_int_equal(fclose(f), 0);
}

static void test_concurrent_equals_sequential(void **state)
{
    (void)state;
    /* seeds 1 and 1: the two identical models the brief asks for; seed 2
     * makes interference visible as a mix of two different streams. */
    const uint64_t seeds[NTHREADS] = {1, 1, 2};
    cvae_dataset *data = random_dataset(&TINY, 42);
    float *probe = random_images(&TINY, NPRED, 43);
    char idx[128];
    snprintf(idx, sizeof idx, "%s/shared.idx", dir);
    write_idx(idx);
    cvae_config *cfg[NTHREADS];
    job seq[NTHREADS], par[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        cfg[t] = make_config(&TINY, seeds[t], 1);
        job j = {.shp = &TINY, .seed = seeds[t], .epochs = 2, .cfg = cfg[t], .data = data,
                 .probe = probe, .idx_path = idx};
        seq[t] = j;
        par[t] = j;
        snprintf(seq[t].save_path, sizeof seq[t].save_path, "%s/seq%d.st", dir, t);
        snprintf(par[t].save_path, sizeof par[t].save_path, "%s/par%d.st", dir, t);
    }

    for (int t = 0; t < NTHREADS; t++)
        run_job(&seq[t]);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, run_job, &par[t]), 0);
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    int64_t np = 0;
    for (int t = 0; t < NTHREADS; t++) {
        check_job(&seq[t]);
        check_job(&par[t]);
        assert_true(same_weights(seq[t].model, par[t].model));
        assert_memory_equal(seq[t].proba, par[t].proba, sizeof seq[t].proba);
        assert_memory_equal(seq[t].mu, par[t].mu, sizeof seq[t].mu);
        size_t la, lb;
        unsigned char *a = read_file(seq[t].save_path, &la);
        unsigned char *b = read_file(par[t].save_path, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
        assert_int_equal(cvae_model_num_params(par[t].model, &np), CVAE_OK);
    }
    /* the same seed trained twice at once: identical; another seed: not */
    assert_true(same_weights(par[0].model, par[1].model));
    assert_false(same_weights(par[0].model, par[2].model));
    print_message("%d models (%lld parameters each) trained 2 epochs concurrently on one "
                  "shared data set: checkpoints byte-identical to sequential training\n",
                  NTHREADS, (long long)np);

    for (int t = 0; t < NTHREADS; t++) {
        unlink(seq[t].save_path);
        unlink(par[t].save_path);
        cvae_model_destroy(seq[t].model);
        cvae_model_destroy(par[t].model);
        cvae_config_destroy(cfg[t]);
    }
    unlink(idx);
    free(probe);
    cvae_dataset_destroy(data);
}

/* ------------------------------------------------------------------------ */
/* The pool and the thread count                                            */
/* ------------------------------------------------------------------------ */

static void test_thread_count_api(void **state)
{
    (void)state;
    assert_int_equal(cvae_get_num_threads(), 1); /* the default */
    (void)cvae__fail(CVAE_OK, "%s", "");
    assert_int_equal(cvae_set_num_threads(0), CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    assert_int_equal(cvae_set_num_threads(-4), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_get_num_threads(), 1); /* unchanged by failures */
    assert_int_equal(cvae_set_num_threads(3), CVAE_OK);
    assert_int_equal(cvae_get_num_threads(), 3);
    assert_int_equal(cvae__threads_get(), 3);
    assert_int_equal(cvae__parallel_threads(), 3);
    cvae__threads_set(0); /* the internal setter clamps */
    assert_int_equal(cvae_get_num_threads(), 1);
}

typedef struct count_job {
    _Atomic int runs[64];
    _Atomic int nested_outside; /* parallel_threads() inside a part != 1 */
    _Atomic int parts_seen;
} count_job;

static void count_part(void *ctx, int part, int parts)
{
    count_job *j = ctx;
    j->runs[part]++;
    j->parts_seen = parts;
    if (cvae__parallel_threads() != 1)
        j->nested_outside++;
}

/* Part 0 busy for 100 us, part 1 for 300 us (the clock, not sleep: a
 * sleeping part would not tell the two threads' speeds). */
static void slow_one_part(void *ctx, int part, int parts)
{
    (void)ctx;
    (void)parts;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const long long want = part ? 300000 : 100000;
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < want);
}

/* A part that starts a nested job: it must run in order on this thread. */
static void nesting_part(void *ctx, int part, int parts)
{
    count_job *inner = (count_job *)ctx + 1 + part;
    (void)parts;
    cvae__parallel(5, count_part, inner);
}

static void test_parallel_runs_every_part_once(void **state)
{
    (void)state;
    const int threads[] = {1, 2, 4};
    const int parts[] = {1, 2, 3, 7, 64};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        assert_int_equal(cvae_set_num_threads(threads[t]), CVAE_OK);
        for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
            count_job *j = calloc(1, sizeof *j);
            assert_non_null(j);
            cvae__parallel(parts[p], count_part, j);
            for (int i = 0; i < 64; i++)
                assert_int_equal(j->runs[i], i < parts[p] ? 1 : 0);
            assert_int_equal(j->parts_seen, parts[p]);
            assert_int_equal(j->nested_outside, 0);
            free(j);
        }
        /* Zero or negative parts: nothing runs. */
        count_job none = {0};
        cvae__parallel(0, count_part, &none);
        cvae__parallel(-3, count_part, &none);
        assert_int_equal(none.runs[0], 0);
        /* Nested: 4 outer parts each run a 5-part job to completion. */
        count_job *jobs = calloc(5, sizeof *jobs);
        assert_non_null(jobs);
        cvae__parallel(4, nesting_part, jobs);
        for (int o = 1; o <= 4; o++)
            for (int i = 0; i < 64; i++)
                assert_int_equal(jobs[o].runs[i], i < 5 ? 1 : 0);
        free(jobs);
    }
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
}

/* The share of a two-part job's work: 1/2 unless there are exactly 2
 * threads, a fixed value when a test sets one, and the learning step
 * against values worked out by hand. */
static void test_share(void **state)
{
    (void)state;
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    cvae__parallel_fix_share(0.3);
    assert_true(cvae__parallel_share(CVAE__SHARE_PRODUCT) == 0.5);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    for (int site = 0; site < CVAE__SHARE_SITES; site++)
        assert_true(fabs(cvae__parallel_share((cvae__share_site)site) - 0.3) < 1.0 / 1024);
    cvae__parallel_fix_share(0.0);
    for (int site = 0; site < CVAE__SHARE_SITES; site++)
        assert_true(cvae__parallel_share((cvae__share_site)site) == 0.5);
    /* a shared job runs both parts once, learned share or not */
    count_job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    for (int i = 0; i < 50; i++)
        cvae__parallel_shared(CVAE__SHARE_SIGMOID, cvae__parallel_share(CVAE__SHARE_SIGMOID),
                              count_part, j);
    assert_int_equal(j->runs[0], 50);
    assert_int_equal(j->runs[1], 50);
    assert_int_equal(j->runs[2], 0);
    assert_int_equal(j->nested_outside, 0);
    free(j);
    const double got = cvae__parallel_share(CVAE__SHARE_SIGMOID);
    assert_true(got >= 0.25 && got <= 0.75);
    /* Each site learns alone: jobs whose part 1 takes three times part 0's
     * time move their own site's share up (whenever the two parts ran side
     * by side, which a loaded machine may not give) and no other's. */
    for (int i = 0; i < 30; i++)
        cvae__parallel_shared(CVAE__SHARE_POOL, cvae__parallel_share(CVAE__SHARE_POOL),
                              slow_one_part, NULL);
    const double moved = cvae__parallel_share(CVAE__SHARE_POOL);
    assert_true(moved >= 0.5 && moved <= 0.75);
    assert_true(cvae__parallel_share(CVAE__SHARE_PRODUCT) == 0.5);
    assert_true(cvae__parallel_share(CVAE__SHARE_UPDATE) == 0.5);
    assert_true(cvae__parallel_share(CVAE__SHARE_SIGMOID) == got);
    cvae__parallel_fix_share(0.0);
    assert_int_equal(cvae_set_num_threads(4), CVAE_OK);
    assert_true(cvae__parallel_share(CVAE__SHARE_PRODUCT) == 0.5);
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);

    /* halves that took as long: no change */
    assert_int_equal(cvae__share_next(512, 0.5, 100000, 100000), 512);
    /* part 0's thread twice as slow: both would end together at a third,
     * and the share moves a fifth of the way there (512 - 170.67 / 5) */
    assert_int_equal(cvae__share_next(512, 0.5, 200000, 100000), 478);
    /* the same speeds seen from a cut at a quarter: the same target */
    assert_int_equal(cvae__share_next(256, 0.25, 100000, 150000), 273);
    /* part 1's thread slower: the share grows */
    assert_true(cvae__share_next(512, 0.5, 100000, 300000) > 512);
    /* held in [1/4, 3/4] however uneven the parts */
    int q = 512;
    for (int i = 0; i < 100; i++)
        q = cvae__share_next(q, q / 1024.0, 1000000000, 30000);
    assert_int_equal(q, 256);
    for (int i = 0; i < 100; i++)
        q = cvae__share_next(q, q / 1024.0, 30000, 1000000000);
    assert_int_equal(q, 768);
    /* parts under 20 us, or no valid cut: nothing learned */
    assert_int_equal(cvae__share_next(600, 0.5, 19999, 500000), 600);
    assert_int_equal(cvae__share_next(600, 0.5, 500000, 19999), 600);
    assert_int_equal(cvae__share_next(600, 0.0, 500000, 500000), 600);
    assert_int_equal(cvae__share_next(600, 1.0, 500000, 500000), 600);
}

/* Where parts start: an even cut (the remainder spread over the later
 * parts), or with two parts at the share, held inside the range; and the
 * same on multiples of a unit, the last part's end staying at the total. */
static void test_part_start(void **state)
{
    (void)state;
    assert_int_equal(cvae__parallel_part_start(10, 0, 3, 0.5), 0);
    assert_int_equal(cvae__parallel_part_start(10, 1, 3, 0.5), 3);
    assert_int_equal(cvae__parallel_part_start(10, 2, 3, 0.5), 6);
    assert_int_equal(cvae__parallel_part_start(10, 3, 3, 0.5), 10);
    assert_int_equal(cvae__parallel_part_start(1000, 1, 2, 0.3), 300);
    assert_int_equal(cvae__parallel_part_start(1000, 2, 2, 0.3), 1000);
    assert_int_equal(cvae__parallel_part_start(2, 1, 2, 0.01), 1);
    assert_int_equal(cvae__parallel_part_start(2, 1, 2, 0.99), 1);
    assert_int_equal(cvae__parallel_part_start_on(1000, 0, 2, 0.3, 16), 0);
    assert_int_equal(cvae__parallel_part_start_on(1000, 1, 2, 0.3, 16), 288);
    assert_int_equal(cvae__parallel_part_start_on(1000, 2, 2, 0.3, 16), 1000);
    assert_int_equal(cvae__parallel_part_start_on(1001, 2, 3, 0.5, 16), 656);
    assert_int_equal(cvae__parallel_part_start_on(1001, 3, 3, 0.5, 16), 1001);
    assert_int_equal(cvae__parallel_part_start_on(40, 1, 2, 0.5, 1), 20);
}

/* Many short jobs posted back to back (a worker may still be finishing or
 * spinning after the previous one when the next is posted), and jobs after
 * pauses longer than the pool's spin, in which the workers have gone back
 * to sleep: every part of every job runs exactly once, whoever takes it. */
typedef struct seq_job {
    int round;
    int runs[3];
    int stale; /* a part that saw another round's context */
} seq_job;

static void seq_part(void *ctx, int part, int parts)
{
    seq_job *j = ctx;
    (void)parts;
    j->runs[part]++;
    if (j->runs[part] != j->round)
        j->stale++;
}

static void test_back_to_back_and_paused_jobs(void **state)
{
    (void)state;
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    seq_job j = {0};
    int missed = 0;
    for (int r = 1; r <= 20000; r++) {
        /* before round r every count is r - 1; its parts 0..r%3 each take
         * it to r, the others are not run */
        j.round = r;
        cvae__parallel(r % 3 + 1, seq_part, &j);
        for (int p = 0; p < 3; p++) {
            missed += j.runs[p] != (p <= r % 3 ? r : r - 1);
            j.runs[p] = r;
        }
        if (r % 5000 == 0) {
            struct timespec pause = {0, 2000000}; /* 2 ms */
            nanosleep(&pause, NULL);
        }
    }
    assert_int_equal(j.stale, 0);
    assert_int_equal(missed, 0);
    /* the same with a count per part that is not rebased */
    count_job *c = calloc(1, sizeof *c);
    assert_non_null(c);
    for (int r = 0; r < 3000; r++) {
        cvae__parallel(2, count_part, c);
        if (r % 1000 == 999) {
            struct timespec pause = {0, 2000000};
            nanosleep(&pause, NULL);
        }
    }
    assert_int_equal(c->runs[0], 3000);
    assert_int_equal(c->runs[1], 3000);
    assert_int_equal(c->runs[2], 0);
    assert_int_equal(c->nested_outside, 0);
    free(c);
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
}

/* ------------------------------------------------------------------------ */
/* Determinism                                                              */
/* ------------------------------------------------------------------------ */

static cvae_model *train_one(const shape *s, const cvae_dataset *d, uint64_t seed, int threads,
                             int epochs)
{
    cvae_config *c = make_config(s, seed, threads);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_config_destroy(c);
    /* With 2 epochs: the warm-up epoch, k-means init of the means, one
     * mixture epoch, so every code path that draws random numbers runs. */
    assert_int_equal(cvae_model_train(m, d, epochs, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_get_num_threads(), threads); /* applied by train */
    return m;
}

static void test_same_seed_one_thread(void **state)
{
    (void)state;
    cvae_dataset *d = random_dataset(&TINY, 7);
    cvae_model *a = train_one(&TINY, d, 11, 1, 2), *b = train_one(&TINY, d, 11, 1, 2);
    cvae_model *c = train_one(&TINY, d, 12, 1, 2);
    assert_true(same_weights(a, b));
    assert_false(same_weights(a, c));
    cvae_model_destroy(a);
    cvae_model_destroy(b);
    cvae_model_destroy(c);
    cvae_dataset_destroy(d);
}

/* Threads of this process (the library's pool shows up here once a job
 * actually ran on 2 threads). */
static int process_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void test_same_seed_two_gemm_threads(void **state)
{
    (void)state;
    if (getenv("CVAE_TEST_SINGLE_GEMM_THREAD")) {
        print_message("skipped: CVAE_TEST_SINGLE_GEMM_THREAD is set\n");
        skip();
        return;
    }
    cvae_dataset *d = random_dataset(&WIDE, 8);
    /* One epoch of 2 batches each: waking a worker per product is slow
     * where cores are shared with other work, so this keeps the products
     * few and large. */
    cvae_model *a = train_one(&WIDE, d, 21, 2, 1), *b = train_one(&WIDE, d, 21, 2, 1);
    cvae_model *one = train_one(&WIDE, d, 21, 1, 1);
    int nth = process_threads();
    if (nth >= 0)
        assert_true(nth >= 2); /* the GEMMs really ran on a second thread */
    assert_true(same_weights(a, b));
    /* Not a promise either way: GEMM splits are by rows or columns of C, so
     * each of its sums keeps its order, but other parallel sums need not.
     * Recorded here. */
    print_message("2 GEMM threads (%d threads in the process): two runs bit-identical; 1 vs 2 "
                  "GEMM threads: %s\n",
                  nth, same_weights(a, one) ? "bit-identical on this machine and BLIS build"
                                       : "different");
    cvae_model_destroy(a);
    cvae_model_destroy(b);
    cvae_model_destroy(one);
    cvae_dataset_destroy(d);
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cvae_threads_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

/* everything under dir, also what a failed test left behind */
static int teardown(void **state)
{
    (void)state;
    return remove_tree(dir);
}

/* Optional arguments: a CMocka test filter and a skip filter (globs), e.g.
 * test_threads "*" "*two_gemm*". */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    if (argc > 2)
        cmocka_set_skip_filter(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_count_api),
        cmocka_unit_test(test_parallel_runs_every_part_once),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_part_start),
        cmocka_unit_test(test_back_to_back_and_paused_jobs),
        cmocka_unit_test(test_concurrent_equals_sequential),
        cmocka_unit_test(test_same_seed_one_thread),
        cmocka_unit_test(test_same_seed_two_gemm_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
