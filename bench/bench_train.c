/* Whole-model benchmark of libconvvae, the C side of bench/run.sh.
 *
 *   bench_train [options]
 *     --data DIR         data directory (default $CONVVAE_DATA, else ./data)
 *     --dataset NAME     mnist | fashion-mnist                        [mnist]
 *     --latent S         latent dimension s                            [50]
 *     --layers N         conv layers per branch n                      [1]
 *     --units M          encoder units m                               [512]
 *     --batch B          training batch                                [100]
 *     --threads T        library threads                               [1]
 *     --warmup W         warm-up batches before timing                 [5]
 *     --batches N        timed training batches (0 = no training run)  [100]
 *     --infer            predict the 10,000 test images at batch 1,000 (after
 *                        one warm-up batch), one timed pass
 *     --latency K        batch-1 prediction latency over K images      [0 = off]
 *     --breakdown R      per-layer time of one training step, median of R
 *     --gemm R           cvae__sgemm on the step's own GEMM shapes and on 2000^3
 *     --cpu              time with the process CPU clock (1 thread, development)
 *     --check DIR        same-model check: train --batches batches, save
 *                        DIR/check.safetensors and the deterministic loss terms
 *                        of the first 100 test images (bench/torch_reference.py
 *                        --check DIR compares them with PyTorch's)
 *     --trace DIR        same-training check: save DIR/trace_init.safetensors,
 *                        train --trace-steps batches with cvae_model_train and
 *                        record each batch's indices (trace_idx.bin, int64),
 *                        noise (trace_eps.bin, float32 n x s) and loss terms
 *                        (trace_loss.txt), then DIR/trace_final.safetensors
 *                        (bench/torch_reference.py --trace DIR replays them)
 *     --trace-steps N    training steps of --trace                     [300]
 *     --seed S           model seed (weights, shuffles, noise)          [1]
 *     --recipe R         paper | manifold                             [paper]
 *                        paper: the step of the paper's recipe (mixture
 *                        prior, no augmentation), the model
 *                        bench/torch_reference.py implements and the one
 *                        --check, --trace and --breakdown need; manifold:
 *                        the library's default recipe, whose pretraining
 *                        step (standard prior) the three options below
 *                        shape
 *     --augment A        manifold: augmentation of each training image on
 *                        (1) or off (0): its cost side by side           [1]
 *     --micro M          compute each batch in parts of at most M images
 *                        (cvae_model_set_micro_batch; 0 = at once)      [0]
 *     --consistency W    manifold: the consistency term at weight W (0 =
 *                        off; whole numbers): its cost beside the
 *                        augmented step                                 [0]
 *     --contrast T       manifold: the term's contrastive form at
 *                        temperature T (0 = the plain form; whole numbers) [0]
 *
 * Results are printed as "RESULT key value" lines (bench/run.sh collects
 * them), everything else is commentary.
 *
 * Training throughput runs the public cvae_model_train over the full
 * training set and stops it through the progress callback: W warm-up
 * batches, then N timed ones, each including the uint8 -> float gather,
 * forward, backward, the finiteness check and the Adam step. The peak RSS
 * (getrusage) is read right after it, before anything else is allocated, so
 * it is the footprint of full-data-set training.
 *
 * FLOPs count the multiply-adds of the model's matrix products (2 per
 * multiply-add; forward, dX and dW of every layer, no dX for the first conv
 * layer): the element-wise work is a rounding error next to them. The count
 * is derived from the layer geometry and cross-checked against the products
 * one traced training step actually runs. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "layers/activation.h"
#include "convvae.h"
#include "core/gemm.h"
#include "core/memory.h"
#include "core/rng.h"
#include "core/threads.h"
#include "io/dataset.h"
#include "layers/dense.h"
#include "layers/tconv.h"
#include "model/loss.h"
#include "model/model.h"
#include "model/vae_head.h"
#include "training/optimizer.h"

#define MAX_REPS 200

/* --cpu: the process's CPU time instead of the wall clock. On a shared
 * machine it measures the code rather than the share of a core it got, but
 * with 2 threads it adds both threads' time (waiting included): for 1
 * thread and development only. */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static void die(const char *what)
{
    fprintf(stderr, "bench_train: %s: %s\n", what, cvae_last_error());
    exit(1);
}

