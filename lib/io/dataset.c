/* Data sets and the IDX reader.
 *
 * Pixels that arrive as uint8 (IDX files, cvae_dataset_from_u8) stay uint8:
 * a quarter of the memory of float32, and the conversion per batch costs
 * nothing next to the network. Float32 input is kept as given after
 * validation.
 *
 * The IDX reader never trusts a header's promise with memory: a 30-byte file
 * can claim 2^62 bytes of pixels. Files are read through zlib (raw and gzip
 * alike, since gzread passes non-gzip data through), so the real size of the
 * data is only known by reading it. The buffer therefore grows geometrically
 * while data actually arrives, capped at what the header promises (plus the
 * one byte that shows trailing data): memory is at most about twice the
 * bytes present, and the promised size for a well-formed file. Both headers
 * (and the label count) are checked before any pixel is read. */
#include "io/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/error.h"
#include "core/memory.h"
#include "core/strlist.h"

struct cvae_dataset {
    int64_t count;
    int c, h, w;
    int64_t pixels;     /* C*H*W */
    uint8_t *u8_alloc;  /* allocation behind u8 (an IDX buffer still has its header) */
    const uint8_t *u8;  /* uint8 storage, or NULL */
    float *f32;         /* float32 storage, or NULL */
    int32_t *labels;    /* count labels, or NULL */
    cvae__strlist *paths; /* the file of every image (image reader), or NULL */
};

/* v / 255.0f for every byte, evaluated at compile time: division (not
 * multiplication by 1/255.f, which is off by one ulp for 126 of the 256
 * values and does not map 255 exactly to 1) matches torchvision's
 * ToTensor bit for bit. */
#define V1(i) ((float)(i) / 255.0f)
#define V4(i) V1(i), V1((i) + 1), V1((i) + 2), V1((i) + 3)
#define V16(i) V4(i), V4((i) + 4), V4((i) + 8), V4((i) + 12)
#define V64(i) V16(i), V16((i) + 16), V16((i) + 32), V16((i) + 48)
static const float u8_to_f32[256] = {V64(0), V64(64), V64(128), V64(192)};
#undef V1
#undef V4
#undef V16
#undef V64

/* ------------------------------------------------------------------------ */
/* Construction                                                             */
/* ------------------------------------------------------------------------ */

static cvae_status check_shape(int64_t count, int c, int h, int w, int64_t *pixels)
{
    if (count < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "image count is %lld, must be >= 1",
                          (long long)count);
    if (c < 1 || h < 1 || w < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "image shape %d x %d x %d: channels, height and width must be >= 1", c,
                          h, w);
    /* Each factor is < 2^31, so neither product below overflows int64. */
    int64_t p = (int64_t)c * h;
    if (p <= CVAE__DATASET_MAX_PIXELS)
        p *= w;
    if (p > CVAE__DATASET_MAX_PIXELS)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "image shape %d x %d x %d exceeds the limit of %lld pixels per image",
                          c, h, w, (long long)CVAE__DATASET_MAX_PIXELS);
    /* Whole-set float conversions must stay addressable, so size by float. */
    if (count > INT64_MAX / p || (uint64_t)(count * p) > SIZE_MAX / sizeof(float))
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "%lld images of %lld pixels overflow the address space",
                          (long long)count, (long long)p);
    *pixels = p;
    return CVAE_OK;
}

enum { STORE_NONE, STORE_U8, STORE_F32 };

/* A data set of a validated shape with storage of the given kind allocated
 * (STORE_NONE: the caller attaches its own). */
static cvae_status ds_create(int64_t count, int c, int h, int w, int64_t pixels, int store,
                             int with_labels, cvae_dataset **out)
{
    *out = NULL;
    cvae_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a data set");
    ds->count = count;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->pixels = pixels;
    size_t n = (size_t)(count * pixels); /* fits: check_shape or the IDX header check */
    if (store == STORE_U8) {
        ds->u8_alloc = cvae__aligned_alloc(n);
        ds->u8 = ds->u8_alloc;
        if (!ds->u8_alloc)
            goto nomem;
    } else if (store == STORE_F32) {
        ds->f32 = cvae__aligned_alloc(n * sizeof(float));
        if (!ds->f32)
            goto nomem;
    }
    if (with_labels) {
        ds->labels = malloc((size_t)count * sizeof(int32_t));
        if (!ds->labels)
            goto nomem;
    }
    *out = ds;
    return CVAE_OK;
nomem:
    cvae_dataset_destroy(ds);
    return cvae__fail(CVAE_E_NOMEM, "cannot allocate a data set of %lld images of %lld pixels",
                      (long long)count, (long long)pixels);
}

