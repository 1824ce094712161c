/* Tests for lib/io/safetensors_read.c and safetensors_write.c: round trips, exact bytes against hand-written
 * files, strict rejection of malformed input, and atomic saves. */
#define _DEFAULT_SOURCE /* mknod, makedev */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"

static char tmpdir[64];

/* Remove everything below dir (at most two levels: the tests make no more). */
static void remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && depth > 0) {
            chmod(p, 0700);
            remove_tree(p, depth - 1);
            rmdir(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
}

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/cvae_st_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(tmpdir, 2);
    return rmdir(tmpdir);
}

static void join(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void clear_error(void) { (void)cvae__fail(CVAE_OK, "%s", ""); }

/* A buffer holding an 8-byte length, this JSON, and data_len bytes of data. */
static uint8_t *make_buf(const char *json, const uint8_t *data, size_t data_len, size_t *len)
{
    size_t n = strlen(json);
    uint8_t *buf = calloc(1, 8 + n + data_len + 1);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, json, n);
    if (data)
        memcpy(buf + 8 + n, data, data_len);
    *len = 8 + n + data_len;
    return buf;
}

static void expect_reject_buf(const uint8_t *buf, size_t len, const char *needle)
{
    cvae__st_file *f = (cvae__st_file *)(uintptr_t)1;
    clear_error();
    cvae_status st = cvae__st_parse(buf, len, &f);
    if (st != CVAE_E_FORMAT || (needle && !strstr(cvae_last_error(), needle)))
        print_error("status %d, message \"%s\", wanted \"%s\"\n", (int)st, cvae_last_error(),
                    needle ? needle : "");
    assert_int_equal(st, CVAE_E_FORMAT);
    assert_null(f);
    assert_true(strlen(cvae_last_error()) > 0);
    if (needle)
        assert_non_null(strstr(cvae_last_error(), needle));
}

static void expect_reject(const char *json, size_t data_len, const char *needle)
{
    size_t len;
    uint8_t *buf = make_buf(json, NULL, data_len, &len);
    expect_reject_buf(buf, len, needle);
    free(buf);
}

/* ------------------------------------------------------------------------ */

/* The file a PyTorch user would get from safetensors.torch.save_file for
 * {"enc.w": [[1,2],[3,4]], "enc.bias": [-1, 0.25, 100]}: no metadata, header
 * padded with spaces to a multiple of 8 (123 + 5 = 128 bytes). */
static const uint8_t pytorch_file[] =
    "\x80\x00\x00\x00\x00\x00\x00\x00"
    "{\"enc.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"enc.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[16,28]}}     "
    "\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40"
    "\x00\x00\x80\xbf\x00\x00\x80\x3e\x00\x00\xc8\x42";
#define PYTORCH_FILE_LEN (sizeof pytorch_file - 1)

static void test_parse_pytorch_file(void **state)
{
    (void)state;
    assert_int_equal(PYTORCH_FILE_LEN, 8 + 128 + 28);
    cvae__st_file *f = NULL;
    assert_int_equal(cvae__st_parse(pytorch_file, PYTORCH_FILE_LEN, &f), CVAE_OK);
    assert_int_equal(cvae__st_count(f), 2);
    assert_string_equal(cvae__st_name(f, 0), "enc.w");
    assert_string_equal(cvae__st_name(f, 1), "enc.bias");
    assert_null(cvae__st_name(f, 2));

    int ndim = -1;
    int64_t shape[CVAE__ST_MAX_DIMS] = {0};
    const float *w = cvae__st_find(f, "enc.w", &ndim, shape);
    assert_non_null(w);
    assert_int_equal(ndim, 2);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 2);
    assert_true(((uintptr_t)w % 64) == 0);
    const float ew[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    assert_memory_equal(w, ew, sizeof ew);

    const float *b = cvae__st_find(f, "enc.bias", &ndim, shape);
    assert_non_null(b);
    assert_int_equal(ndim, 1);
    assert_int_equal(shape[0], 3);
    assert_true(((uintptr_t)b % 64) == 0);
    const float eb[3] = {-1.0f, 0.25f, 100.0f};
    assert_memory_equal(b, eb, sizeof eb);

    assert_null(cvae__st_find(f, "enc", NULL, NULL));
    assert_null(cvae__st_meta(f, "format"));
    cvae__st_free(f);

    /* The input is copied: the result survives the buffer. */
    uint8_t *copy = malloc(PYTORCH_FILE_LEN);
    assert_non_null(copy);
    memcpy(copy, pytorch_file, PYTORCH_FILE_LEN);
    assert_int_equal(cvae__st_parse(copy, PYTORCH_FILE_LEN, &f), CVAE_OK);
    memset(copy, 0xAB, PYTORCH_FILE_LEN);
    free(copy);
    assert_memory_equal(cvae__st_find(f, "enc.w", NULL, NULL), ew, sizeof ew);
    cvae__st_free(f);
}

