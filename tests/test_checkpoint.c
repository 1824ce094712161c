/* Model checkpoints: a saved and reloaded model predicts bit-identically and
 * keeps its configuration and training progress; truncated, altered or
 * foreign files are rejected with CVAE_E_FORMAT; a failed save leaves the
 * previous checkpoint byte-identical. Loading allocates no activation
 * workspace: every entry point that runs a loaded model allocates it first
 * (same results as a created model's), a small file whose config asks for
 * gigabytes loads in a few kilobytes, and a workspace allocation that fails
 * returns CVAE_E_NOMEM and leaves the model usable. */
#define _XOPEN_SOURCE 700 /* nftw (testfile.h) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "convvae.h"
#include "core/rng.h"
#include "model/model.h"
#include "training/optimizer.h"
#include "testfile.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif
#ifdef TEST_ASAN
/* test_workspace_nomem_then_retry makes an allocation fail on purpose
 * (RLIMIT_AS); ASan must return NULL then, as malloc does, instead of
 * reporting it as a fatal error. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

enum { N = 40 };

static char dir[64];

/* The data set the small models train on (N random 8x8 images). */
static cvae_dataset *small_data(float **x_out)
{
    float *x = malloc(N * 64 * sizeof *x);
    cvae__rng r;
    cvae__rng_seed(&r, 3);
    for (int i = 0; i < N * 64; i++)
        x[i] = cvae__rng_uniform(&r);
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, N, 1, 8, 8, NULL, &d), CVAE_OK);
    *x_out = x;
    return d;
}

/* A small two-branch model, untrained, with the given optimizer and the
 * augmentation's intensity gain (< 0: the default). */
static cvae_model *small_model_gain(const char *optimizer, double gain)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 8, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_branches(c, 2), CVAE_OK);
    assert_int_equal(cvae_config_set_conv_branch(c, 1, 2, 3, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_conv_branch(c, 2, 1, 4, 5), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, 4), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set(c, "learning-rate", "0.003"), CVAE_OK);
    assert_int_equal(cvae_config_set(c, "optimizer", optimizer), CVAE_OK);
    if (gain >= 0)
        assert_int_equal(cvae_config_set_augment_gain(c, gain), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_config_destroy(c);
    return m;
}

static cvae_model *small_model(const char *optimizer) { return small_model_gain(optimizer, -1); }

static cvae_model *small_trained_model(cvae_dataset **data_out, float **x_out)
{
    cvae_model *m = small_model("adam");
    cvae_dataset *d = small_data(x_out);
    assert_int_equal(cvae_model_train(m, d, 2, NULL, NULL, NULL), CVAE_OK);
    *data_out = d;
    return m;
}

/* A small trained model saved to <dir>/<stem>.safetensors and read back,
 * with a second path for the damaged copies the corruption tests write. */
struct saved_file {
    cvae_dataset *d;
    float *x;
    cvae_model *m;
    char path[128], bad[128];
    unsigned char *buf;
    size_t len;
};

static void saved_file_open(struct saved_file *f, const char *stem)
{
    f->m = small_trained_model(&f->d, &f->x);
    snprintf(f->path, sizeof f->path, "%s/%s.safetensors", dir, stem);
    snprintf(f->bad, sizeof f->bad, "%s/%s-bad.safetensors", dir, stem);
    assert_int_equal(cvae_model_save(f->m, f->path), CVAE_OK);
    f->buf = read_file(f->path, &f->len);
}

static void saved_file_close(struct saved_file *f)
{
    free(f->buf);
    cvae_model_destroy(f->m);
    cvae_dataset_destroy(f->d);
    free(f->x);
    unlink(f->path);
    unlink(f->bad);
}