#define CHECK(call)                                                                            \
    do {                                                                                       \
        if ((call) != CVAE_OK)                                                                 \
            die(#call);                                                                        \
    } while (0)

typedef struct options {
    const char *data, *dataset, *check, *trace;
    int manifold; /* --recipe manifold */
    int latent, layers, units, batch, threads, warmup, batches, infer, latency, breakdown, gemm;
    int trace_steps, seed;
    int augment, micro, consistency, contrast;
} options;

static void usage(void)
{
    fprintf(stderr, "usage: bench_train [--data DIR] [--dataset mnist|fashion-mnist] [--latent S]\n"
                    "       [--layers N] [--units M] [--batch B] [--threads T] [--warmup W]\n"
                    "       [--batches N] [--infer] [--latency K] [--breakdown R] [--gemm R]\n"
                    "       [--cpu] [--check DIR] [--trace DIR] [--trace-steps N] [--seed S]\n"
                    "       [--recipe paper|manifold] [--augment 0|1] [--micro M]\n"
                    "       [--consistency W] [--contrast T]\n");
    exit(2);
}

static void parse(int argc, char **argv, options *o)
{
    const char *env = getenv("CONVVAE_DATA");
    *o = (options){.data = env && *env ? env : "data",
                   .dataset = "mnist",
                   .latent = 50,
                   .layers = 1,
                   .units = 512,
                   .batch = 100,
                   .threads = 1,
                   .warmup = 5,
                   .batches = 100,
                   .trace_steps = 300,
                   .seed = 1,
                   .augment = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *iv = NULL;
        if (strcmp(a, "--infer") == 0) {
            o->infer = 1;
            continue;
        }
        if (strcmp(a, "--cpu") == 0) {
            clock_id = CLOCK_PROCESS_CPUTIME_ID;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--data") == 0)
            o->data = v;
        else if (strcmp(a, "--dataset") == 0)
            o->dataset = v;
        else if (strcmp(a, "--check") == 0)
            o->check = v;
        else if (strcmp(a, "--trace") == 0)
            o->trace = v;
        else if (strcmp(a, "--recipe") == 0) {
            if (strcmp(v, "paper") != 0 && strcmp(v, "manifold") != 0)
                usage();
            o->manifold = strcmp(v, "manifold") == 0;
        }
        else if (strcmp(a, "--trace-steps") == 0)
            iv = &o->trace_steps;
        else if (strcmp(a, "--seed") == 0)
            iv = &o->seed;
        else if (strcmp(a, "--latent") == 0)
            iv = &o->latent;
        else if (strcmp(a, "--layers") == 0)
            iv = &o->layers;
        else if (strcmp(a, "--units") == 0)
            iv = &o->units;
        else if (strcmp(a, "--batch") == 0)
            iv = &o->batch;
        else if (strcmp(a, "--threads") == 0)
            iv = &o->threads;
        else if (strcmp(a, "--warmup") == 0)
            iv = &o->warmup;
        else if (strcmp(a, "--batches") == 0)
            iv = &o->batches;
        else if (strcmp(a, "--latency") == 0)
            iv = &o->latency;
        else if (strcmp(a, "--breakdown") == 0)
            iv = &o->breakdown;
        else if (strcmp(a, "--gemm") == 0)
            iv = &o->gemm;
        else if (strcmp(a, "--augment") == 0)
            iv = &o->augment;
        else if (strcmp(a, "--micro") == 0)
            iv = &o->micro;
        else if (strcmp(a, "--consistency") == 0)
            iv = &o->consistency;
        else if (strcmp(a, "--contrast") == 0)
            iv = &o->contrast;
        else
            usage();
        if (iv) {
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < 0 || x > 1000000)
                usage();
            *iv = (int)x;
        }
        i++;
    }
    if (o->breakdown > MAX_REPS || o->gemm > MAX_REPS || o->trace_steps < 1)
        usage();
    /* The three shape the manifold recipe's step only: asked for with the
     * paper's, they would be measured as if they had run. */
    if (!o->manifold && (o->augment > 0 || o->consistency || o->contrast)) {
        fprintf(stderr, "bench_train: --augment 1, --consistency and --contrast need --recipe "
                        "manifold\n");
        exit(2);
    }
    if (o->augment < 0)
        o->augment = o->manifold;
}

static cvae_dataset *load_split(const options *o, const char *split)
{
    const char *sfx = strcmp(o->dataset, "fashion-mnist") == 0 ? ".gz" : "";
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/%s/%s-images-idx3-ubyte%s", o->data, o->dataset, split, sfx);
    snprintf(lab, sizeof lab, "%s/%s/%s-labels-idx1-ubyte%s", o->data, o->dataset, split, sfx);
    cvae_dataset *ds;
    if (cvae_dataset_load_idx(img, lab, &ds) != CVAE_OK)
        die(img);
    return ds;
}

static cvae_config *make_config(const options *o, int batch)
{
    cvae_config *cfg;
    CHECK(cvae_config_create(&cfg));
    CHECK(cvae_config_set_latent_dim(cfg, o->latent));
    CHECK(cvae_config_set_encoder_units(cfg, o->units));
    CHECK(cvae_config_set_batch_size(cfg, batch));
    CHECK(cvae_config_set_threads(cfg, o->threads));
    CHECK(cvae_config_set_seed(cfg, (uint64_t)o->seed));
    CHECK(cvae_config_set_recipe(cfg, o->manifold ? CVAE_RECIPE_MANIFOLD : CVAE_RECIPE_PAPER));
    if (o->manifold) {
        CHECK(cvae_config_set_augment(cfg, o->augment ? 1 : 0));
        CHECK(cvae_config_set_consistency_weight(cfg, o->consistency));
        CHECK(cvae_config_set_contrast_temperature(cfg, o->contrast));
    }
    int branches;
    CHECK(cvae_config_get_branches(cfg, &branches));
    for (int b = 0; b < branches; b++) {
        int layers, filters, kernel;
        CHECK(cvae_config_get_conv_branch(cfg, b + 1, &layers, &filters, &kernel));
        CHECK(cvae_config_set_conv_branch(cfg, b + 1, o->layers, filters, kernel));
    }
    return cfg;
}

/* ---- FLOPs --------------------------------------------------------------- */

static double conv_flops(const cvae__conv_geom *g)
{
    return 2.0 * g->c_out * g->c_in * g->kh * g->kw * g->h_out * g->w_out;
}

/* Per training image: forward, dX and dW of every product. */
static double train_flops(const cvae_model *m)
{
    double f = 0;
    for (int b = 0; b < m->nb; b++)
        for (int l = 0; l < m->br[b].layers; l++)
            f += conv_flops(&m->br[b].conv[l]) * (b == 0 && l == 0 ? 2 : 3);
    for (int l = 0; l < m->ndec; l++)
        f += 3 * conv_flops(&m->dec[l]);
    f += 3 * 2.0 * m->D * m->enc_units;            /* encoder */
    f += 2 * 3 * 2.0 * m->enc_units * m->s;        /* mu, logvar */
    f += 3 * 2.0 * m->s * m->dec_units;           /* decoder1 */
    f += 3 * 2.0 * m->dec_units * m->D0;          /* decoder2 */
    f += 3 * 2.0 * m->s * m->cat_units;           /* category1 (its dX feeds dz) */
    f += 3 * 2.0 * m->cat_units * m->k;           /* category2 */
    return f;
}

/* Per inferred image: the forward products up to the category head. */
static double infer_flops(const cvae_model *m)
{
    double f = 0;
    for (int b = 0; b < m->nb; b++)
        for (int l = 0; l < m->br[b].layers; l++)
            f += conv_flops(&m->br[b].conv[l]);
    return f + 2.0 * m->D * m->enc_units + 2 * 2.0 * m->enc_units * m->s + 2.0 * m->s * m->cat_units +
           2.0 * m->cat_units * m->k;
}

/* ---- GEMM trace ---------------------------------------------------------- */

#define MAX_SHAPES 256

typedef struct shape_stat {
    cvae__gemm_call c;
    int calls;
    double seconds;
} shape_stat;

typedef struct trace {
    shape_stat s[MAX_SHAPES];
    int n, overflow;
    double t0, seconds, flops;
} trace;

static int same_shape(const cvae__gemm_call *a, const cvae__gemm_call *b)
{
    return a->trans_a == b->trans_a && a->trans_b == b->trans_b && a->m == b->m &&
           a->n == b->n && a->k == b->k && a->lda == b->lda && a->ldb == b->ldb &&
           a->ldc == b->ldc && (a->beta == 0.0f) == (b->beta == 0.0f);
}

static void trace_fn(void *user, const cvae__gemm_call *c, int end)
{
    trace *t = user;
    if (!end) {
        t->t0 = now();
        return;
    }
    double dt = now() - t->t0;
    t->seconds += dt;
    t->flops += 2.0 * c->m * c->n * (c->k > 0 ? c->k : 0);
    for (int i = 0; i < t->n; i++)
        if (same_shape(&t->s[i].c, c)) {
            t->s[i].calls++;
            t->s[i].seconds += dt;
            return;
        }
    if (t->n == MAX_SHAPES) {
        t->overflow = 1;
        return;
    }
    t->s[t->n++] = (shape_stat){*c, 1, dt};
}

/* ---- One training step, the library's own code ---------------------------- */

/* The end of the training loop's step: the check that every gradient is
 * finite, then one Adam job over all trainable tensors. */
static void update_step(cvae_model *m, cvae_optimizer *opt)
{
    size_t off[CVAE__MAX_PARAMS], cnt[CVAE__MAX_PARAMS];
    const int ranges = cvae__model_trainable_ranges(m, off, cnt);
    if (!cvae__all_finite(m->grads, m->nparams))
        die("non-finite gradient");
    cvae__optimizer_begin_step(opt);
    cvae__optimizer_update_ranges(opt, m->params, m->grads, off, cnt, ranges);
}

static void real_step(cvae_model *m, const cvae_dataset *ds, const int64_t *idx, int n,
                      cvae_optimizer *opt)
{
    cvae__dataset_gather_f32(ds, idx, n, m->x);
    cvae__forward(m, n, 1, 1);
    double losses[CVAE_LOSS_COUNT];
    cvae__loss_and_backward(m, n, 1, 1, losses);
    update_step(m, opt);
}

/* ---- Per-layer breakdown --------------------------------------------------
 * The training step of lib/model/network.c and its heads (default configuration: image
 * reconstruction, category head on z, mixture prior, trainable convs) cut
 * into segments that call the same private layer functions on the model's
 * own buffers and shapes, each timed on its own. Their sum is compared with
 * the untouched step above; a gap means this replica missed something. */

#define PRM(off) (m->params + (off))
#define GRD(off) (m->grads + (off))

typedef struct seg_ctx {
    cvae_model *m;
    const cvae_dataset *ds;
    const int64_t *idx;
    cvae_optimizer *opt;
    int n;
    int b, l; /* branch / layer of per-layer segments */
} seg_ctx;

typedef void (*seg_fn)(seg_ctx *c);

static int parts(const cvae_model *m) { return cvae__conv_parts(m); }

static void s_gather(seg_ctx *c) { cvae__dataset_gather_f32(c->ds, c->idx, c->n, c->m->x); }

static const float *layer_input(const cvae_model *m, int b, int l)
{
    return l ? m->br[b].act[l - 1] : (b ? m->br[b - 1].pooled : m->x);
}

static void s_conv_fwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__branch *br = &m->br[c->b];
    const cvae__conv_geom *g = &br->conv[c->l];
    cvae__conv2d_relu_forward(g, c->n, layer_input(m, c->b, c->l), PRM(br->w[c->l]),
                              PRM(br->b[c->l]), br->act[c->l], m->col, parts(m));
}

