/* Data sets and the IDX reader. IDX files are written here byte by byte
 * (big-endian header by hand, raw or through gzwrite) into a temporary
 * directory, read back and compared with the pixels and labels they were
 * made from; broken files must fail with a status, a message and *out NULL. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "convvae.h"
#include "core/error.h"
#include "io/dataset.h"

/* ------------------------------------------------------------------------ */
/* Temporary files                                                          */
/* ------------------------------------------------------------------------ */

static char tmpdir[64];
#define MAX_FILES 256
static char *files[MAX_FILES];
static int nfiles;

static int group_setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/cvae_test_dataset_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < nfiles; i++) {
        unlink(files[i]);
        free(files[i]);
    }
    nfiles = 0;
    return rmdir(tmpdir);
}

/* Path of a new file in the temp dir (owned by the file list). */
static const char *tmp_path(const char *name)
{
    assert_true(nfiles < MAX_FILES);
    size_t n = strlen(tmpdir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", tmpdir, name);
    for (int i = 0; i < nfiles; i++)
        if (strcmp(files[i], p) == 0) {
            free(p);
            return files[i];
        }
    files[nfiles++] = p;
    return p;
}

static const char *write_raw(const char *name, const uint8_t *buf, size_t len)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_gz(const char *name, const uint8_t *buf, size_t len)
{
    const char *path = tmp_path(name);
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    if (len)
        assert_int_equal(gzwrite(gz, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
    return path;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ------------------------------------------------------------------------ */
/* IDX buffers                                                              */
/* ------------------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX file: magic 00 00 type nd, nd big-endian dims, then data. */
static uint8_t *make_idx(uint8_t type, int nd, const uint32_t *dims, const uint8_t *data,
                         size_t data_len, size_t *len)
{
    size_t hdr = 4 + 4 * (size_t)nd;
    uint8_t *b = malloc(hdr + data_len + 1);
    assert_non_null(b);
    b[0] = 0;
    b[1] = 0;
    b[2] = type;
    b[3] = (uint8_t)nd;
    for (int i = 0; i < nd; i++)
        put_be32(b + 4 + 4 * i, dims[i]);
    if (data_len)
        memcpy(b + hdr, data, data_len);
    *len = hdr + data_len;
    return b;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 37u + seed * 101u + (i >> 8));
    return p;
}

/* Raw and gzip versions of an images file N x H x W (or N x C x H x W when
 * c > 0) and of a labels file of nl items (0: none). */
typedef struct files_t {
    uint8_t *pix, *lab;
    size_t npix;
    const char *img_raw, *img_gz, *lab_raw, *lab_gz;
} files_t;

static files_t make_files(const char *tag, uint32_t n, uint32_t c, uint32_t h, uint32_t w,
                          uint32_t nl)
{
    files_t f;
    memset(&f, 0, sizeof f);
    f.npix = (size_t)n * (c ? c : 1) * h * w;
    f.pix = pattern(f.npix, n + h);
    char name[128];
    size_t len;
    uint32_t d3[3] = {n, h, w}, d4[4] = {n, c, h, w};
    uint8_t *b = c ? make_idx(0x08, 4, d4, f.pix, f.npix, &len)
                   : make_idx(0x08, 3, d3, f.pix, f.npix, &len);
    snprintf(name, sizeof name, "%s-images", tag);
    f.img_raw = write_raw(name, b, len);
    snprintf(name, sizeof name, "%s-images.gz", tag);
    f.img_gz = write_gz(name, b, len);
    free(b);
    if (nl) {
        f.lab = malloc(nl);
        assert_non_null(f.lab);
        for (uint32_t i = 0; i < nl; i++)
            f.lab[i] = (uint8_t)((i * 7 + 3) % 10 + (i == 1 ? 245 : 0)); /* one label 245 > 127 */
        b = make_idx(0x08, 1, &nl, f.lab, nl, &len);
        snprintf(name, sizeof name, "%s-labels", tag);
        f.lab_raw = write_raw(name, b, len);
        snprintf(name, sizeof name, "%s-labels.gz", tag);
        f.lab_gz = write_gz(name, b, len);
        free(b);
    }
    return f;
}

static void free_files(files_t *f)
{
    free(f->pix);
    free(f->lab);
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

static void clear_error(void) { (void)cvae__fail(CVAE_OK, "%s", ""); }

/* The call is sequenced before ds is read (a function argument list would
 * not guarantee it). */
#define expect_failure(call, want, ds, needle)                                 \
    do {                                                                       \
        cvae_status st_ = (call);                                              \
        expect_failure_fn(st_, want, ds, needle);                              \
    } while (0)

/* A sentinel *out so that a failing constructor is seen to reset it. */
static int sentinel;
#define SENTINEL ((cvae_dataset *)(void *)&sentinel)

static void expect_failure_fn(cvae_status got, cvae_status want, const cvae_dataset *ds,
                           const char *needle)
{
    assert_int_equal(got, want);
    assert_null(ds);
    const char *msg = cvae_last_error();
    assert_true(strlen(msg) > 0);
    if (needle && !strstr(msg, needle)) {
        print_error("message \"%s\" lacks \"%s\"\n", msg, needle);
        fail();
    }
}

static void expect_load_failure(const char *img, const char *lab, cvae_status want,
                                const char *needle)
{
    clear_error();
    cvae_dataset *ds = SENTINEL;
    cvae_status st = cvae_dataset_load_idx(img, lab, &ds);
    expect_failure_fn(st, want, ds, needle);
}

/* ds holds exactly these uint8 pixels (as v/255) and labels (NULL: none). */
static void check_u8_contents(const cvae_dataset *ds, const uint8_t *pix, int64_t n, int c,
                              int h, int w, const uint8_t *lab)
{
    int64_t gn;
    int gc, gh, gw;
    assert_int_equal(cvae_dataset_shape(ds, &gn, &gc, &gh, &gw), CVAE_OK);
    assert_int_equal(gn, n);
    assert_int_equal(gc, c);
    assert_int_equal(gh, h);
    assert_int_equal(gw, w);
    size_t total = (size_t)n * (size_t)(c * h * w);
    float *img = malloc(total * sizeof(float));
    assert_non_null(img);
    assert_int_equal(cvae_dataset_images_f32(ds, 0, n, img), CVAE_OK);
    for (size_t i = 0; i < total; i++) {
        float ref = (float)((double)pix[i] / 255.0);
        if (img[i] != ref) {
            print_error("pixel %zu: %.9g, expected %.9g (byte %u)\n", i, (double)img[i],
                        (double)ref, pix[i]);
            fail();
        }
    }
    free(img);
    int has;
    assert_int_equal(cvae_dataset_has_labels(ds, &has), CVAE_OK);
    assert_int_equal(has, lab != NULL);
    if (lab) {
        int32_t *l = malloc((size_t)n * sizeof(int32_t));
        assert_non_null(l);
        assert_int_equal(cvae_dataset_labels(ds, l, n), CVAE_OK);
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(l[i], lab[i]);
        free(l);
    }
}

/* ------------------------------------------------------------------------ */
/* IDX round trips                                                          */
/* ------------------------------------------------------------------------ */

static void test_idx_raw_roundtrip(void **state)
{
    (void)state;
    files_t f = make_files("rt3", 5, 0, 3, 4, 5);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_dataset_load_idx(f.img_raw, f.lab_raw, &ds), CVAE_OK);
    assert_non_null(ds);
    check_u8_contents(ds, f.pix, 5, 1, 3, 4, f.lab);
    assert_int_equal(cvae__dataset_count(ds), 5);
    const int32_t *lp = cvae__dataset_labels_ptr(ds);
    assert_non_null(lp);
    assert_int_equal(lp[1], 245);
    cvae_dataset_destroy(ds);
    free_files(&f);
}

static void test_idx_gzip_roundtrip(void **state)
{
    (void)state;
    files_t f = make_files("rtgz", 7, 0, 2, 6, 7);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_dataset_load_idx(f.img_gz, f.lab_gz, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 7, 1, 2, 6, f.lab);
    cvae_dataset_destroy(ds);
    /* mixed: raw images, gzip labels */
    assert_int_equal(cvae_dataset_load_idx(f.img_raw, f.lab_gz, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 7, 1, 2, 6, f.lab);
    cvae_dataset_destroy(ds);
    free_files(&f);
}

static void test_idx_4d(void **state)
{
    (void)state;
    files_t f = make_files("rt4", 4, 3, 5, 2, 4);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_dataset_load_idx(f.img_raw, f.lab_raw, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 4, 3, 5, 2, f.lab);
    int c, h, w;
    assert_int_equal(cvae__dataset_dims(ds, &c, &h, &w), 30);
    assert_int_equal(c, 3);
    assert_int_equal(h, 5);
    assert_int_equal(w, 2);
    cvae_dataset_destroy(ds);
    assert_int_equal(cvae_dataset_load_idx(f.img_gz, NULL, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 4, 3, 5, 2, NULL);
    cvae_dataset_destroy(ds);
    free_files(&f);
}

static void test_idx_no_labels(void **state)
{
    (void)state;
    files_t f = make_files("nolab", 3, 0, 2, 2, 0);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_dataset_load_idx(f.img_raw, NULL, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 3, 1, 2, 2, NULL);
    assert_null(cvae__dataset_labels_ptr(ds));
    int32_t l[3];
    clear_error();
    assert_int_equal(cvae_dataset_labels(ds, l, 3), CVAE_E_STATE);
    assert_true(strlen(cvae_last_error()) > 0);
    cvae_dataset_destroy(ds);
    free_files(&f);
}

/* Larger than the reader's first 64 KiB chunk, so the buffer grows several
 * times; MNIST-sized images. */
static void test_idx_large_growth(void **state)
{
    (void)state;
    files_t f = make_files("large", 300, 0, 28, 28, 300);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_dataset_load_idx(f.img_raw, f.lab_raw, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 300, 1, 28, 28, f.lab);
    cvae_dataset_destroy(ds);
    assert_int_equal(cvae_dataset_load_idx(f.img_gz, f.lab_gz, &ds), CVAE_OK);
    check_u8_contents(ds, f.pix, 300, 1, 28, 28, f.lab);
    cvae_dataset_destroy(ds);
    free_files(&f);
}

/* ------------------------------------------------------------------------ */
/* IDX rejections                                                           */
/* ------------------------------------------------------------------------ */

static void test_idx_bad_magic(void **state)
{
    (void)state;
    files_t f = make_files("magic", 2, 0, 2, 2, 2);
    uint32_t d3[3] = {2, 2, 2};
    uint8_t px[8] = {0};
    size_t len;
    uint8_t *b = make_idx(0x08, 3, d3, px, 8, &len);

    b[0] = 0x12;
    b[1] = 0x34;
    const char *p = write_raw("magic-foreign", b, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "not an IDX file");
    expect_load_failure(f.img_raw, p, CVAE_E_FORMAT, "not an IDX file");
    b[0] = b[1] = 0;

    b[2] = 0x0D; /* float */
    p = write_raw("magic-float", b, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "element type 0x0D");
    p = write_gz("magic-float.gz", b, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "element type 0x0D");
    b[2] = 0x08;

    b[3] = 2; /* 2-D images: header is 12 bytes, data follows */
    p = write_raw("magic-2d", b, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "2 dimensions");
    free(b);

    /* the two files swapped */
    expect_load_failure(f.lab_raw, NULL, CVAE_E_FORMAT, "labels file?");
    expect_load_failure(f.img_raw, f.img_raw, CVAE_E_FORMAT, "images file?");
    expect_load_failure(f.img_gz, f.img_gz, CVAE_E_FORMAT, "labels file '");
    free_files(&f);
}

static void test_idx_truncated(void **state)
{
    (void)state;
    uint32_t d3[3] = {3, 4, 5};
    uint8_t *pix = pattern(60, 1);
    size_t len;
    uint8_t *b = make_idx(0x08, 3, d3, pix, 60, &len);
    assert_int_equal(len, 76);
    const size_t cuts[] = {0, 1, 3, 4, 5, 8, 15, 16, 17, 40, 75};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t cut = cuts[i];
        char name[64], want[96];
        if (cut == 0)
            snprintf(want, sizeof want, "is empty");
        else if (cut < 16)
            snprintf(want, sizeof want, "truncated");
        else
            snprintf(want, sizeof want,
                     "truncated: expected 60 bytes of pixel data, got %zu", cut - 16);
        snprintf(name, sizeof name, "trunc-%zu", cut);
        const char *p = write_raw(name, b, cut);
        expect_load_failure(p, NULL, CVAE_E_FORMAT, want);
        expect_load_failure(p, NULL, CVAE_E_FORMAT, p); /* names the path */
        snprintf(name, sizeof name, "trunc-%zu.gz", cut);
        p = write_gz(name, b, cut);
        expect_load_failure(p, NULL, CVAE_E_FORMAT, want);
    }
    free(b);

    /* a truncated labels file */
    uint32_t n = 3;
    uint8_t lab[3] = {1, 2, 3};
    b = make_idx(0x08, 1, &n, lab, 3, &len);
    uint8_t *ib = make_idx(0x08, 3, d3, pix, 60, &len);
    const char *img = write_raw("trunc-ok-images", ib, len);
    free(ib);
    const size_t lcuts[] = {2, 7, 8, 10};
    for (size_t i = 0; i < sizeof lcuts / sizeof lcuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "trunc-labels-%zu", lcuts[i]);
        const char *p = write_raw(name, b, lcuts[i]);
        expect_load_failure(img, p, CVAE_E_FORMAT, "truncated");
    }
    const char *p = write_raw("trunc-labels-9", b, 9);
    expect_load_failure(img, p, CVAE_E_FORMAT, "expected 3 bytes of label data, got 1");
    free(b);
    free(pix);
}

/* A gzip file cut short, or with a corrupt trailer CRC, is not a valid file. */
static void test_idx_gzip_corrupt(void **state)
{
    (void)state;
    files_t f = make_files("gzc", 50, 0, 8, 8, 0);
    size_t len;
    uint8_t *gz = read_file(f.img_gz, &len);
    assert_true(len > 20);

    const char *p = write_raw("gzc-cut.gz", gz, len / 2);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, NULL);
    /* all the data but no CRC trailer, or only part of it */
    p = write_raw("gzc-cut8.gz", gz, len - 8);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "gzip stream ends early");
    p = write_raw("gzc-cut3.gz", gz, len - 3);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "gzip stream ends early");
    /* only the gzip magic, or the whole gzip header but no deflate data:
     * a cut-short gzip file, not an empty one */
    p = write_raw("gzc-magic.gz", gz, 2);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "gzip stream ends early");
    p = write_raw("gzc-hdr.gz", gz, 10);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "gzip stream ends early");

    gz[len - 8] ^= 0x55; /* CRC32 of the trailer */
    p = write_raw("gzc-crc.gz", gz, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "gzip");
    gz[len - 8] ^= 0x55;

    gz[len / 2] ^= 0xFF; /* deflate data */
    p = write_raw("gzc-mid.gz", gz, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, NULL);
    free(gz);
    free_files(&f);
}

