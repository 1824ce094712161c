/* Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<name>/):
 * small valid inputs made by the library itself and a few near misses.
 * Crash reproducers found by fuzzing are added to the corpus by hand (named
 * crash-<what>) and are not generated here.
 * Usage: fuzz_gen_corpus <corpus-dir>   (the directory holds idx/,
 * checkpoint/ and config/; existing seeds of the same name are replaced). */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "model/config.h"
#include "model/model.h"
#include "convvae.h"

static const char *root;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s (%s)\n", what, cvae_last_error());
    exit(1);
}

static void put(const char *sub, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        die(path);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* ---- IDX: [flags][labels length, LE u16][labels file][images file] ----- */

typedef struct bytes {
    uint8_t b[8192];
    size_t n;
} bytes;

static void add(bytes *x, const void *p, size_t n)
{
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

static void be32(bytes *x, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    add(x, b, 4);
}

/* IDX images file: count x [c x] h x w bytes of a simple pattern. */
static bytes idx_images(int ndim, uint32_t count, uint32_t c, uint32_t h, uint32_t w)
{
    bytes x = {{0}, 0};
    uint8_t magic[4] = {0, 0, 8, (uint8_t)ndim};
    add(&x, magic, 4);
    be32(&x, count);
    if (ndim == 4)
        be32(&x, c);
    be32(&x, h);
    be32(&x, w);
    size_t n = (size_t)count * (ndim == 4 ? c : 1) * h * w;
    if (n > sizeof x.b - x.n)
        n = 0; /* header only: the caller wants a promise, not the data */
    for (size_t i = 0; i < n; i++)
        x.b[x.n++] = (uint8_t)(i * 37 % 256);
    return x;
}

static bytes idx_labels(uint32_t count)
{
    bytes x = {{0}, 0};
    uint8_t magic[4] = {0, 0, 8, 1};
    add(&x, magic, 4);
    be32(&x, count);
    for (uint32_t i = 0; i < count; i++)
        x.b[x.n++] = (uint8_t)(i % 10);
    return x;
}

static void gz(const bytes *in, bytes *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    zs.next_in = (Bytef *)(uintptr_t)in->b;
    zs.avail_in = (uInt)in->n;
    zs.next_out = out->b;
    zs.avail_out = sizeof out->b;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        die("deflate");
    out->n = zs.total_out;
    deflateEnd(&zs);
}

static void idx_seed(const char *name, uint8_t flags, const bytes *lab, const bytes *img)
{
    bytes x = {{0}, 0};
    size_t l = lab ? lab->n : 0;
    uint8_t prefix[3] = {flags, (uint8_t)(l & 0xFF), (uint8_t)(l >> 8)};
    add(&x, prefix, 3);
    if (lab)
        add(&x, lab->b, lab->n);
    add(&x, img->b, img->n);
    put("idx", name, x.b, x.n);
}

static void idx_corpus(void)
{
    bytes img = idx_images(3, 3, 1, 4, 5), img4 = idx_images(4, 2, 2, 3, 3);
    bytes lab = idx_labels(3), lab2 = idx_labels(2);
    idx_seed("images-raw", 0, NULL, &img);
    idx_seed("images-labels-raw", 1, &lab, &img);
    idx_seed("images-labels-gzip", 1 | 2 | 4, &lab, &img);
    idx_seed("images4d-labels-gzip", 1 | 2, &lab2, &img4);
    idx_seed("images-labels-memory-only", 1 | 8, &lab, &img);
    /* 100 and 10000 images of 28 x 28: padded with zeros to 78 KB (grows
     * the reader's buffer once) and to the 2 MB cap (truncated). */
    bytes big = idx_images(3, 100, 1, 28, 28);
    idx_seed("padded-78k-gzip", 2 | 16, NULL, &big);
    big = idx_images(3, 10000, 1, 28, 28);
    idx_seed("padded-truncated", 16, NULL, &big);
    bytes gi, gl;
    gz(&img, &gi);
    gz(&lab, &gl);
    idx_seed("gzip-files-as-is", 1, &gl, &gi);

    /* near misses */
    bytes t = img;
    t.n--;
    idx_seed("near-truncated", 1, &lab, &t);
    t = img;
    t.b[t.n++] = 7;
    idx_seed("near-trailing-byte", 0, NULL, &t);
    idx_seed("near-count-mismatch", 1, &lab2, &img);
    t = img;
    t.b[11] = 0; /* height 0 */
    idx_seed("near-zero-dim", 0, NULL, &t);
    t = img;
    t.b[2] = 9; /* signed bytes */
    idx_seed("near-element-type", 0, NULL, &t);
    t = img;
    t.b[4] = 0xFF; /* promises 4 billion images */
    idx_seed("near-huge-count", 2, NULL, &t);
    idx_seed("near-labels-as-images", 0, NULL, &lab);
}

/* ---- checkpoints: files the library saves ---------------------------- */

static cvae_model *tiny_model(int branches, const char *recon, int train)
{
    cvae_config *c;
    if (cvae_config_create(&c) || cvae_config_set_input_shape(c, 1, 8, 8) ||
        cvae_config_set_branches(c, branches) ||
        (branches > 0 && cvae_config_set_conv_branch(c, 1, 1, 2, 3)) ||
        (branches > 1 && cvae_config_set_conv_branch(c, 2, 1, 2, 1)) ||
        cvae_config_set_encoder_units(c, 4) || cvae_config_set_decoder_units(c, 4) ||
        cvae_config_set_category_units(c, 3) || cvae_config_set_latent_dim(c, 3) ||
        cvae_config_set_clusters(c, 3) || cvae_config_set_batch_size(c, 4) ||
        cvae_config_set(c, "recon_target", recon))
        die("config");
    cvae_model *m;
    if (cvae_model_create(c, &m))
        die("model");
    cvae_config_destroy(c);
    if (train) {
        float x[6 * 64];
        for (int i = 0; i < 6 * 64; i++)
            x[i] = (float)((i * 37) % 101) / 100.0f;
        cvae_dataset *d;
        if (cvae_dataset_from_f32(x, 6, 1, 8, 8, NULL, &d) ||
            cvae_model_train(m, d, train, NULL, NULL, NULL))
            die("train");
        cvae_dataset_destroy(d);
    }
    return m;
}

static int stop_at_2(void *user, int epoch, int64_t batch, int64_t batches, const double *losses,
                     int num_losses)
{
    (void)user, (void)epoch, (void)batches, (void)losses, (void)num_losses;
    return batch == 2;
}

static uint8_t *saved(const cvae_model *m, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/.gen_corpus_tmp.st", root);
    if (cvae_model_save(m, path))
        die("save");
    uint8_t *b = read_all(path, len);
    unlink(path);
    return b;
}

/* A copy of the file with the first occurrence of from replaced by to (same
 * length, so the header length stays right). */
static void put_edited(const char *name, const uint8_t *b, size_t len, const char *from,
                       const char *to)
{
    size_t fl = strlen(from);
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    for (size_t i = 0; i + fl <= len; i++)
        if (memcmp(c + i, from, fl) == 0) {
            memcpy(c + i, to, fl);
            put("checkpoint", name, c, len);
            free(c);
            return;
        }
    die(name);
}

static void checkpoint_corpus(void)
{
    size_t len;
    cvae_model *m = tiny_model(1, "image", 1);
    uint8_t *b = saved(m, &len);
    put("checkpoint", "tiny-1branch-trained", b, len);
    put("checkpoint", "near-truncated", b, len - 1);
    put_edited("near-format", b, len, "convvae-checkpoint-1", "convvae-checkpoint-2");
    put_edited("near-tensor-name", b, len, "\"mu.bias\"", "\"mu.bia2\"");
    put_edited("near-config", b, len, "latent_dim\\\":3", "latent_dim\\\":4");
    /* trained with its own Adam: the file carries optimizer state */
    put_edited("near-optimizer-steps", b, len, "\"optimizer_steps\"", "\"optimizer_stepz\"");
    put_edited("near-optimizer-moment", b, len, "\"optimizer.exp_avg_sq.means\"",
               "\"optimizer.exp_avg_sq.meanz\"");
    /* checksums: a file without them (as other writers make), a bad digit,
     * one flipped bit in the last tensor */
    put_edited("no-checksum", b, len, "\"tensors_crc32\"", "\"tensors_crc3x\"");
    uint8_t *crc = memmem(b, len, "\"tensors_crc32\":\"", 17);
    if (!crc)
        die("no tensors_crc32");
    uint8_t digit = crc[17];
    crc[17] = 'g';
    put("checkpoint", "near-checksum-digit", b, len);
    crc[17] = digit;
    b[len - 1] ^= 0x10;
    put("checkpoint", "near-checksum-bit-flip", b, len);
    free(b);
    /* a NaN weight under a correct checksum */
    m->params[1] = NAN;
    b = saved(m, &len);
    put("checkpoint", "near-nan-weight", b, len);
    free(b);
    cvae_model_destroy(m);

    /* an epoch stopped after 2 of its 3 batches (10 images, batch 4) */
    m = tiny_model(1, "image", 1);
    {
        float x[10 * 64];
        for (int i = 0; i < 10 * 64; i++)
            x[i] = (float)((i * 53) % 97) / 96.0f;
        cvae_dataset *d;
        if (cvae_dataset_from_f32(x, 10, 1, 8, 8, NULL, &d) ||
            cvae_model_train(m, d, 1, NULL, stop_at_2, NULL) != CVAE_E_CANCELLED)
            die("stopped epoch");
        cvae_dataset_destroy(d);
    }
    b = saved(m, &len);
    put("checkpoint", "tiny-stopped-epoch", b, len);
    free(b);
    cvae_model_destroy(m);

    m = tiny_model(0, "image", 0);
    b = saved(m, &len);
    put("checkpoint", "tiny-plain-vae", b, len);
    free(b);
    cvae_model_destroy(m);

    m = tiny_model(2, "features", 0);
    b = saved(m, &len);
    put("checkpoint", "tiny-2branch-features", b, len);
    free(b);
    cvae_model_destroy(m);

    /* Plain safetensors, as other tools write them (escapes, empty tensor). */
    static const char hdr[] = "{\"__metadata__\":{\"k\\u00e9y\":\"v\\n\"},"
                              "\"a\\/b\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]},"
                              "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}  ";
    uint8_t st[256];
    uint64_t hl = sizeof hdr - 1;
    for (int i = 0; i < 8; i++)
        st[i] = (uint8_t)(hl >> (8 * i));
    memcpy(st + 8, hdr, hl);
    float two[2] = {1.5f, -2.0f};
    memcpy(st + 8 + hl, two, sizeof two); /* little-endian hosts only, as the tests */
    put("checkpoint", "plain-safetensors", st, 8 + hl + sizeof two);
}

/* ---- config: [mode][text] --------------------------------------------- */

static void config_seed(const char *name, int mode, const char *text)
{
    size_t n = strlen(text);
    uint8_t *b = malloc(n + 1);
    b[0] = (uint8_t)mode;
    memcpy(b + 1, text, n);
    put("config", name, b, n + 1);
    free(b);
}

static void config_corpus(void)
{
    struct cvae_config c;
    char json[4096];
    cvae__config_defaults(&c);
    if (cvae__config_to_json(&c, json, sizeof json))
        die("to_json");
    config_seed("json-defaults", 0, json);
    c.branches = 3;
    c.br_kernel[2] = 7;
    c.prior = CVAE_PRIOR_STANDARD;
    c.lr = 0.003;
    c.seed = UINT64_MAX;
    c.cat_weight = -0.5;
    if (cvae__config_to_json(&c, json, sizeof json))
        die("to_json");
    config_seed("json-edited", 0, json);
    config_seed("json-short", 0, " { \"latent_dim\" : 10 , \"optimizer\" : \"sgd\" } ");
    config_seed("json-empty", 0, "{}");
    config_seed("near-json-even-kernel", 0, "{\"branch1_kernel\":4}");
    config_seed("near-json-range", 0, "{\"input_height\":4097}");
    config_seed("near-json-trailing", 0, "{\"seed\":1} x");
    config_seed("near-json-negative-seed", 0, "{\"seed\":-1}");
    config_seed("set-latent", 1, "latent-dim=10");
    config_seed("set-enum", 1, "encoder_activation=identity");
    config_seed("set-double", 1, "learning_rate=1e-3");
    config_seed("set-seed", 1, "seed=18446744073709551615");
    config_seed("near-set-overflow", 1, "batch_size=99999999999999999999");
    config_seed("near-set-unknown", 1, "latent=3");
    config_seed("lines", 2,
                "input_channels=3\ninput_height=32\ninput_width=32\nbranches=1\n"
                "branch1_kernel=5\nprior=standard\nmomentum=0.5\nweight_decay=1e-4\n"
                "adam_eps=1e-30\nthreads=2\nrecon-target=features");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus-dir>\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    idx_corpus();
    checkpoint_corpus();
    config_corpus();
    return 0;
}