static void test_roundtrip_bit_identical(void **state)
{
    (void)state;
    cvae_dataset *d;
    float *x;
    cvae_model *m = small_trained_model(&d, &x);
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    cvae_model *r;
    assert_int_equal(cvae_model_load(path, &r), CVAE_OK);

    float pa[N * 4], pb[N * 4], ma[N * 3], mb[N * 3];
    assert_int_equal(cvae_model_predict_proba(m, x, N, pa), CVAE_OK);
    assert_int_equal(cvae_model_predict_proba(r, x, N, pb), CVAE_OK);
    assert_memory_equal(pa, pb, sizeof pa);
    assert_int_equal(cvae_model_encode(m, x, N, ma, NULL), CVAE_OK);
    assert_int_equal(cvae_model_encode(r, x, N, mb, NULL), CVAE_OK);
    assert_memory_equal(ma, mb, sizeof ma);

    int e;
    assert_int_equal(cvae_model_epochs_done(r, &e), CVAE_OK);
    assert_int_equal(e, 2);
    cvae_config *c;
    char buf[32];
    assert_int_equal(cvae_model_get_config(r, &c), CVAE_OK);
    assert_int_equal(cvae_config_get(c, "branch1_layers", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "2");
    assert_int_equal(cvae_config_get(c, "learning_rate", buf, sizeof buf), CVAE_OK);
    assert_string_equal(buf, "0.003");
    cvae_config_destroy(c);

    /* Training continues from the loaded state exactly as from the original:
     * same RNG stream, same weights (fresh optimizers on both sides). */
    cvae_optimizer *oa, *ob;
    assert_int_equal(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, &oa), CVAE_OK);
    assert_int_equal(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, &ob), CVAE_OK);
    assert_int_equal(cvae_model_train(m, d, 1, oa, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_train(r, d, 1, ob, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_predict_proba(m, x, N, pa), CVAE_OK);
    assert_int_equal(cvae_model_predict_proba(r, x, N, pb), CVAE_OK);
    assert_memory_equal(pa, pb, sizeof pa);

    cvae_optimizer_destroy(oa);
    cvae_optimizer_destroy(ob);
    cvae_model_destroy(r);
    cvae_model_destroy(m);
    cvae_dataset_destroy(d);
    free(x);
    unlink(path);
}

static void test_corrupt_files_rejected(void **state)
{
    (void)state;
    struct saved_file f;
    saved_file_open(&f, "c");
    const char *bad = f.bad;
    unsigned char *buf = f.buf;
    size_t len = f.len;
    if (len < 64) { /* also tells gcc the edits below stay inside alt */
        fail_msg("checkpoint of %zu bytes", len);
        return;
    }
    cvae_model *r = (cvae_model *)1;

    /* truncated at a spread of offsets, header and data */
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        write_file(bad, buf, cut);
        assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
        assert_null(r);
        assert_true(strlen(cvae_last_error()) > 0);
    }
    /* a tensor renamed: the file is valid safetensors but not this model */
    unsigned char *alt = malloc(len);
    memcpy(alt, buf, len);
    char *hit = strstr((char *)alt + 8, "\"means\"");
    assert_non_null(hit);
    memcpy(hit, "\"meanz\"", 7);
    write_file(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    assert_non_null(strstr(cvae_last_error(), "means"));
    /* a shape altered in the header: offsets no longer match */
    memcpy(alt, buf, len);
    hit = strstr((char *)alt + 8, "\"shape\":[4,3]");
    assert_non_null(hit);
    hit[9] = '5';
    write_file(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    /* foreign format name */
    memcpy(alt, buf, len);
    hit = strstr((char *)alt + 8, "convvae-checkpoint-1");
    assert_non_null(hit);
    hit[0] = 'k';
    write_file(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    assert_int_equal(cvae_model_load("/nonexistent/x.safetensors", &r), CVAE_E_IO);

    free(alt);
    saved_file_close(&f);
}

static void test_failed_save_keeps_previous(void **state)
{
    (void)state;
    cvae_dataset *d;
    float *x;
    cvae_model *m = small_trained_model(&d, &x);
    char path[128], blocker[128], inside[160];
    snprintf(path, sizeof path, "%s/keep.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    size_t len0, len1;
    unsigned char *before = read_file(path, &len0);
    /* train on, then save where it cannot succeed: a path whose parent is a
     * regular file (works as root too, unlike a read-only directory) */
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    snprintf(blocker, sizeof blocker, "%s/blocker", dir);
    write_file(blocker, (const unsigned char *)"x", 1);
    snprintf(inside, sizeof inside, "%s/m.safetensors", blocker);
    assert_int_equal(cvae_model_save(m, inside), CVAE_E_IO);
    assert_true(strlen(cvae_last_error()) > 0);
    unsigned char *after = read_file(path, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
    cvae_model_destroy(m);
    cvae_dataset_destroy(d);
    free(x);
    unlink(path);
    unlink(blocker);
}

/* Each entry point that runs the network, called first on a freshly loaded
 * model (so it is the one that allocates the workspace), gives the same
 * bits as on the created model it was saved from. */
static void test_lazy_workspace_every_entry_point(void **state)
{
    (void)state;
    cvae_dataset *d;
    float *x;
    cvae_model *m = small_trained_model(&d, &x);
    int32_t labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = i % 4;
    cvae_dataset *ld;
    assert_int_equal(cvae_dataset_from_f32(x, N, 1, 8, 8, labels, &ld), CVAE_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/lazy.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);

    enum { CALLS = 9 };
    static float f[2][N * 64], g[2][N * 3];
    int32_t cl[2][N];
    double v[2][CVAE_LOSS_COUNT];
    for (int call = 0; call < CALLS; call++) {
        cvae_model *r;
        assert_int_equal(cvae_model_load(path, &r), CVAE_OK);
        assert_null(r->ws.base);
        cvae_model *pm[2] = {m, r};
        memset(f, 0, sizeof f);
        memset(g, 0, sizeof g);
        memset(cl, 0, sizeof cl);
        memset(v, 0, sizeof v);
        for (int k = 0; k < 2; k++) {
            cvae_model *q = pm[k];
            cvae_optimizer *opt;
            switch (call) {
            case 0:
                assert_int_equal(cvae_model_encode(q, x, N, f[k], g[k]), CVAE_OK);
                break;
            case 1:
                assert_int_equal(cvae_model_predict(q, x, N, cl[k]), CVAE_OK);
                break;
            case 2:
                assert_int_equal(cvae_model_predict_proba(q, x, N, f[k]), CVAE_OK);
                break;
            case 3:
                assert_int_equal(cvae_model_reconstruct(q, x, N, f[k]), CVAE_OK);
                break;
            case 4:
                assert_int_equal(cvae_model_predict_dataset(q, d, cl[k], f[k]), CVAE_OK);
                break;
            case 5:
                assert_int_equal(cvae_model_evaluate(q, ld, &v[k][0], &v[k][1], &v[k][2],
                                                     &v[k][3]),
                                 CVAE_OK);
                break;
            case 6:
                assert_int_equal(cvae_model_loss(q, d, v[k], CVAE_LOSS_COUNT), CVAE_OK);
                break;
            case 7:
                assert_int_equal(cvae_model_generate(q, 1, N, 77, f[k]), CVAE_OK);
                break;
            case 8: /* last: it changes m */
                assert_int_equal(cvae_optimizer_create_adam(1e-3, 0.9, 0.999, 1e-8, 0, &opt),
                                 CVAE_OK);
                assert_int_equal(cvae_model_train(q, d, 1, opt, NULL, NULL), CVAE_OK);
                cvae_optimizer_destroy(opt);
                assert_int_equal(cvae_model_predict_proba(q, x, N, f[k]), CVAE_OK);
                break;
            }
        }
        assert_non_null(r->ws.base);
        assert_int_equal(r->ws.cap, cvae__model_workspace_bytes(r));
        assert_memory_equal(f[0], f[1], sizeof f[0]);
        assert_memory_equal(g[0], g[1], sizeof g[0]);
        assert_memory_equal(cl[0], cl[1], sizeof cl[0]);
        assert_memory_equal(v[0], v[1], sizeof v[0]);
        cvae_model_destroy(r);
    }
    cvae_model_destroy(m);
    cvae_dataset_destroy(d);
    cvae_dataset_destroy(ld);
    free(x);
    unlink(path);
}

/* Virtual memory of this process in bytes (0 if /proc is not there). */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* A 9 KB checkpoint whose config asks for a 2.9 GB workspace: 16x16
 * images, one branch of 16 single-filter conv layers, widths of 1 and
 * batch size 65536. Written from a shell model (parameters only), as a
 * file crafted by hand would be. */
static void write_big_workspace_checkpoint(const char *path)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 16, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_branches(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_conv_branch(c, 1, 16, 1, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 1), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, 2), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, 65536), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae__model_shell(c, &m), CVAE_OK);
    cvae_config_destroy(c);
    assert_int_equal(cvae__model_alloc_params(m), CVAE_OK);
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    cvae__rng_uniform_fill(&r, m->params, (int64_t)m->nparams, 0.5f);
    assert_true(cvae__model_workspace_bytes(m) > ((size_t)2 << 30));
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    cvae_model_destroy(m);
}

static void test_big_workspace_config_loads_small(void **state)
{
    (void)state;
    char path[128], copy[128];
    snprintf(path, sizeof path, "%s/big.safetensors", dir);
    snprintf(copy, sizeof copy, "%s/big2.safetensors", dir);
    write_big_workspace_checkpoint(path);
    size_t len;
    free(read_file(path, &len));
    assert_true(len < 16384);

    struct rusage ru0, ru1;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru0), 0);
    size_t vm0 = vm_size();
    cvae_model *m;
    assert_int_equal(cvae_model_load(path, &m), CVAE_OK);
    size_t vm1 = vm_size();
    assert_int_equal(getrusage(RUSAGE_SELF, &ru1), 0);
    print_message("%zu-byte checkpoint, %zu-byte workspace: loading grew the address space by "
                  "%zd KB, peak RSS by %ld KB\n",
                  len, cvae__model_workspace_bytes(m), ((ssize_t)vm1 - (ssize_t)vm0) / 1024,
                  ru1.ru_maxrss - ru0.ru_maxrss);
    /* before, loading reserved the whole workspace */
    assert_null(m->ws.base);
    assert_true(vm1 < vm0 + ((size_t)64 << 20));
    assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 64 * 1024);

    /* The first inference allocates 2.9 GB (untouched but for one image):
     * whether the system grants it depends on its overcommit policy and
     * address space, so either outcome is right if it is clean. */
    float img[256];
    for (int i = 0; i < 256; i++)
        img[i] = (float)i / 255.0f;
    int32_t y = -1;
    cvae_status st = cvae_model_predict(m, img, 1, &y);
    print_message("first predict: %s\n", st ? cvae_last_error() : "ok");
    if (st == CVAE_OK) {
        assert_true(y == 0 || y == 1);
        assert_non_null(m->ws.base);
    } else {
        assert_int_equal(st, CVAE_E_NOMEM);
        assert_non_null(strstr(cvae_last_error(), "workspace"));
        assert_null(m->ws.base);
    }
    /* usable either way */
    assert_int_equal(cvae_model_save(m, copy), CVAE_OK);
    cvae_model *r;
    assert_int_equal(cvae_model_load(copy, &r), CVAE_OK);
    cvae_model_destroy(r);
    cvae_model_destroy(m);
    unlink(path);
    unlink(copy);
}