static void test_idx_trailing_garbage(void **state)
{
    (void)state;
    uint32_t d3[3] = {2, 3, 3};
    uint8_t *pix = pattern(19, 2); /* one byte more than 2*3*3 */
    size_t len;
    uint8_t *b = make_idx(0x08, 3, d3, pix, 19, &len);
    const char *p = write_raw("trail", b, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "trailing data");
    p = write_gz("trail.gz", b, len);
    expect_load_failure(p, NULL, CVAE_E_FORMAT, "trailing data");
    free(b);

    uint32_t n = 2;
    uint8_t lab[3] = {4, 5, 6};
    b = make_idx(0x08, 1, &n, lab, 3, &len);
    const char *pl = write_raw("trail-labels", b, len);
    free(b);
    b = make_idx(0x08, 3, d3, pix, 18, &len);
    p = write_raw("trail-ok-images", b, len);
    free(b);
    expect_load_failure(p, pl, CVAE_E_FORMAT, "trailing data");
    free(pix);
}

static void test_idx_label_count_mismatch(void **state)
{
    (void)state;
    files_t f5 = make_files("cnt5", 5, 0, 2, 2, 5);
    files_t f4 = make_files("cnt4", 4, 0, 2, 2, 4);
    expect_load_failure(f5.img_raw, f4.lab_raw, CVAE_E_FORMAT, "has 4 items");
    expect_load_failure(f5.img_raw, f4.lab_gz, CVAE_E_FORMAT, "has 5");
    expect_load_failure(f4.img_gz, f5.lab_raw, CVAE_E_FORMAT, "has 5 items");

    /* The count is checked from the headers alone: an images header that
     * promises 60000 images with no pixel data behind it still reports the
     * count mismatch. */
    uint32_t d3[3] = {60000, 28, 28};
    size_t len;
    uint8_t *b = make_idx(0x08, 3, d3, NULL, 0, &len);
    const char *p = write_raw("cnt-60000", b, len);
    free(b);
    uint32_t n = 59999;
    uint8_t *lab = calloc(n, 1);
    assert_non_null(lab);
    b = make_idx(0x08, 1, &n, lab, n, &len);
    const char *pl = write_gz("cnt-59999.gz", b, len);
    free(b);
    free(lab);
    expect_load_failure(p, pl, CVAE_E_FORMAT, "has 59999 items");
    expect_load_failure(p, pl, CVAE_E_FORMAT, "has 60000");
    free_files(&f5);
    free_files(&f4);
}