/* Whitespace everywhere, keys in any order, entries not in data order,
 * metadata last, every escape form, and a zero-element tensor. */
static void test_parse_lenient_json_forms(void **state)
{
    (void)state;
    const char *json =
        " \r\n\t{ \"b\" : { \"data_offsets\" : [ 0 , 4 ] , \"shape\" : [ 1 ] ,"
        " \"dtype\" : \"F32\" } ,\n"
        "\"\\u00e9t\\ud834\\udd1E\\/x\": {\"shape\":[1,2],\"dtype\":\"F\\u0033\\u0032\","
        "\"data_offsets\":[4,12]},\n"
        "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},\n"
        "\"__metadata__\" : { \"esc\" : \"q\\\" s\\\\ sl\\/ b\\b f\\f n\\n r\\r t\\t\","
        " \"\" : \"empty key\" , \"k\\u00e9\" : \"\" } } \n\t ";
    const uint8_t data[12] = {0x00, 0x00, 0xc0, 0x3f, 0x01, 0x00, 0xc0, 0x7f,
                              0x00, 0x00, 0x80, 0xff};
    size_t len;
    uint8_t *buf = make_buf(json, data, sizeof data, &len);
    cvae__st_file *f = NULL;
    cvae_status st = cvae__st_parse(buf, len, &f);
    if (st)
        print_error("%s\n", cvae_last_error());
    assert_int_equal(st, CVAE_OK);
    free(buf);

    assert_int_equal(cvae__st_count(f), 3);
    assert_string_equal(cvae__st_name(f, 0), "b");
    assert_string_equal(cvae__st_name(f, 1), "\xc3\xa9t\xf0\x9d\x84\x9e/x");
    assert_string_equal(cvae__st_name(f, 2), "empty");

    const float *b = cvae__st_find(f, "b", NULL, NULL);
    assert_non_null(b);
    assert_true(b[0] == 1.5f);
    int ndim;
    int64_t shape[CVAE__ST_MAX_DIMS];
    const float *u = cvae__st_find(f, "\xc3\xa9t\xf0\x9d\x84\x9e/x", &ndim, shape);
    assert_non_null(u);
    assert_int_equal(ndim, 2);
    assert_int_equal(shape[0], 1);
    assert_int_equal(shape[1], 2);
    uint32_t bits[2];
    memcpy(bits, u, sizeof bits);
    assert_int_equal(bits[0], 0x7fc00001u); /* NaN payload kept */
    assert_int_equal(bits[1], 0xff800000u);
    const float *e = cvae__st_find(f, "empty", &ndim, shape);
    assert_non_null(e); /* present even though it holds no elements */
    assert_int_equal(ndim, 2);
    assert_int_equal(shape[0], 0);
    assert_int_equal(shape[1], 5);

    assert_string_equal(cvae__st_meta(f, "esc"), "q\" s\\ sl/ b\b f\f n\n r\r t\t");
    assert_string_equal(cvae__st_meta(f, ""), "empty key");
    assert_string_equal(cvae__st_meta(f, "k\xc3\xa9"), "");
    assert_null(cvae__st_meta(f, "k"));
    cvae__st_free(f);

    /* An empty header object with no data is a valid (empty) file. */
    buf = make_buf("{}", NULL, 0, &len);
    assert_int_equal(cvae__st_parse(buf, len, &f), CVAE_OK);
    assert_int_equal(cvae__st_count(f), 0);
    assert_null(cvae__st_name(f, 0));
    cvae__st_free(f);
    free(buf);
}

