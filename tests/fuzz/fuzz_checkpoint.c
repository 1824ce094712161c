/* Fuzz harness for checkpoints: the safetensors parser (cvae__st_parse and
 * its accessors) and the loader that turns a parsed file into a model
 * (cvae__model_load_memory, the body of cvae_model_load), and
 * cvae_model_load itself on the same bytes in a memfd. The input is the
 * whole file, and every file the loader accepts is loaded, whatever its
 * config asks for: loading allocates parameters and gradients (bounded by
 * the file's tensors) and no activation workspace.
 *
 * Checked beyond "no crash, no leak, no UB": a failure has CVAE_E_FORMAT (or
 * NOMEM), a message and *out == NULL; every tensor the parser hands out can
 * be read in full; the memory and file loaders agree; a loaded model has no
 * workspace yet; a file the loader accepts saves and reloads to the same
 * weights, configuration, progress and RNG state, and the two models
 * predict and reconstruct bit-identically (the first call allocating the
 * workspace of its configured size). The network only runs on models whose
 * workspace and per-image work are small (see runs_cheaply): that limit is
 * the cost of inference on a model that is legitimately big, not a loader
 * problem.
 *
 * Fuzz builds define FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, under which a
 * tensor whose bytes do not match the file's recorded CRC-32 is read anyway
 * (a mutated input almost never carries a matching checksum, and the checks
 * behind it deserve the fuzzing too); the checksum text is still parsed and
 * its format enforced. The replay test (no fuzz build) checks the
 * checksums, so the corpus's damaged seeds fail there as in real use. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "model/config.h"
#include "convvae.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "training/optimizer.h"
#include "fuzz.h"

static char tmpdir[256];

static void remove_tmpdir(void)
{
    if (tmpdir[0])
        rmdir(tmpdir);
}

static void check_failure(cvae_status st)
{
    FUZZ_CHECK(st == CVAE_E_FORMAT || st == CVAE_E_NOMEM);
    const char *msg = cvae_last_error();
    FUZZ_CHECK(msg != NULL && msg[0] != '\0');
}

/* The input as a file, for cvae_model_load: a memfd, by its /proc path. */
static const char *as_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("checkpoint", MFD_CLOEXEC);
        if (fd < 0) {
            FILE *t = tmpfile();
            FUZZ_CHECK(t != NULL);
            fd = dup(fileno(t));
            fclose(t);
        }
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        FUZZ_CHECK(w > 0);
        done += (size_t)w;
    }
    return path;
}

/* Same layout and bit-identical parameters. */
static void check_same_params(const cvae_model *a, const cvae_model *b)
{
    FUZZ_CHECK(a->nparams == b->nparams && a->nparam == b->nparam);
    for (int i = 0; i < a->nparam; i++) {
        const cvae__param *p = &a->ptab[i];
        FUZZ_CHECK(strcmp(p->name, b->ptab[i].name) == 0 && p->offset == b->ptab[i].offset);
        FUZZ_CHECK(memcmp(a->params + p->offset, b->params + p->offset,
                          p->count * sizeof(float)) == 0);
    }
}

/* The same optimizer state (or none on both sides); a loaded state is
 * finite, and Adam's second moments are >= 0. */
static void check_same_optimizer(const cvae_model *a, const cvae_model *b)
{
    const struct cvae_optimizer *oa = a->own_opt, *ob = b->own_opt;
    FUZZ_CHECK((oa == NULL) == (ob == NULL));
    if (!oa)
        return;
    FUZZ_CHECK(oa->kind == ob->kind && oa->steps == ob->steps && oa->n == a->nparams &&
               ob->n == b->nparams);
    FUZZ_CHECK(memcmp(oa->m, ob->m, oa->n * sizeof(float)) == 0);
    FUZZ_CHECK((oa->v == NULL) == (ob->v == NULL));
    if (oa->v)
        FUZZ_CHECK(memcmp(oa->v, ob->v, oa->n * sizeof(float)) == 0);
    for (size_t i = 0; i < oa->n; i++) {
        FUZZ_CHECK(isfinite(oa->m[i]));
        if (oa->v)
            FUZZ_CHECK(isfinite(oa->v[i]) && oa->v[i] >= 0.0f);
    }
}

/* Read every tensor and metadata value the parser accepted. */
static void walk(const cvae__st_file *f)
{
    size_t n = cvae__st_count(f);
    volatile float sink = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = cvae__st_name(f, i);
        FUZZ_CHECK(name != NULL && name[0] != '\0');
        int ndim = -1;
        int64_t shape[CVAE__ST_MAX_DIMS];
        const float *x = cvae__st_find(f, name, &ndim, shape);
        FUZZ_CHECK(x != NULL);
        FUZZ_CHECK(ndim >= 0 && ndim <= CVAE__ST_MAX_DIMS);
        FUZZ_CHECK(((uintptr_t)x & 63) == 0);
        uint64_t count = 1;
        for (int d = 0; d < ndim; d++) {
            FUZZ_CHECK(shape[d] >= 0);
            count *= (uint64_t)shape[d];
        }
        for (uint64_t k = 0; k < count; k++)
            sink += x[k];
    }
    FUZZ_CHECK(cvae__st_name(f, n) == NULL);
    static const char *const keys[] = {"format",        "library_version", "config",
                                       "epochs_done",   "mixture_phase",   "rng_state",
                                       "rng_spare",     "optimizer_steps", "epoch_part",
                                       "epoch_part_rng", "epoch_part_sums", "tensors_crc32",
                                       ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = cvae__st_meta(f, keys[i]);
        if (v)
            sink += (float)strlen(v);
    }
    (void)sink;
}

/* Whether running the network is cheap enough for a fuzz iteration: a
 * workspace of at most 64 MB and ~2e7 multiply-adds per image. */