void cvae_dataset_destroy(cvae_dataset *ds)
{
    if (!ds)
        return;
    cvae__aligned_free(ds->u8_alloc);
    cvae__aligned_free(ds->f32);
    free(ds->labels);
    if (ds->paths)
        cvae__strlist_free(ds->paths);
    free(ds->paths);
    free(ds);
}

static cvae_status check_labels(const int32_t *labels, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        if (labels[i] < 0)
            return cvae__fail(CVAE_E_INVALID_ARG, "labels[%lld] = %ld is negative",
                              (long long)i, (long)labels[i]);
    return CVAE_OK;
}

cvae_status cvae_dataset_from_u8(const uint8_t *pixels, int64_t count, int channels, int height,
                                 int width, const int32_t *labels, cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(pixels);
    int64_t p = 0;
    cvae_status st = check_shape(count, channels, height, width, &p);
    if (st)
        return st;
    if (labels && (st = check_labels(labels, count)) != CVAE_OK)
        return st;
    cvae_dataset *ds;
    st = ds_create(count, channels, height, width, p, STORE_U8, labels != NULL, &ds);
    if (st)
        return st;
    memcpy(ds->u8_alloc, pixels, (size_t)(count * p));
    if (labels)
        memcpy(ds->labels, labels, (size_t)count * sizeof(int32_t));
    *out = ds;
    return CVAE_OK;
}

cvae_status cvae_dataset_from_f32(const float *pixels, int64_t count, int channels, int height,
                                  int width, const int32_t *labels, cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(pixels);
    int64_t p = 0;
    cvae_status st = check_shape(count, channels, height, width, &p);
    if (st)
        return st;
    int64_t total = count * p;
    for (int64_t i = 0; i < total; i++) {
        float v = pixels[i];
        if (!isfinite(v))
            return cvae__fail(CVAE_E_NUMERIC, "pixels[%lld] (image %lld) is %s", (long long)i,
                              (long long)(i / p), isnan(v) ? "NaN" : "infinite");
        if (!(v >= 0.0f && v <= 1.0f))
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "pixels[%lld] (image %lld) = %g is outside [0, 1]", (long long)i,
                              (long long)(i / p), (double)v);
    }
    if (labels && (st = check_labels(labels, count)) != CVAE_OK)
        return st;
    cvae_dataset *ds;
    st = ds_create(count, channels, height, width, p, STORE_F32, labels != NULL, &ds);
    if (st)
        return st;
    memcpy(ds->f32, pixels, (size_t)total * sizeof(float));
    if (labels)
        memcpy(ds->labels, labels, (size_t)count * sizeof(int32_t));
    *out = ds;
    return CVAE_OK;
}

/* ------------------------------------------------------------------------ */
/* Image files: data sets that know the path of every image                 */
/* ------------------------------------------------------------------------ */

cvae_status cvae__dataset_adopt_u8(uint8_t *pixels, int64_t count, int c, int h, int w,
                                   cvae_dataset **out)
{
    *out = NULL;
    int64_t p = 0;
    cvae_status st = check_shape(count, c, h, w, &p);
    if (!st)
        st = ds_create(count, c, h, w, p, STORE_NONE, 0, out);
    if (st)
        return st;
    (*out)->u8_alloc = pixels;
    (*out)->u8 = pixels;
    cvae__advise_random_access(pixels, (size_t)(count * p));
    return CVAE_OK;
}

void cvae__dataset_set_paths(cvae_dataset *ds, cvae__strlist *paths)
{
    if (ds->paths)
        cvae__strlist_free(ds->paths);
    free(ds->paths);
    ds->paths = paths;
}