/* A workspace allocation that fails (the address space limited below it)
 * returns CVAE_E_NOMEM and changes nothing; the model still saves, and once
 * memory is there again the same call goes through. */
static void test_workspace_nomem_then_retry(void **state)
{
    (void)state;
    char path[128], copy[128];
    snprintf(path, sizeof path, "%s/nomem.safetensors", dir);
    snprintf(copy, sizeof copy, "%s/nomem2.safetensors", dir);
    write_big_workspace_checkpoint(path);
    cvae_model *m;
    assert_int_equal(cvae_model_load(path, &m), CVAE_OK);
    float img[256];
    for (int i = 0; i < 256; i++)
        img[i] = (float)i / 255.0f;
    int32_t y = -1;

    struct rlimit old;
    size_t vm = vm_size();
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    rlim_t lim = (rlim_t)vm + ((rlim_t)256 << 20);
    if (vm == 0 || (old.rlim_max != RLIM_INFINITY && old.rlim_max < lim)) {
        cvae_model_destroy(m);
        unlink(path);
        print_message("skipped: cannot limit the address space (/proc missing or hard limit)\n");
        skip();
        return;
    }
    /* No assertion until the limit is restored: a failing one would leave
     * the rest of the test binary without memory. */
    struct rlimit low = {lim, old.rlim_max};
    int set = setrlimit(RLIMIT_AS, &low);
    cvae_status st1 = cvae_model_predict(m, img, 1, &y);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", cvae_last_error());
    int ws_after1 = m->ws.base != NULL;
    cvae_status st2 = cvae_model_predict(m, img, 1, &y);
    cvae_status save = cvae_model_save(m, copy);
    int restored = setrlimit(RLIMIT_AS, &old);
    assert_int_equal(set, 0);
    assert_int_equal(restored, 0);

    print_message("under RLIMIT_AS: %s\n", msg);
    assert_int_equal(st1, CVAE_E_NOMEM);
    assert_non_null(strstr(msg, "workspace"));
    assert_false(ws_after1);
    assert_int_equal(st2, CVAE_E_NOMEM);
    assert_int_equal(y, -1);
    assert_int_equal(save, CVAE_OK);
    cvae_model *r;
    assert_int_equal(cvae_model_load(copy, &r), CVAE_OK);
    assert_memory_equal(r->params, m->params, m->nparams * sizeof(float));
    cvae_model_destroy(r);

    /* the retry: granted where the system overcommits (as Linux does by
     * default), NOMEM again where it cannot, clean either way */
    cvae_status st3 = cvae_model_predict(m, img, 1, &y);
    print_message("retry without the limit: %s\n", st3 ? cvae_last_error() : "ok");
    if (st3 == CVAE_OK) {
        assert_true(y == 0 || y == 1);
        assert_int_equal(m->ws.cap, cvae__model_workspace_bytes(m));
    } else {
        assert_int_equal(st3, CVAE_E_NOMEM);
    }
    cvae_model_destroy(m);
    unlink(path);
    unlink(copy);
}

