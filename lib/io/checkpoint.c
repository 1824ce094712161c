/* Model checkpoints as safetensors: one F32 tensor per parameter (names as
 * in a PyTorch state dict) and __metadata__ with the format name, library
 * version, configuration JSON, training progress and RNG state, so a loaded
 * model predicts bit-identically and continues training the same stream;
 * plus, when the model's own optimizer has state, its moments (one tensor
 * per parameter and moment, PyTorch's state names) and step count, so the
 * continued training is the same as an uninterrupted one. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "training/optimizer.h"

#define FORMAT_NAME "convvae-checkpoint-1"

/* Optimizer state tensors are "<prefix><parameter name>"; the prefixes are
 * PyTorch's names for the same state (Adam: exp_avg, exp_avg_sq; SGD:
 * momentum_buffer), slot 0 being opt->m and slot 1 opt->v. */
#define NAME_LEN (sizeof "optimizer.momentum_buffer." + sizeof ((cvae__param *)0)->name)
static const char *slot_prefix(int kind, int slot)
{
    if (kind == CVAE_OPTIMIZER_SGD)
        return "optimizer.momentum_buffer.";
    return slot == 0 ? "optimizer.exp_avg." : "optimizer.exp_avg_sq.";
}

/* Tensor name of parameter p in slot (-1 = the parameter itself). */
static const char *tensor_name(const cvae__param *p, int kind, int slot, char *buf)
{
    if (slot < 0)
        return p->name;
    snprintf(buf, NAME_LEN, "%s%s", slot_prefix(kind, slot), p->name);
    return buf;
}

static int slots_of(int kind) { return kind == CVAE_OPTIMIZER_ADAM ? 2 : 1; }

static void format_rng(char *buf, size_t size, const uint64_t s[4])
{
    snprintf(buf, size, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, s[0], s[1], s[2],
             s[3]);
}

/* 64 hex digits (4 x 16, as format_rng writes them) into s; -1 otherwise. */
static int parse_rng(const char *txt, uint64_t s[4])
{
    if (!txt || strlen(txt) != 64)
        return -1;
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 16; j++) {
            char c = txt[16 * i + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v << 4 | (uint64_t)d;
        }
        s[i] = v;
    }
    return 0;
}

/* The model's own optimizer state, if it has any that belongs to it. */
static const struct cvae_optimizer *saved_state(const cvae_model *model)
{
    const struct cvae_optimizer *o = model->own_opt;
    if (!o || !o->m || o->n != model->nparams || o->layout_id != cvae__layout_id(model))
        return NULL;
    return o;
}