static void test_parse_bad_args(void **state)
{
    (void)state;
    cvae__st_file *f = NULL;
    assert_int_equal(cvae__st_parse(pytorch_file, PYTORCH_FILE_LEN, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_parse(NULL, 10, &f), CVAE_E_INVALID_ARG);
    assert_null(f);
    assert_int_equal(cvae__st_parse(NULL, 0, &f), CVAE_E_FORMAT);
    assert_null(f);
    /* Accessors tolerate NULL. */
    cvae__st_free(NULL);
    assert_int_equal(cvae__st_count(NULL), 0);
    assert_null(cvae__st_find(NULL, "a", NULL, NULL));
    assert_null(cvae__st_meta(NULL, "a"));
    assert_null(cvae__st_name(NULL, 0));
}

static void test_truncated_at_every_offset(void **state)
{
    (void)state;
    for (size_t len = 0; len < PYTORCH_FILE_LEN; len++) {
        /* A fresh heap copy of exactly len bytes lets valgrind/ASan see any
         * read past the end. */
        uint8_t *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        memcpy(buf, pytorch_file, len);
        expect_reject_buf(buf, len, "safetensors");
        free(buf);
    }
    /* One byte too many is a gap at the end of the data. */
    uint8_t longer[PYTORCH_FILE_LEN + 1];
    memcpy(longer, pytorch_file, PYTORCH_FILE_LEN);
    longer[PYTORCH_FILE_LEN] = 0;
    expect_reject_buf(longer, sizeof longer, "trailing bytes");
}

static void test_reject_header_length(void **state)
{
    (void)state;
    uint8_t buf[16] = {0};
    memcpy(buf + 8, "{}      ", 8);
    memset(buf, 0xFF, 8); /* 2^64 - 1 */
    expect_reject_buf(buf, sizeof buf, "exceeds");
    memset(buf, 0, 8);
    buf[7] = 0x80; /* 2^63 */
    expect_reject_buf(buf, sizeof buf, "exceeds");
    memset(buf, 0, 8);
    buf[0] = 9; /* one more than is there */
    expect_reject_buf(buf, sizeof buf, "exceeds");
    memset(buf, 0, 8); /* empty header */
    expect_reject_buf(buf, 8, "too short");
    expect_reject_buf(buf, 3, "too short");

    /* Above the 100 MB limit, with that many bytes really present (calloc
     * maps zero pages lazily, so this costs no time). */
    const size_t big = 100000001;
    uint8_t *huge = calloc(1, 8 + big);
    assert_non_null(huge);
    for (int i = 0; i < 8; i++)
        huge[i] = (uint8_t)((uint64_t)big >> (8 * i));
    expect_reject_buf(huge, 8 + big, "limit");
    free(huge);
}

static void test_reject_bad_json(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        size_t data_len;
        const char *needle;
    } cases[] = {
        /* header object not closed */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "unexpected end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}   ", 4, "unexpected end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", 4, "unexpected end"},
        {"{\"a\":{\"dtype\":\"F32", 4, "unterminated string"},
        {"{", 0, "too short"},
        {"{ ", 0, "unexpected end"},
        /* syntax */
        {"{\"a\" {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "expected ':'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4,
         "expected a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],}}", 4,
         "expected a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]} \"b\"}", 4,
         "expected ',' or '}'"},
        {"{'a':{}}", 0, "expected a string"},
        {"[]", 0, "JSON object"},
        {"\"a\"", 0, "JSON object"},
        {"   ", 0, "unexpected end"},
        {"{\"a\":null}", 0, "expected '{'"},
        {"{\"a\":[1]}", 0, "expected '{'"},
        {"{}x", 0, "trailing characters"},
        {"{}{}", 0, "trailing characters"},
        /* numbers */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zeros"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "fraction"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "exponent"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}", 4,
         "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}", 4,
         "dimension too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
         "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "more than 4 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4, "exactly two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "exactly two"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "expected '['"},
        /* strings */
        {"{\"a\\x\":{}}", 0, "invalid escape"},
        {"{\"a\\u12\":{}}", 0, "invalid \\u escape"},
        {"{\"a\\ud800\":{}}", 0, "surrogate"},
        {"{\"a\\udc00\":{}}", 0, "surrogate"},
        {"{\"a\\ud800\\u0041\":{}}", 0, "surrogate"},
        {"{\"a\\u0000\":{}}", 0, "NUL"},
        {"{\"a\nb\":{}}", 0, "control character"},
        {"{\"a\xff\":{}}", 0, "UTF-8"},
        {"{\"a\xc0\xaf\":{}}", 0, "UTF-8"},     /* overlong '/' */
        {"{\"a\xed\xa0\x80\":{}}", 0, "UTF-8"}, /* encoded surrogate */
        {"{\"a\xf4\x90\x80\x80\":{}}", 0, "UTF-8"}, /* above U+10FFFF */
        {"{\"a\xe2\x82\":{}}", 0, "UTF-8"},     /* cut sequence */
        /* entry structure */
        {"{\"a\":{}}", 0, "empty tensor entry"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "empty tensor name"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         "unknown key \"x\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks \"data_offsets\""},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "lacks \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "duplicate key"},
        {"{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "expected a string"},
        /* metadata */
        {"{\"__metadata__\":{\"k\":1}}", 0, "must be strings"},
        {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "must be strings"},
        {"{\"__metadata__\":\"x\"}", 0, "must be an object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\""},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate __metadata__ key"},
        {"{\"__metadata__\":{\"k\":\"1\",}}", 0, "expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %zu: %s\n", i, cases[i].json);
        expect_reject(cases[i].json, cases[i].data_len, cases[i].needle);
    }
}

