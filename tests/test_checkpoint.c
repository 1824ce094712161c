/* Model checkpoints: a saved and reloaded model predicts bit-identically and
 * keeps its configuration and training progress; truncated, altered or
 * foreign files are rejected with CVAE_E_FORMAT; a failed save leaves the
 * previous checkpoint byte-identical. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convvae.h"
#include "rng.h"

enum { N = 40 };

static char dir[64];

static cvae_model *small_trained_model(cvae_dataset **data_out, float **x_out)
{
    cvae_config *c;
    assert_int_equal(cvae_config_create(&c), CVAE_OK);
    assert_int_equal(cvae_config_set_input_shape(c, 1, 8, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_branch(c, 0, 2, 3, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_branch(c, 1, 1, 4, 5), CVAE_OK);
    assert_int_equal(cvae_config_set_encoder_units(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_decoder_units(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set_category_units(c, 8), CVAE_OK);
    assert_int_equal(cvae_config_set_latent_dim(c, 3), CVAE_OK);
    assert_int_equal(cvae_config_set_clusters(c, 4), CVAE_OK);
    assert_int_equal(cvae_config_set_batch_size(c, 16), CVAE_OK);
    assert_int_equal(cvae_config_set(c, "learning-rate", "0.003"), CVAE_OK);
    cvae_model *m;
    assert_int_equal(cvae_model_create(c, &m), CVAE_OK);
    cvae_config_destroy(c);

    float *x = malloc(N * 64 * sizeof *x);
    cvae__rng r;
    cvae__rng_seed(&r, 3);
    for (int i = 0; i < N * 64; i++)
        x[i] = cvae__rng_uniform(&r);
    cvae_dataset *d;
    assert_int_equal(cvae_dataset_from_f32(x, N, 1, 8, 8, NULL, &d), CVAE_OK);
    assert_int_equal(cvae_model_train(m, d, 2, NULL, NULL, NULL), CVAE_OK);
    *data_out = d;
    *x_out = x;
    return m;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spit(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
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
    cvae_dataset *d;
    float *x;
    cvae_model *m = small_trained_model(&d, &x);
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    assert_int_equal(cvae_model_save(m, path), CVAE_OK);
    size_t len;
    unsigned char *buf = slurp(path, &len);
    cvae_model *r = (cvae_model *)1;

    /* truncated at a spread of offsets, header and data */
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        spit(bad, buf, cut);
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
    spit(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    assert_non_null(strstr(cvae_last_error(), "means"));
    /* a shape altered in the header: offsets no longer match */
    memcpy(alt, buf, len);
    hit = strstr((char *)alt + 8, "\"shape\":[4,3]");
    assert_non_null(hit);
    hit[9] = '5';
    spit(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    /* foreign format name */
    memcpy(alt, buf, len);
    hit = strstr((char *)alt + 8, "convvae-checkpoint-1");
    assert_non_null(hit);
    hit[0] = 'k';
    spit(bad, alt, len);
    assert_int_equal(cvae_model_load(bad, &r), CVAE_E_FORMAT);
    assert_int_equal(cvae_model_load("/nonexistent/x.safetensors", &r), CVAE_E_IO);

    free(alt);
    free(buf);
    cvae_model_destroy(m);
    cvae_dataset_destroy(d);
    free(x);
    unlink(path);
    unlink(bad);
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
    unsigned char *before = slurp(path, &len0);
    /* train on, then save where it cannot succeed: a path whose parent is a
     * regular file (works as root too, unlike a read-only directory) */
    assert_int_equal(cvae_model_train(m, d, 1, NULL, NULL, NULL), CVAE_OK);
    snprintf(blocker, sizeof blocker, "%s/blocker", dir);
    spit(blocker, (const unsigned char *)"x", 1);
    snprintf(inside, sizeof inside, "%s/m.safetensors", blocker);
    assert_int_equal(cvae_model_save(m, inside), CVAE_E_IO);
    assert_true(strlen(cvae_last_error()) > 0);
    unsigned char *after = slurp(path, &len1);
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

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cvae_ckpt_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bit_identical),
        cmocka_unit_test(test_corrupt_files_rejected),
        cmocka_unit_test(test_failed_save_keeps_previous),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