static void test_idx_oversize_dims(void **state)
{
    (void)state;
    size_t len;
    struct {
        int nd;
        uint32_t d[4];
        const char *needle;
    } cases[] = {
        {3, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0}, "above 65535"},
        {3, {2, 65536, 1, 0}, "above 65535"},
        {3, {0xFFFFFFFFu, 65535, 65535, 0}, "exceeds the limit"},
        {4, {2, 65535, 65535, 65535}, "exceeds the limit"},
        {4, {1, 1024, 1024, 1025}, "exceeds the limit"},
        {3, {0, 28, 28, 0}, "dimension 0 is 0"},
        {4, {5, 0, 28, 28}, "dimension 1 is 0"},
        /* valid header, ~3 TB promised by a 16-byte file: truncated, and
         * fast, since memory only follows data actually present */
        {3, {0xFFFFFFFFu, 28, 28, 0}, "truncated"},
        {4, {0xFFFFFFFFu, 64, 128, 128}, "truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *b = make_idx(0x08, cases[i].nd, cases[i].d, NULL, 0, &len);
        char name[32];
        snprintf(name, sizeof name, "dims-%zu", i);
        const char *p = write_raw(name, b, len);
        expect_load_failure(p, NULL, CVAE_E_FORMAT, cases[i].needle);
        snprintf(name, sizeof name, "dims-%zu.gz", i);
        p = write_gz(name, b, len);
        expect_load_failure(p, NULL, CVAE_E_FORMAT, cases[i].needle);
        free(b);
    }
    uint32_t n0 = 0;
    uint8_t *b = make_idx(0x08, 1, &n0, NULL, 0, &len);
    files_t f = make_files("dims-ok", 1, 0, 1, 1, 0);
    const char *p = write_raw("dims-labels0", b, len);
    expect_load_failure(f.img_raw, p, CVAE_E_FORMAT, "dimension 0 is 0");
    free(b);
    free_files(&f);
}