static void s_pool_fwd(seg_ctx *c)
{
    cvae__branch *br = &c->m->br[c->b];
    cvae__maxpool_forward(&br->pool, c->n, br->act[br->layers - 1], br->pooled, br->argmax);
}

static void s_encoder_fwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    for (int b = 0; b < m->nb; b++)
        cvae__sgemm(0, 1, c->n, m->enc_units, m->br[b].out_size, 1.0f, m->br[b].pooled,
                    m->br[b].out_size, PRM(m->enc_w) + m->br[b].feat_off, m->D, b ? 1.0f : 0.0f,
                    m->h, m->enc_units);
    const float *bias = PRM(m->enc_b);
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < m->enc_units; j++)
            m->h[(size_t)i * m->enc_units + j] += bias[j];
    cvae__relu_forward((int64_t)c->n * m->enc_units, m->h, m->h);
}

static void s_latent_fwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__dense_forward(c->n, m->enc_units, m->s, m->h, PRM(m->mu_w), PRM(m->mu_b), m->mu);
    cvae__dense_forward(c->n, m->enc_units, m->s, m->h, PRM(m->lv_w), PRM(m->lv_b), m->lv);
    size_t ns = (size_t)c->n * m->s;
    cvae__rng_normal_fill(&m->rng, m->eps, (int64_t)ns);
    for (size_t i = 0; i < ns; i++)
        m->z[i] = m->mu[i] + expf(0.5f * m->lv[i]) * m->eps[i];
}

static void s_head_fwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__dense_forward(c->n, m->s, m->cat_units, m->z, PRM(m->c1_w), PRM(m->c1_b), m->c1);
    cvae__relu_forward((int64_t)c->n * m->cat_units, m->c1, m->c1);
    cvae__dense_forward(c->n, m->cat_units, m->k, m->c1, PRM(m->c2_w), PRM(m->c2_b), m->q);
    cvae__softmax_forward(c->n, m->k, m->q, m->q);
}

static void s_decoder_fwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__dense_forward(c->n, m->s, m->dec_units, m->z, PRM(m->d1_w), PRM(m->d1_b), m->g);
    cvae__relu_forward((int64_t)c->n * m->dec_units, m->g, m->g);
    cvae__dense_forward(c->n, m->dec_units, m->D0, m->g, PRM(m->d2_w), PRM(m->d2_b), m->dslice);
}

static void s_deconv_fwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    const float *in = m->dslice;
    for (int l = 0; l < m->ndec; l++) {
        const cvae__conv_geom *g = &m->dec[l];
        int64_t cnt = (int64_t)c->n * g->c_in * g->h_in * g->w_in;
        cvae__tconv2d_forward_par(g, c->n, in, PRM(m->dec_w[l]), PRM(m->dec_b[l]),
                                   m->decact[l], m->col, parts(m));
        if (l + 1 < m->ndec)
            cvae__relu_forward(cnt, m->decact[l], m->decact[l]);
        else
            cvae__sigmoid_forward(cnt, m->decact[l], m->decact[l]);
        in = m->decact[l];
    }
}