static int runs_cheaply(const cvae_model *m)
{
    size_t ws = cvae__model_workspace_bytes(m);
    if (ws == SIZE_MAX || ws > ((size_t)64 << 20))
        return 0;
    double macs = 0;
    for (int b = 0; b < m->nb; b++)
        for (int l = 0; l < m->br[b].layers; l++) {
            const cvae__conv_geom *g = &m->br[b].conv[l];
            macs += (double)g->c_out * g->h_out * g->w_out * g->c_in * g->kh * g->kw;
        }
    for (int l = 0; l < m->ndec; l++) {
        const cvae__conv_geom *g = &m->dec[l];
        macs += (double)g->c_out * g->h_out * g->w_out * g->c_in * g->kh * g->kw;
    }
    macs += (double)m->D * m->enc_units + 2.0 * m->enc_units * m->s + (double)m->s * m->dec_units +
            (double)m->dec_units * m->D0 + (double)m->D * m->cat_units + (double)m->cat_units * m->k;
    return macs <= 2e7;
}

/* Inference on two fixed images with both models: the same bits, and the
 * workspace appears on the first call with the size the config implies. */
static void same_inference(cvae_model *a, cvae_model *b)
{
    if (!runs_cheaply(a))
        return;
    const int n = 2;
    const size_t px = (size_t)n * (size_t)a->P, nk = (size_t)n * (size_t)a->k;
    float *x = malloc(px * sizeof *x), *out = malloc(2 * px * sizeof *out);
    float *pa = malloc(2 * nk * sizeof *pa);
    FUZZ_CHECK(x && out && pa);
    for (size_t i = 0; i < px; i++)
        x[i] = (float)(i % 251) / 250.0f;
    FUZZ_CHECK(cvae_model_predict_proba(a, x, n, pa) == CVAE_OK);
    FUZZ_CHECK(a->ws.base != NULL && a->ws.cap == cvae__model_workspace_bytes(a));
    FUZZ_CHECK(cvae_model_predict_proba(b, x, n, pa + nk) == CVAE_OK);
    FUZZ_CHECK(memcmp(pa, pa + nk, nk * sizeof *pa) == 0);
    FUZZ_CHECK(cvae_model_reconstruct(a, x, n, out) == CVAE_OK);
    FUZZ_CHECK(cvae_model_reconstruct(b, x, n, out + px) == CVAE_OK);
    FUZZ_CHECK(memcmp(out, out + px, px * sizeof *out) == 0);
    free(x);
    free(out);
    free(pa);
}

/* Save, reload, compare: what the loader accepted must survive a round trip. */
static void round_trip(cvae_model *m)
{
    if (!tmpdir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/cvae_fuzz_ckpt_XXXXXX", base);
        FUZZ_CHECK(mkdtemp(tmpdir) != NULL);
        atexit(remove_tmpdir);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/model.st", tmpdir);
    FUZZ_CHECK(cvae_model_save(m, path) == CVAE_OK);
    cvae_model *r = NULL;
    FUZZ_CHECK(cvae_model_load(path, &r) == CVAE_OK);
    unlink(path);
    check_same_params(m, r);
    check_same_optimizer(m, r);
    FUZZ_CHECK(memcmp(&r->part, &m->part, sizeof m->part) == 0);
    char a[4096], b[4096];
    FUZZ_CHECK(cvae__config_to_json(&m->cfg, a, sizeof a) == CVAE_OK);
    FUZZ_CHECK(cvae__config_to_json(&r->cfg, b, sizeof b) == CVAE_OK);
    FUZZ_CHECK(strcmp(a, b) == 0);
    FUZZ_CHECK(r->epochs_done == m->epochs_done && r->phase_mixture == m->phase_mixture);
    FUZZ_CHECK(memcmp(r->rng.s, m->rng.s, sizeof m->rng.s) == 0);
    FUZZ_CHECK(r->rng.has_spare == m->rng.has_spare);
    if (m->rng.has_spare)
        FUZZ_CHECK(memcmp(&r->rng.spare, &m->rng.spare, sizeof m->rng.spare) == 0);
    same_inference(m, r);
    cvae_model_destroy(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cvae__st_file *f = (cvae__st_file *)(uintptr_t)1;
    cvae_status pst = cvae__st_parse(data, size, &f);
    if (pst != CVAE_OK) {
        check_failure(pst);
        FUZZ_CHECK(f == NULL);
    } else {
        walk(f);
    }

    cvae__st_free(f);

    cvae_model *m = (cvae_model *)(uintptr_t)1;
    cvae_status st = cvae__model_load_memory(data, size, &m);
    cvae_model *fm = (cvae_model *)(uintptr_t)1;
    cvae_status fst = cvae_model_load(as_file(data, size), &fm);
    FUZZ_CHECK(fst == st);
    if (st != CVAE_OK) {
        check_failure(st);
        FUZZ_CHECK(m == NULL && fm == NULL);
        return 0;
    }
    FUZZ_CHECK(pst == CVAE_OK);
    FUZZ_CHECK(m->ws.base == NULL && fm->ws.base == NULL);
    check_same_params(m, fm);
    cvae_model_destroy(fm);
    int64_t np = 0;
    int epochs = -1;
    FUZZ_CHECK(cvae_model_num_params(m, &np) == CVAE_OK && np > 0);
    FUZZ_CHECK(cvae_model_epochs_done(m, &epochs) == CVAE_OK && epochs >= 0);
    cvae_config *cfg = NULL;
    FUZZ_CHECK(cvae_model_get_config(m, &cfg) == CVAE_OK);
    cvae_config_destroy(cfg);
    round_trip(m);
    cvae_model_destroy(m);
    return 0;
}