cvae_status cvae_model_save(const cvae_model *model, const char *path)
{
    CVAE__CHECK_PTR(model);
    CVAE__CHECK_PTR(path);
    const struct cvae_optimizer *opt = saved_state(model);
    int kind = opt ? opt->kind : 0, slots = opt ? slots_of(kind) : 0;
    size_t nt = (size_t)model->nparam * (size_t)(1 + slots);
    /* The manifold recipe's pseudo-labels, one float per training image
     * (-1 = none), so that a resumed run trains exactly as an unbroken one. */
    const int has_pl = model->pl != NULL;
    cvae__st_tensor *t = malloc((nt + (size_t)has_pl) * sizeof *t);
    char *names = slots ? malloc((size_t)model->nparam * (size_t)slots * NAME_LEN) : NULL;
    float *plf = has_pl ? malloc((size_t)model->pl_n * sizeof *plf) : NULL;
    if (!t || (slots && !names) || (has_pl && !plf)) {
        free(t);
        free(names);
        free(plf);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate the checkpoint's tensor table");
    }
    for (int slot = -1; slot < slots; slot++) {
        const float *base = slot < 0 ? model->params : slot == 0 ? opt->m : opt->v;
        for (int i = 0; i < model->nparam; i++) {
            const cvae__param *p = &model->ptab[i];
            cvae__st_tensor *ti = &t[(size_t)(slot + 1) * (size_t)model->nparam + (size_t)i];
            char *nm = slot < 0 ? NULL
                                : names + ((size_t)slot * (size_t)model->nparam + (size_t)i) * NAME_LEN;
            ti->name = tensor_name(p, kind, slot, nm);
            ti->ndim = p->ndim;
            for (int d = 0; d < 4; d++)
                ti->shape[d] = p->shape[d];
            ti->data = base + p->offset;
        }
    }
    if (has_pl) {
        for (int64_t i = 0; i < model->pl_n; i++)
            plf[i] = (float)model->pl[i];
        cvae__st_tensor *tp = &t[nt++];
        tp->name = "pseudo_labels";
        tp->ndim = 1;
        tp->shape[0] = model->pl_n;
        for (int d = 1; d < CVAE__ST_MAX_DIMS; d++)
            tp->shape[d] = 1;
        tp->data = plf;
    }
    char config[4096], epochs[32], phase[8], rng[80], steps[32], pl_epoch[32];
    char part[80], part_rng[80], part_sums[160];
    cvae_status st = cvae__config_to_json(&model->cfg, config, sizeof config);
    if (st) {
        free(t);
        free(names);
        free(plf);
        return st;
    }
    snprintf(pl_epoch, sizeof pl_epoch, "%d", model->pl_epoch);
    snprintf(epochs, sizeof epochs, "%d", model->epochs_done);
    snprintf(phase, sizeof phase, "%d", model->phase_mixture);
    format_rng(rng, sizeof rng, model->rng.s);
    /* An epoch stopped part way: where it stopped, the RNG state its order
     * was drawn from and its loss sums (%.17g reads back exactly). */
    snprintf(part, sizeof part, "%" PRId64 " %" PRId64 " %" PRId64, model->part.batches,
             model->part.count, model->part.seen);
    format_rng(part_rng, sizeof part_rng, model->part.rng);
    size_t used = 0;
    for (int i = 0; i < CVAE_LOSS_COUNT; i++)
        used += (size_t)snprintf(part_sums + used, sizeof part_sums - used, "%s%.17g",
                                 i ? " " : "", model->part.sums[i]);
    snprintf(steps, sizeof steps, "%" PRId64, opt ? opt->steps : (int64_t)0);
    /* Box-Muller makes normals in pairs; a cached second one is part of the
     * stream, so a resumed model must get it back. */
    char spare[16] = "";
    if (model->rng.has_spare) {
        uint32_t bits;
        memcpy(&bits, &model->rng.spare, sizeof bits);
        snprintf(spare, sizeof spare, "%08" PRIx32, bits);
    }
    /* 7 always, 1 with optimizer state, 3 with a stopped epoch, 1 with
     * pseudo-labels */
    const char *keys[12] = {"format",        "library_version", "config",    "epochs_done",
                            "mixture_phase", "rng_state",       "rng_spare"};
    const char *vals[12] = {FORMAT_NAME, cvae_version_string(), config, epochs, phase, rng, spare};
    size_t nmeta = 7;
    if (opt) { /* optimizer_steps only with the state it counts */
        keys[nmeta] = "optimizer_steps";
        vals[nmeta++] = steps;
    }
    if (model->part.batches > 0) {
        keys[nmeta] = "epoch_part";
        vals[nmeta++] = part;
        keys[nmeta] = "epoch_part_rng";
        vals[nmeta++] = part_rng;
        keys[nmeta] = "epoch_part_sums";
        vals[nmeta++] = part_sums;
    }
    if (has_pl) {
        keys[nmeta] = "pseudo_label_epoch";
        vals[nmeta++] = pl_epoch;
    }
    st = cvae__st_save(path, t, nt, keys, vals, nmeta);
    free(t);
    free(names);
    free(plf);
    return st;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    int64_t v;
    if (parse_i64(s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

/* An epoch stopped part way, if the file has one: all three keys, a
 * position inside the epoch (at least one batch done, not all; every batch
 * before it full), the RNG state and finite loss sums. */
static cvae_status restore_part(const cvae__st_file *f, const char *path, cvae_model *model)
{
    const char *pos = cvae__st_meta(f, "epoch_part"), *rng = cvae__st_meta(f, "epoch_part_rng"),
               *sums = cvae__st_meta(f, "epoch_part_sums");
    if (!pos && !rng && !sums)
        return CVAE_OK;
    long long v[3] = {0, 0, 0};
    int ok = pos && rng && sums;
    const char *q = pos;
    for (int i = 0; ok && i < 3; i++) {
        char *end;
        errno = 0;
        v[i] = strtoll(q, &end, 10);
        ok = end != q && errno == 0 && *q != ' ' && (i == 2 ? *end == 0 : *end == ' ');
        q = end + (i < 2);
    }
    long long b = v[0], count = v[1], seen = v[2];
    ok = ok && b >= 1 && count >= 1 && count <= (INT64_MAX >> 1) && b <= count / model->B &&
             seen == b * model->B && seen < count && !parse_rng(rng, model->part.rng);
    const char *p = sums;
    for (int i = 0; ok && i < CVAE_LOSS_COUNT; i++) {
        char *end;
        model->part.sums[i] = strtod(p, &end);
        ok = end != p && isfinite(model->part.sums[i]) && (*end == ' ' || *end == 0) &&
             (*end == 0) == (i == CVAE_LOSS_COUNT - 1);
        p = end;
    }
    if (!ok)
        return cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has a bad or incomplete epoch_part",
                          path);
    model->part.batches = b;
    model->part.count = count;
    model->part.seen = seen;
    return CVAE_OK;
}

/* The manifold recipe's pseudo-labels: a vector of integers in [-1, k) and
 * the epoch they were computed at. */
static cvae_status restore_pseudo_labels(const cvae__st_file *f, const char *path,
                                         const float *data, int ndim, const int64_t *shape,
                                         cvae_model *model)
{
    int epoch;
    if (ndim != 1 || shape[0] < 1 ||
        parse_int(cvae__st_meta(f, "pseudo_label_epoch"), 0, 1 << 30, &epoch))
        return cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has bad pseudo-labels", path);
    int32_t *pl = malloc((size_t)shape[0] * sizeof *pl);
    if (!pl)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %lld pseudo-labels",
                          (long long)shape[0]);
    for (int64_t i = 0; i < shape[0]; i++) {
        float v = data[i];
        if (!(v >= -1.0f && v < (float)model->k) || v != (float)(int32_t)v) {
            free(pl);
            return cvae__fail(CVAE_E_FORMAT,
                              "checkpoint '%.200s': pseudo-label %lld = %g is not in [-1, %d)",
                              path, (long long)i, (double)v, model->k);
        }
        pl[i] = (int32_t)v;
    }
    free(model->pl);
    model->pl = pl;
    model->pl_n = shape[0];
    model->pl_epoch = epoch;
    return CVAE_OK;
}

/* The model's own optimizer with the file's state: moments finite, Adam's
 * second moment >= 0 (anything else would turn the next update into NaN). */
static cvae_status restore_optimizer(const cvae__st_file *f, const char *path, int64_t steps,
                                     cvae_model *model)
{
    cvae_status st = cvae_optimizer_create_from_config(&model->cfg, &model->own_opt);
    if (!st)
        st = cvae__optimizer_bind(model->own_opt, model->nparams, cvae__layout_id(model));
    if (st)
        return st;
    struct cvae_optimizer *o = model->own_opt;
    for (int slot = 0; slot < slots_of(o->kind); slot++) {
        float *dst = slot == 0 ? o->m : o->v;
        for (int i = 0; i < model->nparam; i++) {
            const cvae__param *p = &model->ptab[i];
            char nm[NAME_LEN];
            const float *src = cvae__st_find(f, tensor_name(p, o->kind, slot, nm), NULL, NULL);
            for (size_t j = 0; j < p->count; j++)
                if (!isfinite(src[j]) || (slot == 1 && src[j] < 0.0f))
                    return cvae__fail(CVAE_E_FORMAT,
                                      "checkpoint '%.200s': optimizer state %s[%zu] = %g is "
                                      "invalid",
                                      path, nm, j, (double)src[j]);
            memcpy(dst + p->offset, src, p->count * sizeof(float));
        }
    }
    o->steps = steps;
    return CVAE_OK;
}

/* The model a parsed checkpoint describes; path only names it in messages. */
static cvae_status model_from_st(const cvae__st_file *f, const char *path, cvae_model **out)
{
    cvae_model *model = NULL;
    cvae_status st;
    int slots = 0;
    int64_t opt_steps = 0;
    const char *fmt = cvae__st_meta(f, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) {
        st = cvae__fail(CVAE_E_FORMAT, "'%.200s' is not a libconvvae checkpoint (format %.40s)",
                        path, fmt ? fmt : "missing");
        goto done;
    }
    struct cvae_config cfg;
    cvae__config_defaults(&cfg);
    /* A checkpoint without the key was trained before recipes existed,
     * that is by the paper's recipe. */
    cfg.recipe = CVAE_RECIPE_PAPER;
    /* ... and one without this key was fine-tuned with the mixture prior. */
    cfg.finetune_prior = CVAE_PRIOR_MIXTURE;
    /* ... and one without this key ran (or will run) a single manifold run. */
    cfg.manifold_runs = 1;
    /* ... and one without this key fitted as many components as clusters. */
    cfg.manifold_overcluster = 1.0;
    /* ... and one without this key ran the step once. */
    cfg.manifold_every = 0;
    /* ... and one without these used the plain consistency term, kept in
     * the fine-tuning epochs. */
    cfg.contrast_temperature = 0.0;
    cfg.consistency_finetune = 1;
    /* ... and one without this key augmented without an intensity gain. */
    cfg.aug_gain = 0.0;
    const char *cj = cvae__st_meta(f, "config");
    if (!cj) {
        st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has no config", path);
        goto done;
    }
    if ((st = cvae__config_from_json(&cfg, cj)))
        goto done;
    if ((st = cvae__model_shell(&cfg, &model)) == CVAE_OK) {
        /* Tensors first, buffers after: the configuration alone could ask
         * for gigabytes, the file's tensors bound what is allocated. The
         * activation workspace, which the batch size and image shape size
         * and the file does not bound, waits for the first call that runs
         * the network (cvae__model_ensure_workspace). */
        /* Optimizer state is optional and comes whole: with its step
         * count, every parameter's moments of the configured optimizer. */
        const char *steps_s = cvae__st_meta(f, "optimizer_steps");
        if (steps_s && parse_i64(steps_s, 0, INT64_MAX / 2, &opt_steps)) {
            st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has a bad optimizer_steps", path);
            goto done;
        }
        slots = steps_s ? slots_of(cfg.opt) : 0;
        const float *pl_data = NULL;
        int pl_ndim = 0;
        int64_t pl_shape[CVAE__ST_MAX_DIMS] = {0};
        pl_data = cvae__st_find(f, "pseudo_labels", &pl_ndim, pl_shape);
        size_t want = (size_t)model->nparam * (size_t)(1 + slots) + (pl_data != NULL);
        if (cvae__st_count(f) != want) {
            st = cvae__fail(CVAE_E_FORMAT,
                            "checkpoint '%.200s' has %zu tensors, the model needs %zu%s", path,
                            cvae__st_count(f), want,
                            slots ? " (parameters and optimizer state)" : "");
            goto done;
        }
        for (int slot = -1; slot < slots; slot++)
            for (int i = 0; i < model->nparam; i++) {
                const cvae__param *p = &model->ptab[i];
                char nm[NAME_LEN];
                const char *name = tensor_name(p, cfg.opt, slot, nm);
                int ndim;
                int64_t shape[CVAE__ST_MAX_DIMS];
                const float *data = cvae__st_find(f, name, &ndim, shape);
                int same = data && ndim == p->ndim;
                for (int d = 0; same && d < ndim; d++)
                    same = shape[d] == p->shape[d];
                if (!same) {
                    st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s': tensor %s is %s", path,
                                    name, data ? "of the wrong shape" : "missing");
                    goto done;
                }
            }
        if (pl_data && (st = restore_pseudo_labels(f, path, pl_data, pl_ndim, pl_shape, model)))
            goto done;
        st = cvae__model_alloc_params(model);
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
    model->epochs_done = epochs;
    model->phase_mixture = phase;
    const char *rs = cvae__st_meta(f, "rng_state");
    if (rs && parse_rng(rs, model->rng.s)) {
        st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has a bad rng_state", path);
        goto done;
    }
    if ((st = restore_part(f, path, model)))
        goto done;
    const char *sp = cvae__st_meta(f, "rng_spare");
    if (sp && *sp) {
        char *end;
        unsigned long bits = strtoul(sp, &end, 16);
        if (strlen(sp) != 8 || *end) {
            st = cvae__fail(CVAE_E_FORMAT, "checkpoint '%.200s' has a bad rng_spare", path);
            goto done;
        }
        uint32_t b32 = (uint32_t)bits;
        memcpy(&model->rng.spare, &b32, sizeof b32);
        model->rng.has_spare = 1;
    }
    /* A NaN or infinity in a weight would turn every prediction into NaN:
     * such a file is damaged (or the training that wrote it diverged). */
    for (int i = 0; i < model->nparam && !st; i++) {
        const cvae__param *p = &model->ptab[i];
        int ndim;
        int64_t shape[CVAE__ST_MAX_DIMS];
        const float *data = cvae__st_find(f, p->name, &ndim, shape);
        for (size_t j = 0; j < p->count && !st; j++)
            if (!isfinite(data[j]))
                st = cvae__fail(CVAE_E_FORMAT,
                                "checkpoint '%.200s': weight %s[%zu] = %g is not finite", path,
                                p->name, j, (double)data[j]);
        memcpy(model->params + p->offset, data, p->count * sizeof(float));
    }
    if (st)
        goto done;
    if (slots)
        st = restore_optimizer(f, path, opt_steps, model);
done:
    if (st) {
        cvae_model_destroy(model);
        return st;
    }
    *out = model;
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
