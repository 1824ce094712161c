/* Fuzz harness for checkpoints: the safetensors parser (cvae__st_parse and
 * its accessors) and the loader that turns a parsed file into a model
 * (cvae__model_load_memory, the body of cvae_model_load), and
 * cvae_model_load itself on the same bytes in a memfd. The input is the
 * whole file.
 *
 * Checked beyond "no crash, no leak, no UB": a failure has CVAE_E_FORMAT (or
 * NOMEM), a message and *out == NULL; every tensor the parser hands out can
 * be read in full; the memory and file loaders agree; a file the loader
 * accepts saves and reloads to the same weights, configuration, progress and
 * RNG state.
 *
 * One limit of the harness, not of the parser: the loader allocates the
 * model its config describes (parameters, and the activation workspace for
 * the configured batch) before it compares the tensors, so a tiny file can
 * ask for gigabytes, which libFuzzer's malloc limit reports. Files whose
 * config asks for more than a small model (see too_big) are parsed but not
 * loaded; docs/robustness.md describes the open issue. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "convvae.h"
#include "model.h"
#include "safetensors.h"
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
                                       "rng_spare",     ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = cvae__st_meta(f, keys[i]);
        if (v)
            sink += (float)strlen(v);
    }
    (void)sink;
}

/* A model bigger than the harness lets the loader allocate (~100 MB at most
 * with these limits). */
static int too_big(const cvae__st_file *f)
{
    const char *cj = cvae__st_meta(f, "config");
    struct cvae_config c;
    cvae__config_defaults(&c);
    if (!cj || cvae__config_from_json(&c, cj) != CVAE_OK)
        return 0; /* the loader refuses it before allocating */
    if ((long)c.in_c * c.in_h * c.in_w > 256 || c.batch > 8 || c.enc_units > 256 ||
        c.dec_units > 256 || c.cat_units > 256 || c.latent > 64 || c.clusters > 64)
        return 1;
    for (int b = 0; b < c.branches; b++)
        if (c.br_filters[b] > 16)
            return 1;
    return 0;
}

/* Save, reload, compare: what the loader accepted must survive a round trip. */
static void round_trip(const cvae_model *m)
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
    char a[4096], b[4096];
    FUZZ_CHECK(cvae__config_to_json(&m->cfg, a, sizeof a) == CVAE_OK);
    FUZZ_CHECK(cvae__config_to_json(&r->cfg, b, sizeof b) == CVAE_OK);
    FUZZ_CHECK(strcmp(a, b) == 0);
    FUZZ_CHECK(r->epochs_done == m->epochs_done && r->phase_mixture == m->phase_mixture);
    FUZZ_CHECK(memcmp(r->rng.s, m->rng.s, sizeof m->rng.s) == 0);
    FUZZ_CHECK(r->rng.has_spare == m->rng.has_spare);
    if (m->rng.has_spare)
        FUZZ_CHECK(memcmp(&r->rng.spare, &m->rng.spare, sizeof m->rng.spare) == 0);
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

    if (pst == CVAE_OK && too_big(f)) {
        cvae__st_free(f);
        return 0;
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