static void s_zero_grads(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__grads_clear_unwritten(m, c->n);
    memset(m->dq, 0, (size_t)c->n * m->k * sizeof(float));
    memset(m->dmu, 0, (size_t)c->n * m->s * sizeof(float));
    memset(m->dlv, 0, (size_t)c->n * m->s * sizeof(float));
}

static void s_losses(seg_ctx *c)
{
    cvae_model *m = c->m;
    const float scale = 1.0f / (float)c->n;
    float *dpre = m->ddecact[m->ndec - 1];
    cvae__loss_recon(c->n, m->P, m->x, cvae__xhat(m), (float)m->cfg.lambda * scale, dpre);
    /* the mixture prior's dz is added after the decoder's backward wrote dz;
     * timed here, in the order of a whole step it would follow s_decoder_bwd */
    cvae__loss_kl_mixture(c->n, m->s, m->k, m->z, m->lv, m->q, PRM(m->means), scale, m->dz,
                          m->dlv, m->dq, GRD(m->means));
    cvae__loss_category(c->n, m->k, m->q, (float)m->cfg.cat_weight, scale, m->dq);
    cvae__loss_balance(c->n, m->k, m->q, (float)m->cfg.balance_weight, m->dq);
}

static void s_deconv_bwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    for (int l = m->ndec - 1; l >= 0; l--) {
        const cvae__conv_geom *g = &m->dec[l];
        const float *in = l ? m->decact[l - 1] : m->dslice;
        float *dx = l ? m->ddecact[l - 1] : m->ddslice;
        cvae__tconv2d_backward_par(g, c->n, in, PRM(m->dec_w[l]), m->ddecact[l], dx,
                                    GRD(m->dec_w[l]), GRD(m->dec_b[l]), m->col, parts(m));
        if (l > 0)
            cvae__relu_backward((int64_t)c->n * g->c_out * g->h_out * g->w_out, m->decact[l - 1],
                                dx, dx);
    }
}

static void s_decoder_bwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__dense_backward(c->n, m->dec_units, m->D0, m->g, PRM(m->d2_w), m->ddslice, m->dg,
                         GRD(m->d2_w), GRD(m->d2_b));
    cvae__relu_backward((int64_t)c->n * m->dec_units, m->g, m->dg, m->dg);
    cvae__dense_backward(c->n, m->s, m->dec_units, m->z, PRM(m->d1_w), m->dg, m->dz, GRD(m->d1_w),
                         GRD(m->d1_b));
}

static void s_head_bwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__softmax_backward(c->n, m->k, m->q, m->dq, m->dlogit);
    cvae__dense_backward(c->n, m->cat_units, m->k, m->c1, PRM(m->c2_w), m->dlogit, m->dc1,
                         GRD(m->c2_w), GRD(m->c2_b));
    cvae__relu_backward((int64_t)c->n * m->cat_units, m->c1, m->dc1, m->dc1);
    cvae__dense_backward(c->n, m->s, m->cat_units, m->z, PRM(m->c1_w), m->dc1, NULL, GRD(m->c1_w),
                         GRD(m->c1_b));
    cvae__sgemm(0, 0, c->n, m->s, m->cat_units, 1.0f, m->dc1, m->cat_units, PRM(m->c1_w), m->s, 1.0f, m->dz,
                m->s);
}

static void s_latent_bwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    size_t ns = (size_t)c->n * m->s;
    for (size_t i = 0; i < ns; i++) {
        m->dmu[i] += m->dz[i];
        m->dlv[i] += m->dz[i] * m->eps[i] * 0.5f * expf(0.5f * m->lv[i]);
    }
    cvae__dense_backward(c->n, m->enc_units, m->s, m->h, PRM(m->mu_w), m->dmu, m->dh, GRD(m->mu_w),
                         GRD(m->mu_b));
    cvae__dense_backward(c->n, m->enc_units, m->s, m->h, PRM(m->lv_w), m->dlv, NULL, GRD(m->lv_w),
                         GRD(m->lv_b));
    cvae__sgemm(0, 0, c->n, m->enc_units, m->s, 1.0f, m->dlv, m->s, PRM(m->lv_w), m->enc_units, 1.0f, m->dh,
                m->enc_units);
    cvae__relu_backward((int64_t)c->n * m->enc_units, m->h, m->dh, m->dh);
}

static void s_encoder_dw(seg_ctx *c)
{
    cvae_model *m = c->m;
    for (int b = 0; b < m->nb; b++)
        cvae__sgemm(1, 0, m->enc_units, m->br[b].out_size, c->n, 1.0f, m->dh, m->enc_units, m->br[b].pooled,
                    m->br[b].out_size, 0.0f, GRD(m->enc_w) + m->br[b].feat_off, m->D);
    float *db = GRD(m->enc_b);
    memset(db, 0, (size_t)m->enc_units * sizeof *db);
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < m->enc_units; j++)
            db[j] += m->dh[(size_t)i * m->enc_units + j];
}

static void s_encoder_dx(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__branch *br = &m->br[c->b];
    cvae__sgemm(0, 0, c->n, br->out_size, m->enc_units, 1.0f, m->dh, m->enc_units, PRM(m->enc_w) + br->feat_off,
                m->D, c->b == m->nb - 1 ? 0.0f : 1.0f, br->dpooled, br->out_size);
}

static void s_pool_bwd(seg_ctx *c)
{
    cvae__branch *br = &c->m->br[c->b];
    cvae__maxpool_backward(&br->pool, c->n, br->dpooled, br->argmax, br->dact[br->layers - 1]);
}

static void s_conv_bwd(seg_ctx *c)
{
    cvae_model *m = c->m;
    cvae__branch *br = &m->br[c->b];
    const int b = c->b, l = c->l;
    const cvae__conv_geom *g = &br->conv[l];
    float *dx = l ? br->dact[l - 1] : (b ? m->br[b - 1].dpooled : NULL);
    cvae__conv2d_relu_backward(g, c->n, layer_input(m, b, l), PRM(br->w[l]), br->act[l],
                               br->dact[l], dx, GRD(br->w[l]), GRD(br->b[l]), m->col, parts(m));
}