/* dst's paths: src's at indices[0..n), or its first n if indices is NULL. */
static cvae_status copy_paths(cvae_dataset *dst, const cvae_dataset *src, const int64_t *indices,
                              int64_t n)
{
    if (!src->paths)
        return CVAE_OK;
    cvae__strlist *l = calloc(1, sizeof *l);
    if (!l)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate the paths of a subset");
    for (int64_t i = 0; i < n; i++) {
        const char *s = cvae__strlist_get(src->paths, indices ? indices[i] : i);
        cvae_status st = cvae__strlist_add(l, s, strlen(s));
        if (st) {
            cvae__strlist_free(l);
            free(l);
            return st;
        }
    }
    cvae__dataset_set_paths(dst, l);
    return CVAE_OK;
}

cvae_status cvae_dataset_path(const cvae_dataset *ds, int64_t index, const char **path)
{
    CVAE__CHECK_PTR(path);
    *path = NULL;
    CVAE__CHECK_PTR(ds);
    if (!ds->paths)
        return cvae__fail(CVAE_E_STATE, "the data set was not read from image files");
    if (index < 0 || index >= ds->count)
        return cvae__fail(CVAE_E_INVALID_ARG, "image %lld is not in [0, %lld)",
                          (long long)index, (long long)ds->count);
    *path = cvae__strlist_get(ds->paths, index);
    return CVAE_OK;
}

/* ------------------------------------------------------------------------ */
/* Subsets                                                                  */
/* ------------------------------------------------------------------------ */

/* Copy image src_i of src into slot dst_i of dst (same storage kind). */
static void copy_image(cvae_dataset *dst, int64_t dst_i, const cvae_dataset *src, int64_t src_i)
{
    size_t p = (size_t)src->pixels;
    if (src->u8)
        memcpy(dst->u8_alloc + (size_t)dst_i * p, src->u8 + (size_t)src_i * p, p);
    else
        memcpy(dst->f32 + (size_t)dst_i * p, src->f32 + (size_t)src_i * p, p * sizeof(float));
    if (src->labels)
        dst->labels[dst_i] = src->labels[src_i];
}

static cvae_status subset_create(const cvae_dataset *src, int64_t n, cvae_dataset **out)
{
    return ds_create(n, src->c, src->h, src->w, src->pixels, src->u8 ? STORE_U8 : STORE_F32,
                     src->labels != NULL, out);
}

