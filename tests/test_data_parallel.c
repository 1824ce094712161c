/* Data-parallel training (training/data_parallel.h) without MPI: the
 * "processes" are threads of this test, each with its own model, and the
 * reduce hook sums their buffers in rank order behind a barrier, as
 * MPI_Allreduce would. Checked against one model trained alone on the same
 * data and global batch: same parameters within a tolerance (the only
 * difference is the order of float sums), same loss within 0.1%; every
 * rank holds bit-identical parameters; uneven batches (a rank with an empty
 * slice), resuming on another process count, a stop asked on one rank and
 * a failing hook; batches computed in parts (gradient accumulation) and the
 * gradient reduced bucket by bucket while the backward pass runs. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threads.h"
#include "small_model.h"
#include "training/data_parallel.h"

#define MAXR 4
#define COUNT 43 /* with a batch of 7 the last global batch holds 1 image */
#define BATCH 7

typedef struct group {
    int size;
    pthread_barrier_t bar;
    float *slot[MAXR];
    size_t n[MAXR];
} group;

typedef struct member {
    group *g;
    int rank;
    cvae_model *model;
    const cvae_dataset *data;
    int epochs;
    int64_t stop_at;  /* this rank's callback asks to stop at this batch of epoch 1 (0: never) */
    int64_t fail_call; /* this rank's hook fails at this call (0: never) */
    int64_t calls;
    size_t biggest; /* the largest buffer the hook was given */
    cvae_status st;
    double loss[CVAE_LOSS_COUNT]; /* cvae_model_loss computed by the group after training */
    double last[CVAE_LOSS_COUNT]; /* the running training losses the callback saw last */
} member;

static int sim_reduce(float *buf, size_t n, void *user)
{
    member *m = user;
    group *g = m->g;
    m->calls++;
    if (n > m->biggest)
        m->biggest = n;
    const int fail = m->fail_call && m->calls >= m->fail_call;
    g->slot[m->rank] = buf;
    g->n[m->rank] = fail ? 0 : n;
    pthread_barrier_wait(&g->bar);
    int ok = 1;
    for (int r = 0; r < g->size; r++)
        ok &= g->n[r] == n;
    float *sum = malloc(n * sizeof *sum);
    assert_non_null(sum);
    if (ok)
        for (size_t i = 0; i < n; i++) {
            float s = 0;
            for (int r = 0; r < g->size; r++)
                s += g->slot[r][i];
            sum[i] = s;
        }
    pthread_barrier_wait(&g->bar); /* everyone has read every slot */
    if (ok)
        memcpy(buf, sum, n * sizeof *sum);
    free(sum);
    return !ok; /* a failure anywhere fails the call everywhere, as MPI does */
}

static int stop_cb(void *user, int epoch, int64_t batch, int64_t batches, const double *l, int nl)
{
    (void)batches;
    member *m = user;
    for (int t = 0; t < nl && t < CVAE_LOSS_COUNT; t++)
        m->last[t] = l[t];
    return m->stop_at && epoch == 1 && batch == m->stop_at;
}

static void *run_member(void *arg)
{
    member *m = arg;
    m->st = cvae_model_set_data_parallel(m->model, m->rank, m->g->size, sim_reduce, m);
    if (!m->st)
        m->st = cvae_model_train(m->model, m->data, m->epochs, NULL, stop_cb, m);
    if (m->st == CVAE_OK && cvae_model_loss(m->model, m->data, m->loss, CVAE_LOSS_COUNT))
        m->st = CVAE_E_INTERNAL;
    return NULL;
}

static cvae_dataset *make_data(void)
{
    uint8_t px[COUNT * 64];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof px; i++) {
        x = x * 1664525u + 1013904223u;
        px[i] = (uint8_t)(x >> 24);
    }
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_u8(px, COUNT, 1, 8, 8, NULL, &d), CVAE_OK);
    return d;
}

/* When set, config() asks for the manifold recipe with every extra term:
 * one epoch of pretraining, then fine-tuning on pseudo-labels, both with
 * the consistency term in its plain form (MANIFOLD_PLAIN) or its
 * contrastive one (MANIFOLD_CONTRAST, which couples the images of a batch,
 * so it is computed on the whole global batch). */
enum { MANIFOLD_OFF, MANIFOLD_PLAIN, MANIFOLD_CONTRAST };
static int manifold_terms;