static void s_optimizer(seg_ctx *c) { update_step(c->m, c->opt); }

typedef struct segment {
    char name[64];
    seg_fn fn;
    int b, l;
    double flops; /* per batch */
    double t[MAX_REPS];
} segment;

static int add_seg(segment *s, int n, const char *name, seg_fn fn, int b, int l, double flops)
{
    snprintf(s[n].name, sizeof s[n].name, "%s", name);
    s[n].fn = fn;
    s[n].b = b;
    s[n].l = l;
    s[n].flops = flops;
    return n + 1;
}

static int default_model_shape(const cvae_model *m)
{
    const struct cvae_config *c = &m->cfg;
    return c->recon_target == CVAE_RECON_IMAGE && c->cat_input == CVAE_CATEGORY_INPUT_Z &&
           c->prior == CVAE_PRIOR_MIXTURE && c->conv_trainable && c->enc_act == CVAE_ACT_RELU &&
           m->nb > 0 && m->ndec > 0;
}

static void breakdown(cvae_model *m, const cvae_dataset *ds, const int64_t *idx,
                      cvae_optimizer *opt, int reps)
{
    if (!default_model_shape(m)) {
        printf("breakdown: only for the default model options\n");
        return;
    }
    const int n = m->B;
    enum { MAXSEG = 128 };
    static segment s[MAXSEG];
    int ns = 0;
    char name[64];
    ns = add_seg(s, ns, "gather u8 -> f32", s_gather, 0, 0, 0);
    for (int b = 0; b < m->nb; b++) {
        for (int l = 0; l < m->br[b].layers; l++) {
            snprintf(name, sizeof name, "b%d.conv%d fwd (+bias, ReLU)", b + 1, l + 1);
            ns = add_seg(s, ns, name, s_conv_fwd, b, l, n * conv_flops(&m->br[b].conv[l]));
        }
        snprintf(name, sizeof name, "b%d.pool fwd", b + 1);
        ns = add_seg(s, ns, name, s_pool_fwd, b, 0, 0);
    }
    ns = add_seg(s, ns, "encoder fwd (+bias, ReLU)", s_encoder_fwd, 0, 0, 2.0 * n * m->D * m->enc_units);
    ns = add_seg(s, ns, "mu, logvar fwd + sample", s_latent_fwd, 0, 0, 4.0 * n * m->enc_units * m->s);
    ns = add_seg(s, ns, "category head fwd", s_head_fwd, 0, 0,
                 2.0 * n * (m->s * m->cat_units + m->cat_units * m->k));
    ns = add_seg(s, ns, "decoder fwd (d1, d2)", s_decoder_fwd, 0, 0,
                 2.0 * n * (m->s * m->dec_units + m->dec_units * m->D0));
    double fdec = 0;
    for (int l = 0; l < m->ndec; l++)
        fdec += n * conv_flops(&m->dec[l]);
    ns = add_seg(s, ns, "image decoder fwd (+sigmoid)", s_deconv_fwd, 0, 0, fdec);
    ns = add_seg(s, ns, "clear unwritten grads", s_zero_grads, 0, 0, 0);
    ns = add_seg(s, ns, "losses (+their gradients)", s_losses, 0, 0, 0);
    ns = add_seg(s, ns, "image decoder bwd", s_deconv_bwd, 0, 0, 2 * fdec);
    ns = add_seg(s, ns, "decoder bwd (d2, d1)", s_decoder_bwd, 0, 0,
                 4.0 * n * (m->s * m->dec_units + m->dec_units * m->D0));
    ns = add_seg(s, ns, "category head bwd", s_head_bwd, 0, 0,
                 4.0 * n * (m->s * m->cat_units + m->cat_units * m->k));
    ns = add_seg(s, ns, "mu, logvar bwd", s_latent_bwd, 0, 0, 8.0 * n * m->enc_units * m->s);
    ns = add_seg(s, ns, "encoder dW (+db)", s_encoder_dw, 0, 0, 2.0 * n * m->D * m->enc_units);
    for (int b = m->nb - 1; b >= 0; b--) {
        snprintf(name, sizeof name, "b%d features dX (encoder)", b + 1);
        ns = add_seg(s, ns, name, s_encoder_dx, b, 0, 2.0 * n * m->br[b].out_size * m->enc_units);
        snprintf(name, sizeof name, "b%d.pool bwd", b + 1);
        ns = add_seg(s, ns, name, s_pool_bwd, b, 0, 0);
        for (int l = m->br[b].layers - 1; l >= 0; l--) {
            snprintf(name, sizeof name, "b%d.conv%d bwd (ReLU', dW, db%s)", b + 1, l + 1,
                     b == 0 && l == 0 ? "" : ", dX");
            ns = add_seg(s, ns, name, s_conv_bwd, b, l,
                         n * conv_flops(&m->br[b].conv[l]) * (b == 0 && l == 0 ? 1 : 2));
        }
    }
    ns = add_seg(s, ns, "finite check, optimizer (Adam)", s_optimizer, 0, 0, 0);

    double real[MAX_REPS];
    seg_ctx c = {m, ds, idx, opt, n, 0, 0};
    for (int r = -2; r < reps; r++) { /* two untimed rounds: caches, page faults */
        double t0 = now();
        real_step(m, ds, idx + (size_t)((r + 2) % 8) * n, n, opt);
        if (r >= 0)
            real[r] = now() - t0;
        c.idx = idx + (size_t)((r + 2) % 8) * n;
        for (int i = 0; i < ns; i++) {
            c.b = s[i].b;
            c.l = s[i].l;
            double t1 = now();
            s[i].fn(&c);
            if (r >= 0)
                s[i].t[r] = now() - t1;
        }
    }
    double sum = 0, sum_fl = 0;
    double med[MAXSEG];
    for (int i = 0; i < ns; i++) {
        med[i] = median(s[i].t, reps);
        sum += med[i];
        sum_fl += s[i].flops;
    }
    double step = median(real, reps);
    printf("\nper-layer time of one training step (batch %d, %d thread(s), median of %d)\n", n,
           cvae_get_num_threads(), reps);
    printf("  %-34s %9s %7s %9s\n", "segment", "ms", "share", "GFLOP/s");
    for (int i = 0; i < ns; i++) {
        printf("  %-34s %9.3f %6.1f%%", s[i].name, med[i] * 1e3, 100.0 * med[i] / sum);
        if (s[i].flops > 0)
            printf(" %9.1f", s[i].flops / med[i] * 1e-9);
        printf("\n");
        printf("RESULT seg:%s %.6f\n", s[i].name, med[i] * 1e3);
    }
    printf("  %-34s %9.3f %6.1f%% %9.1f\n", "sum of segments", sum * 1e3, 100.0,
           sum_fl / sum * 1e-9);
    printf("  %-34s %9.3f %7s %9.1f\n", "the library's own step", step * 1e3, "",
           sum_fl / step * 1e-9);
    printf("RESULT step_ms %.4f\n", step * 1e3);
    printf("RESULT segments_ms %.4f\n", sum * 1e3);
}