cvae_status cvae_dataset_subset_first(const cvae_dataset *src, int64_t n, cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(src);
    if (n < 1 || n > src->count)
        return cvae__fail(CVAE_E_INVALID_ARG, "subset of %lld images: must be in [1, %lld]",
                          (long long)n, (long long)src->count);
    cvae_dataset *ds;
    cvae_status st = subset_create(src, n, &ds);
    if (st)
        return st;
    size_t p = (size_t)src->pixels;
    if (src->u8)
        memcpy(ds->u8_alloc, src->u8, (size_t)n * p);
    else
        memcpy(ds->f32, src->f32, (size_t)n * p * sizeof(float));
    if (src->labels)
        memcpy(ds->labels, src->labels, (size_t)n * sizeof(int32_t));
    if ((st = copy_paths(ds, src, NULL, n)) != CVAE_OK) {
        cvae_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return CVAE_OK;
}

cvae_status cvae_dataset_subset_indices(const cvae_dataset *src, const int64_t *indices, int64_t n,
                                        cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(src);
    CVAE__CHECK_PTR(indices);
    if (n < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "subset of %lld images: must be >= 1",
                          (long long)n);
    /* Sizes first, so an overflowing n is refused before indices[] is read
     * (repeats may make n exceed the source count: the size is new). */
    if ((uint64_t)n > SIZE_MAX / sizeof *indices)
        return cvae__fail(CVAE_E_INVALID_ARG, "%lld indices overflow the address space",
                          (long long)n);
    int64_t p = 0;
    cvae_status st = check_shape(n, src->c, src->h, src->w, &p);
    if (st)
        return st;
    for (int64_t i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= src->count)
            return cvae__fail(CVAE_E_INVALID_ARG, "indices[%lld] = %lld is outside [0, %lld)",
                              (long long)i, (long long)indices[i], (long long)src->count);
    cvae_dataset *ds;
    if ((st = subset_create(src, n, &ds)) != CVAE_OK)
        return st;
    for (int64_t i = 0; i < n; i++)
        copy_image(ds, i, src, indices[i]);
    if ((st = copy_paths(ds, src, indices, n)) != CVAE_OK) {
        cvae_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return CVAE_OK;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

cvae_status cvae_dataset_shape(const cvae_dataset *ds, int64_t *count, int *channels,
                               int *height, int *width)
{
    CVAE__CHECK_PTR(ds);
    if (count)
        *count = ds->count;
    cvae__dataset_dims(ds, channels, height, width);
    return CVAE_OK;
}

cvae_status cvae_dataset_has_labels(const cvae_dataset *ds, int *has_labels)
{
    CVAE__CHECK_PTR(ds);
    CVAE__CHECK_PTR(has_labels);
    *has_labels = ds->labels != NULL;
    return CVAE_OK;
}

cvae_status cvae_dataset_labels(const cvae_dataset *ds, int32_t *out, int64_t count)
{
    CVAE__CHECK_PTR(ds);
    CVAE__CHECK_PTR(out);
    if (!ds->labels)
        return cvae__fail(CVAE_E_STATE, "the data set has no labels");
    if (count != ds->count)
        return cvae__fail(CVAE_E_INVALID_ARG, "label buffer holds %lld, the data set has %lld",
                          (long long)count, (long long)ds->count);
    memcpy(out, ds->labels, (size_t)count * sizeof(int32_t));
    return CVAE_OK;
}

/* Images [start, start+n) as float32. */
static void copy_range_f32(const cvae_dataset *ds, int64_t start, int64_t n, float *out)
{
    size_t off = (size_t)(start * ds->pixels), len = (size_t)(n * ds->pixels);
    if (ds->u8) {
        const uint8_t *s = ds->u8 + off;
        for (size_t i = 0; i < len; i++)
            out[i] = u8_to_f32[s[i]];
    } else {
        memcpy(out, ds->f32 + off, len * sizeof(float));
    }
}

cvae_status cvae_dataset_images_f32(const cvae_dataset *ds, int64_t start, int64_t count,
                                    float *out)
{
    CVAE__CHECK_PTR(ds);
    CVAE__CHECK_PTR(out);
    if (start < 0 || count < 1 || start >= ds->count || count > ds->count - start)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "images [%lld, %lld + %lld) are not within the data set's %lld",
                          (long long)start, (long long)start, (long long)count,
                          (long long)ds->count);
    copy_range_f32(ds, start, count, out);
    return CVAE_OK;
}

int64_t cvae__dataset_count(const cvae_dataset *ds) { return ds->count; }

int cvae__dataset_dims(const cvae_dataset *ds, int *c, int *h, int *w)
{
    if (c)
        *c = ds->c;
    if (h)
        *h = ds->h;
    if (w)
        *w = ds->w;
    return (int)ds->pixels;
}

void cvae__dataset_gather_f32(const cvae_dataset *ds, const int64_t *indices, int n, float *out)
{
    for (int i = 0; i < n; i++)
        copy_range_f32(ds, indices[i], 1, out + (size_t)i * (size_t)ds->pixels);
}

const int32_t *cvae__dataset_labels_ptr(const cvae_dataset *ds) { return ds->labels; }

/* ------------------------------------------------------------------------ */
/* IDX parsing                                                              */
/* ------------------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

size_t cvae__idx_header_size(const uint8_t magic[4], int kind)
{
    if (!magic || magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08)
        return 0;
    if (kind == CVAE__IDX_IMAGES && (magic[3] == 3 || magic[3] == 4))
        return 4 + 4 * (size_t)magic[3];
    if (kind == CVAE__IDX_LABELS && magic[3] == 1)
        return 8;
    return 0;
}

cvae_status cvae__idx_parse_header(const uint8_t *buf, size_t len, int kind, const char *name,
                                   cvae__idx_info *info)
{
    CVAE__CHECK_PTR(info);
    memset(info, 0, sizeof *info);
    if (!buf && len)
        return cvae__fail(CVAE_E_INVALID_ARG, "%s: buf is NULL", __func__);
    if (kind != CVAE__IDX_IMAGES && kind != CVAE__IDX_LABELS)
        return cvae__fail(CVAE_E_INVALID_ARG, "%s: unknown kind %d", __func__, kind);
    if (!name)
        name = kind == CVAE__IDX_IMAGES ? "images file" : "labels file";
    if (len == 0)
        return cvae__fail(CVAE_E_FORMAT, "%s is empty", name);
    if (len < 4)
        return cvae__fail(CVAE_E_FORMAT, "%s is truncated: %zu bytes, shorter than an IDX magic",
                          name, len);
    if (buf[0] != 0 || buf[1] != 0)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s is not an IDX file (magic 0x%02X%02X%02X%02X, expected 0x000008xx)",
                          name, buf[0], buf[1], buf[2], buf[3]);
    if (buf[2] != 0x08)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s has IDX element type 0x%02X; only unsigned bytes (0x08) are "
                          "supported",
                          name, buf[2]);
    int nd = buf[3];
    if (kind == CVAE__IDX_IMAGES && nd != 3 && nd != 4)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s has %d dimensions; IDX images have 3 (N x H x W) or 4 "
                          "(N x C x H x W)%s",
                          name, nd, nd == 1 ? " (is it a labels file?)" : "");
    if (kind == CVAE__IDX_LABELS && nd != 1)
        return cvae__fail(CVAE_E_FORMAT, "%s has %d dimensions; IDX labels have 1%s", name, nd,
                          nd == 3 || nd == 4 ? " (is it an images file?)" : "");
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr)
        return cvae__fail(CVAE_E_FORMAT, "%s is truncated: its header needs %zu bytes, got %zu",
                          name, hdr, len);
    uint32_t d[4] = {1, 1, 1, 1};
    for (int i = 0; i < nd; i++) {
        d[i] = be32(buf + 4 + 4 * i);
        if (d[i] == 0)
            return cvae__fail(CVAE_E_FORMAT, "%s: dimension %d is 0", name, i);
    }
    uint32_t c = 1, h = 1, w = 1;
    if (nd == 3) {
        h = d[1];
        w = d[2];
    } else if (nd == 4) {
        c = d[1];
        h = d[2];
        w = d[3];
    }
    if (c > CVAE__IDX_MAX_DIM || h > CVAE__IDX_MAX_DIM || w > CVAE__IDX_MAX_DIM)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s: image shape %lu x %lu x %lu has a dimension above %d", name,
                          (unsigned long)c, (unsigned long)h, (unsigned long)w,
                          CVAE__IDX_MAX_DIM);
    /* c, h, w < 2^16 and count < 2^32: no uint64 product below overflows. */
    uint64_t per = (uint64_t)c * h * w;
    if (per > (uint64_t)CVAE__DATASET_MAX_PIXELS)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s: image shape %lu x %lu x %lu exceeds the limit of %lld pixels",
                          name, (unsigned long)c, (unsigned long)h, (unsigned long)w,
                          (long long)CVAE__DATASET_MAX_PIXELS);
    uint64_t total = (uint64_t)d[0] * per;
    if (total > (SIZE_MAX - hdr) / sizeof(float))
        return cvae__fail(CVAE_E_FORMAT,
                          "%s: %lu items of %llu bytes are too large for this platform", name,
                          (unsigned long)d[0], (unsigned long long)per);
    info->ndim = nd;
    info->count = d[0];
    info->channels = (int)c;
    info->height = (int)h;
    info->width = (int)w;
    info->header_bytes = hdr;
    info->data_bytes = (size_t)total;
    return CVAE_OK;
}

