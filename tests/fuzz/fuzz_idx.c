/* Fuzz harness for the IDX reader: the in-memory parser
 * (cvae__idx_parse_header, cvae__idx_parse, cvae__dataset_from_idx_memory)
 * and the file reader cvae_dataset_load_idx on the same bytes, raw and
 * gzip-compressed. The file reader is the only gzip path (zlib's gzopen/
 * gzread), so the harness hands it the bytes as a memfd opened through
 * /proc/self/fd/N: the production code runs unchanged, without touching
 * the disk.
 *
 * Input: byte 0 = flags (bit 0: with a labels file; bit 1: also through
 * gzip; bit 2: also gzip streams cut short; bit 3: memory parser only, no
 * file paths; bit 4: pad the images with zeros to what the header promises,
 * at most 2 MB, so that the file reader's buffer growth is reached); bytes 1-2 =
 * length L of the labels part (little-endian, clipped); then L bytes of
 * labels file, then the images file. Inputs too short for the prefix are
 * all images.
 *
 * Beyond "no crash, no leak, no UB", the harness checks the reader's
 * promises: a failure has an IDX status, a message and *out == NULL; a
 * parsed header is consistent with the length; and the three paths agree
 * (same success, and the same images and labels). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "convvae.h"
#include "io/dataset.h"
#include "fuzz.h"

enum { F_LABELS = 1, F_GZIP = 2, F_CUT = 4, F_MEMONLY = 8, F_PAD = 16 };

/* Most an F_PAD input grows to: 32 times the reader's first buffer. */
#define PAD_MAX ((size_t)2 << 20)

/* What the file reader must do with an input. */
enum { MUST_FAIL, MUST_MATCH, ANY };

/* A file in memory that gzopen can open by name. */
typedef struct memfile {
    int fd;
    char path[64];
} memfile;

static memfile mf_images = {-1, ""}, mf_labels = {-1, ""};

static void mf_open(memfile *m, const char *name)
{
    if (m->fd >= 0)
        return;
    m->fd = memfd_create(name, MFD_CLOEXEC);
    if (m->fd < 0) {
        /* Kernels without memfd: an unlinked temporary file does the same. */
        FILE *t = tmpfile();
        FUZZ_CHECK(t != NULL);
        m->fd = dup(fileno(t));
        fclose(t);
    }
    FUZZ_CHECK(m->fd >= 0);
    snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
}

static void mf_write(memfile *m, const uint8_t *data, size_t len)
{
    FUZZ_CHECK(ftruncate(m->fd, 0) == 0);
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(m->fd, data + done, len - done, (off_t)done);
        FUZZ_CHECK(w > 0);
        done += (size_t)w;
    }
}

/* gzip (RFC 1952) of data; caller frees. */
static uint8_t *gzip_bytes(const uint8_t *data, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    FUZZ_CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    uLong cap = deflateBound(&zs, (uLong)len) + 32;
    uint8_t *out = malloc(cap);
    FUZZ_CHECK(out != NULL);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    FUZZ_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    *out_len = (size_t)zs.total_out;
    deflateEnd(&zs);
    return out;
}

static void check_failure(cvae_status st, const cvae_dataset *ds)
{
    FUZZ_CHECK(st == CVAE_E_FORMAT || st == CVAE_E_IO || st == CVAE_E_NOMEM);
    FUZZ_CHECK(ds == NULL);
    const char *msg = cvae_last_error();
    FUZZ_CHECK(msg != NULL && msg[0] != '\0');
}

static void check_parse(const uint8_t *buf, size_t len, int kind)
{
    cvae__idx_info info;
    cvae_status st = cvae__idx_parse_header(buf, len, kind, NULL, &info);
    if (st == CVAE_OK) {
        FUZZ_CHECK(info.header_bytes <= len);
        FUZZ_CHECK(info.header_bytes == 4 + 4 * (size_t)info.ndim);
        FUZZ_CHECK(info.count >= 1 && info.channels >= 1 && info.height >= 1 &&
                   info.width >= 1);
        FUZZ_CHECK((uint64_t)info.data_bytes == (uint64_t)info.count * (uint64_t)info.channels *
                                                    (uint64_t)info.height *
                                                    (uint64_t)info.width);
        FUZZ_CHECK(cvae__idx_header_size(buf, kind) == info.header_bytes);
    } else {
        FUZZ_CHECK(st == CVAE_E_FORMAT);
    }
    cvae_status whole = cvae__idx_parse(buf, len, kind, "fuzz input", &info);
    if (whole == CVAE_OK) {
        FUZZ_CHECK(st == CVAE_OK);
        FUZZ_CHECK(info.header_bytes + info.data_bytes == len);
    } else {
        FUZZ_CHECK(whole == CVAE_E_FORMAT);
    }
}