/* ---- GEMM rate on the step's own shapes ----------------------------------- */

static float *rand_buf(size_t n, cvae__rng *r)
{
    float *p = cvae__aligned_alloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(1);
    }
    cvae__rng_uniform_fill(r, p, (int64_t)n, 1.0f);
    return p;
}

static size_t op_floats(int trans, int rows, int cols, int ld)
{
    /* stored rows x ld (untransposed) or cols x ld (transposed) */
    return (size_t)(trans ? cols : rows) * (size_t)ld;
}

/* Replays each GEMM of one step in isolation (hot caches, its own buffers),
 * median of reps, weighted by how often the step calls it. */
static double replay(const trace *t, int reps, int verbose)
{
    cvae__rng r;
    cvae__rng_seed(&r, 7);
    double total_t = 0, total_f = 0;
    if (verbose)
        printf("\nGEMM shapes of one training step, each alone (median of %d)\n"
               "  %5s %5s %5s %2s %2s %4s %6s %9s %9s %9s\n",
               reps, "m", "n", "k", "tA", "tB", "beta", "calls", "GFLOP/s", "in step", "ms/step");
    for (int i = 0; i < t->n; i++) {
        const cvae__gemm_call *c = &t->s[i].c;
        int k = c->k > 0 ? c->k : 0;
        float *a = rand_buf(op_floats(c->trans_a, c->m, k, c->lda), &r);
        float *b = rand_buf(op_floats(c->trans_b, k, c->n, c->ldb), &r);
        float *cc = rand_buf((size_t)c->m * (size_t)c->ldc, &r);
        double flops = 2.0 * c->m * c->n * k;
        int inner = (int)(2e7 / (flops + 1e4)) + 1; /* ~10 ms samples at 2 GFLOP/s */
        double ts[MAX_REPS];
        for (int rep = -1; rep < reps; rep++) {
            double t0 = now();
            for (int j = 0; j < inner; j++)
                cvae__sgemm(c->trans_a, c->trans_b, c->m, c->n, c->k, c->alpha, a, c->lda, b,
                            c->ldb, c->beta, cc, c->ldc);
            if (rep >= 0)
                ts[rep] = (now() - t0) / inner;
        }
        double med = median(ts, reps);
        total_t += med * t->s[i].calls;
        total_f += flops * t->s[i].calls;
        if (verbose)
            printf("  %5d %5d %5d %2d %2d %4s %6d %9.1f %9.1f %9.3f\n", c->m, c->n, c->k,
                   c->trans_a, c->trans_b, c->beta == 0.0f ? "0" : "1", t->s[i].calls,
                   flops / med * 1e-9, flops * t->s[i].calls / t->s[i].seconds * 1e-9,
                   med * t->s[i].calls * 1e3);
        cvae__aligned_free(a);
        cvae__aligned_free(b);
        cvae__aligned_free(cc);
    }
    return total_f / total_t * 1e-9;
}

static double square_gemm(int size, int reps)
{
    cvae__rng r;
    cvae__rng_seed(&r, 9);
    size_t nn = (size_t)size * size;
    float *a = rand_buf(nn, &r), *b = rand_buf(nn, &r), *c = rand_buf(nn, &r);
    double ts[MAX_REPS];
    for (int rep = -1; rep < reps; rep++) {
        double t0 = now();
        cvae__sgemm(0, 0, size, size, size, 1.0f, a, size, b, size, 0.0f, c, size);
        if (rep >= 0)
            ts[rep] = now() - t0;
    }
    cvae__aligned_free(a);
    cvae__aligned_free(b);
    cvae__aligned_free(c);
    return 2.0 * nn * size / median(ts, reps) * 1e-9;
}

/* ---- training throughput --------------------------------------------------- */

typedef struct timing {
    int warmup, batches;
    double t0, t1;
} timing;

static int progress(void *user, int epoch, int64_t batch, int64_t batches, const double *losses,
                    int num_losses)
{
    (void)epoch;
    (void)batches;
    (void)losses;
    (void)num_losses;
    timing *t = user;
    if (batch == t->warmup)
        t->t0 = now();
    if (batch == t->warmup + t->batches) {
        t->t1 = now();
        return 1;
    }
    return 0;
}

static double train_throughput(cvae_model *m, const cvae_dataset *train, int warmup, int batches)
{
    int64_t count;
    CHECK(cvae_dataset_shape(train, &count, NULL, NULL, NULL));
    if ((warmup + batches) * (int64_t)m->B > count) {
        fprintf(stderr, "bench_train: %d batches do not fit one epoch\n", warmup + batches);
        exit(2);
    }
    timing t = {warmup, batches, 0, 0};
    if (warmup == 0)
        t.t0 = now();
    cvae_status st = cvae_model_train(m, train, 1, NULL, progress, &t);
    if (st != CVAE_E_CANCELLED)
        die("cvae_model_train");
    return (double)batches * m->B / (t.t1 - t.t0);
}

/* ---- same-model check ------------------------------------------------------ */