static const char *data_word(int kind) { return kind == CVAE__IDX_IMAGES ? "pixel" : "label"; }

cvae_status cvae__idx_parse(const uint8_t *buf, size_t len, int kind, const char *name,
                            cvae__idx_info *info)
{
    cvae_status st = cvae__idx_parse_header(buf, len, kind, name, info);
    if (st)
        return st;
    if (!name)
        name = kind == CVAE__IDX_IMAGES ? "images file" : "labels file";
    size_t got = len - info->header_bytes;
    if (got < info->data_bytes)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s is truncated: expected %zu bytes of %s data, got %zu", name,
                          info->data_bytes, data_word(kind), got);
    if (got > info->data_bytes)
        return cvae__fail(CVAE_E_FORMAT,
                          "%s has %zu bytes of trailing data after the %zu its header promises",
                          name, got - info->data_bytes, info->data_bytes);
    return CVAE_OK;
}

/* The data set of parsed image data (and label data, if lab is not NULL).
 * The counts must agree; pixels are copied unless adopt is the allocation
 * that holds them (the data set then owns it). */
static cvae_status idx_assemble(const cvae__idx_info *ii, const uint8_t *img,
                                const cvae__idx_info *li, const uint8_t *lab, const char *iname,
                                const char *lname, uint8_t *adopt, cvae_dataset **out)
{
    if (li && li->count != ii->count)
        return cvae__fail(CVAE_E_FORMAT, "%s has %lld items, %s has %lld", lname,
                          (long long)li->count, iname, (long long)ii->count);
    int64_t pixels = (int64_t)ii->channels * ii->height * ii->width;
    cvae_dataset *ds;
    cvae_status st = ds_create(ii->count, ii->channels, ii->height, ii->width, pixels,
                               adopt ? STORE_NONE : STORE_U8, li != NULL, &ds);
    if (st)
        return st;
    if (adopt) {
        ds->u8_alloc = adopt;
        ds->u8 = img;
        cvae__advise_random_access(adopt, (size_t)(img - adopt) + ii->data_bytes);
    } else {
        memcpy(ds->u8_alloc, img, ii->data_bytes);
    }
    if (li)
        for (int64_t i = 0; i < li->count; i++)
            ds->labels[i] = lab[i];
    *out = ds;
    return CVAE_OK;
}