static void test_reject_inconsistent_layout(void **state)
{
    (void)state;
    /* Other dtypes are valid safetensors but not ours. */
    expect_reject("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                  "unsupported dtype \"F16\"");
    expect_reject("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                  "unsupported dtype");
    expect_reject("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
                  "unsupported dtype");
    /* shape vs offsets */
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                  "needs 8 bytes");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}", 8,
                  "needs 4 bytes");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,4]}}", 4,
                  "needs 0 bytes");
    /* out of bounds */
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                  "out of bounds");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,"
                  "18446744073709551615]}}",
                  4, "out of bounds");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                  "end before they begin");
    /* overlap, gaps, trailing data */
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "overlaps");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                  4, "overlaps");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                  12, "gap");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                  "trailing bytes");
    expect_reject("{}", 4, "trailing bytes");
    /* names */
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "duplicate tensor name \"a\"");
    /* an escaped spelling of the same name is the same name */
    expect_reject("{\"ab\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\\u0062\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "duplicate tensor name");
}

/* ------------------------------------------------------------------------ */

static void test_save_exact_bytes(void **state)
{
    (void)state;
    /* 182 bytes of JSON + 2 spaces = 184 = 0xb8; the data starts at 192.
     * The checksums are Python's zlib.crc32 of each tensor's 8 and 4 bytes. */
    static const uint8_t expected[] =
        "\xb8\x00\x00\x00\x00\x00\x00\x00"
        "{\"__metadata__\":{\"key\":\"a\\\"b\\\\c\\u000a\","
        "\"tensors_crc32\":\"c3872656 9722f221\"},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}  "
        "\x00\x00\x80\x3f\x00\x00\x00\xc0\x00\x00\x00\x3f";
    const float w[2] = {1.0f, -2.0f};
    const float s = 0.5f;
    cvae__st_tensor t[2] = {{"w", 1, {2}, w}, {"s", 0, {0}, &s}};
    const char *keys[] = {"key"};
    const char *vals[] = {"a\"b\\c\n"};
    char path[256];
    join(path, sizeof path, "exact.safetensors");
    assert_int_equal(cvae__st_save(path, t, 2, keys, vals, 1), CVAE_OK);
    size_t len;
    uint8_t *got = read_all(path, &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof expected - 1);
    assert_memory_equal(got, expected, sizeof expected - 1);
    free(got);

    /* No tensors, no metadata: "{}" padded to 8. */
    static const uint8_t empty[] = "\x08\x00\x00\x00\x00\x00\x00\x00{}      ";
    assert_int_equal(cvae__st_save(path, NULL, 0, NULL, NULL, 0), CVAE_OK);
    got = read_all(path, &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof empty - 1);
    assert_memory_equal(got, empty, sizeof empty - 1);
    free(got);

    /* Control characters other than newline, and the reserved-looking but
     * legal characters that need no escaping. */
    static const uint8_t ctl[] = "\x30\x00\x00\x00\x00\x00\x00\x00"
                                 "{\"__metadata__\":{\"\\u0001\\u001f\":\"/\x7f\xc3\xa9\\u0009\"}}"
                                 "  ";
    const char *k2[] = {"\x01\x1f"};
    const char *v2[] = {"/\x7f\xc3\xa9\t"};
    assert_int_equal(cvae__st_save(path, NULL, 0, k2, v2, 1), CVAE_OK);
    got = read_all(path, &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof ctl - 1);
    assert_memory_equal(got, ctl, sizeof ctl - 1);
    free(got);
}