static void check_mode(const options *o, cvae_dataset *train, cvae_dataset *test)
{
    cvae_config *cfg = make_config(o, o->batch);
    cvae_model *m;
    CHECK(cvae_model_create(cfg, &m));
    if (o->batches > 0) {
        /* a few steps, so the weights are no longer their symmetric init */
        timing t = {0, o->batches, 0, 0};
        if (cvae_model_train(m, train, 1, NULL, progress, &t) != CVAE_E_CANCELLED)
            die("cvae_model_train");
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/check.safetensors", o->check);
    CHECK(cvae_model_save(m, path));
    cvae_dataset *first;
    CHECK(cvae_dataset_subset_first(test, 100, &first));
    double l[CVAE_LOSS_COUNT];
    CHECK(cvae_model_loss(m, first, l, CVAE_LOSS_COUNT));
    int64_t np;
    CHECK(cvae_model_num_params(m, &np));
    printf("RESULT checkpoint %s\n", path);
    printf("RESULT params %lld\n", (long long)np);
    printf("RESULT loss_total %.10g\nRESULT loss_recon %.10g\nRESULT loss_kl %.10g\n"
           "RESULT loss_category %.10g\nRESULT loss_balance %.10g\n",
           l[CVAE_LOSS_TOTAL], l[CVAE_LOSS_RECON], l[CVAE_LOSS_KL], l[CVAE_LOSS_CATEGORY],
           l[CVAE_LOSS_BALANCE]);
    cvae_dataset_destroy(first);
    cvae_model_destroy(m);
    cvae_config_destroy(cfg);
}

/* ---- same-training trace --------------------------------------------------
 * The library's own cvae_model_train, watched batch by batch through its
 * progress callback rather than re-implemented here, so the trace is of the
 * code users run. The callback sees a batch's noise (m->eps) and images
 * (m->x), not its indices or loss terms: the indices come from repeating
 * the epoch's shuffle on a copy of the model RNG (with warm-up 0 and no
 * k-means nothing else draws from it between the last batch's noise and the
 * next shuffle) and are checked against m->x, and the loss terms are the
 * differences of the running sums the running means stand for. */

typedef struct tracer {
    cvae_model *m;
    const cvae_dataset *ds;
    int64_t count, *perm;
    float *xcheck;
    double sums[CVAE_LOSS_COUNT];
    int steps, done;
    FILE *idx, *eps, *loss;
} tracer;

/* cvae_model_train shuffles 0..count-1 afresh each epoch. */
static void trace_shuffle(tracer *t)
{
    cvae__rng r = t->m->rng;
    for (int64_t i = 0; i < t->count; i++)
        t->perm[i] = i;
    cvae__rng_shuffle(&r, t->perm, t->count);
}

static int trace_progress(void *user, int epoch, int64_t batch, int64_t batches,
                          const double *running, int num_losses)
{
    (void)num_losses;
    tracer *t = user;
    const cvae_model *m = t->m;
    const int64_t start = (batch - 1) * m->B;
    const int n = (int)(t->count - start < m->B ? t->count - start : m->B);
    const int64_t *idx = t->perm + start;
    cvae__dataset_gather_f32(t->ds, idx, n, t->xcheck);
    if (memcmp(t->xcheck, m->x, (size_t)n * m->P * sizeof(float)) != 0) {
        fprintf(stderr, "bench_train: step %d: the repeated shuffle no longer gives "
                        "cvae_model_train's batches (does lib/training/train.c draw from the RNG "
                        "elsewhere now?)\n", t->done);
        exit(1);
    }
    if (batch == 1)
        memset(t->sums, 0, sizeof t->sums);
    double l[CVAE_LOSS_COUNT];
    for (int k = 0; k < CVAE_LOSS_COUNT; k++) {
        const double sum = running[k] * (double)(start + n);
        l[k] = (sum - t->sums[k]) / n;
        t->sums[k] = sum;
    }
    fwrite(idx, sizeof *idx, (size_t)n, t->idx);
    fwrite(m->eps, sizeof *m->eps, (size_t)n * m->s, t->eps);
    fprintf(t->loss, "%d %d %d %.12g %.12g %.12g %.12g %.12g\n", t->done, epoch, n,
            l[CVAE_LOSS_TOTAL], l[CVAE_LOSS_RECON], l[CVAE_LOSS_KL], l[CVAE_LOSS_CATEGORY],
            l[CVAE_LOSS_BALANCE]);
    if (++t->done == t->steps)
        return 1;
    if (batch == batches)
        trace_shuffle(t);
    return 0;
}

static FILE *trace_open(const char *dir, const char *name, const char *mode)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, mode);
    if (!f) {
        perror(path);
        exit(1);
    }
    return f;
}

static void trace_close(FILE *f, const char *name)
{
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "bench_train: cannot write %s\n", name);
        exit(1);
    }
}