cvae_status cvae__dataset_from_idx_memory(const uint8_t *images, size_t images_len,
                                          const uint8_t *labels, size_t labels_len,
                                          cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(images);
    cvae__idx_info ii, li;
    cvae_status st = cvae__idx_parse(images, images_len, CVAE__IDX_IMAGES, NULL, &ii);
    if (st)
        return st;
    if (labels && (st = cvae__idx_parse(labels, labels_len, CVAE__IDX_LABELS, NULL, &li)))
        return st;
    return idx_assemble(&ii, images + ii.header_bytes, labels ? &li : NULL,
                        labels ? labels + li.header_bytes : NULL, "images file", "labels file",
                        NULL, out);
}

/* ------------------------------------------------------------------------ */
/* IDX files                                                                */
/* ------------------------------------------------------------------------ */

/* First allocation for file data; growth doubles from here. */
#define IDX_CHUNK ((size_t)1 << 16)
/* gzread takes an unsigned and returns an int: read at most this per call. */
#define IDX_MAX_READ ((size_t)1 << 30)

typedef struct idx_file {
    gzFile gz;
    int kind;
    char name[320]; /* "images file '<path>'" for messages */
    uint8_t *buf;
    size_t len, cap;
    cvae__idx_info info;
} idx_file;

static cvae_status gz_failure(idx_file *f, int saved_errno)
{
    int err = Z_OK;
    const char *msg = gzerror(f->gz, &err);
    if (err == Z_ERRNO)
        return cvae__fail(CVAE_E_IO, "cannot read %s: %s", f->name, strerror(saved_errno));
    if (err == Z_MEM_ERROR)
        return cvae__fail(CVAE_E_NOMEM, "out of memory decompressing %s", f->name);
    return cvae__fail(CVAE_E_FORMAT, "%s is not a valid gzip stream: %s", f->name,
                      msg ? msg : "unknown zlib error");
}

/* Read until f->len == want or end of file. The buffer grows only as data
 * arrives (doubling, capped at want), so memory follows the real file size
 * and never a header's claim. */
static cvae_status idx_read_upto(idx_file *f, size_t want)
{
    while (f->len < want) {
        if (f->len == f->cap) {
            size_t ncap = f->cap <= SIZE_MAX / 2 ? f->cap * 2 : SIZE_MAX;
            if (ncap < IDX_CHUNK)
                ncap = IDX_CHUNK;
            if (ncap > want)
                ncap = want;
            uint8_t *nb = realloc(f->buf, ncap);
            if (!nb)
                return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes reading %s", ncap,
                                  f->name);
            f->buf = nb;
            f->cap = ncap;
        }
        size_t room = f->cap - f->len;
        if (room > IDX_MAX_READ)
            room = IDX_MAX_READ;
        errno = 0;
        int got = gzread(f->gz, f->buf + f->len, (unsigned)room);
        if (got < 0)
            return gz_failure(f, errno);
        if (got == 0)
            break; /* end of data; a truncated gzip stream also ends here */
        f->len += (size_t)got;
    }
    return CVAE_OK;
}