static void test_roundtrip(void **state)
{
    (void)state;
    const float scalar = -3.25f;
    /* Special values must survive bit for bit: signed zero, denormals,
     * infinities and NaNs with payloads. */
    static const uint32_t vec_bits[9] = {0x00000000u, 0x80000000u, 0x00000001u,
                                         0x807fffffu, 0x7f800000u, 0xff800000u,
                                         0x7fc00001u, 0xffbfffffu, 0x3f800000u};
    float vec[9];
    for (int i = 0; i < 9; i++)
        vec[i] = from_bits(vec_bits[i]);
    float quad[2 * 3 * 4 * 5];
    for (uint32_t i = 0; i < 120; i++)
        quad[i] = from_bits(i * 2654435761u);
    float mat[6] = {1, 2, 3, 4, 5, 6};

    /* A whole configuration as JSON text, long enough to need buffer growth. */
    size_t cfg_len = 40000;
    char *cfg = malloc(cfg_len + 1);
    assert_non_null(cfg);
    const char *piece = "{\"layers\": [3, 4], \"name\": \"a\\\\b\"}\n\t";
    size_t plen = strlen(piece);
    for (size_t i = 0; i < cfg_len; i++)
        cfg[i] = piece[i % plen];
    cfg[cfg_len] = '\0';

    cvae__st_tensor t[5] = {
        {"scalar", 0, {0}, &scalar},
        {"enc.vec", 1, {9}, vec},
        {"conv.w/\"quoted\"\\", 4, {2, 3, 4, 5}, quad},
        {"empty", 2, {0, 7}, NULL},
        {"\xce\xbc.mat", 2, {2, 3}, mat},
    };
    const char *keys[] = {"config", "quote\"key\\", "unicode", "ctl"};
    const char *vals[] = {cfg, "line1\nline2 \"q\" back\\slash",
                          "h\xc3\xa9llo \xf0\x9d\x84\x9e \xe2\x9c\x93", "\x01\x02\x1b\x1f end"};
    char path[256];
    join(path, sizeof path, "rt.safetensors");
    assert_int_equal(cvae__st_save(path, t, 5, keys, vals, 4), CVAE_OK);

    /* File layout: the data starts 8-byte aligned right after the header. */
    size_t len;
    uint8_t *raw = read_all(path, &len);
    assert_non_null(raw);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + 4 * (1 + 9 + 120 + 0 + 6));
    assert_int_equal(raw[8], '{');
    free(raw);

    cvae__st_file *f = NULL;
    assert_int_equal(cvae__st_load(path, &f), CVAE_OK);
    assert_int_equal(cvae__st_count(f), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(cvae__st_name(f, i), t[i].name);
        int ndim = -1;
        int64_t shape[CVAE__ST_MAX_DIMS] = {-1, -1, -1, -1};
        const float *d = cvae__st_find(f, t[i].name, &ndim, shape);
        assert_non_null(d);
        assert_true(((uintptr_t)d % 64) == 0);
        assert_int_equal(ndim, t[i].ndim);
        size_t n = 1;
        for (int k = 0; k < ndim; k++) {
            assert_int_equal(shape[k], t[i].shape[k]);
            n *= (size_t)t[i].shape[k];
        }
        if (n)
            assert_memory_equal(d, t[i].data, n * sizeof(float));
    }
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(cvae__st_meta(f, keys[i]), vals[i]);
    assert_null(cvae__st_meta(f, "quote"));
    assert_null(cvae__st_find(f, "conv.w", NULL, NULL));
    cvae__st_free(f);

    /* Saving over an existing file replaces it. */
    assert_int_equal(cvae__st_save(path, t, 1, NULL, NULL, 0), CVAE_OK);
    assert_int_equal(cvae__st_load(path, &f), CVAE_OK);
    assert_int_equal(cvae__st_count(f), 1);
    assert_null(cvae__st_meta(f, "config"));
    cvae__st_free(f);
    free(cfg);
}