static void trace_mode(const options *o, cvae_dataset *train)
{
    cvae_config *cfg = make_config(o, o->batch);
    cvae_model *m;
    CHECK(cvae_model_create(cfg, &m));
    if (m->cfg.prior != CVAE_PRIOR_MIXTURE || m->cfg.warmup != 0 || m->cfg.kmeans) {
        fprintf(stderr, "bench_train: --trace needs the mixture prior from the first epoch\n");
        exit(2);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/trace_init.safetensors", o->trace);
    CHECK(cvae_model_save(m, path));

    tracer t = {.m = m, .ds = train, .steps = o->trace_steps};
    CHECK(cvae_dataset_shape(train, &t.count, NULL, NULL, NULL));
    t.perm = malloc((size_t)t.count * sizeof *t.perm);
    t.xcheck = malloc((size_t)m->B * m->P * sizeof *t.xcheck);
    if (!t.perm || !t.xcheck)
        die("malloc");
    t.idx = trace_open(o->trace, "trace_idx.bin", "wb");
    t.eps = trace_open(o->trace, "trace_eps.bin", "wb");
    t.loss = trace_open(o->trace, "trace_loss.txt", "w");
    fprintf(t.loss, "# step epoch n total recon kl category balance  (bench_train --trace, "
                    "%s, seed %d)\n", o->dataset, o->seed);
    FILE *meta = trace_open(o->trace, "trace_meta.txt", "w");
    fprintf(meta, "dataset %s\nsteps %d\nseed %d\n", o->dataset, o->trace_steps, o->seed);
    trace_close(meta, "trace_meta.txt");

    trace_shuffle(&t);
    const int64_t batches = (t.count + m->B - 1) / m->B;
    const int epochs = (int)((o->trace_steps + batches - 1) / batches);
    const double t0 = now();
    if (cvae_model_train(m, train, epochs, NULL, trace_progress, &t) != CVAE_E_CANCELLED)
        die("cvae_model_train");
    const double dt = now() - t0;
    trace_close(t.idx, "trace_idx.bin");
    trace_close(t.eps, "trace_eps.bin");
    trace_close(t.loss, "trace_loss.txt");
    snprintf(path, sizeof path, "%s/trace_final.safetensors", o->trace);
    CHECK(cvae_model_save(m, path));
    printf("RESULT trace_dir %s\n", o->trace);
    printf("RESULT trace_steps %d\n", t.done);
    printf("RESULT trace_img_s %.2f\n", (double)t.done * m->B / dt);
    free(t.perm);
    free(t.xcheck);
    cvae_model_destroy(m);
    cvae_config_destroy(cfg);
}

int main(int argc, char **argv)
{
    options o;
    parse(argc, argv, &o);
    CHECK(cvae_set_num_threads(o.threads));
    printf("libconvvae %s, %s, s=%d n=%d m=%d batch %d, %d thread(s), gemm kernel %s\n",
           cvae_version_string(), o.dataset, o.latent, o.layers, o.units, o.batch, o.threads,
           cvae__gemm_kernel_name(cvae__gemm_default_kernel()));
    cvae_dataset *train = load_split(&o, "train");
    if (o.trace) {
        trace_mode(&o, train);
        cvae_dataset_destroy(train);
        return 0;
    }
    if (o.check) {
        cvae_dataset *test = load_split(&o, "t10k");
        check_mode(&o, train, test);
        cvae_dataset_destroy(test);
        cvae_dataset_destroy(train);
        return 0;
    }

    cvae_config *cfg = make_config(&o, o.batch);
    cvae_model *m;
    CHECK(cvae_model_create(cfg, &m));
    CHECK(cvae_model_set_micro_batch(m, o.micro));
    printf("RESULT recipe %s\n", o.manifold ? "manifold" : "paper");
    printf("RESULT augment %d\nRESULT micro_batch %d\nRESULT consistency %d\nRESULT contrast %d\n",
           o.augment ? 1 : 0, o.micro, o.consistency, o.contrast);
    int64_t np;
    CHECK(cvae_model_num_params(m, &np));
    double fl = train_flops(m);
    printf("RESULT params %lld\n", (long long)np);
    printf("RESULT flops_per_train_image %.0f\n", fl);
    printf("RESULT flops_per_infer_image %.0f\n", infer_flops(m));
    if (o.batches > 0) {
        double ips = train_throughput(m, train, o.warmup, o.batches);
        printf("RESULT train_img_s %.2f\n", ips);
        printf("RESULT train_gflops %.2f\n", ips * fl * 1e-9);
        printf("RESULT rss_train_mb %.1f\n", peak_rss_mb());
    }

    if (o.infer || o.latency > 0) {
        cvae_dataset *test = load_split(&o, "t10k");
        int64_t count;
        CHECK(cvae_dataset_shape(test, &count, NULL, NULL, NULL));
        if (o.infer) {
            cvae_config *ic = make_config(&o, 1000);
            cvae_model *im;
            CHECK(cvae_model_create(ic, &im));
            int32_t *cl = malloc((size_t)count * sizeof *cl);
            if (!cl)
                die("malloc");
            cvae_dataset *first;
            CHECK(cvae_dataset_subset_first(test, count < 1000 ? count : 1000, &first));
            CHECK(cvae_model_predict_dataset(im, first, cl, NULL)); /* warm-up: one batch */
            cvae_dataset_destroy(first);
            double t0 = now();
            CHECK(cvae_model_predict_dataset(im, test, cl, NULL));
            printf("RESULT infer_img_s %.2f\n", (double)count / (now() - t0));
            free(cl);
            cvae_model_destroy(im);
            cvae_config_destroy(ic);
        }
        if (o.latency > 0) {
            cvae_config *lc = make_config(&o, 1);
            cvae_model *lm;
            CHECK(cvae_model_create(lc, &lm));
            int P = m->P;
            int K = o.latency < (int)count ? o.latency : (int)count;
            float *x = malloc((size_t)K * P * sizeof *x);
            double *ts = malloc((size_t)K * sizeof *ts);
            if (!x || !ts)
                die("malloc");
            CHECK(cvae_dataset_images_f32(test, 0, K, x));
            int32_t cl;
            for (int i = 0; i < 20; i++)
                CHECK(cvae_model_predict(lm, x + (size_t)(i % K) * P, 1, &cl));
            for (int i = 0; i < K; i++) {
                double t0 = now();
                CHECK(cvae_model_predict(lm, x + (size_t)i * P, 1, &cl));
                ts[i] = now() - t0;
            }
            printf("RESULT latency_ms %.4f\n", median(ts, K) * 1e3);
            free(x);
            free(ts);
            cvae_model_destroy(lm);
            cvae_config_destroy(lc);
        }
        cvae_dataset_destroy(test);
    }

    if (o.breakdown > 0 || o.gemm > 0) {
        /* fixed batches of the training set, the same for every round */
        int64_t *idx = malloc((size_t)8 * m->B * sizeof *idx);
        if (!idx)
            die("malloc");
        for (int i = 0; i < 8 * m->B; i++)
            idx[i] = (int64_t)i * 7 % 60000;
        cvae_optimizer *opt;
        CHECK(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0.0, &opt));
        CHECK(cvae__optimizer_bind(opt, m->nparams, cvae__layout_id(m)));
        real_step(m, train, idx, m->B, opt);
        if (o.breakdown > 0)
            breakdown(m, train, idx, opt, o.breakdown);
        if (o.gemm > 0) {
            static trace t;
            memset(&t, 0, sizeof t);
            real_step(m, train, idx, m->B, opt);
            double t0 = now();
            cvae__gemm_set_trace(trace_fn, &t);
            real_step(m, train, idx, m->B, opt);
            cvae__gemm_set_trace(NULL, NULL);
            double step = now() - t0;
            if (t.overflow)
                printf("note: more than %d GEMM shapes, some not replayed\n", MAX_SHAPES);
            double rate = replay(&t, o.gemm, 1);
            printf("RESULT traced_flops_per_image %.0f\n", t.flops / m->B);
            printf("RESULT traced_gemm_share %.3f\n", t.seconds / step);
            printf("RESULT gemm_step_shapes_gflops %.2f\n", rate);
            printf("RESULT gemm_2000_gflops %.2f\n", square_gemm(2000, o.gemm < 5 ? o.gemm : 5));
        }
        cvae_optimizer_destroy(opt);
        free(idx);
    }
    cvae_model_destroy(m);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(train);
    return 0;
}