/* Both data sets hold the same images and labels (the reference's pixels
 * were verified to be a copy of the input's data section). */
static void check_same(const cvae_dataset *a, const cvae_dataset *b)
{
    int64_t na, nb;
    int ca, ha, wa, cb, hb, wb, la, lb;
    FUZZ_CHECK(cvae_dataset_shape(a, &na, &ca, &ha, &wa) == CVAE_OK);
    FUZZ_CHECK(cvae_dataset_shape(b, &nb, &cb, &hb, &wb) == CVAE_OK);
    FUZZ_CHECK(na == nb && ca == cb && ha == hb && wa == wb);
    FUZZ_CHECK(cvae_dataset_has_labels(a, &la) == CVAE_OK);
    FUZZ_CHECK(cvae_dataset_has_labels(b, &lb) == CVAE_OK);
    FUZZ_CHECK(la == lb);
    size_t n = (size_t)na * (size_t)ca * (size_t)ha * (size_t)wa;
    float *xa = malloc(n * sizeof *xa), *xb = malloc(n * sizeof *xb);
    FUZZ_CHECK(xa && xb);
    FUZZ_CHECK(cvae_dataset_images_f32(a, 0, na, xa) == CVAE_OK);
    FUZZ_CHECK(cvae_dataset_images_f32(b, 0, nb, xb) == CVAE_OK);
    FUZZ_CHECK(memcmp(xa, xb, n * sizeof *xa) == 0);
    free(xa);
    free(xb);
    if (la) {
        int32_t *ya = malloc((size_t)na * sizeof *ya), *yb = malloc((size_t)na * sizeof *yb);
        FUZZ_CHECK(ya && yb);
        FUZZ_CHECK(cvae_dataset_labels(a, ya, na) == CVAE_OK);
        FUZZ_CHECK(cvae_dataset_labels(b, yb, nb) == CVAE_OK);
        FUZZ_CHECK(memcmp(ya, yb, (size_t)na * sizeof *ya) == 0);
        for (int64_t i = 0; i < na; i++)
            FUZZ_CHECK(ya[i] >= 0 && ya[i] <= 255);
        free(ya);
        free(yb);
    }
}

/* The memory reference: pixels are the bytes after the header, as x/255. */
static void check_pixels(const cvae_dataset *ds, const uint8_t *img, size_t len)
{
    cvae__idx_info info;
    FUZZ_CHECK(cvae__idx_parse(img, len, CVAE__IDX_IMAGES, NULL, &info) == CVAE_OK);
    int64_t n;
    FUZZ_CHECK(cvae_dataset_shape(ds, &n, NULL, NULL, NULL) == CVAE_OK);
    FUZZ_CHECK(n == info.count);
    float *x = malloc(info.data_bytes * sizeof *x);
    FUZZ_CHECK(x != NULL);
    FUZZ_CHECK(cvae_dataset_images_f32(ds, 0, n, x) == CVAE_OK);
    for (size_t i = 0; i < info.data_bytes; i++)
        FUZZ_CHECK(x[i] == (float)img[info.header_bytes + i] / 255.0f);
    free(x);
}

/* Load through the file reader. MUST_MATCH: same success as the memory
 * parser (ref_st) and, if ref is given, the same data set. NOMEM is the one
 * status allowed to differ: the file reader allocates differently. */