static void test_save_invalid_args(void **state)
{
    (void)state;
    char path[256];
    join(path, sizeof path, "bad.safetensors");
    const float x[4] = {0};
    const char *k[] = {"k"};
    const char *v[] = {"v"};
    const char *null_str[] = {NULL};
    const char *bad_utf8[] = {"\xc3("};
    struct {
        cvae__st_tensor t;
    } bad[] = {
        {{NULL, 1, {1}, x}},
        {{"", 1, {1}, x}},
        {{"__metadata__", 1, {1}, x}},
        {{"\xff", 1, {1}, x}},
        {{"a", -1, {1}, x}},
        {{"a", 5, {1, 1, 1, 1}, x}},
        {{"a", 2, {2, -1}, x}},
        {{"a", 1, {4}, NULL}},
        {{"a", 0, {0}, NULL}}, /* a scalar has one element */
        {{"a", 3, {INT64_MAX, INT64_MAX, 0}, x}},
        {{"a", 2, {INT64_MAX / 2, 2}, x}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clear_error();
        assert_int_equal(cvae__st_save(path, &bad[i].t, 1, NULL, NULL, 0), CVAE_E_INVALID_ARG);
        assert_true(strlen(cvae_last_error()) > 0);
    }
    cvae__st_tensor ok = {"a", 1, {4}, x};
    cvae__st_tensor dup[2] = {{"a", 1, {4}, x}, {"a", 1, {1}, x}};
    assert_int_equal(cvae__st_save(NULL, &ok, 1, NULL, NULL, 0), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_save(path, NULL, 1, NULL, NULL, 0), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_save(path, dup, 2, NULL, NULL, 0), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "duplicate"));
    assert_int_equal(cvae__st_save(path, &ok, 1, NULL, v, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_save(path, &ok, 1, k, NULL, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_save(path, &ok, 1, null_str, v, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_save(path, &ok, 1, k, null_str, 1), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_save(path, &ok, 1, k, bad_utf8, 1), CVAE_E_INVALID_ARG);
    const char *k2[] = {"k", "k"};
    const char *v2[] = {"1", "2"};
    assert_int_equal(cvae__st_save(path, &ok, 1, k2, v2, 2), CVAE_E_INVALID_ARG);
    char dirpath[256];
    snprintf(dirpath, sizeof dirpath, "%s/", tmpdir);
    assert_int_equal(cvae__st_save(dirpath, &ok, 1, NULL, NULL, 0), CVAE_E_INVALID_ARG);
    /* Nothing was created by any of these. */
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);

    /* Zero-element tensors need no data. */
    cvae__st_tensor empty = {"e", 3, {2, 0, (int64_t)1 << 40}, NULL};
    assert_int_equal(cvae__st_save(path, &empty, 1, NULL, NULL, 0), CVAE_OK);
    cvae__st_file *f;
    assert_int_equal(cvae__st_load(path, &f), CVAE_OK);
    int64_t shape[CVAE__ST_MAX_DIMS];
    int ndim;
    assert_non_null(cvae__st_find(f, "e", &ndim, shape));
    assert_int_equal(ndim, 3);
    assert_int_equal(shape[2], (int64_t)1 << 40);
    cvae__st_free(f);
    unlink(path);
}

/* Entries of tmpdir (and one level of subdirectories) whose names start with
 * '.', other than "." and "..": leftovers of temporary files. */
static int count_hidden(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_name[0] == '.')
            n++;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (depth > 0 && lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            n += count_hidden(p, depth - 1);
    }
    closedir(d);
    return n;
}

static void assert_unchanged(const char *path, const uint8_t *orig, size_t orig_len)
{
    size_t len;
    uint8_t *now = read_all(path, &len);
    assert_non_null(now);
    assert_int_equal(len, orig_len);
    assert_memory_equal(now, orig, orig_len);
    free(now);
}

static void test_save_failure_keeps_previous(void **state)
{
    (void)state;
    const float a[3] = {1, 2, 3};
    const float b[5] = {9, 8, 7, 6, 5};
    cvae__st_tensor ta = {"a", 1, {3}, a};
    cvae__st_tensor tb = {"b", 1, {5}, b};
    char path[256], bad[300];
    join(path, sizeof path, "keep.safetensors");
    assert_int_equal(cvae__st_save(path, &ta, 1, NULL, NULL, 0), CVAE_OK);
    size_t orig_len;
    uint8_t *orig = read_all(path, &orig_len);
    assert_non_null(orig);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);

    /* The target directory does not exist. */
    join(bad, sizeof bad, "missing/keep.safetensors");
    clear_error();
    assert_int_equal(cvae__st_save(bad, &tb, 1, NULL, NULL, 0), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "missing/keep.safetensors"));
    assert_non_null(strstr(cvae_last_error(), "No such file"));

    /* The parent is a regular file (also refuses root). */
    snprintf(bad, sizeof bad, "%s/x.safetensors", path);
    clear_error();
    assert_int_equal(cvae__st_save(bad, &tb, 1, NULL, NULL, 0), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "keep.safetensors/x.safetensors"));
    assert_unchanged(path, orig, orig_len);

    /* The target is a directory: refused before anything is written. */
    join(bad, sizeof bad, "adir");
    assert_int_equal(mkdir(bad, 0755), 0);
    char inner[400];
    snprintf(inner, sizeof inner, "%s/inner", bad);
    write_file(inner, "x", 1);
    clear_error();
    assert_int_equal(cvae__st_save(bad, &tb, 1, NULL, NULL, 0), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "a directory"));
    assert_non_null(strstr(cvae_last_error(), "adir"));
    assert_unchanged(inner, (const uint8_t *)"x", 1);

    /* A read-only directory; root writes regardless, so only check as others. */
    if (geteuid() != 0) {
        join(bad, sizeof bad, "ro");
        assert_int_equal(mkdir(bad, 0755), 0);
        char ro_path[400];
        snprintf(ro_path, sizeof ro_path, "%s/keep.safetensors", bad);
        assert_int_equal(cvae__st_save(ro_path, &ta, 1, NULL, NULL, 0), CVAE_OK);
        assert_int_equal(chmod(bad, 0555), 0);
        clear_error();
        assert_int_equal(cvae__st_save(ro_path, &tb, 1, NULL, NULL, 0), CVAE_E_IO);
        assert_non_null(strstr(cvae_last_error(), "ro/keep.safetensors"));
        assert_int_equal(chmod(bad, 0755), 0);
        assert_unchanged(ro_path, orig, orig_len);
    } else {
        print_message("running as root: read-only directory case skipped\n");
    }

    assert_unchanged(path, orig, orig_len);
    assert_int_equal(count_hidden(tmpdir, 1), 0);

    /* A replacement keeps the permissions of the file it replaces. */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(cvae__st_save(path, &tb, 1, NULL, NULL, 0), CVAE_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    cvae__st_file *f;
    assert_int_equal(cvae__st_load(path, &f), CVAE_OK);
    assert_memory_equal(cvae__st_find(f, "b", NULL, NULL), b, sizeof b);
    cvae__st_free(f);
    assert_int_equal(count_hidden(tmpdir, 1), 0);
    free(orig);
}