/* Open a file and validate its header; nothing large is allocated yet. */
static cvae_status idx_open(idx_file *f, const char *path, int kind)
{
    f->kind = kind;
    snprintf(f->name, sizeof f->name, "%s file '%s'",
             kind == CVAE__IDX_IMAGES ? "images" : "labels", path);
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return cvae__fail(errno == ENOMEM ? CVAE_E_NOMEM : CVAE_E_IO, "cannot open %s: %s",
                          f->name, errno ? strerror(errno) : "zlib could not open it");
    gzbuffer(f->gz, 1u << 17);
    cvae_status st = idx_read_upto(f, 4);
    if (st)
        return st;
    /* gzread reports a gzip stream that stops inside its own header (a file
     * of just the magic) as an end of file with no data; that file is cut
     * short, not empty. */
    int zerr = Z_OK;
    gzerror(f->gz, &zerr);
    if (f->len < 4 && zerr == Z_BUF_ERROR)
        return cvae__fail(CVAE_E_FORMAT, "%s is truncated: its gzip stream ends early, after %zu "
                          "bytes of data", f->name, f->len);
    size_t hdr = f->len == 4 ? cvae__idx_header_size(f->buf, kind) : 0;
    if (hdr && (st = idx_read_upto(f, hdr)) != CVAE_OK)
        return st;
    /* On a bad or short magic this reports why. */
    return cvae__idx_parse_header(f->buf, f->len, kind, f->name, &f->info);
}

/* Read the data the header promises, then make sure nothing follows. */
static cvae_status idx_read_data(idx_file *f)
{
    size_t total = f->info.header_bytes + f->info.data_bytes;
    /* Ask for one byte more than promised (total + 1 cannot overflow: the
     * header check keeps total far below SIZE_MAX). A byte that arrives is
     * trailing data. And zlib only notices a gzip stream cut short after the
     * last data byte (in its CRC and length trailer) if inflate is still
     * asked for output then: a read that ends exactly where the data ends
     * leaves the trailer unread, and gzread then reports a plain end of file
     * once the input is used up. */
    cvae_status st = idx_read_upto(f, total + 1);
    if (st)
        return st;
    if (f->len > total)
        return cvae__fail(CVAE_E_FORMAT, "%s has trailing data after the %zu bytes its "
                          "header promises", f->name, total);
    if (f->len == total) {
        /* gzread reports a gzip stream cut before the end of its trailer as
         * a plain end of file, even when all the data came out. */
        int err = Z_OK;
        gzerror(f->gz, &err);
        if (err == Z_BUF_ERROR)
            return cvae__fail(CVAE_E_FORMAT, "%s is truncated: its gzip stream ends early",
                              f->name);
    }
    return cvae__idx_parse(f->buf, f->len, f->kind, f->name, &f->info);
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    free(f->buf);
}

cvae_status cvae_dataset_load_idx(const char *images_path, const char *labels_path,
                                  cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(images_path);
    idx_file img, lab;
    memset(&img, 0, sizeof img);
    memset(&lab, 0, sizeof lab);
    cvae_status st = idx_open(&img, images_path, CVAE__IDX_IMAGES);
    if (!st && labels_path) {
        st = idx_open(&lab, labels_path, CVAE__IDX_LABELS);
        /* Compare counts before reading megabytes of pixels. */
        if (!st && lab.info.count != img.info.count)
            st = cvae__fail(CVAE_E_FORMAT, "%s has %lld items, %s has %lld", lab.name,
                            (long long)lab.info.count, img.name, (long long)img.info.count);
    }
    if (!st)
        st = idx_read_data(&img);
    if (!st && labels_path)
        st = idx_read_data(&lab);
    if (!st) {
        st = idx_assemble(&img.info, img.buf + img.info.header_bytes,
                          labels_path ? &lab.info : NULL,
                          labels_path ? lab.buf + lab.info.header_bytes : NULL, img.name,
                          lab.name, img.buf, out);
        if (!st)
            img.buf = NULL; /* now owned by the data set */
    }
    idx_close(&img);
    idx_close(&lab);
    return st;
}