static void check_file_path(const uint8_t *img, size_t ilen, const uint8_t *lab, size_t llen,
                            int expect, cvae_status ref_st, const cvae_dataset *ref)
{
    mf_write(&mf_images, img, ilen);
    if (lab)
        mf_write(&mf_labels, lab, llen);
    cvae_dataset *ds = (cvae_dataset *)(uintptr_t)1;
    cvae_status st = cvae_dataset_load_idx(mf_images.path, lab ? mf_labels.path : NULL, &ds);
    if (st != CVAE_OK)
        check_failure(st, ds);
    if (expect == MUST_FAIL)
        FUZZ_CHECK(st != CVAE_OK);
    if (expect == MUST_MATCH && st != CVAE_E_NOMEM && ref_st != CVAE_E_NOMEM)
        FUZZ_CHECK((st == CVAE_OK) == (ref_st == CVAE_OK));
    if (expect == MUST_MATCH && st == CVAE_OK && ref)
        check_same(ref, ds);
    cvae_dataset_destroy(ds);
}

static int is_gzip(const uint8_t *p, size_t len)
{
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mf_open(&mf_images, "images");
    mf_open(&mf_labels, "labels");
    uint8_t flags = 0;
    const uint8_t *img = data, *lab = NULL;
    size_t ilen = size, llen = 0;
    if (size >= 3) {
        flags = data[0];
        size_t l = (size_t)data[1] | (size_t)data[2] << 8;
        size_t rest = size - 3;
        if (l > rest)
            l = rest;
        if (flags & F_LABELS) {
            lab = data + 3;
            llen = l;
        }
        img = data + 3 + l;
        ilen = rest - l;
    }

    uint8_t *padded = NULL;
    cvae__idx_info pinfo;
    if ((flags & F_PAD) &&
        cvae__idx_parse_header(img, ilen, CVAE__IDX_IMAGES, NULL, &pinfo) == CVAE_OK &&
        pinfo.header_bytes + pinfo.data_bytes > ilen) {
        size_t want = pinfo.header_bytes + pinfo.data_bytes;
        if (want > PAD_MAX)
            want = PAD_MAX; /* still truncated, but only after growing */
        padded = calloc(1, want);
        FUZZ_CHECK(padded != NULL);
        memcpy(padded, img, ilen);
        img = padded;
        ilen = want;
    }

    check_parse(img, ilen, CVAE__IDX_IMAGES);
    check_parse(img, ilen, CVAE__IDX_LABELS);
    if (lab) {
        check_parse(lab, llen, CVAE__IDX_LABELS);
        check_parse(lab, llen, CVAE__IDX_IMAGES);
    }
    /* The parser must not read past the length it is given. */
    for (size_t cut = 0; cut < 28 && cut < ilen; cut += 3)
        check_parse(img, cut, CVAE__IDX_IMAGES);

    cvae_dataset *ref = (cvae_dataset *)(uintptr_t)1;
    cvae_status ref_st = cvae__dataset_from_idx_memory(img, ilen, lab, llen, &ref);
    if (ref_st != CVAE_OK)
        check_failure(ref_st, ref);
    else
        check_pixels(ref, img, ilen);

    if (!(flags & F_MEMONLY)) {
        /* zlib reads non-gzip bytes as they are: then the file reader must
         * agree with the memory parser exactly. */
        int raw = !is_gzip(img, ilen) && !(lab && is_gzip(lab, llen));
        check_file_path(img, ilen, lab, llen, raw ? MUST_MATCH : ANY, ref_st, ref);
    }
    if (!(flags & F_MEMONLY) && (flags & F_GZIP)) {
        size_t gilen, gllen = 0;
        uint8_t *gi = gzip_bytes(img, ilen, &gilen);
        uint8_t *gl = lab ? gzip_bytes(lab, llen, &gllen) : NULL;
        check_file_path(gi, gilen, gl, gllen, MUST_MATCH, ref_st, ref);
        /* A gzip stream cut anywhere (even in its CRC trailer, after all the
         * data came out) must be refused. */
        if ((flags & F_CUT) && ref_st == CVAE_OK) {
            check_file_path(gi, gilen - 1, gl, gllen, MUST_FAIL, ref_st, NULL);
            check_file_path(gi, gilen / 2, gl, gllen, MUST_FAIL, ref_st, NULL);
        }
        free(gi);
        free(gl);
    }
    cvae_dataset_destroy(ref);
    free(padded);
    return 0;
}