/* Train 2 epochs == train 1, save, load, train 1: weights, optimizer steps
 * and RNG bit-identical, for Adam and SGD. Without the optimizer state
 * (cleared before the save) the resumed weights differ, which shows the
 * comparison can fail. */
static void resume_case(const char *optimizer)
{
    float *x;
    cvae_dataset *d = small_data(&x);
    cvae_model *a = small_model(optimizer), *b = small_model(optimizer);
    assert_int_equal(cvae_model_train(a, d, 2, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_train(b, d, 1, NULL, NULL, NULL), CVAE_OK);
    char path[128], path2[128];
    snprintf(path, sizeof path, "%s/resume-%s.safetensors", dir, optimizer);
    snprintf(path2, sizeof path2, "%s/resume-%s-weights.safetensors", dir, optimizer);
    assert_int_equal(cvae_model_save(b, path), CVAE_OK);
    assert_int_equal(cvae_model_clear_optimizer(b), CVAE_OK);
    assert_int_equal(cvae_model_save(b, path2), CVAE_OK);
    cvae_model_destroy(b);

    int64_t steps_a, steps_r;
    cvae_model *r, *w;
    assert_int_equal(cvae_model_load(path, &r), CVAE_OK);
    assert_int_equal(cvae_model_optimizer_steps(r, &steps_r), CVAE_OK);
    assert_int_equal(steps_r, (N + 15) / 16); /* one epoch of batches of 16 */
    assert_int_equal(cvae_model_train(r, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_optimizer_steps(a, &steps_a), CVAE_OK);
    assert_int_equal(cvae_model_optimizer_steps(r, &steps_r), CVAE_OK);
    assert_int_equal(steps_a, steps_r);
    assert_int_equal(a->nparams, r->nparams);
    assert_memory_equal(a->params, r->params, a->nparams * sizeof(float));
    assert_memory_equal(a->own_opt->m, r->own_opt->m, a->nparams * sizeof(float));
    if (a->own_opt->v)
        assert_memory_equal(a->own_opt->v, r->own_opt->v, a->nparams * sizeof(float));
    assert_memory_equal(a->rng.s, r->rng.s, sizeof a->rng.s);

    assert_int_equal(cvae_model_load(path2, &w), CVAE_OK);
    assert_int_equal(cvae_model_optimizer_steps(w, &steps_r), CVAE_OK);
    assert_int_equal(steps_r, 0);
    assert_int_equal(cvae_model_train(w, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_memory_not_equal(a->params, w->params, a->nparams * sizeof(float));

    cvae_model_destroy(a);
    cvae_model_destroy(r);
    cvae_model_destroy(w);
    cvae_dataset_destroy(d);
    free(x);
    unlink(path);
    unlink(path2);
}

static void test_resume_same_as_uninterrupted_adam(void **state)
{
    (void)state;
    resume_case("adam");
}

static void test_resume_same_as_uninterrupted_sgd(void **state)
{
    (void)state;
    resume_case("sgd");
}

/* What a saved file holds: with state, one tensor per parameter and moment
 * under PyTorch's state names and optimizer_steps; after clearing, none of
 * it, and a third of the size. A model that never trained has no state. */
static void test_optimizer_state_contents(void **state)
{
    (void)state;
    cvae_dataset *d;
    float *x;
    cvae_model *m = small_trained_model(&d, &x);
    char path[128];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    size_t full, weights, fresh; /* bytes: with state, weights only, untrained */
    unsigned char *buf = read_file(path, &full);
    const char *hdr = (const char *)buf + 8;
    assert_non_null(strstr(hdr, "\"optimizer.exp_avg.means\":{\"dtype\":\"F32\",\"shape\":[4,3]"));
    assert_non_null(strstr(hdr, "\"optimizer.exp_avg_sq.branch2.conv1.weight\""));
    assert_non_null(strstr(hdr, "\"optimizer_steps\":\"6\"")); /* 2 epochs x 3 batches */
    free(buf);

    assert_int_equal(cvae_model_clear_optimizer(m), CVAE_OK);
    assert_int_equal(cvae_model_clear_optimizer(m), CVAE_OK); /* twice is fine */
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    buf = read_file(path, &weights);
    assert_null(strstr((const char *)buf + 8, "\"optimizer."));
    assert_null(strstr((const char *)buf + 8, "\"optimizer_steps\""));
    free(buf);
    int64_t params;
    assert_int_equal(cvae_model_num_params(m, &params), CVAE_OK);
    /* two moments of 4 bytes per parameter, plus their header entries */
    assert_true(full - weights >= 8 * (size_t)params);
    assert_true(full - weights < 8 * (size_t)params + 8192);
    cvae_model_destroy(m);

    m = small_model("adam");
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    buf = read_file(path, &fresh);
    assert_int_equal(fresh, weights);
    assert_null(strstr((const char *)buf + 8, "\"optimizer."));
    assert_null(strstr((const char *)buf + 8, "\"optimizer_steps\""));
    free(buf);
    int64_t steps = -1;
    assert_int_equal(cvae_model_optimizer_steps(m, &steps), CVAE_OK);
    assert_int_equal(steps, 0);
    assert_int_equal(cvae_model_optimizer_steps(NULL, &steps), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_optimizer_steps(m, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_model_clear_optimizer(NULL), CVAE_E_INVALID_ARG);
    cvae_model_destroy(m);
    cvae_dataset_destroy(d);
    free(x);
    unlink(path);
}

/* The file with the first occurrence of from replaced by to (same length). */
static void write_edited(const char *path, const unsigned char *buf, size_t len, const char *from,
                         const char *to)
{
    unsigned char *c = malloc(len);
    memcpy(c, buf, len);
    size_t fl = strlen(from);
    assert_int_equal(fl, strlen(to));
    char *hit = NULL;
    for (size_t i = 8; !hit && i + fl <= len; i++)
        if (memcmp(c + i, from, fl) == 0)
            hit = (char *)c + i;
    assert_non_null(hit);
    memcpy(hit, to, fl);
    write_file(path, c, len);
    free(c);
}

/* Offset in the file of tensor name's first float. */
static size_t tensor_data(const unsigned char *buf, const char *name)
{
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    char key[128];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *t = strstr((const char *)buf + 8, key);
    assert_non_null(t);
    const char *o = strstr(t, "\"data_offsets\":[");
    assert_non_null(o);
    return 8 + (size_t)hl + (size_t)strtoull(o + 16, NULL, 10);
}

/* Rename the checksum key in a checkpoint's bytes (same length), making it
 * a file without checksums, as other writers and older versions make them. */
static void strip_checksum(unsigned char *buf, size_t len)
{
    static const char key[] = "\"tensors_crc32\"";
    for (size_t i = 8; i + sizeof key - 1 <= len; i++)
        if (memcmp(buf + i, key, sizeof key - 1) == 0) {
            buf[i + 13] = 'x';
            return;
        }
    fail_msg("no checksum key in the checkpoint");
}

/* A checkpoint from before an option existed loads with the value its
 * training had: here the augmentation's intensity gain, whose key (blanked
 * to spaces, still valid JSON) such a file lacks, is 0. */
static void test_missing_gain_key_is_no_gain(void **state)
{
    (void)state;
    cvae_model *m = small_model_gain("adam", 0.5);
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/gain.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/gain-bad.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    cvae_model_destroy(m);
    size_t len;
    unsigned char *buf = read_file(path, &len);
    cvae_config *c;
    double g = -1;
    cvae_model *r = NULL;
    assert_int_equal(cvae_model_load(path, &r), CVAE_OK);
    assert_int_equal(cvae_model_get_config(r, &c), CVAE_OK);
    assert_int_equal(cvae_config_get_augment_gain(c, &g), CVAE_OK);
    assert_true(g == 0.5); /* what it was saved with */
    cvae_config_destroy(c);
    cvae_model_destroy(r);

    static const char key[] = "\\\"augment_gain\\\":";
    size_t at = 0;
    for (size_t i = 8; i + sizeof key - 1 <= len && !at; i++)
        if (memcmp(buf + i, key, sizeof key - 1) == 0)
            at = i;
    assert_true(at > 0);
    size_t end = at + sizeof key - 1;
    while (end < len && buf[end] != ',')
        end++;
    memset(buf + at, ' ', end + 1 - at);
    write_file(bad, buf, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_OK);
    assert_int_equal(cvae_model_get_config(r, &c), CVAE_OK);
    assert_int_equal(cvae_config_get_augment_gain(c, &g), CVAE_OK);
    assert_true(g == 0);
    cvae_config_destroy(c);
    cvae_model_destroy(r);
    free(buf);
    unlink(path);
    unlink(bad);
}

/* Damage is found: one flipped bit in any tensor (the checksum names it),
 * and a NaN or infinity in a weight, whether the file has checksums (saved
 * from a model holding it) or not (written by another tool). A file
 * without checksums loads and predicts the same. */
static void test_damaged_weights_rejected(void **state)
{
    (void)state;
    struct saved_file f;
    saved_file_open(&f, "dmg");
    unsigned char *alt = malloc(f.len);
    cvae_model *r = (cvae_model *)1;
    const cvae_model *m = f.m;

    /* a bit flipped in the first float of every parameter tensor */
    for (int i = 0; i < m->nparam; i++) {
        const char *name = m->ptab[i].name;
        memcpy(alt, f.buf, f.len);
        alt[tensor_data(f.buf, name) + (size_t)i % 4] ^= (unsigned char)(1u << (i % 8));
        write_file(f.bad, alt, f.len);
        assert_int_equal(cvae_model_load(f.bad, &r), CVAE_E_FORMAT);
        assert_null(r);
        char want[160];
        snprintf(want, sizeof want, "tensor \"%s\" is damaged", name);
        if (!strstr(cvae_last_error(), want))
            fail_msg("flipped bit in %s: '%s'", name, cvae_last_error());
    }

    /* without checksums the model loads and predicts bit-identically */
    memcpy(alt, f.buf, f.len);
    strip_checksum(alt, f.len);
    write_file(f.bad, alt, f.len);
    assert_int_equal(cvae_model_load(f.bad, &r), CVAE_OK);
    float pa[N * 4], pb[N * 4];
    assert_int_equal(cvae_model_predict_proba(f.m, f.x, N, pa), CVAE_OK);
    assert_int_equal(cvae_model_predict_proba(r, f.x, N, pb), CVAE_OK);
    assert_memory_equal(pa, pb, sizeof pa);
    cvae_model_destroy(r);

    /* non-finite weights in a file without checksums */
    const float bad_vals[3] = {strtof("nan", NULL), strtof("inf", NULL), -strtof("inf", NULL)};
    const char *tensors[3] = {"encoder.weight", "mu.bias", "decoder2.bias"};
    for (int i = 0; i < 3; i++) {
        assert_non_null(strstr((const char *)f.buf + 8, tensors[i]));
        memcpy(alt, f.buf, f.len);
        strip_checksum(alt, f.len);
        memcpy(alt + tensor_data(f.buf, tensors[i]) + 4, &bad_vals[i], sizeof(float));
        write_file(f.bad, alt, f.len);
        r = (cvae_model *)1;
        assert_int_equal(cvae_model_load(f.bad, &r), CVAE_E_FORMAT);
        assert_null(r);
        char want[160];
        snprintf(want, sizeof want, "weight %s[1]", tensors[i]);
        if (!strstr(cvae_last_error(), want) || !strstr(cvae_last_error(), "not finite"))
            fail_msg("%s: '%s'", tensors[i], cvae_last_error());
    }

    /* a NaN saved from the model itself: the checksum is right, the weight
     * is still refused */
    f.m->params[f.m->ptab[0].offset + 2] = strtof("nan", NULL);
    assert_int_equal(cvae_model_save(f.m, f.bad), CVAE_OK);
    r = (cvae_model *)1;
    assert_int_equal(cvae_model_load(f.bad, &r), CVAE_E_FORMAT);
    assert_null(r);
    assert_non_null(strstr(cvae_last_error(), "not finite"));
    assert_non_null(strstr(cvae_last_error(), f.m->ptab[0].name));
    free(alt);
    saved_file_close(&f);
}

/* Optimizer state that would break training is refused: a non-finite
 * moment, a negative second moment, a bad step count, a moment missing
 * (renamed), state without its step count, a step count without state. */
static void test_bad_optimizer_state_rejected(void **state)
{
    (void)state;
    struct saved_file f;
    saved_file_open(&f, "os");
    const char *bad = f.bad;
    unsigned char *buf = f.buf;
    size_t len = f.len;
    unsigned char *alt = malloc(len);
    cvae_model *r = (cvae_model *)1;

    const float nan = strtof("nan", NULL), neg = -1.0f;
    struct {
        const char *tensor;
        const float *value;
        const char *msg;
    } vals[] = {{"optimizer.exp_avg.encoder.weight", &nan, "optimizer.exp_avg.encoder.weight"},
                {"optimizer.exp_avg_sq.mu.bias", &neg, "optimizer.exp_avg_sq.mu.bias"}};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        memcpy(alt, buf, len);
        memcpy(alt + tensor_data(buf, vals[i].tensor), vals[i].value, sizeof(float));
        write_file(bad, alt, len);
        /* the checksum sees the edit first; without it the value is refused */
        assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
        assert_null(r);
        assert_non_null(strstr(cvae_last_error(), "is damaged"));
        assert_non_null(strstr(cvae_last_error(), vals[i].msg));
        strip_checksum(alt, len);
        write_file(bad, alt, len);
        assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
        assert_null(r);
        assert_null(strstr(cvae_last_error(), "is damaged"));
        assert_non_null(strstr(cvae_last_error(), vals[i].msg));
    }
    /* a negative first moment is fine (it is a mean of gradients) */
    memcpy(alt, buf, len);
    memcpy(alt + tensor_data(buf, "optimizer.exp_avg.mu.bias"), &neg, sizeof(float));
    strip_checksum(alt, len);
    write_file(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_OK);
    cvae_model_destroy(r);

    const char *edits[][3] = {
        {"\"optimizer_steps\":\"6\"", "\"optimizer_steps\":\"x\"", "optimizer_steps"},
        {"\"optimizer_steps\":\"6\"", "\"optimizer_steps\":\"-\"", "optimizer_steps"},
        {"\"optimizer.exp_avg_sq.means\"", "\"optimizer.exp_avg_sq.meanz\"", "means"},
        {"\"optimizer_steps\"", "\"optimizer_stepz\"", "tensors"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        write_edited(bad, buf, len, edits[i][0], edits[i][1]);
        r = (cvae_model *)1;
        assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
        assert_null(r);
        assert_non_null(strstr(cvae_last_error(), edits[i][2]));
    }
    /* a step count without the state: weights-only file plus the key */
    assert_int_equal(cvae_model_clear_optimizer(f.m), CVAE_OK);
    assert_int_equal(cvae_model_save(f.m, f.path), CVAE_OK);
    free(f.buf);
    buf = f.buf = read_file(f.path, &f.len);
    len = f.len;
    char from[64], to[64];
    snprintf(from, sizeof from, "\"library_version\":\"%s\"", cvae_version_string());
    snprintf(to, sizeof to, "\"optimizer_steps\":\"%0*d\"", (int)strlen(cvae_version_string()), 1);
    write_edited(bad, buf, len, from, to);
    r = (cvae_model *)1;
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    assert_null(r);
    assert_non_null(strstr(cvae_last_error(), "optimizer state"));
    free(alt);
    saved_file_close(&f);
}

static int stop_at_batch(void *user, int epoch, int64_t batch, int64_t batches,
                         const double *losses, int num_losses)
{
    (void)epoch, (void)batches, (void)losses, (void)num_losses;
    const int64_t *stop = user;
    return batch == *stop;
}

/* An epoch stopped part way is finished by the next train call, in the same
 * order, also across a save and load: train 2 epochs == train 1, stop the
 * second after batch 2 (of 3), save, load, train 1 -- bit for bit, with the
 * running losses the callback sees going on from where they were. A
 * different data set size starts a fresh epoch instead; a stop after the
 * last batch completes the epoch. */
static void test_stopped_epoch_is_finished_exactly(void **state)
{
    (void)state;
    float *x;
    cvae_dataset *d = small_data(&x);
    cvae_model *a = small_model("adam"), *b = small_model("adam"), *c = small_model("adam");
    assert_int_equal(cvae_model_train(a, d, 2, NULL, NULL, NULL), CVAE_OK);
    int64_t stop = 2;
    assert_int_equal(cvae_model_train(b, d, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_train(b, d, 1, NULL, stop_at_batch, &stop), CVAE_E_CANCELLED);
    int e;
    assert_int_equal(cvae_model_epochs_done(b, &e), CVAE_OK);
    assert_int_equal(e, 1);
    assert_int_equal(b->part.batches, 2);
    char path[128];
    snprintf(path, sizeof path, "%s/part.safetensors", dir);
    assert_int_equal(cvae_model_save(b, path), CVAE_OK);
    cvae_model *r;
    assert_int_equal(cvae_model_load(path, &r), CVAE_OK);
    assert_int_equal(r->part.batches, 2);
    assert_memory_equal(r->part.sums, b->part.sums, sizeof b->part.sums);
    /* a stopped epoch that is incomplete or impossible is refused */
    {
        size_t len;
        unsigned char *buf = read_file(path, &len);
        char bad[160];
        snprintf(bad, sizeof bad, "%s/part-bad.safetensors", dir);
        const char *edits[][2] = {
            {"\"epoch_part\":\"2 40 32\"", "\"epoch_part\":\"0 40 32\""},
            {"\"epoch_part\":\"2 40 32\"", "\"epoch_part\":\"3 40 32\""},
            {"\"epoch_part\":\"2 40 32\"", "\"epoch_part\":\"2 40 31\""},
            {"\"epoch_part\":\"2 40 32\"", "\"epoch_part\":\"2 32 32\""},
            {"\"epoch_part\":\"2 40 32\"", "\"epoch_part\":\"2 40 3x\""},
            {"\"epoch_part_rng\"", "\"epoch_part_rnh\""},
            {"\"epoch_part_sums\"", "\"epoch_part_sumz\""},
        };
        for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
            write_edited(bad, buf, len, edits[i][0], edits[i][1]);
            cvae_model *q = (cvae_model *)1;
            assert_int_equal(cvae_model_load(bad, &q), CVAE_E_FORMAT);
            assert_null(q);
            assert_non_null(strstr(cvae_last_error(), "epoch_part"));
        }
        unlink(bad);
        free(buf);
    }
    /* in memory and from the file */
    cvae_model *cont[2] = {b, r};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(cvae_model_train(cont[k], d, 1, NULL, NULL, NULL), CVAE_OK);
        assert_int_equal(cvae_model_epochs_done(cont[k], &e), CVAE_OK);
        assert_int_equal(e, 2);
        assert_int_equal(cont[k]->part.batches, 0);
        assert_memory_equal(a->params, cont[k]->params, a->nparams * sizeof(float));
        assert_memory_equal(a->own_opt->v, cont[k]->own_opt->v, a->nparams * sizeof(float));
        assert_memory_equal(a->rng.s, cont[k]->rng.s, sizeof a->rng.s);
    }
    /* a finished epoch leaves nothing behind in the file */
    assert_int_equal(cvae_model_save(r, path), CVAE_OK);
    size_t len;
    unsigned char *buf = read_file(path, &len);
    assert_null(strstr((const char *)buf + 8, "epoch_part"));
    free(buf);

    /* another data set size: the stopped epoch is dropped, a new one runs */
    assert_int_equal(cvae_model_train(c, d, 1, NULL, stop_at_batch, &stop), CVAE_E_CANCELLED);
    cvae_dataset *half;
    assert_int_equal(cvae_dataset_subset_first(d, N / 2, &half), CVAE_OK);
    assert_int_equal(cvae_model_train(c, half, 1, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_model_epochs_done(c, &e), CVAE_OK);
    assert_int_equal(e, 1);
    int64_t steps;
    assert_int_equal(cvae_model_optimizer_steps(c, &steps), CVAE_OK);
    assert_int_equal(steps, 2 + (N / 2 + 15) / 16);
    /* stopped after the last batch (3 of 3): the epoch counts */
    stop = 3;
    assert_int_equal(cvae_model_train(c, d, 2, NULL, stop_at_batch, &stop), CVAE_E_CANCELLED);
    assert_int_equal(cvae_model_epochs_done(c, &e), CVAE_OK);
    assert_int_equal(e, 2);
    assert_int_equal(c->part.batches, 0);

    cvae_dataset_destroy(half);
    cvae_model_destroy(a);
    cvae_model_destroy(b);
    cvae_model_destroy(c);
    cvae_model_destroy(r);
    cvae_dataset_destroy(d);
    free(x);
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cvae_ckpt_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bit_identical),
        cmocka_unit_test(test_corrupt_files_rejected),
        cmocka_unit_test(test_failed_save_keeps_previous),
        cmocka_unit_test(test_lazy_workspace_every_entry_point),
        cmocka_unit_test(test_big_workspace_config_loads_small),
        cmocka_unit_test(test_workspace_nomem_then_retry),
        cmocka_unit_test(test_resume_same_as_uninterrupted_adam),
        cmocka_unit_test(test_resume_same_as_uninterrupted_sgd),
        cmocka_unit_test(test_optimizer_state_contents),
        cmocka_unit_test(test_bad_optimizer_state_rejected),
        cmocka_unit_test(test_damaged_weights_rejected),
        cmocka_unit_test(test_missing_gain_key_is_no_gain),
        cmocka_unit_test(test_stopped_epoch_is_finished_exactly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
