/* Model checkpoints as safetensors: one F32 tensor per parameter (names as
 * in a PyTorch state dict) and __metadata__ with the format name, library
 * version, configuration JSON, training progress and RNG state, so a loaded
 * model predicts bit-identically and continues training the same stream. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "model.h"
#include "safetensors.h"

#define FORMAT_NAME "convvae-checkpoint-1"

cvae_status cvae_model_save(const cvae_model *m, const char *path)
{
    CVAE__CHECK_PTR(m);
    CVAE__CHECK_PTR(path);
    cvae__st_tensor t[CVAE__MAX_PARAMS];
    for (int i = 0; i < m->nparam; i++) {
        const cvae__param *p = &m->ptab[i];
        t[i].name = p->name;
        t[i].ndim = p->ndim;
        for (int d = 0; d < 4; d++)
            t[i].shape[d] = p->shape[d];
        t[i].data = m->params + p->offset;
    }
    char config[4096], epochs[32], phase[8], rng[80];
    cvae_status st = cvae__config_to_json(&m->cfg, config, sizeof config);
    if (st)
        return st;
    snprintf(epochs, sizeof epochs, "%d", m->epochs_done);
    snprintf(phase, sizeof phase, "%d", m->phase_mixture);
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             m->rng.s[0], m->rng.s[1], m->rng.s[2], m->rng.s[3]);
    /* Box-Muller makes normals in pairs; a cached second one is part of the
     * stream, so a resumed model must get it back. */
    char spare[16] = "";
    if (m->rng.has_spare) {
        uint32_t bits;
        memcpy(&bits, &m->rng.spare, sizeof bits);
        snprintf(spare, sizeof spare, "%08" PRIx32, bits);
    }
    const char *keys[] = {"format",      "library_version", "config",   "epochs_done",
                          "mixture_phase", "rng_state",     "rng_spare"};
    const char *vals[] = {FORMAT_NAME, cvae_version_string(), config, epochs, phase, rng, spare};
    return cvae__st_save(path, t, (size_t)m->nparam, keys, vals, sizeof keys / sizeof keys[0]);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* The model a parsed checkpoint describes; path only names it in messages. */
static cvae_status model_from_st(const cvae__st_file *f, const char *path, cvae_model **out)
{
    cvae_model *m = NULL;
    cvae_status st;
    const char *fmt = cvae__st_meta(f, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) {
        st = cvae__fail(CVAE_E_FORMAT, "'%.200s' is not a libconvvae checkpoint (format %.40s)",
                        path, fmt ? fmt : "missing");
        goto done;
    }
    struct cvae_config cfg;
    cvae__config_defaults(&cfg);
    const char *cj = cvae__st_meta(f, "config");
    if (!cj) {
        st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has no config", path);
        goto done;
    }
    if ((st = cvae__config_from_json(&cfg, cj)))
        goto done;
    if ((st = cvae__model_shell(&cfg, &m)) == CVAE_OK) {
        /* Tensors first, buffers after: the configuration alone could ask
         * for gigabytes, the file's tensors bound what is allocated. The
         * activation workspace, which the batch size and image shape size
         * and the file does not bound, waits for the first call that runs
         * the network (cvae__model_ensure_workspace). */
        if (cvae__st_count(f) != (size_t)m->nparam) {
            st = cvae__fail(CVAE_E_FORMAT,
                            "checkpoint '%.200s' has %zu tensors, the model needs %d", path,
                            cvae__st_count(f), m->nparam);
            goto done;
        }
        for (int i = 0; i < m->nparam; i++) {
            const cvae__param *p = &m->ptab[i];
            int ndim;
            int64_t shape[CVAE__ST_MAX_DIMS];
            const float *data = cvae__st_find(f, p->name, &ndim, shape);
            int same = data && ndim == p->ndim;
            for (int d = 0; same && d < ndim; d++)
                same = shape[d] == p->shape[d];
            if (!same) {
                st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s': tensor %s is %s", path, p->name,
                                data ? "of the wrong shape" : "missing");
                goto done;
            }
        }
        st = cvae__model_alloc_params(m);
    }
    if (st) {
        if (st == CVAE_E_INVALID_ARG) {
            /* copy first: cvae__fail formats into the buffer it would read */
            char why[256];
            snprintf(why, sizeof why, "%s", cvae_last_error());
            st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s': %s", path, why);
        }
        goto done;
    }
    int epochs = 0, phase = 0;
    if (parse_int(cvae__st_meta(f, "epochs_done"), 0, 1 << 30, &epochs) ||
        parse_int(cvae__st_meta(f, "mixture_phase"), 0, 1, &phase)) {
        st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has bad training metadata", path);
        goto done;
    }
    m->epochs_done = epochs;
    m->phase_mixture = phase;
    const char *rs = cvae__st_meta(f, "rng_state");
    if (rs && strlen(rs) == 64) {
        for (int i = 0; i < 4; i++) {
            char part[17];
            memcpy(part, rs + 16 * i, 16);
            part[16] = 0;
            char *end;
            m->rng.s[i] = strtoull(part, &end, 16);
            if (*end) {
                st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has a bad rng_state", path);
                goto done;
            }
        }
    }
    const char *sp = cvae__st_meta(f, "rng_spare");
    if (sp && *sp) {
        char *end;
        unsigned long bits = strtoul(sp, &end, 16);
        if (strlen(sp) != 8 || *end) {
            st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has a bad rng_spare", path);
            goto done;
        }
        uint32_t b32 = (uint32_t)bits;
        memcpy(&m->rng.spare, &b32, sizeof b32);
        m->rng.has_spare = 1;
    }
    for (int i = 0; i < m->nparam; i++) {
        const cvae__param *p = &m->ptab[i];
        int ndim;
        int64_t shape[CVAE__ST_MAX_DIMS];
        const float *data = cvae__st_find(f, p->name, &ndim, shape);
        memcpy(m->params + p->offset, data, p->count * sizeof(float));
    }
done:
    if (st) {
        cvae_model_destroy(m);
        return st;
    }
    *out = m;
    return CVAE_OK;
}

cvae_status cvae_model_load(const char *path, cvae_model **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(path);
    cvae__st_file *f = NULL;
    cvae_status st = cvae__st_load(path, &f);
    if (st)
        return st;
    st = model_from_st(f, path, out);
    cvae__st_free(f);
    return st;
}

cvae_status cvae__model_load_memory(const uint8_t *buf, size_t len, cvae_model **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    cvae__st_file *f = NULL;
    cvae_status st = cvae__st_parse(buf, len, &f);
    if (st)
        return st;
    st = model_from_st(f, "<memory>", out);
    cvae__st_free(f);
    return st;
}