static void test_load_errors(void **state)
{
    (void)state;
    char path[256];
    cvae__st_file *f = (cvae__st_file *)(uintptr_t)1;
    join(path, sizeof path, "nope.safetensors");
    assert_int_equal(cvae__st_load(path, &f), CVAE_E_IO);
    assert_null(f);
    assert_non_null(strstr(cvae_last_error(), "nope.safetensors"));
    assert_int_equal(cvae__st_load(tmpdir, &f), CVAE_E_IO);
    assert_int_equal(cvae__st_load(NULL, &f), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__st_load(path, NULL), CVAE_E_INVALID_ARG);

    /* A truncated file is a format error that names the file. */
    join(path, sizeof path, "trunc.safetensors");
    write_file(path, pytorch_file, PYTORCH_FILE_LEN - 1);
    assert_int_equal(cvae__st_load(path, &f), CVAE_E_FORMAT);
    assert_null(f);
    assert_non_null(strstr(cvae_last_error(), "trunc.safetensors"));
    assert_non_null(strstr(cvae_last_error(), "out of bounds"));
    write_file(path, "", 0);
    assert_int_equal(cvae__st_load(path, &f), CVAE_E_FORMAT);

    /* The whole file loads once complete. */
    write_file(path, pytorch_file, PYTORCH_FILE_LEN);
    assert_int_equal(cvae__st_load(path, &f), CVAE_OK);
    assert_int_equal(cvae__st_count(f), 2);
    cvae__st_free(f);
    unlink(path);
}

/* Offset of the first occurrence of needle in buf, or -1. */
static long find_bytes(const uint8_t *buf, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return (long)i;
    return -1;
}

/* Every file the writer makes records its tensors' CRC-32; one flipped bit
 * in any tensor is found and the tensor named; a file without the key
 * (another writer's) loads; a malformed key is refused. */