static cvae_config *config(void)
{
    cvae_config *c = small_config(2, 1);
    if (manifold_terms) {
        assert_int_equal(cvae_config_set_pretrain_epochs(c, 1), CVAE_OK);
        assert_int_equal(cvae_config_set_consistency_weight(c, 0.5), CVAE_OK);
        assert_int_equal(
            cvae_config_set_contrast_temperature(c, manifold_terms == MANIFOLD_CONTRAST ? 4.0 : 0.0),
            CVAE_OK);
        assert_int_equal(cvae_config_set_consistency_finetune(c, 1), CVAE_OK);
        assert_int_equal(cvae_config_set_manifold_neighbors(c, 8), CVAE_OK);
    }
    assert_int_equal(cvae_config_set_batch_size(c, BATCH), CVAE_OK);
    assert_int_equal(cvae_config_set_warmup_epochs(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_kmeans_init(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_seed(c, 11), CVAE_OK);
    return c;
}

/* Gradient accumulation and overlapped reduction for the group's models
 * (train_group) and for a model trained alone (train_alone_micro). */
static int group_micro, group_overlap;
/* The largest buffer rank 0's hook was given in the last train_group. */
static size_t group_biggest;

/* The last running losses each rank's callback saw in train_group. */
static double group_last[MAXR][CVAE_LOSS_COUNT];

/* When not 0, rank 1's model is created with this seed instead (a process
 * that does not hold the same model as the others). */
static uint64_t rank1_seed;

/* Train `size` models as one data-parallel group (each from the checkpoint
 * `from`, or fresh); returns rank 0's model, the others destroyed after
 * checking they equal it bit for bit. */
static cvae_model *train_group(int size, const char *from, const cvae_dataset *data, int epochs,
                               const int64_t *stop_at, int64_t fail_call, cvae_status expect)
{
    group g = {.size = size};
    member m[MAXR];
    pthread_t t[MAXR];
    assert_int_equal(pthread_barrier_init(&g.bar, NULL, (unsigned)size), 0);
    cvae_config *c = config();
    for (int r = 0; r < size; r++) {
        m[r] = (member){.g = &g, .rank = r, .data = data, .epochs = epochs,
                        .stop_at = stop_at ? stop_at[r] : 0, .fail_call = r ? 0 : fail_call};
        if (from)
            assert_int_equal(cvae_model_load(from, &m[r].model), CVAE_OK);
        else
            assert_int_equal(cvae_model_create(c, &m[r].model), CVAE_OK);
        if (r == 1 && rank1_seed) {
            cvae_config *other;
            assert_int_equal(cvae_config_clone(c, &other), CVAE_OK);
            assert_int_equal(cvae_config_set_seed(other, rank1_seed), CVAE_OK);
            cvae_model_destroy(m[r].model);
            assert_int_equal(cvae_model_create(other, &m[r].model), CVAE_OK);
            cvae_config_destroy(other);
        }
    }
    for (int r = 0; r < size; r++) {
        assert_int_equal(cvae_model_set_micro_batch(m[r].model, group_micro), CVAE_OK);
        assert_int_equal(cvae_model_set_reduce_overlap(m[r].model, group_overlap), CVAE_OK);
    }
    for (int r = 0; r < size; r++)
        assert_int_equal(pthread_create(&t[r], NULL, run_member, &m[r]), 0);
    for (int r = 0; r < size; r++)
        pthread_join(t[r], NULL);
    pthread_barrier_destroy(&g.bar);
    for (int r = 0; r < size; r++)
        assert_int_equal(m[r].st, expect);
    int64_t calls = m[0].calls;
    group_biggest = m[0].biggest;
    for (int r = 0; r < size; r++)
        memcpy(group_last[r], m[r].last, sizeof m[r].last);
    for (int r = 1; r < size; r++) {
        assert_int_equal(m[r].calls, calls);
        if (!rank1_seed)
            assert_memory_equal(m[r].model->params, m[0].model->params,
                                m[0].model->nparams * sizeof(float));
        cvae_model_destroy(m[r].model);
    }
    assert_int_equal(cvae_model_set_data_parallel(m[0].model, 0, 1, NULL, NULL), CVAE_OK);
    if (expect == CVAE_OK) {
        /* the loss the group computed is the one the model has alone */
        double l[CVAE_LOSS_COUNT];
        assert_int_equal(cvae_model_loss(m[0].model, data, l, CVAE_LOSS_COUNT), CVAE_OK);
        for (int t = 0; t < CVAE_LOSS_COUNT; t++)
            assert_true(fabs(m[0].loss[t] - l[t]) <= 1e-5 * (1.0 + fabs(l[t])));
    }
    cvae_config_destroy(c);
    return m[0].model;
}

static cvae_model *train_alone_micro(const cvae_dataset *data, int epochs, int micro)
{
    cvae_config *c = config();
    cvae_model *model;
    assert_int_equal(cvae_model_create(c, &model), CVAE_OK);
    assert_int_equal(cvae_model_set_micro_batch(model, micro), CVAE_OK);
    assert_int_equal(cvae_model_train(model, data, epochs, NULL, NULL, NULL), CVAE_OK);
    cvae_config_destroy(c);
    return model;
}

static cvae_model *train_alone(const cvae_dataset *data, int epochs)
{
    return train_alone_micro(data, epochs, 0);
}

/* Largest |a - b| / (1e-3 + |b|) over the parameters. */
static double max_rel_diff(const cvae_model *a, const cvae_model *b)
{
    double worst = 0;
    for (size_t i = 0; i < a->nparams; i++) {
        double d = fabs((double)a->params[i] - b->params[i]) / (1e-3 + fabs((double)b->params[i]));
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* Float sums in another order differ in the last bits; over a few
 * epochs of Adam that stays far below this (seen: under 1e-6). A
 * different batch composition or noise would move parameters by O(1). */
#define PARAM_TOL 1e-3

static void compare(cvae_model *par, cvae_model *alone, const cvae_dataset *data, const char *what)
{
    int ea, eb;
    assert_int_equal(cvae_model_epochs_done(par, &ea), CVAE_OK);
    assert_int_equal(cvae_model_epochs_done(alone, &eb), CVAE_OK);
    assert_int_equal(ea, eb);
    double la[CVAE_LOSS_COUNT], lb[CVAE_LOSS_COUNT];
    assert_int_equal(cvae_model_loss(par, data, la, CVAE_LOSS_COUNT), CVAE_OK);
    assert_int_equal(cvae_model_loss(alone, data, lb, CVAE_LOSS_COUNT), CVAE_OK);
    double rel = max_rel_diff(par, alone);
    double dl = fabs(la[0] - lb[0]) / fabs(lb[0]);
    print_message("%s: max relative parameter difference %.3g, loss %.6f vs %.6f (%.3g)\n", what,
                  rel, la[0], lb[0], dl);
    assert_true(rel < PARAM_TOL);
    assert_true(dl < 1e-3);
}

static void test_shard(void **state)
{
    (void)state;
    for (int size = 1; size <= 7; size++)
        for (int64_t count = 0; count <= 20; count++) {
            int64_t next = 0, big = -1, small = INT64_MAX;
            for (int r = 0; r < size; r++) {
                int64_t b, n;
                assert_int_equal(cvae_shard(count, r, size, &b, &n), CVAE_OK);
                assert_int_equal(b, next); /* contiguous, in rank order */
                next = b + n;
                big = n > big ? n : big;
                small = n < small ? n : small;
            }
            assert_int_equal(next, count);
            assert_true(big - small <= 1);
        }
}

static void test_item_streams(void **state)
{
    (void)state;
    cvae__rng a, b;
    cvae__item_rng(&a, 1, CVAE__STREAM_EPS, 3, 17);
    cvae__item_rng(&b, 1, CVAE__STREAM_EPS, 3, 17);
    assert_memory_equal(a.s, b.s, sizeof a.s);
    const uint64_t keys[4][4] = {{2, 1, 3, 17}, {1, 2, 3, 17}, {1, 1, 4, 17}, {1, 1, 3, 18}};
    for (int i = 0; i < 4; i++) {
        cvae__item_rng(&b, keys[i][0], keys[i][1], keys[i][2], keys[i][3]);
        assert_memory_not_equal(a.s, b.s, sizeof a.s);
    }
}

static void test_same_model_as_one_process(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    cvae_model *alone = train_alone(data, 3);
    for (int size = 2; size <= 3; size++) {
        cvae_model *par = train_group(size, NULL, data, 3, NULL, 0, CVAE_OK);
        char what[64];
        snprintf(what, sizeof what, "%d ranks, 3 epochs, batch 7 of 43 images", size);
        compare(par, alone, data, what);
        cvae_model_destroy(par);
    }
    cvae_model_destroy(alone);
    cvae_dataset_destroy(data);
}

/* A process holds activations for its slice of a batch, not for the whole
 * batch: the workspace shrinks with the process count and is sized for the
 * whole batch again when the model goes back to training alone. */
static int sum_hook_never(float *buf, size_t n, void *user)
{
    (void)buf;
    (void)n;
    (void)user;
    return 1; /* no call in this test reduces */
}

static void test_workspace_holds_a_slice(void **state)
{
    (void)state;
    cvae_config *c = config();
    assert_int_equal(cvae_config_set_batch_size(c, 30), CVAE_OK);
    cvae_model *model;
    assert_int_equal(cvae_model_create(c, &model), CVAE_OK);
    cvae_config_destroy(c);
    size_t alone = cvae__model_workspace_bytes(model);
    assert_int_equal(cvae__model_workspace_rows(model), 30);
    assert_int_equal(cvae_model_set_data_parallel(model, 1, 4, sum_hook_never, NULL), CVAE_OK);
    assert_int_equal(cvae__model_workspace_rows(model), 8); /* ceil(30 / 4) */
    size_t slice = cvae__model_workspace_bytes(model);
    print_message("workspace for a batch of 30: %zu bytes alone, %zu on 4 processes\n", alone,
                  slice);
    /* what a model of batch 8 alone holds */
    c = config();
    assert_int_equal(cvae_config_set_batch_size(c, 8), CVAE_OK);
    cvae_model *small;
    assert_int_equal(cvae_model_create(c, &small), CVAE_OK);
    cvae_config_destroy(c);
    assert_true(slice < alone);
    assert_int_equal(slice, cvae__model_workspace_bytes(small));
    cvae_model_destroy(small);
    /* inference on more images than the slice still sees every image */
    cvae_dataset *data = make_data();
    int64_t n;
    assert_int_equal(cvae_dataset_shape(data, &n, NULL, NULL, NULL), CVAE_OK);
    int32_t *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    float *pa = malloc((size_t)n * model->k * sizeof *pa);
    float *pb = malloc((size_t)n * model->k * sizeof *pb);
    assert_int_equal(cvae_model_predict_dataset(model, data, a, pa), CVAE_OK);
    assert_int_equal(model->ws_rows, 8);
    assert_int_equal(cvae_model_set_data_parallel(model, 0, 1, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_predict_dataset(model, data, b, pb), CVAE_OK);
    assert_int_equal(model->ws_rows, 30);
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
    for (int64_t i = 0; i < n * model->k; i++)
        assert_true(fabsf(pa[i] - pb[i]) <= 1e-6f);
    free(a);
    free(b);
    free(pa);
    free(pb);
    cvae_dataset_destroy(data);
    cvae_model_destroy(model);
}

static double alone_last[CVAE_LOSS_COUNT];

static int record_cb(void *user, int epoch, int64_t batch, int64_t batches, const double *l, int nl)
{
    (void)user;
    (void)epoch;
    (void)batch;
    (void)batches;
    for (int t = 0; t < nl && t < CVAE_LOSS_COUNT; t++)
        alone_last[t] = l[t];
    return 0;
}

/* The manifold recipe's own terms (consistency, then pseudo-labels after
 * the manifold step that every process runs alike) are summed over the
 * processes like the others: every rank reports the loss one process
 * reports. The group starts from one process's pretrained checkpoint, so
 * that its manifold step sees the same codes: the embedding's stochastic
 * descent would turn even last-bit differences of the codes into a
 * different (equally good) partition. */
static void manifold_terms_summed(int form)
{
    manifold_terms = form;
    cvae_dataset *data = make_data();
    cvae_config *c = config();
    cvae_model *alone;
    assert_int_equal(cvae_model_create(c, &alone), CVAE_OK);
    cvae_config_destroy(c);
    assert_int_equal(cvae_model_train(alone, data, 1, NULL, record_cb, NULL), CVAE_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/cvae_dp_manifold_%ld.safetensors",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    assert_int_equal(cvae_model_save(alone, path), CVAE_OK);
    assert_int_equal(cvae_model_train(alone, data, 1, NULL, record_cb, NULL), CVAE_OK);
    assert_non_null(alone->pl);
    cvae_model *par = train_group(3, path, data, 1, NULL, 0, CVAE_OK);
    remove(path);
    manifold_terms = MANIFOLD_OFF;
    assert_non_null(par->pl);
    assert_memory_equal(par->pl, alone->pl, (size_t)alone->pl_n * sizeof *alone->pl);
    for (int r = 0; r < 3; r++) {
        print_message("rank %d reports loss %.6f, one process %.6f\n", r,
                      group_last[r][CVAE_LOSS_TOTAL], alone_last[CVAE_LOSS_TOTAL]);
        for (int t = 0; t < CVAE_LOSS_COUNT; t++)
            assert_true(fabs(group_last[r][t] - alone_last[t]) <= 1e-5 * (1.0 + fabs(alone_last[t])));
    }
    compare(par, alone, data, "manifold recipe from a pretrained checkpoint, 3 ranks");
    cvae_model_destroy(par);
    cvae_model_destroy(alone);
    cvae_dataset_destroy(data);
}

static void test_manifold_terms_summed(void **state)
{
    (void)state;
    manifold_terms_summed(MANIFOLD_PLAIN);
    manifold_terms_summed(MANIFOLD_CONTRAST);
}

static void test_resume_on_other_count(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    char path[512];
    snprintf(path, sizeof path, "%s/cvae_dp_resume_%ld.safetensors",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    /* 2 ranks for an epoch and 3 batches (stopped by rank 1 alone), saved,
     * then 3 ranks for the rest: as one process for 3 epochs. */
    const int64_t stop[MAXR] = {0, 3, 0, 0};
    cvae_model *first = train_group(2, NULL, data, 2, stop, 0, CVAE_E_CANCELLED);
    int e;
    assert_int_equal(cvae_model_epochs_done(first, &e), CVAE_OK);
    assert_int_equal(e, 1);
    assert_int_equal(cvae_model_save(first, path), CVAE_OK);
    cvae_model_destroy(first);
    cvae_model *par = train_group(3, path, data, 2, NULL, 0, CVAE_OK);
    cvae_model *alone = train_alone(data, 3);
    compare(par, alone, data, "2 ranks stopped at epoch 2 batch 3, resumed on 3");
    cvae_model_destroy(par);
    cvae_model_destroy(alone);
    remove(path);
    cvae_dataset_destroy(data);
}

static void test_failing_hook(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    cvae_config *c = config();
    cvae_model *fresh;
    assert_int_equal(cvae_model_create(c, &fresh), CVAE_OK);
    /* call 1 compares the processes, call 2 is the first step's batch
     * terms: the weights stay as they were */
    cvae_model *par = train_group(2, NULL, data, 1, NULL, 2, CVAE_E_IO);
    assert_memory_equal(par->params, fresh->params, fresh->nparams * sizeof(float));
    cvae_model_destroy(par);
    cvae_model_destroy(fresh);
    cvae_config_destroy(c);
    cvae_dataset_destroy(data);
}

/* A process with another model is found before the first step, on every
 * process, instead of training diverging models or waiting forever. */
static void test_processes_must_agree(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    rank1_seed = 99;
    cvae_model *par = train_group(2, NULL, data, 1, NULL, 0, CVAE_E_INVALID_ARG);
    rank1_seed = 0;
    int e;
    assert_int_equal(cvae_model_epochs_done(par, &e), CVAE_OK);
    assert_int_equal(e, 0);
    cvae_model_destroy(par);
    cvae_dataset_destroy(data);
}

/* A batch computed in parts of at most 3 images (7 = 3 + 3 + 1; the last
 * batch of 1 in one piece) takes the one-pass steps, through warm-up and
 * the mixture prior with k-means initialisation, with a workspace of 3
 * rows. */
static void test_micro_batch_alone(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    cvae_model *alone = train_alone(data, 3);
    cvae_model *parts = train_alone_micro(data, 3, 3);
    assert_int_equal(parts->ws_rows, 3);
    assert_true(cvae__model_workspace_bytes(parts) < cvae__model_workspace_bytes(alone));
    int m;
    assert_int_equal(cvae_model_get_micro_batch(parts, &m), CVAE_OK);
    assert_int_equal(m, 3);
    compare(parts, alone, data, "alone, batch 7 in parts of 3");
    /* a micro-batch as large as the batch changes nothing at all */
    cvae_model *whole = train_alone_micro(data, 3, BATCH);
    assert_memory_equal(whole->params, alone->params, alone->nparams * sizeof(float));
    cvae_model_destroy(whole);
    cvae_model_destroy(parts);
    cvae_model_destroy(alone);
    cvae_dataset_destroy(data);
}

/* The manifold recipe's terms (consistency in pretraining, pseudo-labels in
 * fine-tuning) in parts of 2, from one pretrained checkpoint so that both
 * manifold steps see the same codes. */
static void micro_batch_manifold(int form)
{
    manifold_terms = form;
    cvae_dataset *data = make_data();
    cvae_config *c = config();
    cvae_model *first;
    assert_int_equal(cvae_model_create(c, &first), CVAE_OK);
    cvae_config_destroy(c);
    assert_int_equal(cvae_model_set_micro_batch(first, 2), CVAE_OK);
    assert_int_equal(cvae_model_train(first, data, 1, NULL, NULL, NULL), CVAE_OK);
    cvae_model *ref = train_alone(data, 1);
    compare(first, ref, data, "pretraining with the consistency term, parts of 2");
    cvae_model_destroy(ref);
    char path[512];
    snprintf(path, sizeof path, "%s/cvae_dp_micro_%ld.safetensors",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
    assert_int_equal(cvae_model_save(first, path), CVAE_OK);
    cvae_model *a, *b;
    assert_int_equal(cvae_model_load(path, &a), CVAE_OK);
    assert_int_equal(cvae_model_load(path, &b), CVAE_OK);
    remove(path);
    assert_int_equal(cvae_model_set_micro_batch(b, 2), CVAE_OK);
    assert_int_equal(cvae_model_train(a, data, 2, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_train(b, data, 2, NULL, NULL, NULL), CVAE_OK);
    manifold_terms = MANIFOLD_OFF;
    assert_non_null(a->pl);
    assert_non_null(b->pl);
    assert_memory_equal(a->pl, b->pl, (size_t)a->pl_n * sizeof *a->pl);
    compare(b, a, data, "fine-tuning on pseudo-labels, parts of 2");
    cvae_model_destroy(first);
    cvae_model_destroy(a);
    cvae_model_destroy(b);
    cvae_dataset_destroy(data);
}

static void test_micro_batch_manifold(void **state)
{
    (void)state;
    micro_batch_manifold(MANIFOLD_PLAIN);
    micro_batch_manifold(MANIFOLD_CONTRAST);
}

/* Parts and processes together: slices of 4 and 3 in parts of 2. */
static void test_micro_batch_group(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    cvae_model *alone = train_alone(data, 3);
    group_micro = 2;
    for (int size = 2; size <= 3; size++) {
        cvae_model *par = train_group(size, NULL, data, 3, NULL, 0, CVAE_OK);
        assert_int_equal(par->ws_rows, 2);
        char what[64];
        snprintf(what, sizeof what, "%d ranks in parts of 2", size);
        compare(par, alone, data, what);
        cvae_model_destroy(par);
    }
    group_micro = 0;
    cvae_model_destroy(alone);
    cvae_dataset_destroy(data);
}

/* The gradient reduced bucket by bucket from the helper thread while the
 * backward pass goes on: never the whole buffer in one call, and the same
 * model; also with parts, and with a hook that fails. */
static void test_overlap(void **state)
{
    (void)state;
    cvae_dataset *data = make_data();
    cvae_model *alone = train_alone(data, 3);
    group_overlap = 1;
    cvae_model *par = train_group(3, NULL, data, 3, NULL, 0, CVAE_OK);
    print_message("largest reduction %zu of %zu gradient floats\n", group_biggest,
                  alone->nparams);
    assert_true(group_biggest < alone->nparams);
    compare(par, alone, data, "3 ranks, overlapped reduction");
    cvae_model_destroy(par);
    group_micro = 2;
    par = train_group(2, NULL, data, 3, NULL, 0, CVAE_OK);
    compare(par, alone, data, "2 ranks, overlapped reduction, parts of 2");
    cvae_model_destroy(par);
    group_micro = 0;
    /* call 1 compares the processes, call 2 is the first step's batch
     * terms: the weights stay as they were */
    cvae_config *c = config();
    cvae_model *fresh;
    assert_int_equal(cvae_model_create(c, &fresh), CVAE_OK);
    cvae_config_destroy(c);
    for (int fail = 2; fail <= 4; fail++) {
        par = train_group(2, NULL, data, 1, NULL, fail, CVAE_E_IO);
        assert_memory_equal(par->params, fresh->params, fresh->nparams * sizeof(float));
        cvae_model_destroy(par);
    }
    /* in parts: call 2 is the column sums of q, 3-7 the buckets (queued
     * while the loss values, call 8, are asked for) */
    group_micro = 2;
    for (int fail = 2; fail <= 8; fail += 3) {
        par = train_group(2, NULL, data, 1, NULL, fail, CVAE_E_IO);
        assert_memory_equal(par->params, fresh->params, fresh->nparams * sizeof(float));
        cvae_model_destroy(par);
    }
    group_micro = 0;
    group_overlap = 0;
    cvae_model_destroy(fresh);
    cvae_model_destroy(alone);
    cvae_dataset_destroy(data);
}

static void test_settings_checked(void **state)
{
    (void)state;
    cvae_config *c = config();
    cvae_model *model;
    assert_int_equal(cvae_model_create(c, &model), CVAE_OK);
    cvae_config_destroy(c);
    int m = -5;
    assert_int_equal(cvae_model_get_micro_batch(model, &m), CVAE_OK);
    assert_int_equal(m, 0);
    assert_int_equal(cvae_model_set_micro_batch(model, -1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_set_micro_batch(NULL, 2), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_get_micro_batch(model, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_set_reduce_overlap(model, 2), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_set_reduce_overlap(NULL, 1), CVAE_E_INVALID_ARG);
    /* alone, overlap does nothing */
    assert_int_equal(cvae_model_set_reduce_overlap(model, 1), CVAE_OK);
    cvae_dataset *data = make_data();
    assert_int_equal(cvae_model_train(model, data, 1, NULL, NULL, NULL), CVAE_OK);
    cvae_model *alone = train_alone(data, 1);
    assert_memory_equal(model->params, alone->params, alone->nparams * sizeof(float));
    cvae_model_destroy(alone);
    cvae_model_destroy(model);
    cvae_dataset_destroy(data);
}

/* Adding a part's buckets into the step's sum, on the default model (its
 * encoder bucket is 2.5 million floats): cut between two threads at the
 * learned share and at fixed shares a quarter and three quarters in, the
 * sum is the plain loop's, bit for bit. */
static void test_bucket_add_threads(void **state)
{
    (void)state;
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_config_destroy(c);
    const size_t n = m->nparams;
    float *base = malloc(n * sizeof *base), *scratch = malloc(n * sizeof *scratch);
    float *want = malloc(n * sizeof *want), *sum = malloc(n * sizeof *sum);
    assert_true(base && scratch && want && sum);
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++) {
        base[i] = cvae__rng_uniform(&r) - 0.5f;
        scratch[i] = 1e-3f * (cvae__rng_uniform(&r) - 0.5f);
        want[i] = base[i] + scratch[i];
    }
    size_t lo, hi;
    cvae__dp_bucket_range(m, CVAE__BUCKET_ENCODER, &lo, &hi);
    assert_true(hi - lo > ((size_t)1 << 20));
    const int before = cvae__threads_get();
    for (int run = 0; run < 4; run++) {
        cvae__threads_set(run ? 2 : 1);
        cvae__parallel_fix_share(run == 2 ? 0.25 : run == 3 ? 0.75 : 0.0);
        memcpy(sum, base, n * sizeof *sum);
        m->par.sum = sum;
        m->par.scratch = scratch;
        m->par.adding = 1;
        for (int id = 0; id < cvae__dp_buckets(m); id++)
            cvae__dp_bucket_done(m, id);
        assert_memory_equal(sum, want, n * sizeof *sum);
    }
    cvae__parallel_fix_share(0.0);
    cvae__threads_set(before);
    m->par.sum = NULL;
    m->par.scratch = NULL;
    m->par.adding = 0;
    free(base);
    free(scratch);
    free(want);
    free(sum);
    cvae_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard),
        cmocka_unit_test(test_item_streams),
        cmocka_unit_test(test_same_model_as_one_process),
        cmocka_unit_test(test_workspace_holds_a_slice),
        cmocka_unit_test(test_manifold_terms_summed),
        cmocka_unit_test(test_resume_on_other_count),
        cmocka_unit_test(test_failing_hook),
        cmocka_unit_test(test_processes_must_agree),
        cmocka_unit_test(test_micro_batch_alone),
        cmocka_unit_test(test_micro_batch_manifold),
        cmocka_unit_test(test_micro_batch_group),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_settings_checked),
        cmocka_unit_test(test_bucket_add_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