static void test_idx_io_and_args(void **state)
{
    (void)state;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/does-not-exist", tmpdir);
    expect_load_failure(missing, NULL, CVAE_E_IO, "does-not-exist");
    files_t f = make_files("io", 2, 0, 2, 2, 2);
    expect_load_failure(f.img_raw, missing, CVAE_E_IO, "labels file");
    expect_load_failure(tmpdir, NULL, CVAE_E_IO, NULL); /* a directory */
    expect_load_failure(NULL, f.lab_raw, CVAE_E_INVALID_ARG, "images_path");
    clear_error();
    assert_int_equal(cvae_dataset_load_idx(f.img_raw, NULL, NULL), CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    free_files(&f);
}

/* The in-memory parser the fuzzer drives: every proper prefix and one byte
 * too many of a valid file are rejected, the exact file is accepted. */
static void test_idx_parse_memory(void **state)
{
    (void)state;
    uint32_t d4[4] = {2, 2, 3, 3};
    uint8_t *pix = pattern(36, 3);
    size_t len;
    uint8_t *b = make_idx(0x08, 4, d4, pix, 36, &len);
    b[len] = 0xAA;
    cvae__idx_info info;
    for (size_t cut = 0; cut < len; cut++) {
        clear_error();
        assert_int_equal(cvae__idx_parse(b, cut, CVAE__IDX_IMAGES, "buf", &info), CVAE_E_FORMAT);
        assert_true(strlen(cvae_last_error()) > 0);
    }
    assert_int_equal(cvae__idx_parse(b, len + 1, CVAE__IDX_IMAGES, NULL, &info), CVAE_E_FORMAT);
    assert_int_equal(cvae__idx_parse(b, len, CVAE__IDX_LABELS, NULL, &info), CVAE_E_FORMAT);
    assert_int_equal(cvae__idx_parse(b, len, CVAE__IDX_IMAGES, NULL, &info), CVAE_OK);
    assert_int_equal(info.ndim, 4);
    assert_int_equal(info.count, 2);
    assert_int_equal(info.channels, 2);
    assert_int_equal(info.height, 3);
    assert_int_equal(info.width, 3);
    assert_int_equal(info.header_bytes, 20);
    assert_int_equal(info.data_bytes, 36);
    assert_int_equal(cvae__idx_header_size(b, CVAE__IDX_IMAGES), 20);
    assert_int_equal(cvae__idx_header_size(b, CVAE__IDX_LABELS), 0);

    uint32_t n = 2;
    uint8_t lab[3] = {9, 0, 4};
    size_t llen;
    uint8_t *lb = make_idx(0x08, 1, &n, lab, 2, &llen);
    cvae_dataset *ds = SENTINEL;
    assert_int_equal(cvae__dataset_from_idx_memory(b, len, lb, llen, &ds), CVAE_OK);
    check_u8_contents(ds, pix, 2, 2, 3, 3, lab);
    cvae_dataset_destroy(ds);
    ds = SENTINEL;
    clear_error();
    expect_failure(cvae__dataset_from_idx_memory(b, len, lb, llen - 1, &ds), CVAE_E_FORMAT, ds,
                   "truncated");
    n = 3;
    uint8_t *lb3 = make_idx(0x08, 1, &n, lab, 3, &llen);
    ds = SENTINEL;
    expect_failure(cvae__dataset_from_idx_memory(b, len, lb3, llen, &ds), CVAE_E_FORMAT, ds,
                   "has 3 items");
    free(lb3);
    free(lb);
    free(b);
    free(pix);
}

/* ------------------------------------------------------------------------ */
/* In-memory data sets                                                      */
/* ------------------------------------------------------------------------ */

static void test_from_u8(void **state)
{
    (void)state;
    uint8_t *pix = pattern(2 * 3 * 4 * 5, 4);
    uint8_t labs8[2] = {7, 3};
    int32_t labs[2] = {7, 3};
    cvae_dataset *ds = SENTINEL;
    assert_int_equal(cvae_dataset_from_u8(pix, 2, 3, 4, 5, labs, &ds), CVAE_OK);
    check_u8_contents(ds, pix, 2, 3, 4, 5, labs8);
    cvae_dataset_destroy(ds);
    assert_int_equal(cvae_dataset_from_u8(pix, 2, 3, 4, 5, NULL, &ds), CVAE_OK);
    check_u8_contents(ds, pix, 2, 3, 4, 5, NULL);
    cvae_dataset_destroy(ds);

    int32_t bad[2] = {0, -1};
    ds = SENTINEL;
    clear_error();
    expect_failure(cvae_dataset_from_u8(pix, 2, 3, 4, 5, bad, &ds), CVAE_E_INVALID_ARG, ds,
                   "labels[1] = -1");
    struct {
        int64_t n;
        int c, h, w;
    } shapes[] = {{0, 1, 1, 1},     {-1, 1, 1, 1},         {1, 0, 1, 1},
                  {1, 1, 0, 1},     {1, 1, 1, -5},         {1, 65535, 65535, 65535},
                  {1, INT32_MAX, INT32_MAX, 2}, {INT64_MAX, 1, 28, 28}, {INT64_MAX / 2 + 2, 1, 1, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        ds = SENTINEL;
        clear_error();
        expect_failure(cvae_dataset_from_u8(pix, shapes[i].n, shapes[i].c, shapes[i].h,
                                            shapes[i].w, NULL, &ds),
                       CVAE_E_INVALID_ARG, ds, NULL);
    }
    ds = SENTINEL;
    expect_failure(cvae_dataset_from_u8(NULL, 1, 1, 1, 1, NULL, &ds), CVAE_E_INVALID_ARG, ds,
                   "pixels");
    assert_int_equal(cvae_dataset_from_u8(pix, 1, 1, 1, 1, NULL, NULL), CVAE_E_INVALID_ARG);
    free(pix);
}

static void test_from_f32(void **state)
{
    (void)state;
    enum { N = 3, P = 2 * 2 * 2 };
    float pix[N * P];
    for (int i = 0; i < N * P; i++)
        pix[i] = (float)i / (float)(N * P - 1); /* 0 .. 1 inclusive */
    int32_t labs[N] = {0, 1, 100000};
    cvae_dataset *ds = SENTINEL;
    assert_int_equal(cvae_dataset_from_f32(pix, N, 2, 2, 2, labs, &ds), CVAE_OK);
    float out[N * P];
    assert_int_equal(cvae_dataset_images_f32(ds, 0, N, out), CVAE_OK);
    assert_memory_equal(out, pix, sizeof pix); /* stored as given */
    int32_t l[N];
    assert_int_equal(cvae_dataset_labels(ds, l, N), CVAE_OK);
    assert_memory_equal(l, labs, sizeof labs);
    int64_t idx[2] = {2, 0};
    float g[2 * P];
    cvae__dataset_gather_f32(ds, idx, 2, g);
    assert_memory_equal(g, pix + 2 * P, P * sizeof(float));
    assert_memory_equal(g + P, pix, P * sizeof(float));
    cvae_dataset_destroy(ds);

    const struct {
        int at;
        float v;
        cvae_status st;
        const char *needle;
    } bad[] = {
        {7, NAN, CVAE_E_NUMERIC, "pixels[7]"},
        {9, INFINITY, CVAE_E_NUMERIC, "pixels[9] (image 1) is infinite"},
        {0, -INFINITY, CVAE_E_NUMERIC, "pixels[0]"},
        {23, -0.001f, CVAE_E_INVALID_ARG, "pixels[23] (image 2)"},
        {12, 1.0001f, CVAE_E_INVALID_ARG, "outside [0, 1]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float saved = pix[bad[i].at];
        pix[bad[i].at] = bad[i].v;
        ds = SENTINEL;
        clear_error();
        expect_failure(cvae_dataset_from_f32(pix, N, 2, 2, 2, NULL, &ds), bad[i].st, ds,
                       bad[i].needle);
        pix[bad[i].at] = saved;
    }
    int32_t neg[N] = {0, -3, 1};
    ds = SENTINEL;
    expect_failure(cvae_dataset_from_f32(pix, N, 2, 2, 2, neg, &ds), CVAE_E_INVALID_ARG, ds,
                   "labels[1]");
    ds = SENTINEL;
    expect_failure(cvae_dataset_from_f32(pix, 0, 2, 2, 2, NULL, &ds), CVAE_E_INVALID_ARG, ds,
                   NULL);
    ds = SENTINEL;
    expect_failure(cvae_dataset_from_f32(pix, 1, 1 << 20, 1 << 20, 1, NULL, &ds),
                   CVAE_E_INVALID_ARG, ds, NULL);
    pix[0] = -0.0f; /* still in [0, 1] */
    assert_int_equal(cvae_dataset_from_f32(pix, N, 2, 2, 2, NULL, &ds), CVAE_OK);
    cvae_dataset_destroy(ds);
}

/* ------------------------------------------------------------------------ */
/* Subsets                                                                  */
/* ------------------------------------------------------------------------ */

static void test_subset_first(void **state)
{
    (void)state;
    enum { N = 6, P = 2 * 3 };
    uint8_t *pix = pattern(N * P, 5);
    int32_t labs[N] = {5, 4, 3, 2, 1, 0};
    uint8_t labs8[N] = {5, 4, 3, 2, 1, 0};
    cvae_dataset *src;
    assert_int_equal(cvae_dataset_from_u8(pix, N, 1, 2, 3, labs, &src), CVAE_OK);
    for (int64_t n = 1; n <= N; n++) {
        cvae_dataset *s = SENTINEL;
        assert_int_equal(cvae_dataset_subset_first(src, n, &s), CVAE_OK);
        check_u8_contents(s, pix, n, 1, 2, 3, labs8);
        cvae_dataset_destroy(s);
    }
    cvae_dataset *s = SENTINEL;
    clear_error();
    expect_failure(cvae_dataset_subset_first(src, 0, &s), CVAE_E_INVALID_ARG, s, NULL);
    s = SENTINEL;
    expect_failure(cvae_dataset_subset_first(src, N + 1, &s), CVAE_E_INVALID_ARG, s, "[1, 6]");
    s = SENTINEL;
    expect_failure(cvae_dataset_subset_first(NULL, 1, &s), CVAE_E_INVALID_ARG, s, "src");
    cvae_dataset_destroy(src);

    /* float storage stays float */
    float fp[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    assert_int_equal(cvae_dataset_from_f32(fp, 4, 1, 1, 1, NULL, &src), CVAE_OK);
    assert_int_equal(cvae_dataset_subset_first(src, 3, &s), CVAE_OK);
    float out[3];
    assert_int_equal(cvae_dataset_images_f32(s, 0, 3, out), CVAE_OK);
    assert_memory_equal(out, fp, sizeof out);
    int has = -1;
    assert_int_equal(cvae_dataset_has_labels(s, &has), CVAE_OK);
    assert_int_equal(has, 0);
    cvae_dataset_destroy(s);
    cvae_dataset_destroy(src);
    free(pix);
}

static void test_subset_indices(void **state)
{
    (void)state;
    enum { N = 5, P = 4 };
    uint8_t *pix = pattern(N * P, 6);
    int32_t labs[N] = {10, 11, 12, 13, 14};
    cvae_dataset *src;
    assert_int_equal(cvae_dataset_from_u8(pix, N, 1, 2, 2, labs, &src), CVAE_OK);

    const int64_t idx[7] = {4, 0, 0, 2, 4, 4, 1}; /* repeats, more than N */
    uint8_t ref[7 * P], lref[7];
    for (int i = 0; i < 7; i++) {
        memcpy(ref + i * P, pix + idx[i] * P, P);
        lref[i] = (uint8_t)labs[idx[i]];
    }
    cvae_dataset *s = SENTINEL;
    assert_int_equal(cvae_dataset_subset_indices(src, idx, 7, &s), CVAE_OK);
    check_u8_contents(s, ref, 7, 1, 2, 2, lref);
    cvae_dataset_destroy(s);

    const int64_t bad1[3] = {0, 5, 1}, bad2[2] = {-1, 0};
    s = SENTINEL;
    clear_error();
    expect_failure(cvae_dataset_subset_indices(src, bad1, 3, &s), CVAE_E_INVALID_ARG, s,
                   "indices[1] = 5");
    s = SENTINEL;
    expect_failure(cvae_dataset_subset_indices(src, bad2, 2, &s), CVAE_E_INVALID_ARG, s,
                   "indices[0] = -1");
    s = SENTINEL;
    expect_failure(cvae_dataset_subset_indices(src, idx, 0, &s), CVAE_E_INVALID_ARG, s, NULL);
    s = SENTINEL;
    expect_failure(cvae_dataset_subset_indices(src, NULL, 1, &s), CVAE_E_INVALID_ARG, s,
                   "indices");
    cvae_dataset_destroy(src);

    float fp[3] = {0.25f, 0.5f, 1.0f};
    assert_int_equal(cvae_dataset_from_f32(fp, 3, 1, 1, 1, labs, &src), CVAE_OK);
    const int64_t fi[2] = {2, 0};
    assert_int_equal(cvae_dataset_subset_indices(src, fi, 2, &s), CVAE_OK);
    float out[2];
    int32_t l[2];
    assert_int_equal(cvae_dataset_images_f32(s, 0, 2, out), CVAE_OK);
    assert_true(out[0] == 1.0f && out[1] == 0.25f);
    assert_int_equal(cvae_dataset_labels(s, l, 2), CVAE_OK);
    assert_true(l[0] == 12 && l[1] == 10);
    cvae_dataset_destroy(s);
    cvae_dataset_destroy(src);
    free(pix);
}

/* ------------------------------------------------------------------------ */
/* Access                                                                   */
/* ------------------------------------------------------------------------ */

static void test_images_f32_ranges(void **state)
{
    (void)state;
    enum { N = 4, P = 3 };
    uint8_t pix[N * P] = {0, 1, 2, 51, 102, 153, 204, 254, 255, 10, 20, 30};
    cvae_dataset *ds;
    assert_int_equal(cvae_dataset_from_u8(pix, N, 1, 1, 3, NULL, &ds), CVAE_OK);
    float out[N * P + 1];
    for (int start = 0; start < N; start++)
        for (int n = 1; start + n <= N; n++) {
            out[n * P] = -7.0f; /* guard: nothing written past count images */
            assert_int_equal(cvae_dataset_images_f32(ds, start, n, out), CVAE_OK);
            for (int i = 0; i < n * P; i++)
                assert_true(out[i] == (float)((double)pix[start * P + i] / 255.0));
            assert_true(out[n * P] == -7.0f);
        }
    assert_int_equal(cvae_dataset_images_f32(ds, 1, 1, out), CVAE_OK);
    assert_true(out[0] == 0.2f && out[1] == 0.4f && out[2] == 0.6f);
    const int64_t bad[][2] = {{-1, 1}, {0, 0}, {0, -1}, {4, 1}, {3, 2}, {0, 5},
                              {INT64_MAX, 1}, {1, INT64_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_error();
        assert_int_equal(cvae_dataset_images_f32(ds, bad[i][0], bad[i][1], out),
                         CVAE_E_INVALID_ARG);
        assert_true(strlen(cvae_last_error()) > 0);
    }
    assert_int_equal(cvae_dataset_images_f32(ds, 0, 1, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_dataset_images_f32(NULL, 0, 1, out), CVAE_E_INVALID_ARG);
    cvae_dataset_destroy(ds);
}

static void test_gather_f32(void **state)
{
    (void)state;
    /* every byte value once, 16x16 images x 1 ... and a reversed copy */
    uint8_t pix[2 * 256];
    for (int i = 0; i < 256; i++) {
        pix[i] = (uint8_t)i;
        pix[256 + i] = (uint8_t)(255 - i);
    }
    cvae_dataset *ds;
    assert_int_equal(cvae_dataset_from_u8(pix, 2, 1, 16, 16, NULL, &ds), CVAE_OK);
    const int64_t idx[3] = {1, 0, 1};
    float out[3 * 256];
    cvae__dataset_gather_f32(ds, idx, 3, out);
    for (int i = 0; i < 256; i++) {
        /* correctly rounded i/255 */
        float ref = (float)((double)i / 255.0);
        assert_true(out[256 + i] == ref);
        assert_true(out[255 - i] == ref);
        assert_true(out[512 + 255 - i] == ref);
        assert_true(out[256 + i] >= 0.0f && out[256 + i] <= 1.0f);
    }
    assert_true(out[256 + 255] == 1.0f);
    assert_true(out[256 + 0] == 0.0f);
    assert_true(out[256 + 51] == 0.2f);
    assert_true(out[256 + 153] == 0.6f);
    assert_int_equal(cvae__dataset_count(ds), 2);
    assert_int_equal(cvae__dataset_dims(ds, NULL, NULL, NULL), 256);
    cvae_dataset_destroy(ds);
}

static void test_shape_labels_api(void **state)
{
    (void)state;
    uint8_t pix[6] = {0};
    int32_t labs[2] = {1, 2};
    cvae_dataset *ds;
    assert_int_equal(cvae_dataset_from_u8(pix, 2, 3, 1, 1, labs, &ds), CVAE_OK);
    assert_int_equal(cvae_dataset_shape(ds, NULL, NULL, NULL, NULL), CVAE_OK);
    int64_t n = 0;
    int h = 0;
    assert_int_equal(cvae_dataset_shape(ds, &n, NULL, &h, NULL), CVAE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(h, 1);
    assert_int_equal(cvae_dataset_shape(NULL, &n, NULL, NULL, NULL), CVAE_E_INVALID_ARG);
    int has;
    assert_int_equal(cvae_dataset_has_labels(NULL, &has), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_dataset_has_labels(ds, NULL), CVAE_E_INVALID_ARG);
    int32_t l[3];
    clear_error();
    assert_int_equal(cvae_dataset_labels(ds, l, 3), CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    assert_int_equal(cvae_dataset_labels(ds, l, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_dataset_labels(ds, NULL, 2), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_dataset_labels(NULL, l, 2), CVAE_E_INVALID_ARG);
    cvae_dataset_destroy(ds);
    cvae_dataset_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_raw_roundtrip),
        cmocka_unit_test(test_idx_gzip_roundtrip),
        cmocka_unit_test(test_idx_4d),
        cmocka_unit_test(test_idx_no_labels),
        cmocka_unit_test(test_idx_large_growth),
        cmocka_unit_test(test_idx_bad_magic),
        cmocka_unit_test(test_idx_truncated),
        cmocka_unit_test(test_idx_gzip_corrupt),
        cmocka_unit_test(test_idx_trailing_garbage),
        cmocka_unit_test(test_idx_label_count_mismatch),
        cmocka_unit_test(test_idx_oversize_dims),
        cmocka_unit_test(test_idx_io_and_args),
        cmocka_unit_test(test_idx_parse_memory),
        cmocka_unit_test(test_from_u8),
        cmocka_unit_test(test_from_f32),
        cmocka_unit_test(test_subset_first),
        cmocka_unit_test(test_subset_indices),
        cmocka_unit_test(test_images_f32_ranges),
        cmocka_unit_test(test_gather_f32),
        cmocka_unit_test(test_shape_labels_api),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