static void test_checksums(void **state)
{
    (void)state;
    const float a[5] = {1, -2, 3.5f, 0, 1e-30f};
    const float b[3] = {7, 8, 9};
    cvae__st_tensor t[4] = {{"first", 1, {5}, a},
                            {"empty", 2, {0, 3}, NULL},
                            {"second", 1, {3}, b},
                            {"empty2", 1, {0}, NULL}};
    char path[256], bad[256];
    join(path, sizeof path, "crc.safetensors");
    join(bad, sizeof bad, "crc-bad.safetensors");
    assert_int_equal(cvae__st_save(path, t, 4, NULL, NULL, 0), CVAE_OK);
    size_t len;
    uint8_t *buf = read_all(path, &len);
    assert_non_null(buf);
    uint8_t *alt = malloc(len);
    assert_non_null(alt);
    cvae__st_file *f;
    assert_int_equal(cvae__st_parse(buf, len, &f), CVAE_OK);
    const char *meta = cvae__st_meta(f, "tensors_crc32");
    assert_non_null(meta);
    assert_int_equal(strlen(meta), 4 * 9 - 1);
    char crcs[4 * 9]; /* a copy: the metadata is freed with f */
    memcpy(crcs, meta, sizeof crcs);
    cvae__st_free(f);

    /* every bit of the data, flipped one at a time */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | buf[i];
    const size_t data = 8 + (size_t)hl;
    assert_int_equal(len - data, sizeof a + sizeof b);
    for (size_t bit = 0; bit < 8 * (len - data); bit++) {
        memcpy(alt, buf, len);
        alt[data + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        const char *name = bit / 8 < sizeof a ? "\"first\"" : "\"second\"";
        expect_reject_buf(alt, len, name);
        assert_non_null(strstr(cvae_last_error(), "damaged"));
    }
    /* the file (and cvae__st_load) says which file */
    memcpy(alt, buf, len);
    alt[len - 1] ^= 0x40;
    write_file(bad, alt, len);
    f = (cvae__st_file *)(uintptr_t)1;
    assert_int_equal(cvae__st_load(bad, &f), CVAE_E_FORMAT);
    assert_null(f);
    assert_non_null(strstr(cvae_last_error(), "crc-bad.safetensors"));
    assert_non_null(strstr(cvae_last_error(), "\"second\" is damaged"));

    /* without the key (renamed: same length) the same damage goes unseen */
    long k = find_bytes(alt, len, "\"tensors_crc32\"");
    assert_true(k > 0);
    alt[k + 13] = 'x';
    assert_int_equal(cvae__st_parse(alt, len, &f), CVAE_OK);
    cvae__st_free(f);

    /* malformed values: not a hex digit, upper case (the writer's digits
     * are lower case), a bad separator, a last digit replaced by a space */
    long v = find_bytes(buf, len, crcs);
    assert_true(v > 0);
    const struct {
        size_t at;
        uint8_t c;
    } edits[] = {{0, 'g'}, {3, 'A'}, {8, '-'}, {34, ' '}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(alt, buf, len);
        alt[(size_t)v + edits[i].at] = edits[i].c;
        expect_reject_buf(alt, len, "tensors_crc32");
    }
    /* a count that does not match the tensors */
    static const char one[] = "{\"__metadata__\":{\"tensors_crc32\":\"00000000 00000000\"},"
                              "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    expect_reject(one, 0, "does not hold 1 checksums");
    static const char ok1[] = "{\"__metadata__\":{\"tensors_crc32\":\"00000000\"},"
                              "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    size_t ol;
    uint8_t *ob = make_buf(ok1, NULL, 0, &ol);
    assert_int_equal(cvae__st_parse(ob, ol, &f), CVAE_OK);
    cvae__st_free(f);
    free(ob);

    /* the key is the writer's own */
    const char *keys[] = {"tensors_crc32"};
    const char *vals[] = {"0"};
    assert_int_equal(cvae__st_save(path, t, 1, keys, vals, 1), CVAE_E_INVALID_ARG);
    free(alt);
    free(buf);
    unlink(path);
    unlink(bad);
}

/* The writer replaces only regular files and writes through symbolic links;
 * the reader refuses special files without waiting on them (opening a FIFO
 * for reading blocks until a writer comes). */
static void test_special_files(void **state)
{
    (void)state;
    const float a[2] = {1, 2};
    cvae__st_tensor t = {"a", 1, {2}, a};
    char fifo[256], dev[256], real[256], link[256], tmp[256];
    struct stat sb;
    cvae__st_file *f = (cvae__st_file *)(uintptr_t)1;
    alarm(20); /* a reader that blocks on the FIFO fails the test, not hangs it */

    join(fifo, sizeof fifo, "fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    clear_error();
    assert_int_equal(cvae__st_save(fifo, &t, 1, NULL, NULL, 0), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "FIFO"));
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_int_equal(cvae__st_load(fifo, &f), CVAE_E_IO);
    assert_null(f);
    assert_non_null(strstr(cvae_last_error(), "FIFO"));
    unlink(fifo);

    join(dev, sizeof dev, "null-device");
    if (mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        assert_int_equal(cvae__st_save(dev, &t, 1, NULL, NULL, 0), CVAE_E_IO);
        assert_non_null(strstr(cvae_last_error(), "character device"));
        assert_int_equal(lstat(dev, &sb), 0);
        assert_true(S_ISCHR(sb.st_mode));
        assert_int_equal(cvae__st_load(dev, &f), CVAE_E_IO);
        unlink(dev);
    } else {
        print_message("mknod: character device case skipped\n");
    }

    join(real, sizeof real, "real.safetensors");
    join(link, sizeof link, "link.safetensors");
    write_file(real, "old", 3);
    assert_int_equal(symlink("real.safetensors", link), 0);
    assert_int_equal(cvae__st_save(link, &t, 1, NULL, NULL, 0), CVAE_OK);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(cvae__st_load(real, &f), CVAE_OK);
    assert_memory_equal(cvae__st_find(f, "a", NULL, NULL), a, sizeof a);
    cvae__st_free(f);

    /* a temporary file left by a save that was killed is taken over */
    join(tmp, sizeof tmp, ".real.safetensors.tmp");
    write_file(tmp, "partial", 7);
    assert_int_equal(cvae__st_save(real, &t, 1, NULL, NULL, 0), CVAE_OK);
    assert_int_not_equal(lstat(tmp, &sb), 0);
    assert_int_equal(count_hidden(tmpdir, 1), 0);
    unlink(link);
    unlink(real);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_pytorch_file),
        cmocka_unit_test(test_parse_lenient_json_forms),
        cmocka_unit_test(test_parse_bad_args),
        cmocka_unit_test(test_truncated_at_every_offset),
        cmocka_unit_test(test_reject_header_length),
        cmocka_unit_test(test_reject_bad_json),
        cmocka_unit_test(test_reject_inconsistent_layout),
        cmocka_unit_test(test_save_exact_bytes),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_save_invalid_args),
        cmocka_unit_test(test_save_failure_keeps_previous),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_checksums),
        cmocka_unit_test(test_special_files),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
